package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ocvr/realtime/pkg/bus"
	"github.com/ocvr/realtime/pkg/directory"
	"github.com/ocvr/realtime/pkg/natsembed"
	"github.com/ocvr/realtime/pkg/protocol"
	"github.com/ocvr/realtime/pkg/session"
	"github.com/ocvr/realtime/pkg/stream"
	"github.com/ocvr/realtime/pkg/ticket"
)

type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return "exit " + strconv.Itoa(r.code) + "\nstdout: " + r.stdout + "\nstderr: " + r.stderr
}

// lines returns the non-empty lines of stdout.
func (r result) lines() []string {
	return strings.FieldsFunc(r.stdout, func(c rune) bool { return c == '\n' })
}

// ctl runs ocvrctl in-process with an empty environment.
func ctl(t *testing.T, args ...string) result {
	t.Helper()
	return ctlEnv(t, map[string]string{}, args...)
}

func ctlEnv(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := runEnv(ctx, args, &out, &errb, func(k string) string { return env[k] })
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// ctlIn runs ocvrctl in-process with stdin as its standard input.
func ctlIn(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := &cli{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb, getenv: func(string) string { return "" }, commands: commands()}
	code := c.run(ctx, args)
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// ok runs a command against srv and fails the test unless it exits 0.
func ok(t *testing.T, srv *natsembed.Server, args ...string) result {
	t.Helper()
	r := ctl(t, append([]string{"--nats-url", srv.ClientURL()}, args...)...)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("ocvrctl %s:\n%s", strings.Join(args, " "), r)
	}
	return r
}

// stores is a direct view of the state ocvrctl writes, on its own connection.
type stores struct {
	nc       *nats.Conn
	sessions *session.Store
	tickets  *ticket.Store
	dir      *directory.Store
}

func setup(t *testing.T) (*natsembed.Server, stores) {
	t.Helper()
	srv := natsembed.Test(t)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	ctx := context.Background()
	subjects, err := bus.NewSubjects("")
	if err != nil {
		t.Fatal(err)
	}
	s := stores{nc: nc}
	if s.sessions, err = session.Open(ctx, nc, "", bus.NewPublisher(nc, subjects)); err != nil {
		t.Fatal(err)
	}
	if s.tickets, err = ticket.Open(ctx, nc, ""); err != nil {
		t.Fatal(err)
	}
	if s.dir, err = directory.Open(ctx, nc); err != nil {
		t.Fatal(err)
	}
	// The event stream, as a gateway provisions it at start: channel and
	// user events are published through it.
	ensureStream(t, nc, stream.Config{})
	return srv, s
}

// ensureStream provisions the event stream of cfg on nc.
func ensureStream(t *testing.T, nc *nats.Conn, cfg stream.Config) stream.Info {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := stream.Ensure(ctx, nc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// isInput reports whether subject is one of the event stream's input
// subjects (<prefix>.in.channel.<id>, <prefix>.in.user.<id>): a wildcard
// subscription sees the stream publish there, then the republished event
// on the live subject.
func isInput(subject string) bool {
	return strings.Contains(subject, ".in.channel.") || strings.Contains(subject, ".in.user.")
}

func (s stores) subscribe(t *testing.T, subject string) *nats.Subscription {
	t.Helper()
	sub, err := s.nc.SubscribeSync(subject)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return sub
}

// next returns the next message of sub on a live subject (skipping the
// stream's input subjects).
func next(t *testing.T, sub *nats.Subscription) *nats.Msg {
	t.Helper()
	m, err := nextLive(sub, 5*time.Second)
	if err != nil {
		t.Fatalf("nothing published on %s: %v", sub.Subject, err)
	}
	return m
}

func nextLive(sub *nats.Subscription, within time.Duration) (*nats.Msg, error) {
	deadline := time.Now().Add(within)
	for {
		m, err := sub.NextMsg(time.Until(deadline))
		if err != nil || !isInput(m.Subject) {
			return m, err
		}
	}
}

func TestSessionCreate(t *testing.T) {
	srv, s := setup(t)
	ctx := context.Background()
	before := time.Now()
	r := ok(t, srv, "session", "create", "--user", "42", "--name", "Ada Lovelace", "--ttl", "2h")
	lines := r.lines()
	if len(lines) < 2 {
		t.Fatalf("output:\n%s", r.stdout)
	}
	token := lines[0]
	if !strings.HasPrefix(token, session.TokenPrefix) || strings.ContainsAny(token, " \t") {
		t.Fatalf("first line %q is not the token alone", token)
	}
	sess, err := s.sessions.Verify(ctx, token)
	if err != nil {
		t.Fatalf("printed token does not verify: %v", err)
	}
	if sess.UserID != 42 || sess.DisplayName != "Ada Lovelace" {
		t.Errorf("session = %+v", sess)
	}
	if lines[1] != "session_id: "+sess.ID {
		t.Errorf("second line = %q, want the session id %s", lines[1], sess.ID)
	}
	if exp := sess.ExpiresAt.Sub(before); exp < 2*time.Hour-time.Minute || exp > 2*time.Hour+time.Minute {
		t.Errorf("session expires in %v, want --ttl 2h", exp)
	}
	// The default ttl is 24h.
	r = ok(t, srv, "session", "create", "--user", "42", "--name", "Ada")
	sess, err = s.sessions.Verify(ctx, r.lines()[0])
	if err != nil {
		t.Fatal(err)
	}
	if exp := time.Until(sess.ExpiresAt); exp < 23*time.Hour || exp > 25*time.Hour {
		t.Errorf("default ttl gives expiry in %v, want 24h", exp)
	}
}

func TestSessionRevoke(t *testing.T) {
	srv, s := setup(t)
	ctx := context.Background()
	create := func(user int64) (string, session.Session) {
		t.Helper()
		tok, sess, err := s.sessions.Create(ctx, user, "U", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return tok, sess
	}
	sub := s.subscribe(t, "ocvr.user.7")

	tok, one := create(7)
	r := ok(t, srv, "session", "revoke", "--session", one.ID, "--reason", "admin")
	if !strings.Contains(r.stdout, one.ID) {
		t.Errorf("output %q does not name the session", r.stdout)
	}
	if _, err := s.sessions.Verify(ctx, tok); !errors.Is(err, session.ErrUnknown) {
		t.Errorf("revoked session verifies: %v", err)
	}
	m := next(t, sub)
	if string(m.Data) != `{"type":"session_revoked","data":{"reason":"admin"}}` || m.Header.Get(bus.HeaderSession) != one.ID {
		t.Errorf("published %s with headers %v", m.Data, m.Header)
	}

	// Default reason with --session.
	_, two := create(7)
	ok(t, srv, "session", "revoke", "--session", two.ID)
	if m := next(t, sub); string(m.Data) != `{"type":"session_revoked","data":{"reason":"revoked"}}` {
		t.Errorf("published %s", m.Data)
	}

	// --user with --except, default reason logout_all.
	keepTok, keep := create(7)
	goneTok, _ := create(7)
	r = ok(t, srv, "session", "revoke", "--user", "7", "--except", keep.ID)
	if strings.TrimSpace(r.stdout) != "revoked 1 session(s) of user 7" {
		t.Errorf("output = %q", r.stdout)
	}
	if _, err := s.sessions.Verify(ctx, keepTok); err != nil {
		t.Errorf("--except session was revoked: %v", err)
	}
	if _, err := s.sessions.Verify(ctx, goneTok); !errors.Is(err, session.ErrUnknown) {
		t.Errorf("other session survived: %v", err)
	}
	m = next(t, sub)
	if string(m.Data) != `{"type":"session_revoked","data":{"reason":"logout_all"}}` || m.Header.Get(bus.HeaderExceptSession) != keep.ID {
		t.Errorf("published %s with headers %v", m.Data, m.Header)
	}

	// Revoking an unknown session: not found (exit 4).
	r = ctl(t, "--nats-url", srv.ClientURL(), "session", "revoke", "--session", one.ID)
	if r.code != exitNotFound || !strings.Contains(r.stderr, "session not found") {
		t.Errorf("revoke of a revoked session:\n%s", r)
	}
}

func TestDirectoryCommands(t *testing.T) {
	srv, s := setup(t)
	ctx := context.Background()
	ok(t, srv, "channel", "create", "--channel", "ch_general")
	ok(t, srv, "channel", "create", "--channel", "ch_b")
	if r := ok(t, srv, "channel", "list"); !slices.Equal(r.lines(), []string{"ch_b", "ch_general"}) {
		t.Errorf("channel list = %q", r.stdout)
	}

	ok(t, srv, "member", "add", "--channel", "ch_general", "--user", "1")
	ok(t, srv, "member", "add", "--channel", "ch_general", "--user", "2")
	ok(t, srv, "member", "add", "--channel", "ch_b", "--user", "1")
	for _, tt := range []struct {
		ch   string
		user int64
		want bool
	}{{"ch_general", 1, true}, {"ch_general", 2, true}, {"ch_b", 1, true}, {"ch_b", 2, false}} {
		if got, err := s.dir.IsMember(ctx, tt.ch, tt.user); err != nil || got != tt.want {
			t.Errorf("IsMember(%s, %d) = %v, %v; want %v", tt.ch, tt.user, got, err, tt.want)
		}
	}
	ok(t, srv, "member", "remove", "--channel", "ch_general", "--user", "2")
	if got, _ := s.dir.IsMember(ctx, "ch_general", 2); got {
		t.Error("member remove left the membership")
	}

	ok(t, srv, "channel", "delete", "--channel", "ch_b")
	if exists, _ := s.dir.ChannelExists(ctx, "ch_b"); exists {
		t.Error("channel delete left the channel")
	}
	if got, _ := s.dir.IsMember(ctx, "ch_b", 1); got {
		t.Error("channel delete left a membership")
	}
	if r := ok(t, srv, "channel", "list"); !slices.Equal(r.lines(), []string{"ch_general"}) {
		t.Errorf("channel list after delete = %q", r.stdout)
	}

	ok(t, srv, "friend", "add", "--user", "1", "--friend", "2")
	for _, u := range []struct{ user, friend int64 }{{1, 2}, {2, 1}} {
		if got, err := s.dir.Friends(ctx, u.user); err != nil || !slices.Equal(got, []int64{u.friend}) {
			t.Errorf("Friends(%d) = %v, %v", u.user, got, err)
		}
	}
	ok(t, srv, "friend", "remove", "--user", "2", "--friend", "1")
	if got, _ := s.dir.Friends(ctx, 1); len(got) != 0 {
		t.Errorf("Friends(1) after remove = %v", got)
	}

	// Not found: exit 4, one line.
	for _, args := range [][]string{
		{"channel", "delete", "--channel", "ch_b"},
		{"member", "add", "--channel", "nope", "--user", "1"},
	} {
		r := ctl(t, append([]string{"--nats-url", srv.ClientURL()}, args...)...)
		if r.code != exitNotFound || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, "not found") {
			t.Errorf("ocvrctl %s:\n%s", strings.Join(args, " "), r)
		}
	}
}

func TestPublishCommands(t *testing.T) {
	srv, s := setup(t)
	sub := s.subscribe(t, "ocvr.>")
	tests := []struct {
		name    string
		args    []string
		subject string
		typ     string
		check   func(t *testing.T, data json.RawMessage, out string)
	}{
		{
			name:    "message-create with generated id",
			args:    []string{"publish", "message-create", "--channel", "ch_general", "--author", "2", "--name", "Bob", "--content", "hello from the bus"},
			subject: "ocvr.channel.ch_general", typ: protocol.TypeMessageCreate,
			check: func(t *testing.T, data json.RawMessage, out string) {
				var m protocol.MessageCreate
				mustDecode(t, data, &m)
				if !strings.HasPrefix(m.ID, "msg_") || strings.TrimSpace(out) != m.ID {
					t.Errorf("id %q, output %q", m.ID, out)
				}
				if m.ChannelID != "ch_general" || m.Author != (protocol.Author{ID: 2, DisplayName: "Bob"}) || m.Content != "hello from the bus" {
					t.Errorf("message = %+v", m)
				}
				checkNow(t, m.CreatedAt)
				// The document's shape: created_at a JSON integer, attachments an array.
				want := `{"id":"` + m.ID + `","channel_id":"ch_general","author":{"id":2,"display_name":"Bob"},"content":"hello from the bus","created_at":` + strconv.FormatInt(m.CreatedAt, 10) + `,"attachments":[]}`
				if string(data) != want {
					t.Errorf("data = %s\nwant   %s", data, want)
				}
			},
		},
		{
			name: "message-create with attachments",
			args: []string{"publish", "message-create", "--channel", "ch_general", "--author", "2", "--name", "Bob", "--content", "see attached", "--id", "msg_att",
				"--attachments", `[ {"id":"att_1", "url":"https://cdn.ocvr.net/f/att_1.png", "size":48213} ]`},
			subject: "ocvr.channel.ch_general", typ: protocol.TypeMessageCreate,
			check: func(t *testing.T, data json.RawMessage, _ string) {
				if !strings.HasSuffix(string(data), `,"attachments":[{"id":"att_1","url":"https://cdn.ocvr.net/f/att_1.png","size":48213}]}`) {
					t.Errorf("data = %s", data)
				}
			},
		},
		{
			name:    "message-create with given id",
			args:    []string{"publish", "message-create", "--channel", "ch_general", "--author", "2", "--name", "Bob", "--content", "x", "--id", "msg_given"},
			subject: "ocvr.channel.ch_general", typ: protocol.TypeMessageCreate,
			check: func(t *testing.T, data json.RawMessage, out string) {
				var m protocol.MessageCreate
				mustDecode(t, data, &m)
				if m.ID != "msg_given" || strings.TrimSpace(out) != "msg_given" {
					t.Errorf("id %q, output %q", m.ID, out)
				}
			},
		},
		{
			name:    "message-update",
			args:    []string{"publish", "message-update", "--channel", "ch_general", "--id", "msg_1", "--content", "edited"},
			subject: "ocvr.channel.ch_general", typ: protocol.TypeMessageUpdate,
			check: func(t *testing.T, data json.RawMessage, _ string) {
				var m protocol.MessageUpdate
				mustDecode(t, data, &m)
				if m.ID != "msg_1" || m.ChannelID != "ch_general" || m.Content != "edited" {
					t.Errorf("update = %+v", m)
				}
				checkNow(t, m.EditedAt)
				if want := `{"id":"msg_1","channel_id":"ch_general","content":"edited","edited_at":` + strconv.FormatInt(m.EditedAt, 10) + `}`; string(data) != want {
					t.Errorf("data = %s, want %s", data, want)
				}
			},
		},
		{
			name:    "message-delete",
			args:    []string{"publish", "message-delete", "--channel", "ch-2", "--id", "msg_1"},
			subject: "ocvr.channel.ch-2", typ: protocol.TypeMessageDelete,
			check: func(t *testing.T, data json.RawMessage, _ string) {
				if string(data) != `{"id":"msg_1","channel_id":"ch-2"}` {
					t.Errorf("data = %s", data)
				}
			},
		},
		{
			name:    "notify",
			args:    []string{"notify", "--user", "1", "--type", "friend_request", "--title", "New friend request", "--body", "Bob wants to be friends"},
			subject: "ocvr.user.1", typ: protocol.TypeNotification,
			check: func(t *testing.T, data json.RawMessage, out string) {
				var n protocol.Notification
				mustDecode(t, data, &n)
				if !strings.HasPrefix(n.ID, "notif_") || strings.TrimSpace(out) != n.ID {
					t.Errorf("id %q, output %q", n.ID, out)
				}
				if n.Type != "friend_request" || n.Title != "New friend request" || n.Body != "Bob wants to be friends" {
					t.Errorf("notification = %+v", n)
				}
				checkNow(t, n.CreatedAt)
				// Without --data, data is the empty object.
				if !strings.HasSuffix(string(data), `,"created_at":`+strconv.FormatInt(n.CreatedAt, 10)+`,"data":{}}`) {
					t.Errorf("data = %s", data)
				}
			},
		},
		{
			name: "notify with data, as the document's example",
			args: []string{"notify", "--user", "12345", "--type", "friend_request", "--title", "New Friend Request", "--body", "User123 wants to be your friend",
				"--id", "notif_abc", "--data", `{ "from_user_id": 456 }`},
			subject: "ocvr.user.12345", typ: protocol.TypeNotification,
			check: func(t *testing.T, data json.RawMessage, _ string) {
				var n protocol.Notification
				mustDecode(t, data, &n)
				want := `{"id":"notif_abc","type":"friend_request","title":"New Friend Request","body":"User123 wants to be your friend","created_at":` + strconv.FormatInt(n.CreatedAt, 10) + `,"data":{"from_user_id":456}}`
				if string(data) != want {
					t.Errorf("data = %s\nwant   %s", data, want)
				}
			},
		},
		{
			name:    "broadcast",
			args:    []string{"broadcast", "--type", "notification", "--title", "Maintenance", "--body", "at 2am", "--id", "ntf_maint"},
			subject: "ocvr.broadcast", typ: protocol.TypeNotification,
			check: func(t *testing.T, data json.RawMessage, _ string) {
				var n protocol.Notification
				mustDecode(t, data, &n)
				if n.ID != "ntf_maint" || n.Type != "announcement" || n.Title != "Maintenance" || n.Body != "at 2am" || string(n.Data) != "{}" {
					t.Errorf("notification = %+v", n)
				}
				checkNow(t, n.CreatedAt)
			},
		},
		{
			name:    "broadcast with notification type",
			args:    []string{"broadcast", "--title", "T", "--notification-type", "event", "--data", `{"url":"https://ocvr.net/e/1"}`},
			subject: "ocvr.broadcast", typ: protocol.TypeNotification,
			check: func(t *testing.T, data json.RawMessage, _ string) {
				var n protocol.Notification
				mustDecode(t, data, &n)
				if n.Type != "event" || string(n.Data) != `{"url":"https://ocvr.net/e/1"}` {
					t.Errorf("notification = %+v", n)
				}
			},
		},
		{
			name:    "raw unknown type to a channel, byte for byte",
			args:    []string{"publish", "raw", "--channel", "ch_abc123", "--frame", `{"type":"channel_update","data":{"channel_id":"ch_abc123", "name":"General"}}`},
			subject: "ocvr.channel.ch_abc123", typ: "channel_update",
			check: func(t *testing.T, data json.RawMessage, out string) {
				if string(data) != `{"channel_id":"ch_abc123", "name":"General"}` {
					t.Errorf("data = %s (not as given)", data)
				}
				if want := regexp.MustCompile(`^published channel_update to ocvr\.channel\.ch_abc123 \(77 bytes, stream OCVR_EVENTS seq [1-9][0-9]*\)$`); !want.MatchString(strings.TrimSpace(out)) {
					t.Errorf("output %q, want %s", out, want)
				}
			},
		},
		{
			name:    "raw to a user",
			args:    []string{"publish", "raw", "--user", "12345", "--frame", `{"type":"friend_request_accepted","data":{"user_id":456,"display_name":"User123","accepted_at":1703523700}}`},
			subject: "ocvr.user.12345", typ: "friend_request_accepted",
			check: func(t *testing.T, data json.RawMessage, out string) {},
		},
		{
			name:    "raw broadcast",
			args:    []string{"publish", "raw", "--broadcast", "--frame", `{"type":"maintenance","data":{"at":1703523600}}`},
			subject: "ocvr.broadcast", typ: "maintenance",
			check: func(t *testing.T, data json.RawMessage, out string) {},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ok(t, srv, tt.args...)
			m := next(t, sub)
			if m.Subject != tt.subject {
				t.Errorf("subject = %q, want %q", m.Subject, tt.subject)
			}
			var f protocol.Frame
			mustDecode(t, m.Data, &f)
			if f.Type != tt.typ {
				t.Fatalf("type = %q, want %q", f.Type, tt.typ)
			}
			if m.Header.Get(bus.HeaderPublishedAt) == "" {
				t.Errorf("%s not set", bus.HeaderPublishedAt)
			}
			// Channel and user events come through the stream, with their
			// position; broadcasts are core publishes.
			_, positioned := stream.PositionOf(m.Header, stream.DefaultName)
			if want := m.Subject != "ocvr.broadcast"; positioned != want {
				t.Errorf("positioned %v, want %v (headers %v)", positioned, want, m.Header)
			}
			// What the gateway would deliver: exactly a valid event frame.
			scope := protocol.ScopeUser
			switch {
			case strings.HasPrefix(m.Subject, "ocvr.channel."):
				scope = protocol.ScopeChannel
			case m.Subject == "ocvr.broadcast":
				scope = protocol.ScopeBroadcast
			}
			if _, err := protocol.ValidateEvent(scope, strings.TrimPrefix(m.Subject, "ocvr.channel."), m.Data); err != nil {
				t.Errorf("published frame does not validate: %v", err)
			}
			tt.check(t, f.Data, r.stdout)
		})
	}
	if m, err := nextLive(sub, 100*time.Millisecond); err == nil {
		t.Errorf("unexpected extra message on %s: %s", m.Subject, m.Data)
	}
}

func mustDecode(t *testing.T, data []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("decode %s: %v", data, err)
	}
}

// checkNow fails unless ts is now in unix seconds (the document's unit).
func checkNow(t *testing.T, ts int64) {
	t.Helper()
	if d := time.Now().Unix() - ts; d < -60 || d > 60 {
		t.Errorf("timestamp %d is not now in unix seconds", ts)
	}
}

func TestTicketMint(t *testing.T) {
	srv, s := setup(t)
	ctx := context.Background()
	token, sess, err := s.sessions.Create(ctx, 42, "Ada", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	r := ok(t, srv, "ticket", "mint", "--session", token)
	lines := r.lines()
	if len(lines) != 1 || !ticket.Valid(lines[0]) {
		t.Fatalf("output %q is not one ticket", r.stdout)
	}
	id, err := s.tickets.Redeem(ctx, lines[0])
	if err != nil {
		t.Fatalf("minted ticket does not redeem: %v", err)
	}
	if want := (ticket.Identity{SessionID: sess.ID, UserID: 42, DisplayName: "Ada"}); id != want {
		t.Errorf("identity = %+v, want %+v", id, want)
	}

	// An unknown or revoked session gets no ticket: refused (exit 5), one line.
	if err := s.sessions.Revoke(ctx, sess.ID, ""); err != nil {
		t.Fatal(err)
	}
	r = ctl(t, "--nats-url", srv.ClientURL(), "ticket", "mint", "--session", token)
	if r.code != exitRefused || r.stdout != "" || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, "unauthorized") {
		t.Errorf("ticket mint for a revoked session:\n%s", r)
	}
}

// TestEnvironmentAndPrefix: OCVR_NATS_URL and OCVR_SUBJECT_PREFIX are used,
// and flags win over them.
func TestEnvironmentAndPrefix(t *testing.T) {
	srv, s := setup(t)
	ensureStream(t, s.nc, stream.Config{Name: "STAGING_EVENTS", Prefix: "staging"})
	staging := s.subscribe(t, "staging.>")
	prod := s.subscribe(t, "ocvr.>")
	env := map[string]string{"OCVR_NATS_URL": srv.ClientURL(), "OCVR_SUBJECT_PREFIX": "staging"}
	args := []string{"publish", "message-delete", "--channel", "c", "--id", "m"}
	if r := ctlEnv(t, env, args...); r.code != 0 {
		t.Fatalf("with environment:\n%s", r)
	}
	if m := next(t, staging); m.Subject != "staging.channel.c" {
		t.Errorf("subject = %q", m.Subject)
	}
	// A flag after the command wins over the environment.
	if r := ctlEnv(t, env, append(args, "--subject-prefix", "ocvr")...); r.code != 0 {
		t.Fatalf("with --subject-prefix:\n%s", r)
	}
	if m := next(t, prod); m.Subject != "ocvr.channel.c" {
		t.Errorf("subject = %q", m.Subject)
	}
	// A comma-separated list with a dead server first still connects.
	port, err := natsembed.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	list := "nats://127.0.0.1:" + strconv.Itoa(port) + ", " + srv.ClientURL()
	if r := ctl(t, "--nats-url", list, "channel", "list"); r.code != 0 {
		t.Fatalf("with a server list:\n%s", r)
	}
	// A bad environment value is a usage error.
	if r := ctlEnv(t, map[string]string{"OCVR_TIMEOUT": "soon"}, "channel", "list"); r.code != 2 || !strings.Contains(r.stderr, "OCVR_TIMEOUT") {
		t.Errorf("bad OCVR_TIMEOUT:\n%s", r)
	}
}

// TestUsageErrors: each bad command line exits 2 with exactly one line on
// stderr, before touching NATS (the URL points at a closed port, so a
// command that tried to connect would exit 3 instead).
func TestUsageErrors(t *testing.T) {
	port, err := natsembed.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	dead := "nats://127.0.0.1:" + strconv.Itoa(port)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"bogus"}, `unknown command "bogus"`},
		{[]string{"session", "bogus"}, `unknown subcommand "bogus"`},
		{[]string{"--bogus", "channel", "list"}, `flag provided but not defined: --bogus`},
		{[]string{"channel", "list", "--bogus"}, `flag provided but not defined: --bogus`},
		{[]string{"channel", "list", "extra"}, `unexpected argument "extra"`},
		{[]string{"channel", "create", "ch_general"}, `unexpected argument "ch_general": ocvrctl takes flags only`},
		{[]string{"channel", "create"}, `missing required flag --channel`},
		{[]string{"channel", "create", "--channel", "ch.>"}, `invalid value "ch.>" for --channel`},
		{[]string{"channel", "create", "--channel", "*"}, `for --channel`},
		{[]string{"channel", "create", "--channel", "a b"}, `for --channel`},
		{[]string{"channel", "create", "--channel", strings.Repeat("c", 65)}, `for --channel`},
		{[]string{"channel", "create", "--channel", ""}, `for --channel`},
		{[]string{"channel", "create", "--channel"}, `flag needs an argument: --channel`},
		{[]string{"channel", "delete", "--channel", "a.b"}, `for --channel`},
		{[]string{"member", "add", "--channel", "ch", "--user", "abc"}, `invalid value "abc" for --user: want a positive integer user id`},
		{[]string{"member", "add", "--channel", "ch", "--user", "0"}, `for --user`},
		{[]string{"member", "remove", "--channel", "ch", "--user", "-1"}, `for --user`},
		{[]string{"member", "add", "--channel", "ch"}, `missing required flag --user`},
		{[]string{"friend", "add", "--user", "1", "--friend", "01"}, `for --friend`},
		{[]string{"friend", "add", "--user", "1", "--friend", "1"}, `the same user`},
		{[]string{"friend", "remove", "--user", "99999999999999999999", "--friend", "2"}, `for --user`},
		{[]string{"session", "create", "--user", "1"}, `missing required flag --name`},
		{[]string{"session", "create", "--user", "x", "--name", "A"}, `for --user`},
		{[]string{"session", "create", "--user", "1", "--name", "A", "--ttl", "0s"}, `--ttl must be at least 1s`},
		{[]string{"session", "create", "--user", "1", "--name", "A", "--ttl", "tomorrow"}, `for --ttl`},
		{[]string{"session", "create", "--user", "1", "--name", strings.Repeat("n", 129)}, `--name must be 1–128 bytes`},
		{[]string{"session", "revoke"}, `missing required flag --session or --user`},
		{[]string{"session", "revoke", "--session", "ses_a", "--user", "1"}, `not both`},
		{[]string{"session", "revoke", "--session", "ses_a", "--except", "ses_b"}, `--except needs --user`},
		{[]string{"session", "revoke", "--session", "ses.*"}, `for --session`},
		{[]string{"session", "revoke", "--user", "1", "--except", "a,b"}, `for --except`},
		{[]string{"publish", "message-create", "--channel", "ch", "--author", "1", "--name", "A"}, `missing required flag --content`},
		{[]string{"publish", "message-create", "--channel", "ch.x", "--author", "1", "--name", "A", "--content", "c"}, `for --channel`},
		{[]string{"publish", "message-create", "--channel", "ch", "--author", "0", "--name", "A", "--content", "c"}, `for --author`},
		{[]string{"publish", "message-update", "--channel", "ch", "--id", "m"}, `missing required flag --content`},
		{[]string{"publish", "message-delete", "--channel", "ch"}, `missing required flag --id`},
		{[]string{"publish", "message-delete", "--channel", "ch", "--id", ""}, `--id must be 1–128 bytes`},
		{[]string{"notify", "--user", "1", "--title", "t"}, `missing required flag --type`},
		{[]string{"notify", "--user", "me", "--type", "x", "--title", "t"}, `for --user`},
		{[]string{"broadcast", "--type", "session_revoked", "--title", "t"}, `cannot be broadcast`},
		{[]string{"broadcast", "--body", "b"}, `missing required flag --title`},
		{[]string{"notify", "--user", "1", "--type", "x", "--title", "t", "--data", "[1]"}, `--data must be a JSON object`},
		{[]string{"notify", "--user", "1", "--type", "x", "--title", "t", "--data", "{"}, `--data must be a JSON object`},
		{[]string{"broadcast", "--title", "t", "--data", `"x"`}, `--data must be a JSON object`},
		{[]string{"publish", "message-create", "--channel", "ch", "--author", "1", "--name", "A", "--content", "c", "--attachments", "{}"}, `--attachments must be a JSON array of objects`},
		{[]string{"publish", "message-create", "--channel", "ch", "--author", "1", "--name", "A", "--content", "c", "--attachments", "[1]"}, `--attachments must be a JSON array of objects`},
		{[]string{"publish", "message-delete", "--channel", "ch", "--id", "m", "--core", "--msg-id", "x"}, `--msg-id and --core exclude each other`},
		{[]string{"notify", "--user", "1", "--type", "x", "--title", "t", "--msg-id", ""}, `--msg-id must be 1–128 bytes`},
		{[]string{"publish", "message-update", "--channel", "ch", "--id", "m", "--content", "c", "--msg-id", "a\nb"}, `--msg-id must not hold control characters`},
		{[]string{"publish", "raw", "--broadcast", "--frame", `{"type":"x","data":{}}`, "--msg-id", "x"}, `a broadcast is a core publish`},
		{[]string{"stream", "ensure", "--window", "0s"}, `--window must be positive`},
		{[]string{"stream", "ensure", "--replicas", "6"}, `--replicas must be 0 (auto) to 5`},
		{[]string{"stream", "ensure", "--max-bytes", "-1"}, `--max-bytes must not be negative`},
		{[]string{"stream", "info", "--stream-name", "OCVR.EVENTS"}, `--stream-name: stream: invalid stream name`},
		{[]string{"stream", "info", "extra"}, `unexpected argument "extra"`},
		{[]string{"publish", "raw", "--frame", `{"type":"x","data":{}}`}, `give exactly one of --channel, --user or --broadcast`},
		{[]string{"publish", "raw", "--channel", "ch", "--broadcast", "--frame", `{"type":"x","data":{}}`}, `exactly one of`},
		{[]string{"publish", "raw", "--channel", "ch"}, `no frame: give --frame JSON or pipe one into standard input`},
		{[]string{"validate", "--frame", `{"type":"x","data":{}}`}, `give exactly one of --channel, --user, --broadcast or --subject`},
		{[]string{"validate", "--subject", "ocvr.in.broadcast", "--frame", `{"type":"x","data":{}}`}, `not an event subject`},
		{[]string{"validate", "--subject", "other.channel.ch", "--frame", `{"type":"x","data":{}}`}, `not an event subject`},
		{[]string{"validate", "--channel", "ch"}, `no frame`},
		{[]string{"validate", "--channel", "ch", "--lines"}, `no frame on standard input`},
		{[]string{"validate", "--channel", "ch", "--lines", "--frame", "{}"}, `--lines reads standard input`},
		{[]string{"member", "list"}, `give exactly one of --channel or --user`},
		{[]string{"member", "list", "--channel", "ch", "--user", "1"}, `give exactly one of --channel or --user`},
		{[]string{"friend", "list"}, `missing required flag --user`},
		{[]string{"session", "list"}, `missing required flag --user`},
		{[]string{"session", "list", "--user", "0"}, `for --user`},
		{[]string{"publish", "raw", "--channel", "ch", "--frame", " "}, `--frame is empty`},
		{[]string{"advisories", "--count", "-1"}, `--count must not be negative`},
		{[]string{"ticket", "mint"}, `missing required flag --session`},
		{[]string{"ticket", "mint", "--session", "not-a-token"}, `--session must be a bearer token`},
		{[]string{"--subject-prefix", "a.*", "channel", "list"}, `--subject-prefix`},
		{[]string{"channel", "list", "--nats-url", " , "}, `at least one NATS URL`},
		{[]string{"channel", "list", "--timeout", "-1s"}, `--timeout must be positive`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			r := ctl(t, append([]string{"--nats-url", dead}, tt.args...)...)
			if r.code != 2 {
				t.Fatalf("want exit 2:\n%s", r)
			}
			if r.stdout != "" {
				t.Errorf("stdout = %q, want nothing", r.stdout)
			}
			if strings.Count(r.stderr, "\n") != 1 || !strings.HasSuffix(r.stderr, "\n") || !strings.HasPrefix(r.stderr, "ocvrctl") {
				t.Errorf("stderr is not one ocvrctl line: %q", r.stderr)
			}
			if !strings.Contains(r.stderr, tt.want) {
				t.Errorf("stderr = %q, want it to contain %q", r.stderr, tt.want)
			}
		})
	}
	// No arguments, or a group without a subcommand: usage on stderr, exit 2.
	for _, args := range [][]string{nil, {"session"}, {"publish"}} {
		r := ctl(t, args...)
		if r.code != 2 || r.stdout != "" || !strings.Contains(r.stderr, "Usage: ocvrctl") {
			t.Errorf("ocvrctl %v:\n%s", args, r)
		}
	}
}

