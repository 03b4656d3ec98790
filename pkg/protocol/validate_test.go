package protocol_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/ocvr/realtime/pkg/protocol"
)

const (
	msgCreate = `{"type":"message_create","data":{"id":"msg_1","channel_id":"ch_general","author":{"id":42,"display_name":"Ada"},"content":"hi","created_at":"2025-01-15T10:30:00Z"}}`
	msgUpdate = `{"type":"message_update","data":{"id":"msg_1","channel_id":"ch_general","content":"hi!","edited_at":"2025-01-15T10:31:00Z"}}`
	msgDelete = `{"type":"message_delete","data":{"id":"msg_1","channel_id":"ch_general"}}`
	typing    = `{"type":"typing_start","data":{"channel_id":"ch_general","user_id":42,"display_name":"Ada"}}`
	presence  = `{"type":"presence_update","data":{"user_id":43,"presence":"online","status_text":"hi"}}`
	notif     = `{"type":"notification","data":{"id":"ntf_1","type":"system","title":"T","body":"B","created_at":"2025-01-15T10:30:00Z"}}`
	revoked   = `{"type":"session_revoked","data":{"reason":"logout"}}`
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
		{"presence_update to a user", user, "", presence, protocol.TypePresenceUpdate},
		{"offline presence", user, "", `{"type":"presence_update","data":{"user_id":43,"presence":"offline"}}`, protocol.TypePresenceUpdate},
		{"notification to a user", user, "", notif, protocol.TypeNotification},
		{"notification without created_at", user, "", `{"type":"notification","data":{"id":"n","type":"t"}}`, protocol.TypeNotification},
		{"session_revoked to a user", user, "", revoked, protocol.TypeSessionRevoked},
		{"session_revoked without reason", user, "", `{"type":"session_revoked","data":{}}`, protocol.TypeSessionRevoked},
		{"notification broadcast", all, "", notif, protocol.TypeNotification},
		{"presence broadcast", all, "", presence, protocol.TypePresenceUpdate},
		{"unknown fields ignored", ch, "ch_general", `{"type":"message_delete","data":{"id":"m","channel_id":"ch_general","x":{"y":[1]}},"meta":1}`, protocol.TypeMessageDelete},
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

func TestValidateEventRejects(t *testing.T) {
	ch, user, all := protocol.ScopeChannel, protocol.ScopeUser, protocol.ScopeBroadcast
	tests := []struct {
		name    string
		scope   protocol.Scope
		channel string
		payload string
		want    string // a substring of the error
	}{
		// Wrong type for the scope.
		{"session_revoked on a channel", ch, "ch_general", revoked, `"session_revoked" may not be published on this subject`},
		{"session_revoked broadcast", all, "", revoked, `"session_revoked" may not be published on this subject`},
		{"notification on a channel", ch, "ch_general", notif, `"notification" may not be published on this subject`},
		{"presence_update on a channel", ch, "ch_general", presence, `"presence_update" may not be published on this subject`},
		{"error is not an event", user, "", `{"type":"error","data":{"code":"X","message":"y"}}`, `"error" is not a deliverable event type`},
		{"ready is not an event", user, "", `{"type":"ready","data":{}}`, `"ready" is not a deliverable event type`},
		{"heartbeat_ack is not an event", all, "", `{"type":"heartbeat_ack","data":{"server_time":1}}`, `"heartbeat_ack" is not a deliverable event type`},
		{"subscribed is not an event", ch, "ch_general", `{"type":"subscribed","data":{"channel_id":"ch_general"}}`, `"subscribed" is not a deliverable event type`},
		{"client frame is not an event", ch, "ch_general", `{"type":"subscribe","data":{"channel_id":"ch_general"}}`, `"subscribe" is not a deliverable event type`},
		{"unknown type", user, "", `{"type":"bogus","data":{}}`, `"bogus" is not a deliverable event type`},
		{"missing type", user, "", `{"data":{}}`, `"" is not a deliverable event type`},
		// Channel mismatch.
		{"channel_id differs from subject", ch, "ch_other", msgCreate, `"channel_id" "ch_general" does not match the subject's channel`},
		{"typing on another channel", ch, "ch_other", typing, `does not match the subject's channel`},
		{"delete on another channel", ch, "ch_other", msgDelete, `does not match the subject's channel`},
		{"invalid channel_id to a user", user, "", `{"type":"message_delete","data":{"id":"m","channel_id":"a.b"}}`, `"channel_id" must match`},
		{"missing channel_id", ch, "ch_general", `{"type":"message_delete","data":{"id":"m"}}`, `"channel_id" must match`},
		// Missing ids.
		{"message_create without id", ch, "ch_general", `{"type":"message_create","data":{"channel_id":"ch_general","author":{"id":1}}}`, `missing "id"`},
		{"message_create without author", ch, "ch_general", `{"type":"message_create","data":{"id":"m","channel_id":"ch_general"}}`, `"author.id" must be a positive user id`},
		{"message_create author 0", ch, "ch_general", `{"type":"message_create","data":{"id":"m","channel_id":"ch_general","author":{"id":0}}}`, `"author.id" must be a positive user id`},
		{"message_update without id", ch, "ch_general", `{"type":"message_update","data":{"channel_id":"ch_general"}}`, `missing "id"`},
		{"message_delete without id", ch, "ch_general", `{"type":"message_delete","data":{"id":"","channel_id":"ch_general"}}`, `missing "id"`},
		{"typing_start without user", ch, "ch_general", `{"type":"typing_start","data":{"channel_id":"ch_general"}}`, `"user_id" must be a positive user id`},
		{"presence without user", user, "", `{"type":"presence_update","data":{"presence":"online"}}`, `"user_id" must be a positive user id`},
		{"presence negative user", user, "", `{"type":"presence_update","data":{"user_id":-4,"presence":"online"}}`, `"user_id" must be a positive user id`},
		{"presence away", user, "", `{"type":"presence_update","data":{"user_id":4,"presence":"away"}}`, `"presence" must be "online" or "offline"`},
		{"notification without id", user, "", `{"type":"notification","data":{"type":"t"}}`, `missing "id"`},
		{"notification without type", user, "", `{"type":"notification","data":{"id":"n"}}`, `missing "type"`},
		// Wrong field types.
		{"id is a number", ch, "ch_general", `{"type":"message_delete","data":{"id":5,"channel_id":"ch_general"}}`, `field "id" has the wrong type`},
		{"author.id is a string", ch, "ch_general", `{"type":"message_create","data":{"id":"m","channel_id":"ch_general","author":{"id":"42"}}}`, `field "author.id" has the wrong type`},
		{"user_id is a float", user, "", `{"type":"presence_update","data":{"user_id":4.5,"presence":"online"}}`, `field "user_id" has the wrong type`},
		{"user_id overflows", user, "", `{"type":"presence_update","data":{"user_id":9223372036854775808,"presence":"online"}}`, `field "user_id" has the wrong type`},
		{"reason is a bool", user, "", `{"type":"session_revoked","data":{"reason":true}}`, `field "reason" has the wrong type`},
		{"content is an object", ch, "ch_general", `{"type":"message_update","data":{"id":"m","channel_id":"ch_general","content":{}}}`, `field "content" has the wrong type`},
		{"type is a number", user, "", `{"type":5,"data":{}}`, `not a JSON frame`},
		// Envelope.
		{"no data", user, "", `{"type":"notification"}`, `"notification" needs a "data" object`},
		{"null data", user, "", `{"type":"notification","data":null}`, `"notification" needs a "data" object`},
		{"data is an array", user, "", `{"type":"notification","data":[]}`, `"notification" needs a "data" object`},
		{"data is a string", user, "", `{"type":"notification","data":"x"}`, `"notification" needs a "data" object`},
		{"not JSON", user, "", `notification`, `not a JSON frame: syntax error`},
		{"truncated", user, "", notif[:len(notif)-1], `not a JSON frame: syntax error`},
		{"array", user, "", `[` + notif + `]`, `not a JSON frame`},
		{"empty", user, "", ``, `not a JSON frame`},
		{"invalid UTF-8", user, "", `{"type":"notification","data":{"id":"n","type":"t","title":"` + "\xc3\x28" + `"}}`, `not valid UTF-8`},
		{"oversize", user, "", padNotification(protocol.MaxEventSize + 1), `65537 bytes, limit 65536`},
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
}
