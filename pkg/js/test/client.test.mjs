// Tests of @ocvr/realtime-client (the built dist/) against the real stack:
// NATS, ticketsvc and two gateway processes (test/harness.mjs), driven with
// bin/ocvrctl as a backend would, and with a plain NATS client (the `nats`
// package, no OCVR code) for the golden frames of the protocol document
// (pkg/protocol/testdata/frames.json, shared with the Go tests). Node.js 20
// has no global WebSocket: the tests inject the `ws` package's.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { isDeepStrictEqual } from "node:util";
import { connect as connectNats } from "nats";
import { WebSocket, WebSocketServer } from "ws";

import { MAX_RETRY_AFTER, OcvrClient, OcvrError, fetchTicket, isKnownFrame, reasonRetryAfter, SERVER_FRAME_TYPES } from "../dist/index.js";
import { RefusedUrls, SWITCH_JITTER, headerRetryAfter, reconnectDelay } from "../dist/retry.js";
import { goldenSubject, loadGoldenFrames, nowSeconds, sleep, startStack, waitFor, withoutContinuity } from "./harness.mjs";

const HEARTBEAT_MS = 1000;
const GRACE_MS = 1000;

let stack;
const clients = [];
let nextUser = 100;

before(async () => {
  stack = await startStack({
    gateways: 2,
    gatewayArgs: ["--heartbeat-interval", `${HEARTBEAT_MS}ms`, "--heartbeat-timeout", "3s", "--presence-grace", `${GRACE_MS}ms`],
  });
});

after(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await stack?.stop();
});

/**
 * A WebSocket that records the frames the client sends (parsed, and as
 * sent) and the text of every message it receives, as received. With ctl,
 * the test can also see and tamper with the wire, as a network or a
 * misbehaving server would: ctl.urls records every URL the client opened
 * (ticket and resume parameters included), ctl.sockets every socket;
 * ctl.rewriteUrl(url) and ctl.rewriteSend(text) change what reaches the
 * server (sent/sentRaw keep what the client sent); ctl.duplicate(text)
 * true hands that message to the client twice; ctl.rewriteReceive(text)
 * changes what the client is handed (received keeps what came).
 */
function spyWebSocket(sent, sentRaw = [], received = [], ctl = {}) {
  return class SpyWebSocket extends WebSocket {
    constructor(url, ...rest) {
      ctl.urls?.push(url);
      super(ctl.rewriteUrl ? ctl.rewriteUrl(url) : url, ...rest);
      ctl.sockets?.push(this);
      this.on("message", (data, isBinary) => received.push(isBinary ? null : data.toString("utf8")));
    }
    send(data) {
      sentRaw.push(data);
      sent.push(JSON.parse(data));
      super.send(ctl.rewriteSend ? ctl.rewriteSend(data) : data);
    }
    get onmessage() {
      return super.onmessage;
    }
    set onmessage(fn) {
      super.onmessage = fn && (ctl.duplicate || ctl.rewriteReceive)
        ? (ev) => {
            if (ctl.rewriteReceive && typeof ev.data === "string") ev = { data: ctl.rewriteReceive(ev.data) };
            fn(ev);
            if (ctl.duplicate?.(ev.data)) fn(ev);
          }
        : fn;
    }
  };
}

/** A gate getTicket waits at while it is shut: the test decides when the client reconnects. */
function gate() {
  let shut = false;
  let waiters = [];
  return {
    shut: () => void (shut = true),
    open: () => {
      shut = false;
      for (const w of waiters.splice(0)) w();
    },
    pass: () => (shut ? new Promise((r) => waiters.push(r)) : Promise.resolve()),
  };
}

/**
 * A client for a fresh user (or the given one), with an event recorder. Its
 * getTicket passes h.gate first, and returns h.badTickets bogus tickets
 * (well-formed, unknown) before real ones.
 */
async function newClient({ user, name, channels = [], gateways = [0], options = {}, ctl = {} } = {}) {
  const userId = user ?? nextUser++;
  const displayName = name ?? `User${userId}`;
  const { token, sessionId } = await stack.createSession(userId, displayName);
  const sent = [];
  const sentRaw = [];
  const received = [];
  const events = [];
  const tickets = [];
  const g = gate();
  ctl.urls ??= [];
  ctl.sockets ??= [];
  const h = { gate: g, badTickets: 0, ctl };
  const client = new OcvrClient({
    url: gateways.map((i) => stack.gateways[i].wsUrl),
    getTicket: async ({ signal }) => {
      await g.pass();
      if (h.badTickets > 0) {
        h.badTickets--;
        return `wst_${"b".repeat(40)}${h.badTickets}`;
      }
      const t = await fetchTicket(stack.ticketUrl, token, { signal });
      tickets.push(t);
      return t;
    },
    WebSocket: spyWebSocket(sent, sentRaw, received, ctl),
    backoff: { base: 100, max: 1000 },
    ...options,
  });
  client.connect();
  for (const type of [...SERVER_FRAME_TYPES, "frame", "continuity", "state", "disconnect", "reconnecting", "closed"]) {
    client.on(type, (data) => events.push({ type, data, at: Date.now() }));
  }
  clients.push(client);
  Object.assign(h, {
    client, userId, displayName, token, sessionId, sent, sentRaw, received, events, tickets,
    /** Resolves with the data of the first event of type (at or after index from) matching pred. */
    next: (type, pred = () => true, { timeout = 8000, from = 0 } = {}) =>
      waitFor(() => events.slice(from).find((e) => e.type === type && pred(e.data))?.data, { timeout, what: `${type} for user ${userId}` }),
    count: (type, pred = () => true) => events.filter((e) => e.type === type && pred(e.data)).length,
    /** The data of every event of type (from index from), in order. */
    all: (type, pred = () => true, from = 0) => events.slice(from).filter((e) => e.type === type && pred(e.data)).map((e) => e.data),
  });
  await h.next("ready");
  for (const ch of channels) await client.subscribe(ch);
  return h;
}

/** A fresh channel with the given users as members. */
let nextChannel = 0;
async function newChannel(...userIds) {
  const ch = `ch_js_${process.pid}_${nextChannel++}`;
  await stack.ocvrctl("channel", "create", "--channel", ch);
  for (const u of userIds) await stack.ocvrctl("member", "add", "--channel", ch, "--user", String(u));
  return ch;
}

describe("connect", () => {
  test("fetches a ticket with the session token, connects and reports ready", async () => {
    const { token, sessionId } = await stack.createSession(nextUser, "Token User");
    const states = [];
    const client = new OcvrClient({ url: stack.gateways[0].wsUrl, ticketUrl: stack.ticketUrl, token, WebSocket, autoConnect: false });
    clients.push(client);
    client.on("state", (s) => states.push(s.state));
    assert.equal(client.state, "idle");
    const ready = new Promise((r) => client.once("ready", r));
    client.connect();
    const r = await ready;
    assert.equal(r.user_id, nextUser++);
    assert.equal(r.session_id, sessionId);
    assert.equal(r.heartbeat_interval, HEARTBEAT_MS);
    assert.match(r.connection_id, /^conn_/);
    // server_time: unix seconds, an integer (the protocol document's unit).
    assert.ok(Number.isInteger(r.server_time), `ready.server_time ${r.server_time}`);
    assert.ok(Math.abs(r.server_time - nowSeconds()) <= 5, `ready.server_time ${r.server_time} is not unix seconds near ${nowSeconds()}`);
    assert.equal(client.state, "open");
    assert.deepEqual(client.ready, r);
    assert.deepEqual(states, ["connecting", "open"]);
    await client.close();
    assert.equal(client.state, "closed");
  });

  test("a token function is read at every attempt", async () => {
    const { token } = await stack.createSession(nextUser++, "Fn User");
    let calls = 0;
    const client = new OcvrClient({ url: stack.gateways[1].wsUrl, ticketUrl: stack.ticketUrl, token: async () => (calls++, token), WebSocket });
    clients.push(client);
    client.connect();
    await new Promise((r) => client.once("ready", r));
    assert.equal(calls, 1);
    await client.close();
  });

  test("ticketsvc 401 stops the client without retrying (unauthorized)", async () => {
    let fetches = 0;
    const client = new OcvrClient({
      url: stack.gateways[0].wsUrl,
      ticketUrl: stack.ticketUrl,
      token: "sess_" + "A".repeat(43),
      WebSocket,
      fetch: (...a) => (fetches++, fetch(...a)),
      backoff: { base: 10, max: 50 },
    });
    client.connect();
    const closed = await new Promise((r) => client.once("closed", r));
    assert.equal(closed.reason, "unauthorized");
    assert.ok(closed.error instanceof OcvrError);
    assert.equal(closed.error.code, "UNAUTHORIZED");
    assert.equal(closed.error.status, 401);
    await sleep(300);
    assert.equal(fetches, 1);
    assert.equal(client.state, "closed");
  });
});

