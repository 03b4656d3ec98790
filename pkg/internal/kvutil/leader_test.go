package kvutil

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ocvr/realtime/pkg/natsembed"
)

func testCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func connectURL(t *testing.T, url string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func TestLeaderReaderGet(t *testing.T) {
	srv := natsembed.Test(t)
	nc := connectURL(t, srv.ClientURL())
	ctx := testCtx(t, 30*time.Second)
	kv, err := Open(ctx, nc, jetstream.KeyValueConfig{Bucket: "leader_get", History: 1, LimitMarkerTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewLeaderReader(ctx, nc, kv)
	if err != nil {
		t.Fatalf("NewLeaderReader: %v", err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	rev, err := kv.Put(ctx, "live", []byte("v1"))
	must(err)
	_, err = kv.Put(ctx, "deleted", []byte("x"))
	must(err)
	must(kv.Delete(ctx, "deleted"))
	_, err = kv.Put(ctx, "purged", []byte("x"))
	must(err)
	must(kv.Purge(ctx, "purged"))
	_, err = kv.Put(ctx, "a.b", []byte("nested"))
	must(err)
	_, err = kv.Create(ctx, "expires", []byte("x"), jetstream.KeyTTL(time.Second))
	must(err)

	e, err := r.Get(ctx, "live")
	if err != nil || string(e.Value) != "v1" || e.Revision != rev || e.Key != "live" || e.Created.IsZero() {
		t.Fatalf("Get(live) = %+v, %v; want v1 at revision %d", e, err, rev)
	}
	if e, err := r.Get(ctx, "a.b"); err != nil || string(e.Value) != "nested" {
		t.Errorf("Get(a.b) = %+v, %v", e, err)
	}
	for _, key := range []string{"never", "deleted", "purged"} {
		if _, err := r.Get(ctx, key); !IsNotFound(err) {
			t.Errorf("Get(%s) = %v, want not found", key, err)
		}
	}
	// A per-key TTL leaves a server marker (Nats-Marker-Reason, no
	// KV-Operation) as the key's last message: gone, not a value.
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := r.Get(ctx, "expires")
		if IsNotFound(err) {
			break
		}
		if err != nil || time.Now().After(deadline) {
			t.Fatalf("Get(expires) after its TTL = %v, want not found", err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Keys that would be wildcards or malformed subjects are refused
	// before anything is sent: "*" would match "live".
	for _, key := range []string{"", "*", ">", "li*", "a.>", ".a", "a.", "a..b", "a b", "é"} {
		if _, err := r.Get(ctx, key); !errors.Is(err, jetstream.ErrInvalidKey) {
			t.Errorf("Get(%q) = %v, want ErrInvalidKey", key, err)
		}
	}

	// A deleted bucket is an error, not "not found": the caller must not
	// read it as "revoked" any more than as "allowed".
	js, err := jetstream.New(nc)
	must(err)
	must(js.DeleteKeyValue(ctx, "leader_get"))
	if _, err := r.Get(ctx, "live"); err == nil || IsNotFound(err) || !errors.Is(err, jetstream.ErrBucketNotFound) {
		t.Errorf("Get on a deleted bucket = %v, want ErrBucketNotFound", err)
	}

	// No server: an error, promptly with a deadline.
	srv.Shutdown()
	sctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if _, err := r.Get(sctx, "live"); err == nil || IsNotFound(err) {
		t.Errorf("Get without a server = %v, want an error", err)
	}
}

// TestLeaderReaderSeesDeletesOnEveryNode: on a 3-node cluster with an R3
// bucket, a read through a node that is not the stream leader, made right
// after a delete acknowledged through another, never sees the deleted
// value. kv.Get (a direct get, answered by any replica) may; the test
// reports how often it did, without failing on it.
func TestLeaderReaderSeesDeletesOnEveryNode(t *testing.T) {
	c := natsembed.TestCluster(t, 3)
	ctx := testCtx(t, 60*time.Second)
	setup := connectURL(t, c.Servers[0].ClientURL())
	kv, err := Open(ctx, setup, jetstream.KeyValueConfig{Bucket: "leader_cluster", History: 1})
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
	leader := c.StreamLeader("KV_leader_cluster")
	if leader == nil {
		t.Fatal("no stream leader")
	}
	var follower *natsembed.Server
	for _, s := range c.Servers {
		if s != leader {
			follower = s
		}
	}
	wnc := connectURL(t, leader.ClientURL())
	rnc := connectURL(t, follower.ClientURL())
	wjs, _ := jetstream.New(wnc)
	rjs, _ := jetstream.New(rnc)
	wkv, err := wjs.KeyValue(ctx, "leader_cluster")
	if err != nil {
		t.Fatal(err)
	}
	rkv, err := rjs.KeyValue(ctx, "leader_cluster")
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewLeaderReader(ctx, rnc, rkv)
	if err != nil {
		t.Fatal(err)
	}

	const rounds = 300
	staleDirect := 0
	for i := range rounds {
		key := "k" + strconv.Itoa(i)
		if _, err := wkv.Put(ctx, key, []byte("v")); err != nil {
			t.Fatal(err)
		}
		// The put must be visible through the follower's leader read too
		// (read-your-writes across nodes), before the delete.
		if _, err := r.Get(ctx, key); err != nil {
			t.Fatalf("round %d: leader read of a written key: %v", i, err)
		}
		if err := wkv.Delete(ctx, key); err != nil {
			t.Fatal(err)
		}
		// The direct read first, while the follower is most likely behind.
		if _, err := rkv.Get(ctx, key); err == nil {
			staleDirect++
		}
		if _, err := r.Get(ctx, key); !IsNotFound(err) {
			t.Fatalf("round %d: leader read through a follower after delete = %v, want not found", i, err)
		}
	}
	t.Logf("kv.Get (direct) through a follower returned a deleted value %d/%d times; leader reads 0", staleDirect, rounds)

	// The leader's node goes away: followers ignore the request until one
	// of them is elected, so a read asks again instead of spending its
	// whole deadline on the first, unanswered request.
	if _, err := wkv.Put(ctx, "after", []byte("v")); err != nil {
		t.Fatal(err)
	}
	leader.Stop()
	start := time.Now()
	gctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if e, err := r.Get(gctx, "after"); err != nil || string(e.Value) != "v" {
		t.Fatalf("leader read across a leader election = %+v, %v", e, err)
	}
	t.Logf("leader read across a leader election took %v", time.Since(start).Round(time.Millisecond))
}
