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
const ClientContext = createContext(null);
/**
 * Makes `client` the hooks' client. It connects the client on mount and
 * closes it on unmount (unless `connect={false}`); channels the hooks still
 * want are subscribed again when it connects again.
 */
export function OcvrProvider({ client, connect = true, children }) {
    useEffect(() => {
        if (!connect)
            return undefined;
        client.connect();
        return () => void client.close();
    }, [client, connect]);
    return createElement(ClientContext.Provider, { value: client }, children);
}
/** The provider's client; throws outside an {@link OcvrProvider}. */
export function useOcvrClient() {
    const client = useContext(ClientContext);
    if (!client)
        throw new Error("useOcvrClient: no <OcvrProvider client={…}> above this component");
    return client;
}
/** The client's connection state, re-rendering on every change. */
export function useConnectionState() {
    const client = useOcvrClient();
    const subscribe = useCallback((onChange) => client.on("state", onChange), [client]);
    return useSyncExternalStore(subscribe, () => client.state, () => client.state);
}
export function useClientEvent(type, listener) {
    const client = useOcvrClient();
    const ref = useRef(listener);
    ref.current = listener;
    useEffect(() => client.on(type, (data) => ref.current(data)), [client, type]);
}
const OWN = ["state", "subscribed", "unsubscribed", "error"];
export function useChannel(channelId, handlers) {
    const client = useOcvrClient();
    const sub = channelId === null ? undefined : client.channel(channelId);
    const ref = useRef({});
    ref.current = typeof handlers === "function" ? { frame: handlers } : (handlers ?? {});
    const [error, setError] = useState(undefined);
    const subscribe = useCallback((onChange) => (sub ? sub.on("state", onChange) : () => { }), [sub]);
    const state = useSyncExternalStore(subscribe, () => sub?.state ?? "unsubscribed", () => sub?.state ?? "unsubscribed");
    useEffect(() => {
        if (!sub)
            return undefined;
        const call = (type, data) => ref.current[type]?.(data);
        const offs = [
            sub.on("subscribed", () => setError(undefined)),
            sub.on("unsubscribed", (ev) => {
                if (ev.error)
                    setError({ sub, error: ev.error });
            }),
            sub.on("error", (e) => setError({ sub, error: e })),
            ...OWN.map((type) => sub.on(type, (d) => call(type, d))),
            sub.on("frame", (f) => {
                if (!OWN.includes(f.type) && f.type !== "frame")
                    call(f.type, f.data);
                call("frame", f);
            }),
        ];
        acquire(client, sub);
        return () => {
            for (const off of offs)
                off();
            release(client, sub);
        };
    }, [client, sub]);
    if (!sub)
        return undefined;
    return { state, error: error?.sub === sub ? error.error : undefined, subscription: sub };
}
/**
 * The friends' presence by user id: what `load` gave, kept current by every
 * `presence_update`. Without `load` only the updates since mount.
 */
export function usePresence(options) {
    const client = useOcvrClient();
    const [presence, setPresence] = useState(() => new Map());
    const load = useRef(options?.load);
    load.current = options?.load;
    useEffect(() => {
        let alive = true;
        let run = 0;
        let during;
        const apply = (updates, base) => setPresence((prev) => {
            const next = new Map(base ?? prev);
            for (const u of updates)
                next.set(u.user_id, u);
            return next;
        });
        const reload = async () => {
            const fn = load.current;
            if (!fn)
                return;
            const mine = ++run;
            during = [];
            try {
                const snapshot = await fn();
                if (!alive || mine !== run)
                    return;
                const map = new Map();
                for (const u of snapshot)
                    map.set(u.user_id, u);
                apply(during, map);
            }
            catch {
                // Keep what is shown; the next connect loads again.
            }
            finally {
                if (mine === run)
                    during = undefined;
            }
        };
        const offs = [
            client.on("presence_update", (p) => {
                during?.push(p);
                apply([p]);
            }),
            client.on("connected", () => void reload()),
        ];
        if (client.state === "open")
            void reload();
        return () => {
            alive = false;
            for (const off of offs)
                off();
        };
    }, [client]);
    return presence;
}
// Channels wanted by mounted components, per client: unsubscribed when the
// last one unmounts, a turn later, so that StrictMode's unmount + mount (or
// a component moving) does not unsubscribe and subscribe again.
const holders = new WeakMap();
function acquire(client, sub) {
    let m = holders.get(client);
    if (!m)
        holders.set(client, (m = new Map()));
    m.set(sub, (m.get(sub) ?? 0) + 1);
    if (sub.state === "unsubscribed")
        sub.subscribe().catch(() => { }); // failures reach the hook as events
}
function release(client, sub) {
    const m = holders.get(client);
    if (!m)
        return;
    const n = (m.get(sub) ?? 1) - 1;
    if (n > 0) {
        m.set(sub, n);
        return;
    }
    m.delete(sub);
    setTimeout(() => {
        if (!m.has(sub))
            void sub.unsubscribe();
    }, 0);
}
