package natsembed

import (
	"strings"
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
	var c *Cluster
	var err error
	for attempt := 1; ; attempt++ {
		// The ports are picked free, then bound: another test's process
		// may take one in between (go test runs packages in parallel).
		c, err = StartCluster(n, t.TempDir())
		if err == nil || attempt == 3 || !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	if err != nil {
		t.Fatalf("start embedded NATS cluster: %v", err)
	}
	t.Cleanup(c.Shutdown)
	if err := c.WaitPeers(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	return c
}
