package gateway

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ocvr/realtime/pkg/directory"
	"github.com/ocvr/realtime/pkg/protocol"
)

// watch follows deletions in a directory bucket and calls onDelete for each.
// After a NATS reconnect the watcher is re-created from the last revision it
// saw: a KV watcher otherwise goes blind for ~20 s after a server restart.
func (g *Gateway) watch(ctx context.Context, kv jetstream.KeyValue, onDelete func(key string)) {
	var last uint64
	for ctx.Err() == nil {
		reconnected := *g.reconnect.Load()
		opts := []jetstream.WatchOpt{jetstream.UpdatesOnly()}
		if last > 0 {
			opts = []jetstream.WatchOpt{jetstream.ResumeFromRevision(last + 1)}
		}
		w, err := kv.WatchAll(ctx, opts...)
		if err != nil {
			g.log.Warn("directory watch", "bucket", kv.Bucket(), "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
	loop:
		for {
			select {
			case <-ctx.Done():
				_ = w.Stop()
				return
			case <-reconnected:
				break loop
			case e, ok := <-w.Updates():
				if !ok {
					break loop
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
		_ = w.Stop()
	}
}

func (g *Gateway) onMemberDeleted(key string) {
	ch, user, ok := directory.ParseMemberKey(key)
	if !ok {
		return
	}
	subj, _ := g.subjects.Channel(ch)
	t := g.hub.topic(subj)
	if t == nil {
		return
	}
	reason := ""
	for _, c := range t.snapshot() {
		if c.userID != user {
			continue
		}
		if reason == "" {
			reason = g.removalReason(ch)
		}
		g.endSubscription(c, ch, reason)
	}
}

// removalReason tells "deleted" from "removed": deleting a channel also
// deletes its memberships, and those events may arrive first.
func (g *Gateway) removalReason(ch string) string {
	st := g.stores.Load()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if ok, err := st.dir.ChannelExists(ctx, ch); err == nil && !ok {
		return protocol.ReasonDeleted
	}
	return protocol.ReasonRemoved
}

func (g *Gateway) onChannelDeleted(key string) {
	if !protocol.ValidChannelID(key) {
		return
	}
	subj, _ := g.subjects.Channel(key)
	t := g.hub.topic(subj)
	if t == nil {
		return
	}
	for _, c := range t.snapshot() {
		g.endSubscription(c, key, protocol.ReasonDeleted)
	}
}
