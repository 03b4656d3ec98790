import { OcvrError } from "./errors.js";
import type { AnyServerFrame, Ready, ServerFrameMap, UnknownEventData } from "./protocol.js";
import type { FetchLike } from "./ticket.js";
import { Subscription } from "./subscription.js";
import type { SubscribeOptions } from "./subscription.js";
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
     * to stop the client for good ("sign in again"); any other error is retried
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
/**
 * The client's state:
 * - `idle`: created with `autoConnect: false`, not connected yet;
 * - `connecting`: an attempt is in progress (ticket, socket, waiting for `ready`);
 * - `open`: `ready` received, the connection is live;
 * - `reconnecting`: waiting out the backoff delay before the next attempt;
 * - `closed`: stopped for good (see the `closed` event for why).
 */
export type ConnectionState = "idle" | "connecting" | "open" | "reconnecting" | "closed";
/** Why the client stopped for good. */
export type StopReason = 
/** `close()` was called. */
"client"
/** The server closed with 4003 after `session_revoked`: show the signed-out screen. */
 | "session_revoked"
/** ticketsvc answered 401 (unknown, expired or revoked session): sign in again. */
 | "unauthorized"
/** The gateway refused `maxInvalidTickets` fresh tickets in a row (4001). */
 | "invalid_ticket"
/** The server closed with 4010 (too many connections for this user). */
 | "too_many_connections"
/** The server closed with 1000. */
 | "server_closed";
/**
 * The `connected` event: after each `ready`, whether this is a reconnect and
 * whether the user's own events resumed without loss. Each channel says the
 * same for itself with its subscription's `subscribed` event.
 */
export interface ConnectedEvent {
    /** The server's `ready` (connection, user and session ids). */
    ready: Ready;
    /** The gateway URL of the connection. */
    url: string;
    /** The client was connected before (since it was created or last stopped): this is a reconnect. */
    reconnect: boolean;
    /**
     * The user's own events (`notification`, …): `undefined` on a fresh
     * start, `true` when every one missed while disconnected follows, `false`
     * when some may be missing (refetch notifications and the like).
     */
    resumed: boolean | undefined;
}
/** The `closed` event. */
export interface ClosedEvent {
    reason: StopReason;
    /** The close code of the last socket, if one ended the client. */
    code?: number;
    /** What ended the client; absent after `close()`. */
    error?: OcvrError;
}
/** The `disconnect` event: a socket ended. */
export interface DisconnectEvent {
    code: number;
    reason: string;
    /** Whether the socket had received `ready`. */
    wasOpen: boolean;
}
/** The `reconnecting` event: the next attempt is scheduled. */
export interface ReconnectingEvent {
    /** 1 for the first retry, 2 for the second, … (reset by `ready`). */
    attempt: number;
    /** Milliseconds until the attempt ("reconnecting in N s"). */
    delay: number;
    /**
     * The server's retry hint, in milliseconds (capped at 60 s); absent when
     * the server gave none and `delay` is the plain backoff. With one URL,
     * and after ticketsvc's hints, `delay` honours it: it is in
     * [retryAfter, 2·retryAfter]. With several, a gateway's hint holds only
     * the URL that refused: `delay` is at most 100 ms when another URL is
     * free, else until the earliest held URL is free, plus jitter (see
     * {@link ClientOptions.backoff}).
     */
    retryAfter?: number;
    /** Why the previous attempt or connection failed, when known (an {@link OcvrError} carries the same `retryAfter`). */
    error?: Error;
}
/** The `state` event. */
export interface StateEvent {
    state: ConnectionState;
    previous: ConnectionState;
}
/** What {@link UserContinuity} and {@link ChannelContinuity} share. */
export interface ContinuityBase {
    /**
     * Whether the subscription existed on an earlier connection of the
     * client: the `ready` of a reconnect, or a channel's resubscription after
     * one.
     */
    reconnect: boolean;
    /**
     * - `undefined`: a fresh start (the first connection, or a channel's first
     *   subscription): there is nothing to resume, events flow from now on;
     * - `true`: every event of the subscription missed while disconnected
     *   follows, exactly once and in order, before the live ones: nothing to
     *   refetch;
     * - `false`: events may have been missed (away longer than the
     *   continuity window, a gateway without the event stream, a refused
     *   token, …): refetch the subscription's state from your backend.
     */
    resumed: boolean | undefined;
    /** The subscription's cursor from now on (the position of its newest event; 0: none yet). */
    seq: number;
}
/** The `continuity` event of the user's own events (`notification`, …): after every `ready`. */
export interface UserContinuity extends ContinuityBase {
    scope: "user";
}
/** The `continuity` event of a channel's events (`message_create`, …): after every `subscribed`. */
export interface ChannelContinuity extends ContinuityBase {
    scope: "channel";
    channelId: string;
}
/**
 * The `continuity` event: after each `ready` (the user's own events) and each
 * `subscribed` (that channel), whether the subscription lost nothing across
 * a reconnect. Refetch when `resumed === false`.
 */
