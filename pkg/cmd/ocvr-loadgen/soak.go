package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ocvr/realtime/pkg/client"
	"github.com/ocvr/realtime/pkg/protocol"
)

// soakWorkload is the bounded soak of the hardening issue (HARDENING.md):
// --conns clients churn for --duration — get a ticket from ticketsvc,
// connect, subscribe, receive, disconnect, again — while events are
// published steadily. It reports connects/s, deliveries/s, unexpected
// errors and the gateway's RSS, heap and goroutines at the start, after
// the warm-up, at the end and once idle again, and fails (exit 1) when
//
//   - any unexpected error happened (a ticket, dial or subscribe failure, a
//     server close during a hold, a hold that received no event);
//   - the RSS at the end (the least of the last three samples under load)
//     and once idle both exceed the warm baseline by more than
//     --rss-margin (fraction) + --rss-slack-mib;
//   - once every client has left and the presence grace has passed
//     (--idle-settle), the goroutines exceed the start by more than
//     --goroutine-slack, or the heap (after a forced GC; needs the gateway's
//     --pprof) the start by more than --heap-slack-mib.
//
// Goroutines under load are reported but not judged: they follow the
// handshakes and socket writes in flight at the instant of the sample.
func soakWorkload(ctx context.Context, e *env, fs *flag.FlagSet) func() (*report, error) {
	conns := fs.Int("conns", 2000, "clients churning concurrently")
	duration := fs.Duration("duration", 10*time.Minute, "how long to churn")
	warmup := fs.Duration("warmup", 0, "warm-up before the baseline sample (default: 20% of --duration, at most 2m)")
	channels := fs.Int("channels", 20, "channels; client i subscribes to channel i mod C")
	rate := fs.Int("rate", 100, "events/s published, spread over the channels")
	holdMin := fs.Duration("hold-min", 2*time.Second, "shortest time a client stays connected")
	holdMax := fs.Duration("hold-max", 8*time.Second, "longest time a client stays connected")
	ramp := fs.Duration("ramp", 10*time.Second, "spread the clients' first connects over this")
	rssMargin := fs.Float64("rss-margin", 0.25, "allowed RSS growth from the warm baseline to the end, as a fraction")
	rssSlack := fs.Int("rss-slack-mib", 16, "allowed RSS growth on top of --rss-margin, MiB")
	gSlack := fs.Int("goroutine-slack", 10, "allowed goroutines idle after the soak over the start")
	heapSlack := fs.Int("heap-slack-mib", 16, "allowed heap growth from the start to idle after the soak, MiB")
	settle := fs.Duration("idle-settle", 15*time.Second, "wait after the last client left before the idle sample (longer than the gateway's presence grace, whose timers hold memory until they fire)")
	every := fs.Duration("report-every", 10*time.Second, "progress line interval")
	return func() (*report, error) {
		if *holdMin <= 0 || *holdMax < *holdMin || *channels <= 0 || *rate <= 0 || *conns <= 0 {
			return nil, errors.New("bad --hold-min/--hold-max/--channels/--rate/--conns")
		}
		if *warmup == 0 {
			*warmup = min(*duration/5, 2*time.Minute)
		}
		if per := float64(*rate) / float64(*channels); per*holdMin.Seconds() < 3 {
			return nil, fmt.Errorf("--rate %d over %d channels gives %.1f events per channel in --hold-min %v: want ≥ 3 so a hold without an event is an error", *rate, *channels, per*holdMin.Seconds(), *holdMin)
		}
		chName := func(i int) string { return "soak_" + strconv.Itoa(i%*channels) }
		for c := 0; c < *channels; c++ {
			if err := e.dir.CreateChannel(ctx, chName(c)); err != nil {
				return nil, err
			}
		}
		fmt.Fprintf(os.Stderr, "soak: creating %d users\n", *conns)
		users, err := e.makeUsers(ctx, *conns, chName)
		if err != nil {
			return nil, err
		}
		start := e.snapshot()
		fmt.Fprintf(os.Stderr, "soak: start  %s\n", start)

		runCtx, cancel := context.WithTimeout(ctx, *duration)
		defer cancel()
		var st soakStats
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); soakPublish(runCtx, e, *rate, *channels, chName, &st) }()
		t0 := time.Now()
		for i := 0; i < *conns; i++ {
			wg.Add(1)
			delay := time.Duration(int64(*ramp) * int64(i) / int64(*conns))
			go func(i int) {
				defer wg.Done()
				select {
				case <-runCtx.Done():
					return
				case <-time.After(delay):
				}
				soakClient(runCtx, e, users[i], chName(i), *holdMin, *holdMax, &st)
			}(i)
		}
		// Progress, and the warm baseline.
		var warm, end soakSnap
		warmAt := t0.Add(*warmup)
		tick := time.NewTicker(*every)
		var last soakCounts
		lastAt := t0
	loop:
		for {
			select {
			case <-runCtx.Done():
				break loop
			case now := <-tick.C:
				cur := st.counts()
				s := e.snapshot()
				fmt.Fprintf(os.Stderr, "soak: %4.0fs  %6.0f connects/s  %7.0f deliveries/s  open %4d  errors %d  %s\n",
					now.Sub(t0).Seconds(), float64(cur.connects-last.connects)/now.Sub(lastAt).Seconds(),
					float64(cur.deliveries-last.deliveries)/now.Sub(lastAt).Seconds(), st.open.Load(), cur.errors, s)
				last, lastAt = cur, now
				if warm.at.IsZero() && !now.Before(warmAt) {
					warm = s
					fmt.Fprintf(os.Stderr, "soak: warm baseline %s\n", warm)
				}
				// The end sample: of the last three under load, the one with
				// the least RSS — a leak raises that floor, a moment of CPU
				// starvation (handshakes piling up) does not.
				if time.Until(t0.Add(*duration)) < 3**every && (end.at.IsZero() || s.rss < end.rss) {
					end = s
				}
			}
		}
		tick.Stop()
		if end.at.IsZero() || warm.at.IsZero() {
			end = e.snapshot()
			if warm.at.IsZero() {
				warm = end
			}
		}
		churned := time.Since(t0)
		wg.Wait()
		total := st.counts()
		// Idle again: every client gone, then the gateway settles.
		deadline := time.Now().Add(60 * time.Second)
		for time.Now().Before(deadline) {
			if n, err := e.metric("ocvr_gateway_connections"); err == nil && n == 0 {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		time.Sleep(*settle)
		idle := e.snapshot()
		fmt.Fprintf(os.Stderr, "soak: end    %s\nsoak: idle   %s\n", end, idle)

		var violations []string
		if total.errors > 0 {
			violations = append(violations, fmt.Sprintf("%d unexpected errors (%s)", total.errors, st.errorSummary()))
		}
		if total.connects == 0 || total.deliveries == 0 {
			violations = append(violations, "no connects or no deliveries")
		}
		if lim := float64(warm.rss)*(1+*rssMargin) + float64(*rssSlack)*(1<<20); float64(min(end.rss, idle.rss)) > lim {
			violations = append(violations, fmt.Sprintf("RSS grew from %.1f MiB (warm) to %.1f MiB (end) and %.1f MiB (idle), limit %.1f MiB",
				mib(warm.rss), mib(end.rss), mib(idle.rss), lim/(1<<20)))
		}
		if idle.goroutines > start.goroutines+float64(*gSlack) {
			violations = append(violations, fmt.Sprintf("goroutines idle after the soak %.0f, at the start %.0f (limit +%d)", idle.goroutines, start.goroutines, *gSlack))
		}
		if start.heap > 0 && idle.heap > start.heap+float64(*heapSlack)*(1<<20) {
			violations = append(violations, fmt.Sprintf("heap idle after the soak %.1f MiB, at the start %.1f MiB (limit +%d MiB)", idle.heap/(1<<20), start.heap/(1<<20), *heapSlack))
		}
		if n, err := e.metric("ocvr_gateway_connections"); err != nil || n != 0 {
			violations = append(violations, fmt.Sprintf("%v connections still open after every client left (%v)", n, err))
		}
		verdict := "PASS"
		if len(violations) > 0 {
			verdict = "FAIL"
		}
		rep := &report{
			Params: map[string]any{"conns": *conns, "duration": duration.String(), "warmup": warmup.String(), "channels": *channels,
				"rate": *rate, "hold": holdMin.String() + "–" + holdMax.String()},
			Columns: []string{"duration s", "connects", "connects/s", "deliveries", "deliveries/s", "unexpected errors",
				"RSS MiB start/warm/end/idle", "heap MiB start/idle", "goroutines start/warm/end/idle", "verdict"},
			Rows: [][]any{{churned.Seconds(), total.connects, float64(total.connects) / churned.Seconds(),
				total.deliveries, float64(total.deliveries) / churned.Seconds(), total.errors,
				fmt.Sprintf("%.0f/%.0f/%.0f/%.0f", mib(start.rss), mib(warm.rss), mib(end.rss), mib(idle.rss)),
				fmt.Sprintf("%.1f/%.1f", start.heap/(1<<20), idle.heap/(1<<20)),
				fmt.Sprintf("%.0f/%.0f/%.0f/%.0f", start.goroutines, warm.goroutines, end.goroutines, idle.goroutines), verdict}},
			Notes: append([]string{fmt.Sprintf("events published: %d; expected client closes: %d; slow-consumer closes: %s; closes by code: %s",
				total.published, total.connects, metricString(e, "ocvr_gateway_slow_consumer_disconnects_total"), closeCodes(e))}, violations...),
		}
		if len(violations) > 0 {
			rep.print(os.Stdout)
			return nil, fmt.Errorf("soak failed: %s", strings.Join(violations, "; "))
		}
		return rep, nil
	}
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// soakSnap is a sample of the gateway.
type soakSnap struct {
	at         time.Time
	rss        int64
	heap       float64 // go_memstats_heap_inuse_bytes after a forced GC (0 if unavailable)
	goroutines float64
}

func (s soakSnap) String() string {
	return fmt.Sprintf("RSS %.1f MiB, heap %.1f MiB, goroutines %.0f", mib(s.rss), s.heap/(1<<20), s.goroutines)
}

// snapshot samples the gateway: RSS (first --pids entry), heap after a
// forced GC (pprof's heap endpoint with gc=1 when the gateway serves
// --pprof), goroutines.
func (e *env) snapshot() soakSnap {
	s := soakSnap{at: time.Now(), rss: e.sample().gwRSS, goroutines: e.goroutines()}
	if resp, err := e.hc.Get(e.adminURL + "/debug/pprof/heap?gc=1"); err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 {
			s.heap, _ = e.metric("go_memstats_heap_inuse_bytes")
		}
	}
	return s
}

