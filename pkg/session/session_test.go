package session_test

import (
	"context"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ocvr/realtime/pkg/bus"
	"github.com/ocvr/realtime/pkg/internal/kvutil"
	"github.com/ocvr/realtime/pkg/natsembed"
	"github.com/ocvr/realtime/pkg/protocol"
	"github.com/ocvr/realtime/pkg/session"
)

// env is one embedded server, a session store with a publisher, and a
// separate connection for inspecting the bucket and subscribing.
type env struct {
	srv   *natsembed.Server
	store *session.Store
	nc    *nats.Conn // the observer's connection
	kv    jetstream.KeyValue
}

func setup(t *testing.T) env {
	t.Helper()
	srv := natsembed.Test(t)
	ctx := testCtx(t)
	storeNC, nc := connect(t, srv), connect(t, srv)
	subjects, err := bus.NewSubjects("")
	if err != nil {
		t.Fatal(err)
	}
	store, err := session.Open(ctx, storeNC, "", bus.NewPublisher(storeNC, subjects))
	if err != nil {
		t.Fatalf("open session store: %v", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, session.DefaultBucket)
	if err != nil {
		t.Fatal(err)
	}
	return env{srv: srv, store: store, nc: nc, kv: kv}
}

func connect(t *testing.T, srv *natsembed.Server) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func (e env) create(t *testing.T, userID int64, name string) (string, session.Session) {
	t.Helper()
	tok, s, err := e.store.Create(testCtx(t), userID, name, time.Hour)
	if err != nil {
		t.Fatalf("Create(%d, %q): %v", userID, name, err)
	}
	return tok, s
}

// subscribe returns a synchronous subscription to a user's subject.
func (e env) subscribe(t *testing.T, userID int64) *nats.Subscription {
	t.Helper()
	sub, err := e.nc.SubscribeSync("ocvr.user." + strconv.FormatInt(userID, 10))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return sub
}

// keys lists the bucket's live keys.
func (e env) keys(t *testing.T) []string {
	t.Helper()
	keys, err := e.kv.Keys(testCtx(t))
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

func TestCreateVerify(t *testing.T) {
	e := setup(t)
	ctx := testCtx(t)
	now := time.Date(2025, 1, 15, 10, 30, 0, 0, time.UTC)
	e.store.Now = func() time.Time { return now }
	tok, s, err := e.store.Create(ctx, 42, "Ada Lovelace", 24*time.Hour)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if !strings.HasPrefix(tok, session.TokenPrefix) || len(tok) != len(session.TokenPrefix)+43 {
		t.Errorf("token %q is not sess_ + 256 bits base64url", tok)
	}
	if !strings.HasPrefix(s.ID, "ses_") || !protocol.ValidSessionID(s.ID) {
		t.Errorf("session id %q", s.ID)
	}
	if s.UserID != 42 || s.DisplayName != "Ada Lovelace" || !s.CreatedAt.Equal(now) || !s.ExpiresAt.Equal(now.Add(24*time.Hour)) {
		t.Errorf("session = %+v", s)
	}
	if s.TokenHash != kvutil.Hash(tok) {
		t.Errorf("token hash = %q", s.TokenHash)
	}
	got, err := e.store.Verify(ctx, tok)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if got != s {
		t.Errorf("Verify = %+v\nwant %+v", got, s)
	}
	byID, err := e.store.Lookup(ctx, s.ID)
	if err != nil || byID != s {
		t.Errorf("Lookup = %+v, %v", byID, err)
	}
	// Two sessions of one user are independent.
	tok2, s2 := e.create(t, 42, "Ada")
	if tok2 == tok || s2.ID == s.ID {
		t.Fatal("two sessions share a token or an id")
	}
	if got, err := e.store.Verify(ctx, tok2); err != nil || got.ID != s2.ID {
		t.Fatalf("Verify second session = %+v, %v", got, err)
	}
}

func TestCreateRefuses(t *testing.T) {
	e := setup(t)
	ctx := testCtx(t)
	tests := []struct {
		name    string
		userID  int64
		display string
		ttl     time.Duration
	}{
		{"user 0", 0, "A", time.Hour},
		{"negative user", -1, "A", time.Hour},
		{"empty name", 1, "", time.Hour},
		{"long name", 1, strings.Repeat("n", 129), time.Hour},
		{"invalid UTF-8 name", 1, "Ad\xff", time.Hour},
		{"zero ttl", 1, "A", 0},
		{"sub-second ttl", 1, "A", 500 * time.Millisecond},
		{"negative ttl", 1, "A", -time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tok, _, err := e.store.Create(ctx, tt.userID, tt.display, tt.ttl); err == nil {
				t.Fatalf("Create succeeded with token %q", tok)
			}
		})
	}
	if keys := e.keys(t); len(keys) != 0 {
		t.Fatalf("refused creates wrote keys: %v", keys)
	}
}

func TestVerifyRefuses(t *testing.T) {
	e := setup(t)
	ctx := testCtx(t)
	created := time.Date(2025, 1, 15, 10, 30, 0, 0, time.UTC)
	e.store.Now = func() time.Time { return created }
	live, _ := e.create(t, 1, "Live")
	expiring, _ := e.create(t, 2, "Expiring")
	revokedTok, revoked := e.create(t, 3, "Revoked")
	if err := e.store.Revoke(ctx, revoked.ID, "test"); err != nil {
		t.Fatal(err)
	}
	body := live[len(session.TokenPrefix):]
	tests := []struct {
		name  string
		token string
		now   time.Time
		err   error
	}{
		{"missing", "", created, session.ErrMissing},
		{"malformed short", "sess_abc", created, session.ErrMalformed},
		{"malformed no prefix", body, created, session.ErrMalformed},
		{"malformed ticket prefix", "wst_" + body, created, session.ErrMalformed},
		{"malformed bearer scheme", "Bearer " + live, created, session.ErrMalformed},
		{"malformed trailing space", live + " ", created, session.ErrMalformed},
		{"malformed hash", kvutil.Hash(live), created, session.ErrMalformed},
		{"unknown", kvutil.RandomToken(session.TokenPrefix, 32), created, session.ErrUnknown},
		{"unknown all zero", session.TokenPrefix + base64.RawURLEncoding.EncodeToString(make([]byte, 32)), created, session.ErrUnknown},
		{"expired at expiry", expiring, created.Add(time.Hour), session.ErrExpired},
		{"expired later", expiring, created.Add(25 * time.Hour), session.ErrExpired},
		{"revoked", revokedTok, created, session.ErrUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.store.Now = func() time.Time { return tt.now }
			s, err := e.store.Verify(ctx, tt.token)
			if !errors.Is(err, tt.err) {
				t.Fatalf("Verify = %+v, %v; want %v", s, err, tt.err)
			}
			if !errors.Is(err, session.ErrUnauthorized) {
				t.Fatalf("%v does not wrap ErrUnauthorized", err)
			}
			if s != (session.Session{}) {
				t.Fatalf("Verify returned session %+v alongside an error", s)
			}
		})
	}
	// One nanosecond before expiry it is still valid.
	e.store.Now = func() time.Time { return created.Add(time.Hour - time.Nanosecond) }
	if _, err := e.store.Verify(ctx, expiring); err != nil {
		t.Fatalf("Verify just before expiry: %v", err)
	}
	// Lookup by id refuses the same way.
	for _, id := range []string{"", "ses_nope", "a.b", "*", revoked.ID} {
		if _, err := e.store.Lookup(ctx, id); !errors.Is(err, session.ErrUnknown) {
			t.Errorf("Lookup(%q) = %v, want ErrUnknown", id, err)
		}
	}
}

