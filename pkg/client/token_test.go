package client

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestTokenFuncAskedAgainAfterEach401: a 401 asks TokenFunc again at once
// each time a refused token follows an attempt that failed for another
// reason (the second 401 in a row ends the session, not the second in its
// life): tokens old, new (the gateway refuses: 1013), old again, new — the
// session connects.
func TestTokenFuncAskedAgainAfterEach401(t *testing.T) {
	tickets := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer sess_new" {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":{"code":"UNAUTHORIZED","message":"expired"}}`))
			return
		}
		_, _ = w.Write([]byte(`{"data":{"ticket":"wst_abcdefghijklmnopqrstuvwxyz012345","expires_in":30}}`))
	}))
	t.Cleanup(tickets.Close)
	g := newScriptedGateway(t)
	tokens := []string{"sess_old", "sess_new", "sess_old", "sess_new"}
	var calls atomic.Int32
	s, err := StartSession(context.Background(), SessionConfig{TicketURLs: []string{tickets.URL}, WSURLs: []string{g.url},
		Options: Options{Heartbeat: -1}, BaseBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond,
		TokenFunc: func(context.Context) (string, error) {
			i := int(calls.Add(1)) - 1
			return tokens[min(i, len(tokens)-1)], nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	g.next(t).close(websocket.StatusTryAgainLater)
	c := g.next(t)
	c.send(readyFrame("", 0, nil))
	waitReady(t, s)
	if n := calls.Load(); n != 4 {
		t.Errorf("TokenFunc called %d times, want 4", n)
	}
	c.close(websocket.StatusNormalClosure)
}
