package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"
)

// IDPattern is the one grammar of the platform's string ids: channel ids,
// session ids (ses_…), the pod names in presence keys and the tokens of a
// subject prefix. Only such strings may become a NATS subject token or a
// KV key token: no dots, wildcards or spaces.
const IDPattern = "^[A-Za-z0-9_-]{1,64}$"

// MaxIDLen is the longest valid id.
const MaxIDLen = 64

// MaxChannelIDLen is the longest valid channel id.
const MaxChannelIDLen = MaxIDLen

// MaxEventSize bounds a bus payload the gateway will deliver: every byte is
// queued once per target connection, so a huge event is refused, not fanned out.
const MaxEventSize = 64 << 10

// ValidID reports whether id matches IDPattern, ^[A-Za-z0-9_-]{1,64}$.
func ValidID(id string) bool {
	if len(id) == 0 || len(id) > MaxIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// ValidChannelID reports whether id is a valid channel id (IDPattern).
func ValidChannelID(id string) bool { return ValidID(id) }

// ValidSessionID reports whether id is a valid session id (IDPattern): the
// public id of a session (ses_…), never its bearer token. It travels in bus
// headers and KV keys.
func ValidSessionID(id string) bool { return ValidID(id) }

// ValidUserID reports whether id is a valid user id (a positive int64).
func ValidUserID(id int64) bool { return id > 0 }

// ParseUserID parses a decimal user id as found in subjects, headers and
// flags, refusing signs, leading zeros, spaces and overflow.
func ParseUserID(s string) (int64, error) {
	id, ok := parseUserID(s)
	if !ok {
		return 0, fmt.Errorf("invalid user id %q: want a positive 64-bit integer", s)
	}
	return id, nil
}

// parseUserID parses the canonical decimal form of a positive int64 (also a
// JSON number's raw bytes) without allocating.
func parseUserID[T ~string | ~[]byte](s T) (int64, bool) {
	if len(s) == 0 || len(s) > 19 || s[0] == '0' {
		return 0, false
	}
	var id uint64
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		id = id*10 + uint64(s[i]-'0') // 19 digits cannot overflow a uint64
	}
	if id > math.MaxInt64 {
		return 0, false
	}
	return int64(id), true
}

// ErrInvalidChannelID is returned for a channel id that fails ValidChannelID.
var ErrInvalidChannelID = errors.New("invalid channel id: want " + IDPattern)

// ErrInvalidUserID is returned for a user id that is not a positive int64.
var ErrInvalidUserID = errors.New("invalid user id: want a positive integer")

// CheckChannelID returns ErrInvalidChannelID (wrapped with the id) when id is
// not a valid channel id.
func CheckChannelID(id string) error {
	if !ValidChannelID(id) {
		return fmt.Errorf("%w (got %q)", ErrInvalidChannelID, truncate(id, 80))
	}
	return nil
}

// CheckUserID returns ErrInvalidUserID when id is not positive.
func CheckUserID(id int64) error {
	if !ValidUserID(id) {
		return fmt.Errorf("%w (got %d)", ErrInvalidUserID, id)
	}
	return nil
}

// ProtocolError is a client mistake answered with an error frame. It is the
// only kind of error DecodeClientFrame returns.
type ProtocolError struct {
	Code      string
	Message   string
	ChannelID string // set when the error is about a (valid) channel id
}

func (e *ProtocolError) Error() string { return e.Code + ": " + e.Message }

// Frame returns the wire bytes of the error frame for e.
func (e *ProtocolError) Frame() []byte {
	return MustEncode(TypeError, Error{Code: e.Code, Message: e.Message, ChannelID: e.ChannelID})
}

// ClientFrame is a decoded, validated client → server frame.
type ClientFrame struct {
	Type      string // one of TypeHeartbeat, TypeSubscribe, TypeUnsubscribe, TypeTyping
	ChannelID string // valid channel id for subscribe, unsubscribe and typing
	// Seq is a subscribe's optional "data.seq": the cursor to resume the
	// channel from (DESIGN.md §2a); HasSeq says it was given.
	Seq    uint64
	HasSeq bool
}

