package kvutil

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ocvr/realtime/pkg/natsembed"
)

// deletions records what a watch reports.
type deletions struct {
	mu   sync.Mutex
	keys []string
	live chan struct{}
}

func newDeletions() *deletions { return &deletions{live: make(chan struct{})} }

func (d *deletions) onDelete(key string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.keys = append(d.keys, key)
}

func (d *deletions) snapshot() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.keys)
}

// waitFor waits until every key in want has been reported.
func (d *deletions) waitFor(t *testing.T, timeout time.Duration, want ...string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := d.snapshot()
		missing := 0
		for _, k := range want {
			if !slices.Contains(got, k) {
				missing++
			}
		}
		if missing == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: reported %q, want all of %q", timeout, got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startWatch runs WatchDeletions for the test and waits until it is live.
func startWatch(t *testing.T, kv jetstream.KeyValue, r *Reconnects, keys string) *deletions {
	t.Helper()
	d := newDeletions()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- WatchDeletions(ctx, kv, WatchOptions{
			Keys:        keys,
			OnDelete:    d.onDelete,
			Reconnected: r.Next,
			Live:        func() { close(d.live) },
			RetryDelay:  100 * time.Millisecond,
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("WatchDeletions returned %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("WatchDeletions did not return after its ctx ended")
		}
	})
	select {
	case <-d.live:
	case <-time.After(15 * time.Second):
		t.Fatal("watch never went live")
	}
	return d
}

// reconnecting connects to url, retrying forever, and notifies r on every
// reconnect.
func reconnecting(t *testing.T, url string, r *Reconnects) *nats.Conn {
	t.Helper()
	return connectURL(t, url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond),
		nats.ReconnectHandler(func(*nats.Conn) { r.Notify() }))
}

