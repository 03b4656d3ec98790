package ticket_test

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ocvr/realtime/pkg/internal/kvutil"
	"github.com/ocvr/realtime/pkg/natsembed"
	"github.com/ocvr/realtime/pkg/ticket"
)

var ada = ticket.Identity{SessionID: "ses_Zx3kQ9vL2mN8pR4t", UserID: 42, DisplayName: "Ada"}

func connect(t *testing.T, srv *natsembed.Server) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func open(t *testing.T, nc *nats.Conn) *ticket.Store {
	t.Helper()
	s, err := ticket.Open(context.Background(), nc, "")
	if err != nil {
		t.Fatalf("open ticket store: %v", err)
	}
	return s
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// clock is a settable clock for Store.Now.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

func TestMintRedeem(t *testing.T) {
	srv := natsembed.Test(t)
	ctx := testCtx(t)
	minter, redeemer := open(t, connect(t, srv)), open(t, connect(t, srv))
	tk, err := minter.Mint(ctx, ada)
	if err != nil {
		t.Fatalf("Mint: %v", err)
	}
	if !strings.HasPrefix(tk, ticket.Prefix) || len(tk) != len(ticket.Prefix)+43 || !ticket.Valid(tk) {
		t.Fatalf("ticket %q is not wst_ + 32 bytes base64url", tk)
	}
	id, err := redeemer.Redeem(ctx, tk)
	if err != nil {
		t.Fatalf("Redeem: %v", err)
	}
	if id != ada {
		t.Fatalf("Redeem = %+v, want %+v", id, ada)
	}
	if _, err := redeemer.Redeem(ctx, tk); !errors.Is(err, ticket.ErrUnknown) {
		t.Fatalf("second Redeem = %v, want ErrUnknown", err)
	}
	if _, err := minter.Redeem(ctx, tk); !errors.Is(err, ticket.ErrUnknown) {
		t.Fatalf("Redeem on the minting store = %v, want ErrUnknown", err)
	}
}

// TestRedeemExactlyOnce: 64 goroutines, each with its own NATS connection
// (as many gateway pods would), redeem one ticket at the same moment.
func TestRedeemExactlyOnce(t *testing.T) {
	const redeemers = 64
	srv := natsembed.Test(t)
	ctx := testCtx(t)
	stores := make([]*ticket.Store, redeemers)
	for i := range stores {
		stores[i] = open(t, connect(t, srv))
	}
	minter := open(t, connect(t, srv))
	for round := 0; round < 3; round++ {
		tk, err := minter.Mint(ctx, ada)
		if err != nil {
			t.Fatal(err)
		}
		var (
			start sync.WaitGroup
			done  sync.WaitGroup
			mu    sync.Mutex
			wins  []ticket.Identity
			other []error
		)
		start.Add(1)
		for _, s := range stores {
			done.Add(1)
			go func(s *ticket.Store) {
				defer done.Done()
				start.Wait()
				id, err := s.Redeem(ctx, tk)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					wins = append(wins, id)
				case !errors.Is(err, ticket.ErrUnknown):
					other = append(other, err)
				}
			}(s)
		}
		start.Done()
		done.Wait()
		if len(other) > 0 {
			t.Fatalf("round %d: losers got errors other than ErrUnknown: %v", round, other)
		}
		if len(wins) != 1 {
			t.Fatalf("round %d: %d redeemers won, want exactly 1", round, len(wins))
		}
		if wins[0] != ada {
			t.Fatalf("round %d: winner got %+v", round, wins[0])
		}
	}
}

