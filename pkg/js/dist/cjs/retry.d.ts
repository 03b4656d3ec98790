/**
 * Retry hints of the OCVR servers, and the reconnect delay that honours them.
 *
 * Hints: ticketsvc's `Retry-After` (429 `RATE_LIMITED`, 503 `UNAVAILABLE`),
 * the gateway's `Retry-After` instead of the upgrade (429, 503; visible in
 * Node.js with the `ws` package, never in browsers), and the
 * `retry_after=<seconds>` token of a close reason (the gateway's 1013,
 * "pod at connection limit; retry_after=2").
 */
/** Every hint is capped at this many milliseconds (60 s): a bogus server cannot park a client for ever. */
export declare const MAX_RETRY_AFTER = 60000;
/**
 * The retry hint of a WebSocket close reason, in milliseconds, capped at
 * {@link MAX_RETRY_AFTER}: the seconds of its `retry_after=<n>` token
 * (`"pod at connection limit; retry_after=2"` → 2000). `undefined` when the
 * reason has none (or says 0): plain backoff.
 */
export declare function reasonRetryAfter(reason: string): number | undefined;
/**
 * The hint of an HTTP `Retry-After` header value, in milliseconds, capped:
 * delay-seconds (what the OCVR servers send) or an HTTP date. `undefined`
 * when absent, malformed, zero or past.
 */
export declare function headerRetryAfter(value: string | null | undefined, now?: number): number | undefined;
/** A hint in milliseconds bounded to (0, MAX_RETRY_AFTER]; `undefined` for none. */
export declare function capHint(ms: unknown): number | undefined;
/**
 * The delay before retry number `attempt` (0 for the first after a
 * `ready`, or the start), in milliseconds. With a hint: hint + random(0,
 * hint), never before the hint and spread over as long again, so that the
 * clients that got the same hint do not return in one instant. Without:
 * random(0, min(max, base·2^attempt)) (full jitter).
 */
export declare function reconnectDelay(attempt: number, base: number, max: number, hint?: number): number;
/** At most this many milliseconds before the next gateway URL after one refused: a refused herd does not land on the next pod in one instant. */
export declare const SWITCH_JITTER = 100;
/**
 * Per gateway URL of a client, until when (ms since the epoch) it is held
 * after its pod refused, and for how long: a gateway's refusal (1013, its
 * HTTP 429/503) is about one pod, so with several URLs the next attempt
 * skips the held ones instead of waiting out the hint.
 */
export declare class RefusedUrls {
    private readonly until;
    private readonly span;
    constructor(n: number);
    /** The URL to try: the first from `turn` on (round robin) not held at `now`; when every one is, the one free first. */
    pick(turn: number, now?: number): number;
    /**
     * Holds URL `i` for `hold` ms (the hint, or the backoff delay without
     * one) and returns the wait before the next attempt: up to
     * {@link SWITCH_JITTER} when another URL is free; else until the
     * earliest hold ends, plus random(0, that hold), so that a herd refused
     * everywhere does not come back together.
     */
    refuse(i: number, hold: number, now?: number): number;
}
