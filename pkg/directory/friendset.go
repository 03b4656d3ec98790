package directory

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ocvr/realtime/pkg/internal/kvutil"
	"github.com/ocvr/realtime/pkg/protocol"
)

// Friendships are kept twice in the friends bucket:
//
//	set.<user>        the user's friend set: a JSON array of user ids,
//	                  ascending ([2,3,10]). The record Friends reads: one
//	                  KV get, where listing keys costs an ordered consumer
//	                  (created and deleted per call) and one message per
//	                  friend.
//	<user>.<friend>   one key per direction (the value: creation time). The
//	                  layout of earlier releases, still written so that
//	                  their readers (gateways during a rolling upgrade)
//	                  stay right, and read where a set is missing.
//
// "set" is never a user id, so no pair key has the set's form, and a pair
// listing (<user>.*) never matches a set.

// MaxFriends bounds a user's friend set: an AddFriend beyond it fails with
// ErrTooManyFriends. At most ≈100 KB of value (5,000 ids of up to 19
// digits), well under NATS's default 1 MB message limit.
const MaxFriends = 5000

// ErrTooManyFriends is returned by AddFriend when either user already has
// MaxFriends friends.
var ErrTooManyFriends = fmt.Errorf("more than %d friends", MaxFriends)

// ErrContention is returned when a friend set kept changing under a write
// for every one of its attempts (many concurrent writers of one user):
// nothing was written by the failed attempt; retrying later is safe.
var ErrContention = errors.New("friend set: too much contention")

// setAttempts bounds the read-modify-write attempts of one friend-set
// change; between attempts a jittered backoff, doubling from
// setBackoffMin to setBackoffMax, spreads the writers out (≈1 s in all).
const (
	setAttempts   = 32
	setBackoffMin = time.Millisecond
	setBackoffMax = 50 * time.Millisecond
)

// AddFriend records a friendship in both directions (idempotent): each
// user's friend set, then the pair keys. An error may leave one direction
// recorded: retry the call. ErrTooManyFriends leaves neither set changed
// (a direction added before the other was found full is taken back).
func (s *Store) AddFriend(ctx context.Context, userID, friendID int64) error {
	if err := checkPair(userID, friendID); err != nil {
		return fmt.Errorf("add friend: %w", err)
	}
	added, err := s.changeSet(ctx, userID, friendID, true)
	if err != nil {
		return fmt.Errorf("add friend %d to %d: %w", friendID, userID, err)
	}
	if _, err := s.changeSet(ctx, friendID, userID, true); err != nil {
		if added && errors.Is(err, ErrTooManyFriends) {
			if _, undoErr := s.changeSet(ctx, userID, friendID, false); undoErr != nil {
				return fmt.Errorf("add friend %d to %d: %w (and taking back %d's side: %w)", userID, friendID, err, userID, undoErr)
			}
		}
		return fmt.Errorf("add friend %d to %d: %w", userID, friendID, err)
	}
	for _, k := range []string{pairKey(userID, friendID), pairKey(friendID, userID)} {
		if _, err := s.friends.Put(ctx, k, stamp()); err != nil {
			return fmt.Errorf("add friend: pair key: %w", err)
		}
	}
	return nil
}

// RemoveFriend removes a friendship in both directions (idempotent): each
// user's friend set, then the pair keys. An error may leave one direction
// removed: retry the call.
//
// Concurrent AddFriend and RemoveFriend calls of the same pair race per
// direction (each set is updated atomically, the two sets one after the
// other): callers that change one pair concurrently must order those calls
// themselves.
func (s *Store) RemoveFriend(ctx context.Context, userID, friendID int64) error {
	if err := checkPair(userID, friendID); err != nil {
		return fmt.Errorf("remove friend: %w", err)
	}
	for _, d := range [][2]int64{{userID, friendID}, {friendID, userID}} {
		if _, err := s.changeSet(ctx, d[0], d[1], false); err != nil {
			return fmt.Errorf("remove friend %d from %d: %w", d[1], d[0], err)
		}
	}
	for _, k := range []string{pairKey(userID, friendID), pairKey(friendID, userID)} {
		if err := s.friends.Delete(ctx, k); err != nil && !kvutil.IsNotFound(err) {
			return fmt.Errorf("remove friend: pair key: %w", err)
		}
	}
	return nil
}

// Friends lists userID's friends, ascending: one KV get of the user's
// friend set (a direct get, which any replica may answer: a friendship
// added a moment ago on another node may be missing from one call).
//
// A bucket written by earlier releases has pair keys only. For a user
// without a set, Friends lists the pair keys instead and writes the result
// back as the user's set (a create: a writer that got there first wins),
// so each user costs one listing, once. A failed write-back (no permission
// to write the bucket, NATS busy) is not an error: the listing is the
// answer, and the next call lists again. Writers of an earlier release,
// which add pair keys only, are not seen by a user whose set exists:
// upgrade every writer of friendships (backends on this SDK, ocvrctl)
// before or with the gateways.
func (s *Store) Friends(ctx context.Context, userID int64) ([]int64, error) {
	if err := protocol.CheckUserID(userID); err != nil {
		return nil, fmt.Errorf("friends: %w", err)
	}
	set, err := s.loadSet(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("friends of %d: %w", userID, err)
	}
	if set.stored || len(set.ids) > MaxFriends {
		return set.ids, nil
	}
	_, err = s.friends.Create(ctx, setKey(userID), encodeSet(set.ids))
	if errors.Is(err, jetstream.ErrKeyExists) {
		// A writer created the set since the listing: its set is newer.
		if e, err := s.friends.Get(ctx, setKey(userID)); err == nil {
			if ids, err := decodeSet(e.Value()); err == nil {
				return ids, nil
			}
		}
	}
	return set.ids, nil
}

