package gateway

import (
	"encoding/json"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/ocvr/realtime/pkg/bus"
)

// Advisories and their log lines are rate-limited per pod: a backend that
// publishes garbage in a loop must not turn into as many advisories, logs
// and NATS messages. Every refusal is counted all the same.
const (
	advisoryRate  = 10 // per second
	advisoryBurst = 20
)

// rejections reports the bus payloads this pod refused, so that a publisher
// is never left guessing why nothing arrived: each is counted, and (within
// the rate) logged and published as a bus.Rejected advisory on the
// environment's advisory subject.
type rejections struct {
	publish  func(subject string, data []byte) error
	subject  string // the advisory subject
	pod      string
	log      *slog.Logger
	now      func() time.Time
	refused  prometheus.Counter
	reported *prometheus.CounterVec // by result: published, suppressed, failed

	mu         sync.Mutex
	limiter    *rate.Limiter
	suppressed int64 // refusals not reported since the last advisory
}

func newRejections(publish func(string, []byte) error, subjects bus.Subjects, pod string, log *slog.Logger, now func() time.Time, m *metrics) *rejections {
	return &rejections{
		publish:  publish,
		subject:  subjects.AdvisoryRejected(),
		pod:      pod,
		log:      log,
		now:      now,
		refused:  m.invalidPayloads,
		reported: m.advisories,
		limiter:  rate.NewLimiter(advisoryRate, advisoryBurst),
	}
}

// report records that the payload that came on subject was refused for
// reason.
func (r *rejections) report(subject, reason string, payload []byte) {
	r.refused.Inc()
	r.mu.Lock()
	if !r.limiter.AllowN(r.now(), 1) {
		r.suppressed++
		r.mu.Unlock()
		r.reported.WithLabelValues("suppressed").Inc()
		return
	}
	suppressed := r.suppressed
	r.suppressed = 0
	r.mu.Unlock()

	adv := bus.NewRejected(subject, reason, payload)
	adv.Gateway, adv.Time, adv.Suppressed = r.pod, r.now().Unix(), suppressed
	r.log.Warn("refused bus payload", "subject", subject, "reason", reason, "bytes", len(payload), "suppressed", suppressed)
	b, err := json.Marshal(adv)
	if err == nil {
		err = r.publish(r.subject, b)
	}
	if err != nil {
		r.reported.WithLabelValues("failed").Inc()
		r.log.Warn("advisory not published", "err", err)
		return
	}
	r.reported.WithLabelValues("published").Inc()
}
