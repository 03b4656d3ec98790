package main

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

func TestLatencyHistQuantileWithinBucket(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var all []float64
	a, b := newLatencyHist(), newLatencyHist()
	for i := 0; i < 20000; i++ {
		v := math.Exp(r.NormFloat64()*1.5 + 9) // µs: a long tail around 8 ms
		all = append(all, v)
		if i%2 == 0 {
			a.add(v)
		} else {
			b.add(v)
		}
	}
	// Shards merge exactly: two halves merged are the whole.
	whole := newLatencyHist()
	for _, v := range all {
		whole.add(v)
	}
	a.merge(b)
	if a.N != whole.N || a.MaxUs != whole.MaxUs || len(a.Buckets) != len(whole.Buckets) {
		t.Fatalf("merged %d samples, max %v; whole %d, max %v", a.N, a.MaxUs, whole.N, whole.MaxUs)
	}
	sortFloats(all)
	for _, p := range []float64{0, 1, 50, 90, 99, 99.9, 100} {
		exact, got := percentile(all, p), a.quantile(p)
		if got < exact || got > exact*histGrowth {
			t.Errorf("p%v: %v, exact %v: want within [exact, exact·%v]", p, got, exact, histGrowth)
		}
	}
	if q := newLatencyHist().quantile(99); q != 0 {
		t.Errorf("empty histogram: p99 %v, want 0", q)
	}
	small := newLatencyHist()
	small.add(0.4)
	small.add(-3) // clamped, never a negative bucket
	if small.quantile(100) != 0.4 || small.Buckets[0] != 2 {
		t.Errorf("sub-µs values: %+v", small)
	}
}

func TestRetryDelay(t *testing.T) {
	top := func(n time.Duration) time.Duration { return n - 1 } // the largest draw
	zero := func(time.Duration) time.Duration { return 0 }
	base, ceil := 250*time.Millisecond, 30*time.Second
	for _, c := range []struct {
		attempt   int
		hint      time.Duration
		rnd       func(time.Duration) time.Duration
		want      time.Duration
		situation string
	}{
		{0, 0, top, 250 * time.Millisecond, "first retry: at most base"},
		{3, 0, top, 2 * time.Second, "base·2^3"},
		{10, 0, top, 30 * time.Second, "capped at max"},
		{70, 0, top, 30 * time.Second, "no overflow"},
		{5, 0, zero, 0, "full jitter reaches 0"},
		{0, 2 * time.Second, zero, 2 * time.Second, "never before the hint"},
		{0, 2 * time.Second, top, 4 * time.Second, "hint + at most the hint"},
		{9, time.Hour, zero, time.Minute, "a hint is capped"},
	} {
		if got := retryDelay(c.attempt, base, ceil, c.hint, c.rnd); got != c.want {
			t.Errorf("%s: retryDelay(%d, hint %v) = %v, want %v", c.situation, c.attempt, c.hint, got, c.want)
		}
	}
}

// The SDKs' rotation past refusing pods: the first gateway from the turn
// on that is not held; when every one is, the one free first.
func TestPickGateway(t *testing.T) {
	const now = int64(1e12)
	held := func(d time.Duration) podHold { return podHold{until: now + int64(d), span: d} }
	for _, c := range []struct {
		situation string
		holds     []podHold
		turn, n   int
		want      int
	}{
		{"no refusal yet: round robin", nil, 4, 3, 1},
		{"none held", []podHold{{}, {}, {}}, 2, 3, 2},
		{"held one skipped", []podHold{{}, held(time.Second), {}}, 1, 3, 2},
		{"skip wraps", []podHold{{}, {}, held(time.Second)}, 2, 3, 0},
		{"a hold that ended is free", []podHold{{}, {until: now}, {}}, 1, 3, 1},
		{"all held: the one free first", []podHold{held(5 * time.Second), held(time.Second), held(3 * time.Second)}, 2, 3, 1},
	} {
		if got := pickGateway(c.holds, c.turn, c.n, now); got != c.want {
			t.Errorf("%s: pickGateway(turn %d) = %d, want %d", c.situation, c.turn, got, c.want)
		}
	}
}

