import { OcvrError } from "./errors.js";
import { CloseCode, SERVER_FRAME_TYPES } from "./protocol.js";
import type { AnyServerFrame, ErrorData, Ready, ServerFrame, SessionRevoked, Subscribe, Subscribed, Unsubscribed } from "./protocol.js";
import { RefusedUrls, capHint, headerRetryAfter, reasonRetryAfter, reconnectDelay } from "./retry.js";
import { errorMessage, fetchTicket } from "./ticket.js";
import type { FetchLike } from "./ticket.js";
import { Subscription, subscribeTimeoutError } from "./subscription.js";
import { closeAction, errorPolicy } from "./policy.js";
import { Emitter } from "./emitter.js";
import type { SubscribeOptions, SubscribedEvent, SubscriptionEndEvent } from "./subscription.js";
import type { ClientOptions, WebSocketConstructor, WebSocketLike } from "./options.js";
import type {
  ChannelContinuity,
  ClientEventMap,
  ClientEventType,
  ClosedEvent,
  ConnectionState,
  ContinuityEvent,
  Listener,
  ReconnectingEvent,
  UnknownListener,
  UserContinuity,
} from "./events.js";

export type * from "./options.js";
export type * from "./events.js";


/** The client's own events: a server frame of one of these types is only seen through `frame`. */
const CLIENT_EVENTS: ReadonlySet<string> = new Set(["frame", "continuity", "connected", "state", "disconnect", "reconnecting", "closed"]);

/** A channel id the gateway accepts (protocol.IDPattern). */
const CHANNEL_ID = /^[A-Za-z0-9_-]{1,64}$/;

/** Frame types that are never a channel's event, though their data may name a channel. */
const NOT_CHANNEL_EVENTS: ReadonlySet<string> = new Set(["ready", "heartbeat_ack", "subscribed", "unsubscribed", "error", "session_revoked", "notification", "presence_update"]);

interface Pending {
  promise: Promise<void>;
  resolve: () => void;
  reject: (e: OcvrError) => void;
}

const OPEN = 1;
const CONNECTING = 0;

/**
 * A connection to the OCVR gateway that survives restarts: it gets a new
 * ticket for every attempt, heartbeats, detects dead sockets, reconnects with
 * exponential backoff and full jitter (after a server's retry hint: the hint
 * plus jitter), resubscribes its channels after every
 * reconnect, and stops (until `connect()`) after 4003 (session revoked), repeated 4001,
 * 4010 or 401 from ticketsvc.
 *
 * Continuity: it keeps the resume token of the newest `ready` and one cursor
 * per subscription (the user's own events, each channel), resumes from them
 * on every reconnect, drops duplicates (an event at or below its
 * subscription's newest position on the connection: the newest event
 * received, or the cursor a resume started from), and says after each
 * `ready` and `subscribed`
 * whether nothing was lost (`connected`, each channel's `subscribed`, and
 * the `continuity` event). `close()` (and any stop) forgets the token and
 * the cursors and keeps the channels: a later `connect()` starts afresh and
 * subscribes them again.
 *
 * The constructor has no side effects: `connect()` (or the first
 * `subscribe()`) starts.
 *
 * ```ts
 * const client = new OcvrClient({ url: "wss://rt.example/v1/ws", ticketUrl: "https://api.example", token });
 * client.connect();
 * const general = client.channel("ch_general");
 * general.on("message_create", (m) => console.log(m.author.display_name, m.content));
 * general.on("subscribed", ({ refetch }) => { if (refetch) reloadMessages(); });
 * await general.subscribe();
 * ```
 */
export class OcvrClient {
  private readonly urls: readonly string[];
  private readonly opts: ClientOptions;
  private WS: WebSocketConstructor | undefined;
  private readonly base: number;
  private readonly max: number;
  private readonly maxInvalid: number;
  private readonly connectTimeout: number;
  private readonly typingThrottle: number;
  private readonly subscribeTimeout: number;
  /** Removes the browser's `online` listener. */
  private onlineOff: (() => void) | undefined;
  /** Every channel object handed out by channel(), for the client's life. */
  private readonly subs = new Map<string, Subscription>();

  private readonly events = new Emitter();
  private _state: ConnectionState = "idle";
  private _ready: Ready | undefined;

  private ws: WebSocketLike | undefined;
  private wsUrl: string | undefined;
  private wsOpen = false; // ready received on ws
  private gen = 0; // bumped per attempt and on close: stale callbacks check it
  private attempt = 0;
  private invalidTickets = 0;
  private turn = 0;
  /** The index in urls of the current attempt's gateway. */
  private urlIndex = 0;
  /** Gateway URLs held after their pod refused (with several URLs). */
  private readonly refusedUrls: RefusedUrls;
  private abort: AbortController | undefined;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private connectTimer: ReturnType<typeof setTimeout> | undefined;
  private heartbeatTimer: ReturnType<typeof setInterval> | undefined;
  private ackPending = false;
  private revoked: SessionRevoked | undefined;
  private lastError: ErrorData | undefined;
  /** The gateway's HTTP answer instead of the upgrade on the current socket (the `ws` package tells it). */
  private refused: { status: number; retryAfter: number | undefined } | undefined;

