// The OCVR Realtime demo chat: plain JavaScript on top of the built client
// (../dist/index.js). Served by the dev stack (`make run`, port 8090),
// whose /demo-api/* endpoints play the platform's parts: a DEVELOPMENT-ONLY
// sign-in, sending messages (a chat backend publishing message_create) and
// friends. The real-time part is all OcvrClient.
//
// Query parameters (optional): ws=<gateway URL>[,<gateway URL>…] pins the
// gateway(s); ticket=<ticketsvc base URL> overrides the ticket service.
//
// Times on the wire (created_at, edited_at, server_time) are unix seconds,
// as in the protocol document; the page shows them in local time.
//
// Reconnects: the client resumes from its cursors (continuity), so after a
// gateway restart or a lost connection the messages and notifications sent
// meanwhile arrive, exactly once, before the live ones: nothing to refetch.
// The `continuity` event says per subscription whether that worked; the
// status line shows it ("resumed"), and a subscription that could not
// resume gets a note (this demo has no history API to refetch from; a real
// app would reload that channel's messages or the user's notifications).
import { OcvrClient } from "../dist/index.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const TYPING_STALE_MS = 5000;

let config;
let me; // the sign-in answer: token, session_id, user_id, display_name, channels, friends
let client;
let current; // the selected channel id
let connects = 0;
// The last reconnect's continuity: the user's own events and each channel,
// true (resumed) or false (events may be missing), and the channels not
// resubscribed yet; undefined before any reconnect.
let lastResume; // { user, channels: { [id]: boolean }, pending: Set<id> }
const channels = new Map(); // id → { messages: Map<id, message>, status: "pending" | "subscribed" | "error", error?: string }
const friends = new Map(); // user id → { user_id, display_name, online, status_text }
const typers = new Map(); // `${channel}:${user}` → { channel, name, timer }

// For the browser test and curious developers.
window.ocvrDemo = {
  get client() {
    return client;
  },
  get me() {
    return me;
  },
  get connects() {
    return connects;
  },
  get lastResume() {
    return lastResume;
  },
};

// --- the demo API (development only) ---

async function api(path, { method = "GET", body, auth = true } = {}) {
  const headers = { "Content-Type": "application/json" };
  if (auth && me) headers.Authorization = `Bearer ${me.token}`;
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (res.status === 204) return null;
  const json = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(json?.error?.message ?? `HTTP ${res.status}`);
  return json;
}

// --- sign-in ---

async function init() {
  config = await api("/demo-api/config", { auth: false });
  if (params.get("ws")) config.ws_urls = params.get("ws").split(",").filter(Boolean);
  if (params.get("ticket")) config.ticket_url = params.get("ticket");
  const box = $("demo-users");
  for (const u of config.demo_users) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = `${u.name} (user ${u.id})`;
    b.dataset.testid = `sign-in-${u.name.toLowerCase()}`;
    b.addEventListener("click", () => signIn(u.id, u.name));
    box.append(b);
  }
  $("custom-user").addEventListener("submit", (e) => {
    e.preventDefault();
    const f = new FormData(e.target);
    signIn(Number(f.get("user_id")), String(f.get("display_name")));
  });
  $("sign-in-again").addEventListener("click", showSignIn);
  $("sign-out").addEventListener("click", () => api("/demo-api/sign-out", { method: "POST" }).catch((e) => log("sign-out", e.message)));
  $("composer").addEventListener("submit", send);
  $("composer-input").addEventListener("input", () => {
    if (current && $("composer-input").value !== "") client?.typing(current);
  });
  if (config.ws_urls.length === 0) {
    $("sign-in-error").textContent = "The dev stack runs no gateway; pass ?ws=ws://127.0.0.1:8081/v1/ws";
  }
}

async function signIn(userId, name) {
  $("sign-in-error").textContent = "";
  try {
    me = await api("/demo-api/sign-in", { method: "POST", body: { user_id: userId, display_name: name }, auth: false });
  } catch (e) {
    $("sign-in-error").textContent = `Sign-in failed: ${e.message}`;
    return;
  }
  start();
}

