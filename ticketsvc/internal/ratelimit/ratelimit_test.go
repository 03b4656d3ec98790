package ratelimit

import (
	"strconv"
	"testing"
	"time"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestBurstThenRetryAfter(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	l := New(30, 0, c.now)
	for i := range 30 {
		if ok, _ := l.Allow("a"); !ok {
			t.Fatalf("request %d refused", i+1)
		}
	}
	ok, wait := l.Allow("a")
	if ok || wait != 2*time.Second { // 30/min: one token every 2 s
		t.Fatalf("31st: ok=%v wait=%v, want refused with 2s", ok, wait)
	}
	if ok, _ := l.Allow("b"); !ok {
		t.Fatal("another key was limited")
	}
	c.t = c.t.Add(1500 * time.Millisecond)
	if ok, wait := l.Allow("a"); ok || wait != 500*time.Millisecond {
		t.Fatalf("after 1.5s: ok=%v wait=%v, want refused with 500ms", ok, wait)
	}
	c.t = c.t.Add(500 * time.Millisecond)
	if ok, _ := l.Allow("a"); !ok {
		t.Fatal("refused after a token refilled")
	}
	if ok, _ := l.Allow("a"); ok {
		t.Fatal("allowed beyond the refilled token")
	}
}

func TestIdleBucketsEvicted(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	l := New(60, 0, c.now)
	for i := range 100 {
		l.Allow(strconv.Itoa(i))
	}
	if l.Len() != 100 {
		t.Fatalf("Len %d, want 100", l.Len())
	}
	// After a full refill window every bucket is full again, so the next
	// new key sweeps them all.
	c.t = c.t.Add(time.Minute)
	l.Allow("fresh")
	if l.Len() != 1 {
		t.Fatalf("Len %d after the refill window, want 1", l.Len())
	}
}

func TestEvictionKeepsActiveBuckets(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	l := New(2, 0, c.now) // one token every 30 s, refill window 60 s
	l.Allow("first")      // the first sweep happens here
	c.t = c.t.Add(30 * time.Second)
	l.Allow("busy")
	l.Allow("busy") // empty now
	c.t = c.t.Add(30 * time.Second)
	l.Allow("other") // a sweep: "first" is full and goes, "busy" holds one token and stays
	if l.Len() != 2 {
		t.Fatalf("Len %d after the sweep, want 2 (busy, other)", l.Len())
	}
	if ok, _ := l.Allow("busy"); !ok {
		t.Fatal("busy refused its refilled token")
	}
	// Had the sweep forgotten "busy", it would have a fresh burst of 2.
	if ok, _ := l.Allow("busy"); ok {
		t.Fatal("busy got a fresh burst: its bucket was evicted while in use")
	}
}

func TestCapBoundsMemory(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	l := New(30, 10, c.now)
	for i := range 1000 {
		l.Allow(strconv.Itoa(i))
		if l.Len() > 10 {
			t.Fatalf("Len %d exceeds the cap of 10", l.Len())
		}
	}
}
