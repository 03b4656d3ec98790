package gateway_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go"

	"github.com/ocvr/realtime/pkg/bus"
	"github.com/ocvr/realtime/pkg/client"
	"github.com/ocvr/realtime/pkg/protocol"
)

// backend is a publisher on its own NATS connection, as a real backend
// would be: nothing it publishes is ordered with the gateway's own traffic.
func (e *env) backend() (*nats.Conn, *bus.Publisher) {
	e.t.Helper()
	nc, err := nats.Connect(e.backendURL)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(nc.Close)
	sub, _ := bus.NewSubjects("")
	return nc, bus.NewPublisher(nc, sub)
}

// msg is a message_create on ch with id and sequence number n in its content.
func msg(ch string, n int) protocol.MessageCreate {
	return protocol.MessageCreate{
		ID:        "msg_" + strconv.Itoa(n),
		ChannelID: ch,
		Author:    protocol.Author{ID: 99, DisplayName: "Bot"},
		Content:   strconv.Itoa(n),
		CreatedAt: 1767225600,
	}
}

func mustNoErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// subscribe subscribes c to ch and waits for subscribed.
func subscribe(t *testing.T, c *client.Conn, ch string) {
	t.Helper()
	mustNoErr(t, c.Subscribe(context.Background(), ch))
	f := expect(t, c, protocol.TypeSubscribed)
	var s protocol.Subscribed
	mustNoErr(t, f.Decode(&s))
	if s.ChannelID != ch {
		t.Fatalf("subscribed %+v, want channel %s", s, ch)
	}
}

// expectError returns the next frame, which must be an error with code and
// (when channelID is not "-") that channel_id.
func expectError(t *testing.T, c *client.Conn, code, channelID string) protocol.Error {
	t.Helper()
	f := expect(t, c, protocol.TypeError)
	var pe protocol.Error
	mustNoErr(t, f.Decode(&pe))
	if pe.Code != code {
		t.Fatalf("error %s, want code %s", f.Raw, code)
	}
	if channelID != "-" && pe.ChannelID != channelID {
		t.Fatalf("error %s, want channel_id %q", f.Raw, channelID)
	}
	if pe.Message == "" {
		t.Fatalf("error %s has no message", f.Raw)
	}
	return pe
}

// alive proves the connection still works: heartbeat → heartbeat_ack.
func alive(t *testing.T, c *client.Conn) {
	t.Helper()
	mustNoErr(t, c.Heartbeat(context.Background()))
	f := expect(t, c, protocol.TypeHeartbeatAck)
	var a protocol.HeartbeatAck
	mustNoErr(t, f.Decode(&a))
	if a.ServerTime <= 0 {
		t.Fatalf("heartbeat_ack %s", f.Raw)
	}
}

// closed reads frames until the connection ends and returns them and the
// close error, which must carry code.
func closed(t *testing.T, c *client.Conn, code int, within time.Duration) ([]client.Frame, *client.CloseError) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	var frames []client.Frame
	for {
		f, err := c.Next(ctx)
		if err == nil {
			frames = append(frames, f)
			continue
		}
		var ce *client.CloseError
		if !errors.As(err, &ce) {
			t.Fatalf("connection ended with %v after %d frames, want close %d", err, len(frames), code)
		}
		if ce.Code != code {
			t.Fatalf("closed with %d (%s), want %d", ce.Code, ce.Reason, code)
		}
		return frames, ce
	}
}

// rawDial opens a socket with coder/websocket directly (no protocol client).
func (e *env) rawDial(t *testing.T, query string, h http.Header) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	u := e.wsURL
	if query != "" {
		u += "?" + query
	}
	ws, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPHeader: h})
	if ws != nil {
		t.Cleanup(func() { ws.CloseNow() })
	}
	return ws, resp, err
}

// rawReady dials with a fresh ticket and reads the ready frame.
func (e *env) rawReady(t *testing.T, u user) *websocket.Conn {
	t.Helper()
	ws, _, err := e.rawDial(t, "ticket="+e.ticket(u), nil)
	mustNoErr(t, err)
	if typ := rawRead(t, ws).Type; typ != protocol.TypeReady {
		t.Fatalf("first frame %s, want ready", typ)
	}
	return ws
}

// rawRead reads one frame from a raw socket.
func rawRead(t *testing.T, ws *websocket.Conn) protocol.Frame {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	typ, b, err := ws.Read(ctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if typ != websocket.MessageText {
		t.Fatalf("server sent a %v frame", typ)
	}
	var f protocol.Frame
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("server frame %q: %v", b, err)
	}
	return f
}

// rawClose reads until the socket ends and returns the close status.
func rawClose(t *testing.T, ws *websocket.Conn) websocket.StatusCode {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		if _, _, err := ws.Read(ctx); err != nil {
			return websocket.CloseStatus(err)
		}
	}
}

// metrics scrapes /metrics into "name{labels}" → value.
func (e *env) metrics() map[string]float64 {
	e.t.Helper()
	rec := httptest.NewRecorder()
	e.g.AdminHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		e.t.Fatalf("/metrics: %d", rec.Code)
	}
	return parseMetrics(e.t, rec.Body)
}

func parseMetrics(t testing.TB, r io.Reader) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// metric returns one series of /metrics (0 when absent).
func (e *env) metric(series string) float64 { return e.metrics()[series] }

func label(name, k, v string) string { return fmt.Sprintf("%s{%s=%q}", name, k, v) }

type clientConn = client.Conn

// samePositioned reports whether raw is want as published plus the position
// the gateway adds to an event of the stream (continuity: top-level
// channel_id for a channel's events, and seq); it returns the seq.
func samePositioned(raw, want []byte, channelID string) (uint64, bool) {
	i := bytes.LastIndex(raw, []byte(`,"seq":`))
	if i < 0 || len(raw) == 0 || raw[len(raw)-1] != '}' {
		return 0, false
	}
	seq, err := strconv.ParseUint(string(raw[i+len(`,"seq":`):len(raw)-1]), 10, 64)
	if err != nil {
		return 0, false
	}
	return seq, bytes.Equal(raw, protocol.Positioned(want, channelID, seq))
}

func positionedOK(raw, want []byte, channelID string) bool {
	_, ok := samePositioned(raw, want, channelID)
	return ok
}
