package client

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/ocvr/realtime/pkg/protocol"
)

// fakeGateway accepts one socket, writes frames in order and then waits
// for the client to close.
func fakeGateway(t *testing.T, frames ...string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		for _, f := range frames {
			if err := ws.Write(r.Context(), websocket.MessageText, []byte(f)); err != nil {
				return
			}
		}
		_, _, _ = ws.Read(r.Context()) // until the client goes
	}))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http") + "/v1/ws"
}

// TestUnknownEventTypesDelivered: the client hands every frame to the
// caller, event types it does not know included (the platform adds event
// types without a client release), byte for byte; times are unix seconds.
func TestUnknownEventTypesDelivered(t *testing.T) {
	frames := []string{
		`{"type":"ready","data":{"connection_id":"conn_9mX2aQ7vLk1pRt4s","user_id":12345,"session_id":"ses_Qk3v8TnY1pLx2mZa","heartbeat_interval":30000,"server_time":1703523600}}`,
		`{"type":"channel_update","data":{"channel_id":"ch_abc123","name":"General","topic":"Welcome!"}}`,
		`{"type":"friend_request_accepted","data":{"user_id":456,"display_name":"User123","accepted_at":1703523700},"extra":[1,2]}`,
		`{"type":"heartbeat_ack","data":{"server_time":1703523600}}`,
		`{"type":"no_data_yet"}`,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, fakeGateway(t, frames...), "wst_x", Options{Heartbeat: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if c.Ready.ServerTime != 1703523600 || c.Ready.HeartbeatInterval != 30000 || c.Ready.UserID != 12345 {
		t.Errorf("ready = %+v", c.Ready)
	}
	if string(c.ReadyFrame().Raw) != frames[0] {
		t.Errorf("ready frame = %s", c.ReadyFrame().Raw)
	}
	want := []struct{ typ, data string }{
		{"channel_update", `{"channel_id":"ch_abc123","name":"General","topic":"Welcome!"}`},
		{"friend_request_accepted", `{"user_id":456,"display_name":"User123","accepted_at":1703523700}`},
		{protocol.TypeHeartbeatAck, `{"server_time":1703523600}`},
		{"no_data_yet", ``},
	}
	for i, w := range want {
		f, err := c.Next(ctx)
		if err != nil {
			t.Fatalf("frame %d: %v", i+1, err)
		}
		if f.Type != w.typ || string(f.Data) != w.data || string(f.Raw) != frames[i+1] {
			t.Errorf("frame %d = {%q, %s, %s}, want {%q, %s, %s}", i+1, f.Type, f.Data, f.Raw, w.typ, w.data, frames[i+1])
		}
	}
	var ack protocol.HeartbeatAck
	if err := (Frame{Type: protocol.TypeHeartbeatAck, Data: []byte(want[2].data)}).Decode(&ack); err != nil || ack.ServerTime != 1703523600 {
		t.Errorf("heartbeat_ack = %+v, %v", ack, err)
	}
	if err := c.Err(); err != nil {
		t.Errorf("the connection ended: %v", err)
	}
}
