package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ocvr/realtime/pkg/client"
)

// The continuity workloads (issue 17, gateway/README.md "Continuity"):
//
//   - resume: clients that were subscribed (user subject + one channel)
//     disconnect, N events are published to their channel, and they
//     reconnect with their resume token and cursors; against a cohort that
//     reconnects fresh (ticket + upgrade + subscribe) in the same run.
//     With --clients 5000 --inflight 200 it is a reconnect storm.
//   - overload: subscribers of one channel that read slower than the
//     publish rate (or pause), then drain: closes by code, every event
//     delivered once and in order, time to catch up, the gateway's peak RSS.
//   - streamcap: a publish-rate ramp through the stream with the gateway
//     attached, until the stream's acknowledgements lag.

// readyInfo is what the loadgen keeps of ready and subscribed.
type readyInfo struct {
	Data struct {
		ResumeToken string `json:"resume_token"`
		Seq         uint64 `json:"seq"`
		Resumed     *bool  `json:"resumed"`
		ChannelID   string `json:"channel_id"`
	} `json:"data"`
}

// readFrame reads the next text frame of type typ (skipping others) and
// decodes it; an error frame is an error.
func readFrame(l *client.Lite, typ string, deadline time.Time) (readyInfo, error) {
	_ = l.NetConn().SetReadDeadline(deadline)
	defer l.NetConn().SetReadDeadline(time.Time{})
	prefix := `{"type":"` + typ + `"`
	for {
		f, err := l.ReadText()
		if err != nil {
			return readyInfo{}, fmt.Errorf("waiting for %s: %w", typ, err)
		}
		s := string(f)
		if strings.HasPrefix(s, prefix) {
			var r readyInfo
			err := json.Unmarshal(f, &r)
			return r, err
		}
		if strings.HasPrefix(s, `{"type":"error"`) {
			return readyInfo{}, errors.New(s)
		}
	}
}

func subscribeFrame(ch string, seq *uint64) []byte {
	if seq == nil {
		return []byte(`{"type":"subscribe","data":{"channel_id":"` + ch + `"}}`)
	}
	return []byte(`{"type":"subscribe","data":{"channel_id":"` + ch + `","seq":` + strconv.FormatUint(*seq, 10) + `}}`)
}

// resumeClient is one client of the resume workload.
type resumeClient struct {
	u       user
	channel string
	l       *client.Lite
	token   string
	userSeq uint64
	chanSeq uint64
}

