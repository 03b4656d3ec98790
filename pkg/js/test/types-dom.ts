// Browsers: the global WebSocket and fetch are used by default, and fit the
// injected-constructor option too.
import { OcvrClient } from "../dist/index.js";

const client = new OcvrClient({ url: "wss://rt.example/v1/ws", ticketUrl: "https://api.example", token: () => "sess_x" });
new OcvrClient({ url: "wss://rt.example/v1/ws", ticketUrl: "https://api.example", token: "sess_x", WebSocket, fetch });
client.on("message_create", (m) => document.title = m.content);
