package client

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// echoGateway upgrades (checking the ticket arrived in the query), sends
// ready, then echoes each text frame back with a ping before it, and closes
// with code 4004 on "bye".
func echoGateway(t *testing.T, ticket string, pongs *atomic.Int32) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("ticket") != ticket {
			http.Error(w, "no ticket", http.StatusBadRequest)
			return
		}
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		ws.SetReadLimit(1 << 20)
		ctx := r.Context()
		if err := ws.Write(ctx, websocket.MessageText, []byte(`{"type":"ready"}`)); err != nil {
			return
		}
		for {
			_, b, err := ws.Read(ctx)
			if err != nil {
				return
			}
			if string(b) == "bye" {
				_ = ws.Close(4004, "heartbeat timeout")
				return
			}
			// The pong is read by this loop's next Read; the client
			// answers the ping within ReadText. (An expired Ping context
			// would close the socket: let it run to the pong.)
			go func() { // owner: this handler; exits with the pong or the socket's end
				pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				defer cancel()
				if err := ws.Ping(pctx); err == nil {
					pongs.Add(1)
				}
			}()
			if err := ws.Write(ctx, websocket.MessageText, append([]byte("echo:"), b...)); err != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http") + "/v1/ws"
}

func TestLite(t *testing.T) {
	const ticket = "wst_lite"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var pongs atomic.Int32
	l, err := DialLite(ctx, echoGateway(t, ticket, &pongs), ticket, LiteOptions{ReadBuffer: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer l.CloseNow()
	if b, err := l.ReadText(); err != nil || string(b) != `{"type":"ready"}` {
		t.Fatalf("first frame = %q, %v", b, err)
	}
	// Frames of every length encoding: 7-bit, 16-bit and 64-bit lengths.
	for _, n := range []int{0, 125, 126, 65535, 65536, 200 << 10} {
		msg := strings.Repeat("x", n)
		if err := l.WriteText([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		b, err := l.ReadText()
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		if string(b) != "echo:"+msg {
			t.Fatalf("%d bytes: echo of %d bytes", n, len(b))
		}
	}
	// Pings are answered inside ReadText: after the next echo has been
	// read, every earlier ping was (the server reads the pongs while it
	// waits for the next frame).
	if err := l.WriteText([]byte("ping?")); err != nil {
		t.Fatal(err)
	}
	if _, err := l.ReadText(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for pongs.Load() < 6 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := pongs.Load(); n < 6 {
		t.Fatalf("%d pongs, want at least 6", n)
	}
	if err := l.WriteText([]byte("bye")); err != nil {
		t.Fatal(err)
	}
	_, err = l.ReadText()
	var ce *CloseError
	if !errors.As(err, &ce) || ce.Code != 4004 || ce.Reason != "heartbeat timeout" {
		t.Fatalf("after bye: %v, want close 4004", err)
	}
}
