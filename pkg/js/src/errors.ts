/**
 * Codes of an {@link OcvrError}: a server error code (an `error` frame, or
 * ticketsvc's JSON error such as `UNAUTHORIZED` or `RATE_LIMITED`), or one of
 * the client's own:
 *
 * - `SESSION_REVOKED`: the server closed with 4003 (after `session_revoked`).
 * - `INVALID_TICKET`: the gateway refused fresh tickets repeatedly (4001).
 * - `TOO_MANY_CONNECTIONS`: the server closed with 4010.
 * - `SERVER_CLOSED`: the server closed with 1000.
 * - `CLOSED`: `close()` was called, or a subscribe on a stopped client
 *   (the channel is kept for the next `connect()`).
 * - `TIMEOUT`: a subscribe got no answer within its timeout (the
 *   subscription keeps trying).
 * - `TICKET_FAILED`: the ticket request failed (network, unexpected answer).
 * - `UPGRADE_REFUSED`: the gateway answered HTTP (`status`: 429, 503, …,
 *   `retryAfter` from its Retry-After) instead of the upgrade; seen only
 *   in Node.js with the `ws` package (browsers hide it: a 1006 close).
 * - `CLOSE_<code>`: a socket closed with a code the client reconnects
 *   after (`closeCode`; `retryAfter` when the reason carries
 *   `retry_after=`, as the gateway's 1013 does).
 */
export type OcvrErrorCode =
  | "UNAUTHORIZED"
  | "RATE_LIMITED"
  | "UNAVAILABLE"
  | "SESSION_REVOKED"
  | "INVALID_TICKET"
  | "TOO_MANY_CONNECTIONS"
  | "SERVER_CLOSED"
  | "CLOSED"
  | "TIMEOUT"
  | "TICKET_FAILED"
  | "UPGRADE_REFUSED"
  | "NOT_MEMBER"
  | "CHANNEL_NOT_FOUND"
  | "TOO_MANY_SUBSCRIPTIONS"
  | "INVALID_MESSAGE"
  | (string & {});

/** Details of an {@link OcvrError}. */
export interface OcvrErrorDetails {
  /** The channel the error is about (a rejected subscribe). */
  channelId?: string;
  /** The WebSocket close code that ended the client. */
  closeCode?: number;
  /** The HTTP status of a failed ticket request, or of the gateway's refusal of the upgrade. */
  status?: number;
  /**
   * Milliseconds the server asked to wait before retrying, capped at 60 s:
   * a Retry-After (ticketsvc's 429/503, the gateway's 429/503), or a close
   * reason's `retry_after=<seconds>` (1013).
   */
  retryAfter?: number;
  cause?: unknown;
}

/** An error of the OCVR client, with a machine-readable `code`. */
export class OcvrError extends Error {
  readonly code: OcvrErrorCode;
  readonly channelId?: string;
  readonly closeCode?: number;
  readonly status?: number;
  readonly retryAfter?: number;

  constructor(code: OcvrErrorCode, message: string, details: OcvrErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = "OcvrError";
    this.code = code;
    if (details.channelId !== undefined) this.channelId = details.channelId;
    if (details.closeCode !== undefined) this.closeCode = details.closeCode;
    if (details.status !== undefined) this.status = details.status;
    if (details.retryAfter !== undefined) this.retryAfter = details.retryAfter;
  }
}
