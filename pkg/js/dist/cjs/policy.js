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
var policy_exports = {};
__export(policy_exports, {
  KNOWN_ERROR_CODES: () => KNOWN_ERROR_CODES,
  closeAction: () => closeAction,
  errorPolicy: () => errorPolicy
});
module.exports = __toCommonJS(policy_exports);
var import_protocol = require("./protocol.js");
const STOP = /* @__PURE__ */ new Set([import_protocol.CloseCode.NORMAL, import_protocol.CloseCode.SESSION_REVOKED, import_protocol.CloseCode.TOO_MANY_CONNECTIONS]);
function closeAction(code) {
  if (code === import_protocol.CloseCode.INVALID_TICKET) return "new_ticket";
  return STOP.has(code) ? "stop" : "reconnect";
}
const ERRORS = {
  INVALID_TICKET: { retryable: false, endsConnection: true, subscribe: false },
  INVALID_MESSAGE: { retryable: false, endsConnection: false, subscribe: true },
  CHANNEL_NOT_FOUND: { retryable: false, endsConnection: false, subscribe: true },
  NOT_MEMBER: { retryable: false, endsConnection: false, subscribe: true },
  NOT_SUBSCRIBED: { retryable: false, endsConnection: false, subscribe: false },
  TOO_MANY_SUBSCRIPTIONS: { retryable: false, endsConnection: false, subscribe: true },
  RATE_LIMITED: { retryable: true, endsConnection: false, subscribe: false },
  UNAVAILABLE: { retryable: true, endsConnection: false, subscribe: true }
};
function errorPolicy(code) {
  return Object.prototype.hasOwnProperty.call(ERRORS, code) ? ERRORS[code] : void 0;
}
const KNOWN_ERROR_CODES = Object.keys(ERRORS);
