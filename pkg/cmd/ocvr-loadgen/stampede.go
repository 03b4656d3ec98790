package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ocvr/realtime/pkg/client"
)

// stampedeWorkload is the overload side of the connect storm: N clients
// that all come back at once with no jitter, K in flight. A refusal the
// servers document as retryable (a 1013 whose reason carries
// retry_after=, an HTTP 429/503 with Retry-After from ticketsvc or the
// gateway) is honoured as the SDKs do — the hint plus jitter up to it —
// and the client tries again with a new ticket; anything else fails the
// run. It reports whether every client got in, the refusals by kind, the
// latency of the attempts that were admitted and the servers' peak memory
// and descriptors.
func stampedeWorkload(ctx context.Context, e *env, fs *flag.FlagSet) func() (*report, error) {
	conns := fs.Int("conns", 19000, "clients")
	inflight := fs.Int("inflight", 1000, "clients connecting at once (no jitter)")
	deadline := fs.Duration("deadline", 5*time.Minute, "give up when not every client is in by then")
	return func() (*report, error) {
		users, err := e.makeUsers(ctx, *conns, nil)
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithTimeout(ctx, *deadline)
		defer cancel()
		lites := make([]*client.Lite, *conns)
		defer func() {
			for _, l := range lites {
				if l != nil {
					l.CloseNow()
				}
			}
		}()
		admitted := make([]float64, *conns) // ms of the attempt that got in
		var refusals sync.Map               // kind → *atomic.Int64
		count := func(kind string) {
			v, _ := refusals.LoadOrStore(kind, new(atomic.Int64))
			v.(*atomic.Int64).Add(1)
		}
		var attempts atomic.Int64
		peak := newPeakSampler(e)
		stopPeak := peak.run(ctx)
		before := e.sample()
		start := time.Now()
		err = connectMany(ctx, *conns, *inflight, func(i int) error {
			for {
				attempts.Add(1)
				t0 := time.Now()
				l, err := e.connectOnce(ctx, users[i].token)
				if err == nil {
					admitted[i] = float64(time.Since(t0).Microseconds()) / 1e3
					lites[i] = l
					return nil
				}
				kind, hint := refusalKind(err)
				if hint <= 0 {
					return fmt.Errorf("not a retryable refusal: %w", err)
				}
				count(kind)
				select {
				case <-time.After(hint + rand.N(hint)):
				case <-ctx.Done():
					return fmt.Errorf("still refused at the deadline (last: %w)", err)
				}
			}
		})
		took := time.Since(start)
		after := e.sample()
		stopPeak()
		if err != nil {
			return nil, err
		}
		sortFloats(admitted)
		var kinds []string
		refusals.Range(func(k, v any) bool {
			kinds = append(kinds, fmt.Sprintf("%s=%d", k, v.(*atomic.Int64).Load()))
			return true
		})
		sort.Strings(kinds)
		rowRefusals := "none"
		if len(kinds) > 0 {
			rowRefusals = fmt.Sprint(kinds)
		}
		return &report{
			Params: map[string]any{"conns": *conns, "inflight": *inflight},
			Columns: []string{"clients", "in flight", "all in after s", "attempts", "refusals (retryable)", "admitted p50 ms", "admitted p99 ms",
				"server CPU ms/connect", "peak server RSS MiB", "peak server fds"},
			Rows: [][]any{{*conns, *inflight, took.Seconds(), attempts.Load(), rowRefusals, percentile(admitted, 50), percentile(admitted, 99),
				cpuSeconds(before, after) * 1e3 / float64(*conns), peak.rssMiB(), peak.fds()}},
			Notes: []string{
				"no jitter on the first attempt; a refused client waits the server's hint plus up to the hint again, then retries with a new ticket",
				"admitted p50/p99: the attempt that got in (ticket + upgrade + ready); refusals are answered at once and not in these",
			},
		}, nil
	}
}

// connectOnce is one attempt of a client: a new ticket, the upgrade and
// its ready frame.
func (e *env) connectOnce(ctx context.Context, token string) (*client.Lite, error) {
	tk, err := client.GetTicket(ctx, e.hc, e.ticketURL, token)
	if err != nil {
		return nil, fmt.Errorf("ticket: %w", err)
	}
	return e.dialTicket(ctx, tk)
}

// refusalKind names a refusal for the report and returns its retry hint
// (0: not a documented retryable refusal).
func refusalKind(err error) (string, time.Duration) {
	hint := client.RetryAfter(err)
	var ce *client.CloseError
	var ue *client.UpgradeError
	var he *client.HTTPError
	switch {
	case errors.As(err, &ce):
		return fmt.Sprintf("close %d", ce.Code), hint
	case errors.As(err, &ue):
		return fmt.Sprintf("gateway http %d", ue.Status), hint
	case errors.As(err, &he):
		return fmt.Sprintf("ticketsvc http %d", he.Status), hint
	}
	return "other", 0
}

// peakSampler follows the measured processes' descriptors while a run
// lasts (every 250 ms); their peak RSS is the kernel's own high-water mark.
type peakSampler struct {
	e       *env
	maxFDs  atomic.Int64
	stopped chan struct{}
}

func newPeakSampler(e *env) *peakSampler { return &peakSampler{e: e, stopped: make(chan struct{})} }

// run samples until ctx ends or the returned stop is called (which waits
// for the sampling goroutine to exit).
func (p *peakSampler) run(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		defer close(p.stopped)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			p.sampleFDs()
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return func() { cancel(); <-p.stopped }
}

func (p *peakSampler) sampleFDs() {
	var n int64
	for _, pid := range p.e.pids {
		if ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
			n += int64(len(ents))
		}
	}
	if n > p.maxFDs.Load() {
		p.maxFDs.Store(n)
	}
}

func (p *peakSampler) fds() int64 { return p.maxFDs.Load() }

// rssMiB is the sum of the measured processes' peak RSS (VmHWM).
func (p *peakSampler) rssMiB() float64 {
	var b int64
	for _, pid := range p.e.pids {
		b += readPeakRSS(pid)
	}
	return float64(b) / (1 << 20)
}
