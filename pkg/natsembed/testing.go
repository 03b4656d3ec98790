package natsembed

import (
	"testing"
	"time"
)

// Test starts a standalone server for t and shuts it down when t ends.
func Test(t testing.TB) *Server {
	t.Helper()
	s, err := Start(Options{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatalf("start embedded NATS: %v", err)
	}
	t.Cleanup(s.Shutdown)
	return s
}

// TestCluster starts an n-node cluster for t (n ≥ 3), waits until every node
// is a JetStream peer, so buckets opened now get 3 replicas, and shuts it
// down when t ends.
func TestCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	c, err := StartCluster(n, t.TempDir())
	if err != nil {
		t.Fatalf("start embedded NATS cluster: %v", err)
	}
	t.Cleanup(c.Shutdown)
	if err := c.WaitPeers(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	return c
}