describe("subscribe", () => {
  test("resolves on subscribed; typed events for every channel and user frame", async () => {
    const a = await newClient({ name: "Ann" });
    const b = await newClient({ name: "Ben" });
    await stack.ocvrctl("friend", "add", "--user", String(a.userId), "--friend", String(b.userId));
    const ch = await newChannel(a.userId, b.userId);

    await a.client.subscribe(ch);
    assert.ok(a.client.isSubscribed(ch));
    assert.deepEqual(a.client.channels, [ch]);
    // subscribed: the channel, and (continuity) the cursor to start from; no
    // resumed on a fresh subscription.
    const sub = await a.next("subscribed");
    assert.equal(sub.channel_id, ch);
    assert.ok(sub.seq === undefined || Number.isInteger(sub.seq), `subscribed.seq ${sub.seq}`);
    assert.equal(sub.resumed, undefined);
    // Subscribing again is harmless and resolves at once.
    await a.client.subscribe(ch);
    assert.equal(a.sent.filter((f) => f.type === "subscribe").length, 1);

    const id = await stack.ocvrctl("publish", "message-create", "--channel", ch, "--author", String(b.userId), "--name", "Ben", "--content", "hello");
    const mc = await a.next("message_create");
    assert.equal(mc.id, id);
    assert.equal(mc.channel_id, ch);
    assert.deepEqual(mc.author, { id: b.userId, display_name: "Ben" });
    assert.equal(mc.content, "hello");
    assert.ok(Number.isInteger(mc.created_at) && Math.abs(mc.created_at - nowSeconds()) <= 5, `created_at ${mc.created_at}: unix seconds`);
    assert.deepEqual(mc.attachments, []);

    await stack.ocvrctl("publish", "message-update", "--channel", ch, "--id", id, "--content", "hello!");
    const mu = await a.next("message_update");
    assert.equal(mu.id, id);
    assert.equal(mu.content, "hello!");
    assert.ok(Number.isInteger(mu.edited_at) && Math.abs(mu.edited_at - nowSeconds()) <= 5, `edited_at ${mu.edited_at}: unix seconds`);

    await stack.ocvrctl("publish", "message-delete", "--channel", ch, "--id", id);
    assert.deepEqual(await a.next("message_delete"), { id, channel_id: ch });

    const nid = await stack.ocvrctl("notify", "--user", String(a.userId), "--type", "friend_request", "--title", "New friend request", "--body", "Ben wants to be friends");
    const n = await a.next("notification");
    assert.equal(n.id, nid);
    assert.equal(n.type, "friend_request");
    assert.equal(n.title, "New friend request");
    assert.equal(n.body, "Ben wants to be friends");
    assert.ok(Number.isInteger(n.created_at) && Math.abs(n.created_at - nowSeconds()) <= 5, `created_at ${n.created_at}: unix seconds`);
    assert.ok(n.data !== null && typeof n.data === "object" && !Array.isArray(n.data), "notification.data is an object");

    // presence: B's status text reaches its online friend A.
    await stack.ocvrctl("presence", "set", "--user", String(b.userId), "--text", "Playing OCVR");
    const p = await a.next("presence_update", (d) => d.status_text === "Playing OCVR");
    assert.deepEqual(p, { user_id: b.userId, presence: "online", status_text: "Playing OCVR" });

    // The whole frame arrives too, after its typed event.
    const frames = [];
    a.client.on("frame", (f) => frames.push(f));
    await stack.ocvrctl("publish", "message-create", "--channel", ch, "--author", String(b.userId), "--name", "Ben", "--content", "again");
    await waitFor(() => frames.find((f) => f.type === "message_create"), { what: "frame event" });

    await a.client.unsubscribe(ch);
    assert.deepEqual(await a.next("unsubscribed"), { channel_id: ch, reason: "client" });
    assert.deepEqual(a.client.channels, []);
    assert.ok(!a.client.isSubscribed(ch));
  });

  test("rejects with the error frame of that channel (CHANNEL_NOT_FOUND, NOT_MEMBER)", async () => {
    const a = await newClient();
    const other = await newChannel(); // exists, a is not a member
    await assert.rejects(a.client.subscribe("ch_does_not_exist"), (e) => {
      assert.ok(e instanceof OcvrError);
      assert.equal(e.code, "CHANNEL_NOT_FOUND");
      assert.equal(e.channelId, "ch_does_not_exist");
      return true;
    });
    await assert.rejects(a.client.subscribe(other), { name: "OcvrError", code: "NOT_MEMBER", channelId: other });
    // The error events arrived, typed, and the refused channels were dropped.
    assert.equal((await a.next("error", (e) => e.channel_id === other)).code, "NOT_MEMBER");
    assert.deepEqual(a.client.channels, []);
    // Concurrent subscribes: each settles on its own channel's answer.
    const ok = await newChannel(a.userId);
    const results = await Promise.allSettled([a.client.subscribe(ok), a.client.subscribe("ch_nope_2"), a.client.subscribe(other)]);
    assert.deepEqual(results.map((r) => r.status), ["fulfilled", "rejected", "rejected"]);
    assert.deepEqual(a.client.channels, [ok]);
  });

  test("subscribe before the connection is open waits for it", async () => {
    const { token } = await stack.createSession(nextUser, "Early");
    const ch = await newChannel(nextUser++);
    const client = new OcvrClient({ url: stack.gateways[0].wsUrl, ticketUrl: stack.ticketUrl, token, WebSocket, autoConnect: false });
    clients.push(client);
    const p = client.subscribe(ch);
    assert.equal(client.state, "idle");
    client.connect();
    await p;
    assert.ok(client.isSubscribed(ch));
    await client.close();
  });

  test("a channel the server ended (removed, deleted) is not resubscribed", async () => {
    const a = await newClient({ gateways: [0] });
    const keep = await newChannel(a.userId);
    const removed = await newChannel(a.userId);
    const deleted = await newChannel(a.userId);
    for (const ch of [keep, removed, deleted]) await a.client.subscribe(ch);

    await stack.ocvrctl("member", "remove", "--channel", removed, "--user", String(a.userId));
    assert.deepEqual(await a.next("unsubscribed", (u) => u.channel_id === removed), { channel_id: removed, reason: "removed" });
    await stack.ocvrctl("channel", "delete", "--channel", deleted);
    assert.deepEqual(await a.next("unsubscribed", (u) => u.channel_id === deleted), { channel_id: deleted, reason: "deleted" });
    assert.deepEqual(a.client.channels, [keep]);

    // Reconnect (gateway restart): only `keep` is subscribed again.
    const before = a.sent.length;
    await stack.gateways[0].restart();
    await a.next("ready", () => true, { from: a.events.findLastIndex((e) => e.type === "disconnect") });
    await waitFor(() => a.client.isSubscribed(keep), { what: "resubscribed" });
    const subs = a.sent.slice(before).filter((f) => f.type === "subscribe").map((f) => f.data.channel_id);
    assert.deepEqual(subs, [keep]);
  });
});

describe("heartbeat", () => {
  test("heartbeats every heartbeat_interval; the server keeps the connection past its silence timeout", async () => {
    const a = await newClient({ gateways: [1] });
    const start = Date.now();
    await sleep(3500); // > --heartbeat-timeout 3s: without heartbeats the server would close with 4004
    const hbs = a.sent.filter((f) => f.type === "heartbeat").length;
    assert.ok(hbs >= 2 && hbs <= 5, `sent ${hbs} heartbeats in ${Date.now() - start} ms`);
    assert.ok(a.count("heartbeat_ack") >= 2);
    const ack = a.events.find((e) => e.type === "heartbeat_ack").data;
    assert.ok(Number.isInteger(ack.server_time) && Math.abs(ack.server_time - nowSeconds()) <= 5, `heartbeat_ack.server_time ${ack.server_time}: unix seconds`);
    assert.equal(a.count("disconnect"), 0);
    assert.equal(a.client.state, "open");
  });

  test("no ack within an interval: the connection is dropped and the client reconnects elsewhere, resubscribed", async () => {
    const a = await newClient({ gateways: [1, 0] }); // first attempt: gateway 2
    const ch = await newChannel(a.userId);
    await a.client.subscribe(ch);
    const firstConn = a.client.ready.connection_id;
    stack.gateways[1].pause(); // frozen: the socket stays open, nothing answers
    try {
      const d = await a.next("disconnect", () => true, { timeout: 5 * HEARTBEAT_MS });
      assert.equal(d.code, 4000);
      assert.match(d.reason, /heartbeat_ack/);
      assert.equal(d.wasOpen, true);
      const at = a.events.findIndex((e) => e.type === "disconnect");
      await a.next("ready", () => true, { from: at });
      assert.notEqual(a.client.ready.connection_id, firstConn);
      await a.next("subscribed", (s) => s.channel_id === ch, { from: at });
      await stack.ocvrctl("publish", "message-create", "--channel", ch, "--author", "1", "--name", "Alice", "--content", "after the freeze");
      assert.equal((await a.next("message_create")).content, "after the freeze");
    } finally {
      stack.gateways[1].resume();
    }
  });
});

describe("reconnect", () => {
  test("a socket that never opens is dropped after connectTimeout and retried; close() while connecting is clean", async () => {
    const gw = stack.gateways[1];
    const { token } = await stack.createSession(nextUser++, "Frozen");
    gw.pause(); // TCP connects (kernel backlog), the upgrade never answers
    try {
      const disconnects = [];
      const client = new OcvrClient({ url: gw.wsUrl, ticketUrl: stack.ticketUrl, token, WebSocket, connectTimeout: 400, backoff: { base: 50, max: 100 } });
      clients.push(client);
      client.connect();
      client.on("disconnect", (d) => disconnects.push(d));
      await waitFor(() => disconnects.length >= 2, { what: "two connect timeouts" });
      for (const d of disconnects) {
        assert.equal(d.code, 4000);
        assert.equal(d.wasOpen, false);
        assert.match(d.reason, /connect timeout/);
      }
      await waitFor(() => client.state === "connecting", { what: "the next attempt" });
      await sleep(150); // its socket is open at the TCP level, the upgrade pending
      await client.close();
      assert.equal(client.state, "closed");
      await sleep(300); // an unhandled error event from the aborted socket would crash this process
    } finally {
      gw.resume();
    }
  });

  test("after a gateway restart: a new ticket, backoff, resubscribed, events keep coming", async () => {
    const a = await newClient({ gateways: [0] });
    const ch = await newChannel(a.userId);
    await a.client.subscribe(ch);
    const firstConn = a.client.ready.connection_id;
    const gw = stack.gateways[0];

    await gw.stop("SIGTERM"); // drain: 1012
    const d = await a.next("disconnect");
    assert.equal(d.code, 1012);
    assert.equal(d.wasOpen, true);
    const rec = await a.next("reconnecting");
    assert.equal(rec.attempt, 1);
    assert.ok(rec.delay >= 0 && rec.delay <= 100, `first retry delay ${rec.delay}`);
    await sleep(400); // the gateway is down: attempts fail and back off
    await gw.start();

    const at = a.events.findIndex((e) => e.type === "disconnect");
    await a.next("ready", () => true, { from: at });
    assert.notEqual(a.client.ready.connection_id, firstConn);
    await a.next("subscribed", (s) => s.channel_id === ch, { from: at });
    assert.ok(a.client.isSubscribed(ch));
    // A new ticket for every attempt (the failed ones included).
    assert.ok(a.tickets.length >= 2);
    assert.equal(new Set(a.tickets).size, a.tickets.length);
    // The failed attempts backed off exponentially with full jitter; an
    // attempt that reached the draining gateway got HTTP 503 with
    // Retry-After, and waited that hint plus jitter.
    const recs = a.events.filter((e) => e.type === "reconnecting").map((e) => e.data);
    recs.forEach((r, i) => {
      assert.equal(r.attempt, i + 1);
      if (r.retryAfter !== undefined) {
        assert.equal(r.error.code, "UPGRADE_REFUSED", `attempt ${r.attempt}: a hint from ${r.error.message}`);
        assert.ok(r.delay >= r.retryAfter && r.delay <= 2 * r.retryAfter, `attempt ${r.attempt} delay ${r.delay}, hint ${r.retryAfter}`);
      } else {
        assert.ok(r.delay <= Math.min(1000, 100 * 2 ** i), `attempt ${r.attempt} delay ${r.delay}`);
      }
    });

    await stack.ocvrctl("publish", "message-create", "--channel", ch, "--author", "1", "--name", "Alice", "--content", "after the restart");
    assert.equal((await a.next("message_create")).content, "after the restart");
  });

  test("backoff: attempt n waits uniformly in [0, min(max, base·2ⁿ⁻¹)]", async () => {
    const delays = [];
    const client = new OcvrClient({
      url: "ws://127.0.0.1:1/v1/ws",
      getTicket: async () => {
        throw new OcvrError("UNAVAILABLE", "test: ticketsvc down", { status: 503 });
      },
      WebSocket,
      backoff: { base: 4, max: 64 },
    });
    clients.push(client);
    client.connect();
    client.on("reconnecting", (r) => delays.push(r));
    await waitFor(() => delays.length >= 12, { what: "12 retries" });
    await client.close();
    delays.slice(0, 12).forEach((r, i) => {
      assert.equal(r.attempt, i + 1);
      assert.equal(r.error.code, "UNAVAILABLE");
      assert.ok(r.delay >= 0 && r.delay <= Math.min(64, 4 * 2 ** i), `attempt ${r.attempt}: ${r.delay}`);
    });
    // Full jitter: not all at the cap.
    assert.ok(delays.some((r) => r.delay < Math.min(64, 4 * 2 ** (r.attempt - 1)) * 0.9));
  });
});

