package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/ocvr/realtime/pkg/bus"
	"github.com/ocvr/realtime/pkg/session"
)

// svcReply is a session service reply, decoded.
type svcReply struct {
	Data   json.RawMessage `json:"data"`
	Error  *ErrorBody      `json:"error"`
	Status string          // Nats-Service-Error-Code, "" on success
}

// request sends body to the session service's op, as a backend in any
// language would: a plain NATS request.
func (e *env) request(op, body string) svcReply {
	e.t.Helper()
	m, err := e.nc.Request(SessionSubject("ocvr", op), []byte(body), 5*time.Second)
	if err != nil {
		e.t.Fatalf("request %s: %v", op, err)
	}
	var r svcReply
	if err := json.Unmarshal(m.Data, &r); err != nil {
		e.t.Fatalf("reply to %s is not JSON: %q", op, m.Data)
	}
	r.Status = m.Header.Get(micro.ErrorCodeHeader)
	if (r.Error == nil) != (r.Status == "") {
		e.t.Fatalf("reply to %s: error body %v with status header %q", op, r.Error, r.Status)
	}
	return r
}

// userEvents subscribes to a user subject, where revocations are announced.
func (e *env) userEvents(userID string) *nats.Subscription {
	e.t.Helper()
	sub, err := e.nc.SubscribeSync("ocvr.user." + userID)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.nc.Flush(); err != nil {
		e.t.Fatal(err)
	}
	return sub
}

func nextEvent(t *testing.T, sub *nats.Subscription) *nats.Msg {
	t.Helper()
	m, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("no event on %s: %v", sub.Subject, err)
	}
	return m
}

// A session created through the service is a real one (ticketsvc mints a
// ticket for it); revoking it through the service deletes it and tells its
// sockets, in one request.
func TestSessionServiceCreateAndRevoke(t *testing.T) {
	e := newEnv(t, envOptions{})
	r := e.request("create", `{"user_id":42,"display_name":"Ada","ttl_seconds":3600}`)
	if r.Error != nil {
		t.Fatalf("create: %+v", r.Error)
	}
	var c SessionCreated
	if err := json.Unmarshal(r.Data, &c); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(c.Token, session.TokenPrefix) || !strings.HasPrefix(c.SessionID, "ses_") || c.UserID != 42 {
		t.Fatalf("create reply %+v", c)
	}
	if d := time.Until(time.Unix(c.ExpiresAt, 0)); d < 59*time.Minute || d > 61*time.Minute {
		t.Errorf("expires_at %d is %v away, want about 1h", c.ExpiresAt, d)
	}
	if res := e.postTicket(c.Token); res.status != http.StatusOK {
		t.Fatalf("ticket for the created session: %d %s", res.status, res.body)
	}

	events := e.userEvents("42")
	r = e.request("revoke", `{"session_id":"`+c.SessionID+`","reason":"logout"}`)
	if r.Error != nil || string(r.Data) != `{"revoked":1}` {
		t.Fatalf("revoke: data %s error %+v", r.Data, r.Error)
	}
	// The sockets are told (exactly the session's) ...
	m := nextEvent(t, events)
	if string(m.Data) != `{"type":"session_revoked","data":{"reason":"logout"}}` || m.Header.Get(bus.HeaderSession) != c.SessionID {
		t.Errorf("event %s with %s=%q, want session_revoked for %s", m.Data, bus.HeaderSession, m.Header.Get(bus.HeaderSession), c.SessionID)
	}
	// ... and the session is gone: no new ticket, the redeem check fails.
	if _, err := e.sessions.Lookup(context.Background(), c.SessionID); !errors.Is(err, session.ErrUnknown) {
		t.Errorf("Lookup after revoke: %v, want ErrUnknown", err)
	}
	if res := e.postTicket(c.Token); res.status != http.StatusUnauthorized {
		t.Errorf("ticket after revoke: %d, want 401", res.status)
	}
	// Revoking it again: not found, and nothing published.
	r = e.request("revoke", `{"session_id":"`+c.SessionID+`"}`)
	if r.Error == nil || r.Error.Code != CodeNotFound || r.Status != "404" {
		t.Errorf("second revoke: %+v (status %q), want NOT_FOUND 404", r.Error, r.Status)
	}
	if m, err := events.NextMsg(200 * time.Millisecond); err == nil {
		t.Errorf("a failed revoke published %s", m.Data)
	}
}

