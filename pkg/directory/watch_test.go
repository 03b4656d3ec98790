package directory_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ocvr/realtime/pkg/directory"
	"github.com/ocvr/realtime/pkg/internal/kvutil"
	"github.com/ocvr/realtime/pkg/natsembed"
)

// openOn opens the directory on a new connection to url that reconnects
// forever and notifies r (if any) on every reconnect.
func openOn(t *testing.T, url string, r *kvutil.Reconnects, opts ...directory.Option) *directory.Store {
	t.Helper()
	nopts := []nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(50 * time.Millisecond)}
	if r != nil {
		nopts = append(nopts, nats.ReconnectHandler(func(*nats.Conn) { r.Notify() }))
	}
	nc, err := nats.Connect(url, nopts...)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	d, err := directory.Open(testCtx(t), nc, opts...)
	if err != nil {
		t.Fatalf("open directory: %v", err)
	}
	return d
}

// TestBuckets: two environments on one NATS account, each with its own
// bucket names, do not see each other's channels, memberships or
// friendships; the default names are today's.
func TestBuckets(t *testing.T) {
	srv := natsembed.Test(t)
	ctx := testCtx(t)
	prod := openOn(t, srv.ClientURL(), nil)
	if got, want := prod.Buckets(), (directory.Buckets{Channels: "ocvr_channels", Members: "ocvr_members", Friends: "ocvr_friends"}); got != want {
		t.Errorf("default Buckets() = %+v, want %+v", got, want)
	}
	stagingBuckets := directory.Buckets{Channels: "staging_channels", Members: "staging_members", Friends: "staging_friends"}
	staging := openOn(t, srv.ClientURL(), nil, directory.WithBuckets(stagingBuckets))
	if got := staging.Buckets(); got != stagingBuckets {
		t.Errorf("Buckets() = %+v, want %+v", got, stagingBuckets)
	}
	for _, kv := range []jetstream.KeyValue{staging.ChannelsKV(), staging.MembersKV(), staging.FriendsKV()} {
		if !strings.HasPrefix(kv.Bucket(), "staging_") {
			t.Errorf("staging store uses bucket %s", kv.Bucket())
		}
	}
	must(t, staging.CreateChannel(ctx, "ch_x"))
	must(t, staging.AddMember(ctx, "ch_x", 42))
	must(t, staging.AddFriend(ctx, 42, 43))
	if ok, err := prod.ChannelExists(ctx, "ch_x"); err != nil || ok {
		t.Errorf("production sees staging's channel: %v, %v", ok, err)
	}
	if isMember(t, prod, "ch_x", 42) {
		t.Error("production sees staging's membership")
	}
	if f, err := prod.Friends(ctx, 42); err != nil || len(f) != 0 {
		t.Errorf("production sees staging's friends: %v, %v", f, err)
	}
	if !isMember(t, staging, "ch_x", 42) {
		t.Error("staging lost its own membership")
	}

	// A partial set keeps the defaults for the rest; the three must differ
	// (the watchers tell keys apart by bucket).
	partial := openOn(t, srv.ClientURL(), nil, directory.WithBuckets(directory.Buckets{Members: "other_members"}))
	if got := partial.Buckets(); got.Channels != directory.ChannelsBucket || got.Members != "other_members" || got.Friends != directory.FriendsBucket {
		t.Errorf("partial Buckets() = %+v", got)
	}
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	for _, b := range []directory.Buckets{
		{Channels: "same", Members: "same"},
		{Members: directory.ChannelsBucket},
		{Friends: directory.MembersBucket},
	} {
		if _, err := directory.Open(ctx, nc, directory.WithBuckets(b)); err == nil {
			t.Errorf("Open with buckets %+v succeeded", b)
		}
	}
	if _, err := directory.Open(ctx, nc, directory.WithBuckets(directory.Buckets{Channels: "bad.name"})); err == nil {
		t.Error("Open with an invalid bucket name succeeded")
	}
}

