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
var ticket_exports = {};
__export(ticket_exports, {
  errorMessage: () => errorMessage,
  fetchTicket: () => fetchTicket,
  ticketEndpoint: () => ticketEndpoint
});
module.exports = __toCommonJS(ticket_exports);
var import_errors = require("./errors.js");
var import_retry = require("./retry.js");
function ticketEndpoint(ticketUrl) {
  const base = ticketUrl.replace(/\/+$/, "");
  return base.endsWith("/v1/auth/ws-ticket") ? base : base + "/v1/auth/ws-ticket";
}
async function fetchTicket(ticketUrl, token, opts = {}) {
  const f = opts.fetch ?? globalThis.fetch;
  if (!f) throw new import_errors.OcvrError("TICKET_FAILED", "no fetch implementation: pass options.fetch");
  let res;
  try {
    res = await f(ticketEndpoint(ticketUrl), {
      method: "POST",
      headers: { Authorization: `Bearer ${token}` },
      ...opts.signal ? { signal: opts.signal } : {}
    });
  } catch (e) {
    throw new import_errors.OcvrError("TICKET_FAILED", `ticket request failed: ${errorMessage(e)}`, { cause: e });
  }
  let body;
  try {
    body = JSON.parse(await res.text());
  } catch {
    body = void 0;
  }
  if (res.status === 200) {
    const ticket = body?.data?.ticket;
    if (typeof ticket !== "string" || ticket === "") {
      throw new import_errors.OcvrError("TICKET_FAILED", "ticket request: unexpected answer", { status: res.status });
    }
    return ticket;
  }
  const err = body?.error;
  const code = typeof err?.code === "string" && err.code !== "" ? err.code : res.status === 401 ? "UNAUTHORIZED" : res.status === 429 ? "RATE_LIMITED" : res.status === 503 ? "UNAVAILABLE" : "TICKET_FAILED";
  const message = typeof err?.message === "string" ? err.message : `HTTP ${res.status}`;
  const details = { status: res.status };
  const ra = (0, import_retry.headerRetryAfter)(res.headers.get("Retry-After"));
  if (ra !== void 0) details.retryAfter = ra;
  throw new import_errors.OcvrError(code, `ticket request: HTTP ${res.status} ${code}: ${message}`, details);
}
function errorMessage(e) {
  return e instanceof Error ? e.message : String(e);
}
