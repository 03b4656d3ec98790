// The client's state and its own events (beside one event per server
// frame type): what OcvrClient.on hands to listeners.
import type { OcvrError } from "./errors.js";
import type { Ready, ServerFrameMap, AnyServerFrame, UnknownEventData } from "./protocol.js";

/**
 * The client's state:
 * - `idle`: created, not connected yet (`connect()`, or the first `subscribe()`, starts);
 * - `connecting`: an attempt is in progress (ticket, socket, waiting for `ready`);
 * - `open`: `ready` received, the connection is live;
 * - `reconnecting`: waiting out the backoff delay before the next attempt;
 * - `closed`: stopped (see the `closed` event for why) until `connect()`.
 */
export type ConnectionState = "idle" | "connecting" | "open" | "reconnecting" | "closed";

/** Why the client stopped. */
export type StopReason =
  /** `close()` was called. */
  | "client"
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
