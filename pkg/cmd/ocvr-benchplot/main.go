// Command ocvr-benchplot draws the tables of a benchmark campaign as SVG
// charts: it reads every ocvr-loadgen JSON report under --in (the folder
// scripts/bench-report.sh writes, or any folder of reports) and writes one
// SVG per chart into --out, the median of the runs at each point:
//
//	fanout-p50.svg, fanout-p99.svg   delivery latency vs publish rate, one line per
//	                                 subscriber count, the plain-TCP floor beside it
//	idle-rss.svg                     RSS per connection vs connections
//	storm-connects.svg               connects/s vs clients
//	storm-latency.svg                connect p50 and p99 vs clients
//
//	ocvr-benchplot --in bench-results/report-… --out bench-results/charts
//
// A chart with no reports to draw from is left out (and said so).
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ocvr-benchplot", flag.ContinueOnError)
	fs.SetOutput(stderr)
	in := fs.String("in", "", "folder of ocvr-loadgen JSON reports (searched recursively)")
	out := fs.String("out", "", "folder to write the SVG charts into (created)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *in == "" || *out == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: ocvr-benchplot --in DIR --out DIR")
		return 2
	}
	reps, err := loadReports(*in)
	if err != nil {
		fmt.Fprintln(stderr, "ocvr-benchplot:", err)
		return 1
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fmt.Fprintln(stderr, "ocvr-benchplot:", err)
		return 1
	}
	written, skipped, err := drawAll(reps, *out)
	for _, w := range written {
		fmt.Fprintln(stdout, "wrote", w)
	}
	for _, s := range skipped {
		fmt.Fprintln(stdout, "skipped", s+": no reports of its workload")
	}
	if err != nil {
		fmt.Fprintln(stderr, "ocvr-benchplot:", err)
		return 1
	}
	return 0
}
