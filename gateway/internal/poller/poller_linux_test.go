//go:build linux

package poller

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"
)

// pair is a connected pair of file descriptors: reads on r, writes on w.
type pair struct {
	r Conn
	w io.WriteCloser
	// drain reads what is buffered on r without blocking forever.
	drain func(t *testing.T)
}

func pipePair(t *testing.T) pair {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	return pair{r: r, w: w, drain: func(t *testing.T) {
		_ = r.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		buf := make([]byte, 4096)
		for {
			if _, err := r.Read(buf); err != nil {
				return
			}
		}
	}}
}

func tcpPair(t *testing.T) pair {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	w, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	return pair{r: r.(*net.TCPConn), w: w, drain: func(t *testing.T) {
		_ = r.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		buf := make([]byte, 4096)
		for {
			if _, err := r.Read(buf); err != nil {
				return
			}
		}
	}}
}

func unixPair(t *testing.T) pair {
	dir := t.TempDir()
	ln, err := net.Listen("unix", dir+"/s")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	w, err := net.Dial("unix", dir+"/s")
	if err != nil {
		t.Fatal(err)
	}
	r, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	return pair{r: r.(*net.UnixConn), w: w, drain: func(t *testing.T) {
		_ = r.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		buf := make([]byte, 4096)
		for {
			if _, err := r.Read(buf); err != nil {
				return
			}
		}
	}}
}

var pairs = []struct {
	name string
	make func(*testing.T) pair
}{
	{"pipe", pipePair},
	{"tcp", tcpPair},
	{"unix", unixPair},
}

