//go:build unix

package clustertest_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ocvr/realtime/pkg/client"
	"github.com/ocvr/realtime/pkg/clustertest"
	"github.com/ocvr/realtime/pkg/ticket"
)

// Fault tests (HARDENING.md, "Faults"): real gateway processes, real
// signals, a real NATS outage. Each ends with every other connection
// healthy, the survivors' goroutines and heap back at their baseline, and
// the fault visible in metrics and logs.

// member is one lean client socket of a fleet, with a reader counting
// what it receives.
type member struct {
	l   *client.Lite
	pod int

	mu     sync.Mutex
	events []int // sequence numbers of fault events, in arrival order
	acks   int
	err    error // why the socket ended
	done   chan struct{}
}

func (m *member) read() {
	defer close(m.done)
	for {
		f, err := m.l.ReadText()
		if err != nil {
			m.mu.Lock()
			m.err = err
			m.mu.Unlock()
			return
		}
		s := string(f)
		m.mu.Lock()
		switch {
		case strings.HasPrefix(s, `{"type":"heartbeat_ack"`):
			m.acks++
		case strings.HasPrefix(s, `{"type":"message_create"`):
			if i := strings.Index(s, `"id":"f`); i >= 0 {
				rest := s[i+7:]
				if n, err := strconv.Atoi(rest[:strings.IndexByte(rest, '"')]); err == nil {
					m.events = append(m.events, n)
				}
			}
		}
		m.mu.Unlock()
	}
}

func (m *member) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.events)
}

func (m *member) closed() (bool, error) {
	select {
	case <-m.done:
		m.mu.Lock()
		defer m.mu.Unlock()
		return true, m.err
	default:
		return false, nil
	}
}

// gaps describes what is wrong with the events received: they must be
// exactly from..to-1, in order, once each.
func (m *member) gaps(from, to int) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.events) != to-from {
		return fmt.Sprintf("%d events, want %d (first %v)", len(m.events), to-from, head(m.events))
	}
	for i, n := range m.events {
		if n != from+i {
			return fmt.Sprintf("event %d at position %d, want %d", n, i, from+i)
		}
	}
	return ""
}

func head(v []int) []int {
	if len(v) > 5 {
		return v[:5]
	}
	return v
}

// fleet is many lean sockets, each subscribed to one channel.
type fleet struct {
	c       *clustertest.Cluster
	channel string
	members []*member
}

