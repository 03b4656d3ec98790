package protocol_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/ocvr/realtime/pkg/protocol"
	"github.com/ocvr/realtime/pkg/protocol/protocoltest"
)

type example = protocoltest.Example

func loadExamples(t *testing.T) []example { return protocoltest.Examples(t) }

// extraExamples are variants that the docs do not show but the round trip
// must hold for too (optional fields, other enum values).
var extraExamples = []example{
	{Direction: "server", Name: "unsubscribed_removed", Frame: json.RawMessage(`{"type":"unsubscribed","data":{"channel_id":"ch_general","reason":"removed"}}`)},
	{Direction: "server", Name: "unsubscribed_deleted", Frame: json.RawMessage(`{"type":"unsubscribed","data":{"channel_id":"ch_general","reason":"deleted"}}`)},
	{Direction: "server", Name: "presence_update_offline", Frame: json.RawMessage(`{"type":"presence_update","data":{"user_id":2,"presence":"offline","status_text":""}}`)},
	{Direction: "server", Name: "error_escaped_message", Frame: json.RawMessage(`{"type":"error","data":{"code":"INVALID_MESSAGE","message":"unknown frame type \"subscrbe\""}}`)},
	{Direction: "server", Name: "message_create_unicode", Frame: json.RawMessage(`{"type":"message_create","data":{"id":"msg_2","channel_id":"ch_general","author":{"id":3,"display_name":"Zoë"},"content":"héllo 👋","created_at":1703523600,"attachments":[{"id":"att_1"}]}}`)},
	{Direction: "server", Name: "notification_without_data", Frame: json.RawMessage(`{"type":"notification","data":{"id":"n","type":"system","title":"","body":"","created_at":0,"data":{}}}`)},
}

func wire(t *testing.T, frame json.RawMessage) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Compact(&buf, frame); err != nil {
		t.Fatalf("compact %s: %v", frame, err)
	}
	return buf.Bytes()
}

// payloadOf returns a pointer to a new typed payload for a frame type, or
// nil for a type that carries no data.
func payloadOf(t *testing.T, typ string) any {
	t.Helper()
	switch typ {
	case protocol.TypeHeartbeat:
		return nil
	case protocol.TypeSubscribe, protocol.TypeUnsubscribe, protocol.TypeTyping:
		return &protocol.ChannelRef{}
	case protocol.TypeReady:
		return &protocol.Ready{}
	case protocol.TypeHeartbeatAck:
		return &protocol.HeartbeatAck{}
	case protocol.TypeMessageCreate:
		return &protocol.MessageCreate{}
	case protocol.TypeMessageUpdate:
		return &protocol.MessageUpdate{}
	case protocol.TypeMessageDelete:
		return &protocol.MessageDelete{}
	case protocol.TypeTypingStart:
		return &protocol.TypingStart{}
	case protocol.TypePresenceUpdate:
		return &protocol.PresenceUpdate{}
	case protocol.TypeNotification:
		return &protocol.Notification{}
	case protocol.TypeSessionRevoked:
		return &protocol.SessionRevoked{}
	case protocol.TypeError:
		return &protocol.Error{}
	case protocol.TypeSubscribed:
		return &protocol.Subscribed{}
	case protocol.TypeUnsubscribed:
		return &protocol.Unsubscribed{}
	}
	t.Fatalf("no payload type for frame type %q", typ)
	return nil
}

func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data")
	}
	return nil
}

