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
var errors_exports = {};
__export(errors_exports, {
  OcvrError: () => OcvrError
});
module.exports = __toCommonJS(errors_exports);
class OcvrError extends Error {
  code;
  channelId;
  closeCode;
  status;
  retryAfter;
  constructor(code, message, details = {}) {
    super(message, details.cause === void 0 ? void 0 : { cause: details.cause });
    this.name = "OcvrError";
    this.code = code;
    if (details.channelId !== void 0) this.channelId = details.channelId;
    if (details.closeCode !== void 0) this.closeCode = details.closeCode;
    if (details.status !== void 0) this.status = details.status;
    if (details.retryAfter !== void 0) this.retryAfter = details.retryAfter;
  }
}
