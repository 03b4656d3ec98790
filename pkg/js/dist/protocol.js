// The OCVR WebSocket protocol as TypeScript types: every frame the gateway
// sends and accepts. gateway/README.md is the prose reference; this file
// follows it (and pkg/protocol, the Go source of truth) field by field.
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
