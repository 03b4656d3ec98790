// Package directory stores what subscribe authorization and presence need:
// channels, channel memberships and friendships, in NATS KV (DESIGN.md §4).
// The platform's backends own this data and write it through this package
// or ocvrctl; gateways read and watch it.
package directory

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ocvr/realtime/pkg/internal/kvutil"
	"github.com/ocvr/realtime/pkg/protocol"
)

// Default bucket names.
const (
	ChannelsBucket = "ocvr_channels" // <channel_id>
	MembersBucket  = "ocvr_members"  // <channel_id>.<user_id>
	FriendsBucket  = "ocvr_friends"  // set.<user_id> (the friend set) and <user_id>.<friend_id>, both directions
)

// Buckets names the directory's three buckets. Two environments sharing a
// NATS account (staging and production with different subject prefixes)
// must use different names, or each would authorize with the other's
// channels and memberships. An empty field takes its default.
type Buckets struct {
	Channels string // default ChannelsBucket
	Members  string // default MembersBucket
	Friends  string // default FriendsBucket
}

// withDefaults fills empty names and checks that the three differ: the
// watchers tell channel keys from membership keys by bucket alone.
func (b Buckets) withDefaults() (Buckets, error) {
	if b.Channels == "" {
		b.Channels = ChannelsBucket
	}
	if b.Members == "" {
		b.Members = MembersBucket
	}
	if b.Friends == "" {
		b.Friends = FriendsBucket
	}
	if b.Channels == b.Members || b.Channels == b.Friends || b.Members == b.Friends {
		return b, fmt.Errorf("directory buckets must differ: channels %q, members %q, friends %q", b.Channels, b.Members, b.Friends)
	}
	return b, nil
}

// Option configures Open.
type Option func(*options)

type options struct {
	buckets Buckets
}

// WithBuckets opens the directory in these buckets instead of the defaults.
func WithBuckets(b Buckets) Option {
	return func(o *options) { o.buckets = b }
}

// ErrNotFound is returned when deleting a channel that does not exist.
var ErrNotFound = errors.New("not found")

// Store is the directory.
//
// ChannelExists and IsMember authorize subscriptions, so they read from the
// stream leader (see kvutil.LeaderReader): a removal acknowledged to
// RemoveMember or DeleteChannel is seen by every later check, on any node
// of a NATS cluster.
type Store struct {
	buckets  Buckets
	channels jetstream.KeyValue
	members  jetstream.KeyValue
	friends  jetstream.KeyValue

	channelsLeader *kvutil.LeaderReader
	membersLeader  *kvutil.LeaderReader
}

// Buckets is the names of the store's buckets.
func (s *Store) Buckets() Buckets { return s.buckets }

// ChannelsKV is the channels bucket, for watchers.
func (s *Store) ChannelsKV() jetstream.KeyValue { return s.channels }

// MembersKV is the memberships bucket, for watchers.
func (s *Store) MembersKV() jetstream.KeyValue { return s.members }

// FriendsKV is the friendships bucket, for watchers: set.<user> (a user's
// friend set, see Friends) and the pair keys <user>.<friend>.
func (s *Store) FriendsKV() jetstream.KeyValue { return s.friends }

// Open opens (creating if needed) the three directory buckets: by default
// ocvr_channels, ocvr_members and ocvr_friends (see WithBuckets).
func Open(ctx context.Context, nc *nats.Conn, opts ...Option) (*Store, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	buckets, err := o.buckets.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("open directory: %w", err)
	}
	s := Store{buckets: buckets}
	for _, b := range []struct {
		kv     *jetstream.KeyValue
		leader **kvutil.LeaderReader
		name   string
		desc   string
	}{
		{&s.channels, &s.channelsLeader, buckets.Channels, "OCVR channels"},
		{&s.members, &s.membersLeader, buckets.Members, "OCVR channel memberships"},
		{&s.friends, nil, buckets.Friends, "OCVR friendships"},
	} {
		kv, err := kvutil.Open(ctx, nc, jetstream.KeyValueConfig{Bucket: b.name, Description: b.desc, History: 1})
		if err != nil {
			return nil, fmt.Errorf("open directory: %w", err)
		}
		*b.kv = kv
		if b.leader != nil {
			if *b.leader, err = kvutil.NewLeaderReader(ctx, nc, kv); err != nil {
				return nil, fmt.Errorf("open directory: %w", err)
			}
		}
	}
	return &s, nil
}

func stamp() []byte { return []byte(time.Now().UTC().Format(time.RFC3339)) }

// CreateChannel creates a channel (idempotent).
func (s *Store) CreateChannel(ctx context.Context, channelID string) error {
	if err := protocol.CheckChannelID(channelID); err != nil {
		return fmt.Errorf("create channel: %w", err)
	}
	if _, err := s.channels.Put(ctx, channelID, stamp()); err != nil {
		return fmt.Errorf("create channel %s: %w", channelID, err)
	}
	return nil
}

