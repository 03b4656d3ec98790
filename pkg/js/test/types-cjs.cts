// Compile-time test of the CommonJS declarations: a CommonJS TypeScript
// project (module node16, a .cts file) resolves the package's `require`
// condition (dist/cjs/*.d.ts) for the client and the React entry point.
import { OcvrClient, OcvrError } from "@ocvr/realtime-client";
import type { Subscription, SubscribedEvent } from "@ocvr/realtime-client";
import { OcvrProvider, useChannel, useConnectionState, usePresence } from "@ocvr/realtime-client/react";

const client = new OcvrClient({ url: "wss://rt.example/v1/ws", ticketUrl: "https://api.example", token: "sess_x" });
const sub: Subscription = client.channel("ch_general");
sub.on("subscribed", (e: SubscribedEvent) => e.refetch);
sub.on("channel_update", (d) => d["name"]);
void [OcvrError, OcvrProvider, useChannel, useConnectionState, usePresence];