func resumeWorkload(ctx context.Context, e *env, fs *flag.FlagSet) func() (*report, error) {
	clients := fs.Int("clients", 500, "clients that resume (and as many that reconnect fresh, with --fresh)")
	perChannel := fs.Int("per-channel", 10, "resuming clients per channel (the fresh cohort shares the channels)")
	missedF := fs.String("missed", "0,10,300", "events published to each channel while its clients are away, one level each")
	inflight := fs.Int("inflight", 20, "reconnects in flight")
	fresh := fs.Bool("fresh", true, "also reconnect a cohort fresh (ticket + upgrade + subscribe, no resume) in the same run")
	size := fs.Int("size", 250, "approximate frame size in bytes")
	publishers := fs.Int("publishers", 32, "publishing goroutines (stream publishes awaiting their acknowledgement at once)")
	pubRate := fs.Int("publish-rate", 2000, "events/s while the clients are away")
	away := fs.Duration("away", 12*time.Second, "least time between the disconnect and the first reconnect (longer than the gateway's presence grace: both cohorts come back as new presence)")
	quiet := fs.Duration("quiet", 30*time.Second, "wait up to this long for the server to go quiet (< 5% CPU) before each measured phase")
	return func() (*report, error) {
		var levels []int
		for _, s := range strings.Split(*missedF, ",") {
			v, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || v < 0 {
				return nil, fmt.Errorf("--missed: bad count %q", s)
			}
			levels = append(levels, v)
		}
		if *clients <= 0 || *perChannel <= 0 {
			return nil, errors.New("--clients and --per-channel must be positive")
		}
		nch := (*clients + *perChannel - 1) / *perChannel
		chName := func(i int) string { return "bench_resume_" + strconv.Itoa((i%*clients) / *perChannel) }
		chans := make([]string, nch)
		for c := range chans {
			chans[c] = "bench_resume_" + strconv.Itoa(c)
			if err := e.dir.CreateChannel(ctx, chans[c]); err != nil {
				return nil, err
			}
		}
		n := *clients
		if *fresh {
			n *= 2
		}
		users, err := e.makeUsers(ctx, n, chName)
		if err != nil {
			return nil, err
		}
		cs := make([]*resumeClient, n)
		for i := range cs {
			cs[i] = &resumeClient{u: users[i], channel: chName(i)}
		}
		resumers, freshers := cs[:*clients], cs[*clients:]
		defer func() {
			for _, c := range cs {
				if c.l != nil {
					c.l.CloseNow()
				}
			}
		}()
		// Setup (not measured): everyone connects and subscribes once.
		fmt.Fprintf(os.Stderr, "resume: connecting %d clients\n", n)
		if err := connectMany(ctx, n, 200, func(i int) error {
			c := cs[i]
			l, r, err := e.dialReady(ctx, c.u, "")
			if err != nil {
				return err
			}
			c.l, c.token, c.userSeq = l, r.Data.ResumeToken, r.Data.Seq
			if err := l.WriteText(subscribeFrame(c.channel, nil)); err != nil {
				return err
			}
			s, err := readFrame(l, "subscribed", time.Now().Add(30*time.Second))
			if err != nil {
				return err
			}
			c.chanSeq = s.Data.Seq
			return nil
		}); err != nil {
			return nil, err
		}
		if resumers[0].token == "" {
			return nil, errors.New("ready carries no resume_token: is continuity on (gateway without --no-continuity)?")
		}
		pad := strings.Repeat("x", max(0, *size-200))
		pub := newEventPublisher(ctx, e, pathStream, *publishers)
		defer pub.close()
		rep := &report{
			Params: map[string]any{"clients": *clients, "per_channel": *perChannel, "channels": nch, "inflight": *inflight, "missed": *missedF},
			Columns: []string{"missed events", "reconnect", "clients", "connects/s", "p50 ms", "p99 ms", "max ms",
				"server CPU ms/conn", "of which gateway / nats-server / ticketsvc", "resumed (ready, subscribed)", "missed events delivered", "duplicates or out of order", "errors"},
		}
		type phase struct {
			p50, cpu float64
		}
		for li, missed := range levels {
			// Everyone leaves.
			for _, c := range cs {
				if c.l != nil {
					c.l.Close()
					c.l = nil
				}
			}
			left := time.Now()
			// N events per channel while they are away.
			expected := make(map[string][]int64, nch) // channel → event numbers, in publish order
			if missed > 0 {
				total := missed * nch
				d := time.Duration(float64(total) / float64(*pubRate) * float64(time.Second))
				sent, _ := pace(ctx, pub, chans, li, *pubRate, max(d, time.Millisecond), pad)
				if ps := pub.take(); ps.errs > 0 {
					return nil, fmt.Errorf("publishing the missed events: %d failed, first: %v", ps.errs, ps.firstErr)
				}
				if sent != int64(total) {
					return nil, fmt.Errorf("published %d of %d missed events", sent, total)
				}
				for k := int64(0); k < sent; k++ {
					ch := chans[int(k)%nch]
					expected[ch] = append(expected[ch], k)
				}
			}
			if w := *away - time.Since(left); w > 0 {
				time.Sleep(w)
			}
			order := []string{"resume", "fresh"}
			if li%2 == 0 {
				order = []string{"fresh", "resume"}
			}
			var res, frs phase
			for _, kind := range order {
				if kind == "fresh" && !*fresh {
					continue
				}
				if !e.waitQuiet(ctx, 0.05, *quiet) {
					rep.Notes = append(rep.Notes, fmt.Sprintf("missed %d, %s: the server was still busy after %v", missed, kind, *quiet))
				}
				group := resumers
				if kind == "fresh" {
					group = freshers
				}
				lat := make([]float64, len(group))
				var resumedReady, resumedSub, delivered, disorder, errs atomic.Int64
				var errMu sync.Mutex
				var firstErr error
				before := e.sample()
				start := time.Now()
				_ = connectMany(ctx, len(group), *inflight, func(i int) error {
					c := group[i]
					t0 := time.Now()
					err := func() error {
						if kind == "fresh" {
							return e.reconnectFresh(ctx, c)
						}
						rr, rs, got, bad, err := e.reconnectResume(ctx, c, expected[c.channel], li)
						if rr {
							resumedReady.Add(1)
						}
						if rs {
							resumedSub.Add(1)
						}
						delivered.Add(got)
						disorder.Add(bad)
						return err
					}()
					lat[i] = float64(time.Since(t0).Microseconds()) / 1e3
					if err != nil {
						errs.Add(1)
						errMu.Lock()
						if firstErr == nil {
							firstErr = err
						}
						errMu.Unlock()
					}
					return nil
				})
				took := time.Since(start)
				after := e.sample()
				sortFloats(lat)
				ph := phase{p50: percentile(lat, 50), cpu: cpuSeconds(before, after) * 1e3 / float64(len(group))}
				split := make([]string, len(e.pids))
				for i := range e.pids {
					split[i] = trimFloat(pidCPUSeconds(before, after, i) * 1e3 / float64(len(group)))
				}
				row := []any{missed, kind, len(group), float64(len(group)) / took.Seconds(), ph.p50, percentile(lat, 99), percentile(lat, 100), ph.cpu, strings.Join(split, " / ")}
				if kind == "fresh" {
					frs = ph
					row = append(row, "-", "-", "-", errs.Load())
				} else {
					res = ph
					row = append(row, fmt.Sprintf("%d, %d of %d", resumedReady.Load(), resumedSub.Load(), len(group)),
						fmt.Sprintf("%d of %d", delivered.Load(), int64(missed)*int64(len(group))), disorder.Load(), errs.Load())
				}
				rep.Rows = append(rep.Rows, row)
				if firstErr != nil {
					rep.Notes = append(rep.Notes, fmt.Sprintf("missed %d, %s: first error: %v", missed, kind, firstErr))
				}
				fmt.Fprintf(os.Stderr, "resume: missed %d, %s done (%.0f/s)\n", missed, kind, float64(len(group))/took.Seconds())
			}
			if *fresh && frs.p50 > 0 && frs.cpu > 0 {
				rep.Rows = append(rep.Rows, []any{missed, "resume / fresh", "", "", res.p50 / frs.p50, "", "", res.cpu / frs.cpu, "", "", "", "", ""})
			}
		}
		rep.Notes = append(rep.Notes,
			"fresh: POST ticket + upgrade + ready + subscribe → subscribed; resume: POST ticket + upgrade with resume token and user cursor + ready (resumed) + subscribe with the channel cursor → subscribed (resumed) + every missed event of the channel; latency and server CPU (gateway + nats-server + ticketsvc) per reconnect",
			"missed events delivered: exactly the channel's events published while away, each once, in stream order (positions increasing, above the cursor)")
		return rep, nil
	}
}