// TestExampleFramesRoundTrip decodes every example into its typed payload
// and re-encodes it with MustEncode: the bytes must be identical.
func TestExampleFramesRoundTrip(t *testing.T) {
	for _, ex := range append(loadExamples(t), extraExamples...) {
		if ex.Extra {
			continue // no Go type holds its fields: TestExampleServerEventsDeliverable covers it
		}
		t.Run(ex.Direction+"/"+ex.Name, func(t *testing.T) {
			want := wire(t, ex.Frame)
			var f protocol.Frame
			var pos struct {
				ChannelID string `json:"channel_id"`
				Seq       uint64 `json:"seq"`
			}
			if ex.Positioned {
				var full struct {
					protocol.Frame
					ChannelID string `json:"channel_id"`
					Seq       uint64 `json:"seq"`
				}
				if err := decodeStrict(want, &full); err != nil || full.Seq == 0 {
					t.Fatalf("decode positioned envelope: %v (seq %d)", err, full.Seq)
				}
				f, pos.ChannelID, pos.Seq = full.Frame, full.ChannelID, full.Seq
			} else if err := decodeStrict(want, &f); err != nil {
				t.Fatalf("decode envelope: %v", err)
			}
			payload := payloadOf(t, f.Type)
			var data any
			if payload == nil {
				if f.Data != nil {
					t.Fatalf("%s carries data %s, want none", f.Type, f.Data)
				}
			} else {
				// Strict: every field of the example is a field of the type.
				if err := decodeStrict(f.Data, payload); err != nil {
					t.Fatalf("decode %s payload: %v", f.Type, err)
				}
				data = payload
			}
			got := protocol.MustEncode(f.Type, data)
			if ex.Positioned {
				got = protocol.Positioned(got, pos.ChannelID, pos.Seq)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("re-encoded frame differs\n got: %s\nwant: %s", got, want)
			}
		})
	}
}

// TestExampleClientFrames feeds every client example through
// DecodeClientFrame, the gateway's decoder.
func TestExampleClientFrames(t *testing.T) {
	for _, ex := range loadExamples(t) {
		if ex.Direction != "client" {
			continue
		}
		t.Run(ex.Name, func(t *testing.T) {
			b := wire(t, ex.Frame)
			cf, perr := protocol.DecodeClientFrame(b)
			if perr != nil {
				t.Fatalf("DecodeClientFrame(%s): %v", b, perr)
			}
			var data any
			if cf.ChannelID != "" {
				ref := protocol.ChannelRef{ChannelID: cf.ChannelID}
				if cf.HasSeq {
					ref.Seq = &cf.Seq
				}
				data = ref
			}
			if got := protocol.MustEncode(cf.Type, data); !bytes.Equal(got, b) {
				t.Fatalf("re-encoded client frame differs\n got: %s\nwant: %s", got, b)
			}
		})
	}
}

// TestExampleServerEventsDeliverable checks that every example a backend
// publishes passes ValidateEvent on its subject, and that the frames only
// the gateway sends are refused there.
func TestExampleServerEventsDeliverable(t *testing.T) {
	for _, ex := range loadExamples(t) {
		if ex.Direction != "server" {
			continue
		}
		t.Run(ex.Name, func(t *testing.T) {
			b := wire(t, ex.Frame)
			var f struct {
				Type string `json:"type"`
				Data struct {
					ChannelID string `json:"channel_id"`
				} `json:"data"`
			}
			if err := json.Unmarshal(b, &f); err != nil {
				t.Fatal(err)
			}
			if ex.Positioned {
				// What a client receives, never what a backend publishes.
				if _, err := protocol.ValidateEvent(protocol.ScopeChannel, f.Data.ChannelID, b); err == nil {
					t.Fatalf("ValidateEvent accepted the positioned frame %s from the bus", b)
				}
				return
			}
			var scopes []protocol.Scope
			switch ex.Subject {
			case "channel":
				scopes = []protocol.Scope{protocol.ScopeChannel, protocol.ScopeUser, protocol.ScopeBroadcast}
			case "user":
				scopes = []protocol.Scope{protocol.ScopeUser}
				if f.Type != protocol.TypeSessionRevoked {
					scopes = append(scopes, protocol.ScopeBroadcast)
				}
			case "":
				if !protocol.GatewayType(f.Type) {
					t.Fatalf("%s has no subject but is not a frame the gateway speaks", f.Type)
				}
				if _, err := protocol.ValidateEvent(protocol.ScopeUser, "", b); err == nil {
					t.Fatalf("ValidateEvent accepted %s from the bus", f.Type)
				}
				return
			default:
				t.Fatalf("unknown subject %q", ex.Subject)
			}
			for _, scope := range scopes {
				typ, err := protocol.ValidateEvent(scope, f.Data.ChannelID, b)
				if err != nil {
					t.Fatalf("scope %d: ValidateEvent: %v", scope, err)
				}
				if typ != f.Type {
					t.Fatalf("type = %q, want %q", typ, f.Type)
				}
			}
		})
	}
}

