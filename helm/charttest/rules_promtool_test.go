package charttest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"sigs.k8s.io/yaml"
)

// TestRenderedRulesScopedUnderPromtool: two releases in two namespaces (and a
// third namespace with gateways but no release) evaluated together by
// promtool, as one Prometheus evaluates every PrometheusRule it selects. Each
// release records its own namespace's fleet size exactly once, nothing is
// recorded for the namespace without a release, and absent() fires for the
// release whose ticketsvc is gone although another namespace's is scraped.
// (On a chart that ships the files unscoped, each release records every
// namespace and the absent() alert stays silent.)
func TestRenderedRulesScopedUnderPromtool(t *testing.T) {
	promtool := promtoolBin(t)
	dir := t.TempDir()
	const rulesFile = "deploy/prometheus/ocvr-realtime.rules.yml"
	var files []string
	var absentRule map[string]any
	for _, rel := range []struct{ name, ns string }{{Release, Namespace}, {"ocvr-staging", "staging"}} {
		out, stderr, err := runHelm(t, "template", rel.name, ".", "--namespace", rel.ns, "--kube-version", KubeVersion,
			"--set", "monitoring.prometheusRule.enabled=true")
		if err != nil {
			t.Fatalf("helm template %s: %v\n%s", rel.name, err, stderr)
		}
		var groups any
		for _, o := range splitObjects(t, out) {
			if o.U.GroupVersionKind() == gvkPrometheusRule && o.U.GetAnnotations()["ocvr.example/source"] == rulesFile {
				groups = o.U.Object["spec"].(map[string]any)["groups"]
			}
		}
		if groups == nil {
			t.Fatalf("release %s: no PrometheusRule from %s", rel.name, rulesFile)
		}
		if rel.ns == "staging" {
			absentRule = findRule(t, groups, "OCVRTicketsvcMetricsAbsent")
		}
		f := fmt.Sprintf("%s.rules.yml", rel.name)
		writeYAML(t, filepath.Join(dir, f), map[string]any{"groups": groups})
		files = append(files, f)
	}
	ann := absentRule["annotations"].(map[string]any)
	series := func(name, ns, pod, values string) map[string]any {
		return map[string]any{"series": fmt.Sprintf(`%s{job="x",namespace=%q,pod=%q}`, name, ns, pod), "values": values}
	}
	tests := map[string]any{
		"rule_files":          files,
		"evaluation_interval": "1m",
		"tests": []any{map[string]any{
			"interval": "1m",
			"input_series": []any{
				series("ocvr_gateway_connections", Namespace, "gw-a", "10x20"),
				series("ocvr_gateway_connections", "staging", "gw-b", "20x20"),
				series("ocvr_gateway_connections", "dev", "gw-c", "40x20"),
				series("ocvr_ticketsvc_nats_connected", Namespace, "ts-a", "1x20"),
				series("ocvr_ticketsvc_nats_connected", "dev", "ts-c", "1x20"),
			},
			"promql_expr_test": []any{map[string]any{
				"expr":      "namespace:ocvr_gateway_connections:sum",
				"eval_time": "5m",
				"exp_samples": []any{
					map[string]any{"labels": fmt.Sprintf(`namespace:ocvr_gateway_connections:sum{namespace=%q}`, Namespace), "value": 10},
					map[string]any{"labels": `namespace:ocvr_gateway_connections:sum{namespace="staging"}`, "value": 20},
				},
			}},
			"alert_rule_test": []any{
				map[string]any{"eval_time": "15m", "alertname": "OCVRTicketsvcMetricsAbsent", "exp_alerts": []any{
					map[string]any{
						"exp_labels":      map[string]any{"severity": "critical", "namespace": "staging"},
						"exp_annotations": ann,
					},
				}},
				map[string]any{"eval_time": "15m", "alertname": "OCVRGatewayMetricsAbsent", "exp_alerts": []any{}},
			},
		}},
	}
	writeYAML(t, filepath.Join(dir, "scoped.test.yml"), tests)
	for _, args := range [][]string{append([]string{"check", "rules"}, files...), {"test", "rules", "scoped.test.yml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %v: %v\n%s", args, err, out)
		}
	}
}

func findRule(t *testing.T, groups any, alert string) map[string]any {
	t.Helper()
	for _, g := range groups.([]any) {
		for _, r := range g.(map[string]any)["rules"].([]any) {
			if rm := r.(map[string]any); rm["alert"] == alert {
				return rm
			}
		}
	}
	t.Fatalf("no alert %s", alert)
	return nil
}

func writeYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// promtoolBin finds Debian's promtool (scripts/ci/install-prometheus.sh). A
// missing one skips the test, except in CI (CI=true), where it fails it.
func promtoolBin(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("promtool"); err == nil {
		return p
	}
	msg := "promtool not found: install Debian's prometheus package (make prometheus)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + " — required in CI")
	}
	t.Skip(msg)
	return ""
}