export type ContinuityEvent = UserContinuity | ChannelContinuity;
/**
 * Every typed event of the client: one per server frame type it knows
 * (payload: the frame's `data`), plus the client's own. A frame type the
 * client does not know is an event too, by its name, with an
 * {@link UnknownEventData} payload (see {@link OcvrClient.on}).
 */
export interface ClientEventMap extends ServerFrameMap {
    /**
     * Every server frame, whole, after its event: those of types the client
     * does not know as well ({@link isKnownFrame} narrows to the known ones).
     */
    frame: AnyServerFrame;
    /**
     * After each `ready` (`scope: "user"`) and each `subscribed` (`scope:
     * "channel"`): whether that subscription resumed without loss.
     */
    continuity: ContinuityEvent;
    /** After each `ready` and its `continuity` event: a reconnect or not, and whether the user's events resumed. */
    connected: ConnectedEvent;
    state: StateEvent;
    disconnect: DisconnectEvent;
    reconnecting: ReconnectingEvent;
    closed: ClosedEvent;
}
/** The name of a client event. */
export type ClientEventType = keyof ClientEventMap;
/** A listener of event K. */
export type Listener<K extends ClientEventType> = (data: ClientEventMap[K]) => void;
/** A listener of a server frame type the client does not know: it gets the frame's `data` as sent. */
export type UnknownListener = (data: UnknownEventData) => void;
/**
 * A connection to the OCVR gateway that survives restarts: it gets a new
 * ticket for every attempt, heartbeats, detects dead sockets, reconnects with
 * exponential backoff and full jitter (after a server's retry hint: the hint
 * plus jitter), resubscribes its channels after every
 * reconnect, and stops for good after 4003 (session revoked), repeated 4001,
 * 4010 or 401 from ticketsvc.
 *
 * Continuity: it keeps the resume token of the newest `ready` and one cursor
 * per subscription (the user's own events, each channel), resumes from them
 * on every reconnect, drops duplicates (an event at or below its
 * subscription's newest position on the connection: the newest event
 * received, or the cursor a resume started from), and says after each
 * `ready` and `subscribed`
 * whether nothing was lost (the `continuity` event). `close()` (and any stop)
 * forgets the token and the cursors: a later `connect()` starts afresh.
 *
 * ```ts
 * const client = new OcvrClient({ url: "wss://rt.example/v1/ws", ticketUrl: "https://api.example", token });
 * client.on("message_create", (m) => console.log(m.author.display_name, m.content));
 * await client.subscribe("ch_general");
 * ```
 */