// Retry hints (gateway/README.md "Close codes", ticketsvc/README.md
// "Errors"): a refusal that says when to come back is retried no earlier
// than that, plus jitter, and the app sees the hint. Stand-in servers (the
// ws package's WebSocketServer, node:http) give hints the real servers may
// not send yet; the real stack's refusals are checked whatever they carry.
describe("retry hints", () => {
  const DUMMY_TICKET = `wst_${"t".repeat(40)}`;
  // Node.js timers may fire a millisecond or so early against Date.now().
  const TIMER_SLACK = 5;

  test("reasonRetryAfter: the retry_after=<seconds> token of a close reason, capped", () => {
    const cases = [
      ["pod at connection limit; retry_after=2", 2000],
      ["retry_after=1", 1000],
      ["not ready; retry_after=5; bus unavailable", 5000],
      ["retry_after=7 pod at connection limit", 7000],
      ["a;retry_after=3;b", 3000],
      ["retry_after=2.5", 2000], // the integer part: "." ends the token
      ["retry_after=60", 60000],
      ["retry_after=61", MAX_RETRY_AFTER],
      ["retry_after=99999999999999999999999", MAX_RETRY_AFTER],
      ["retry_after=0", undefined],
      ["pod at connection limit", undefined], // the gateway before the hint
      ["", undefined],
      ["retry_after=", undefined],
      ["retry_after=-3", undefined],
      ["retry_after=2s", undefined], // not integer seconds
      ["retry_after=abc", undefined],
      ["xretry_after=4", undefined], // another token
      ["my_retry_after=4", undefined],
      ["Retry_After=4", undefined], // the token is lower case
      ["retry-after=4", undefined], // the HTTP header's spelling is not the token
    ];
    for (const [reason, want] of cases) assert.equal(reasonRetryAfter(reason), want, JSON.stringify(reason));
  });

  test("headerRetryAfter: Retry-After in seconds or as an HTTP date, capped", () => {
    const now = Date.UTC(2026, 0, 1, 12, 0, 0);
    const cases = [
      ["1", 1000],
      [" 3 ", 3000],
      ["0", undefined],
      ["120", MAX_RETRY_AFTER],
      ["-1", undefined],
      ["1.5", undefined],
      ["soon", undefined],
      ["", undefined],
      [null, undefined],
      [new Date(now + 10000).toUTCString(), 10000],
      [new Date(now + 3600000).toUTCString(), MAX_RETRY_AFTER],
      [new Date(now - 60000).toUTCString(), undefined],
    ];
    for (const [value, want] of cases) assert.equal(headerRetryAfter(value, now), want, JSON.stringify(value));
  });

  test("reconnectDelay: full jitter without a hint, hint + random(0, hint) with one", () => {
    const base = 100;
    const max = 2000;
    const cases = [
      { name: "first retry", attempt: 0, min: 0, max: 100 },
      { name: "second retry", attempt: 1, min: 0, max: 200 },
      { name: "fourth retry", attempt: 3, min: 0, max: 800 },
      { name: "capped at max", attempt: 5, min: 0, max: 2000 },
      { name: "far past any shift", attempt: 1000, min: 0, max: 2000 },
      { name: "hint on the first retry", attempt: 0, hint: 1000, min: 1000, max: 2000 },
      { name: "hint above the backoff's max", attempt: 9, hint: 5000, min: 5000, max: 10000 },
      { name: "hint below the backoff's ceiling", attempt: 9, hint: 100, min: 100, max: 200 },
      { name: "bogus hint capped", attempt: 0, hint: 3600000, min: MAX_RETRY_AFTER, max: 2 * MAX_RETRY_AFTER },
      { name: "negative hint is none", attempt: 0, hint: -1000, min: 0, max: 100 },
    ];
    for (const c of cases) {
      const mid = c.min + (c.max - c.min) / 2;
      let low = 0;
      let high = 0;
      for (let i = 0; i < 400; i++) {
        const d = reconnectDelay(c.attempt, base, max, c.hint);
        assert.ok(d >= c.min && d <= c.max, `${c.name}: ${d} outside [${c.min}, ${c.max}]`);
        if (d < mid) low++;
        else high++;
      }
      // Jitter: both halves are used (400 draws all in one half do not happen).
      assert.ok(low > 0 && high > 0, `${c.name}: not spread (${low} below ${mid}, ${high} above)`);
    }
  });

  test("RefusedUrls.pick: the first URL from the turn on that is not held; all held: the one free first", () => {
    const now = 1_000_000;
    const cases = [
      { name: "none held: round robin", until: [0, 0, 0], turn: 1, want: 1 },
      { name: "turn wraps", until: [0, 0, 0], turn: 3, want: 0 },
      { name: "held one skipped", until: [0, now + 1000, 0], turn: 1, want: 2 },
      { name: "skip wraps", until: [0, 0, now + 1000], turn: 2, want: 0 },
      { name: "a hold that ended is free", until: [0, now, 0], turn: 1, want: 1 },
      { name: "all held: the earliest", until: [now + 3000, now + 1000, now + 2000], turn: 2, want: 1 },
      { name: "one url", until: [now + 1000], turn: 5, want: 0 },
    ];
    for (const c of cases) {
      const r = new RefusedUrls(c.until.length);
      c.until.forEach((u, i) => {
        if (u > 0) r.refuse(i, u - now, now); // hold i until u
      });
      assert.equal(r.pick(c.turn, now), c.want, c.name);
    }
  });

  test("RefusedUrls.refuse: a short jitter while another URL is free, else until the earliest hold ends plus up to its length", () => {
    const now = 1_000_000;
    const cases = [
      { name: "another free", holds: [], refused: 0, hold: 5000, min: 0, max: SWITCH_JITTER },
      { name: "the other held longer", holds: [[1, 4000]], refused: 0, hold: 1000, min: 1000, max: 2000 },
      { name: "the other free sooner", holds: [[1, 1000]], refused: 0, hold: 5000, min: 1000, max: 2000 },
      { name: "all three held", n: 3, holds: [[0, 2000], [2, 3000]], refused: 1, hold: 5000, min: 2000, max: 4000 },
      { name: "a hold is capped", holds: [[1, 3_600_000]], refused: 0, hold: 3_600_000, min: MAX_RETRY_AFTER, max: 2 * MAX_RETRY_AFTER },
    ];
    for (const c of cases) {
      for (let k = 0; k < 200; k++) {
        const r = new RefusedUrls(c.n ?? 2);
        for (const [i, h] of c.holds) r.refuse(i, h, now);
        const d = r.refuse(c.refused, c.hold, now);
        assert.ok(d >= c.min && d <= c.max, `${c.name}: wait ${d} outside [${c.min}, ${c.max}]`);
      }
    }
  });

  test("a 1013 whose reason says retry_after=1: the next attempt waits at least 1 s; reconnecting carries delay and retryAfter; the count keeps growing", async () => {
    const gw = await standInGateway([
      { close: 1013, reason: "pod at connection limit; retry_after=1" },
      { close: 1013, reason: "pod at connection limit" }, // no hint: plain backoff
      { ready: true },
    ]);
    try {
      const { client, recs, disconnects } = hintedClient({ url: gw.url, getTicket: async () => DUMMY_TICKET, backoff: { base: 20, max: 200 } });
      await waitFor(() => client.state === "open", { what: "ready after two refusals" });
      assert.deepEqual(disconnects.map((d) => [d.code, d.reason]), [
        [1013, "pod at connection limit; retry_after=1"],
        [1013, "pod at connection limit"],
      ]);
      assert.equal(recs.length, 2);
      const [first, second] = recs;
      assert.equal(first.attempt, 1);
      assert.equal(first.retryAfter, 1000);
      assert.ok(first.delay >= 1000 && first.delay <= 2000, `delay ${first.delay}`);
      assert.ok(first.error instanceof OcvrError);
      assert.equal(first.error.code, "CLOSE_1013");
      assert.equal(first.error.closeCode, 1013);
      assert.equal(first.error.retryAfter, 1000);
      // The hint did not reset the count: retry 2 waits up to base·2¹.
      assert.equal(second.attempt, 2);
      assert.equal(second.retryAfter, undefined);
      assert.equal(second.error.retryAfter, undefined);
      assert.ok(second.delay <= 40, `delay ${second.delay}`);
      // On the wire: the attempt after the hinted refusal came no earlier than the hint.
      assert.equal(gw.at.length, 3);
      assert.ok(gw.at[1] - gw.at[0] >= 1000 - TIMER_SLACK, `second attempt ${gw.at[1] - gw.at[0]} ms after the first`);
      await client.close();
    } finally {
      await gw.close();
    }
  });

  for (const status of [429, 503]) {
    test(`the gateway's HTTP ${status} with Retry-After instead of the upgrade (Node.js ws): UPGRADE_REFUSED with status and retryAfter, honoured`, async () => {
      const gw = await standInGateway([{ status, retryAfter: "1" }, { ready: true }]);
      try {
        const { client, recs, disconnects } = hintedClient({ url: gw.url, getTicket: async () => DUMMY_TICKET, backoff: { base: 20, max: 200 } });
        await waitFor(() => client.state === "open", { what: "ready after the refusal" });
        assert.equal(disconnects.length, 1);
        assert.equal(disconnects[0].code, 1006); // what a browser sees too
        assert.equal(recs.length, 1);
        const [r] = recs;
        assert.equal(r.error.code, "UPGRADE_REFUSED");
        assert.equal(r.error.status, status);
        assert.equal(r.error.retryAfter, 1000);
        assert.equal(r.retryAfter, 1000);
        assert.ok(r.delay >= 1000 && r.delay <= 2000, `delay ${r.delay}`);
        assert.ok(gw.at[1] - gw.at[0] >= 1000 - TIMER_SLACK, `second attempt ${gw.at[1] - gw.at[0]} ms after the first`);
        await client.close();
      } finally {
        await gw.close();
      }
    });
  }

  // A refusal is about one pod: with several URLs the next attempt goes to
  // another at once. Fails on a client that waits out the hint first.
  for (const [name, refusal] of [
    ["a 1013 at the hard cap (retry_after=5)", { close: 1013, reason: "pod at connection limit; retry_after=5" }],
    ["a 1013 without a hint", { close: 1013, reason: "pod at connection limit" }],
    ["the gateway's HTTP 429 (Retry-After: 5)", { status: 429, retryAfter: "5" }],
    ["the gateway's HTTP 503 (Retry-After: 5)", { status: 503, retryAfter: "5" }],
  ]) {
    test(`two gateway URLs, the first always refusing with ${name}: the client connects to the second at once, and reconnecting still carries the hint`, async () => {
      const full = await standInGateway([refusal]);
      const room = await standInGateway([{ ready: true }]);
      try {
        const start = Date.now();
        const { client, recs } = hintedClient({ url: [full.url, room.url], getTicket: async () => DUMMY_TICKET, backoff: { base: 20, max: 200 } });
        await waitFor(() => client.state === "open", { what: "ready on the second gateway" });
        const took = Date.now() - start;
        assert.ok(took < 2000, `ready after ${took} ms`);
        assert.equal(client.url, room.url);
        assert.equal(full.at.length, 1);
        assert.equal(room.at.length, 1);
        assert.equal(recs.length, 1);
        const [r] = recs;
        assert.equal(r.attempt, 1);
        const hint = refusal.status ? 5000 : reasonRetryAfter(refusal.reason);
        assert.equal(r.retryAfter, hint);
        assert.equal(r.error.retryAfter, hint);
        assert.ok(r.delay <= SWITCH_JITTER, `delay ${r.delay}`);
        await client.close();
      } finally {
        await full.close();
        await room.close();
      }
    });
  }

  test("two gateway URLs both refusing once with retry_after=1: the second is tried at once, then the client waits until the first's hint has passed", async () => {
    const refusal = { close: 1013, reason: "pod at connection limit; retry_after=1" };
    const a = await standInGateway([refusal, { ready: true }]);
    const b = await standInGateway([refusal, { ready: true }]);
    try {
      const { client, recs } = hintedClient({ url: [a.url, b.url], getTicket: async () => DUMMY_TICKET, backoff: { base: 20, max: 200 } });
      await waitFor(() => client.state === "open", { what: "ready after both refused" });
      assert.equal(client.url, a.url);
      assert.equal(a.at.length, 2);
      assert.equal(b.at.length, 1);
      assert.ok(b.at[0] - a.at[0] < 1000, `the second gateway was tried ${b.at[0] - a.at[0]} ms after the first refused`);
      assert.ok(a.at[1] - a.at[0] >= 1000 - TIMER_SLACK, `the first gateway was tried again ${a.at[1] - a.at[0]} ms after its refusal`);
      assert.equal(recs.length, 2);
      assert.equal(recs[0].retryAfter, 1000);
      assert.ok(recs[0].delay <= SWITCH_JITTER, `first delay ${recs[0].delay}`);
      // Until the first URL's hold ends (less the time the second attempt took), plus up to the hint.
      assert.equal(recs[1].retryAfter, 1000);
      assert.ok(recs[1].delay >= 500 && recs[1].delay <= 2000, `second delay ${recs[1].delay}`);
      await client.close();
    } finally {
      await a.close();
      await b.close();
    }
  });

  test("ticketsvc's hint is not a pod's: with two gateway URLs the client still waits hint + jitter", async () => {
    const a = await standInGateway([{ ready: true }]);
    const b = await standInGateway([{ ready: true }]);
    try {
      let asked = 0;
      const getTicket = async () => {
        if (asked++ === 0) throw new OcvrError("UNAVAILABLE", "test: ticketsvc overloaded", { status: 503, retryAfter: 1000 });
        return DUMMY_TICKET;
      };
      const { client, recs } = hintedClient({ url: [a.url, b.url], getTicket, backoff: { base: 20, max: 200 } });
      await waitFor(() => client.state === "open", { what: "ready after the ticket refusal" });
      assert.equal(recs.length, 1);
      assert.equal(recs[0].retryAfter, 1000);
      assert.ok(recs[0].delay >= 1000 && recs[0].delay <= 2000, `delay ${recs[0].delay}`);
      await client.close();
    } finally {
      await a.close();
      await b.close();
    }
  });

  for (const [status, code] of [[429, "RATE_LIMITED"], [503, "UNAVAILABLE"]]) {
    test(`ticketsvc's ${status} ${code} with Retry-After: the next ticket request waits at least the hint, then the real gateway takes the client`, async () => {
      const { token } = await stack.createSession(nextUser++, `Hinted${status}`);
      const tickets = await standInTicketsvc([{ status, code, retryAfter: "1" }]);
      try {
        const { client, recs } = hintedClient({ url: stack.gateways[0].wsUrl, ticketUrl: tickets.url, token, backoff: { base: 20, max: 200 } });
        await waitFor(() => client.state === "open", { what: "ready after the refusal" });
        assert.equal(recs.length, 1);
        const [r] = recs;
        assert.equal(r.error.code, code);
        assert.equal(r.error.status, status);
        assert.equal(r.error.retryAfter, 1000);
        assert.equal(r.retryAfter, 1000);
        assert.ok(r.delay >= 1000 && r.delay <= 2000, `delay ${r.delay}`);
        assert.ok(tickets.at[1] - tickets.at[0] >= 1000 - TIMER_SLACK, `second ticket request ${tickets.at[1] - tickets.at[0]} ms after the first`);
        await client.close();
      } finally {
        await tickets.close();
      }
    });
  }

  test("the real ticketsvc's 429 RATE_LIMITED (its per-session limit): Retry-After honoured, then connected", async () => {
    // A refill can slip in between the test's 429 and the client's first
    // request; the client then connects at once, and the test tries again.
    for (let attempt = 1; ; attempt++) {
      const { token } = await stack.createSession(nextUser++, "Eager");
      await exhaustTickets(token);
      const { client, recs } = hintedClient({ url: stack.gateways[0].wsUrl, ticketUrl: stack.ticketUrl, token, backoff: { base: 20, max: 200 } });
      await waitFor(() => client.state === "open", { timeout: 20000, what: "ready after the rate limit" });
      await client.close();
      if (recs.length === 0 && attempt < 3) continue;
      assert.ok(recs.length > 0, "three clients connected without a 429");
      const r = recs[0];
      assert.equal(r.error.code, "RATE_LIMITED");
      assert.equal(r.error.status, 429);
      assert.ok(r.retryAfter > 0 && r.retryAfter <= MAX_RETRY_AFTER, `retryAfter ${r.retryAfter}`);
      assert.equal(r.error.retryAfter, r.retryAfter);
      for (const x of recs) {
        if (x.retryAfter !== undefined) assert.ok(x.delay >= x.retryAfter && x.delay <= 2 * x.retryAfter, `delay ${x.delay}, hint ${x.retryAfter}`);
      }
      return;
    }
  });

  test("the real gateway at its connection limit (--hard-max-connections 1) refuses with 1013; the client retries (after retry_after when the reason has it) and connects once the slot is free", async (t) => {
    const full = await stack.startGateway(["--hard-max-connections", "1"]);
    try {
      const holder = await stack.createSession(nextUser++, "Holder");
      const h = new OcvrClient({ url: full.wsUrl, ticketUrl: stack.ticketUrl, token: holder.token, WebSocket });
      clients.push(h);
      h.connect();
      await waitFor(() => h.state === "open", { what: "the holder connected" });
      const late = await stack.createSession(nextUser++, "Late");
      const { client, recs, causes, disconnects } = hintedClient({ url: full.wsUrl, ticketUrl: stack.ticketUrl, token: late.token, backoff: { base: 50, max: 400 } });
      await waitFor(() => recs.length >= 1, { what: "a refusal" });
      await h.close();
      await waitFor(() => client.state === "open", { timeout: 30000, what: "ready once the slot is free" }); // a hint may be seconds
      const refusals = disconnects.filter((d) => d.code === 1013);
      assert.ok(refusals.length >= 1 && causes[0]?.code === 1013, `1013 closes: ${JSON.stringify(disconnects)}`);
      recs.forEach((r, i) => {
        assert.equal(r.attempt, i + 1);
        const d = causes[i];
        if (d?.code !== 1013) return;
        const hint = reasonRetryAfter(d.reason);
        assert.equal(r.retryAfter, hint, `reconnect ${i + 1} after ${JSON.stringify(d.reason)}`);
        assert.equal(r.error.code, "CLOSE_1013");
        if (hint !== undefined) assert.ok(r.delay >= hint && r.delay <= 2 * hint, `delay ${r.delay}, hint ${hint}`);
        else assert.ok(r.delay <= Math.min(400, 50 * 2 ** i), `delay ${r.delay} without a hint`);
      });
      const hinted = refusals.filter((d) => reasonRetryAfter(d.reason) !== undefined).length;
      t.diagnostic(`${hinted} of ${refusals.length} refusals carried retry_after`);
      await client.close();
    } finally {
      await full.stop("SIGKILL");
    }
  });

  test("the real gateway while it drains answers HTTP 503 with Retry-After (Node.js ws); that is the pod's refusal: the next attempt goes to another gateway at once", async () => {
    const draining = await stack.startGateway(["--readiness-delay", "30s"]);
    try {
      draining.proc.kill("SIGTERM");
      await waitFor(async () => {
        try {
          const r = await fetch(`http://127.0.0.1:${draining.adminPort}/readyz`);
          await r.arrayBuffer();
          return r.status === 503;
        } catch {
          return false;
        }
      }, { what: "the gateway unready" });
      const { token } = await stack.createSession(nextUser++, "Drained");
      const { client, recs, recAt } = hintedClient({ url: [draining.wsUrl, stack.gateways[0].wsUrl], ticketUrl: stack.ticketUrl, token, backoff: { base: 20, max: 200 } });
      await waitFor(() => client.state === "open", { what: "ready on the other gateway" });
      const readyAt = Date.now();
      assert.equal(client.url, stack.gateways[0].wsUrl);
      assert.equal(recs.length, 1);
      const [r] = recs;
      assert.equal(r.error.code, "UPGRADE_REFUSED");
      assert.equal(r.error.status, 503);
      assert.ok(r.retryAfter > 0 && r.retryAfter <= MAX_RETRY_AFTER, `retryAfter ${r.retryAfter}`);
      assert.equal(r.error.retryAfter, r.retryAfter);
      assert.ok(r.delay <= SWITCH_JITTER, `delay ${r.delay}, hint ${r.retryAfter}`);
      assert.ok(readyAt - recAt[0] >= r.delay - TIMER_SLACK, `ready ${readyAt - recAt[0]} ms after the reconnect was scheduled, delay ${r.delay}`);
      await client.close();
    } finally {
      await draining.stop("SIGKILL");
    }
  });
});

