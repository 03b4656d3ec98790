//go:build !race

package gateway_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ocvr/realtime/gateway/internal/gateway"
	"github.com/ocvr/realtime/pkg/bus"
	"github.com/ocvr/realtime/pkg/client"
	"github.com/ocvr/realtime/pkg/directory"
	"github.com/ocvr/realtime/pkg/natsembed"
	"github.com/ocvr/realtime/pkg/session"
	"github.com/ocvr/realtime/pkg/ticket"
)

// Resource bounds (HARDENING.md, "Memory per connection"). Measured with
// `make test-bounds` on the 2-core development machine (Go 1.26, epoll
// poller mode, 5,000 connections × 50 subscriptions): 6.3–6.7 KiB of
// gateway heap per idle connection (about 46 objects: the socket, the
// websocket state, a 1 KiB read buffer, the user's and broadcast topics'
// entries, presence) and 106–120 B per channel subscription. The bounds
// add about 40% so that a regression (a buffer kept per connection, a
// goroutine or a map per subscription) fails the test.
const (
	maxHeapPerConn = 9 * 1024 // bytes of gateway heap per idle connection
	maxHeapPerSub  = 150      // bytes of gateway heap per subscription
)

// Figures of the test: OCVR_BOUNDS_CONNS and OCVR_BOUNDS_SUBS override
// them for exploration.
func boundsFigures() (conns, subs int) {
	conns, subs = 5000, 50
	if v, err := strconv.Atoi(os.Getenv("OCVR_BOUNDS_CONNS")); err == nil && v > 0 {
		conns = v
	}
	if v, err := strconv.Atoi(os.Getenv("OCVR_BOUNDS_SUBS")); err == nil && v > 0 {
		subs = v
	}
	return conns, subs
}

const helperEnv = "OCVR_RESOURCE_HELPER"

