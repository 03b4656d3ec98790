package gateway

import (
	"context"
	"time"

	"github.com/ocvr/realtime/pkg/protocol"
)

// Drain takes the pod out of service: /readyz fails at once; after the
// readiness delay (so load balancers stop sending new clients) every socket
// is closed with 1012, spread evenly over the drain window so clients
// reconnect elsewhere without a storm. It returns when all sockets are
// closed or ctx ends.
func (g *Gateway) Drain(ctx context.Context) {
	if g.draining.Swap(true) {
		return
	}
	g.metrics.draining.Set(1)
	g.publishLoad() // the other pods take it out of their fleet view now
	g.log.Info("draining", "connections", g.Connections(), "readiness_delay", g.cfg.ReadinessDelay, "window", g.cfg.DrainWindow)
	select {
	case <-ctx.Done():
	case <-time.After(g.cfg.ReadinessDelay):
	}
	conns := g.snapshot()
	var step time.Duration
	if len(conns) > 0 {
		step = g.cfg.DrainWindow / time.Duration(len(conns))
	}
	for i, c := range conns {
		c.closeAfterQueue(protocol.CloseServiceRestart, "server draining")
		if step > 0 && i < len(conns)-1 {
			select {
			case <-ctx.Done():
				step = 0
			case <-time.After(step):
			}
		}
	}
	// Upgrades in flight (admitted, not yet registered) are waited for too:
	// they see draining when they register and close themselves.
	for (g.Connections() > 0 || g.admitted.Load() > 0) && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	g.log.Info("drained", "left", g.Connections())
	if st := g.stores.Load(); st != nil {
		// Hand the remaining presence entries to the surviving pods, which
		// apply the offline grace: reconnecting clients cause no flap.
		st.presence.Shutdown(ctx)
	}
}

// Draining reports whether Drain has started.
func (g *Gateway) Draining() bool { return g.draining.Load() }
