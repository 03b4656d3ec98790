// Compile-time tests of the published declarations (dist/*.d.ts): the
// events are typed per frame, wrong uses do not compile. Checked by
// `npm run typecheck` (tsc, no output) for Node.js without the DOM library
// and, with tsconfig.dom.json, for browsers.
import { WebSocket as NodeWebSocket } from "ws";
import { OcvrClient, OcvrError, fetchTicket } from "../dist/index.js";
import type { ClosedEvent, ConnectionState, MessageCreate, PresenceUpdate, ServerFrame, StopReason } from "../dist/index.js";

// Node.js 20: the ws package's constructor fits.
const client = new OcvrClient({ url: "ws://127.0.0.1:8081/v1/ws", ticketUrl: "http://127.0.0.1:8080", token: "sess_x", WebSocket: NodeWebSocket });
new OcvrClient({ url: ["ws://a/v1/ws", "ws://b/v1/ws"], getTicket: ({ signal }) => fetchTicket("http://127.0.0.1:8080", "sess_x", { signal }), WebSocket: NodeWebSocket });

client.on("message_create", (m) => {
  const author: string = m.author.display_name;
  const id: number = m.author.id;
  // @ts-expect-error message_create has no edited_at
  m.edited_at;
  void author, id;
});
client.on("presence_update", (p: PresenceUpdate) => {
  const online: boolean = p.presence === "online";
  // @ts-expect-error presence is "online" | "offline"
  const bad: boolean = p.presence === "away";
  void online, bad;
});
client.on("ready", (r) => r.heartbeat_interval.toFixed());
client.on("typing_start", (t) => t.display_name.toUpperCase());
client.on("unsubscribed", (u) => {
  if (u.reason === "removed" || u.reason === "deleted" || u.reason === "client") return;
  const never: never = u.reason;
  void never;
});
client.on("error", (e) => e.channel_id?.length);
client.on("session_revoked", (s) => s.reason.length);
client.on("notification", (n) => n.title.length);
client.on("heartbeat_ack", (a) => a.server_time.toFixed());
client.on("message_update", (m) => m.edited_at.length);
client.on("message_delete", (m) => m.channel_id.length);
client.on("subscribed", (s) => s.channel_id.length);
client.on("closed", (c: ClosedEvent) => {
  const r: StopReason = c.reason;
  if (c.error) {
    const e: OcvrError = c.error;
    void e.code, e.closeCode;
  }
  void r;
});
client.on("frame", (f: ServerFrame) => {
  if (f.type === "message_create") {
    const m: MessageCreate = f.data;
    void m;
  }
});
// @ts-expect-error no such event
client.on("message_created", () => {});
// @ts-expect-error wrong payload type for the event
client.on("ready", (m: MessageCreate) => void m);

const off: () => void = client.on("state", ({ state }) => {
  const s: ConnectionState = state;
  void s;
});
off();
const p: Promise<void> = client.subscribe("ch_general");
const sent: boolean = client.typing("ch_general");
const done: Promise<void> = client.close();
void p, sent, done;
