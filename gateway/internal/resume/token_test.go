package resume

import (
	"strings"
	"testing"
)

func TestTokens(t *testing.T) {
	a, err := NewSigner([]byte("0123456789abcdef0123"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewSigner([]byte("another key, also long"))
	claims := Claims{UserID: 42, SessionID: "sess_abc", Issued: 1703523600}
	tok := a.Mint(claims)
	got, err := a.Check(tok)
	if err != nil || got != claims {
		t.Fatalf("Check(Mint) = %+v, %v", got, err)
	}
	// Flip one character of the body: the user id changes, the MAC does not.
	forged := []byte(tok)
	forged[len(prefix)+3] ^= 1
	cases := []struct {
		name, tok string
	}{
		{"other key", b.Mint(claims)},
		{"forged body", string(forged)},
		{"truncated mac", tok[:len(tok)-2]},
		{"no prefix", strings.TrimPrefix(tok, prefix)},
		{"empty", ""},
		{"garbage", "rt1_!!!.???"},
		{"too long", prefix + strings.Repeat("A", maxToken)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := a.Check(c.tok); err == nil {
				t.Fatalf("Check(%q) accepted", c.tok)
			}
		})
	}
	if _, err := NewSigner([]byte("short")); err == nil {
		t.Fatal("a short key was accepted")
	}
}
