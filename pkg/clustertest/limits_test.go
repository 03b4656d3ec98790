package clustertest_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ocvr/realtime/pkg/client"
	"github.com/ocvr/realtime/pkg/clustertest"
	"github.com/ocvr/realtime/pkg/protocol"
)

// cutWithin reads conn until the server closes it and returns how long
// that took; it fails if the server keeps it longer than max.
func cutWithin(t *testing.T, conn net.Conn, max time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	_ = conn.SetReadDeadline(start.Add(max))
	_, err := io.Copy(io.Discard, conn)
	took := time.Since(start)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the server kept the connection open for %v", max)
	}
	return took
}

// TestHandshakeTimeoutBinary: the gateway binary cuts off, after
// --handshake-timeout, a client that trickles its upgrade request headers
// (slowloris), one that connects and sends nothing, and one that idles on
// a keep-alive connection after a non-upgrade answer; a socket that
// completed its upgrade is not affected by that timeout; the limit holds
// for a crowd of such clients, which leave no goroutine behind. Request
// headers are capped at 32 KiB (431).
func TestHandshakeTimeoutBinary(t *testing.T) {
	const timeout = time.Second
	c := clustertest.Start(t, clustertest.Options{GatewayArgs: []string{"--handshake-timeout", timeout.String(), "--max-connections-per-user", "2"}})
	gw := c.Gateways[0]
	dial := func() net.Conn {
		conn, err := net.Dial("tcp", gw.Public)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	goroutines := func() float64 {
		v, err := gw.Metric("go_goroutines")
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	// A socket upgraded before the slow clients arrive, idle past the
	// timeout afterwards.
	u := c.NewUser(1, "Alice")
	established, err := c.Dial(u, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer established.CloseNow()
	base := goroutines()

	t.Run("slowloris", func(t *testing.T) {
		conn := dial()
		if _, err := io.WriteString(conn, "GET /v1/ws?ticket=wst_x HTTP/1.1\r\nHost: gw\r\nUpgrade: websocket\r\n"); err != nil {
			t.Fatal(err)
		}
		stop := make(chan struct{})
		defer close(stop)
		go func() { // one more header line every 200 ms, never the blank line
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-time.After(200 * time.Millisecond):
				}
				if _, err := io.WriteString(conn, "X-Slow: "+strings.Repeat("a", i%50)+"\r\n"); err != nil {
					return
				}
			}
		}()
		took := cutWithin(t, conn, timeout+5*time.Second)
		if took < timeout/2 {
			t.Errorf("cut after %v, before the %v timeout", took, timeout)
		}
		t.Logf("trickled headers cut after %v", took.Round(10*time.Millisecond))
	})
	t.Run("silent", func(t *testing.T) {
		took := cutWithin(t, dial(), timeout+5*time.Second)
		t.Logf("silent connection cut after %v", took.Round(10*time.Millisecond))
	})
	t.Run("idle keep-alive", func(t *testing.T) {
		conn := dial()
		if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		took := cutWithin(t, conn, timeout+5*time.Second)
		t.Logf("idle keep-alive connection (after HTTP %d) cut after %v", resp.StatusCode, took.Round(10*time.Millisecond))
	})
	t.Run("header limit", func(t *testing.T) {
		conn := dial()
		req := "GET /v1/ws?ticket=wst_x HTTP/1.1\r\nHost: gw\r\nX-Big: " + strings.Repeat("b", 40<<10) + "\r\n\r\n"
		_, _ = io.WriteString(conn, req)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("40 KiB of headers: HTTP %d, want 431", resp.StatusCode)
		}
	})
	t.Run("crowd", func(t *testing.T) {
		const n = 200
		var wg sync.WaitGroup
		for i := 0; i < n; i++ {
			conn := dial()
			_, _ = io.WriteString(conn, "GET /v1/ws HTTP/1.1\r\nHost: gw\r\n")
			wg.Add(1)
			go func() {
				defer wg.Done()
				_ = conn.SetReadDeadline(time.Now().Add(timeout + 10*time.Second))
				if _, err := io.Copy(io.Discard, conn); err != nil {
					var ne net.Error
					if errors.As(err, &ne) && ne.Timeout() {
						t.Error("a slow client was not cut off")
					}
				}
			}()
		}
		wg.Wait()
		clustertest.Eventually(t, 10*time.Second, "goroutines back to the baseline", func() bool { return goroutines() <= base+5 })
	})

	// The upgraded socket, idle for longer than the handshake timeout,
	// still works: an upgraded connection keeps no deadline.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := established.Heartbeat(ctx); err != nil {
		t.Fatal(err)
	}
	for {
		f, err := established.Next(ctx)
		if err != nil {
			t.Fatalf("established socket after the slow clients: %v", err)
		}
		if f.Type == protocol.TypeHeartbeatAck {
			break
		}
	}

	// --max-connections-per-user 2: Alice's third socket is refused with
	// 4010 and counted; her two others keep working.
	second, err := c.Dial(u, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer second.CloseNow()
	_, err = c.Dial(u, 0)
	var ce *client.CloseError
	if !errors.As(err, &ce) || ce.Code != protocol.CloseTooManyConns {
		t.Fatalf("third connection: %v, want close 4010", err)
	}
	if v, err := gw.Metric("ocvr_gateway_connects_total", `result="user_limit"`); err != nil || v != 1 {
		t.Errorf("connects_total{result=user_limit} = %v, %v", v, err)
	}
	if !strings.Contains(gw.Log(), `"reason":"user_limit"`) {
		t.Errorf("the refusal is not logged")
	}
}
