package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/bits"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The cluster workload (scripts/bench-cluster.sh): several gateways on one
// machine, one of them killed with SIGKILL while tens of thousands of
// clients are connected and events flow. One process is one shard of
// clients (--role client) or the steady publisher (--role publish); each
// writes its JSON (--out) when it is stopped (SIGTERM) or after
// --max-duration, and cluster-report merges them with the server-side
// probes (cluster-probe).
//
// A client behaves as the SDKs do (pkg/client Session, pkg/js OcvrClient):
// a new ticket from ticketsvc for every attempt, the gateway URLs tried in
// a rotating order, exponential backoff with full jitter between attempts
// (never shorter than a Retry-After or a 1013's retry_after hint), and a
// resume with its token and cursors after a lost connection. A gateway's
// own refusal (1013, HTTP 429/503) holds only that gateway for the hint:
// the next one not held is tried at once, and the client waits only when
// every one is held.

// clusterChannel is channel c of the workload; the publisher sends event n
// to channel n mod channels.
func clusterChannel(c int) string { return "bench_cluster_" + strconv.Itoa(c) }

func clusterWorkload(ctx context.Context, e *env, fs *flag.FlagSet) func() (*report, error) {
	role := fs.String("role", "client", "client: one shard of clients; publish: the steady publisher")
	conns := fs.Int("conns", 1000, "clients of this shard (client role)")
	shard := fs.Int("shard", 0, "this shard's index: its clients are shard×conns … shard×conns+conns-1 (users, channels, first gateway)")
	gateways := fs.String("gateways", "ws://127.0.0.1:8081/v1/ws", "gateway socket URLs, comma-separated; client i starts at URL i mod n, then rotates on every attempt, skipping those whose pod refused within its hint")
	channels := fs.Int("channels", 100, "channels; client i subscribes to channel i mod C, event n goes to channel n mod C")
	inflight := fs.Int("inflight", 100, "first connects in flight (reconnects are not throttled: that is the storm)")
	backoffBase := fs.Duration("backoff-base", 250*time.Millisecond, "reconnect backoff base: retry n waits a uniform draw in [0, min(max, base·2^n)], or hint + a draw in [0, hint] after a Retry-After or a 1013 retry_after (the Go SDK's default)")
	backoffMax := fs.Duration("backoff-max", 30*time.Second, "reconnect backoff ceiling (the SDKs' default)")
	resume := fs.Bool("resume", true, "reconnect with the resume token and cursors, as the SDKs do")
	window := fs.Duration("window", 2*time.Minute, "the gateways' --continuity-window: a resume after a longer absence may say resumed:false")
	heartbeat := fs.Duration("heartbeat", 25*time.Second, "each client heartbeats this often (spread over the interval)")
	maxDur := fs.Duration("max-duration", 5*time.Minute, "stop by itself after this long, if not stopped before (SIGTERM)")
	killGateway := fs.Int("kill-gateway", 0, "the gateway (1-based, in --gateways) the script kills; 0: the last")
	srcFirst := fs.Int("src-first", -1, "first source address index of this shard (default shard × --src-addrs: each shard its own 127.0.x.y range)")
	statusFile := fs.String("status-file", "", "rewrite `file` every 500 ms with `up=N down=N disconnected=N back=N` (the script waits on it)")
	killFile := fs.String("kill-file", "", "read at the end: the kill's unix time in ns (written by the script)")
	publishedFile := fs.String("published-file", "", "read at the end: the publisher's JSON, to count lost events")
	phaseFile := fs.String("phase-file", "", "publish role: poll `file` for the phase (0 before the kill, 1 during the wave, 2 after) carried in each event's id")
	rate := fs.Int("rate", 20, "publish role: events/s, spread round-robin over the channels")
	publishers := fs.Int("publishers", 16, "publish role: stream publishes awaiting their acknowledgement at once")
	size := fs.Int("size", 250, "publish role: approximate frame size in bytes")
	out := fs.String("out", "", "write this process's JSON to `file`")
	return func() (*report, error) {
		if *channels <= 0 {
			return nil, errors.New("--channels must be positive")
		}
		runCtx, cancel := context.WithTimeout(ctx, *maxDur)
		defer cancel()
		for c := 0; c < *channels; c++ {
			if err := e.dir.CreateChannel(ctx, clusterChannel(c)); err != nil {
				return nil, err
			}
		}
		switch *role {
		case "publish":
			p := &clusterPublisher{e: e, channels: *channels, rate: *rate, workers: *publishers, pad: strings.Repeat("x", max(0, *size-200)), phaseFile: *phaseFile}
			res, err := p.run(runCtx)
			if err != nil {
				return nil, err
			}
			if err := writeJSON(*out, res); err != nil {
				return nil, err
			}
			return &report{
				Params:  map[string]any{"role": "publish", "rate": *rate, "channels": *channels},
				Columns: []string{"published", "failed", "ev/s", "ack p50 ms", "ack p99 ms", "by phase"},
				Rows:    [][]any{{res.Published, len(res.Failed), res.Rate, res.AckP50Ms, res.AckP99Ms, fmt.Sprint(res.ByPhase)}},
			}, nil
		case "client":
		default:
			return nil, fmt.Errorf("--role: %q is neither client nor publish", *role)
		}
		urls := splitList(*gateways)
		if len(urls) == 0 || *conns <= 0 {
			return nil, errors.New("--gateways and --conns must not be empty")
		}
		kill := *killGateway - 1
		if *killGateway <= 0 || *killGateway > len(urls) {
			kill = len(urls) - 1
		}
		first := *srcFirst
		if first < 0 {
			first = *shard * e.srcAddrs
		}
		s := &clusterShard{
			conns: *conns, shard: *shard, gateways: urls, channels: *channels, killGateway: kill,
			ticketURL: e.ticketURL, base: *backoffBase, max: *backoffMax, resume: *resume, window: *window,
			srcFirst: first, srcCount: max(e.srcAddrs, 1),
			hc:       &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1000, MaxConnsPerHost: 1000, IdleConnTimeout: 90 * time.Second}, Timeout: 15 * time.Second},
			refusals: map[string]int64{}, failures: map[string]int64{}, perSec: map[int64]int64{}, lat: map[string]*latencyHist{},
		}
		e.userBase += int64(*shard) * int64(*conns)
		base := *shard * *conns
		users, err := e.makeUsers(ctx, *conns, func(i int) string { return clusterChannel((base + i) % *channels) })
		if err != nil {
			return nil, err
		}
		s.clients = make([]*clusterClient, *conns)
		for i := range s.clients {
			g := base + i
			s.clients[i] = &clusterClient{s: s, u: users[i], c: g % *channels, ch: clusterChannel(g % *channels), turn: g % len(urls), maxK: -1}
		}
		fmt.Fprintf(os.Stderr, "cluster shard %d: %d clients over %d gateways\n", *shard, *conns, len(urls))
		s.run(runCtx, *inflight, *heartbeat, *statusFile)
		res := s.result(readNs(*killFile), readPublished(*publishedFile))
		if err := writeJSON(*out, res); err != nil {
			return nil, err
		}
		return &report{
			Params: map[string]any{"role": "client", "shard": *shard, "conns": *conns},
			Columns: []string{"clients", "connected at first", "disconnected by the kill", "back", "last back s after the kill",
				"refusals", "failures", "lost", "duplicates"},
			Rows: [][]any{{*conns, *conns - res.NotConnected, res.ByKill, len(res.BackAfterKillMs), maxOf(res.BackAfterKillMs) / 1e3,
				fmt.Sprint(res.Refusals), sumMap(res.Failures), res.Lost, res.Duplicates}},
		}, nil
	}
}

