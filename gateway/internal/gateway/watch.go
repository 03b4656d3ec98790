package gateway

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ocvr/realtime/pkg/directory"
	"github.com/ocvr/realtime/pkg/protocol"
)

// watch follows deletions in a directory bucket and calls onDelete for each.
// It always resumes from a known revision: first the bucket's last one when
// the watch starts, then the last it saw. After a NATS reconnect the watcher
// is re-created from there (a KV watcher otherwise goes blind for ~20 s
// after a server restart), so nothing deleted while the pod was cut off is
// missed, even by a watcher that had seen no change before. live is called
// once, when the first watch is established.
func (g *Gateway) watch(ctx context.Context, kv jetstream.KeyValue, onDelete func(key string), live func()) {
	var last uint64
	known := false
	retry := func(what string, err error) bool {
		g.log.Warn("directory watch", "bucket", kv.Bucket(), "step", what, "err", err)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(time.Second):
			return true
		}
	}
	for ctx.Err() == nil {
		reconnected := *g.reconnect.Load()
		if !known {
			rev, err := lastRevision(ctx, kv)
			if err != nil {
				if !retry("status", err) {
					return
				}
				continue
			}
			last, known = rev, true
		}
		w, err := kv.WatchAll(ctx, jetstream.ResumeFromRevision(last+1))
		if err != nil {
			if !retry("watch", err) {
				return
			}
			continue
		}
		if live != nil {
			live()
			live = nil
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

// lastRevision is the revision of the newest entry in the bucket (0 when it
// has none).
func lastRevision(ctx context.Context, kv jetstream.KeyValue) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := kv.Status(ctx)
	if err != nil {
		return 0, err
	}
	bs, ok := st.(*jetstream.KeyValueBucketStatus)
	if !ok {
		return 0, fmt.Errorf("bucket %s: unexpected status type %T", kv.Bucket(), st)
	}
	return bs.StreamInfo().State.LastSeq, nil
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