/**
 * A client with the test's defaults that records its reconnecting events
 * (recs; recAt: when each came; causes: the disconnect each follows, if a
 * socket's end caused it) and disconnects.
 */
function hintedClient(options) {
  const recs = [];
  const recAt = [];
  const causes = [];
  const disconnects = [];
  let last;
  const client = new OcvrClient({ WebSocket, ...options });
  clients.push(client);
  client.connect();
  client.on("disconnect", (d) => {
    disconnects.push(d);
    last = d;
  });
  client.on("reconnecting", (r) => {
    recs.push(r);
    recAt.push(Date.now());
    causes.push(last);
    last = undefined;
  });
  return { client, recs, recAt, causes, disconnects };
}

/**
 * A stand-in gateway on a free port. Upgrade i gets steps[i] (the last
 * step repeats): { status, retryAfter } a plain HTTP answer instead of the
 * upgrade; { close, reason } the upgrade, then that close; { ready } the
 * upgrade and a ready frame. at: when each upgrade request arrived.
 */
describe("close-code policy (pkg/protocol/testdata/policy.json)", () => {
  test("a stand-in gateway closing with each code: the client stops or reconnects as the policy says", async () => {
    const policy = JSON.parse(readFileSync(new URL("../../protocol/testdata/policy.json", import.meta.url), "utf8"));
    // 1005, 1006 and 1015 are never sent in a close frame (the socket reports them itself).
    const sendable = (c) => (c >= 1000 && c <= 1014 && c !== 1004 && c !== 1005 && c !== 1006) || (c >= 3000 && c <= 4999);
    const cases = [...policy.close_codes.map((c) => [c.code, c.action]), ...policy.unlisted_close_codes.examples.map((c) => [c, policy.unlisted_close_codes.action])].filter(([c]) => sendable(c));
    assert.ok(cases.length >= 20, `${cases.length} codes`);
    await Promise.all(
      cases.map(async ([code, action]) => {
        const gw = await standInGateway([{ close: code, reason: "test" }]);
        try {
          const client = new OcvrClient({ url: gw.url, getTicket: async () => "wst_test", WebSocket, backoff: { base: 10000, max: 10000 } });
          clients.push(client);
          const outcome = new Promise((r) => {
            client.once("closed", (c) => r({ stopped: true, c }));
            client.once("reconnecting", () => r({ stopped: false }));
          });
          client.connect();
          const got = await outcome;
          assert.equal(got.stopped, action === "stop", `close ${code}: ${action}`);
          if (got.stopped) assert.equal(got.c.code, code);
          await client.close();
        } finally {
          await gw.close();
        }
      }),
    );
  });
});

