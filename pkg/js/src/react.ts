/**
 * @ocvr/realtime-client/react: React (18, 19) hooks over one
 * {@link OcvrClient}. `react` is an optional peer dependency: only this
 * entry point imports it.
 *
 * ```tsx
 * const client = new OcvrClient({ url, ticketUrl, token }); // no side effects: safe at module level or in useState
 * <OcvrProvider client={client}><Chat /></OcvrProvider>      // connects on mount, closes on unmount
 *
 * function Chat() {
 *   const state = useConnectionState();                      // "connecting" | "open" | "reconnecting" | …
 *   const [messages, setMessages] = useState<MessageCreate[]>([]);
 *   const general = useChannel("ch_general", {
 *     message_create: (m) => setMessages((list) => [...list, m]),
 *     subscribed: ({ refetch }) => { if (refetch) void loadMessages().then(setMessages); },
 *   });
 *   const friends = usePresence({ load: loadFriendsPresence });
 *   …
 * }
 * ```
 *
 * Safe under StrictMode: the provider's connect, close, connect opens one
 * socket, and a channel's subscribe, unsubscribe, subscribe sends one
 * subscribe (the unsubscribe is deferred a turn and cancelled).
 */
import { createContext, createElement, useCallback, useContext, useEffect, useRef, useState, useSyncExternalStore } from "react";
import type { ReactElement, ReactNode } from "react";
import type { ClientEventMap, ClientEventType, ConnectionState, OcvrClient } from "./client.js";
import type { OcvrError } from "./errors.js";
import type { AnyServerFrame, PresenceUpdate } from "./protocol.js";
import type { SubscribedEvent, Subscription, SubscriptionEventMap, SubscriptionEventType, SubscriptionState } from "./subscription.js";

const ClientContext = createContext<OcvrClient | null>(null);

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
export function OcvrProvider({ client, connect = true, children }: OcvrProviderProps): ReactElement {
  useEffect(() => {
    if (!connect) return undefined;
    client.connect();
    return () => void client.close();
  }, [client, connect]);
  return createElement(ClientContext.Provider, { value: client }, children);
}

/** The provider's client; throws outside an {@link OcvrProvider}. */
export function useOcvrClient(): OcvrClient {
  const client = useContext(ClientContext);
  if (!client) throw new Error("useOcvrClient: no <OcvrProvider client={…}> above this component");
  return client;
}

/** The client's connection state, re-rendering on every change. */
export function useConnectionState(): ConnectionState {
  const client = useOcvrClient();
  const subscribe = useCallback((onChange: () => void) => client.on("state", onChange), [client]);
  return useSyncExternalStore(subscribe, () => client.state, () => client.state);
}

/**
 * Listens to a client event (`notification`, `connected`, `closed`, an event
 * type the client does not know yet, …) while the component is mounted. The
 * listener may change on every render.
 */
export function useClientEvent<K extends ClientEventType>(type: K, listener: (data: ClientEventMap[K]) => void): void;
export function useClientEvent(type: string, listener: (data: Record<string, unknown>) => void): void;
export function useClientEvent(type: string, listener: (data: never) => void): void {
  const client = useOcvrClient();
  const ref = useRef(listener);
  ref.current = listener;
  useEffect(() => client.on(type, (data: Record<string, unknown>) => (ref.current as (d: unknown) => void)(data)), [client, type]);
}

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

const OWN: readonly SubscriptionEventType[] = ["state", "subscribed", "unsubscribed", "error"];

/**
 * Subscribes to a channel while the component is mounted (`null`: none),
 * and calls `handlers` with its events: an object of typed handlers
 * (`{ message_create: (m) => …, subscribed: ({ refetch }) => … }`), or one
 * function getting every channel event whole. `subscribed` comes first and
 * after each reconnect: load the channel's state whenever its `refetch` is
 * true. Several components may use the same channel: it is unsubscribed
 * when the last one unmounts.
 */
