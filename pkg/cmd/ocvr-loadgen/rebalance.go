package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// The rebalance workload (scripts/ci/extra-rebalance.sh): N SDK-like
// clients all connect to the first gateway; the script then starts the
// others; every pod must end within ±tolerance of the mean, with every
// client shed by the first pod (1012) back, resumed without loss, and no
// presence flap. After its first connection a client reconnects to a
// gateway drawn at random, as through a Kubernetes Service (the shedding
// pod included).

func rebalanceWorkload(ctx context.Context, e *env, fs *flag.FlagSet) func() (*report, error) {
	conns := fs.Int("conns", 3000, "clients, all first connected to the first gateway")
	gateways := fs.String("gateways", "", "gateway socket URLs, comma-separated; the first holds every client at the start")
	admins := fs.String("admins", "", "the gateways' admin base URLs, in the same order (/readyz, /metrics)")
	channels := fs.Int("channels", 50, "channels; client i subscribes to channel i mod C")
	inflight := fs.Int("inflight", 200, "first connects in flight")
	rate := fs.Int("rate", 20, "events/s published through the event stream while the load moves (lost events are counted)")
	tolerance := fs.Float64("tolerance", 0.15, "every pod must end within this fraction of the mean")
	joinTimeout := fs.Duration("join-timeout", 60*time.Second, "time for the other gateways to become ready once every client is connected")
	settleTimeout := fs.Duration("settle-timeout", 90*time.Second, "time after they joined for every pod to come within the tolerance")
	hold := fs.Duration("hold", 10*time.Second, "then every pod must stay within the tolerance this long")
	window := fs.Duration("window", 2*time.Minute, "the gateways' --continuity-window")
	backoffBase := fs.Duration("backoff-base", 250*time.Millisecond, "reconnect backoff base (the SDKs' default)")
	statusFile := fs.String("status-file", "", "rewrite `file` every 500 ms with `up=N down=N disconnected=N back=N` (the script starts the other gateways once up=conns)")
	out := fs.String("out", "", "write the result as JSON to `file`")
	return func() (*report, error) {
		urls, adm := splitList(*gateways), splitList(*admins)
		if len(urls) < 2 || len(adm) != len(urls) || *conns <= 0 || *channels <= 0 {
			return nil, errors.New("want two or more --gateways, as many --admins, positive --conns and --channels")
		}
		for c := 0; c < *channels; c++ {
			if err := e.dir.CreateChannel(ctx, clusterChannel(c)); err != nil {
				return nil, err
			}
		}
		users, err := e.makeUsers(ctx, *conns, func(i int) string { return clusterChannel(i % *channels) })
		if err != nil {
			return nil, err
		}
		s := &clusterShard{
			conns: *conns, gateways: urls, channels: *channels, killGateway: -1,
			ticketURL: e.ticketURL, base: *backoffBase, max: 5 * time.Second, resume: true, window: *window,
			srcCount: max(e.srcAddrs, 1),
			hc:       &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1000, MaxConnsPerHost: 1000, IdleConnTimeout: 90 * time.Second}, Timeout: 15 * time.Second},
			refusals: map[string]int64{}, failures: map[string]int64{}, perSec: map[int64]int64{}, lat: map[string]*latencyHist{},
		}
		s.clients = make([]*clusterClient, *conns)
		for i := range s.clients {
			s.clients[i] = &clusterClient{s: s, u: users[i], c: i % *channels, ch: clusterChannel(i % *channels), maxK: -1}
		}
		b := &balancer{admins: adm, hc: &http.Client{Timeout: 5 * time.Second}}
		runCtx, stop := context.WithCancel(ctx)
		defer stop()
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.runBalanced(runCtx, *inflight, *statusFile)
		}()
		res := &rebalanceResult{Conns: *conns, Gateways: urls, Tolerance: *tolerance}
		verdict := b.watch(ctx, s, res, *joinTimeout, *settleTimeout, *hold, func(c context.Context) (*clusterPublishResult, error) {
			p := &clusterPublisher{e: e, channels: *channels, rate: *rate, workers: 16, pad: ""}
			return p.run(c)
		})
		// The publisher has stopped (watch returned): the last events reach
		// every client before the clients stop.
		if verdict == "" {
			delay(ctx, 2*time.Second)
		}
		stop()
		wg.Wait()
		res.Clients = s.result(0, res.published)
		res.check(s, verdict)
		if err := writeJSON(*out, res); err != nil {
			return nil, err
		}
		rep := res.report()
		if len(res.Failures) > 0 {
			rep.print(os.Stderr)
			return nil, fmt.Errorf("%d checks failed:\n  %s", len(res.Failures), strings.Join(res.Failures, "\n  "))
		}
		return rep, nil
	}
}