// TestResourceBounds opens 5,000 connections (one user each), then gives
// each 50 channel subscriptions (50 channels, every user a member of all),
// and asserts the gateway's heap growth per connection and per
// subscription stays under the documented bounds.
//
// Only the gateway lives in this process: NATS and the 5,000 client
// sockets run in a helper process (this test binary re-executed as
// TestResourceHelper), so the heap measured is the gateway's own (with its
// NATS client) — not the embedded server's JetStream caches, nor the
// clients'. Heap is HeapInuse after two forced GCs.
//
// Not under the race detector (its shadow memory and slower code make the
// figures meaningless): `make test` runs it in `make test-bounds`.
func TestResourceBounds(t *testing.T) {
	if os.Getenv(helperEnv) != "" {
		t.Skip("inside the helper process")
	}
	if testing.Short() {
		t.Skip("-short: 5,000 connections")
	}
	nConns, nSubs := boundsFigures()
	start := time.Now()
	h := startResourceHelper(t)

	// The gateway, on the helper's NATS.
	var gp atomic.Pointer[gateway.Gateway]
	gnc, err := bus.Connect(bus.Config{URLs: []string{h.natsURL}, Name: "gateway-test", OnReconnect: func() {
		if g := gp.Load(); g != nil {
			g.NATSReconnected()
		}
	}})
	mustNoErr(t, err)
	t.Cleanup(gnc.Close)
	g, err := gateway.New(gateway.Config{
		PodName:          "bounds",
		HeartbeatTimeout: time.Hour, // the sockets stay silent throughout
		FrameRate:        1000, FrameBurst: 1000,
		SweepInterval: time.Second,
	}, gnc)
	mustNoErr(t, err)
	gp.Store(g)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = g.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, 30*time.Second, func() bool { ok, _ := g.Ready(); return ok })
	srv := httptest.NewServer(g.Handler())
	t.Cleanup(srv.Close)
	wsURL := "ws" + strings.TrimPrefix(srv.URL, "http") + "/v1/ws"

	// Setup on a connection of its own: users, sessions, channels,
	// memberships, one ticket per connection.
	tickets, channels := setupBounds(t, h.natsURL, nConns, nSubs)
	t.Logf("setup: %d sessions, %d channels, %d memberships in %v", nConns, nSubs, nConns*nSubs, time.Since(start).Round(time.Millisecond))
	tkFile := filepath.Join(t.TempDir(), "tickets")
	mustNoErr(t, os.WriteFile(tkFile, []byte(strings.Join(tickets, "\n")), 0o600))

	base := heapNow()
	t0 := time.Now()
	h.do(t, "connect "+wsURL+" "+tkFile)
	waitFor(t, 60*time.Second, func() bool { return g.Connections() == nConns })
	// Presence settles (one online transition per user), then measure.
	waitFor(t, 120*time.Second, func() bool {
		return gaugeOf(t, g, "ocvr_gateway_presence_transitions_total", "online") >= float64(nConns)
	})
	connected := heapNow()
	writeHeapProfile(t, "connected")
	t.Logf("connect: %d connections in %v", nConns, time.Since(t0).Round(time.Millisecond))

	t0 = time.Now()
	h.do(t, "subscribe "+strings.Join(channels, ","))
	if got := gaugeOf(t, g, "ocvr_gateway_subscriptions", ""); got != float64(nConns*nSubs) {
		t.Fatalf("subscriptions gauge %v, want %d", got, nConns*nSubs)
	}
	subscribed := heapNow()
	writeHeapProfile(t, "subscribed")
	t.Logf("subscribe: %d subscriptions in %v", nConns*nSubs, time.Since(t0).Round(time.Millisecond))

	perConn := float64(int64(connected.HeapInuse)-int64(base.HeapInuse)) / float64(nConns)
	perSub := float64(int64(subscribed.HeapInuse)-int64(connected.HeapInuse)) / float64(nConns*nSubs)
	t.Logf("gateway heap: base %.1f MiB, %d connections %.1f MiB, +%d subscriptions %.1f MiB",
		mib(base.HeapInuse), nConns, mib(connected.HeapInuse), nConns*nSubs, mib(subscribed.HeapInuse))
	t.Logf("per connection: %.2f KiB heap (bound %.2f KiB), %.1f objects; per subscription: %.0f B heap (bound %d B); goroutines %d; stack %.1f MiB",
		perConn/1024, float64(maxHeapPerConn)/1024, float64(int64(connected.HeapObjects)-int64(base.HeapObjects))/float64(nConns),
		perSub, maxHeapPerSub, runtime.NumGoroutine(), mib(subscribed.StackInuse))
	if perConn > maxHeapPerConn {
		t.Errorf("heap per idle connection %.0f B exceeds the bound %.0f B", perConn, float64(maxHeapPerConn))
	}
	if perSub > maxHeapPerSub {
		t.Errorf("heap per subscription %.0f B exceeds the bound %d B", perSub, maxHeapPerSub)
	}
	if perConn <= 0 || perSub <= 0 {
		t.Errorf("implausible figures: per connection %.0f B, per subscription %.0f B", perConn, perSub)
	}

	// Everything is given back: connections, subscriptions, goroutines.
	h.do(t, "close")
	waitFor(t, 60*time.Second, func() bool { return g.Connections() == 0 })
	if got := gaugeOf(t, g, "ocvr_gateway_subscriptions", ""); got != 0 {
		t.Errorf("subscriptions gauge %v after every connection closed", got)
	}
	t.Logf("total %v", time.Since(start).Round(time.Millisecond))
}