func TestRedeemExpiry(t *testing.T) {
	srv := natsembed.Test(t)
	ctx := testCtx(t)
	s := open(t, connect(t, srv))
	issue := time.Date(2025, 1, 15, 10, 30, 0, 0, time.UTC)
	c := &clock{now: issue}
	s.Now = c.Now
	tests := []struct {
		name  string
		after time.Duration
		err   error
	}{
		{"just minted", 0, nil},
		{"issue+29s", 29 * time.Second, nil},
		{"issue+30s", ticket.TTL, nil},
		{"issue+30.001s", ticket.TTL + time.Millisecond, ticket.ErrExpired},
		{"issue+31s", 31 * time.Second, ticket.ErrExpired},
		{"an hour later", time.Hour, ticket.ErrExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c.Set(issue)
			tk, err := s.Mint(ctx, ada)
			if err != nil {
				t.Fatal(err)
			}
			c.Set(issue.Add(tt.after))
			id, err := s.Redeem(ctx, tk)
			if tt.err == nil {
				if err != nil || id != ada {
					t.Fatalf("Redeem = %+v, %v; want %+v", id, err, ada)
				}
			} else {
				if !errors.Is(err, tt.err) || !errors.Is(err, ticket.ErrInvalid) {
					t.Fatalf("Redeem = %+v, %v; want %v wrapping ErrInvalid", id, err, tt.err)
				}
				if id != (ticket.Identity{}) {
					t.Fatalf("an expired ticket returned identity %+v", id)
				}
			}
			// Whatever the outcome, the ticket is consumed.
			c.Set(issue)
			if _, err := s.Redeem(ctx, tk); !errors.Is(err, ticket.ErrUnknown) {
				t.Fatalf("ticket not consumed: second Redeem = %v", err)
			}
		})
	}
}

func TestRedeemRefuses(t *testing.T) {
	srv := natsembed.Test(t)
	ctx := testCtx(t)
	s := open(t, connect(t, srv))
	minted, err := s.Mint(ctx, ada)
	if err != nil {
		t.Fatal(err)
	}
	body := minted[len(ticket.Prefix):]
	tests := []struct {
		name   string
		ticket string
		err    error
	}{
		{"empty", "", ticket.ErrMalformed},
		{"forged (valid form, never minted)", kvutil.RandomToken(ticket.Prefix, 32), ticket.ErrUnknown},
		{"forged all zero", ticket.Prefix + base64.RawURLEncoding.EncodeToString(make([]byte, 32)), ticket.ErrUnknown},
		{"prefix only", ticket.Prefix, ticket.ErrMalformed},
		{"no prefix", body, ticket.ErrMalformed},
		{"session token prefix", "sess_" + body, ticket.ErrMalformed},
		{"truncated", minted[:len(minted)-1], ticket.ErrMalformed},
		{"extended", minted + "A", ticket.ErrMalformed},
		{"padded", minted + "=", ticket.ErrMalformed},
		{"std base64", ticket.Prefix + "+" + body[1:], ticket.ErrMalformed},
		{"whitespace", " " + minted, ticket.ErrMalformed},
		{"the hash", kvutil.Hash(minted), ticket.ErrMalformed},
		{"wildcard", ticket.Prefix + strings.Repeat(">", 43), ticket.ErrMalformed},
		{"kv key injection", ticket.Prefix + strings.Repeat("a", 40) + ".b*", ticket.ErrMalformed},
		{"huge", ticket.Prefix + strings.Repeat("A", 1<<20), ticket.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := s.Redeem(ctx, tt.ticket)
			if !errors.Is(err, tt.err) {
				t.Fatalf("Redeem = %+v, %v; want %v", id, err, tt.err)
			}
			if !errors.Is(err, ticket.ErrInvalid) {
				t.Fatalf("%v does not wrap ErrInvalid", err)
			}
		})
	}
	// None of that consumed the real ticket.
	if id, err := s.Redeem(ctx, minted); err != nil || id != ada {
		t.Fatalf("Redeem of the real ticket = %+v, %v", id, err)
	}
}

func TestMintRefusesBadIdentity(t *testing.T) {
	srv := natsembed.Test(t)
	ctx := testCtx(t)
	s := open(t, connect(t, srv))
	for _, id := range []ticket.Identity{
		{},
		{SessionID: "ses_1", UserID: 0, DisplayName: "A"},
		{SessionID: "ses_1", UserID: -1, DisplayName: "A"},
		{SessionID: "", UserID: 1, DisplayName: "A"},
		{SessionID: "ses.1", UserID: 1, DisplayName: "A"},
		{SessionID: "a,b", UserID: 1, DisplayName: "A"},
	} {
		if tk, err := s.Mint(ctx, id); !errors.Is(err, ticket.ErrInvalidIdentity) {
			t.Errorf("Mint(%+v) = %q, %v; want ErrInvalidIdentity", id, tk, err)
		}
	}
}