// runBalanced runs every client (runBalancedClient), the heartbeats and
// the status file until ctx ends.
func (s *clusterShard) runBalanced(ctx context.Context, inflight int, statusFile string) {
	start := time.Now()
	var wg sync.WaitGroup
	sem := make(chan struct{}, max(inflight, 1))
	for _, c := range s.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.runBalanced(ctx, sem)
		}()
	}
	var aux sync.WaitGroup
	aux.Add(2)
	go func() { defer aux.Done(); s.heartbeats(ctx, 25*time.Second) }()
	go func() { defer aux.Done(); s.writeStatus(ctx, statusFile, start) }()
	<-ctx.Done()
	s.ending.Store(true)
	for _, c := range s.clients {
		if conn := c.conn.Load(); conn != nil {
			conn.closeNow()
		}
	}
	wg.Wait()
	aux.Wait()
}

// runBalanced is clusterClient.run with a load balancer in front: the
// first connection goes to the first gateway, every later attempt to one
// drawn at random; a refused attempt is retried after the SDKs' backoff.
func (c *clusterClient) runBalanced(ctx context.Context, sem chan struct{}) {
	s := c.s
	attempt, attemptsDown := 0, 0
	initial := true
	for ctx.Err() == nil {
		if initial {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			c.turn = 0
		} else {
			c.turn = rand.IntN(len(s.gateways))
		}
		r := c.attempt(ctx)
		if initial {
			<-sem
		}
		if r.conn == nil {
			if ctx.Err() != nil {
				return
			}
			attemptsDown++
			if r.refusal != "" {
				s.noteRefusal(r.refusal)
			} else {
				s.noteFailure(r.err)
			}
			if r.giveUp {
				c.gaveUp = true
				return
			}
			attempt++
			if !delay(ctx, retryDelay(attempt, s.base, s.max, r.hint, rand.N[time.Duration])) {
				return
			}
			continue
		}
		if !c.connected(ctx, r, initial, time.Time{}, attemptsDown) {
			return
		}
		initial = false
		attempt, attemptsDown = 1, 0
		if !delay(ctx, retryDelay(0, s.base, s.max, 0, rand.N[time.Duration])) {
			return
		}
	}
}

// balancer watches the gateways' /readyz and /metrics.
type balancer struct {
	admins []string
	hc     *http.Client
}

// podSample is one scrape of every gateway.
type podSample struct {
	AtMs   int64     `json:"at_ms"` // since the others joined
	Conns  []float64 `json:"conns"`
	Shed   []float64 `json:"shed"`
	Active []float64 `json:"rebalancing"`
}

type rebalanceResult struct {
	Conns          int                 `json:"conns"`
	Gateways       []string            `json:"gateways"`
	Tolerance      float64             `json:"tolerance"`
	AllUpMs        int64               `json:"all_connected_ms"`
	JoinedMs       int64               `json:"others_ready_ms"` // after all connected
	SettledMs      int64               `json:"within_tolerance_ms"`
	Samples        []podSample         `json:"samples"`
	Final          []float64           `json:"final_connections"`
	ShedTotal      []float64           `json:"shed_total"`
	ShedInHold     []float64           `json:"shed_during_hold"`
	OutOfTolInHold int                 `json:"samples_out_of_tolerance_during_hold"`
	PresenceOn     float64             `json:"presence_online_transitions"`
	PresenceOff    float64             `json:"presence_offline_transitions"`
	Clients        *clusterShardResult `json:"clients"`
	Failures       []string            `json:"failures"`

	published *clusterPublishResult
}

// sample scrapes every gateway's /metrics (series → value).
func (b *balancer) sample(ctx context.Context) ([]map[string]float64, error) {
	out := make([]map[string]float64, len(b.admins))
	for i, a := range b.admins {
		m, err := scrapeMetrics(ctx, b.hc, a+"/metrics")
		if err != nil {
			return nil, fmt.Errorf("gw%d: %w", i+1, err)
		}
		out[i] = m
	}
	return out, nil
}

