package gateway

import "sync/atomic"

// hooks are points where tests hold a connection or the dispatcher to make
// a race happen every time (export_test.go sets them, while the gateway
// runs: hence atomic); unset in production.
type hooks struct {
	userJoin    atomic.Pointer[func(c *conn)]         // before joining the user subject
	userJoined  atomic.Pointer[func(c *conn)]         // after joining it, before ready is built
	channelJoin atomic.Pointer[func(c *conn)]         // before joining a channel's subject
	redeem      atomic.Pointer[func()]                // before redeeming a ticket
	dispatch    atomic.Pointer[func()]                // before dispatching a bus message
	drop        atomic.Pointer[func(seq uint64) bool] // drops a positioned bus message, as a lost republish would
	mark        atomic.Pointer[func(subject string)]  // before a new topic's mark is read
}

func (h *hooks) beforeMark(subject string) {
	if f := h.mark.Load(); f != nil {
		(*f)(subject)
	}
}

func (h *hooks) dropped(seq uint64) bool {
	f := h.drop.Load()
	return f != nil && (*f)(seq)
}

func (h *hooks) beforeUserJoin(c *conn) {
	if f := h.userJoin.Load(); f != nil {
		(*f)(c)
	}
}

func (h *hooks) afterUserJoin(c *conn) {
	if f := h.userJoined.Load(); f != nil {
		(*f)(c)
	}
}

func (h *hooks) beforeChannelJoin(c *conn) {
	if f := h.channelJoin.Load(); f != nil {
		(*f)(c)
	}
}

func (h *hooks) beforeRedeem() {
	if f := h.redeem.Load(); f != nil {
		(*f)()
	}
}

func (h *hooks) beforeDispatch() {
	if f := h.dispatch.Load(); f != nil {
		(*f)()
	}
}