// TestAuthorizationReadsFromLeader: on a 3-node cluster with R3 buckets,
// IsMember and ChannelExists through a node that does not lead the
// buckets' streams never see a membership removed, or a channel deleted, a
// moment before through another node.
func TestAuthorizationReadsFromLeader(t *testing.T) {
	c := natsembed.TestCluster(t, 3)
	ctx := testCtx(t)
	openOn(t, c.Servers[0].ClientURL(), nil) // creates the buckets
	leader := c.StreamLeader("KV_" + directory.MembersBucket)
	if leader == nil {
		t.Fatal("members bucket has no stream leader")
	}
	var follower *natsembed.Server
	for _, s := range c.Servers {
		if s != leader {
			follower = s
		}
	}
	writer := openOn(t, leader.ClientURL(), nil)
	reader := openOn(t, follower.ClientURL(), nil)
	for _, kv := range []jetstream.KeyValue{reader.ChannelsKV(), reader.MembersKV()} {
		st, err := kv.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n := st.(*jetstream.KeyValueBucketStatus).StreamInfo().Config.Replicas; n != 3 {
			t.Fatalf("bucket %s has %d replicas, want 3", kv.Bucket(), n)
		}
	}
	const rounds = 100
	for i := range rounds {
		ch := "ch_" + strconv.Itoa(i)
		must(t, writer.CreateChannel(ctx, ch))
		must(t, writer.AddMember(ctx, ch, 42))
		if !isMember(t, reader, ch, 42) {
			t.Fatalf("round %d: a membership just added is not seen through a follower", i)
		}
		must(t, writer.RemoveMember(ctx, ch, 42))
		if isMember(t, reader, ch, 42) {
			t.Fatalf("round %d: IsMember through a follower after RemoveMember = true", i)
		}
		must(t, writer.DeleteChannel(ctx, ch))
		if ok, err := reader.ChannelExists(ctx, ch); err != nil || ok {
			t.Fatalf("round %d: ChannelExists through a follower after DeleteChannel = %v, %v", i, ok, err)
		}
	}
}

// TestAuthorizationReadsUseLeaderAPI pins how IsMember and ChannelExists
// read: with STREAM.MSG.GET, answered by the stream leader only, never a
// direct get that a lagging replica may answer.
func TestAuthorizationReadsUseLeaderAPI(t *testing.T) {
	srv := natsembed.Test(t)
	ctx := testCtx(t)
	d := openOn(t, srv.ClientURL(), nil)
	must(t, d.CreateChannel(ctx, "ch_a"))
	must(t, d.AddMember(ctx, "ch_a", 7))
	spy, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer spy.Close()
	leaderReqs, err := spy.SubscribeSync("$JS.API.STREAM.MSG.GET.>")
	must(t, err)
	directReqs, err := spy.SubscribeSync("$JS.API.DIRECT.GET.>")
	must(t, err)
	must(t, spy.Flush())

	if !isMember(t, d, "ch_a", 7) {
		t.Fatal("not a member")
	}
	if ok, err := d.ChannelExists(ctx, "ch_a"); err != nil || !ok {
		t.Fatalf("ChannelExists = %v, %v", ok, err)
	}
	for _, want := range []string{
		`KV_ocvr_members {"last_by_subj":"$KV.ocvr_members.ch_a.7"}`,
		`KV_ocvr_channels {"last_by_subj":"$KV.ocvr_channels.ch_a"}`,
	} {
		m, err := leaderReqs.NextMsg(2 * time.Second)
		if err != nil {
			t.Fatalf("no STREAM.MSG.GET request (want %s): %v", want, err)
		}
		if got := strings.TrimPrefix(m.Subject, "$JS.API.STREAM.MSG.GET.") + " " + string(m.Data); got != want {
			t.Errorf("request %s, want %s", got, want)
		}
	}
	if m, err := directReqs.NextMsg(200 * time.Millisecond); err == nil {
		t.Errorf("an authorization read used a direct get: %s", m.Subject)
	}
}

// removal is one reported event: a membership (user > 0) or a channel.
type removal struct {
	channel string
	user    int64
}

type removals struct {
	mu  sync.Mutex
	got []removal
}

func (r *removals) member(ch string, user int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, removal{ch, user})
}

func (r *removals) channel(ch string) { r.member(ch, 0) }

