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
	rf, err := Rules(repoRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range rf.RuleExprs() {
		if unscoped := UnscopedSelectors(t, e.PromQL); len(unscoped) > 0 {
			t.Errorf("%s: selectors without %s: %s", e.Source, ScopeMatcher, strings.Join(unscoped, ", "))
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
