package gateway

import "github.com/prometheus/client_golang/prometheus"

// continuityMetrics are the metrics of continuity (continuity.go, catchup.go).
type continuityMetrics struct {
	resumes   *prometheus.CounterVec // by scope and result
	replayed  *prometheus.CounterVec // by source: memory (a topic's backlog) or stream
	gaps      prometheus.Counter
	late      prometheus.Counter
	catchups  *prometheus.CounterVec // started, by reason
	catchupS  prometheus.Histogram
	behind    prometheus.Counter
	streamErr *prometheus.CounterVec
}

// Resume results.
const (
	resumeOK           = "resumed"
	resumeOutOfWindow  = "out_of_window" // the cursor is older than the stream keeps, or unknown to it
	resumeInvalidToken = "invalid_token" // a forged, foreign or missing token
	resumeUnavailable  = "unavailable"   // the stream did not answer
)

// Catch-up reasons.
const (
	catchupResume   = "resume"
	catchupOverflow = "overflow" // the connection's queue was full
	catchupGap      = "gap"      // a republished event never reached the pod
)

func newContinuityMetrics(reg *prometheus.Registry) *continuityMetrics {
	m := &continuityMetrics{
		resumes:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "_resumes_total", Help: "Subscriptions (scope channel) and connections (scope user) that asked to resume from a cursor, by result."}, []string{"scope", "result"}),
		replayed:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "_stream_replayed_events_total", Help: "Events delivered to catching-up connections and gap fills instead of live, by source: the topic's in-memory backlog or a read of the event stream (resumes, catch-ups, gap fills)."}, []string{"source"}),
		gaps:      prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "_stream_gaps_total", Help: "Republished events that never reached this pod, detected by Nats-Last-Sequence and filled from the stream."}),
		late:      prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "_stream_late_events_total", Help: "Live events dropped because their position was already delivered (a gap fill got there first)."}),
		catchups:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "_catchups_total", Help: "Connections that started reading a subject from the stream, by reason."}, []string{"reason"}),
		catchupS:  prometheus.NewHistogram(prometheus.HistogramOpts{Name: ns + "_catchup_duration_seconds", Help: "Time from the start of a catch-up (or resume) to live delivery.", Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}}),
		behind:    prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "_catchup_abandoned_total", Help: "Catching-up connections closed with 4009: they stayed behind longer than the continuity window allows."}),
		streamErr: prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "_stream_read_errors_total", Help: "Failed reads of the event stream, by operation."}, []string{"op"}),
	}
	for _, scope := range []string{"user", "channel"} {
		for _, r := range []string{resumeOK, resumeOutOfWindow, resumeInvalidToken, resumeUnavailable} {
			m.resumes.WithLabelValues(scope, r)
		}
	}
	for _, r := range []string{catchupResume, catchupOverflow, catchupGap} {
		m.catchups.WithLabelValues(r)
	}
	m.replayed.WithLabelValues("memory")
	m.replayed.WithLabelValues("stream")
	for _, op := range []string{"mark", "probe", "range"} {
		m.streamErr.WithLabelValues(op)
	}
	reg.MustRegister(m.resumes, m.replayed, m.gaps, m.late, m.catchups, m.catchupS, m.behind, m.streamErr)
	return m
}