// running starts p.Run and stops it (Close) when the test ends.
func running(t *testing.T, p *Poller) {
	t.Helper()
	errc := make(chan error, 1)
	go func() { errc <- p.Run(context.Background()) }() // owner: this test; exits on Close
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := <-errc; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

func newPoller(t *testing.T) *Poller {
	t.Helper()
	p, err := New()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func expect(t *testing.T, fired <-chan struct{}, want bool, what string) {
	t.Helper()
	wait := 100 * time.Millisecond
	if want {
		wait = 5 * time.Second
	}
	select {
	case <-fired:
		if !want {
			t.Fatalf("%s: handler ran, want not", what)
		}
	case <-time.After(wait):
		if want {
			t.Fatalf("%s: handler did not run", what)
		}
	}
}

func TestReadinessOneShotAndRearm(t *testing.T) {
	for _, tc := range pairs {
		t.Run(tc.name, func(t *testing.T) {
			pr := tc.make(t)
			p := newPoller(t)
			running(t, p)
			fired := make(chan struct{}, 16)
			token, err := p.Add(pr.r, func() { fired <- struct{}{} })
			if err != nil {
				t.Fatal(err)
			}
			expect(t, fired, false, "nothing written")
			if _, err := pr.w.Write([]byte("a")); err != nil {
				t.Fatal(err)
			}
			expect(t, fired, true, "after a write")
			if _, err := pr.w.Write([]byte("b")); err != nil {
				t.Fatal(err)
			}
			expect(t, fired, false, "one-shot: a second write before Rearm")
			// Level-triggered: unread data fires again at once on Rearm.
			if err := p.Rearm(pr.r, token); err != nil {
				t.Fatal(err)
			}
			expect(t, fired, true, "Rearm with unread data")
			pr.drain(t)
			if err := p.Rearm(pr.r, token); err != nil {
				t.Fatal(err)
			}
			expect(t, fired, false, "Rearm after reading everything")
			if _, err := pr.w.Write([]byte("c")); err != nil {
				t.Fatal(err)
			}
			expect(t, fired, true, "write after Rearm")
			pr.drain(t)
			// The peer going away is readiness too (EOF to read).
			if err := p.Rearm(pr.r, token); err != nil {
				t.Fatal(err)
			}
			pr.w.Close()
			expect(t, fired, true, "peer closed")
		})
	}
}

func TestRemove(t *testing.T) {
	for _, tc := range pairs {
		t.Run(tc.name, func(t *testing.T) {
			pr := tc.make(t)
			p := newPoller(t)
			running(t, p)
			fired := make(chan struct{}, 16)
			token, err := p.Add(pr.r, func() { fired <- struct{}{} })
			if err != nil {
				t.Fatal(err)
			}
			p.Remove(pr.r, token)
			if _, err := pr.w.Write([]byte("a")); err != nil {
				t.Fatal(err)
			}
			expect(t, fired, false, "after Remove")
			if err := p.Rearm(pr.r, token); err == nil {
				t.Fatal("Rearm of a removed socket succeeded")
			}
			// The socket can be added again, under a new token.
			again, err := p.Add(pr.r, func() { fired <- struct{}{} })
			if err != nil {
				t.Fatal(err)
			}
			if again == token {
				t.Fatalf("token %d reused", token)
			}
			expect(t, fired, true, "added again with data waiting")
		})
	}
}

// TestRunStopsAtOnce: Run returns as soon as its context ends; it is woken,
// not polling on a timeout (which made every stop wait up to 200 ms and an
// idle gateway wake five times a second).
func TestRunStopsAtOnce(t *testing.T) {
	for i := 0; i < 5; i++ {
		p := newPoller(t)
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() { errc <- p.Run(ctx) }() // owner: this test; exits on cancel
		time.Sleep(20 * time.Millisecond)  // let it block in epoll_wait
		start := time.Now()
		cancel()
		select {
		case err := <-errc:
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Run did not return after its context ended")
		}
		if took := time.Since(start); took > 50*time.Millisecond {
			t.Fatalf("Run took %v to notice its context ended", took)
		}
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	return len(ents)
}

// TestCloseStopsRunAndFreesFDs: Close stops a running Run (which returns
// nil, not an error about a closed fd) and gives back every fd New took.
func TestCloseStopsRunAndFreesFDs(t *testing.T) {
	before := openFDs(t)
	p := newPoller(t)
	if openFDs(t) <= before {
		t.Fatal("New opened no fd?")
	}
	errc := make(chan error, 1)
	go func() { errc <- p.Run(context.Background()) }() // owner: this test; exits on Close
	time.Sleep(20 * time.Millisecond)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("Run after Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after Close")
	}
	if after := openFDs(t); after != before {
		t.Fatalf("open fds: %d before New, %d after Close", before, after)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	pr := pipePair(t)
	if _, err := p.Add(pr.r, func() {}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Add after Close = %v, want ErrClosed", err)
	}
	if err := p.Run(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Run after Close = %v, want ErrClosed", err)
	}
}

func TestCloseWithoutRun(t *testing.T) {
	before := openFDs(t)
	p := newPoller(t)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if after := openFDs(t); after != before {
		t.Fatalf("open fds: %d before New, %d after Close", before, after)
	}
	if err := p.Run(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Run after Close = %v, want ErrClosed", err)
	}
}

// TestCloseRacesRegistrations: Close while sockets are added, re-armed and
// removed: no registration touches a freed fd (the race detector and the
// kernel's EBADF would tell), each call either works or says ErrClosed.
func TestCloseRacesRegistrations(t *testing.T) {
	p := newPoller(t)
	errc := make(chan error, 1)
	go func() { errc <- p.Run(context.Background()) }() // owner: this test; exits on Close
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		pr := pipePair(t)
		wg.Add(1)
		go func() { // owner: this test; exits when the poller is closed
			defer wg.Done()
			for {
				token, err := p.Add(pr.r, func() {})
				if errors.Is(err, ErrClosed) {
					return
				}
				if err != nil {
					t.Errorf("Add: %v", err)
					return
				}
				if err := p.Rearm(pr.r, token); err != nil && !errors.Is(err, ErrClosed) {
					t.Errorf("Rearm: %v", err)
					return
				}
				p.Remove(pr.r, token)
			}
		}()
	}
	time.Sleep(50 * time.Millisecond)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if err := <-errc; err != nil {
		t.Fatalf("Run: %v", err)
	}
}