// TestOnlyHashStored scans every key and value of the bucket for the token.
func TestOnlyHashStored(t *testing.T) {
	e := setup(t)
	ctx := testCtx(t)
	var tokens []string
	for i := int64(1); i <= 3; i++ {
		tok, _ := e.create(t, i, "User "+strconv.FormatInt(i, 10))
		tokens = append(tokens, tok)
	}
	keys := e.keys(t)
	if len(keys) != 3*len(tokens) {
		t.Fatalf("bucket has %d keys, want 3 per session: %v", len(keys), keys)
	}
	hashKeys := 0
	for _, k := range keys {
		entry, err := e.kv.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		for _, tok := range tokens {
			secret := tok[len(session.TokenPrefix):]
			if strings.Contains(k, secret) || strings.Contains(string(entry.Value()), secret) {
				t.Fatalf("token stored in clear under %q: %s", k, entry.Value())
			}
			if k == "t."+kvutil.Hash(tok) {
				hashKeys++
			}
		}
	}
	if hashKeys != len(tokens) {
		t.Errorf("%d keys are t.<sha256(token)>, want %d", hashKeys, len(tokens))
	}
}

// TestKeysCarrySessionTTL: each record expires from KV by itself, no
// earlier than the session (whole seconds, rounded up).
func TestKeysCarrySessionTTL(t *testing.T) {
	e := setup(t)
	ctx := testCtx(t)
	_, s, err := e.store.Create(ctx, 5, "T", 90*time.Minute+300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(e.nc)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(ctx, "KV_"+session.DefaultBucket)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"t." + s.TokenHash, "s." + s.ID, "u.5." + s.ID} {
		m, err := stream.GetLastMsgForSubject(ctx, "$KV."+session.DefaultBucket+"."+key)
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		ttl, err := time.ParseDuration(m.Header.Get(jetstream.MsgTTLHeader))
		if err != nil {
			t.Fatalf("%s: TTL header %q: %v", key, m.Header.Get(jetstream.MsgTTLHeader), err)
		}
		if ttl != 90*time.Minute+time.Second {
			t.Errorf("%s: TTL %v, want %v", key, ttl, 90*time.Minute+time.Second)
		}
	}
}

