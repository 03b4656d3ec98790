package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ocvr/realtime/pkg/bus"
	"github.com/ocvr/realtime/pkg/client"
	"github.com/ocvr/realtime/pkg/directory"
	"github.com/ocvr/realtime/pkg/protocol"
	"github.com/ocvr/realtime/pkg/session"
	"github.com/ocvr/realtime/pkg/ticket"
)

// jsonLines decodes stdout as JSON lines: every line one object.
func jsonLines(t *testing.T, r result) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range r.lines() {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("stdout line is not a JSON object: %q (%v)\n%s", l, err, r)
		}
		out = append(out, m)
	}
	return out
}

// TestJSONEveryCommand runs every command that needs only NATS with
// --json: each result line is one JSON object with the fields a script
// needs, and the add/remove confirmations read alike.
func TestJSONEveryCommand(t *testing.T) {
	srv, s := setup(t)
	ctx := context.Background()
	tok, sess, err := s.sessions.Create(ctx, 42, "Ada", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args []string
		want []string // one JSON object per expected line, compared as decoded values
	}{
		{[]string{"channel", "create", "--channel", "ch_j"}, []string{`{"channel_id":"ch_j","exists":true}`}},
		{[]string{"channel", "list"}, []string{`{"channel_id":"ch_j"}`}},
		{[]string{"member", "add", "--channel", "ch_j", "--user", "7"}, []string{`{"channel_id":"ch_j","user_id":7,"member":true}`}},
		{[]string{"member", "add", "--channel", "ch_j", "--user", "3"}, []string{`{"channel_id":"ch_j","user_id":3,"member":true}`}},
		{[]string{"member", "list", "--channel", "ch_j"}, []string{`{"channel_id":"ch_j","user_id":3,"member":true}`, `{"channel_id":"ch_j","user_id":7,"member":true}`}},
		{[]string{"member", "list", "--user", "7"}, []string{`{"channel_id":"ch_j","user_id":7,"member":true}`}},
		{[]string{"member", "remove", "--channel", "ch_j", "--user", "3"}, []string{`{"channel_id":"ch_j","user_id":3,"member":false}`}},
		{[]string{"friend", "add", "--user", "7", "--friend", "9"}, []string{`{"user_id":7,"friend_id":9,"friends":true}`}},
		{[]string{"friend", "add", "--user", "7", "--friend", "8"}, []string{`{"user_id":7,"friend_id":8,"friends":true}`}},
		{[]string{"friend", "list", "--user", "7"}, []string{`{"user_id":7,"friend_id":8,"friends":true}`, `{"user_id":7,"friend_id":9,"friends":true}`}},
		{[]string{"friend", "remove", "--user", "7", "--friend", "8"}, []string{`{"user_id":7,"friend_id":8,"friends":false}`}},
		{[]string{"presence", "set", "--user", "7", "--text", "In the Lobby"}, []string{`{"user_id":7,"status_text":"In the Lobby"}`}},
		{[]string{"presence", "get", "--user", "7"}, []string{`{"user_id":7,"online":false,"status_text":"In the Lobby"}`}},
		{[]string{"session", "list", "--user", "42"}, []string{fmt.Sprintf(`{"session_id":%q,"user_id":42,"display_name":"Ada","created_at":%d,"expires_at":%d}`, sess.ID, sess.CreatedAt.Unix(), sess.ExpiresAt.Unix())}},
		{[]string{"session", "list", "--user", "43"}, nil},
		{[]string{"publish", "message-delete", "--channel", "ch_j", "--id", "m1"}, []string{`{"published":"message_delete","subject":"ocvr.channel.ch_j","id":"m1"}`}},
		{[]string{"publish", "raw", "--user", "7", "--frame", `{"type":"x","data":{}}`, "--core"}, []string{`{"published":"x","subject":"ocvr.user.7","bytes":22}`}},
		{[]string{"validate", "--channel", "ch_j", "--frame", `{"type":"x","data":{}}`}, []string{`{"valid":true,"type":"x","subject":"ocvr.channel.ch_j","bytes":22}`}},
		{[]string{"session", "revoke", "--session", sess.ID}, []string{fmt.Sprintf(`{"revoked":1,"session_id":%q,"reason":"revoked"}`, sess.ID)}},
		{[]string{"channel", "delete", "--channel", "ch_j"}, []string{`{"channel_id":"ch_j","exists":false}`}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			r := ok(t, srv, append([]string{"--json"}, tt.args...)...)
			got := jsonLines(t, r)
			if len(got) != len(tt.want) {
				t.Fatalf("%d lines, want %d:\n%s", len(got), len(tt.want), r)
			}
			for i, w := range tt.want {
				var want map[string]any
				if err := json.Unmarshal([]byte(w), &want); err != nil {
					t.Fatal(err)
				}
				if a, b := fmt.Sprint(got[i]), fmt.Sprint(want); a != b {
					t.Errorf("line %d = %s, want %s", i, a, b)
				}
			}
		})
	}
	_ = tok

	// Commands whose results hold generated values: the fields are there.
	fields := []struct {
		args []string
		keys []string
	}{
		{[]string{"session", "create", "--user", "5", "--name", "Bo"}, []string{"token", "session_id", "user_id", "display_name", "expires_at"}},
		{[]string{"publish", "message-create", "--channel", "ch_k", "--author", "5", "--name", "Bo", "--content", "hi"}, []string{"published", "subject", "id"}},
		{[]string{"notify", "--user", "5", "--type", "t", "--title", "T"}, []string{"published", "subject", "id"}},
		{[]string{"broadcast", "--title", "T"}, []string{"published", "subject", "id"}},
		{[]string{"publish", "raw", "--channel", "ch_k", "--frame", `{"type":"x","data":{}}`}, []string{"published", "subject", "bytes", "stream", "seq"}},
		{[]string{"stream", "info"}, []string{"config", "state"}},
		{[]string{"stream", "ensure"}, []string{"config"}},
		{[]string{"session", "revoke", "--user", "5"}, []string{"revoked", "user_id", "reason"}},
	}
	for _, f := range fields {
		t.Run(strings.Join(f.args, " "), func(t *testing.T) {
			r := ok(t, srv, append(f.args, "--json")...) // a global flag after the command too
			got := jsonLines(t, r)
			if len(got) != 1 {
				t.Fatalf("want one line:\n%s", r)
			}
			for _, k := range f.keys {
				if _, ok := got[0][k]; !ok {
					t.Errorf("no %q in %v", k, got[0])
				}
			}
			if strings.Contains(r.stdout, `"metadata"`) || strings.Contains(r.stdout, "resume") {
				t.Errorf("the stream's metadata (its resume-token key) is printed: %s", r.stdout)
			}
		})
	}

	// A ticket, as JSON.
	tok2, _, err := s.sessions.Create(ctx, 6, "Cy", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	r := ok(t, srv, "--json", "ticket", "mint", "--session", tok2)
	if got := jsonLines(t, r); len(got) != 1 || !strings.HasPrefix(fmt.Sprint(got[0]["ticket"]), "wst_") || got[0]["expires_in"] != float64(30) {
		t.Errorf("ticket mint --json: %s", r)
	}

	// Errors with --json: one JSON line on stderr with the kind and the exit code.
	r = ctl(t, "--json", "--nats-url", srv.ClientURL(), "channel", "delete", "--channel", "ch_none")
	var e struct {
		Error struct {
			Kind    string `json:"kind"`
			Exit    int    `json:"exit"`
			Command string `json:"command"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(r.stderr), &e); err != nil || r.code != exitNotFound || e.Error.Kind != "not_found" || e.Error.Exit != exitNotFound ||
		e.Error.Command != "channel delete" || !strings.Contains(e.Error.Message, "not found") || r.stdout != "" {
		t.Errorf("--json error: %v\n%s", err, r)
	}
	r = ctl(t, "--json", "channel", "create")
	if err := json.Unmarshal([]byte(r.stderr), &e); err != nil || r.code != exitUsage || e.Error.Kind != "usage" {
		t.Errorf("--json usage error: %v\n%s", err, r)
	}
}

// The text confirmations: every command that changes something says so in
// one line (presence set printed nothing before).
func TestConfirmations(t *testing.T) {
	srv, _ := setup(t)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"presence", "set", "--user", "1", "--text", "hi"}, "set the status text of user 1\n"},
		{[]string{"presence", "set", "--user", "1", "--text", ""}, "cleared the status text of user 1\n"},
		{[]string{"channel", "create", "--channel", "ch"}, "created channel ch\n"},
		{[]string{"member", "add", "--channel", "ch", "--user", "2"}, "added user 2 to channel ch\n"},
		{[]string{"member", "list", "--channel", "ch"}, "2\n"},
		{[]string{"member", "list", "--user", "2"}, "ch\n"},
		{[]string{"friend", "add", "--user", "1", "--friend", "2"}, "users 1 and 2 are friends\n"},
		{[]string{"friend", "list", "--user", "2"}, "1\n"},
	} {
		if r := ok(t, srv, tt.args...); r.stdout != tt.want {
			t.Errorf("ocvrctl %s printed %q, want %q", strings.Join(tt.args, " "), r.stdout, tt.want)
		}
	}
	r := ctl(t, "--nats-url", srv.ClientURL(), "member", "list", "--channel", "ch_none")
	if r.code != exitNotFound || !strings.Contains(r.stderr, "channel ch_none: not found") {
		t.Errorf("member list of a missing channel:\n%s", r)
	}
}

func TestSessionListText(t *testing.T) {
	srv, s := setup(t)
	ctx := context.Background()
	var ids []string
	for range 2 {
		_, sess, err := s.sessions.Create(ctx, 11, "Di", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, sess.ID)
	}
	tok, _, err := s.sessions.Create(ctx, 12, "Ed", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.sessions.Revoke(ctx, ids[1], ""); err != nil {
		t.Fatal(err)
	}
	r := ok(t, srv, "session", "list", "--user", "11")
	if l := r.lines(); len(l) != 1 || !strings.HasPrefix(l[0], ids[0]+"\tDi\tcreated ") || !strings.Contains(l[0], "\texpires ") {
		t.Errorf("session list:\n%s", r)
	}
	if strings.Contains(r.stdout, "sess_") || strings.Contains(r.stdout, tok) {
		t.Errorf("a token in the listing: %s", r.stdout)
	}
}

// TestValidate: the gateways' check, without NATS, from a flag or stdin,
// one frame or JSON lines; every subject form a backend publishes on.
func TestValidate(t *testing.T) {
	msg := `{"type":"message_delete","data":{"id":"m","channel_id":"ch_a"}}`
	tests := []struct {
		name   string
		stdin  string
		args   []string
		code   int
		stdout string
	}{
		{"flag", "", []string{"--channel", "ch_a", "--frame", msg}, 0, "valid: message_delete on ocvr.channel.ch_a (63 bytes)\n"},
		{"stdin", msg + "\n", []string{"--channel", "ch_a"}, 0, "valid: message_delete on ocvr.channel.ch_a (63 bytes)\n"},
		{"stdin, pretty", "{\n  \"type\": \"x\",\n  \"data\": {}\n}\n", []string{"--broadcast"}, 0, "valid: x on ocvr.broadcast (31 bytes)\n"},
		{"stream input subject", "", []string{"--subject", "ocvr.in.channel.ch_a", "--frame", msg}, 0, "valid: message_delete on ocvr.in.channel.ch_a (63 bytes)\n"},
		{"another channel", "", []string{"--subject", "ocvr.in.channel.ch_b", "--frame", msg}, exitRefused,
			"refused on ocvr.in.channel.ch_b: invalid event: message_delete: \"channel_id\" \"ch_a\" does not name the subject's channel\n"},
		{"lines", msg + "\n\n" + `{"type":"ready","data":{}}` + "\r\n" + `{"type":"x","data":{}}` + "\n", []string{"--channel", "ch_a", "--lines"}, exitRefused,
			"line 1: valid: message_delete on ocvr.channel.ch_a (63 bytes)\n" +
				"line 3: refused on ocvr.channel.ch_a: invalid event: ready: is a frame the gateway itself sends or receives: never taken from the bus\n" +
				"line 4: valid: x on ocvr.channel.ch_a (22 bytes)\n"},
		{"lines, all valid", msg + "\n" + msg + "\n", []string{"--channel", "ch_a", "--lines"}, 0,
			"line 1: valid: message_delete on ocvr.channel.ch_a (63 bytes)\nline 2: valid: message_delete on ocvr.channel.ch_a (63 bytes)\n"},
		{"too big", `{"type":"x","data":{"b":"` + strings.Repeat("x", protocol.MaxEventSize) + `"}}`, []string{"--user", "1"}, exitRefused, ""},
		{"session_revoked on a user", "", []string{"--user", "1", "--frame", `{"type":"session_revoked","data":{"reason":"x"}}`}, 0, "valid: session_revoked on ocvr.user.1 (48 bytes)\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ctlIn(t, tt.stdin, append([]string{"--nats-url", "nats://127.0.0.1:1", "validate"}, tt.args...)...)
			if r.code != tt.code {
				t.Fatalf("exit %d, want %d:\n%s", r.code, tt.code, r)
			}
			if tt.stdout != "" && r.stdout != tt.stdout {
				t.Errorf("stdout =\n%q\nwant\n%q", r.stdout, tt.stdout)
			}
			if (r.stderr == "") != (tt.code == 0) {
				t.Errorf("stderr %q", r.stderr)
			}
		})
	}
}

// TestPublishRawStdin: the frame comes from standard input, byte for byte
// but for one trailing newline.
func TestPublishRawStdin(t *testing.T) {
	srv, s := setup(t)
	sub := s.subscribe(t, "ocvr.user.7")
	frame := `{"type":"account_update","data":{"plan":"pro"}}`
	r := ctlIn(t, frame+"\n", "--nats-url", srv.ClientURL(), "publish", "raw", "--user", "7")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "published account_update to ocvr.user.7 (47 bytes, stream OCVR_EVENTS seq ") {
		t.Fatalf("publish raw from stdin:\n%s", r)
	}
	if m := next(t, sub); string(m.Data) != frame {
		t.Errorf("published %q, want %q", m.Data, frame)
	}
	r = ctlIn(t, `{"type":"error","data":{}}`, "--nats-url", srv.ClientURL(), "publish", "raw", "--user", "7", "--frame", "-")
	if r.code != exitRefused || r.stdout != "" {
		t.Errorf("a refused frame from stdin:\n%s", r)
	}
	if m, err := nextLive(sub, 300*time.Millisecond); err == nil {
		t.Errorf("a refused frame was published: %s", m.Data)
	}
}

func TestVersion(t *testing.T) {
	r := ctl(t, "--version")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "ocvrctl ") || strings.Count(r.stdout, "\n") != 1 || r.stderr != "" {
		t.Errorf("--version:\n%s", r)
	}
	// No OCVR_VERSION: a deployment's variable of that name changes nothing.
	if r := ctlEnv(t, map[string]string{"OCVR_VERSION": "1.2.3"}, "validate", "--user", "1", "--frame", `{"type":"x","data":{}}`); r.code != 0 {
		t.Errorf("with OCVR_VERSION set:\n%s", r)
	}
	r = ctl(t, "--json", "--version")
	if got := jsonLines(t, r); r.code != 0 || len(got) != 1 || got[0]["go"] == nil || got[0]["version"] == nil {
		t.Errorf("--json --version:\n%s", r)
	}
}

// TestExitCodes: each kind of failure maps to its code, whatever wraps it.
func TestExitCodes(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("ctx: %w", err) }
	tests := []struct {
		err  error
		code int
	}{
		{nil, exitOK},
		{usageErrorf("bad"), exitUsage},
		{wrap(nats.ErrNoServers), exitUnreachable},
		{wrap(nats.ErrTimeout), exitUnreachable},
		{wrap(context.DeadlineExceeded), exitUnreachable},
		{wrap(bus.ErrNoStream), exitUnreachable},
		{wrap(&client.HTTPError{Status: http.StatusServiceUnavailable}), exitUnreachable},
		{wrap(session.ErrNotFound), exitNotFound},
		{wrap(directory.ErrNotFound), exitNotFound},
		{wrap(jetstream.ErrStreamNotFound), exitNotFound},
		{wrap(jetstream.ErrBucketNotFound), exitNotFound},
		{wrap(session.ErrUnknown), exitRefused},
		{wrap(session.ErrExpired), exitRefused},
		{wrap(ticket.ErrExpired), exitRefused},
		{wrap(protocol.ErrInvalidEvent), exitRefused},
		{wrap(nats.ErrPermissionViolation), exitRefused},
		{wrap(nats.ErrAuthorization), exitRefused},
		{withKind(errUnreachable, wrap(nats.ErrAuthorization)), exitRefused}, // "cannot reach NATS" because it refused us
		{wrap(&client.HTTPError{Status: http.StatusUnauthorized}), exitRefused},
		{wrap(&client.CloseError{Code: protocol.CloseSessionRevoked}), exitRefused},
		{wrap(&jetstream.APIError{Code: 400, Description: "bad"}), exitRefused},
		{wrap(&client.CloseError{Code: 1011}), exitRuntime},
		{errors.New("something else"), exitRuntime},
	}
	for _, tt := range tests {
		if got, _ := exitCode(tt.err); got != tt.code {
			t.Errorf("exitCode(%v) = %d, want %d", tt.err, got, tt.code)
		}
	}
}

// TestPublishTargeting: the targeting flags of the publish commands become
// the bus headers the gateways filter on; bad values never reach NATS.
func TestPublishTargeting(t *testing.T) {
	srv, s := setup(t)
	sub := s.subscribe(t, "ocvr.>")
	tests := []struct {
		args    []string
		headers map[string]string
	}{
		{[]string{"publish", "message-create", "--channel", "ch", "--author", "1", "--name", "A", "--content", "c", "--except-session", "ses_phone"},
			map[string]string{bus.HeaderExceptSession: "ses_phone"}},
		{[]string{"publish", "message-delete", "--channel", "ch", "--id", "m", "--core", "--only-sessions", "ses_a, ses_b"},
			map[string]string{bus.HeaderSession: "ses_a,ses_b"}},
		{[]string{"notify", "--user", "7", "--type", "t", "--title", "T", "--exclude-user", "7", "--except-session", "ses_x"},
			map[string]string{bus.HeaderExcludeUser: "7", bus.HeaderExceptSession: "ses_x"}},
		{[]string{"publish", "raw", "--user", "7", "--frame", `{"type":"x","data":{}}`, "--only-sessions", "ses_c"},
			map[string]string{bus.HeaderSession: "ses_c"}},
		{[]string{"publish", "message-update", "--channel", "ch", "--id", "m", "--content", "c"}, map[string]string{}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			ok(t, srv, tt.args...)
			m := next(t, sub)
			for _, h := range []string{bus.HeaderExceptSession, bus.HeaderSession, bus.HeaderExcludeUser} {
				if got := m.Header.Get(h); got != tt.headers[h] {
					t.Errorf("%s = %q, want %q", h, got, tt.headers[h])
				}
			}
		})
	}
	for _, bad := range [][]string{
		{"publish", "message-delete", "--channel", "ch", "--id", "m", "--except-session", "sess_a.b"},
		{"publish", "message-delete", "--channel", "ch", "--id", "m", "--only-sessions", "ses_a,a*b"},
		{"publish", "message-delete", "--channel", "ch", "--id", "m", "--only-sessions", " , "},
		{"notify", "--user", "7", "--type", "t", "--title", "T", "--exclude-user", "0"},
		{"publish", "raw", "--broadcast", "--frame", `{"type":"x","data":{}}`, "--except-session", "ses_a"},
	} {
		if r := ctl(t, append([]string{"--nats-url", srv.ClientURL()}, bad...)...); r.code != exitUsage {
			t.Errorf("ocvrctl %s:\n%s", strings.Join(bad, " "), r)
		}
	}
	if m, err := nextLive(sub, 200*time.Millisecond); err == nil {
		t.Errorf("a refused command published %s %s", m.Subject, m.Data)
	}
}
