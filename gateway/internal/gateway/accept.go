package gateway

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/ocvr/realtime/gateway/internal/batchconn"
	"github.com/ocvr/realtime/pkg/protocol"
	"github.com/ocvr/realtime/pkg/session"
	"github.com/ocvr/realtime/pkg/ticket"
)

// Handler serves GET /v1/ws.
func (g *Gateway) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/ws", g.serveWS)
	return mux
}

var invalidTicketFrame = protocol.MustEncode(protocol.TypeError, protocol.Error{
	// The document's own example, byte for byte.
	Code: protocol.CodeInvalidTicket, Message: "WebSocket ticket is invalid or expired",
})

// serveWS admits one upgrade: it is refused as cheaply as possible before
// any KV work (draining, origin, not an upgrade at all, its source has too
// many upgrades in flight, the pod at its hard cap), then its ticket is
// redeemed and the socket handed to serveConn.
func (g *Gateway) serveWS(w http.ResponseWriter, r *http.Request) {
	if g.draining.Load() {
		g.metrics.connects.WithLabelValues("draining").Inc()
		w.Header().Set("Retry-After", "1")
		http.Error(w, "draining", http.StatusServiceUnavailable)
		return
	}
	if !g.origins.allowed(r.Header.Get("Origin")) {
		g.metrics.connects.WithLabelValues("origin_rejected").Inc()
		g.log.Warn("origin rejected", "origin", r.Header.Get("Origin"))
		http.Error(w, "origin not allowed", http.StatusForbidden)
		return
	}
	// A request that is not a WebSocket upgrade (a link preview, a proxy's
	// probe, a HEAD) must not consume the ticket it carries.
	if why := notUpgrade(r); why != "" {
		g.metrics.connects.WithLabelValues("not_upgrade").Inc()
		w.Header().Set("Connection", "Upgrade")
		w.Header().Set("Upgrade", "websocket")
		http.Error(w, "not a WebSocket upgrade: "+why, http.StatusUpgradeRequired)
		return
	}
	source := sourceOf(r)
	if !g.preauth.acquire(source) {
		g.metrics.connects.WithLabelValues("source_limit").Inc()
		w.Header().Set("Retry-After", "1")
		http.Error(w, "too many connection attempts from this address", http.StatusTooManyRequests)
		return
	}
	// The source's slot is held until the ticket is redeemed (or the
	// upgrade refused before that).
	releaseSource := sync.OnceFunc(func() { g.preauth.release(source) })
	defer releaseSource()

	// Admission counts this upgrade against the hard limit from here on, not
	// from registration: otherwise any number of concurrent connects pass
	// the check while their tickets are being redeemed. A refusal gives the
	// slot back once its socket is closed, and a connection when it ends.
	slot := &admission{g: g}
	handedOff := false
	defer func() {
		if !handedOff {
			slot.release()
		}
	}()
	if n := g.admitted.Add(1); g.cfg.HardMaxConns > 0 && n > int64(g.cfg.HardMaxConns) {
		g.metrics.connects.WithLabelValues("over_capacity").Inc()
		g.reject(w, r, protocol.CloseTryAgainLater, nil, retryHint("pod at connection limit", retryFull))
		return
	}
	st := g.stores.Load()
	if st == nil {
		g.metrics.connects.WithLabelValues("unavailable").Inc()
		g.reject(w, r, protocol.CloseTryAgainLater, nil, retryHint("not ready", retryNotReady))
		return
	}
	// The pod's KV work in flight is bounded: past the cap an upgrade is
	// refused at once (its ticket untouched) instead of queueing behind
	// the others, so a storm's admitted clients keep their latency.
	if n := g.redeems.Add(1); g.cfg.MaxRedeemsInFlight > 0 && n > int64(g.cfg.MaxRedeemsInFlight) {
		g.redeems.Add(-1)
		g.metrics.connects.WithLabelValues(connectBusy).Inc()
		g.reject(w, r, protocol.CloseTryAgainLater, nil, retryHint("too many connects in flight", retryBusy))
		return
	}
	g.hooks.beforeRedeem()
	id, result, err := g.redeem(r.Context(), st, r.URL.Query().Get("ticket"))
	g.redeems.Add(-1)
	g.metrics.redeems.WithLabelValues(result).Inc()
	releaseSource()
	if err != nil {
		switch result {
		case redeemAborted:
			// The client left while its ticket was being redeemed (its
			// request context ended): nothing to answer, and no outage —
			// counting it as "unavailable" would page operators for
			// clients that drop mid-handshake.
			g.metrics.connects.WithLabelValues(redeemAborted).Inc()
			g.log.Info("connect aborted by the client during ticket redemption")
		case "error":
			g.metrics.connects.WithLabelValues("unavailable").Inc()
			g.log.Error("redeem ticket", "err", err)
			g.reject(w, r, protocol.CloseTryAgainLater, nil, retryHint("try again later", retryStore))
		default:
			g.metrics.connects.WithLabelValues("invalid_ticket").Inc()
			g.metrics.errorSent(protocol.CodeInvalidTicket)
			g.log.Info("connect refused", "reason", result)
			g.reject(w, r, protocol.CloseInvalidTicket, invalidTicketFrame, "invalid ticket")
		}
		return
	}
	if !g.perUser.acquire(id.UserID) {
		// The new socket is refused, the user's open ones are kept: an
		// attacker holding a stolen session cannot disconnect its owner.
		g.metrics.connects.WithLabelValues(connectUserLimit).Inc()
		g.log.Warn("connect refused", "reason", connectUserLimit, "user", id.UserID, "limit", g.cfg.MaxConnsPerUser)
		g.reject(w, r, protocol.CloseTooManyConns, nil, "too many connections")
		return
	}
	slot.user = id.UserID
	id.resume = resumeRequest(r.URL.Query())

	bw := batchconn.Wrap(w, g.pool)
	// The library's own compression stays off: it would compress per
	// socket (compression.go).
	id.deflate = g.deflate.negotiate(bw, r)
	ws, err := websocket.Accept(bw, r, &websocket.AcceptOptions{InsecureSkipVerify: true}) // origin checked above
	if err != nil {
		g.log.Warn("upgrade failed", "err", err)
		return
	}
	handedOff = true // from here on the connection's end gives the slot back
	g.open(ws, bw.Conn(), id, slot.release)
}

