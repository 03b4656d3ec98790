package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// cluster-report merges the shards' JSON (cluster.go) with the probes
// (cluster_probe.go) into BENCHMARKS.md's "Cluster" tables.

// clusterTotals is every shard merged.
type clusterTotals struct {
	Shards, Conns, NotConnected, GaveUp, InitialFailures int
	Disconnected, ByKill, NotBack                        int
	FirstUpNs, KillNs                                    int64
	InitialConnect                                       *latencyHist
	BackMs                                               []float64 // sorted
	OtherDrops, LandedOn, ReadyResumed, SubResumed       map[string]int
	AttemptsToBack                                       map[int]int
	Refusals, Failures                                   map[string]int64
	ConnectsPerSec                                       map[int64]int64
	Latency                                              map[string]*latencyHist
	Received, Duplicates, OutOfOrder, Foreign            int64
	Expected, Lost, LostNotResumed, LostAway             int64
	NotResumedInWindow, ReadyNotResumedInWindow          int
	PublishedKnown                                       bool
}

func mergeShards(shards []*clusterShardResult) *clusterTotals {
	t := &clusterTotals{
		InitialConnect: newLatencyHist(), OtherDrops: map[string]int{}, LandedOn: map[string]int{},
		ReadyResumed: map[string]int{}, SubResumed: map[string]int{}, AttemptsToBack: map[int]int{},
		Refusals: map[string]int64{}, Failures: map[string]int64{}, ConnectsPerSec: map[int64]int64{},
		Latency: map[string]*latencyHist{}, PublishedKnown: len(shards) > 0,
	}
	for _, s := range shards {
		t.Shards++
		t.Conns += s.Conns
		t.NotConnected += s.NotConnected
		t.GaveUp += s.GaveUp
		t.InitialFailures += s.InitialFailures
		t.Disconnected += s.Disconnected
		t.ByKill += s.ByKill
		t.NotBack += s.NotBack
		t.FirstUpNs = max(t.FirstUpNs, s.FirstUpNs)
		t.KillNs = max(t.KillNs, s.KillNs)
		t.InitialConnect.merge(s.InitialConnect)
		t.BackMs = append(t.BackMs, s.BackAfterKillMs...)
		addCounts(t.OtherDrops, s.OtherDrops)
		addCounts(t.LandedOn, s.LandedOn)
		addCounts(t.ReadyResumed, s.ReadyResumed)
		addCounts(t.SubResumed, s.SubResumed)
		addCounts(t.AttemptsToBack, s.AttemptsToBack)
		addCounts(t.Refusals, s.Refusals)
		addCounts(t.Failures, s.Failures)
		addCounts(t.ConnectsPerSec, s.ConnectsPerSec)
		for k, h := range s.Latency {
			if t.Latency[k] == nil {
				t.Latency[k] = newLatencyHist()
			}
			t.Latency[k].merge(h)
		}
		t.Received += s.Received
		t.Duplicates += s.Duplicates
		t.OutOfOrder += s.OutOfOrder
		t.Foreign += s.Foreign
		t.Expected += s.Expected
		t.Lost += s.Lost
		t.LostNotResumed += s.LostNotResumed
		t.LostAway += s.LostAway
		t.NotResumedInWindow += s.NotResumedInWindow
		t.ReadyNotResumedInWindow += s.ReadyNotResumedInWindow
		t.PublishedKnown = t.PublishedKnown && s.PublishedKnown
	}
	slices.Sort(t.BackMs)
	return t
}

func addCounts[K comparable, V int | int64](dst, src map[K]V) {
	for k, v := range src {
		dst[k] += v
	}
}

// waveRate is the reconnect wave's pace from the shards' per-second
// connect counts: connects in the seconds from the kill's through the last
// one back, divided by that span (at least 1 s); and the busiest second.
func waveRate(perSec map[int64]int64, killNs int64, lastBackMs float64) (mean float64, peak int64, series []int64) {
	if killNs == 0 {
		return 0, 0, nil
	}
	from := killNs / 1e9
	to := (killNs + int64(lastBackMs*1e6)) / 1e9
	var n int64
	for s := from; s <= to; s++ {
		v := perSec[s]
		n += v
		peak = max(peak, v)
		series = append(series, v)
	}
	span := max(lastBackMs/1e3, 1)
	return float64(n) / span, peak, series
}