export declare class OcvrClient {
    private readonly urls;
    private readonly opts;
    private WS;
    private readonly base;
    private readonly max;
    private readonly maxInvalid;
    private readonly connectTimeout;
    private readonly typingThrottle;
    private readonly subscribeTimeout;
    /** Removes the browser's `online` listener. */
    private onlineOff;
    /** Every channel object handed out by channel(), for the client's life. */
    private readonly subs;
    private readonly listeners;
    private _state;
    private _ready;
    private ws;
    private wsUrl;
    private wsOpen;
    private gen;
    private attempt;
    private invalidTickets;
    private turn;
    /** The index in urls of the current attempt's gateway. */
    private urlIndex;
    /** Gateway URLs held after their pod refused (with several URLs). */
    private readonly refusedUrls;
    private abort;
    private retryTimer;
    private connectTimer;
    private heartbeatTimer;
    private ackPending;
    private revoked;
    private lastError;
    /** The gateway's HTTP answer instead of the upgrade on the current socket (the `ws` package tells it). */
    private refused;
    /** Channels wanted: subscribed now if open, and again after every reconnect. */
    private readonly wanted;
    /** Channels subscribed on the current socket (`subscribed` received). */
    private readonly live;
    private readonly pendingSubs;
    private readonly pendingUnsubs;
    private readonly lastTyping;
    /** Subscribes refused with UNAVAILABLE, to send again shortly. */
    private readonly subRetries;
    /** Channels whose subscribe was sent on the current socket and not answered yet. */
    private readonly inflight;
    /** The resume token of the newest `ready`. */
    private resumeToken;
    /** The cursor of the user's own events (undefined before the first `ready`). */
    private userCursor;
    /** The session of the previous `ready`: a `ready` of another one resumes nothing. */
    private sessionId;
    /** A `ready` was received since the client (re)started: the next one is a reconnect. */
    private hadReady;
    /** The cursor of every wanted channel that has been subscribed (or got a positioned event). */
    private readonly cursors;
    /** Whether the current socket was opened with a resume token. */
    private resumeAsked;
    /** Channels resubscribed on the current socket after being subscribed on an earlier one. */
    private readonly resubs;
    /**
     * Per subscription on the current socket, the position at or below which
     * an event is a duplicate: the newest one received on this socket, or the
     * cursor a resume started from. Not the cursor of a fresh start: the
     * server's events on a new socket are new.
     */
    private readonly floors;
    private userFloor;
    constructor(options: ClientOptions);
    /** The current state. */
    get state(): ConnectionState;
    /** The `ready` of the current connection (connection, user and session ids), or undefined when not open. */
    get ready(): Ready | undefined;
    /** The gateway URL of the current connection (without the ticket), or undefined when not open. */
    get url(): string | undefined;
    /** The channels the client keeps subscribed (across reconnects). */
    get channels(): string[];
    /** Whether `channelId` is subscribed on the current connection (`subscribed` received). */
    isSubscribed(channelId: string): boolean;
    /**
     * A subscription's cursor: the position (`seq`) of its newest event, or
     * the one `ready` / `subscribed` gave; the client resumes from it after a
     * reconnect. Without `channelId`: the user's own events. Undefined when
     * the client holds none (not subscribed yet, or stopped).
     */
    cursor(channelId?: string): number | undefined;
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
    /** Listens to the next event of a type only. */
    once<K extends ClientEventType>(type: K, listener: Listener<K>): () => void;
    once(type: string, listener: UnknownListener): () => void;
    /** Removes a listener. */
    off<K extends ClientEventType>(type: K, listener: Listener<K>): void;
    off(type: string, listener: UnknownListener): void;
    /**
     * Starts connecting: the first time, or again after the client stopped
     * (`close()`, a revoked session after signing in again, …); the channels
     * wanted before are subscribed again. The first attempt starts on the
     * next turn of the event loop, so a `close()` right after (React
     * StrictMode's mount, unmount, mount) opens nothing. Does nothing while
     * connecting or connected. Throws a `TypeError` when there is no
     * WebSocket (Node.js 20 without `options.WebSocket`).
     */
    connect(): void;
    /**
     * The channel's {@link Subscription}: its state, its events, subscribe and
     * unsubscribe. The same object for the same id for the client's life;
     * getting it subscribes nothing.
     */
    channel(channelId: string): Subscription;
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
    subscribe(channelId: string, options?: SubscribeOptions): Promise<void>;
    /** Rejects with TIMEOUT after ms (0: never), and tells the channel's subscription. */
    private withTimeout;
    /**
     * Unsubscribes from a channel (also for future reconnects). Resolves once
     * the server confirms, or at once when the channel is not subscribed on an
     * open connection.
     */
    unsubscribe(channelId: string): Promise<void>;
    /**
     * Tells the channel's other members that the user is typing. Call it on
     * every keystroke: it sends at most one `typing` per channel per
     * `typingThrottle` (3 s) and only on a subscribed channel of an open
     * connection. Returns whether a frame was sent.
     */
    typing(channelId: string): boolean;
    /**
     * Closes the connection (1000) and stops the client for good: no more
     * reconnects, pending subscribes reject with `CLOSED`, the `closed` event
     * fires with reason `client`. Resolves once the socket has closed (at most
     * ~2 s).
     */
    close(): Promise<void>;
    private emit;
    private emitAny;
    private setState;
    private send;
    /**
     * Sends a subscribe: with the channel's cursor when the channel was
     * subscribed before and the socket was opened with a resume token.
     */
    private sendSubscribe;
    private open;
    /**
     * In Node.js the `ws` package shows the gateway's HTTP answer when it
     * refuses the upgrade (429, 503 with Retry-After); browsers hide it (the
     * socket just closes with 1006). The socket is then aborted as ws would
     * have done, and its close is retried after the hint.
     */
    private watchRefusal;
    private getTicket;
    private onMessage;
    /**
     * Whether a positioned event is a duplicate (at or below its
     * subscription's position on this socket: the newest event received, or
     * the cursor a resume started from), to drop; otherwise it moves the
     * subscription's cursor.
     */
    private isDuplicate;
    private onSubscribed;
    private onReady;
    private onUnsubscribed;
    private onError;
    /** Moves a channel's subscription to the state its sets say. */
    private syncSub;
    private syncSubs;
    /** A subscription ended (the app, or the server): state, then its `unsubscribed` event. */
    private endSub;
    /** Abandons a socket that looks dead and reconnects. */
    private drop;
    private onSocketClose;
    /** The `closed` event of a close code the policy stops after (1000, 4003, 4010). */
    private stopEvent;
    /**
     * Schedules the next attempt: exponential backoff with full jitter, or the
     * server's hint plus jitter ({@link reconnectDelay}). `pod`: the current
     * gateway refused (1013, HTTP 429/503), which is about its pod only:
     * with several URLs that one is held for the hint (or the backoff delay)
     * and another is tried at once ({@link RefusedUrls}).
     */
    private retry;
    /**
     * In a browser, the `online` event ends a reconnect's wait: the network
     * is back, so the next attempt goes at once instead of after the backoff.
     */
    private watchOnline;
    private clearTimers;
    /** Stops for good. */
    private stop;
}