// DeleteChannel deletes a channel and its memberships. Gateways watching
// the directory end its subscriptions with reason "deleted".
func (s *Store) DeleteChannel(ctx context.Context, channelID string) error {
	if err := protocol.CheckChannelID(channelID); err != nil {
		return fmt.Errorf("delete channel: %w", err)
	}
	ok, err := s.ChannelExists(ctx, channelID)
	if err != nil {
		return fmt.Errorf("delete channel %s: %w", channelID, err)
	}
	if !ok {
		return fmt.Errorf("delete channel %s: %w", channelID, ErrNotFound)
	}
	if err := s.channels.Delete(ctx, channelID); err != nil {
		return fmt.Errorf("delete channel %s: %w", channelID, err)
	}
	members, err := s.keys(ctx, s.members, channelID+".*")
	if err != nil {
		return fmt.Errorf("delete channel %s: list members: %w", channelID, err)
	}
	for _, k := range members {
		if err := s.members.Delete(ctx, k); err != nil && !kvutil.IsNotFound(err) {
			return fmt.Errorf("delete channel %s: remove member: %w", channelID, err)
		}
	}
	return nil
}

// ChannelExists reports whether a channel exists, as the stream leader
// knows it (an error means no answer, neither yes nor no).
func (s *Store) ChannelExists(ctx context.Context, channelID string) (bool, error) {
	if !protocol.ValidChannelID(channelID) {
		return false, nil
	}
	return exists(ctx, s.channelsLeader, channelID)
}

// ListChannels lists every channel id, sorted.
func (s *Store) ListChannels(ctx context.Context) ([]string, error) {
	ids, err := s.keys(ctx, s.channels, ">")
	if err != nil {
		return nil, fmt.Errorf("list channels: %w", err)
	}
	return ids, nil
}

// AddMember makes userID a member of channelID (idempotent). The channel
// must exist.
func (s *Store) AddMember(ctx context.Context, channelID string, userID int64) error {
	key, err := memberKey(channelID, userID)
	if err != nil {
		return fmt.Errorf("add member: %w", err)
	}
	ok, err := s.ChannelExists(ctx, channelID)
	if err != nil {
		return fmt.Errorf("add member: %w", err)
	}
	if !ok {
		return fmt.Errorf("add member: channel %s: %w", channelID, ErrNotFound)
	}
	if _, err := s.members.Put(ctx, key, stamp()); err != nil {
		return fmt.Errorf("add member: %w", err)
	}
	return nil
}

// RemoveMember removes a membership (idempotent). Gateways watching the
// directory end the user's subscriptions with reason "removed".
func (s *Store) RemoveMember(ctx context.Context, channelID string, userID int64) error {
	key, err := memberKey(channelID, userID)
	if err != nil {
		return fmt.Errorf("remove member: %w", err)
	}
	if err := s.members.Delete(ctx, key); err != nil && !kvutil.IsNotFound(err) {
		return fmt.Errorf("remove member: %w", err)
	}
	return nil
}

// IsMember reports whether userID is a member of channelID, as the stream
// leader knows it (an error means no answer, neither yes nor no).
func (s *Store) IsMember(ctx context.Context, channelID string, userID int64) (bool, error) {
	key, err := memberKey(channelID, userID)
	if err != nil {
		return false, nil
	}
	return exists(ctx, s.membersLeader, key)
}

// ChannelsOf lists the channels userID is a member of, sorted (a scan: for
// tools and demos, not for hot paths).
func (s *Store) ChannelsOf(ctx context.Context, userID int64) ([]string, error) {
	if err := protocol.CheckUserID(userID); err != nil {
		return nil, fmt.Errorf("channels of: %w", err)
	}
	keys, err := s.keys(ctx, s.members, "*."+strconv.FormatInt(userID, 10))
	if err != nil {
		return nil, fmt.Errorf("channels of %d: %w", userID, err)
	}
	for i, k := range keys {
		keys[i] = k[:strings.IndexByte(k, '.')]
	}
	return keys, nil
}

// ParseMemberKey splits a members-bucket key into channel and user.
func ParseMemberKey(key string) (string, int64, bool) {
	ch, u, ok := strings.Cut(key, ".")
	if !ok || !protocol.ValidChannelID(ch) {
		return "", 0, false
	}
	id, err := protocol.ParseUserID(u)
	return ch, id, err == nil
}

func (s *Store) keys(ctx context.Context, kv jetstream.KeyValue, filter string) ([]string, error) {
	l, err := kv.ListKeysFiltered(ctx, filter)
	if err != nil {
		return nil, err
	}
	var out []string
	for k := range l.Keys() {
		out = append(out, k)
	}
	// The lister closes its channel early, without an error, when ctx ends:
	// a partial list must not pass for a complete one.
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// A lister may report a key twice while the bucket is being written.
	slices.Sort(out)
	return slices.Compact(out), nil
}

func exists(ctx context.Context, r *kvutil.LeaderReader, key string) (bool, error) {
	_, err := r.Get(ctx, key)
	if kvutil.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, nil
}

func memberKey(channelID string, userID int64) (string, error) {
	if err := protocol.CheckChannelID(channelID); err != nil {
		return "", err
	}
	if err := protocol.CheckUserID(userID); err != nil {
		return "", err
	}
	return channelID + "." + strconv.FormatInt(userID, 10), nil
}