// documentPath is the protocol document, beside the repository
// (../shared/ in a checkout, as in CI).
const documentPath = "../../../shared/ocvr-websocket-protocol.txt"

// documentFrames returns every example frame of the protocol document,
// compacted: each block of lines from a line "{" to its matching "}" that
// is a JSON object with a "type".
func documentFrames(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile(documentPath)
	if errors.Is(err, os.ErrNotExist) {
		t.Skipf("%s not found (module used outside its checkout)", documentPath)
	}
	if err != nil {
		t.Fatal(err)
	}
	var frames []string
	var block []string
	for _, line := range strings.Split(string(raw), "\n") {
		if block == nil && line != "{" {
			continue
		}
		block = append(block, line)
		text := strings.Join(block, "\n")
		if strings.Count(text, "{") != strings.Count(text, "}") {
			continue
		}
		block = nil
		var f struct {
			Type *string `json:"type"`
		}
		if json.Unmarshal([]byte(text), &f) != nil || f.Type == nil {
			continue // the ticket response, the envelope's sketch
		}
		var buf bytes.Buffer
		if err := json.Compact(&buf, []byte(text)); err != nil {
			t.Fatal(err)
		}
		frames = append(frames, buf.String())
	}
	return frames
}

// TestExamplesAreTheDocument keeps testdata/frames.json the document's
// own: every example frame of the protocol document is an entry marked
// "document", byte for byte once compacted, and every such entry is in the
// document.
func TestExamplesAreTheDocument(t *testing.T) {
	doc := documentFrames(t)
	if len(doc) < 13 {
		t.Fatalf("found %d example frames in %s, want the 13 it shows", len(doc), documentPath)
	}
	inDoc := map[string]bool{}
	for _, f := range doc {
		inDoc[f] = true
	}
	marked := map[string]bool{}
	for _, ex := range loadExamples(t) {
		if !ex.Document {
			continue
		}
		w := string(wire(t, ex.Frame))
		marked[w] = true
		if !inDoc[w] {
			t.Errorf("%s is marked \"document\" but the document does not show it:\n%s", ex.Name, w)
		}
	}
	for _, f := range doc {
		if !marked[f] {
			t.Errorf("the document's example is not a \"document\" entry of testdata/frames.json:\n%s", f)
		}
	}
}