export function useChannel(channelId: string, handlers?: ChannelHandlers | ((frame: AnyServerFrame) => void)): UseChannelResult;
export function useChannel(channelId: string | null, handlers?: ChannelHandlers | ((frame: AnyServerFrame) => void)): UseChannelResult | undefined;
export function useChannel(channelId: string | null, handlers?: ChannelHandlers | ((frame: AnyServerFrame) => void)): UseChannelResult | undefined {
  const client = useOcvrClient();
  const sub = channelId === null ? undefined : client.channel(channelId);
  const ref = useRef<ChannelHandlers>({});
  ref.current = typeof handlers === "function" ? { frame: handlers } : (handlers ?? {});
  const [error, setError] = useState<{ sub: Subscription; error: OcvrError } | undefined>(undefined);
  const subscribe = useCallback((onChange: () => void) => (sub ? sub.on("state", onChange) : () => {}), [sub]);
  const state = useSyncExternalStore(subscribe, () => sub?.state ?? "unsubscribed", () => sub?.state ?? "unsubscribed");

  useEffect(() => {
    if (!sub) return undefined;
    const call = (type: string, data: unknown): void => (ref.current as Record<string, ((d: unknown) => void) | undefined>)[type]?.(data);
    const offs = [
      sub.on("subscribed", () => setError(undefined)),
      sub.on("unsubscribed", (ev) => {
        if (ev.error) setError({ sub, error: ev.error });
      }),
      sub.on("error", (e) => setError({ sub, error: e })),
      ...OWN.map((type) => sub.on(type, (d: unknown) => call(type, d))),
      sub.on("frame", (f) => {
        if (!OWN.includes(f.type as SubscriptionEventType) && f.type !== "frame") call(f.type, f.data);
        call("frame", f);
      }),
    ];
    acquire(client, sub);
    return () => {
      for (const off of offs) off();
      release(client, sub);
    };
  }, [client, sub]);

  if (!sub) return undefined;
  return { state, error: error?.sub === sub ? error.error : undefined, subscription: sub };
}

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
export function usePresence(options?: UsePresenceOptions): ReadonlyMap<number, PresenceUpdate> {
  const client = useOcvrClient();
  const [presence, setPresence] = useState<ReadonlyMap<number, PresenceUpdate>>(() => new Map());
  const load = useRef(options?.load);
  load.current = options?.load;

  useEffect(() => {
    let alive = true;
    let run = 0;
    let during: PresenceUpdate[] | undefined;
    const apply = (updates: Iterable<PresenceUpdate>, base?: ReadonlyMap<number, PresenceUpdate>) =>
      setPresence((prev) => {
        const next = new Map(base ?? prev);
        for (const u of updates) next.set(u.user_id, u);
        return next;
      });
    const reload = async (): Promise<void> => {
      const fn = load.current;
      if (!fn) return;
      const mine = ++run;
      during = [];
      try {
        const snapshot = await fn();
        if (!alive || mine !== run) return;
        const map = new Map<number, PresenceUpdate>();
        for (const u of snapshot) map.set(u.user_id, u);
        apply(during, map);
      } catch {
        // Keep what is shown; the next connect loads again.
      } finally {
        if (mine === run) during = undefined;
      }
    };
    const offs = [
      client.on("presence_update", (p) => {
        during?.push(p);
        apply([p]);
      }),
      client.on("connected", () => void reload()),
    ];
    if (client.state === "open") void reload();
    return () => {
      alive = false;
      for (const off of offs) off();
    };
  }, [client]);
  return presence;
}

// Channels wanted by mounted components, per client: unsubscribed when the
// last one unmounts, a turn later, so that StrictMode's unmount + mount (or
// a component moving) does not unsubscribe and subscribe again.
const holders = new WeakMap<OcvrClient, Map<Subscription, number>>();

function acquire(client: OcvrClient, sub: Subscription): void {
  let m = holders.get(client);
  if (!m) holders.set(client, (m = new Map()));
  m.set(sub, (m.get(sub) ?? 0) + 1);
  if (sub.state === "unsubscribed") sub.subscribe().catch(() => {}); // failures reach the hook as events
}

function release(client: OcvrClient, sub: Subscription): void {
  const m = holders.get(client);
  if (!m) return;
  const n = (m.get(sub) ?? 1) - 1;
  if (n > 0) {
    m.set(sub, n);
    return;
  }
  m.delete(sub);
  setTimeout(() => {
    if (!m.has(sub)) void sub.unsubscribe();
  }, 0);
}

export type { AnyServerFrame, ConnectionState, PresenceUpdate, SubscribedEvent, Subscription, SubscriptionState };
