package gateway_test

import (
	"testing"
	"time"

	"github.com/ocvr/realtime/gateway/internal/gateway"
	"github.com/ocvr/realtime/pkg/client"
)

// TestSoftCapHysteresis: a pod that reached its soft cap stays unready
// until it is down to the re-ready threshold, not one socket below the cap
// (which made a full pod flap ready/unready with every disconnect).
func TestSoftCapHysteresis(t *testing.T) {
	e := newEnv(t, func(c *gateway.Config) { c.SoftMaxConns = 3; c.SoftMaxReadyAgain = 1 })
	alice := e.user(1, "Alice")
	conns := make([]*client.Conn, 0, 3)
	steps := []struct {
		name      string
		open      int // connections after this step
		wantReady bool
	}{
		{"below the cap", 2, true},
		{"at the cap", 3, false},
		{"one below the cap", 2, false},
		{"at the re-ready threshold", 1, true},
		{"climbing again, below the cap", 2, true},
		{"at the cap again", 3, false},
	}
	for _, s := range steps {
		for len(conns) < s.open {
			conns = append(conns, e.dial(alice))
		}
		for len(conns) > s.open {
			conns[len(conns)-1].CloseNow()
			conns = conns[:len(conns)-1]
		}
		waitFor(t, 5*time.Second, func() bool { return e.g.Connections() == s.open })
		if ok, why := e.g.Ready(); ok != s.wantReady {
			t.Errorf("%s (%d open): Ready() = %v %q, want %v", s.name, s.open, ok, why, s.wantReady)
		}
	}
}
