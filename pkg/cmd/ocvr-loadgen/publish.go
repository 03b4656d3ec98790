package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ocvr/realtime/pkg/bus"
	"github.com/ocvr/realtime/pkg/protocol"
)

// Publishing paths (--path): through the event stream (the SDK's default:
// a JetStream publish that waits for the stream's acknowledgement, so the
// event gets a position) or a core NATS publish on the live subject (no
// position, no acknowledgement: the path before continuity).
const (
	pathStream = "stream"
	pathCore   = "core"
)

func pathFlag(fs *flag.FlagSet, def, also string) *string {
	return fs.String("path", def, "publish through the event `path`: stream (JetStream publish, one acknowledgement per event: the SDK's default) or core (core NATS publish on the live subject, no position)"+also)
}

func parsePaths(s string, both bool) ([]string, error) {
	switch s {
	case pathStream, pathCore:
		return []string{s}, nil
	case "both":
		if both {
			return []string{pathStream, pathCore}, nil
		}
	}
	return nil, fmt.Errorf("--path: bad path %q", s)
}

// eventPublisher publishes events through the SDK (bus.Publisher) from a
// pool of goroutines. The SDK's stream publish is synchronous — it returns
// when the stream has stored the event — so one goroutine could publish at
// most 1/RTT events per second, and the round trip grows with the load on
// the server core. With the pool at most `workers` publishes wait for
// their acknowledgements at once (bounded in-flight acknowledgements), and
// a pacer that finds every worker busy blocks: the achieved rate and the
// acknowledgement latency the workloads report show whether the publisher
// kept up. Both paths use the same pool, so they differ only in the
// publish itself.
type eventPublisher struct {
	pub     *bus.Publisher
	path    string
	work    chan protocol.MessageCreate
	pending sync.WaitGroup
	done    sync.WaitGroup

	mu       sync.Mutex
	ackMs    []float64 // duration of each publish call, ms
	errs     int64
	firstErr error
	inflight atomic.Int64
	peak     atomic.Int64
}

func newEventPublisher(ctx context.Context, e *env, path string, workers int) *eventPublisher {
	p := &eventPublisher{pub: e.pub, path: path, work: make(chan protocol.MessageCreate, workers)}
	if path == pathCore {
		p.pub = e.pub.Core()
	}
	for w := 0; w < max(workers, 1); w++ {
		p.done.Add(1)
		go func() {
			defer p.done.Done()
			for m := range p.work {
				n := p.inflight.Add(1)
				for {
					pk := p.peak.Load()
					if n <= pk || p.peak.CompareAndSwap(pk, n) {
						break
					}
				}
				t0 := time.Now()
				err := p.pub.MessageCreated(ctx, m)
				d := float64(time.Since(t0).Microseconds()) / 1e3
				p.inflight.Add(-1)
				p.mu.Lock()
				p.ackMs = append(p.ackMs, d)
				if err != nil {
					p.errs++
					if p.firstErr == nil {
						p.firstErr = err
					}
				}
				p.mu.Unlock()
				p.pending.Done()
			}
		}()
	}
	return p
}

// send hands m to a worker; it blocks while every worker is busy and the
// hand-off buffer is full.
func (p *eventPublisher) send(m protocol.MessageCreate) {
	p.pending.Add(1)
	p.work <- m
}

// wait returns when every event sent so far has been published (and, on
// the stream path, acknowledged).
func (p *eventPublisher) wait() { p.pending.Wait() }

func (p *eventPublisher) close() {
	close(p.work)
	p.done.Wait()
}

// pubStats is what the publisher saw since the previous take.
type pubStats struct {
	calls          int
	errs           int64
	firstErr       error
	p50, p99, pmax float64 // publish call (stream: until acknowledged), ms
	peakInflight   int64
}

