package gateway

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/ocvr/realtime/pkg/buildinfo"
	"github.com/ocvr/realtime/pkg/protocol"
)

// metrics are the gateway's Prometheus metrics (DESIGN.md §6). Labels are
// bounded: frame types, error codes, close codes, results. Never ids.
type metrics struct {
	reg *prometheus.Registry

	connections     prometheus.Gauge
	connects        *prometheus.CounterVec
	disconnects     *prometheus.CounterVec
	framesIn        map[string]prometheus.Counter
	framesOut       map[string]prometheus.Counter
	errors          map[string]prometheus.Counter
	subscriptions   prometheus.Gauge
	busSubs         prometheus.Gauge
	latency         prometheus.Histogram
	slowConsumers   prometheus.Counter
	invalidPayloads prometheus.Counter
	advisories      *prometheus.CounterVec
	busDropped      prometheus.Counter
	redeems         *prometheus.CounterVec
	redeemLatency   prometheus.Histogram
	natsReconnects  prometheus.Counter
	draining        prometheus.Gauge
	presence        *prometheus.CounterVec
	connLimit       *prometheus.GaugeVec
	cont            *continuityMetrics
	rebalance       *rebalanceMetrics
	deletionCost    *prometheus.CounterVec
	compression     *compressionMetrics
}

const ns = "ocvr_gateway"

func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildInfoMetric()) // go_build_info{path,version,checksum,revision}: which build a pod runs
	f := func(c prometheus.Collector) { m.reg.MustRegister(c) }

	m.connections = prometheus.NewGauge(prometheus.GaugeOpts{Name: ns + "_connections", Help: "Open client WebSocket connections on this pod (the autoscaling metric)."})
	m.connects = prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "_connects_total", Help: "Connection attempts by result."}, []string{"result"})
	m.disconnects = prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "_disconnects_total", Help: "Closed connections by close code."}, []string{"code"})
	framesIn := prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "_frames_in_total", Help: "Client frames received, by type (invalid: not a valid frame)."}, []string{"type"})
	framesOut := prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "_frames_out_total", Help: "Frames queued to clients, by type."}, []string{"type"})
	errs := prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "_errors_total", Help: "Error frames sent to clients, by code."}, []string{"code"})
	m.subscriptions = prometheus.NewGauge(prometheus.GaugeOpts{Name: ns + "_subscriptions", Help: "Connection-level channel subscriptions on this pod."})
	m.busSubs = prometheus.NewGauge(prometheus.GaugeOpts{Name: ns + "_bus_subscriptions", Help: "NATS subscriptions held by this pod (one per subject, shared by its connections)."})
	m.latency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    ns + "_delivery_latency_seconds",
		Help:    "Time from Ocvr-Published-At to the socket write, per delivered frame.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	})
	m.slowConsumers = prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "_slow_consumer_disconnects_total", Help: "Connections closed with 4009 because their outbound queue overflowed."})
	m.invalidPayloads = prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "_invalid_bus_payloads_total", Help: "Bus messages dropped because their payload or headers were invalid."})
	m.advisories = prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "_bus_advisories_total", Help: "Refused bus payloads reported on the advisory subject, by result (published; suppressed by the rate limit; failed to publish)."}, []string{"result"})
	for _, r := range []string{"published", "suppressed", "failed"} {
		m.advisories.WithLabelValues(r)
	}
	m.busDropped = prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "_bus_slow_consumer_events_total", Help: "NATS slow-consumer events: the pod fell behind the bus and messages were dropped."})
	m.redeems = prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "_ticket_redeems_total", Help: "Ticket redemptions by result."}, []string{"result"})
	m.redeemLatency = prometheus.NewHistogram(prometheus.HistogramOpts{Name: ns + "_ticket_redeem_duration_seconds", Help: "Ticket redemption latency (KV get + delete + session check).", Buckets: prometheus.DefBuckets})
	m.natsReconnects = prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "_nats_reconnects_total", Help: "NATS reconnections (each one follows an outage)."})
	m.presence = prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "_presence_transitions_total", Help: "Cluster-wide presence transitions this pod won and announced to friends."}, []string{"presence"})
	m.presence.WithLabelValues("online")
	m.presence.WithLabelValues("offline")
	m.draining = prometheus.NewGauge(prometheus.GaugeOpts{Name: ns + "_draining", Help: "1 while the pod drains its connections before exit."})
	m.connLimit = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: ns + "_connection_limit", Help: "Configured connection limits of this pod: soft (at it /readyz fails), hard (at it new sockets are closed with 1013); 0 means no limit."}, []string{"limit"})

	for _, c := range []prometheus.Collector{m.connections, m.connects, m.disconnects, framesIn, framesOut, errs,
		m.subscriptions, m.busSubs, m.latency, m.slowConsumers, m.invalidPayloads, m.advisories, m.busDropped,
		m.redeems, m.redeemLatency, m.natsReconnects, m.presence, m.draining, m.connLimit} {
		f(c)
	}

	m.cont = newContinuityMetrics(m.reg)
	m.rebalance = newRebalanceMetrics(m.reg)
	m.deletionCost = newDeletionCostMetric(m.reg)
	m.compression = newCompressionMetrics(m.reg)

	// Pre-resolve label values: the hot path must not hash label strings.
	m.framesIn = map[string]prometheus.Counter{}
	for _, t := range []string{protocol.TypeHeartbeat, protocol.TypeSubscribe, protocol.TypeUnsubscribe, protocol.TypeTyping, "invalid"} {
		m.framesIn[t] = framesIn.WithLabelValues(t)
	}
	m.framesOut = map[string]prometheus.Counter{}
	for _, t := range []string{protocol.TypeHeartbeatAck, protocol.TypeMessageCreate, protocol.TypeMessageUpdate, protocol.TypeMessageDelete,
		protocol.TypeTypingStart, protocol.TypePresenceUpdate, protocol.TypeNotification, protocol.TypeSessionRevoked,
		protocol.TypeError, protocol.TypeReady, protocol.TypeSubscribed, protocol.TypeUnsubscribed, otherType} {
		m.framesOut[t] = framesOut.WithLabelValues(t)
	}
	m.errors = map[string]prometheus.Counter{}
	for _, c := range append([]string{CodeUnavailable}, protocol.ErrorCodes...) {
		m.errors[c] = errs.WithLabelValues(c)
	}
	for _, r := range []string{"ok", "invalid_ticket", "origin_rejected", "over_capacity", "unavailable", "draining", "not_upgrade", "source_limit", connectBusy} {
		m.connects.WithLabelValues(r)
	}
	for _, r := range []string{"ok", "malformed", "unknown", "expired", "session_invalid", "error"} {
		m.redeems.WithLabelValues(r)
	}
	return m
}

