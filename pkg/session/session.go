// Package session stores bearer sessions in NATS KV. The platform's auth
// service creates a session at login and hands the token to the client;
// ticketsvc verifies it; gateways re-check the session when a ticket is
// redeemed; revoking deletes it and tells the gateways to close its sockets.
package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ocvr/realtime/pkg/bus"
	"github.com/ocvr/realtime/pkg/internal/kvutil"
	"github.com/ocvr/realtime/pkg/protocol"
)

// DefaultBucket is the KV bucket of sessions.
const DefaultBucket = "ocvr_sessions"

// TokenPrefix starts every bearer token.
const TokenPrefix = "sess_"

const (
	tokenBytes = 32 // 256-bit bearer tokens
	idBytes    = 12
	idPrefix   = "ses_"
)

// Errors returned by Verify and Lookup. Each wraps ErrUnauthorized, so a
// caller can map all of them to 401 and still log which it was.
var (
	ErrUnauthorized = errors.New("unauthorized")
	ErrMissing      = fmt.Errorf("%w: missing session token", ErrUnauthorized)
	ErrMalformed    = fmt.Errorf("%w: malformed session token", ErrUnauthorized)
	ErrUnknown      = fmt.Errorf("%w: unknown or revoked session", ErrUnauthorized)
	ErrExpired      = fmt.Errorf("%w: session expired", ErrUnauthorized)
)

// TombstoneTTL is how long the marker of a revoked (purged) or expired
// session key stays in the bucket. A watcher that resumes from a revision
// sees a revocation only while its marker is there: a process cut off from
// NATS for longer must re-check its sessions (Lookup) instead of relying on
// WatchRevocations alone.
const TombstoneTTL = time.Minute

// ErrNotFound is returned by Revoke for a session that does not exist.
var ErrNotFound = errors.New("session not found")

var errNoPublisher = errors.New("revoke: store has no publisher (opened read-only)")

// Session is what a verified bearer token stands for.
type Session struct {
	ID          string    `json:"session_id"`
	UserID      int64     `json:"user_id"`
	DisplayName string    `json:"display_name"`
	TokenHash   string    `json:"token_hash"`
	CreatedAt   time.Time `json:"created_at"`
	ExpiresAt   time.Time `json:"expires_at"`
}

// Store is the session store. Keys:
//
//	t.<sha256(token)>   the session record (Verify: one get)
//	s.<session_id>      the same record (Lookup at redeem time, Revoke)
//	u.<user_id>.<sid>   per-user index (RevokeAll)
//
// Every key carries the session's TTL, so expired sessions leave the
// bucket by themselves; expiry is still checked against ExpiresAt.
//
// Verify and Lookup authorize, so they read from the stream leader (see
// kvutil.LeaderReader): a revocation acknowledged to Revoke is seen by
// every later Verify and Lookup, on any node of a NATS cluster.
type Store struct {
	kv     jetstream.KeyValue
	leader *kvutil.LeaderReader
	pub    *bus.Publisher
	Now    func() time.Time // injectable clock
}

// Open opens (creating if needed) the session bucket. pub publishes
// session_revoked events; it may be nil for a read-only store (ticketsvc).
func Open(ctx context.Context, nc *nats.Conn, bucket string, pub *bus.Publisher) (*Store, error) {
	if bucket == "" {
		bucket = DefaultBucket
	}
	kv, err := kvutil.Open(ctx, nc, jetstream.KeyValueConfig{
		Bucket:         bucket,
		Description:    "OCVR bearer sessions",
		History:        1,
		LimitMarkerTTL: TombstoneTTL,
	})
	if err != nil {
		return nil, fmt.Errorf("open session store: %w", err)
	}
	leader, err := kvutil.NewLeaderReader(ctx, nc, kv)
	if err != nil {
		return nil, fmt.Errorf("open session store: %w", err)
	}
	return &Store{kv: kv, leader: leader, pub: pub.Core(), Now: time.Now}, nil // revocations are core events: the watches make them durable (no position needed)
}

