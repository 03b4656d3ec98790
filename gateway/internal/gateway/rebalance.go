package gateway

import (
	"math"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ocvr/realtime/pkg/protocol"
)

// Active rebalancing. After a scale-out the new pods only get their share
// of new connects, while the old ones keep their sockets for hours: the
// autoscaler's average is met, the hot pods stay hot. Each pod therefore
// compares its own connections with the mean of the serving pods in its
// fleet view (fleet.go) and, when it is above the mean by more than
// RebalanceMargin, closes the excess with 1012 — the drain's code: clients
// reconnect through the load balancer and resume (continuity) — spread
// over RebalanceWindow and never faster than RebalanceMaxRate.
//
// Why it does not oscillate: a pod starts shedding only above
// mean×(1+margin) and stops at the mean, never below it, so the sockets it
// sheds can only fill pods that are below the mean; draining and unready
// pods are not counted; a pod that stopped shedding waits a few fleet
// intervals before it may start again (its view of the others is that
// old); and a pod that just started waits until it has heard every live
// pod once.

// Defaults of the rebalancing settings.
const (
	DefaultFleetInterval    = 2 * time.Second
	DefaultRebalanceMargin  = 0.10
	DefaultRebalanceWindow  = time.Minute
	DefaultRebalanceMaxRate = 50.0
)

// minShedExcess: a pod fewer sockets than this above the mean does not
// start shedding: moving a handful of clients is not worth their
// reconnects (and small test fleets stay undisturbed).
const minShedExcess = 10

// shedReason is the 1012's reason: clients treat it as a drain.
const shedReason = "rebalancing"

// podLoad is one pod's open connections in the fleet view.
type podLoad struct {
	Pod   string
	Conns int
	seen  time.Time // when its report arrived
}

// rebalancer decides, tick by tick, how many sockets this pod sheds. It
// is owned by the fleet loop's goroutine.
type rebalancer struct {
	margin  float64
	window  time.Duration
	maxRate float64       // sockets per second
	hold    time.Duration // after an episode, before the next may start

	transit   time.Duration // how long a shed socket may be counted nowhere
	warmUntil time.Time     // no decision before: the view is not complete yet
	holdUntil time.Time
	shedding  bool
	deadline  time.Time // the episode's excess should be gone by then
	last      time.Time
	budget    float64 // sockets owed, fractional
	recent    []shedAt
}

// shedAt is a decision to shed n sockets.
type shedAt struct {
	at time.Time
	n  int
}

func newRebalancer(cfg Config, now time.Time) *rebalancer {
	settle := fleetTTLIntervals * cfg.FleetInterval
	return &rebalancer{
		margin: cfg.RebalanceMargin, window: cfg.RebalanceWindow, maxRate: cfg.RebalanceMaxRate,
		hold: settle, warmUntil: now.Add(settle),
		// No report is older than this (older ones age out sooner or
		// later, but a live pod reports every interval).
		transit: 2 * cfg.FleetInterval,
	}
}

// inTransit is what this pod shed after the oldest of the others' reports
// arrived, which that report cannot count: without it the fleet's total
// looks smaller than it is, and a pod overshoots below the mean (then the
// receivers, above it, would shed back).
func (r *rebalancer) inTransit(now time.Time, others []podLoad) int {
	var since time.Time // the oldest report's arrival
	for _, p := range others {
		if !p.seen.IsZero() && (since.IsZero() || p.seen.Before(since)) {
			since = p.seen
		}
	}
	if since.IsZero() {
		since = now.Add(-r.transit)
	}
	keep, n := r.recent[:0], 0
	for _, s := range r.recent {
		if now.Sub(s.at) >= r.transit {
			continue // older than any report can be
		}
		keep = append(keep, s)
		if !s.at.Before(since) {
			n += s.n
		}
	}
	r.recent = keep
	return n
}

// fleetMean is the mean connections of this pod and the others, with the
// sockets in transit between them.
func fleetMean(self, transit int, others []podLoad) float64 {
	total := self + transit
	for _, p := range others {
		total += p.Conns
	}
	return float64(total) / float64(1+len(others))
}