// A refusal holds its gateway for the hint; the wait is the switch jitter
// while another is free, else until the earliest hold ends plus up to its
// length.
func TestHoldGateway(t *testing.T) {
	const now = int64(1e12)
	top := func(n time.Duration) time.Duration { return n - 1 } // the largest draw
	zero := func(time.Duration) time.Duration { return 0 }
	held := func(d time.Duration) podHold { return podHold{until: now + int64(d), span: d} }
	for _, c := range []struct {
		situation string
		holds     []podHold
		i         int
		hold      time.Duration
		rnd       func(time.Duration) time.Duration
		want      time.Duration
	}{
		{"another free: at once", []podHold{{}, {}, {}}, 0, 5 * time.Second, zero, 0},
		{"another free: at most the switch jitter", []podHold{{}, {}, {}}, 0, 5 * time.Second, top, gatewaySwitchJitter},
		{"all held: until the earliest", []podHold{{}, held(2 * time.Second), held(3 * time.Second)}, 0, 5 * time.Second, zero, 2 * time.Second},
		{"all held: plus up to its length", []podHold{{}, held(2 * time.Second), held(3 * time.Second)}, 0, 5 * time.Second, top, 4 * time.Second},
		{"the refused one is the earliest", []podHold{{}, held(4 * time.Second)}, 0, time.Second, top, 2 * time.Second},
		{"a hold is capped", []podHold{{}, held(2 * time.Minute)}, 0, time.Hour, zero, time.Minute},
	} {
		holds := append([]podHold(nil), c.holds...)
		if got := holdGateway(holds, c.i, now, c.hold, c.rnd); got != c.want {
			t.Errorf("%s: wait %v, want %v", c.situation, got, c.want)
		}
		if want := now + int64(min(c.hold, maxRetryHint)); holds[c.i].until != want {
			t.Errorf("%s: held until %d, want %d", c.situation, holds[c.i].until, want)
		}
	}
}

func TestRetryHint(t *testing.T) {
	for reason, want := range map[string]time.Duration{
		"pod at connection limit; retry_after=2": 2 * time.Second,
		"retry_after=0":                          0,
		"retry_after=100000000000000000000000":   time.Minute,
		"retry_after=2.5":                        2 * time.Second, // whole seconds, read as the SDKs read them
	} {
		if got, ok := retryHint(reason); !ok || got != want {
			t.Errorf("retryHint(%q) = %v, %v; want %v", reason, got, ok, want)
		}
	}
	for _, reason := range []string{"pod at connection limit", "", "retry_after=", "xretry_after=3", "retry_after=-1"} {
		if got, ok := retryHint(reason); ok {
			t.Errorf("retryHint(%q) = %v, want none", reason, got)
		}
	}
}

func TestRefusal1013(t *testing.T) {
	kind, hint := refusal1013("pod at connection limit; retry_after=5")
	if kind != `1013 "pod at connection limit; retry_after=5"` || hint != 5*time.Second {
		t.Errorf("hard cap: %s, %v", kind, hint)
	}
	kind, hint = refusal1013("pod at connection limit")
	if kind != `1013 "pod at connection limit" (no retry_after)` || hint != 0 {
		t.Errorf("no hint: %s, %v", kind, hint)
	}
}