// Create creates a session for userID valid for ttl and returns the bearer
// token (shown once; only its hash is stored) and the session.
func (s *Store) Create(ctx context.Context, userID int64, displayName string, ttl time.Duration) (string, Session, error) {
	if err := protocol.CheckUserID(userID); err != nil {
		return "", Session{}, fmt.Errorf("create session: %w", err)
	}
	if ttl < time.Second {
		return "", Session{}, fmt.Errorf("create session: ttl %v is shorter than 1s", ttl)
	}
	if displayName == "" || len(displayName) > 128 || !utf8.ValidString(displayName) {
		return "", Session{}, errors.New("create session: display name must be 1–128 bytes of UTF-8")
	}
	token := kvutil.RandomToken(TokenPrefix, tokenBytes)
	now := s.Now()
	sess := Session{
		ID:          kvutil.RandomToken(idPrefix, idBytes),
		UserID:      userID,
		DisplayName: displayName,
		TokenHash:   kvutil.Hash(token),
		CreatedAt:   now.UTC(),
		ExpiresAt:   now.Add(ttl).UTC(),
	}
	rec, err := json.Marshal(sess)
	if err != nil {
		return "", Session{}, fmt.Errorf("create session: %w", err)
	}
	// Whole seconds: KV per-key TTLs have one-second granularity. Round up
	// so a record never vanishes before its ExpiresAt.
	keyTTL := ttl.Round(time.Second)
	if keyTTL < ttl {
		keyTTL += time.Second
	}
	for _, key := range []string{userKey(userID, sess.ID), "s." + sess.ID, "t." + sess.TokenHash} {
		if _, err := s.kv.Create(ctx, key, rec, jetstream.KeyTTL(keyTTL)); err != nil {
			return "", Session{}, fmt.Errorf("create session: put %s: %w", strings.SplitN(key, ".", 2)[0], err)
		}
	}
	return token, sess, nil
}

// Verify returns the session of a bearer token, read from the stream
// leader. Missing, malformed, unknown, revoked and expired tokens give
// errors wrapping ErrUnauthorized; any other error means the store is
// unreachable (or has no leader right now) and must not be taken as either.
func (s *Store) Verify(ctx context.Context, token string) (Session, error) {
	if token == "" {
		return Session{}, ErrMissing
	}
	if !kvutil.ValidToken(token, TokenPrefix, tokenBytes) {
		return Session{}, ErrMalformed
	}
	return s.get(ctx, "t."+kvutil.Hash(token))
}

// Lookup returns a live session by id (ErrUnknown or ErrExpired otherwise),
// read from the stream leader like Verify. The session's ExpiresAt is
// when a connection authorized by it must end.
func (s *Store) Lookup(ctx context.Context, sessionID string) (Session, error) {
	if !protocol.ValidSessionID(sessionID) {
		return Session{}, ErrUnknown
	}
	return s.get(ctx, "s."+sessionID)
}

func (s *Store) get(ctx context.Context, key string) (Session, error) {
	e, err := s.leader.Get(ctx, key)
	if kvutil.IsNotFound(err) {
		return Session{}, ErrUnknown
	}
	if err != nil {
		return Session{}, fmt.Errorf("read session: %w", err)
	}
	var sess Session
	if err := json.Unmarshal(e.Value, &sess); err != nil {
		return Session{}, fmt.Errorf("read session: corrupt record: %w", err)
	}
	if !s.Now().Before(sess.ExpiresAt) {
		return Session{}, ErrExpired
	}
	return sess, nil
}

// Revoke deletes a session and publishes session_revoked {reason} to its
// user's connections of that session (header Ocvr-Session), which the
// gateways deliver and then close with 4003.
func (s *Store) Revoke(ctx context.Context, sessionID, reason string) error {
	if !protocol.ValidSessionID(sessionID) {
		return fmt.Errorf("revoke session: invalid session id %q", sessionID)
	}
	if s.pub == nil {
		// Refuse before deleting anything: a revoked session whose sockets
		// are never told would stay connected.
		return errNoPublisher
	}
	// From the leader: a session created a moment ago through another node
	// must not be "not found" (and so left alive) on a lagging replica.
	e, err := s.leader.Get(ctx, "s."+sessionID)
	if kvutil.IsNotFound(err) {
		return fmt.Errorf("revoke session %s: %w", sessionID, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("revoke session: %w", err)
	}
	var sess Session
	if err := json.Unmarshal(e.Value, &sess); err != nil {
		return fmt.Errorf("revoke session: corrupt record: %w", err)
	}
	if err := s.delete(ctx, sess); err != nil {
		return err
	}
	return s.announce(ctx, sess.UserID, reason, bus.Target{Sessions: []string{sessionID}})
}

// RevokeAll revokes every session of userID but exceptSessionID (which may
// be empty) and publishes one session_revoked to the user's other
// connections. It returns how many sessions it revoked.
func (s *Store) RevokeAll(ctx context.Context, userID int64, reason, exceptSessionID string) (int, error) {
	if err := protocol.CheckUserID(userID); err != nil {
		return 0, fmt.Errorf("revoke all: %w", err)
	}
	if exceptSessionID != "" && !protocol.ValidSessionID(exceptSessionID) {
		return 0, fmt.Errorf("revoke all: invalid session id %q", exceptSessionID)
	}
	if s.pub == nil {
		return 0, errNoPublisher
	}
	lister, err := s.kv.ListKeysFiltered(ctx, "u."+strconv.FormatInt(userID, 10)+".*")
	if err != nil {
		return 0, fmt.Errorf("revoke all: list sessions: %w", err)
	}
	var keys []string
	for k := range lister.Keys() {
		keys = append(keys, k)
	}
	// The lister closes early, without an error, when ctx ends: revoking
	// only some sessions and reporting success would be worse than failing.
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("revoke all: list sessions: %w", err)
	}
	slices.Sort(keys)
	keys = slices.Compact(keys) // a lister may report a key twice
	n := 0
	for _, k := range keys {
		sid := k[strings.LastIndexByte(k, '.')+1:]
		if sid == exceptSessionID {
			continue
		}
		e, err := s.leader.Get(ctx, k)
		if kvutil.IsNotFound(err) {
			continue
		}
		if err != nil {
			return n, fmt.Errorf("revoke all: %w", err)
		}
		var sess Session
		if err := json.Unmarshal(e.Value, &sess); err != nil {
			return n, fmt.Errorf("revoke all: corrupt record %s: %w", k, err)
		}
		if err := s.delete(ctx, sess); err != nil {
			return n, err
		}
		n++
	}
	// Announce even when the store held nothing: a connection whose session
	// just expired from KV must still be told and closed.
	return n, s.announce(ctx, userID, reason, bus.Target{ExceptSession: exceptSessionID})
}

