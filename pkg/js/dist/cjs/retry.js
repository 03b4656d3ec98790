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
var retry_exports = {};
__export(retry_exports, {
  MAX_RETRY_AFTER: () => MAX_RETRY_AFTER,
  RefusedUrls: () => RefusedUrls,
  SWITCH_JITTER: () => SWITCH_JITTER,
  capHint: () => capHint,
  headerRetryAfter: () => headerRetryAfter,
  reasonRetryAfter: () => reasonRetryAfter,
  reconnectDelay: () => reconnectDelay
});
module.exports = __toCommonJS(retry_exports);
const MAX_RETRY_AFTER = 6e4;
const RETRY_AFTER_TOKEN = /\bretry_after=(\d+)\b/;
function reasonRetryAfter(reason) {
  const m = RETRY_AFTER_TOKEN.exec(reason);
  return m ? secondsHint(Number(m[1])) : void 0;
}
function headerRetryAfter(value, now = Date.now()) {
  const v = value?.trim();
  if (!v) return void 0;
  if (/^\d+$/.test(v)) return secondsHint(Number(v));
  if (/^[0-9.+-]/.test(v)) return void 0;
  const at = Date.parse(v);
  return Number.isNaN(at) ? void 0 : capHint(at - now);
}
function secondsHint(s) {
  return capHint(s * 1e3);
}
function capHint(ms) {
  if (typeof ms !== "number" || Number.isNaN(ms) || ms <= 0) return void 0;
  return Math.min(ms, MAX_RETRY_AFTER);
}
function reconnectDelay(attempt, base, max, hint) {
  const h = capHint(hint);
  if (h !== void 0) return h + Math.random() * h;
  return Math.random() * Math.min(max, base * 2 ** Math.min(attempt, 30));
}
const SWITCH_JITTER = 100;
class RefusedUrls {
  until;
  span;
  constructor(n) {
    this.until = new Array(n).fill(0);
    this.span = new Array(n).fill(0);
  }
  /** The URL to try: the first from `turn` on (round robin) not held at `now`; when every one is, the one free first. */
  pick(turn, now = Date.now()) {
    const n = this.until.length;
    let best = turn % n;
    for (let k = 0; k < n; k++) {
      const i = (turn + k) % n;
      if (this.until[i] <= now) return i;
      if (this.until[i] < this.until[best]) best = i;
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
  refuse(i, hold, now = Date.now()) {
    const h = capHint(hold) ?? 0;
    this.until[i] = now + h;
    this.span[i] = h;
    let first = i;
    for (let j = 0; j < this.until.length; j++) {
      const u = this.until[j];
      if (u <= now) return Math.random() * SWITCH_JITTER;
      if (u < this.until[first]) first = j;
    }
    return this.until[first] - now + Math.random() * this.span[first];
  }
}
