package server

import (
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/ocvr/realtime/pkg/buildinfo"
)

const (
	metricsNamespace = "ocvr"
	metricsSubsystem = "ticketsvc"
)

// Results of a ticket request: the result label of
// ocvr_ticketsvc_ticket_requests_total. A fixed set, so the label stays bounded.
const (
	resultOK           = "ok"
	resultUnauthorized = "unauthorized"
	resultRateLimited  = "rate_limited"
	resultUnavailable  = "unavailable"
	resultOverloaded   = "overloaded"
)

type metrics struct {
	ticketsIssued  prometheus.Counter
	ticketRequests *prometheus.CounterVec
	byResult       map[string]prometheus.Counter // ticketRequests by label value, looked up once
	rateLimited    prometheus.Counter
	natsReconnects prometheus.Counter
}

// newMetrics registers ticketsvc's metrics, plus the Go and process
// collectors, on reg. Each Server has its own registry so several can run in
// one process (tests, dev launchers) without colliding.
func newMetrics(reg *prometheus.Registry, s *Server) (*metrics, error) {
	opts := func(name, help string) prometheus.CounterOpts {
		return prometheus.CounterOpts{Namespace: metricsNamespace, Subsystem: metricsSubsystem, Name: name, Help: help}
	}
	m := &metrics{
		ticketsIssued: prometheus.NewCounter(opts("tickets_issued_total", "Connect tickets minted.")),
		ticketRequests: prometheus.NewCounterVec(opts("ticket_requests_total",
			"Ticket requests by result: ok, unauthorized, rate_limited, unavailable, overloaded."), []string{"result"}),
		byResult:       map[string]prometheus.Counter{},
		rateLimited:    prometheus.NewCounter(opts("rate_limited_total", "Ticket requests refused by the per-session rate limit.")),
		natsReconnects: prometheus.NewCounter(opts("nats_reconnects_total", "Times the NATS connection was re-established.")),
	}
	for _, r := range []string{resultOK, resultUnauthorized, resultRateLimited, resultUnavailable, resultOverloaded} {
		// Created now: zeros are exported so rate() works from the first
		// scrape, and a request does no label hashing.
		m.byResult[r] = m.ticketRequests.WithLabelValues(r)
	}
	natsConnected := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: metricsNamespace, Subsystem: metricsSubsystem, Name: "nats_connected",
		Help: "1 while the NATS connection is established, else 0.",
	}, func() float64 {
		// Read at scrape time rather than tracked from callbacks: the first
		// delayed connect of a RetryOnFailedConnect client fires no
		// reconnect callback.
		if nc := s.nc.Load(); nc != nil && nc.Status() == nats.CONNECTED {
			return 1
		}
		return 0
	})
	limiterKeys := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: metricsNamespace, Subsystem: metricsSubsystem, Name: "rate_limiter_sessions",
		Help: "Sessions currently tracked by the rate limiter (idle ones are evicted).",
	}, func() float64 {
		if s.limiter == nil {
			return 0
		}
		return float64(s.limiter.Len())
	})
	for _, c := range []prometheus.Collector{
		m.ticketsIssued, m.ticketRequests, m.rateLimited, m.natsReconnects, natsConnected, limiterKeys,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		// go_build_info{path,version,checksum,revision}: which build a pod
		// runs (client_golang's collector says "(devel)" for every build from
		// a checkout; pkg/buildinfo names the commit).
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "go_build_info", Help: "Build information about the main Go module.",
			ConstLabels: buildinfo.Read().Labels()}, func() float64 { return 1 }),
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("ticketsvc: register metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) result(r string) { m.byResult[r].Inc() }
