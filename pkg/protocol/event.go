package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Scope says on which kind of bus subject an event was published.
type Scope int

// Bus subject scopes.
const (
	ScopeChannel Scope = iota + 1
	ScopeUser
	ScopeBroadcast
)

// ErrInvalidEvent is wrapped by every ValidateEvent error.
var ErrInvalidEvent = errors.New("invalid event")

// ValidateEvent checks a bus payload before it is delivered to clients and
// returns its type. Backends own their payloads; the gateway routes them,
// so it checks only what routing and safety need (pkg/README.md, "What the
// gateway checks"):
//
//   - at most MaxEventSize bytes of valid UTF-8 JSON;
//   - an object with a non-empty string "type" and an object "data", no
//     routing key repeated or in another case;
//   - not a type the gateway itself speaks (ready, heartbeat_ack, error,
//     subscribed, unsubscribed, and every client → server type);
//   - session_revoked only on a user subject;
//   - on a channel subject, a data.channel_id, where there is one, names
//     the subject's channel (channelID);
//   - presence_update has a positive integer user_id and a presence of
//     "online" or "offline".
//
// Everything else passes through byte for byte, including event types the
// gateway does not know. The payload is read in one pass.
func ValidateEvent(scope Scope, channelID string, payload []byte) (string, error) {
	if scope != ScopeChannel && scope != ScopeUser && scope != ScopeBroadcast {
		// Fail closed: an unknown scope would skip the channel check.
		return "", fmt.Errorf("%w: unknown subject scope %d", ErrInvalidEvent, scope)
	}
	if len(payload) > MaxEventSize {
		return "", fmt.Errorf("%w: %d bytes, limit %d", ErrInvalidEvent, len(payload), MaxEventSize)
	}
	env, err := scanEnvelope(payload)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrInvalidEvent, err)
	}
	typ, err := env.eventType()
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrInvalidEvent, err)
	}
	if err := checkEvent(scope, channelID, typ, &env); err != nil {
		return "", fmt.Errorf("%w: %s: %v", ErrInvalidEvent, truncate(typ, 64), err)
	}
	return typ, nil
}

// eventType returns the envelope's type: the package's constant for a known
// type, so that the common case does not allocate.
func (e *envelope) eventType() (string, error) {
	switch {
	case !e.object:
		return "", errors.New(`not a JSON object: want {"type":"…","data":{…}}`)
	case e.typ == nil || string(e.typ) == "null":
		return "", errors.New(`missing "type"`)
	case e.typ[0] != '"':
		return "", errors.New(`"type" must be a string`)
	}
	if typ, ok := knownType(e.typ[1 : len(e.typ)-1]); ok {
		return typ, nil
	}
	typ, _ := jsonString(e.typ) // the scan checked its escapes
	if typ == "" {
		return "", errors.New(`"type" is empty`)
	}
	return typ, nil
}

// knownType returns the constant for a frame type spelled without escapes.
func knownType(raw []byte) (string, bool) {
	switch string(raw) {
	case TypeMessageCreate:
		return TypeMessageCreate, true
	case TypeMessageUpdate:
		return TypeMessageUpdate, true
	case TypeMessageDelete:
		return TypeMessageDelete, true
	case TypeTypingStart:
		return TypeTypingStart, true
	case TypePresenceUpdate:
		return TypePresenceUpdate, true
	case TypeNotification:
		return TypeNotification, true
	case TypeSessionRevoked:
		return TypeSessionRevoked, true
	}
	return "", false
}

// GatewayType reports whether typ is a frame type the gateway itself speaks
// (its own server → client frames, and every client → server frame): such
// frames are never taken from the bus, so that no backend can forge them.
func GatewayType(typ string) bool {
	switch typ {
	case TypeReady, TypeHeartbeatAck, TypeError, TypeSubscribed, TypeUnsubscribed,
		TypeHeartbeat, TypeSubscribe, TypeUnsubscribe, TypeTyping:
		return true
	}
	return false
}

func checkEvent(scope Scope, channelID, typ string, env *envelope) error {
	if len(env.data) == 0 || env.data[0] != '{' {
		return errors.New(`needs a "data" object`)
	}
	if GatewayType(typ) {
		return errors.New("is a frame the gateway itself sends or receives: never taken from the bus")
	}
	if typ == TypeSessionRevoked && scope != ScopeUser {
		return errors.New("may only be published on a user subject")
	}
	if scope == ScopeChannel && env.channelID != nil {
		isString, equal := jsonStringEquals(env.channelID, channelID)
		switch {
		case !isString:
			return errors.New(`"channel_id" must be a string`)
		case !equal:
			ch, _ := jsonString(env.channelID)
			return fmt.Errorf(`"channel_id" %q does not name the subject's channel`, truncate(ch, 64))
		}
	}
	if typ == TypePresenceUpdate {
		if _, ok := parseUserID(env.userID); !ok {
			return errors.New(`"user_id" must be a positive integer`)
		}
		_, online := jsonStringEquals(env.presence, PresenceOnline)
		_, offline := jsonStringEquals(env.presence, PresenceOffline)
		if !online && !offline {
			return errors.New(`"presence" must be "online" or "offline"`)
		}
	}
	return nil
}

// jsonString returns the value of a raw JSON string.
func jsonString(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1]), true
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// jsonStringEquals reports whether raw is a JSON string and whether its
// value is want, without allocating when it holds no escape.
func jsonStringEquals(raw []byte, want string) (isString, equal bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return false, false
	}
	if bytes.IndexByte(raw, '\\') < 0 {
		return true, string(raw[1:len(raw)-1]) == want
	}
	s, ok := jsonString(raw)
	return ok, s == want
}
