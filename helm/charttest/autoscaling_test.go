package charttest

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// TestKEDAFallbackKeepsTheFleet: when Prometheus cannot be queried, KEDA's
// fallback must not shrink the fleet. KEDA's default fallback behavior
// ("static") sets the target to exactly fallback.replicas — a fleet of 40
// gateways would be cut to 3 during a Prometheus outage and most sockets
// dropped — so the chart sets currentReplicasIfHigher (fallbackReplicas is a
// floor). The value must be one the KEDA v2.21.0 CRD accepts (checked against
// its schema, which does reject an unknown behavior).
func TestKEDAFallbackKeepsTheFleet(t *testing.T) {
	keda := Profile{Name: "keda", Files: []string{"helm/ocvr-realtime/profiles/keda.yaml"}}
	cases := []struct {
		name         string
		set          []string
		wantFallback bool
		wantReplicas int64
	}{
		{name: "keda profile", wantFallback: true, wantReplicas: 3},
		{name: "fallbackReplicas 7", set: []string{"--set", "gateway.keda.fallbackReplicas=7"}, wantFallback: true, wantReplicas: 7},
		{name: "fallback off", set: []string{"--set", "gateway.keda.fallbackReplicas=0"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			so := scaledObject(t, render(t, keda, c.set...))
			fb, ok := so.U.Object["spec"].(map[string]any)["fallback"].(map[string]any)
			if !c.wantFallback {
				if ok {
					t.Errorf("fallback rendered with fallbackReplicas 0: %v", fb)
				}
				return
			}
			if !ok {
				t.Fatalf("%s: no fallback", so)
			}
			if fb["behavior"] != "currentReplicasIfHigher" {
				t.Errorf("fallback.behavior = %v, want currentReplicasIfHigher (KEDA's default, static, scales the fleet down to fallback.replicas during a Prometheus outage)", fb["behavior"])
			}
			if fmt.Sprint(fb["replicas"]) != fmt.Sprint(c.wantReplicas) {
				t.Errorf("fallback.replicas = %v, want %d", fb["replicas"], c.wantReplicas)
			}
			if err := validateCustom(t, so); err != nil {
				t.Errorf("%s does not match the KEDA CRD: %v", so, err)
			}
			// The schema check above proves something: the CRD refuses a
			// behavior it does not know.
			bad := splitObjects(t, strings.Replace(string(so.Raw), "currentReplicasIfHigher", "keepEverything", 1))[0]
			if err := validateCustom(t, bad); err == nil {
				t.Error("the KEDA CRD accepted fallback.behavior keepEverything: the check proves nothing")
			}
		})
	}
}

func scaledObject(t *testing.T, objs []Object) Object {
	t.Helper()
	var found []Object
	for _, o := range objs {
		if o.U.GroupVersionKind() == gvkScaledObject {
			found = append(found, o)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d ScaledObjects rendered, want 1", len(found))
	}
	return found[0]
}

// TestAdapterChartDefaultRulesOff: the prometheus-community/prometheus-adapter
// chart turns its default rules on unless rules.default is false; one of
// them is a catch-all ({namespace!="",__name__!~"^container_.*"}, every
// series not ending in _total, served under its own name as a sum), which
// serves ocvr_gateway_connections a second time next to the rule of
// values.yaml (a max per pod). Which of the two the HPA gets is then up to
// the adapter, so values.yaml must turn the defaults off explicitly.
func TestAdapterChartDefaultRulesOff(t *testing.T) {
	path := filepath.Join(root(t), "deploy", "prometheus-adapter", "values.yaml")
	rules, _ := readYAML(t, path)["rules"].(map[string]any)
	if rules == nil {
		t.Fatalf("%s: no rules", path)
	}
	def, set := rules["default"]
	if on, _ := def.(bool); !set || on {
		t.Errorf("%s: rules.default = %v (set: %v), want false: the chart's catch-all default rule serves ocvr_gateway_connections a second time", path, def, set)
	}
	if custom, _ := rules["custom"].([]any); len(custom) == 0 {
		t.Errorf("%s: no rules.custom: with the defaults off the adapter would serve nothing", path)
	}
}
