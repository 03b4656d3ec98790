package server

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/ocvr/realtime/pkg/natsembed"
)

// TestOverloadRefusedWith503: a burst larger than --max-inflight gets only
// 200s and 503 UNAVAILABLE with Retry-After (nothing else, nothing hangs),
// the refusals are counted, and afterwards every client gets its ticket.
//
// With stall, NATS is held (a paused proxy between ticketsvc and NATS), so
// exactly max requests are admitted and wait in KV while the rest must be
// refused at once; without the cap they would all wait (the old code: the
// test then fails with no refusal at all). Without stall the burst runs
// freely, and refused clients retry after Retry-After with jitter, as the
// README tells them to, until each has a ticket.
func TestOverloadRefusedWith503(t *testing.T) {
	tests := []struct {
		name  string
		max   int
		burst int
		stall bool
	}{
		{"one admitted, stalled", 1, 8, true},
		{"four admitted, stalled", 4, 40, true},
		{"free-running burst", 2, 120, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ns := natsembed.Test(t)
			proxy := newStallProxy(t, ns.ClientURL())
			e := newEnv(t, envOptions{noNATS: true, config: func(c *Config) {
				c.NATSURLs = []string{proxy.url()}
				c.MaxInflight = tc.max
				c.KVTimeout = 30 * time.Second // a stalled KV call waits for the test, not for this
			}})
			t.Cleanup(proxy.resume) // before the server's shutdown, should the test stop while stalled
			eventually(t, 15*time.Second, "ticketsvc ready", func() bool { return e.readyz().status == http.StatusOK })
			e.connect(ns.ClientURL())
			tokens := make([]string, tc.burst) // a session each: the per-session limit stays out of it
			for i := range tokens {
				tokens[i], _ = e.newSession(int64(i+1), "Burst")
			}
			client := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: tc.burst}}
			defer client.CloseIdleConnections()

			if tc.stall {
				proxy.pause()
			}
			results := make(chan burstResult, tc.burst)
			for _, token := range tokens {
				go func() { results <- postOnce(client, e.base, token) }()
			}
			var got []burstResult
			if tc.stall {
				// The refusals come back while NATS is held; the admitted
				// requests cannot finish before resume.
				deadline := time.After(10 * time.Second)
				for len(got) < tc.burst-tc.max {
					select {
					case r := <-results:
						got = append(got, r)
					case <-deadline:
						t.Fatalf("while KV was stalled, %d of %d requests were answered; want the %d beyond --max-inflight=%d refused at once",
							len(got), tc.burst, tc.burst-tc.max, tc.max)
					}
				}
				if n := e.srv.admit.inFlight(); n != int64(tc.max) {
					t.Errorf("in flight while stalled: %d, want %d", n, tc.max)
				}
				proxy.resume()
			}
			for len(got) < tc.burst {
				got = append(got, <-results)
			}

			ok, refused := 0, 0
			var retry []string
			for i, r := range got {
				switch {
				case r.err != nil:
					t.Errorf("request %d: %v", i, r.err)
				case r.status == http.StatusOK:
					ok++
				case r.status == http.StatusServiceUnavailable && r.code == CodeUnavailable && r.retryAfter == "1":
					refused++
					retry = append(retry, r.token)
				default:
					t.Errorf("request %d: status %d code %q Retry-After %q; want 200, or 503 %s with Retry-After: 1",
						i, r.status, r.code, r.retryAfter, CodeUnavailable)
				}
			}
			t.Logf("burst of %d at --max-inflight=%d: %d ok, %d refused", tc.burst, tc.max, ok, refused)
			if tc.stall && (ok != tc.max || refused != tc.burst-tc.max) {
				t.Errorf("stalled burst of %d at max %d: %d ok, %d refused; want %d and %d", tc.burst, tc.max, ok, refused, tc.max, tc.burst-tc.max)
			}
			m := e.metrics()
			for series, want := range map[string]float64{
				`ocvr_ticketsvc_ticket_requests_total{result="overloaded"}`: float64(refused),
				`ocvr_ticketsvc_ticket_requests_total{result="ok"}`:         float64(ok),
			} {
				if m[series] != want {
					t.Errorf("%s = %v, want %v", series, m[series], want)
				}
			}
			if n := e.srv.admit.inFlight(); n != 0 {
				t.Errorf("in flight after the burst: %d, want 0", n)
			}

			// Refused clients retry as documented (Retry-After plus jitter)
			// until they have a ticket; the burst is over, so few rounds do.
			for round := 0; len(retry) > 0; round++ {
				if round == 5 {
					t.Fatalf("%d clients still without a ticket after %d rounds of retries", len(retry), round)
				}
				time.Sleep(time.Second + rand.N(200*time.Millisecond))
				var again []string
				for _, token := range retry {
					switch r := postOnce(client, e.base, token); {
					case r.err == nil && r.status == http.StatusOK:
					case r.err == nil && r.status == http.StatusServiceUnavailable && r.retryAfter == "1":
						again = append(again, token)
					default:
						t.Fatalf("retry: status %d code %q err %v", r.status, r.code, r.err)
					}
				}
				retry = again
			}
		})
	}
}

type burstResult struct {
	token      string
	status     int
	code       string
	retryAfter string
	err        error
}

// postOnce asks for a ticket and reads the whole answer.
func postOnce(client *http.Client, base, token string) burstResult {
	r := burstResult{token: token}
	req, err := http.NewRequest(http.MethodPost, base+TicketPath, nil)
	if err != nil {
		r.err = err
		return r
	}
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := client.Do(req)
	if err != nil {
		r.err = err
		return r
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		r.err = fmt.Errorf("read body: %w", err)
		return r
	}
	r.status, r.retryAfter = res.StatusCode, res.Header.Get("Retry-After")
	if res.StatusCode != http.StatusOK {
		var eb ErrorResponse
		if err := json.Unmarshal(body, &eb); err != nil {
			r.err = fmt.Errorf("status %d: body %q is not a JSON error: %w", res.StatusCode, body, err)
		}
		r.code = eb.Error.Code
	}
	return r
}

// stallProxy forwards TCP between ticketsvc and NATS and can hold all
// traffic: a NATS that has stopped answering for a while, with the
// connection still up, so KV calls wait instead of failing.
type stallProxy struct {
	ln     net.Listener
	target string

	mu   sync.Mutex
	open chan struct{} // closed while traffic flows
}

func newStallProxy(t *testing.T, natsURL string) *stallProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &stallProxy{ln: ln, target: natsURL[len("nats://"):], open: make(chan struct{})}
	close(p.open)
	var conns sync.WaitGroup
	var mu sync.Mutex
	var all []net.Conn
	t.Cleanup(func() {
		ln.Close()
		p.resume()
		mu.Lock()
		for _, c := range all {
			c.Close()
		}
		mu.Unlock()
		conns.Wait()
	})
	go func() {
		for {
			down, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				down.Close()
				continue
			}
			mu.Lock()
			all = append(all, down, up)
			mu.Unlock()
			conns.Go(func() { p.pipe(up, down) })
			conns.Go(func() { p.pipe(down, up) })
		}
	}()
	return p
}

func (p *stallProxy) url() string { return "nats://" + p.ln.Addr().String() }

func (p *stallProxy) pause() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.open:
		p.open = make(chan struct{})
	default: // already paused
	}
}

func (p *stallProxy) resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.open:
	default:
		close(p.open)
	}
}

func (p *stallProxy) gate() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.open
}

// pipe copies src to dst, holding each chunk while paused.
func (p *stallProxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			<-p.gate()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
