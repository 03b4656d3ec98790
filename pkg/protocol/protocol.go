// Package protocol holds the OCVR WebSocket protocol: the frame envelope, a
// typed payload for every client→server and server→client frame, the error
// and close codes, and the id validation every NATS subject depends on.
//
// gateway/README.md is the prose reference for client developers; this
// package is the single source of truth the gateway, the Go client and the
// backend SDK share.
package protocol

import (
	"encoding/json"
	"strconv"
)

// Frame is the envelope of every frame in both directions:
// {"type":"…","data":{…}}. Data stays raw so a frame can be routed by type
// before its payload is decoded; it is absent for types that carry nothing.
type Frame struct {
	Type string          `json:"type"`
	Data json.RawMessage `json:"data,omitempty"`
}

// Client → server frame types (the seed document).
const (
	TypeHeartbeat   = "heartbeat"
	TypeSubscribe   = "subscribe"
	TypeUnsubscribe = "unsubscribe"
	TypeTyping      = "typing"
)

// Server → client frame types. The seed's types come first, then our
// extensions (ready, subscribed, unsubscribed).
const (
	TypeHeartbeatAck   = "heartbeat_ack"
	TypeMessageCreate  = "message_create"
	TypeMessageUpdate  = "message_update"
	TypeMessageDelete  = "message_delete"
	TypeTypingStart    = "typing_start"
	TypePresenceUpdate = "presence_update"
	TypeNotification   = "notification"
	TypeSessionRevoked = "session_revoked"
	TypeError          = "error"

	TypeReady        = "ready"
	TypeSubscribed   = "subscribed"
	TypeUnsubscribed = "unsubscribed"
)

// Error codes carried by an error frame. Only CodeInvalidTicket ends the
// connection; the others leave it open. What a client does about each:
// gateway/README.md "Error codes", and RetryableError.
const (
	CodeInvalidTicket        = "INVALID_TICKET"
	CodeNotSubscribed        = "NOT_SUBSCRIBED"
	CodeChannelNotFound      = "CHANNEL_NOT_FOUND"
	CodeNotMember            = "NOT_MEMBER"
	CodeInvalidMessage       = "INVALID_MESSAGE"
	CodeRateLimited          = "RATE_LIMITED"
	CodeTooManySubscriptions = "TOO_MANY_SUBSCRIPTIONS"
	// CodeUnavailable: the gateway could not reach its backplane (the bus
	// or its KV stores) to serve the request; the same request may succeed
	// a moment later (extension).
	CodeUnavailable = "UNAVAILABLE"
)

// ErrorCodes lists every error code the gateway sends, for docs, metrics
// and tests.
var ErrorCodes = []string{
	CodeInvalidTicket, CodeNotSubscribed, CodeChannelNotFound, CodeNotMember,
	CodeInvalidMessage, CodeRateLimited, CodeTooManySubscriptions, CodeUnavailable,
}

// WebSocket close codes the gateway uses.
const (
	CloseNormal           = 1000
	CloseGoingAway        = 1001
	CloseNoStatus         = 1005 // the peer's close frame carried no code (never sent)
	CloseAbnormal         = 1006 // the socket ended without a close frame (never sent)
	CloseMessageTooBig    = 1009
	CloseInternalError    = 1011
	CloseServiceRestart   = 1012 // draining: reconnect elsewhere after a jittered delay
	CloseTryAgainLater    = 1013 // pod at its hard connection cap
	CloseInvalidTicket    = 4001
	CloseSessionRevoked   = 4003
	CloseHeartbeatTimeout = 4004
	CloseRateLimited      = 4008
	CloseSlowConsumer     = 4009
	CloseTooManyConns     = 4010 // per-user connection cap exceeded
)

// Unsubscribe reasons carried by an unsubscribed frame.
const (
	ReasonClient  = "client"
	ReasonRemoved = "removed"
	ReasonDeleted = "deleted"
)

// Presence values of a presence_update.
const (
	PresenceOnline  = "online"
	PresenceOffline = "offline"
)

// --- client → server payloads ---

// ChannelRef is the payload of subscribe, unsubscribe and typing.
type ChannelRef struct {
	ChannelID string `json:"channel_id"`
	// Seq, on a subscribe only, is the cursor to resume the channel from
	// (continuity, DESIGN.md §2a).
	Seq *uint64 `json:"seq,omitempty"`
}

// --- server → client payloads ---

// Ready is sent once after a successful upgrade (extension).
type Ready struct {
	ConnectionID      string `json:"connection_id"`
	UserID            int64  `json:"user_id"`
	SessionID         string `json:"session_id"`
	HeartbeatInterval int64  `json:"heartbeat_interval"` // milliseconds
	ServerTime        int64  `json:"server_time"`        // unix seconds
	// Continuity (DESIGN.md §2a): the token to present on a reconnect
	// (GET /v1/ws?ticket=…&resume=<token>&seq=<cursor>), the user
	// subject's cursor to keep until a user event carries a newer one, and
	// — on a connection that asked to resume — whether the user events
	// missed meanwhile follow (true) or the app must refetch (false).
	ResumeToken string `json:"resume_token,omitempty"`
	Seq         uint64 `json:"seq,omitempty"`
	Resumed     *bool  `json:"resumed,omitempty"`
}

// HeartbeatAck answers a heartbeat.
type HeartbeatAck struct {
	ServerTime int64 `json:"server_time"` // unix seconds
}

