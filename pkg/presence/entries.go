package presence

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"
)

// Connection entries c.<user>.<pod> are removed without a tombstone (a
// stream purge of the key's subject), so "does any pod still hold a
// connection of the user" is one leader read: the first message on
// c.<user>.* is a live entry, or there is none. A KV purge would leave a
// tombstone per pod identity that ever held the user (each process has its
// own), all of which the check would have to step over; and a key listing
// costs an ordered consumer per check, on whichever replica it lands.
//
// Tombstones left by earlier releases (KV purges) are stepped over and
// removed by the first check that meets them.

// removeEntry removes a connection entry (idempotent). upTo > 0 removes
// only messages below that revision: a tombstone, never a newer entry that
// its pod wrote meanwhile.
func (s *Store) removeEntry(ctx context.Context, key string, upTo uint64) error {
	body, err := json.Marshal(struct {
		Filter string `json:"filter"`
		Seq    uint64 `json:"seq,omitempty"`
	}{s.subject(key), upTo})
	if err != nil {
		return err
	}
	data, err := s.leaderRequest(ctx, s.api+"STREAM.PURGE."+s.streamName, body)
	if err != nil {
		return fmt.Errorf("remove %s: %w", key, err)
	}
	var resp struct {
		Error   *jetstream.APIError `json:"error"`
		Success bool                `json:"success"`
	}
	if err := json.Unmarshal(data, &resp); err != nil {
		return fmt.Errorf("remove %s: decode answer: %w", key, err)
	}
	if resp.Error != nil {
		return fmt.Errorf("remove %s: %w", key, resp.Error)
	}
	if !resp.Success {
		return fmt.Errorf("remove %s: purge not acknowledged", key)
	}
	return nil
}

// anyEntry reports whether any pod holds a connection entry of userID, as
// the stream leader knows it: every entry written or removed before the
// call is seen.
func (s *Store) anyEntry(ctx context.Context, userID int64) (bool, error) {
	filter := s.subject("c." + strconv.FormatInt(userID, 10) + ".*")
	var from uint64
	for {
		m, found, err := s.leaderGet(ctx, msgGetRequest{Seq: from, NextFor: filter})
		if err != nil || !found {
			return false, err
		}
		gone, err := m.removed()
		if err != nil {
			return false, err
		}
		if !gone {
			return true, nil
		}
		// An earlier release's tombstone: drop it (best effort, only up to
		// itself) so the next check does not step over it again.
		_ = s.removeEntry(ctx, m.Subject[len(s.subject("")):], m.Seq+1)
		from = m.Seq + 1
	}
}