func TestEventSetAndChannelEvents(t *testing.T) {
	var s eventSet
	for _, k := range []int64{0, 1, 63, 64, 200} {
		if !s.add(k) {
			t.Errorf("add(%d): not new", k)
		}
	}
	if s.add(64) || s.add(-1) {
		t.Error("a duplicate (or a negative number) was new")
	}
	if !s.has(200) || s.has(199) || s.has(5000) || s.has(-1) {
		t.Error("has is wrong")
	}
	// 10 events over 4 channels: 0..9 → channel 0 gets 0,4,8; 1 gets 1,5,9; 3 gets 3,7.
	for c, want := range []int64{3, 3, 2, 2} {
		if got := channelEvents(10, 4, c); got != want {
			t.Errorf("channelEvents(10, 4, %d) = %d, want %d", c, got, want)
		}
	}
	if channelEvents(2, 4, 3) != 0 || channelEvents(0, 4, 0) != 0 {
		t.Error("a channel no event reached")
	}
}

// A shard's record of a kill: the killed gateway's clients are counted,
// their first back after the kill timed from it, and the events a client
// did not get are told apart: still away, back without a resume, or lost.
func TestShardResult(t *testing.T) {
	kill := int64(1_000_000_000_000)
	s := &clusterShard{conns: 4, channels: 2, killGateway: 2, gateways: []string{"a", "b", "c"}, window: 2 * time.Minute,
		refusals: map[string]int64{}, failures: map[string]int64{}, perSec: map[int64]int64{}, lat: map[string]*latencyHist{}}
	undisturbed := &clusterClient{s: s, c: 0, initialUs: 1000}
	resumed := &clusterClient{s: s, c: 1, initialUs: 2000,
		disconnects: []clusterDisconnect{{AtNs: kill + 5e6, Gateway: 2, Code: "1006"}},
		backs:       []clusterBack{{AtNs: kill + 7_500e6, Gateway: 2, Attempts: 4, ReadyResumed: "true", SubResumed: "true"}}}
	// Dropped long before the kill (not the kill's), back a second later
	// without a resume.
	notResumed := &clusterClient{s: s, c: 0, initialUs: 3000,
		disconnects: []clusterDisconnect{{AtNs: kill - 60e9, Gateway: 0, Code: "4004"}},
		backs:       []clusterBack{{AtNs: kill - 59e9, Gateway: 1, SubResumed: "false", ChanCursorAgeMs: 1000}}}
	away := &clusterClient{s: s, c: 1, initialUs: 4000,
		disconnects: []clusterDisconnect{{AtNs: kill + 1e6, Gateway: 2, Code: "1006"}}}
	for k := int64(0); k < 5; k++ {
		undisturbed.got.add(k)
		resumed.got.add(k)
		if k != 2 {
			notResumed.got.add(k)
		}
		if k != 3 {
			away.got.add(k)
		}
	}
	s.clients = []*clusterClient{undisturbed, resumed, notResumed, away}
	r := s.result(kill, &clusterPublishResult{Published: 10, Failed: []int64{}})
	if r.ByKill != 2 || r.NotBack != 1 || len(r.BackAfterKillMs) != 1 || r.BackAfterKillMs[0] != 7500 {
		t.Errorf("by kill %d, not back %d, back %v; want 2, 1, [7500]", r.ByKill, r.NotBack, r.BackAfterKillMs)
	}
	if r.OtherDrops["gw1 4004"] != 1 || len(r.OtherDrops) != 1 {
		t.Errorf("other disconnects %v, want gw1 4004 once", r.OtherDrops)
	}
	if r.AttemptsToBack[4] != 1 || r.LandedOn["gw3"] != 1 || r.Disconnected != 3 {
		t.Errorf("attempts %v, landed %v, disconnected %d", r.AttemptsToBack, r.LandedOn, r.Disconnected)
	}
	// Each channel got 5 of the 10 events.
	if r.Expected != 20 || r.Received != 18 || r.Lost != 2 || r.LostAway != 1 || r.LostNotResumed != 1 {
		t.Errorf("expected %d received %d lost %d (away %d, not resumed %d); want 20 18 2 (1, 1)", r.Expected, r.Received, r.Lost, r.LostAway, r.LostNotResumed)
	}
	if r.SubResumed["true"] != 1 || r.SubResumed["false"] != 1 || r.NotResumedInWindow != 1 {
		t.Errorf("subscribed resumed %v, not resumed within the window %d", r.SubResumed, r.NotResumedInWindow)
	}
}

