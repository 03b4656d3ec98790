// Compile-time tests of the published declarations (dist/*.d.ts): the
// events are typed per frame, wrong uses do not compile. Checked by
// `npm run typecheck` (tsc, no output) for Node.js without the DOM library
// and, with tsconfig.dom.json, for browsers.
import { WebSocket as NodeWebSocket } from "ws";
import { MAX_RETRY_AFTER, OcvrClient, OcvrError, fetchTicket, isKnownFrame, reasonRetryAfter } from "../dist/index.js";
import type {
  AnyServerFrame,
  Attachment,
  ChannelContinuity,
  ClosedEvent,
  ConnectedEvent,
  ConnectionState,
  ContinuityEvent,
  MessageCreate,
  ReconnectingEvent,
  Notification,
  PresenceUpdate,
  Ready,
  ServerFrame,
  StopReason,
  Subscribed,
  SubscribedEvent,
  Subscription,
  SubscriptionEndReason,
  SubscriptionState,
  UnknownEventData,
  UnknownServerFrame,
} from "../dist/index.js";

// Node.js 20: the ws package's constructor fits.
const client = new OcvrClient({ url: "ws://127.0.0.1:8081/v1/ws", ticketUrl: "http://127.0.0.1:8080", token: "sess_x", WebSocket: NodeWebSocket });
new OcvrClient({ url: ["ws://a/v1/ws", "ws://b/v1/ws"], getTicket: ({ signal }) => fetchTicket("http://127.0.0.1:8080", "sess_x", { signal }), WebSocket: NodeWebSocket });

client.on("message_create", (m) => {
  const author: string = m.author.display_name;
  const id: number = m.author.id;
  // Unix seconds, as a number (the protocol document's type and unit).
  const created: number = m.created_at;
  const when: Date = new Date(m.created_at * 1000);
  // @ts-expect-error created_at is a number of seconds, not an RFC 3339 string
  const iso: string = m.created_at;
  const attachments: Attachment[] = m.attachments;
  const first: unknown = m.attachments[0]?.["url"];
  // @ts-expect-error message_create has no edited_at
  m.edited_at;
  void author, id, created, when, iso, attachments, first;
});
client.on("presence_update", (p: PresenceUpdate) => {
  const online: boolean = p.presence === "online";
  // @ts-expect-error presence is "online" | "offline"
  const bad: boolean = p.presence === "away";
  void online, bad;
});
client.on("ready", (r: Ready) => {
  const everyMs: number = r.heartbeat_interval;
  const serverSeconds: number = r.server_time;
  // @ts-expect-error user_id is an integer
  const uid: string = r.user_id;
  void everyMs, serverSeconds, uid;
});
client.on("typing_start", (t) => t.display_name.toUpperCase());
client.on("unsubscribed", (u) => {
  if (u.reason === "removed" || u.reason === "deleted" || u.reason === "client") return;
  const never: never = u.reason;
  void never;
});
client.on("error", (e) => e.channel_id?.length);
client.on("session_revoked", (s) => s.reason.length);
client.on("notification", (n: Notification) => {
  const kind: string = n.type;
  const created: number = n.created_at;
  const payload: Record<string, unknown> = n.data;
  const from: unknown = n.data["from_user_id"];
  void kind, created, payload, from, n.title.length;
});
client.on("heartbeat_ack", (a) => {
  const skewSeconds: number = a.server_time - Math.floor(Date.now() / 1000);
  void skewSeconds;
});
client.on("message_update", (m) => {
  const edited: number = m.edited_at;
  // @ts-expect-error edited_at is a number of seconds
  m.edited_at.length;
  void edited;
});
client.on("message_delete", (m) => m.channel_id.length);
client.on("subscribed", (s: Subscribed) => {
  const ch: string = s.channel_id;
  // Continuity: the channel's cursor, and whether a resubscription resumed.
  const seq: number | undefined = s.seq;
  const resumed: boolean | undefined = s.resumed;
  // @ts-expect-error seq may be absent (0)
  const always: number = s.seq;
  void ch, seq, resumed, always;
});
client.on("ready", (r) => {
  const token: string | undefined = r.resume_token;
  const seq: number | undefined = r.seq;
  const resumed: boolean | undefined = r.resumed;
  void token, seq, resumed;
});
client.on("continuity", (c: ContinuityEvent) => {
  const reconnect: boolean = c.reconnect;
  const resumed: boolean | undefined = c.resumed;
  const seq: number = c.seq;
  if (c.scope === "channel") {
    const ch: string = c.channelId;
    const channel: ChannelContinuity = c;
    void ch, channel;
  } else {
    // @ts-expect-error the user's own events have no channel
    c.channelId;
  }
  void reconnect, resumed, seq;
});
const userCursor: number | undefined = client.cursor();
const channelCursor: number | undefined = client.cursor("ch_general");
void userCursor, channelCursor;
client.on("closed", (c: ClosedEvent) => {
  const r: StopReason = c.reason;
  if (c.error) {
    const e: OcvrError = c.error;
    void e.code, e.closeCode;
  }
  void r;
});
client.on("frame", (f: AnyServerFrame) => {
  const type: string = f.type;
  if (isKnownFrame(f)) {
    const known: ServerFrame = f;
    if (f.type === "message_create") {
      const m: MessageCreate = f.data;
      // Continuity: the event's position and channel, top-level.
      const seq: number | undefined = f.seq;
      const ch: string | undefined = f.channel_id;
      void m, seq, ch;
    }
    void known;
  } else {
    const other: UnknownServerFrame = f;
    const d: UnknownEventData = f.data;
    const seq: number | undefined = f.seq;
    void other, d, seq;
  }
  // @ts-expect-error a frame may be of a type the client does not know: narrow with isKnownFrame
  const onlyKnown: ServerFrame = f;
  void type, onlyKnown;
});
// Event types the client does not know yet: by name, data as sent.
client.on("channel_update", (d) => {
  const data: UnknownEventData = d;
  const name: unknown = d["name"];
  // @ts-expect-error the payload of an unknown type is not typed: check it first
  d.name.length;
  void data, name;
});
const offUnknown: () => void = client.once("friend_request_accepted", (d: Record<string, unknown>) => void d);
offUnknown();
client.off("channel_update", (d: UnknownEventData) => void d);
// @ts-expect-error wrong payload type for the event
client.on("ready", (m: MessageCreate) => void m);
// @ts-expect-error a listener of an unknown type cannot claim a typed payload
client.on("channel_update", (m: MessageCreate) => void m);