// clusterShard is one process's clients and what they saw.
type clusterShard struct {
	conns, shard, channels, killGateway int
	gateways                            []string
	ticketURL                           string
	base, max                           time.Duration
	resume                              bool
	window                              time.Duration
	srcFirst, srcCount                  int
	hc                                  *http.Client
	clients                             []*clusterClient

	nextSrc                atomic.Uint64
	ending                 atomic.Bool
	up, down, disc, backed atomic.Int64
	firstUpNs              atomic.Int64 // when every client had connected once

	mu       sync.Mutex
	refusals map[string]int64        // refusal kind → attempts
	failures map[string]int64        // failure text → attempts (at most 20 texts)
	perSec   map[int64]int64         // unix second → successful connects
	lat      map[string]*latencyHist // phase/cohort[/replayed] → delivery latency
}

// srcAddr spreads this shard's sockets over its own 127.0.x.y addresses
// (env.srcAddr's layout, offset by --src-first).
func (s *clusterShard) srcAddr() net.Addr {
	i := s.srcFirst + int(s.nextSrc.Add(1)%uint64(s.srcCount))
	return &net.TCPAddr{IP: net.IPv4(127, 0, byte(2+i/253), byte(2+i%253))}
}

func (s *clusterShard) noteRefusal(kind string) {
	s.mu.Lock()
	s.refusals[kind]++
	s.mu.Unlock()
}

