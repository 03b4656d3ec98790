package presence_test

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"sync/atomic"
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

// recorder collects presence_update frames published to a user subject.
type recorder struct {
	mu   sync.Mutex
	got  []protocol.PresenceUpdate
	sub  *nats.Subscription
	conn *nats.Conn
}

func (r *recorder) events() []protocol.PresenceUpdate {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]protocol.PresenceUpdate(nil), r.got...)
}

type world struct {
	t     *testing.T
	ns    *natsembed.Server
	dir   *directory.Store
	store func() *presence.Store
}

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{t: t, ns: natsembed.Test(t)}
	nc := w.conn()
	var err error
	if w.dir, err = directory.Open(context.Background(), nc); err != nil {
		t.Fatal(err)
	}
	w.store = func() *presence.Store {
		nc := w.conn()
		subj, _ := bus.NewSubjects("")
		s, err := presence.Open(context.Background(), nc, "", w.dir, bus.NewPublisher(nc, subj))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	return w
}

func (w *world) conn() *nats.Conn {
	nc, err := bus.Connect(bus.Config{URLs: []string{w.ns.ClientURL()}})
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(nc.Close)
	return nc
}

func (w *world) record(user int64) *recorder {
	r := &recorder{conn: w.conn()}
	var err error
	r.sub, err = r.conn.Subscribe("ocvr.user."+itoa(user), func(m *nats.Msg) {
		var f struct {
			Type string                  `json:"type"`
			Data protocol.PresenceUpdate `json:"data"`
		}
		if json.Unmarshal(m.Data, &f) == nil && f.Type == protocol.TypePresenceUpdate {
			r.mu.Lock()
			r.got = append(r.got, f.Data)
			r.mu.Unlock()
		}
	})
	if err != nil {
		w.t.Fatal(err)
	}
	_ = r.conn.Flush()
	return r
}