// TestExamplesMatchDocs keeps testdata/frames.json and the docs one table:
// every example appears verbatim in gateway/README.md, and every frame line
// of gateway/README.md and pkg/README.md is an example. When this fails,
// change the doc and frames.json together.
func TestExamplesMatchDocs(t *testing.T) {
	known := map[string]bool{}
	for _, ex := range loadExamples(t) {
		known[string(wire(t, ex.Frame))] = true
	}
	for _, doc := range []struct {
		path    string
		showAll bool // the doc must show every example
	}{
		{"../../gateway/README.md", true},
		{"../README.md", false},
	} {
		raw, err := os.ReadFile(doc.path)
		if errors.Is(err, os.ErrNotExist) {
			t.Logf("%s not found (module used outside its repository): skipped", doc.path)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		shown := map[string]bool{}
		for i, line := range strings.Split(string(raw), "\n") {
			line = strings.TrimSpace(line)
			if !strings.HasPrefix(line, `{"type":`) {
				continue
			}
			shown[line] = true
			if !known[line] {
				t.Errorf("%s:%d shows a frame that is not in testdata/frames.json:\n%s", doc.path, i+1, line)
			}
		}
		if doc.showAll {
			for w := range known {
				if !shown[w] {
					t.Errorf("%s does not show the example %s", doc.path, w)
				}
			}
		}
	}
}

// TestExamplesCoverEveryType makes sure the shared example table shows
// every frame type of DESIGN.md §2 in its direction.
func TestExamplesCoverEveryType(t *testing.T) {
	seen := map[string]bool{}
	for _, ex := range loadExamples(t) {
		var f protocol.Frame
		if err := json.Unmarshal(ex.Frame, &f); err != nil {
			t.Fatal(err)
		}
		seen[ex.Direction+"/"+f.Type] = true
	}
	want := []string{
		"client/" + protocol.TypeHeartbeat, "client/" + protocol.TypeSubscribe,
		"client/" + protocol.TypeUnsubscribe, "client/" + protocol.TypeTyping,
	}
	for _, typ := range []string{
		protocol.TypeHeartbeatAck, protocol.TypeMessageCreate, protocol.TypeMessageUpdate,
		protocol.TypeMessageDelete, protocol.TypeTypingStart, protocol.TypePresenceUpdate,
		protocol.TypeNotification, protocol.TypeSessionRevoked, protocol.TypeError,
		protocol.TypeReady, protocol.TypeSubscribed, protocol.TypeUnsubscribed,
	} {
		want = append(want, "server/"+typ)
	}
	for _, w := range want {
		if !seen[w] {
			t.Errorf("testdata/frames.json has no %s example", w)
		}
	}
}

func TestDecodeClientFrameAccepts(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		typ     string
		channel string
	}{
		{"heartbeat", `{"type":"heartbeat"}`, protocol.TypeHeartbeat, ""},
		{"heartbeat with ignored data", `{"type":"heartbeat","data":{"x":1}}`, protocol.TypeHeartbeat, ""},
		{"heartbeat with null data", `{"type":"heartbeat","data":null}`, protocol.TypeHeartbeat, ""},
		{"unknown fields ignored", `{"type":"subscribe","data":{"channel_id":"ch_1","extra":[1,2]},"id":7}`, protocol.TypeSubscribe, "ch_1"},
		{"whitespace", " \n{ \"type\" : \"typing\" , \"data\" : { \"channel_id\" : \"a-B_9\" } }\n", protocol.TypeTyping, "a-B_9"},
		{"unsubscribe", `{"type":"unsubscribe","data":{"channel_id":"x"}}`, protocol.TypeUnsubscribe, "x"},
		{"64-char channel id", `{"type":"subscribe","data":{"channel_id":"` + strings.Repeat("a", 64) + `"}}`, protocol.TypeSubscribe, strings.Repeat("a", 64)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cf, perr := protocol.DecodeClientFrame([]byte(tt.in))
			if perr != nil {
				t.Fatalf("DecodeClientFrame(%s): %v", tt.in, perr)
			}
			if cf.Type != tt.typ || cf.ChannelID != tt.channel {
				t.Fatalf("got %+v, want type %q channel %q", cf, tt.typ, tt.channel)
			}
		})
	}
}

