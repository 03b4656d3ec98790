package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ocvr/realtime/pkg/bus"
	"github.com/ocvr/realtime/pkg/directory"
	"github.com/ocvr/realtime/pkg/natsembed"
	"github.com/ocvr/realtime/pkg/protocol"
	"github.com/ocvr/realtime/pkg/stream"
)

type demoEnv struct {
	t   *testing.T
	srv *httptest.Server
	nc  *nats.Conn
	ds  *demoServer
}

func newDemoEnv(t *testing.T) *demoEnv {
	t.Helper()
	ns := natsembed.Test(t)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	ctx := context.Background()
	dir, err := directory.Open(ctx, nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := dir.CreateChannel(ctx, demoChannel); err != nil {
		t.Fatal(err)
	}
	if err := dir.AddFriend(ctx, 1, 2); err != nil {
		t.Fatal(err)
	}
	// The event stream, as the devstack makes sure of before the demo
	// page publishes.
	if err := provisionStream(ctx, ns.ClientURL()); err != nil {
		t.Fatal(err)
	}
	static := t.TempDir()
	if err := os.MkdirAll(filepath.Join(static, "demo"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(static, "demo", "index.html"), []byte("<h1>demo</h1>"), 0o644); err != nil {
		t.Fatal(err)
	}
	ds, err := newDemoServer(ctx, static, nc, demoConfig{TicketURL: "http://127.0.0.1:8080", WSURLs: []string{"ws://127.0.0.1:8081/v1/ws"}, Users: []demoUser{{1, "Alice"}, {2, "Bob"}}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(ds.routes())
	t.Cleanup(srv.Close)
	return &demoEnv{t: t, srv: srv, nc: nc, ds: ds}
}

// do sends a request and decodes a JSON answer into out (if not nil).
func (e *demoEnv) do(method, path, token string, body any, header map[string]string, out any) int {
	e.t.Helper()
	var rd *bytes.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, _ := http.NewRequest(method, e.srv.URL+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			e.t.Fatalf("%s %s: decode: %v", method, path, err)
		}
	}
	return resp.StatusCode
}

func (e *demoEnv) signIn(id int64, name string) signInResponse {
	e.t.Helper()
	var r signInResponse
	if code := e.do("POST", "/demo-api/sign-in", "", signInRequest{UserID: id, DisplayName: name}, nil, &r); code != 200 {
		e.t.Fatalf("sign-in: HTTP %d", code)
	}
	return r
}

func TestDemoServerRefusesNonLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", "192.0.2.1:8090", ":8090"} {
		if _, err := startDemo(context.Background(), addr, t.TempDir(), nil, demoConfig{}); err == nil || !strings.Contains(err.Error(), "loopback") {
			t.Errorf("startDemo(%q) = %v, want a loopback-only error", addr, err)
		}
	}
}

func TestDemoSignInSendPokeSignOut(t *testing.T) {
	e := newDemoEnv(t)
	ctx := context.Background()

	var cfg demoConfig
	if code := e.do("GET", "/demo-api/config", "", nil, nil, &cfg); code != 200 || cfg.TicketURL != "http://127.0.0.1:8080" || len(cfg.Users) != 2 {
		t.Fatalf("config: HTTP %d %+v", code, cfg)
	}

	alice := e.signIn(1, "Alice")
	if !strings.HasPrefix(alice.Token, "sess_") || alice.UserID != 1 || alice.DisplayName != "Alice" {
		t.Fatalf("sign-in: %+v", alice)
	}
	if len(alice.Channels) != 1 || alice.Channels[0] != demoChannel {
		t.Errorf("channels = %v, want [%s] (joined at sign-in)", alice.Channels, demoChannel)
	}
	if len(alice.Friends) != 1 || alice.Friends[0].UserID != 2 || alice.Friends[0].DisplayName != "Bob" || alice.Friends[0].Online {
		t.Errorf("friends = %+v", alice.Friends)
	}
	if _, err := e.ds.sessions.Verify(ctx, alice.Token); err != nil {
		t.Fatalf("the token does not verify: %v", err)
	}

	// Sending publishes message_create to the channel subject, authored by the session's user.
	sub, err := e.nc.SubscribeSync("ocvr.channel." + demoChannel)
	if err != nil {
		t.Fatal(err)
	}
	userSub, err := e.nc.SubscribeSync("ocvr.user.2")
	if err != nil {
		t.Fatal(err)
	}
	_ = e.nc.Flush()
	if code := e.do("POST", "/demo-api/messages", alice.Token, sendRequest{ChannelID: demoChannel, Content: " hi Bob "}, nil, nil); code != 200 {
		t.Fatalf("send: HTTP %d", code)
	}
	msg, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Type string                 `json:"type"`
		Data protocol.MessageCreate `json:"data"`
	}
	if err := json.Unmarshal(msg.Data, &f); err != nil {
		t.Fatal(err)
	}
	if f.Type != protocol.TypeMessageCreate || f.Data.Content != "hi Bob" || f.Data.Author != (protocol.Author{ID: 1, DisplayName: "Alice"}) || !strings.HasPrefix(f.Data.ID, "msg_") {
		t.Errorf("published %s", msg.Data)
	}
	if msg.Header.Get(bus.HeaderPublishedAt) == "" {
		t.Errorf("no %s header", bus.HeaderPublishedAt)
	}
	// Through the event stream: it carries its position.
	if _, ok := stream.PositionOf(msg.Header, stream.DefaultName); !ok {
		t.Errorf("message_create without a position: headers %v", msg.Header)
	}
	// The document's types: created_at in unix seconds, attachments an array.
	checkUnixNow(t, f.Data.CreatedAt)
	if !bytes.Contains(msg.Data, []byte(`,"attachments":[]}}`)) {
		t.Errorf("published %s: want \"attachments\":[]", msg.Data)
	}
	if _, err := protocol.ValidateEvent(protocol.ScopeChannel, demoChannel, msg.Data); err != nil {
		t.Errorf("a gateway would refuse %s: %v", msg.Data, err)
	}

	// Errors: no session, not a member, bad input.
	if code := e.do("POST", "/demo-api/messages", "sess_nope", sendRequest{ChannelID: demoChannel, Content: "x"}, nil, nil); code != 401 {
		t.Errorf("send with a bad token: HTTP %d, want 401", code)
	}
	if err := e.ds.direct.CreateChannel(ctx, "ch_private"); err != nil {
		t.Fatal(err)
	}
	if code := e.do("POST", "/demo-api/messages", alice.Token, sendRequest{ChannelID: "ch_private", Content: "x"}, nil, nil); code != 403 {
		t.Errorf("send to a channel of others: HTTP %d, want 403", code)
	}
	if code := e.do("POST", "/demo-api/messages", alice.Token, sendRequest{ChannelID: "ch.bad", Content: "x"}, nil, nil); code != 400 {
		t.Errorf("send to a bad channel id: HTTP %d, want 400", code)
	}
	if code := e.do("POST", "/demo-api/sign-in", "", signInRequest{UserID: 0, DisplayName: "x"}, nil, nil); code != 400 {
		t.Errorf("sign-in as user 0: HTTP %d, want 400", code)
	}

	// Poke: a notification on the friend's user subject.
	if code := e.do("POST", "/demo-api/poke", alice.Token, pokeRequest{UserID: 2}, nil, nil); code != 200 {
		t.Fatalf("poke: HTTP %d", code)
	}
	n, err := userSub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var nf struct {
		Type string                `json:"type"`
		Data protocol.Notification `json:"data"`
	}
	if err := json.Unmarshal(n.Data, &nf); err != nil {
		t.Fatal(err)
	}
	if nf.Type != protocol.TypeNotification || nf.Data.Title != "Alice poked you" || string(nf.Data.Data) != `{"from_user_id":1}` {
		t.Errorf("poke published %s", n.Data)
	}
	checkUnixNow(t, nf.Data.CreatedAt)
	if _, err := protocol.ValidateEvent(protocol.ScopeUser, "", n.Data); err != nil {
		t.Errorf("a gateway would refuse %s: %v", n.Data, err)
	}

	// Sign-out revokes the session.
	if code := e.do("POST", "/demo-api/sign-out", alice.Token, nil, nil, nil); code != 204 {
		t.Fatalf("sign-out: HTTP %d", code)
	}
	if _, err := e.ds.sessions.Verify(ctx, alice.Token); err == nil {
		t.Error("the session still verifies after sign-out")
	}
	if code := e.do("GET", "/demo-api/friends", alice.Token, nil, nil, nil); code != 401 {
		t.Errorf("friends after sign-out: HTTP %d, want 401", code)
	}
}