// TestRefusedFrames: a frame the gateways would refuse is not published,
// and the exit code says "refused" (5) — before NATS is even tried.
func TestRefusedFrames(t *testing.T) {
	port, err := natsembed.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	dead := "nats://127.0.0.1:" + strconv.Itoa(port)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"publish", "raw", "--channel", "ch", "--frame", "hello"}, `invalid event: not JSON`},
		{[]string{"publish", "raw", "--channel", "ch", "--frame", `{"type":"x"}`}, `needs a "data" object`},
		{[]string{"publish", "raw", "--user", "1", "--frame", `{"type":"error","data":{"code":"X","message":"m"}}`}, `the gateway itself sends or receives`},
		{[]string{"publish", "raw", "--broadcast", "--frame", `{"type":"session_revoked","data":{"reason":"x"}}`}, `may only be published on a user subject`},
		{[]string{"publish", "raw", "--channel", "ch", "--frame", `{"type":"message_delete","data":{"id":"m","channel_id":"other"}}`}, `does not name the subject's channel`},
		{[]string{"publish", "raw", "--user", "1", "--frame", `{"type":"presence_update","data":{"user_id":"2","presence":"online"}}`}, `"user_id" must be a positive integer`},
		{[]string{"publish", "raw", "--user", "1", "--frame", `{"type":"x","data":{},"Type":"y"}`}, `keys are case-sensitive`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			r := ctl(t, append([]string{"--nats-url", dead}, tt.args...)...)
			if r.code != exitRefused || r.stdout != "" || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, tt.want) {
				t.Fatalf("want exit 5 and one line containing %q:\n%s", tt.want, r)
			}
			// validate says the same, on stdout, with the same exit code.
			v := ctl(t, append([]string{"validate"}, slices.DeleteFunc(slices.Clone(tt.args[2:]), func(a string) bool { return a == "--force" })...)...)
			if v.code != exitRefused || !strings.Contains(v.stdout, tt.want) {
				t.Errorf("validate %v:\n%s", tt.args[2:], v)
			}
		})
	}
}

