package gateway

// hooks are points where tests hold a connection to make a race happen
// every time (export_test.go sets them); nil in production.
type hooks struct {
	userJoin    func(c *conn) // before joining the user subject
	channelJoin func(c *conn) // before joining a channel's subject
	redeem      func()        // before redeeming a ticket
}

func (h *hooks) beforeRedeem() {
	if h.redeem != nil {
		h.redeem()
	}
}

func (h *hooks) beforeUserJoin(c *conn) {
	if h.userJoin != nil {
		h.userJoin(c)
	}
}

func (h *hooks) beforeChannelJoin(c *conn) {
	if h.channelJoin != nil {
		h.channelJoin(c)
	}
}
