package charttest

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"
)

var (
	gvkServiceMonitor = schema.GroupVersionKind{Group: "monitoring.coreos.com", Version: "v1", Kind: "ServiceMonitor"}
	gvkPodMonitor     = schema.GroupVersionKind{Group: "monitoring.coreos.com", Version: "v1", Kind: "PodMonitor"}
	gvkPrometheusRule = schema.GroupVersionKind{Group: "monitoring.coreos.com", Version: "v1", Kind: "PrometheusRule"}
	gvkScaledObject   = schema.GroupVersionKind{Group: "keda.sh", Version: "v1alpha1", Kind: "ScaledObject"}
)

// TestMonitoringLinks: the chart's files/prometheus and files/grafana are
// links to deploy/, the one source of the rules and dashboards.
func TestMonitoringLinks(t *testing.T) {
	for link, target := range map[string]string{
		"files/prometheus": "../../../deploy/prometheus",
		"files/grafana":    "../../../deploy/grafana",
	} {
		p := filepath.Join(chartDir(t), link)
		got, err := os.Readlink(p)
		if err != nil {
			t.Errorf("%s must be a symbolic link to %s: %v", link, target, err)
			continue
		}
		if got != target {
			t.Errorf("%s links to %s, want %s", link, got, target)
		}
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s: %v", link, err)
		}
	}
}

// deployFiles lists deploy/<dir>/<glob> as the chart sees them.
func deployFiles(t *testing.T, dir string, globs ...string) []string {
	t.Helper()
	var out []string
	for _, g := range globs {
		m, err := filepath.Glob(filepath.Join(root(t), "deploy", dir, g))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m...)
	}
	sort.Strings(out)
	return out
}

// TestPrometheusRulesFromDeploy: every Prometheus rules file in
// deploy/prometheus/ becomes one PrometheusRule with exactly its groups,
// scoped to the release (see scopedGroups); promtool test files (no groups)
// are left out.
func TestPrometheusRulesFromDeploy(t *testing.T) {
	const runbooks = "https://wiki.example/ocvr/runbooks/"
	r := typed(t, render(t, Profile{Name: "default"}))
	hpas := fmt.Sprintf(`horizontalpodautoscaler=~"(keda-hpa-)?(%s|%s)"`,
		regexp.QuoteMeta(r.component(t, "gateway").Name), regexp.QuoteMeta(r.component(t, "ticketsvc").Name))
	files := deployFiles(t, "prometheus", "*.yml", "*.yaml")
	want := map[string]any{}
	for _, f := range files {
		doc := readYAML(t, f)
		if g, ok := doc["groups"]; ok {
			want["deploy/prometheus/"+filepath.Base(f)] = scopedGroups(t, g, Namespace, runbooks, "offset 30s", hpas)
		}
	}
	if len(want) == 0 {
		t.Skip("deploy/prometheus/ holds no rules files yet")
	}
	objs := render(t, Profile{Name: "default"}, "--set", "monitoring.prometheusRule.enabled=true",
		"--set", "monitoring.prometheusRule.runbookBaseURL="+runbooks)
	got := map[string]any{}
	for _, o := range objs {
		if o.U.GroupVersionKind() != gvkPrometheusRule {
			continue
		}
		src := o.U.GetAnnotations()["ocvr.example/source"]
		if _, dup := got[src]; dup {
			t.Errorf("two PrometheusRules from %s", src)
		}
		got[src] = o.U.Object["spec"].(map[string]any)["groups"]
		if err := validateCustom(t, o); err != nil {
			t.Errorf("%s: %v", o, err)
		}
	}
	for src, groups := range want {
		g, ok := got[src]
		if !ok {
			t.Errorf("no PrometheusRule from %s", src)
			continue
		}
		if !reflect.DeepEqual(normalize(t, g), normalize(t, groups)) {
			t.Errorf("the PrometheusRule from %s does not carry the file's groups, scoped to the release", src)
		}
	}
	for src := range got {
		if _, ok := want[src]; !ok {
			t.Errorf("PrometheusRule from %s, which is not a rules file in deploy/prometheus/", src)
		}
	}
}

