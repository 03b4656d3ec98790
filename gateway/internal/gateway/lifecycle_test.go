package gateway_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/ocvr/realtime/gateway/internal/gateway"
	"github.com/ocvr/realtime/pkg/protocol"
)

// TestJoinRacingTheEndLeavesNothing: a connection that ends while it joins
// a subject (a subscribe racing the socket's loss, or the user subject's
// join racing a drain) leaves nothing in the hub and no NATS subscription
// behind. Before, the teardown took the subscriptions before it marked the
// connection closing, and the hub counted a joiner before adding it: the
// dead connection stayed in the topic, and the pod's NATS subscription was
// never removed.
func TestJoinRacingTheEndLeavesNothing(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(*gateway.Gateway, func(func()))
	}{
		{"subscribe", gateway.SetChannelJoinHook},
		{"user subject", gateway.SetUserJoinHook},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			e.channel("ch_x", 1)
			tc.set(e.g, func(end func()) { end() })
			c, err := e.dialErr(t, e.user(1, "Alice"))
			if err == nil {
				_ = c.Subscribe(context.Background(), "ch_x")
				select {
				case <-c.Done():
				case <-time.After(5 * time.Second):
					t.Fatal("the connection did not end")
				}
			}
			waitFor(t, 5*time.Second, func() bool { return e.g.Connections() == 0 })
			time.Sleep(100 * time.Millisecond) // the join returns after the end
			if n := gateway.Topics(e.g); n != 0 {
				t.Fatalf("%d topics left in the hub", n)
			}
			if n := e.metric("ocvr_gateway_bus_subscriptions"); n != 0 {
				t.Fatalf("%v NATS subscriptions left", n)
			}
			if n := e.metric("ocvr_gateway_subscriptions"); n != 0 {
				t.Fatalf("%v connection subscriptions counted", n)
			}
		})
	}
}

// TestNonUpgradeKeepsTheTicket: a request to /v1/ws that is not a WebSocket
// upgrade (a link preview's GET, a proxy's HEAD) is refused without
// touching its ticket, which then still opens a socket.
func TestNonUpgradeKeepsTheTicket(t *testing.T) {
	e := newEnv(t, nil)
	u := e.user(1, "Alice")
	tk := e.ticket(u)
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		req, _ := http.NewRequest(method, e.srv.URL+"/v1/ws?ticket="+tk, nil)
		resp, err := http.DefaultClient.Do(req)
		mustNoErr(t, err)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUpgradeRequired {
			t.Fatalf("%s: status %d, want 426", method, resp.StatusCode)
		}
	}
	if _, err := e.dialTicket("", tk); err != nil {
		t.Fatalf("the ticket no longer works after non-upgrade requests: %v", err)
	}
}

// TestRefusalDoesNotWaitForTheClient: a refused upgrade (here 4001) gets its
// close frame and its socket is dropped at once, even when the client never
// answers the close; before, the pod waited up to 10 s for the reply.
func TestRefusalDoesNotWaitForTheClient(t *testing.T) {
	e := newEnv(t, nil)
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.srv.URL, "http://"))
	mustNoErr(t, err)
	defer conn.Close()
	_, err = io.WriteString(conn, "GET /v1/ws?ticket=wst_nope HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	mustNoErr(t, err)
	start := time.Now()
	_ = conn.SetReadDeadline(time.Now().Add(8 * time.Second))
	b, _ := io.ReadAll(conn) // never answers the close: reads until the pod drops the socket
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("the pod held a refused socket for %v", took)
	}
	if !strings.Contains(string(b), "101 Switching Protocols") || !strings.Contains(string(b), "INVALID_TICKET") {
		t.Fatalf("response %q", b)
	}
}

