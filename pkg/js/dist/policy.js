// What the client does about each close code and error code: the one
// policy of every OCVR client, as pkg/protocol/policy.go has it (Go) and
// pkg/protocol/testdata/policy.json as test vectors (test/package.test.mjs
// checks these tables against that file).
import { CloseCode } from "./protocol.js";
const STOP = new Set([CloseCode.NORMAL, CloseCode.SESSION_REVOKED, CloseCode.TOO_MANY_CONNECTIONS]);
/** The action for a close code; any code not listed reconnects. */
export function closeAction(code) {
    if (code === CloseCode.INVALID_TICKET)
        return "new_ticket";
    return STOP.has(code) ? "stop" : "reconnect";
}
const ERRORS = {
    INVALID_TICKET: { retryable: false, endsConnection: true, subscribe: false },
    INVALID_MESSAGE: { retryable: false, endsConnection: false, subscribe: true },
    CHANNEL_NOT_FOUND: { retryable: false, endsConnection: false, subscribe: true },
    NOT_MEMBER: { retryable: false, endsConnection: false, subscribe: true },
    NOT_SUBSCRIBED: { retryable: false, endsConnection: false, subscribe: false },
    TOO_MANY_SUBSCRIPTIONS: { retryable: false, endsConnection: false, subscribe: true },
    RATE_LIMITED: { retryable: true, endsConnection: false, subscribe: false },
    UNAVAILABLE: { retryable: true, endsConnection: false, subscribe: true },
};
/**
 * The policy of an error code; `undefined` for a code this client does not
 * know (not retryable; the client takes it as the answer to a subscribe in
 * flight for its channel). Codes are case-sensitive.
 */
export function errorPolicy(code) {
    return Object.prototype.hasOwnProperty.call(ERRORS, code) ? ERRORS[code] : undefined;
}
/** The error codes this client knows, in policy.json's order. */
export const KNOWN_ERROR_CODES = Object.keys(ERRORS);