func (s *Store) delete(ctx context.Context, sess Session) error {
	// The token key goes first: once it is gone no new ticket can be minted,
	// and redeem re-checks s.<sid>, deleted next.
	for _, key := range []string{"t." + sess.TokenHash, "s." + sess.ID, userKey(sess.UserID, sess.ID)} {
		if err := s.kv.Purge(ctx, key, jetstream.PurgeTTL(TombstoneTTL)); err != nil && !kvutil.IsNotFound(err) {
			return fmt.Errorf("revoke session %s: delete: %w", sess.ID, err)
		}
	}
	return nil
}

func (s *Store) announce(ctx context.Context, userID int64, reason string, t bus.Target) error {
	if s.pub == nil {
		return errNoPublisher
	}
	if reason == "" {
		reason = "revoked"
	}
	if err := s.pub.PublishToUser(ctx, userID, protocol.TypeSessionRevoked, protocol.SessionRevoked{Reason: reason}, t); err != nil {
		return fmt.Errorf("revoke: %w", err)
	}
	return s.pub.Flush(ctx)
}

func userKey(userID int64, sessionID string) string {
	return "u." + strconv.FormatInt(userID, 10) + "." + sessionID
}

// WatchOptions configures WatchRevocations.
type WatchOptions struct {
	// OnRevoked is called with the id of every session whose s.<id> key is
	// deleted or purged after the watch started: revoked, or expired from
	// the bucket (its per-key TTL ran out; the ids of expired sessions are
	// reported too, a little after their ExpiresAt). Required. Calls come
	// one at a time, on WatchRevocations' goroutine.
	OnRevoked func(sessionID string)
	// Reconnected returns a channel closed at the next NATS reconnect; the
	// watch is re-created then, from the last revision it saw (a KV watcher
	// goes blind after a server restart). See kvutil.WatchOptions.
	Reconnected func() <-chan struct{}
	// Live, if set, is called once the watch is in place.
	Live func()
	// Log receives retries; nil discards them.
	Log *slog.Logger
}

// WatchRevocations reports revoked and expired sessions until ctx ends,
// then returns nil (an error at once only without OnRevoked). It runs on
// the caller's goroutine. This is the durable half of revocation: Revoke's
// session_revoked event is one core-NATS message a pod may miss, the
// bucket's deletions are not, as long as their markers live (TombstoneTTL).
func (s *Store) WatchRevocations(ctx context.Context, opts WatchOptions) error {
	if opts.OnRevoked == nil {
		return errors.New("watch revocations: OnRevoked is required")
	}
	return kvutil.WatchDeletions(ctx, s.kv, kvutil.WatchOptions{
		Keys: "s.*",
		OnDelete: func(key string) {
			if id, ok := strings.CutPrefix(key, "s."); ok && protocol.ValidSessionID(id) {
				opts.OnRevoked(id)
			}
		},
		Reconnected: opts.Reconnected,
		Live:        opts.Live,
		Log:         opts.Log,
	})
}