  /** Channels wanted: subscribed now if open, and again after every reconnect. */
  private readonly wanted = new Set<string>();
  /** Channels subscribed on the current socket (`subscribed` received). */
  private readonly live = new Set<string>();
  private readonly pendingSubs = new Map<string, Pending>();
  private readonly pendingUnsubs = new Map<string, Pending>();
  private readonly lastTyping = new Map<string, number>();
  /** Subscribes refused with UNAVAILABLE, to send again shortly. */
  private readonly subRetries = new Map<string, ReturnType<typeof setTimeout>>();
  /** Channels whose subscribe was sent on the current socket and not answered yet. */
  private readonly inflight = new Set<string>();

  // Continuity (gateway/README.md "Continuity"). Kept across reconnects,
  // forgotten when the client stops.
  /** The resume token of the newest `ready`. */
  private resumeToken: string | undefined;
  /** The cursor of the user's own events (undefined before the first `ready`). */
  private userCursor: number | undefined;
  /** The session of the previous `ready`: a `ready` of another one resumes nothing. */
  private sessionId: string | undefined;
  /** A `ready` was received since the client (re)started: the next one is a reconnect. */
  private hadReady = false;
  /** The cursor of every wanted channel that has been subscribed (or got a positioned event). */
  private readonly cursors = new Map<string, number>();
  /** Whether the current socket was opened with a resume token. */
  private resumeAsked = false;
  /** Channels resubscribed on the current socket after being subscribed on an earlier one. */
  private readonly resubs = new Set<string>();
  /**
   * Per subscription on the current socket, the position at or below which
   * an event is a duplicate: the newest one received on this socket, or the
   * cursor a resume started from. Not the cursor of a fresh start: the
   * server's events on a new socket are new.
   */
  private readonly floors = new Map<string, number>();
  private userFloor: number | undefined;

  constructor(options: ClientOptions) {
    this.opts = options;
    this.urls = typeof options.url === "string" ? [options.url] : [...options.url];
    if (this.urls.length === 0) throw new TypeError("OcvrClient: options.url is required");
    this.refusedUrls = new RefusedUrls(this.urls.length);
    if (!options.getTicket && (!options.ticketUrl || options.token === undefined)) {
      throw new TypeError("OcvrClient: pass ticketUrl and token, or getTicket");
    }
    // The WebSocket constructor is looked up at connect(): a client can be
    // created where there is none (server-side rendering in Node.js 20).
    this.WS = options.WebSocket;
    this.base = options.backoff?.base ?? 500;
    this.max = options.backoff?.max ?? 30000;
    this.maxInvalid = options.maxInvalidTickets ?? 3;
    this.connectTimeout = options.connectTimeout ?? 10000;
    this.typingThrottle = options.typingThrottle ?? 3000;
    this.subscribeTimeout = options.subscribeTimeout ?? 5000;
    // No connect here: the constructor has no side effects (React StrictMode
    // renders twice, server-side rendering has no socket).
  }

  /** The current state. */
  get state(): ConnectionState {
    return this._state;
  }

  /** The `ready` of the current connection (connection, user and session ids), or undefined when not open. */
  get ready(): Ready | undefined {
    return this._state === "open" ? this._ready : undefined;
  }

  /** The gateway URL of the current connection (without the ticket), or undefined when not open. */
  get url(): string | undefined {
    return this._state === "open" ? this.wsUrl : undefined;
  }

  /** The channels the client keeps subscribed (across reconnects). */
  get channels(): string[] {
    return [...this.wanted];
  }

  /** Whether `channelId` is subscribed on the current connection (`subscribed` received). */
  isSubscribed(channelId: string): boolean {
    return this.live.has(channelId);
  }

  /**
   * A subscription's cursor: the position (`seq`) of its newest event, or
   * the one `ready` / `subscribed` gave; the client resumes from it after a
   * reconnect. Without `channelId`: the user's own events. Undefined when
   * the client holds none (not subscribed yet, or stopped).
   */
  cursor(channelId?: string): number | undefined {
    return channelId === undefined ? this.userCursor : this.cursors.get(channelId);
  }

  /**
   * Listens to an event; returns a function that removes the listener.
   *
   * A known server frame type (`message_create`, …) or client event
   * (`state`, …) gets its typed payload. Any other name is a server frame
   * type this client does not know yet (the platform adds some, such as
   * `channel_update`, without a client release): its listener gets the
   * frame's `data` as sent, an object to check before use.
   */
  on<K extends ClientEventType>(type: K, listener: Listener<K>): () => void;
  on(type: string, listener: UnknownListener): () => void;
  on(type: string, listener: (data: never) => void): () => void {
    return this.events.on(type, listener);
  }

  /** Listens to the next event of a type only. */
  once<K extends ClientEventType>(type: K, listener: Listener<K>): () => void;
  once(type: string, listener: UnknownListener): () => void;
  once(type: string, listener: (data: never) => void): () => void {
    return this.events.once(type, listener);
  }

  /** Removes a listener. */
  off<K extends ClientEventType>(type: K, listener: Listener<K>): void;
  off(type: string, listener: UnknownListener): void;
  off(type: string, listener: (data: never) => void): void {
    this.events.off(type, listener);
  }

