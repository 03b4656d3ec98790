package kvutil

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// WatchOptions configures WatchDeletions.
type WatchOptions struct {
	// Keys limits the watch to keys matching this KV pattern (* and >
	// wildcards); "" watches every key.
	Keys string

	// OnDelete is called for every key deleted or purged after the watch
	// started, TTL expiry markers included. Required. It runs on
	// WatchDeletions' goroutine, one call at a time, in revision order; a
	// slow callback delays the next ones, never drops them.
	OnDelete func(key string)

	// Reconnected returns a channel that is closed at the next NATS
	// reconnect (each call returns the channel of the next one). After a
	// server restart a KV watcher stays subscribed but goes blind for
	// ≈20 s, so the watch is re-created, from the last revision seen, when
	// the channel closes. Nil: the watch is only re-created when its
	// watcher ends, and a restart may delay deletions by those 20 s.
	Reconnected func() <-chan struct{}

	// Live, if set, is called once, when the first watcher is in place:
	// from then on every deletion after the watch's starting revision is
	// reported, whatever happens to the connection.
	Live func()

	// Log receives retries and bucket resets; nil discards them.
	Log *slog.Logger

	// RetryDelay spaces attempts while NATS or JetStream does not answer;
	// default 1 s.
	RetryDelay time.Duration
}

// WatchDeletions reports deletions in kv until ctx ends, then returns nil
// (an error at once only for invalid options). It runs on the caller's
// goroutine and starts none that outlive it: the caller owns it, typically
// as `go func() { defer wg.Done(); _ = kvutil.WatchDeletions(ctx, kv, o) }()`.
//
// Nothing deleted after the watch starts is missed, whatever happens to the
// connection: the watch starts from the bucket's last revision (not "new
// updates only", so a deletion between the revision read and the watcher's
// creation is still delivered), always resumes from the last revision it
// saw, and is re-created after every NATS reconnect (see
// WatchOptions.Reconnected) and whenever the watcher ends. A bucket that
// was re-created (a NATS restart without its data; its revisions start
// again at 1) is detected and watched from its beginning.
func WatchDeletions(ctx context.Context, kv jetstream.KeyValue, opts WatchOptions) error {
	if kv == nil {
		return errors.New("watch deletions: nil bucket")
	}
	if opts.OnDelete == nil {
		return errors.New("watch deletions: OnDelete is required")
	}
	if opts.Keys == "" {
		opts.Keys = ">"
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.RetryDelay <= 0 {
		opts.RetryDelay = time.Second
	}
	log := opts.Log.With("bucket", kv.Bucket(), "keys", opts.Keys)
	// wait is the pause after a failed step; false when ctx ended.
	wait := func(step string, err error) bool {
		log.Warn("kv watch: retrying", "step", step, "err", err)
		t := time.NewTimer(opts.RetryDelay)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		}
	}

	var (
		last    uint64    // revision of the last update seen (or the start)
		created time.Time // the stream's creation time: tells a re-created bucket
		known   bool      // last and created are set
		live    = opts.Live
	)
	for ctx.Err() == nil {
		// Taken before the watcher is created, so a reconnect during the
		// creation still re-creates it.
		var reconnected <-chan struct{}
		if opts.Reconnected != nil {
			reconnected = opts.Reconnected()
		}
		st, err := streamState(ctx, kv)
		if err != nil {
			if !wait("status", err) {
				break
			}
			continue
		}
		switch {
		case !known:
			last, created, known = st.lastSeq, st.created, true
		case !st.created.Equal(created) || st.lastSeq < last:
			// Revisions restarted: resuming from last+1 would skip every
			// deletion until the new stream caught up with the old one.
			log.Warn("kv watch: bucket was re-created; watching it from its start", "last_seen", last, "bucket_last", st.lastSeq)
			last, created = 0, st.created
		}
		w, err := kv.Watch(ctx, opts.Keys, jetstream.ResumeFromRevision(last+1), jetstream.MetaOnly())
		if err != nil {
			if !wait("watch", err) {
				break
			}
			continue
		}
		if live != nil {
			live()
			live = nil
		}
		var ended bool
		last, ended = follow(ctx, w, reconnected, last, opts.OnDelete)
		_ = w.Stop()
		// A watcher that ends by itself (not a reconnect) is re-created
		// after a pause, so one that keeps failing does not spin.
		if ended && !wait("watcher ended", errors.New("updates channel closed")) {
			break
		}
	}
	return nil
}

// follow delivers w's deletions until ctx ends, NATS reconnects or the
// watcher ends (ended), and returns the last revision seen.
func follow(ctx context.Context, w jetstream.KeyWatcher, reconnected <-chan struct{}, last uint64, onDelete func(string)) (_ uint64, ended bool) {
	for {
		select {
		case <-ctx.Done():
			return last, false
		case <-reconnected: // nil without a Reconnected option: never ready
			return last, false
		case e, ok := <-w.Updates():
			if !ok {
				return last, true
			}
			if e == nil {
				continue // end of the initial replay
			}
			last = e.Revision()
			if op := e.Operation(); op == jetstream.KeyValueDelete || op == jetstream.KeyValuePurge {
				onDelete(e.Key())
			}
		}
	}
}

type streamSnapshot struct {
	lastSeq uint64
	created time.Time
}

// streamState reads the bucket's last revision and creation time. The
// short timeout matters while the stream elects a leader: nobody answers,
// and asking again soon finds the new leader sooner than waiting 5 s.
func streamState(ctx context.Context, kv jetstream.KeyValue) (streamSnapshot, error) {
	ctx, cancel := context.WithTimeout(ctx, leaderAttemptTimeout)
	defer cancel()
	st, err := kv.Status(ctx)
	if err != nil {
		return streamSnapshot{}, err
	}
	bs, ok := st.(*jetstream.KeyValueBucketStatus)
	if !ok {
		return streamSnapshot{}, fmt.Errorf("bucket %s: unexpected status type %T", kv.Bucket(), st)
	}
	si := bs.StreamInfo()
	return streamSnapshot{lastSeq: si.State.LastSeq, created: si.Created}, nil
}

// Reconnects tells watchers about NATS reconnects: call Notify from the
// connection's reconnect handler (nats.ReconnectHandler, or
// bus.Config.OnReconnect) and pass Next as WatchOptions.Reconnected. The
// zero value is ready to use.
type Reconnects struct {
	mu sync.Mutex
	ch chan struct{}
}

// Next returns a channel closed at the next Notify.
func (r *Reconnects) Next() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ch == nil {
		r.ch = make(chan struct{})
	}
	return r.ch
}

// Notify closes the channel every earlier Next returned.
func (r *Reconnects) Notify() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ch != nil {
		close(r.ch)
		r.ch = nil
	}
}
