package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ocvr/realtime/pkg/natsembed"
	"github.com/ocvr/realtime/pkg/protocol"
	"github.com/ocvr/realtime/pkg/stream"
)

// fixture is a publisher and a real subscriber to everything under the
// prefix, on separate connections to one embedded server.
type fixture struct {
	pub    *Publisher
	sub    *nats.Subscription
	prefix string
}

func newFixture(t *testing.T, prefix string) fixture {
	t.Helper()
	srv := natsembed.Test(t)
	connect := func() *nats.Conn {
		nc, err := nats.Connect(srv.ClientURL())
		if err != nil {
			t.Fatalf("connect: %v", err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	subNC := connect()
	sub, err := subNC.SubscribeSync(mustSubjects(t, prefix).Prefix() + ".>")
	if err != nil {
		t.Fatal(err)
	}
	if err := subNC.Flush(); err != nil {
		t.Fatal(err)
	}
	pubNC := connect()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The event stream, as a gateway provisions it at start.
	if _, err := stream.Ensure(ctx, pubNC, stream.Config{Prefix: mustSubjects(t, prefix).Prefix()}); err != nil {
		t.Fatal(err)
	}
	p := NewPublisher(pubNC, mustSubjects(t, prefix))
	p.now = func() time.Time { return time.Unix(1736937000, 123456789) }
	return fixture{pub: p, sub: sub, prefix: mustSubjects(t, prefix).Prefix()}
}

// next returns the next message on a live subject (what the gateways
// receive); the stream's input subjects are skipped.
func (f fixture) next(t *testing.T) *nats.Msg {
	t.Helper()
	for {
		m, err := f.sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("no message: %v", err)
		}
		if !strings.HasPrefix(m.Subject, f.prefix+".in.") && !strings.HasPrefix(m.Subject, "$JS.") {
			return m
		}
	}
}

func TestPublisherDelivers(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "")
	author := protocol.Author{ID: 42, DisplayName: "Ada"}
	tests := []struct {
		name    string
		publish func(p *Publisher) error
		subject string
		data    string
		headers map[string]string // besides Ocvr-Published-At
	}{
		{
			name: "MessageCreated",
			publish: func(p *Publisher) error {
				return p.MessageCreated(ctx, protocol.MessageCreate{ID: "msg_xyz789", ChannelID: "ch_abc123", Author: protocol.Author{ID: 12345, DisplayName: "Sender"}, Content: "Hello world!", CreatedAt: 1703523600})
			},
			subject: "ocvr.channel.ch_abc123",
			// The protocol document's example, byte for byte.
			data: `{"type":"message_create","data":{"id":"msg_xyz789","channel_id":"ch_abc123","author":{"id":12345,"display_name":"Sender"},"content":"Hello world!","created_at":1703523600,"attachments":[]}}`,
		},
		{
			name: "MessageCreated with attachments",
			publish: func(p *Publisher) error {
				return p.MessageCreated(ctx, protocol.MessageCreate{ID: "msg_1", ChannelID: "ch_general", Author: author, Content: "héllo <b>", CreatedAt: 1736937000,
					Attachments: []json.RawMessage{json.RawMessage(`{"id":"att_1", "size":3}`)}})
			},
			subject: "ocvr.channel.ch_general",
			data:    `{"type":"message_create","data":{"id":"msg_1","channel_id":"ch_general","author":{"id":42,"display_name":"Ada"},"content":"héllo \u003cb\u003e","created_at":1736937000,"attachments":[{"id":"att_1","size":3}]}}`,
		},
		{
			name: "MessageUpdated",
			publish: func(p *Publisher) error {
				return p.MessageUpdated(ctx, protocol.MessageUpdate{ID: "msg_1", ChannelID: "ch_general", Content: "edited", EditedAt: 1736937060})
			},
			subject: "ocvr.channel.ch_general",
			data:    `{"type":"message_update","data":{"id":"msg_1","channel_id":"ch_general","content":"edited","edited_at":1736937060}}`,
		},
		{
			name: "MessageDeleted",
			publish: func(p *Publisher) error {
				return p.MessageDeleted(ctx, protocol.MessageDelete{ID: "msg_1", ChannelID: "ch-2"})
			},
			subject: "ocvr.channel.ch-2",
			data:    `{"type":"message_delete","data":{"id":"msg_1","channel_id":"ch-2"}}`,
		},
		{
			name: "Notify",
			publish: func(p *Publisher) error {
				return p.Notify(ctx, 12345, protocol.Notification{ID: "notif_abc", Type: "friend_request", Title: "New Friend Request", Body: "User123 wants to be your friend",
					CreatedAt: 1703523600, Data: json.RawMessage(`{"from_user_id":456}`)})
			},
			subject: "ocvr.user.12345",
			// The protocol document's example, byte for byte.
			data: `{"type":"notification","data":{"id":"notif_abc","type":"friend_request","title":"New Friend Request","body":"User123 wants to be your friend","created_at":1703523600,"data":{"from_user_id":456}}}`,
		},
		{
			// The per-connection pattern: the sender's other devices get it.
			name: "MessageCreated except the sender's connection",
			publish: func(p *Publisher) error {
				return p.MessageCreated(ctx, protocol.MessageCreate{ID: "msg_2", ChannelID: "ch_general", Author: author, Content: "hi", CreatedAt: 1736937000},
					Target{ExceptSession: "ses_phone"})
			},
			subject: "ocvr.channel.ch_general",
			data:    `{"type":"message_create","data":{"id":"msg_2","channel_id":"ch_general","author":{"id":42,"display_name":"Ada"},"content":"hi","created_at":1736937000,"attachments":[]}}`,
			headers: map[string]string{HeaderExceptSession: "ses_phone"},
		},
		{
			name: "MessageUpdated except the sender's connection",
			publish: func(p *Publisher) error {
				return p.MessageUpdated(ctx, protocol.MessageUpdate{ID: "msg_2", ChannelID: "ch_general", Content: "hi!", EditedAt: 1736937060}, Target{ExceptSession: "ses_phone"})
			},
			subject: "ocvr.channel.ch_general",
			data:    `{"type":"message_update","data":{"id":"msg_2","channel_id":"ch_general","content":"hi!","edited_at":1736937060}}`,
			headers: map[string]string{HeaderExceptSession: "ses_phone"},
		},
		{
			name: "MessageDeleted to some sessions",
			publish: func(p *Publisher) error {
				return p.MessageDeleted(ctx, protocol.MessageDelete{ID: "msg_2", ChannelID: "ch_general"}, Target{Sessions: []string{"ses_a"}})
			},
			subject: "ocvr.channel.ch_general",
			data:    `{"type":"message_delete","data":{"id":"msg_2","channel_id":"ch_general"}}`,
			headers: map[string]string{HeaderSession: "ses_a"},
		},
		{
			name: "Notify except a session",
			publish: func(p *Publisher) error {
				return p.Notify(ctx, 42, protocol.Notification{ID: "notif_2", Type: "t", Title: "T", CreatedAt: 1736937000}, Target{ExceptSession: "ses_keep"})
			},
			subject: "ocvr.user.42",
			data:    `{"type":"notification","data":{"id":"notif_2","type":"t","title":"T","body":"","created_at":1736937000,"data":{}}}`,
			headers: map[string]string{HeaderExceptSession: "ses_keep"},
		},
		{
			name: "Broadcast",
			publish: func(p *Publisher) error {
				return p.Broadcast(ctx, protocol.TypeNotification, protocol.Notification{ID: "ntf_2", Type: "maintenance", Title: "Restart", Body: "at 2am"})
			},
			subject: "ocvr.broadcast",
			data:    `{"type":"notification","data":{"id":"ntf_2","type":"maintenance","title":"Restart","body":"at 2am","created_at":0,"data":{}}}`,
		},
		{
			name: "an event type the gateway does not know",
			publish: func(p *Publisher) error {
				return p.PublishToChannel(ctx, "ch_general", "channel_update", map[string]any{"channel_id": "ch_general", "name": "General"}, Target{})
			},
			subject: "ocvr.channel.ch_general",
			data:    `{"type":"channel_update","data":{"channel_id":"ch_general","name":"General"}}`,
		},
		{
			name: "PublishToChannel excluding a user",
			publish: func(p *Publisher) error {
				return p.PublishToChannel(ctx, "ch_general", protocol.TypeTypingStart, protocol.TypingStart{ChannelID: "ch_general", UserID: 7, DisplayName: "Bo"}, Target{ExcludeUser: 7})
			},
			subject: "ocvr.channel.ch_general",
			data:    `{"type":"typing_start","data":{"channel_id":"ch_general","user_id":7,"display_name":"Bo"}}`,
			headers: map[string]string{HeaderExcludeUser: "7"},
		},
		{
			name: "PublishToUser for some sessions",
			publish: func(p *Publisher) error {
				return p.PublishToUser(ctx, 42, protocol.TypeSessionRevoked, protocol.SessionRevoked{Reason: "logout"}, Target{Sessions: []string{"ses_a", "ses_b"}})
			},
			subject: "ocvr.user.42",
			data:    `{"type":"session_revoked","data":{"reason":"logout"}}`,
			headers: map[string]string{HeaderSession: "ses_a,ses_b"},
		},
		{
			name: "PublishToUser except a session",
			publish: func(p *Publisher) error {
				return p.PublishToUser(ctx, 42, protocol.TypeSessionRevoked, protocol.SessionRevoked{Reason: "logout_all"}, Target{ExceptSession: "ses_keep"})
			},
			subject: "ocvr.user.42",
			data:    `{"type":"session_revoked","data":{"reason":"logout_all"}}`,
			headers: map[string]string{HeaderExceptSession: "ses_keep"},
		},
		{
			name: "PublishToUser presence",
			publish: func(p *Publisher) error {
				return p.PublishToUser(ctx, 42, protocol.TypePresenceUpdate, protocol.PresenceUpdate{UserID: 43, Presence: protocol.PresenceOnline, StatusText: "In the Lobby"}, Target{})
			},
			subject: "ocvr.user.42",
			data:    `{"type":"presence_update","data":{"user_id":43,"presence":"online","status_text":"In the Lobby"}}`,
		},
	}
	allHeaders := []string{HeaderExcludeUser, HeaderSession, HeaderExceptSession}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.publish(f.pub); err != nil {
				t.Fatalf("publish: %v", err)
			}
			m := f.next(t)
			if m.Subject != tt.subject {
				t.Errorf("subject = %q, want %q", m.Subject, tt.subject)
			}
			if string(m.Data) != tt.data {
				t.Errorf("data =\n %s\nwant\n %s", m.Data, tt.data)
			}
			// Channel and user events come through the stream, with their
			// position; broadcasts are core publishes.
			if got, want := m.Header.Get(stream.HeaderSequence) != "", !strings.HasSuffix(tt.subject, ".broadcast"); got != want {
				t.Errorf("positioned = %v, want %v", got, want)
			}
			if got := m.Header.Get(HeaderPublishedAt); got != "1736937000123456789" {
				t.Errorf("%s = %q, want the publisher clock in unix nanoseconds", HeaderPublishedAt, got)
			}
			for _, h := range allHeaders {
				if got := m.Header.Get(h); got != tt.headers[h] {
					t.Errorf("header %s = %q, want %q", h, got, tt.headers[h])
				}
			}
		})
	}
}