func (p *eventPublisher) take() pubStats {
	p.mu.Lock()
	lat := p.ackMs
	s := pubStats{calls: len(lat), errs: p.errs, firstErr: p.firstErr}
	p.ackMs, p.errs, p.firstErr = nil, 0, nil
	p.mu.Unlock()
	sortFloats(lat)
	s.p50, s.p99, s.pmax = percentile(lat, 50), percentile(lat, 99), percentile(lat, 100)
	s.peakInflight = p.peak.Swap(0)
	return s
}

// loadEvent is a loadgen event; its id carries the step, the event's
// number in the step and its send time: b<step>_<n>_<unixnano>.
func loadEvent(ch string, stepIdx int, n int64, pad string) protocol.MessageCreate {
	now := time.Now()
	return protocol.MessageCreate{
		ID:        "b" + strconv.Itoa(stepIdx) + "_" + strconv.FormatInt(n, 10) + "_" + strconv.FormatInt(now.UnixNano(), 10),
		ChannelID: ch,
		Author:    protocol.Author{ID: 1, DisplayName: "loadgen"},
		Content:   pad,
		CreatedAt: now.Unix(),
	}
}

// pace publishes rate events/s for d on channel ch (or on chans[i mod
// len] when chans is set), in 10 ms batches, and waits until they are all
// published. It returns how many it sent and how long sending took (from
// the first event to the last hand-off: less than d means on schedule).
func pace(ctx context.Context, p *eventPublisher, chans []string, stepIdx, rate int, d time.Duration, pad string) (int64, time.Duration) {
	const tick = 10 * time.Millisecond
	t := time.NewTicker(tick)
	defer t.Stop()
	start := time.Now()
	var sent int64
	total := int64(float64(rate) * d.Seconds())
	for sent < total && ctx.Err() == nil {
		<-t.C
		due := min(int64(float64(rate)*time.Since(start).Seconds()), total)
		for ; sent < due && ctx.Err() == nil; sent++ {
			p.send(loadEvent(chans[int(sent)%len(chans)], stepIdx, sent, pad))
		}
	}
	took := time.Since(start)
	p.wait()
	return sent, took
}

// parseFanoutID extracts step and send time from `"id":"b<step>_<n>_<ns>"`.
func parseFanoutID(f []byte) (int, int64, bool) {
	stepIdx, _, ts, ok := parseEventID(f)
	return stepIdx, ts, ok
}

// parseEventID extracts step, number and send time from
// `"id":"b<step>_<n>_<ns>"`.
func parseEventID(f []byte) (stepIdx int, n, ts int64, ok bool) {
	s := string(f) // no copy on the hot path: the compiler elides it for indexing
	i := strings.Index(s, `"id":"b`)
	if i < 0 {
		return 0, 0, 0, false
	}
	s = s[i+7:]
	j := strings.IndexByte(s, '_')
	if j < 0 {
		return 0, 0, 0, false
	}
	stepIdx, err := strconv.Atoi(s[:j])
	if err != nil {
		return 0, 0, 0, false
	}
	s = s[j+1:]
	k := strings.IndexByte(s, '_')
	if k < 0 {
		return 0, 0, 0, false
	}
	n, err = strconv.ParseInt(s[:k], 10, 64)
	if err != nil {
		return 0, 0, 0, false
	}
	s = s[k+1:]
	q := strings.IndexByte(s, '"')
	if q < 0 {
		return 0, 0, 0, false
	}
	ts, err = strconv.ParseInt(s[:q], 10, 64)
	return stepIdx, n, ts, err == nil
}

var seqKey = []byte(`,"seq":`)

// frameSeq reads the position the gateway appends to a positioned event
// (`…,"seq":N}` at the end of the frame: gateway/README.md "Continuity");
// 0 for an event without one.
func frameSeq(f []byte) uint64 {
	i := bytes.LastIndex(f, seqKey)
	if i < 0 {
		return 0
	}
	s := f[i+len(seqKey):]
	var v uint64
	for _, c := range s {
		if c < '0' || c > '9' {
			if c != '}' {
				return 0
			}
			return v
		}
		v = v*10 + uint64(c-'0')
	}
	return 0
}