// cpuPercent is the share of one core a process used between two probes;
// a process started between them (the restarted pod) counts from its start.
func cpuPercent(a, b procProbe, dt float64) float64 {
	if dt <= 0 || !b.Alive {
		return 0
	}
	ticks := b.CPUTicks
	if a.Pid == b.Pid && a.Alive {
		ticks -= a.CPUTicks
	}
	return 100 * float64(ticks) / 100 / dt
}

func coreBusy(a, b clusterProbe, cpu int) float64 {
	if cpu >= len(a.CPUs) || cpu >= len(b.CPUs) {
		return 0
	}
	dt := b.CPUs[cpu].Total - a.CPUs[cpu].Total
	if dt <= 0 {
		return 0
	}
	return 100 * float64(b.CPUs[cpu].Busy-a.CPUs[cpu].Busy) / float64(dt)
}

func clusterReportWorkload(ctx context.Context, e *env, fs *flag.FlagSet) func() (*report, error) {
	dir := fs.String("dir", "", "the run's folder: shard-*.json, publisher.json, probes.jsonl, kill, restart, recovered (unix ns)")
	hardMax := fs.Int("hard-max", 0, "each pod's --hard-max-connections (for the table)")
	fdLimit := fs.Int("fd-limit", 0, "each pod's open-files limit (for the table)")
	restartDelay := fs.Duration("restart-delay", 0, "the killed pod's restart delay (for the table)")
	serverCPU := fs.Int("server-cpu", 0, "the core the servers are pinned to")
	clientCPU := fs.Int("client-cpu", 1, "the core the load generators are pinned to")
	return func() (*report, error) {
		if *dir == "" {
			return nil, fmt.Errorf("--dir is required")
		}
		files, _ := filepath.Glob(filepath.Join(*dir, "shard-*.json"))
		var shards []*clusterShardResult
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("report: %w", err)
			}
			var s clusterShardResult
			if err := json.Unmarshal(b, &s); err != nil {
				return nil, fmt.Errorf("report: %s: %w", f, err)
			}
			shards = append(shards, &s)
		}
		if len(shards) == 0 {
			return nil, fmt.Errorf("report: no shard-*.json in %s", *dir)
		}
		t := mergeShards(shards)
		pub := readPublished(filepath.Join(*dir, "publisher.json"))
		probes, err := readProbes(filepath.Join(*dir, "probes.jsonl"))
		if err != nil {
			return nil, err
		}
		killNs := readNs(filepath.Join(*dir, "kill"))
		if killNs == 0 {
			killNs = t.KillNs
		}
		moments := clusterMoments{kill: killNs, restart: readNs(filepath.Join(*dir, "restart")), ready: readNs(filepath.Join(*dir, "restart-ready")),
			recovered: readNs(filepath.Join(*dir, "recovered")), timedOut: readNs(filepath.Join(*dir, "recover-timeout"))}
		return renderCluster(t, pub, probes, moments, *hardMax, *fdLimit, *restartDelay, *serverCPU, *clientCPU), nil
	}
}

func readProbes(path string) (map[string]clusterProbe, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	out := map[string]clusterProbe{}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var p clusterProbe
		if err := json.Unmarshal([]byte(line), &p); err != nil {
			return nil, fmt.Errorf("report: %s: %w", path, err)
		}
		out[p.Label] = p
	}
	return out, nil
}

func pod(p clusterProbe, name string) podProbe {
	for _, x := range p.Pods {
		if x.Name == name {
			return x
		}
	}
	return podProbe{Name: name}
}

// clusterMoments are the script's times (unix ns): the kill, the killed
// pod's restart, when it was ready again, and when every client was back
// (or the script stopped waiting for it).
type clusterMoments struct{ kill, restart, ready, recovered, timedOut int64 }