func TestRevokePublishes(t *testing.T) {
	e := setup(t)
	ctx := testCtx(t)
	tok, s := e.create(t, 42, "Ada")
	otherTok, _ := e.create(t, 42, "Ada")
	sub := e.subscribe(t, 42)
	before := time.Now()
	// context.Background: callers need not set a deadline for the flush.
	if err := e.store.Revoke(context.Background(), s.ID, "logout"); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	m, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("no session_revoked published: %v", err)
	}
	if want := `{"type":"session_revoked","data":{"reason":"logout"}}`; string(m.Data) != want {
		t.Errorf("payload = %s, want %s", m.Data, want)
	}
	if got := m.Header.Get(bus.HeaderSession); got != s.ID {
		t.Errorf("%s = %q, want %q", bus.HeaderSession, got, s.ID)
	}
	if got := m.Header.Get(bus.HeaderExceptSession); got != "" {
		t.Errorf("%s = %q on a single revoke", bus.HeaderExceptSession, got)
	}
	ns, err := strconv.ParseInt(m.Header.Get(bus.HeaderPublishedAt), 10, 64)
	if err != nil {
		t.Fatalf("%s: %v", bus.HeaderPublishedAt, err)
	}
	if at := time.Unix(0, ns); at.Before(before.Add(-time.Second)) || at.After(time.Now().Add(time.Second)) {
		t.Errorf("%s = %v, not about now", bus.HeaderPublishedAt, at)
	}

	if _, err := e.store.Verify(ctx, tok); !errors.Is(err, session.ErrUnknown) {
		t.Errorf("Verify after Revoke = %v, want ErrUnknown", err)
	}
	if _, err := e.store.Lookup(ctx, s.ID); !errors.Is(err, session.ErrUnknown) {
		t.Errorf("Lookup after Revoke = %v, want ErrUnknown", err)
	}
	if _, err := e.store.Verify(ctx, otherTok); err != nil {
		t.Errorf("the user's other session was revoked too: %v", err)
	}
	for _, k := range e.keys(t) {
		if strings.Contains(k, s.ID) || strings.Contains(k, s.TokenHash) {
			t.Errorf("key %q of the revoked session is still in the bucket", k)
		}
	}
	if err := e.store.Revoke(ctx, s.ID, "again"); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("second Revoke = %v, want ErrNotFound", err)
	}
	if err := e.store.Revoke(ctx, "ses.*", ""); err == nil || errors.Is(err, session.ErrNotFound) {
		t.Errorf("Revoke of an invalid id = %v, want an invalid-id error", err)
	}
	// An empty reason becomes "revoked".
	_, s3 := e.create(t, 42, "Ada")
	if err := e.store.Revoke(ctx, s3.ID, ""); err != nil {
		t.Fatal(err)
	}
	m, err = sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"type":"session_revoked","data":{"reason":"revoked"}}`; string(m.Data) != want {
		t.Errorf("payload = %s, want %s", m.Data, want)
	}
	if _, err := sub.NextMsg(100 * time.Millisecond); err == nil {
		t.Error("failed revokes published something")
	}
}

func TestRevokeAll(t *testing.T) {
	e := setup(t)
	ctx := testCtx(t)
	keepTok, keep := e.create(t, 7, "Kim")
	var goneToks []string
	for i := 0; i < 3; i++ {
		tok, _ := e.create(t, 7, "Kim")
		goneToks = append(goneToks, tok)
	}
	neighbourTok, _ := e.create(t, 70, "Neighbour") // u.70.* must not match u.7.*
	sub := e.subscribe(t, 7)
	subOther := e.subscribe(t, 70)

	n, err := e.store.RevokeAll(ctx, 7, "logout_all", keep.ID)
	if err != nil {
		t.Fatalf("RevokeAll: %v", err)
	}
	if n != len(goneToks) {
		t.Errorf("RevokeAll revoked %d sessions, want %d", n, len(goneToks))
	}
	if _, err := e.store.Verify(ctx, keepTok); err != nil {
		t.Errorf("the excepted session no longer verifies: %v", err)
	}
	for _, tok := range goneToks {
		if _, err := e.store.Verify(ctx, tok); !errors.Is(err, session.ErrUnknown) {
			t.Errorf("Verify of a revoked session = %v, want ErrUnknown", err)
		}
	}
	if _, err := e.store.Verify(ctx, neighbourTok); err != nil {
		t.Errorf("another user's session was revoked: %v", err)
	}
	m, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("no session_revoked published: %v", err)
	}
	if want := `{"type":"session_revoked","data":{"reason":"logout_all"}}`; string(m.Data) != want {
		t.Errorf("payload = %s, want %s", m.Data, want)
	}
	if got := m.Header.Get(bus.HeaderExceptSession); got != keep.ID {
		t.Errorf("%s = %q, want %q", bus.HeaderExceptSession, got, keep.ID)
	}
	if got := m.Header.Get(bus.HeaderSession); got != "" {
		t.Errorf("%s = %q, want none", bus.HeaderSession, got)
	}
	if m.Header.Get(bus.HeaderPublishedAt) == "" {
		t.Errorf("%s missing", bus.HeaderPublishedAt)
	}
	if _, err := sub.NextMsg(100 * time.Millisecond); err == nil {
		t.Error("RevokeAll published more than one message")
	}
	if m, err := subOther.NextMsg(100 * time.Millisecond); err == nil {
		t.Errorf("another user got %s", m.Data)
	}

	// Without an exception, everything goes, and the announcement has no
	// session header: every connection of the user is closed.
	n, err = e.store.RevokeAll(ctx, 7, "", "")
	if err != nil || n != 1 {
		t.Fatalf("RevokeAll without exception = %d, %v; want 1", n, err)
	}
	if _, err := e.store.Verify(ctx, keepTok); !errors.Is(err, session.ErrUnknown) {
		t.Errorf("Verify = %v, want ErrUnknown", err)
	}
	m, err = sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Data) != `{"type":"session_revoked","data":{"reason":"revoked"}}` || m.Header.Get(bus.HeaderExceptSession) != "" || m.Header.Get(bus.HeaderSession) != "" {
		t.Errorf("got %s with headers %v", m.Data, m.Header)
	}
	for _, k := range e.keys(t) {
		if strings.HasPrefix(k, "u.7.") {
			t.Errorf("index key %q left behind", k)
		}
	}

	// A user with no sessions in the store is still told: a connection whose
	// session expired from KV must be closed too.
	n, err = e.store.RevokeAll(ctx, 7, "logout_all", "")
	if err != nil || n != 0 {
		t.Fatalf("RevokeAll of nothing = %d, %v", n, err)
	}
	if _, err := sub.NextMsg(5 * time.Second); err != nil {
		t.Errorf("RevokeAll of nothing published nothing: %v", err)
	}

	for _, tt := range []struct {
		user   int64
		except string
	}{{0, ""}, {-7, ""}, {7, "ses.*"}, {7, "a b"}} {
		if _, err := e.store.RevokeAll(ctx, tt.user, "x", tt.except); err == nil {
			t.Errorf("RevokeAll(%d, %q) succeeded", tt.user, tt.except)
		}
	}
}

// TestReadOnlyStoreRefusesRevoke: a store opened without a publisher
// (ticketsvc) refuses to revoke before deleting anything, so no session is
// ever deleted without its sockets being told.
func TestReadOnlyStoreRefusesRevoke(t *testing.T) {
	e := setup(t)
	ctx := testCtx(t)
	tok, s := e.create(t, 9, "Ro")
	ro, err := session.Open(ctx, connect(t, e.srv), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ro.Verify(ctx, tok); err != nil || got.ID != s.ID {
		t.Fatalf("read-only Verify = %+v, %v", got, err)
	}
	if err := ro.Revoke(ctx, s.ID, "x"); err == nil {
		t.Fatal("read-only Revoke succeeded")
	}
	if _, err := ro.RevokeAll(ctx, 9, "x", ""); err == nil {
		t.Fatal("read-only RevokeAll succeeded")
	}
	if _, err := e.store.Verify(ctx, tok); err != nil {
		t.Fatalf("a refused revoke deleted the session: %v", err)
	}
}

func TestStoreUnavailable(t *testing.T) {
	e := setup(t)
	tok, _ := e.create(t, 1, "A")
	e.srv.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := e.store.Verify(ctx, tok); err == nil || errors.Is(err, session.ErrUnauthorized) {
		t.Fatalf("Verify with NATS down = %v, want an error that is not ErrUnauthorized", err)
	}
}