func TestDemoServerOriginAndStatic(t *testing.T) {
	e := newDemoEnv(t)
	if code := e.do("POST", "/demo-api/sign-in", "", signInRequest{UserID: 1, DisplayName: "Alice"}, map[string]string{"Origin": "https://evil.example"}, nil); code != 403 {
		t.Errorf("cross-origin sign-in: HTTP %d, want 403", code)
	}
	if code := e.do("POST", "/demo-api/sign-in", "", signInRequest{UserID: 1, DisplayName: "Alice"}, map[string]string{"Origin": e.srv.URL}, nil); code != 200 {
		t.Errorf("same-origin sign-in: HTTP %d, want 200", code)
	}
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Get(e.srv.URL + "/?ws=ws://x/v1/ws")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/demo/?ws=ws://x/v1/ws" {
		t.Errorf("/ → %d %q, want a redirect to /demo/ keeping the query", resp.StatusCode, resp.Header.Get("Location"))
	}
	if code := e.do("GET", "/demo/", "", nil, nil, nil); code != 200 {
		t.Errorf("/demo/: HTTP %d", code)
	}
	resp, err = http.Get(e.srv.URL + "/dist/index.js")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("/dist/index.js of an unbuilt client: HTTP %d, want 404 with a hint", resp.StatusCode)
	}
	if code := e.do("GET", "/go.mod", "", nil, nil, nil); code != 404 {
		t.Errorf("/go.mod: HTTP %d: only demo/ and dist/ are served", code)
	}
}

