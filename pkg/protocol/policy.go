package protocol

// What a client does about each close code and error code: the one policy
// of the Go client (pkg/client), the TypeScript client (pkg/js) and
// gateway/README.md. testdata/policy.json holds the same tables as data,
// for SDKs in other languages to test against; TestPolicyVectors keeps
// this file, that one and the README in step.

// CloseAction is what a client does after the server closed its socket
// with a code.
type CloseAction string

const (
	// CloseActionReconnect: reconnect with a new ticket after a jittered
	// backoff delay (a close reason's retry_after=<seconds> is a floor),
	// resuming where the gateway offers continuity.
	CloseActionReconnect CloseAction = "reconnect"
	// CloseActionNewTicket (4001): the ticket was refused. Reconnect only
	// with a fresh ticket, and stop after MaxInvalidTickets refusals in a
	// row: a fresh ticket that keeps failing means the session is gone
	// (ticketsvc then answers 401: sign in again).
	CloseActionNewTicket CloseAction = "new_ticket"
	// CloseActionStop: do not reconnect on your own. 1000: the server ended
	// the connection on purpose; 4003: the session is revoked (show the
	// signed-out screen); 4010: the user has too many connections on the
	// pod (close another one, or let the user retry).
	CloseActionStop CloseAction = "stop"
)

// MaxInvalidTickets is how many 4001 closes in a row a client takes before
// it stops (CloseActionNewTicket); the SDKs' default.
const MaxInvalidTickets = 3

// CloseCodeInfo is one row of CloseCodes.
type CloseCodeInfo struct {
	Code   int         `json:"code"`
	Name   string      `json:"name"`
	Action CloseAction `json:"action"`
}

// CloseCodes lists every close code a client may see from the gateway and
// what to do about it. Any code not listed (1002, 1008, 3xxx, other 4xxx)
// is CloseActionReconnect: a client must not stop for a code it does not
// know.
var CloseCodes = []CloseCodeInfo{
	{CloseNormal, "normal", CloseActionStop},
	{CloseGoingAway, "going_away", CloseActionReconnect},
	{CloseNoStatus, "no_status", CloseActionReconnect},
	{CloseAbnormal, "abnormal", CloseActionReconnect},
	{CloseMessageTooBig, "message_too_big", CloseActionReconnect},
	{CloseInternalError, "internal_error", CloseActionReconnect},
	{CloseServiceRestart, "service_restart", CloseActionReconnect},
	{CloseTryAgainLater, "try_again_later", CloseActionReconnect},
	{CloseInvalidTicket, "invalid_ticket", CloseActionNewTicket},
	{CloseSessionRevoked, "session_revoked", CloseActionStop},
	{CloseHeartbeatTimeout, "heartbeat_timeout", CloseActionReconnect},
	{CloseRateLimited, "rate_limited", CloseActionReconnect},
	{CloseSlowConsumer, "slow_consumer", CloseActionReconnect},
	{CloseTooManyConns, "too_many_connections", CloseActionStop},
}

// CloseActionOf returns what a client does after the server closed its
// socket with code (CloseCodes; CloseActionReconnect for any other code).
func CloseActionOf(code int) CloseAction {
	for _, c := range CloseCodes {
		if c.Code == code {
			return c.Action
		}
	}
	return CloseActionReconnect
}

// ShouldReconnect reports whether a client should reconnect (with a new
// ticket and backoff) after the server closed its socket with code:
// CloseActionOf(code) is CloseActionReconnect. 4001 is false: it is retried
// only as CloseActionNewTicket says.
func ShouldReconnect(code int) bool { return CloseActionOf(code) == CloseActionReconnect }

// ErrorCodeInfo is one row of ErrorCodeTable.
type ErrorCodeInfo struct {
	Code string `json:"code"`
	// Retryable: the same request may succeed if sent again a moment later
	// (after 1–2 s, jittered). A refused subscribe that is not retryable is
	// final: a client drops the channel and does not resubscribe it after
	// a reconnect.
	Retryable bool `json:"retryable"`
	// EndsConnection: the server closes the socket right after (4001).
	EndsConnection bool `json:"ends_connection"`
	// Subscribe: an answer to subscribe (with the channel_id), which
	// fails the subscription.
	Subscribe bool `json:"subscribe"`
}

// ErrorCodeTable says, for every error code, whether to retry and whether
// it answers a subscribe (gateway/README.md "Error codes" says what to do
// in prose). NOT_SUBSCRIBED answers unsubscribe and typing only;
// RATE_LIMITED carries no channel_id: the frames over the limit, a
// subscribe among them, are dropped unanswered (a subscribe then times
// out).
var ErrorCodeTable = []ErrorCodeInfo{
	{Code: CodeInvalidTicket, EndsConnection: true},
	{Code: CodeInvalidMessage, Subscribe: true},
	{Code: CodeChannelNotFound, Subscribe: true},
	{Code: CodeNotMember, Subscribe: true},
	{Code: CodeNotSubscribed},
	{Code: CodeTooManySubscriptions, Subscribe: true},
	{Code: CodeRateLimited, Retryable: true},
	{Code: CodeUnavailable, Retryable: true, Subscribe: true},
}

// RetryableError reports whether a request answered with error code code
// may succeed if sent again a moment later (ErrorCodeTable). Unknown codes
// are not retryable.
func RetryableError(code string) bool {
	for _, e := range ErrorCodeTable {
		if e.Code == code {
			return e.Retryable
		}
	}
	return false
}
