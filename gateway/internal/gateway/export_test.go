package gateway

import "errors"

// Test-only access to the join hooks (hooks.go). end ends the connection
// as a lost socket would (finish, the one teardown) and returns once the
// teardown has run.

// SetUserJoinHook has f called before a connection joins its user subject.
func SetUserJoinHook(g *Gateway, f func(end func())) {
	g.hooks.userJoin = func(c *conn) { f(endFunc(c)) }
}

// SetChannelJoinHook has f called before a connection joins a channel's
// subject.
func SetChannelJoinHook(g *Gateway, f func(end func())) {
	g.hooks.channelJoin = func(c *conn) { f(endFunc(c)) }
}

func endFunc(c *conn) func() {
	return func() { c.finish(errors.New("test: connection lost")) }
}

// Topics is the number of subjects the hub holds.
func Topics(g *Gateway) int {
	g.hub.mu.RLock()
	defer g.hub.mu.RUnlock()
	return len(g.hub.topics)
}

// SetRedeemHook has f called before each ticket redemption (nil: none).
func SetRedeemHook(g *Gateway, f func()) { g.hooks.redeem = f }
