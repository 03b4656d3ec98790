package gateway

import (
	"context"
	"sync"
	"time"
)

// marks reads the stream's last position for new topics, one read for all
// the topics that asked while none was in flight: in a connect storm every
// new connection's user subject needs a mark, and one read serves them all.
// A read serves only callers that asked before it started, so each gets a
// position read after its subscription went live. Its goroutine runs while
// callers wait, and exits when none is left.
type marks struct {
	read func(ctx context.Context) (uint64, error)

	mu      sync.Mutex
	waiting []chan markResult
	running bool
}

type markResult struct {
	seq uint64
	err error
}

// get returns the stream's last position, read after the call began.
func (m *marks) get(ctx context.Context) (uint64, error) {
	ch := make(chan markResult, 1)
	m.mu.Lock()
	m.waiting = append(m.waiting, ch)
	start := !m.running
	m.running = true
	m.mu.Unlock()
	if start {
		go m.loop()
	}
	select {
	case r := <-ch:
		return r.seq, r.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

func (m *marks) loop() {
	for {
		m.mu.Lock()
		batch := m.waiting
		m.waiting = nil
		if len(batch) == 0 {
			m.running = false
			m.mu.Unlock()
			return
		}
		m.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		seq, err := m.read(ctx)
		cancel()
		for _, ch := range batch {
			ch <- markResult{seq, err}
		}
	}
}