func TestPublisherPrefix(t *testing.T) {
	f := newFixture(t, "staging")
	if err := f.pub.MessageDeleted(context.Background(), protocol.MessageDelete{ID: "m", ChannelID: "c"}); err != nil {
		t.Fatal(err)
	}
	if m := f.next(t); m.Subject != "staging.channel.c" {
		t.Fatalf("subject = %q", m.Subject)
	}
}

// TestPublisherRejects checks that invalid ids, payloads and targets never
// reach NATS: after every rejected call, the next message the subscriber
// sees is a sentinel.
func TestPublisherRejects(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "")
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	author := protocol.Author{ID: 1, DisplayName: "A"}
	tests := []struct {
		name    string
		publish func(p *Publisher) error
		is      error  // errors.Is target, or nil
		want    string // substring of the error
	}{
		{"wildcard channel", func(p *Publisher) error {
			return p.MessageDeleted(ctx, protocol.MessageDelete{ID: "m", ChannelID: "ch.>"})
		}, protocol.ErrInvalidChannelID, "publish message_delete"},
		{"star channel", func(p *Publisher) error {
			return p.PublishToChannel(ctx, "*", protocol.TypeMessageDelete, protocol.MessageDelete{ID: "m", ChannelID: "*"}, Target{})
		}, protocol.ErrInvalidChannelID, ""},
		{"empty channel", func(p *Publisher) error {
			return p.MessageCreated(ctx, protocol.MessageCreate{ID: "m", Author: author})
		}, protocol.ErrInvalidChannelID, ""},
		{"user 0", func(p *Publisher) error {
			return p.Notify(ctx, 0, protocol.Notification{ID: "n", Type: "t"})
		}, protocol.ErrInvalidUserID, "publish notification"},
		{"negative user", func(p *Publisher) error {
			return p.PublishToUser(ctx, -5, protocol.TypeSessionRevoked, protocol.SessionRevoked{}, Target{})
		}, protocol.ErrInvalidUserID, ""},
		{"payload channel differs from subject", func(p *Publisher) error {
			return p.PublishToChannel(ctx, "a", protocol.TypeMessageDelete, protocol.MessageDelete{ID: "m", ChannelID: "b"}, Target{})
		}, protocol.ErrInvalidEvent, "does not name the subject's channel"},
		{"session_revoked on a channel", func(p *Publisher) error {
			return p.PublishToChannel(ctx, "c", protocol.TypeSessionRevoked, protocol.SessionRevoked{Reason: "x"}, Target{})
		}, protocol.ErrInvalidEvent, "may only be published on a user subject"},
		{"session_revoked broadcast", func(p *Publisher) error {
			return p.Broadcast(ctx, protocol.TypeSessionRevoked, protocol.SessionRevoked{Reason: "x"})
		}, protocol.ErrInvalidEvent, "may only be published on a user subject"},
		{"error frame is no event", func(p *Publisher) error {
			return p.Broadcast(ctx, protocol.TypeError, protocol.Error{Code: "X", Message: "y"})
		}, protocol.ErrInvalidEvent, "is a frame the gateway itself sends or receives"},
		{"nil payload", func(p *Publisher) error {
			return p.Broadcast(ctx, protocol.TypeNotification, nil)
		}, protocol.ErrInvalidEvent, `needs a "data" object`},
		{"unencodable payload", func(p *Publisher) error {
			return p.Broadcast(ctx, protocol.TypeNotification, map[string]any{"f": func() {}})
		}, nil, "encode"},
		{"oversize payload", func(p *Publisher) error {
			return p.Notify(ctx, 1, protocol.Notification{ID: "n", Type: "t", Body: strings.Repeat("x", protocol.MaxEventSize)})
		}, protocol.ErrInvalidEvent, "limit 65536"},
		{"exclude negative user", func(p *Publisher) error {
			return p.PublishToUser(ctx, 1, protocol.TypeSessionRevoked, protocol.SessionRevoked{}, Target{ExcludeUser: -1})
		}, protocol.ErrInvalidUserID, "exclude user"},
		{"session id with comma", func(p *Publisher) error {
			return p.PublishToUser(ctx, 1, protocol.TypeSessionRevoked, protocol.SessionRevoked{}, Target{Sessions: []string{"a,b"}})
		}, nil, `invalid session id "a,b"`},
		{"empty session id", func(p *Publisher) error {
			return p.PublishToUser(ctx, 1, protocol.TypeSessionRevoked, protocol.SessionRevoked{}, Target{Sessions: []string{"ok", ""}})
		}, nil, `invalid session id ""`},
		{"except session with newline", func(p *Publisher) error {
			return p.PublishToUser(ctx, 1, protocol.TypeSessionRevoked, protocol.SessionRevoked{}, Target{ExceptSession: "a\r\nX-Evil: 1"})
		}, nil, "invalid session id"},
		{"canceled context", func(p *Publisher) error {
			return p.Notify(canceled, 1, protocol.Notification{ID: "n", Type: "t"})
		}, context.Canceled, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.publish(f.pub)
			if err == nil {
				t.Fatal("publish succeeded")
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v does not wrap %v", err, tt.is)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %q, want it to contain %q", err, tt.want)
			}
			if err := f.pub.Broadcast(ctx, protocol.TypeNotification, protocol.Notification{ID: "sentinel", Type: "t"}); err != nil {
				t.Fatal(err)
			}
			if m := f.next(t); !strings.Contains(string(m.Data), `"sentinel"`) {
				t.Fatalf("a rejected publish reached NATS: %s %s", m.Subject, m.Data)
			}
		})
	}
}

