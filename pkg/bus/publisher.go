package bus

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ocvr/realtime/pkg/stream"

	"github.com/nats-io/nats.go"

	"github.com/ocvr/realtime/pkg/protocol"
)

// Publisher is the backend SDK: it publishes events onto the bus for the
// gateways to deliver. Every call validates ids and the payload before
// anything reaches NATS, and stamps Ocvr-Published-At.
//
// Channel and user events go through the event stream (DESIGN.md §2a,
// pkg/stream) by default: each publish waits for the stream's
// acknowledgement, so an event that returns nil is stored and gets a
// position clients can resume from. Broadcasts, and every event of a
// publisher made WithCore, are core NATS publishes: best-effort, no
// position.
type Publisher struct {
	nc       *nats.Conn
	subjects Subjects
	now      func() time.Time
	core     bool
}

// PublisherOption configures a Publisher.
type PublisherOption func(*Publisher)

// WithCore makes every publish a core NATS publish on the live subject,
// without the stream: for events that need no position (the gateways' own
// typing and presence events) or a deployment without the stream.
func WithCore() PublisherOption { return func(p *Publisher) { p.core = true } }

// NewPublisher returns a publisher on nc for the environment of subjects.
func NewPublisher(nc *nats.Conn, subjects Subjects, opts ...PublisherOption) *Publisher {
	p := &Publisher{nc: nc, subjects: subjects, now: time.Now}
	for _, o := range opts {
		o(p)
	}
	return p
}

// Target narrows a user- or channel-targeted event to some connections.
type Target struct {
	ExcludeUser   int64    // skip this user's connections (0: none)
	Sessions      []string // only these sessions' connections (empty: all)
	ExceptSession string   // all but this session's connections
	// MsgID makes a stream publish idempotent: the stream stores one event
	// per id within its duplicate window (Nats-Msg-Id), so a backend that
	// retries a publish after a timeout delivers it once. Empty: a random
	// id per call.
	MsgID string
}

func (t Target) header(h nats.Header) error {
	if t.ExcludeUser != 0 {
		if err := protocol.CheckUserID(t.ExcludeUser); err != nil {
			return fmt.Errorf("exclude user: %w", err)
		}
		h.Set(HeaderExcludeUser, strconv.FormatInt(t.ExcludeUser, 10))
	}
	for _, s := range t.Sessions {
		if !protocol.ValidSessionID(s) {
			return fmt.Errorf("invalid session id %q", s)
		}
	}
	if len(t.Sessions) > 0 {
		h.Set(HeaderSession, strings.Join(t.Sessions, ","))
	}
	if t.ExceptSession != "" {
		if !protocol.ValidSessionID(t.ExceptSession) {
			return fmt.Errorf("invalid session id %q", t.ExceptSession)
		}
		h.Set(HeaderExceptSession, t.ExceptSession)
	}
	return nil
}

// ValidSessionID reports whether id looks like a session id: it is used in
// headers and KV keys, so it is limited to [A-Za-z0-9_-]{1,64}.
//
// Deprecated: use protocol.ValidSessionID, where every id grammar lives.
func ValidSessionID(id string) bool { return protocol.ValidSessionID(id) }

// PublishToChannel publishes a frame of type typ with payload data to every
// connection subscribed to channelID.
func (p *Publisher) PublishToChannel(ctx context.Context, channelID, typ string, data any, t Target) error {
	subj, err := p.subjects.Channel(channelID)
	if err != nil {
		return fmt.Errorf("publish %s: %w", typ, err)
	}
	return p.publish(ctx, subj, protocol.ScopeChannel, channelID, typ, data, t)
}

// PublishToUser publishes a frame of type typ with payload data to the
// connections of userID.
func (p *Publisher) PublishToUser(ctx context.Context, userID int64, typ string, data any, t Target) error {
	subj, err := p.subjects.User(userID)
	if err != nil {
		return fmt.Errorf("publish %s: %w", typ, err)
	}
	return p.publish(ctx, subj, protocol.ScopeUser, "", typ, data, t)
}

