"use strict";
var __defProp = Object.defineProperty;
var __getOwnPropDesc = Object.getOwnPropertyDescriptor;
var __getOwnPropNames = Object.getOwnPropertyNames;
var __hasOwnProp = Object.prototype.hasOwnProperty;
var __export = (target, all) => {
  for (var name in all)
    __defProp(target, name, { get: all[name], enumerable: true });
};
var __copyProps = (to, from, except, desc) => {
  if (from && typeof from === "object" || typeof from === "function") {
    for (let key of __getOwnPropNames(from))
      if (!__hasOwnProp.call(to, key) && key !== except)
        __defProp(to, key, { get: () => from[key], enumerable: !(desc = __getOwnPropDesc(from, key)) || desc.enumerable });
  }
  return to;
};
var __toCommonJS = (mod) => __copyProps(__defProp({}, "__esModule", { value: true }), mod);
var client_exports = {};
__export(client_exports, {
  OcvrClient: () => OcvrClient
});
module.exports = __toCommonJS(client_exports);
var import_errors = require("./errors.js");
var import_protocol = require("./protocol.js");
var import_retry = require("./retry.js");
var import_ticket = require("./ticket.js");
var import_subscription = require("./subscription.js");
var import_policy = require("./policy.js");
var import_emitter = require("./emitter.js");
const CLIENT_EVENTS = /* @__PURE__ */ new Set(["frame", "continuity", "connected", "state", "disconnect", "reconnecting", "closed"]);
const CHANNEL_ID = /^[A-Za-z0-9_-]{1,64}$/;
const NOT_CHANNEL_EVENTS = /* @__PURE__ */ new Set(["ready", "heartbeat_ack", "subscribed", "unsubscribed", "error", "session_revoked", "notification", "presence_update"]);
const OPEN = 1;
const CONNECTING = 0;
class OcvrClient {
  urls;
  opts;
  WS;
  base;
  max;
  maxInvalid;
  connectTimeout;
  typingThrottle;
  subscribeTimeout;
  /** Removes the browser's `online` listener. */
  onlineOff;
  /** Every channel object handed out by channel(), for the client's life. */
  subs = /* @__PURE__ */ new Map();
  events = new import_emitter.Emitter();
  _state = "idle";
  _ready;
  ws;
  wsUrl;
  wsOpen = false;
  // ready received on ws
  gen = 0;
  // bumped per attempt and on close: stale callbacks check it
  attempt = 0;
  invalidTickets = 0;
  turn = 0;
  /** The index in urls of the current attempt's gateway. */
  urlIndex = 0;
  /** Gateway URLs held after their pod refused (with several URLs). */
  refusedUrls;
  abort;
  retryTimer;
  connectTimer;
  heartbeatTimer;
  ackPending = false;
  revoked;
  lastError;
  /** The gateway's HTTP answer instead of the upgrade on the current socket (the `ws` package tells it). */
  refused;
  /** Channels wanted: subscribed now if open, and again after every reconnect. */
  wanted = /* @__PURE__ */ new Set();
  /** Channels subscribed on the current socket (`subscribed` received). */
  live = /* @__PURE__ */ new Set();
  pendingSubs = /* @__PURE__ */ new Map();
  pendingUnsubs = /* @__PURE__ */ new Map();
  lastTyping = /* @__PURE__ */ new Map();
  /** Subscribes refused with UNAVAILABLE, to send again shortly. */
  subRetries = /* @__PURE__ */ new Map();
  /** Channels whose subscribe was sent on the current socket and not answered yet. */
  inflight = /* @__PURE__ */ new Set();
  // Continuity (gateway/README.md "Continuity"). Kept across reconnects,
  // forgotten when the client stops.
  /** The resume token of the newest `ready`. */
  resumeToken;
  /** The cursor of the user's own events (undefined before the first `ready`). */
  userCursor;
  /** The session of the previous `ready`: a `ready` of another one resumes nothing. */
  sessionId;
  /** A `ready` was received since the client (re)started: the next one is a reconnect. */
  hadReady = false;
  /** The cursor of every wanted channel that has been subscribed (or got a positioned event). */
  cursors = /* @__PURE__ */ new Map();
  /** Whether the current socket was opened with a resume token. */
  resumeAsked = false;
  /** Channels resubscribed on the current socket after being subscribed on an earlier one. */
  resubs = /* @__PURE__ */ new Set();
  /**
   * Per subscription on the current socket, the position at or below which
   * an event is a duplicate: the newest one received on this socket, or the
   * cursor a resume started from. Not the cursor of a fresh start: the
   * server's events on a new socket are new.
   */
  floors = /* @__PURE__ */ new Map();
  userFloor;
  constructor(options) {
    this.opts = options;
    this.urls = typeof options.url === "string" ? [options.url] : [...options.url];
    if (this.urls.length === 0) throw new TypeError("OcvrClient: options.url is required");
    this.refusedUrls = new import_retry.RefusedUrls(this.urls.length);
    if (!options.getTicket && (!options.ticketUrl || options.token === void 0)) {
      throw new TypeError("OcvrClient: pass ticketUrl and token, or getTicket");
    }
    this.WS = options.WebSocket;
    this.base = options.backoff?.base ?? 500;
    this.max = options.backoff?.max ?? 3e4;
    this.maxInvalid = options.maxInvalidTickets ?? 3;
    this.connectTimeout = options.connectTimeout ?? 1e4;
    this.typingThrottle = options.typingThrottle ?? 3e3;
    this.subscribeTimeout = options.subscribeTimeout ?? 5e3;
  }
  /** The current state. */
  get state() {
    return this._state;
  }
  /** The `ready` of the current connection (connection, user and session ids), or undefined when not open. */
  get ready() {
    return this._state === "open" ? this._ready : void 0;
  }
  /** The gateway URL of the current connection (without the ticket), or undefined when not open. */
  get url() {
    return this._state === "open" ? this.wsUrl : void 0;
  }
  /** The channels the client keeps subscribed (across reconnects). */
  get channels() {
    return [...this.wanted];
  }
  /** Whether `channelId` is subscribed on the current connection (`subscribed` received). */
  isSubscribed(channelId) {
    return this.live.has(channelId);
  }
  /**
   * A subscription's cursor: the position (`seq`) of its newest event, or
   * the one `ready` / `subscribed` gave; the client resumes from it after a
   * reconnect. Without `channelId`: the user's own events. Undefined when
   * the client holds none (not subscribed yet, or stopped).
   */
  cursor(channelId) {
    return channelId === void 0 ? this.userCursor : this.cursors.get(channelId);
  }
  on(type, listener) {
    return this.events.on(type, listener);
  }
  once(type, listener) {
    return this.events.once(type, listener);
  }
  off(type, listener) {
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
  connect() {
    if (this._state !== "idle" && this._state !== "closed") return;
    if (!this.WS) {
      const WS = globalThis.WebSocket;
      if (!WS) throw new TypeError("OcvrClient: no global WebSocket; pass options.WebSocket (Node.js 20: the ws package)");
      this.WS = WS;
    }
    this.attempt = 0;
    this.invalidTickets = 0;
    this.revoked = void 0;
    this.watchOnline();
    this.setState("connecting");
    if (this._state !== "connecting") return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = void 0;
      if (this._state === "connecting" && this.ws === void 0) void this.open();
    }, 0);
  }
  /**
   * The channel's {@link Subscription}: its state, its events, subscribe and
   * unsubscribe. The same object for the same id for the client's life;
   * getting it subscribes nothing.
   */
  channel(channelId) {
    let sub = this.subs.get(channelId);
    if (!sub) {
      sub = new import_subscription.Subscription(
        {
          subscribe: (ch, o) => this.subscribe(ch, o),
          unsubscribe: (ch) => this.unsubscribe(ch),
          typing: (ch) => this.typing(ch),
          cursor: (ch) => this.cursors.get(ch)
        },
        channelId
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
  subscribe(channelId, options) {
    if (!CHANNEL_ID.test(channelId)) {
      const err = new import_errors.OcvrError("INVALID_MESSAGE", `invalid channel id ${JSON.stringify(channelId)}: it must match ${CHANNEL_ID.source}`, { channelId });
      this.subs.get(channelId)?._emit("error", err);
      return Promise.reject(err);
    }
    this.wanted.add(channelId);
    this.syncSub(channelId);
    if (this.live.has(channelId)) return Promise.resolve();
    if (this._state === "closed") {
      return Promise.reject(new import_errors.OcvrError("CLOSED", "the client is closed: the channel is subscribed at the next connect()", { channelId }));
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
        return Promise.reject(e);
      }
    }
    return this.withTimeout(channelId, p.promise, options?.timeout ?? this.subscribeTimeout);
  }
  /** Rejects with TIMEOUT after ms (0: never), and tells the channel's subscription. */
  withTimeout(channelId, promise, ms) {
    if (!(ms > 0) || !Number.isFinite(ms)) return promise;
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        const err = (0, import_subscription.subscribeTimeoutError)(channelId, ms);
        reject(err);
        this.subs.get(channelId)?._emit("error", err);
      }, ms);
      promise.then(
        () => {
          clearTimeout(t);
          resolve();
        },
        (e) => {
          clearTimeout(t);
          reject(e);
        }
      );
    });
  }
  /**
   * Unsubscribes from a channel (also for future reconnects). Resolves once
   * the server confirms, or at once when the channel is not subscribed on an
   * open connection.
   */
  unsubscribe(channelId) {
    const was = this.wanted.delete(channelId);
    this.cursors.delete(channelId);
    const sub = this.pendingSubs.get(channelId);
    if (sub) {
      this.pendingSubs.delete(channelId);
      sub.reject(new import_errors.OcvrError("CLOSED", `unsubscribed from ${channelId} before the subscription completed`, { channelId }));
    }
    const live = this.live.has(channelId);
    this.live.delete(channelId);
    this.inflight.delete(channelId);
    if (was) this.endSub(channelId, { reason: "client" });
    if (!this.wsOpen || !live && !sub) return Promise.resolve();
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
  typing(channelId) {
    if (!this.wsOpen || !this.live.has(channelId)) return false;
    const now = Date.now();
    const last = this.lastTyping.get(channelId);
    if (last !== void 0 && now - last < this.typingThrottle) return false;
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
  close() {
    if (this._state === "closed") return Promise.resolve();
    const ws = this.ws;
    this.stop({ reason: "client" });
    if (!ws || ws.readyState !== OPEN && ws.readyState !== CONNECTING) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(resolve, 2e3);
      ws.onclose = () => {
        clearTimeout(t);
        resolve();
      };
      try {
        ws.close(import_protocol.CloseCode.NORMAL, "client closed");
      } catch {
        clearTimeout(t);
        resolve();
      }
    });
  }
  // --- internals ---
  emit(type, data) {
    this.emitAny(type, data);
  }
  emitAny(type, data) {
    this.events.emit(type, data);
  }
  setState(state) {
    if (state === this._state) return;
    const previous = this._state;
    this._state = state;
    this.emit("state", { state, previous });
  }
  send(frame) {
    const ws = this.ws;
    if (!ws || ws.readyState !== OPEN) return;
    try {
      ws.send(JSON.stringify(frame));
    } catch {
    }
  }
  /**
   * Sends a subscribe: with the channel's cursor when the channel was
   * subscribed before and the socket was opened with a resume token.
   */
  sendSubscribe(ch) {
    const data = { channel_id: ch };
    const cur = this.cursors.get(ch);
    if (cur !== void 0) {
      this.resubs.add(ch);
      if (this.resumeAsked) data.seq = cur;
    }
    this.inflight.add(ch);
    this.send({ type: "subscribe", data });
  }
  async open() {
    this.setState("connecting");
    if (this._state !== "connecting") return;
    const gen = ++this.gen;
    const abort = new AbortController();
    this.abort = abort;
    this.clearTimers();
    this.connectTimer = setTimeout(() => {
      if (gen !== this.gen) return;
      abort.abort();
      if (this.ws) this.drop(this.ws, "no ready within the connect timeout");
      else this.retry(new import_errors.OcvrError("TICKET_FAILED", "ticket request timed out"));
    }, this.connectTimeout);
    let ticket;
    try {
      ticket = await this.getTicket(abort.signal);
    } catch (e) {
      if (gen !== this.gen) return;
      if (isUnauthorized(e)) {
        const err = e instanceof import_errors.OcvrError ? e : new import_errors.OcvrError("UNAUTHORIZED", `ticket request: ${(0, import_ticket.errorMessage)(e)}`, { status: 401, cause: e });
        this.stop({ reason: "unauthorized", error: err });
        return;
      }
      this.retry(e instanceof Error ? e : new Error(String(e)), (0, import_retry.capHint)(e?.retryAfter));
      return;
    }
    if (gen !== this.gen) return;
    const i = this.refusedUrls.pick(this.turn);
    this.turn = i + 1;
    this.urlIndex = i;
    const url = this.urls[i];
    let query = `ticket=${encodeURIComponent(ticket)}`;
    const token = this.resumeToken;
    if (token !== void 0) query += `&resume=${encodeURIComponent(token)}&seq=${this.userCursor ?? 0}`;
    let ws;
    try {
      ws = new this.WS(`${url}${url.includes("?") ? "&" : "?"}${query}`);
    } catch (e) {
      this.retry(e instanceof Error ? e : new Error(String(e)));
      return;
    }
    this.ws = ws;
    this.wsUrl = url;
    this.wsOpen = false;
    this.resumeAsked = token !== void 0;
    this.resubs.clear();
    this.floors.clear();
    this.userFloor = void 0;
    this.inflight.clear();
    this.lastError = void 0;
    this.refused = void 0;
    this.watchRefusal(ws);
    ws.onmessage = (ev) => this.onMessage(ws, ev.data);
    ws.onclose = (ev) => this.onSocketClose(ws, ev.code ?? import_protocol.CloseCode.ABNORMAL, ev.reason ?? "");
    ws.onerror = ignore;
  }
  /**
   * In Node.js the `ws` package shows the gateway's HTTP answer when it
   * refuses the upgrade (429, 503 with Retry-After); browsers hide it (the
   * socket just closes with 1006). The socket is then aborted as ws would
   * have done, and its close is retried after the hint.
   */
  watchRefusal(ws) {
    const on = ws.on;
    if (typeof on !== "function") return;
    on.call(ws, "unexpected-response", (_req, res) => {
      if (ws === this.ws) {
        const h = res?.headers?.["retry-after"];
        this.refused = { status: res?.statusCode ?? 0, retryAfter: (0, import_retry.headerRetryAfter)(Array.isArray(h) ? h[0] : h) };
      }
      const w = ws;
      try {
        if (typeof w.terminate === "function") w.terminate();
        else ws.close();
      } catch {
      }
    });
  }
  async getTicket(signal) {
    if (this.opts.getTicket) return this.opts.getTicket({ signal, attempt: this.attempt });
    const t = this.opts.token;
    const token = typeof t === "function" ? await t() : t;
    const o = { signal };
    if (this.opts.fetch) o.fetch = this.opts.fetch;
    return (0, import_ticket.fetchTicket)(this.opts.ticketUrl, token, o);
  }
  onMessage(ws, raw) {
    if (ws !== this.ws) return;
    if (typeof raw !== "string") return;
    let frame;
    try {
      frame = JSON.parse(raw);
    } catch {
      return;
    }
    if (!frame || typeof frame !== "object" || typeof frame.type !== "string") return;
    if (frame.seq !== void 0 && this.isDuplicate(frame)) return;
    const data = frame.data ?? {};
    if (frame.data === void 0) frame.data = data;
    let continuity;
    switch (frame.type) {
      case "ready":
        continuity = this.onReady(ws, frame.data);
        break;
      case "heartbeat_ack":
        this.ackPending = false;
        break;
      case "subscribed": {
        const ch2 = frame.data.channel_id;
        continuity = this.onSubscribed(frame.data);
        const p = this.pendingSubs.get(ch2);
        if (p) {
          this.pendingSubs.delete(ch2);
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
    if (import_protocol.SERVER_FRAME_TYPES.includes(frame.type) || !CLIENT_EVENTS.has(frame.type)) {
      this.emitAny(frame.type, data);
    }
    this.emit("frame", frame);
    if (ws !== this.ws) return;
    if (continuity) {
      this.emit("continuity", continuity);
      if (ws !== this.ws) return;
      if (continuity.scope === "user") {
        this.emit("connected", { ready: frame.data, url: this.wsUrl, reconnect: continuity.reconnect, resumed: continuity.resumed });
      } else {
        const { channelId, reconnect, resumed, seq } = continuity;
        this.subs.get(channelId)?._emit("subscribed", { channelId, reconnect, resumed, refetch: resumed !== true, seq });
      }
      return;
    }
    if (NOT_CHANNEL_EVENTS.has(frame.type)) return;
    const d = frame.data;
    const ch = typeof frame.channel_id === "string" ? frame.channel_id : typeof d?.channel_id === "string" ? d.channel_id : void 0;
    if (ch !== void 0) this.subs.get(ch)?._dispatch(frame);
  }
  /**
   * Whether a positioned event is a duplicate (at or below its
   * subscription's position on this socket: the newest event received, or
   * the cursor a resume started from), to drop; otherwise it moves the
   * subscription's cursor.
   */
  isDuplicate(frame) {
    const seq = frame.seq;
    if (typeof seq !== "number" || !Number.isSafeInteger(seq) || seq < 0) return false;
    const ch = frame.channel_id;
    if (typeof ch === "string") {
      if (!this.wanted.has(ch)) return false;
      const floor = this.floors.get(ch);
      if (floor !== void 0 && seq <= floor) return true;
      this.floors.set(ch, seq);
      this.cursors.set(ch, Math.max(this.cursors.get(ch) ?? 0, seq));
      return false;
    }
    if (ch !== void 0) return false;
    if (this.userFloor !== void 0 && seq <= this.userFloor) return true;
    this.userFloor = seq;
    this.userCursor = Math.max(this.userCursor ?? 0, seq);
    return false;
  }
  onSubscribed(s) {
    const ch = s.channel_id;
    this.inflight.delete(ch);
    if (!this.wanted.has(ch)) return void 0;
    const seq = typeof s.seq === "number" && Number.isSafeInteger(s.seq) && s.seq >= 0 ? s.seq : 0;
    const cur = this.cursors.get(ch);
    if (this.live.has(ch)) {
      this.cursors.set(ch, Math.max(cur ?? 0, seq));
      return void 0;
    }
    this.live.add(ch);
    this.syncSub(ch);
    const reconnect = this.resubs.delete(ch);
    const resumed = reconnect ? s.resumed === true && this.resumeAsked : void 0;
    const early = this.floors.has(ch);
    const next = cur !== void 0 && (resumed === true || early) ? Math.max(cur, seq) : seq;
    this.cursors.set(ch, next);
    if (resumed === true) this.floors.set(ch, Math.max(this.floors.get(ch) ?? 0, next));
    return { scope: "channel", channelId: ch, reconnect, resumed, seq: next };
  }
  onReady(ws, ready) {
    if (this.connectTimer !== void 0) clearTimeout(this.connectTimer);
    this.connectTimer = void 0;
    this.wsOpen = true;
    this._ready = ready;
    this.attempt = 0;
    this.invalidTickets = 0;
    this.live.clear();
    this.syncSubs();
    const reconnect = this.hadReady;
    const sameSession = this.sessionId === void 0 || this.sessionId === ready.session_id;
    const resumed = reconnect ? ready.resumed === true && this.resumeAsked && sameSession : void 0;
    const seq = typeof ready.seq === "number" && Number.isSafeInteger(ready.seq) && ready.seq >= 0 ? ready.seq : 0;
    this.userCursor = resumed === true ? Math.max(this.userCursor ?? 0, seq) : seq;
    this.userFloor = resumed === true ? this.userCursor : void 0;
    this.resumeToken = typeof ready.resume_token === "string" && ready.resume_token !== "" ? ready.resume_token : void 0;
    this.sessionId = ready.session_id;
    this.hadReady = true;
    const continuity = { scope: "user", reconnect, resumed, seq: this.userCursor };
    this.setState("open");
    if (ws !== this.ws) return continuity;
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
  onUnsubscribed(u) {
    const ch = u.channel_id;
    this.live.delete(ch);
    this.inflight.delete(ch);
    if (u.reason !== "client") {
      const was = this.wanted.delete(ch);
      this.cursors.delete(ch);
      const err = new import_errors.OcvrError(u.reason === "deleted" ? "CHANNEL_NOT_FOUND" : "NOT_MEMBER", `subscription to ${ch} ended: ${u.reason}`, { channelId: ch });
      const sub = this.pendingSubs.get(ch);
      if (sub) {
        this.pendingSubs.delete(ch);
        sub.reject(err);
      }
      if (was) this.endSub(ch, { reason: u.reason === "deleted" ? "deleted" : "removed", error: err });
    } else {
      if (this.wanted.has(ch) && this.wsOpen && !this.inflight.has(ch)) this.sendSubscribe(ch);
      this.syncSub(ch);
    }
    const p = this.pendingUnsubs.get(ch);
    if (p) {
      this.pendingUnsubs.delete(ch);
      p.resolve();
    }
  }
  onError(e) {
    this.lastError = e;
    const ch = e.channel_id;
    if (ch === void 0) return;
    if (e.code === "NOT_SUBSCRIBED") {
      this.live.delete(ch);
      this.syncSub(ch);
      const p2 = this.pendingUnsubs.get(ch);
      if (p2) {
        this.pendingUnsubs.delete(ch);
        p2.resolve();
      }
      return;
    }
    const policy = (0, import_policy.errorPolicy)(e.code);
    if (policy ? !policy.subscribe : !this.inflight.has(ch)) return;
    this.inflight.delete(ch);
    if (!this.wanted.has(ch) || this.live.has(ch)) return;
    if (policy?.retryable) {
      this.subs.get(ch)?._emit("error", new import_errors.OcvrError(e.code, e.message, { channelId: ch }));
      if (this.subRetries.has(ch)) return;
      const ws = this.ws;
      this.subRetries.set(
        ch,
        setTimeout(() => {
          this.subRetries.delete(ch);
          if (ws === this.ws && this.wanted.has(ch) && !this.live.has(ch) && !this.inflight.has(ch)) this.sendSubscribe(ch);
        }, 1e3 + Math.random() * 1e3)
      );
      return;
    }
    this.wanted.delete(ch);
    this.cursors.delete(ch);
    this.resubs.delete(ch);
    const err = new import_errors.OcvrError(e.code, e.message, { channelId: ch });
    const p = this.pendingSubs.get(ch);
    if (p) {
      this.pendingSubs.delete(ch);
      p.reject(err);
    }
    this.endSub(ch, { reason: "refused", error: err });
  }
  /** Moves a channel's subscription to the state its sets say. */
  syncSub(ch) {
    this.subs.get(ch)?._setState(this.live.has(ch) ? "subscribed" : this.wanted.has(ch) ? "subscribing" : "unsubscribed");
  }
  syncSubs() {
    for (const ch of this.subs.keys()) this.syncSub(ch);
  }
  /** A subscription ended (the app, or the server): state, then its `unsubscribed` event. */
  endSub(ch, ev) {
    this.syncSub(ch);
    this.subs.get(ch)?._emit("unsubscribed", ev);
  }
  /** Abandons a socket that looks dead and reconnects. */
  drop(ws, why) {
    if (ws !== this.ws) return;
    detach(ws);
    try {
      ws.close(import_protocol.CloseCode.CLIENT_DEAD_CONNECTION, "dead connection");
    } catch {
    }
    this.onSocketClose(ws, import_protocol.CloseCode.CLIENT_DEAD_CONNECTION, why);
  }
  onSocketClose(ws, code, reason) {
    if (ws !== this.ws) return;
    const wasOpen = this.wsOpen;
    const refused = this.refused;
    this.refused = void 0;
    this.ws = void 0;
    this.wsOpen = false;
    this.live.clear();
    this.clearTimers();
    this.syncSubs();
    this.emit("disconnect", { code, reason, wasOpen });
    if (this._state === "closed") return;
    const action = (0, import_policy.closeAction)(code);
    if (action === "stop") {
      this.stop(this.stopEvent(code, reason));
      return;
    }
    if (action === "new_ticket") {
      this.resumeToken = void 0;
      if (++this.invalidTickets >= this.maxInvalid) {
        this.stop({
          reason: "invalid_ticket",
          code,
          error: new import_errors.OcvrError("INVALID_TICKET", `the gateway refused ${this.invalidTickets} fresh tickets in a row${this.lastError ? ": " + this.lastError.message : ""}`, { closeCode: code })
        });
        return;
      }
    }
    if (refused) {
      const details2 = { status: refused.status };
      if (refused.retryAfter !== void 0) details2.retryAfter = refused.retryAfter;
      const pod = refused.status === 429 || refused.status === 503;
      this.retry(new import_errors.OcvrError("UPGRADE_REFUSED", `the gateway answered HTTP ${refused.status} instead of the upgrade`, details2), refused.retryAfter, pod);
      return;
    }
    const hint = (0, import_retry.reasonRetryAfter)(reason);
    const details = { closeCode: code };
    if (hint !== void 0) details.retryAfter = hint;
    this.retry(new import_errors.OcvrError(`CLOSE_${code}`, `connection closed with ${code}${reason ? " (" + reason + ")" : ""}`, details), hint, code === import_protocol.CloseCode.TRY_AGAIN_LATER);
  }
  /** The `closed` event of a close code the policy stops after (1000, 4003, 4010). */
  stopEvent(code, reason) {
    switch (code) {
      case import_protocol.CloseCode.SESSION_REVOKED:
        return {
          reason: "session_revoked",
          code,
          error: new import_errors.OcvrError("SESSION_REVOKED", `session revoked${this.revoked ? ": " + this.revoked.reason : ""}`, { closeCode: code })
        };
      case import_protocol.CloseCode.TOO_MANY_CONNECTIONS:
        return { reason: "too_many_connections", code, error: new import_errors.OcvrError("TOO_MANY_CONNECTIONS", "too many connections for this user", { closeCode: code }) };
      default:
        return { reason: "server_closed", code, error: new import_errors.OcvrError("SERVER_CLOSED", `the server closed the connection${reason ? ": " + reason : ""}`, { closeCode: code }) };
    }
  }
  /**
   * Schedules the next attempt: exponential backoff with full jitter, or the
   * server's hint plus jitter ({@link reconnectDelay}). `pod`: the current
   * gateway refused (1013, HTTP 429/503), which is about its pod only:
   * with several URLs that one is held for the hint (or the backoff delay)
   * and another is tried at once ({@link RefusedUrls}).
   */
  retry(error, hint, pod = false) {
    if (this._state === "closed") return;
    this.gen++;
    this.clearTimers();
    if (this.ws) {
      const ws = this.ws;
      this.ws = void 0;
      detach(ws);
      try {
        ws.close(import_protocol.CloseCode.CLIENT_DEAD_CONNECTION, "retry");
      } catch {
      }
    }
    const retryAfter = (0, import_retry.capHint)(hint);
    const delay = pod && this.urls.length > 1 ? this.refusedUrls.refuse(this.urlIndex, retryAfter ?? (0, import_retry.reconnectDelay)(this.attempt, this.base, this.max)) : (0, import_retry.reconnectDelay)(this.attempt, this.base, this.max, retryAfter);
    this.attempt++;
    this.setState("reconnecting");
    if (this._state !== "reconnecting") return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = void 0;
      if (this._state === "reconnecting") void this.open();
    }, delay);
    const ev = { attempt: this.attempt, delay };
    if (retryAfter !== void 0) ev.retryAfter = retryAfter;
    if (error) ev.error = error;
    this.emit("reconnecting", ev);
  }
  /**
   * In a browser, the `online` event ends a reconnect's wait: the network
   * is back, so the next attempt goes at once instead of after the backoff.
   */
  watchOnline() {
    if (this.onlineOff) return;
    const g = globalThis;
    if (typeof g.addEventListener !== "function") return;
    const fn = () => {
      if (this._state !== "reconnecting") return;
      if (this.retryTimer !== void 0) clearTimeout(this.retryTimer);
      this.retryTimer = void 0;
      this.attempt = 0;
      void this.open();
    };
    g.addEventListener("online", fn);
    this.onlineOff = () => g.removeEventListener?.("online", fn);
  }
  clearTimers() {
    if (this.retryTimer !== void 0) clearTimeout(this.retryTimer);
    if (this.connectTimer !== void 0) clearTimeout(this.connectTimer);
    if (this.heartbeatTimer !== void 0) clearInterval(this.heartbeatTimer);
    this.retryTimer = this.connectTimer = this.heartbeatTimer = void 0;
    for (const t of this.subRetries.values()) clearTimeout(t);
    this.subRetries.clear();
  }
  /** Stops until connect(): the channels stay wanted, continuity is forgotten. */
  stop(ev) {
    if (this._state === "closed") return;
    this.gen++;
    this.clearTimers();
    this.abort?.abort();
    this.abort = void 0;
    const ws = this.ws;
    this.ws = void 0;
    this.wsOpen = false;
    if (ws) detach(ws);
    const err = ev.error ?? new import_errors.OcvrError("CLOSED", "the client is closed");
    for (const [ch, p] of this.pendingSubs) p.reject(err.channelId ? err : new import_errors.OcvrError(err.code, err.message, { channelId: ch, cause: err }));
    for (const p of this.pendingUnsubs.values()) p.resolve();
    this.pendingSubs.clear();
    this.pendingUnsubs.clear();
    this.live.clear();
    this.syncSubs();
    this.onlineOff?.();
    this.onlineOff = void 0;
    this.lastTyping.clear();
    this.inflight.clear();
    this.cursors.clear();
    this.resubs.clear();
    this.floors.clear();
    this.userFloor = void 0;
    this.resumeToken = void 0;
    this.userCursor = void 0;
    this.sessionId = void 0;
    this.hadReady = false;
    this.resumeAsked = false;
    this.setState("closed");
    this.emit("closed", ev);
  }
}
function ignore() {
}
function detach(ws) {
  ws.onmessage = null;
  ws.onclose = null;
  ws.onerror = ignore;
}
function pending() {
  let resolve;
  let reject;
  const promise = new Promise((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => {
  });
  return { promise, resolve, reject };
}
function isUnauthorized(e) {
  const x = e;
  return !!x && (x.status === 401 || x.code === "UNAUTHORIZED");
}
