package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ocvr/realtime/pkg/client"
	"github.com/ocvr/realtime/pkg/protocol"
)

func idleWorkload(ctx context.Context, e *env, fs *flag.FlagSet) func() (*report, error) {
	conns := fs.Int("conns", 10000, "connections to open")
	channels := fs.Int("channels", 100, "channels; connection i subscribes to channel i mod C")
	inflight := fs.Int("inflight", 200, "connection attempts in flight")
	settle := fs.Duration("settle", 10*time.Second, "wait after the last connection before measuring")
	window := fs.Duration("window", 10*time.Second, "idle CPU measurement window")
	hold := fs.Duration("hold", 0, "keep the connections open this long after measuring (to profile the server)")
	return func() (*report, error) {
		chName := func(i int) string { return "idle_" + strconv.Itoa(i%*channels) }
		for c := 0; c < *channels; c++ {
			if err := e.dir.CreateChannel(ctx, chName(c)); err != nil {
				return nil, err
			}
		}
		users, err := e.makeUsers(ctx, *conns, chName)
		if err != nil {
			return nil, err
		}
		runtime.GC()
		time.Sleep(time.Second)
		base := e.sample()
		baseG := e.goroutines()
		lites := make([]*client.Lite, *conns)
		start := time.Now()
		err = connectMany(ctx, *conns, *inflight, func(i int) error {
			l, err := e.dial(ctx, users[i])
			if err != nil {
				return err
			}
			if err := subscribe(l, chName(i)); err != nil {
				l.CloseNow()
				return err
			}
			lites[i] = l
			return nil
		})
		defer func() {
			for _, l := range lites {
				if l != nil {
					l.CloseNow()
				}
			}
		}()
		if err != nil {
			return nil, err
		}
		took := time.Since(start)
		// Keep reading (nothing should arrive) so the sockets stay healthy.
		for _, l := range lites {
			go func(l *client.Lite) {
				for {
					if _, err := l.ReadText(); err != nil {
						return
					}
				}
			}(l)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(*settle):
		}
		a := e.sample()
		g := e.goroutines()
		time.Sleep(*window)
		b := e.sample()
		if *hold > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(*hold):
			}
		}
		n := float64(*conns)
		rep := &report{
			Params:  map[string]any{"conns": *conns, "channels": *channels},
			Columns: []string{"connections", "channels", "connect time s", "gateway RSS MiB", "RSS/conn KiB (all pids)", "gateway RSS/conn KiB", "goroutines/conn", "idle CPU %"},
			Rows: [][]any{{*conns, *channels, took.Seconds(), float64(a.gwRSS) / (1 << 20),
				float64(a.rssBytes-base.rssBytes) / n / 1024, float64(a.gwRSS-base.gwRSS) / n / 1024,
				(g - baseG) / n, 100 * cpuSeconds(a, b) / window.Seconds()}},
		}
		return rep, nil
	}
}

// fanoutChannel is the fan-out workload's channel; its events' ids carry
// step, number and send time (loadEvent).
const fanoutChannel = "bench_fanout"