// closeCodes lists the gateway's disconnects by code.
func closeCodes(e *env) string {
	var parts []string
	for _, c := range []string{"1000", "1001", "1006", "1011", "4001", "4008", "4009", "4010", "other"} {
		v, err := e.metricLabel("ocvr_gateway_disconnects_total", `code="`+c+`"`)
		if err == nil && v > 0 {
			parts = append(parts, c+"="+strconv.FormatFloat(v, 'f', 0, 64))
		}
	}
	return strings.Join(parts, " ")
}

// metricLabel reads one labelled series from the gateway's /metrics.
func (e *env) metricLabel(name, label string) (float64, error) {
	resp, err := e.hc.Get(e.adminURL + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, name+"{") && strings.Contains(line, label) {
			return strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		}
	}
	return 0, fmt.Errorf("%s{%s} not found", name, label)
}

type soakStats struct {
	connects, deliveries, errors, published atomic.Int64
	open                                    atomic.Int64
	mu                                      sync.Mutex
	kinds                                   map[string]int
	sample                                  map[string]string
}

type soakCounts struct{ connects, deliveries, errors, published int64 }

func (s *soakStats) counts() soakCounts {
	return soakCounts{s.connects.Load(), s.deliveries.Load(), s.errors.Load(), s.published.Load()}
}