func TestMergeShardsAndWaveRate(t *testing.T) {
	kill := int64(100e9)
	h1, h2 := newLatencyHist(), newLatencyHist()
	h1.add(1000)
	h2.add(3000)
	a := &clusterShardResult{Conns: 10, ByKill: 3, BackAfterKillMs: []float64{900, 2500, 100}, KillNs: kill, PublishedKnown: true,
		Refusals: map[string]int64{"1013 x": 5}, ConnectsPerSec: map[int64]int64{99: 7, 100: 1, 101: 2},
		Latency: map[string]*latencyHist{"wave | " + cohortUndisturbed: h1}, Expected: 10, Received: 10, InitialConnect: newLatencyHist()}
	b := &clusterShardResult{Conns: 10, ByKill: 1, NotBack: 1, KillNs: kill, PublishedKnown: true,
		Refusals: map[string]int64{"1013 x": 1, refusedDown: 2}, ConnectsPerSec: map[int64]int64{101: 3, 105: 9},
		Latency: map[string]*latencyHist{"wave | " + cohortUndisturbed: h2}, Expected: 10, Received: 9, Lost: 1, InitialConnect: newLatencyHist()}
	tot := mergeShards([]*clusterShardResult{a, b})
	if tot.Conns != 20 || tot.ByKill != 4 || tot.NotBack != 1 || tot.Refusals["1013 x"] != 6 || tot.Refusals[refusedDown] != 2 {
		t.Errorf("totals %+v", tot)
	}
	if got := tot.BackMs; len(got) != 3 || got[0] != 100 || got[2] != 2500 {
		t.Errorf("back times %v, want sorted [100 900 2500]", got)
	}
	if l := tot.Latency["wave | "+cohortUndisturbed]; l.N != 2 || l.MaxUs != 3000 {
		t.Errorf("merged latency %+v", l)
	}
	if tot.Expected != 20 || tot.Lost != 1 || !tot.PublishedKnown {
		t.Errorf("events: expected %d lost %d known %v", tot.Expected, tot.Lost, tot.PublishedKnown)
	}
	// The wave: seconds 100..102 (the kill's second through the last back
	// at +2.5 s): 1+5+0 connects over 2.5 s; second 99 (before) and 105
	// (after) are not the wave's.
	mean, peak, series := waveRate(tot.ConnectsPerSec, kill, 2500)
	if mean != 6/2.5 || peak != 5 || len(series) != 3 {
		t.Errorf("wave: mean %v peak %d series %v; want 2.4, 5, [1 5 0]", mean, peak, series)
	}
	if m, _, _ := waveRate(nil, 0, 1000); m != 0 {
		t.Error("no kill, no wave")
	}
}

func TestParseMetrics(t *testing.T) {
	m := parseMetrics(strings.NewReader("# HELP x\n# TYPE x gauge\nocvr_gateway_connections 18667\n" +
		`ocvr_gateway_connects_total{result="over_capacity"} 1234` + "\ngo_goroutines 41\nbroken\n"))
	if m["ocvr_gateway_connections"] != 18667 || m[`ocvr_gateway_connects_total{result="over_capacity"}`] != 1234 || m["go_goroutines"] != 41 || len(m) != 3 {
		t.Errorf("parsed %v", m)
	}
}

func TestCPUPercent(t *testing.T) {
	a := procProbe{Pid: 7, Alive: true, CPUTicks: 100}
	if got := cpuPercent(a, procProbe{Pid: 7, Alive: true, CPUTicks: 150}, 2); got != 25 {
		t.Errorf("same process: %v%%, want 25", got)
	}
	// The restarted pod: a new process counts from its start.
	if got := cpuPercent(a, procProbe{Pid: 9, Alive: true, CPUTicks: 40}, 2); got != 20 {
		t.Errorf("restarted: %v%%, want 20", got)
	}
	if got := cpuPercent(a, procProbe{Pid: 7}, 2); got != 0 {
		t.Errorf("dead: %v%%, want 0", got)
	}
}

