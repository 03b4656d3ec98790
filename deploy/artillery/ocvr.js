// Artillery processor for OCVR Realtime: each virtual user is one client of
// the public protocol (/work/shared protocol document): POST
// /v1/auth/ws-ticket with its session, then the WebSocket with ?ticket=,
// then `ready`. Nothing here speaks NATS; events come from a publisher run
// beside Artillery (README.md).
//
// Metrics (Artillery custom metrics; histograms in ms):
//   ocvr.ticket_ms         POST /v1/auth/ws-ticket round trip
//   ocvr.connect_ms        ticket + upgrade + ready (what ocvr-loadgen storm times)
//   ocvr.heartbeat_rtt_ms  heartbeat to heartbeat_ack
//   ocvr.delivery_ms       publish to receipt, from the send time the publisher
//                          put in the event id (b<step>_<n>_<unix ns>), as
//                          ocvr-loadgen fanout measures it
//   counters ocvr.connected, ocvr.subscribed, ocvr.heartbeat_acks, ocvr.delivered,
//   ocvr.errors.<what>, ocvr.closed.<code> (a close the client did not ask for)
//
// Settings (environment): OCVR_TICKET_URL (http://127.0.0.1:8080),
// OCVR_WS_URL (ws://127.0.0.1:8081/v1/ws), OCVR_SESSIONS (file of session
// tokens sess_…, one per line: seed.sh writes it), OCVR_CHANNEL (the channel
// subscribe-receive subscribes to), OCVR_HOLD_S (how long soak and receive
// users stay connected, 30), OCVR_HEARTBEAT_S (heartbeat period, 25),
// OCVR_COMPRESSION=1 (offer permessage-deflate; Node.js 20's ws package only).
'use strict';

const fs = require('node:fs');

// The WebSocket: built into Node.js 22 and later; on Node.js 20, the `ws`
// package Artillery itself depends on (NODE_PATH=<artillery>/node_modules;
// scripts/artillery.sh sets it).
const WS = globalThis.WebSocket ?? require('ws');
// permessage-deflate: the ws package offers it unless told not to, and then
// inflates every frame on Node's zlib thread pool (10 at a time), which
// becomes the client's bottleneck at tens of thousands of frames/s. Off
// unless OCVR_COMPRESSION=1 (browsers offer it; ocvr-loadgen does not).
const wsOptions = globalThis.WebSocket || process.env.OCVR_COMPRESSION === '1' ? undefined : { perMessageDeflate: false };

const env = (k, d) => process.env[k] || d;
const ticketURL = env('OCVR_TICKET_URL', 'http://127.0.0.1:8080').replace(/\/$/, '');
const wsURL = env('OCVR_WS_URL', 'ws://127.0.0.1:8081/v1/ws');
const holdMs = Number(env('OCVR_HOLD_S', '30')) * 1000;
const heartbeatMs = Number(env('OCVR_HEARTBEAT_S', '25')) * 1000;
const channel = env('OCVR_CHANNEL', '');

// Session tokens, read once per worker; each virtual user takes the next
// (a worker starts at a random one: several workers share the file). A
// session may hold several sockets, so wrapping around is harmless.
let tokens;
let next = -1;
function token() {
  if (!tokens) {
    const file = process.env.OCVR_SESSIONS;
    if (!file) throw new Error('OCVR_SESSIONS: set it to a file of session tokens (deploy/artillery/seed.sh writes one)');
    tokens = fs.readFileSync(file, 'utf8').split('\n').map((s) => s.trim()).filter(Boolean);
    if (tokens.length === 0) throw new Error(`OCVR_SESSIONS: ${file} holds no tokens`);
    next = Math.floor(Math.random() * tokens.length);
  }
  next = (next + 1) % tokens.length;
  return tokens[next];
}

const now = () => performance.timeOrigin + performance.now(); // ms, sub-ms precision

