package deploytest

import (
	"regexp"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// bucketRef is a histogram bucket an expression selects by its bound, such
// as the delivery SLO's ocvr_gateway_delivery_latency_seconds_bucket{le="0.25"}.
type bucketRef struct{ Series, LE string }

// bucketRefs lists the buckets expr selects with an le="…" matcher. A bound
// the histogram does not have selects nothing, silently: the SLO would read
// no good events at all.
func bucketRefs(t testing.TB, expr string) []bucketRef {
	t.Helper()
	e, err := Parse(expr)
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	var out []bucketRef
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		for _, m := range vs.LabelMatchers {
			if m.Name == "le" && m.Type == labels.MatchEqual {
				out = append(out, bucketRef{vs.Name, m.Value})
			}
		}
		return nil
	})
	return out
}

var bucketLine = regexp.MustCompile(`(?m)^(\w+_bucket)\{(?:[^}]*,)?le="([^"]+)"`)

// exportedBuckets lists the buckets of a /metrics page.
func exportedBuckets(page string) map[bucketRef]bool {
	out := map[bucketRef]bool{}
	for _, m := range bucketLine.FindAllStringSubmatch(page, -1) {
		out[bucketRef{m[1], m[2]}] = true
	}
	return out
}

// TestBucketRefs: the helpers above find a bound in an expression and on a
// page, and a missing bound is told apart.
func TestBucketRefs(t *testing.T) {
	refs := bucketRefs(t, `sum(rate(h_bucket{namespace!="",le="0.25"}[5m])) / sum(rate(h_count[5m]))`)
	if len(refs) != 1 || refs[0] != (bucketRef{"h_bucket", "0.25"}) {
		t.Errorf("refs %v", refs)
	}
	page := "# TYPE h histogram\nh_bucket{le=\"0.1\"} 1\nh_bucket{le=\"0.25\"} 2\nh_bucket{code=\"x\",le=\"+Inf\"} 3\n"
	got := exportedBuckets(page)
	for _, want := range []bucketRef{{"h_bucket", "0.1"}, {"h_bucket", "0.25"}, {"h_bucket", "+Inf"}} {
		if !got[want] {
			t.Errorf("%v not found in %v", want, got)
		}
	}
	if got[bucketRef{"h_bucket", "0.2"}] {
		t.Error("a bound the page does not have was found")
	}
}
