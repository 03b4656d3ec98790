package presence

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The offline decision reads what the presence bucket's stream leader
// holds. KeyValue.Get is a direct get that any replica may answer, and a
// listing's ordered consumer may be placed on any replica: on a 3-replica
// bucket either may miss a write acknowledged a moment ago — a u.<user>
// just created (the decision then finds the user "already offline") or the
// pod's own entry just removed (it then finds a connection that is gone).
// Either way the user stayed online with no connection left. The leader
// has stored every write it acknowledged. (The online claim may start from
// a direct get: its write is conditional on the revision read.)

const (
	// leaderAttemptTimeout bounds one request: while a new stream leader is
	// elected nobody answers, and asking again gets the new leader as soon
	// as there is one.
	leaderAttemptTimeout = 2 * time.Second
	// leaderRetryPause spaces attempts that failed at once (no responders,
	// the group leaderless).
	leaderRetryPause = 100 * time.Millisecond
	// jsClusterNotAvail: "JetStream system temporarily unavailable", the
	// answer while the stream's group has no leader.
	jsClusterNotAvail jetstream.ErrorCode = 10008
)

// msgGetRequest is a STREAM.MSG.GET request: the last message of a subject
// (LastFor), or the first at or after Seq on a filter (NextFor).
type msgGetRequest struct {
	Seq     uint64 `json:"seq,omitempty"`
	LastFor string `json:"last_by_subj,omitempty"`
	NextFor string `json:"next_by_subj,omitempty"`
}

// storedMsg is a message of the bucket's stream.
type storedMsg struct {
	Subject string `json:"subject"`
	Seq     uint64 `json:"seq"`
	Header  []byte `json:"hdrs"` // NATS/1.0 header block
	Data    []byte `json:"data"`
}

// removed reports whether m is a key's tombstone: a KV delete or purge
// marker, or a server marker (TTL expiry) that carries only its reason.
func (m storedMsg) removed() (bool, error) {
	if len(m.Header) == 0 {
		return false, nil
	}
	h, err := nats.DecodeHeadersMsg(m.Header)
	if err != nil {
		return false, fmt.Errorf("decode headers of %s: %w", m.Subject, err)
	}
	return tombstone(h), nil
}

func tombstone(h nats.Header) bool {
	op := h.Get("KV-Operation")
	return op == "DEL" || op == "PURGE" || h.Get(jetstream.MarkerReasonHeader) != ""
}

// userEntry is u.<user> as the stream leader holds it.
type userEntry struct {
	rev    uint64 // of the value or of its tombstone; 0: never written
	online bool   // a value, not a tombstone
}

// userEntry reads u.<user> from the stream leader. Unlike KeyValue.Get it
// also gives a tombstone's revision, so claiming a returning user online
// is one conditional write (KeyValue.Create would first fail on the
// tombstone, read it and write again: three round trips).
func (s *Store) userEntry(ctx context.Context, userID int64) (userEntry, error) {
	m, found, err := s.leaderGet(ctx, msgGetRequest{LastFor: s.subject(userKey(userID))})
	if err != nil || !found {
		return userEntry{}, err
	}
	gone, err := m.removed()
	if err != nil {
		return userEntry{}, err
	}
	return userEntry{rev: m.Seq, online: !gone}, nil
}

// userEntryGuess reads u.<user> with a direct get, which any replica may
// answer and which costs the stream leader nothing: a first guess for a
// conditional write, which fails where the guess was stale (the caller
// then asks the leader).
func (s *Store) userEntryGuess(ctx context.Context, userID int64) (userEntry, error) {
	m, err := s.direct.GetLastMsgForSubject(ctx, s.subject(userKey(userID)))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return userEntry{}, nil
	}
	if err != nil {
		return userEntry{}, fmt.Errorf("direct read: %w", err)
	}
	return userEntry{rev: m.Sequence, online: !tombstone(m.Header)}, nil
}

// leaderGet sends a STREAM.MSG.GET request to the leader of the bucket's
// stream. found is false when no message matches.
func (s *Store) leaderGet(ctx context.Context, req msgGetRequest) (storedMsg, bool, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return storedMsg{}, false, err
	}
	data, err := s.leaderRequest(ctx, s.api+"STREAM.MSG.GET."+s.streamName, body)
	if err != nil {
		return storedMsg{}, false, fmt.Errorf("leader read: %w", err)
	}
	var resp struct {
		Error   *jetstream.APIError `json:"error"`
		Message *storedMsg          `json:"message"`
	}
	if err := json.Unmarshal(data, &resp); err != nil {
		return storedMsg{}, false, fmt.Errorf("leader read: decode answer: %w", err)
	}
	switch {
	case resp.Error != nil && resp.Error.ErrorCode == jetstream.JSErrCodeMessageNotFound:
		return storedMsg{}, false, nil
	case resp.Error != nil:
		return storedMsg{}, false, fmt.Errorf("leader read: %w", resp.Error)
	case resp.Message == nil:
		return storedMsg{}, false, fmt.Errorf("leader read: %w", jetstream.ErrInvalidJetStreamResponse)
	}
	return *resp.Message, true, nil
}

// leaderRequest sends a JetStream API request that the stream leader
// answers, again while nobody answers (an election) or the group says it
// is leaderless, until ctx ends. It returns the answer's body.
func (s *Store) leaderRequest(ctx context.Context, subject string, body []byte) ([]byte, error) {
	for {
		actx, cancel := context.WithTimeout(ctx, leaderAttemptTimeout)
		msg, err := s.nc.RequestWithContext(actx, subject, body)
		cancel()
		switch {
		case err == nil:
			var answer struct {
				Error *jetstream.APIError `json:"error"`
			}
			if err := json.Unmarshal(msg.Data, &answer); err != nil {
				return nil, fmt.Errorf("decode answer: %w", err)
			}
			if answer.Error == nil || answer.Error.ErrorCode != jsClusterNotAvail {
				return msg.Data, nil
			}
			err = answer.Error
		case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
			continue // this attempt timed out, the caller's time has not
		case !errors.Is(err, nats.ErrNoResponders):
			return nil, err
		}
		t := time.NewTimer(leaderRetryPause)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("%w (last: %w)", ctx.Err(), err)
		case <-t.C:
		}
	}
}

// subject is key's subject in the bucket's stream.
func (s *Store) subject(key string) string { return "$KV." + s.bucket + "." + key }
