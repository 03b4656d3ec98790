package deploytest

import (
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// TestRulesScoped: every selector of every rule carries ScopeMatcher, which
// the chart turns into its release's namespace — a selector without it would
// evaluate every namespace in each release (duplicate recorded series, an
// absent() blind to one namespace).
func TestRulesScoped(t *testing.T) {
	for _, rt := range RulesAndTests {
		rf, err := LoadRules(repoRoot(t), rt[0])
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range rf.RuleExprs() {
			if unscoped := UnscopedSelectors(t, e.PromQL); len(unscoped) > 0 {
				t.Errorf("%s: selectors without %s: %s", e.Source, ScopeMatcher, strings.Join(unscoped, ", "))
			}
		}
	}
}

// TestUnscopedSelectors: the check above finds a selector without the
// matcher, and one with namespace!="" among others passes.
func TestUnscopedSelectors(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want int
	}{
		{`sum by (namespace) (rate(x_total{namespace!="",code="1"}[5m]))`, 0},
		{`a{namespace!=""} / b`, 1},
		{`absent(a{namespace=~".+"})`, 1},
		{`a{namespace!=""} and on (namespace) (b{namespace!=""} offset 30s) == 1`, 0},
	} {
		if got := UnscopedSelectors(t, tc.expr); len(got) != tc.want {
			t.Errorf("%s: unscoped %v, want %d", tc.expr, got, tc.want)
		}
	}
}

// UnscopedSelectors lists the selectors of expr without ScopeMatcher.
func UnscopedSelectors(t testing.TB, expr string) []string {
	t.Helper()
	e, err := Parse(expr)
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	var out []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		for _, m := range vs.LabelMatchers {
			if m.Name == "namespace" && m.Type == labels.MatchNotEqual && m.Value == "" {
				return nil
			}
		}
		out = append(out, vs.String())
		return nil
	})
	return out
}

// kubernetesMetrics are the metric names the Kubernetes rules may use, as
// kube-state-metrics v2 (docs/metrics/workload/pod-metrics.md,
// horizontalpodautoscaler-metrics.md) and the kubelet's cAdvisor export
// them. The services' own names are checked against their /metrics by
// TestWithRealPrometheus; these cannot be, so a misspelt one fails here.
var kubernetesMetrics = map[string]bool{
	"container_cpu_cfs_periods_total":                      true, // cAdvisor
	"container_cpu_cfs_throttled_periods_total":            true, // cAdvisor
	"container_memory_working_set_bytes":                   true, // cAdvisor
	"kube_pod_container_resource_limits":                   true, // KSM, labels resource, unit
	"kube_pod_container_status_restarts_total":             true, // KSM
	"kube_pod_container_status_last_terminated_reason":     true, // KSM, label reason
	"kube_horizontalpodautoscaler_spec_max_replicas":       true, // KSM
	"kube_horizontalpodautoscaler_status_current_replicas": true, // KSM
	"kube_horizontalpodautoscaler_status_condition":        true, // KSM, labels condition, status
}

// TestKubernetesRulesMetrics: the Kubernetes rules use only the names above,
// and no ocvr_* name (those belong in the services' rules file, where a real
// Prometheus checks them).
func TestKubernetesRulesMetrics(t *testing.T) {
	rf, err := LoadRules(repoRoot(t), KubernetesRulesPath)
	if err != nil {
		t.Fatal(err)
	}
	exprs := rf.RuleExprs()
	if len(exprs) == 0 {
		t.Fatal("no rules")
	}
	for _, e := range exprs {
		names, err := MetricNames(e.PromQL)
		if err != nil {
			t.Fatalf("%s: %v", e.Source, err)
		}
		for _, n := range names {
			if !kubernetesMetrics[n] {
				t.Errorf("%s uses %s, not a kube-state-metrics or cAdvisor name this test knows", e.Source, n)
			}
		}
	}
}
