package server

import (
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ocvr/realtime/pkg/provision"
)

// newProvisionObserver registers ocvr_ticketsvc_jetstream_replicas{stream}
// on reg and returns the observer the stores are opened with: a bucket at 1
// replica in a cluster that should hold 3 is visible on a dashboard, not
// only in one warning at start.
func newProvisionObserver(log *slog.Logger, reg prometheus.Registerer) (*provision.Observer, error) {
	replicas := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: metricsNamespace, Subsystem: metricsSubsystem, Name: "jetstream_replicas",
		Help: "Replicas of each KV bucket's stream (KV_<bucket>) this process opened; 1 in a cluster means a node lost loses it.",
	}, []string{"stream"})
	if err := reg.Register(replicas); err != nil {
		return nil, fmt.Errorf("ticketsvc: register metrics: %w", err)
	}
	return &provision.Observer{
		Logger:   log,
		Replicas: func(stream string, n int) { replicas.WithLabelValues(stream).Set(float64(n)) },
	}, nil
}
