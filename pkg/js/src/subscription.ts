// A channel subscription as an object: its state, its own events and a
// subscribe that settles (subscribed, refused with the server's code, or a
// timeout), as centrifuge-js's Subscription and phoenix's channel join do.
// The protocol work (frames, resubscription after reconnects, continuity)
// stays in OcvrClient; this file holds the app-facing object.
import { Emitter } from "./emitter.js";
import { OcvrError } from "./errors.js";
import type { AnyServerFrame, MessageCreate, MessageDelete, MessageUpdate, TypingStart, UnknownEventData } from "./protocol.js";

/**
 * A subscription's state:
 * - `unsubscribed`: not wanted (never subscribed, `unsubscribe()` called,
 *   or the server ended or refused it: see the `unsubscribed` event);
 * - `subscribing`: wanted, not live on the current connection: waiting for
 *   the connection (first connect, a reconnect, the client stopped and not
 *   connected again) or for the server's `subscribed`;
 * - `subscribed`: live: the server confirmed it on the current connection.
 */
export type SubscriptionState = "unsubscribed" | "subscribing" | "subscribed";

/** The `state` event of a {@link Subscription}. */
export interface SubscriptionStateEvent {
  state: SubscriptionState;
  previous: SubscriptionState;
}

/**
 * Why a subscription ended (its `unsubscribed` event):
 * - `client`: the app called `unsubscribe()`;
 * - `removed`: the server ended it, the user is no longer a member;
 * - `deleted`: the server ended it, the channel was deleted;
 * - `refused`: the server refused a subscribe, the first or a
 *   resubscription after a reconnect (`error.code`: `NOT_MEMBER`,
 *   `CHANNEL_NOT_FOUND`, `TOO_MANY_SUBSCRIPTIONS`, …).
 *
 * The client never resubscribes an ended subscription by itself; calling
 * `subscribe()` again tries again.
 */
export type SubscriptionEndReason = "client" | "removed" | "deleted" | "refused";

/** The `unsubscribed` event of a {@link Subscription}. */
export interface SubscriptionEndEvent {
  reason: SubscriptionEndReason;
  /** The server's refusal (`refused`), or the code matching `removed` (`NOT_MEMBER`) / `deleted` (`CHANNEL_NOT_FOUND`). */
  error?: OcvrError;
}

/**
 * The `subscribed` event of a {@link Subscription}: the subscription is
 * live, the first time or again after a reconnect, with what happened to
 * the events published meanwhile.
 */
export interface SubscribedEvent {
  channelId: string;
  /** The channel was subscribed on an earlier connection of the client (a resubscription after a reconnect). */
  reconnect: boolean;
  /**
   * - `undefined`: a fresh start (the first subscription, or the first
   *   after the client stopped and connected again): load the channel's
   *   state as at start;
   * - `true`: every event missed while disconnected follows, once, in
   *   order: nothing to refetch;
   * - `false`: events may have been missed: refetch the channel's state.
   */
  resumed: boolean | undefined;
  /** Whether the app must (re)load the channel's state from its backend: `resumed !== true`. */
  refetch: boolean;
  /** The channel's cursor from now on. */
  seq: number;
}

/**
 * The events of one channel's {@link Subscription}: its own (`state`,
 * `subscribed`, `unsubscribed`, `error`), then the channel's events (frames
 * whose top-level or `data.channel_id` is the channel), by type, and
 * `frame` for each of them whole. A channel event type the client does not
 * know yet (`channel_update`, …) is an event too, by its name.
 */
export interface SubscriptionEventMap {
  state: SubscriptionStateEvent;
  subscribed: SubscribedEvent;
  unsubscribed: SubscriptionEndEvent;
  /**
   * A subscribe that did not settle: `TIMEOUT` (no answer within the
   * timeout; the subscription keeps trying), `UNAVAILABLE` (the gateway's
   * backplane briefly out of reach; retried in 1–2 s).
   */
  error: OcvrError;
  message_create: MessageCreate;
  message_update: MessageUpdate;
  message_delete: MessageDelete;
  typing_start: TypingStart;
  /** Every channel event, whole, after its typed event. */
  frame: AnyServerFrame;
}

/** The name of a subscription event. */
export type SubscriptionEventType = keyof SubscriptionEventMap;

/** Options of {@link Subscription.subscribe}. */
export interface SubscribeOptions {
  /**
   * Milliseconds before the promise rejects with `TIMEOUT` (default: the
   * client's `subscribeTimeout`; 0: never). The subscription stays
   * `subscribing` and completes when the server answers (call
   * `unsubscribe()` to give up).
   */
  timeout?: number;
}