// Retry hints: "reconnecting in N s", and the server's hint when it gave one.
client.on("reconnecting", (r: ReconnectingEvent) => {
  const inSeconds: number = Math.ceil(r.delay / 1000);
  const hint: number | undefined = r.retryAfter;
  // @ts-expect-error the hint is absent when the server gave none
  const always: number = r.retryAfter;
  if (r.error instanceof OcvrError) {
    const status: number | undefined = r.error.status;
    const retryAfter: number | undefined = r.error.retryAfter;
    void status, retryAfter;
  }
  void inSeconds, hint, always;
});
const fromReason: number | undefined = reasonRetryAfter("pod at connection limit; retry_after=2");
const cap: number = MAX_RETRY_AFTER;
void fromReason, cap;

const off: () => void = client.on("state", ({ state }) => {
  const s: ConnectionState = state;
  void s;
});
off();
const p: Promise<void> = client.subscribe("ch_general");
const sent: boolean = client.typing("ch_general");
const done: Promise<void> = client.close();
void p, sent, done;

// Per-channel subscriptions: typed channel events, states, honest reconnects.
const general: Subscription = client.channel("ch_general");
general.on("message_create", (m) => {
  const text: string = m.content;
  void text;
});
general.on("subscribed", (e: SubscribedEvent) => {
  const refetch: boolean = e.refetch;
  const resumed: boolean | undefined = e.resumed;
  // @ts-expect-error resumed is undefined on a fresh start
  const always: boolean = e.resumed;
  void refetch, resumed, always;
});
general.on("unsubscribed", ({ reason, error }) => {
  const r: SubscriptionEndReason = reason;
  const code: string | undefined = error?.code;
  void r, code;
});
general.on("state", ({ state }) => {
  const s: SubscriptionState = state;
  // @ts-expect-error not a subscription state
  const bad: SubscriptionState = "open";
  void s, bad;
});
// An event type the client does not know yet, on a channel: its data, untyped.
general.on("channel_update", (d: UnknownEventData) => void d["topic"]);
// @ts-expect-error wrong payload type for the event
general.on("message_delete", (m: MessageCreate) => void m);
const subscribed: Promise<void> = general.subscribe({ timeout: 2000 });
const st: SubscriptionState = general.state;
client.on("connected", (c: ConnectedEvent) => {
  const again: boolean = c.reconnect;
  const userResumed: boolean | undefined = c.resumed;
  void again, userResumed, c.ready.session_id;
});
client.connect();
void subscribed, st;
