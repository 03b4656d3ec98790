package protocol

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestScanEnvelopeGrammar(t *testing.T) {
	deep := strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth)
	tooDeep := "[" + deep + "]"
	tests := []struct {
		name string
		in   string
	}{
		{"object", `{"a":1}`},
		{"empty object", `{}`},
		{"empty array", ` [ ] `},
		{"nested", `{"a":[1,{"b":[true,false,null]},"x"],"c":{}}`},
		{"numbers", `[0,-0,1,-1,10,1.5,-1.5e10,1E+2,1e-2,0.0]`},
		{"escapes", `["\"\\\/\b\f\n\r\t\u00e9\uD83D\uDE00"]`},
		{"lone surrogate escape", `["\ud800"]`},
		{"raw UTF-8", `["héllo 👋"]`},
		{"string", `"x"`},
		{"literals", `[true,false,null]`},
		{"whitespace everywhere", " \t\n\r{ \"a\" : [ 1 , 2 ] } \n"},
		{"as deep as encoding/json allows", deep},
		// Invalid.
		{"empty", ``},
		{"space", ` `},
		{"leading zero", `[01]`},
		{"bare minus", `[-]`},
		{"dot without digits", `[1.]`},
		{"exponent without digits", `[1e]`},
		{"plus sign", `[+1]`},
		{"hex", `[0x1]`},
		{"trailing comma in array", `[1,]`},
		{"trailing comma in object", `{"a":1,}`},
		{"missing colon", `{"a" 1}`},
		{"unquoted key", `{a:1}`},
		{"single quotes", `['a']`},
		{"bad escape", `["\x"]`},
		{"short unicode escape", `["\u12"]`},
		{"control character", "[\"a\x01\"]"},
		{"unterminated string", `["abc`},
		{"unterminated object", `{"a":1`},
		{"two values", `{} {}`},
		{"truncated literal", `[tru]`},
		{"misspelled literal", `[nul1]`},
		{"NaN", `[NaN]`},
		{"comment", `[1 /* x */]`},
		{"invalid UTF-8 in a string", "[\"\xff\"]"},
		{"overlong encoding", "[\"\xc0\xaf\"]"},
		{"encoded surrogate", "[\"\xed\xa0\x80\"]"},
		{"invalid UTF-8 outside a string", "[\xff]"},
		{"too deep", tooDeep},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := json.Valid([]byte(tt.in)) && utf8.ValidString(tt.in)
			_, err := scanEnvelope([]byte(tt.in))
			if (err == nil) != want {
				t.Fatalf("scanEnvelope(%.40q) = %v, json.Valid && utf8.Valid = %v", tt.in, err, want)
			}
			if err != nil && !errors.Is(err, errNotJSON) && !errors.Is(err, errNotUTF8) {
				t.Fatalf("error %v is neither errNotJSON nor errNotUTF8", err)
			}
		})
	}
}

func TestScanEnvelopeRoutingFields(t *testing.T) {
	in := `{"meta":{"type":"x","data":{}},"type":"channel_update","data":{"name":{"channel_id":"no"},"channel_id":"ch_1","user_id":42,"presence":"online","list":[{"user_id":1}]}}`
	env, err := scanEnvelope([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct{ name, got, want string }{
		{"type", string(env.typ), `"channel_update"`},
		{"channel_id", string(env.channelID), `"ch_1"`},
		{"user_id", string(env.userID), `42`},
		{"presence", string(env.presence), `"online"`},
	} {
		if f.got != f.want {
			t.Errorf("%s = %s, want %s", f.name, f.got, f.want)
		}
	}
	if !env.object || len(env.data) == 0 || env.data[0] != '{' {
		t.Errorf("object %v, data %.20s", env.object, env.data)
	}
}

// FuzzScanEnvelope: the scanner accepts exactly what json.Valid and
// utf8.Valid accept together (but for its own refusals of routing keys),
// and reads the routing fields a client reads.
func FuzzScanEnvelope(f *testing.F) {
	for _, s := range []string{`{"type":"x","data":{"channel_id":"a","user_id":1,"presence":"online"}}`,
		`[1,-0.5e3,"\u00e9",true,null]`, `{"a":{"b":[{}]}}`, `"\ud800"`, "\"\xff\"", `01`, `{"a":1,}`, ``} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		env, err := scanEnvelope(b)
		valid := json.Valid(b) && utf8.Valid(b)
		switch {
		case err == nil && !valid:
			t.Fatalf("accepted %q, which json.Valid/utf8.Valid refuse", b)
		case err != nil && (errors.Is(err, errNotJSON) || errors.Is(err, errNotUTF8)) && valid:
			t.Fatalf("refused valid %q: %v", b, err)
		case err != nil:
			return // a routing-key refusal (checked by FuzzValidateEvent)
		}
		var top map[string]json.RawMessage
		if json.Unmarshal(b, &top) != nil {
			if env.object {
				t.Fatalf("%q read as an object", b)
			}
			return
		}
		if top == nil {
			return // null
		}
		if string(env.typ) != string(top["type"]) {
			t.Fatalf("type %s, a client reads %s", env.typ, top["type"])
		}
		var data map[string]json.RawMessage
		if json.Unmarshal(top["data"], &data) != nil || data == nil {
			return
		}
		for _, k := range []struct {
			name string
			got  []byte
		}{{"channel_id", env.channelID}, {"user_id", env.userID}, {"presence", env.presence}} {
			if string(k.got) != string(data[k.name]) {
				t.Fatalf("%s %s, a client reads %s in %q", k.name, k.got, data[k.name], b)
			}
		}
	})
}
