package clustertest

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ocvr/realtime/pkg/client"
)

// Probe records every frame one connection receives, for assertions.
type Probe struct {
	User User
	Conn *client.Conn

	mu     sync.Mutex
	frames []client.Frame
	done   chan struct{}
}

// NewProbe starts recording c's frames.
func NewProbe(u User, c *client.Conn) *Probe {
	p := &Probe{User: u, Conn: c, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for f := range c.Frames() {
			p.mu.Lock()
			p.frames = append(p.frames, f)
			p.mu.Unlock()
		}
	}()
	return p
}

// Frames returns what was received so far.
func (p *Probe) Frames() []client.Frame {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]client.Frame(nil), p.frames...)
}

// Count counts received frames of type typ whose raw bytes contain every
// one of substrs.
func (p *Probe) Count(typ string, substrs ...string) int {
	n := 0
	for _, f := range p.Frames() {
		if f.Type != typ {
			continue
		}
		ok := true
		for _, s := range substrs {
			if !strings.Contains(string(f.Raw), s) {
				ok = false
				break
			}
		}
		if ok {
			n++
		}
	}
	return n
}

// Closed reports whether the connection has ended.
func (p *Probe) Closed() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// WaitClosed waits for the connection to end and returns its error.
func (p *Probe) WaitClosed(d time.Duration) (error, bool) {
	select {
	case <-p.done:
		return p.Conn.Err(), true
	case <-time.After(d):
		return nil, false
	}
}

// Eventually polls cond until it holds or d passes.
func Eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Subscribe subscribes p to ch and waits for the acknowledgement.
func (p *Probe) Subscribe(t testing.TB, ch string) {
	t.Helper()
	before := p.Count("subscribed", `"`+ch+`"`)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.Conn.Subscribe(ctx, ch); err != nil {
		t.Fatal(err)
	}
	Eventually(t, 10*time.Second, "subscribed "+ch, func() bool { return p.Count("subscribed", `"`+ch+`"`) > before })
}
