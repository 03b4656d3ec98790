/**
 * What to do after a socket closed with a code:
 * - `reconnect`: a new ticket and jittered backoff (a reason's
 *   `retry_after=<s>` is a floor);
 * - `new_ticket`: 4001, reconnect only with a fresh ticket, stop after
 *   `maxInvalidTickets` in a row;
 * - `stop`: do not reconnect on your own.
 */
export type CloseAction = "reconnect" | "new_ticket" | "stop";
/** The action for a close code; any code not listed reconnects. */
export declare function closeAction(code: number): CloseAction;
/** What an error code means for the request it answers. */
export interface ErrorPolicy {
    /** The same request may succeed a moment later (1–2 s, jittered). */
    retryable: boolean;
    /** The server closes the connection after it (4001 follows). */
    endsConnection: boolean;
    /** It can answer a `subscribe` (carrying its `channel_id`) and fails it; final unless retryable. */
    subscribe: boolean;
}
/**
 * The policy of an error code; `undefined` for a code this client does not
 * know (not retryable; the client takes it as the answer to a subscribe in
 * flight for its channel). Codes are case-sensitive.
 */
export declare function errorPolicy(code: string): ErrorPolicy | undefined;
/** The error codes this client knows, in policy.json's order. */
export declare const KNOWN_ERROR_CODES: readonly string[];
