/** The subset of `Response` the client reads. */
export interface FetchResponseLike {
    status: number;
    headers: {
        get(name: string): string | null;
    };
    text(): Promise<string>;
}
/** The subset of `fetch` the client calls (the global one by default). */
export type FetchLike = (url: string, init: {
    method: string;
    headers: Record<string, string>;
    signal?: AbortSignal;
}) => Promise<FetchResponseLike>;
/** Options of {@link fetchTicket}. */
export interface FetchTicketOptions {
    /** A `fetch` implementation; default `globalThis.fetch`. */
    fetch?: FetchLike;
    /** Aborts the request. */
    signal?: AbortSignal;
}
/** The ticket endpoint of a ticketsvc base URL (`http://127.0.0.1:8080` → `…/v1/auth/ws-ticket`). */
export declare function ticketEndpoint(ticketUrl: string): string;
/**
 * Asks ticketsvc for a single-use, 30-second connect ticket with a bearer
 * session token: `POST /v1/auth/ws-ticket`. Rejects with an {@link OcvrError}
 * whose code is ticketsvc's (`UNAUTHORIZED` for 401: sign in again;
 * `RATE_LIMITED` and `UNAVAILABLE` with `retryAfter`, the `Retry-After` in
 * milliseconds, capped at 60 s) or `TICKET_FAILED`.
 */
export declare function fetchTicket(ticketUrl: string, token: string, opts?: FetchTicketOptions): Promise<string>;
export declare function errorMessage(e: unknown): string;
