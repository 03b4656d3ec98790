package gateway

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ocvr/realtime/pkg/provision"
)

// newProvisionObserver registers ocvr_gateway_jetstream_replicas{stream}
// on reg and returns the observer the stores are opened with: a bucket or
// the event stream at 1 replica in a cluster that should hold 3 is visible
// on a dashboard, not only in one warning at start.
func newProvisionObserver(log *slog.Logger, reg prometheus.Registerer) *provision.Observer {
	replicas := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: ns + "_jetstream_replicas",
		Help: "Replicas of each JetStream stream this pod opened (KV buckets as KV_<bucket>, the event stream by name); 1 in a cluster means a node lost loses it.",
	}, []string{"stream"})
	reg.MustRegister(replicas)
	return &provision.Observer{
		Logger:   log,
		Replicas: func(stream string, n int) { replicas.WithLabelValues(stream).Set(float64(n)) },
	}
}
