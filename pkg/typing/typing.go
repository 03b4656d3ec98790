// Package typing is the cluster-wide typing throttle (DESIGN.md §2): at
// most one typing_start is forwarded per user per channel per 3 s, whichever
// gateway pods the user's connections are on. A per-pod throttle lets every
// pod forward once per window; here the window is a key in NATS KV that
// exactly one caller in the cluster can create.
//
// Gateways keep their per-pod throttle as a first filter and ask the
// Throttle only when it allows: one KV round trip (two when someone else
// holds the window) per user, channel and pod at most every 3 s.
//
// KV layout (bucket ocvr_typing, memory storage, LimitMarkerTTL on; needs
// nats-server ≥ 2.11):
//
//	<channel_id>.<user_id>   issued-at (unix milliseconds) of the current
//	                         window, with a per-key TTL of the window
package typing

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ocvr/realtime/pkg/internal/kvutil"
	"github.com/ocvr/realtime/pkg/protocol"
	"github.com/ocvr/realtime/pkg/provision"
)

// DefaultBucket is the KV bucket of typing windows.
const DefaultBucket = "ocvr_typing"

// Window is the throttle window of DESIGN.md §2, the default of
// WithWindow.
const Window = 3 * time.Second

// Throttle decides, cluster-wide, which typing events are forwarded. It is
// safe for concurrent use.
type Throttle struct {
	kv     jetstream.KeyValue
	leader *kvutil.LeaderReader // the window's current value, never a lagging replica's
	js     jetstream.JetStream
	bucket string
	kvPre  string // in front of $KV.<bucket>.<key>: the API prefix when the bucket is in another JetStream domain
	window time.Duration
	ttl    time.Duration // the window rounded up to whole seconds (KV per-key TTLs are): the keys' TTL
}

// Option adjusts Open.
type Option func(*Throttle)

// WithWindow sets the window (default Window), e.g. a gateway's configured
// typing throttle.
func WithWindow(d time.Duration) Option {
	return func(t *Throttle) {
		if d > 0 {
			t.window = d
		}
	}
}

// Open opens (creating if needed) the typing bucket; "" means DefaultBucket.
func Open(ctx context.Context, nc *nats.Conn, bucket string, opts ...Option) (*Throttle, error) {
	if bucket == "" {
		bucket = DefaultBucket
	}
	kv, err := kvutil.Open(ctx, nc, jetstream.KeyValueConfig{
		Bucket:      bucket,
		Description: "OCVR typing throttle: one window per channel and user",
		History:     1,
		// Losing the windows (a server restart) costs at most one extra
		// typing_start each: not worth a disk write per event.
		Storage: jetstream.MemoryStorage,
		// Per-key TTLs need it; the markers left by expiry need to live
		// no longer than the shortest allowed.
		LimitMarkerTTL: time.Second,
	})
	if err != nil {
		return nil, fmt.Errorf("open typing throttle: %w", err)
	}
	js, err := provision.JetStream(ctx, nc) // in ctx's JetStream domain, as the bucket
	if err != nil {
		return nil, fmt.Errorf("open typing throttle: %w", err)
	}
	leader, err := kvutil.NewLeaderReader(ctx, nc, kv)
	if err != nil {
		return nil, fmt.Errorf("open typing throttle: %w", err)
	}
	t := &Throttle{kv: kv, leader: leader, js: js, bucket: bucket, kvPre: provision.KVWritePrefix(provision.Domain(ctx)), window: Window}
	for _, o := range opts {
		o(t)
	}
	t.ttl = ((t.window + time.Second - 1) / time.Second) * time.Second
	return t, nil
}

// Allow reports whether userID's typing in channelID is forwarded: true for
// exactly one caller in the cluster per Window, false for the others until
// the window is over. The window starts when the winning call was made. An
// error means the decision could not be made (NATS unreachable, invalid
// ids); a gateway then falls back on its per-pod throttle.
//
// The window's end is checked against the issued-at stored in the value,
// not left to the key's expiry, which runs on a timer of its own (late by
// up to a few hundred milliseconds): a caller that finds a window older
// than Window takes it over with a compare-and-set on its revision, so one
// caller wins then too. Pods compare their own clocks with the writer's:
// the window is exact to within the pods' clock skew.
func (t *Throttle) Allow(ctx context.Context, channelID string, userID int64) (bool, error) {
	return t.AllowAt(ctx, channelID, userID, time.Now())
}

// AllowAt is Allow at the time now: the gateway's own clock (a test's fake
// one). now is stored as the window's start and compared with the stored
// start of the window another caller opened.
func (t *Throttle) AllowAt(ctx context.Context, channelID string, userID int64, now time.Time) (bool, error) {
	if !protocol.ValidChannelID(channelID) {
		return false, fmt.Errorf("typing throttle: invalid channel id %q", channelID)
	}
	if err := protocol.CheckUserID(userID); err != nil {
		return false, fmt.Errorf("typing throttle: %w", err)
	}
	key := channelID + "." + strconv.FormatInt(userID, 10)
	value := strconv.AppendInt(nil, now.UnixMilli(), 10)

	won, err := t.create(ctx, key, value)
	if won || err != nil {
		return won, err
	}
	e, err := t.leader.Get(ctx, key)
	if kvutil.IsNotFound(err) {
		// Expired since Create failed: the next Create decides.
		return t.create(ctx, key, value)
	}
	if err != nil {
		return false, fmt.Errorf("typing throttle: %w", err)
	}
	if issued, err := strconv.ParseInt(string(e.Value), 10, 64); err == nil && now.Sub(time.UnixMilli(issued)) < t.window {
		return false, nil // the window is someone else's
	}
	// The window is over but its key has not expired yet: take it over
	// with a compare-and-set on the revision the leader gave, so one caller
	// wins. (The read is the leader's: the 3-node test once let a caller
	// into a window just opened, and a replica behind the leader is the
	// one way we see for that.)
	_, err = t.js.Publish(ctx, t.kvPre+"$KV."+t.bucket+"."+key, value,
		jetstream.WithExpectLastSequencePerSubject(e.Revision), jetstream.WithMsgTTL(t.ttl))
	if isWrongLastSequence(err) {
		return false, nil // another caller took it over first
	}
	if err != nil {
		return false, fmt.Errorf("typing throttle: %w", err)
	}
	return true, nil
}

// create opens a window if none is open: true for the one caller that
// creates the key, false (no error) for the others.
func (t *Throttle) create(ctx context.Context, key string, value []byte) (bool, error) {
	_, err := t.kv.Create(ctx, key, value, jetstream.KeyTTL(t.ttl))
	if err == nil {
		return true, nil
	}
	// Create over an expiry marker is a compare-and-set whose failure
	// (another caller re-created the key first) nats.go returns unmapped.
	if errors.Is(err, jetstream.ErrKeyExists) || isWrongLastSequence(err) {
		return false, nil
	}
	return false, fmt.Errorf("typing throttle: %w", err)
}

// isWrongLastSequence reports a failed compare-and-set: 10071, or 10164 on
// replicated streams.
func isWrongLastSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) &&
		(apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}
