// Package presence is cluster-wide presence (DESIGN.md §5): a user is online
// while any of their connections on any gateway pod is open. Friends get
// exactly one presence_update "online" when a user goes from zero
// connections to some, and exactly one "offline" when the user has stayed at
// zero for the offline grace. Pods hold leases with a per-key TTL; the
// entries of a pod that dies without cleanup are removed by exactly one
// surviving pod.
//
// KV layout (bucket ocvr_presence, LimitMarkerTTL on; needs nats-server ≥ 2.11):
//
//	pod.<pod>          lease, re-published with a Nats-TTL every LeaseTTL/3
//	c.<user>.<pod>     the pod holds ≥ 1 connection of the user; removed by
//	                   a stream purge of its subject (no tombstone)
//	u.<user>           the user is online; created by the one pod that wins
//	                   the online transition, deleted (with the expected
//	                   revision) by the one that wins the offline one
//	s.<user>           status text
//	gc.<pod>           claim of the pod cleaning up after a dead <pod>
//
// KV work of one pod's reconciliation of a user (F: the user's friends;
// BenchmarkTransition measures it):
//
//	0→1 on the pod     put c.<user>.<pod> ∥ direct get of u.<user>, then a
//	                   conditional write of u.<user> (creates it: an online
//	                   transition; or bumps its revision: already online;
//	                   a conflict reads again, from the leader);
//	                   on a transition, status ∥ friend set (two gets),
//	                   then F core publishes
//	1→0 (after grace)  purge c.<user>.<pod>, leader read of u.<user>, one
//	                   leader read for any other entry of the user, the
//	                   conditional delete of u.<user>; on a transition,
//	                   status ∥ friend set, then F core publishes
//
// "∥": sent together, one round trip. The offline decision reads from the
// stream leader (see leaderread.go). With NATS permissions, the gateways'
// user needs $JS.API.STREAM.MSG.GET.KV_<bucket> and
// $JS.API.STREAM.PURGE.KV_<bucket> on the presence bucket.
package presence

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ocvr/realtime/pkg/bus"
	"github.com/ocvr/realtime/pkg/directory"
	"github.com/ocvr/realtime/pkg/internal/kvutil"
	"github.com/ocvr/realtime/pkg/protocol"
	"github.com/ocvr/realtime/pkg/provision"
)

// DefaultBucket is the KV bucket of presence state.
const DefaultBucket = "ocvr_presence"

// MaxStatusText bounds a status text in bytes.
const MaxStatusText = 128

// Store reads and writes presence state. Backends use SetStatus and Get;
// gateways use a Tracker.
type Store struct {
	kv     jetstream.KeyValue
	js     jetstream.JetStream
	nc     *nats.Conn
	bucket string
	// streamName is the bucket's stream, KV_<bucket>; direct reads it (a
	// direct get where the bucket allows it, as KeyValue.Get).
	streamName string
	api        string // the JetStream API prefix of the bucket's domain: $JS[.<domain>].API.
	kvPre      string // in front of the KV writes this package publishes itself: "" or the API prefix of another domain
	direct     jetstream.Stream
	dir        *directory.Store
	pub        *bus.Publisher
}

// Open opens (creating if needed) the presence bucket.
func Open(ctx context.Context, nc *nats.Conn, bucket string, dir *directory.Store, pub *bus.Publisher) (*Store, error) {
	if bucket == "" {
		bucket = DefaultBucket
	}
	kv, err := kvutil.Open(ctx, nc, jetstream.KeyValueConfig{
		Bucket:         bucket,
		Description:    "OCVR presence: pod leases, user connection entries, status",
		History:        1,
		LimitMarkerTTL: time.Minute,
	})
	if err != nil {
		return nil, fmt.Errorf("open presence store: %w", err)
	}
	js, err := provision.JetStream(ctx, nc) // in ctx's JetStream domain, as the bucket
	if err != nil {
		return nil, fmt.Errorf("open presence store: %w", err)
	}
	stream, err := js.Stream(ctx, "KV_"+bucket)
	if err != nil {
		return nil, fmt.Errorf("open presence store: %w", err)
	}
	return &Store{kv: kv, js: js, nc: nc, bucket: bucket, streamName: "KV_" + bucket, api: provision.APIPrefix(provision.Domain(ctx)), kvPre: provision.KVWritePrefix(provision.Domain(ctx)), direct: stream, dir: dir, pub: pub.Core()}, nil // presence is state, not history: core events
}