function showSignIn() {
  me = undefined;
  $("signed-out").hidden = true;
  $("chat").hidden = true;
  $("sign-out").hidden = true;
  $("me").hidden = true;
  $("sign-in").hidden = false;
  setStatus("idle", "not connected");
}

// --- the real-time client ---

function start() {
  $("sign-in").hidden = true;
  $("signed-out").hidden = true;
  $("chat").hidden = false;
  $("sign-out").hidden = false;
  $("me").hidden = false;
  $("me").textContent = `${me.display_name} · user ${me.user_id}`;
  $("messages").replaceChildren();
  $("log").replaceChildren();
  $("notifications").replaceChildren();
  channels.clear();
  friends.clear();
  connects = 0;
  lastResume = undefined;
  for (const ch of me.channels) channels.set(ch, { messages: new Map(), status: "pending" });
  for (const f of me.friends) friends.set(f.user_id, f);
  current = me.channels[0];

  client = new OcvrClient({
    url: config.ws_urls,
    ticketUrl: config.ticket_url,
    token: me.token,
    backoff: { base: 500, max: 10000 },
  });

  client.on("state", ({ state }) => {
    if (state === "open") showOpen();
    else if (state === "connecting") setStatus(state, connects ? "reconnecting…" : "connecting…");
    else if (state === "closed") setStatus(state, "disconnected");
  });
  client.on("reconnecting", ({ attempt, delay }) => {
    setStatus("reconnecting", `reconnecting in ${(delay / 1000).toFixed(1)} s (attempt ${attempt})`);
  });
  client.on("disconnect", ({ code, reason }) => log("disconnect", `${code}${reason ? " " + reason : ""}`));
  client.on("connected", ({ reconnect }) => {
    connects++;
    // presence_update has no position (it is not resumable): refresh the
    // friends' presence after every reconnect.
    if (reconnect) refreshFriends();
  });
  client.on("continuity", (c) => {
    if (!c.reconnect) return; // a fresh start: nothing was missed
    if (c.scope === "user") {
      lastResume = { user: c.resumed, channels: {}, pending: new Set(client.channels) };
      if (!c.resumed) {
        log("continuity", "not resumed: notifications sent while disconnected may be missing");
        toast("Reconnected: some notifications may be missing");
      }
    } else {
      lastResume ??= { user: undefined, channels: {}, pending: new Set() };
      lastResume.channels[c.channelId] = c.resumed;
      lastResume.pending.delete(c.channelId);
      system(
        c.channelId,
        c.resumed ? "Reconnected: resumed, no message missed." : "Reconnected without resuming: messages sent meanwhile may be missing.",
        c.resumed ? "resumed" : "not-resumed",
      );
    }
    if (client.state === "open") showOpen();
  });
  client.on("subscribed", ({ channel_id }) => setChannel(channel_id, { status: "subscribed", error: undefined }));
  client.on("unsubscribed", ({ channel_id, reason }) => {
    if (reason !== "client") {
      setChannel(channel_id, { status: "error", error: reason === "deleted" ? "channel deleted" : "removed from channel" });
      if (lastResume?.pending.delete(channel_id) && client.state === "open") showOpen();
    }
  });
  client.on("message_create", (m) => {
    channelState(m.channel_id).messages.set(m.id, { ...m });
    clearTyping(m.channel_id, m.author.id);
    if (m.channel_id === current) renderMessages();
  });
  client.on("message_update", (m) => {
    const msg = channelState(m.channel_id).messages.get(m.id);
    if (msg) Object.assign(msg, { content: m.content, edited_at: m.edited_at });
    if (m.channel_id === current) renderMessages();
  });
  client.on("message_delete", (m) => {
    channelState(m.channel_id).messages.delete(m.id);
    if (m.channel_id === current) renderMessages();
  });
  client.on("typing_start", showTyping);
  client.on("presence_update", (p) => {
    const f = friends.get(p.user_id) ?? { user_id: p.user_id, display_name: `User ${p.user_id}` };
    friends.set(p.user_id, { ...f, online: p.presence === "online", status_text: p.status_text });
    renderFriends();
  });
  client.on("notification", (n) => {
    const li = document.createElement("li");
    li.dataset.type = n.type;
    li.dataset.createdAt = String(n.created_at);
    li.append(el("div", "title", n.title), el("div", "body", n.body), el("div", "muted small", time(n.created_at)));
    $("notifications").prepend(li);
    toast(`${n.title}${n.body ? ": " + n.body : ""}`);
  });
  client.on("error", (e) => {
    if (e.channel_id && channels.has(e.channel_id) && e.code !== "NOT_SUBSCRIBED") {
      setChannel(e.channel_id, { status: "error", error: e.code });
      if (e.code !== "UNAVAILABLE" && lastResume?.pending.delete(e.channel_id) && client.state === "open") showOpen();
    }
  });
  client.on("frame", (f) => {
    if (f.type !== "heartbeat_ack") log(f.type, JSON.stringify(f.data));
  });
  client.on("closed", ({ reason, error }) => {
    if (reason === "client") return;
    showSignedOut(reason, error);
  });

  // The constructor has no side effects: connect explicitly.
  client.connect();
  for (const ch of me.channels) {
    client.subscribe(ch).catch((e) => {
      // TIMEOUT: not live yet, still trying (the subscribed event updates it).
      if (e.code !== "TIMEOUT") setChannel(ch, { status: "error", error: e.code });
    });
  }
  renderChannels();
  renderFriends();
  renderMessages();
}