// TestNATSUnreachable: every command that needs NATS, given valid flags and
// a closed port, fails fast with exit 3 (unreachable) and one line naming
// the address.
func TestNATSUnreachable(t *testing.T) {
	port, err := natsembed.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	dead := "nats://127.0.0.1:" + strconv.Itoa(port)
	valid := [][]string{
		{"session", "create", "--user", "1", "--name", "A"},
		{"session", "revoke", "--session", "ses_a"},
		{"session", "revoke", "--user", "1", "--except", "ses_a"},
		{"channel", "create", "--channel", "ch"},
		{"channel", "delete", "--channel", "ch"},
		{"channel", "list"},
		{"member", "add", "--channel", "ch", "--user", "1"},
		{"member", "remove", "--channel", "ch", "--user", "1"},
		{"friend", "add", "--user", "1", "--friend", "2"},
		{"friend", "remove", "--user", "1", "--friend", "2"},
		{"publish", "message-create", "--channel", "ch", "--author", "1", "--name", "A", "--content", "c"},
		{"publish", "message-update", "--channel", "ch", "--id", "m", "--content", "c"},
		{"publish", "message-delete", "--channel", "ch", "--id", "m"},
		{"notify", "--user", "1", "--type", "t", "--title", "T"},
		{"broadcast", "--title", "T"},
		{"publish", "raw", "--channel", "ch", "--frame", `{"type":"channel_update","data":{}}`},
		{"advisories"},
		{"advisories", "--count", "1", "--timeout", "5s"},
		{"ticket", "mint", "--session", "sess_" + strings.Repeat("A", 43)},
		{"presence", "set", "--user", "1", "--text", "hi"},
		{"presence", "get", "--user", "1"},
		{"stream", "info"},
		{"stream", "ensure", "--window", "5m"},
		{"setup"},
		{"publish", "message-delete", "--channel", "ch", "--id", "m", "--core"},
		{"session", "list", "--user", "1"},
		{"member", "list", "--channel", "ch"},
		{"member", "list", "--user", "1"},
		{"friend", "list", "--user", "1"},
	}
	// connect talks to ticketsvc and a gateway, never to NATS; validate to
	// nothing.
	covered := map[string]bool{"connect": true, "validate": true, "permissions": true}
	for _, args := range valid {
		cmd, _ := (&cli{commands: commands()}).lookup(args)
		if cmd == nil {
			t.Fatalf("no command for %v", args)
		}
		covered[cmd.path] = true
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			start := time.Now()
			r := ctl(t, append([]string{"--nats-url", dead}, args...)...)
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("took %v to fail", d)
			}
			want := "ocvrctl " + cmd.path + ": cannot reach NATS at " + dead + ": "
			if r.code != exitUnreachable || r.stdout != "" || strings.Count(r.stderr, "\n") != 1 || !strings.HasPrefix(r.stderr, want) {
				t.Errorf("want exit 3 and one line starting %q:\n%s", want, r)
			}
		})
	}
	// Credentials in the URL never reach the error message.
	secret := "nats://ops:s3cret@127.0.0.1:" + strconv.Itoa(port)
	r := ctl(t, "--nats-url", secret, "channel", "list")
	if r.code != exitUnreachable || strings.Contains(r.stderr, "s3cret") || !strings.Contains(r.stderr, "cannot reach NATS at nats://ops:REDACTED@127.0.0.1:") {
		t.Errorf("with credentials in the URL:\n%s", r)
	}
	for _, c := range commands() {
		if !covered[c.path] {
			t.Errorf("command %q is not covered by this test", c.path)
		}
	}
}

