// A channel subscription as an object: its state, its own events and a
// subscribe that settles (subscribed, refused with the server's code, or a
// timeout), as centrifuge-js's Subscription and phoenix's channel join do.
// The protocol work (frames, resubscription after reconnects, continuity)
// stays in OcvrClient; this file holds the app-facing object.
import { Emitter } from "./emitter.js";
import { OcvrError } from "./errors.js";
/** The subscription's own events: a channel event of one of these types is only delivered through `frame`. */
const OWN_EVENTS = new Set(["state", "subscribed", "unsubscribed", "error", "frame"]);
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
    channelId;
    host;
    _state = "unsubscribed";
    events = new Emitter();
    /** @internal Created by the client: use `client.channel(channelId)`. */
    constructor(host, channelId) {
        this.host = host;
        this.channelId = channelId;
    }
    /** The subscription's state. */
    get state() {
        return this._state;
    }
    /** The channel's cursor (continuity): the position of its newest event; undefined when none is held. */
    get cursor() {
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
    subscribe(options) {
        return this.host.subscribe(this.channelId, options);
    }
    /** Unsubscribes (also for future reconnects): see {@link OcvrClient.unsubscribe}. */
    unsubscribe() {
        return this.host.unsubscribe(this.channelId);
    }
    /** Tells the channel's other members the user is typing (throttled): see {@link OcvrClient.typing}. */
    typing() {
        return this.host.typing(this.channelId);
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
    /** @internal The client moves the state. */
    _setState(state) {
        if (state === this._state)
            return;
        const previous = this._state;
        this._state = state;
        this._emit("state", { state, previous });
    }
    /** @internal A channel event for the app. */
    _dispatch(frame) {
        if (!OWN_EVENTS.has(frame.type))
            this._emit(frame.type, frame.data);
        this._emit("frame", frame);
    }
    /** @internal */
    _emit(type, data) {
        this.events.emit(type, data);
    }
}
/** The error of a subscribe that timed out. */
export function subscribeTimeoutError(channelId, ms) {
    return new OcvrError("TIMEOUT", `no answer to the subscription of ${channelId} within ${ms} ms (still trying)`, { channelId });
}