/** What a {@link Subscription} needs from its client. */
export interface SubscriptionHost {
  subscribe(channelId: string, options?: SubscribeOptions): Promise<void>;
  unsubscribe(channelId: string): Promise<void>;
  typing(channelId: string): boolean;
  cursor(channelId: string): number | undefined;
}

/** The subscription's own events: a channel event of one of these types is only delivered through `frame`. */
const OWN_EVENTS: ReadonlySet<string> = new Set(["state", "subscribed", "unsubscribed", "error", "frame"]);

/**
 * One channel of an {@link OcvrClient}, from `client.channel(channelId)`
 * (the same object for the same id, for the client's life).
 *
 * ```ts
 * const general = client.channel("ch_general");
 * general.on("message_create", (m) => show(m));
 * general.on("subscribed", ({ refetch }) => { if (refetch) reloadMessages("ch_general"); });
 * general.on("unsubscribed", ({ reason, error }) => showGone(reason, error?.code));
 * await general.subscribe(); // rejects with NOT_MEMBER, CHANNEL_NOT_FOUND, …, or TIMEOUT
 * ```
 */
export class Subscription {
  readonly channelId: string;
  private readonly host: SubscriptionHost;
  private _state: SubscriptionState = "unsubscribed";
  private readonly events = new Emitter();

  /** @internal Created by the client: use `client.channel(channelId)`. */
  constructor(host: SubscriptionHost, channelId: string) {
    this.host = host;
    this.channelId = channelId;
  }

  /** The subscription's state. */
  get state(): SubscriptionState {
    return this._state;
  }

  /** The channel's cursor (continuity): the position of its newest event; undefined when none is held. */
  get cursor(): number | undefined {
    return this.host.cursor(this.channelId);
  }

  /**
   * Subscribes, now and after every reconnect (and after a stop, at the
   * next `connect()`). Resolves on `subscribed`; rejects with an
   * {@link OcvrError}: the server's code (`NOT_MEMBER`, …; the subscription
   * is then `unsubscribed`), `TIMEOUT` after `timeout` ms (it keeps
   * trying), or `CLOSED` when the client stops or is stopped. Connects an
   * idle client (unless `autoConnect: false`).
   */
  subscribe(options?: SubscribeOptions): Promise<void> {
    return this.host.subscribe(this.channelId, options);
  }

  /** Unsubscribes (also for future reconnects): see {@link OcvrClient.unsubscribe}. */
  unsubscribe(): Promise<void> {
    return this.host.unsubscribe(this.channelId);
  }

  /** Tells the channel's other members the user is typing (throttled): see {@link OcvrClient.typing}. */
  typing(): boolean {
    return this.host.typing(this.channelId);
  }

  /** Listens to an event; returns a function that removes the listener. */
  on<K extends SubscriptionEventType>(type: K, listener: (data: SubscriptionEventMap[K]) => void): () => void;
  on(type: string, listener: (data: UnknownEventData) => void): () => void;
  on(type: string, listener: (data: never) => void): () => void {
    return this.events.on(type, listener);
  }

  /** Listens to the next event of a type only. */
  once<K extends SubscriptionEventType>(type: K, listener: (data: SubscriptionEventMap[K]) => void): () => void;
  once(type: string, listener: (data: UnknownEventData) => void): () => void;
  once(type: string, listener: (data: never) => void): () => void {
    return this.events.once(type, listener);
  }

  /** Removes a listener. */
  off<K extends SubscriptionEventType>(type: K, listener: (data: SubscriptionEventMap[K]) => void): void;
  off(type: string, listener: (data: UnknownEventData) => void): void;
  off(type: string, listener: (data: never) => void): void {
    this.events.off(type, listener);
  }

  /** @internal The client moves the state. */
  _setState(state: SubscriptionState): void {
    if (state === this._state) return;
    const previous = this._state;
    this._state = state;
    this._emit("state", { state, previous });
  }

  /** @internal A channel event for the app. */
  _dispatch(frame: AnyServerFrame): void {
    if (!OWN_EVENTS.has(frame.type)) this._emit(frame.type, frame.data);
    this._emit("frame", frame);
  }

  /** @internal */
  _emit(type: string, data: unknown): void {
    this.events.emit(type, data);
  }
}

/** The error of a subscribe that timed out. */
export function subscribeTimeoutError(channelId: string, ms: number): OcvrError {
  return new OcvrError("TIMEOUT", `no answer to the subscription of ${channelId} within ${ms} ms (still trying)`, { channelId });
}
