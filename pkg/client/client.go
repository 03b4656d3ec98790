// Package client is a Go client for the OCVR WebSocket protocol: it gets a
// ticket from ticketsvc, connects to a gateway, sends typed frames,
// heartbeats on its own and surfaces close codes as errors that say whether
// to reconnect. Tests, ocvrctl connect, bots and the load generator use it.
//
// Every frame the server sends is delivered, in order and byte for byte
// (Frame.Raw), including event types this package does not know: the
// platform adds event types without a gateway or client release, so switch
// on Frame.Type and ignore what you do not handle. Times in frames are unix
// seconds (server_time, created_at, edited_at); ready's heartbeat_interval
// is in milliseconds.
//
// # Sessions and channels
//
// StartSession starts a Session: a connection that reconnects on its own
// and stops where protocol.CloseActionOf says (1000 from the server, 4003,
// 4010, repeated 4001, ticketsvc's 401). Session.Subscribe waits for the
// gateway's answer — subscribed, a refusal (*SubscribeError with the
// server's code; the channel leaves the session), or a timeout — and
// Session.Subscription reports each channel's state.
//
// # Continuity
//
// Channel and user events a backend publishes through the event stream
// carry their position (gateway/README.md "Continuity: resuming without
// loss"): Frame.Seq, and Frame.ChannelID for a channel's events. A Session
// keeps the resume token of its newest ready and one cursor per
// subscription (the user's own events, and each channel), resumes from them
// on every reconnect — a lost connection, a drain (1012), any pod — and
// drops the duplicates a resume or a reconnect can bring (an event at or
// below its subscription's cursor). What each reconnect achieved is told in
// band, on the frame where the app needs it: the ready frame of every
// connection and the subscribed frame of every channel carry a
// *Continuity; Continuity.Lost means events of that subscription may have
// been missed — refetch its state from the backend, then apply the events
// that follow. Session.State and SessionConfig.Resume carry the token and
// cursors across a process restart.
package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/ocvr/realtime/pkg/protocol"
	"github.com/ocvr/realtime/pkg/redact"
)

// HTTPError is a non-200 answer of ticketsvc.
type HTTPError struct {
	Status     int
	Code       string // the JSON error code, e.g. UNAUTHORIZED
	Message    string
	RetryAfter time.Duration // Retry-After (429, 503), capped at MaxRetryAfter; 0 without one
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("ticket request: HTTP %d %s: %s", e.Status, e.Code, e.Message)
}

// GetTicket asks ticketsvc at baseURL (e.g. http://127.0.0.1:8080) for a
// connect ticket with the bearer session token. Its errors never hold a
// ticket, a session token or URL credentials (pkg/redact).
func GetTicket(ctx context.Context, hc *http.Client, baseURL, token string) (string, error) {
	t, err := getTicket(ctx, hc, baseURL, token)
	return t, redact.Error(err)
}