// renderCluster prints the run as BENCHMARKS.md's tables: the summary
// (figure | value), then per pod, NATS and cores, delivery latency by
// phase and cohort, and the reconnects per second of the wave.
func renderCluster(t *clusterTotals, pub *clusterPublishResult, probes map[string]clusterProbe, at clusterMoments,
	hardMax, fdLimit int, restartDelay time.Duration, serverCPU, clientCPU int) *report {
	killNs := at.kill
	f1 := func(v float64) string { return trimFloat(v) }
	ms := func(us float64) string { return trimFloat(us / 1e3) }
	last := 0.0
	if len(t.BackMs) > 0 {
		last = t.BackMs[len(t.BackMs)-1]
	}
	mean, peak, series := waveRate(t.ConnectsPerSec, killNs, last)
	// From the restart on, the wave has somewhere to land.
	fromRestart := 0.0
	if at.restart > killNs && killNs > 0 {
		fromRestart, _, _ = waveRate(t.ConnectsPerSec, at.restart, last-float64(at.restart-killNs)/1e6)
	}
	rep := &report{
		Params:  map[string]any{"shards": t.Shards, "conns": t.Conns},
		Columns: []string{"figure", "value"},
	}
	row := func(k string, v any) { rep.Rows = append(rep.Rows, []any{k, v}) }
	before := probes["before-kill"]
	pods := make([]string, 0, len(before.Pods))
	for _, p := range before.Pods {
		pods = append(pods, p.Name)
	}
	row("clients (load-generator processes)", fmt.Sprintf("%d (%d)", t.Conns, t.Shards))
	row("pods; hard cap each (open-files limit)", fmt.Sprintf("%d; %d (%d)", len(pods), hardMax, fdLimit))
	conns := make([]string, 0, len(pods))
	for _, n := range pods {
		conns = append(conns, fmt.Sprintf("%s %.0f", n, pod(before, n).Connections))
	}
	row("connections before the kill", strings.Join(conns, ", "))
	row("first connect: p50 / p99 (all clients up after)", fmt.Sprintf("%s / %s ms (%d never connected, %d first attempts failed)",
		ms(t.InitialConnect.quantile(50)), ms(t.InitialConnect.quantile(99)), t.NotConnected, t.InitialFailures))
	row("clients disconnected by the kill", t.ByKill)
	row("restart delay of the killed pod (restarted; ready)", fmt.Sprintf("%v (%s s; %s s after the kill)", restartDelay, secsSince(at.restart, killNs), secsSince(at.ready, killNs)))
	if at.timedOut != 0 {
		row("**every client back?**", fmt.Sprintf("**no**: the script stopped waiting %s s after the kill (the \"after recovery\" phase below starts there)", secsSince(at.timedOut, killNs)))
	}
	row("**time until every client is back** (from the kill)", fmt.Sprintf("**%s s** (%d of %d back, %d not back by the end)", f1(last/1e3), len(t.BackMs), t.ByKill, t.NotBack))
	row("back: p50 / p90 / p99 from the kill", fmt.Sprintf("%s / %s / %s s", f1(percentile(t.BackMs, 50)/1e3), f1(percentile(t.BackMs, 90)/1e3), f1(percentile(t.BackMs, 99)/1e3)))
	row("reconnects/s during the wave: mean from the kill / from the restart (→ last back) / busiest second", fmt.Sprintf("%s / %s / %d", f1(mean), f1(fromRestart), peak))
	row("landed on", fmtCounts(t.LandedOn))
	row("attempts until back (failed before success): p50 / max", attemptsSummary(t.AttemptsToBack))
	row("refusals seen (attempts)", fmtCounts(t.Refusals))
	row("failures (anything else)", fmt.Sprintf("%d %s", sumMap(t.Failures), fmtCounts(t.Failures)))
	row("resumed: ready (user cursor) / subscribed (channel cursor)", fmt.Sprintf("%s / %s", fmtCounts(t.ReadyResumed), fmtCounts(t.SubResumed)))
	row("resumed:false with a cursor younger than the continuity window − 5 s: ready / subscribed", fmt.Sprintf("%d / %d", t.ReadyNotResumedInWindow, t.NotResumedInWindow))
	row("disconnects other than the kill", fmtCounts(t.OtherDrops))
	for _, k := range []string{phaseName(0) + " | " + cohortUndisturbed, phaseName(1) + " | " + cohortUndisturbed, phaseName(2) + " | " + cohortUndisturbed} {
		h := t.Latency[k]
		row("delivery p50 / p99 / max: "+k, fmt.Sprintf("%s / %s / %s ms (%d)", ms(h.quantile(50)), ms(h.quantile(99)), ms(maxUs(h)), count(h)))
	}
	if pub != nil {
		row("published (rate; failed publishes)", fmt.Sprintf("%d (%s ev/s; %d); ack p99 %s ms", pub.Published, f1(pub.Rate), len(pub.Failed), f1(pub.AckP99Ms)))
	}
	if t.PublishedKnown {
		row("events: expected / received / duplicates / out of order", fmt.Sprintf("%d / %d / %d / %d", t.Expected, t.Received, t.Duplicates, t.OutOfOrder))
		row("**events lost by clients that are back and resumed** (must be 0)", fmt.Sprintf("**%d**", t.Lost-t.LostAway-t.LostNotResumed))
		row("not received: by clients still away at the end / by clients back with resumed:false", fmt.Sprintf("%d / %d", t.LostAway, t.LostNotResumed))
	} else {
		row("events received / duplicates / out of order (lost: publisher's count unknown)", fmt.Sprintf("%d / %d / %d", t.Received, t.Duplicates, t.OutOfOrder))
	}

	// Per pod: connections, RSS, RSS per connection (growth over the pod's
	// fresh RSS), descriptors, CPU.
	base, connected, recovered, end := probes["base"], probes["connected"], probes["recovered"], probes["end"]
	dt := func(a, b clusterProbe) float64 { return float64(b.AtNs-a.AtNs) / 1e9 }
	var lines []string
	lines = append(lines, "", "| pod | connections before kill / after recovery / end | RSS MiB before / after | RSS per connection KiB before / after | descriptors before / after | CPU % steady / wave / after |",
		"|---|---|---|---|---|---|")
	for _, n := range pods {
		b0, bk, rc, en := pod(base, n), pod(before, n), pod(recovered, n), pod(end, n)
		perConn := func(p podProbe) string {
			if p.Connections <= 0 || !p.Alive {
				return "-"
			}
			return f1(float64(p.RSS-b0.RSS) / p.Connections / 1024)
		}
		restarted := ""
		if rc.Pid != bk.Pid {
			restarted = " (restarted)"
		}
		lines = append(lines, fmt.Sprintf("| %s%s | %.0f / %.0f / %.0f | %s / %s | %s / %s | %d / %d | %s / %s / %s |", n, restarted,
			bk.Connections, rc.Connections, en.Connections, f1(mib(bk.RSS)), f1(mib(rc.RSS)), perConn(bk), perConn(rc), bk.FDs, rc.FDs,
			f1(cpuPercent(connected.podOr(n), bk.procProbe, dt(connected, before))), f1(cpuPercent(bk.procProbe, rc.procProbe, dt(before, recovered))),
			f1(cpuPercent(rc.procProbe, en.procProbe, dt(recovered, end)))))
	}
	lines = append(lines, "", "| server side | steady (before the kill) | wave (kill → every client back) | after recovery |", "|---|---|---|---|")
	lines = append(lines, fmt.Sprintf("| window s | %s | %s | %s |", f1(dt(connected, before)), f1(dt(before, recovered)), f1(dt(recovered, end))))
	lines = append(lines, fmt.Sprintf("| nats-server CPU %% | %s | %s | %s |", f1(cpuPercent(connected.NATS.procProbe, before.NATS.procProbe, dt(connected, before))),
		f1(cpuPercent(before.NATS.procProbe, recovered.NATS.procProbe, dt(before, recovered))), f1(cpuPercent(recovered.NATS.procProbe, end.NATS.procProbe, dt(recovered, end)))))
	lines = append(lines, fmt.Sprintf("| ticketsvc CPU %% | %s | %s | %s |", f1(cpuPercent(connected.Ticketsvc, before.Ticketsvc, dt(connected, before))),
		f1(cpuPercent(before.Ticketsvc, recovered.Ticketsvc, dt(before, recovered))), f1(cpuPercent(recovered.Ticketsvc, end.Ticketsvc, dt(recovered, end)))))
	lines = append(lines, fmt.Sprintf("| server core (CPU %d) busy %% | %s | %s | %s |", serverCPU, f1(coreBusy(connected, before, serverCPU)), f1(coreBusy(before, recovered, serverCPU)), f1(coreBusy(recovered, end, serverCPU))))
	lines = append(lines, fmt.Sprintf("| load-generator core (CPU %d) busy %% | %s | %s | %s |", clientCPU, f1(coreBusy(connected, before, clientCPU)), f1(coreBusy(before, recovered, clientCPU)), f1(coreBusy(recovered, end, clientCPU))))
	lines = append(lines, fmt.Sprintf("| NATS subscriptions (/varz, /subsz) at the window's end | %.0f, %.0f | %.0f, %.0f | %.0f, %.0f |",
		before.NATS.Subscriptions, before.NATS.NumSubscriptions, recovered.NATS.Subscriptions, recovered.NATS.NumSubscriptions, end.NATS.Subscriptions, end.NATS.NumSubscriptions))
	if down, ok := probes["down"]; ok {
		var cs []string
		for _, n := range pods {
			if p := pod(down, n); p.Alive {
				cs = append(cs, fmt.Sprintf("%s %.0f (%d descriptors)", n, p.Connections, p.FDs))
			}
		}
		lines = append(lines, fmt.Sprintf("| killed pod down (just before its restart): connections; NATS subscriptions | | %s; %.0f | |", strings.Join(cs, ", "), down.NATS.Subscriptions))
	}
	lines = append(lines, fmt.Sprintf("| NATS connections; RSS MiB at the window's end | %.0f; %s | %.0f; %s | %.0f; %s |",
		before.NATS.Connections, f1(mib(before.NATS.RSS)), recovered.NATS.Connections, f1(mib(recovered.NATS.RSS)), end.NATS.Connections, f1(mib(end.NATS.RSS))))

	// Delivery latency by phase and cohort.
	lines = append(lines, "", "| events published … | received by | deliveries | p50 ms | p99 ms | max ms |", "|---|---|---|---|---|---|")
	keys := make([]string, 0, len(t.Latency))
	for k := range t.Latency {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int { return latencyKeyOrder(a) - latencyKeyOrder(b) })
	for _, k := range keys {
		h := t.Latency[k]
		ph, co, _ := strings.Cut(k, " | ")
		lines = append(lines, fmt.Sprintf("| %s | %s | %d | %s | %s | %s |", ph, co, h.N, ms(h.quantile(50)), ms(h.quantile(99)), ms(h.MaxUs)))
	}
	if len(series) > 0 {
		lines = append(lines, "", "reconnects per second from the kill's second: "+joinInts(series))
	}
	for _, n := range pods {
		p := pod(end, n)
		if len(p.Connects) > 0 {
			lines = append(lines, fmt.Sprintf("%s (the process at the end) connects by result: %s", n, fmtFloatCounts(p.Connects)))
		}
		if len(p.Series) > 0 {
			lines = append(lines, fmt.Sprintf("%s continuity and closes: %s", n, fmtFloatCounts(p.Series)))
		}
	}
	rep.Notes = lines
	return rep
}

