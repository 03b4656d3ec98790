package charttest

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// TestSchemaRejects: invalid values are refused by helm with a message that
// names the value and says what is wrong, from values.schema.json (types,
// ranges, patterns, unknown keys) or templates/validate.yaml (rules across
// values).
func TestSchemaRejects(t *testing.T) {
	cases := []struct {
		name string
		set  []string // --set
		want []string // all in the error
	}{
		{"type", []string{"gateway.replicaCount=two"}, []string{"/gateway/replicaCount", "want integer"}},
		{"unknown key", []string{"gateway.replicas=3"}, []string{"/gateway", "additional properties 'replicas' not allowed"}},
		{"misspelt nested key", []string{"gateway.autoscaling.targetConnections=100"}, []string{"/gateway/autoscaling", "'targetConnections' not allowed"}},
		{"NATS URL scheme", []string{"nats.urls[0]=http://nats:4222"}, []string{"/nats/urls/0", "does not match pattern"}},
		{"log level", []string{"gateway.config.logLevel=verbose"}, []string{"/gateway/config/logLevel", "value must be one of"}},
		{"negative drain window", []string{"gateway.drain.windowSeconds=-1"}, []string{"/gateway/drain/windowSeconds", "minimum"}},
		{"port range", []string{"gateway.ports.admin=70000"}, []string{"/gateway/ports/admin", "maximum"}},
		{"surge", []string{"gateway.strategy.maxSurge=lots"}, []string{"/gateway/strategy/maxSurge"}},
		{"digest", []string{"gateway.image.digest=sha256:xyz"}, []string{"/gateway/image/digest", "does not match pattern"}},
		{"service type", []string{"gateway.service.type=Headless"}, []string{"/gateway/service/type", "value must be one of"}},
		{"origin", []string{"gateway.config.allowedOrigins[0]=ocvr.example/app"}, []string{"/gateway/config/allowedOrigins/0", "does not match pattern"}},
		{"subject prefix", []string{"nats.subjectPrefix=ocvr.>"}, []string{"/nats/subjectPrefix", "does not match pattern"}},
		{"ingress host", []string{"ingress.hosts[0]=RT_OCVR"}, []string{"/ingress/hosts/0", "does not match pattern"}},
		{"body limit", []string{"ticketsvc.config.bodyLimit=lots"}, []string{"/ticketsvc/config/bodyLimit", "does not match pattern"}},
		{"pdb policy", []string{"gateway.pdb.unhealthyPodEvictionPolicy=Never"}, []string{"/gateway/pdb/unhealthyPodEvictionPolicy"}},
		{"stream name", []string{"gateway.continuity.streamName=OCVR.EVENTS"}, []string{"/gateway/continuity/streamName", "does not match pattern"}},
		{"stream replicas", []string{"gateway.continuity.replicas=6"}, []string{"/gateway/continuity/replicas", "maximum"}},
		{"continuity window", []string{"gateway.continuity.windowSeconds=0"}, []string{"/gateway/continuity/windowSeconds", "minimum"}},
		{"stream max bytes", []string{"gateway.continuity.maxBytes=-1"}, []string{"/gateway/continuity/maxBytes", "minimum"}},
		{"two autoscalers", []string{"gateway.autoscaling.enabled=true", "gateway.keda.enabled=true"},
			[]string{"gateway.autoscaling.enabled and gateway.keda.enabled are both true"}},
		{"min above max", []string{"gateway.autoscaling.enabled=true", "gateway.autoscaling.minReplicas=10", "gateway.autoscaling.maxReplicas=5"},
			[]string{"gateway.autoscaling.minReplicas (10) is above gateway.autoscaling.maxReplicas (5)"}},
		{"keda min above max", []string{"gateway.keda.enabled=true", "gateway.keda.minReplicas=10", "gateway.keda.maxReplicas=5"},
			[]string{"gateway.keda.minReplicas (10) is above gateway.keda.maxReplicas (5)"}},
		{"hard cap below soft cap", []string{"gateway.config.softMaxConnections=1000", "gateway.config.hardMaxConnections=900"},
			[]string{"gateway.config.hardMaxConnections (900) must be above gateway.config.softMaxConnections (1000)"}},
		{"HPA target above soft cap", []string{"gateway.autoscaling.enabled=true", "gateway.config.softMaxConnections=4000", "gateway.autoscaling.targetConnectionsPerPod=5000"},
			[]string{"gateway.autoscaling.targetConnectionsPerPod (5000) must be below gateway.config.softMaxConnections (4000)"}},
		{"heartbeat", []string{"gateway.config.heartbeatTimeoutSeconds=20"},
			[]string{"gateway.config.heartbeatTimeoutSeconds (20) must exceed gateway.config.heartbeatIntervalSeconds (30)"}},
		{"nginx timeout", []string{"ingress.enabled=true", "ingress.websocketTimeoutSeconds=60"},
			[]string{"ingress.websocketTimeoutSeconds (60) must exceed gateway.config.heartbeatTimeoutSeconds (75)"}},
		{"two monitors", []string{"monitoring.serviceMonitor.enabled=true", "monitoring.podMonitor.enabled=true"},
			[]string{"monitoring.serviceMonitor.enabled and monitoring.podMonitor.enabled are both true"}},
		{"TLS without secret", []string{"nats.tls.enabled=true"}, []string{"nats.tls.enabled needs nats.tls.existingSecret"}},
		{"half mutual TLS", []string{"nats.tls.enabled=true", "nats.tls.existingSecret=s", "nats.tls.certKey=tls.crt"},
			[]string{"nats.tls.certKey and nats.tls.keyKey go together"}},
		{"no NATS", []string{"nats.urls=null"}, []string{"nats.urls"}},
		{"ingress without hosts", []string{"ingress.enabled=true", "ingress.hosts=null"}, []string{"ingress"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var args []string
			for _, s := range c.set {
				args = append(args, "--set", s)
			}
			_, stderr, err := renderRaw(t, Profile{Name: "default"}, args...)
			if err == nil {
				t.Fatalf("helm template accepted %v", c.set)
			}
			for _, w := range c.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("error for %v does not say %q:\n%s", c.set, w, stderr)
				}
			}
		})
	}
}

