package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/ocvr/realtime/pkg/protocol"
)

// secret has the form of a real ticket, so every redaction path is
// exercised (the ticket parameter and the bare wst_ token).
const secret = "wst_c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2U"

// messages lists every string an error exposes: its message in each
// format a logger might use, and every message and URL in its chain.
func messages(err error) []string {
	if err == nil {
		return nil
	}
	out := []string{err.Error(), fmt.Sprintf("%v", err), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)}
	if ue, ok := err.(*url.Error); ok {
		out = append(out, ue.URL)
	}
	switch e := err.(type) {
	case interface{ Unwrap() error }:
		out = append(out, messages(e.Unwrap())...)
	case interface{ Unwrap() []error }:
		for _, c := range e.Unwrap() {
			out = append(out, messages(c)...)
		}
	}
	return out
}

func refusedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// silentAddr accepts TCP connections and never answers: the dial times out.
func silentAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { // owner: this test; exits when the listener closes
		defer close(done)
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

// httpServer answers every request with status and a body quoting the
// request URL, as proxies' error pages do.
func httpServer(t *testing.T, status int) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(status)
		fmt.Fprintf(w, "upstream failed for %s", r.URL)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// refusingGateway completes the upgrade, then refuses the ticket as the
// gateway does: an INVALID_TICKET error frame and close 4001.
func refusingGateway(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		_ = ws.Write(r.Context(), websocket.MessageText,
			[]byte(`{"type":"error","data":{"code":"INVALID_TICKET","message":"The ticket is invalid, expired or already used."}}`))
		_ = ws.Close(protocol.CloseInvalidTicket, "invalid ticket")
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// ticketService answers the ticket request with body.
func ticketService(t *testing.T, status int, body string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestConnectFailuresNeverShowTheTicket: every way a connect can fail, for
// Dial, DialLite, Connect and Session; no error string holds the ticket.
func TestConnectFailuresNeverShowTheTicket(t *testing.T) {
	type dialer func(ctx context.Context, wsURL, ticket string) error
	dialers := map[string]dialer{
		"Dial": func(ctx context.Context, wsURL, ticket string) error {
			c, err := Dial(ctx, wsURL, ticket, Options{Heartbeat: -1})
			if err == nil {
				c.CloseNow()
			}
			return err
		},
		"DialLite": func(ctx context.Context, wsURL, ticket string) error {
			l, err := DialLite(ctx, wsURL, ticket, LiteOptions{})
			if err == nil {
				// The refusal arrives as an error frame, then the close.
				for i := 0; i < 5 && err == nil; i++ {
					_, err = l.ReadText()
				}
				l.CloseNow()
			}
			return err
		},
	}
	// Redaction keeps what callers branch on: the close code, the
	// context's deadline, the network error.
	isClose4001 := func(err error) bool {
		var ce *CloseError
		return errors.As(err, &ce) && ce.Code == protocol.CloseInvalidTicket
	}
	isNetError := func(err error) bool {
		var ne net.Error
		return errors.As(err, &ne)
	}
	isTimeout := func(err error) bool {
		var ne net.Error
		return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
	}
	cases := []struct {
		name  string
		url   func(t *testing.T) string
		inURL bool             // the ticket is in the URL the caller passes
		kind  func(error) bool // what the error must still be, if anything
	}{
		{"refused port", func(t *testing.T) string { return "ws://" + refusedAddr(t) + "/v1/ws" }, false, isNetError},
		{"4001 bad ticket", func(t *testing.T) string { return "ws://" + refusingGateway(t) + "/v1/ws" }, false, isClose4001},
		{"HTTP 500 instead of upgrade", func(t *testing.T) string { return "ws://" + httpServer(t, 500) + "/v1/ws" }, false, nil},
		{"HTTP 404 instead of upgrade", func(t *testing.T) string { return "ws://" + httpServer(t, 404) + "/v1/ws" }, false, nil},
		{"unresolvable host", func(t *testing.T) string { return "ws://gateway.ocvr.invalid/v1/ws" }, false, isNetError},
		{"no answer (timeout)", func(t *testing.T) string { return "ws://" + silentAddr(t) + "/v1/ws" }, false, isTimeout},
		{"malformed URL", func(t *testing.T) string { return "ws://127.0.0.1:80:80/v1/ws" }, false, nil},
		{"ticket already in the URL", func(t *testing.T) string { return "ws://" + refusedAddr(t) + "/v1/ws?ticket=" + secret }, true, isNetError},
		{"wrong scheme, ticket in the URL", func(t *testing.T) string { return "ftp://127.0.0.1/v1/ws?ticket=" + secret }, true, nil},
	}
	for name, dial := range dialers {
		for _, tc := range cases {
			t.Run(name+"/"+tc.name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				ticket := secret
				if tc.inURL {
					ticket = ""
				}
				err := dial(ctx, tc.url(t), ticket)
				if err == nil {
					t.Fatal("connect succeeded")
				}
				for _, m := range messages(err) {
					if strings.Contains(m, secret) || strings.Contains(m, secret[4:]) {
						t.Errorf("the ticket leaks in %q", m)
					}
				}
				if tc.kind != nil && !tc.kind(err) {
					t.Errorf("redaction lost what the error is: %#v", err)
				}
				t.Logf("%v", err)
			})
		}
	}

	t.Run("Connect/ticket in a malformed ticketsvc answer", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		base := ticketService(t, 200, `{"data":{"tickets":"`+secret+`"}}`)
		_, err := Connect(ctx, base, "ws://"+refusedAddr(t)+"/v1/ws", "sess_x", Options{Heartbeat: -1})
		if err == nil {
			t.Fatal("connect succeeded")
		}
		for _, m := range messages(err) {
			if strings.Contains(m, secret) {
				t.Errorf("the ticket leaks in %q", m)
			}
		}
	})
	t.Run("Connect/valid ticket, gateway down", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		base := ticketService(t, 200, `{"data":{"ticket":"`+secret+`","expires_in":30}}`)
		_, err := Connect(ctx, base, "ws://"+refusedAddr(t)+"/v1/ws", "sess_x", Options{Heartbeat: -1})
		if err == nil {
			t.Fatal("connect succeeded")
		}
		for _, m := range messages(err) {
			if strings.Contains(m, secret) {
				t.Errorf("the ticket leaks in %q", m)
			}
		}
	})
	t.Run("Session/repeated 4001", func(t *testing.T) {
		base := ticketService(t, 200, `{"data":{"ticket":"`+secret+`","expires_in":30}}`)
		s := NewSession(SessionConfig{
			TicketURLs: []string{base}, WSURLs: []string{"ws://" + refusingGateway(t) + "/v1/ws"},
			Token: "sess_x", Options: Options{Heartbeat: -1},
			BaseBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond,
		})
		defer s.Close()
		select {
		case <-s.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("session did not give up after repeated 4001")
		}
		for _, m := range messages(s.Err()) {
			if strings.Contains(m, secret) {
				t.Errorf("the ticket leaks in %q", m)
			}
		}
	})
}