func (b *balancer) ready(ctx context.Context) bool {
	for _, a := range b.admins {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, a+"/readyz", nil)
		resp, err := b.hc.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return false
		}
	}
	return true
}

const (
	mConns   = "ocvr_gateway_connections"
	mShed    = "ocvr_gateway_rebalance_shed_total"
	mActive  = "ocvr_gateway_rebalance_active"
	mOnline  = `ocvr_gateway_presence_transitions_total{presence="online"}`
	mOffline = `ocvr_gateway_presence_transitions_total{presence="offline"}`
)

// watch waits for every client, publishes while the others join and the
// load moves, and fills res; it returns a failure text or "".
func (b *balancer) watch(ctx context.Context, s *clusterShard, res *rebalanceResult, joinTimeout, settleTimeout, hold time.Duration,
	publish func(context.Context) (*clusterPublishResult, error)) string {
	t0 := time.Now()
	for s.up.Load() < int64(s.conns) {
		if time.Since(t0) > 2*time.Minute || ctx.Err() != nil {
			return fmt.Sprintf("only %d of %d clients connected to the first gateway", s.up.Load(), s.conns)
		}
		time.Sleep(100 * time.Millisecond)
	}
	res.AllUpMs = time.Since(t0).Milliseconds()
	fmt.Fprintf(os.Stderr, "rebalance: %d clients on gw1 after %v; waiting for the others\n", s.conns, time.Since(t0).Round(time.Millisecond))

	pubCtx, stopPub := context.WithCancel(ctx)
	var pubWG sync.WaitGroup
	pubWG.Add(1)
	go func() {
		defer pubWG.Done()
		p, err := publish(pubCtx)
		if err != nil {
			fmt.Fprintln(os.Stderr, "rebalance: publisher:", err)
			return
		}
		res.published = p
	}()
	defer func() { stopPub(); pubWG.Wait() }()

	t1 := time.Now()
	for !b.ready(ctx) {
		if time.Since(t1) > joinTimeout || ctx.Err() != nil {
			return "the other gateways did not become ready"
		}
		time.Sleep(200 * time.Millisecond)
	}
	joined := time.Now()
	res.JoinedMs = joined.Sub(t1).Milliseconds()
	mean := float64(s.conns) / float64(len(b.admins))
	within := func(conns []float64) bool {
		for _, n := range conns {
			if math.Abs(n-mean) > res.Tolerance*mean {
				return false
			}
		}
		return true
	}
	take := func() (podSample, error) {
		ms, err := b.sample(ctx)
		if err != nil {
			return podSample{}, err
		}
		p := podSample{AtMs: time.Since(joined).Milliseconds()}
		for _, m := range ms {
			p.Conns, p.Shed, p.Active = append(p.Conns, m[mConns]), append(p.Shed, m[mShed]), append(p.Active, m[mActive])
		}
		res.Samples = append(res.Samples, p)
		return p, nil
	}
	var last podSample
	for {
		p, err := take()
		if err != nil {
			return err.Error()
		}
		last = p
		if within(p.Conns) && s.down.Load() == 0 {
			break
		}
		if time.Since(joined) > settleTimeout || ctx.Err() != nil {
			return fmt.Sprintf("not within ±%.0f%% of %.0f after %v: %v", 100*res.Tolerance, mean, settleTimeout, p.Conns)
		}
		time.Sleep(500 * time.Millisecond)
	}
	res.SettledMs = time.Since(joined).Milliseconds()
	fmt.Fprintf(os.Stderr, "rebalance: within ±%.0f%% of %.0f %v after the others joined: %v\n", 100*res.Tolerance, mean, time.Since(joined).Round(time.Millisecond), last.Conns)
	start := last
	for end := time.Now().Add(hold); time.Now().Before(end); {
		time.Sleep(500 * time.Millisecond)
		p, err := take()
		if err != nil {
			return err.Error()
		}
		if !within(p.Conns) {
			res.OutOfTolInHold++
		}
		last = p
	}
	for i := range last.Shed {
		res.ShedInHold = append(res.ShedInHold, last.Shed[i]-start.Shed[i])
	}
	res.Final, res.ShedTotal = last.Conns, last.Shed
	// Presence before the clients leave (their offline transitions come a
	// grace later): one online per user, no offline at all.
	ms, err := b.sample(ctx)
	if err != nil {
		return err.Error()
	}
	for _, m := range ms {
		res.PresenceOn += m[mOnline]
		res.PresenceOff += m[mOffline]
	}
	return ""
}