// dialReady mints a ticket in KV (setup) and connects, returning ready.
func (e *env) dialReady(ctx context.Context, u user, query string) (*client.Lite, readyInfo, error) {
	tk, err := e.tickets.Mint(ctx, u.ident)
	if err != nil {
		return nil, readyInfo{}, err
	}
	l, err := client.DialLite(ctx, e.wsURL+query, tk, client.LiteOptions{LocalAddr: e.srcAddr()})
	if err != nil {
		return nil, readyInfo{}, err
	}
	r, err := readFrame(l, "ready", time.Now().Add(30*time.Second))
	if err != nil {
		l.CloseNow()
		return nil, readyInfo{}, err
	}
	return l, r, nil
}

// reconnectFresh: ticket from ticketsvc, upgrade, ready, subscribe,
// subscribed.
func (e *env) reconnectFresh(ctx context.Context, c *resumeClient) error {
	tk, err := client.GetTicket(ctx, e.hc, e.ticketURL, c.u.token)
	if err != nil {
		return err
	}
	l, err := client.DialLite(ctx, e.wsURL, tk, client.LiteOptions{LocalAddr: e.srcAddr()})
	if err != nil {
		return err
	}
	c.l = l
	deadline := time.Now().Add(30 * time.Second)
	r, err := readFrame(l, "ready", deadline)
	if err != nil {
		return err
	}
	c.token, c.userSeq = r.Data.ResumeToken, r.Data.Seq
	if err := l.WriteText(subscribeFrame(c.channel, nil)); err != nil {
		return err
	}
	s, err := readFrame(l, "subscribed", deadline)
	c.chanSeq = s.Data.Seq
	return err
}