// podOr is the probe's pod of that name (its process figures).
func (p clusterProbe) podOr(name string) procProbe { return pod(p, name).procProbe }

func latencyKeyOrder(k string) int {
	ph, co, _ := strings.Cut(k, " | ")
	o := 100
	for i, p := range clusterPhases {
		if p == ph {
			o = i * 10
		}
	}
	for i, c := range []string{cohortUndisturbed, cohortLive, cohortReplayed} {
		if c == co {
			return o + i
		}
	}
	return o + 9
}

func secsSince(ns, from int64) string {
	if ns == 0 || from == 0 {
		return "?"
	}
	return trimFloat(float64(ns-from) / 1e9)
}

func maxUs(h *latencyHist) float64 {
	if h == nil {
		return 0
	}
	return h.MaxUs
}

func count(h *latencyHist) int64 {
	if h == nil {
		return 0
	}
	return h.N
}

func attemptsSummary(m map[int]int) string {
	var all []float64
	for k, n := range m {
		for range n {
			all = append(all, float64(k))
		}
	}
	sortFloats(all)
	return fmt.Sprintf("%.0f / %.0f", percentile(all, 50), percentile(all, 100))
}

func fmtCounts[K comparable, V int | int64](m map[K]V) string {
	if len(m) == 0 {
		return "none"
	}
	parts := make([]string, 0, len(m))
	for k, v := range m {
		parts = append(parts, fmt.Sprintf("%v: %d", k, v))
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}

// fmtFloatCounts lists the non-zero counts, names shortened.
func fmtFloatCounts(m map[string]float64) string {
	parts := make([]string, 0, len(m))
	for k, v := range m {
		if v != 0 {
			parts = append(parts, fmt.Sprintf("%s %.0f", strings.TrimPrefix(k, "ocvr_gateway_"), v))
		}
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}

func joinInts(v []int64) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.FormatInt(x, 10)
	}
	return strings.Join(s, " ")
}
