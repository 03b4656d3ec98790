//go:build unix

package gateway_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ocvr/realtime/gateway/internal/gateway"
	"github.com/ocvr/realtime/pkg/client"
	"github.com/ocvr/realtime/pkg/protocol"
)

// smallRcvBuf is an HTTP client whose sockets have a 4 KiB receive buffer,
// so a client that stops reading pushes back on the server quickly.
func smallRcvBuf() *http.Client {
	d := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		}); err != nil {
			return err
		}
		return serr
	}}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
}

// TestSlowConsumer: one client that never reads among 200 that do: the 200
// receive every event, undelayed; the non-reader is closed with 4009 after
// a gap-free prefix of the events (the stuck socket is handed to a drain
// goroutine of its own, so the shared writers never wait for it).
func TestSlowConsumer(t *testing.T) {
	const (
		readers = 200
		events  = 96
		burst   = 8
	)
	e := newEnv(t, func(c *gateway.Config) {
		c.QueueSize = 16
		c.SocketSendBuffer = 4096
		c.MaxConnsPerUser = -1 // 200 connections of one user
		// Long enough that delivery to the others, were it held up by the
		// stuck socket, would visibly wait for it.
		c.WriteTimeout = 30 * time.Second
	})
	e.channel("ch_x", 1, 2)
	alice := e.user(1, "Alice")
	conns := make([]*client.Conn, readers)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := range conns {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := client.Dial(ctx, e.wsURL, e.ticket(alice), client.Options{Heartbeat: -1, Buffer: 2 * events})
			if err != nil {
				t.Error(err)
				return
			}
			t.Cleanup(c.CloseNow)
			if err := c.Subscribe(ctx, "ch_x"); err != nil {
				t.Error(err)
				return
			}
			if f, err := c.Next(ctx); err != nil || f.Type != protocol.TypeSubscribed {
				t.Errorf("subscribe: %v %s", err, f.Raw)
				return
			}
			conns[i] = c
		}(i)
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stuck, err := client.Dial(ctx, e.wsURL, e.ticket(e.user(2, "Bob")), client.Options{Heartbeat: -1, Buffer: 1, HTTPClient: smallRcvBuf()})
	mustNoErr(t, err)
	t.Cleanup(stuck.CloseNow)
	subscribe(t, stuck, "ch_x")

	// Readers read continuously; the publisher sends bursts well under the
	// queue size and waits for every reader to have the whole burst, so a
	// reader never overflows, while the stuck client's socket and queue
	// fill up.
	progress := make([]atomic.Int64, readers)
	for i, c := range conns {
		wg.Add(1)
		go func(i int, c *client.Conn) {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			for n := 0; n < events; n++ {
				f, err := c.Next(ctx)
				if err != nil {
					t.Errorf("reader %d: event %d: %v", i, n, err)
					return
				}
				if got := seqPadded(f); got != n {
					t.Errorf("reader %d: got event %d, want %d", i, got, n)
					return
				}
				progress[i].Store(int64(n + 1))
			}
		}(i, c)
	}
	// Core publishes: events without a position are what still cuts a slow
	// consumer off (positioned ones make it catch up, continuity_test.go).
	_, pub := e.backend()
	pub = pub.Core()
	pad := strings.Repeat("x", 1000)
	start := time.Now()
	var slowest time.Duration
	for sent := 0; sent < events && !t.Failed(); {
		burstStart := time.Now()
		for end := sent + burst; sent < end && sent < events; sent++ {
			m := msg("ch_x", sent)
			m.Content += " " + pad
			mustNoErr(t, pub.MessageCreated(context.Background(), m))
		}
		// Generous: were delivery held up by the stuck socket, a burst
		// would wait for its 30 s write timeout.
		waitFor(t, 10*time.Second, func() bool {
			for i := range progress {
				if progress[i].Load() < int64(sent) {
					return false
				}
			}
			return true
		})
		slowest = max(slowest, time.Since(burstStart))
	}
	wg.Wait()
	t.Logf("%d readers received %d events each in %v (slowest burst of %d: %v)", readers, events, time.Since(start), burst, slowest)
	// The stuck one has overflowed its queue.
	waitFor(t, 5*time.Second, func() bool { return e.metric("ocvr_gateway_slow_consumer_disconnects_total") == 1 })

	// When it finally reads it finds a gap-free prefix of the events, then
	// the 4009 close.
	got := 0
	rctx, rcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer rcancel()
	for {
		f, err := stuck.Next(rctx)
		if err != nil {
			var ce *client.CloseError
			if !errors.As(err, &ce) || ce.Code != protocol.CloseSlowConsumer {
				t.Fatalf("after %d events the stuck client ended with %v, want close 4009", got, err)
			}
			break
		}
		if n := seqPadded(f); n != got {
			t.Fatalf("stuck client got event %d, want %d", n, got)
		}
		got++
	}
	t.Logf("the stuck client got %d events before 4009", got)
	if got == 0 || got >= events {
		t.Errorf("stuck client got %d of %d events", got, events)
	}
	waitFor(t, 5*time.Second, func() bool { return e.g.Connections() == readers })
	if v := e.metric(label("ocvr_gateway_disconnects_total", "code", "4009")); v != 1 {
		t.Errorf("disconnects_total{4009} = %v", v)
	}
	for _, c := range conns[:5] {
		alive(t, c)
	}
}

func seqPadded(f client.Frame) int {
	var m protocol.MessageCreate
	if f.Type != protocol.TypeMessageCreate || f.Decode(&m) != nil {
		return -1
	}
	n := 0
	for _, r := range m.Content {
		if r < '0' || r > '9' {
			break
		}
		n = n*10 + int(r-'0')
	}
	return n
}

// TestSlowConsumerNeverReads: a client that never reads again is gone
// within the write timeout: its writes have deadlines.
func TestSlowConsumerNeverReads(t *testing.T) {
	e := newEnv(t, func(c *gateway.Config) {
		c.QueueSize = 4
		c.SocketSendBuffer = 4096
		c.WriteTimeout = 500 * time.Millisecond
	})
	e.channel("ch_x", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stuck, err := client.Dial(ctx, e.wsURL, e.ticket(e.user(1, "Alice")), client.Options{Heartbeat: -1, Buffer: 1, HTTPClient: smallRcvBuf()})
	mustNoErr(t, err)
	t.Cleanup(stuck.CloseNow)
	subscribe(t, stuck, "ch_x")
	_, pub := e.backend()
	pub = pub.Core() // without a position: 4009 (continuity_test.go covers the stream)
	pad := strings.Repeat("x", 1000)
	for i := 0; i < 200 && e.metric("ocvr_gateway_slow_consumer_disconnects_total") == 0; i++ {
		m := msg("ch_x", i)
		m.Content += " " + pad
		mustNoErr(t, pub.MessageCreated(ctx, m))
		mustNoErr(t, pub.Flush(ctx))
	}
	start := time.Now()
	waitFor(t, 5*time.Second, func() bool { return e.g.Connections() == 0 })
	t.Logf("closed %v after the overflow", time.Since(start).Round(time.Millisecond))
	if v := e.metric(label("ocvr_gateway_disconnects_total", "code", "4009")); v != 1 {
		t.Errorf("disconnects_total{4009} = %v", v)
	}
}
