// Package ticket mints and redeems single-use connect tickets in NATS KV.
// ticketsvc mints a ticket for a verified session; a gateway redeems it once
// when the client opens its socket. A ticket is stored only under its hash,
// lives 30 s, and is redeemed exactly once across the whole cluster.
package ticket

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ocvr/realtime/pkg/internal/kvutil"
	"github.com/ocvr/realtime/pkg/protocol"
)

// DefaultBucket is the KV bucket of tickets.
const DefaultBucket = "ocvr_tickets"

// Prefix starts every ticket.
const Prefix = "wst_"

// TTL is how long a ticket stays redeemable after it is minted.
const TTL = 30 * time.Second

const ticketBytes = 32 // 256 bits

// Errors of Redeem. Each wraps ErrInvalid; any other error means the store
// is unreachable.
var (
	ErrInvalid   = errors.New("invalid ticket")
	ErrMalformed = fmt.Errorf("%w: malformed", ErrInvalid)
	ErrUnknown   = fmt.Errorf("%w: unknown or already used", ErrInvalid)
	ErrExpired   = fmt.Errorf("%w: expired", ErrInvalid)
)

// Identity is what a ticket stands for.
type Identity struct {
	SessionID   string `json:"session_id"`
	UserID      int64  `json:"user_id"`
	DisplayName string `json:"display_name"`
}

type record struct {
	Identity
	IssuedAt int64 `json:"issued_at"` // unix nanoseconds
}

// Store mints and redeems tickets.
type Store struct {
	kv  jetstream.KeyValue
	Now func() time.Time // injectable clock: tests never sleep 30 s
}

// Open opens (creating if needed) the ticket bucket.
func Open(ctx context.Context, nc *nats.Conn, bucket string) (*Store, error) {
	if bucket == "" {
		bucket = DefaultBucket
	}
	kv, err := kvutil.Open(ctx, nc, jetstream.KeyValueConfig{
		Bucket:      bucket,
		Description: "OCVR single-use connect tickets (hashed)",
		History:     1,
		TTL:         TTL, // purge; validity itself is checked against issued_at
	})
	if err != nil {
		return nil, fmt.Errorf("open ticket store: %w", err)
	}
	return &Store{kv: kv, Now: time.Now}, nil
}

// Valid reports whether s has the form of a ticket (prefix and 256 bits of
// base64url); it says nothing of whether the ticket exists.
func Valid(s string) bool { return kvutil.ValidToken(s, Prefix, ticketBytes) }

// ErrInvalidIdentity is returned by Mint for an identity that no session
// could have: a caller bug, not an outage.
var ErrInvalidIdentity = errors.New("mint ticket: invalid identity")

// Mint stores a new ticket for id and returns it. Only its hash is stored.
func (s *Store) Mint(ctx context.Context, id Identity) (string, error) {
	// Whatever a ticket carries becomes a gateway connection's identity and
	// its NATS subjects: refuse a malformed one here, not at redeem time.
	if !protocol.ValidUserID(id.UserID) || !protocol.ValidSessionID(id.SessionID) {
		return "", fmt.Errorf("%w (user %d, session %q)", ErrInvalidIdentity, id.UserID, id.SessionID)
	}
	t := kvutil.RandomToken(Prefix, ticketBytes)
	rec, err := json.Marshal(record{Identity: id, IssuedAt: s.Now().UnixNano()})
	if err != nil {
		return "", fmt.Errorf("mint ticket: %w", err)
	}
	if _, err := s.kv.Create(ctx, kvutil.Hash(t), rec); err != nil {
		return "", fmt.Errorf("mint ticket: %w", err)
	}
	return t, nil
}

// Redeem consumes a ticket and returns its identity. Of any number of
// concurrent redeemers in any number of processes exactly one succeeds: the
// record is deleted with an expected revision, and the losers see a
// revision mismatch. A ticket older than TTL by its stored issue time is
// refused (and consumed) whatever the KV purge timing.
func (s *Store) Redeem(ctx context.Context, ticket string) (Identity, error) {
	return s.RedeemChecked(ctx, ticket, nil)
}

// RedeemChecked is Redeem with check — the caller's own verdict on the
// identity, e.g. its session's liveness — run while the ticket's delete is
// in flight rather than after it: one store round trip less on the
// connect path. The ticket is consumed whatever check says; check's error
// is returned when the ticket was good.
func (s *Store) RedeemChecked(ctx context.Context, ticket string, check func(context.Context, Identity) error) (Identity, error) {
	if !Valid(ticket) {
		return Identity{}, ErrMalformed
	}
	key := kvutil.Hash(ticket)
	e, err := s.kv.Get(ctx, key)
	if kvutil.IsNotFound(err) {
		return Identity{}, ErrUnknown
	}
	if err != nil {
		return Identity{}, fmt.Errorf("redeem ticket: %w", err)
	}
	var rec record
	recErr := json.Unmarshal(e.Value(), &rec)
	var checked chan error
	if check != nil && recErr == nil {
		checked = make(chan error, 1)
		go func() { checked <- check(ctx, rec.Identity) }() // ends with ctx at the latest
	}
	err = s.kv.Delete(ctx, key, jetstream.LastRevision(e.Revision()))
	var checkErr error
	if checked != nil {
		checkErr = <-checked
	}
	switch {
	case errors.Is(err, jetstream.ErrKeyRevisionMismatch):
		return Identity{}, ErrUnknown // another redeemer won
	case err != nil:
		return Identity{}, fmt.Errorf("redeem ticket: %w", err)
	case recErr != nil:
		return Identity{}, fmt.Errorf("redeem ticket: corrupt record: %w", recErr)
	case s.Now().Sub(time.Unix(0, rec.IssuedAt)) > TTL:
		return Identity{}, ErrExpired
	case checkErr != nil:
		return rec.Identity, checkErr
	}
	return rec.Identity, nil
}