func TestPublisherFlush(t *testing.T) {
	f := newFixture(t, "")
	// A context without a deadline is fine (nats.go alone would refuse it).
	if err := f.pub.Flush(context.Background()); err != nil {
		t.Fatalf("Flush(Background): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := f.pub.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	f.pub.nc.Close()
	if err := f.pub.Flush(ctx); err == nil {
		t.Fatal("Flush on a closed connection succeeded")
	}
	err := f.pub.Notify(ctx, 1, protocol.Notification{ID: "n", Type: "t"})
	if !errors.Is(err, nats.ErrConnectionClosed) {
		t.Fatalf("Notify on a closed connection = %v, want ErrConnectionClosed", err)
	}
}

// TestPublisherStream: a stream publish is acknowledged and idempotent per
// message id; a core publisher skips the stream; without a stream the
// publish fails with ErrNoStream.
func TestPublisherStream(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "")
	m := protocol.MessageDelete{ID: "m1", ChannelID: "c"}
	for i := 0; i < 2; i++ {
		if err := f.pub.PublishToChannel(ctx, "c", protocol.TypeMessageDelete, m, Target{MsgID: "retry-1"}); err != nil {
			t.Fatal(err)
		}
	}
	first := f.next(t)
	if first.Header.Get(stream.HeaderSequence) == "" {
		t.Fatalf("no position: %v", first.Header)
	}
	if err := f.pub.Core().MessageDeleted(ctx, protocol.MessageDelete{ID: "m2", ChannelID: "c"}); err != nil {
		t.Fatal(err)
	}
	// The retry with the same id was stored once: the next live message is
	// the core one, without a position.
	if next := f.next(t); next.Header.Get(stream.HeaderSequence) != "" || !strings.Contains(string(next.Data), `"m2"`) {
		t.Fatalf("got %s %v, want the core publish", next.Data, next.Header)
	}

	bare := natsembed.Test(t)
	nc, err := nats.Connect(bare.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	err = NewPublisher(nc, mustSubjects(t, "")).MessageDeleted(ctx, m)
	if !errors.Is(err, ErrNoStream) {
		t.Fatalf("without a stream: %v, want ErrNoStream", err)
	}
}

func TestPublisherConvenienceTargets(t *testing.T) {
	f := newFixture(t, "")
	ctx := context.Background()
	m := protocol.MessageCreate{ID: "msg_1", ChannelID: "ch_a", Author: protocol.Author{ID: 1, DisplayName: "A"}, CreatedAt: 1}
	tests := []struct {
		name    string
		publish func() error
		want    string
	}{
		{"two targets", func() error { return f.pub.MessageCreated(ctx, m, Target{}, Target{}) }, "at most one"},
		{"an invalid session id", func() error { return f.pub.MessageCreated(ctx, m, Target{ExceptSession: "ses.x"}) }, "invalid session id"},
		{"a token for a session id", func() error {
			return f.pub.Notify(ctx, 1, protocol.Notification{ID: "n", Type: "t"}, Target{Sessions: []string{"sess_a b"}})
		}, "invalid session id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.publish()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one containing %q", err, tt.want)
			}
		})
	}
	if m, err := f.sub.NextMsg(200 * time.Millisecond); err == nil {
		t.Fatalf("a refused publish reached NATS: %s %s", m.Subject, m.Data)
	}
}

