import type { FetchLike } from "./ticket.js";
/**
 * The subset of the WebSocket API the client uses: the browser's
 * `WebSocket`, Node.js 22's global one and the `ws` package all fit.
 */
export interface WebSocketLike {
    readonly readyState: number;
    onopen: ((ev: any) => unknown) | null;
    onmessage: ((ev: any) => unknown) | null;
    onclose: ((ev: any) => unknown) | null;
    onerror: ((ev: any) => unknown) | null;
    send(data: string): void;
    close(code?: number, reason?: string): void;
}
/** A WebSocket constructor (`WebSocket`, or `WebSocket` from the `ws` package in Node.js 20). */
export type WebSocketConstructor = new (url: string) => WebSocketLike;
/** What {@link ClientOptions.getTicket} receives. */
export interface GetTicketContext {
    /** Aborted when the client is closed or the attempt times out. */
    signal: AbortSignal;
    /** 0 for the first attempt after a ready (or the start), then 1, 2, … */
    attempt: number;
}
/** Options of {@link OcvrClient}. */
export interface ClientOptions {
    /**
     * The gateway socket URL (`wss://rt.example/v1/ws`), or several: each
     * connection attempt takes the next one (round robin), as a load balancer
     * would, skipping those whose pod refused recently (see
     * {@link ClientOptions.backoff}).
     */
    url: string | readonly string[];
    /** ticketsvc's base URL (`https://api.example`); with `token`. */
    ticketUrl?: string;
    /** The bearer session token `sess_…`, or a function returning it (read at every attempt). */
    token?: string | (() => string | Promise<string>);
    /**
     * Instead of `ticketUrl` + `token`: returns a fresh connect ticket `wst_…`
     * for every attempt. Throw an error with `status: 401` or
     * `code: "UNAUTHORIZED"` (e.g. the {@link OcvrError} of {@link fetchTicket})
     * to stop the client ("sign in again", then `connect()`); any other error is retried
     * with backoff, or after its `retryAfter` in milliseconds (a server's
     * hint: see {@link ClientOptions.backoff}).
     */
    getTicket?: (ctx: GetTicketContext) => Promise<string>;
    /** The WebSocket constructor; default `globalThis.WebSocket`. Node.js 20: `import { WebSocket } from "ws"`. */
    WebSocket?: WebSocketConstructor;
    /** The `fetch` used for tickets; default `globalThis.fetch`. */
    fetch?: FetchLike;
    /**
     * Whether the first `subscribe()` of an idle client connects it (default
     * true). The constructor never connects: call {@link OcvrClient.connect}
     * (or subscribe). With `false`, only `connect()` does.
     */
    autoConnect?: boolean;
    /**
     * Milliseconds a `subscribe()` may take before its promise rejects with
     * `TIMEOUT` (default 5000; 0: never). The subscription keeps trying; the
     * timeout only tells the app it is not live yet (ticketsvc or the
     * gateway down, a slow backplane).
     */
    subscribeTimeout?: number;
    /**
     * Reconnect backoff in milliseconds: retry n (0 for the first after a
     * `ready`, or the start) waits a uniformly random time in
     * [0, min(max, base·2ⁿ)] (exponential backoff with full jitter). The count
     * resets after each `ready`, so the first retry after a drain (1012) is
     * quick, and still jittered. Defaults 500 and 30000.
     *
     * A server's retry hint replaces that delay with hint + random(0, hint):
     * never before the hint, spread over as long again so that the clients
     * that got the same hint do not return together. Hints: ticketsvc's
     * `Retry-After` (429, 503), a close reason's `retry_after=<seconds>` (the
     * gateway's 1013), and in Node.js with the `ws` package the gateway's
     * `Retry-After` instead of the upgrade (429, 503); each capped at 60 s.
     * A hint does not reset the count: the retries after it keep growing.
     *
     * With several `url`s, a gateway's own refusal (close 1013, with or
     * without a hint; in Node.js its HTTP 429/503 instead of the upgrade) is
     * about that pod only: its URL is skipped until now + the hint (or the
     * plain backoff delay without one), and the next attempt goes within
     * 100 ms to the next URL not skipped. Only when every URL is skipped does
     * the client wait: until the earliest skip ends, plus random(0, that
     * skip's length). ticketsvc's refusals and other failures (1006, a
     * timeout) keep the rules above; so does a client with one URL.
     */
    backoff?: {
        base?: number;
        max?: number;
    };
    /** Stop after this many 4001 (invalid ticket) closes in a row, each with a fresh ticket (default 3). */
    maxInvalidTickets?: number;
    /**
     * Milliseconds between heartbeats; default the server's `heartbeat_interval`
     * from `ready` (also in milliseconds). A heartbeat not acknowledged within one interval means a
     * dead connection: the client drops it and reconnects.
     */
    heartbeatInterval?: number;
    /** Milliseconds an attempt may take, ticket request to `ready` (default 10000). */
    connectTimeout?: number;
    /** Minimum milliseconds between two `typing` frames for one channel (default 3000, the server's own throttle). */
    typingThrottle?: number;
}
