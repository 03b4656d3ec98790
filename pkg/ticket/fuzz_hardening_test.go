package ticket_test

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ocvr/realtime/pkg/internal/kvutil"
	"github.com/ocvr/realtime/pkg/natsembed"
	"github.com/ocvr/realtime/pkg/ticket"
)

// FuzzTicket: the ticket parser and redeemer on a real store. Valid
// accepts exactly "wst_" + the canonical unpadded base64url of 32 bytes;
// Redeem refuses every fuzzed string with ErrMalformed (not that form) or
// ErrUnknown (that form, but no such ticket) — never success, never another
// error — and so does every mutation of a live ticket (the input XORed
// into it), while the live ticket itself stays redeemable.
func FuzzTicket(f *testing.F) {
	srv := natsembed.Test(f)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(nc.Close)
	ctx := context.Background()
	st, err := ticket.Open(ctx, nc, "")
	if err != nil {
		f.Fatal(err)
	}
	live, err := st.Mint(ctx, ada)
	if err != nil {
		f.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		f.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, ticket.DefaultBucket)
	if err != nil {
		f.Fatal(err)
	}
	zero := ticket.Prefix + base64.RawURLEncoding.EncodeToString(make([]byte, 32))
	for _, s := range []string{"", "wst_", zero, zero[:len(zero)-1], zero + "A", strings.Replace(zero, "wst_", "WST_", 1),
		zero[:len(zero)-1] + "B", "wst_" + strings.Repeat("/", 43), "wst_" + strings.Repeat("A", 42) + "=", "sess_" + zero[4:],
		"\x00", "wst_\xff", strings.Repeat("A", 47)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		valid := ticket.Valid(s)
		if valid {
			body, err := base64.RawURLEncoding.Strict().DecodeString(s[len(ticket.Prefix):])
			if len(s) != 47 || !strings.HasPrefix(s, ticket.Prefix) || err != nil || len(body) != 32 ||
				ticket.Prefix+base64.RawURLEncoding.EncodeToString(body) != s {
				t.Fatalf("Valid(%q) but it is not the canonical form of 256 bits", s)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		redeem := func(tk string) {
			if tk == live {
				return
			}
			id, err := st.Redeem(ctx, tk)
			switch {
			case err == nil:
				t.Fatalf("Redeem(%q) succeeded as %+v", tk, id)
			case !ticket.Valid(tk) && !errors.Is(err, ticket.ErrMalformed):
				t.Fatalf("Redeem(%q) of a malformed ticket: %v, want ErrMalformed", tk, err)
			case ticket.Valid(tk) && !errors.Is(err, ticket.ErrUnknown):
				t.Fatalf("Redeem(%q) of a well-formed unknown ticket: %v, want ErrUnknown", tk, err)
			}
		}
		redeem(s)
		// A mutation of the live ticket: bytes XORed with the input.
		m := []byte(live)
		for i := 0; i < len(s) && i < len(m); i++ {
			m[i] ^= s[i]
		}
		redeem(string(m))
		if _, err := kv.Get(ctx, kvutil.Hash(live)); err != nil {
			t.Fatalf("the live ticket is gone: %v", err)
		}
	})
}
