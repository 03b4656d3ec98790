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
var index_exports = {};
__export(index_exports, {
  CloseCode: () => import_protocol.CloseCode,
  KNOWN_ERROR_CODES: () => import_policy.KNOWN_ERROR_CODES,
  MAX_RETRY_AFTER: () => import_retry.MAX_RETRY_AFTER,
  OcvrClient: () => import_client.OcvrClient,
  OcvrError: () => import_errors.OcvrError,
  SERVER_FRAME_TYPES: () => import_protocol.SERVER_FRAME_TYPES,
  Subscription: () => import_subscription.Subscription,
  closeAction: () => import_policy.closeAction,
  errorPolicy: () => import_policy.errorPolicy,
  fetchTicket: () => import_ticket.fetchTicket,
  isKnownFrame: () => import_protocol.isKnownFrame,
  reasonRetryAfter: () => import_retry.reasonRetryAfter,
  ticketEndpoint: () => import_ticket.ticketEndpoint
});
module.exports = __toCommonJS(index_exports);
var import_client = require("./client.js");
var import_subscription = require("./subscription.js");
var import_errors = require("./errors.js");
var import_ticket = require("./ticket.js");
var import_retry = require("./retry.js");
var import_protocol = require("./protocol.js");
var import_policy = require("./policy.js");