// Subjects.Validate is protocol.ValidateEvent for the scope of a subject:
// the scope comes from the subject (live or stream input), the verdict
// from the one implementation the gateways run.
func TestSubjectsValidate(t *testing.T) {
	s := mustSubjects(t, "eu.prod")
	msg := `{"type":"message_create","data":{"channel_id":"ch_a","content":"x"}}`
	revoked := `{"type":"session_revoked","data":{"reason":"x"}}`
	tests := []struct {
		subject, payload string
		wantType         string
		wantErr          error
	}{
		{"eu.prod.channel.ch_a", msg, "message_create", nil},
		{"eu.prod.in.channel.ch_a", msg, "message_create", nil},
		{"eu.prod.channel.ch_b", msg, "", protocol.ErrInvalidEvent}, // names another channel
		{"eu.prod.in.channel.ch_b", msg, "", protocol.ErrInvalidEvent},
		{"eu.prod.user.42", revoked, "session_revoked", nil},
		{"eu.prod.in.user.42", revoked, "session_revoked", nil},
		{"eu.prod.channel.ch_a", revoked, "", protocol.ErrInvalidEvent},
		{"eu.prod.broadcast", revoked, "", protocol.ErrInvalidEvent},
		{"eu.prod.broadcast", `{"type":"notification","data":{}}`, "notification", nil},
		{"eu.prod.user.42", `{"type":"ready","data":{}}`, "", protocol.ErrInvalidEvent},
		{"eu.prod.in.broadcast", `{"type":"notification","data":{}}`, "", ErrUnknownSubject}, // broadcasts have no stream
		{"ocvr.channel.ch_a", msg, "", ErrUnknownSubject},                                    // another environment
		{"eu.prod.channel.ch.a", msg, "", ErrUnknownSubject},
		{"eu.prod.user.042", revoked, "", ErrUnknownSubject},
		{"eu.prod.channel.*", msg, "", ErrUnknownSubject},
	}
	for _, tt := range tests {
		t.Run(tt.subject+" "+tt.payload, func(t *testing.T) {
			typ, err := s.Validate(tt.subject, []byte(tt.payload))
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if typ != tt.wantType {
				t.Errorf("type = %q, want %q", typ, tt.wantType)
			}
			if scope, ch, serr := s.Scope(tt.subject); serr == nil {
				// The same verdict as the gateways' own call.
				wtyp, werr := protocol.ValidateEvent(scope, ch, []byte(tt.payload))
				if wtyp != typ || (werr == nil) != (err == nil) {
					t.Errorf("Validate = (%q, %v), ValidateEvent = (%q, %v)", typ, err, wtyp, werr)
				}
			}
		})
	}
}