// TestBucketHoldsNoTicketInClear scans every key and value of the bucket:
// a ticket appears only as its SHA-256, never in clear.
func TestBucketHoldsNoTicketInClear(t *testing.T) {
	srv := natsembed.Test(t)
	ctx := testCtx(t)
	nc := connect(t, srv)
	s := open(t, nc)
	var tickets []string
	for i := 0; i < 10; i++ {
		tk, err := s.Mint(ctx, ada)
		if err != nil {
			t.Fatal(err)
		}
		tickets = append(tickets, tk)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, ticket.DefaultBucket)
	if err != nil {
		t.Fatal(err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.TTL() != ticket.TTL {
		t.Errorf("bucket TTL = %v, want %v", st.TTL(), ticket.TTL)
	}
	keys, err := kv.Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != len(tickets) {
		t.Fatalf("bucket has %d keys, want %d", len(keys), len(tickets))
	}
	hashes := map[string]bool{}
	for _, tk := range tickets {
		hashes[kvutil.Hash(tk)] = true
	}
	for _, k := range keys {
		if !hashes[k] {
			t.Errorf("key %q is not the hash of a minted ticket", k)
		}
		e, err := kv.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		for _, tk := range tickets {
			secret := tk[len(ticket.Prefix):]
			if strings.Contains(k, secret) || strings.Contains(string(e.Value()), secret) {
				t.Fatalf("ticket %s stored in clear under %q: %s", tk, k, e.Value())
			}
		}
		if !strings.Contains(string(e.Value()), `"issued_at":`) {
			t.Errorf("value %s carries no issue time", e.Value())
		}
	}
}

// TestStoreUnavailable: with NATS gone, Redeem fails with an error that is
// not ErrInvalid (ticketsvc and the gateway answer "unavailable", not "bad
// ticket").
func TestStoreUnavailable(t *testing.T) {
	srv := natsembed.Test(t)
	nc := connect(t, srv)
	s := open(t, nc)
	tk, err := s.Mint(testCtx(t), ada)
	if err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := s.Redeem(ctx, tk); err == nil || errors.Is(err, ticket.ErrInvalid) {
		t.Fatalf("Redeem with NATS down = %v, want a non-ErrInvalid error", err)
	}
	if _, err := s.Mint(ctx, ada); err == nil {
		t.Fatal("Mint with NATS down succeeded")
	}
}

// TestRedeemChecked: the caller's check runs with the ticket's identity
// while the delete is in flight; the ticket is consumed whatever the check
// says, the check's verdict is returned, and a ticket that is not good
// never reaches the check.
func TestRedeemChecked(t *testing.T) {
	srv := natsembed.Test(t)
	s := open(t, connect(t, srv))
	ctx := testCtx(t)
	errDenied := errors.New("session gone")
	for _, tc := range []struct {
		name    string
		check   error
		wantErr error
	}{
		{"check passes", nil, nil},
		{"check refuses", errDenied, errDenied},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tk, err := s.Mint(ctx, ada)
			if err != nil {
				t.Fatal(err)
			}
			var seen ticket.Identity
			id, err := s.RedeemChecked(ctx, tk, func(_ context.Context, id ticket.Identity) error {
				seen = id
				return tc.check
			})
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("RedeemChecked: %v, want %v", err, tc.wantErr)
			}
			if seen != ada || id != ada {
				t.Errorf("check saw %+v, returned %+v; want %+v", seen, id, ada)
			}
			called := false
			if _, err := s.RedeemChecked(ctx, tk, func(context.Context, ticket.Identity) error { called = true; return nil }); !errors.Is(err, ticket.ErrUnknown) {
				t.Errorf("second redeem: %v, want ErrUnknown (consumed)", err)
			}
			if called {
				t.Error("the check ran for a consumed ticket")
			}
		})
	}
}
