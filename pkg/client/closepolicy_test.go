package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/ocvr/realtime/pkg/protocol"
)

// closeVectors reads the close codes of pkg/protocol/testdata/policy.json,
// the vectors the TypeScript client and native SDKs test against too,
// unlisted examples included.
func closeVectors(t *testing.T) []protocol.CloseCodeInfo {
	t.Helper()
	raw, err := os.ReadFile("../protocol/testdata/policy.json")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		CloseCodes []protocol.CloseCodeInfo `json:"close_codes"`
		Unlisted   struct {
			Action   protocol.CloseAction `json:"action"`
			Examples []int                `json:"examples"`
		} `json:"unlisted_close_codes"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	out := v.CloseCodes
	for _, code := range v.Unlisted.Examples {
		out = append(out, protocol.CloseCodeInfo{Code: code, Name: "unlisted", Action: v.Unlisted.Action})
	}
	return out
}

// TestSessionClosePolicy: after every close code of the shared vectors a
// Session does what the policy says — stops with the *CloseError (1000,
// 4003, 4010: the old Session reconnected after 1000 and 4010),
// reconnects with a fresh ticket (4001) until MaxInvalidTickets in a row,
// or reconnects (everything else, codes it does not know included).
func TestSessionClosePolicy(t *testing.T) {
	for _, v := range closeVectors(t) {
		if v.Code == protocol.CloseNoStatus {
			continue // a close frame cannot carry 1005; 1006 is a dropped socket
		}
		t.Run(fmt.Sprintf("%d_%s", v.Code, v.Name), func(t *testing.T) {
			g := newScriptedGateway(t)
			s, err := StartSession(context.Background(), SessionConfig{TicketURLs: []string{okTickets(t)}, WSURLs: []string{g.url},
				Token: "sess_x", Options: Options{Heartbeat: -1}, BaseBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			end := func(c *scriptedConn) {
				if v.Code == protocol.CloseAbnormal {
					_ = c.ws.CloseNow()
					close(c.done)
					return
				}
				c.close(websocket.StatusCode(v.Code))
			}
			closes := 1
			if v.Action == protocol.CloseActionNewTicket {
				closes = protocol.MaxInvalidTickets
			}
			for range closes {
				c := g.next(t)
				if v.Action != protocol.CloseActionNewTicket {
					c.send(readyFrame("", 0, nil))
				}
				end(c)
			}
			switch v.Action {
			case protocol.CloseActionReconnect:
				c := g.next(t)
				c.send(readyFrame("", 0, nil))
				c.close(websocket.StatusNormalClosure)
			default:
				select {
				case <-s.Done():
				case <-time.After(10 * time.Second):
					t.Fatalf("the session did not end after %d", v.Code)
				}
				var ce *CloseError
				if err := s.Err(); !errors.As(err, &ce) || ce.Code != v.Code {
					t.Errorf("Err = %v, want close %d", err, v.Code)
				}
				select {
				case c := <-g.conns:
					t.Errorf("reconnected after %d", v.Code)
					close(c.done)
				case <-time.After(100 * time.Millisecond):
				}
			}
		})
	}
}

// TestSessionConfigChecked: StartSession refuses a config it cannot run
// (the old NewSession panicked on an empty URL list); NewSession gives a
// session that has already ended with the error; a session ends when its
// context does, with ErrStopped and the cause.
func TestSessionConfigChecked(t *testing.T) {
	ok := SessionConfig{TicketURLs: []string{"http://127.0.0.1:1"}, WSURLs: []string{"ws://127.0.0.1:1/v1/ws"}, Token: "sess_x"}
	for name, edit := range map[string]func(*SessionConfig){
		"no ticket URL":     func(c *SessionConfig) { c.TicketURLs = nil },
		"no gateway URL":    func(c *SessionConfig) { c.WSURLs = nil },
		"no token":          func(c *SessionConfig) { c.Token = "" },
		"empty gateway URL": func(c *SessionConfig) { c.WSURLs = []string{""} },
	} {
		t.Run(name, func(t *testing.T) {
			cfg := ok
			edit(&cfg)
			if s, err := StartSession(context.Background(), cfg); err == nil {
				s.Close()
				t.Fatal("StartSession accepted the config")
			}
			s := NewSession(cfg)
			select {
			case <-s.Done():
			default:
				t.Fatal("NewSession's session runs")
			}
			if s.Err() == nil {
				t.Error("NewSession's session has no Err")
			}
			if _, open := <-s.Frames(); open {
				t.Error("Frames is open")
			}
			if err := s.Subscribe(context.Background(), "ch_a"); err == nil {
				t.Error("Subscribe on an ended session succeeded")
			}
			s.Close()
		})
	}
	t.Run("context ends the session", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		s, err := StartSession(ctx, ok)
		if err != nil {
			t.Fatal(err)
		}
		cancel()
		select {
		case <-s.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("the session outlived its context")
		}
		if err := s.Err(); !errors.Is(err, ErrStopped) || !errors.Is(err, context.Canceled) {
			t.Errorf("Err = %v, want ErrStopped with context.Canceled", err)
		}
	})
}
