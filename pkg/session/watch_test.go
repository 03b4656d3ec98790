package session_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ocvr/realtime/pkg/bus"
	"github.com/ocvr/realtime/pkg/internal/kvutil"
	"github.com/ocvr/realtime/pkg/natsembed"
	"github.com/ocvr/realtime/pkg/session"
)

// openOn opens a session store with a publisher on a new connection to url
// that reconnects forever and notifies r (if any) on every reconnect.
func openOn(t *testing.T, url string, r *kvutil.Reconnects) *session.Store {
	t.Helper()
	opts := []nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(50 * time.Millisecond)}
	if r != nil {
		opts = append(opts, nats.ReconnectHandler(func(*nats.Conn) { r.Notify() }))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	subjects, err := bus.NewSubjects("")
	if err != nil {
		t.Fatal(err)
	}
	s, err := session.Open(testCtx(t), nc, "", bus.NewPublisher(nc, subjects))
	if err != nil {
		t.Fatalf("open session store: %v", err)
	}
	return s
}

// TestAuthorizationReadsFromLeader: on a 3-node cluster with the sessions
// bucket at 3 replicas, Lookup and Verify through a node that does not lead
// the bucket's stream never see a session revoked a moment before through
// another node.
func TestAuthorizationReadsFromLeader(t *testing.T) {
	c := natsembed.TestCluster(t, 3)
	ctx := testCtx(t)
	setup := openOn(t, c.Servers[0].ClientURL(), nil)
	_ = setup // creates the bucket, so its stream leader is known
	leader := c.StreamLeader("KV_" + session.DefaultBucket)
	if leader == nil {
		t.Fatal("sessions bucket has no stream leader")
	}
	var follower *natsembed.Server
	for _, s := range c.Servers {
		if s != leader {
			follower = s
		}
	}
	writer := openOn(t, leader.ClientURL(), nil)
	reader := openOn(t, follower.ClientURL(), nil)
	rnc, err := nats.Connect(follower.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer rnc.Close()
	js, _ := jetstream.New(rnc)
	kv, err := js.KeyValue(ctx, session.DefaultBucket)
	if err != nil {
		t.Fatal(err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := st.(*jetstream.KeyValueBucketStatus).StreamInfo().Config.Replicas; n != 3 {
		t.Fatalf("sessions bucket has %d replicas, want 3", n)
	}

	const rounds = 100
	for i := range rounds {
		tok, s, err := writer.Create(ctx, 42, "Ada", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		// Read-your-writes across nodes: a session just created verifies.
		if got, err := reader.Verify(ctx, tok); err != nil || got.ID != s.ID {
			t.Fatalf("round %d: Verify of a new session through a follower = %+v, %v", i, got, err)
		}
		if err := writer.Revoke(ctx, s.ID, "logout"); err != nil {
			t.Fatal(err)
		}
		if _, err := reader.Lookup(ctx, s.ID); !errors.Is(err, session.ErrUnknown) {
			t.Fatalf("round %d: Lookup through a follower after Revoke = %v, want ErrUnknown", i, err)
		}
		if _, err := reader.Verify(ctx, tok); !errors.Is(err, session.ErrUnknown) {
			t.Fatalf("round %d: Verify through a follower after Revoke = %v, want ErrUnknown", i, err)
		}
	}
}

// revocations records what WatchRevocations reports.
type revocations struct {
	mu  sync.Mutex
	ids []string
}

func (r *revocations) add(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ids = append(r.ids, id)
}

func (r *revocations) snapshot() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.ids)
}

func (r *revocations) waitFor(t *testing.T, timeout time.Duration, want ...string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := r.snapshot()
		all := true
		for _, id := range want {
			all = all && slices.Contains(got, id)
		}
		if all {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: revoked %q, want all of %q", timeout, got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// watch runs WatchRevocations for the test and waits until it is live.
func watch(t *testing.T, s *session.Store, r *kvutil.Reconnects) *revocations {
	t.Helper()
	got := &revocations{}
	live := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- s.WatchRevocations(ctx, session.WatchOptions{
			OnRevoked:   got.add,
			Reconnected: r.Next,
			Live:        func() { close(live) },
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("WatchRevocations returned %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("WatchRevocations did not return after its ctx ended")
		}
	})
	select {
	case <-live:
	case <-time.After(15 * time.Second):
		t.Fatal("revocation watch never went live")
	}
	return got
}

func TestWatchRevocationsNeedsCallback(t *testing.T) {
	e := setup(t)
	if err := e.store.WatchRevocations(context.Background(), session.WatchOptions{}); err == nil {
		t.Error("WatchRevocations without OnRevoked returned nil")
	}
}

// TestWatchRevocations: Revoke, RevokeAll and expiry are each reported
// once, by session id; sessions revoked before the watch are not; and a
// revocation right after a NATS restart is reported once the watching
// connection is back.
func TestWatchRevocations(t *testing.T) {
	srv := natsembed.Test(t)
	var r kvutil.Reconnects
	s := openOn(t, srv.ClientURL(), &r)
	ctx := testCtx(t)
	create := func(user int64, ttl time.Duration) session.Session {
		t.Helper()
		_, sess, err := s.Create(ctx, user, "Ada", ttl)
		if err != nil {
			t.Fatal(err)
		}
		return sess
	}
	before := create(1, time.Hour)
	if err := s.Revoke(ctx, before.ID, "logout"); err != nil {
		t.Fatal(err)
	}
	got := watch(t, s, &r)

	revoked := create(1, time.Hour)
	kept := create(2, time.Hour)
	all1, all2 := create(3, time.Hour), create(3, time.Hour)
	expiring := create(4, time.Second)
	if err := s.Revoke(ctx, revoked.ID, "logout"); err != nil {
		t.Fatal(err)
	}
	if n, err := s.RevokeAll(ctx, 3, "logout_all", ""); err != nil || n != 2 {
		t.Fatalf("RevokeAll = %d, %v", n, err)
	}
	got.waitFor(t, 10*time.Second, revoked.ID, all1.ID, all2.ID, expiring.ID)

	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	// Revoked through another connection at once, possibly before the
	// watching one is back (and while its old watcher would be blind).
	other := openOn(t, srv.ClientURL(), nil)
	afterRestart := create(5, time.Hour) // through s: waits for its reconnect
	if err := other.Revoke(ctx, afterRestart.ID, "logout"); err != nil {
		t.Fatal(err)
	}
	got.waitFor(t, 10*time.Second, afterRestart.ID)

	time.Sleep(200 * time.Millisecond)
	ids := got.snapshot()
	slices.Sort(ids)
	want := []string{revoked.ID, all1.ID, all2.ID, expiring.ID, afterRestart.ID}
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Errorf("revoked %q, want each of %q once (not %s, revoked before the watch, nor %s, kept)", ids, want, before.ID, kept.ID)
	}
}

// TestWatchRevocationsClusterRestart: on a 3-node cluster, sessions revoked
// through another node while the watcher's node is down are all reported
// once the watcher has reconnected.
func TestWatchRevocationsClusterRestart(t *testing.T) {
	c := natsembed.TestCluster(t, 3)
	ctx := testCtx(t)
	var r kvutil.Reconnects
	watched := c.Servers[0]
	s := openOn(t, watched.ClientURL(), &r)
	other := openOn(t, c.Servers[1].ClientURL(), nil)
	var sessions []session.Session
	for i := range 4 {
		// A new R3 bucket may still be electing its leader ("no response
		// from stream"): retry, each try on its own deadline.
		for {
			actx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, sess, err := other.Create(actx, int64(10+i), "Ada", time.Hour)
			cancel()
			if err == nil {
				sessions = append(sessions, sess)
				break
			}
			if ctx.Err() != nil {
				t.Fatal(err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	got := watch(t, s, &r)

	watched.Stop()
	var want []string
	for _, sess := range sessions[:3] {
		// The stopped node may have led the stream: retry through the
		// election.
		for {
			actx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := other.Revoke(actx, sess.ID, "logout")
			cancel()
			if err == nil || errors.Is(err, session.ErrNotFound) { // an earlier try got through
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("revoke with a node down: %v", err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		want = append(want, sess.ID)
	}
	if err := watched.Restart(); err != nil {
		t.Fatal(err)
	}
	got.waitFor(t, 20*time.Second, want...)
	if err := other.Revoke(ctx, sessions[3].ID, "logout"); err != nil {
		t.Fatal(err)
	}
	got.waitFor(t, 20*time.Second, sessions[3].ID)
}

// TestAuthorizationReadsUseLeaderAPI pins how Verify and Lookup read: with
// the non-direct STREAM.MSG.GET request that only the stream leader
// answers, never with a direct get that any replica (possibly lagging)
// may answer. A spy connection sees every such request.
func TestAuthorizationReadsUseLeaderAPI(t *testing.T) {
	e := setup(t)
	ctx := testCtx(t)
	tok, s := e.create(t, 42, "Ada")
	spy := connect(t, e.srv)
	leaderReqs, err := spy.SubscribeSync("$JS.API.STREAM.MSG.GET.KV_" + session.DefaultBucket)
	if err != nil {
		t.Fatal(err)
	}
	directReqs, err := spy.SubscribeSync("$JS.API.DIRECT.GET.KV_" + session.DefaultBucket + ".>")
	if err != nil {
		t.Fatal(err)
	}
	if err := spy.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Verify(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Lookup(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"t." + s.TokenHash, "s." + s.ID} {
		m, err := leaderReqs.NextMsg(2 * time.Second)
		if err != nil {
			t.Fatalf("no STREAM.MSG.GET request for %s: %v", want, err)
		}
		if wantBody := `{"last_by_subj":"$KV.` + session.DefaultBucket + "." + want + `"}`; string(m.Data) != wantBody {
			t.Errorf("request %s, want %s", m.Data, wantBody)
		}
	}
	if m, err := directReqs.NextMsg(200 * time.Millisecond); err == nil {
		t.Errorf("an authorization read used a direct get: %s", m.Subject)
	}
}
