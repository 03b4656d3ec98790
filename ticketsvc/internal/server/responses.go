package server

import (
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/ocvr/realtime/pkg/ticket"
)

// responses holds what every ticket response shares, built once in New:
// header values (a header map entry assigned a prebuilt slice costs no
// allocation; Header.Set allocates one per call) and the bodies that never
// vary. Nothing here is modified after New. The slices have len == cap, so
// a Header.Add by anyone would copy rather than write into them.
type responses struct {
	noStore, json, retryAfter1, wwwAuthenticate []string

	unavailable, overloaded, rateLimited []byte

	bufs sync.Pool // *[]byte for 200 bodies; no package-level state
}

func newResponses() responses {
	return responses{
		noStore:         []string{"no-store"},
		json:            []string{echo.MIMEApplicationJSON},
		retryAfter1:     []string{"1"},
		wwwAuthenticate: []string{`Bearer realm="ocvr"`},
		unavailable:     errorJSON(CodeUnavailable, "ticket service temporarily unavailable; retry shortly"),
		overloaded:      errorJSON(CodeUnavailable, "ticket service overloaded; retry after the Retry-After delay"),
		rateLimited:     errorJSON(CodeRateLimited, "too many ticket requests for this session; retry after the Retry-After delay"),
		bufs:            sync.Pool{New: func() any { b := make([]byte, 0, 128); return &b }},
	}
}

// errorJSON is the error body exactly as echo's c.JSON renders it (compact
// JSON and a newline), so precomputed and rendered bodies are alike.
func errorJSON(code, msg string) []byte {
	b, err := json.Marshal(errorBody(code, msg))
	if err != nil {
		panic(err) // two strings always marshal
	}
	return append(b, '\n')
}

// send writes a complete JSON body. Written in one call with nothing
// after it, the body's length is known before the headers go out, so
// net/http sends Content-Length (never chunked) and the connection stays
// reusable.
func (s *Server) send(c echo.Context, status int, body []byte) error {
	res := c.Response()
	res.Header()[echo.HeaderContentType] = s.resp.json
	res.WriteHeader(status)
	_, err := res.Write(body)
	return err
}

// sendTicket writes the 200 body, the bytes c.JSON would write for
// TicketResponse, without reflection or a fresh buffer per request.
func (s *Server) sendTicket(c echo.Context, t string) error {
	if !jsonSafe(t) {
		// Never for a ticket Mint made (prefix + base64url); kept so a
		// change of ticket format cannot produce broken JSON.
		return c.JSON(http.StatusOK, TicketResponse{Data: TicketData{Ticket: t, ExpiresIn: int(ticket.TTL / time.Second)}})
	}
	bp := s.resp.bufs.Get().(*[]byte)
	b := append((*bp)[:0], `{"data":{"ticket":"`...)
	b = append(b, t...)
	b = append(b, `","expires_in":`...)
	b = strconv.AppendInt(b, int64(ticket.TTL/time.Second), 10)
	b = append(b, "}}\n"...)
	err := s.send(c, http.StatusOK, b)
	*bp = b
	s.resp.bufs.Put(bp)
	return err
}

// jsonSafe reports whether s needs no escaping inside a JSON string (as
// encoding/json escapes: quotes, backslashes, control characters, <, >, &
// and non-ASCII are left to it).
func jsonSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}
