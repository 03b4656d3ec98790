package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo-contrib/echoprometheus"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/ocvr/realtime/pkg/session"
	"github.com/ocvr/realtime/pkg/ticket"
)

// TicketPath is the only public route.
const TicketPath = "/v1/auth/ws-ticket"

// Error codes of the JSON error body. The first four are the contract of
// DESIGN.md §2 and gateway clients; the others come from the HTTP layer.
const (
	CodeUnauthorized     = "UNAUTHORIZED"
	CodeRateLimited      = "RATE_LIMITED"
	CodeUnavailable      = "UNAVAILABLE"
	CodeInternal         = "INTERNAL"
	CodeBadRequest       = "BAD_REQUEST"
	CodeNotFound         = "NOT_FOUND"
	CodeMethodNotAllowed = "METHOD_NOT_ALLOWED"
	CodePayloadTooLarge  = "PAYLOAD_TOO_LARGE"
)

// TicketResponse is the 200 body.
type TicketResponse struct {
	Data TicketData `json:"data"`
}

// TicketData carries the ticket and its lifetime in seconds.
type TicketData struct {
	Ticket    string `json:"ticket"`
	ExpiresIn int    `json:"expires_in"`
}

// ErrorResponse is the body of every error response.
type ErrorResponse struct {
	Error ErrorBody `json:"error"`
}

// ErrorBody is a stable machine code plus a human message.
type ErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// ctxKeyReason hands the reason of a refusal to the request logger. (The
// request id is read back from the response header: setting it in the
// context too cost every request a map.)
const ctxKeyReason = "ocvr.reason"

// ctxKeyOverloaded marks a request refused by admission control (its log
// level is Info: see requestLevel).
const ctxKeyOverloaded = "ocvr.overloaded"

func (s *Server) newEcho() (*echo.Echo, error) {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.handleError

	prom, err := echoprometheus.MiddlewareConfig{
		Namespace:  metricsNamespace,
		Subsystem:  metricsSubsystem,
		Registerer: s.registry,
		// Unmatched paths are client-chosen: one series for all of them.
		DoNotUseRequestPathFor404: true,
		LabelFuncs: map[string]echoprometheus.LabelValueFunc{
			// Host and method are client-chosen too; keep the label sets bounded.
			"host":   func(echo.Context, error) string { return "" },
			"method": func(c echo.Context, _ error) string { return boundedMethod(c.Request().Method) },
		},
	}.ToMiddleware()
	if err != nil {
		return nil, fmt.Errorf("ticketsvc: request metrics: %w", err)
	}

	chain := composeOnce(
		s.sanitizeRequestID,
		middleware.RequestID(),
		middleware.RequestLoggerWithConfig(middleware.RequestLoggerConfig{
			HandleError:   true, // let the error handler pick the status before we log it
			LogStatus:     true,
			LogLatency:    true,
			LogMethod:     true,
			LogRoutePath:  true,
			LogError:      true,
			LogValuesFunc: s.logRequest,
		}),
		prom,
		middleware.RecoverWithConfig(middleware.RecoverConfig{
			DisableStackAll:     true,
			DisableErrorHandler: true, // return the error: the outer middlewares log and count a 500
			LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
				s.log.Error("panic in handler", "request_id", requestID(c), "err", err, "stack", string(stack))
				return fmt.Errorf("recovered panic: %w", err)
			},
		}),
		middleware.CORSWithConfig(middleware.CORSConfig{
			AllowOriginFunc: func(o string) (bool, error) { return s.origins.Allows(o), nil },
			AllowMethods:    []string{http.MethodPost, http.MethodOptions},
			AllowHeaders:    []string{echo.HeaderAuthorization, echo.HeaderContentType, echo.HeaderXRequestID},
			// Browsers hide response headers from scripts unless exposed; a
			// client needs Retry-After to back off and the id to report bugs.
			ExposeHeaders: []string{echo.HeaderRetryAfter, echo.HeaderXRequestID},
			MaxAge:        600,
		}),
		middleware.BodyLimitWithConfig(middleware.BodyLimitConfig{
			// No body (the usual ticket request): nothing to limit.
			Skipper: func(c echo.Context) bool { return c.Request().Body == http.NoBody },
			Limit:   strconv.FormatInt(s.cfg.BodyLimit, 10),
		}),
	)
	// The handler echo passes as next is always the matched route's
	// (Echo.ServeHTTP: router Find, then c.Handler()), which chain calls.
	e.Use(func(echo.HandlerFunc) echo.HandlerFunc { return chain })
	e.POST(TicketPath, s.handleTicket)
	return e, nil
}