func getTicket(ctx context.Context, hc *http.Client, baseURL, token string) (string, error) {
	if hc == nil {
		hc = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(baseURL, "/")+"/v1/auth/ws-ticket", nil)
	if err != nil {
		return "", fmt.Errorf("ticket request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("ticket request: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "", fmt.Errorf("ticket request: read body: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		_ = json.Unmarshal(body, &e)
		return "", &HTTPError{Status: resp.StatusCode, Code: e.Error.Code, Message: e.Error.Message,
			RetryAfter: headerRetryAfter(resp.Header, time.Now())}
	}
	var ok struct {
		Data struct {
			Ticket string `json:"ticket"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &ok); err != nil || ok.Data.Ticket == "" {
		return "", fmt.Errorf("ticket request: unexpected body %q", truncate(string(body), 200))
	}
	return ok.Data.Ticket, nil
}

// CloseError is how the server ended the connection.
type CloseError struct {
	Code   int
	Reason string
	// Err is the last error frame received before the close, if any
	// (INVALID_TICKET before 4001).
	Err *protocol.Error
	// RetryAfter is the hint of the reason's retry_after=<seconds> token
	// (the gateway's 1013: "pod at connection limit; retry_after=2"),
	// capped at MaxRetryAfter; 0 without one.
	RetryAfter time.Duration
}

func (e *CloseError) Error() string {
	s := fmt.Sprintf("connection closed with %d", e.Code)
	if e.Reason != "" {
		s += " (" + e.Reason + ")"
	}
	if e.Err != nil {
		s += ": " + e.Err.Code
	}
	return s
}

// Reconnect reports whether a client should reconnect after this close.
func (e *CloseError) Reconnect() bool { return protocol.ShouldReconnect(e.Code) }

// Frame is a frame received from the server, of any type (known or not).
type Frame struct {
	Type string
	Data json.RawMessage
	Raw  []byte // the exact bytes received

	// Seq is the event's position, its top-level "seq" (0: the frame has
	// none, e.g. typing_start, presence_update, or any event published
	// without the stream). ChannelID is the top-level "channel_id" of a
	// positioned channel event: the subscription the position belongs to;
	// "" for the user's own events (and for frames without Seq).
	Seq       uint64
	ChannelID string

	// Continuity is set by a Session on the ready frame of each connection
	// and on the subscribed frame of each of its channels; nil otherwise
	// (and always on a Conn's frames).
	Continuity *Continuity
}

// Decode decodes the frame's data into v.
func (f Frame) Decode(v any) error {
	if err := json.Unmarshal(f.Data, v); err != nil {
		return fmt.Errorf("decode %s: %w", f.Type, err)
	}
	return nil
}

// Options tune Dial.
type Options struct {
	HTTPClient *http.Client
	Header     http.Header // e.g. Origin
	// Heartbeat is the heartbeat period: 0 uses the server's advertised
	// interval, a negative value disables heartbeats.
	Heartbeat time.Duration
	// Buffer is how many received frames may wait for Next (default 1024).
	// When it is full the client stops reading the socket, as a slow
	// consumer would.
	Buffer int
	// ResumeToken, when set, asks the gateway to resume the user's events
	// from ResumeSeq (GET /v1/ws?ticket=…&resume=<token>&seq=<cursor>);
	// the ready's Resumed says whether it did. A Session sets both itself
	// and ignores these.
	ResumeToken string
	ResumeSeq   uint64
	// NoCompression stops the client offering permessage-deflate. By
	// default it offers it without context takeover (no compressor or
	// window kept between messages); a gateway with compression on then
	// sends its larger frames compressed, which the client inflates.
	NoCompression bool
}

// Conn is an open protocol connection.
type Conn struct {
	ws         *websocket.Conn
	Ready      protocol.Ready
	readyFrame Frame

	frames   chan Frame
	done     chan struct{}
	quit     chan struct{} // closed by Close: the reader stops waiting for Next
	quitOnce sync.Once

	mu      sync.Mutex
	err     error // why the connection ended
	lastErr *protocol.Error
}

// Dial opens a socket to wsURL (ws://host:port/v1/ws) with ticket and waits
// for the ready frame. A refused ticket returns a *CloseError with Code 4001.
// Its errors never hold the ticket: the socket library quotes the whole URL,
// ?ticket= included, in its dial errors, and callers log them (pkg/redact);
// nor Options.ResumeToken.
func Dial(ctx context.Context, wsURL, ticket string, opts Options) (*Conn, error) {
	c, err := dial(ctx, wsURL, ticket, opts)
	return c, redact.Error(err) // tickets and resume tokens (rt1_…, resume=) masked
}

func dial(ctx context.Context, wsURL, ticket string, opts Options) (*Conn, error) {
	u := wsURL
	if ticket != "" {
		sep := "?"
		if strings.Contains(u, "?") {
			sep = "&"
		}
		u += sep + "ticket=" + url.QueryEscape(ticket)
	}
	if opts.ResumeToken != "" {
		sep := "?"
		if strings.Contains(u, "?") {
			sep = "&"
		}
		u += sep + "resume=" + url.QueryEscape(opts.ResumeToken) + "&seq=" + strconv.FormatUint(opts.ResumeSeq, 10)
	}
	mode := websocket.CompressionNoContextTakeover
	if opts.NoCompression {
		mode = websocket.CompressionDisabled
	}
	ws, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: opts.HTTPClient, HTTPHeader: opts.Header, CompressionMode: mode})
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			// A refusal before the upgrade (429, 503 with Retry-After):
			// typed, so that a Session honours its hint.
			return nil, &UpgradeError{Status: resp.StatusCode, RetryAfter: headerRetryAfter(resp.Header, time.Now())}
		}
		return nil, fmt.Errorf("dial gateway: %w", err)
	}
	ws.SetReadLimit(protocol.MaxEventSize + 1024)
	if opts.Buffer <= 0 {
		opts.Buffer = 1024
	}
	c := &Conn{ws: ws, frames: make(chan Frame, opts.Buffer), done: make(chan struct{}), quit: make(chan struct{})}
	go c.readLoop()
	f, err := c.Next(ctx)
	if err != nil {
		ws.CloseNow()
		return nil, err
	}
	if f.Type == protocol.TypeError {
		// A refused connect: the error frame, then the close (4001).
		select {
		case <-c.done:
			if err := c.Err(); err != nil {
				return nil, err
			}
		case <-ctx.Done():
		}
		ws.CloseNow()
		return nil, fmt.Errorf("dial gateway: refused: %s", f.Raw)
	}
	if f.Type != protocol.TypeReady {
		ws.CloseNow()
		return nil, fmt.Errorf("dial gateway: expected ready, got %s", f.Type)
	}
	if err := f.Decode(&c.Ready); err != nil {
		ws.CloseNow()
		return nil, err
	}
	c.readyFrame = f
	hb := opts.Heartbeat
	if hb == 0 {
		hb = time.Duration(c.Ready.HeartbeatInterval) * time.Millisecond
	}
	if hb > 0 {
		go c.heartbeat(hb)
	}
	return c, nil
}

// ReadyFrame is the ready frame the connection started with.
func (c *Conn) ReadyFrame() Frame { return c.readyFrame }

// Connect gets a ticket from ticketsvc and dials the gateway.
func Connect(ctx context.Context, ticketURL, wsURL, token string, opts Options) (*Conn, error) {
	t, err := GetTicket(ctx, opts.HTTPClient, ticketURL, token)
	if err != nil {
		return nil, err
	}
	return Dial(ctx, wsURL, t, opts)
}

func (c *Conn) readLoop() {
	defer close(c.done)
	defer close(c.frames)
	for {
		_, b, err := c.ws.Read(context.Background())
		if err != nil {
			c.finish(err)
			return
		}
		var env envelope
		if err := json.Unmarshal(b, &env); err != nil {
			c.finish(fmt.Errorf("server sent an invalid frame: %w", err))
			c.ws.CloseNow()
			return
		}
		if env.Type == protocol.TypeError {
			var e protocol.Error
			if json.Unmarshal(env.Data, &e) == nil {
				c.mu.Lock()
				c.lastErr = &e
				c.mu.Unlock()
			}
		}
		f := Frame{Type: env.Type, Data: env.Data, Raw: b}
		f.Seq, f.ChannelID = env.position()
		select {
		case c.frames <- f:
		case <-c.quit:
			c.finish(errors.New("closed by client"))
			return
		}
	}
}

// envelope is a received frame's top level: the protocol envelope and the
// continuity fields of a positioned event. The position is read leniently:
// a frame whose seq is not a positive integer has none.
type envelope struct {
	Type      string          `json:"type"`
	Data      json.RawMessage `json:"data,omitempty"`
	Seq       json.RawMessage `json:"seq"`
	ChannelID json.RawMessage `json:"channel_id"`
}

func (e *envelope) position() (uint64, string) {
	if len(e.Seq) == 0 {
		return 0, ""
	}
	seq, err := strconv.ParseUint(string(e.Seq), 10, 64)
	if err != nil || seq == 0 {
		return 0, ""
	}
	var ch string
	if len(e.ChannelID) > 0 && json.Unmarshal(e.ChannelID, &ch) != nil {
		return 0, "" // a position of no subscription we can name
	}
	return seq, ch
}

func (c *Conn) finish(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return
	}
	if code := websocket.CloseStatus(err); code != -1 {
		var ce websocket.CloseError
		errors.As(err, &ce)
		c.err = &CloseError{Code: int(code), Reason: ce.Reason, Err: c.lastErr, RetryAfter: ReasonRetryAfter(ce.Reason)}
		return
	}
	c.err = redact.Error(fmt.Errorf("connection lost: %w", err))
}

// Err is why the connection ended (a *CloseError when the server closed it),
// or nil while it is open.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Done is closed when the connection has ended and every frame was read.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Next returns the next frame, or the connection's end error once every
// received frame has been returned.
func (c *Conn) Next(ctx context.Context) (Frame, error) {
	select {
	case f, ok := <-c.frames:
		if !ok {
			return Frame{}, c.Err()
		}
		return f, nil
	case <-ctx.Done():
		return Frame{}, ctx.Err()
	}
}

// Frames is the channel of received frames; it is closed when the
// connection ends.
func (c *Conn) Frames() <-chan Frame { return c.frames }

// Send sends a frame of type typ with payload data (nil for none).
func (c *Conn) Send(ctx context.Context, typ string, data any) error {
	b, err := protocol.Encode(typ, data)
	if err != nil {
		return err
	}
	return c.SendRaw(ctx, b)
}

// SendRaw sends b as one text frame, unchecked.
func (c *Conn) SendRaw(ctx context.Context, b []byte) error {
	if err := c.ws.Write(ctx, websocket.MessageText, b); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	return nil
}

// Subscribe sends subscribe; the answer (subscribed or an error) arrives
// as a frame.
func (c *Conn) Subscribe(ctx context.Context, channelID string) error {
	return c.Send(ctx, protocol.TypeSubscribe, protocol.ChannelRef{ChannelID: channelID})
}

// SubscribeFrom sends subscribe with a cursor: on a connection that
// presented a valid resume token (Options.ResumeToken) the gateway resumes
// the channel from seq, and its subscribed says whether it did.
func (c *Conn) SubscribeFrom(ctx context.Context, channelID string, seq uint64) error {
	return c.Send(ctx, protocol.TypeSubscribe, subscribeFrom{ChannelID: channelID, Seq: seq})
}

type subscribeFrom struct {
	ChannelID string `json:"channel_id"`
	Seq       uint64 `json:"seq"`
}

// Unsubscribe sends unsubscribe.
func (c *Conn) Unsubscribe(ctx context.Context, channelID string) error {
	return c.Send(ctx, protocol.TypeUnsubscribe, protocol.ChannelRef{ChannelID: channelID})
}

// Typing sends typing.
func (c *Conn) Typing(ctx context.Context, channelID string) error {
	return c.Send(ctx, protocol.TypeTyping, protocol.ChannelRef{ChannelID: channelID})
}

// Heartbeat sends heartbeat.
func (c *Conn) Heartbeat(ctx context.Context) error {
	return c.Send(ctx, protocol.TypeHeartbeat, nil)
}

func (c *Conn) heartbeat(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), every)
			err := c.Heartbeat(ctx)
			cancel()
			if err != nil {
				return
			}
		}
	}
}

// Close closes the connection normally (1000).
func (c *Conn) Close() error {
	c.quitOnce.Do(func() { close(c.quit) })
	err := c.ws.Close(websocket.StatusNormalClosure, "bye")
	<-c.done
	return err
}

// CloseNow drops the connection without a close handshake.
func (c *Conn) CloseNow() {
	c.quitOnce.Do(func() { close(c.quit) })
	c.ws.CloseNow()
	<-c.done
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