func TestWatchDeletionsOptions(t *testing.T) {
	srv := natsembed.Test(t)
	nc := connectURL(t, srv.ClientURL())
	kv, err := Open(testCtx(t, 10*time.Second), nc, jetstream.KeyValueConfig{Bucket: "watch_opts"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		kv   jetstream.KeyValue
		opts WatchOptions
	}{
		{"nil bucket", nil, WatchOptions{OnDelete: func(string) {}}},
		{"no callback", kv, WatchOptions{}},
	} {
		if err := WatchDeletions(context.Background(), tt.kv, tt.opts); err == nil {
			t.Errorf("%s: WatchDeletions returned nil", tt.name)
		}
	}
}

// TestWatchDeletions: deletions and purges after the start are reported in
// order, earlier ones and puts are not, and the key filter applies.
func TestWatchDeletions(t *testing.T) {
	srv := natsembed.Test(t)
	var r Reconnects
	nc := reconnecting(t, srv.ClientURL(), &r)
	ctx := testCtx(t, 30*time.Second)
	kv, err := Open(ctx, nc, jetstream.KeyValueConfig{Bucket: "watch_basic", LimitMarkerTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"s.old", "s.a", "s.b", "s.c", "other"} {
		if _, err := kv.Put(ctx, k, []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	if err := kv.Delete(ctx, "s.old"); err != nil {
		t.Fatal(err)
	}
	d := startWatch(t, kv, &r, "s.*")
	if _, err := kv.Put(ctx, "s.new", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := kv.Delete(ctx, "s.a"); err != nil {
		t.Fatal(err)
	}
	if err := kv.Purge(ctx, "s.b"); err != nil {
		t.Fatal(err)
	}
	if err := kv.Delete(ctx, "other"); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Create(ctx, "s.ttl", []byte("v"), jetstream.KeyTTL(time.Second)); err != nil {
		t.Fatal(err)
	}
	d.waitFor(t, 10*time.Second, "s.a", "s.b", "s.ttl")
	time.Sleep(200 * time.Millisecond) // anything wrongly reported would be in by now
	if got, want := d.snapshot(), []string{"s.a", "s.b", "s.ttl"}; !slices.Equal(got, want) {
		t.Errorf("reported %q, want %q (in order, nothing before the start, no puts, no other keys)", got, want)
	}
}

// TestWatchDeletionsAcrossRestart: a deletion made right after a server
// restart (when the old watcher would be blind) is reported once the
// client has reconnected, and nothing seen before is reported again.
func TestWatchDeletionsAcrossRestart(t *testing.T) {
	srv := natsembed.Test(t)
	var r Reconnects
	nc := reconnecting(t, srv.ClientURL(), &r)
	ctx := testCtx(t, 60*time.Second)
	kv, err := Open(ctx, nc, jetstream.KeyValueConfig{Bucket: "watch_restart"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := kv.Put(ctx, "k"+strconv.Itoa(i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	d := startWatch(t, kv, &r, "")
	if err := kv.Delete(ctx, "k0"); err != nil {
		t.Fatal(err)
	}
	d.waitFor(t, 5*time.Second, "k0")

	for round := 1; round <= 2; round++ {
		if err := srv.Restart(); err != nil {
			t.Fatal(err)
		}
		// Another client deletes at once, possibly before the watching
		// connection is back.
		other := connectURL(t, srv.ClientURL())
		ojs, _ := jetstream.New(other)
		okv, err := ojs.KeyValue(ctx, "watch_restart")
		if err != nil {
			t.Fatal(err)
		}
		key := "k" + strconv.Itoa(round)
		if err := okv.Delete(ctx, key); err != nil {
			t.Fatal(err)
		}
		d.waitFor(t, 10*time.Second, key)
	}
	time.Sleep(200 * time.Millisecond)
	if got, want := d.snapshot(), []string{"k0", "k1", "k2"}; !slices.Equal(got, want) {
		t.Errorf("reported %q, want %q (each once)", got, want)
	}
}

// TestWatchDeletionsBucketRecreated: a bucket deleted and created again
// starts its revisions over; the watch notices at its next re-creation and
// reports the new bucket's deletions instead of waiting for its revisions
// to pass the old ones.
func TestWatchDeletionsBucketRecreated(t *testing.T) {
	srv := natsembed.Test(t)
	var r Reconnects
	nc := reconnecting(t, srv.ClientURL(), &r)
	ctx := testCtx(t, 30*time.Second)
	cfg := jetstream.KeyValueConfig{Bucket: "watch_recreated"}
	kv, err := Open(ctx, nc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if _, err := kv.Put(ctx, "old"+strconv.Itoa(i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	d := startWatch(t, kv, &r, "")
	js, _ := jetstream.New(nc)
	if err := js.DeleteKeyValue(ctx, cfg.Bucket); err != nil {
		t.Fatal(err)
	}
	kv2, err := Open(ctx, nc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv2.Put(ctx, "new", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := kv2.Delete(ctx, "new"); err != nil { // revision 2, far below 20
		t.Fatal(err)
	}
	r.Notify() // as after the NATS restart that lost the bucket
	d.waitFor(t, 10*time.Second, "new")
}

// TestWatchDeletionsClusterRestart: on a 3-node cluster (R3 bucket), the
// node a watcher is connected to stops; keys are deleted through another
// node while it is down; the watcher, reconnected (to any node), reports
// every one of them.
func TestWatchDeletionsClusterRestart(t *testing.T) {
	c := natsembed.TestCluster(t, 3)
	ctx := testCtx(t, 90*time.Second)
	var r Reconnects
	watched := c.Servers[0]
	nc := reconnecting(t, watched.ClientURL(), &r)
	kv, err := Open(ctx, nc, jetstream.KeyValueConfig{Bucket: "watch_cluster"})
	if err != nil {
		t.Fatal(err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := st.(*jetstream.KeyValueBucketStatus).StreamInfo().Config.Replicas; n != 3 {
		t.Fatalf("bucket has %d replicas, want 3", n)
	}
	const n = 6
	for i := range n {
		if _, err := kv.Put(ctx, "k"+strconv.Itoa(i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	d := startWatch(t, kv, &r, "")

	other := connectURL(t, c.Servers[1].ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	ojs, _ := jetstream.New(other)
	var okv jetstream.KeyValue
	for {
		// Each try on its own deadline: a stream-info request that nobody
		// answers must not use up the test's.
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		okv, err = ojs.KeyValue(actx, "watch_cluster")
		cancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	watched.Stop()
	var want []string
	for i := range n / 2 {
		key := "k" + strconv.Itoa(i)
		// The stopped node may have led the stream: retry through the
		// election.
		for {
			// Each try on its own deadline: one hanging on the stopped
			// node must not use up the test's.
			actx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := okv.Delete(actx, key)
			cancel()
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("delete %s with a node down: %v", key, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		want = append(want, key)
	}
	if err := watched.Restart(); err != nil {
		t.Fatal(err)
	}
	d.waitFor(t, 20*time.Second, want...)
	// And the watch is live again afterwards.
	if err := okv.Delete(ctx, "k"+strconv.Itoa(n-1)); err != nil {
		t.Fatal(err)
	}
	d.waitFor(t, 20*time.Second, "k"+strconv.Itoa(n-1))
}