// storedSet is a user's friend set as read for a change.
type storedSet struct {
	ids    []int64 // ascending
	rev    uint64  // the set's revision, when stored
	stored bool    // false: no set yet, ids come from the pair keys
}

// loadSet reads userID's friend set, or lists the pair keys where there is
// none.
func (s *Store) loadSet(ctx context.Context, userID int64) (storedSet, error) {
	e, err := s.friends.Get(ctx, setKey(userID))
	switch {
	case err == nil:
		ids, err := decodeSet(e.Value())
		if err != nil {
			return storedSet{}, fmt.Errorf("friend set %s: %w", setKey(userID), err)
		}
		return storedSet{ids: ids, rev: e.Revision(), stored: true}, nil
	case kvutil.IsNotFound(err):
		ids, err := s.pairFriends(ctx, userID)
		if err != nil {
			return storedSet{}, fmt.Errorf("list pair keys: %w", err)
		}
		return storedSet{ids: ids}, nil
	default:
		return storedSet{}, err
	}
}

// pairFriends lists userID's friends from the pair keys (the layout of
// earlier releases), ascending.
func (s *Store) pairFriends(ctx context.Context, userID int64) ([]int64, error) {
	keys, err := s.keys(ctx, s.friends, strconv.FormatInt(userID, 10)+".*")
	if err != nil {
		return nil, err
	}
	ids := make([]int64, 0, len(keys))
	for _, k := range keys {
		if id, err := protocol.ParseUserID(k[strings.IndexByte(k, '.')+1:]); err == nil {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// changeSet adds friendID to userID's friend set, or removes it: a read,
// then a write conditional on the revision read (a create where there was
// no set), again on a conflict with a concurrent writer. Where the user has
// no set yet, the pair keys are its starting point and the set is written
// even when the change is a no-op (the user's migration). It reports
// whether the set changed.
func (s *Store) changeSet(ctx context.Context, userID, friendID int64, add bool) (bool, error) {
	key := setKey(userID)
	backoff := setBackoffMin
	for attempt := 1; ; attempt++ {
		set, err := s.loadSet(ctx, userID)
		if err != nil {
			return false, err
		}
		i, found := slices.BinarySearch(set.ids, friendID)
		changed := add != found
		if !changed && set.stored {
			return false, nil
		}
		ids := set.ids
		switch {
		case add && !found:
			if len(ids) >= MaxFriends {
				return false, fmt.Errorf("user %d: %w", userID, ErrTooManyFriends)
			}
			ids = slices.Insert(slices.Clone(ids), i, friendID)
		case !add && found:
			ids = slices.Delete(slices.Clone(ids), i, i+1)
		}
		if set.stored {
			_, err = s.friends.Update(ctx, key, encodeSet(ids), set.rev)
		} else {
			_, err = s.friends.Create(ctx, key, encodeSet(ids))
		}
		if err == nil {
			return changed, nil
		}
		// A concurrent writer changed the set since the read (or created
		// it): read again. A follower's stale read ends here too.
		if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) && !errors.Is(err, jetstream.ErrKeyExists) {
			return false, fmt.Errorf("write %s: %w", key, err)
		}
		if attempt == setAttempts {
			return false, fmt.Errorf("write %s: %w (%d attempts)", key, ErrContention, setAttempts)
		}
		t := time.NewTimer(rand.N(backoff) + backoff/2)
		select {
		case <-ctx.Done():
			t.Stop()
			return false, fmt.Errorf("write %s: %w", key, ctx.Err())
		case <-t.C:
		}
		backoff = min(2*backoff, setBackoffMax)
	}
}

func setKey(userID int64) string { return "set." + strconv.FormatInt(userID, 10) }

// encodeSet is the stored form of ascending ids: a JSON array.
func encodeSet(ids []int64) []byte {
	b := make([]byte, 0, 2+len(ids)*12)
	b = append(b, '[')
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, id, 10)
	}
	return append(b, ']')
}

// decodeSet parses a stored set. It refuses anything but an array of valid
// user ids, and returns them ascending without repeats whatever the order
// stored (a set written by hand or by another language).
func decodeSet(b []byte) ([]int64, error) {
	if t := bytes.TrimSpace(b); len(t) == 0 || t[0] != '[' {
		return nil, errors.New("decode: not a JSON array")
	}
	var ids []int64
	if err := json.Unmarshal(b, &ids); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	for _, id := range ids {
		if err := protocol.CheckUserID(id); err != nil {
			return nil, fmt.Errorf("decode: %w", err)
		}
	}
	if ids == nil {
		ids = []int64{} // "[]": no friends, but a stored set
	}
	slices.Sort(ids)
	return slices.Compact(ids), nil
}

func checkPair(a, b int64) error {
	if err := protocol.CheckUserID(a); err != nil {
		return err
	}
	if err := protocol.CheckUserID(b); err != nil {
		return err
	}
	if a == b {
		return errors.New("a user cannot befriend themselves")
	}
	return nil
}

func pairKey(a, b int64) string {
	return strconv.FormatInt(a, 10) + "." + strconv.FormatInt(b, 10)
}
