package stream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ocvr/realtime/pkg/provision"
)

// Headers JetStream puts on a republished or directly read event.
const (
	HeaderStream       = "Nats-Stream"
	HeaderSequence     = "Nats-Sequence"
	HeaderLastSequence = "Nats-Last-Sequence"
	HeaderSubject      = "Nats-Subject"
	HeaderTimeStamp    = "Nats-Time-Stamp"
	HeaderMsgID        = "Nats-Msg-Id"
	// HeaderMarkerReason marks a subject delete marker (a stream with
	// SubjectDeleteMarkerTTL republishes them with an empty body).
	HeaderMarkerReason = "Nats-Marker-Reason"
)

// Position is where a republished event sits in the stream: its sequence
// and the sequence of the previous event of the same subject (0 for the
// first one the stream holds).
type Position struct {
	Seq, Last uint64
}

// PositionOf reads the position of a message republished by the stream
// named name; ok is false for a message without one (a core publish).
func PositionOf(h nats.Header, name string) (p Position, ok bool) {
	if h == nil || h.Get(HeaderStream) != name {
		return Position{}, false
	}
	seq, err := strconv.ParseUint(h.Get(HeaderSequence), 10, 64)
	if err != nil || seq == 0 {
		return Position{}, false
	}
	last, err := strconv.ParseUint(h.Get(HeaderLastSequence), 10, 64)
	if err != nil || last >= seq {
		return Position{}, false
	}
	return Position{Seq: seq, Last: last}, true
}

// Event is one event read back from the stream.
type Event struct {
	Subject string // the live subject it was republished to
	Seq     uint64
	Time    time.Time // when the stream stored it
	Data    []byte
	Header  nats.Header
}

// ErrNotFound: the stream has no such event (never stored, or aged out).
var ErrNotFound = errors.New("stream: no such event")

// MaxBatch is the most events one Range returns.
const MaxBatch = 1024

// Reader reads the stream with Direct Get (any replica answers; see the
// callers for how they guard against a lagging one).
type Reader struct {
	nc     *nats.Conn
	prefix string
	name   string
	api    string
}

// NewReader returns a reader of cfg's stream on nc.
func NewReader(nc *nats.Conn, cfg Config) (*Reader, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Reader{nc: nc, prefix: cfg.Prefix, name: cfg.Name, api: provision.APIPrefix(cfg.Domain) + "DIRECT.GET." + cfg.Name}, nil
}

// Name is the stream's name.
func (r *Reader) Name() string { return r.name }

type getRequest struct {
	Seq     uint64 `json:"seq,omitempty"`
	LastFor string `json:"last_by_subj,omitempty"`
	NextFor string `json:"next_by_subj,omitempty"`
	Batch   int    `json:"batch,omitempty"`
}

// Last returns the stream's last sequence (0 when it holds nothing).
func (r *Reader) Last(ctx context.Context) (uint64, error) {
	ev, err := r.get(ctx, getRequest{LastFor: r.prefix + ".in.>"})
	if errors.Is(err, ErrNotFound) {
		return 0, nil
	}
	return ev.Seq, err
}

// At returns the event stored at seq.
func (r *Reader) At(ctx context.Context, seq uint64) (Event, error) {
	return r.get(ctx, getRequest{Seq: seq})
}

func (r *Reader) get(ctx context.Context, req getRequest) (Event, error) {
	body, _ := json.Marshal(req)
	m, err := r.nc.RequestWithContext(ctx, r.api, body)
	if err != nil {
		return Event{}, fmt.Errorf("stream %s: direct get: %w", r.name, err)
	}
	return r.event(m)
}

// Range returns up to n (≤ MaxBatch) events of the live subject with a
// sequence ≥ from, in order, in one batch Direct Get.
func (r *Reader) Range(ctx context.Context, live string, from uint64, n int) ([]Event, error) {
	n = min(max(n, 1), MaxBatch)
	in := InputSubject(r.prefix, live)
	if in == "" {
		return nil, fmt.Errorf("stream %s: %q is not a live subject", r.name, live)
	}
	inbox := r.nc.NewRespInbox()
	sub, err := r.nc.SubscribeSync(inbox)
	if err != nil {
		return nil, fmt.Errorf("stream %s: range: %w", r.name, err)
	}
	defer sub.Unsubscribe()
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		return nil, err
	}
	body, _ := json.Marshal(getRequest{Seq: max(from, 1), NextFor: in, Batch: n})
	if err := r.nc.PublishRequest(r.api, inbox, body); err != nil {
		return nil, fmt.Errorf("stream %s: range: %w", r.name, err)
	}
	var out []Event
	for {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return nil, fmt.Errorf("stream %s: range %s from %d: %w", r.name, live, from, err)
		}
		switch m.Header.Get("Status") {
		case "":
		case "204": // end of batch
			return out, nil
		case "404":
			if len(out) == 0 {
				return nil, nil
			}
			return out, nil
		default:
			return nil, fmt.Errorf("stream %s: range: %s %s", r.name, m.Header.Get("Status"), m.Header.Get("Description"))
		}
		ev, err := r.event(m)
		if err != nil {
			return nil, err
		}
		out = append(out, ev)
	}
}

func (r *Reader) event(m *nats.Msg) (Event, error) {
	switch st := m.Header.Get("Status"); st {
	case "":
	case "404":
		return Event{}, ErrNotFound
	default:
		return Event{}, fmt.Errorf("stream %s: direct get: %s %s", r.name, st, m.Header.Get("Description"))
	}
	seq, err := strconv.ParseUint(m.Header.Get(HeaderSequence), 10, 64)
	if err != nil {
		return Event{}, fmt.Errorf("stream %s: direct get: bad %s", r.name, HeaderSequence)
	}
	ts, _ := time.Parse(time.RFC3339Nano, m.Header.Get(HeaderTimeStamp))
	return Event{
		Subject: LiveSubject(r.prefix, m.Header.Get(HeaderSubject)),
		Seq:     seq,
		Time:    ts,
		Data:    m.Data,
		Header:  m.Header,
	}, nil
}