// composeOnce builds a middleware chain, first one outermost, around a
// handler that calls the route echo matched. echo composes the middleware
// given to Use anew on every request, one closure per middleware; composed
// once here, the chain costs no allocation per request.
func composeOnce(mws ...echo.MiddlewareFunc) echo.HandlerFunc {
	h := func(c echo.Context) error { return c.Handler()(c) }
	for i := len(mws) - 1; i >= 0; i-- {
		h = mws[i](h)
	}
	return h
}

// handleTicket implements POST /v1/auth/ws-ticket.
//
// Its two KV operations cannot overlap: the ticket record carries the
// identity the session read returns, and the rate limit, keyed by the
// verified session, sits between them.
func (s *Server) handleTicket(c echo.Context) error {
	c.Response().Header()[echo.HeaderCacheControl] = s.resp.noStore
	// The endpoint takes no body, but reading it is what applies the body
	// limit to chunked uploads, and it lets the connection be reused.
	if _, err := io.Copy(io.Discard, c.Request().Body); err != nil {
		if errors.Is(err, echo.ErrStatusRequestEntityTooLarge) {
			return echo.ErrStatusRequestEntityTooLarge
		}
		return echo.NewHTTPError(http.StatusBadRequest).SetInternal(fmt.Errorf("read body: %w", err))
	}

	token, ok := bearerToken(c.Request().Header.Get(echo.HeaderAuthorization))
	if !ok {
		return s.unauthorized(c, "missing bearer session token")
	}

	st := s.stores.Load()
	nc := s.nc.Load()
	if st == nil || nc == nil || !nc.IsConnected() {
		// Fail fast: a KV call while disconnected would only sit in the
		// reconnect buffer until its timeout.
		return s.unavailable(c, errors.New("nats not connected or kv stores not open"))
	}
	if !s.admit.tryAcquire() {
		return s.overloaded(c)
	}
	defer s.admit.release()
	ctx, cancel := context.WithTimeout(c.Request().Context(), s.cfg.KVTimeout)
	defer cancel()

	sess, err := st.sessions.Verify(ctx, token)
	if errors.Is(err, session.ErrUnauthorized) {
		return s.unauthorized(c, strings.TrimPrefix(err.Error(), session.ErrUnauthorized.Error()+": "))
	}
	if err != nil {
		return s.unavailable(c, fmt.Errorf("verify session: %w", err))
	}

	if s.limiter != nil {
		if ok, wait := s.limiter.Allow(sess.ID); !ok {
			secs := int((wait + time.Second - 1) / time.Second)
			c.Response().Header().Set(echo.HeaderRetryAfter, strconv.Itoa(max(secs, 1)))
			s.metrics.rateLimited.Inc()
			s.metrics.result(resultRateLimited)
			c.Set(ctxKeyReason, "session rate limit")
			return s.send(c, http.StatusTooManyRequests, s.resp.rateLimited)
		}
	}

	t, err := st.tickets.Mint(ctx, ticket.Identity{SessionID: sess.ID, UserID: sess.UserID, DisplayName: sess.DisplayName})
	if err != nil {
		return s.unavailable(c, err)
	}
	s.metrics.ticketsIssued.Inc()
	s.metrics.result(resultOK)
	return s.sendTicket(c, t)
}

func (s *Server) unauthorized(c echo.Context, reason string) error {
	s.metrics.result(resultUnauthorized)
	c.Set(ctxKeyReason, reason)
	c.Response().Header()[echo.HeaderWWWAuthenticate] = s.resp.wwwAuthenticate
	return c.JSON(http.StatusUnauthorized, errorBody(CodeUnauthorized, reason))
}

func (s *Server) unavailable(c echo.Context, err error) error {
	s.metrics.result(resultUnavailable)
	// Whatever failed, make sure the buckets exist once NATS answers again.
	s.kickStores()
	c.Set(ctxKeyReason, err.Error())
	c.Response().Header()[echo.HeaderRetryAfter] = s.resp.retryAfter1
	return s.send(c, http.StatusServiceUnavailable, s.resp.unavailable)
}

// overloaded refuses a request because MaxInflight requests are doing KV
// work. It is the documented 503 UNAVAILABLE: the client retries after
// Retry-After plus jitter, as for a NATS outage, and nothing waits here.
func (s *Server) overloaded(c echo.Context) error {
	s.metrics.result(resultOverloaded) // the refusals' count: ticket_requests_total{result="overloaded"}
	c.Set(ctxKeyReason, "overloaded: max in-flight ticket requests reached")
	c.Set(ctxKeyOverloaded, true)
	c.Response().Header()[echo.HeaderRetryAfter] = s.resp.retryAfter1
	return s.send(c, http.StatusServiceUnavailable, s.resp.overloaded)
}

