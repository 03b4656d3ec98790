package protocol_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/ocvr/realtime/pkg/protocol"
)

// The document's own examples (../shared/ocvr-websocket-protocol.txt),
// compacted; testdata/frames.json holds them too.
const (
	msgCreate = `{"type":"message_create","data":{"id":"msg_xyz789","channel_id":"ch_general","author":{"id":12345,"display_name":"Sender"},"content":"Hello world!","created_at":1703523600,"attachments":[]}}`
	msgUpdate = `{"type":"message_update","data":{"id":"msg_xyz789","channel_id":"ch_general","content":"Hello world! (edited)","edited_at":1703523700}}`
	msgDelete = `{"type":"message_delete","data":{"id":"msg_xyz789","channel_id":"ch_general"}}`
	typing    = `{"type":"typing_start","data":{"channel_id":"ch_general","user_id":12345,"display_name":"TyperName"}}`
	presence  = `{"type":"presence_update","data":{"user_id":12345,"presence":"online","status_text":"Playing OCVR"}}`
	notif     = `{"type":"notification","data":{"id":"notif_abc","type":"friend_request","title":"New Friend Request","body":"User123 wants to be your friend","created_at":1703523600,"data":{"from_user_id":456}}}`
	revoked   = `{"type":"session_revoked","data":{"reason":"logout_all"}}`
)

func TestValidateEventAccepts(t *testing.T) {
	ch, user, all := protocol.ScopeChannel, protocol.ScopeUser, protocol.ScopeBroadcast
	tests := []struct {
		name    string
		scope   protocol.Scope
		channel string
		payload string
		typ     string
	}{
		{"message_create on its channel", ch, "ch_general", msgCreate, protocol.TypeMessageCreate},
		{"message_update on its channel", ch, "ch_general", msgUpdate, protocol.TypeMessageUpdate},
		{"message_delete on its channel", ch, "ch_general", msgDelete, protocol.TypeMessageDelete},
		{"typing_start on its channel", ch, "ch_general", typing, protocol.TypeTypingStart},
		{"message_create to a user", user, "", msgCreate, protocol.TypeMessageCreate},
		{"message_create broadcast", all, "", msgCreate, protocol.TypeMessageCreate},
		{"presence_update to a user", user, "", presence, protocol.TypePresenceUpdate},
		{"offline presence", user, "", `{"type":"presence_update","data":{"user_id":43,"presence":"offline"}}`, protocol.TypePresenceUpdate},
		{"notification to a user", user, "", notif, protocol.TypeNotification},
		{"notification on a channel", ch, "ch_general", notif, protocol.TypeNotification},
		{"notification broadcast", all, "", notif, protocol.TypeNotification},
		{"presence broadcast", all, "", presence, protocol.TypePresenceUpdate},
		{"session_revoked to a user", user, "", revoked, protocol.TypeSessionRevoked},
		{"session_revoked without reason", user, "", `{"type":"session_revoked","data":{}}`, protocol.TypeSessionRevoked},
		// Backends own their payloads: the gateway reads none of these fields.
		{"created_at an RFC 3339 string", ch, "ch_general", `{"type":"message_create","data":{"id":"m","channel_id":"ch_general","created_at":"2025-01-15T10:30:00Z"}}`, protocol.TypeMessageCreate},
		{"fields the gateway does not read", ch, "ch_general", `{"type":"message_create","data":{"channel_id":"ch_general","author":{"id":"u-1"},"id":5}}`, protocol.TypeMessageCreate},
		{"nested unknown fields", ch, "ch_general", `{"type":"message_delete","data":{"id":"m","channel_id":"ch_general","x":{"y":[1,{"z":null}]}},"meta":1}`, protocol.TypeMessageDelete},
		{"channel event without channel_id", ch, "ch_general", `{"type":"message_delete","data":{"id":"m"}}`, protocol.TypeMessageDelete},
		{"channel_id to a user is not checked", user, "", `{"type":"message_delete","data":{"id":"m","channel_id":"ch_other"}}`, protocol.TypeMessageDelete},
		{"unknown type on a channel", ch, "ch_general", `{"type":"channel_update","data":{"channel_id":"ch_general","name":"General"}}`, "channel_update"},
		{"unknown type to a user", user, "", `{"type":"friend_request_accepted","data":{"user_id":456}}`, "friend_request_accepted"},
		{"unknown type broadcast", all, "", `{"type":"maintenance","data":{}}`, "maintenance"},
		{"escaped type", user, "", `{"type":"notific\u0061tion","data":{}}`, protocol.TypeNotification},
		{"escaped channel_id", ch, "ch_general", `{"type":"message_delete","data":{"channel_id":"ch\u005fgeneral"}}`, protocol.TypeMessageDelete},
		{"whitespace", ch, "ch_general", " {\"type\": \"message_delete\", \"data\": {\"id\": \"m\", \"channel_id\": \"ch_general\"}}\n", protocol.TypeMessageDelete},
		{"exactly MaxEventSize", user, "", padNotification(protocol.MaxEventSize), protocol.TypeNotification},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			typ, err := protocol.ValidateEvent(tt.scope, tt.channel, []byte(tt.payload))
			if err != nil {
				t.Fatalf("ValidateEvent: %v", err)
			}
			if typ != tt.typ {
				t.Fatalf("type = %q, want %q", typ, tt.typ)
			}
		})
	}
}

