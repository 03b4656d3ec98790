// Browsers: the global WebSocket and fetch are used by default, and fit the
// injected-constructor option too.
import { OcvrClient } from "../dist/index.js";

const client = new OcvrClient({ url: "wss://rt.example/v1/ws", ticketUrl: "https://api.example", token: () => "sess_x" });
new OcvrClient({ url: "wss://rt.example/v1/ws", ticketUrl: "https://api.example", token: "sess_x", WebSocket, fetch });
client.on("message_create", (m) => document.title = m.content);

// React: the hooks' types (tsx-free: React.createElement).
import { createElement } from "react";
import type { ReactElement } from "react";
import { OcvrProvider, useChannel, useClientEvent, useConnectionState, usePresence } from "../dist/react.js";
import type { ConnectionState, PresenceUpdate, SubscriptionState, OcvrError } from "../dist/index.js";

function Chat(): ReactElement {
  const state: ConnectionState = useConnectionState();
  const { state: sub, error, subscription } = useChannel("ch_general", {
    message_create: (m) => void (document.title = m.content),
    subscribed: ({ refetch }) => void refetch,
    unsubscribed: ({ reason, error }) => void [reason, error?.code],
    // @ts-expect-error message_delete's data has no content
    message_delete: (d) => void d.content,
  });
  useChannel("ch_other", (f) => void f.type); // every channel event whole
  // @ts-expect-error not an event of a channel
  useChannel("ch_x", { notification: () => {} });
  const s: SubscriptionState = sub;
  const e: OcvrError | undefined = error;
  const none = useChannel(null);
  // @ts-expect-error useChannel(null) may return undefined
  none.state;
  const presence: ReadonlyMap<number, PresenceUpdate> = usePresence({ load: async () => [{ user_id: 2, presence: "online", status_text: "" }] });
  useClientEvent("notification", (n) => void n.title);
  useClientEvent("friend_request_accepted", (d) => void d["user_id"]);
  void s, e, subscription.typing(), presence;
  return createElement("p", null, state);
}
createElement(OcvrProvider, { client }, createElement(Chat));