// Presence is a user's current presence.
type Presence struct {
	UserID     int64  `json:"user_id"`
	Online     bool   `json:"online"`
	StatusText string `json:"status_text"`
}

// Get returns a user's presence.
func (s *Store) Get(ctx context.Context, userID int64) (Presence, error) {
	if err := protocol.CheckUserID(userID); err != nil {
		return Presence{}, fmt.Errorf("get presence: %w", err)
	}
	p := Presence{UserID: userID}
	online, err := s.exists(ctx, userKey(userID))
	if err != nil {
		return p, fmt.Errorf("get presence: %w", err)
	}
	p.Online = online
	p.StatusText, err = s.status(ctx, userID)
	if err != nil {
		return p, fmt.Errorf("get presence: %w", err)
	}
	return p, nil
}

// SetStatus sets a user's status text ("" clears it). If the user is online,
// their friends get a presence_update with presence "online" and the text.
func (s *Store) SetStatus(ctx context.Context, userID int64, text string) error {
	if err := protocol.CheckUserID(userID); err != nil {
		return fmt.Errorf("set status: %w", err)
	}
	if len(text) > MaxStatusText {
		return fmt.Errorf("set status: text is %d bytes, limit %d", len(text), MaxStatusText)
	}
	if _, err := s.kv.Put(ctx, statusKey(userID), []byte(text)); err != nil {
		return fmt.Errorf("set status: %w", err)
	}
	online, err := s.exists(ctx, userKey(userID))
	if err != nil {
		return fmt.Errorf("set status: %w", err)
	}
	if !online {
		return nil
	}
	return s.announce(ctx, userID, protocol.PresenceOnline, text)
}

func (s *Store) status(ctx context.Context, userID int64) (string, error) {
	e, err := s.kv.Get(ctx, statusKey(userID))
	if kvutil.IsNotFound(err) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return string(e.Value()), nil
}

func (s *Store) exists(ctx context.Context, key string) (bool, error) {
	_, err := s.kv.Get(ctx, key)
	if kvutil.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

// announce publishes a presence_update about userID to each friend.
func (s *Store) announce(ctx context.Context, userID int64, presence, text string) error {
	friends, err := s.dir.Friends(ctx, userID)
	if err != nil {
		return fmt.Errorf("announce presence: %w", err)
	}
	return s.publish(ctx, userID, friends, presence, text)
}

// announceTransition announces a transition this caller won: the status
// text and the friend set are two independent gets, read at once. A status
// that cannot be read is announced empty, as an unset one.
func (s *Store) announceTransition(ctx context.Context, userID int64, presence string) error {
	var text string
	done := make(chan struct{})
	go func() { // ends after one KV get, bounded by ctx
		defer close(done)
		text, _ = s.status(ctx, userID)
	}()
	friends, err := s.dir.Friends(ctx, userID)
	<-done
	if err != nil {
		return fmt.Errorf("announce presence: %w", err)
	}
	return s.publish(ctx, userID, friends, presence, text)
}

func (s *Store) publish(ctx context.Context, userID int64, friends []int64, presence, text string) error {
	upd := protocol.PresenceUpdate{UserID: userID, Presence: presence, StatusText: text}
	for _, f := range friends {
		if err := s.pub.PublishToUser(ctx, f, protocol.TypePresenceUpdate, upd, bus.Target{}); err != nil {
			return fmt.Errorf("announce presence: %w", err)
		}
	}
	return nil
}

// claimOnline writes the pod's connection entry (entryKey) and makes the
// user online if it is not: exactly one caller cluster-wide wins the
// transition and announces it. A caller that finds the user already online
// bumps u.<user>'s revision, so a concurrent offline decision (which
// deletes with the revision it read) fails. written reports whether the
// entry was written.
//
// The entry's write and the first read of u.<user> go out together: the
// offline decision (goOfflineIfIdle) needs only that the write of u.<user>
// comes after the entry is stored, and it does — it waits for both. The
// first read is a direct get (a reconnect storm's reads spread over the
// replicas, none on the leader's API queue); the write is conditional on
// the revision read, so a stale answer only costs a retry, which reads
// from the leader.
func (s *Store) claimOnline(ctx context.Context, userID int64, entryKey string) (written, won bool, err error) {
	var (
		e       userEntry
		readErr error
		done    = make(chan struct{})
	)
	go func() { // ends after one direct get, bounded by ctx
		defer close(done)
		e, readErr = s.userEntryGuess(ctx, userID)
	}()
	_, putErr := s.kv.Put(ctx, entryKey, nil)
	<-done
	if putErr != nil {
		return false, false, fmt.Errorf("go online: put entry: %w", putErr)
	}
	key := userKey(userID)
	for i := 0; i < 10; i++ {
		if i > 0 {
			e, readErr = s.userEntry(ctx, userID)
		}
		if readErr != nil {
			return true, false, fmt.Errorf("go online: %w", readErr)
		}
		// Conditional on the revision read: of the value (a bump), of its
		// tombstone or 0 (a create, like KeyValue.Create).
		_, err := s.kv.Update(ctx, key, []byte("online"), e.rev)
		if err == nil {
			if e.online {
				return true, false, nil
			}
			return true, true, s.announceTransition(ctx, userID, protocol.PresenceOnline)
		}
		if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) && !errors.Is(err, jetstream.ErrKeyExists) {
			return true, false, fmt.Errorf("go online: %w", err)
		}
	}
	return true, false, errors.New("go online: too much contention")
}