// TestPrometheusRulesScoped: in the rendered rules no selector is left
// unscoped (namespace!=""), every alert's runbook_url is the configured base
// plus its name, and OCVRGatewayDrainStuck looks back over the configured
// readiness delay + drain window + 5 s. (Fails on a chart that ships the
// files as they are: two releases would record the same series.)
func TestPrometheusRulesScoped(t *testing.T) {
	objs := render(t, Profile{Name: "default"}, "--set", "monitoring.prometheusRule.enabled=true",
		"--set", "gateway.drain.readinessDelaySeconds=10", "--set", "gateway.drain.windowSeconds=60")
	var alerts, drain int
	for _, o := range objs {
		if o.U.GroupVersionKind() != gvkPrometheusRule {
			continue
		}
		for _, g := range o.U.Object["spec"].(map[string]any)["groups"].([]any) {
			for _, r := range g.(map[string]any)["rules"].([]any) {
				rule := r.(map[string]any)
				expr, _ := rule["expr"].(string)
				name, _ := rule["alert"].(string)
				if name == "" {
					name, _ = rule["record"].(string)
				}
				if strings.Contains(expr, `namespace!=""`) {
					t.Errorf("%s: unscoped selector left: %s", name, expr)
				}
				if !strings.Contains(expr, fmt.Sprintf("namespace=%q", Namespace)) {
					t.Errorf("%s: no namespace=%q selector: %s", name, Namespace, expr)
				}
				alert, _ := rule["alert"].(string)
				if alert == "" {
					continue
				}
				alerts++
				ann, _ := rule["annotations"].(map[string]any)
				if want := "https://ocvr.example/realtime/deploy/README.md#" + strings.ToLower(alert); ann["runbook_url"] != want {
					t.Errorf("%s: runbook_url %v, want %s", alert, ann["runbook_url"], want)
				}
				if alert == "OCVRGatewayDrainStuck" {
					drain++
					if !strings.Contains(expr, "offset 75s") || strings.Contains(expr, "offset 30s") {
						t.Errorf("OCVRGatewayDrainStuck: want offset 75s (10 + 60 + 5): %s", expr)
					}
				}
			}
		}
	}
	if alerts < 25 || drain != 1 {
		t.Errorf("%d alerts, %d OCVRGatewayDrainStuck: want the rules of deploy/prometheus", alerts, drain)
	}
}

// scopedGroups is what the chart makes of a rules file's groups: selectors
// scoped to namespace and the release's autoscalers (hpas), runbook_url from
// base, and the drain alert's look-back.
func scopedGroups(t *testing.T, groups any, namespace, base, drainOffset, hpas string) any {
	t.Helper()
	gs := normalize(t, groups).([]any)
	for _, g := range gs {
		for _, r := range g.(map[string]any)["rules"].([]any) {
			rule := r.(map[string]any)
			expr := strings.ReplaceAll(rule["expr"].(string), `namespace!=""`, fmt.Sprintf("namespace=%q", namespace))
			expr = strings.ReplaceAll(expr, `horizontalpodautoscaler=~".*-(gateway|ticketsvc)"`, hpas)
			alert, _ := rule["alert"].(string)
			if alert == "OCVRGatewayDrainStuck" {
				expr = strings.ReplaceAll(expr, "offset 30s", drainOffset)
			}
			rule["expr"] = expr
			if alert != "" {
				rule["annotations"].(map[string]any)["runbook_url"] = base + strings.ToLower(alert)
			}
		}
	}
	return gs
}