func (r *removals) snapshot() []removal {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

func (r *removals) waitFor(t *testing.T, timeout time.Duration, want ...removal) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := r.snapshot()
		all := true
		for _, w := range want {
			all = all && slices.Contains(got, w)
		}
		if all {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: reported %v, want all of %v", timeout, got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// watchRemovals runs WatchRemovals for the test and waits until it is live.
func watchRemovals(t *testing.T, d *directory.Store, r *kvutil.Reconnects) *removals {
	t.Helper()
	got := &removals{}
	live := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var inCallback sync.Mutex // TryLock fails if two callbacks overlap
	go func() {
		done <- d.WatchRemovals(ctx, directory.WatchOptions{
			OnMemberRemoved: func(ch string, user int64) {
				if !inCallback.TryLock() {
					t.Error("callbacks called concurrently")
					return
				}
				defer inCallback.Unlock()
				got.member(ch, user)
			},
			OnChannelDeleted: func(ch string) {
				if !inCallback.TryLock() {
					t.Error("callbacks called concurrently")
					return
				}
				defer inCallback.Unlock()
				got.channel(ch)
			},
			Reconnected: r.Next,
			Live:        func() { close(live) },
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("WatchRemovals returned %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("WatchRemovals did not return after its ctx ended")
		}
	})
	select {
	case <-live:
	case <-time.After(15 * time.Second):
		t.Fatal("removal watch never went live")
	}
	return got
}

func TestWatchRemovalsNeedsCallback(t *testing.T) {
	d, _ := setup(t)
	if err := d.WatchRemovals(context.Background(), directory.WatchOptions{}); err == nil {
		t.Error("WatchRemovals without callbacks returned nil")
	}
}

// TestWatchRemovals: removals and deletions after the start are reported
// (a deleted channel's memberships too), earlier ones are not, and a
// removal right after a NATS restart is reported once the watching
// connection is back. Custom bucket names are watched too.
func TestWatchRemovals(t *testing.T) {
	srv := natsembed.Test(t)
	ctx := testCtx(t)
	var r kvutil.Reconnects
	buckets := directory.WithBuckets(directory.Buckets{Channels: "t_channels", Members: "t_members", Friends: "t_friends"})
	d := openOn(t, srv.ClientURL(), &r, buckets)
	for _, ch := range []string{"ch_old", "ch_a", "ch_b"} {
		must(t, d.CreateChannel(ctx, ch))
		must(t, d.AddMember(ctx, ch, 1))
		must(t, d.AddMember(ctx, ch, 2))
	}
	must(t, d.RemoveMember(ctx, "ch_old", 1))
	must(t, d.DeleteChannel(ctx, "ch_old"))
	got := watchRemovals(t, d, &r)

	must(t, d.RemoveMember(ctx, "ch_a", 1))
	must(t, d.DeleteChannel(ctx, "ch_b"))
	must(t, d.AddFriend(ctx, 1, 2))
	must(t, d.RemoveFriend(ctx, 1, 2)) // not a removal this watch reports
	got.waitFor(t, 10*time.Second, removal{"ch_a", 1}, removal{"ch_b", 0}, removal{"ch_b", 1}, removal{"ch_b", 2})

	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	other := openOn(t, srv.ClientURL(), nil, buckets)
	must(t, other.RemoveMember(ctx, "ch_a", 2))
	must(t, other.DeleteChannel(ctx, "ch_a"))
	got.waitFor(t, 10*time.Second, removal{"ch_a", 2}, removal{"ch_a", 0})

	time.Sleep(200 * time.Millisecond)
	all := got.snapshot()
	slices.SortFunc(all, func(a, b removal) int {
		if c := strings.Compare(a.channel, b.channel); c != 0 {
			return c
		}
		return int(a.user - b.user)
	})
	want := []removal{{"ch_a", 0}, {"ch_a", 1}, {"ch_a", 2}, {"ch_b", 0}, {"ch_b", 1}, {"ch_b", 2}}
	if !slices.Equal(all, want) {
		t.Errorf("reported %v, want each of %v once", all, want)
	}
}

// TestWatchRemovalsClusterRestart: on a 3-node cluster, memberships removed
// and a channel deleted through another node while the watcher's node is
// down are all reported once the watcher has reconnected.
func TestWatchRemovalsClusterRestart(t *testing.T) {
	c := natsembed.TestCluster(t, 3)
	ctx := testCtx(t)
	var r kvutil.Reconnects
	watched := c.Servers[0]
	d := openOn(t, watched.ClientURL(), &r)
	other := openOn(t, c.Servers[1].ClientURL(), nil)
	for _, ch := range []string{"ch_a", "ch_b"} {
		must(t, other.CreateChannel(ctx, ch))
		must(t, other.AddMember(ctx, ch, 1))
	}
	got := watchRemovals(t, d, &r)

	watched.Stop()
	// The stopped node may have led a stream: retry through the election.
	retry := func(what string, f func(context.Context) error) {
		t.Helper()
		for {
			// Each try on its own deadline: a try that hangs on the
			// stopped node must not use up the test's.
			actx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := f(actx)
			cancel()
			if err == nil || errors.Is(err, directory.ErrNotFound) { // an earlier try got through
				return
			}
			if ctx.Err() != nil {
				t.Fatalf("%s with a node down: %v", what, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	retry("remove member", func(ctx context.Context) error { return other.RemoveMember(ctx, "ch_a", 1) })
	retry("delete channel", func(ctx context.Context) error { return other.DeleteChannel(ctx, "ch_b") })
	// Should a retried DeleteChannel have found the channel gone (its first
	// try deleted it, then failed on the memberships), finish its work.
	retry("remove member", func(ctx context.Context) error { return other.RemoveMember(ctx, "ch_b", 1) })
	if err := watched.Restart(); err != nil {
		t.Fatal(err)
	}
	got.waitFor(t, 20*time.Second, removal{"ch_a", 1}, removal{"ch_b", 0}, removal{"ch_b", 1})
}
