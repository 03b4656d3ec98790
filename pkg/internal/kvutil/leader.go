package kvutil

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ocvr/realtime/pkg/provision"
)

const (
	// leaderReadTimeout bounds a leader read whose ctx has no deadline, as
	// nats.go bounds its own JetStream API calls.
	leaderReadTimeout = 5 * time.Second
	// leaderAttemptTimeout bounds one request. Followers ignore the
	// request, so while a new stream leader is being elected (after the
	// old one's node went away) nobody answers at all: asking again, within
	// the caller's deadline, gets the new leader's answer as soon as there
	// is one instead of waiting out the whole deadline on the first try.
	leaderAttemptTimeout = 2 * time.Second
	// leaderRetryPause spaces attempts that failed at once (no responders,
	// "cluster not available" while the group is leaderless).
	leaderRetryPause = 100 * time.Millisecond
	// jsClusterNotAvail is JetStream's "JetStream system temporarily
	// unavailable", answered while the stream's group has no leader.
	jsClusterNotAvail jetstream.ErrorCode = 10008
)

// LeaderReader reads keys of one bucket from the leader of its stream.
//
// nats.go turns on AllowDirect for KV buckets, so KeyValue.Get is a direct
// get that any replica may answer, and a follower may not yet hold a delete
// the leader has already acknowledged to its writer: a revoked session or a
// removed membership would still be there. Authorization reads go through a
// LeaderReader instead: the non-direct STREAM.MSG.GET API, which only the
// stream leader answers, and the leader has stored every write it
// acknowledged. The cost is one hop to the leader; reads that only inform
// (listings, tools) keep using KeyValue.Get.
//
// The API is addressed in the JetStream domain of NewLeaderReader's context
// (provision.WithDomain), as Open's is. A LeaderReader is safe for
// concurrent use.
type LeaderReader struct {
	nc      *nats.Conn
	bucket  string
	api     string // $JS[.<domain>].API.STREAM.MSG.GET.<stream>
	keyPref string // $KV.<bucket>. (the origin's bucket for a mirror)
}

// NewLeaderReader returns a leader reader for kv. It asks the server for the
// bucket's stream (one request), so the stream name and key subjects are
// the bucket's real ones, a mirrored bucket's included, not guessed.
func NewLeaderReader(ctx context.Context, nc *nats.Conn, kv jetstream.KeyValue) (*LeaderReader, error) {
	st, err := kv.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("leader reader %s: %w", kv.Bucket(), err)
	}
	bs, ok := st.(*jetstream.KeyValueBucketStatus)
	if !ok {
		return nil, fmt.Errorf("leader reader %s: unexpected status type %T", kv.Bucket(), st)
	}
	cfg := bs.StreamInfo().Config
	bucket := strings.TrimPrefix(cfg.Name, "KV_")
	if cfg.Mirror != nil {
		// A mirror stores the origin's subjects (nats.go reads it so too).
		bucket = strings.TrimPrefix(cfg.Mirror.Name, "KV_")
	}
	return &LeaderReader{
		nc:      nc,
		bucket:  kv.Bucket(),
		api:     provision.APIPrefix(provision.Domain(ctx)) + "STREAM.MSG.GET." + cfg.Name,
		keyPref: "$KV." + bucket + ".",
	}, nil
}

// Entry is a key's current value as the stream leader holds it.
type Entry struct {
	Key      string
	Value    []byte
	Revision uint64
	Created  time.Time
}

// msgGetResponse is the STREAM.MSG.GET answer (nats.go's apiMsgGetResponse).
type msgGetResponse struct {
	Error   *jetstream.APIError `json:"error"`
	Message *struct {
		Subject  string    `json:"subject"`
		Sequence uint64    `json:"seq"`
		Header   []byte    `json:"hdrs"` // base64 in JSON, NATS/1.0 header block
		Data     []byte    `json:"data"`
		Time     time.Time `json:"time"`
	} `json:"message"`
}

