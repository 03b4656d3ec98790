package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The signature against published vectors: a mistake in the encoding would
// otherwise show only as Centrifugo refusing every connect.
func TestSignHS256(t *testing.T) {
	rfcKey, err := base64.RawURLEncoding.DecodeString("AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow")
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	for _, tc := range []struct {
		name            string
		secret          []byte
		header, payload string // JSON, as signed
		want            string
	}{
		{
			name:    "jwt.io example",
			secret:  []byte("your-256-bit-secret"),
			header:  `{"alg":"HS256","typ":"JWT"}`,
			payload: `{"sub":"1234567890","name":"John Doe","iat":1516239022}`,
			want:    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
		},
		{
			name:    "RFC 7515 appendix A.1 (line breaks in the JSON are signed as they are)",
			secret:  rfcKey,
			header:  "{\"typ\":\"JWT\",\r\n \"alg\":\"HS256\"}",
			payload: "{\"iss\":\"joe\",\r\n \"exp\":1300819380,\r\n \"http://example.com/is_root\":true}",
			want:    "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := signHS256(tc.secret, enc([]byte(tc.header)), enc([]byte(tc.payload))); got != tc.want {
				t.Errorf("signHS256 =\n %s\nwant\n %s", got, tc.want)
			}
		})
	}
}

func TestConnectToken(t *testing.T) {
	for _, tc := range []struct {
		name        string
		secret, sub string
		exp         int64
		wantPayload string
	}{
		{"a loadgen user", "bench-secret", "1000000", 1767229200, `{"sub":"1000000","exp":1767229200}`},
		{"characters JSON escapes", "k", `a"b\c`, 1, `{"sub":"a\"b\\c","exp":1}`},
		{"empty user (anonymous in Centrifugo)", "k", "", 0, `{"sub":"","exp":0}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := connectToken([]byte(tc.secret), tc.sub, tc.exp)
			if err != nil {
				t.Fatal(err)
			}
			parts := strings.Split(tok, ".")
			if len(parts) != 3 {
				t.Fatalf("%q: want 3 parts, got %d", tok, len(parts))
			}
			for i, want := range []string{`{"alg":"HS256","typ":"JWT"}`, tc.wantPayload} {
				got, err := base64.RawURLEncoding.DecodeString(parts[i])
				if err != nil {
					t.Fatalf("part %d: %v", i, err)
				}
				if string(got) != want {
					t.Errorf("part %d = %s, want %s", i, got, want)
				}
			}
			// Checked independently of signHS256: the MAC of the first two
			// parts as sent.
			mac := hmac.New(sha256.New, []byte(tc.secret))
			mac.Write([]byte(parts[0] + "." + parts[1]))
			if want := base64.RawURLEncoding.EncodeToString(mac.Sum(nil)); parts[2] != want {
				t.Errorf("signature %s, want %s", parts[2], want)
			}
		})
	}
}

// ratio divides the OCVR report's figures by Centrifugo's, column by name.
func TestRatio(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, connects, cpu float64) string {
		r := stormReport("x", 500, 200, []float64{10, 20}, 1e9, procStat{}, procStat{}, "")
		r.Workload = "storm"
		r.Rows[0][2], r.Rows[0][7] = connects, cpu
		b, _ := json.Marshal(r)
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	oc, cf := write("ocvr.json", 1254, 0.6), write("cf.json", 1930, 0.5)
	out := filepath.Join(dir, "ratio.json")
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"ratio", "--ocvr", oc, "--centrifugo", cf, "--json", out}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var rep report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"connects/s": 0.65, "server CPU ms/connect": 1.2, "p50 ms": 1}
	for _, row := range rep.Rows {
		if w, ok := want[row[0].(string)]; ok && row[3] != w {
			t.Errorf("%s: ratio %v, want %v", row[0], row[3], w)
		}
	}
	if !strings.Contains(stdout.String(), "| connects/s | 1254 | 1930 | 0.65 |") {
		t.Errorf("table:\n%s", stdout.String())
	}
}
