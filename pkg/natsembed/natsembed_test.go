package natsembed_test

import (
	"context"
	"errors"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ocvr/realtime/pkg/natsembed"
)

func connect(t *testing.T, url string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func keyValue(t *testing.T, ctx context.Context, nc *nats.Conn, cfg jetstream.KeyValueConfig) jetstream.KeyValue {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, cfg)
	if err != nil {
		t.Fatalf("create bucket %s: %v", cfg.Bucket, err)
	}
	return kv
}

func TestStartStandalone(t *testing.T) {
	srv := natsembed.Test(t)
	if !strings.HasPrefix(srv.ClientURL(), "nats://127.0.0.1:") {
		t.Errorf("ClientURL = %q", srv.ClientURL())
	}
	if srv.RouteURL() != "" {
		t.Errorf("RouteURL = %q for a standalone server", srv.RouteURL())
	}
	ns := srv.NATS()
	if ns == nil || !ns.JetStreamEnabled() {
		t.Fatal("JetStream is not enabled")
	}
	nc := connect(t, srv.ClientURL())
	sub, err := nc.SubscribeSync("x")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish("x", []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if m, err := sub.NextMsg(5 * time.Second); err != nil || string(m.Data) != "hello" {
		t.Fatalf("round trip: %v %v", m, err)
	}
	// The payload limit is generous (1 MiB) for load tests.
	if got := nc.MaxPayload(); got != 1<<20 {
		t.Errorf("MaxPayload = %d, want %d", got, 1<<20)
	}
}

func TestStartGivenPortAndStore(t *testing.T) {
	port, err := natsembed.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	srv, err := natsembed.Start(natsembed.Options{Port: port, StoreDir: dir, Name: "given"})
	if err != nil {
		t.Fatal(err)
	}
	if want := "nats://127.0.0.1:" + strconv.Itoa(port); srv.ClientURL() != want {
		t.Errorf("ClientURL = %q, want %q", srv.ClientURL(), want)
	}
	if got := srv.NATS().Name(); got != "given" {
		t.Errorf("server name = %q", got)
	}
	nc := connect(t, srv.ClientURL())
	ctx := context.Background()
	kv := keyValue(t, ctx, nc, jetstream.KeyValueConfig{Bucket: "b"})
	if _, err := kv.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	// A second server on a taken port fails cleanly.
	start := time.Now()
	if s2, err := natsembed.Start(natsembed.Options{Port: port, StoreDir: t.TempDir()}); err == nil {
		s2.Shutdown()
		t.Error("a second server started on a taken port")
	} else if !strings.Contains(err.Error(), strconv.Itoa(port)) {
		t.Errorf("error %q does not name the port", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("a taken port took %v to fail", d)
	}
	srv.Shutdown()
	// A given store directory is the caller's: Shutdown keeps it.
	if _, err := os.Stat(dir + "/jetstream"); err != nil {
		t.Errorf("store dir emptied by Shutdown: %v", err)
	}
}

func TestTempStoreRemovedOnShutdown(t *testing.T) {
	srv, err := natsembed.Start(natsembed.Options{})
	if err != nil {
		t.Fatal(err)
	}
	nc := connect(t, srv.ClientURL())
	ctx := context.Background()
	keyValue(t, ctx, nc, jetstream.KeyValueConfig{Bucket: "b"})
	dir := srv.NATS().JetStreamConfig().StoreDir
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("store dir: %v", err)
	}
	nc.Close()
	srv.Shutdown()
	srv.Shutdown() // idempotent
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temp store dir %s left behind (%v)", dir, err)
	}
}

// TestRestartKeepsData: a KV key survives Stop/Restart, on the same port, and
// a client connected before the restart reconnects by itself.
func TestRestartKeepsData(t *testing.T) {
	srv := natsembed.Test(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	reconnected := make(chan struct{}, 1)
	nc := connect(t, srv.ClientURL(),
		nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond),
		nats.ReconnectHandler(func(*nats.Conn) {
			select {
			case reconnected <- struct{}{}:
			default:
			}
		}))
	kv := keyValue(t, ctx, nc, jetstream.KeyValueConfig{Bucket: "durable", History: 1})
	if _, err := kv.Put(ctx, "greeting", []byte("hello")); err != nil {
		t.Fatal(err)
	}
	url := srv.ClientURL()

	srv.Stop()
	if srv.NATS() != nil {
		t.Error("NATS() is not nil while stopped")
	}
	if err := srv.Restart(); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	if srv.ClientURL() != url {
		t.Errorf("ClientURL changed across Restart: %s → %s", url, srv.ClientURL())
	}
	select {
	case <-reconnected:
	case <-ctx.Done():
		t.Fatal("client did not reconnect")
	}

	// Read through the reconnected client and through a fresh one. The
	// stream may take a moment to recover from disk.
	fresh := connect(t, srv.ClientURL())
	for _, c := range []*nats.Conn{nc, fresh} {
		kv := keyValue(t, ctx, c, jetstream.KeyValueConfig{Bucket: "durable", History: 1})
		var e jetstream.KeyValueEntry
		var err error
		for {
			if e, err = kv.Get(ctx, "greeting"); err == nil || ctx.Err() != nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("key lost across Restart: %v", err)
		}
		if string(e.Value()) != "hello" {
			t.Fatalf("value = %q after Restart", e.Value())
		}
	}
	// Restart of a running server is a stop and start.
	if err := srv.Restart(); err != nil {
		t.Fatalf("Restart of a running server: %v", err)
	}
}