func TestDecodeClientFrameRejects(t *testing.T) {
	const badChannel = `subscribe: "data.channel_id" must match ^[A-Za-z0-9_-]{1,64}$`
	sub := func(channelJSON string) string {
		return `{"type":"subscribe","data":{"channel_id":` + channelJSON + `}}`
	}
	tests := []struct {
		name string
		in   string
		msg  string // the exact error message
	}{
		{"empty frame", ``, `empty frame`},
		{"only whitespace", " \n\t", `empty frame`},
		{"invalid JSON", `{"type":`, `frame is not valid JSON: syntax error at offset 8`},
		{"invalid JSON token", `{type:"heartbeat"}`, `frame is not valid JSON: syntax error at offset 2`},
		{"trailing garbage", `{"type":"heartbeat"} x`, `frame is not valid JSON: syntax error at offset 22`},
		{"invalid UTF-8", "{\"type\":\"heartbeat\",\"x\":\"\xff\xfe\"}", `frame is not valid UTF-8`},
		{"array", `[{"type":"heartbeat"}]`, `frame is not a JSON object`},
		{"string", `"heartbeat"`, `frame is not a JSON object`},
		{"number", `42`, `frame is not a JSON object`},
		{"null", `null`, `frame is not a JSON object`},
		{"boolean", `true`, `frame is not a JSON object`},
		{"missing type", `{"data":{"channel_id":"ch_general"}}`, `missing "type"`},
		{"null type", `{"type":null}`, `missing "type"`},
		{"type is a number", `{"type":1}`, `"type" must be a string`},
		{"type is an object", `{"type":{"name":"heartbeat"}}`, `"type" must be a string`},
		{"unknown type", `{"type":"subscrbe","data":{"channel_id":"ch_general"}}`, `unknown frame type "subscrbe"`},
		{"server type from client", `{"type":"message_create","data":{}}`, `unknown frame type "message_create"`},
		{"empty type", `{"type":""}`, `unknown frame type ""`},
		{"long unknown type is truncated", `{"type":"` + strings.Repeat("x", 100) + `"}`, `unknown frame type "` + strings.Repeat("x", 64) + `…"`},
		{"missing data", `{"type":"subscribe"}`, `subscribe needs "data":{"channel_id":"…"}`},
		{"null data", `{"type":"unsubscribe","data":null}`, `unsubscribe needs "data":{"channel_id":"…"}`},
		{"data is a string", `{"type":"typing","data":"ch_general"}`, `typing: "data" must be an object`},
		{"data is an array", `{"type":"subscribe","data":["ch_general"]}`, `subscribe: "data" must be an object`},
		{"data is a number", `{"type":"subscribe","data":7}`, `subscribe: "data" must be an object`},
		{"channel_id missing", `{"type":"subscribe","data":{}}`, `subscribe: missing "data.channel_id"`},
		{"channel_id misspelled", `{"type":"subscribe","data":{"channel":"ch_general"}}`, `subscribe: missing "data.channel_id"`},
		{"channel_id null", sub(`null`), `subscribe: missing "data.channel_id"`},
		{"channel_id number", sub(`12`), `subscribe: "data.channel_id" must be a string`},
		{"channel_id object", sub(`{"id":"ch_general"}`), `subscribe: "data.channel_id" must be a string`},
		{"channel_id array", sub(`["ch_general"]`), `subscribe: "data.channel_id" must be a string`},
		{"channel_id bool", sub(`true`), `subscribe: "data.channel_id" must be a string`},
		{"channel_id wildcard tail", sub(`"ch.>"`), badChannel},
		{"channel_id star", sub(`"*"`), badChannel},
		{"channel_id gt", sub(`">"`), badChannel},
		{"channel_id space", sub(`"a b"`), badChannel},
		{"channel_id dot", sub(`"a.b"`), badChannel},
		{"channel_id 65 chars", sub(`"` + strings.Repeat("a", 65) + `"`), badChannel},
		{"channel_id non-ASCII", sub(`"café"`), badChannel},
		{"channel_id escaped non-ASCII", sub(`"caf\u00e9"`), badChannel},
		{"channel_id escaped dot", sub(`"a\u002eb"`), badChannel},
		{"channel_id empty", sub(`""`), badChannel},
		{"channel_id newline", sub(`"a\nb"`), badChannel},
		{"channel_id NUL", sub(`"a\u0000"`), badChannel},
		{"typing bad channel", `{"type":"typing","data":{"channel_id":"a.*"}}`, `typing: "data.channel_id" must match ^[A-Za-z0-9_-]{1,64}$`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cf, perr := protocol.DecodeClientFrame([]byte(tt.in))
			if perr == nil {
				t.Fatalf("DecodeClientFrame(%q) = %+v, want an error", tt.in, cf)
			}
			if perr.Code != protocol.CodeInvalidMessage {
				t.Errorf("code = %q, want %q", perr.Code, protocol.CodeInvalidMessage)
			}
			if perr.Message != tt.msg {
				t.Errorf("message = %q\n          want %q", perr.Message, tt.msg)
			}
			if perr.ChannelID != "" {
				t.Errorf("channel_id = %q on a malformed frame, want none", perr.ChannelID)
			}
			if cf != (protocol.ClientFrame{}) {
				t.Errorf("frame = %+v alongside an error, want zero", cf)
			}
			// The error frame is itself a valid server frame.
			var f struct {
				Type string         `json:"type"`
				Data protocol.Error `json:"data"`
			}
			if err := decodeStrict(perr.Frame(), &f); err != nil {
				t.Fatalf("error frame %s: %v", perr.Frame(), err)
			}
			if f.Type != protocol.TypeError || f.Data.Code != perr.Code || f.Data.Message != perr.Message {
				t.Errorf("error frame = %s", perr.Frame())
			}
		})
	}
}

