package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ocvr/realtime/pkg/protocol"
)

// clusterPublisher publishes rate events/s through the event stream (the
// SDK's default path), event n to channel n mod channels with the phase,
// n and send time in its id (b<phase>_<n>_<unixns>), until ctx ends.
type clusterPublisher struct {
	e         *env
	channels  int
	rate      int
	workers   int
	pad       string
	phaseFile string
}

// clusterPublishResult is the publisher's JSON.
type clusterPublishResult struct {
	Role      string  `json:"role"`
	Channels  int     `json:"channels"`
	Rate      float64 `json:"rate"`
	Published int64   `json:"published"`
	Failed    []int64 `json:"failed"` // event numbers whose publish failed (maybe stored, maybe not)
	FirstErr  string  `json:"first_error,omitempty"`
	AckP50Ms  float64 `json:"ack_p50_ms"`
	AckP99Ms  float64 `json:"ack_p99_ms"`
	AckMaxMs  float64 `json:"ack_max_ms"`
	ByPhase   []int64 `json:"by_phase"`
	StartNs   int64   `json:"start_ns"`
	EndNs     int64   `json:"end_ns"`
}

func (p *clusterPublisher) run(ctx context.Context) (*clusterPublishResult, error) {
	var phase atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		p.watchPhase(ctx, &phase)
	}()
	defer wg.Wait()
	type job struct {
		n int64
		m protocol.MessageCreate
	}
	// Publishes outlive ctx (SIGTERM stops the pacing, not the publishes
	// already handed over): they are bounded by their own timeout.
	work := make(chan job, p.workers)
	res := &clusterPublishResult{Role: "publish", Channels: p.channels, Failed: []int64{}, ByPhase: make([]int64, len(clusterPhases)), StartNs: time.Now().UnixNano()}
	var mu sync.Mutex
	ack := newLatencyHist()
	var pubs sync.WaitGroup
	for w := 0; w < max(p.workers, 1); w++ {
		pubs.Add(1)
		go func() {
			defer pubs.Done()
			for j := range work {
				pctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				t0 := time.Now()
				err := p.e.pub.MessageCreated(pctx, j.m)
				cancel()
				mu.Lock()
				ack.add(float64(time.Since(t0).Microseconds()))
				if err != nil {
					res.Failed = append(res.Failed, j.n)
					if res.FirstErr == "" {
						res.FirstErr = err.Error()
					}
				}
				mu.Unlock()
			}
		}()
	}
	start := time.Now()
	t := time.NewTicker(10 * time.Millisecond)
	var sent int64
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-t.C:
		}
		due := int64(float64(p.rate) * time.Since(start).Seconds())
		for ; sent < due && ctx.Err() == nil; sent++ {
			ph := phase.Load()
			now := time.Now()
			m := protocol.MessageCreate{
				ID:        "b" + strconv.FormatInt(ph, 10) + "_" + strconv.FormatInt(sent, 10) + "_" + strconv.FormatInt(now.UnixNano(), 10),
				ChannelID: clusterChannel(int(sent % int64(p.channels))),
				Author:    protocol.Author{ID: 1, DisplayName: "loadgen"},
				Content:   p.pad,
				CreatedAt: now.Unix(),
			}
			if int(ph) < len(res.ByPhase) {
				res.ByPhase[ph]++
			}
			work <- job{sent, m}
		}
	}
	t.Stop()
	close(work)
	pubs.Wait()
	res.EndNs = time.Now().UnixNano()
	res.Published = sent
	res.Rate = float64(sent) / time.Since(start).Seconds()
	res.AckP50Ms, res.AckP99Ms, res.AckMaxMs = ack.quantile(50)/1e3, ack.quantile(99)/1e3, ack.MaxUs/1e3
	fmt.Fprintf(os.Stderr, "cluster publisher: %d events (%.1f/s), %d failed\n", sent, res.Rate, len(res.Failed))
	return res, nil
}

// watchPhase polls the phase file every 50 ms until ctx ends.
func (p *clusterPublisher) watchPhase(ctx context.Context, phase *atomic.Int64) {
	if p.phaseFile == "" {
		return
	}
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		if b, err := os.ReadFile(p.phaseFile); err == nil {
			if v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil {
				phase.Store(v)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