// Get returns key's current value. A key never written, deleted, purged or
// expired gives an error for which IsNotFound is true
// (jetstream.ErrKeyNotFound or jetstream.ErrKeyDeleted); any other error
// means the leader did not answer (none elected, NATS down, ctx ended) and
// must not be taken as "not found" or as "found".
func (r *LeaderReader) Get(ctx context.Context, key string) (Entry, error) {
	if !validKey(key) {
		// Never sent: a wildcard here would make last_by_subj match
		// another key's message.
		return Entry{}, fmt.Errorf("leader read %s: %w", r.bucket, jetstream.ErrInvalidKey)
	}
	subject := r.keyPref + key
	req, err := json.Marshal(struct {
		LastBySubj string `json:"last_by_subj"`
	}{subject})
	if err != nil {
		return Entry{}, fmt.Errorf("leader read %s: %w", r.bucket, err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, leaderReadTimeout)
		defer cancel()
	}
	resp, err := r.request(ctx, req)
	if err != nil {
		return Entry{}, fmt.Errorf("leader read %s: %w", r.bucket, err)
	}
	if resp.Error != nil {
		switch resp.Error.ErrorCode {
		case jetstream.JSErrCodeMessageNotFound:
			return Entry{}, jetstream.ErrKeyNotFound
		case jetstream.JSErrCodeStreamNotFound:
			return Entry{}, fmt.Errorf("leader read %s: %w: %w", r.bucket, jetstream.ErrBucketNotFound, resp.Error)
		}
		return Entry{}, fmt.Errorf("leader read %s: %w", r.bucket, resp.Error)
	}
	m := resp.Message
	if m == nil {
		return Entry{}, fmt.Errorf("leader read %s: %w", r.bucket, jetstream.ErrInvalidJetStreamResponse)
	}
	if m.Subject != subject {
		return Entry{}, fmt.Errorf("leader read %s: answer for subject %q, asked %q", r.bucket, m.Subject, subject)
	}
	if len(m.Header) > 0 {
		h, err := nats.DecodeHeadersMsg(m.Header)
		if err != nil {
			return Entry{}, fmt.Errorf("leader read %s: decode headers: %w", r.bucket, err)
		}
		// The last message of a deleted key is its tombstone: a
		// KV-Operation DEL/PURGE marker, or a server marker (per-key TTL
		// expiry, LimitMarkerTTL) that carries only Nats-Marker-Reason.
		if op := h.Get("KV-Operation"); op == "DEL" || op == "PURGE" || h.Get(jetstream.MarkerReasonHeader) != "" {
			return Entry{}, jetstream.ErrKeyDeleted
		}
	}
	return Entry{Key: key, Value: m.Data, Revision: m.Sequence, Created: m.Time}, nil
}

// request asks the stream leader, again while nobody answers (a leader
// election) or the group reports itself leaderless, until ctx ends.
func (r *LeaderReader) request(ctx context.Context, req []byte) (msgGetResponse, error) {
	for {
		actx, cancel := context.WithTimeout(ctx, leaderAttemptTimeout)
		msg, err := r.nc.RequestWithContext(actx, r.api, req)
		cancel()
		var resp msgGetResponse
		switch {
		case err == nil:
			if err := json.Unmarshal(msg.Data, &resp); err != nil {
				return resp, fmt.Errorf("decode response: %w", err)
			}
			if resp.Error == nil || resp.Error.ErrorCode != jsClusterNotAvail {
				return resp, nil
			}
			err = resp.Error
		case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
			continue // this attempt timed out, the caller's time has not
		case !errors.Is(err, nats.ErrNoResponders):
			return resp, err
		}
		t := time.NewTimer(leaderRetryPause)
		select {
		case <-ctx.Done():
			t.Stop()
			return resp, fmt.Errorf("%w (last: %w)", ctx.Err(), err)
		case <-t.C:
		}
	}
}

// validKey is nats.go's KV key grammar: no wildcards, spaces or empty
// tokens.
func validKey(key string) bool {
	if key == "" || key[0] == '.' || key[len(key)-1] == '.' || strings.Contains(key, "..") {
		return false
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '-', c == '/', c == '_', c == '=', c == '.':
		default:
			return false
		}
	}
	return true
}
