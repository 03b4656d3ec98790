package origin_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/ocvr/realtime/pkg/origin"
)

func mustList(t *testing.T, entries ...string) origin.List {
	t.Helper()
	l, err := origin.ParseList(entries)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestAllows: every form of entry against well-formed origins and the
// disguises a hostile page or client could try.
func TestAllows(t *testing.T) {
	tests := []struct {
		name    string
		entries []string
		origin  string
		want    bool
	}{
		// Exact origins.
		{"exact", []string{"https://app.example.com"}, "https://app.example.com", true},
		{"exact, other host", []string{"https://app.example.com"}, "https://evil.example", false},
		{"exact, other scheme", []string{"https://app.example.com"}, "http://app.example.com", false},
		{"exact, ws scheme", []string{"https://app.example.com"}, "wss://app.example.com", false},
		{"exact, explicit port", []string{"https://app.example.com"}, "https://app.example.com:8443", false},
		{"exact, subdomain", []string{"https://app.example.com"}, "https://x.app.example.com", false},
		{"exact, apex", []string{"https://app.example.com"}, "https://example.com", false},
		{"pattern with blanks", []string{" https://app.example.com ", "", "  "}, "https://app.example.com", true},

		// Case.
		{"upper-case origin", []string{"https://app.example.com"}, "HTTPS://APP.Example.COM", true},
		{"upper-case pattern", []string{"HTTPS://Caps.Example"}, "https://caps.example", true},

		// Ports.
		{"port", []string{"http://localhost:5173"}, "http://localhost:5173", true},
		{"port, another", []string{"http://localhost:5173"}, "http://localhost:5174", false},
		{"port, none", []string{"http://localhost:5173"}, "http://localhost", false},
		{"any port", []string{"http://localhost:*"}, "http://localhost:3000", true},
		{"any port, or none", []string{"http://localhost:*"}, "http://localhost", true},
		{"any port, highest", []string{"http://localhost:*"}, "http://localhost:65535", true},
		{"any port, out of range", []string{"http://localhost:*"}, "http://localhost:65536", false},
		{"any port, zero", []string{"http://localhost:*"}, "http://localhost:0", false},
		{"any port, leading zero", []string{"http://localhost:*"}, "http://localhost:03000", false},
		{"any port, sign", []string{"http://localhost:*"}, "http://localhost:+3000", false},
		{"any port, empty", []string{"http://localhost:*"}, "http://localhost:", false},
		{"any port, star", []string{"http://localhost:*"}, "http://localhost:*", false},
		{"any port, two ports", []string{"http://localhost:*"}, "http://localhost:1:2", false},
		{"any port, other scheme", []string{"http://localhost:*"}, "https://localhost:3000", false},
		{"default port in the pattern", []string{"https://portal.example.org:443"}, "https://portal.example.org", true},
		{"default port in the origin", []string{"https://app.example.com"}, "https://app.example.com:443", false},
		{"default http port in the origin", []string{"http://localhost:*"}, "http://localhost:80", false},

		// Subdomains.
		{"subdomain", []string{"https://*.example.com"}, "https://web.example.com", true},
		{"subdomain, two labels", []string{"https://*.example.com"}, "https://a.b.example.com", true},
		{"subdomain, apex", []string{"https://*.example.com"}, "https://example.com", false},
		{"subdomain, empty label", []string{"https://*.example.com"}, "https://.example.com", false},
		{"subdomain, empty inner label", []string{"https://*.example.com"}, "https://a..example.com", false},
		{"subdomain, glued", []string{"https://*.example.com"}, "https://evilexample.com", false},
		{"subdomain, other port", []string{"https://*.example.com"}, "https://web.example.com:8443", false},
		{"subdomain, any port", []string{"https://*.example.com:*"}, "https://web.example.com:8443", true},
		{"subdomain, star host", []string{"https://*.example.com"}, "https://*.example.com", false},

		// Suffix, prefix and delimiter tricks.
		{"suffix", []string{"https://app.example.com"}, "https://app.example.com.evil.example", false},
		{"suffix on the port", []string{"http://localhost:*"}, "http://localhost:5173.evil.example", false},
		{"suffix on the host", []string{"http://localhost:*"}, "http://localhost.evil.example", false},
		{"prefix", []string{"https://app.example.com"}, "https://evil-app.example.com", false},
		{"path smuggling", []string{"https://*.example.com"}, "https://evil.com/.example.com", false},
		{"fragment smuggling", []string{"https://*.example.com"}, "https://evil.com#.example.com", false},
		{"query smuggling", []string{"https://*.example.com"}, "https://evil.com?.example.com", false},
		{"backslash smuggling", []string{"https://*.example.com"}, `https://evil.com\.example.com`, false},
		{"path with an origin", []string{"http://localhost:*"}, "http://evil.example/http://localhost:1", false},
		{"trailing slash", []string{"https://app.example.com"}, "https://app.example.com/", false},
		{"trailing dot", []string{"https://app.example.com"}, "https://app.example.com.", false},
		{"trailing space", []string{"https://app.example.com"}, "https://app.example.com ", false},
		{"leading space", []string{"https://app.example.com"}, " https://app.example.com", false},
		{"inner space", []string{"https://*.example.com"}, "https://a b.example.com", false},

		// User info.
		{"userinfo", []string{"https://app.example.com"}, "https://x@app.example.com", false},
		{"userinfo with the host", []string{"https://app.example.com"}, "https://app.example.com@evil.example", false},
		{"userinfo and port", []string{"http://localhost:*"}, "http://user:pw@localhost:1", false},

		// Encodings.
		{"percent-encoded dot", []string{"https://app.example.com"}, "https://app%2eexample.com", false},
		{"percent-encoded subdomain", []string{"https://*.example.com"}, "https://x%2e.example.com", false},
		{"homoglyph", []string{"https://*.example.com"}, "https://аpp.example.com", false}, // Cyrillic а
		{"non-ASCII", []string{"https://*.example.com"}, "https://bücher.example.com", false},
		{"punycode", []string{"https://*.example.com"}, "https://xn--bcher-kva.example.com", true},
		{"NUL", []string{"https://*.example.com"}, "https://a\x00.example.com", false},

		// Opaque and malformed origins.
		{"null", []string{"https://app.example.com"}, "null", false},
		{"empty", []string{"https://app.example.com"}, "", false},
		{"file", []string{"https://app.example.com"}, "file://", false},
		{"no host", []string{"https://app.example.com"}, "https://", false},
		{"no scheme", []string{"https://app.example.com"}, "app.example.com", false},
		{"scheme-relative", []string{"https://app.example.com"}, "//app.example.com", false},
		{"garbage", []string{"https://app.example.com"}, "%zz", false},

		// IPv4 and IPv6.
		{"IPv4", []string{"http://127.0.0.1:*"}, "http://127.0.0.1:8080", true},
		{"IPv4, another", []string{"http://127.0.0.1:*"}, "http://127.0.0.2:8080", false},
		{"IPv6", []string{"http://[::1]:8000"}, "http://[::1]:8000", true},
		{"IPv6, another port", []string{"http://[::1]:8000"}, "http://[::1]:8001", false},
		{"IPv6, no brackets", []string{"http://[::1]:8000"}, "http://::1:8000", false},
		{"IPv6, zone", []string{"http://[fe80::1]:*"}, "http://[fe80::1%25eth0]:1", false},
		{"IPv6, v4 in brackets", []string{"http://127.0.0.1:*"}, "http://[127.0.0.1]:1", false},
		{"IPv6, long form in the pattern", []string{"http://[0:0:0:0:0:0:0:1]:*"}, "http://[::1]:3000", true},
		{"IPv6, junk after", []string{"http://[::1]:*"}, "http://[::1]x:1", false},

		// Other schemes.
		{"extension", []string{"chrome-extension://abcdefghijklmnop"}, "chrome-extension://abcdefghijklmnop", true},
		{"extension, another", []string{"chrome-extension://abcdefghijklmnop"}, "chrome-extension://ponmlkjihgfedcba", false},

		// Any.
		{"any", []string{"*"}, "https://anything.example", true},
		{"any, port", []string{"*"}, "http://anything.example:8080", true},
		{"any, null", []string{"*"}, "null", false},
		{"any, empty", []string{"*"}, "", false},
		{"any, path", []string{"*"}, "https://anything.example/", false},
		{"any, userinfo", []string{"*"}, "https://u@anything.example", false},
		{"any, default port", []string{"*"}, "https://anything.example:443", false},

		// Lists.
		{"second entry", []string{"https://a.example", "https://b.example"}, "https://b.example", true},
		{"empty list", nil, "http://localhost:1", false},
		{"blank list", []string{"", " "}, "http://localhost:1", false},
	}
	for _, tc := range tests {
		l := mustList(t, tc.entries...)
		if got := l.Allows(tc.origin); got != tc.want {
			t.Errorf("%s: %q allows %q = %v, want %v", tc.name, tc.entries, tc.origin, got, tc.want)
		}
	}
}

// TestParseRejects: entries outside the grammar fail, naming the entry, so
// a typo stops the binary at startup instead of allowing or refusing more
// than meant.
func TestParseRejects(t *testing.T) {
	for _, p := range []string{
		"localhost:3000", "//localhost", "http://", "http:///", "://a", "1http://a", "ht tp://a",
		"http://a/", "http://a/b", "http://a?x", "http://a#x", "http://u@a", "http://u:p@a", `http://a\b`,
		"http://a:", "http://a:port", "http://a:0", "http://a:65536", "http://a:080", "http://a:-1", "http://a:1:2",
		"http://*", "http://*:3000", "http://*.", "http://*.*.a.com", "http://a.*.com", "http://*a.com", "http://a*.com",
		"https://app-*.example.com", "http*://a", "http://[ab]c.com", "http://a?c.com",
		"http://a.com.", "http://a..com", "http://.a.com", "http://a b.com", "http://bücher.example", "http://a%2eb",
		"http://[::1", "http://[x]", "http://[::1]x", "http://[::1]:", "http://[fe80::1%25eth0]", "http://[127.0.0.1]",
		"http://*.[::1]", "**", "*:*", "null",
	} {
		if _, err := origin.Parse(p); err == nil {
			t.Errorf("Parse(%q) accepted", p)
		} else if !strings.Contains(err.Error(), strconv.Quote(p)) {
			t.Errorf("Parse(%q): error %q does not name the entry", p, err)
		}
		if _, err := origin.ParseList([]string{"http://localhost:*", p}); err == nil {
			t.Errorf("ParseList with %q accepted", p)
		}
	}
}

// TestDocumentedForms: the forms the package documentation and both READMEs
// list parse.
func TestDocumentedForms(t *testing.T) {
	for _, p := range []string{
		"https://app.example.com", "http://localhost:5173", "http://localhost:*", "https://*.example.com",
		"https://*.example.com:*", "http://[::1]:8080", "*", "http://127.0.0.1:*", "https://app.example.com:443",
		"chrome-extension://abcdefghijklmnop", "HTTPS://*.Example.COM",
	} {
		if _, err := origin.Parse(p); err != nil {
			t.Errorf("Parse(%q): %v", p, err)
		}
	}
}

// FuzzAllows: whatever the list allows is a plain scheme://host[:port] of
// one of its hosts.
func FuzzAllows(f *testing.F) {
	for _, s := range []string{"https://app.example.com", "http://localhost:1", "null", "https://a.b.example.com:8443", "http://[::1]:1"} {
		f.Add(s)
	}
	l, err := origin.ParseList([]string{"https://app.example.com", "http://localhost:*", "https://*.example.com:*", "http://[::1]:*"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, o string) {
		if !l.Allows(o) {
			return
		}
		lo := strings.ToLower(o)
		scheme, rest, ok := strings.Cut(lo, "://")
		if !ok || (scheme != "http" && scheme != "https") || strings.ContainsAny(rest, "/?#@\\% \t\r\n\x00") {
			t.Fatalf("allowed %q", o)
		}
		host := rest
		if i := strings.LastIndexByte(rest, ':'); i >= 0 && !strings.HasSuffix(rest, "]") {
			host = rest[:i]
		}
		if host != "app.example.com" && host != "localhost" && host != "[::1]" && !strings.HasSuffix(host, ".example.com") {
			t.Fatalf("allowed %q (host %q)", o, host)
		}
	})
}
