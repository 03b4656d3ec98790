package protocol_test

import (
	"errors"
	"testing"

	"github.com/ocvr/realtime/pkg/protocol"
)

// TestValidateEventReadsKeysLikeClients is the regression test of a defect
// FuzzValidateEvent found: encoding/json matches keys case-insensitively
// (and merges repeated objects), clients do not, so a payload could pass
// validation as one event and reach clients as another: a message
// validated for the subject's channel but read by clients as another
// channel's, a positive author id read as a negative one, a
// session_revoked read as a message. Such payloads are now refused; exact
// keys, escaped exact keys and any key of objects that are not validated
// still pass.
func TestValidateEventReadsKeysLikeClients(t *testing.T) {
	ch, user := protocol.ScopeChannel, protocol.ScopeUser
	refused := []struct {
		name    string
		scope   protocol.Scope
		payload string
	}{
		{"channel_id case variant", ch, `{"type":"message_create","data":{"id":"m","channel_id":"ch_other","Channel_ID":"ch_general","author":{"id":1}}}`},
		{"type case variant", user, `{"type":"message_create","data":{"id":"m","channel_id":"ch_x","author":{"id":1}},"TYPE":"session_revoked"}`},
		{"Type alone", user, `{"Type":"notification","data":{"id":"n","type":"t"}}`},
		{"DATA", user, `{"type":"notification","DATA":{"id":"n","type":"t"}}`},
		{"long s folds to s", user, `{"type":"presence_update","data":{"user_id":1,"pre\u017fence":"online"}}`},
		{"long s, raw UTF-8", user, "{\"type\":\"presence_update\",\"data\":{\"user_id\":1,\"pre\xc5\xbfence\":\"online\"}}"},
		{"Kelvin sign", user, "{\"type\":\"notification\",\"data\":{\"id\":\"n\",\"type\":\"t\"},\"\\u212a\":1,\"ID\":2,\"dAta\":{}}"},
		{"user_id variant", ch, `{"type":"typing_start","data":{"channel_id":"ch_general","user_id":-1,"User_Id":5}}`},
		{"author.id variant", ch, `{"type":"message_create","data":{"id":"m","channel_id":"ch_general","author":{"id":-1,"ID":7}}}`},
		{"author merged from two objects", ch, `{"type":"message_create","data":{"id":"m","channel_id":"ch_general","author":{"id":7},"author":{"display_name":"x"}}}`},
		{"repeated data", ch, `{"type":"message_delete","data":{"id":"m","channel_id":"ch_general"},"data":{"id":"m","channel_id":"ch_general"}}`},
		{"repeated channel_id", ch, `{"type":"message_delete","data":{"id":"m","channel_id":"ch_general","channel_id":"ch_general"}}`},
		{"escaped variant", ch, `{"type":"message_delete","data":{"id":"m","channel_id":"ch_general","\u0043hannel_id":"ch_x"}}`},
	}
	for _, tc := range refused {
		if typ, err := protocol.ValidateEvent(tc.scope, "ch_general", []byte(tc.payload)); err == nil || !errors.Is(err, protocol.ErrInvalidEvent) {
			t.Errorf("%s: accepted as %q (%v): %s", tc.name, typ, err, tc.payload)
		}
	}
	// Found by FuzzValidateEvent too: a zero or unknown scope skipped the
	// subject's channel check; it is refused.
	for _, scope := range []protocol.Scope{0, 4, -1} {
		if _, err := protocol.ValidateEvent(scope, "", []byte(`{"type":"message_delete","data":{"id":"m","channel_id":"ch_x"}}`)); !errors.Is(err, protocol.ErrInvalidEvent) {
			t.Errorf("scope %d accepted: %v", scope, err)
		}
	}
	accepted := []string{
		`{"type":"message_delete","data":{"id":"m","channel_id":"ch_general"}}`,
		`{"\u0074ype":"message_delete","data":{"id":"m","channel\u005fid":"ch_general"}}`,
		`{"type":"message_delete","data":{"id":"m","channel_id":"ch_general","meta":{"Type":1,"ID":2,"id":3,"id":4}},"extra":{"Data":[{"TYPE":1}]}}`,
		`{"type":"message_create","data":{"id":"m","channel_id":"ch_general","author":{"id":1,"display_name":"A","Display_Name":"B"},"Content":"x","content":"y"}}`,
		`{"type":"message_delete","data":{"id":"m","channel_id":"ch_general","text":"{\"Channel_ID\":\"x\"}"}}`,
	}
	for _, p := range accepted {
		if _, err := protocol.ValidateEvent(ch, "ch_general", []byte(p)); err != nil {
			t.Errorf("refused %s: %v", p, err)
		}
	}
}
