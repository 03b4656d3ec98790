/**
 * @ocvr/realtime-client: the OCVR Realtime WebSocket client for browsers and
 * Node.js (20+). No runtime dependencies.
 *
 * ```ts
 * import { OcvrClient } from "@ocvr/realtime-client";
 * const client = new OcvrClient({ url: "wss://rt.example/v1/ws", ticketUrl: "https://api.example", token });
 * client.on("message_create", (m) => console.log(`${m.author.display_name}: ${m.content}`));
 * client.connect();
 * const general = client.channel("ch_general");
 * general.on("subscribed", ({ refetch }) => { if (refetch) reloadMessages(); });
 * await general.subscribe();
 * ```
 *
 * React hooks: `@ocvr/realtime-client/react`.
 */
export { OcvrClient } from "./client.js";
export { Subscription } from "./subscription.js";
export type { SubscribeOptions, SubscribedEvent, SubscriptionEndEvent, SubscriptionEndReason, SubscriptionEventMap, SubscriptionEventType, SubscriptionState, SubscriptionStateEvent, } from "./subscription.js";
export type { ChannelContinuity, ConnectedEvent, ClientEventMap, ClientEventType, ClientOptions, ClosedEvent, ConnectionState, ContinuityBase, ContinuityEvent, DisconnectEvent, GetTicketContext, Listener, UnknownListener, ReconnectingEvent, StateEvent, StopReason, UserContinuity, WebSocketConstructor, WebSocketLike, } from "./client.js";
export { OcvrError } from "./errors.js";
export type { OcvrErrorCode, OcvrErrorDetails } from "./errors.js";
export { fetchTicket, ticketEndpoint } from "./ticket.js";
export { MAX_RETRY_AFTER, reasonRetryAfter } from "./retry.js";
export type { FetchLike, FetchResponseLike, FetchTicketOptions } from "./ticket.js";
export { CloseCode, SERVER_FRAME_TYPES, isKnownFrame } from "./protocol.js";
export { KNOWN_ERROR_CODES, closeAction, errorPolicy } from "./policy.js";
export type { CloseAction, ErrorPolicy } from "./policy.js";
export type * from "./protocol.js";