var addrPattern = regexp.MustCompile(`\d+\.\d+\.\d+\.\d+:\d+`)

func (s *clusterShard) noteFailure(err error) {
	text := err.Error()
	if len(text) > 160 {
		text = text[:160]
	}
	text = addrPattern.ReplaceAllString(text, "…") // one entry per kind, not per socket
	s.mu.Lock()
	if _, ok := s.failures[text]; ok || len(s.failures) < 20 {
		s.failures[text]++
	} else {
		s.failures["(other texts)"]++
	}
	s.mu.Unlock()
}

func (s *clusterShard) noteConnect(at time.Time) {
	s.mu.Lock()
	s.perSec[at.Unix()]++
	s.mu.Unlock()
}

func (s *clusterShard) noteLatency(key string, us float64) {
	s.mu.Lock()
	h := s.lat[key]
	if h == nil {
		h = newLatencyHist()
		s.lat[key] = h
	}
	h.add(us)
	s.mu.Unlock()
}

// run starts every client, the heartbeats and the status file, and returns
// when ctx ends, after every goroutine it started has exited.
func (s *clusterShard) run(ctx context.Context, inflight int, heartbeat time.Duration, statusFile string) {
	start := time.Now()
	var wg sync.WaitGroup
	sem := make(chan struct{}, max(inflight, 1))
	for _, c := range s.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.run(ctx, sem)
		}()
	}
	var aux sync.WaitGroup
	aux.Add(2)
	go func() {
		defer aux.Done()
		s.heartbeats(ctx, heartbeat)
	}()
	go func() {
		defer aux.Done()
		s.writeStatus(ctx, statusFile, start)
	}()
	<-ctx.Done()
	// Ending: a client that connects after this sweep sees ending and
	// closes its own socket (clusterClient.run).
	s.ending.Store(true)
	for _, c := range s.clients {
		if conn := c.conn.Load(); conn != nil {
			conn.closeNow()
		}
	}
	wg.Wait()
	aux.Wait()
}

// heartbeats sends a heartbeat on every open socket every interval, spread
// over it, as clients do (the gateway closes a silent socket after 75 s).
func (s *clusterShard) heartbeats(ctx context.Context, every time.Duration) {
	hb := []byte(`{"type":"heartbeat"}`)
	gap := max(every/time.Duration(max(len(s.clients), 1)), time.Millisecond)
	t := time.NewTicker(gap)
	defer t.Stop()
	for i := 0; ; i = (i + 1) % len(s.clients) {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if conn := s.clients[i].conn.Load(); conn != nil {
			_ = conn.writeText(hb)
		}
	}
}