// padNotification returns a valid notification frame of exactly n bytes.
func padNotification(n int) string {
	const head, tail = `{"type":"notification","data":{"id":"n","type":"t","body":"`, `"}}`
	return head + strings.Repeat("x", n-len(head)-len(tail)) + tail
}

// TestValidateEventRejects has one case per rule of ValidateEvent (and of
// pkg/README.md's "What the gateway checks"), each with the reason a
// publisher reads in its advisory.
func TestValidateEventRejects(t *testing.T) {
	ch, user, all := protocol.ScopeChannel, protocol.ScopeUser, protocol.ScopeBroadcast
	tests := []struct {
		name    string
		scope   protocol.Scope
		channel string
		payload string
		want    string // a substring of the error
	}{
		// Size and encoding.
		{"oversize", user, "", padNotification(protocol.MaxEventSize + 1), `65537 bytes, limit 65536`},
		{"invalid UTF-8", user, "", `{"type":"notification","data":{"title":"` + "\xc3\x28" + `"}}`, `not valid UTF-8`},
		{"not JSON", user, "", `notification`, `not JSON: syntax error at offset 1`},
		{"truncated", user, "", notif[:len(notif)-1], `not JSON: unexpected end`},
		{"trailing data", user, "", notif + ` {}`, `not JSON: syntax error at offset`},
		{"empty", user, "", ``, `not JSON: unexpected end`},
		{"trailing comma", user, "", `{"type":"notification","data":{"id":"n",}}`, `not JSON: syntax error`},
		{"control character in a string", user, "", "{\"type\":\"notification\",\"data\":{\"body\":\"a\tb\"}}", `not JSON: syntax error`},
		// Envelope.
		{"array", user, "", `[` + notif + `]`, `not a JSON object`},
		{"string", user, "", `"notification"`, `not a JSON object`},
		{"missing type", user, "", `{"data":{}}`, `missing "type"`},
		{"null type", user, "", `{"type":null,"data":{}}`, `missing "type"`},
		{"type is a number", user, "", `{"type":5,"data":{}}`, `"type" must be a string`},
		{"empty type", user, "", `{"type":"","data":{}}`, `"type" is empty`},
		{"no data", user, "", `{"type":"notification"}`, `notification: needs a "data" object`},
		{"null data", user, "", `{"type":"notification","data":null}`, `needs a "data" object`},
		{"data is an array", user, "", `{"type":"notification","data":[]}`, `needs a "data" object`},
		{"data is a string", user, "", `{"type":"channel_update","data":"x"}`, `channel_update: needs a "data" object`},
		// Routing keys are read exactly as clients read them.
		{"type case variant", user, "", `{"type":"notification","data":{},"TYPE":"session_revoked"}`, `key "TYPE" is not "type"`},
		{"data case variant", user, "", `{"type":"notification","DATA":{}}`, `key "DATA" is not "data"`},
		{"repeated type", user, "", `{"type":"notification","data":{},"type":"session_revoked"}`, `key "type" appears twice`},
		{"a position of its own", ch, "ch_general", `{"type":"message_delete","data":{"channel_id":"ch_general"},"seq":7}`, `top-level key "seq" is reserved`},
		{"a top-level channel_id", ch, "ch_general", `{"type":"message_delete","data":{"channel_id":"ch_general"},"channel_id":"ch_general"}`, `top-level key "channel_id" is reserved`},
		{"a case variant of seq", user, "", `{"type":"notification","data":{},"SEQ":7}`, `keys are case-sensitive`},
		{"repeated data", ch, "ch_general", `{"type":"message_delete","data":{"channel_id":"ch_general"},"data":{"channel_id":"x"}}`, `key "data" appears twice`},
		{"channel_id case variant", ch, "ch_general", `{"type":"message_delete","data":{"channel_id":"ch_general","Channel_ID":"ch_other"}}`, `key "Channel_ID" is not "channel_id"`},
		{"escaped channel_id variant", ch, "ch_general", `{"type":"message_delete","data":{"channel_id":"ch_general","\u0043hannel_id":"ch_x"}}`, `key "Channel_id" is not "channel_id"`},
		{"repeated channel_id", ch, "ch_general", `{"type":"message_delete","data":{"channel_id":"ch_general","channel_id":"ch_other"}}`, `key "channel_id" appears twice`},
		{"long s folds to s", user, "", `{"type":"presence_update","data":{"user_id":1,"pre\u017fence":"online"}}`, `keys are case-sensitive`},
		{"user_id case variant", user, "", `{"type":"presence_update","data":{"user_id":1,"User_ID":2,"presence":"online"}}`, `key "User_ID" is not "user_id"`},
		// Types the gateway speaks itself.
		{"error", user, "", `{"type":"error","data":{"code":"X","message":"y"}}`, `error: is a frame the gateway itself sends or receives`},
		{"ready", user, "", `{"type":"ready","data":{}}`, `ready: is a frame the gateway itself`},
		{"heartbeat_ack", all, "", `{"type":"heartbeat_ack","data":{"server_time":1}}`, `heartbeat_ack: is a frame the gateway itself`},
		{"subscribed", ch, "ch_general", `{"type":"subscribed","data":{"channel_id":"ch_general"}}`, `subscribed: is a frame the gateway itself`},
		{"unsubscribed", user, "", `{"type":"unsubscribed","data":{"channel_id":"ch_general","reason":"removed"}}`, `unsubscribed: is a frame the gateway itself`},
		{"heartbeat", user, "", `{"type":"heartbeat","data":{}}`, `heartbeat: is a frame the gateway itself`},
		{"subscribe", ch, "ch_general", `{"type":"subscribe","data":{"channel_id":"ch_general"}}`, `subscribe: is a frame the gateway itself`},
		{"unsubscribe", ch, "ch_general", `{"type":"unsubscribe","data":{"channel_id":"ch_general"}}`, `unsubscribe: is a frame the gateway itself`},
		{"typing", ch, "ch_general", `{"type":"typing","data":{"channel_id":"ch_general"}}`, `typing: is a frame the gateway itself`},
		{"escaped gateway type", user, "", `{"type":"re\u0061dy","data":{}}`, `ready: is a frame the gateway itself`},
		// session_revoked only on user subjects.
		{"session_revoked on a channel", ch, "ch_general", revoked, `session_revoked: may only be published on a user subject`},
		{"session_revoked broadcast", all, "", revoked, `session_revoked: may only be published on a user subject`},
		// A channel event names its subject's channel.
		{"channel_id differs from subject", ch, "ch_other", msgCreate, `"channel_id" "ch_general" does not name the subject's channel`},
		{"unknown type on another channel", ch, "ch_other", `{"type":"channel_update","data":{"channel_id":"ch_general"}}`, `channel_update: "channel_id" "ch_general" does not name`},
		{"typing_start on another channel", ch, "ch_other", typing, `does not name the subject's channel`},
		{"channel_id is a number", ch, "ch_general", `{"type":"message_delete","data":{"channel_id":7}}`, `"channel_id" must be a string`},
		{"channel_id is null", ch, "ch_general", `{"type":"message_delete","data":{"channel_id":null}}`, `"channel_id" must be a string`},
		// presence_update keeps its user_id and presence check.
		{"presence without user", user, "", `{"type":"presence_update","data":{"presence":"online"}}`, `"user_id" must be a positive integer`},
		{"presence negative user", user, "", `{"type":"presence_update","data":{"user_id":-4,"presence":"online"}}`, `"user_id" must be a positive integer`},
		{"presence user 0", user, "", `{"type":"presence_update","data":{"user_id":0,"presence":"online"}}`, `"user_id" must be a positive integer`},
		{"presence user a float", user, "", `{"type":"presence_update","data":{"user_id":4.5,"presence":"online"}}`, `"user_id" must be a positive integer`},
		{"presence user a string", user, "", `{"type":"presence_update","data":{"user_id":"4","presence":"online"}}`, `"user_id" must be a positive integer`},
		{"presence user overflows", user, "", `{"type":"presence_update","data":{"user_id":9223372036854775808,"presence":"online"}}`, `"user_id" must be a positive integer`},
		{"presence away", user, "", `{"type":"presence_update","data":{"user_id":4,"presence":"away"}}`, `"presence" must be "online" or "offline"`},
		{"presence missing", user, "", `{"type":"presence_update","data":{"user_id":4}}`, `"presence" must be "online" or "offline"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			typ, err := protocol.ValidateEvent(tt.scope, tt.channel, []byte(tt.payload))
			if err == nil {
				t.Fatalf("ValidateEvent accepted it as %q", typ)
			}
			if !errors.Is(err, protocol.ErrInvalidEvent) {
				t.Errorf("error %v does not wrap ErrInvalidEvent", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %q\nwant it to contain %q", err, tt.want)
			}
			if typ != "" {
				t.Errorf("type = %q alongside an error", typ)
			}
		})
	}
	// Fail closed: an unknown scope would skip the channel check.
	for _, scope := range []protocol.Scope{0, 4, -1} {
		if _, err := protocol.ValidateEvent(scope, "", []byte(msgDelete)); !errors.Is(err, protocol.ErrInvalidEvent) {
			t.Errorf("scope %d accepted: %v", scope, err)
		}
	}
}