func TestSessionServiceRevokeUser(t *testing.T) {
	e := newEnv(t, envOptions{})
	var tokens []string
	var keep session.Session
	for i := range 3 {
		tok, s := e.newSession(7, "Bo")
		tokens = append(tokens, tok)
		if i == 0 {
			keep = s
		}
	}
	_, other := e.newSession(8, "Cy")
	events := e.userEvents("7")
	r := e.request("revoke_user", `{"user_id":7,"except_session_id":"`+keep.ID+`"}`)
	if r.Error != nil || string(r.Data) != `{"revoked":2}` {
		t.Fatalf("revoke_user: data %s error %+v", r.Data, r.Error)
	}
	m := nextEvent(t, events)
	if string(m.Data) != `{"type":"session_revoked","data":{"reason":"logout_all"}}` || m.Header.Get(bus.HeaderExceptSession) != keep.ID {
		t.Errorf("event %s with %s=%q", m.Data, bus.HeaderExceptSession, m.Header.Get(bus.HeaderExceptSession))
	}
	for i, tok := range tokens {
		want := http.StatusUnauthorized
		if i == 0 {
			want = http.StatusOK
		}
		if res := e.postTicket(tok); res.status != want {
			t.Errorf("session %d: ticket %d, want %d", i, res.status, want)
		}
	}
	if _, err := e.sessions.Lookup(context.Background(), other.ID); err != nil {
		t.Errorf("another user's session: %v", err)
	}
}

// Bad requests are refused before any KV work, each with a reason; a typo
// in a field name is refused rather than taken as "no exception".
func TestSessionServiceRefuses(t *testing.T) {
	e := newEnv(t, envOptions{})
	_, s := e.newSession(9, "Di")
	tests := []struct{ op, body, want string }{
		{"revoke", `not json`, "not the expected JSON"},
		{"revoke", `{"session_id":"` + s.ID + `"} {}`, "data after"},
		{"revoke", `{"sesion_id":"` + s.ID + `"}`, "unknown field"},
		{"revoke", `{"session_id":"sess_abc.def"}`, "not a token"},
		{"revoke", `{"session_id":""}`, "session id"},
		{"revoke", `{"session_id":"` + s.ID + `","reason":"` + strings.Repeat("x", 129) + `"}`, "reason"},
		{"revoke_user", `{"user_id":"9"}`, "positive integer"}, // a JSON integer, not a string
		{"revoke_user", `{"user_id":0}`, "positive integer"},
		{"revoke_user", `{"user_id":-9}`, "positive integer"},
		{"revoke_user", `{"user_id":9.5}`, "positive integer"},
		{"revoke_user", `{"user_id":9,"except":"` + s.ID + `"}`, "unknown field"},
		{"revoke_user", `{"user_id":9,"except_session_id":"a b"}`, "except_session_id"},
		{"create", `{"user_id":9,"display_name":"","ttl_seconds":60}`, "display_name"},
		{"create", `{"user_id":9,"display_name":"Di","ttl_seconds":0}`, "ttl_seconds"},
		{"create", `{"user_id":9,"display_name":"Di"}`, "ttl_seconds"},
		{"create", `{"user_id":99999999999999999999,"display_name":"Di","ttl_seconds":60}`, "positive integer"},
		{"create", `{"display_name":"Di","ttl_seconds":60,"token":"x"}`, "unknown field"},
		{"create", `{"user_id":9,"display_name":"Di","ttl_seconds":60,"pad":"` + strings.Repeat("x", maxSessionRequest) + `"}`, "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.op+" "+tt.body[:min(len(tt.body), 40)], func(t *testing.T) {
			r := e.request(tt.op, tt.body)
			if r.Error == nil || r.Error.Code != CodeInvalidRequest || r.Status != "400" || !strings.Contains(r.Error.Message, tt.want) {
				t.Fatalf("reply %+v (status %q), want INVALID_REQUEST 400 containing %q", r.Error, r.Status, tt.want)
			}
		})
	}
	if _, err := e.sessions.Lookup(context.Background(), s.ID); err != nil {
		t.Errorf("the session after refused requests: %v", err)
	}
}

// The service is a NATS micro service: discoverable, in one queue group
// across ticketsvc replicas.
func TestSessionServiceDiscoverable(t *testing.T) {
	e := newEnv(t, envOptions{})
	m, err := e.nc.Request("$SRV.INFO."+SessionServiceName, nil, 5*time.Second)
	if err != nil {
		t.Fatalf("$SRV.INFO: %v", err)
	}
	var info micro.Info
	if err := json.Unmarshal(m.Data, &info); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, ep := range info.Endpoints {
		got[ep.Name] = ep.Subject
		if ep.QueueGroup != micro.DefaultQueueGroup {
			t.Errorf("endpoint %s queue group %q", ep.Name, ep.QueueGroup)
		}
	}
	for _, op := range []string{"create", "revoke", "revoke_user"} {
		if got[op] != "ocvr.svc.sessions."+op {
			t.Errorf("endpoint %s on %q, want ocvr.svc.sessions.%s", op, got[op], op)
		}
	}
}