// Author is the author of a chat message.
type Author struct {
	ID          int64  `json:"id"`
	DisplayName string `json:"display_name"`
}

// MessageCreate is a new chat message in a channel.
type MessageCreate struct {
	ID        string `json:"id"`
	ChannelID string `json:"channel_id"`
	Author    Author `json:"author"`
	Content   string `json:"content"`
	CreatedAt int64  `json:"created_at"` // unix seconds
	// Attachments are the backend's own objects, passed through as they
	// are; nil is sent as [] (the document always shows the array).
	Attachments []json.RawMessage `json:"attachments"`
}

// MarshalJSON sends nil Attachments as [] rather than null.
func (m MessageCreate) MarshalJSON() ([]byte, error) {
	type plain MessageCreate // no MarshalJSON: no recursion
	if m.Attachments == nil {
		m.Attachments = []json.RawMessage{}
	}
	return json.Marshal(plain(m))
}

// MessageUpdate is an edit of a chat message.
type MessageUpdate struct {
	ID        string `json:"id"`
	ChannelID string `json:"channel_id"`
	Content   string `json:"content"`
	EditedAt  int64  `json:"edited_at"` // unix seconds
}

// MessageDelete removes a chat message.
type MessageDelete struct {
	ID        string `json:"id"`
	ChannelID string `json:"channel_id"`
}

// TypingStart tells a channel's subscribers that a user is typing.
type TypingStart struct {
	ChannelID   string `json:"channel_id"`
	UserID      int64  `json:"user_id"`
	DisplayName string `json:"display_name"`
}

// PresenceUpdate tells a user that a friend went online or offline, or
// changed their status text.
type PresenceUpdate struct {
	UserID     int64  `json:"user_id"`
	Presence   string `json:"presence"`
	StatusText string `json:"status_text"`
}

// Notification is a user-targeted notification.
type Notification struct {
	ID        string `json:"id"`
	Type      string `json:"type"` // the notification's kind, e.g. "friend_request"
	Title     string `json:"title"`
	Body      string `json:"body"`
	CreatedAt int64  `json:"created_at"` // unix seconds
	// Data is the kind's own object (e.g. {"from_user_id":456}), passed
	// through as it is; nil is sent as {} (the document always shows it).
	Data json.RawMessage `json:"data"`
}

// MarshalJSON sends a nil Data as {} rather than null.
func (n Notification) MarshalJSON() ([]byte, error) {
	type plain Notification // no MarshalJSON: no recursion
	if n.Data == nil {
		n.Data = json.RawMessage("{}")
	}
	return json.Marshal(plain(n))
}

// SessionRevoked is delivered before the server closes the socket with 4003.
type SessionRevoked struct {
	Reason string `json:"reason"`
}

// Error is the payload of an error frame. ChannelID is set when the error is
// about a channel.
type Error struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	ChannelID string `json:"channel_id,omitempty"`
}

// Subscribed acknowledges a subscribe: events published after it are
// delivered (extension).
type Subscribed struct {
	ChannelID string `json:"channel_id"`
	// Continuity (DESIGN.md §2a): the channel's cursor to keep until an
	// event of the channel carries a newer one, and — for a subscribe that
	// asked to resume from a cursor — whether the events missed since it
	// follow (true) or the app must refetch (false).
	Seq     uint64 `json:"seq,omitempty"`
	Resumed *bool  `json:"resumed,omitempty"`
}

// Unsubscribed acknowledges an unsubscribe or tells the client the server
// ended a subscription (extension).
type Unsubscribed struct {
	ChannelID string `json:"channel_id"`
	Reason    string `json:"reason"`
}

// Encode builds the wire bytes of a frame of type typ with payload data
// (nil for none).
func Encode(typ string, data any) ([]byte, error) {
	f := struct {
		Type string `json:"type"`
		Data any    `json:"data,omitempty"`
	}{Type: typ, Data: data}
	return json.Marshal(f)
}

// MustEncode is Encode for payloads that cannot fail to marshal (the types
// of this package).
func MustEncode(typ string, data any) []byte {
	b, err := Encode(typ, data)
	if err != nil {
		panic("protocol: encode " + typ + ": " + err.Error())
	}
	return b
}

// Positioned returns frame (a bus event's bytes, a JSON object) with its
// stream position added as top-level fields: `"channel_id"` for a channel
// event (empty for a user event) and `"seq"`. The backend's bytes, `data`
// included, are kept as they are; a client written from the document
// ignores the extra fields (DESIGN.md §2a).
func Positioned(frame []byte, channelID string, seq uint64) []byte {
	end := len(frame)
	for end > 0 && (frame[end-1] == ' ' || frame[end-1] == '\n' || frame[end-1] == '\r' || frame[end-1] == '\t') {
		end--
	}
	if end == 0 || frame[end-1] != '}' {
		return frame // not an object: ValidateEvent refuses it before this
	}
	out := make([]byte, 0, end+len(channelID)+40)
	out = append(out, frame[:end-1]...)
	if channelID != "" {
		out = append(out, `,"channel_id":"`...)
		out = append(out, channelID...) // a valid id needs no escaping
		out = append(out, '"')
	}
	out = append(out, `,"seq":`...)
	out = strconv.AppendUint(out, seq, 10)
	return append(out, '}')
}