// reconnectResume: ticket from ticketsvc, upgrade with the resume token and
// user cursor, ready, subscribe with the channel cursor, subscribed, then
// the missed events (want: their numbers, in publish order). It reports
// whether ready and subscribed said resumed, how many of the missed events
// arrived, and how many arrived twice or out of position order.
func (e *env) reconnectResume(ctx context.Context, c *resumeClient, want []int64, stepIdx int) (readyOK, subOK bool, got, bad int64, err error) {
	tk, err := client.GetTicket(ctx, e.hc, e.ticketURL, c.u.token)
	if err != nil {
		return
	}
	q := "?resume=" + url.QueryEscape(c.token) + "&seq=" + strconv.FormatUint(c.userSeq, 10)
	l, err := client.DialLite(ctx, e.wsURL+q, tk, client.LiteOptions{LocalAddr: e.srcAddr()})
	if err != nil {
		return
	}
	c.l = l
	deadline := time.Now().Add(30 * time.Second)
	r, err := readFrame(l, "ready", deadline)
	if err != nil {
		return
	}
	readyOK = r.Data.Resumed != nil && *r.Data.Resumed
	c.token, c.userSeq = r.Data.ResumeToken, r.Data.Seq
	cursor := c.chanSeq
	if err = l.WriteText(subscribeFrame(c.channel, &cursor)); err != nil {
		return
	}
	s, err := readFrame(l, "subscribed", deadline)
	if err != nil {
		return
	}
	subOK = s.Data.Resumed != nil && *s.Data.Resumed
	c.chanSeq = s.Data.Seq
	if !subOK {
		return readyOK, false, 0, 0, fmt.Errorf("subscribe from %d: resumed false", cursor)
	}
	// The missed events, each once, in stream order.
	seen := make(map[int64]bool, len(want))
	pending := make(map[int64]bool, len(want))
	for _, k := range want {
		pending[k] = true
	}
	last := cursor
	_ = l.NetConn().SetReadDeadline(deadline)
	defer l.NetConn().SetReadDeadline(time.Time{})
	for len(pending) > 0 {
		f, rerr := l.ReadText()
		if rerr != nil {
			return readyOK, subOK, got, bad, fmt.Errorf("after %d of %d missed events: %w", got, len(want), rerr)
		}
		st, k, _, ok := parseEventID(f)
		if !ok || st != stepIdx {
			continue
		}
		seq := frameSeq(f)
		if seq <= last || seen[k] || !pending[k] {
			bad++
		}
		last = max(last, seq)
		if pending[k] {
			delete(pending, k)
			got++
		}
		seen[k] = true
	}
	c.chanSeq = last
	return readyOK, subOK, got, bad, nil
}

// overloadChannel is the overload workload's channel.
const overloadChannel = "bench_overload"

// overloadReader is one subscriber's account of the overload step.
type overloadReader struct {
	got      []bool // by event number
	count    int64  // distinct events received (atomic)
	dups     int64  // an event received again
	disorder int64  // a position at or below the previous one
	last     uint64
	doneAt   atomic.Int64 // unix ns when it had every event
	closed   string       // close code, when the server closed it
}

