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
var protocol_exports = {};
__export(protocol_exports, {
  CloseCode: () => CloseCode,
  SERVER_FRAME_TYPES: () => SERVER_FRAME_TYPES,
  isKnownFrame: () => isKnownFrame
});
module.exports = __toCommonJS(protocol_exports);
const SERVER_FRAME_TYPES = [
  "ready",
  "heartbeat_ack",
  "subscribed",
  "unsubscribed",
  "message_create",
  "message_update",
  "message_delete",
  "typing_start",
  "presence_update",
  "notification",
  "session_revoked",
  "error"
];
function isKnownFrame(frame) {
  return SERVER_FRAME_TYPES.includes(frame.type);
}
const CloseCode = {
  NORMAL: 1e3,
  GOING_AWAY: 1001,
  ABNORMAL: 1006,
  MESSAGE_TOO_BIG: 1009,
  INTERNAL_ERROR: 1011,
  SERVICE_RESTART: 1012,
  TRY_AGAIN_LATER: 1013,
  /** Used by this client (never by the server) when it abandons a socket: no ready in time, or no heartbeat_ack within an interval. */
  CLIENT_DEAD_CONNECTION: 4e3,
  INVALID_TICKET: 4001,
  SESSION_REVOKED: 4003,
  HEARTBEAT_TIMEOUT: 4004,
  RATE_LIMITED: 4008,
  SLOW_CONSUMER: 4009,
  TOO_MANY_CONNECTIONS: 4010
};
