// The React version of the demo chat (pkg/js/README.md "React"): the hooks
// of @ocvr/realtime-client/react under StrictMode, on the dev stack's
// DEVELOPMENT-ONLY sign-in (/demo-api/*). Build: `npm run demo:react` in
// pkg/js, then http://127.0.0.1:8090/demo/react/ (make run). The browser
// test (e2e/react.test.mjs) bundles and serves it itself.
//
// Query parameters: user=<id> and name=<name> sign in at once; ws=<gateway
// URL>[,…] pins the gateway(s).
import { StrictMode, useEffect, useState } from "react";
import { createRoot } from "react-dom/client";
import { OcvrClient } from "@ocvr/realtime-client";
import { OcvrProvider, useChannel, useClientEvent, useConnectionState, usePresence } from "@ocvr/realtime-client/react";

const params = new URLSearchParams(location.search);

async function api(path, token, body) {
  const res = await fetch(path, {
    method: body === undefined ? "GET" : "POST",
    headers: { "Content-Type": "application/json", ...(token ? { Authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (res.status === 204) return null;
  const json = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(json?.error?.message ?? `HTTP ${res.status}`);
  return json;
}

function App() {
  const [session, setSession] = useState(); // { me, client }
  const [error, setError] = useState("");
  useEffect(() => {
    if (!params.get("user")) return;
    signIn(Number(params.get("user")), params.get("name") ?? `User ${params.get("user")}`);
  }, []);

  async function signIn(userId, name) {
    try {
      const config = await api("/demo-api/config");
      const me = await api("/demo-api/sign-in", undefined, { user_id: userId, display_name: name });
      const urls = params.get("ws") ? params.get("ws").split(",") : config.ws_urls;
      // The constructor has no side effects: the provider connects it.
      const client = new OcvrClient({ url: urls, ticketUrl: config.ticket_url, token: me.token });
      window.ocvrReactDemo = { client, me };
      setSession({ me, client });
    } catch (e) {
      setError(e.message);
    }
  }

  if (!session) {
    return (
      <main className="card sign-in">
        <h2>Sign in (development only)</h2>
        <button type="button" onClick={() => signIn(1, "Alice")}>Alice</button> <button type="button" onClick={() => signIn(2, "Bob")}>Bob</button>
        <p className="error">{error}</p>
      </main>
    );
  }
  return (
    <OcvrProvider client={session.client}>
      <Chat me={session.me} />
    </OcvrProvider>
  );
}

function Chat({ me }) {
  const state = useConnectionState();
  const [notes, setNotes] = useState([]);
  const [second, setSecond] = useState(false); // a second view of the first channel: one subscription, shared
  useClientEvent("notification", (n) => setNotes((list) => [n, ...list]));
  return (
    <main>
      <header className="topbar">
        <h1>OCVR Realtime <span className="muted">React demo</span></h1>
        <span className="me">{me.display_name} · user {me.user_id}</span>
        <span className="status" data-testid="status" data-state={state}>{state}</span>
      </header>
      <div className="layout">
        {me.channels.map((ch) => <Channel key={ch} id={ch} />)}
        <label><input type="checkbox" data-testid="second-view" checked={second} onChange={(e) => setSecond(e.target.checked)} /> second view</label>
        {second && <Channel key="second" id={me.channels[0]} />}
        <Friends token={me.token} />
        <ul data-testid="notifications">{notes.map((n) => <li key={n.id}>{n.title}</li>)}</ul>
      </div>
    </main>
  );
}

function Channel({ id }) {
  const [messages, setMessages] = useState([]);
  const [note, setNote] = useState("");
  const [draft, setDraft] = useState("");
  const { state, error, subscription } = useChannel(id, {
    message_create: (m) => setMessages((list) => (list.some((x) => x.id === m.id) ? list : [...list, m])),
    message_delete: (d) => setMessages((list) => list.filter((x) => x.id !== d.id)),
    // A real app reloads the channel's recent messages when refetch is true
    // (this demo has no history API); after a resumed reconnect the missed
    // messages simply follow.
    subscribed: ({ reconnect, resumed }) => setNote(!reconnect ? "" : resumed ? "reconnected: resumed, nothing missed" : "reconnected: messages may be missing (refetch)"),
  });
  async function send(e) {
    e.preventDefault();
    if (!draft.trim()) return;
    await api("/demo-api/messages", window.ocvrReactDemo.me.token, { channel_id: id, content: draft.trim() });
    setDraft("");
  }
  return (
    <section className="card" data-testid={`channel-${id}`} data-state={state}>
      <h2># {id} <span className="muted small">{state}{error ? ` · ${error.code}` : ""}</span></h2>
      <p className="muted small" data-testid="continuity">{note}</p>
      <ul data-testid="messages">{messages.map((m) => <li key={m.id}><b>{m.author.display_name}</b>: {m.content}</li>)}</ul>
      <form onSubmit={send}>
        <input data-testid="composer" value={draft} onChange={(e) => { setDraft(e.target.value); subscription.typing(); }} />
        <button type="submit">Send</button>
      </form>
    </section>
  );
}

function Friends({ token }) {
  // Loaded at every connect (presence is never replayed), kept current by presence_update.
  const presence = usePresence({
    load: async () => (await api("/demo-api/friends", token)).friends.map((f) => ({ user_id: f.user_id, presence: f.online ? "online" : "offline", status_text: f.status_text })),
  });
  return (
    <section className="card">
      <h2>Friends</h2>
      <ul data-testid="friends">
        {[...presence.values()].map((p) => <li key={p.user_id} data-user={p.user_id} data-presence={p.presence}>user {p.user_id}: {p.presence}{p.status_text ? ` · ${p.status_text}` : ""}</li>)}
      </ul>
    </section>
  );
}

createRoot(document.getElementById("root")).render(
  <StrictMode>
    <App />
  </StrictMode>,
);