// Broadcast publishes a frame to every connection of every gateway.
func (p *Publisher) Broadcast(ctx context.Context, typ string, data any) error {
	return p.publish(ctx, p.subjects.Broadcast(), protocol.ScopeBroadcast, "", typ, data, Target{})
}

// MessageCreated announces a new chat message on its channel. An optional
// Target narrows it, e.g. to every connection but the one the author sent
// it from: Target{ExceptSession: <the sender's ready.session_id>} (their
// other devices still get it). At most one Target.
func (p *Publisher) MessageCreated(ctx context.Context, m protocol.MessageCreate, t ...Target) error {
	tt, err := oneTarget(protocol.TypeMessageCreate, t)
	if err != nil {
		return err
	}
	return p.PublishToChannel(ctx, m.ChannelID, protocol.TypeMessageCreate, m, tt)
}

// MessageUpdated announces an edited chat message on its channel (optional
// Target as for MessageCreated).
func (p *Publisher) MessageUpdated(ctx context.Context, m protocol.MessageUpdate, t ...Target) error {
	tt, err := oneTarget(protocol.TypeMessageUpdate, t)
	if err != nil {
		return err
	}
	return p.PublishToChannel(ctx, m.ChannelID, protocol.TypeMessageUpdate, m, tt)
}

// MessageDeleted announces a deleted chat message on its channel (optional
// Target as for MessageCreated).
func (p *Publisher) MessageDeleted(ctx context.Context, m protocol.MessageDelete, t ...Target) error {
	tt, err := oneTarget(protocol.TypeMessageDelete, t)
	if err != nil {
		return err
	}
	return p.PublishToChannel(ctx, m.ChannelID, protocol.TypeMessageDelete, m, tt)
}

// Notify sends a notification to every connection of userID (optional
// Target: e.g. all but the session that caused it, or only some sessions).
func (p *Publisher) Notify(ctx context.Context, userID int64, n protocol.Notification, t ...Target) error {
	tt, err := oneTarget(protocol.TypeNotification, t)
	if err != nil {
		return err
	}
	return p.PublishToUser(ctx, userID, protocol.TypeNotification, n, tt)
}

// oneTarget returns the optional Target of a convenience method.
func oneTarget(typ string, t []Target) (Target, error) {
	switch len(t) {
	case 0:
		return Target{}, nil
	case 1:
		return t[0], nil
	}
	return Target{}, fmt.Errorf("publish %s: %d targets given, at most one", typ, len(t))
}

// Validate applies to payload exactly the check a gateway applies to a
// message on subject (protocol.ValidateEvent, the one implementation) and
// returns the event's type. subject is a live subject of this environment
// (<prefix>.channel.<id>, <prefix>.user.<id>, <prefix>.broadcast) or a
// stream input subject (<prefix>.in.channel.<id>, <prefix>.in.user.<id>),
// the one a backend publishes on. Errors wrap protocol.ErrInvalidEvent for
// a payload a gateway would refuse, and ErrUnknownSubject for a subject no
// gateway delivers.
func (s Subjects) Validate(subject string, payload []byte) (string, error) {
	scope, channelID, err := s.Scope(subject)
	if err != nil {
		return "", err
	}
	return protocol.ValidateEvent(scope, channelID, payload)
}

// ErrUnknownSubject: a subject that is none of the environment's event
// subjects.
var ErrUnknownSubject = errors.New("not an event subject of this environment")