func TestProtocolErrorFrame(t *testing.T) {
	tests := []struct {
		err  protocol.ProtocolError
		want string
	}{
		{protocol.ProtocolError{Code: protocol.CodeNotMember, Message: "not a member", ChannelID: "ch_staff"},
			`{"type":"error","data":{"code":"NOT_MEMBER","message":"not a member","channel_id":"ch_staff"}}`},
		{protocol.ProtocolError{Code: protocol.CodeRateLimited, Message: "slow down"},
			`{"type":"error","data":{"code":"RATE_LIMITED","message":"slow down"}}`},
	}
	for _, tt := range tests {
		if got := string(tt.err.Frame()); got != tt.want {
			t.Errorf("Frame() = %s, want %s", got, tt.want)
		}
		if got, want := tt.err.Error(), tt.err.Code+": "+tt.err.Message; got != want {
			t.Errorf("Error() = %q, want %q", got, want)
		}
	}
}

func TestValidChannelID(t *testing.T) {
	tests := []struct {
		id   string
		want bool
	}{
		{"ch_general", true},
		{"a", true},
		{"A-Z_0-9", true},
		{"-", true},
		{strings.Repeat("x", 64), true},
		{"", false},
		{strings.Repeat("x", 65), false},
		{"ch.>", false},
		{"*", false},
		{">", false},
		{"a b", false},
		{"a.b", false},
		{"a\tb", false},
		{"café", false},
		{"ch\x00", false},
		{"ch/1", false},
		{"$SYS", false},
	}
	for _, tt := range tests {
		if got := protocol.ValidChannelID(tt.id); got != tt.want {
			t.Errorf("ValidChannelID(%q) = %v, want %v", tt.id, got, tt.want)
		}
		err := protocol.CheckChannelID(tt.id)
		if (err == nil) != tt.want {
			t.Errorf("CheckChannelID(%q) = %v, want valid=%v", tt.id, err, tt.want)
		}
		if err != nil && !errors.Is(err, protocol.ErrInvalidChannelID) {
			t.Errorf("CheckChannelID(%q) = %v, want it to wrap ErrInvalidChannelID", tt.id, err)
		}
	}
}

