package protocol

import (
	"bytes"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// busEventSchema is the published JSON Schema of bus payloads: the
// gateways' rule (ValidateEvent) for backends in other languages. The
// differential test against ValidateEvent itself runs in make
// test-examples (examples/node/test/schema.test.mjs, with a JSON Schema
// validator); this test keeps the constants the schema copies from this
// package in step, with go test alone.
const busEventSchema = "busevent.schema.json"

func loadSchema(t *testing.T) map[string]any {
	t.Helper()
	b, err := os.ReadFile(busEventSchema)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var s map[string]any
	if err := dec.Decode(&s); err != nil {
		t.Fatalf("%s: %v", busEventSchema, err)
	}
	return s
}

// at walks the schema along keys.
func at(t *testing.T, v any, keys ...string) any {
	t.Helper()
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("schema: no object at %q", k)
		}
		if v, ok = m[k]; !ok {
			t.Fatalf("schema: no %q", strings.Join(keys, "/"))
		}
	}
	return v
}

func strs(t *testing.T, v any) []string {
	t.Helper()
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	slices.Sort(out)
	return out
}

// frameTypes returns the value of every Type* constant of protocol.go, read
// from the source, so that a type added there is checked here too.
func frameTypes(t *testing.T) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "protocol.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, spec := range g.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, name := range vs.Names {
				if !strings.HasPrefix(name.Name, "Type") || i >= len(vs.Values) {
					continue
				}
				if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
					v, _ := strconv.Unquote(lit.Value)
					types = append(types, v)
				}
			}
		}
	}
	if len(types) < 10 {
		t.Fatalf("found only %d Type constants in protocol.go", len(types))
	}
	return types
}

func TestSchemaCopiesTheGatewayRule(t *testing.T) {
	s := loadSchema(t)
	// The types never taken from the bus: exactly GatewayType's.
	var gateway []string
	for _, typ := range frameTypes(t) {
		if GatewayType(typ) {
			gateway = append(gateway, typ)
		}
	}
	slices.Sort(gateway)
	if got := strs(t, at(t, s, "properties", "type", "not", "enum")); !slices.Equal(got, gateway) {
		t.Errorf("schema refuses types %v, the gateways %v", got, gateway)
	}
	// presence_update's rule.
	pres := at(t, at(t, s, "allOf").([]any)[0], "then", "properties", "data")
	if got := strs(t, at(t, pres, "required")); !slices.Equal(got, []string{"presence", "user_id"}) {
		t.Errorf("presence_update requires %v", got)
	}
	if got := strs(t, at(t, pres, "properties", "presence", "enum")); !slices.Equal(got, []string{PresenceOffline, PresenceOnline}) {
		t.Errorf("presence enum %v", got)
	}
	if got := at(t, pres, "properties", "user_id", "maximum").(json.Number).String(); got != strconv.FormatInt(math.MaxInt64, 10) {
		t.Errorf("user_id maximum %s, want MaxInt64", got)
	}
	// session_revoked: refused on channel and broadcast subjects only.
	for _, scope := range []string{"channel", "broadcast"} {
		if b, _ := json.Marshal(at(t, s, "$defs", scope)); !bytes.Contains(b, []byte(`"not":{"const":"`+TypeSessionRevoked+`"}`)) {
			t.Errorf("$defs/%s does not refuse %s: %s", scope, TypeSessionRevoked, b)
		}
	}
	// What the schema cannot say is said in its $comment, with this package's numbers.
	comment := at(t, s, "$comment").(string)
	for _, want := range []string{strconv.Itoa(MaxEventSize) + " bytes", "UTF-8", "repeated", "channel_id", "1e3"} {
		if !strings.Contains(comment, want) {
			t.Errorf("$comment does not mention %q", want)
		}
	}
}

// Every bus event of the example frames is valid on its subject (a channel
// event on its channel's): the schema's accepting side, as ValidateEvent
// sees it.
func TestSchemaExamplesValid(t *testing.T) {
	b, err := os.ReadFile("testdata/frames.json")
	if err != nil {
		t.Fatal(err)
	}
	var frames []struct {
		Name    string          `json:"name"`
		Subject string          `json:"subject"`
		Frame   json.RawMessage `json:"frame"`
	}
	if err := json.Unmarshal(b, &frames); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range frames {
		var buf bytes.Buffer
		if err := json.Compact(&buf, f.Frame); err != nil {
			t.Fatal(err)
		}
		var head struct {
			Data struct {
				ChannelID string `json:"channel_id"`
			} `json:"data"`
		}
		_ = json.Unmarshal(buf.Bytes(), &head)
		switch f.Subject {
		case "channel":
			_, err = ValidateEvent(ScopeChannel, head.Data.ChannelID, buf.Bytes())
		case "user":
			_, err = ValidateEvent(ScopeUser, "", buf.Bytes())
		default: // the gateway's own frames, and frames as clients receive them (positioned)
			continue
		}
		n++
		if err != nil {
			t.Errorf("%s: %v", f.Name, err)
		}
	}
	if n < 5 {
		t.Fatalf("only %d bus events in frames.json", n)
	}
}