// goOfflineIfIdle makes the user offline if no pod holds a connection of
// theirs: exactly one caller wins and announces it. u.<user> is read
// before the entries: a pod that connects the user after that read writes
// u.<user> after its entry, and the delete below, conditional on the
// revision read, then fails.
func (s *Store) goOfflineIfIdle(ctx context.Context, userID int64) (bool, error) {
	e, err := s.userEntry(ctx, userID)
	if err != nil {
		return false, fmt.Errorf("go offline: %w", err)
	}
	if !e.online {
		return false, nil // already offline
	}
	held, err := s.anyEntry(ctx, userID)
	if err != nil {
		return false, fmt.Errorf("go offline: %w", err)
	}
	if held {
		return false, nil
	}
	err = s.kv.Delete(ctx, userKey(userID), jetstream.LastRevision(e.rev))
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) || kvutil.IsNotFound(err) {
		return false, nil // someone came online, or another pod won
	}
	if err != nil {
		return false, fmt.Errorf("go offline: %w", err)
	}
	return true, s.announceTransition(ctx, userID, protocol.PresenceOffline)
}

func (s *Store) keys(ctx context.Context, filter string) ([]string, error) {
	l, err := s.kv.ListKeysFiltered(ctx, filter)
	if err != nil {
		if errors.Is(err, jetstream.ErrNoKeysFound) {
			return nil, nil
		}
		return nil, err
	}
	var out []string
	for k := range l.Keys() {
		out = append(out, k)
	}
	return out, nil
}

func userKey(id int64) string   { return "u." + strconv.FormatInt(id, 10) }
func statusKey(id int64) string { return "s." + strconv.FormatInt(id, 10) }
func connKey(id int64, pod string) string {
	return "c." + strconv.FormatInt(id, 10) + "." + pod
}

// ValidPodName reports whether a pod name can be a KV key token.
func ValidPodName(pod string) bool { return protocol.ValidID(pod) }

// parseConnKey splits c.<user>.<pod>.
func parseConnKey(key string) (int64, string, bool) {
	rest, ok := strings.CutPrefix(key, "c.")
	if !ok {
		return 0, "", false
	}
	u, pod, ok := strings.Cut(rest, ".")
	if !ok {
		return 0, "", false
	}
	id, err := protocol.ParseUserID(u)
	return id, pod, err == nil
}