func TestParseUserID(t *testing.T) {
	tests := []struct {
		in   string
		want int64 // 0: an error
	}{
		{"1", 1},
		{"42", 42},
		{"9223372036854775807", 9223372036854775807},
		{"0", 0},
		{"00", 0},
		{"-1", 0},
		{"01", 0},
		{"+1", 0},
		{"9223372036854775808", 0},  // overflow by one
		{"18446744073709551616", 0}, // 2^64
		{"99999999999999999999", 0},
		{" 1", 0},
		{"1 ", 0},
		{"1 2", 0},
		{"", 0},
		{"1e3", 0},
		{"0x10", 0},
		{"1.0", 0},
		{"١", 0}, // Arabic-Indic digit one
		{"1\n", 0},
	}
	for _, tt := range tests {
		got, err := protocol.ParseUserID(tt.in)
		if tt.want == 0 {
			if err == nil {
				t.Errorf("ParseUserID(%q) = %d, want an error", tt.in, got)
			} else if !strings.Contains(err.Error(), "invalid user id") {
				t.Errorf("ParseUserID(%q) error %q does not say what is wrong", tt.in, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseUserID(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
}

func TestCheckUserID(t *testing.T) {
	for _, id := range []int64{0, -1, -9223372036854775808} {
		if err := protocol.CheckUserID(id); !errors.Is(err, protocol.ErrInvalidUserID) {
			t.Errorf("CheckUserID(%d) = %v, want ErrInvalidUserID", id, err)
		}
	}
	for _, id := range []int64{1, 9223372036854775807} {
		if err := protocol.CheckUserID(id); err != nil {
			t.Errorf("CheckUserID(%d) = %v", id, err)
		}
	}
}

func TestShouldReconnect(t *testing.T) {
	tests := []struct {
		code int
		want bool
	}{
		{protocol.CloseNormal, false},
		{protocol.CloseGoingAway, true},
		{protocol.CloseMessageTooBig, true},
		{protocol.CloseInternalError, true},
		{protocol.CloseServiceRestart, true},
		{protocol.CloseTryAgainLater, true},
		{protocol.CloseInvalidTicket, false},
		{protocol.CloseSessionRevoked, false},
		{protocol.CloseHeartbeatTimeout, true},
		{protocol.CloseRateLimited, true},
		{protocol.CloseSlowConsumer, true},
		{protocol.CloseTooManyConns, false},
	}
	for _, tt := range tests {
		if got := protocol.ShouldReconnect(tt.code); got != tt.want {
			t.Errorf("ShouldReconnect(%d) = %v, want %v", tt.code, got, tt.want)
		}
	}
}

func TestEncode(t *testing.T) {
	if got, want := string(protocol.MustEncode(protocol.TypeHeartbeat, nil)), `{"type":"heartbeat"}`; got != want {
		t.Errorf("MustEncode(heartbeat, nil) = %s, want %s", got, want)
	}
	if _, err := protocol.Encode("x", func() {}); err == nil {
		t.Error("Encode of an unmarshalable payload succeeded")
	}
	defer func() {
		if recover() == nil {
			t.Error("MustEncode of an unmarshalable payload did not panic")
		}
	}()
	protocol.MustEncode("x", make(chan int))
}

func TestErrorCodesComplete(t *testing.T) {
	want := map[string]bool{
		"INVALID_TICKET": true, "NOT_SUBSCRIBED": true, "CHANNEL_NOT_FOUND": true, "NOT_MEMBER": true,
		"INVALID_MESSAGE": true, "RATE_LIMITED": true, "TOO_MANY_SUBSCRIPTIONS": true, "UNAVAILABLE": true,
	}
	if len(protocol.ErrorCodes) != len(want) {
		t.Fatalf("ErrorCodes = %v, want %d codes", protocol.ErrorCodes, len(want))
	}
	for _, c := range protocol.ErrorCodes {
		if !want[c] {
			t.Errorf("unexpected error code %q", c)
		}
	}
}

func TestPositioned(t *testing.T) {
	for _, tc := range []struct {
		in, ch string
		seq    uint64
		want   string
	}{
		{`{"type":"x","data":{}}`, "ch_a", 42, `{"type":"x","data":{},"channel_id":"ch_a","seq":42}`},
		{`{"type":"x","data":{}}`, "", 7, `{"type":"x","data":{},"seq":7}`},
		{"{\"type\":\"x\",\"data\":{}} \n", "", 1, `{"type":"x","data":{},"seq":1}`},
	} {
		if got := string(protocol.Positioned([]byte(tc.in), tc.ch, tc.seq)); got != tc.want {
			t.Errorf("Positioned(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}
