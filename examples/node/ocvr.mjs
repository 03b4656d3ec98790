// A backend's whole OCVR integration in Node.js, with the plain `nats`
// client (npm install nats) and `ajv` for the published JSON Schema:
// publish channel and user events through the event stream, check them
// first exactly as the gateways will, and create or revoke sessions through
// ticketsvc's session service so that the session store and the sockets
// stay consistent. pkg/README.md, "Publishing from other languages", is the
// reference; backend.mjs runs it end to end.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { connect, headers } from "nats";
import Ajv2020 from "ajv/dist/2020.js";

const repo = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** The published schema of bus payloads (pkg/protocol/busevent.schema.json). */
export const schemaPath = join(repo, "pkg", "protocol", "busevent.schema.json");

// Ids go into NATS subjects: validate them before they get there.
const ID = /^[A-Za-z0-9_-]{1,64}$/;
const USER_ID = /^[1-9][0-9]{0,18}$/;
const MAX_EVENT_SIZE = 64 << 10;

/** A frame a gateway would refuse, with the reason. */
export class RefusedError extends Error {}

/** An error answer of the session service: code is NOT_FOUND, INVALID_REQUEST or UNAVAILABLE. */
export class ServiceError extends Error {
  constructor(code, message) {
    super(`${code}: ${message}`);
    this.code = code;
  }
}

/**
 * Checks a payload as the gateways check a message on a subject of this
 * scope ("channel", "user" or "broadcast"): the schema, plus the rules a
 * schema cannot state (size, and on a channel the channel_id).
 */
export function makeValidator() {
  const ajv = new Ajv2020({ allErrors: false, strict: false });
  ajv.addSchema(JSON.parse(readFileSync(schemaPath, "utf8")), "busevent");
  const checks = {
    channel: ajv.getSchema("busevent#/$defs/channel"),
    user: ajv.getSchema("busevent#/$defs/user"),
    broadcast: ajv.getSchema("busevent#/$defs/broadcast"),
  };
  return function validate(scope, payload, channelId) {
    const check = checks[scope];
    if (!check) throw new Error(`unknown scope ${scope}`);
    if (Buffer.byteLength(payload) > MAX_EVENT_SIZE) return `${Buffer.byteLength(payload)} bytes, limit ${MAX_EVENT_SIZE}`;
    let frame;
    try {
      frame = JSON.parse(payload);
    } catch (e) {
      return `not JSON: ${e.message}`;
    }
    if (!check(frame)) {
      const [err] = check.errors;
      // The offending value and the rule (the schema path) say more than ajv's message alone.
      const value = err.instancePath.split("/").slice(1).reduce((v, k) => v?.[k.replaceAll("~1", "/").replaceAll("~0", "~")], frame);
      const shown = err.instancePath ? ` = ${JSON.stringify(value)?.slice(0, 80)}` : "";
      return `${err.instancePath || "/"}${shown}: ${err.message}${err.params?.allowedValues ? ` (${err.params.allowedValues.join(", ")})` : ""} [${err.schemaPath}]`;
    }
    if (scope === "channel" && typeof frame.data.channel_id === "string" && frame.data.channel_id !== channelId) {
      return `data.channel_id ${JSON.stringify(frame.data.channel_id)} does not name the subject's channel ${channelId}`;
    }
    return null;
  };
}

export class OcvrBackend {
  /** Connects to NATS; prefix is the environment's --subject-prefix. */
  static async connect({ servers = "nats://127.0.0.1:4222", prefix = "ocvr" } = {}) {
    const nc = await connect({ servers, name: "ocvr-node-example" });
    return new OcvrBackend(nc, prefix);
  }

  constructor(nc, prefix) {
    this.nc = nc;
    this.js = nc.jetstream();
    this.prefix = prefix;
    this.validate = makeValidator();
  }

  /**
   * Publishes frame (an object) to every connection subscribed to a
   * channel, through the event stream: stored, with a position clients
   * resume from. exceptSession: the session id the sender's client got in
   * its `ready` frame (ready.data.session_id) — every connection but that
   * one gets the event, the sender's other devices included. msgId makes a
   * retry idempotent. Returns the stream's acknowledgement {stream, seq,
   * duplicate}.
   */
  async publishToChannel(channelId, frame, { exceptSession, sessions, msgId } = {}) {
    if (!ID.test(channelId)) throw new RangeError(`invalid channel id ${JSON.stringify(channelId)}`);
    return this.#publish(`${this.prefix}.in.channel.${channelId}`, "channel", channelId, frame, { exceptSession, sessions, msgId });
  }

  /** Publishes frame to every connection of a user (same options). */
  async publishToUser(userId, frame, opts = {}) {
    if (!USER_ID.test(String(userId))) throw new RangeError(`invalid user id ${userId}`);
    return this.#publish(`${this.prefix}.in.user.${userId}`, "user", null, frame, opts);
  }

  /** A notification to every connection of a user (times in unix seconds). */
  async notify(userId, { id, type, title, body = "", data = {} }, opts = {}) {
    const frame = { type: "notification", data: { id, type, title, body, created_at: Math.floor(Date.now() / 1000), data } };
    return this.publishToUser(userId, frame, { msgId: id, ...opts });
  }

  async #publish(subject, scope, channelId, frame, { exceptSession, sessions, msgId }) {
    const payload = JSON.stringify(frame); // compact: the bytes clients receive
    const refused = this.validate(scope, payload, channelId);
    if (refused) throw new RefusedError(`the gateways would refuse it: ${refused}`);
    const h = headers();
    h.set("Ocvr-Published-At", (BigInt(Date.now()) * 1_000_000n).toString());
    if (exceptSession) {
      if (!ID.test(exceptSession)) throw new RangeError(`invalid session id ${exceptSession}`);
      h.set("Ocvr-Except-Session", exceptSession);
    }
    if (sessions?.length) {
      for (const s of sessions) if (!ID.test(s)) throw new RangeError(`invalid session id ${s}`);
      h.set("Ocvr-Session", sessions.join(","));
    }
    return this.js.publish(subject, payload, { headers: h, ...(msgId ? { msgID: msgId } : {}) });
  }

  /** A request to ticketsvc's session service; its answer's data, or a ServiceError. */
  async #session(op, body) {
    const m = await this.nc.request(`${this.prefix}.svc.sessions.${op}`, JSON.stringify(body), { timeout: 5000 });
    const reply = JSON.parse(new TextDecoder().decode(m.data));
    if (reply.error) throw new ServiceError(reply.error.code, reply.error.message);
    return reply.data;
  }

  /** Creates a session (the auth service at login): {token, session_id, user_id, expires_at}. */
  createSession(userId, displayName, ttlSeconds = 86400) {
    return this.#session("create", { user_id: userId, display_name: displayName, ttl_seconds: ttlSeconds });
  }

  /** Revokes one session: deleted from the store, its sockets get session_revoked and close (4003). */
  revokeSession(sessionId, reason = "logout") {
    return this.#session("revoke", { session_id: sessionId, reason });
  }

  /** Revokes every session of a user but exceptSessionId. */
  revokeUser(userId, { exceptSessionId, reason = "logout_all" } = {}) {
    return this.#session("revoke_user", { user_id: userId, reason, ...(exceptSessionId ? { except_session_id: exceptSessionId } : {}) });
  }

  async close() {
    await this.nc.drain();
  }
}
