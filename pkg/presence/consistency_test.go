package presence_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ocvr/realtime/pkg/bus"
	"github.com/ocvr/realtime/pkg/directory"
	"github.com/ocvr/realtime/pkg/natsembed"
	"github.com/ocvr/realtime/pkg/presence"
	"github.com/ocvr/realtime/pkg/protocol"
)

// TestTransitionsOnReplicatedBucket: on a 3-node cluster (3-replica
// buckets, reads that a lagging replica may answer), users online on pods
// connected to different nodes, then gone, each get exactly one online and
// one offline, and none is left online with no connection (an offline
// decision taken on a replica that had not yet seen the pod's own entry
// removed used to leave one now and then).
func TestTransitionsOnReplicatedBucket(t *testing.T) {
	c := natsembed.TestCluster(t, 3)
	w := &world{t: t, ns: c.Servers[0]}
	ctx := context.Background()
	var err error
	if w.dir, err = directory.Open(ctx, w.conn()); err != nil {
		t.Fatal(err)
	}
	const observer, users = int64(1000), 40
	for u := int64(1); u <= users; u++ {
		if err := w.dir.AddFriend(ctx, u, observer); err != nil {
			t.Fatal(err)
		}
	}
	friend := w.record(observer)
	grace := 100 * time.Millisecond
	var pods []*presence.Tracker
	for i, s := range c.Servers {
		pods = append(pods, startPod(t, s.ClientURL(), w.dir, fmt.Sprintf("pod-%d", i), grace))
	}
	// Every user online (a second device on another pod for some), then
	// every device gone: an offline decision per user, each taken right
	// after the deciding pod removed its own entry.
	for u := int64(1); u <= users; u++ {
		pods[int(u)%len(pods)].Connected(u)
		if u%4 == 0 {
			pods[(int(u)+1)%len(pods)].Connected(u)
		}
	}
	waitEvents(t, friend, users, 30*time.Second)
	for u := int64(1); u <= users; u++ {
		pods[int(u)%len(pods)].Disconnected(u)
		if u%4 == 0 {
			pods[(int(u)+1)%len(pods)].Disconnected(u)
		}
	}
	waitEvents(t, friend, 2*users, 30*time.Second)
	time.Sleep(2 * grace)
	got := map[int64][]string{}
	for _, e := range friend.events() {
		got[e.UserID] = append(got[e.UserID], e.Presence)
	}
	for u := int64(1); u <= users; u++ {
		if g := got[u]; len(g) != 2 || g[0] != protocol.PresenceOnline || g[1] != protocol.PresenceOffline {
			t.Errorf("user %d: %v, want [online offline]", u, g)
		}
	}
	kv := presenceKV(t, w.conn())
	for u := int64(1); u <= users; u++ {
		if _, err := kv.Get(ctx, "u."+itoa(u)); err == nil {
			t.Errorf("user %d is still online in KV with no connection", u)
		}
	}
}

// TestEntriesLeaveNoTombstone: a pod's connection entry is removed without
// a tombstone, and a tombstone left by an earlier release (a KV purge of a
// pod's entry) neither keeps the user online nor stays.
func TestEntriesLeaveNoTombstone(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	if err := w.dir.AddFriend(ctx, 5, 2); err != nil {
		t.Fatal(err)
	}
	friend := w.record(2)
	w.store() // creates the bucket
	kv := presenceKV(t, w.conn())
	// An earlier release's pod held user 5 and KV-purged its entry.
	if _, err := kv.Put(ctx, "c.5.old_pod", nil); err != nil {
		t.Fatal(err)
	}
	if err := kv.Purge(ctx, "c.5.old_pod"); err != nil {
		t.Fatal(err)
	}
	stream := presenceStream(t, w.conn())
	if _, err := stream.GetLastMsgForSubject(ctx, "$KV."+presence.DefaultBucket+".c.5.old_pod"); err != nil {
		t.Fatalf("the earlier release's tombstone: %v", err)
	}

	grace := 200 * time.Millisecond
	a, _ := w.pod("pod-a", grace, 3*time.Second)
	a.Connected(5)
	waitKey(t, kv, "c.5."+a.Pod(), 5*time.Second)
	a.Disconnected(5)
	ev := waitEvents(t, friend, 2, 5*time.Second)
	if ev[1].Presence != protocol.PresenceOffline {
		t.Fatalf("events %+v, want online then offline", ev)
	}
	for _, key := range []string{"c.5." + a.Pod(), "c.5.old_pod"} {
		if m, err := stream.GetLastMsgForSubject(ctx, "$KV."+presence.DefaultBucket+"."+key); !errors.Is(err, jetstream.ErrMsgNotFound) {
			t.Errorf("%s: %v, %v; want no message at all", key, m, err)
		}
	}
}

// startPod runs a tracker on its own connection to url until the test ends.
func startPod(t *testing.T, url string, dir *directory.Store, name string, grace time.Duration) *presence.Tracker {
	t.Helper()
	nc, err := bus.Connect(bus.Config{URLs: []string{url}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	subj, _ := bus.NewSubjects("")
	s, err := presence.Open(context.Background(), nc, "", dir, bus.NewPublisher(nc, subj))
	if err != nil {
		t.Fatal(err)
	}
	tr := s.NewTracker(presence.TrackerConfig{Pod: name, Grace: grace, LeaseTTL: 3 * time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = tr.Run(ctx) }() // owner: this test; ends at cleanup
	t.Cleanup(func() { cancel(); wg.Wait() })
	return tr
}

func presenceStream(t *testing.T, nc *nats.Conn) jetstream.Stream {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(context.Background(), "KV_"+presence.DefaultBucket)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
