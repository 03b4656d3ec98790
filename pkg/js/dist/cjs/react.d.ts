import type { ReactElement, ReactNode } from "react";
import type { ClientEventMap, ClientEventType, ConnectionState, OcvrClient } from "./client.js";
import type { OcvrError } from "./errors.js";
import type { AnyServerFrame, PresenceUpdate } from "./protocol.js";
import type { SubscribedEvent, Subscription, SubscriptionEventMap, SubscriptionEventType, SubscriptionState } from "./subscription.js";
/** Props of {@link OcvrProvider}. */
export interface OcvrProviderProps {
    client: OcvrClient;
    /** Connect on mount and close on unmount (default true). `false`: the app calls `connect()` and `close()`. */
    connect?: boolean;
    children?: ReactNode;
}
/**
 * Makes `client` the hooks' client. It connects the client on mount and
 * closes it on unmount (unless `connect={false}`); channels the hooks still
 * want are subscribed again when it connects again.
 */
export declare function OcvrProvider({ client, connect, children }: OcvrProviderProps): ReactElement;
/** The provider's client; throws outside an {@link OcvrProvider}. */
export declare function useOcvrClient(): OcvrClient;
/** The client's connection state, re-rendering on every change. */
export declare function useConnectionState(): ConnectionState;
/**
 * Listens to a client event (`notification`, `connected`, `closed`, an event
 * type the client does not know yet, …) while the component is mounted. The
 * listener may change on every render.
 */
export declare function useClientEvent<K extends ClientEventType>(type: K, listener: (data: ClientEventMap[K]) => void): void;
export declare function useClientEvent(type: string, listener: (data: Record<string, unknown>) => void): void;
/**
 * What {@link useChannel} calls: a listener per event type of the channel's
 * {@link Subscription}, typed (`message_create`, …, its own `subscribed`,
 * `unsubscribed`, `error`, `state`, and `frame` for every channel event
 * whole, the types the client does not know included). The handlers may
 * change on every render.
 */
export type ChannelHandlers = {
    [K in SubscriptionEventType]?: (data: SubscriptionEventMap[K]) => void;
};
/** What {@link useChannel} returns. */
export interface UseChannelResult {
    state: SubscriptionState;
    /** The last refusal (`NOT_MEMBER`, …), timeout or failure; cleared by the next `subscribed`. */
    error: OcvrError | undefined;
    subscription: Subscription;
}
/**
 * Subscribes to a channel while the component is mounted (`null`: none),
 * and calls `handlers` with its events: an object of typed handlers
 * (`{ message_create: (m) => …, subscribed: ({ refetch }) => … }`), or one
 * function getting every channel event whole. `subscribed` comes first and
 * after each reconnect: load the channel's state whenever its `refetch` is
 * true. Several components may use the same channel: it is unsubscribed
 * when the last one unmounts.
 */
export declare function useChannel(channelId: string, handlers?: ChannelHandlers | ((frame: AnyServerFrame) => void)): UseChannelResult;
export declare function useChannel(channelId: string | null, handlers?: ChannelHandlers | ((frame: AnyServerFrame) => void)): UseChannelResult | undefined;
/** Options of {@link usePresence}. */
export interface UsePresenceOptions {
    /**
     * Loads the friends' presence from your backend: at mount and after every
     * connect, reconnects included (presence is never replayed after a
     * reconnect, so it is loaded again). Updates that arrive while it runs
     * are applied on top of its answer.
     */
    load?: () => Promise<Iterable<PresenceUpdate>> | Iterable<PresenceUpdate>;
}
/**
 * The friends' presence by user id: what `load` gave, kept current by every
 * `presence_update`. Without `load` only the updates since mount.
 */
export declare function usePresence(options?: UsePresenceOptions): ReadonlyMap<number, PresenceUpdate>;
export type { AnyServerFrame, ConnectionState, PresenceUpdate, SubscribedEvent, Subscription, SubscriptionState };