func fanoutWorkload(ctx context.Context, e *env, fs *flag.FlagSet) func() (*report, error) {
	subs := fs.Int("subs", 5000, "subscribers of the channel")
	ratesFlag := fs.String("rates", "10,20,40,60,80,100,120", "publish rates to step through, events/s (deliveries/s = rate × subscribers)")
	step := fs.Duration("step", 5*time.Second, "duration of each rate step")
	size := fs.Int("size", 250, "approximate frame size in bytes")
	inflight := fs.Int("inflight", 200, "connection attempts in flight during setup")
	quiet := fs.Duration("quiet", 60*time.Second, "after setup, wait up to this long for the server to go quiet (< 5% CPU) before the first step")
	pathF := pathFlag(fs, pathStream, "; both: every rate through each path, back to back on the same subscribers (the order alternates from rate to rate)")
	publishers := fs.Int("publishers", 16, "publishing goroutines: stream publishes awaiting their acknowledgement at once (1: the SDK's synchronous publish, one at a time)")
	return func() (*report, error) {
		rates, err := parseRates(*ratesFlag)
		if err != nil {
			return nil, err
		}
		paths, err := parsePaths(*pathF, true)
		if err != nil {
			return nil, err
		}
		// One row per (rate, path); the order of the paths alternates so
		// that neither always runs on the warmer server.
		type stepDef struct {
			rate int
			path string
		}
		var steps []stepDef
		for ri, r := range rates {
			for pi := range paths {
				steps = append(steps, stepDef{r, paths[(pi+ri)%len(paths)]})
			}
		}
		if err := e.dir.CreateChannel(ctx, fanoutChannel); err != nil {
			return nil, err
		}
		users, err := e.makeUsers(ctx, *subs, func(int) string { return fanoutChannel })
		if err != nil {
			return nil, err
		}
		lites := make([]*client.Lite, *subs)
		if err := connectMany(ctx, *subs, *inflight, func(i int) error {
			l, err := e.dial(ctx, users[i])
			if err != nil {
				return err
			}
			if err := subscribe(l, fanoutChannel); err != nil {
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
		// Readers: latency in µs per step, per reader (no sharing).
		nSteps := len(steps)
		lat := make([][][]float64, *subs)
		counts := make([][]int64, *subs)
		positioned := make([][]int64, *subs)
		var disorder atomic.Int64 // a position at or below the previous one
		// Subscribers the server closed during the steps, by close code.
		var closedMu sync.Mutex
		closedBy := map[string]int{}
		var ending atomic.Bool
		var wg sync.WaitGroup
		for i, l := range lites {
			lat[i] = make([][]float64, nSteps)
			counts[i] = make([]int64, nSteps)
			positioned[i] = make([]int64, nSteps)
			wg.Add(1)
			go func(i int, l *client.Lite) {
				defer wg.Done()
				var last uint64
				for {
					f, err := l.ReadText()
					if err != nil {
						var ce *client.CloseError
						if ctx.Err() == nil && !ending.Load() {
							code := "no close frame"
							if errors.As(err, &ce) {
								code = strconv.Itoa(ce.Code)
							}
							closedMu.Lock()
							closedBy[code]++
							closedMu.Unlock()
						}
						return
					}
					now := time.Now().UnixNano()
					stepIdx, sent, ok := parseFanoutID(f)
					if !ok || stepIdx >= nSteps {
						continue
					}
					if seq := frameSeq(f); seq > 0 {
						if seq <= last {
							disorder.Add(1)
						}
						last = seq
						atomic.AddInt64(&positioned[i][stepIdx], 1)
					}
					atomic.AddInt64(&counts[i][stepIdx], 1)
					lat[i][stepIdx] = append(lat[i][stepIdx], float64(now-sent)/1e3)
				}
			}(i, l)
		}
		pad := strings.Repeat("x", max(0, *size-200))
		rep := &report{
			Params:  map[string]any{"subs": *subs, "step": step.String(), "size": *size, "path": *pathF, "publishers": *publishers},
			Columns: []string{"rate ev/s", "path", "published ev/s", "publish p50/p99 ms", "target deliveries/s", "delivered/expected", "deliveries/s", "p50 ms", "p99 ms", "max ms", "server CPU µs/delivery", "server CPU %", "loadgen CPU %", "positioned"},
		}
		if !e.waitQuiet(ctx, 0.05, *quiet) {
			rep.Notes = append(rep.Notes, fmt.Sprintf("the server was still busy %v after setup", *quiet))
		}
		pubs := map[string]*eventPublisher{}
		for _, p := range paths {
			pubs[p] = newEventPublisher(ctx, e, p, *publishers)
			defer pubs[p].close()
		}
		for si, st := range steps {
			pub := pubs[st.path]
			pub.take()
			before := e.sample()
			selfBefore := readCPU(os.Getpid())
			t0 := time.Now()
			published, took := pace(ctx, pub, []string{fanoutChannel}, si, st.rate, *step, pad)
			ps := pub.take()
			pubDur := time.Since(t0)
			// Let the backlog drain: wait until deliveries stop growing.
			expected := published * int64(*subs)
			var got int64
			deadline := time.Now().Add(10 * time.Second)
			for time.Now().Before(deadline) {
				got = sumStep(counts, si)
				if got >= expected {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			after := e.sample()
			selfCPU := float64(readCPU(os.Getpid())-selfBefore) / 100
			elapsed := after.at.Sub(t0).Seconds()
			var all []float64
			for i := range lat {
				all = append(all, lat[i][si]...)
			}
			sortFloats(all)
			cpu := cpuSeconds(before, after)
			perDelivery := 0.0
			if got > 0 {
				perDelivery = cpu / float64(got) * 1e6
			}
			rep.Rows = append(rep.Rows, []any{st.rate, st.path, float64(published) / max(took.Seconds(), step.Seconds()),
				fmt.Sprintf("%s / %s", trimFloat(ps.p50), trimFloat(ps.p99)),
				st.rate * *subs, float64(got) / float64(max(expected, 1)),
				float64(got) / pubDur.Seconds(), percentile(all, 50) / 1e3, percentile(all, 99) / 1e3,
				percentile(all, 100) / 1e3, perDelivery, 100 * cpu / elapsed, 100 * selfCPU / elapsed,
				float64(sumStep(positioned, si)) / float64(max(got, 1))})
			if ps.errs > 0 {
				rep.Notes = append(rep.Notes, fmt.Sprintf("rate %d %s: %d publishes failed, first: %v", st.rate, st.path, ps.errs, ps.firstErr))
			}
			if ctx.Err() != nil {
				break
			}
		}
		ending.Store(true)
		rep.Notes = append(rep.Notes, "published ev/s: events handed to the publishers over the step (below the rate: the publishers could not keep up); publish p50/p99: one publish call (stream: until the stream acknowledged it; core: buffered, no acknowledgement); positioned: the fraction of deliveries carrying a stream position")
		if n := disorder.Load(); n > 0 {
			rep.Notes = append(rep.Notes, fmt.Sprintf("%d deliveries had a position at or below the previous one of their subscriber (duplicate or out of order)", n))
		}
		closedMu.Lock()
		for code, n := range closedBy {
			rep.Notes = append(rep.Notes, fmt.Sprintf("%d subscribers were closed during the steps: %s", n, code))
		}
		closedMu.Unlock()
		if v, err := e.metric("ocvr_gateway_slow_consumer_disconnects_total"); err == nil {
			rep.Notes = append(rep.Notes, fmt.Sprintf("gateway slow-consumer closes: %.0f; bus slow-consumer events: %s; catch-ups: %s; stream gaps: %s", v,
				metricString(e, "ocvr_gateway_bus_slow_consumer_events_total"), metricString(e, "ocvr_gateway_catchups_total"), metricString(e, "ocvr_gateway_stream_gaps_total")))
		}
		return rep, nil
	}
}

func metricString(e *env, name string) string {
	v, err := e.metric(name)
	if err != nil {
		return "n/a"
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}

func sumStep(counts [][]int64, si int) int64 {
	var n int64
	for i := range counts {
		n += atomic.LoadInt64(&counts[i][si])
	}
	return n
}

func stormWorkload(ctx context.Context, e *env, fs *flag.FlagSet) func() (*report, error) {
	conns := fs.Int("conns", 5000, "clients")
	inflight := fs.Int("inflight", 200, "clients connecting at once")
	target := fs.String("target", targetOCVR, "server to storm: ocvr (ticket + upgrade + ready) or centrifugo (pre-made JWT + upgrade + connect reply, the comparison; see centrifugo.go)")
	cf := centrifugoFlags(fs)
	return func() (*report, error) {
		switch *target {
		case targetOCVR:
		case targetCentrifugo:
			return stormCentrifugo(ctx, e, cf, *conns, *inflight)
		default:
			return nil, fmt.Errorf("--target: want %s or %s, got %q", targetOCVR, targetCentrifugo, *target)
		}
		users, err := e.makeUsers(ctx, *conns, nil)
		if err != nil {
			return nil, err
		}
		lat := make([]float64, *conns)
		lites := make([]*client.Lite, *conns)
		defer func() {
			for _, l := range lites {
				if l != nil {
					l.CloseNow()
				}
			}
		}()
		before := e.sample()
		start := time.Now()
		err = connectMany(ctx, *conns, *inflight, func(i int) error {
			t0 := time.Now()
			tk, err := client.GetTicket(ctx, e.hc, e.ticketURL, users[i].token)
			if err != nil {
				return err
			}
			l, err := e.dialTicket(ctx, tk)
			if err != nil {
				return err
			}
			lat[i] = float64(time.Since(t0).Microseconds()) / 1e3
			lites[i] = l
			return nil
		})
		took := time.Since(start)
		after := e.sample()
		if err != nil {
			return nil, err
		}
		return stormReport(targetOCVR, *conns, *inflight, lat, took, before, after,
			"each connect = POST /v1/auth/ws-ticket + WebSocket upgrade + ready frame"), nil
	}
}

// stormReport is the storm table, one shape for every target, so that the
// ratio workload can set a run against Centrifugo's column by column. lat
// is each client's connect time in ms; before and after sample the --pids
// around the timed phase (after: every client still connected).
func stormReport(target string, conns, inflight int, lat []float64, took time.Duration, before, after procStat, note string) *report {
	sortFloats(lat)
	cpu := cpuSeconds(before, after)
	return &report{
		Params:  map[string]any{"conns": conns, "inflight": inflight, "target": target},
		Columns: []string{"clients", "in flight", "connects/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "server CPU ms/connect", "server CPU %", "server RSS MiB"},
		Rows: [][]any{{conns, inflight, float64(conns) / took.Seconds(), percentile(lat, 50), percentile(lat, 95), percentile(lat, 99),
			percentile(lat, 100), cpu * 1e3 / float64(conns), 100 * cpu / took.Seconds(), float64(after.rssBytes) / (1 << 20)}},
		Notes: []string{note, "server CPU and RSS: the --pids summed; RSS with every client still connected"},
	}
}

func churnWorkload(ctx context.Context, e *env, fs *flag.FlagSet) func() (*report, error) {
	workers := fs.Int("workers", 200, "concurrent clients cycling")
	duration := fs.Duration("duration", 30*time.Second, "how long to churn")
	rate := fs.Int("rate", 20, "events/s published on the churn channel meanwhile")
	return func() (*report, error) {
		const ch = "bench_churn"
		if err := e.dir.CreateChannel(ctx, ch); err != nil {
			return nil, err
		}
		users, err := e.makeUsers(ctx, *workers, func(int) string { return ch })
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithTimeout(ctx, *duration)
		defer cancel()
		end, _ := ctx.Deadline()
		// running: a failure at the very end is the run ending (socket
		// deadlines are the context's, and fire before ctx.Err() is set).
		running := func() bool { return ctx.Err() == nil && time.Until(end) > 100*time.Millisecond }
		var cycles, errs, received atomic.Int64
		var errMu sync.Mutex
		errSamples := map[string]int{} // error text → count, to say what failed
		noteErr := func(err error) {
			errs.Add(1)
			errMu.Lock()
			if _, ok := errSamples[err.Error()]; ok || len(errSamples) < 5 {
				errSamples[err.Error()]++
			}
			errMu.Unlock()
		}
		var wg sync.WaitGroup
		before := e.sample()
		start := time.Now()
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(time.Second / time.Duration(max(*rate, 1)))
			defer t.Stop()
			seq := 0
			for ctx.Err() == nil {
				<-t.C
				seq++
				_ = e.pub.MessageCreated(context.Background(), protocol.MessageCreate{ID: "c" + strconv.Itoa(seq), ChannelID: ch, Author: protocol.Author{ID: 1, DisplayName: "loadgen"}, Content: "churn", CreatedAt: time.Now().Unix()})
			}
		}()
		for w := 0; w < *workers; w++ {
			wg.Add(1)
			go func(u user) {
				defer wg.Done()
				for ctx.Err() == nil {
					tk, err := client.GetTicket(ctx, e.hc, e.ticketURL, u.token)
					if err != nil {
						if running() {
							noteErr(fmt.Errorf("ticket: %w", err))
						}
						continue
					}
					l, err := e.dialTicket(ctx, tk)
					if err == nil {
						err = subscribe(l, ch)
						if err == nil {
							// Receive one event, then leave.
							_ = l.NetConn().SetReadDeadline(time.Now().Add(2 * time.Second))
							if f, rerr := l.ReadText(); rerr == nil && strings.HasPrefix(string(f), `{"type":"message_create"`) {
								received.Add(1)
							}
						}
						l.Close()
					}
					if err != nil && running() {
						noteErr(err)
					}
					cycles.Add(1)
				}
			}(users[w])
		}
		wg.Wait()
		took := time.Since(start)
		after := e.sample()
		rep := &report{
			Params:  map[string]any{"workers": *workers, "duration": duration.String(), "rate": *rate},
			Columns: []string{"workers", "cycles", "cycles/s", "events received", "errors", "server CPU ms/cycle"},
			Rows: [][]any{{*workers, cycles.Load(), float64(cycles.Load()) / took.Seconds(), received.Load(), errs.Load(),
				cpuSeconds(before, after) * 1e3 / float64(max(cycles.Load(), 1))}},
			Notes: []string{"a cycle = ticket + connect + subscribe + receive one event + close"},
		}
		errMu.Lock()
		for text, n := range errSamples {
			rep.Notes = append(rep.Notes, fmt.Sprintf("error ×%d: %s", n, text))
		}
		errMu.Unlock()
		return rep, nil
	}
}
