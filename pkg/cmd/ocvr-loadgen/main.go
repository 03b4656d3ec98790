// Command ocvr-loadgen runs bounded load workloads against a running OCVR
// stack on 127.0.0.1 and prints a table plus JSON. It creates its own
// sessions, channels and memberships through the SDK, so it needs the NATS
// URL of the stack as well as its ticketsvc and gateway addresses.
//
//	ocvr-loadgen idle   --conns 19500 --channels 100 --pids 1234,1240
//	ocvr-loadgen fanout --subs 5000 --rates 10,20,40,80,100,120 --pids …
//	ocvr-loadgen storm  --conns 5000 --inflight 200
//	ocvr-loadgen storm  --target centrifugo --jwt-secret … --pids 1300   (the same storm against Centrifugo)
//	ocvr-loadgen ratio  --ocvr storm.json --centrifugo storm-centrifugo.json
//	ocvr-loadgen churn  --workers 200 --duration 30s
//	ocvr-loadgen resume --clients 500 --missed 0,10,300   (continuity: resume vs fresh reconnect)
//	ocvr-loadgen overload --subs 5000 --rate 200 --read-rate 100
//	ocvr-loadgen streamcap --rates 1000,2000,4000,8000    (the stream leader's ceiling)
//	ocvr-loadgen compression --subs 2000 --rates 20,80,160   (permessage-deflate: bytes and CPU per delivery)
//	ocvr-loadgen rebalance --conns 3000 --gateways ws://…,ws://…,ws://… --admins http://…,…   (active rebalancing)
//	ocvr-loadgen soak   --conns 2000 --duration 10m --pids 1234   (make soak)
//	ocvr-loadgen floor-server --subs 5000 & ocvr-loadgen floor --subs 5000
//	                    (the same fan-out over plain TCP: this machine's floor)
//
// Every workload is bounded in connections and time and stops by itself.
// It raises its own open-files limit and spreads its sockets over
// 127.0.0.2–127.0.0.254 source addresses.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

type workload struct {
	name    string
	summary string
	run     func(ctx context.Context, e *env, fs *flag.FlagSet) func() (*report, error)
	noStack bool // needs no OCVR stack (no NATS connection)
}

func workloads() []workload {
	return []workload{
		{"idle", "N idle connections over C channels: server RSS and goroutines per connection, idle CPU", idleWorkload, false},
		{"fanout", "S subscribers of one channel, publishing at stepped rates: deliveries/s, latency, CPU per delivery", fanoutWorkload, false},
		{"storm", "N clients each get a ticket and connect, K in flight: connects/s and latency", stormWorkload, false},
		{"stampede", "N clients come back at once with no jitter, K in flight, honouring the servers' retry hints: all in?, refusals by kind, admitted latency, peak RSS and descriptors", stampedeWorkload, false},
		{"churn", "workers connect, subscribe, receive, disconnect in a loop while events flow", churnWorkload, false},
		{"floor", "the kernel's floor for fanout: plain TCP messages from floor-server to S sockets, latency as fanout measures it", floorWorkload, true},
		{"floor-server", "the sending side of floor (run it pinned where the gateway runs)", floorServerWorkload, true},
		{"resume", "clients disconnect, N events are published to their channel, they reconnect with their resume token and cursors: ms and server CPU per resume vs a fresh reconnect", resumeWorkload, false},
		{"overload", "S subscribers of one channel reading slower than the publish rate, then draining: closes, every event once and in order, catch-up time, peak RSS", overloadWorkload, false},
		{"streamcap", "a publish-rate ramp through the event stream with the gateway attached, until the acknowledgements lag", streamcapWorkload, false},
		{"ratio", "OCVR/Centrifugo per figure of two storm JSON reports (scripts/bench.sh storm-pair)", ratioWorkload, true},
		{"compression", "the same chat corpus to S subscribers without and with permessage-deflate, pass by pass: wire bytes and server CPU per delivery", compressionWorkload, false},
		{"soak", "bounded soak: N clients churn for a duration with steady publishing; fails on errors or resource growth", soakWorkload, false},
		{"rebalance", "N clients on the first gateway, then the others join: every pod ends within ±15% of the mean, shed clients resume without loss, presence does not flap (scripts/ci/extra-rebalance.sh)", rebalanceWorkload, false},
		{"cluster", "one shard of SDK-like clients of several gateways (or --role publish: the steady publisher), through a pod's SIGKILL and restart (scripts/bench-cluster.sh)", clusterWorkload, false},
		{"cluster-probe", "a server-side sample of the cluster run: per pod RSS, descriptors, CPU, /metrics; nats-server CPU and subscriptions", clusterProbeWorkload, true},
		{"cluster-report", "merge the cluster run's shards and probes into BENCHMARKS.md's tables", clusterReportWorkload, true},
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		return 2
	}
	var w *workload
	for _, x := range workloads() {
		if x.name == args[0] {
			w = &x
		}
	}
	if w == nil {
		fmt.Fprintf(stderr, "ocvr-loadgen: unknown workload %q\n", args[0])
		usage(stderr)
		return 2
	}
	fs := flag.NewFlagSet(w.name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	e := &env{}
	e.flags(fs)
	jsonOut := fs.String("json", "", "also write the report as JSON to this `file` (- for stdout)")
	do := w.run(ctx, e, fs)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: ocvr-loadgen %s [flags]\n\n%s.\n\nFlags:\n", w.name, w.summary)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args[1:]); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if err := e.open(ctx, !w.noStack && !foreignTarget(fs)); err != nil {
		fmt.Fprintln(stderr, "ocvr-loadgen:", err)
		return 1
	}
	defer e.close()
	rep, err := do()
	if err != nil {
		fmt.Fprintf(stderr, "ocvr-loadgen %s: %v\n", w.name, err)
		return 1
	}
	rep.Workload = w.name
	rep.Time = time.Now().UTC().Format(time.RFC3339)
	rep.print(stdout)
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if *jsonOut == "-" {
			fmt.Fprintln(stdout, string(b))
		} else if err := os.WriteFile(*jsonOut, append(b, '\n'), 0o644); err != nil {
			fmt.Fprintln(stderr, "ocvr-loadgen:", err)
			return 1
		}
	}
	return 0
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: ocvr-loadgen <workload> [flags]\n\nWorkloads:\n")
	for _, x := range workloads() {
		fmt.Fprintf(w, "  %-7s %s\n", x.name, x.summary)
	}
	fmt.Fprintf(w, "\nRun `ocvr-loadgen <workload> --help` for its flags.\n")
}

// report is a workload's result: parameters, then one row per step.
type report struct {
	Workload string            `json:"workload"`
	Time     string            `json:"time"`
	Params   map[string]any    `json:"params"`
	Columns  []string          `json:"columns"`
	Rows     [][]any           `json:"rows"`
	Notes    []string          `json:"notes,omitempty"`
	Extra    map[string]string `json:"-"`
}

func (r *report) print(w io.Writer) {
	fmt.Fprintf(w, "workload %s", r.Workload)
	for k, v := range r.Params {
		fmt.Fprintf(w, " %s=%v", k, v)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "| %s |\n", strings.Join(r.Columns, " | "))
	fmt.Fprintf(w, "|%s\n", strings.Repeat("---|", len(r.Columns)))
	for _, row := range r.Rows {
		cells := make([]string, len(row))
		for i, c := range row {
			switch v := c.(type) {
			case float64:
				cells[i] = trimFloat(v)
			default:
				cells[i] = fmt.Sprint(v)
			}
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
	}
	for _, n := range r.Notes {
		fmt.Fprintln(w, n)
	}
}

func trimFloat(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}
