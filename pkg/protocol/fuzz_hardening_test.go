package protocol_test

import (
	"encoding/json"
	"errors"
	"regexp"
	"strconv"
	"testing"
	"unicode/utf8"

	"github.com/ocvr/realtime/pkg/protocol"
)

// Fuzz targets of the hardening suite (HARDENING.md). `go test` runs their
// seeds and the checked-in corpus under testdata/fuzz/<Fuzz…>/;
// scripts/fuzz.sh explores each for a bounded time.

var channelIDRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`) // protocol.IDPattern, written out: the oracle is independent

// FuzzValidChannelID: ValidChannelID is exactly the documented grammar,
// CheckChannelID agrees with it, and DecodeClientFrame accepts a subscribe
// for an id exactly when the id is valid (and returns that id unchanged).
func FuzzValidChannelID(f *testing.F) {
	for _, s := range []string{"ch_general", "", "a", "ch.>", "*", ">", "Ch_General", "ch_gеneral", "ch%2E",
		"ch_general\x00", "\xc0\xae", "ａ", "ch_\u212a", "ch_\u017f", string(make([]byte, 65))} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		valid := protocol.ValidChannelID(id)
		if valid != channelIDRe.MatchString(id) {
			t.Fatalf("ValidChannelID(%q) = %v, the grammar says %v", id, valid, !valid)
		}
		if protocol.IDPattern != channelIDRe.String() {
			t.Fatalf("IDPattern %q is not the documented grammar", protocol.IDPattern)
		}
		if protocol.ValidID(id) != valid || protocol.ValidSessionID(id) != valid {
			t.Fatalf("ValidID/ValidSessionID(%q) disagree with ValidChannelID (%v): one id grammar", id, valid)
		}
		err := protocol.CheckChannelID(id)
		if (err == nil) != valid || (err != nil && !errors.Is(err, protocol.ErrInvalidChannelID)) {
			t.Fatalf("CheckChannelID(%q) = %v, ValidChannelID %v", id, err, valid)
		}
		frame, _ := json.Marshal(map[string]any{"type": "subscribe", "data": map[string]string{"channel_id": id}})
		cf, perr := protocol.DecodeClientFrame(frame)
		switch {
		case !utf8.ValidString(id):
			// json.Marshal replaced the invalid bytes: nothing to compare.
		case valid && (perr != nil || cf.ChannelID != id):
			t.Fatalf("valid id %q: decoded %+v %v", id, cf, perr)
		case !valid && perr == nil:
			t.Fatalf("invalid id %q accepted as %q", id, cf.ChannelID)
		}
	})
}

// FuzzParseUserID: ParseUserID accepts exactly the canonical decimal form
// of a positive int64 (what the gateway puts in a subject), and
// CheckUserID agrees.
func FuzzParseUserID(f *testing.F) {
	for _, s := range []string{"1", "42", "0", "-1", "+1", "01", " 1", "1 ", "9223372036854775807", "9223372036854775808",
		"18446744073709551617", "1e3", "0x10", "١", "1.0", "*", ">", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := protocol.ParseUserID(s)
		if err != nil {
			if id != 0 {
				t.Fatalf("ParseUserID(%q) = %d with error %v", s, id, err)
			}
			// Anything refused is not the canonical form of a positive id.
			if v, perr := strconv.ParseInt(s, 10, 64); perr == nil && v > 0 && strconv.FormatInt(v, 10) == s {
				t.Fatalf("ParseUserID refused canonical id %q: %v", s, err)
			}
			return
		}
		if id <= 0 || strconv.FormatInt(id, 10) != s {
			t.Fatalf("ParseUserID(%q) = %d: not the canonical form of a positive id", s, id)
		}
		if protocol.CheckUserID(id) != nil || !protocol.ValidUserID(id) {
			t.Fatalf("ParseUserID(%q) = %d, which CheckUserID refuses", s, id)
		}
	})
}

// clientView is what a client reads of the routing fields of a payload.
type clientView struct {
	typ       string
	hasData   bool
	channelID json.RawMessage // nil when absent
	userID    json.RawMessage
	presence  json.RawMessage
}

// viewAsClient decodes a payload the way a client (JavaScript's
// JSON.parse) does: exact keys, the last duplicate wins. Go's map decoding
// has exactly those semantics.
func viewAsClient(payload []byte) (clientView, bool) {
	var top map[string]json.RawMessage
	if json.Unmarshal(payload, &top) != nil || top == nil {
		return clientView{}, false
	}
	var v clientView
	if json.Unmarshal(top["type"], &v.typ) != nil {
		return v, false
	}
	var data map[string]json.RawMessage
	if raw, ok := top["data"]; ok && json.Unmarshal(raw, &data) == nil && data != nil {
		v.hasData = true
		v.channelID, v.userID, v.presence = data["channel_id"], data["user_id"], data["presence"]
	}
	return v, true
}

// FuzzValidateEvent: whatever a backend publishes, ValidateEvent either
// refuses it with an error wrapping ErrInvalidEvent, or accepts a payload
// that is valid UTF-8 JSON within MaxEventSize, that a client reads exactly
// as it was validated: the same type (never one the gateway speaks), a data
// object, on a channel subject no channel_id but the subject's, and for
// presence_update a positive user_id and a valid presence. No case-variant
// or duplicate key can make the gateway validate one thing and the client
// read another.
func FuzzValidateEvent(f *testing.F) {
	seeds := []string{msgCreate, msgUpdate, msgDelete, typing, presence, notif, revoked,
		`{"type":"message_create","data":{"id":"m","channel_id":"ch_general","Channel_ID":"ch_other","author":{"id":1}}}`,
		`{"type":"message_create","data":{"id":"m","channel_id":"ch_other","author":{"id":1}},"TYPE":"session_revoked"}`,
		`{"Type":"notification","data":{"id":"n","type":"t"}}`,
		`{"type":"notification","DATA":{"id":"n","type":"t"}}`,
		`{"type":"message_delete","data":{"id":"m","channel_id":"ch_general","channel_id":"ch_general"}}`,
		`{"type":"message_delete","data":{"id":"m","channel_id":"ch_general"},"data":{"id":"m","channel_id":"x"}}`,
		`{"type":"presence_update","data":{"user_id":1,"pre\u017fence":"online"}}`,
		`{"type":"typing_start","data":{"channel_id":"ch_general","user_id":-1,"User_Id":5}}`,
		`{"type":"channel_update","data":{"channel_id":"ch_general","name":"x"}}`,
		`{"type":"re\u0061dy","data":{}}`,
		`{"type":"session_revoked","data":null}`, `[]`, `null`, `{}`, "\xff",
	}
	for _, s := range seeds {
		for scope := uint8(1); scope <= 3; scope++ {
			f.Add(scope, "ch_general", []byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, scopeN uint8, channel string, payload []byte) {
		scope := protocol.Scope(scopeN % 4) // 0 is no scope at all
		typ, err := protocol.ValidateEvent(scope, channel, payload)
		if err != nil {
			if typ != "" || !errors.Is(err, protocol.ErrInvalidEvent) {
				t.Fatalf("ValidateEvent error %v (type %q) does not wrap ErrInvalidEvent", err, typ)
			}
			return
		}
		if scope == 0 || len(payload) > protocol.MaxEventSize || !utf8.Valid(payload) || !json.Valid(payload) {
			t.Fatalf("accepted a payload that is oversized, not UTF-8 or not JSON, or on no scope: %q", payload)
		}
		v, parsed := viewAsClient(payload)
		if !parsed || v.typ != typ || typ == "" || !v.hasData {
			t.Fatalf("validated as %q, but a client reads type %q (data object: %v) from %s", typ, v.typ, v.hasData, payload)
		}
		if protocol.GatewayType(typ) {
			t.Fatalf("accepted %q, a type the gateway speaks: %s", typ, payload)
		}
		if typ == protocol.TypeSessionRevoked && scope != protocol.ScopeUser {
			t.Fatalf("accepted session_revoked on scope %d", scope)
		}
		if scope == protocol.ScopeChannel && v.channelID != nil {
			var ch string
			if json.Unmarshal(v.channelID, &ch) != nil || ch != channel {
				t.Fatalf("accepted on channel %q an event a client reads as channel %s: %s", channel, v.channelID, payload)
			}
		}
		if typ == protocol.TypePresenceUpdate {
			var id int64
			var p string
			if json.Unmarshal(v.userID, &id) != nil || id <= 0 || json.Unmarshal(v.presence, &p) != nil ||
				(p != protocol.PresenceOnline && p != protocol.PresenceOffline) {
				t.Fatalf("accepted presence_update a client reads with user_id %s, presence %s: %s", v.userID, v.presence, payload)
			}
		}
	})
}