// bearerToken extracts the credentials of an "Authorization: Bearer <token>"
// header. The scheme is case-insensitive (RFC 9110 §11.1).
func bearerToken(h string) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

func errorBody(code, msg string) ErrorResponse {
	return ErrorResponse{Error: ErrorBody{Code: code, Message: msg}}
}

// handleError renders every error that reaches echo (unknown route, wrong
// method, body too large, panics) in the API's JSON error shape. Messages are
// fixed per status so no internal detail leaks to clients.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	status := http.StatusInternalServerError
	var he *echo.HTTPError
	if errors.As(err, &he) {
		status = he.Code
	}
	code, msg := CodeInternal, "internal error"
	switch status {
	case http.StatusBadRequest:
		code, msg = CodeBadRequest, "bad request"
	case http.StatusUnauthorized:
		code, msg = CodeUnauthorized, "unauthorized"
	case http.StatusNotFound:
		code, msg = CodeNotFound, "no such endpoint; tickets are at POST "+TicketPath
	case http.StatusMethodNotAllowed:
		code, msg = CodeMethodNotAllowed, "method not allowed"
	case http.StatusRequestEntityTooLarge:
		code, msg = CodePayloadTooLarge, fmt.Sprintf("request body larger than %d bytes", s.cfg.BodyLimit)
	case http.StatusServiceUnavailable:
		code, msg = CodeUnavailable, "service unavailable"
	case http.StatusInternalServerError:
	default:
		code, msg = strings.ToUpper(strings.ReplaceAll(http.StatusText(status), " ", "_")), http.StatusText(status)
	}
	if c.Request().Method == http.MethodHead {
		err = c.NoContent(status)
	} else {
		err = c.JSON(status, errorBody(code, msg))
	}
	if err != nil {
		s.log.Warn("write error response", "err", err)
	}
}

// logRequest writes one JSON line per request. It logs the route pattern,
// never the URI, and no header: tokens and tickets must stay out of logs.
func (s *Server) logRequest(c echo.Context, v middleware.RequestLoggerValues) error {
	route := v.RoutePath
	if route == "" {
		route = "unmatched"
	}
	var buf [7]slog.Attr // on the stack: no slice allocated per request
	attrs := append(buf[:0],
		slog.String("method", boundedMethod(v.Method)),
		slog.String("route", route),
		slog.Int("status", v.Status),
		slog.Float64("latency_ms", float64(v.Latency.Microseconds())/1000),
		slog.String("request_id", requestID(c)),
	)
	if r, ok := c.Get(ctxKeyReason).(string); ok {
		attrs = append(attrs, slog.String("reason", r))
	}
	_, overloaded := c.Get(ctxKeyOverloaded).(bool)
	level := requestLevel(v.Status, overloaded)
	if level == slog.LevelError && v.Error != nil {
		attrs = append(attrs, slog.String("err", v.Error.Error()))
	}
	s.log.LogAttrs(c.Request().Context(), level, "request", attrs...)
	return nil
}

// requestLevel is the log level of a request's line. An overload refusal
// is Info: in a reconnect storm there are thousands a second, each counted
// (ticket_requests_total{result="overloaded"}); a warning apiece would
// spend the replica's CPU on logging exactly when it has none to spare.
func requestLevel(status int, overloaded bool) slog.Level {
	switch {
	case overloaded:
		return slog.LevelInfo
	case status == http.StatusServiceUnavailable:
		return slog.LevelWarn // expected during a NATS outage; /readyz tells the story
	case status >= 500:
		return slog.LevelError
	}
	return slog.LevelInfo
}

// requestID is the id echo's RequestID middleware put on the response.
func requestID(c echo.Context) string {
	return c.Response().Header().Get(echo.HeaderXRequestID)
}

// sanitizeRequestID keeps an incoming X-Request-Id (an edge proxy's id ties
// the logs together) only when it is short and plain, so a client cannot
// put a token, or anything else, into our logs through it; otherwise echo's
// RequestID middleware generates a fresh one.
func (s *Server) sanitizeRequestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Request().Header
		if id := h.Get(echo.HeaderXRequestID); id != "" && !plainID(id) {
			h.Del(echo.HeaderXRequestID)
		}
		return next(c)
	}
}

func plainID(id string) bool {
	if len(id) > 128 || strings.Contains(id, session.TokenPrefix) || strings.Contains(id, ticket.Prefix) {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' || r == ':') {
			return false
		}
	}
	return true
}

// boundedMethod maps the client-chosen method onto a fixed set for labels.
func boundedMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "OTHER"
}