// TestHelp: --help (and -h) on every command and group explains it on
// stdout and exits 0.
func TestHelp(t *testing.T) {
	for _, flagName := range []string{"--help", "-h"} {
		r := ctl(t, flagName)
		if r.code != 0 || r.stderr != "" {
			t.Fatalf("ocvrctl %s:\n%s", flagName, r)
		}
		for _, c := range commands() {
			if !strings.Contains(r.stdout, "  "+c.path+"  ") {
				t.Errorf("ocvrctl %s does not list %q", flagName, c.path)
			}
		}
		for _, g := range []string{"--nats-url", "OCVR_NATS_URL", "--subject-prefix", "OCVR_SUBJECT_PREFIX", "nats://127.0.0.1:4222", "--stream-name", "OCVR_STREAM_NAME"} {
			if !strings.Contains(r.stdout, g) {
				t.Errorf("ocvrctl %s does not mention %s", flagName, g)
			}
		}
	}
	for _, c := range commands() {
		t.Run(c.path, func(t *testing.T) {
			args := append(strings.Fields(c.path), "--help")
			r := ctl(t, args...)
			if r.code != 0 || r.stderr != "" {
				t.Fatalf("ocvrctl %s:\n%s", strings.Join(args, " "), r)
			}
			if !strings.HasPrefix(r.stdout, "Usage: ocvrctl "+c.path+" ") {
				t.Errorf("help does not start with the usage line:\n%s", r.stdout)
			}
			fs := newFlagSet(c)
			fs.VisitAll(func(f *flag.Flag) {
				if !strings.Contains(r.stdout, "  --"+f.Name) {
					t.Errorf("help does not document --%s", f.Name)
				}
			})
			// Every flag in the synopsis exists.
			for _, w := range strings.Fields(c.synopsis) {
				w = strings.Trim(w, "[]|")
				if strings.HasPrefix(w, "--") && fs.Lookup(strings.TrimPrefix(w, "--")) == nil {
					t.Errorf("synopsis names %s, which is not a flag", w)
				}
			}
			if r := ctl(t, append(strings.Fields(c.path), "-h")...); r.code != 0 {
				t.Errorf("-h: %s", r)
			}
		})
	}
	for _, group := range []string{"session", "channel", "member", "friend", "publish", "ticket", "stream"} {
		r := ctl(t, group, "--help")
		if r.code != 0 || !strings.Contains(r.stdout, "Usage: ocvrctl "+group+" <subcommand>") {
			t.Errorf("ocvrctl %s --help:\n%s", group, r)
		}
	}
}