// fail records an unexpected error of a kind, keeping one example each.
func (s *soakStats) fail(kind string, err error) {
	s.errors.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.kinds == nil {
		s.kinds, s.sample = map[string]int{}, map[string]string{}
	}
	s.kinds[kind]++
	if _, ok := s.sample[kind]; !ok && err != nil {
		s.sample[kind] = err.Error()
		fmt.Fprintf(os.Stderr, "soak: unexpected %s: %v\n", kind, err)
	}
}

func (s *soakStats) errorSummary() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var parts []string
	for k, n := range s.kinds {
		parts = append(parts, fmt.Sprintf("%s ×%d, e.g. %s", k, n, s.sample[k]))
	}
	return strings.Join(parts, "; ")
}

// soakPublish publishes rate events/s round-robin over the channels.
func soakPublish(ctx context.Context, e *env, rate, channels int, chName func(int) string, st *soakStats) {
	const tick = 10 * time.Millisecond
	t := time.NewTicker(tick)
	defer t.Stop()
	start := time.Now()
	var sent int64
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		due := int64(float64(rate) * time.Since(start).Seconds())
		for ; sent < due; sent++ {
			ch := chName(int(sent) % channels)
			err := e.pub.MessageCreated(context.Background(), protocol.MessageCreate{
				ID: "s" + strconv.FormatInt(sent, 10), ChannelID: ch, Author: protocol.Author{ID: 1, DisplayName: "soak"},
				Content: "soak event", CreatedAt: time.Now().Unix(),
			})
			if err != nil {
				st.fail("publish", err)
				continue
			}
			st.published.Add(1)
		}
	}
}