// plan returns how many sockets to shed now, given this pod's connections
// and the serving others'.
func (r *rebalancer) plan(now time.Time, self int, others []podLoad) int {
	if now.Before(r.warmUntil) {
		return 0
	}
	if len(others) == 0 {
		r.stop(now)
		return 0
	}
	mean := fleetMean(self, r.inTransit(now, others), others)
	excess := self - int(math.Ceil(mean))
	if !r.shedding {
		if now.Before(r.holdUntil) || excess < minShedExcess || float64(self) <= mean*(1+r.margin) {
			return 0
		}
		r.shedding, r.deadline, r.last, r.budget = true, now.Add(r.window), now, 0
		return 0
	}
	if excess <= 0 {
		r.stop(now)
		return 0
	}
	// What is left spread over what is left of the window, then at most
	// the maximum rate (past the deadline: the maximum rate).
	remaining := r.deadline.Sub(now).Seconds()
	rate := r.maxRate
	if remaining > 0 {
		rate = min(rate, float64(excess)/remaining)
	}
	r.budget += rate * now.Sub(r.last).Seconds()
	r.last = now
	n := min(int(r.budget), excess)
	r.budget -= float64(n)
	if n > 0 {
		r.recent = append(r.recent, shedAt{now, n})
	}
	return n
}

func (r *rebalancer) stop(now time.Time) {
	if r.shedding {
		r.shedding, r.holdUntil, r.budget = false, now.Add(r.hold), 0
	}
}

// rebalanceTick runs one decision and sheds what it says.
func (g *Gateway) rebalanceTick(r *rebalancer) {
	now := g.now()
	others := g.fleet.serving(now)
	self := g.Connections()
	m := g.metrics.rebalance
	m.pods.Set(float64(1 + len(others)))
	m.mean.Set(fleetMean(self, 0, others))
	if g.cfg.NoRebalance || g.podState() != podServing {
		r.stop(now)
		m.active.Set(0)
		return
	}
	n := r.plan(now, self, others)
	if r.shedding {
		m.active.Set(1)
	} else {
		m.active.Set(0)
	}
	if n > 0 {
		g.shed(n)
	}
}

// shed closes n open sockets with 1012 (any n: the map's order).
func (g *Gateway) shed(n int) {
	for _, c := range g.snapshot() {
		if n == 0 {
			return
		}
		if c.closeForRebalance() {
			g.metrics.rebalance.shed.Inc()
			n--
		}
	}
}

// closeForRebalance asks c to close with 1012 after what it has queued;
// false if it was already closing.
func (c *conn) closeForRebalance() bool {
	c.mu.Lock()
	closing := c.closing
	c.mu.Unlock()
	if closing {
		return false
	}
	c.closeAfterQueue(protocol.CloseServiceRestart, shedReason)
	return true
}

// rebalanceMetrics are the fleet view's and the rebalancer's metrics.
type rebalanceMetrics struct {
	shed   prometheus.Counter
	active prometheus.Gauge
	pods   prometheus.Gauge
	mean   prometheus.Gauge
}

func newRebalanceMetrics(reg *prometheus.Registry) *rebalanceMetrics {
	m := &rebalanceMetrics{
		shed:   prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "_rebalance_shed_total", Help: "Sockets this pod closed with 1012 to move load to emptier pods (active rebalancing)."}),
		active: prometheus.NewGauge(prometheus.GaugeOpts{Name: ns + "_rebalance_active", Help: "1 while this pod sheds sockets because it is above the fleet's mean by more than the margin."}),
		pods:   prometheus.NewGauge(prometheus.GaugeOpts{Name: ns + "_fleet_pods", Help: "Serving gateway pods in this pod's fleet view, itself included."}),
		mean:   prometheus.NewGauge(prometheus.GaugeOpts{Name: ns + "_fleet_mean_connections", Help: "Mean open connections of the serving pods in this pod's fleet view."}),
	}
	reg.MustRegister(m.shed, m.active, m.pods, m.mean)
	return m
}