// setLimits exports the configured connection limits (alerts compare the
// connections gauge with them).
func (m *metrics) setLimits(soft, hard int) {
	m.connLimit.WithLabelValues("soft").Set(float64(soft))
	m.connLimit.WithLabelValues("hard").Set(float64(hard))
}

// otherType labels the frames of event types the gateway does not know:
// backends add types at will, and a label per type would be unbounded.
const otherType = "other"

// delivered counts n frames of type typ queued by one bus message.
func (m *metrics) delivered(typ string, n int) {
	if n <= 0 {
		return
	}
	c := m.framesOut[typ]
	if c == nil {
		c = m.framesOut[otherType]
	}
	c.Add(float64(n))
}

func (m *metrics) frameOut(typ string) { m.delivered(typ, 1) }

func (m *metrics) frameIn(typ string) {
	if c := m.framesIn[typ]; c != nil {
		c.Inc()
	}
}

func (m *metrics) errorSent(code string) {
	if c := m.errors[code]; c != nil {
		c.Inc()
	}
}

// written observes the delivery latency of frames just written.
func (m *metrics) written(batch []outFrame, now time.Time) {
	n := now.UnixNano()
	for _, f := range batch {
		if f.publishedAt > 0 && f.publishedAt <= n {
			m.latency.Observe(float64(n-f.publishedAt) / 1e9)
		}
	}
}

// observeLatency records the publish-to-write latency of written frames.
func (m *metrics) observeLatency(publishedAt []int64, now time.Time) {
	n := now.UnixNano()
	for _, p := range publishedAt {
		if p <= n {
			m.latency.Observe(float64(n-p) / 1e9)
		}
	}
}

// disconnected counts a closed connection. Clients may close with any code,
// so unknown codes share one label value.
func (m *metrics) disconnected(code int) {
	label := "other"
	switch code {
	case protocol.CloseNormal, protocol.CloseGoingAway, protocol.CloseNoStatus, protocol.CloseAbnormal,
		protocol.CloseMessageTooBig, protocol.CloseInternalError, protocol.CloseServiceRestart, protocol.CloseTryAgainLater,
		protocol.CloseInvalidTicket, protocol.CloseSessionRevoked, protocol.CloseHeartbeatTimeout, protocol.CloseRateLimited,
		protocol.CloseSlowConsumer, protocol.CloseTooManyConns:
		label = strconv.Itoa(code)
	}
	m.disconnects.WithLabelValues(label).Inc()
}

// buildInfoMetric is go_build_info with the version and commit of
// pkg/buildinfo (client_golang's collector says "(devel)" for every build
// from a checkout).
func buildInfoMetric() prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "go_build_info", Help: "Build information about the main Go module.",
		ConstLabels: buildinfo.Read().Labels()}, func() float64 { return 1 })
}
