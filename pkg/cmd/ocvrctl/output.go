package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"syscall"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ocvr/realtime/pkg/bus"
	"github.com/ocvr/realtime/pkg/client"
	"github.com/ocvr/realtime/pkg/directory"
	"github.com/ocvr/realtime/pkg/protocol"
	"github.com/ocvr/realtime/pkg/session"
	"github.com/ocvr/realtime/pkg/ticket"
)

// Exit codes: a script tells what went wrong from the code alone.
const (
	exitOK          = 0
	exitRuntime     = 1 // any other failure
	exitUsage       = 2 // bad command line: nothing was attempted
	exitUnreachable = 3 // NATS, the event stream, ticketsvc or a gateway did not answer (retry later)
	exitNotFound    = 4 // the session, channel, stream or bucket does not exist
	exitRefused     = 5 // refused: unauthorized, a payload the gateways refuse, a NATS permission
)

// exitHelp documents the codes, in --help and pkg/README.md.
const exitHelp = `Exit status: 0 success; 1 any other failure; 2 usage error (bad flag or id:
nothing was attempted); 3 unreachable (NATS, the event stream, ticketsvc or a
gateway did not answer in time: retrying may help); 4 not found (no such
session, channel, stream or bucket); 5 refused (unauthorized session or
ticket, a payload the gateways would refuse, a NATS permission denied).
With --json every result is one JSON object per line on stdout and an error
is one JSON line on stderr: {"error":{"kind":"not_found","exit":4,"message":"…"}}.`

// Kinds of failure a command marks its errors with when the cause alone
// does not say (see exitCode).
var (
	errUnreachable = errors.New("unreachable")
	errNotFound    = errors.New("not found")
	errRefused     = errors.New("refused")
)

// kindError marks err with a kind without changing its message.
type kindError struct{ kind, err error }

func (e *kindError) Error() string   { return e.err.Error() }
func (e *kindError) Unwrap() []error { return []error{e.err, e.kind} }

func withKind(kind, err error) error {
	if err == nil {
		return nil
	}
	return &kindError{kind: kind, err: err}
}

// exitCode classifies err: its exit code and the kind named in --json
// errors. Refusals win over "not found" and "unreachable" (an unknown
// session token is a refusal, though the store did not find it).
func exitCode(err error) (int, string) {
	var ue *usageError
	var he *client.HTTPError
	var ce *client.CloseError
	var apiErr *jetstream.APIError
	var opErr *net.OpError
	switch {
	case err == nil:
		return exitOK, ""
	case errors.As(err, &ue):
		return exitUsage, "usage"
	case errors.Is(err, errRefused), errors.Is(err, session.ErrUnauthorized), errors.Is(err, ticket.ErrInvalid),
		errors.Is(err, protocol.ErrInvalidEvent), errors.Is(err, nats.ErrPermissionViolation),
		errors.Is(err, nats.ErrAuthorization), errors.Is(err, nats.ErrAuthExpired), errors.Is(err, nats.ErrAuthRevoked),
		errors.As(err, &he) && (he.Status == http.StatusUnauthorized || he.Status == http.StatusForbidden),
		errors.As(err, &ce) && (ce.Code == protocol.CloseInvalidTicket || ce.Code == protocol.CloseSessionRevoked),
		errors.As(err, &apiErr) && apiErr.Code != http.StatusNotFound && apiErr.Code != http.StatusServiceUnavailable:
		return exitRefused, "refused"
	case errors.Is(err, errNotFound), errors.Is(err, session.ErrNotFound), errors.Is(err, directory.ErrNotFound),
		errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrStreamNotFound),
		errors.Is(err, jetstream.ErrBucketNotFound):
		return exitNotFound, "not_found"
	case errors.Is(err, errUnreachable), errors.Is(err, bus.ErrNoStream), errors.Is(err, nats.ErrNoServers),
		errors.Is(err, nats.ErrTimeout), errors.Is(err, nats.ErrNoResponders), errors.Is(err, nats.ErrConnectionClosed),
		errors.Is(err, jetstream.ErrNoStreamResponse), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, syscall.ECONNREFUSED), errors.As(err, &opErr),
		errors.As(err, &he) && (he.Status == http.StatusServiceUnavailable || he.Status == http.StatusTooManyRequests):
		return exitUnreachable, "unreachable"
	}
	return exitRuntime, "error"
}

// emit writes one result of a command: with --json the object v as one
// line of JSON, otherwise the text line.
func (a *app) emit(v any, format string, args ...any) {
	if a.g.json {
		b, err := json.Marshal(v)
		if err != nil { // only our own types get here
			b, _ = json.Marshal(map[string]string{"error": err.Error()})
		}
		fmt.Fprintf(a.out, "%s\n", b)
		return
	}
	a.printf(format, args...)
}
