package directory

import (
	"context"
	"errors"
	"log/slog"
	"sync"

	"github.com/ocvr/realtime/pkg/internal/kvutil"
	"github.com/ocvr/realtime/pkg/protocol"
)

// WatchOptions configures WatchRemovals.
type WatchOptions struct {
	// OnMemberRemoved is called for every membership deleted after the
	// watch started: RemoveMember, and DeleteChannel for each member of the
	// channel (those may come before or after OnChannelDeleted; use
	// ChannelExists to tell "removed" from "deleted").
	OnMemberRemoved func(channelID string, userID int64)
	// OnChannelDeleted is called for every channel deleted after the watch
	// started.
	OnChannelDeleted func(channelID string)
	// Reconnected returns a channel closed at the next NATS reconnect; both
	// watches are re-created then, from the last revision each saw (a KV
	// watcher goes blind after a server restart). See kvutil.WatchOptions.
	Reconnected func() <-chan struct{}
	// Live, if set, is called once both watches are in place: from then on
	// no removal is missed.
	Live func()
	// Log receives retries; nil discards them.
	Log *slog.Logger
}

// WatchRemovals reports membership removals and channel deletions until ctx
// ends, then returns nil (an error at once when both callbacks are nil).
// It runs on the caller's goroutine and watches the two buckets from two:
// the caller's, and one of its own that has ended when WatchRemovals
// returns. The callbacks are never called concurrently, so they may share
// state without locking; a slow one delays the others.
func (s *Store) WatchRemovals(ctx context.Context, opts WatchOptions) error {
	if opts.OnMemberRemoved == nil && opts.OnChannelDeleted == nil {
		return errors.New("watch removals: OnMemberRemoved or OnChannelDeleted is required")
	}
	var (
		mu      sync.Mutex // serializes the callbacks of the two watches
		liveMu  sync.Mutex
		pending = 2 // watches not yet live
	)
	live := func() {
		liveMu.Lock()
		defer liveMu.Unlock()
		if pending--; pending == 0 && opts.Live != nil {
			opts.Live()
		}
	}
	members := kvutil.WatchOptions{
		OnDelete: func(key string) {
			ch, user, ok := ParseMemberKey(key)
			if !ok || opts.OnMemberRemoved == nil {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			opts.OnMemberRemoved(ch, user)
		},
		Reconnected: opts.Reconnected,
		Live:        live,
		Log:         opts.Log,
	}
	channels := kvutil.WatchOptions{
		OnDelete: func(key string) {
			if !protocol.ValidChannelID(key) || opts.OnChannelDeleted == nil {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			opts.OnChannelDeleted(key)
		},
		Reconnected: opts.Reconnected,
		Live:        live,
		Log:         opts.Log,
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = kvutil.WatchDeletions(ctx, s.channels, channels) // options valid: only ends with ctx
	}()
	err := kvutil.WatchDeletions(ctx, s.members, members)
	wg.Wait()
	return err
}