func overloadWorkload(ctx context.Context, e *env, fs *flag.FlagSet) func() (*report, error) {
	subs := fs.Int("subs", 5000, "subscribers of the channel")
	rate := fs.Int("rate", 200, "events/s published")
	duration := fs.Duration("duration", 20*time.Second, "how long to publish")
	readRate := fs.Int("read-rate", 100, "frames/s each subscriber reads at most (0: as fast as it can)")
	pause := fs.Duration("pause", 0, "subscribers read nothing for this long from the start of publishing, then read at --read-rate")
	drain := fs.Duration("drain-timeout", 4*time.Minute, "after publishing, wait at most this long for every subscriber to have every event (stops earlier when nothing moves for --stall)")
	stall := fs.Duration("stall", 20*time.Second, "stop waiting when no subscriber received anything for this long")
	size := fs.Int("size", 250, "approximate frame size in bytes")
	inflight := fs.Int("inflight", 200, "connection attempts in flight during setup")
	publishers := fs.Int("publishers", 16, "publishing goroutines (stream publishes awaiting their acknowledgement at once)")
	quiet := fs.Duration("quiet", 60*time.Second, "after setup, wait up to this long for the server to go quiet (< 5% CPU)")
	pathF := pathFlag(fs, pathStream, " (core against a gateway with --no-continuity: the behaviour before continuity)")
	heartbeat := fs.Duration("heartbeat", 25*time.Second, "each subscriber sends a heartbeat this often (spread over the interval), paused or not, as real clients do")
	return func() (*report, error) {
		paths, err := parsePaths(*pathF, false)
		if err != nil {
			return nil, err
		}
		total := int64(float64(*rate) * duration.Seconds())
		if err := e.dir.CreateChannel(ctx, overloadChannel); err != nil {
			return nil, err
		}
		users, err := e.makeUsers(ctx, *subs, func(int) string { return overloadChannel })
		if err != nil {
			return nil, err
		}
		lites := make([]*client.Lite, *subs)
		if err := connectMany(ctx, *subs, *inflight, func(i int) error {
			l, err := e.dial(ctx, users[i])
			if err != nil {
				return err
			}
			if err := subscribe(l, overloadChannel); err != nil {
				l.CloseNow()
				return err
			}
			lites[i] = l
			return nil
		}); err != nil {
			return nil, err
		}
		defer func() {
			for _, l := range lites {
				if l != nil {
					l.CloseNow()
				}
			}
		}()
		hbCtx, stopHB := context.WithCancel(ctx)
		defer stopHB()
		go keepAlive(hbCtx, lites, *heartbeat)
		rep := &report{
			Params: map[string]any{"subs": *subs, "rate": *rate, "duration": duration.String(), "read_rate": *readRate, "pause": pause.String(), "path": paths[0]},
		}
		if !e.waitQuiet(ctx, 0.05, *quiet) {
			rep.Notes = append(rep.Notes, fmt.Sprintf("the server was still busy %v after setup", *quiet))
		}
		baseRSS := e.sample().gwRSS
		var startNs atomic.Int64 // readers throttle from here
		startGate := make(chan struct{})
		readers := make([]*overloadReader, *subs)
		var closedMu sync.Mutex
		closedBy := map[string]int{}
		var ending atomic.Bool
		var lastRecv atomic.Int64
		for i, l := range lites {
			r := &overloadReader{got: make([]bool, total)}
			readers[i] = r
			go func(r *overloadReader, l *client.Lite) {
				var frames int64
				chunk := int64(max(*readRate/10, 1))
				gated := false
				for {
					if !gated {
						gated = true
						<-startGate
						if *pause > 0 {
							time.Sleep(*pause)
						}
					}
					f, err := l.ReadText()
					if err != nil {
						if ctx.Err() == nil && !ending.Load() {
							code := "no close frame"
							var ce *client.CloseError
							if errors.As(err, &ce) {
								code = strconv.Itoa(ce.Code)
							}
							closedMu.Lock()
							closedBy[code]++
							r.closed = code
							closedMu.Unlock()
						}
						return
					}
					frames++
					if *readRate > 0 && frames%chunk == 0 {
						due := startNs.Load() + int64(pause.Nanoseconds()) + frames*int64(time.Second)/int64(*readRate)
						if d := time.Duration(due - time.Now().UnixNano()); d > 0 {
							time.Sleep(d)
						}
					}
					_, k, _, ok := parseEventID(f)
					if !ok || k < 0 || k >= total {
						continue
					}
					lastRecv.Store(time.Now().UnixNano())
					if seq := frameSeq(f); seq > 0 {
						if seq <= r.last {
							atomic.AddInt64(&r.disorder, 1)
						}
						r.last = seq
					}
					if r.got[k] {
						atomic.AddInt64(&r.dups, 1)
						continue
					}
					r.got[k] = true
					if atomic.AddInt64(&r.count, 1) == total {
						r.doneAt.Store(time.Now().UnixNano())
					}
				}
			}(r, l)
		}
		// Peak RSS while it runs (and VmHWM at the end).
		var peakGw, peakNats atomic.Int64
		sampCtx, stopSamp := context.WithCancel(ctx)
		defer stopSamp()
		go func() {
			t := time.NewTicker(250 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-sampCtx.Done():
					return
				case <-t.C:
				}
				if len(e.pids) > 0 {
					peakGw.Store(max(peakGw.Load(), readRSS(e.pids[0])))
				}
				if len(e.pids) > 1 {
					peakNats.Store(max(peakNats.Load(), readRSS(e.pids[1])))
				}
			}
		}()
		pub := newEventPublisher(ctx, e, paths[0], *publishers)
		defer pub.close()
		pad := strings.Repeat("x", max(0, *size-200))
		before := e.sample()
		t0 := time.Now()
		startNs.Store(t0.UnixNano())
		close(startGate)
		sent, took := pace(ctx, pub, []string{overloadChannel}, 0, *rate, *duration, pad)
		ps := pub.take()
		pubEnd := time.Now()
		fmt.Fprintf(os.Stderr, "overload: published %d events in %v; draining\n", sent, took.Round(time.Millisecond))
		// Drain: until every open subscriber has every event, nothing
		// moves for --stall, or --drain-timeout.
		deadline := pubEnd.Add(*drain)
		lastRecv.Store(time.Now().UnixNano())
		for time.Now().Before(deadline) && ctx.Err() == nil {
			open, done := 0, 0
			closedMu.Lock()
			for _, r := range readers {
				if r.closed != "" {
					continue
				}
				open++
				if r.doneAt.Load() != 0 {
					done++
				}
			}
			closedMu.Unlock()
			if done == open || time.Since(time.Unix(0, lastRecv.Load())) > *stall {
				break
			}
			time.Sleep(250 * time.Millisecond)
		}
		after := e.sample()
		ending.Store(true)
		stopSamp()
		var catchup []float64
		var delivered, dups, disorder int64
		complete, missingReaders := 0, 0
		closedMu.Lock()
		for _, r := range readers {
			c := atomic.LoadInt64(&r.count)
			delivered += c
			dups += atomic.LoadInt64(&r.dups)
			disorder += atomic.LoadInt64(&r.disorder)
			if at := r.doneAt.Load(); at != 0 {
				complete++
				catchup = append(catchup, max(0, float64(at-pubEnd.UnixNano())/1e9))
			} else {
				missingReaders++
			}
		}
		var closes []string
		for code, n := range closedBy {
			closes = append(closes, fmt.Sprintf("%d × %s", n, code))
		}
		closedMu.Unlock()
		sortFloats(catchup)
		peakHWM := int64(0)
		if len(e.pids) > 0 {
			peakHWM = readPeakRSS(e.pids[0])
		}
		closedS := "none"
		if len(closes) > 0 {
			closedS = strings.Join(closes, ", ")
		}
		mib := func(b int64) float64 { return float64(b) / (1 << 20) }
		rep.Columns = []string{"path", "published", "publish p99 ms", "subscribers closed (by code)", "subscribers with every event", "delivered/expected", "duplicates", "out of order", "catch-up after publishing p50 / p99 / max s", "gateway RSS before / peak sampled / VmHWM MiB", "nats-server peak RSS MiB", "server CPU %"}
		rep.Rows = append(rep.Rows, []any{paths[0], sent, ps.p99, closedS, fmt.Sprintf("%d of %d", complete, *subs),
			float64(delivered) / float64(max(sent*int64(*subs), 1)), dups, disorder,
			fmt.Sprintf("%s / %s / %s", trimFloat(percentile(catchup, 50)), trimFloat(percentile(catchup, 99)), trimFloat(percentile(catchup, 100))),
			fmt.Sprintf("%s / %s / %s", trimFloat(mib(baseRSS)), trimFloat(mib(peakGw.Load())), trimFloat(mib(peakHWM))),
			mib(peakNats.Load()), 100 * cpuSeconds(before, after) / after.at.Sub(before.at).Seconds()})
		if ps.errs > 0 {
			rep.Notes = append(rep.Notes, fmt.Sprintf("%d publishes failed, first: %v", ps.errs, ps.firstErr))
		}
		if took > *duration+time.Second {
			rep.Notes = append(rep.Notes, fmt.Sprintf("the publishers fell behind: %d events took %v", sent, took.Round(time.Millisecond)))
		}
		rep.Notes = append(rep.Notes, fmt.Sprintf("readers: at most %d frames/s each, paused %v at the start; catch-up: from the end of publishing until a subscriber had every event", *readRate, *pause))
		for _, m := range []string{"ocvr_gateway_slow_consumer_disconnects_total", "ocvr_gateway_bus_slow_consumer_events_total", "ocvr_gateway_catchups_total", "ocvr_gateway_catchup_abandoned_total", "ocvr_gateway_stream_replayed_events_total", "ocvr_gateway_stream_gaps_total", "ocvr_gateway_stream_late_events_total", "ocvr_gateway_stream_read_errors_total"} {
			rep.Notes = append(rep.Notes, fmt.Sprintf("%s %s", m, metricString(e, m)))
		}
		if missingReaders > 0 {
			rep.Notes = append(rep.Notes, fmt.Sprintf("%d subscribers did not get every event (closed, or still behind when the wait ended)", missingReaders))
		}
		return rep, nil
	}
}