function showSignedOut(reason, error) {
  const titles = {
    session_revoked: "Your session was revoked",
    unauthorized: "Your session is no longer valid",
    invalid_ticket: "The gateway refused to connect you",
    too_many_connections: "Too many connections",
    server_closed: "The server closed the connection",
  };
  $("signed-out-title").textContent = titles[reason] ?? "Signed out";
  $("signed-out-text").textContent = error ? error.message : reason;
  $("signed-out").dataset.reason = reason;
  $("signed-out").hidden = false;
  $("chat").hidden = true;
  $("sign-out").hidden = true;
}

async function send(e) {
  e.preventDefault();
  const input = $("composer-input");
  const content = input.value.trim();
  if (!content || !current) return;
  $("composer-error").textContent = "";
  try {
    await api("/demo-api/messages", { method: "POST", body: { channel_id: current, content } });
    input.value = "";
  } catch (err) {
    $("composer-error").textContent = `Not sent: ${err.message}`;
  }
}

async function refreshFriends() {
  try {
    const { friends: list } = await api("/demo-api/friends");
    for (const f of list) friends.set(f.user_id, f);
    renderFriends();
  } catch (e) {
    log("friends", e.message);
  }
}

// --- typing indicators: shown for ~5 s, or until that user's message arrives ---

function showTyping(t) {
  const key = `${t.channel_id}:${t.user_id}`;
  clearTimeout(typers.get(key)?.timer);
  typers.set(key, { channel: t.channel_id, name: t.display_name, timer: setTimeout(() => clearTyping(t.channel_id, t.user_id), TYPING_STALE_MS) });
  renderTyping();
}

function clearTyping(channelId, userId) {
  const key = `${channelId}:${userId}`;
  if (!typers.has(key)) return;
  clearTimeout(typers.get(key).timer);
  typers.delete(key);
  renderTyping();
}

function renderTyping() {
  const names = [...typers.values()].filter((t) => t.channel === current).map((t) => t.name);
  $("typing").textContent =
    names.length === 0 ? "" : names.length === 1 ? `${names[0]} is typing…` : `${names.slice(0, -1).join(", ")} and ${names.at(-1)} are typing…`;
}

// --- rendering ---

function channelState(id) {
  if (!channels.has(id)) channels.set(id, { messages: new Map(), status: "pending" });
  return channels.get(id);
}

function setChannel(id, patch) {
  Object.assign(channelState(id), patch);
  renderChannels();
}

function renderChannels() {
  const ul = $("channels");
  ul.replaceChildren();
  for (const [id, st] of channels) {
    const li = document.createElement("li");
    li.dataset.channel = id;
    li.dataset.status = st.status;
    if (id === current) li.classList.add("selected");
    li.append(el("span", "", `# ${id}`), el("span", `badge ${st.status === "error" ? "error" : ""}`, st.status === "error" ? st.error : st.status === "pending" ? "…" : ""));
    li.addEventListener("click", () => {
      current = id;
      renderChannels();
      renderMessages();
      renderTyping();
    });
    ul.append(li);
  }
  $("channel-title").textContent = current ? `# ${current}` : "No channel";
}