// newFlagSet returns a flag set with only c's own flags.
func newFlagSet(c command) *flag.FlagSet {
	fs := flag.NewFlagSet(c.path, flag.ContinueOnError)
	c.setup(fs)
	return fs
}

func TestCommandTable(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range commands() {
		if seen[c.path] {
			t.Errorf("duplicate command %q", c.path)
		}
		seen[c.path] = true
		if c.summary == "" || c.setup == nil {
			t.Errorf("command %q lacks a summary or setup", c.path)
		}
		if n := len(strings.Fields(c.path)); n < 1 || n > 2 {
			t.Errorf("command %q: want one or two words", c.path)
		}
	}
}

// TestDirectoryBuckets: --channels-bucket, --members-bucket and
// --friends-bucket (or their OCVR_* variables) put the directory of one
// environment apart from another's on the same NATS account.
func TestDirectoryBuckets(t *testing.T) {
	srv, s := setup(t)
	ctx := context.Background()
	env := map[string]string{
		"OCVR_NATS_URL":        srv.ClientURL(),
		"OCVR_CHANNELS_BUCKET": "staging_channels",
		"OCVR_MEMBERS_BUCKET":  "staging_members",
		"OCVR_FRIENDS_BUCKET":  "staging_friends",
	}
	for _, args := range [][]string{
		{"channel", "create", "--channel", "ch_staging"},
		{"member", "add", "--channel", "ch_staging", "--user", "1"},
		{"friend", "add", "--user", "1", "--friend", "2"},
	} {
		if r := ctlEnv(t, env, args...); r.code != 0 {
			t.Fatalf("ocvrctl %s:\n%s", strings.Join(args, " "), r)
		}
	}
	staging, err := directory.Open(ctx, s.nc, directory.WithBuckets(directory.Buckets{
		Channels: "staging_channels", Members: "staging_members", Friends: "staging_friends",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := staging.IsMember(ctx, "ch_staging", 1); err != nil || !ok {
		t.Errorf("staging IsMember = %v, %v; want true", ok, err)
	}
	if f, err := staging.Friends(ctx, 1); err != nil || !slices.Equal(f, []int64{2}) {
		t.Errorf("staging Friends = %v, %v", f, err)
	}
	if ok, err := s.dir.ChannelExists(ctx, "ch_staging"); err != nil || ok {
		t.Errorf("default buckets see staging's channel: %v, %v", ok, err)
	}
	if f, err := s.dir.Friends(ctx, 1); err != nil || len(f) != 0 {
		t.Errorf("default buckets see staging's friends: %v, %v", f, err)
	}
	// A flag wins over its variable.
	if r := ctlEnv(t, env, "channel", "create", "--channel", "ch_prod", "--channels-bucket", directory.ChannelsBucket); r.code != 0 {
		t.Fatalf("with --channels-bucket:\n%s", r)
	}
	if ok, err := s.dir.ChannelExists(ctx, "ch_prod"); err != nil || !ok {
		t.Errorf("--channels-bucket did not win over OCVR_CHANNELS_BUCKET: %v, %v", ok, err)
	}
	// The three must differ.
	if r := ctl(t, "--nats-url", srv.ClientURL(), "--members-bucket", directory.ChannelsBucket, "channel", "list"); r.code == 0 {
		t.Errorf("channels and members in one bucket accepted:\n%s", r)
	}
}