// check turns the result into failures.
func (r *rebalanceResult) check(s *clusterShard, verdict string) {
	fail := func(f string, a ...any) { r.Failures = append(r.Failures, fmt.Sprintf(f, a...)) }
	if verdict != "" {
		fail("%s", verdict)
		return
	}
	if r.OutOfTolInHold > 0 {
		fail("%d samples out of tolerance while holding (oscillation)", r.OutOfTolInHold)
	}
	for i, n := range r.ShedTotal {
		if i > 0 && n > 0.02*float64(r.Conns) {
			fail("gw%d shed %.0f sockets: a pod that joined empty shed (pods shedding into each other)", i+1, n)
		}
	}
	if r.PresenceOff != 0 || r.PresenceOn != float64(r.Conns) {
		fail("presence: %.0f online and %.0f offline transitions, want %d and 0 (a flap)", r.PresenceOn, r.PresenceOff, r.Conns)
	}
	c := r.Clients
	notBack := 0
	for _, cl := range s.clients {
		if len(cl.disconnects) > len(cl.backs) {
			notBack++
		}
	}
	if notBack > 0 || c.GaveUp > 0 {
		fail("%d shed clients not back, %d gave up", notBack, c.GaveUp)
	}
	for k, n := range c.OtherDrops {
		if !strings.HasSuffix(k, " 1012") {
			fail("%d disconnects %q: only 1012 (rebalancing) expected", n, k)
		}
	}
	if c.Disconnected == 0 {
		fail("no client was shed")
	}
	if !c.PublishedKnown {
		fail("the publisher's result is unknown: loss not checked")
	} else if c.Lost > 0 || c.Duplicates > 0 || c.OutOfOrder > 0 {
		fail("events: %d lost, %d duplicated, %d out of order", c.Lost, c.Duplicates, c.OutOfOrder)
	}
	if n := c.SubResumed["false"] + c.ReadyResumed["false"]; n > 0 {
		fail("%d resumes said resumed:false", n)
	}
}

func (r *rebalanceResult) report() *report {
	rep := &report{
		Params:  map[string]any{"conns": r.Conns, "gateways": len(r.Gateways), "tolerance": r.Tolerance},
		Columns: []string{"gateway", "final connections", "of the mean", "shed (1012)", "shed while holding"},
	}
	mean := float64(r.Conns) / float64(len(r.Gateways))
	for i := range r.Final {
		hold := 0.0
		if i < len(r.ShedInHold) {
			hold = r.ShedInHold[i]
		}
		rep.Rows = append(rep.Rows, []any{fmt.Sprintf("gw%d", i+1), int(r.Final[i]), fmt.Sprintf("%+.1f%%", 100*(r.Final[i]/mean-1)), int(r.ShedTotal[i]), int(hold)})
	}
	if c := r.Clients; c != nil {
		rep.Notes = append(rep.Notes, fmt.Sprintf("all %d connected to gw1 in %.1f s; the others ready %.1f s later; within tolerance %.1f s after that",
			r.Conns, float64(r.AllUpMs)/1e3, float64(r.JoinedMs)/1e3, float64(r.SettledMs)/1e3),
			fmt.Sprintf("clients shed at least once %d (disconnects %v), back %d; resumed (subscribed) %v; events expected %d, lost %d, duplicates %d",
				c.Disconnected, c.OtherDrops, countBacks(c), c.SubResumed, c.Expected, c.Lost, c.Duplicates),
			fmt.Sprintf("presence transitions: %.0f online, %.0f offline", r.PresenceOn, r.PresenceOff))
	}
	for _, f := range r.Failures {
		rep.Notes = append(rep.Notes, "FAILED: "+f)
	}
	return rep
}

func countBacks(c *clusterShardResult) int {
	n := 0
	for _, v := range c.SubResumed {
		n += v
	}
	return n
}