// newFleet creates users users (perUser sockets each, ids from base),
// members of channel, and connects them to the given pods round-robin,
// subscribed.
func newFleet(t *testing.T, c *clustertest.Cluster, channel string, base int64, users, perUser int, pods ...int) *fleet {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ids := make([]ticket.Identity, 0, users*perUser)
	var mu sync.Mutex
	err := parallel(users, 16, func(i int) error {
		u := c.NewUser(base+int64(i), "f"+strconv.Itoa(i))
		if err := c.Directory.AddMember(ctx, channel, u.ID); err != nil {
			return err
		}
		mu.Lock()
		for k := 0; k < perUser; k++ {
			ids = append(ids, ticket.Identity{SessionID: u.Session.ID, UserID: u.ID, DisplayName: u.Name})
		}
		mu.Unlock()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	f := &fleet{c: c, channel: channel, members: make([]*member, len(ids))}
	sub := []byte(`{"type":"subscribe","data":{"channel_id":"` + channel + `"}}`)
	err = parallel(len(ids), 32, func(i int) error {
		pod := pods[i%len(pods)]
		tk, err := c.Tickets.Mint(ctx, ids[i])
		if err != nil {
			return err
		}
		l, err := client.DialLite(ctx, c.Gateways[pod].WSURL(), tk, client.LiteOptions{ReadBuffer: 1024})
		if err != nil {
			return err
		}
		m := &member{l: l, pod: pod, done: make(chan struct{})}
		f.members[i] = m
		_ = l.NetConn().SetReadDeadline(time.Now().Add(30 * time.Second))
		for _, want := range []string{`{"type":"ready"`, ""} {
			if want == "" {
				if err := l.WriteText(sub); err != nil {
					return err
				}
				want = `{"type":"subscribed"`
			}
			fr, err := l.ReadText()
			if err != nil {
				return err
			}
			if !strings.HasPrefix(string(fr), want) {
				return fmt.Errorf("got %.100s, want %s", fr, want)
			}
		}
		_ = l.NetConn().SetReadDeadline(time.Time{})
		go m.read()
		return nil
	})
	t.Cleanup(func() {
		for _, m := range f.members {
			if m != nil {
				_ = m.l.CloseNow()
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// on returns the members on pod.
func (f *fleet) on(pod int) []*member {
	var out []*member
	for _, m := range f.members {
		if m.pod == pod {
			out = append(out, m)
		}
	}
	return out
}

// publish publishes fault events from..to-1 on the fleet's channel.
func (f *fleet) publish(t *testing.T, from, to int) {
	t.Helper()
	for n := from; n < to; n++ {
		if err := f.c.Publisher.MessageCreated(context.Background(), msg(f.channel, "f"+strconv.Itoa(n))); err != nil {
			t.Fatal(err)
		}
	}
}

// waitAll waits until every member of ms has received want events.
func waitAll(t *testing.T, ms []*member, want int, d time.Duration, what string) {
	t.Helper()
	clustertest.Eventually(t, d, what, func() bool {
		for _, m := range ms {
			if m.count() < want {
				return false
			}
		}
		return true
	})
}

// healthy proves each member's socket is open and served: a heartbeat is
// answered.
func healthy(t *testing.T, ms []*member) {
	t.Helper()
	before := make([]int, len(ms))
	for i, m := range ms {
		if closed, err := m.closed(); closed {
			t.Fatalf("member %d (pod %d) is closed: %v", i, m.pod, err)
		}
		m.mu.Lock()
		before[i] = m.acks
		m.mu.Unlock()
		if err := m.l.WriteText([]byte(`{"type":"heartbeat"}`)); err != nil {
			t.Fatalf("member %d: heartbeat: %v", i, err)
		}
	}
	clustertest.Eventually(t, 20*time.Second, "every heartbeat answered", func() bool {
		for i, m := range ms {
			m.mu.Lock()
			n := m.acks
			m.mu.Unlock()
			if n <= before[i] {
				return false
			}
		}
		return true
	})
}

// usage is a process's goroutines and heap after a forced GC.
type usage struct {
	goroutines float64
	heap       float64 // go_memstats_heap_inuse_bytes after GC
}

// measure forces a GC in the gateway (pprof's heap endpoint with gc=1:
// gateways here run with --pprof) and reads goroutines and heap.
func measure(t *testing.T, p *clustertest.Process) usage {
	t.Helper()
	resp, err := http.Get("http://" + p.Admin + "/debug/pprof/heap?gc=1")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	var u usage
	if u.goroutines, err = p.Metric("go_goroutines"); err != nil {
		t.Fatal(err)
	}
	if u.heap, err = p.Metric("go_memstats_heap_inuse_bytes"); err != nil {
		t.Fatal(err)
	}
	return u
}

// recovered asserts that p's goroutines and heap returned to the baseline:
// goroutines within +10, heap within +25% + 4 MiB (it is measured after a
// forced GC, so what remains is live). It waits up to 20 s for stragglers
// (writers finishing their close handshakes).
func recovered(t *testing.T, p *clustertest.Process, base usage) usage {
	t.Helper()
	var u usage
	deadline := time.Now().Add(20 * time.Second)
	for {
		u = measure(t, p)
		okG := u.goroutines <= base.goroutines+10
		okH := u.heap <= base.heap*1.25+4<<20
		if okG && okH {
			t.Logf("%s recovered: goroutines %.0f → %.0f, heap %.1f → %.1f MiB", p.Name, base.goroutines, u.goroutines, base.heap/(1<<20), u.heap/(1<<20))
			return u
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not return to its baseline: goroutines %.0f → %.0f, heap %.1f → %.1f MiB",
				p.Name, base.goroutines, u.goroutines, base.heap/(1<<20), u.heap/(1<<20))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func metric(t *testing.T, p *clustertest.Process, name string, labels ...string) float64 {
	t.Helper()
	v, err := p.Metric(name, labels...)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// faultArgs: profiling endpoints for the forced GC, short presence
// timings so a dead pod is noticed within the test.
var faultArgs = []string{"--pprof", "--presence-lease-ttl", "3s", "--presence-grace", "2s"}

// TestFaultKill9MidDelivery: a gateway killed with SIGKILL while events
// stream: the other pod's connections keep receiving every event, in
// order, none lost; the dead pod's sockets drop (1006, no close frame);
// the survivor notices the dead pod's lease and cleans up its presence
// (logged); the killed pod restarts and serves again; the survivor's
// goroutines and heap are back at baseline.
func TestFaultKill9MidDelivery(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Gateways: 2, GatewayArgs: faultArgs})
	c.Channel("ch_kill")
	f := newFleet(t, c, "ch_kill", 1000, 200, 1, 0, 1)
	victim, survivor := c.Gateways[0], c.Gateways[1]
	f.publish(t, 0, 10)
	waitAll(t, f.members, 10, 20*time.Second, "warm-up events")
	base := measure(t, survivor)

	// Publish steadily; kill the first pod a third of the way through.
	const total = 300
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for n := 10; n < 10+total; n++ {
			f.publish(t, n, n+1)
			if n == 10+total/3 {
				victim.Kill()
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	wg.Wait()
	waitAll(t, f.on(1), 10+total, 30*time.Second, "every event on the surviving pod")
	for i, m := range f.on(1) {
		if g := m.gaps(0, 10+total); g != "" {
			t.Fatalf("survivor member %d: %s", i, g)
		}
	}
	for i, m := range f.on(0) {
		select {
		case <-m.done:
		case <-time.After(10 * time.Second):
			t.Fatalf("member %d of the killed pod still open", i)
		}
		_, err := m.closed()
		var ce *client.CloseError
		if errors.As(err, &ce) {
			t.Fatalf("member %d of the killed pod got a close frame %d: a SIGKILLed process sends none", i, ce.Code)
		}
	}
	healthy(t, f.on(1))
	clustertest.Eventually(t, 30*time.Second, "the survivor cleans up after the dead pod (log)", func() bool {
		return strings.Contains(survivor.Log(), `"msg":"presence: cleaning up after dead pod","dead_pod":"gateway-1"`) ||
			strings.Contains(survivor.Log(), `presence: cleaning up after dead pod`)
	})
	if got := metric(t, survivor, "ocvr_gateway_connections"); got != 200/2 {
		t.Errorf("survivor connections %v, want %d", got, 200/2)
	}
	recovered(t, survivor, base)

	// The killed pod comes back and serves new connections.
	if err := victim.Restart(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	back := newFleet(t, c, "ch_kill", 5000, 20, 1, 0)
	f.publish(t, 10000, 10001)
	waitAll(t, back.members, 1, 20*time.Second, "events on the restarted pod")
	healthy(t, append(f.on(1), back.members...))
}

// TestFaultNATSOutage: NATS stops for 10 s. Every socket stays open and
// keeps answering heartbeats; the pods report the outage (nats_connected
// 0, unready, logged); after NATS returns every connection receives again,
// the reconnect is counted and logged, and goroutines and heap return to
// their baseline.
func TestFaultNATSOutage(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Gateways: 2, GatewayArgs: faultArgs})
	c.Channel("ch_outage")
	f := newFleet(t, c, "ch_outage", 1000, 100, 2, 0, 1)
	f.publish(t, 0, 5)
	waitAll(t, f.members, 5, 20*time.Second, "warm-up events")
	bases := []usage{measure(t, c.Gateways[0]), measure(t, c.Gateways[1])}

	ns := c.NATS[0]
	ns.Stop()
	stopped := time.Now()
	for _, g := range c.Gateways {
		clustertest.Eventually(t, 10*time.Second, g.Name+" reports the outage", func() bool {
			v, err := g.Metric("ocvr_gateway_nats_connected")
			ready, _ := g.Ready()
			return err == nil && v == 0 && !ready
		})
	}
	healthy(t, f.members) // served locally throughout the outage
	time.Sleep(time.Until(stopped.Add(10 * time.Second)))
	if err := ns.Restart(); err != nil {
		t.Fatal(err)
	}
	for _, m := range f.members {
		if closed, err := m.closed(); closed {
			t.Fatalf("a socket closed during the outage: %v", err)
		}
	}
	for _, g := range c.Gateways {
		if err := g.WaitReady(30 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	// Delivery resumes for everyone: publish until each has a new event.
	next := 100
	clustertest.Eventually(t, 30*time.Second, "delivery to every connection after the outage", func() bool {
		f.publish(t, next, next+1)
		next++
		time.Sleep(100 * time.Millisecond)
		for _, m := range f.members {
			if m.count() <= 5 {
				return false
			}
		}
		return true
	})
	healthy(t, f.members)
	for i, g := range c.Gateways {
		if n := metric(t, g, "ocvr_gateway_nats_reconnects_total"); n < 1 {
			t.Errorf("%s: nats_reconnects_total %v", g.Name, n)
		}
		if v := metric(t, g, "ocvr_gateway_nats_connected"); v != 1 {
			t.Errorf("%s: nats_connected %v", g.Name, v)
		}
		log := g.Log()
		if !strings.Contains(log, "nats disconnected") || !strings.Contains(log, "nats reconnected") {
			t.Errorf("%s: the outage is not in the log", g.Name)
		}
		recovered(t, g, bases[i])
	}
}

// TestFaultZeroWindowClient: one client stops reading with a tiny receive
// buffer (its TCP window goes to zero) among 1,000 that read. The 1,000
// receive every event, in order; the stuck one is closed with 4009
// (counted and logged) without holding anyone up; no goroutine is left
// behind for it.
func TestFaultZeroWindowClient(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Gateways: 1,
		// The stuck socket's last write ends within --write-timeout (default
		// 30 s), then the 4009.
		GatewayArgs: append([]string{"--queue-size", "64", "--socket-send-buffer", "4096", "--write-timeout", "10s"}, faultArgs...)})
	c.Channel("ch_window")
	gw := c.Gateways[0]
	f := newFleet(t, c, "ch_window", 1000, 100, 10, 0) // 1,000 readers
	base := measure(t, gw)

	// The stuck client: 1 KiB receive buffer, and a client whose reader
	// stops after one buffered frame.
	stuckUser := c.NewUser(9999, "Stuck")
	if err := c.Directory.AddMember(context.Background(), "ch_window", stuckUser.ID); err != nil {
		t.Fatal(err)
	}
	tk, err := c.Tickets.Mint(context.Background(), ticket.Identity{SessionID: stuckUser.Session.ID, UserID: stuckUser.ID, DisplayName: "Stuck"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stuck, err := client.Dial(ctx, gw.WSURL(), tk, client.Options{Heartbeat: -1, Buffer: 1, HTTPClient: tinyRcvBuf()})
	if err != nil {
		t.Fatal(err)
	}
	defer stuck.CloseNow()
	if err := stuck.Subscribe(ctx, "ch_window"); err != nil {
		t.Fatal(err)
	}

	// Bursts of 20 ~1 KiB events; the readers keep up between bursts, the
	// stuck client falls further behind each time. Core publishes: events
	// without a stream position are what still cuts a slow consumer off
	// (positioned ones make it catch up: TestContinuity…, gateway tests).
	pad := strings.Repeat("x", 1000)
	core := c.Publisher.Core()
	sent := 0
	for burst := 0; burst < 10; burst++ {
		for i := 0; i < 20; i++ {
			m := msg("ch_window", "f"+strconv.Itoa(sent))
			m.Content = pad
			if err := core.MessageCreated(context.Background(), m); err != nil {
				t.Fatal(err)
			}
			sent++
		}
		waitAll(t, f.members, sent, 60*time.Second, fmt.Sprintf("burst %d at every reader", burst))
	}
	for i, m := range f.members {
		if g := m.gaps(0, sent); g != "" {
			t.Fatalf("reader %d: %s", i, g)
		}
	}
	clustertest.Eventually(t, 20*time.Second, "the stuck client closed with 4009", func() bool {
		v, err := gw.Metric("ocvr_gateway_disconnects_total", `code="4009"`)
		return err == nil && v == 1
	})
	if v := metric(t, gw, "ocvr_gateway_slow_consumer_disconnects_total"); v != 1 {
		t.Errorf("slow_consumer_disconnects_total %v, want 1", v)
	}
	if !strings.Contains(gw.Log(), `"code":4009,"reason":"slow consumer"`) {
		t.Errorf("the 4009 close is not logged")
	}
	if got := metric(t, gw, "ocvr_gateway_connections"); got != 1000 {
		t.Errorf("connections %v, want the 1,000 readers", got)
	}
	healthy(t, f.members)
	recovered(t, gw, base)
}

// tinyRcvBuf is an HTTP client whose sockets have a 1 KiB receive buffer.
func tinyRcvBuf() *http.Client {
	d := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 1024)
		}); err != nil {
			return err
		}
		return serr
	}}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
}

// TestFaultSIGSTOP: a gateway frozen for 5 s (SIGSTOP) then resumed
// (SIGCONT) while events stream. The other pod's connections receive
// everything without a pause; the frozen pod's connections get every event
// once it resumes (late: visible in its delivery-latency histogram), none
// lost, and keep working; goroutines and heap return to baseline.
func TestFaultSIGSTOP(t *testing.T) {
	// Default presence timings: the 5 s freeze stays within the pod's
	// 10 s lease, as a GC pause or a stalled node would.
	c := clustertest.Start(t, clustertest.Options{Gateways: 2, GatewayArgs: []string{"--pprof"}})
	c.Channel("ch_freeze")
	f := newFleet(t, c, "ch_freeze", 1000, 100, 2, 0, 1)
	frozen, other := c.Gateways[0], c.Gateways[1]
	f.publish(t, 0, 5)
	waitAll(t, f.members, 5, 20*time.Second, "warm-up events")
	bases := []usage{measure(t, frozen), measure(t, other)}
	slowBefore := metric(t, frozen, "ocvr_gateway_delivery_latency_seconds_count") - metric(t, frozen, "ocvr_gateway_delivery_latency_seconds_bucket", `le="1"`)

	if err := frozen.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stoppedAt := time.Now()
	resumed := false
	defer func() {
		if !resumed {
			_ = frozen.Signal(syscall.SIGCONT)
		}
	}()
	// 5 s of events at 40/s while frozen: the other pod delivers them as
	// they come.
	n := 5
	for time.Since(stoppedAt) < 5*time.Second {
		f.publish(t, n, n+1)
		n++
		time.Sleep(25 * time.Millisecond)
	}
	waitAll(t, f.on(1), n, 5*time.Second, "the other pod's connections, during the freeze")
	if got := f.on(0)[0].count(); got > 5 {
		t.Logf("note: a frozen pod's member has %d events (buffered before the stop)", got)
	}
	if err := frozen.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	resumed = true
	t.Logf("frozen for %v; %d events published meanwhile", time.Since(stoppedAt).Round(time.Millisecond), n-5)
	waitAll(t, f.members, n, 30*time.Second, "every event on both pods after the resume")
	for i, m := range f.members {
		if g := m.gaps(0, n); g != "" {
			t.Fatalf("member %d (pod %d): %s", i, m.pod, g)
		}
	}
	healthy(t, f.members)
	slowAfter := metric(t, frozen, "ocvr_gateway_delivery_latency_seconds_count") - metric(t, frozen, "ocvr_gateway_delivery_latency_seconds_bucket", `le="1"`)
	if slowAfter-slowBefore < 1 {
		t.Errorf("the frozen pod's latency histogram shows no delivery slower than 1 s")
	}
	t.Logf("deliveries over 1 s on the frozen pod: %.0f", slowAfter-slowBefore)
	if v := metric(t, frozen, "ocvr_gateway_connections"); v != 100 {
		t.Errorf("frozen pod connections %v after the resume, want 100", v)
	}
	recovered(t, frozen, bases[0])
	recovered(t, other, bases[1])
}

// parallel runs do(i) for i in [0, n) on k workers; it returns the first
// error.
func parallel(n, k int, do func(i int) error) error {
	var wg sync.WaitGroup
	var first error
	var mu sync.Mutex
	work := make(chan int)
	for w := 0; w < k; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if err := do(i); err != nil {
					mu.Lock()
					if first == nil {
						first = fmt.Errorf("item %d: %w", i, err)
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	return first
}