// TestCluster: three nodes elect a JetStream meta leader, and a replicated KV
// put on one node is readable through another.
func TestCluster(t *testing.T) {
	c, err := natsembed.StartCluster(3, t.TempDir())
	if err != nil {
		t.Fatalf("StartCluster: %v", err)
	}
	defer c.Shutdown()
	if len(c.Servers) != 3 || len(c.ClientURLs()) != 3 {
		t.Fatalf("cluster has %d servers, %d URLs", len(c.Servers), len(c.ClientURLs()))
	}
	for _, s := range c.Servers {
		if !strings.HasPrefix(s.RouteURL(), "nats-route://127.0.0.1:") {
			t.Errorf("RouteURL = %q", s.RouteURL())
		}
	}
	if err := c.WaitJetStream(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	leaders := 0
	for _, s := range c.Servers {
		if s.NATS().JetStreamIsLeader() {
			leaders++
		}
	}
	if leaders != 1 {
		t.Errorf("%d JetStream meta leaders, want 1", leaders)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	writer := connect(t, c.Servers[0].ClientURL())
	reader := connect(t, c.Servers[2].ClientURL())
	if writer.ConnectedServerId() == reader.ConnectedServerId() {
		t.Fatal("writer and reader are on the same node")
	}
	// The meta leader may be known before every peer is ready to place an
	// R3 stream: retry creation briefly.
	var kv jetstream.KeyValue
	js, err := jetstream.New(writer)
	if err != nil {
		t.Fatal(err)
	}
	for {
		// Each try on its own deadline: one that waits on a peer not yet
		// ready must not use up the test's.
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		kv, err = js.CreateKeyValue(actx, jetstream.KeyValueConfig{Bucket: "replicated", Replicas: 3})
		cancel()
		if err == nil || ctx.Err() != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("create R3 bucket: %v", err)
	}
	if _, err := kv.Put(ctx, "k", []byte("from n0")); err != nil {
		t.Fatal(err)
	}
	rjs, err := jetstream.New(reader)
	if err != nil {
		t.Fatal(err)
	}
	rkv, err := rjs.KeyValue(ctx, "replicated")
	if err != nil {
		t.Fatalf("bind bucket via another node: %v", err)
	}
	// The replicas' direct-get responders may not be known across the
	// routes yet ("no responders"): retry briefly, as for the creation.
	var e jetstream.KeyValueEntry
	for {
		e, err = rkv.Get(ctx, "k")
		if err == nil || !errors.Is(err, nats.ErrNoResponders) || ctx.Err() != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("get via another node: %v", err)
	}
	if string(e.Value()) != "from n0" {
		t.Fatalf("value = %q", e.Value())
	}
	st, err := rkv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.(*jetstream.KeyValueBucketStatus).StreamInfo().Config.Replicas != 3 {
		t.Errorf("bucket is not replicated 3 ways")
	}
	// Core NATS messages cross the routes too.
	sub, err := reader.SubscribeSync("ocvr.broadcast")
	if err != nil {
		t.Fatal(err)
	}
	if err := reader.Flush(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if err := writer.Publish("ocvr.broadcast", []byte("x")); err != nil {
			t.Fatal(err)
		}
		if _, err := sub.NextMsg(200 * time.Millisecond); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a message published on n0 never reached a subscriber on n2")
		}
	}
}

func TestClusterTempDirRemoved(t *testing.T) {
	c, err := natsembed.StartCluster(3, "")
	if err != nil {
		t.Fatalf("StartCluster: %v", err)
	}
	dir := c.Servers[0].NATS().JetStreamConfig().StoreDir
	c.Shutdown()
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("cluster temp dir %s left behind (%v)", dir, err)
	}
}

// TestStartFailsFastOnTakenLeafnodePort: a leafnode port set through
// Configure is probed like the client and cluster ports, so a taken one
// fails Start at once instead of after the 10 s readiness wait.
func TestStartFailsFastOnTakenLeafnodePort(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	taken := l.Addr().(*net.TCPAddr).Port
	start := time.Now()
	s, err := natsembed.Start(natsembed.Options{StoreDir: t.TempDir(), Configure: func(o *server.Options) {
		o.LeafNode.Host, o.LeafNode.Port = "127.0.0.1", taken
	}})
	if err == nil {
		s.Shutdown()
		t.Fatal("Start succeeded on a taken leafnode port")
	}
	if !strings.Contains(err.Error(), strconv.Itoa(taken)) || time.Since(start) > 5*time.Second {
		t.Fatalf("Start = %v after %v; want a fast error naming port %d", err, time.Since(start), taken)
	}
}