// A client: ticket, socket, ready. Frames after ready go to onFrame.
async function connect(events) {
  const t0 = now();
  const res = await fetch(`${ticketURL}/v1/auth/ws-ticket`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token()}` },
  });
  if (res.status !== 200) {
    events.emit('counter', `ocvr.errors.ticket_${res.status}`, 1);
    await res.body?.cancel();
    throw new Error(`ws-ticket: HTTP ${res.status}`);
  }
  const { data } = await res.json();
  events.emit('histogram', 'ocvr.ticket_ms', now() - t0);
  const ws = new WS(`${wsURL}?ticket=${encodeURIComponent(data.ticket)}`, wsOptions);
  const c = { ws, onFrame: () => {}, closing: false, closed: null };
  c.closed = new Promise((resolve) => {
    ws.onclose = (ev) => {
      if (!c.closing) events.emit('counter', `ocvr.closed.${ev.code}`, 1);
      resolve(ev.code);
    };
  });
  await new Promise((resolve, reject) => {
    ws.onerror = () => {
      events.emit('counter', 'ocvr.errors.socket', 1);
      reject(new Error('websocket error'));
    };
    ws.onmessage = (ev) => {
      const f = String(ev.data);
      if (f.startsWith('{"type":"ready"')) {
        events.emit('histogram', 'ocvr.connect_ms', now() - t0);
        events.emit('counter', 'ocvr.connected', 1);
        ws.onmessage = null;
        if (typeof ws.on === 'function') {
          // The ws package: its own event, without a MessageEvent per frame.
          ws.on('message', (data) => c.onFrame(String(data)));
        } else {
          ws.onmessage = (e) => c.onFrame(String(e.data));
        }
        resolve();
      } else {
        events.emit('counter', 'ocvr.errors.first_frame_not_ready', 1);
        reject(new Error(`first frame: ${f.slice(0, 80)}`));
      }
    };
    c.closed.then((code) => reject(new Error(`closed ${code} before ready`)));
  });
  return c;
}

async function close(c) {
  c.closing = true;
  c.ws.close(1000);
  await Promise.race([c.closed, sleep(2000)]);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Heartbeats every heartbeatMs until stop() (the first after a random part
// of the period, so that users who arrived together do not beat together).
function heartbeats(c, events) {
  let sent = 0;
  let timer;
  const beat = () => {
    sent = now();
    c.ws.send('{"type":"heartbeat"}');
    timer = setTimeout(beat, heartbeatMs);
  };
  timer = setTimeout(beat, Math.random() * heartbeatMs);
  return {
    ack() {
      if (sent) events.emit('histogram', 'ocvr.heartbeat_rtt_ms', now() - sent);
      events.emit('counter', 'ocvr.heartbeat_acks', 1);
    },
    stop: () => clearTimeout(timer),
  };
}

// deliveryTime is the publisher's send time in ms from an event id
// "b<step>_<n>_<unix ns>" (ocvr-loadgen's events), or 0. The ns value
// exceeds a double's exact range, so it is split.
function deliveryTime(f) {
  const i = f.indexOf('"id":"b');
  if (i < 0) return 0;
  const end = f.indexOf('"', i + 7);
  const parts = f.slice(i + 7, end).split('_');
  if (parts.length !== 3 || !/^\d{10,}$/.test(parts[2])) return 0;
  const ns = parts[2];
  return Number(ns.slice(0, -6)) + Number(ns.slice(-6)) / 1e6;
}

// connectStorm: ticket, socket, ready, close.
async function connectStorm(context, events) {
  const c = await connect(events);
  await close(c);
}

// idleSoak: connect and hold for OCVR_HOLD_S, heartbeating.
async function idleSoak(context, events) {
  const c = await connect(events);
  const hb = heartbeats(c, events);
  c.onFrame = (f) => {
    if (f.startsWith('{"type":"heartbeat_ack"')) hb.ack();
  };
  await Promise.race([sleep(holdMs), c.closed]);
  hb.stop();
  await close(c);
}

// subscribeReceive: connect, subscribe to OCVR_CHANNEL, receive for
// OCVR_HOLD_S, heartbeating; every event carrying a send time is a delivery.
async function subscribeReceive(context, events) {
  if (!channel) throw new Error('OCVR_CHANNEL: set it to the channel the publisher publishes to');
  const c = await connect(events);
  const hb = heartbeats(c, events);
  let subscribed;
  const live = new Promise((r) => (subscribed = r));
  // Deliveries are counted locally and handed to Artillery once a second:
  // an emit per frame costs the client more than the frame itself.
  let delivered = 0;
  const flush = () => {
    if (delivered > 0) events.emit('counter', 'ocvr.delivered', delivered);
    delivered = 0;
  };
  const flusher = setInterval(flush, 1000);
  c.onFrame = (f) => {
    const sent = deliveryTime(f);
    if (sent > 0) {
      events.emit('histogram', 'ocvr.delivery_ms', now() - sent);
      delivered++;
    } else if (f.startsWith('{"type":"subscribed"')) {
      events.emit('counter', 'ocvr.subscribed', 1);
      subscribed();
    } else if (f.startsWith('{"type":"heartbeat_ack"')) {
      hb.ack();
    } else if (f.startsWith('{"type":"error"')) {
      events.emit('counter', 'ocvr.errors.error_frame', 1);
    }
  };
  c.ws.send(JSON.stringify({ type: 'subscribe', data: { channel_id: channel } }));
  await Promise.race([live, sleep(10000)]);
  await Promise.race([sleep(holdMs), c.closed]);
  hb.stop();
  await close(c);
  clearInterval(flusher);
  flush();
}

module.exports = { connectStorm, idleSoak, subscribeReceive, deliveryTime };