// writeStatus rewrites the status file every 500 ms (renamed into place,
// so the script never reads half a line) and notes when every client was
// first up.
func (s *clusterShard) writeStatus(ctx context.Context, path string, start time.Time) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	logged := false
	for {
		up := s.up.Load()
		if up == int64(s.conns) && s.firstUpNs.Load() == 0 {
			s.firstUpNs.Store(time.Now().UnixNano())
		}
		if !logged && s.firstUpNs.Load() != 0 {
			logged = true
			fmt.Fprintf(os.Stderr, "cluster shard %d: %d clients connected in %v\n", s.shard, s.conns, time.Since(start).Round(time.Millisecond))
		}
		if path != "" {
			line := fmt.Sprintf("up=%d down=%d disconnected=%d back=%d\n", up, s.down.Load(), s.disc.Load(), s.backed.Load())
			if err := os.WriteFile(path+".tmp", []byte(line), 0o644); err == nil {
				_ = os.Rename(path+".tmp", path)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// clusterShardResult is a shard's JSON.
type clusterShardResult struct {
	Role            string                  `json:"role"`
	Shard           int                     `json:"shard"`
	Conns           int                     `json:"conns"`
	Gateways        []string                `json:"gateways"`
	Channels        int                     `json:"channels"`
	KillGateway     int                     `json:"kill_gateway"` // 1-based
	BackoffBase     string                  `json:"backoff_base"`
	BackoffMax      string                  `json:"backoff_max"`
	Resume          bool                    `json:"resume"`
	FirstUpNs       int64                   `json:"first_up_ns"`
	KillNs          int64                   `json:"kill_ns"`
	InitialConnect  *latencyHist            `json:"initial_connect_us"`
	InitialFailures int                     `json:"initial_failures"`
	NotConnected    int                     `json:"not_connected"`
	GaveUp          int                     `json:"gave_up"`
	Disconnected    int                     `json:"disconnected"`
	ByKill          int                     `json:"by_kill"`
	OtherDrops      map[string]int          `json:"other_disconnects"` // "gwN code" → count, not the kill
	BackAfterKillMs []float64               `json:"back_after_kill_ms"`
	NotBack         int                     `json:"not_back"`
	AttemptsToBack  map[int]int             `json:"attempts_to_back"`
	LandedOn        map[string]int          `json:"landed_on"`
	ReadyResumed    map[string]int          `json:"ready_resumed"`
	SubResumed      map[string]int          `json:"subscribed_resumed"`
	Refusals        map[string]int64        `json:"refusals"`
	Failures        map[string]int64        `json:"failures"`
	ConnectsPerSec  map[int64]int64         `json:"connects_per_sec"`
	Latency         map[string]*latencyHist `json:"latency_us"`
	Received        int64                   `json:"received"`
	Duplicates      int64                   `json:"duplicates"`
	OutOfOrder      int64                   `json:"out_of_order"`
	Foreign         int64                   `json:"foreign"`
	PublishedKnown  bool                    `json:"published_known"`
	Expected        int64                   `json:"expected"`
	Lost            int64                   `json:"lost"`
	// Lost split by the client's state: still away at the end (the events
	// are not lost, the client is not back to get them), back after a
	// resume that said resumed:false, the rest (back, every resume true:
	// these must be 0).
	LostAway       int64 `json:"lost_by_clients_away"`
	LostNotResumed int64 `json:"lost_by_clients_not_resumed"`
	// Resumes that said false although the cursor sent was younger than
	// the continuity window (--window, less 5 s for the stream's expiry
	// granularity): not the window's doing. User scope (ready), channel
	// scope (subscribed).
	ReadyNotResumedInWindow int `json:"ready_not_resumed_within_window"`
	NotResumedInWindow      int `json:"not_resumed_within_window"`
}

// result summarises the clients (after their goroutines exited). killNs
// is the kill's time (0: unknown); pub the publisher's JSON (nil: unknown).
func (s *clusterShard) result(killNs int64, pub *clusterPublishResult) *clusterShardResult {
	r := &clusterShardResult{
		Role: "client", Shard: s.shard, Conns: s.conns, Gateways: s.gateways, Channels: s.channels, KillGateway: s.killGateway + 1,
		BackoffBase: s.base.String(), BackoffMax: s.max.String(), Resume: s.resume,
		FirstUpNs: s.firstUpNs.Load(), KillNs: killNs, InitialConnect: newLatencyHist(),
		OtherDrops: map[string]int{}, AttemptsToBack: map[int]int{}, LandedOn: map[string]int{},
		ReadyResumed: map[string]int{}, SubResumed: map[string]int{},
		Refusals: s.refusals, Failures: s.failures, ConnectsPerSec: s.perSec, Latency: s.lat,
	}
	var failed map[int64]bool
	if pub != nil {
		r.PublishedKnown = true
		failed = make(map[int64]bool, len(pub.Failed))
		for _, n := range pub.Failed {
			failed[n] = true
		}
	}
	for _, c := range s.clients {
		if c.gaveUp {
			r.GaveUp++
		}
		if c.initialUs == 0 {
			r.NotConnected++
		} else {
			r.InitialConnect.add(c.initialUs)
		}
		r.InitialFailures += c.initialFailures
		r.Duplicates += c.dups
		r.OutOfOrder += c.disorder
		r.Foreign += c.foreign
		if len(c.disconnects) > 0 {
			r.Disconnected++
		}
		// The kill's disconnects: from the killed gateway, at or after the
		// kill (a little slack for the clock read after kill -9).
		var killedAt int64
		for _, d := range c.disconnects {
			if killNs > 0 && d.Gateway == s.killGateway && d.AtNs >= killNs-int64(time.Second) && killedAt == 0 {
				killedAt = d.AtNs
				continue
			}
			r.OtherDrops[fmt.Sprintf("gw%d %s", d.Gateway+1, d.Code)]++
		}
		resumedAll := true
		for _, b := range c.backs {
			r.ReadyResumed[b.ReadyResumed]++
			r.SubResumed[b.SubResumed]++
			young := func(ageMs float64) bool { return time.Duration(ageMs*1e6) < s.window-5*time.Second }
			if b.ReadyResumed == "false" && young(b.UserCursorAgeMs) {
				r.ReadyNotResumedInWindow++
			}
			if b.SubResumed != "true" {
				resumedAll = false
				if b.SubResumed == "false" && young(b.ChanCursorAgeMs) {
					r.NotResumedInWindow++
				}
			}
		}
		away := len(c.disconnects) > len(c.backs)
		if killedAt != 0 {
			r.ByKill++
			back := false
			for _, b := range c.backs {
				if b.AtNs >= killedAt {
					r.BackAfterKillMs = append(r.BackAfterKillMs, float64(b.AtNs-killNs)/1e6)
					r.AttemptsToBack[b.Attempts]++
					r.LandedOn[fmt.Sprintf("gw%d", b.Gateway+1)]++
					back = true
					break
				}
			}
			if !back {
				r.NotBack++
			}
		}
		for _, w := range c.got.w {
			r.Received += int64(bits.OnesCount64(w))
		}
		if pub != nil {
			want := channelEvents(pub.Published, s.channels, c.c)
			for k := int64(0); k < want; k++ {
				if failed[k*int64(s.channels)+int64(c.c)] {
					continue
				}
				r.Expected++
				if !c.got.has(k) {
					r.Lost++
					switch {
					case away:
						r.LostAway++
					case !resumedAll:
						r.LostNotResumed++
					}
				}
			}
		}
	}
	return r
}

// delay waits d; false when ctx ended first.
func delay(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func resumedString(b *bool) string {
	if b == nil {
		return "absent"
	}
	return strconv.FormatBool(*b)
}

func hasPrefix(f []byte, p string) bool { return len(f) >= len(p) && string(f[:len(p)]) == p }

func splitList(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

// readNs reads a unix time in ns written by the script (0: none).
func readNs(path string) int64 {
	if path == "" {
		return 0
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	v, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return v
}

func readPublished(path string) *clusterPublishResult {
	if path == "" {
		return nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var p clusterPublishResult
	if json.Unmarshal(b, &p) != nil {
		return nil
	}
	return &p
}

func writeJSON(path string, v any) error {
	if path == "" {
		return nil
	}
	b, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", filepath.Base(path), err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func maxOf(v []float64) float64 {
	m := 0.0
	for _, x := range v {
		m = max(m, x)
	}
	return m
}

func sumMap[K comparable](m map[K]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}
