package origin

import "testing"

func TestAllows(t *testing.T) {
	list, err := ParseList([]string{
		"http://localhost:*", "http://127.0.0.1:*", " https://app.example.com ", "https://*.ocvr.dev",
		"http://[::1]:8000", "", "https://PORTAL.example.org:443",
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		origin string
		want   bool
	}{
		{"http://localhost:5173", true},
		{"http://localhost", true}, // port 80 is no port
		{"http://LOCALHOST:3000", true},
		{"http://127.0.0.1:8080", true},
		{"https://app.example.com", true},
		{"https://app.example.com:443", true},
		{"https://web.ocvr.dev", true},
		{"https://a.b.ocvr.dev", true},
		{"http://[::1]:8000", true},
		{"https://portal.example.org", true},

		{"", false},
		{"null", false},
		{"https://localhost:5173", false}, // scheme matters
		{"http://localhost:5173.evil.example", false},
		{"http://localhost.evil.example", false},
		{"http://evil.example/http://localhost:1", false},
		{"http://user@localhost:1", false},
		{"http://app.example.com", false},
		{"https://app.example.com:8443", false},
		{"https://evil-app.example.com", false},
		{"https://ocvr.dev", false}, // the apex is not a subdomain
		{"https://evilocvr.dev", false},
		{"https://.ocvr.dev", false},
		{"http://[::1]:8001", false},
		{"http://localhost:", false},
		{"http://localhost:*", false},
	}
	for _, tc := range tests {
		if got := list.Allows(tc.origin); got != tc.want {
			t.Errorf("Allows(%q) = %v, want %v", tc.origin, got, tc.want)
		}
	}
}

func TestAny(t *testing.T) {
	list, err := ParseList([]string{"*"})
	if err != nil {
		t.Fatal(err)
	}
	if !list.Allows("https://anything.example") {
		t.Error("* did not allow an origin")
	}
	var none List
	if none.Allows("http://localhost:1") {
		t.Error("an empty list allowed an origin")
	}
}

func TestParseRejects(t *testing.T) {
	for _, p := range []string{
		"localhost:3000", "http://", "http://a/b", "http://a?x", "http://u@a", "http://a:port",
		"http://*", "http://a.*.com", "http://*a.com", "://a", "1http://a", "http://a:", "http://[::1",
	} {
		if _, err := Parse(p); err == nil {
			t.Errorf("Parse(%q) accepted", p)
		}
	}
}