// checkUnixNow fails unless ts is the current time in unix seconds.
func checkUnixNow(t *testing.T, ts int64) {
	t.Helper()
	if d := time.Now().Unix() - ts; d < -60 || d > 60 {
		t.Errorf("timestamp %d is not now in unix seconds", ts)
	}
}

// TestProvisionStream: the devstack creates the default event stream when
// no gateway made one, and keeps the one the gateways made (whatever its
// name) instead of adding a second stream on the same subjects.
func TestProvisionStream(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name     string
		existing string // a stream the gateways made ("" none)
	}{
		{"none", ""},
		{"the gateways'", "DEV_EVENTS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := natsembed.Test(t)
			nc, err := nats.Connect(ns.ClientURL())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(nc.Close)
			if tc.existing != "" {
				if _, err := stream.Ensure(ctx, nc, stream.Config{Name: tc.existing, Window: 30 * time.Second}); err != nil {
					t.Fatal(err)
				}
			}
			for range 2 { // idempotent
				if err := provisionStream(ctx, ns.ClientURL()); err != nil {
					t.Fatal(err)
				}
			}
			js, err := jetstream.New(nc)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for n := range js.StreamNames(ctx).Name() {
				if !strings.HasPrefix(n, "KV_") {
					names = append(names, n)
				}
			}
			want := tc.existing
			if want == "" {
				want = stream.DefaultName
			}
			if len(names) != 1 || names[0] != want {
				t.Errorf("streams %v, want only %s", names, want)
			}
		})
	}
}