// soakClient cycles one client until ctx ends: ticket, connect, subscribe,
// receive for a random hold, disconnect (a close handshake, or every
// fourth time an abrupt close).
func soakClient(ctx context.Context, e *env, u user, ch string, holdMin, holdMax time.Duration, st *soakStats) {
	// Operations cut by the end of the soak are not errors: the socket
	// deadlines follow ctx's, so they may fail a moment before ctx reports
	// it.
	deadline, _ := ctx.Deadline()
	ending := func() bool { return ctx.Err() != nil || time.Until(deadline) < 2*time.Second }
	for cycle := 0; ctx.Err() == nil; cycle++ {
		tk, err := client.GetTicket(ctx, e.hc, e.ticketURL, u.token)
		if err != nil {
			if !ending() {
				st.fail("ticket", err)
				sleepCtx(ctx, time.Second)
			}
			continue
		}
		l, err := e.dialTicket(ctx, tk)
		if err != nil {
			if !ending() {
				st.fail("connect", err)
				sleepCtx(ctx, time.Second)
			}
			continue
		}
		st.connects.Add(1)
		st.open.Add(1)
		if err := subscribe(l, ch); err != nil {
			if !ending() {
				st.fail("subscribe", err)
			}
			l.CloseNow()
			st.open.Add(-1)
			continue
		}
		hold := holdMin + time.Duration(rand.Int64N(int64(holdMax-holdMin)+1))
		end := time.Now().Add(hold)
		if dl, ok := ctx.Deadline(); ok && dl.Before(end) {
			end, hold = dl, time.Until(dl) // cut short by the end of the soak
		}
		_ = l.NetConn().SetReadDeadline(end)
		got := 0
		var rerr error
		for {
			f, err := l.ReadText()
			if err != nil {
				rerr = err
				break
			}
			if strings.HasPrefix(string(f), `{"type":"message_create"`) {
				got++
			}
		}
		st.deliveries.Add(int64(got))
		var ne net.Error
		timedOut := errors.As(rerr, &ne) && ne.Timeout()
		switch {
		case ending() && !timedOut:
			// cut by the end of the soak: nothing to judge
		case !timedOut:
			st.fail("server close during a hold", rerr)
		case got == 0 && hold >= holdMin:
			st.fail("hold without an event", fmt.Errorf("%s: nothing in %v", ch, hold))
		}
		if cycle%4 == 3 {
			l.CloseNow()
		} else {
			_ = l.NetConn().SetDeadline(time.Now().Add(2 * time.Second))
			l.Close()
		}
		st.open.Add(-1)
		sleepCtx(ctx, time.Duration(rand.Int64N(int64(200*time.Millisecond))))
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
