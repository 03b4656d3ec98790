import { OcvrError } from "./errors.js";
import { headerRetryAfter } from "./retry.js";

/** The subset of `Response` the client reads. */
export interface FetchResponseLike {
  status: number;
  headers: { get(name: string): string | null };
  text(): Promise<string>;
}

/** The subset of `fetch` the client calls (the global one by default). */
export type FetchLike = (
  url: string,
  init: { method: string; headers: Record<string, string>; signal?: AbortSignal },
) => Promise<FetchResponseLike>;

/** Options of {@link fetchTicket}. */
export interface FetchTicketOptions {
  /** A `fetch` implementation; default `globalThis.fetch`. */
  fetch?: FetchLike;
  /** Aborts the request. */
  signal?: AbortSignal;
}

/** The ticket endpoint of a ticketsvc base URL (`http://127.0.0.1:8080` → `…/v1/auth/ws-ticket`). */
export function ticketEndpoint(ticketUrl: string): string {
  const base = ticketUrl.replace(/\/+$/, "");
  return base.endsWith("/v1/auth/ws-ticket") ? base : base + "/v1/auth/ws-ticket";
}

/**
 * Asks ticketsvc for a single-use, 30-second connect ticket with a bearer
 * session token: `POST /v1/auth/ws-ticket`. Rejects with an {@link OcvrError}
 * whose code is ticketsvc's (`UNAUTHORIZED` for 401: sign in again;
 * `RATE_LIMITED` and `UNAVAILABLE` with `retryAfter`, the `Retry-After` in
 * milliseconds, capped at 60 s) or `TICKET_FAILED`.
 */
export async function fetchTicket(ticketUrl: string, token: string, opts: FetchTicketOptions = {}): Promise<string> {
  const f = opts.fetch ?? (globalThis.fetch as unknown as FetchLike | undefined);
  if (!f) throw new OcvrError("TICKET_FAILED", "no fetch implementation: pass options.fetch");
  let res: FetchResponseLike;
  try {
    res = await f(ticketEndpoint(ticketUrl), {
      method: "POST",
      headers: { Authorization: `Bearer ${token}` },
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
  } catch (e) {
    throw new OcvrError("TICKET_FAILED", `ticket request failed: ${errorMessage(e)}`, { cause: e });
  }
  let body: unknown;
  try {
    body = JSON.parse(await res.text());
  } catch {
    body = undefined;
  }
  if (res.status === 200) {
    const ticket = (body as { data?: { ticket?: unknown } } | undefined)?.data?.ticket;
    if (typeof ticket !== "string" || ticket === "") {
      throw new OcvrError("TICKET_FAILED", "ticket request: unexpected answer", { status: res.status });
    }
    return ticket;
  }
  const err = (body as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
  const code =
    typeof err?.code === "string" && err.code !== ""
      ? err.code
      : res.status === 401
        ? "UNAUTHORIZED"
        : res.status === 429
          ? "RATE_LIMITED"
          : res.status === 503
            ? "UNAVAILABLE"
            : "TICKET_FAILED";
  const message = typeof err?.message === "string" ? err.message : `HTTP ${res.status}`;
  const details: { status: number; retryAfter?: number } = { status: res.status };
  const ra = headerRetryAfter(res.headers.get("Retry-After"));
  if (ra !== undefined) details.retryAfter = ra;
  throw new OcvrError(code, `ticket request: HTTP ${res.status} ${code}: ${message}`, details);
}

export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
