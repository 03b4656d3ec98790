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
var subscription_exports = {};
__export(subscription_exports, {
  Subscription: () => Subscription,
  subscribeTimeoutError: () => subscribeTimeoutError
});
module.exports = __toCommonJS(subscription_exports);
var import_emitter = require("./emitter.js");
var import_errors = require("./errors.js");
const OWN_EVENTS = /* @__PURE__ */ new Set(["state", "subscribed", "unsubscribed", "error", "frame"]);
class Subscription {
  channelId;
  host;
  _state = "unsubscribed";
  events = new import_emitter.Emitter();
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
    if (state === this._state) return;
    const previous = this._state;
    this._state = state;
    this._emit("state", { state, previous });
  }
  /** @internal A channel event for the app. */
  _dispatch(frame) {
    if (!OWN_EVENTS.has(frame.type)) this._emit(frame.type, frame.data);
    this._emit("frame", frame);
  }
  /** @internal */
  _emit(type, data) {
    this.events.emit(type, data);
  }
}
function subscribeTimeoutError(channelId, ms) {
  return new import_errors.OcvrError("TIMEOUT", `no answer to the subscription of ${channelId} within ${ms} ms (still trying)`, { channelId });
}