function renderMessages() {
  const ol = $("messages");
  ol.replaceChildren();
  if (!current) return;
  for (const m of channelState(current).messages.values()) {
    const li = document.createElement("li");
    li.dataset.id = m.id;
    if (m.system) {
      li.className = "system";
      if (m.kind) li.dataset.kind = m.kind;
      li.append(el("span", "time", time(m.created_at)), el("span", "", m.content));
      ol.append(li);
      continue;
    }
    if (m.author.id === me.user_id) li.classList.add("mine");
    li.dataset.createdAt = String(m.created_at);
    li.append(el("span", "time", time(m.created_at)), el("span", "author", m.author.display_name), el("span", "content", m.content));
    const files = Array.isArray(m.attachments) ? m.attachments.length : 0;
    if (files) li.append(el("span", "edited", `(${files} attachment${files === 1 ? "" : "s"})`));
    if (m.edited_at) {
      const edited = el("span", "edited", "(edited)");
      edited.title = `edited ${time(m.edited_at)}`;
      li.append(edited);
    }
    ol.append(li);
  }
  ol.scrollTop = ol.scrollHeight;
}

let systemNotes = 0;

/** A note of the page itself (reconnects) in a channel's timeline. */
function system(channelId, text, kind) {
  const id = `note_${++systemNotes}`;
  channelState(channelId).messages.set(id, { id, system: true, kind, content: text, created_at: Math.floor(Date.now() / 1000) });
  if (channelId === current) renderMessages();
}

function renderFriends() {
  const ul = $("friends");
  ul.replaceChildren();
  $("no-friends").hidden = friends.size > 0;
  for (const f of friends.values()) {
    const li = document.createElement("li");
    li.dataset.user = String(f.user_id);
    li.dataset.presence = f.online ? "online" : "offline";
    const poke = el("button", "secondary", "Poke");
    poke.type = "button";
    poke.title = `Send ${f.display_name} a notification`;
    poke.addEventListener("click", () => api("/demo-api/poke", { method: "POST", body: { user_id: f.user_id } }).catch((e) => log("poke", e.message)));
    li.append(el("span", "dot", ""), el("span", "name", f.display_name), el("span", "presence", f.online ? "online" : "offline"), poke);
    if (f.status_text) li.append(el("span", "status-text", f.status_text));
    ul.append(li);
  }
}

/** The status line of an open connection: its gateway and, after a reconnect, whether it resumed. */
function showOpen() {
  let text = `connected · ${new URL(client.url).host}`;
  let resumed;
  if (lastResume) {
    const all = lastResume.user !== false && Object.values(lastResume.channels).every(Boolean);
    if (!all) resumed = false;
    else if (lastResume.pending.size === 0) resumed = true;
    text += resumed === undefined ? " · resuming…" : resumed ? " · resumed" : " · not resumed: events may be missing";
  }
  setStatus("open", text, resumed);
}

function setStatus(state, text, resumed) {
  $("status").dataset.state = state;
  if (resumed === undefined) delete $("status").dataset.resumed;
  else $("status").dataset.resumed = String(resumed);
  $("status").textContent = text;
}

function log(type, text) {
  const li = document.createElement("li");
  li.append(el("span", "t", type), document.createTextNode(" " + text));
  const ol = $("log");
  ol.prepend(li);
  while (ol.children.length > 100) ol.lastChild.remove();
}

function toast(text) {
  const d = el("div", "toast", text);
  $("toasts").append(d);
  setTimeout(() => d.remove(), 5000);
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  e.textContent = text;
  return e;
}

/** A protocol time (unix seconds, a JSON integer) as a local time of day. */
function time(unixSeconds) {
  if (typeof unixSeconds !== "number" || !Number.isFinite(unixSeconds)) return "";
  const d = new Date(unixSeconds * 1000);
  return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

window.addEventListener("pagehide", () => client?.close());

init().catch((e) => {
  $("sign-in-error").textContent = `Cannot load the demo configuration: ${e.message}`;
});