// A payload is checked as the gateways will check it on the subject it is
// published on (a live subject or the stream's input subject).
func ExampleSubjects_Validate() {
	subjects, _ := NewSubjects("ocvr")
	for _, p := range []struct{ subject, payload string }{
		{"ocvr.in.channel.ch_abc123", `{"type":"channel_update","data":{"channel_id":"ch_abc123","name":"General"}}`},
		{"ocvr.in.channel.ch_abc123", `{"type":"session_revoked","data":{"reason":"logout"}}`},
		{"ocvr.user.42", `{"type":"presence_update","data":{"user_id":"43","presence":"online"}}`},
	} {
		typ, err := subjects.Validate(p.subject, []byte(p.payload))
		fmt.Printf("%s: %q %v\n", p.subject, typ, err)
	}
	// Output:
	// ocvr.in.channel.ch_abc123: "channel_update" <nil>
	// ocvr.in.channel.ch_abc123: "" invalid event: session_revoked: may only be published on a user subject
	// ocvr.user.42: "" invalid event: presence_update: "user_id" must be a positive integer
}

// The per-connection pattern: the sender's client reported the session id
// of its ready frame with the message; every other connection gets the
// event, the sender's other devices included.
func ExamplePublisher_MessageCreated() {
	ctx := context.Background()
	nc, err := nats.Connect(nats.DefaultURL)
	if err != nil {
		return
	}
	defer nc.Close()
	subjects, _ := NewSubjects("ocvr")
	pub := NewPublisher(nc, subjects)
	senderSessionID := "ses_Qk3v8TnY1pLx2mZa" // ready.data.session_id of the sending connection
	err = pub.MessageCreated(ctx, protocol.MessageCreate{
		ID: "msg_xyz789", ChannelID: "ch_abc123", Author: protocol.Author{ID: 12345, DisplayName: "Sender"},
		Content: "Hello world!", CreatedAt: time.Now().Unix(),
	}, Target{ExceptSession: senderSessionID, MsgID: "msg_xyz789.create"})
	if err != nil {
		fmt.Println(err)
	}
}