  /**
   * Starts connecting: the first time, or again after the client stopped
   * (`close()`, a revoked session after signing in again, …); the channels
   * wanted before are subscribed again. The first attempt starts on the
   * next turn of the event loop, so a `close()` right after (React
   * StrictMode's mount, unmount, mount) opens nothing. Does nothing while
   * connecting or connected. Throws a `TypeError` when there is no
   * WebSocket (Node.js 20 without `options.WebSocket`).
   */
  connect(): void {
    if (this._state !== "idle" && this._state !== "closed") return;
    if (!this.WS) {
      const WS = (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
      if (!WS) throw new TypeError("OcvrClient: no global WebSocket; pass options.WebSocket (Node.js 20: the ws package)");
      this.WS = WS;
    }
    this.attempt = 0;
    this.invalidTickets = 0;
    this.revoked = undefined;
    this.watchOnline();
    this.setState("connecting");
    if ((this._state as ConnectionState) !== "connecting") return; // a state listener closed the client
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      if (this._state === "connecting" && this.ws === undefined) void this.open();
    }, 0);
  }

  /**
   * The channel's {@link Subscription}: its state, its events, subscribe and
   * unsubscribe. The same object for the same id for the client's life;
   * getting it subscribes nothing.
   */
  channel(channelId: string): Subscription {
    let sub = this.subs.get(channelId);
    if (!sub) {
      sub = new Subscription(
        {
          subscribe: (ch, o) => this.subscribe(ch, o),
          unsubscribe: (ch) => this.unsubscribe(ch),
          typing: (ch) => this.typing(ch),
          cursor: (ch) => this.cursors.get(ch),
        },
        channelId,
      );
      this.subs.set(channelId, sub);
      this.syncSub(channelId);
    }
    return sub;
  }

  /**
   * Subscribes to a channel, now and after every reconnect. Resolves once the
   * server confirms (`subscribed`: events published from then on are
   * delivered); waits for the connection if it is not open. Rejects with an
   * {@link OcvrError} carrying the server's code (`NOT_MEMBER`,
   * `CHANNEL_NOT_FOUND`, …) and `channelId` when the server refuses, in which
   * case the channel is dropped; with `TIMEOUT` when no answer came within
   * `subscribeTimeout` (the channel stays wanted and is subscribed once the
   * connection allows); or with `CLOSED` when the client stops or is
   * stopped (the channel stays wanted: the next `connect()` subscribes it).
   * (`UNAVAILABLE`, the gateway's backplane briefly out of reach, is
   * retried after 1–2 s.) Connects an idle client, unless `autoConnect:
   * false`. `client.channel(channelId)` gives the channel's
   * {@link Subscription} (state, events).
   */
  subscribe(channelId: string, options?: SubscribeOptions): Promise<void> {
    if (!CHANNEL_ID.test(channelId)) {
      // The gateway would refuse it (INVALID_MESSAGE); nothing is sent.
      const err = new OcvrError("INVALID_MESSAGE", `invalid channel id ${JSON.stringify(channelId)}: it must match ${CHANNEL_ID.source}`, { channelId });
      this.subs.get(channelId)?._emit("error", err);
      return Promise.reject(err);
    }
    this.wanted.add(channelId);
    this.syncSub(channelId);
    if (this.live.has(channelId)) return Promise.resolve();
    if (this._state === "closed") {
      return Promise.reject(new OcvrError("CLOSED", "the client is closed: the channel is subscribed at the next connect()", { channelId }));
    }
    let p = this.pendingSubs.get(channelId);
    if (!p) {
      p = pending();
      this.pendingSubs.set(channelId, p);
      if (this.wsOpen && !this.inflight.has(channelId)) this.sendSubscribe(channelId);
    }
    if (this._state === "idle" && this.opts.autoConnect !== false) {
      try {
        this.connect();
      } catch (e) {
        return Promise.reject(e); // no WebSocket: the channel stays wanted for a later connect()
      }
    }
    return this.withTimeout(channelId, p.promise, options?.timeout ?? this.subscribeTimeout);
  }

  /** Rejects with TIMEOUT after ms (0: never), and tells the channel's subscription. */
  private withTimeout(channelId: string, promise: Promise<void>, ms: number): Promise<void> {
    if (!(ms > 0) || !Number.isFinite(ms)) return promise;
    return new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => {
        const err = subscribeTimeoutError(channelId, ms);
        reject(err);
        this.subs.get(channelId)?._emit("error", err);
      }, ms);
      promise.then(
        () => {
          clearTimeout(t);
          resolve();
        },
        (e: unknown) => {
          clearTimeout(t);
          reject(e);
        },
      );
    });
  }

  /**
   * Unsubscribes from a channel (also for future reconnects). Resolves once
   * the server confirms, or at once when the channel is not subscribed on an
   * open connection.
   */
  unsubscribe(channelId: string): Promise<void> {
    const was = this.wanted.delete(channelId);
    this.cursors.delete(channelId);
    const sub = this.pendingSubs.get(channelId);
    if (sub) {
      this.pendingSubs.delete(channelId);
      sub.reject(new OcvrError("CLOSED", `unsubscribed from ${channelId} before the subscription completed`, { channelId }));
    }
    const live = this.live.has(channelId);
    this.live.delete(channelId);
    // A subscribe sent and not answered is superseded: subscribing again
    // sends a new one (after the unsubscribe, in order on the socket).
    this.inflight.delete(channelId);
    if (was) this.endSub(channelId, { reason: "client" });
    if (!this.wsOpen || (!live && !sub)) return Promise.resolve();
    let p = this.pendingUnsubs.get(channelId);
    if (p) return p.promise;
    p = pending();
    this.pendingUnsubs.set(channelId, p);
    this.send({ type: "unsubscribe", data: { channel_id: channelId } });
    return p.promise;
  }

  /**
   * Tells the channel's other members that the user is typing. Call it on
   * every keystroke: it sends at most one `typing` per channel per
   * `typingThrottle` (3 s) and only on a subscribed channel of an open
   * connection. Returns whether a frame was sent.
   */
  typing(channelId: string): boolean {
    if (!this.wsOpen || !this.live.has(channelId)) return false;
    const now = Date.now();
    const last = this.lastTyping.get(channelId);
    if (last !== undefined && now - last < this.typingThrottle) return false;
    this.lastTyping.set(channelId, now);
    this.send({ type: "typing", data: { channel_id: channelId } });
    return true;
  }

  /**
   * Closes the connection (1000) and stops the client (until `connect()`): no more
   * reconnects, pending subscribes reject with `CLOSED`, the `closed` event
   * fires with reason `client`. Resolves once the socket has closed (at most
   * ~2 s).
   */
  close(): Promise<void> {
    if (this._state === "closed") return Promise.resolve();
    const ws = this.ws;
    this.stop({ reason: "client" });
    if (!ws || (ws.readyState !== OPEN && ws.readyState !== CONNECTING)) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const t = setTimeout(resolve, 2000);
      ws.onclose = () => {
        clearTimeout(t);
        resolve();
      };
      try {
        ws.close(CloseCode.NORMAL, "client closed");
      } catch {
        clearTimeout(t);
        resolve();
      }
    });
  }

  // --- internals ---

  private emit<K extends ClientEventType>(type: K, data: ClientEventMap[K]): void {
    this.emitAny(type, data);
  }

  private emitAny(type: string, data: unknown): void {
    this.events.emit(type, data);
  }

  private setState(state: ConnectionState): void {
    if (state === this._state) return;
    const previous = this._state;
    this._state = state;
    this.emit("state", { state, previous });
  }

  private send(frame: { type: string; data?: unknown }): void {
    const ws = this.ws;
    if (!ws || ws.readyState !== OPEN) return;
    try {
      ws.send(JSON.stringify(frame));
    } catch {
      // The socket is closing; onclose handles it.
    }
  }

  /**
   * Sends a subscribe: with the channel's cursor when the channel was
   * subscribed before and the socket was opened with a resume token.
   */
  private sendSubscribe(ch: string): void {
    const data: Subscribe = { channel_id: ch };
    const cur = this.cursors.get(ch);
    if (cur !== undefined) {
      this.resubs.add(ch);
      if (this.resumeAsked) data.seq = cur;
    }
    this.inflight.add(ch);
    this.send({ type: "subscribe", data });
  }

  private async open(): Promise<void> {
    this.setState("connecting");
    if (this._state !== "connecting") return; // a state listener closed the client
    const gen = ++this.gen;
    const abort = new AbortController();
    this.abort = abort;
    this.clearTimers();
    this.connectTimer = setTimeout(() => {
      if (gen !== this.gen) return;
      abort.abort();
      if (this.ws) this.drop(this.ws, "no ready within the connect timeout");
      else this.retry(new OcvrError("TICKET_FAILED", "ticket request timed out"));
    }, this.connectTimeout);

    let ticket: string;
    try {
      ticket = await this.getTicket(abort.signal);
    } catch (e) {
      if (gen !== this.gen) return;
      if (isUnauthorized(e)) {
        const err =
          e instanceof OcvrError ? e : new OcvrError("UNAUTHORIZED", `ticket request: ${errorMessage(e)}`, { status: 401, cause: e });
        this.stop({ reason: "unauthorized", error: err });
        return;
      }
      this.retry(e instanceof Error ? e : new Error(String(e)), capHint((e as { retryAfter?: unknown } | null)?.retryAfter));
      return;
    }
    if (gen !== this.gen) return;

    const i = this.refusedUrls.pick(this.turn);
    this.turn = i + 1;
    this.urlIndex = i;
    const url = this.urls[i] as string;
    let query = `ticket=${encodeURIComponent(ticket)}`;
    const token = this.resumeToken;
    if (token !== undefined) query += `&resume=${encodeURIComponent(token)}&seq=${this.userCursor ?? 0}`;
    let ws: WebSocketLike;
    try {
      ws = new (this.WS as WebSocketConstructor)(`${url}${url.includes("?") ? "&" : "?"}${query}`);
    } catch (e) {
      this.retry(e instanceof Error ? e : new Error(String(e)));
      return;
    }
    this.ws = ws;
    this.wsUrl = url;
    this.wsOpen = false;
    this.resumeAsked = token !== undefined;
    this.resubs.clear();
    this.floors.clear();
    this.userFloor = undefined;
    this.inflight.clear();
    this.lastError = undefined;
    this.refused = undefined;
    this.watchRefusal(ws);
    ws.onmessage = (ev: { data: unknown }) => this.onMessage(ws, ev.data);
    ws.onclose = (ev: { code?: number; reason?: string }) => this.onSocketClose(ws, ev.code ?? CloseCode.ABNORMAL, ev.reason ?? "");
    ws.onerror = ignore; // onclose follows with the code
  }

  /**
   * In Node.js the `ws` package shows the gateway's HTTP answer when it
   * refuses the upgrade (429, 503 with Retry-After); browsers hide it (the
   * socket just closes with 1006). The socket is then aborted as ws would
   * have done, and its close is retried after the hint.
   */
  private watchRefusal(ws: WebSocketLike): void {
    const on = (ws as { on?: unknown }).on;
    if (typeof on !== "function") return;
    on.call(ws, "unexpected-response", (_req: unknown, res: { statusCode?: number; headers?: Record<string, string | string[] | undefined> }) => {
      if (ws === this.ws) {
        const h = res?.headers?.["retry-after"];
        this.refused = { status: res?.statusCode ?? 0, retryAfter: headerRetryAfter(Array.isArray(h) ? h[0] : h) };
      }
      const w = ws as { terminate?: () => void };
      try {
        if (typeof w.terminate === "function") w.terminate();
        else ws.close();
      } catch {
        // ignore: the close follows
      }
    });
  }

  private async getTicket(signal: AbortSignal): Promise<string> {
    if (this.opts.getTicket) return this.opts.getTicket({ signal, attempt: this.attempt });
    const t = this.opts.token;
    const token = typeof t === "function" ? await t() : (t as string);
    const o: { signal: AbortSignal; fetch?: FetchLike } = { signal };
    if (this.opts.fetch) o.fetch = this.opts.fetch;
    return fetchTicket(this.opts.ticketUrl as string, token, o);
  }

  private onMessage(ws: WebSocketLike, raw: unknown): void {
    if (ws !== this.ws) return;
    if (typeof raw !== "string") return; // the server sends text frames only
    let frame: ServerFrame;
    try {
      frame = JSON.parse(raw) as ServerFrame;
    } catch {
      return;
    }
    if (!frame || typeof frame !== "object" || typeof frame.type !== "string") return;
    if (frame.seq !== undefined && this.isDuplicate(frame)) return;
    const data = (frame.data ?? {}) as never;
    if (frame.data === undefined) (frame as { data: unknown }).data = data;
    let continuity: ContinuityEvent | undefined;
    switch (frame.type) {
      case "ready":
        continuity = this.onReady(ws, frame.data);
        break;
      case "heartbeat_ack":
        this.ackPending = false;
        break;
      case "subscribed": {
        const ch = frame.data.channel_id;
        continuity = this.onSubscribed(frame.data);
        const p = this.pendingSubs.get(ch);
        if (p) {
          this.pendingSubs.delete(ch);
          p.resolve();
        }
        break;
      }
      case "unsubscribed":
        this.onUnsubscribed(frame.data);
        break;
      case "error":
        this.onError(frame.data);
        break;
      case "session_revoked":
        this.revoked = frame.data;
        break;
    }
    // Every type is an event by its name, known or not (the platform adds
    // types without a client release), except the client's own events.
    if ((SERVER_FRAME_TYPES as readonly string[]).includes(frame.type) || !CLIENT_EVENTS.has(frame.type)) {
      this.emitAny(frame.type, data);
    }
    this.emit("frame", frame as AnyServerFrame);
    if (ws !== this.ws) return; // a listener closed the client, or dropped the socket
    if (continuity) {
      this.emit("continuity", continuity);
      if (ws !== this.ws) return;
      if (continuity.scope === "user") {
        this.emit("connected", { ready: frame.data as Ready, url: this.wsUrl as string, reconnect: continuity.reconnect, resumed: continuity.resumed });
      } else {
        const { channelId, reconnect, resumed, seq } = continuity;
        this.subs.get(channelId)?._emit("subscribed", { channelId, reconnect, resumed, refetch: resumed !== true, seq } satisfies SubscribedEvent);
      }
      return;
    }
    // A channel's event goes to its subscription too (by the frame's
    // position, or the channel its data names).
    if (NOT_CHANNEL_EVENTS.has(frame.type)) return;
    const d = frame.data as { channel_id?: unknown };
    const ch = typeof frame.channel_id === "string" ? frame.channel_id : typeof d?.channel_id === "string" ? d.channel_id : undefined;
    if (ch !== undefined) this.subs.get(ch)?._dispatch(frame as AnyServerFrame);
  }

  /**
   * Whether a positioned event is a duplicate (at or below its
   * subscription's position on this socket: the newest event received, or
   * the cursor a resume started from), to drop; otherwise it moves the
   * subscription's cursor.
   */
  private isDuplicate(frame: ServerFrame): boolean {
    const seq = frame.seq;
    if (typeof seq !== "number" || !Number.isSafeInteger(seq) || seq < 0) return false;
    const ch = frame.channel_id;
    if (typeof ch === "string") {
      if (!this.wanted.has(ch)) return false; // unsubscribed meanwhile: no cursor kept
      const floor = this.floors.get(ch);
      if (floor !== undefined && seq <= floor) return true;
      this.floors.set(ch, seq);
      this.cursors.set(ch, Math.max(this.cursors.get(ch) ?? 0, seq));
      return false;
    }
    if (ch !== undefined) return false; // not a channel id: not a position this client understands
    if (this.userFloor !== undefined && seq <= this.userFloor) return true;
    this.userFloor = seq;
    this.userCursor = Math.max(this.userCursor ?? 0, seq);
    return false;
  }

  private onSubscribed(s: Subscribed): ChannelContinuity | undefined {
    const ch = s.channel_id;
    this.inflight.delete(ch);
    if (!this.wanted.has(ch)) return undefined;
    const seq = typeof s.seq === "number" && Number.isSafeInteger(s.seq) && s.seq >= 0 ? s.seq : 0;
    const cur = this.cursors.get(ch);
    if (this.live.has(ch)) {
      // A repeat: the subscription continues.
      this.cursors.set(ch, Math.max(cur ?? 0, seq));
      return undefined;
    }
    this.live.add(ch);
    this.syncSub(ch);
    const reconnect = this.resubs.delete(ch);
    const resumed = reconnect ? s.resumed === true && this.resumeAsked : undefined;
    // Resumed: the missed events follow from our cursor (the server echoes
    // it); anything at or below it is a duplicate. Otherwise the server's
    // cursor replaces ours (the stream may have been recreated), unless
    // events of the channel came first on this socket (live ones, newer
    // than the cursor the server read).
    const early = this.floors.has(ch);
    const next = cur !== undefined && (resumed === true || early) ? Math.max(cur, seq) : seq;
    this.cursors.set(ch, next);
    if (resumed === true) this.floors.set(ch, Math.max(this.floors.get(ch) ?? 0, next));
    return { scope: "channel", channelId: ch, reconnect, resumed, seq: next };
  }

  private onReady(ws: WebSocketLike, ready: Ready): UserContinuity {
    if (this.connectTimer !== undefined) clearTimeout(this.connectTimer);
    this.connectTimer = undefined;
    this.wsOpen = true;
    this._ready = ready;
    this.attempt = 0;
    this.invalidTickets = 0;
    this.live.clear();
    this.syncSubs();
    // Continuity: the user's own events resumed only if the server says so
    // for the token of this session; a new token for the next reconnect.
    const reconnect = this.hadReady;
    const sameSession = this.sessionId === undefined || this.sessionId === ready.session_id;
    const resumed = reconnect ? ready.resumed === true && this.resumeAsked && sameSession : undefined;
    const seq = typeof ready.seq === "number" && Number.isSafeInteger(ready.seq) && ready.seq >= 0 ? ready.seq : 0;
    this.userCursor = resumed === true ? Math.max(this.userCursor ?? 0, seq) : seq;
    // After a resume, anything at or below the cursor is a duplicate; after
    // a fresh start every event of this socket is new.
    this.userFloor = resumed === true ? this.userCursor : undefined;
    this.resumeToken = typeof ready.resume_token === "string" && ready.resume_token !== "" ? ready.resume_token : undefined;
    this.sessionId = ready.session_id;
    this.hadReady = true;
    const continuity: UserContinuity = { scope: "user", reconnect, resumed, seq: this.userCursor };
    this.setState("open");
    if (ws !== this.ws) return continuity; // a state listener closed the client
    // Resubscribe every wanted channel (and send the subscribes that were
    // waiting for the connection), then let the app see ready.
    for (const ch of this.wanted) this.sendSubscribe(ch);
    const every = this.opts.heartbeatInterval ?? ready.heartbeat_interval;
    if (every > 0) {
      this.ackPending = false;
      this.heartbeatTimer = setInterval(() => {
        if (ws !== this.ws) return;
        if (this.ackPending) {
          this.drop(ws, "no heartbeat_ack within the heartbeat interval");
          return;
        }
        this.ackPending = true;
        this.send({ type: "heartbeat" });
      }, every);
    }
    return continuity;
  }

  private onUnsubscribed(u: Unsubscribed): void {
    const ch = u.channel_id;
    this.live.delete(ch);
    this.inflight.delete(ch);
    if (u.reason !== "client") {
      // removed or deleted: the server ended it; never resubscribe.
      const was = this.wanted.delete(ch);
      this.cursors.delete(ch);
      const err = new OcvrError(u.reason === "deleted" ? "CHANNEL_NOT_FOUND" : "NOT_MEMBER", `subscription to ${ch} ended: ${u.reason}`, { channelId: ch });
      const sub = this.pendingSubs.get(ch);
      if (sub) {
        this.pendingSubs.delete(ch);
        sub.reject(err);
      }
      if (was) this.endSub(ch, { reason: u.reason === "deleted" ? "deleted" : "removed", error: err });
    } else {
      // Our unsubscribe; wanted again meanwhile: subscribe again.
      if (this.wanted.has(ch) && this.wsOpen && !this.inflight.has(ch)) this.sendSubscribe(ch);
      this.syncSub(ch);
    }
    const p = this.pendingUnsubs.get(ch);
    if (p) {
      this.pendingUnsubs.delete(ch);
      p.resolve();
    }
  }

  private onError(e: ErrorData): void {
    this.lastError = e;
    const ch = e.channel_id;
    if (ch === undefined) return;
    if (e.code === "NOT_SUBSCRIBED") {
      this.live.delete(ch);
      this.syncSub(ch);
      const p = this.pendingUnsubs.get(ch);
      if (p) {
        this.pendingUnsubs.delete(ch);
        p.resolve();
      }
      return;
    }
    // Only a code that answers a subscribe (pkg/protocol/policy.json) is
    // about the subscription; RATE_LIMITED is about a typing frame. A code
    // this client does not know answers the subscribe in flight, if any.
    const policy = errorPolicy(e.code);
    if (policy ? !policy.subscribe : !this.inflight.has(ch)) return;
    this.inflight.delete(ch);
    if (!this.wanted.has(ch) || this.live.has(ch)) return;
    if (policy?.retryable) {
      // The gateway could not reach its backplane: ask again in 1–2 s.
      this.subs.get(ch)?._emit("error", new OcvrError(e.code, e.message, { channelId: ch }));
      if (this.subRetries.has(ch)) return;
      const ws = this.ws;
      this.subRetries.set(
        ch,
        setTimeout(() => {
          this.subRetries.delete(ch);
          if (ws === this.ws && this.wanted.has(ch) && !this.live.has(ch) && !this.inflight.has(ch)) this.sendSubscribe(ch);
        }, 1000 + Math.random() * 1000),
      );
      return;
    }
    // A refused subscribe (NOT_MEMBER, CHANNEL_NOT_FOUND, …), fresh or a
    // resubscription after a reconnect: drop the channel.
    this.wanted.delete(ch);
    this.cursors.delete(ch);
    this.resubs.delete(ch);
    const err = new OcvrError(e.code, e.message, { channelId: ch });
    const p = this.pendingSubs.get(ch);
    if (p) {
      this.pendingSubs.delete(ch);
      p.reject(err);
    }
    this.endSub(ch, { reason: "refused", error: err });
  }

  /** Moves a channel's subscription to the state its sets say. */
  private syncSub(ch: string): void {
    this.subs.get(ch)?._setState(this.live.has(ch) ? "subscribed" : this.wanted.has(ch) ? "subscribing" : "unsubscribed");
  }

  private syncSubs(): void {
    for (const ch of this.subs.keys()) this.syncSub(ch);
  }

  /** A subscription ended (the app, or the server): state, then its `unsubscribed` event. */
  private endSub(ch: string, ev: SubscriptionEndEvent): void {
    this.syncSub(ch);
    this.subs.get(ch)?._emit("unsubscribed", ev);
  }

  /** Abandons a socket that looks dead and reconnects. */
  private drop(ws: WebSocketLike, why: string): void {
    if (ws !== this.ws) return;
    detach(ws);
    try {
      ws.close(CloseCode.CLIENT_DEAD_CONNECTION, "dead connection");
    } catch {
      // ignore
    }
    this.onSocketClose(ws, CloseCode.CLIENT_DEAD_CONNECTION, why);
  }

  private onSocketClose(ws: WebSocketLike, code: number, reason: string): void {
    if (ws !== this.ws) return;
    const wasOpen = this.wsOpen;
    const refused = this.refused;
    this.refused = undefined;
    this.ws = undefined;
    this.wsOpen = false;
    this.live.clear();
    this.clearTimers();
    this.syncSubs();
    this.emit("disconnect", { code, reason, wasOpen });
    if (this._state === "closed") return;
    // The close-code policy (pkg/protocol/policy.json): stop, new_ticket or reconnect.
    const action = closeAction(code);
    if (action === "stop") {
      this.stop(this.stopEvent(code, reason));
      return;
    }
    if (action === "new_ticket") {
      // Never resume after a refused ticket: the next connection starts
      // afresh (and says resumed: false for what was subscribed).
      this.resumeToken = undefined;
      if (++this.invalidTickets >= this.maxInvalid) {
        this.stop({
          reason: "invalid_ticket",
          code,
          error: new OcvrError("INVALID_TICKET", `the gateway refused ${this.invalidTickets} fresh tickets in a row${this.lastError ? ": " + this.lastError.message : ""}`, { closeCode: code }),
        });
        return;
      }
    }
    if (refused) {
      const details: { status: number; retryAfter?: number } = { status: refused.status };
      if (refused.retryAfter !== undefined) details.retryAfter = refused.retryAfter;
      const pod = refused.status === 429 || refused.status === 503;
      this.retry(new OcvrError("UPGRADE_REFUSED", `the gateway answered HTTP ${refused.status} instead of the upgrade`, details), refused.retryAfter, pod);
      return;
    }
    // The gateway's 1013 says when to come back in its reason.
    const hint = reasonRetryAfter(reason);
    const details: { closeCode: number; retryAfter?: number } = { closeCode: code };
    if (hint !== undefined) details.retryAfter = hint;
    this.retry(new OcvrError(`CLOSE_${code}`, `connection closed with ${code}${reason ? " (" + reason + ")" : ""}`, details), hint, code === CloseCode.TRY_AGAIN_LATER);
  }

  /** The `closed` event of a close code the policy stops after (1000, 4003, 4010). */
  private stopEvent(code: number, reason: string): ClosedEvent {
    switch (code) {
      case CloseCode.SESSION_REVOKED:
        return {
          reason: "session_revoked",
          code,
          error: new OcvrError("SESSION_REVOKED", `session revoked${this.revoked ? ": " + this.revoked.reason : ""}`, { closeCode: code }),
        };
      case CloseCode.TOO_MANY_CONNECTIONS:
        return { reason: "too_many_connections", code, error: new OcvrError("TOO_MANY_CONNECTIONS", "too many connections for this user", { closeCode: code }) };
      default:
        return { reason: "server_closed", code, error: new OcvrError("SERVER_CLOSED", `the server closed the connection${reason ? ": " + reason : ""}`, { closeCode: code }) };
    }
  }

  /**
   * Schedules the next attempt: exponential backoff with full jitter, or the
   * server's hint plus jitter ({@link reconnectDelay}). `pod`: the current
   * gateway refused (1013, HTTP 429/503), which is about its pod only:
   * with several URLs that one is held for the hint (or the backoff delay)
   * and another is tried at once ({@link RefusedUrls}).
   */
  private retry(error?: Error, hint?: number, pod = false): void {
    if (this._state === "closed") return;
    this.gen++;
    this.clearTimers();
    if (this.ws) {
      const ws = this.ws;
      this.ws = undefined;
      detach(ws);
      try {
        ws.close(CloseCode.CLIENT_DEAD_CONNECTION, "retry");
      } catch {
        // ignore
      }
    }
    const retryAfter = capHint(hint);
    const delay =
      pod && this.urls.length > 1
        ? this.refusedUrls.refuse(this.urlIndex, retryAfter ?? reconnectDelay(this.attempt, this.base, this.max))
        : reconnectDelay(this.attempt, this.base, this.max, retryAfter);
    this.attempt++; // a hint does not reset the count
    this.setState("reconnecting");
    if (this._state !== "reconnecting") return; // a state listener closed the client
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      if (this._state === "reconnecting") void this.open();
    }, delay);
    const ev: ReconnectingEvent = { attempt: this.attempt, delay };
    if (retryAfter !== undefined) ev.retryAfter = retryAfter;
    if (error) ev.error = error;
    this.emit("reconnecting", ev);
  }

  /**
   * In a browser, the `online` event ends a reconnect's wait: the network
   * is back, so the next attempt goes at once instead of after the backoff.
   */
  private watchOnline(): void {
    if (this.onlineOff) return;
    const g = globalThis as { addEventListener?: (t: string, fn: () => void) => void; removeEventListener?: (t: string, fn: () => void) => void };
    if (typeof g.addEventListener !== "function") return;
    const fn = (): void => {
      if (this._state !== "reconnecting") return;
      if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
      this.retryTimer = undefined;
      this.attempt = 0;
      void this.open();
    };
    g.addEventListener("online", fn);
    this.onlineOff = () => g.removeEventListener?.("online", fn);
  }

  private clearTimers(): void {
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
    if (this.connectTimer !== undefined) clearTimeout(this.connectTimer);
    if (this.heartbeatTimer !== undefined) clearInterval(this.heartbeatTimer);
    this.retryTimer = this.connectTimer = this.heartbeatTimer = undefined;
    for (const t of this.subRetries.values()) clearTimeout(t);
    this.subRetries.clear();
  }

  /** Stops until connect(): the channels stay wanted, continuity is forgotten. */
  private stop(ev: ClosedEvent): void {
    if (this._state === "closed") return;
    this.gen++;
    this.clearTimers();
    this.abort?.abort();
    this.abort = undefined;
    const ws = this.ws;
    this.ws = undefined;
    this.wsOpen = false;
    if (ws) detach(ws);
    const err = ev.error ?? new OcvrError("CLOSED", "the client is closed");
    for (const [ch, p] of this.pendingSubs) p.reject(err.channelId ? err : new OcvrError(err.code, err.message, { channelId: ch, cause: err }));
    for (const p of this.pendingUnsubs.values()) p.resolve();
    this.pendingSubs.clear();
    this.pendingUnsubs.clear();
    // The channels stay wanted (subscribing): the next connect() subscribes
    // them again.
    this.live.clear();
    this.syncSubs();
    this.onlineOff?.();
    this.onlineOff = undefined;
    this.lastTyping.clear();
    this.inflight.clear();
    // Continuity ends with the client: a later connect() starts afresh.
    this.cursors.clear();
    this.resubs.clear();
    this.floors.clear();
    this.userFloor = undefined;
    this.resumeToken = undefined;
    this.userCursor = undefined;
    this.sessionId = undefined;
    this.hadReady = false;
    this.resumeAsked = false;
    this.setState("closed");
    this.emit("closed", ev);
  }
}

function ignore(): void {}

/**
 * Stops listening to a socket being abandoned. The error handler stays (a
 * no-op): the ws package throws an error event that has no listener, and
 * closing a socket that is still connecting emits one.
 */
function detach(ws: WebSocketLike): void {
  ws.onmessage = null;
  ws.onclose = null;
  ws.onerror = ignore;
}

function pending(): Pending {
  let resolve!: () => void;
  let reject!: (e: OcvrError) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // A subscribe whose promise nobody awaits must not be an unhandled rejection.
  promise.catch(() => {});
  return { promise, resolve, reject };
}

function isUnauthorized(e: unknown): boolean {
  const x = e as { status?: unknown; code?: unknown } | null;
  return !!x && (x.status === 401 || x.code === "UNAUTHORIZED");
}