// The refusals a client must tell apart before any WebSocket exists: the
// gateway's HTTP 429/503 with Retry-After, and a pod that is down.
func TestWSDialRefusals(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("ticket") != "wst_x" {
			t.Errorf("query %q", r.URL.RawQuery)
		}
		w.Header().Set("Retry-After", "3")
		http.Error(w, "too many", http.StatusTooManyRequests)
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := wsDial(ctx, "ws://"+srv.Listener.Addr().String()+"/v1/ws", url.Values{"ticket": {"wst_x"}}, nil)
	var ur *upgradeRefused
	if !errors.As(err, &ur) || ur.Status != 429 || ur.RetryAfter != 3*time.Second {
		t.Fatalf("got %v, want a 429 refusal with Retry-After 3s", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	if _, err := wsDial(ctx, "ws://"+addr+"/v1/ws", url.Values{}, nil); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("a closed port: %v, want ECONNREFUSED", err)
	}
}

// A simulated client whose first gateway always refuses at its hard cap
// (1013, retry_after=5) connects to the second at once, as the SDKs now
// do, instead of waiting out the hint (5-10 s) first.
func TestClusterClientTriesAnotherGateway(t *testing.T) {
	tickets := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"data":{"ticket":"wst_x","expires_in":30}}`))
	}))
	defer tickets.Close()
	var refused, served atomic.Int32
	full := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		refused.Add(1)
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		_ = ws.Close(websocket.StatusTryAgainLater, "pod at connection limit; retry_after=5")
	}))
	defer full.Close()
	room := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		ctx := r.Context()
		_ = ws.Write(ctx, websocket.MessageText, []byte(`{"type":"ready","data":{"connection_id":"c","resume_token":"rt1_x","seq":0}}`))
		if _, _, err := ws.Read(ctx); err != nil { // subscribe
			return
		}
		_ = ws.Write(ctx, websocket.MessageText, []byte(`{"type":"subscribed","data":{"channel_id":"bench_cluster_0","seq":0}}`))
		_, _, _ = ws.Read(ctx) // until the client goes
	}))
	defer room.Close()

	s := &clusterShard{
		conns: 1, channels: 1, gateways: []string{"ws" + strings.TrimPrefix(full.URL, "http"), "ws" + strings.TrimPrefix(room.URL, "http")},
		ticketURL: tickets.URL, base: 20 * time.Millisecond, max: 200 * time.Millisecond, resume: true, window: time.Minute,
		srcCount: 1, hc: &http.Client{Timeout: 5 * time.Second},
		refusals: map[string]int64{}, failures: map[string]int64{}, perSec: map[int64]int64{}, lat: map[string]*latencyHist{},
	}
	c := &clusterClient{s: s, u: user{id: 1, token: "sess_x"}, ch: clusterChannel(0), maxK: -1}
	s.clients = []*clusterClient{c}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(done)
		c.run(ctx, make(chan struct{}, 1))
	}()
	for s.up.Load() == 0 {
		if time.Since(start) > 4*time.Second {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	took := time.Since(start)
	s.ending.Store(true)
	cancel()
	if conn := c.conn.Load(); conn != nil {
		conn.closeNow()
	}
	<-done
	if took > 2*time.Second {
		t.Errorf("connected after %v (or not), want well under the hint (5 s)", took)
	}
	if n, m := refused.Load(), served.Load(); n != 1 || m != 1 {
		t.Errorf("%d upgrades on the refusing gateway, %d on the other; want 1 and 1", n, m)
	}
	if n := s.refusals[`first connect: 1013 "pod at connection limit; retry_after=5"`]; n != 1 {
		t.Errorf("refusals %v, want one first-connect 1013", s.refusals)
	}
}
