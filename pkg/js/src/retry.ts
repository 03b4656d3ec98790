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
export const MAX_RETRY_AFTER = 60_000;

/**
 * The hint in a close reason's `retry_after=<integer seconds>` token; the
 * reason is free text for humans, so the token is searched for anywhere.
 */
const RETRY_AFTER_TOKEN = /\bretry_after=(\d+)\b/;

/**
 * The retry hint of a WebSocket close reason, in milliseconds, capped at
 * {@link MAX_RETRY_AFTER}: the seconds of its `retry_after=<n>` token
 * (`"pod at connection limit; retry_after=2"` → 2000). `undefined` when the
 * reason has none (or says 0): plain backoff.
 */
export function reasonRetryAfter(reason: string): number | undefined {
  const m = RETRY_AFTER_TOKEN.exec(reason);
  return m ? secondsHint(Number(m[1])) : undefined;
}

/**
 * The hint of an HTTP `Retry-After` header value, in milliseconds, capped:
 * delay-seconds (what the OCVR servers send) or an HTTP date. `undefined`
 * when absent, malformed, zero or past.
 */
export function headerRetryAfter(value: string | null | undefined, now = Date.now()): number | undefined {
  const v = value?.trim();
  if (!v) return undefined;
  if (/^\d+$/.test(v)) return secondsHint(Number(v));
  if (/^[0-9.+-]/.test(v)) return undefined; // a malformed number, not a date
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : capHint(at - now);
}

function secondsHint(s: number): number | undefined {
  return capHint(s * 1000);
}

/** A hint in milliseconds bounded to (0, MAX_RETRY_AFTER]; `undefined` for none. */
export function capHint(ms: unknown): number | undefined {
  if (typeof ms !== "number" || Number.isNaN(ms) || ms <= 0) return undefined;
  return Math.min(ms, MAX_RETRY_AFTER);
}

/**
 * The delay before retry number `attempt` (0 for the first after a
 * `ready`, or the start), in milliseconds. With a hint: hint + random(0,
 * hint), never before the hint and spread over as long again, so that the
 * clients that got the same hint do not return in one instant. Without:
 * random(0, min(max, base·2^attempt)) (full jitter).
 */
export function reconnectDelay(attempt: number, base: number, max: number, hint?: number): number {
  const h = capHint(hint);
  if (h !== undefined) return h + Math.random() * h;
  return Math.random() * Math.min(max, base * 2 ** Math.min(attempt, 30));
}

/** At most this many milliseconds before the next gateway URL after one refused: a refused herd does not land on the next pod in one instant. */
export const SWITCH_JITTER = 100;

/**
 * Per gateway URL of a client, until when (ms since the epoch) it is held
 * after its pod refused, and for how long: a gateway's refusal (1013, its
 * HTTP 429/503) is about one pod, so with several URLs the next attempt
 * skips the held ones instead of waiting out the hint.
 */
export class RefusedUrls {
  private readonly until: number[];
  private readonly span: number[];

  constructor(n: number) {
    this.until = new Array<number>(n).fill(0);
    this.span = new Array<number>(n).fill(0);
  }

  /** The URL to try: the first from `turn` on (round robin) not held at `now`; when every one is, the one free first. */
  pick(turn: number, now = Date.now()): number {
    const n = this.until.length;
    let best = turn % n;
    for (let k = 0; k < n; k++) {
      const i = (turn + k) % n;
      if ((this.until[i] as number) <= now) return i;
      if ((this.until[i] as number) < (this.until[best] as number)) best = i;
    }
    return best;
  }

  /**
   * Holds URL `i` for `hold` ms (the hint, or the backoff delay without
   * one) and returns the wait before the next attempt: up to
   * {@link SWITCH_JITTER} when another URL is free; else until the
   * earliest hold ends, plus random(0, that hold), so that a herd refused
   * everywhere does not come back together.
   */
  refuse(i: number, hold: number, now = Date.now()): number {
    const h = capHint(hold) ?? 0;
    this.until[i] = now + h;
    this.span[i] = h;
    let first = i;
    for (let j = 0; j < this.until.length; j++) {
      const u = this.until[j] as number;
      if (u <= now) return Math.random() * SWITCH_JITTER;
      if (u < (this.until[first] as number)) first = j;
    }
    return (this.until[first] as number) - now + Math.random() * (this.span[first] as number);
  }
}
