/** Every frame in both directions is one JSON text frame `{"type", "data"}`. */
export interface Frame<T extends string = string, D = unknown> {
    type: T;
    data: D;
}
/** `ready` (extension): sent once, first, after a successful upgrade. */
export interface Ready {
    connection_id: string;
    user_id: number;
    session_id: string;
    /** Milliseconds between heartbeats the client should send. */
    heartbeat_interval: number;
    /** Unix milliseconds. */
    server_time: number;
}
/** `heartbeat_ack`: the answer to a `heartbeat`. */
export interface HeartbeatAck {
    /** Unix milliseconds. */
    server_time: number;
}
/** The payload of `subscribe`, `unsubscribe`, `typing` and `subscribed`. */
export interface ChannelRef {
    channel_id: string;
}
/** Why a subscription ended: the client asked, or the server ended it. */
export type UnsubscribeReason = "client" | "removed" | "deleted";
/** `unsubscribed` (extension). Channels ended with `removed` or `deleted` are not resubscribed. */
export interface Unsubscribed {
    channel_id: string;
    reason: UnsubscribeReason;
}
/** The author of a chat message. */
export interface Author {
    id: number;
    display_name: string;
}
/** `message_create`: a new chat message in a channel. */
export interface MessageCreate {
    id: string;
    channel_id: string;
    author: Author;
    content: string;
    /** RFC 3339. */
    created_at: string;
}
/** `message_update`: an edited chat message. */
export interface MessageUpdate {
    id: string;
    channel_id: string;
    content: string;
    /** RFC 3339. */
    edited_at: string;
}
/** `message_delete`: a removed chat message. */
export interface MessageDelete {
    id: string;
    channel_id: string;
}
/** `typing_start`: another member is typing in a subscribed channel (stale after ~5 s). */
export interface TypingStart {
    channel_id: string;
    user_id: number;
    display_name: string;
}
/** A friend's presence. */
export type Presence = "online" | "offline";
/** `presence_update`: a friend went online or offline, or changed their status text. */
export interface PresenceUpdate {
    user_id: number;
    presence: Presence;
    status_text: string;
}
/** `notification`: a notification for this user. */
export interface Notification {
    id: string;
    type: string;
    title: string;
    body: string;
    /** RFC 3339. */
    created_at: string;
}
/** `session_revoked`: the session is dead; the server closes with 4003 right after. */
export interface SessionRevoked {
    reason: string;
}
/** The error codes of an `error` frame (the server may add more). */
export type ErrorCode = "INVALID_TICKET" | "INVALID_MESSAGE" | "CHANNEL_NOT_FOUND" | "NOT_MEMBER" | "NOT_SUBSCRIBED" | "TOO_MANY_SUBSCRIPTIONS" | "RATE_LIMITED" | "UNAVAILABLE" | (string & {});
/** `error`: only `INVALID_TICKET` ends the connection. */
export interface ErrorData {
    code: ErrorCode;
    message: string;
    /** Set when the error is about a channel. */
    channel_id?: string;
}
/** Every server → client frame type and its payload. */
export interface ServerFrameMap {
    ready: Ready;
    heartbeat_ack: HeartbeatAck;
    subscribed: ChannelRef;
    unsubscribed: Unsubscribed;
    message_create: MessageCreate;
    message_update: MessageUpdate;
    message_delete: MessageDelete;
    typing_start: TypingStart;
    presence_update: PresenceUpdate;
    notification: Notification;
    session_revoked: SessionRevoked;
    error: ErrorData;
}
/** The type of a server → client frame. */
export type ServerFrameType = keyof ServerFrameMap;
/** A server → client frame, discriminated by `type`. */
export type ServerFrame = {
    [K in ServerFrameType]: Frame<K, ServerFrameMap[K]>;
}[ServerFrameType];
/** Every server frame type, in protocol order. */
export declare const SERVER_FRAME_TYPES: readonly ServerFrameType[];
/** WebSocket close codes of the gateway (gateway/README.md, "Close codes"). */
export declare const CloseCode: {
    readonly NORMAL: 1000;
    readonly GOING_AWAY: 1001;
    readonly ABNORMAL: 1006;
    readonly MESSAGE_TOO_BIG: 1009;
    readonly INTERNAL_ERROR: 1011;
    readonly SERVICE_RESTART: 1012;
    readonly TRY_AGAIN_LATER: 1013;
    /** Used by this client (never by the server) when it abandons a socket: no ready in time, or no heartbeat_ack within an interval. */
    readonly CLIENT_DEAD_CONNECTION: 4000;
    readonly INVALID_TICKET: 4001;
    readonly SESSION_REVOKED: 4003;
    readonly HEARTBEAT_TIMEOUT: 4004;
    readonly RATE_LIMITED: 4008;
    readonly SLOW_CONSUMER: 4009;
    readonly TOO_MANY_CONNECTIONS: 4010;
};
