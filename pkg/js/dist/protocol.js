// The OCVR WebSocket protocol as TypeScript types: every frame the gateway
// sends and accepts. The protocol document (ocvr-websocket-protocol.txt)
// is the contract: its names, types and units win over anything else; this
// file follows it field by field, plus the marked extensions (`ready`,
// `subscribed`, `unsubscribed`, the extra error codes). The shared fixture
// pkg/protocol/testdata/frames.json holds its example frames.
//
// Units: every time is unix SECONDS as a JSON integer (`server_time`,
// `created_at`, `edited_at`); only `ready.heartbeat_interval` is in
// milliseconds. User ids (`user_id`, `author.id`) are JSON integers.
//
// Backends own their payloads and the gateway passes them through byte for
// byte: an object may carry fields these types do not list (they are kept
// on the object the client hands over), and the server may send event types
// this client does not know yet ({@link UnknownServerFrame}).
//
// Continuity (gateway/README.md "Continuity: resuming without loss"): events
// published through the event stream carry their position in additive
// top-level fields (`seq`, and `channel_id` for a channel's events);
// `ready` and `subscribed` carry the cursors to start from and whether a
// reconnect resumed ({@link Positioned}, {@link Ready}, {@link Subscribed}).
/** Every server frame type, in protocol order. */
export const SERVER_FRAME_TYPES = [
    "ready",
    "heartbeat_ack",
    "subscribed",
    "unsubscribed",
    "message_create",
    "message_update",
    "message_delete",
    "typing_start",
    "presence_update",
    "notification",
    "session_revoked",
    "error",
];
/** Whether a frame is of a type this client knows (then `type` discriminates `data`). */
export function isKnownFrame(frame) {
    return SERVER_FRAME_TYPES.includes(frame.type);
}
/** WebSocket close codes of the gateway (gateway/README.md, "Close codes"). */
export const CloseCode = {
    NORMAL: 1000,
    GOING_AWAY: 1001,
    ABNORMAL: 1006,
    MESSAGE_TOO_BIG: 1009,
    INTERNAL_ERROR: 1011,
    SERVICE_RESTART: 1012,
    TRY_AGAIN_LATER: 1013,
    /** Used by this client (never by the server) when it abandons a socket: no ready in time, or no heartbeat_ack within an interval. */
    CLIENT_DEAD_CONNECTION: 4000,
    INVALID_TICKET: 4001,
    SESSION_REVOKED: 4003,
    HEARTBEAT_TIMEOUT: 4004,
    RATE_LIMITED: 4008,
    SLOW_CONSUMER: 4009,
    TOO_MANY_CONNECTIONS: 4010,
};
