import type { Ready } from "./protocol.js";
import { Subscription } from "./subscription.js";
import type { SubscribeOptions } from "./subscription.js";
import type { ClientOptions } from "./options.js";
import type { ClientEventType, ConnectionState, Listener, UnknownListener } from "./events.js";
export type * from "./options.js";
export type * from "./events.js";
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
    private readonly events;
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
     * Closes the connection (1000) and stops the client (until `connect()`): no more
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
    /** Stops until connect(): the channels stay wanted, continuity is forgotten. */
    private stop;
}