// Scope returns the scope (and, for a channel, the channel id) a gateway
// gives a message on subject: a live subject or its stream input subject.
func (s Subjects) Scope(subject string) (protocol.Scope, string, error) {
	live := subject
	if rest, ok := strings.CutPrefix(subject, s.prefix+".in."); ok {
		live = s.prefix + "." + rest
	}
	if ch, ok := s.ParseChannel(live); ok {
		return protocol.ScopeChannel, ch, nil
	}
	if _, ok := s.ParseUser(live); ok {
		return protocol.ScopeUser, "", nil
	}
	if live == s.Broadcast() && live == subject {
		return protocol.ScopeBroadcast, "", nil
	}
	return 0, "", fmt.Errorf("subject %q: %w (want %s.channel.<id>, %s.user.<id>, %s.broadcast or a stream input %s.in.…)",
		truncateSubject(subject), ErrUnknownSubject, s.prefix, s.prefix, s.prefix, s.prefix)
}

func truncateSubject(s string) string {
	if len(s) > 160 {
		return s[:160] + "…"
	}
	return s
}

func (p *Publisher) publish(ctx context.Context, subj string, scope protocol.Scope, channelID, typ string, data any, t Target) error {
	payload, err := protocol.Encode(typ, data)
	if err != nil {
		return fmt.Errorf("publish %s: encode: %w", typ, err)
	}
	if _, err := protocol.ValidateEvent(scope, channelID, payload); err != nil {
		return fmt.Errorf("publish %s: %w", typ, err)
	}
	msg := nats.NewMsg(subj)
	msg.Data = payload
	if err := t.header(msg.Header); err != nil {
		return fmt.Errorf("publish %s: %w", typ, err)
	}
	msg.Header.Set(HeaderPublishedAt, strconv.FormatInt(p.now().UnixNano(), 10))
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("publish %s: %w", typ, err)
	}
	if p.core || scope == protocol.ScopeBroadcast {
		if err := p.nc.PublishMsg(msg); err != nil {
			return fmt.Errorf("publish %s to %s: %w", typ, subj, err)
		}
		return nil
	}
	return p.publishStream(ctx, msg, typ, t.MsgID)
}

// ErrNoStream: nothing answered a stream publish (no stream, or JetStream
// down).
var ErrNoStream = errors.New("the event stream did not answer (a gateway provisions it at start; see deploy/README.md)")

// publishStream publishes msg (addressed to a live subject) into the event
// stream's input subject and waits for the stream's acknowledgement.
func (p *Publisher) publishStream(ctx context.Context, msg *nats.Msg, typ, id string) error {
	live := msg.Subject
	msg.Subject = stream.InputSubject(p.subjects.prefix, live)
	if id == "" {
		id = newMsgID()
	}
	msg.Header.Set(stream.HeaderMsgID, id)
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultFlushTimeout)
		defer cancel()
	}
	reply, err := p.nc.RequestMsgWithContext(ctx, msg)
	if errors.Is(err, nats.ErrNoResponders) {
		return fmt.Errorf("publish %s to %s: %w", typ, live, ErrNoStream)
	}
	if err != nil {
		return fmt.Errorf("publish %s to %s: %w", typ, live, err)
	}
	var ack struct {
		Seq   uint64 `json:"seq"`
		Error *struct {
			Code        int    `json:"code"`
			ErrCode     int    `json:"err_code"`
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(reply.Data, &ack); err != nil {
		return fmt.Errorf("publish %s to %s: unreadable stream acknowledgement: %w", typ, live, err)
	}
	if ack.Error != nil {
		return fmt.Errorf("publish %s to %s: stream refused it: %s (%d)", typ, live, ack.Error.Description, ack.Error.ErrCode)
	}
	return nil
}

func newMsgID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// DefaultFlushTimeout bounds Flush when ctx has no deadline.
const DefaultFlushTimeout = 10 * time.Second

// Flush waits until the server has processed everything published so far.
// A ctx without a deadline is bounded by DefaultFlushTimeout (nats.go
// refuses to flush without one).
func (p *Publisher) Flush(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultFlushTimeout)
		defer cancel()
	}
	if err := p.nc.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	return nil
}

// Core returns a publisher like p whose publishes are all core NATS
// publishes (see WithCore).
func (p *Publisher) Core() *Publisher {
	if p == nil || p.core {
		return p
	}
	c := *p
	c.core = true
	return &c
}
