package server

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ocvr/realtime/pkg/natsembed"
	"github.com/ocvr/realtime/pkg/session"
)

// TestRevokedSessionRefusedOnCluster: on a 3-node NATS cluster (the
// sessions bucket at 3 replicas), a ticketsvc connected to a node that does
// not lead the sessions stream refuses, every time, a session revoked a
// moment before through another node: its verify reads from the stream
// leader, not from a replica that may not have the revocation yet.
func TestRevokedSessionRefusedOnCluster(t *testing.T) {
	c := natsembed.TestCluster(t, 3)
	// Create the buckets first, so the stream leader is known.
	nc, err := nats.Connect(c.Servers[0].ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := session.Open(ctx, nc, "", nil); err != nil {
		t.Fatal(err)
	}
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
	e := newEnv(t, envOptions{noNATS: true, config: func(cfg *Config) {
		cfg.NATSURLs = []string{follower.ClientURL()}
	}})
	eventually(t, 30*time.Second, "ticketsvc ready", func() bool { return e.readyz().status == http.StatusOK })
	e.connect(leader.ClientURL()) // the platform's auth service, on the leader's node

	for i := range 30 {
		token, s := e.newSession(int64(100+i), "Ada")
		e.postTicket(token).ticket(t)
		if err := e.sessions.Revoke(ctx, s.ID, "logout"); err != nil {
			t.Fatal(err)
		}
		if r := e.postTicket(token); r.status != http.StatusUnauthorized {
			t.Fatalf("round %d: ticket for a revoked session: status %d, body %s; want 401", i, r.status, r.body)
		}
	}
}