// Retry hints of the 1013 refusals, in seconds: the close reason ends with
// "; retry_after=N" (gateway/README.md "Close codes"), which the clients
// wait at least (plus jitter) before the next attempt. A browser sees the
// close reason but never the HTTP status of a refused upgrade.
const (
	retryBusy     = 1 // redeems in flight at the cap: a moment
	retryNotReady = 1 // the pod is starting
	retryStore    = 2 // the ticket or session store failed
	retryFull     = 5 // the pod holds its hard cap: the client tries another
)

// retryHint is a 1013 close reason with its retry hint.
func retryHint(why string, seconds int) string {
	return why + "; retry_after=" + strconv.Itoa(seconds)
}

// connectBusy is the connects_total result of an upgrade refused because
// the pod redeems MaxRedeemsInFlight tickets already.
const connectBusy = "busy"

// DefaultMaxRedeemsInFlight is the default cap of tickets a pod redeems at
// once: far above a healthy pod's (tens at thousands of connects/s), low
// enough that a storm cannot queue unbounded KV work.
const DefaultMaxRedeemsInFlight = 256

// admission is an upgrade's hold on the pod's admission count and, once its
// ticket is redeemed, on one of its user's connection slots.
type admission struct {
	g    *Gateway
	once sync.Once
	user int64
}

func (a *admission) release() {
	a.once.Do(func() {
		a.g.admitted.Add(-1)
		if a.user != 0 {
			a.g.perUser.release(a.user)
		}
	})
}