// TestPreauthPerSourceIsBounded: one address cannot have more than
// MaxPreauthPerSource upgrades in redemption at once; the excess is
// answered 429 with Retry-After, and nothing is consumed for it.
func TestPreauthPerSourceIsBounded(t *testing.T) {
	e := newEnv(t, func(c *gateway.Config) { c.MaxPreauthPerSource = 2 })
	hold := make(chan struct{})
	var held sync.WaitGroup
	held.Add(2)
	gateway.SetRedeemHook(e.g, func() { held.Done(); <-hold })
	u := e.user(1, "Alice")
	results := make(chan error, 2)
	for i := 0; i < 2; i++ {
		tk := e.ticket(u)
		go func() {
			_, err := e.dialTicket("", tk)
			results <- err
		}()
	}
	held.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, resp, err := websocket.Dial(ctx, e.wsURL+"?ticket="+e.ticket(u), nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("third upgrade from the source: %v %v, want 429 with Retry-After", resp, err)
	}
	close(hold)
	for i := 0; i < 2; i++ {
		if err := <-results; err != nil {
			t.Fatalf("a held upgrade failed: %v", err)
		}
	}
	// The bound is on upgrades in flight, not on connections.
	gateway.SetRedeemHook(e.g, nil)
	for i := 0; i < 3; i++ {
		e.dial(u)
	}
}

// TestPingFloodIsLimited: pings are answered by the websocket library
// without reaching the gateway's frame handling, yet they count against
// the frame rate: a client that floods pings is closed like one that
// floods frames. Before, it could make the pod write pongs at wire speed.
func TestPingFloodIsLimited(t *testing.T) {
	e := newEnv(t, func(c *gateway.Config) { c.FrameRate, c.FrameBurst, c.FloodLimit = 1, 5, 10 })
	ws := e.rawReady(t, e.user(1, "Alice"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	readDone := make(chan error, 1)
	go func() { // reads the pongs (and the RATE_LIMITED error) until the close
		for {
			if _, _, err := ws.Read(ctx); err != nil {
				readDone <- err
				return
			}
		}
	}()
	pongs := 0
	for ; pongs < 1000; pongs++ {
		pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
		err := ws.Ping(pctx)
		pcancel()
		if err != nil {
			break
		}
	}
	if err := <-readDone; websocket.CloseStatus(err) != protocol.CloseRateLimited && websocket.CloseStatus(err) != -1 {
		t.Fatalf("closed with %v", err)
	}
	if pongs > 5+10+5 {
		t.Fatalf("%d pings answered before the pod stopped the flood", pongs)
	}
	waitFor(t, 3*time.Second, func() bool { return e.g.Connections() == 0 })
	if got := e.metric(`ocvr_gateway_disconnects_total{code="4008"}`); got != 1 {
		t.Fatalf("disconnects with 4008: %v", got)
	}
	if e.metric(`ocvr_gateway_errors_total{code="`+protocol.CodeRateLimited+`"}`) != 1 {
		t.Fatal("no RATE_LIMITED error was sent")
	}
}

// openFDs counts this process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	return len(entries)
}

// TestStoppedGatewaysLeakNoDescriptors: a gateway that stops frees its
// poller's epoll set and eventfd; before, every start leaked one.
func TestStoppedGatewaysLeakNoDescriptors(t *testing.T) {
	if os.Getenv("OCVR_TEST_READER_GOROUTINES") == "1" {
		t.Skip("no poller in the reader-goroutine mode")
	}
	run := func() {
		t.Run("gateway", func(t *testing.T) {
			e := newEnv(t, nil)
			e.dial(e.user(1, "Alice")).CloseNow()
		})
	}
	run() // warm up: what the first env loads once (TLS, pools) stays
	http.DefaultClient.CloseIdleConnections()
	before := openFDs(t)
	const starts = 10
	for i := 0; i < starts; i++ {
		run()
	}
	http.DefaultClient.CloseIdleConnections()
	time.Sleep(200 * time.Millisecond)
	if leaked := openFDs(t) - before; leaked >= starts/2 {
		t.Fatalf("%d descriptors more after %d gateways started and stopped", leaked, starts)
	}
}
