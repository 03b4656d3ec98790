package gateway

import (
	"context"
	"encoding/json"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// The fleet view: every gateway publishes its open connections on
// <prefix>.fleet.load every FleetInterval (core NATS, a few dozen bytes),
// and keeps the latest report of every other pod. The rebalancer
// (rebalance.go) compares its own count with the fleet's mean.

// Pod states in a fleet report. Only serving pods count towards the mean:
// a draining pod's sockets are leaving anyway, and a pod that is not
// serving (NATS or KV trouble, starting) is out of the load balancer.
const (
	podServing  = "serving"  // ready, or unready only because of the soft cap
	podDraining = "draining" // SIGTERM: closing its sockets
	podUnready  = "unready"  // starting, NATS or KV trouble
)

// fleetReport is one pod's publication.
type fleetReport struct {
	Pod   string `json:"pod"`
	Conns int    `json:"conns"`
	State string `json:"state"`
	// IntervalMs is the sender's publication interval: its report ages
	// out after fleetTTLIntervals of them.
	IntervalMs int64 `json:"interval_ms"`
}

// fleetTTLIntervals: a pod that missed this many publications in a row is
// gone (deleted, SIGKILLed, cut off from NATS).
const fleetTTLIntervals = 3

// maxPodName bounds a report's pod name (a Kubernetes pod name is ≤ 253).
const maxPodName = 253

func (r fleetReport) valid() bool {
	switch {
	case r.Pod == "" || len(r.Pod) > maxPodName || r.Conns < 0 || r.IntervalMs <= 0:
		return false
	case r.State != podServing && r.State != podDraining && r.State != podUnready:
		return false
	}
	return true
}

// fleetEntry is the latest report of another pod.
type fleetEntry struct {
	fleetReport
	seen time.Time
}

// fleet holds the other pods' latest reports. Its methods are safe for
// concurrent use (reports arrive on a NATS goroutine).
type fleet struct {
	self string

	mu   sync.Mutex
	pods map[string]fleetEntry
}

func newFleet(self string) *fleet {
	return &fleet{self: self, pods: map[string]fleetEntry{}}
}

// observe records a report (its own and malformed ones are ignored).
func (f *fleet) observe(data []byte, now time.Time) {
	var r fleetReport
	if json.Unmarshal(data, &r) != nil || !r.valid() || r.Pod == f.self {
		return
	}
	f.mu.Lock()
	f.pods[r.Pod] = fleetEntry{fleetReport: r, seen: now}
	f.mu.Unlock()
}

// serving returns the connection counts of the other pods that are
// serving, sorted by pod name, after forgetting those whose reports aged
// out.
func (f *fleet) serving(now time.Time) []podLoad {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]podLoad, 0, len(f.pods))
	for name, e := range f.pods {
		if now.Sub(e.seen) > fleetTTLIntervals*time.Duration(e.IntervalMs)*time.Millisecond {
			delete(f.pods, name)
			continue
		}
		if e.State == podServing {
			out = append(out, podLoad{Pod: name, Conns: e.Conns, seen: e.seen})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Pod < out[j].Pod })
	return out
}

// fleetSubject is where pods publish their reports.
func (g *Gateway) fleetSubject() string { return g.subjects.Prefix() + ".fleet.load" }

// podState is what this pod reports about itself.
func (g *Gateway) podState() string {
	if g.draining.Load() {
		return podDraining
	}
	if ok, why := g.Ready(); ok || why == reasonSoftCap {
		return podServing
	}
	return podUnready
}

// publishLoad sends this pod's report (best effort: a lost report only
// ages this pod out of the others' views after a few intervals).
func (g *Gateway) publishLoad() {
	b, _ := json.Marshal(fleetReport{
		Pod: g.cfg.PodName, Conns: g.Connections(), State: g.podState(),
		IntervalMs: g.cfg.FleetInterval.Milliseconds(),
	})
	_ = g.nc.Publish(g.fleetSubject(), b)
}

// fleetLoop subscribes to the fleet's reports, publishes this pod's every
// FleetInterval and runs the rebalancer on the same tick, until ctx ends.
func (g *Gateway) fleetLoop(ctx context.Context) {
	sub, err := g.nc.Subscribe(g.fleetSubject(), func(m *nats.Msg) { g.fleet.observe(m.Data, g.now()) })
	if err != nil {
		g.log.Error("fleet view: subscribe failed; rebalancing is off", "err", err)
		return
	}
	defer func() { _ = sub.Unsubscribe() }()
	// Decisions on a finer tick than the publications, so that the sockets
	// shed are spread evenly rather than in bursts.
	tick := min(g.cfg.FleetInterval, 250*time.Millisecond)
	t := time.NewTicker(tick)
	defer t.Stop()
	reb := newRebalancer(g.cfg, g.now())
	g.publishLoad()
	next := g.now().Add(g.cfg.FleetInterval)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if now := g.now(); !now.Before(next) {
			g.publishLoad()
			next = now.Add(g.cfg.FleetInterval)
		}
		g.rebalanceTick(reb)
	}
}
