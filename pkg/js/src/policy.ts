// What the client does about each close code and error code: the one
// policy of every OCVR client, as pkg/protocol/policy.go has it (Go) and
// pkg/protocol/testdata/policy.json as test vectors (test/package.test.mjs
// checks these tables against that file).
import { CloseCode } from "./protocol.js";

/**
 * What to do after a socket closed with a code:
 * - `reconnect`: a new ticket and jittered backoff (a reason's
 *   `retry_after=<s>` is a floor);
 * - `new_ticket`: 4001, reconnect only with a fresh ticket, stop after
 *   `maxInvalidTickets` in a row;
 * - `stop`: do not reconnect on your own.
 */
export type CloseAction = "reconnect" | "new_ticket" | "stop";

const STOP: ReadonlySet<number> = new Set([CloseCode.NORMAL, CloseCode.SESSION_REVOKED, CloseCode.TOO_MANY_CONNECTIONS]);

/** The action for a close code; any code not listed reconnects. */
export function closeAction(code: number): CloseAction {
  if (code === CloseCode.INVALID_TICKET) return "new_ticket";
  return STOP.has(code) ? "stop" : "reconnect";
}

/** What an error code means for the request it answers. */
export interface ErrorPolicy {
  /** The same request may succeed a moment later (1–2 s, jittered). */
  retryable: boolean;
  /** The server closes the connection after it (4001 follows). */
  endsConnection: boolean;
  /** It can answer a `subscribe` (carrying its `channel_id`) and fails it; final unless retryable. */
  subscribe: boolean;
}

const ERRORS: Readonly<Record<string, ErrorPolicy>> = {
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
export function errorPolicy(code: string): ErrorPolicy | undefined {
  return Object.prototype.hasOwnProperty.call(ERRORS, code) ? ERRORS[code] : undefined;
}

/** The error codes this client knows, in policy.json's order. */
export const KNOWN_ERROR_CODES: readonly string[] = Object.keys(ERRORS);
