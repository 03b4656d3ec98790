"use strict";
var __defProp = Object.defineProperty;
var __getOwnPropDesc = Object.getOwnPropertyDescriptor;
var __getOwnPropNames = Object.getOwnPropertyNames;
var __hasOwnProp = Object.prototype.hasOwnProperty;
var __export = (target, all) => {
  for (var name in all)
    __defProp(target, name, { get: all[name], enumerable: true });
};
var __copyProps = (to, from, except, desc) => {
  if (from && typeof from === "object" || typeof from === "function") {
    for (let key of __getOwnPropNames(from))
      if (!__hasOwnProp.call(to, key) && key !== except)
        __defProp(to, key, { get: () => from[key], enumerable: !(desc = __getOwnPropDesc(from, key)) || desc.enumerable });
  }
  return to;
};
var __toCommonJS = (mod) => __copyProps(__defProp({}, "__esModule", { value: true }), mod);
var react_exports = {};
__export(react_exports, {
  OcvrProvider: () => OcvrProvider,
  useChannel: () => useChannel,
  useClientEvent: () => useClientEvent,
  useConnectionState: () => useConnectionState,
  useOcvrClient: () => useOcvrClient,
  usePresence: () => usePresence
});
module.exports = __toCommonJS(react_exports);
var import_react = require("react");
const ClientContext = (0, import_react.createContext)(null);
function OcvrProvider({ client, connect = true, children }) {
  (0, import_react.useEffect)(() => {
    if (!connect) return void 0;
    client.connect();
    return () => void client.close();
  }, [client, connect]);
  return (0, import_react.createElement)(ClientContext.Provider, { value: client }, children);
}
function useOcvrClient() {
  const client = (0, import_react.useContext)(ClientContext);
  if (!client) throw new Error("useOcvrClient: no <OcvrProvider client={\u2026}> above this component");
  return client;
}
function useConnectionState() {
  const client = useOcvrClient();
  const subscribe = (0, import_react.useCallback)((onChange) => client.on("state", onChange), [client]);
  return (0, import_react.useSyncExternalStore)(subscribe, () => client.state, () => client.state);
}
function useClientEvent(type, listener) {
  const client = useOcvrClient();
  const ref = (0, import_react.useRef)(listener);
  ref.current = listener;
  (0, import_react.useEffect)(() => client.on(type, (data) => ref.current(data)), [client, type]);
}
const OWN = ["state", "subscribed", "unsubscribed", "error"];
function useChannel(channelId, handlers) {
  const client = useOcvrClient();
  const sub = channelId === null ? void 0 : client.channel(channelId);
  const ref = (0, import_react.useRef)({});
  ref.current = typeof handlers === "function" ? { frame: handlers } : handlers ?? {};
  const [error, setError] = (0, import_react.useState)(void 0);
  const subscribe = (0, import_react.useCallback)((onChange) => sub ? sub.on("state", onChange) : () => {
  }, [sub]);
  const state = (0, import_react.useSyncExternalStore)(subscribe, () => sub?.state ?? "unsubscribed", () => sub?.state ?? "unsubscribed");
  (0, import_react.useEffect)(() => {
    if (!sub) return void 0;
    const call = (type, data) => ref.current[type]?.(data);
    const offs = [
      sub.on("subscribed", () => setError(void 0)),
      sub.on("unsubscribed", (ev) => {
        if (ev.error) setError({ sub, error: ev.error });
      }),
      sub.on("error", (e) => setError({ sub, error: e })),
      ...OWN.map((type) => sub.on(type, (d) => call(type, d))),
      sub.on("frame", (f) => {
        if (!OWN.includes(f.type) && f.type !== "frame") call(f.type, f.data);
        call("frame", f);
      })
    ];
    acquire(client, sub);
    return () => {
      for (const off of offs) off();
      release(client, sub);
    };
  }, [client, sub]);
  if (!sub) return void 0;
  return { state, error: error?.sub === sub ? error.error : void 0, subscription: sub };
}
function usePresence(options) {
  const client = useOcvrClient();
  const [presence, setPresence] = (0, import_react.useState)(() => /* @__PURE__ */ new Map());
  const load = (0, import_react.useRef)(options?.load);
  load.current = options?.load;
  (0, import_react.useEffect)(() => {
    let alive = true;
    let run = 0;
    let during;
    const apply = (updates, base) => setPresence((prev) => {
      const next = new Map(base ?? prev);
      for (const u of updates) next.set(u.user_id, u);
      return next;
    });
    const reload = async () => {
      const fn = load.current;
      if (!fn) return;
      const mine = ++run;
      during = [];
      try {
        const snapshot = await fn();
        if (!alive || mine !== run) return;
        const map = /* @__PURE__ */ new Map();
        for (const u of snapshot) map.set(u.user_id, u);
        apply(during, map);
      } catch {
      } finally {
        if (mine === run) during = void 0;
      }
    };
    const offs = [
      client.on("presence_update", (p) => {
        during?.push(p);
        apply([p]);
      }),
      client.on("connected", () => void reload())
    ];
    if (client.state === "open") void reload();
    return () => {
      alive = false;
      for (const off of offs) off();
    };
  }, [client]);
  return presence;
}
const holders = /* @__PURE__ */ new WeakMap();
function acquire(client, sub) {
  let m = holders.get(client);
  if (!m) holders.set(client, m = /* @__PURE__ */ new Map());
  m.set(sub, (m.get(sub) ?? 0) + 1);
  if (sub.state === "unsubscribed") sub.subscribe().catch(() => {
  });
}
function release(client, sub) {
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