// normalize round-trips through JSON so both sides have the same types.
func normalize(t *testing.T, v any) any {
	t.Helper()
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := yaml.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestDashboardsFromDeploy: every deploy/grafana/*.json becomes one
// ConfigMap carrying the file byte for byte, labelled for the sidecar.
func TestDashboardsFromDeploy(t *testing.T) {
	files := deployFiles(t, "grafana", "*.json")
	if len(files) == 0 {
		t.Skip("deploy/grafana/ holds no dashboards yet")
	}
	objs := render(t, Profile{Name: "default"}, "--set", "monitoring.dashboards.enabled=true")
	r := typed(t, objs)
	for _, e := range r.decodeErrors {
		t.Error(e)
	}
	bySource := map[string]map[string]string{}
	for _, cm := range r.ConfigMaps {
		if cm.Labels["grafana_dashboard"] != "1" {
			t.Errorf("ConfigMap %s: no grafana_dashboard label", cm.Name)
		}
		bySource[cm.Annotations["ocvr.example/source"]] = cm.Data
		size := 0
		for _, v := range cm.Data {
			size += len(v)
		}
		if size > 900<<10 {
			t.Errorf("ConfigMap %s: %d bytes, too close to the 1 MiB limit", cm.Name, size)
		}
	}
	for _, f := range files {
		src := "deploy/grafana/" + filepath.Base(f)
		data, ok := bySource[src]
		if !ok {
			t.Errorf("no dashboard ConfigMap from %s", src)
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		// A YAML block scalar carries the text exactly, but for the
		// final newline.
		if got := data[filepath.Base(f)]; got != strings.TrimRight(string(b), "\n") {
			t.Errorf("ConfigMap from %s: the dashboard JSON differs from the file", src)
		}
	}
	if len(bySource) != len(files) {
		t.Errorf("%d dashboard ConfigMaps for %d files", len(bySource), len(files))
	}
}

// TestAutoscalingMetricServed: the metric the gateway HPA scales on is the
// one the prometheus-adapter configuration in deploy/prometheus-adapter/
// serves to the custom metrics API, so the HPA cannot scale on a metric
// that does not exist.
func TestAutoscalingMetricServed(t *testing.T) {
	files := deployFiles(t, "prometheus-adapter", "*.yaml", "*.yml")
	if len(files) == 0 {
		t.Skip("deploy/prometheus-adapter/ holds no configuration yet")
	}
	served := map[string]string{}
	for _, f := range files {
		doc := readYAML(t, f)
		var rules []any
		switch r := doc["rules"].(type) {
		case []any: // the adapter's own config file
			rules = r
		case map[string]any: // values of the prometheus-adapter chart
			rules, _ = r["custom"].([]any)
		}
		for _, rule := range rules {
			rm, _ := rule.(map[string]any)
			name, _ := rm["name"].(map[string]any)
			res, _ := rm["resources"].(map[string]any)
			over, _ := res["overrides"].(map[string]any)
			as, _ := name["as"].(string)
			if as == "" {
				continue
			}
			// A Pods metric needs the pod (and namespace) resource mapping.
			if _, ok := over["pod"]; !ok {
				t.Logf("%s: rule %s has no pod resource override", f, as)
				continue
			}
			served[as] = filepath.Base(f)
		}
	}
	for _, p := range profiles(t) {
		r := typed(t, render(t, p, "--set", "gateway.autoscaling.enabled=true", "--set", "gateway.keda.enabled=false"))
		for _, h := range r.HPAs {
			for _, m := range h.Spec.Metrics {
				if m.Pods == nil {
					continue
				}
				if _, ok := served[m.Pods.Metric.Name]; !ok {
					t.Errorf("%s: HPA %s scales on %s, which deploy/prometheus-adapter/ does not serve (serves %v)", p.Name, h.Name, m.Pods.Metric.Name, served)
				}
			}
		}
	}
}

// TestPrometheusRulesSelectReleaseHPAs: the autoscaler alerts select this
// release's HPAs (the gateway's, KEDA's for it, ticketsvc's) and not another
// application's whose name also ends in -gateway.
func TestPrometheusRulesSelectReleaseHPAs(t *testing.T) {
	objs := render(t, Profile{Name: "default"}, "--set", "monitoring.prometheusRule.enabled=true",
		"--set", "gateway.autoscaling.enabled=true", "--set", "ticketsvc.autoscaling.enabled=true")
	r := typed(t, objs)
	var names []string
	for _, h := range r.HPAs {
		names = append(names, h.Name)
	}
	if len(names) != 2 {
		t.Fatalf("HPAs %v, want the gateway's and ticketsvc's", names)
	}
	names = append(names, "keda-hpa-"+r.component(t, "gateway").Name)
	sel := regexp.MustCompile(`horizontalpodautoscaler=~"((?:[^"\\]|\\.)*)"`)
	found := 0
	for _, o := range objs {
		if o.U.GroupVersionKind() != gvkPrometheusRule {
			continue
		}
		for _, g := range o.U.Object["spec"].(map[string]any)["groups"].([]any) {
			for _, rule := range g.(map[string]any)["rules"].([]any) {
				expr, _ := rule.(map[string]any)["expr"].(string)
				for _, m := range sel.FindAllStringSubmatch(expr, -1) {
					found++
					// PromQL anchors the regular expression and unescapes the string.
					re := regexp.MustCompile("^(?:" + strings.ReplaceAll(m[1], `\\`, `\`) + ")$")
					for _, n := range names {
						if !re.MatchString(n) {
							t.Errorf("%s does not select HPA %s", m[0], n)
						}
					}
					if re.MatchString("billing-gateway") {
						t.Errorf("%s selects another application's HPA billing-gateway", m[0])
					}
				}
			}
		}
	}
	if found < 3 {
		t.Errorf("%d HPA selectors in the rendered rules, want those of deploy/prometheus/ocvr-realtime-kubernetes.rules.yml", found)
	}
}