// pod runs a tracker until the returned stop is called; kill=true skips the
// clean shutdown, as a SIGKILL would.
func (w *world) pod(name string, grace, lease time.Duration) (*presence.Tracker, func(kill bool)) {
	s := w.store()
	tr := s.NewTracker(presence.TrackerConfig{Pod: name, Grace: grace, LeaseTTL: lease})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = tr.Run(ctx); close(done) }()
	var once sync.Once
	stop := func(kill bool) {
		once.Do(func() {
			if !kill {
				tr.Shutdown(context.Background())
			}
			cancel()
			<-done
		})
	}
	w.t.Cleanup(func() { stop(true) })
	return tr, stop
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func waitEvents(t *testing.T, r *recorder, n int, within time.Duration) []protocol.PresenceUpdate {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if ev := r.events(); len(ev) >= n {
			return ev
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("got %d presence events %+v, want %d", len(r.events()), r.events(), n)
	return nil
}

func TestOnlineOnceAcrossPodsAndOfflineAfterGrace(t *testing.T) {
	w := newWorld(t)
	if err := w.dir.AddFriend(context.Background(), 1, 2); err != nil {
		t.Fatal(err)
	}
	friend := w.record(2)
	grace := 700 * time.Millisecond
	a, _ := w.pod("pod-a", grace, 3*time.Second)
	b, _ := w.pod("pod-b", grace, 3*time.Second)

	// Two devices on two pods at once: one online.
	a.Connected(1)
	b.Connected(1)
	ev := waitEvents(t, friend, 1, 5*time.Second)
	time.Sleep(300 * time.Millisecond)
	if got := friend.events(); len(got) != 1 || got[0].Presence != "online" || got[0].UserID != 1 {
		t.Fatalf("after two connects: %+v", got)
	}
	_ = ev
	// One device closes: nothing.
	a.Disconnected(1)
	time.Sleep(grace + 500*time.Millisecond)
	if got := friend.events(); len(got) != 1 {
		t.Fatalf("after one of two devices closed: %+v", got)
	}
	// The other closes and reconnects within the grace: nothing.
	b.Disconnected(1)
	time.Sleep(grace / 3)
	b.Connected(1)
	time.Sleep(grace + 500*time.Millisecond)
	if got := friend.events(); len(got) != 1 {
		t.Fatalf("after reconnect within grace: %+v", got)
	}
	// Closes for good: one offline after the grace.
	b.Disconnected(1)
	ev = waitEvents(t, friend, 2, 5*time.Second)
	if ev[1].Presence != "offline" {
		t.Fatalf("want offline, got %+v", ev[1])
	}
	time.Sleep(grace)
	if got := friend.events(); len(got) != 2 {
		t.Fatalf("duplicate events: %+v", got)
	}
}

func TestDeadPodUsersGoOfflineOnce(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	for _, u := range []int64{1, 3} {
		if err := w.dir.AddFriend(ctx, u, 2); err != nil {
			t.Fatal(err)
		}
	}
	friend := w.record(2)
	grace, lease := 500*time.Millisecond, 3*time.Second
	a, killA := w.pod("pod-a", grace, lease)
	b, _ := w.pod("pod-b", grace, lease)
	_, _ = w.pod("pod-c", grace, lease)
	a.Connected(1) // only on the pod that dies
	a.Connected(3) // also on pod b
	b.Connected(3)
	waitEvents(t, friend, 2, 5*time.Second)

	start := time.Now()
	killA(true)
	ev := waitEvents(t, friend, 3, 20*time.Second)
	took := time.Since(start)
	if ev[2].Presence != "offline" || ev[2].UserID != 1 {
		t.Fatalf("want user 1 offline, got %+v", ev[2])
	}
	t.Logf("dead pod's user offline after %v", took)
	time.Sleep(2 * time.Second)
	if got := friend.events(); len(got) != 3 {
		t.Fatalf("want exactly one offline (user 3 stays online via pod b), got %+v", got)
	}
}

func TestStatusText(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	if err := w.dir.AddFriend(ctx, 1, 2); err != nil {
		t.Fatal(err)
	}
	friend := w.record(2)
	s := w.store()
	// Offline: stored, not announced.
	if err := s.SetStatus(ctx, 1, "Away"); err != nil {
		t.Fatal(err)
	}
	p, err := s.Get(ctx, 1)
	if err != nil || p.Online || p.StatusText != "Away" {
		t.Fatalf("get = %+v, %v", p, err)
	}
	a, _ := w.pod("pod-a", time.Second, 3*time.Second)
	a.Connected(1)
	ev := waitEvents(t, friend, 1, 5*time.Second)
	if ev[0].StatusText != "Away" {
		t.Fatalf("online event should carry the status: %+v", ev[0])
	}
	if err := s.SetStatus(ctx, 1, "Playing OCVR"); err != nil {
		t.Fatal(err)
	}
	ev = waitEvents(t, friend, 2, 5*time.Second)
	if ev[1] != (protocol.PresenceUpdate{UserID: 1, Presence: "online", StatusText: "Playing OCVR"}) {
		t.Fatalf("status event = %+v", ev[1])
	}
	if err := s.SetStatus(ctx, 1, string(make([]byte, presence.MaxStatusText+1))); err == nil {
		t.Fatal("oversize status accepted")
	}
	if err := s.SetStatus(ctx, 0, "x"); err == nil {
		t.Fatal("invalid user accepted")
	}
}

// TestTrackerNeverBlocksOnSlowKV: with JetStream slow (every byte to and
// from the server held 100 ms each way), Connected, Disconnected and the
// re-assert after a reconnect return at once, whatever the backlog, and the
// pod's lease keeps being refreshed (a lapse would take every local user
// offline cluster-wide).
func TestTrackerNeverBlocksOnSlowKV(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	link := newSlowLink(t, w.ns.ClientURL())
	nc, err := bus.Connect(bus.Config{URLs: []string{link.URL()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	subj, _ := bus.NewSubjects("")
	s, err := presence.Open(ctx, nc, "", w.dir, bus.NewPublisher(nc, subj))
	if err != nil {
		t.Fatal(err)
	}
	lease := 3 * time.Second
	// One worker: the backlog per worker is what used to fill up.
	tr := s.NewTracker(presence.TrackerConfig{Pod: "slow", Grace: time.Second, LeaseTTL: lease, Workers: 1})
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = tr.Run(runCtx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	// Watch our lease from a connection that is not slowed.
	kv := presenceKV(t, w.conn())
	key := "pod." + tr.Pod()
	waitKey(t, kv, key, 5*time.Second)
	watch, err := kv.Watch(ctx, key, jetstream.UpdatesOnly())
	if err != nil {
		t.Fatal(err)
	}
	defer watch.Stop()
	var lapsed atomic.Bool
	go func() { // owner: this test; exits when the watcher stops
		for e := range watch.Updates() {
			if e != nil && (e.Operation() == jetstream.KeyValueDelete || e.Operation() == jetstream.KeyValuePurge) {
				lapsed.Store(true)
			}
		}
	}()

	link.SetDelay(100 * time.Millisecond)
	const users = 6000 // more than any queue of the old tracker held
	timed := func(name string, f func(u int64)) {
		t.Helper()
		var worst atomic.Int64
		finished := make(chan struct{})
		go func() { // owner: this test; exits after the loop (or blocks forever on a blocking tracker, which fails below)
			defer close(finished)
			for u := int64(1); u <= users; u++ {
				start := time.Now()
				f(u)
				if d := time.Since(start); int64(d) > worst.Load() {
					worst.Store(int64(d))
				}
			}
		}()
		select {
		case <-finished:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s of %d users did not return within 10s with a slow KV (worst call so far %v)", name, users, time.Duration(worst.Load()))
		}
		if d := time.Duration(worst.Load()); d > 250*time.Millisecond {
			t.Fatalf("%s: slowest call took %v with a slow KV, want it not to wait for NATS", name, d)
		}
	}
	timed("Connected", tr.Connected)
	start := time.Now()
	tr.NATSReconnected() // re-asserts every local user from the lease loop
	timed("Connected again", tr.Connected)
	timed("Disconnected", tr.Disconnected)
	timed("Disconnected again", tr.Disconnected)
	// Two lease lifetimes after the re-assert: the lease never lapsed.
	time.Sleep(2*lease - time.Since(start))
	if lapsed.Load() {
		t.Fatal("the pod's lease lapsed while KV was slow")
	}
	if _, err := kv.Get(ctx, key); err != nil {
		t.Fatalf("lease: %v", err)
	}
}

// TestChurnCoalesced: a user whose connections open and close many times
// (a flaky network) while KV is slow still produces exactly one online and,
// once gone for the grace, exactly one offline.
func TestChurnCoalesced(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	if err := w.dir.AddFriend(ctx, 1, 2); err != nil {
		t.Fatal(err)
	}
	friend := w.record(2)
	link := newSlowLink(t, w.ns.ClientURL())
	nc, err := bus.Connect(bus.Config{URLs: []string{link.URL()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	subj, _ := bus.NewSubjects("")
	s, err := presence.Open(ctx, nc, "", w.dir, bus.NewPublisher(nc, subj))
	if err != nil {
		t.Fatal(err)
	}
	grace := 800 * time.Millisecond
	tr := s.NewTracker(presence.TrackerConfig{Pod: "churn", Grace: grace, LeaseTTL: 3 * time.Second})
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = tr.Run(runCtx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	link.SetDelay(30 * time.Millisecond)
	tr.Connected(1) // stays
	for i := 0; i < 200; i++ {
		tr.Connected(1)
		tr.Disconnected(1)
		if i%20 == 0 {
			time.Sleep(10 * time.Millisecond)
		}
	}
	ev := waitEvents(t, friend, 1, 10*time.Second)
	if ev[0].Presence != protocol.PresenceOnline {
		t.Fatalf("want online, got %+v", ev)
	}
	tr.Disconnected(1)
	ev = waitEvents(t, friend, 2, 10*time.Second)
	if ev[1].Presence != protocol.PresenceOffline {
		t.Fatalf("want offline, got %+v", ev)
	}
	time.Sleep(grace + 500*time.Millisecond)
	if got := friend.events(); len(got) != 2 {
		t.Fatalf("want exactly one online and one offline, got %+v", got)
	}
}

func presenceKV(t *testing.T, nc *nats.Conn) jetstream.KeyValue {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(context.Background(), presence.DefaultBucket)
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

func waitKey(t *testing.T, kv jetstream.KeyValue, key string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if _, err := kv.Get(context.Background(), key); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("key %s did not appear within %v", key, within)
}

// TestReassertRestoresEntries: after a NATS reconnect the tracker
// re-creates the entries of its connected users that another pod removed
// meanwhile (an outage longer than the lease), and a stray Disconnected
// (no matching Connected) changes nothing.
func TestReassertRestoresEntries(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	a, _ := w.pod("pod-a", time.Second, 3*time.Second)
	a.Connected(7)
	a.Connected(8)
	a.Disconnected(9) // never connected
	kv := presenceKV(t, w.conn())
	for _, u := range []int64{7, 8} {
		waitKey(t, kv, "c."+itoa(u)+"."+a.Pod(), 5*time.Second)
		waitKey(t, kv, "u."+itoa(u), 5*time.Second)
	}
	// What a surviving pod's cleanup does to a pod it believes dead.
	for _, k := range []string{"c.7." + a.Pod(), "c.8." + a.Pod(), "u.7", "u.8"} {
		if err := kv.Purge(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	a.NATSReconnected()
	for _, u := range []int64{7, 8} {
		waitKey(t, kv, "c."+itoa(u)+"."+a.Pod(), 5*time.Second)
		waitKey(t, kv, "u."+itoa(u), 5*time.Second)
	}
	if _, err := kv.Get(ctx, "c.9."+a.Pod()); err == nil {
		t.Fatal("an entry for a user that never connected")
	}
}