// TestSchemaAccepts: boundary values that are valid render.
func TestSchemaAccepts(t *testing.T) {
	cases := [][]string{
		{"--set", "gateway.strategy.maxSurge=1", "--set", "gateway.strategy.maxUnavailable=0%"},
		{"--set", "gateway.drain.preStopSleepSeconds=0", "--set", "ticketsvc.drain.preStopSleepSeconds=0"},
		{"--set", "gateway.image.digest=sha256:" + strings.Repeat("ab", 32)},
		{"--set", "nats.urls=null", "--set", "nats.urlSecret.name=nats-url"},
		{"--set", "image.registry=", "--set", "image.tag=v1.2.3"},
		{"--set", "gateway.config.allowedOrigins[0]=*"},
		{"--set-json", "gateway.config.frameRate=2.5"},
		{"--set", "gateway.config.softMaxConnections=1000000", "--set", "gateway.config.hardMaxConnections=1200000"},
	}
	for _, args := range cases {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			t.Parallel()
			out, stderr, err := renderRaw(t, Profile{Name: "default"}, args...)
			if err != nil {
				t.Fatalf("helm template refused %v: %v\n%s", args, err, stderr)
			}
			r := typed(t, splitObjects(t, out))
			for _, e := range r.decodeErrors {
				t.Error(e)
			}
			if strings.Contains(out, "e+0") {
				t.Errorf("a number was rendered in exponent notation:\n%s", out)
			}
		})
	}
}

// TestSchemaCoversEveryValue: every value in values.yaml and in the
// profiles is declared in values.schema.json, and every object in the
// schema refuses unknown keys (or is a documented pass-through of a
// Kubernetes type, which the API server checks).
func TestSchemaCoversEveryValue(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(chartDir(t), "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var sch map[string]any
	if err := json.Unmarshal(b, &sch); err != nil {
		t.Fatalf("values.schema.json: %v", err)
	}
	defs, _ := sch["definitions"].(map[string]any)
	resolve := func(s map[string]any) map[string]any {
		for {
			ref, ok := s["$ref"].(string)
			if !ok {
				return s
			}
			s = defs[strings.TrimPrefix(ref, "#/definitions/")].(map[string]any)
		}
	}
	// Pass-through Kubernetes objects: free-form on purpose.
	passThrough := map[string]bool{
		"/global": true, "/podSecurityContext": true, "/securityContext": true,
		"/podSecurityContext/seccompProfile": true, "/securityContext/capabilities": true,
	}
	var walkSchema func(path string, s map[string]any)
	walkSchema = func(path string, s map[string]any) {
		s = resolve(s)
		if s["type"] == "object" {
			ap, has := s["additionalProperties"]
			switch {
			case has && ap == false:
			case has:
				if m, ok := ap.(map[string]any); ok {
					walkSchema(path+"/*", m)
				}
			case passThrough[path] || s["description"] != nil && strings.Contains(fmt.Sprint(s["description"]), "Passed to the pod spec") || strings.HasSuffix(path, "/valueFrom"):
			default:
				t.Errorf("schema %s: an object without additionalProperties accepts misspelt keys", path)
			}
		}
		if props, ok := s["properties"].(map[string]any); ok {
			for k, v := range props {
				walkSchema(path+"/"+k, v.(map[string]any))
			}
		}
		if items, ok := s["items"].(map[string]any); ok {
			walkSchema(path+"/[]", items)
		}
	}
	walkSchema("", sch)

	var walkValues func(path string, v any, s map[string]any)
	walkValues = func(path string, v any, s map[string]any) {
		s = resolve(s)
		m, ok := v.(map[string]any)
		if !ok || strings.Contains(fmt.Sprint(s["description"]), "Passed to the pod spec") {
			return
		}
		props, _ := s["properties"].(map[string]any)
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if ps, ok := props[k].(map[string]any); ok {
				walkValues(path+"/"+k, m[k], ps)
				continue
			}
			if ap, ok := s["additionalProperties"].(map[string]any); ok {
				walkValues(path+"/"+k, m[k], ap)
				continue
			}
			if passThrough[path] {
				continue
			}
			t.Errorf("value %s/%s is not in values.schema.json", path, k)
		}
	}
	files := []string{filepath.Join(chartDir(t), "values.yaml")}
	for _, p := range profiles(t) {
		for _, f := range p.Files {
			files = append(files, filepath.Join(root(t), f))
		}
	}
	for _, f := range files {
		walkValues("", readYAML(t, f), sch)
	}
}
