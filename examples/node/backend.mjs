// A chat backend's day, end to end (node backend.mjs, settings from the
// environment):
//   1. Ada sends a message from her phone: it goes to the channel, to every
//      connection but her phone's (her headset still gets it),
//   2. Bo is notified of the mention,
//   3. Bo logs out on one device: that session is revoked (the store and
//      its sockets together),
// and a frame the gateways would refuse is caught before it is published.
//
// OCVR_NATS_URL   NATS (default nats://127.0.0.1:4222)
// OCVR_PREFIX     subject prefix (default ocvr)
// CHANNEL         the channel (default ch_general)
// AUTHOR_ID       the author's user id (default 1)
// SENDER_SESSION  the session id the author's client got in ready.data.session_id
// MENTIONED_ID    the user to notify (default 2)
// REVOKE_SESSION  the session id to revoke (optional)
import { OcvrBackend, RefusedError } from "./ocvr.mjs";

const env = process.env;
const backend = await OcvrBackend.connect({ servers: env.OCVR_NATS_URL ?? "nats://127.0.0.1:4222", prefix: env.OCVR_PREFIX ?? "ocvr" });
try {
  const channel = env.CHANNEL ?? "ch_general";
  const author = Number(env.AUTHOR_ID ?? 1);
  const mentioned = Number(env.MENTIONED_ID ?? 2);
  const id = `msg_node_${Date.now()}`;

  const ack = await backend.publishToChannel(channel, {
    type: "message_create",
    data: { id, channel_id: channel, author: { id: author, display_name: "Ada" }, content: "hello from Node",
      created_at: Math.floor(Date.now() / 1000), attachments: [] },
  }, { exceptSession: env.SENDER_SESSION, msgId: `${id}.create` });
  console.log(`published message_create ${id} to ${channel} (stream ${ack.stream} seq ${ack.seq})`);

  const note = await backend.notify(mentioned, { id: `notif_${id}`, type: "mention", title: "Ada mentioned you", body: "hello from Node", data: { channel_id: channel, message_id: id } });
  console.log(`notified user ${mentioned} (seq ${note.seq})`);

  // Refused before it reaches NATS: session_revoked is never a channel event.
  try {
    await backend.publishToChannel(channel, { type: "session_revoked", data: { reason: "x" } });
    throw new Error("a refused frame was published");
  } catch (e) {
    if (!(e instanceof RefusedError)) throw e;
    console.log(`refused before publishing: ${e.message}`);
  }

  if (env.REVOKE_SESSION) {
    const r = await backend.revokeSession(env.REVOKE_SESSION, "logout");
    console.log(`revoked ${r.revoked} session: ${env.REVOKE_SESSION}`);
  }
} finally {
  await backend.close();
}