// streamcapWorkload ramps the publish rate through the stream, spread
// over channels with a few subscribers each (the gateway attached and
// delivering), until the stream's acknowledgements lag.
func streamcapWorkload(ctx context.Context, e *env, fs *flag.FlagSet) func() (*report, error) {
	channels := fs.Int("channels", 100, "channels the events are spread over (one subject each)")
	perChannel := fs.Int("subs-per-channel", 1, "subscribers of each channel")
	ratesFlag := fs.String("rates", "1000,2000,4000,6000,8000,12000,16000", "publish rates to step through, events/s")
	step := fs.Duration("step", 10*time.Second, "duration of each rate step")
	size := fs.Int("size", 250, "approximate frame size in bytes")
	publishers := fs.Int("publishers", 256, "publishing goroutines: stream publishes awaiting their acknowledgement at once")
	pathF := pathFlag(fs, pathStream, "")
	return func() (*report, error) {
		rates, err := parseRates(*ratesFlag)
		if err != nil {
			return nil, err
		}
		paths, err := parsePaths(*pathF, false)
		if err != nil {
			return nil, err
		}
		chans := make([]string, *channels)
		for c := range chans {
			chans[c] = "bench_cap_" + strconv.Itoa(c)
			if err := e.dir.CreateChannel(ctx, chans[c]); err != nil {
				return nil, err
			}
		}
		subs := *channels * *perChannel
		users, err := e.makeUsers(ctx, subs, func(i int) string { return chans[i%*channels] })
		if err != nil {
			return nil, err
		}
		lites := make([]*client.Lite, subs)
		if err := connectMany(ctx, subs, 100, func(i int) error {
			l, err := e.dial(ctx, users[i])
			if err != nil {
				return err
			}
			if err := subscribe(l, chans[i%*channels]); err != nil {
				l.CloseNow()
				return err
			}
			lites[i] = l
			return nil
		}); err != nil {
			return nil, err
		}
		defer func() {
			for _, l := range lites {
				if l != nil {
					l.CloseNow()
				}
			}
		}()
		hbCtx, stopHB := context.WithCancel(ctx)
		defer stopHB()
		go keepAlive(hbCtx, lites, 25*time.Second)
		counts := make([]atomic.Int64, len(rates))
		var closed atomic.Int64
		var ending atomic.Bool
		for _, l := range lites {
			go func(l *client.Lite) {
				for {
					f, err := l.ReadText()
					if err != nil {
						if !ending.Load() {
							closed.Add(1)
						}
						return
					}
					if st, _, _, ok := parseEventID(f); ok && st < len(rates) {
						counts[st].Add(1)
					}
				}
			}(l)
		}
		e.waitQuiet(ctx, 0.05, 30*time.Second)
		pub := newEventPublisher(ctx, e, paths[0], *publishers)
		defer pub.close()
		pad := strings.Repeat("x", max(0, *size-200))
		rep := &report{
			Params:  map[string]any{"channels": *channels, "subs_per_channel": *perChannel, "step": step.String(), "publishers": *publishers, "path": paths[0]},
			Columns: []string{"target ev/s", "acknowledged ev/s", "ack p50 ms", "ack p99 ms", "ack max ms", "peak in flight", "delivered/expected", "nats-server CPU %", "gateway CPU %", "all server CPU %", "loadgen CPU %", "errors"},
		}
		self := os.Getpid()
		for si, r := range rates {
			pub.take()
			before := e.sample()
			sb := readCPU(self)
			t0 := time.Now()
			sent, _ := pace(ctx, pub, chans, si, r, *step, pad)
			acked := time.Since(t0)
			ps := pub.take()
			after := e.sample()
			sa := readCPU(self)
			exp := sent * int64(*perChannel)
			for w := time.Now().Add(5 * time.Second); time.Now().Before(w) && counts[si].Load() < exp; {
				time.Sleep(50 * time.Millisecond)
			}
			el := after.at.Sub(before.at).Seconds()
			rep.Rows = append(rep.Rows, []any{r, float64(int64(ps.calls)-ps.errs) / acked.Seconds(), ps.p50, ps.p99, ps.pmax, ps.peakInflight,
				float64(counts[si].Load()) / float64(max(exp, 1)),
				100 * pidCPUSeconds(before, after, 1) / el, 100 * pidCPUSeconds(before, after, 0) / el, 100 * cpuSeconds(before, after) / el,
				100 * float64(sa-sb) / 100 / el, ps.errs})
			if ps.errs > 0 {
				rep.Notes = append(rep.Notes, fmt.Sprintf("rate %d: first error: %v", r, ps.firstErr))
			}
			fmt.Fprintf(os.Stderr, "streamcap: %d ev/s → %.0f acknowledged/s, ack p99 %.1f ms\n", r, float64(int64(ps.calls)-ps.errs)/acked.Seconds(), ps.p99)
			if ctx.Err() != nil {
				break
			}
			time.Sleep(2 * time.Second)
		}
		ending.Store(true)
		if n := closed.Load(); n > 0 {
			rep.Notes = append(rep.Notes, fmt.Sprintf("%d subscribers were closed during the steps", n))
		}
		rep.Notes = append(rep.Notes, "acknowledged ev/s: events the stream acknowledged over the step, until the last acknowledgement; --pids: the gateway first, then nats-server")
		return rep, nil
	}
}
