/** Every frame in both directions is one JSON text frame `{"type", "data"}` (`data` may be absent where a type carries nothing, as in `{"type":"heartbeat"}`; the client then hands over `{}`). */
export interface Frame<T extends string = string, D = unknown> {
    type: T;
    data: D;
}
/**
 * The position of an event (continuity, extension): additive top-level
 * fields beside `type` and `data` of the events that backends publish
 * through the event stream. Events published without the stream
 * (`typing_start`, `presence_update`, core publishes) have neither.
 */
export interface Positioned {
    /** The event's position (a stream sequence, an integer): its subscription's cursor once received. */
    seq?: number;
    /** Set on a channel's events: the subscription (channel) the position belongs to. Absent: the user's own events. */
    channel_id?: string;
}
/** `ready` (extension): sent once, first, after a successful upgrade. */
export interface Ready {
    connection_id: string;
    user_id: number;
    session_id: string;
    /** MILLISECONDS between heartbeats the client should send (30000 by default). */
    heartbeat_interval: number;
    /** The server's clock: unix SECONDS (an integer, e.g. 1703523600), like `heartbeat_ack.server_time`. */
    server_time: number;
    /**
     * Continuity: the token to present on the next reconnect
     * (`?resume=<token>&seq=<user cursor>`), bound to this user and session.
     * Absent when the gateway runs without the event stream.
     */
    resume_token?: string;
    /** Continuity: the cursor of the user's own events to start from (absent: 0). */
    seq?: number;
    /**
     * Continuity: present only when the connection asked to resume. `true`:
     * every user event missed since the cursor follows, exactly once and in
     * order, before live ones; `false`: nothing is replayed, refetch the
     * user's state (notifications, …).
     */
    resumed?: boolean;
}
/** `heartbeat_ack`: the answer to a `heartbeat`. */
export interface HeartbeatAck {
    /** The server's clock: unix SECONDS (an integer, e.g. 1703523600); `new Date(server_time * 1000)`. */
    server_time: number;
}
/** The payload of `unsubscribe` and `typing` (and the base of `subscribe` and `subscribed`). */
export interface ChannelRef {
    channel_id: string;
}
/** The payload of `subscribe`. */
export interface Subscribe extends ChannelRef {
    /** Continuity: on a connection opened with a resume token, the channel's cursor to resume from. */
    seq?: number;
}
/** `subscribed` (extension): the subscription is live. */
export interface Subscribed extends ChannelRef {
    /** Continuity: the channel's cursor to start from (absent: 0). */
    seq?: number;
    /**
     * Continuity: present only when the subscribe asked to resume (it carried
     * `seq`). `true`: every event of the channel missed since the cursor
     * follows, exactly once and in order, before live ones; `false`: nothing
     * is replayed, refetch the channel's state (its messages).
     */
    resumed?: boolean;
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
/**
 * An attachment of a chat message: the chat backend's own object, passed
 * through as it is (the protocol does not define its fields).
 */
export type Attachment = Record<string, unknown>;
/** `message_create`: a new chat message in a channel. */
export interface MessageCreate {
    id: string;
    channel_id: string;
    author: Author;
    content: string;
    /** Unix SECONDS (an integer, e.g. 1703523600); `new Date(created_at * 1000)`. */
    created_at: number;
    /** Always present; `[]` when there are none. */
    attachments: Attachment[];
}
/** `message_update`: an edited chat message. */
export interface MessageUpdate {
    id: string;
    channel_id: string;
    content: string;
    /** Unix SECONDS (an integer, e.g. 1703523700); `new Date(edited_at * 1000)`. */
    edited_at: number;
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
    /** The notification's kind, e.g. `"friend_request"` (not the frame's type). */
    type: string;
    title: string;
    body: string;
    /** Unix SECONDS (an integer, e.g. 1703523600); `new Date(created_at * 1000)`. */
    created_at: number;
    /** The kind's own payload, an object: e.g. `{ from_user_id: 456 }` for a `friend_request`. */
    data: Record<string, unknown>;
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
/** Every server → client frame type this client knows, and its payload. */
export interface ServerFrameMap {
    ready: Ready;
    heartbeat_ack: HeartbeatAck;
    subscribed: Subscribed;
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
/** The type of a server → client frame this client knows. */
export type ServerFrameType = keyof ServerFrameMap;
/**
 * A server → client frame of a type this client knows, discriminated by
 * `type`; an event published through the event stream also carries its
 * position ({@link Positioned}).
 */
export type ServerFrame = {
    [K in ServerFrameType]: Frame<K, ServerFrameMap[K]> & Positioned;
}[ServerFrameType];
/**
 * The payload of an event type this client does not know: the backend's
 * own object, as sent.
 */
export type UnknownEventData = Record<string, unknown>;
/**
 * A server → client frame of a type this client does not know (yet): the
 * platform adds event types (`channel_update`, `friend_request_accepted`,
 * …) without a gateway or client release, and the gateway delivers them as
 * they are.
 */
export interface UnknownServerFrame extends Positioned {
    type: string;
    data: UnknownEventData;
}
/**
 * Any server → client frame: a known one or not. Narrow it with
 * {@link isKnownFrame} before switching on `type`.
 */
export type AnyServerFrame = ServerFrame | UnknownServerFrame;
/** Every server frame type, in protocol order. */
export declare const SERVER_FRAME_TYPES: readonly ServerFrameType[];
/** Whether a frame is of a type this client knows (then `type` discriminates `data`). */
export declare function isKnownFrame(frame: AnyServerFrame): frame is ServerFrame;
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
