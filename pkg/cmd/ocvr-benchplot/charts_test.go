package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// svgOf reads a chart and checks it is a non-empty SVG document.
func svgOf(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 1000 || !bytes.Contains(b, []byte("<svg")) || !bytes.Contains(b, []byte("</svg>")) {
		t.Fatalf("%s: not an SVG document (%d bytes)", path, len(b))
	}
	return string(b)
}

// TestChartsFromBenchResults draws the committed benchmark reports and
// checks every chart exists with the series those reports hold.
func TestChartsFromBenchResults(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      string
		want    map[string][]string // file → legend labels it must show
		skipped []string
	}{
		{
			name: "fanout through both bus paths only",
			in:   writeReports(t, `{"workload":"fanout","params":{"subs":5000,"path":"both"},"columns":["rate ev/s","path","p50 ms","p99 ms"],"rows":[[10,"stream",31.9,86.5],[10,"core",31.7,83.9],[40,"core",54.2,101],[40,"stream",43.3,93.9]]}`),
			want: map[string][]string{
				"fanout-p50.svg": {"gateway, 5000 subscribers, stream", "gateway, 5000 subscribers, core", "p50 latency, ms"},
				"fanout-p99.svg": {"gateway, 5000 subscribers, stream", "gateway, 5000 subscribers, core", "p99 latency, ms"},
			},
			skipped: []string{"idle-rss.svg", "storm-connects.svg", "storm-latency.svg"},
		},
		{
			name: "bench-report campaign",
			in:   benchReport,
			want: map[string][]string{
				"fanout-p50.svg":     {"gateway, 1000 subscribers", "gateway, 2500 subscribers", "gateway, 5000 subscribers", "plain-TCP floor, 5000 sockets"},
				"fanout-p99.svg":     {"gateway, 5000 subscribers", "plain-TCP floor, 5000 sockets"},
				"idle-rss.svg":       {"gateway, 100 channels", "gateway, 10 channels", "gateway, 1000 channels", "gateway + NATS, 100 channels"},
				"storm-connects.svg": {"200 in flight"},
				"storm-latency.svg":  {"p50, 200 in flight", "p99, 200 in flight"},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := os.Stat(tc.in); err != nil {
				t.Fatal(err)
			}
			out := t.TempDir()
			var stdout, stderr bytes.Buffer
			if code := run([]string{"--in", tc.in, "--out", out}, &stdout, &stderr); code != 0 {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			for file, labels := range tc.want {
				svg := svgOf(t, filepath.Join(out, file))
				for _, l := range labels {
					if !strings.Contains(svg, ">"+l+"<") {
						t.Errorf("%s: no %q", file, l)
					}
				}
			}
			for _, file := range tc.skipped {
				if _, err := os.Stat(filepath.Join(out, file)); err == nil {
					t.Errorf("%s drawn without reports", file)
				}
				if !strings.Contains(stdout.String(), "skipped "+file) {
					t.Errorf("output does not say %s was skipped: %s", file, stdout.String())
				}
			}
		})
	}
}

// writeReports writes each report into a new folder as r-<i>.json.
func writeReports(t *testing.T, reports ...string) string {
	t.Helper()
	dir := t.TempDir()
	for i, r := range reports {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("r-%d.json", i)), []byte(r), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestBadReports: a report the charts cannot read is an error naming the
// file and the column, not a silently empty chart.
func TestBadReports(t *testing.T) {
	for _, tc := range []struct {
		name, report, want string
	}{
		{"renamed column", `{"workload":"storm","params":{"inflight":200},"columns":["clients","connects per s"],"rows":[[10,5]]}`, `no column "connects/s"`},
		{"text where a number belongs", `{"workload":"idle","params":{"channels":100},"columns":["connections","gateway RSS/conn KiB","RSS/conn KiB (all pids)"],"rows":[["many",4,5]]}`, `column "connections" holds many`},
		{"short row", `{"workload":"fanout","params":{"subs":10},"columns":["rate ev/s","p50 ms","p99 ms"],"rows":[[10]]}`, `no "p50 ms" cell`},
		{"not JSON", `{"workload":`, "unexpected end of JSON input"},
		{"no report at all", `{"role":"publish","published":10}`, "no ocvr-loadgen JSON reports"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := writeReports(t, tc.report)
			var stdout, stderr bytes.Buffer
			if code := run([]string{"--in", in, "--out", t.TempDir()}, &stdout, &stderr); code != 1 {
				t.Fatalf("exit %d, want 1", code)
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("stderr %q does not say %q", stderr.String(), tc.want)
			}
		})
	}
}

// TestMedianOfRuns: three runs of one point draw their median.
func TestMedianOfRuns(t *testing.T) {
	s := &series{pts: map[float64][]float64{10: {5, 1, 3}, 20: {4, 2}}}
	got := s.xys()
	if len(got) != 2 || got[0].X != 10 || got[0].Y != 3 || got[1].X != 20 || got[1].Y != 3 {
		t.Errorf("xys = %v, want [{10 3} {20 3}]", got)
	}
}

func TestUsage(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"--in", "x"}, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "usage") {
		t.Errorf("exit %d, stderr %q", code, stderr.String())
	}
}
