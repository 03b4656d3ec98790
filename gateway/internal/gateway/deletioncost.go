package gateway

import (
	"context"
	"math"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The pod's deletion cost. A ReplicaSet scaling down deletes unready pods
// first, then those with the lowest controller.kubernetes.io/pod-deletion-cost
// annotation: without it the fullest pods (unready at their soft cap) go
// first, the largest reconnect wave. The gateway keeps its own annotation
// at its connection count, so the emptiest pods go first.

// DeletionCostAnnotation is the annotation the ReplicaSet controller reads.
const DeletionCostAnnotation = "controller.kubernetes.io/pod-deletion-cost"

// DefaultDeletionCostInterval is how often the annotation is refreshed.
const DefaultDeletionCostInterval = 30 * time.Second

// DeletionCoster sets this pod's deletion cost (kubepod.go talks to the
// Kubernetes API; tests use their own).
type DeletionCoster interface {
	SetDeletionCost(ctx context.Context, cost int32) error
}

// deletionCost maps a connection count onto the annotation's int32.
func deletionCost(conns int) int32 {
	return int32(min(max(conns, 0), math.MaxInt32))
}

// deletionCostLoop sets the annotation now and every interval while the
// count changed, until ctx ends. A failure is logged once per episode
// (and its recovery), and counted.
func (g *Gateway) deletionCostLoop(ctx context.Context, dc DeletionCoster) {
	t := time.NewTicker(g.cfg.DeletionCostInterval)
	defer t.Stop()
	last, failing := int32(-1), false
	for {
		if cost := deletionCost(g.Connections()); cost != last {
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := dc.SetDeletionCost(cctx, cost)
			cancel()
			switch {
			case err != nil && ctx.Err() != nil:
				return
			case err != nil:
				g.metrics.deletionCost.WithLabelValues("error").Inc()
				if !failing {
					g.log.Warn("pod deletion cost not updated (scale-down may pick a full pod); retrying", "err", err)
				}
				failing = true
			default:
				g.metrics.deletionCost.WithLabelValues("ok").Inc()
				if failing {
					g.log.Info("pod deletion cost updated again", "cost", cost)
				}
				failing, last = false, cost
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func newDeletionCostMetric(reg *prometheus.Registry) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: ns + "_pod_deletion_cost_updates_total",
		Help: "Updates of this pod's controller.kubernetes.io/pod-deletion-cost annotation (its connection count) through the Kubernetes API, by result.",
	}, []string{"result"})
	c.WithLabelValues("ok")
	c.WithLabelValues("error")
	reg.MustRegister(c)
	return c
}
