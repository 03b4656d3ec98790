package gateway

import "errors"

// Test-only access to the hooks (hooks.go). end ends the connection as a
// lost socket would (finish, the one teardown) and returns once the
// teardown has run.

// SetUserJoinHook has f called before a connection joins its user subject.
func SetUserJoinHook(g *Gateway, f func(end func())) {
	h := func(c *conn) { f(endFunc(c)) }
	g.hooks.userJoin.Store(&h)
}

// SetChannelJoinHook has f called before a connection joins a channel's
// subject.
func SetChannelJoinHook(g *Gateway, f func(end func())) {
	h := func(c *conn) { f(endFunc(c)) }
	g.hooks.channelJoin.Store(&h)
}

func endFunc(c *conn) func() {
	return func() { c.finish(errors.New("test: connection lost")) }
}

// SetRedeemHook has f called before each ticket redemption (nil: none).
func SetRedeemHook(g *Gateway, f func()) {
	if f == nil {
		g.hooks.redeem.Store(nil)
		return
	}
	g.hooks.redeem.Store(&f)
}

// SetDispatchHook has f called before each bus message is dispatched.
func SetDispatchHook(g *Gateway, f func()) { g.hooks.dispatch.Store(&f) }

// Topics is the number of subjects the hub holds.
func Topics(g *Gateway) int {
	g.hub.mu.RLock()
	defer g.hub.mu.RUnlock()
	return len(g.hub.topics)
}

// SetDropHook has the dispatcher drop the positioned bus messages f
// selects, as if their republish never reached the pod.
func SetDropHook(g *Gateway, f func(seq uint64) bool) { g.hooks.drop.Store(&f) }

// SetUserJoinedHook has f called after a connection joined its user
// subject, before its ready frame is built.
func SetUserJoinedHook(g *Gateway, f func()) {
	h := func(*conn) { f() }
	g.hooks.userJoined.Store(&h)
}

// SetMarkHook has f called before a new topic's mark is read (after its
// subscription is live).
func SetMarkHook(g *Gateway, f func(subject string)) { g.hooks.mark.Store(&f) }