// writeHeapProfile writes a heap profile to $OCVR_BOUNDS_PROFILE/<name>.pprof
// when that variable is set (go tool pprof -sample_index=inuse_space …).
func writeHeapProfile(t *testing.T, name string) {
	dir := os.Getenv("OCVR_BOUNDS_PROFILE")
	if dir == "" {
		return
	}
	f, err := os.Create(filepath.Join(dir, name+".pprof"))
	mustNoErr(t, err)
	defer f.Close()
	mustNoErr(t, pprof.Lookup("heap").WriteTo(f, 0))
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// heapNow returns the memory statistics after two full collections.
func heapNow() runtime.MemStats {
	runtime.GC()
	debug.FreeOSMemory()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m
}

// gaugeOf reads a metric of g (with label value lv when not "").
func gaugeOf(t *testing.T, g *gateway.Gateway, name, lv string) float64 {
	t.Helper()
	mfs, err := g.Registry().Gather()
	mustNoErr(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if lv != "" && (len(m.GetLabel()) == 0 || m.GetLabel()[0].GetValue() != lv) {
				continue
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

// setupBounds creates n users with a session each, subs channels with every
// user a member (asynchronous KV puts: 250,000 of them), and one ticket per
// user. It returns the tickets and the channel ids.
func setupBounds(t *testing.T, natsURL string, n, subs int) ([]string, []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	nc, err := nats.Connect(natsURL, nats.Name("bounds-setup"))
	mustNoErr(t, err)
	defer nc.Close()
	subjects, _ := bus.NewSubjects("")
	pub := bus.NewPublisher(nc, subjects)
	sessions, err := session.Open(ctx, nc, "", pub)
	mustNoErr(t, err)
	tickets, err := ticket.Open(ctx, nc, "")
	mustNoErr(t, err)
	dir, err := directory.Open(ctx, nc)
	mustNoErr(t, err)
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	mustNoErr(t, err)

	channels := make([]string, subs)
	for i := range channels {
		channels[i] = "bounds_" + strconv.Itoa(i)
		mustNoErr(t, dir.CreateChannel(ctx, channels[i]))
	}
	out := make([]string, n)
	var wg sync.WaitGroup
	var failed atomic.Value
	work := make(chan int)
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				id := int64(i + 1)
				_, s, err := sessions.Create(ctx, id, "u"+strconv.Itoa(i), 2*time.Hour)
				if err == nil {
					out[i], err = tickets.Mint(ctx, ticket.Identity{SessionID: s.ID, UserID: id, DisplayName: s.DisplayName})
				}
				if err != nil {
					failed.Store(err)
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		work <- i
	}
	close(work)
	// Memberships: the directory's keys, written without waiting for each ack.
	stamp := []byte(time.Now().UTC().Format(time.RFC3339))
	for _, ch := range channels {
		for i := 0; i < n; i++ {
			if _, err := js.PublishAsync("$KV."+directory.MembersBucket+"."+ch+"."+strconv.Itoa(i+1), stamp); err != nil {
				t.Fatal(err)
			}
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		t.Fatal("memberships not acknowledged")
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		t.Fatal(err)
	}
	if ok, err := dir.IsMember(ctx, channels[subs-1], int64(n)); err != nil || !ok {
		t.Fatalf("last membership missing: %v %v", ok, err)
	}
	return out, channels
}

// resourceHelper is the helper process: an embedded NATS server and the
// client sockets, driven by line commands on its stdin.
type resourceHelper struct {
	natsURL string
	in      io.Writer
	out     *bufio.Scanner
	mu      sync.Mutex
}

func startResourceHelper(t *testing.T) *resourceHelper {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestResourceHelper$", "-test.timeout=10m")
	cmd.Env = append(os.Environ(), helperEnv+"="+t.TempDir())
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	mustNoErr(t, err)
	outR, err := cmd.StdoutPipe()
	mustNoErr(t, err)
	mustNoErr(t, cmd.Start())
	t.Cleanup(func() {
		in.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	h := &resourceHelper{in: in, out: bufio.NewScanner(outR)}
	h.out.Buffer(make([]byte, 1<<16), 1<<20)
	h.natsURL = h.reply(t, 60*time.Second)
	return h
}

// do sends a command and waits for its "ok".
func (h *resourceHelper) do(t *testing.T, cmd string) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := fmt.Fprintln(h.in, cmd)
	mustNoErr(t, err)
	h.reply(t, 5*time.Minute)
}

// reply reads the next HELPER line: "ok <text>" returns text, anything
// else fails.
func (h *resourceHelper) reply(t *testing.T, within time.Duration) string {
	t.Helper()
	got := make(chan string, 1)
	go func() {
		for h.out.Scan() {
			if line, ok := strings.CutPrefix(h.out.Text(), "HELPER "); ok {
				got <- line
				return
			}
		}
		got <- "err helper exited"
	}()
	select {
	case line := <-got:
		text, ok := strings.CutPrefix(line, "ok ")
		if !ok {
			t.Fatalf("helper: %s", line)
		}
		return text
	case <-time.After(within):
		t.Fatalf("helper: no answer within %v", within)
		return ""
	}
}

// TestResourceHelper is the helper process of TestResourceBounds; it does
// nothing in a normal run.
func TestResourceHelper(t *testing.T) {
	dir := os.Getenv(helperEnv)
	if dir == "" {
		t.Skip("helper process of TestResourceBounds")
	}
	ns, err := natsembed.Start(natsembed.Options{StoreDir: filepath.Join(dir, "nats")})
	if err != nil {
		fmt.Printf("HELPER err %v\n", err)
		return
	}
	defer ns.Shutdown()
	fmt.Printf("HELPER ok %s\n", ns.ClientURL())
	var conns []*client.Lite
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		var err error
		switch f[0] {
		case "connect":
			conns, err = helperConnect(f[1], f[2])
		case "subscribe":
			err = helperSubscribe(conns, strings.Split(f[1], ","))
		case "close":
			for _, c := range conns {
				_ = c.CloseNow()
			}
			conns = nil
		default:
			err = fmt.Errorf("unknown command %q", f[0])
		}
		if err != nil {
			fmt.Printf("HELPER err %s: %v\n", f[0], err)
		} else {
			fmt.Printf("HELPER ok %s\n", f[0])
		}
	}
}

// parallel runs do(i) for i in [0, n) on 64 workers and returns the first
// error.
func parallel(n int, do func(i int) error) error {
	var wg sync.WaitGroup
	var first atomic.Value
	work := make(chan int)
	for w := 0; w < 64; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if err := do(i); err != nil {
					first.CompareAndSwap(nil, err)
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	err, _ := first.Load().(error)
	return err
}

func helperConnect(wsURL, ticketFile string) ([]*client.Lite, error) {
	b, err := os.ReadFile(ticketFile)
	if err != nil {
		return nil, err
	}
	tickets := strings.Split(string(b), "\n")
	conns := make([]*client.Lite, len(tickets))
	err = parallel(len(tickets), func(i int) error {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		l, err := client.DialLite(ctx, wsURL, tickets[i], client.LiteOptions{ReadBuffer: 512})
		if err != nil {
			return err
		}
		conns[i] = l
		f, err := l.ReadText()
		if err != nil || !strings.HasPrefix(string(f), `{"type":"ready"`) {
			return fmt.Errorf("ready: %v %.100s", err, f)
		}
		return nil
	})
	return conns, err
}

func helperSubscribe(conns []*client.Lite, channels []string) error {
	frames := make([][]byte, len(channels))
	for i, ch := range channels {
		frames[i] = []byte(`{"type":"subscribe","data":{"channel_id":"` + ch + `"}}`)
	}
	return parallel(len(conns), func(i int) error {
		l := conns[i]
		for _, f := range frames {
			if err := l.WriteText(f); err != nil {
				return err
			}
		}
		_ = l.NetConn().SetReadDeadline(time.Now().Add(2 * time.Minute))
		defer l.NetConn().SetReadDeadline(time.Time{})
		for range frames {
			f, err := l.ReadText()
			if err != nil {
				return err
			}
			if !strings.HasPrefix(string(f), `{"type":"subscribed"`) {
				return fmt.Errorf("got %.120s", f)
			}
		}
		return nil
	})
}