// notUpgrade says why r is not a WebSocket upgrade request (RFC 6455 §4.2.1),
// "" when it is one: the checks websocket.Accept makes, made before the
// ticket is touched.
func notUpgrade(r *http.Request) string {
	switch {
	case r.Method != http.MethodGet:
		return "method " + r.Method
	case !headerHasToken(r.Header, "Connection", "upgrade"):
		return `no "Connection: Upgrade"`
	case !headerHasToken(r.Header, "Upgrade", "websocket"):
		return `no "Upgrade: websocket"`
	case r.Header.Get("Sec-WebSocket-Version") != "13":
		return "Sec-WebSocket-Version is not 13"
	case len(strings.TrimSpace(r.Header.Get("Sec-WebSocket-Key"))) != 24:
		return "no valid Sec-WebSocket-Key"
	}
	return ""
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// sourceOf is the address the upgrade came from: the direct peer. Behind an
// ingress that is the ingress, so the per-source bound is then the
// ingress's own (gateway/README.md says to limit per client there).
func sourceOf(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// reject completes the upgrade, sends an optional error frame and the close
// frame with code, and drops the socket without waiting for the client's
// close reply: a browser cannot read an HTTP status on a failed upgrade but
// can read a close code, and nothing more is owed to a refused client.
func (g *Gateway) reject(w http.ResponseWriter, r *http.Request, code websocket.StatusCode, errFrame []byte, reason string) {
	bw := batchconn.Wrap(w, g.pool)
	ws, err := websocket.Accept(bw, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		return
	}
	defer ws.CloseNow()
	nc := bw.Conn()
	_ = nc.SetWriteDeadline(time.Now().Add(rejectWriteTimeout))
	ctx, cancel := context.WithTimeout(context.Background(), rejectWriteTimeout)
	defer cancel()
	if errFrame != nil {
		if ws.Write(ctx, websocket.MessageText, errFrame) != nil {
			return
		}
	}
	// An expired read deadline ends the library's wait for the close reply
	// at once: Close writes the close frame and returns.
	_ = nc.SetReadDeadline(time.Now())
	_ = ws.Close(code, reason)
}

// rejectWriteTimeout bounds the writes to a refused client.
const rejectWriteTimeout = time.Second

// redeem consumes the ticket and re-checks its session. result is a metrics
// label: ok, malformed, unknown, expired, session_invalid, aborted (the
// client went away meanwhile) or error.
func (g *Gateway) redeem(ctx context.Context, st *stores, t string) (identity, string, error) {
	start := time.Now()
	defer func() { g.metrics.redeemLatency.Observe(time.Since(start).Seconds()) }()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	// The session is read while the ticket's delete is in flight.
	var sess session.Session
	var sessErr error
	id, err := st.tickets.RedeemChecked(ctx, t, func(ctx context.Context, id ticket.Identity) error {
		sess, sessErr = st.sessions.Lookup(ctx, id.SessionID)
		return sessErr
	})
	switch {
	case errors.Is(err, ticket.ErrMalformed):
		return identity{}, "malformed", err
	case errors.Is(err, ticket.ErrUnknown):
		return identity{}, "unknown", err
	case errors.Is(err, ticket.ErrExpired):
		return identity{}, "expired", err
	case err != nil && err == sessErr && errors.Is(err, session.ErrUnauthorized):
		return identity{}, "session_invalid", err
	case err != nil:
		return identity{}, failedRedeem(ctx), err
	}
	return identity{Identity: id, expiresAt: sess.ExpiresAt}, "ok", nil
}

// identity is who a redeemed ticket stands for, and until when.
type identity struct {
	ticket.Identity
	expiresAt time.Time // the session's expiry: the socket is closed then
	resume    resumeReq // what the client asked to resume (continuity)
	deflate   bool      // it negotiated permessage-deflate
}

// connectUserLimit is the connects_total result of a socket refused by the
// per-user cap.
const connectUserLimit = "user_limit"

// redeemAborted is the connects_total and ticket_redeems_total result of an
// upgrade whose client went away while its ticket was being redeemed.
const redeemAborted = "aborted"

// failedRedeem labels a redemption that failed with a store error: aborted
// when the request's context was canceled (the client left), error
// otherwise (a timeout or an unreachable store: an outage).
func failedRedeem(ctx context.Context) string {
	if errors.Is(ctx.Err(), context.Canceled) {
		return redeemAborted
	}
	return "error"
}