async function standInGateway(steps) {
  const at = [];
  const wss = new WebSocketServer({ noServer: true });
  const server = createServer((req, res) => res.writeHead(426).end());
  server.on("upgrade", (req, socket, head) => {
    const step = steps[Math.min(at.length, steps.length - 1)];
    at.push(Date.now());
    if (step.status) {
      socket.end(`HTTP/1.1 ${step.status} Refused\r\nRetry-After: ${step.retryAfter}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      if (step.close) {
        ws.close(step.close, step.reason);
        return;
      }
      ws.send(JSON.stringify({ type: "ready", data: { connection_id: "conn_standin", user_id: 7, session_id: "ses_standin", heartbeat_interval: 30000, server_time: nowSeconds() } }));
    });
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `ws://127.0.0.1:${server.address().port}/v1/ws`,
    at,
    close: async () => {
      for (const ws of wss.clients) ws.terminate();
      server.closeAllConnections?.();
      await new Promise((r) => server.close(r));
    },
  };
}

/**
 * A stand-in in front of the real ticketsvc: request i gets refusals[i] —
 * { status, code, retryAfter }, ticketsvc's JSON error with Retry-After —
 * and the requests after them are passed to ticketsvc. at: when each
 * request arrived.
 */
async function standInTicketsvc(refusals) {
  const at = [];
  const server = createServer(async (req, res) => {
    const i = at.length;
    at.push(Date.now());
    if (i < refusals.length) {
      const r = refusals[i];
      res.writeHead(r.status, { "Content-Type": "application/json", "Retry-After": r.retryAfter });
      res.end(JSON.stringify({ error: { code: r.code, message: "refused by the test" } }));
      return;
    }
    try {
      const up = await fetch(stack.ticketUrl + req.url, { method: req.method, headers: { Authorization: req.headers.authorization ?? "" } });
      const headers = { "Content-Type": up.headers.get("content-type") ?? "application/json" };
      const ra = up.headers.get("retry-after");
      if (ra) headers["Retry-After"] = ra;
      res.writeHead(up.status, headers);
      res.end(await up.text());
    } catch (e) {
      res.writeHead(502).end(String(e));
    }
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    at,
    close: async () => {
      server.closeAllConnections?.();
      await new Promise((r) => server.close(r));
    },
  };
}

/** Asks the real ticketsvc for tickets of one session until it answers 429. */
async function exhaustTickets(token) {
  for (let i = 0; i < 200; i++) {
    try {
      await fetchTicket(stack.ticketUrl, token);
    } catch (e) {
      if (e.code === "RATE_LIMITED") return;
      throw e;
    }
  }
  throw new Error("ticketsvc never said 429");
}

// Continuity (gateway/README.md "Continuity: resuming without loss"): events
// published through the event stream carry their position; after a
// reconnect the client resumes from its cursors and the gateway replays
// what it missed, exactly once, in order. Backends are played with a
// JetStream publish to ocvr.in.channel.<id> / ocvr.in.user.<id> (as the Go
// SDK and ocvrctl do), with a plain NATS client.
describe("continuity", () => {
  let nextMsg = 0;
  const message = (ch, content) => ({
    type: "message_create",
    data: { id: `msg_js_${process.pid}_${nextMsg++}`, channel_id: ch, author: { id: 1, display_name: "Alice" }, content, created_at: nowSeconds(), attachments: [] },
  });
  const notification = (title) => ({
    type: "notification",
    data: { id: `notif_js_${process.pid}_${nextMsg++}`, type: "continuity_test", title, body: "", created_at: nowSeconds(), data: {} },
  });
  /** Publishes message_create frames with these contents through the stream; resolves to their positions. */
  async function sendMessages(ch, contents) {
    const seqs = [];
    for (const c of contents) seqs.push(await stack.publishStream({ channel: ch }, message(ch, c)));
    return seqs;
  }
  async function sendNotifications(userId, titles) {
    const seqs = [];
    for (const t of titles) seqs.push(await stack.publishStream({ user: userId }, notification(t)));
    return seqs;
  }
  const contents = (h, ch, from = 0) => h.all("message_create", (m) => m.channel_id === ch, from).map((m) => m.content);
  const titles = (h, from = 0) => h.all("notification", (n) => n.type === "continuity_test", from).map((n) => n.title);
  const lastIndex = (h, type) => h.events.findLastIndex((e) => e.type === type);
  /** The URL parameters of the client's newest connection. */
  const lastQuery = (h) => new URL(h.ctl.urls.at(-1)).searchParams;

  /**
   * Shuts the gate (the client cannot reconnect yet), ends the client's
   * connection with how(), and waits for the disconnect.
   */
  async function disconnect(h, how) {
    h.gate.shut();
    const from = h.events.length;
    await how();
    return h.next("disconnect", () => true, { from });
  }

  test("socket lost: every missed channel and user event follows exactly once, in order, before live ones; resumed true", async () => {
    const a = await newClient({ gateways: [0] });
    const ch = await newChannel(a.userId);
    // The first connection and subscription: a fresh start, nothing to resume.
    assert.deepEqual(await a.next("continuity", (c) => c.scope === "user"), { scope: "user", reconnect: false, resumed: undefined, seq: a.client.ready.seq ?? 0 });
    assert.equal(typeof a.client.ready.resume_token, "string", "ready carries a resume token");
    await a.client.subscribe(ch);
    const first = await a.next("continuity", (c) => c.scope === "channel");
    assert.equal(first.channelId, ch);
    assert.equal(first.reconnect, false);
    assert.equal(first.resumed, undefined);
    assert.equal(a.client.cursor(ch), first.seq);
    assert.ok(!new URL(a.ctl.urls[0]).searchParams.has("resume"), "the first connection asks for no resume");

    // Live events carry their position; the cursors follow them.
    const live = await sendMessages(ch, ["live 1", "live 2"]);
    const [n0] = await sendNotifications(a.userId, ["notif 0"]);
    await waitFor(() => contents(a, ch).length === 2 && titles(a).length === 1, { what: "the live events" });
    const frame = a.all("frame", (f) => f.type === "message_create").at(-1);
    assert.equal(frame.seq, live[1], "a positioned event carries its seq");
    assert.equal(frame.channel_id, ch, "and its channel_id, top-level");
    assert.equal(a.all("frame", (f) => f.type === "notification").at(-1).channel_id, undefined, "a user event has no top-level channel_id");
    assert.equal(a.client.cursor(ch), live[1]);
    assert.equal(a.client.cursor(), n0);

    // The socket dies (1006); events are published while the client is away.
    const d = await disconnect(a, () => a.ctl.sockets.at(-1).terminate());
    assert.equal(d.code, 1006);
    const missed = await sendMessages(ch, ["missed 1", "missed 2", "missed 3", "missed 4", "missed 5"]);
    const missedUser = await sendNotifications(a.userId, ["notif 1", "notif 2"]);
    const at = a.events.length;
    a.gate.open();

    // The reconnect presents the token and the user cursor; the channel is
    // resubscribed from its cursor.
    const ready = await a.next("ready", () => true, { from: at });
    const q = lastQuery(a);
    assert.ok(q.get("resume"), "resume token presented");
    assert.equal(q.get("seq"), String(n0), "from the user cursor");
    assert.equal(ready.resumed, true, `ready.resumed: ${JSON.stringify(ready)}`);
    const sub = a.sent.filter((f) => f.type === "subscribe").at(-1);
    assert.deepEqual(sub, { type: "subscribe", data: { channel_id: ch, seq: live[1] } });
    assert.deepEqual(await a.next("continuity", (c) => c.scope === "user", { from: at }), { scope: "user", reconnect: true, resumed: true, seq: n0 });
    assert.deepEqual(await a.next("continuity", (c) => c.scope === "channel", { from: at }), { scope: "channel", channelId: ch, reconnect: true, resumed: true, seq: live[1] });

    // Then a live one: after the missed ones.
    await waitFor(() => contents(a, ch).length >= 7 && titles(a).length >= 3, { what: "the missed events" });
    await sendMessages(ch, ["live 3"]);
    await waitFor(() => contents(a, ch).length >= 8, { what: "the live event after the reconnect" });
    await sleep(200);
    assert.deepEqual(contents(a, ch), ["live 1", "live 2", "missed 1", "missed 2", "missed 3", "missed 4", "missed 5", "live 3"]);
    assert.deepEqual(titles(a), ["notif 0", "notif 1", "notif 2"]);
    const seqs = a.all("frame", (f) => f.type === "message_create" && f.channel_id === ch).map((f) => f.seq);
    assert.deepEqual(seqs.slice(2, 7), missed, "the missed events, at their positions");
    assert.deepEqual(a.all("frame", (f) => f.type === "notification").slice(1).map((f) => f.seq), missedUser);
    assert.equal(a.client.cursor(), missedUser[1]);
    assert.equal(a.client.cursor(ch), seqs.at(-1));
  });

  test("gateway drained (1012): the client resumes on the other gateway without loss", async () => {
    const a = await newClient({ gateways: [0, 1] }); // first attempt: gateway 1, the next one: gateway 2
    const ch = await newChannel(a.userId);
    const ch2 = await newChannel(a.userId);
    await a.client.subscribe(ch);
    await a.client.subscribe(ch2);
    await sendMessages(ch, ["before"]);
    await waitFor(() => contents(a, ch).length === 1, { what: "the first event" });
    const gw = stack.gateways[0];
    try {
      const d = await disconnect(a, () => gw.stop("SIGTERM"));
      assert.equal(d.code, 1012);
      await sendMessages(ch, ["during 1", "during 2"]);
      await sendMessages(ch2, ["other channel"]);
      await sendNotifications(a.userId, ["while draining"]);
      const at = a.events.length;
      a.gate.open();
      await a.next("ready", () => true, { from: at });
      assert.equal(a.client.url, stack.gateways[1].wsUrl, "reconnected to the other gateway");
      assert.deepEqual(await a.next("continuity", (c) => c.scope === "user", { from: at }), { scope: "user", reconnect: true, resumed: true, seq: a.client.ready.seq });
      for (const c of [ch, ch2]) {
        const e = await a.next("continuity", (x) => x.scope === "channel" && x.channelId === c, { from: at });
        assert.equal(e.resumed, true, `${c}: ${JSON.stringify(e)}`);
        assert.equal(e.reconnect, true);
      }
      await waitFor(() => contents(a, ch).length >= 3 && contents(a, ch2).length >= 1 && titles(a).length >= 1, { what: "the missed events" });
      await sleep(200);
      assert.deepEqual(contents(a, ch), ["before", "during 1", "during 2"]);
      assert.deepEqual(contents(a, ch2), ["other channel"]);
      assert.deepEqual(titles(a), ["while draining"]);
    } finally {
      a.gate.open();
      await gw.start();
    }
  });

  test("a forged resume token: resumed false for the user and every channel, nothing replayed, events flow again", async () => {
    let forge = false;
    const a = await newClient({
      gateways: [1],
      ctl: {
        rewriteUrl: (u) => {
          if (!forge) return u;
          const url = new URL(u);
          const t = url.searchParams.get("resume");
          // Same shape, another signature.
          url.searchParams.set("resume", t.slice(0, -2) + (t.endsWith("AA") ? "BB" : "AA"));
          return url.toString();
        },
      },
    });
    const ch = await newChannel(a.userId);
    await a.client.subscribe(ch);
    await sendMessages(ch, ["before"]);
    await waitFor(() => contents(a, ch).length === 1, { what: "the first event" });

    forge = true;
    await disconnect(a, () => a.ctl.sockets.at(-1).terminate());
    await sendMessages(ch, ["lost"]);
    await sendNotifications(a.userId, ["lost too"]);
    const at = a.events.length;
    a.gate.open();
    const ready = await a.next("ready", () => true, { from: at });
    assert.equal(ready.resumed, false, `ready: ${JSON.stringify(ready)}`);
    assert.ok(lastQuery(a).get("resume"), "a token was presented");
    assert.deepEqual(await a.next("continuity", (c) => c.scope === "user", { from: at }), { scope: "user", reconnect: true, resumed: false, seq: ready.seq ?? 0 });
    const sub = await a.next("subscribed", (s) => s.channel_id === ch, { from: at });
    assert.equal(sub.resumed, false, `subscribed: ${JSON.stringify(sub)}`);
    const c = await a.next("continuity", (x) => x.scope === "channel", { from: at });
    assert.deepEqual(c, { scope: "channel", channelId: ch, reconnect: true, resumed: false, seq: sub.seq ?? 0 });

    forge = false;
    await sendMessages(ch, ["after"]);
    await waitFor(() => contents(a, ch).includes("after"), { what: "a live event after resumed:false" });
    await sleep(200);
    assert.deepEqual(contents(a, ch), ["before", "after"], "nothing replayed: the app refetches");
    assert.deepEqual(titles(a), []);
  });

  test("never resumes after 4001: the next connection starts afresh and says resumed false", async () => {
    const a = await newClient({ gateways: [0] });
    const ch = await newChannel(a.userId);
    await a.client.subscribe(ch);
    await sendMessages(ch, ["before"]);
    await waitFor(() => contents(a, ch).length === 1, { what: "the first event" });
    a.badTickets = 1; // the next attempt is refused with 4001, the one after succeeds
    await disconnect(a, () => a.ctl.sockets.at(-1).terminate());
    const at = a.events.length;
    a.gate.open();
    await a.next("disconnect", (d) => d.code === 4001, { from: at });
    const ready = await a.next("ready", () => true, { from: at });
    assert.ok(new URL(a.ctl.urls.at(-2)).searchParams.get("resume"), "the refused attempt presented the token");
    assert.ok(!lastQuery(a).has("resume"), "no resume after 4001");
    assert.equal(ready.resumed, undefined);
    assert.deepEqual(await a.next("continuity", (c) => c.scope === "user", { from: at }), { scope: "user", reconnect: true, resumed: false, seq: ready.seq ?? 0 });
    assert.deepEqual(a.sent.filter((f) => f.type === "subscribe").at(-1), { type: "subscribe", data: { channel_id: ch } }, "a plain subscribe");
    const c = await a.next("continuity", (x) => x.scope === "channel", { from: at });
    assert.equal(c.reconnect, true);
    assert.equal(c.resumed, false);
    // The following reconnect resumes again (a new token came with ready).
    await disconnect(a, () => a.ctl.sockets.at(-1).terminate());
    const at2 = a.events.length;
    a.gate.open();
    assert.equal((await a.next("continuity", (x) => x.scope === "channel", { from: at2 })).resumed, true);
    assert.ok(lastQuery(a).get("resume"));
  });

  test("duplicates are dropped: a frame delivered twice, and events replayed from an older cursor", async () => {
    let dup = false;
    let older; // when set: the reconnect asks from this older cursor (the server replays what the client has)
    const a = await newClient({
      gateways: [1],
      ctl: {
        duplicate: (text) => dup && typeof JSON.parse(text).seq === "number",
        rewriteUrl: (u) => {
          if (older === undefined) return u;
          const url = new URL(u);
          if (url.searchParams.has("seq")) url.searchParams.set("seq", String(older.user));
          return url.toString();
        },
        rewriteSend: (text) => {
          const f = JSON.parse(text);
          if (older === undefined || f.type !== "subscribe" || f.data.seq === undefined) return text;
          return JSON.stringify({ type: "subscribe", data: { channel_id: f.data.channel_id, seq: older.channel } });
        },
      },
    });
    const ch = await newChannel(a.userId);
    await a.client.subscribe(ch);

    // Every positioned frame reaches the client twice: the app sees it once.
    dup = true;
    const seqs = await sendMessages(ch, ["one", "two", "three"]);
    const nseqs = await sendNotifications(a.userId, ["n1", "n2"]);
    await waitFor(() => contents(a, ch).length >= 3 && titles(a).length >= 2, { what: "the events" });
    await sleep(200);
    dup = false;
    assert.deepEqual(contents(a, ch), ["one", "two", "three"]);
    assert.deepEqual(titles(a), ["n1", "n2"]);
    assert.equal(a.all("frame", (f) => f.type === "message_create").length, 3, "no frame event for a duplicate either");
    assert.equal(a.client.cursor(ch), seqs[2]);

    // The reconnect asks from older cursors: the gateway replays events the
    // client already has; they are dropped, the new ones delivered once.
    older = { user: nseqs[0], channel: seqs[0] };
    await disconnect(a, () => a.ctl.sockets.at(-1).terminate());
    await sendMessages(ch, ["four"]);
    await sendNotifications(a.userId, ["n3"]);
    const at = a.events.length;
    const fromReceived = a.received.length;
    a.gate.open();
    assert.equal((await a.next("continuity", (c) => c.scope === "channel", { from: at })).resumed, true);
    await waitFor(() => contents(a, ch).length >= 4 && titles(a).length >= 3, { what: "the missed events" });
    await sleep(300);
    older = undefined;
    const replayed = a.received.slice(fromReceived).map((r) => JSON.parse(r)).filter((f) => typeof f.seq === "number");
    assert.ok(replayed.some((f) => f.seq === seqs[1]) && replayed.some((f) => f.seq === nseqs[1]), `the gateway replayed from the older cursors: ${replayed.map((f) => f.seq)}`);
    assert.deepEqual(contents(a, ch), ["one", "two", "three", "four"]);
    assert.deepEqual(titles(a), ["n1", "n2", "n3"]);
  });

  test("after a fresh start, ready's and subscribed's seq drop nothing the connection delivers", async () => {
    // A gateway whose cursors ran ahead of the events queued behind ready or
    // subscribed (as an earlier gateway build did under load): those events
    // are new to this connection, and are delivered.
    const ahead = 1e12;
    const a = await newClient({
      gateways: [0],
      ctl: {
        rewriteReceive: (text) => {
          const f = JSON.parse(text);
          if (f.type !== "ready" && f.type !== "subscribed") return text;
          return JSON.stringify({ ...f, data: { ...f.data, seq: ahead } });
        },
      },
    });
    const ch = await newChannel(a.userId);
    await a.client.subscribe(ch);
    assert.equal(a.client.cursor(), ahead);
    assert.equal(a.client.cursor(ch), ahead);
    await sendMessages(ch, ["first", "second"]);
    await sendNotifications(a.userId, ["note"]);
    await waitFor(() => contents(a, ch).length >= 2 && titles(a).length >= 1, { what: "the events" });
    assert.deepEqual(contents(a, ch), ["first", "second"]);
    assert.deepEqual(titles(a), ["note"]);
  });

  test("close() forgets the token and the cursors: connect() starts afresh", async () => {
    const a = await newClient({ gateways: [0] });
    const ch = await newChannel(a.userId);
    await a.client.subscribe(ch);
    await sendMessages(ch, ["x"]);
    await waitFor(() => a.client.cursor(ch) > 0, { what: "a cursor" });
    await a.client.close();
    assert.equal(a.client.cursor(), undefined);
    assert.equal(a.client.cursor(ch), undefined);
    const at = a.events.length;
    a.client.connect();
    await a.next("ready", () => true, { from: at });
    assert.ok(!lastQuery(a).has("resume"), "a fresh start presents no token");
    assert.deepEqual(await a.next("continuity", () => true, { from: at }), { scope: "user", reconnect: false, resumed: undefined, seq: a.client.ready.seq ?? 0 });
    // The channel was kept across close() and connect(): subscribed again,
    // as a fresh start (load its state).
    assert.deepEqual(a.client.channels, [ch]);
    const c = await a.next("continuity", (x) => x.scope === "channel", { from: at });
    assert.deepEqual({ ...c, seq: 0 }, { scope: "channel", channelId: ch, reconnect: false, resumed: undefined, seq: 0 });
    assert.equal(a.client.channel(ch).state, "subscribed");
  });

  // Per-channel subscriptions (client.channel): states, their own events,
  // honest reconnects, refusals and timeouts.
  /** Records a subscription's events: [type, data] in order. */
  function record(sub, types = ["state", "subscribed", "unsubscribed", "error", "message_create", "channel_update", "frame"]) {
    const evs = [];
    for (const t of types) sub.on(t, (d) => evs.push([t, d]));
    return evs;
  }

  test("channel(): unsubscribed → subscribing → subscribed, its own events only; after a reconnect each channel says resumed (refetch false), and connected says reconnect", async () => {
    const a = await newClient({ gateways: [0] });
    const [c1, c2] = [await newChannel(a.userId), await newChannel(a.userId)];
    const s1 = a.client.channel(c1);
    assert.equal(a.client.channel(c1), s1, "one object per channel");
    assert.equal(s1.state, "unsubscribed");
    const e1 = record(s1);
    const e2 = record(a.client.channel(c2));
    const p = s1.subscribe();
    assert.equal(s1.state, "subscribing");
    await p;
    assert.equal(s1.state, "subscribed");
    await a.client.channel(c2).subscribe();
    assert.deepEqual(e1.filter(([t]) => t === "state").map(([, d]) => d.state), ["subscribing", "subscribed"]);
    const first = e1.find(([t]) => t === "subscribed")[1];
    assert.deepEqual({ ...first, seq: 0 }, { channelId: c1, reconnect: false, resumed: undefined, refetch: true, seq: 0 });

    await sendMessages(c1, ["one"]);
    await sendMessages(c2, ["two"]);
    // An event type the client does not know, naming the channel in its data: the channel's too.
    await stack.publishStream({ channel: c1 }, { type: "channel_update", data: { channel_id: c1, name: "Renamed" } });
    await waitFor(() => e1.some(([t]) => t === "channel_update") && e2.some(([t]) => t === "message_create"), { what: "channel events" });
    assert.deepEqual(e1.filter(([t]) => t === "message_create").map(([, m]) => m.content), ["one"]);
    assert.deepEqual(e2.filter(([t]) => t === "message_create").map(([, m]) => m.content), ["two"]);
    assert.deepEqual(e1.find(([t]) => t === "channel_update")[1], { channel_id: c1, name: "Renamed" });
    assert.deepEqual(e1.filter(([t]) => t === "frame").map(([, f]) => f.type), ["message_create", "channel_update"]);

    // A reconnect: both go subscribing, then subscribed with resumed true.
    const connected = [];
    a.client.on("connected", (c) => connected.push(c));
    const from1 = e1.length;
    await disconnect(a, () => a.ctl.sockets.at(-1).terminate());
    assert.equal(s1.state, "subscribing");
    await sendMessages(c1, ["missed"]);
    a.gate.open();
    await waitFor(() => e1.slice(from1).some(([t]) => t === "subscribed"), { what: "resubscribed" });
    await waitFor(() => contents(a, c1).includes("missed"), { what: "the missed event" });
    const again = e1.slice(from1).find(([t]) => t === "subscribed")[1];
    assert.equal(again.reconnect, true);
    assert.equal(again.resumed, true);
    assert.equal(again.refetch, false);
    assert.deepEqual(e1.slice(from1).filter(([t]) => t === "state").map(([, d]) => d.state), ["subscribing", "subscribed"]);
    assert.equal(connected.length, 1);
    assert.equal(connected[0].reconnect, true);
    assert.equal(connected[0].resumed, true);
    assert.equal(connected[0].ready.user_id, a.userId);
    assert.equal(connected[0].url, stack.gateways[0].wsUrl);

    // A channel id the gateway would refuse: refused at once, nothing sent.
    for (const bad of ["ch.*", "", "x".repeat(65), "ch general"]) {
      await assert.rejects(a.client.subscribe(bad), { code: "INVALID_MESSAGE", channelId: bad });
    }
    assert.equal(a.sent.filter((f) => f.type === "subscribe" && !/^ch_js_/.test(f.data.channel_id)).length, 0);
    assert.deepEqual(a.client.channels.sort(), [c1, c2].sort());

    await s1.unsubscribe();
    assert.equal(s1.state, "unsubscribed");
    assert.deepEqual(e1.filter(([t]) => t === "unsubscribed").map(([, d]) => d), [{ reason: "client" }]);
    assert.deepEqual(a.client.channels, [c2]);
  });

  test("a resubscription refused after a reconnect (removed while away) ends that channel with the server's code; the others resubscribe", async () => {
    const a = await newClient({ gateways: [0] });
    const [keep, gone] = [await newChannel(a.userId), await newChannel(a.userId)];
    await a.client.channel(keep).subscribe();
    const sub = a.client.channel(gone);
    await sub.subscribe();
    const evs = record(sub);
    await disconnect(a, () => a.ctl.sockets.at(-1).terminate());
    await stack.ocvrctl("member", "remove", "--channel", gone, "--user", String(a.userId));
    a.gate.open();
    const end = await waitFor(() => evs.find(([t]) => t === "unsubscribed")?.[1], { what: "the refusal" });
    assert.equal(end.reason, "refused");
    assert.ok(end.error instanceof OcvrError);
    assert.equal(end.error.code, "NOT_MEMBER");
    assert.equal(end.error.channelId, gone);
    assert.equal(sub.state, "unsubscribed");
    await waitFor(() => a.client.channel(keep).state === "subscribed", { what: "the other channel resubscribed" });
    assert.deepEqual(a.client.channels, [keep]);
  });

  test("unsubscribe then subscribe at once (a component moving), answered or not yet: subscribed in the end, events flow", async () => {
    const a = await newClient({ gateways: [0] });
    const ch = await newChannel(a.userId);
    const sub = a.client.channel(ch);
    // The first subscribe not answered yet.
    const first = sub.subscribe();
    const off = sub.unsubscribe();
    await assert.rejects(first, { code: "CLOSED" });
    await sub.subscribe();
    await off;
    // Live, then the same once more.
    const again = sub.unsubscribe();
    await sub.subscribe();
    await again;
    await waitFor(() => sub.state === "subscribed" && a.client.isSubscribed(ch), { what: "subscribed in the end" });
    await sleep(200); // any late answer of the server
    assert.equal(sub.state, "subscribed");
    const got = [];
    sub.on("message_create", (m) => got.push(m.content));
    await sendMessages(ch, ["still here"]);
    await waitFor(() => got.includes("still here"), { what: "an event after the moves" });
  });

  test("subscribe times out (TIMEOUT) while tickets cannot be had, stays subscribing, and completes when the connection comes back", async () => {
    const a = await newClient({ gateways: [0] });
    const ch = await newChannel(a.userId);
    await disconnect(a, () => a.ctl.sockets.at(-1).terminate());
    const sub = a.client.channel(ch);
    const evs = record(sub);
    const started = Date.now();
    await assert.rejects(sub.subscribe({ timeout: 300 }), (e) => e instanceof OcvrError && e.code === "TIMEOUT" && e.channelId === ch);
    assert.ok(Date.now() - started >= 290, "not before the timeout");
    assert.equal(sub.state, "subscribing");
    assert.equal(evs.find(([t]) => t === "error")?.[1].code, "TIMEOUT");
    // The client's default (subscribeTimeout) applies to client.subscribe too.
    const other = await newChannel(a.userId);
    a.gate.open();
    await waitFor(() => sub.state === "subscribed", { what: "subscribed once connected" });
    await a.client.subscribe(other);
    assert.deepEqual(a.client.channels.sort(), [ch, other].sort());
  });

  test("the constructor does nothing; connect() then close() before the first attempt opens nothing; subscribe() on an idle client connects", async () => {
    const { token } = await stack.createSession(nextUser++, "Lazy");
    let fetches = 0;
    const urls = [];
    class CountingWebSocket extends WebSocket {
      constructor(url, ...rest) {
        urls.push(url);
        super(url, ...rest);
      }
    }
    const opts = { url: stack.gateways[0].wsUrl, ticketUrl: stack.ticketUrl, token, WebSocket: CountingWebSocket, fetch: (...x) => (fetches++, fetch(...x)) };
    const client = new OcvrClient(opts);
    clients.push(client);
    // Server-side rendering (Node.js 20 has no global WebSocket): constructing is fine.
    new OcvrClient({ url: stack.gateways[0].wsUrl, ticketUrl: stack.ticketUrl, token });
    assert.throws(() => new OcvrClient({ url: stack.gateways[0].wsUrl, ticketUrl: stack.ticketUrl, token }).connect(), TypeError);
    await sleep(200);
    assert.equal(client.state, "idle");
    assert.equal(fetches + urls.length, 0);
    // StrictMode's mount, unmount, mount: one attempt.
    client.connect();
    await client.close();
    client.connect();
    await waitFor(() => client.state === "open", { what: "open" });
    assert.equal(fetches, 1);
    assert.equal(urls.length, 1);
    await client.close();

    const lazy = new OcvrClient(opts);
    clients.push(lazy);
    const ch = await newChannel(nextUser - 1);
    await lazy.subscribe(ch); // connects
    assert.equal(lazy.state, "open");
    assert.equal(lazy.channel(ch).state, "subscribed");
    await lazy.close();
    assert.equal(lazy.channel(ch).state, "subscribing", "kept for the next connect()");
  });
});

describe("stop conditions", () => {
  test("4003 session revoked: session_revoked event, closed, never reconnects", async () => {
    const a = await newClient({ gateways: [0, 1] });
    const ch = await newChannel(a.userId);
    const pendingSub = a.client.subscribe(ch);
    await pendingSub;
    await stack.ocvrctl("session", "revoke", "--session", a.sessionId, "--reason", "logout");
    assert.deepEqual(await a.next("session_revoked"), { reason: "logout" });
    const closed = await a.next("closed");
    assert.equal(closed.reason, "session_revoked");
    assert.equal(closed.code, 4003);
    assert.equal(closed.error.code, "SESSION_REVOKED");
    assert.equal(closed.error.closeCode, 4003);
    assert.match(closed.error.message, /logout/);
    assert.equal(a.client.state, "closed");
    const tickets = a.tickets.length;
    await sleep(1000);
    assert.equal(a.tickets.length, tickets, "no ticket requested after 4003");
    assert.equal(a.count("reconnecting"), 0);
    await assert.rejects(a.client.subscribe(ch), { code: "CLOSED" });
  });

  test("repeated 4001 (invalid tickets): stops after maxInvalidTickets fresh tickets", async () => {
    let calls = 0;
    const errors = [];
    const client = new OcvrClient({
      url: stack.gateways[0].wsUrl,
      getTicket: async () => `wst_${"x".repeat(40)}${calls++}`, // well-formed, unknown
      WebSocket,
      backoff: { base: 10, max: 50 },
    });
    clients.push(client);
    client.on("error", (e) => errors.push(e));
    const pending = client.subscribe("ch_general");
    const closed = await new Promise((r) => client.once("closed", r));
    assert.equal(closed.reason, "invalid_ticket");
    assert.equal(closed.code, 4001);
    assert.equal(closed.error.code, "INVALID_TICKET");
    assert.equal(calls, 3);
    assert.equal(errors.length, 3);
    assert.ok(errors.every((e) => e.code === "INVALID_TICKET"));
    await assert.rejects(pending, { code: "INVALID_TICKET", channelId: "ch_general" });
    await sleep(300);
    assert.equal(calls, 3);
  });

  test("close(): clean 1000, pending subscribes reject, no reconnect", async () => {
    const a = await newClient({ gateways: [1] });
    const ch = await newChannel(a.userId);
    await a.client.subscribe(ch);
    const tickets = a.tickets.length;
    await a.client.close();
    const closed = await a.next("closed");
    assert.deepEqual(closed, { reason: "client" });
    assert.equal(a.client.state, "closed");
    // The channels are kept for a later connect(), subscribing meanwhile.
    assert.deepEqual(a.client.channels, [ch]);
    assert.equal(a.client.channel(ch).state, "subscribing");
    await a.client.close(); // idempotent
    await sleep(500);
    assert.equal(a.tickets.length, tickets);
    assert.equal(a.count("reconnecting"), 0);
    assert.equal(a.count("disconnect"), 0);

    // A subscribe pending while connecting rejects with CLOSED.
    const { token } = await stack.createSession(nextUser++, "Closer");
    const c = new OcvrClient({ url: stack.gateways[0].wsUrl, ticketUrl: stack.ticketUrl, token, WebSocket });
    const p = c.subscribe(ch);
    await c.close();
    await assert.rejects(p, { code: "CLOSED", channelId: ch });
  });
});

describe("listeners", () => {
  test("close() from inside listeners stops everything (no timers left behind)", async () => {
    const { token } = await stack.createSession(nextUser++, "Listener");
    const client = new OcvrClient({ url: stack.gateways[0].wsUrl, ticketUrl: stack.ticketUrl, token, WebSocket, autoConnect: false });
    const seen = [];
    client.on("state", ({ state }) => seen.push(state));
    client.on("ready", () => client.close());
    const closed = new Promise((r) => client.once("closed", r));
    client.connect();
    assert.deepEqual(await closed, { reason: "client" });
    assert.deepEqual(seen, ["connecting", "open", "closed"]);

    let retries = 0;
    const failing = new OcvrClient({
      url: stack.gateways[0].wsUrl,
      getTicket: async () => {
        throw new Error("test: no ticket");
      },
      WebSocket,
    });
    failing.connect();
    failing.on("reconnecting", () => {
      retries++;
      failing.close();
    });
    await waitFor(() => failing.state === "closed", { what: "closed from a reconnecting listener" });
    await sleep(200);
    assert.equal(retries, 1);
  });
});

describe("typing", () => {
  test("throttled client-side to one frame per channel per 3 s, forwarded to the other members only", async () => {
    const a = await newClient({ name: "Typist", gateways: [0] });
    const b = await newClient({ name: "Watcher", gateways: [1] });
    const ch = await newChannel(a.userId, b.userId);
    const ch2 = await newChannel(a.userId);

    assert.equal(a.client.typing(ch), false, "not subscribed yet: nothing sent");
    await a.client.subscribe(ch);
    await a.client.subscribe(ch2);
    await b.client.subscribe(ch);

    const results = [];
    for (let i = 0; i < 20; i++) {
      results.push(a.client.typing(ch));
      await sleep(20);
    }
    assert.equal(results.filter(Boolean).length, 1);
    assert.equal(results[0], true);
    assert.equal(a.client.typing(ch2), true, "the throttle is per channel");
    assert.equal(a.sent.filter((f) => f.type === "typing" && f.data.channel_id === ch).length, 1);

    const t = await b.next("typing_start");
    assert.deepEqual(t, { channel_id: ch, user_id: a.userId, display_name: "Typist" });
    await sleep(300);
    assert.equal(b.count("typing_start"), 1);
    assert.equal(a.count("typing_start"), 0, "never to the typing user");

    // With a shorter client throttle the server's own 3 s throttle still
    // coalesces; the client sends again once its window has passed.
    const fast = await newClient({ user: a.userId, name: "Typist", gateways: [0], options: { typingThrottle: 200 } });
    await fast.client.subscribe(ch);
    assert.equal(fast.client.typing(ch), true);
    assert.equal(fast.client.typing(ch), false);
    await sleep(250);
    assert.equal(fast.client.typing(ch), true);
  });
});

describe("presence", () => {
  test("a friend's online and offline (after the grace) arrive as presence_update", async () => {
    const a = await newClient({ name: "Watcher" });
    const friendId = nextUser++;
    await stack.ocvrctl("friend", "add", "--user", String(a.userId), "--friend", String(friendId));
    const f = await newClient({ user: friendId, name: "Friend", gateways: [1] });
    assert.deepEqual(await a.next("presence_update", (p) => p.user_id === friendId), { user_id: friendId, presence: "online", status_text: "" });
    const closedAt = Date.now();
    await f.client.close();
    await a.next("presence_update", (p) => p.user_id === friendId && p.presence === "offline", { timeout: GRACE_MS + 5000 });
    assert.ok(Date.now() - closedAt >= GRACE_MS - 100, "offline only after the grace");
  });
});

// The golden frames: every example frame of the protocol document (and the
// extensions and pass-through cases), from the fixture the Go tests read.
// Backends' frames are published with a plain NATS client, as a backend in
// any language would, on the subject the fixture names; the client must
// receive the same bytes and hand the same data to the app.
describe("golden frames (pkg/protocol/testdata/frames.json)", () => {
  const golden = loadGoldenFrames();
  const entry = (name) => {
    const e = golden.find((g) => g.name === name);
    assert.ok(e, `frames.json has no frame named ${name}`);
    return e;
  };
  const CH = entry("subscribe").frame.data.channel_id; // the document's ch_abc123
  const WAIT = 4000;
  let nc;
  let channelCreated;

  before(async () => {
    nc = await connectNats({ servers: stack.natsUrl, name: "ocvr-js-golden" });
  });

  after(async () => {
    await nc?.close();
  });

  /** Publishes bytes on a subject with the plain NATS client (no headers), flushed. */
  async function publish(subject, wire) {
    nc.publish(subject, new TextEncoder().encode(wire));
    await nc.flush();
  }

  /** Creates the document's channel (once) with these members. */
  async function documentChannel(...userIds) {
    channelCreated ??= stack.ocvrctl("channel", "create", "--channel", CH);
    await channelCreated;
    for (const u of userIds) await stack.ocvrctl("member", "add", "--channel", CH, "--user", String(u));
  }

  const parse = (raw) => {
    try {
      return raw === null ? undefined : JSON.parse(raw);
    } catch {
      return undefined;
    }
  };

  /**
   * Waits for a received message whose text is exactly `wire` (with
   * continuity: compact, and `wire` once the additive continuity fields are
   * taken out); the failure shows what came instead.
   */
  async function receivedVerbatim(h, wire, what, { continuity = false } = {}) {
    const same = (r) => r === wire || (continuity && r !== null && JSON.stringify(JSON.parse(r)) === r && withoutContinuity(r) === wire);
    try {
      await waitFor(() => h.received.some(same), { timeout: WAIT, what });
    } catch (e) {
      const type = JSON.parse(wire).type;
      const same = h.received.filter((r) => parse(r)?.type === type);
      throw new Error(`${e.message}\n  want: ${wire}\n  got (${type}): ${same.length ? same.join("\n        ") : "nothing"}`);
    }
  }

  /** The first received frame of a type, parsed, with its text. */
  async function receivedOfType(h, type, from = 0) {
    const raw = await waitFor(() => h.received.slice(from).find((r) => parse(r)?.type === type), { timeout: WAIT, what: `a ${type} for user ${h.userId}` });
    return { raw, frame: JSON.parse(raw) };
  }

  /** The same keys in the same order, each value of the same JSON type, as a fixture frame's data. */
  function assertShape(got, want, what) {
    assert.deepEqual(Object.keys(got), Object.keys(want), `${what}: keys`);
    for (const k of Object.keys(want)) {
      const kind = (v) => (v === null ? "null" : Array.isArray(v) ? "array" : Number.isInteger(v) ? "integer" : typeof v);
      assert.equal(kind(got[k]), kind(want[k]), `${what}: ${k} is ${JSON.stringify(got[k])}, the document's is ${JSON.stringify(want[k])}`);
    }
  }

  test("the fixture is the document's, with pass-through extras", () => {
    const server = golden.filter((g) => g.direction === "server");
    for (const name of ["heartbeat", "subscribe", "unsubscribe", "typing"]) assert.equal(entry(name).direction, "client");
    for (const g of golden) {
      assert.equal(JSON.stringify(JSON.parse(g.wire)), g.wire);
      assert.ok(g.direction === "client" || g.direction === "server", g.name);
    }
    assert.ok(server.some((g) => g.extra && g.subject === "channel" && !SERVER_FRAME_TYPES.includes(g.frame.type)), "an unknown channel event type");
    assert.ok(server.some((g) => g.extra && g.subject === "user" && !SERVER_FRAME_TYPES.includes(g.frame.type)), "an unknown user event type");
    assert.equal(entry("heartbeat_ack").frame.data.server_time, 1703523600, "server_time in seconds");
    assert.equal(entry("ready").frame.data.heartbeat_interval, 30000, "heartbeat_interval in milliseconds");
  });

  test("ready and the client → server frames: the document's bytes, answered as it says, across two gateways", async () => {
    const a = await newClient({ name: "Golden Typist", gateways: [0] });
    const b = await newClient({ name: "Golden Watcher", gateways: [1] });
    await documentChannel(a.userId, b.userId);

    // ready (extension): the fixture's keys and types; server_time in unix
    // seconds, heartbeat_interval in milliseconds.
    for (const h of [a, b]) {
      const { frame: ready } = await receivedOfType(h, "ready");
      assert.deepEqual(Object.keys(ready), ["type", "data"]);
      // The document's fields, then the continuity extension's.
      assertShape(JSON.parse(withoutContinuity(JSON.stringify(ready))).data, JSON.parse(withoutContinuity(entry("ready").wire)).data, "ready");
      assert.equal(typeof ready.data.resume_token, "string", "ready.resume_token (continuity)");
      assert.equal(ready.data.resumed, undefined, "no resumed on a connection that asked for no resume");
      assert.equal(ready.data.user_id, h.userId);
      assert.equal(ready.data.heartbeat_interval, HEARTBEAT_MS, "heartbeat_interval: milliseconds");
      assert.ok(Math.abs(ready.data.server_time - nowSeconds()) <= 5, `ready.server_time ${ready.data.server_time} is not unix seconds near ${nowSeconds()}`);
      assert.deepEqual(h.client.ready, ready.data, "the client hands ready over as received");
    }

    // heartbeat → heartbeat_ack {server_time: unix seconds}.
    const from = a.received.length;
    await waitFor(() => a.sentRaw.includes(entry("heartbeat").wire), { timeout: 3 * HEARTBEAT_MS, what: "a heartbeat, as the document's" });
    const { frame: ack } = await receivedOfType(a, "heartbeat_ack", from);
    assert.deepEqual(Object.keys(ack), ["type", "data"]);
    assertShape(ack.data, entry("heartbeat_ack").frame.data, "heartbeat_ack");
    const skew = ack.data.server_time - nowSeconds();
    assert.ok(Math.abs(skew) <= 5, `heartbeat_ack.server_time ${ack.data.server_time} is ${skew} s from Math.floor(Date.now()/1000): not unix seconds`);
    await a.next("heartbeat_ack", (d) => d.server_time === ack.data.server_time);

    // subscribe → subscribed.
    await a.client.subscribe(CH);
    await b.client.subscribe(CH);
    for (const h of [a, b]) {
      assert.ok(h.sentRaw.includes(entry("subscribe").wire), `sent the document's subscribe: ${JSON.stringify(h.sentRaw)}`);
      await receivedVerbatim(h, entry("subscribed").wire, "subscribed", { continuity: true });
    }

    // typing → accepted (no error); the other subscriber gets typing_start,
    // in the document's form.
    const errors = a.count("error");
    assert.equal(a.client.typing(CH), true);
    assert.ok(a.sentRaw.includes(entry("typing").wire), "sent the document's typing");
    const typingStart = JSON.stringify({ type: "typing_start", data: { channel_id: CH, user_id: a.userId, display_name: a.displayName } });
    await receivedVerbatim(b, typingStart, "typing_start on the other gateway");
    assert.deepEqual(await b.next("typing_start", (t) => t.user_id === a.userId), JSON.parse(typingStart).data);
    assertShape(JSON.parse(typingStart).data, entry("typing_start").frame.data, "typing_start");
    await sleep(300);
    assert.equal(a.count("error"), errors, `typing was answered with an error: ${JSON.stringify(a.events.filter((e) => e.type === "error"))}`);
    assert.equal(a.count("typing_start"), 0, "never to the typing user");

    // unsubscribe → unsubscribed.
    await a.client.unsubscribe(CH);
    assert.ok(a.sentRaw.includes(entry("unsubscribe").wire), "sent the document's unsubscribe");
    await receivedVerbatim(a, entry("unsubscribed").wire, "unsubscribed");

    // A subscribe the server refuses: the error frame of that channel.
    const c = await newClient({ name: "Golden Outsider", gateways: [1] });
    await assert.rejects(c.client.subscribe(CH), { code: "NOT_MEMBER", channelId: CH });
    await receivedVerbatim(c, entry("error_not_member").wire, "error NOT_MEMBER");
  });

  test("a bad ticket: the document's error frame, byte for byte, then 4001", async () => {
    const sentRaw = [];
    const received = [];
    const errors = [];
    const client = new OcvrClient({
      url: stack.gateways[1].wsUrl,
      getTicket: async () => `wst_${"g".repeat(43)}`, // well-formed, unknown
      WebSocket: spyWebSocket([], sentRaw, received),
      maxInvalidTickets: 1,
    });
    clients.push(client);
    client.connect();
    client.on("error", (e) => errors.push(e));
    const closed = await new Promise((r) => client.once("closed", r));
    assert.equal(closed.code, 4001);
    assert.deepEqual(received, [entry("error").wire], "the document's error frame, byte for byte");
    assert.deepEqual(errors, [entry("error").frame.data]);
  });

  test("every frame a backend publishes (plain NATS) reaches both gateways' subscribers byte for byte, and the app's handlers", async (t) => {
    const a = await newClient({ name: "Golden One", gateways: [0] });
    const b = await newClient({ name: "Golden Two", gateways: [1] });
    await documentChannel(a.userId, b.userId);
    await a.client.subscribe(CH);
    await b.client.subscribe(CH);

    const published = golden.filter((g) => g.direction === "server" && g.subject);
    assert.ok(published.length >= 10, `${published.length} published frames in the fixture`);
    const frames = new Map();
    for (const h of [a, b]) {
      frames.set(h, []);
      h.client.on("frame", (f) => frames.get(h).push(f));
      // Types the client does not know: by name, with the generic listener.
      for (const type of new Set(published.map((g) => g.frame.type))) {
        if (!SERVER_FRAME_TYPES.includes(type)) h.client.on(type, (data) => h.events.push({ type, data, at: Date.now(), unknown: true }));
      }
    }
    // session_revoked ends the connections (4003): last.
    const ordered = [...published.filter((g) => g.frame.type !== "session_revoked"), ...published.filter((g) => g.frame.type === "session_revoked")];

    for (const g of ordered) {
      await t.test(`${g.name} (${g.frame.type} on the ${g.subject} subject${g.extra ? ", extra" : ""})`, async () => {
        const subjects = g.subject === "channel" ? [goldenSubject(g)] : [a, b].map((h) => goldenSubject(g, h.userId));
        for (const s of subjects) await publish(s, g.wire);
        for (const h of [a, b]) {
          await receivedVerbatim(h, g.wire, `${g.name} byte for byte on gateway ${h === a ? 1 : 2}`);
          const known = SERVER_FRAME_TYPES.includes(g.frame.type);
          const got = await h.next(g.frame.type, (d) => isDeepStrictEqual(d, g.frame.data), { timeout: WAIT });
          assert.equal(h.events.find((e) => e.data === got).unknown === true, !known, known ? "the typed handler" : "the generic handler");
          const f = await waitFor(() => frames.get(h).find((x) => isDeepStrictEqual(x, g.frame)), { timeout: WAIT, what: `the frame event of ${g.name}` });
          assert.equal(isKnownFrame(f), known);
        }
      });
    }

    for (const h of [a, b]) {
      const closed = await h.next("closed", () => true, { timeout: WAIT });
      assert.equal(closed.reason, "session_revoked");
      assert.equal(closed.code, 4003);
      assert.match(closed.error.message, /logout_all/);
    }
  });
});
