package gateway

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestMarksCoalesce: callers that ask while a read is in flight share the
// next read (never the one in flight, which may predate their
// subscription).
func TestMarksCoalesce(t *testing.T) {
	var reads atomic.Int64
	release := make(chan struct{})
	m := &marks{read: func(ctx context.Context) (uint64, error) {
		n := reads.Add(1)
		if n == 1 {
			<-release // the first read is in flight while the others ask
		}
		return uint64(n * 100), nil
	}}
	ctx := context.Background()
	first := make(chan uint64)
	go func() { v, _ := m.get(ctx); first <- v }()
	for reads.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	var wg sync.WaitGroup
	got := make([]uint64, 50)
	for i := range got {
		wg.Add(1)
		go func() { defer wg.Done(); got[i], _ = m.get(ctx) }()
	}
	time.Sleep(20 * time.Millisecond) // all 50 are waiting
	close(release)
	if v := <-first; v != 100 {
		t.Fatalf("first = %d", v)
	}
	wg.Wait()
	for i, v := range got {
		if v != 200 {
			t.Fatalf("caller %d got %d, want the second read's 200", i, v)
		}
	}
	if n := reads.Load(); n != 2 {
		t.Fatalf("%d reads for 51 callers, want 2", n)
	}
}