func invalid(format string, args ...any) *ProtocolError {
	return &ProtocolError{Code: CodeInvalidMessage, Message: fmt.Sprintf(format, args...)}
}

// DecodeClientFrame decodes one text frame from a client. Every input yields
// either a valid ClientFrame or a *ProtocolError with code INVALID_MESSAGE
// and a message that says precisely what is wrong.
func DecodeClientFrame(b []byte) (ClientFrame, *ProtocolError) {
	if !utf8.Valid(b) {
		return ClientFrame{}, invalid("frame is not valid UTF-8")
	}
	trimmed := bytes.TrimSpace(b)
	if len(trimmed) == 0 {
		return ClientFrame{}, invalid("empty frame")
	}
	var env struct {
		Type *json.RawMessage `json:"type"`
		Data json.RawMessage  `json:"data"`
	}
	err := json.Unmarshal(b, &env)
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se):
		return ClientFrame{}, invalid("frame is not valid JSON: syntax error at offset %d", se.Offset)
	case err != nil || trimmed[0] != '{':
		// A JSON array, string, number, boolean or null.
		return ClientFrame{}, invalid("frame is not a JSON object")
	}
	if env.Type == nil {
		return ClientFrame{}, invalid(`missing "type"`)
	}
	var typ string
	if err := json.Unmarshal(*env.Type, &typ); err != nil {
		return ClientFrame{}, invalid(`"type" must be a string`)
	}
	switch typ {
	case TypeHeartbeat:
		return ClientFrame{Type: typ}, nil
	case TypeSubscribe, TypeUnsubscribe, TypeTyping:
		ch, perr := decodeChannelRef(typ, env.Data)
		if perr != nil {
			return ClientFrame{}, perr
		}
		f := ClientFrame{Type: typ, ChannelID: ch}
		if typ == TypeSubscribe {
			f.Seq, f.HasSeq, perr = decodeSeq(env.Data)
			if perr != nil {
				return ClientFrame{}, perr
			}
		}
		return f, nil
	default:
		return ClientFrame{}, invalid("unknown frame type %q", truncate(typ, 64))
	}
}

func decodeChannelRef(typ string, data json.RawMessage) (string, *ProtocolError) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || bytes.Equal(data, []byte("null")) {
		return "", invalid(`%s needs "data":{"channel_id":"…"}`, typ)
	}
	if data[0] != '{' {
		return "", invalid(`%s: "data" must be an object`, typ)
	}
	var ref struct {
		ChannelID *json.RawMessage `json:"channel_id"`
	}
	if err := json.Unmarshal(data, &ref); err != nil {
		return "", invalid(`%s: "data" is malformed: %s`, typ, jsonProblem(err))
	}
	if ref.ChannelID == nil || bytes.Equal(*ref.ChannelID, []byte("null")) {
		return "", invalid(`%s: missing "data.channel_id"`, typ)
	}
	var ch string
	if err := json.Unmarshal(*ref.ChannelID, &ch); err != nil {
		return "", invalid(`%s: "data.channel_id" must be a string`, typ)
	}
	if !ValidChannelID(ch) {
		return "", invalid(`%s: "data.channel_id" must match %s`, typ, IDPattern)
	}
	return ch, nil
}

// decodeSeq reads a subscribe's optional "data.seq": a non-negative
// integer (a stream sequence).
func decodeSeq(data json.RawMessage) (uint64, bool, *ProtocolError) {
	var ref struct {
		Seq *json.RawMessage `json:"seq"`
	}
	if err := json.Unmarshal(data, &ref); err != nil || ref.Seq == nil || bytes.Equal(*ref.Seq, []byte("null")) {
		return 0, false, nil // malformed data was reported by decodeChannelRef
	}
	seq, err := strconv.ParseUint(string(*ref.Seq), 10, 64)
	if err != nil {
		return 0, false, &ProtocolError{Code: CodeInvalidMessage, Message: `subscribe: "data.seq" must be a non-negative integer`}
	}
	return seq, true, nil
}

func jsonProblem(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("syntax error at offset %d", se.Offset)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return "expected an object"
	}
	return "malformed JSON"
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
