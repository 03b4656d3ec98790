// End-to-end: the React hooks (@ocvr/realtime-client/react) in headless
// Debian Chromium, in StrictMode with development React (mount, unmount,
// mount), against the real stack (test/harness.mjs). The React demo
// (demo/react/app.jsx) is bundled here with esbuild from src/ and served
// in place of demo/react/app.js (page.route), on the dev stack's origin so
// that its /demo-api/* sign-in works. Then the browser's `online` event:
// a client waiting out a long retry hint reconnects at once. Screenshots go
// to test-artifacts/e2e/.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

import { repoRoot, startStack, waitFor } from "../test/harness.mjs";
import { bundleReactDemo } from "../scripts/demo-react.mjs";

const CHROMIUM = process.env.OCVR_CHROMIUM ?? "/usr/bin/chromium";
const GRACE_MS = 1000;
const artifacts = join(repoRoot, "test-artifacts", "e2e");

let stack;
let browser;
let bundle;

before(async () => {
  mkdirSync(artifacts, { recursive: true });
  [stack, bundle] = await Promise.all([
    startStack({ gateways: 2, gatewayArgs: ["--presence-grace", `${GRACE_MS}ms`, "--heartbeat-interval", "2000ms", "--heartbeat-timeout", "5s"] }),
    bundleReactDemo(),
  ]);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
  });
});

after(async () => {
  await browser?.close();
  await stack?.stop();
});

/**
 * Opens the React demo signed in as a user, pinned to a gateway; records
 * its sockets, the frames it sends, its friends requests and page errors.
 */
async function openReact(userId, name, gateway) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 700 } });
  const page = await context.newPage();
  const u = { name, context, page, sockets: [], perSocket: [], sent: [], friendLoads: 0, errors: [] };
  await page.route("**/demo/react/app.js", (route) => route.fulfill({ status: 200, contentType: "text/javascript", body: bundle }));
  page.on("pageerror", (e) => u.errors.push(e));
  page.on("console", (m) => {
    // The browser logs each connection attempt refused while a gateway restarts: expected.
    if (m.type() === "error" && !/^WebSocket connection to .* failed/.test(m.text())) u.errors.push(new Error(m.text()));
  });
  page.on("request", (r) => {
    if (r.url().endsWith("/demo-api/friends")) u.friendLoads++;
  });
  page.on("websocket", (ws) => {
    u.sockets.push(ws.url());
    const mine = [];
    u.perSocket.push(mine);
    ws.on("framesent", (f) => {
      try {
        const frame = JSON.parse(String(f.payload));
        u.sent.push(frame);
        mine.push(frame);
      } catch {
        // not JSON
      }
    });
  });
  await page.goto(`${stack.demoUrl}/demo/react/?user=${userId}&name=${encodeURIComponent(name)}&ws=${encodeURIComponent(gateway.wsUrl)}`);
  await page.locator('[data-testid="status"][data-state="open"]').waitFor({ timeout: 15000 });
  await page.locator('[data-testid="channel-ch_general"][data-state="subscribed"]').waitFor();
  return u;
}

const subscribes = (u, ch) => u.sent.filter((f) => f.type === "subscribe" && f.data.channel_id === ch).length;

test("React hooks in StrictMode: one socket and one subscribe, live messages, presence loaded and kept current, a reconnect resumed", async () => {
  const alice = await openReact(1, "Alice", stack.gateways[0]);
  const A = alice.page;
  // StrictMode mounted, unmounted and mounted the provider and the channel:
  // one socket, one subscribe.
  await A.waitForTimeout(300);
  assert.equal(alice.sockets.length, 1, `sockets: ${alice.sockets.join(", ")}`);
  assert.equal(subscribes(alice, "ch_general"), 1, JSON.stringify(alice.sent));
  assert.equal(alice.sent.filter((f) => f.type === "unsubscribe").length, 0);

  const bob = await openReact(2, "Bob", stack.gateways[1]);
  const B = bob.page;
  const aliceSeesBob = A.locator('[data-testid="friends"] li[data-user="2"]');
  await aliceSeesBob.and(A.locator('[data-presence="online"]')).waitFor({ timeout: 8000 });

  // Bob sends through the demo's chat backend; Alice's channel hook gets it.
  await B.getByTestId("composer").fill("Hi from React");
  await B.getByTestId("composer").press("Enter");
  await A.getByTestId("messages").locator("li", { hasText: "Hi from React" }).waitFor({ timeout: 5000 });
  await B.getByTestId("messages").locator("li", { hasText: "Hi from React" }).waitFor({ timeout: 5000 });
  // A second component on the same channel mounts and unmounts: the channel
  // stays subscribed (no unsubscribe, no second subscribe) and keeps delivering.
  await A.getByTestId("second-view").check();
  await A.locator('[data-testid="channel-ch_general"]').nth(1).and(A.locator('[data-state="subscribed"]')).waitFor();
  await A.getByTestId("second-view").uncheck();
  await A.waitForTimeout(200);
  assert.equal(alice.sent.filter((f) => f.type === "unsubscribe").length, 0, "no unsubscribe while another component uses the channel");
  assert.equal(subscribes(alice, "ch_general"), 1);
  await B.getByTestId("composer").fill("After the second view");
  await B.getByTestId("composer").press("Enter");
  await A.getByTestId("messages").locator("li", { hasText: "After the second view" }).waitFor({ timeout: 5000 });

  // A status text change arrives as presence_update.
  await stack.ocvrctl("presence", "set", "--user", "2", "--text", "In a meeting");
  await aliceSeesBob.filter({ hasText: "In a meeting" }).waitFor({ timeout: 5000 });
  await A.screenshot({ path: join(artifacts, "react-01-live.png") });

  // Alice's gateway restarts: the hooks resubscribe, the channel says it
  // resumed (nothing to refetch), presence is loaded again (never replayed).
  const loads = alice.friendLoads;
  await stack.gateways[0].stop("SIGTERM");
  await stack.ocvrctl("publish", "message-create", "--channel", "ch_general", "--author", "2", "--name", "Bob", "--content", "While Alice was away");
  await stack.gateways[0].start();
  await A.getByTestId("continuity").filter({ hasText: "reconnected: resumed, nothing missed" }).waitFor({ timeout: 15000 });
  await A.getByTestId("messages").locator("li", { hasText: "While Alice was away" }).waitFor({ timeout: 5000 });
  await waitFor(() => alice.friendLoads > loads, { what: "presence loaded again after the reconnect" });
  // One subscribe per connection that opened (an attempt while the gateway
  // was down opened a socket that never connected: no frames).
  const perSocket = alice.perSocket.map((frames) => frames.filter((f) => f.type === "subscribe" && f.data.channel_id === "ch_general").length);
  assert.ok(perSocket.length >= 2, `sockets: ${perSocket.length}`);
  assert.ok(perSocket.every((n) => n <= 1), `subscribes per socket: ${perSocket}`);
  assert.equal(perSocket.at(-1), 1, "the live socket subscribed once");

  // Bob leaves: Alice sees him offline after the grace.
  await bob.context.close();
  await aliceSeesBob.and(A.locator('[data-presence="offline"]')).waitFor({ timeout: GRACE_MS + 8000 });
  await A.screenshot({ path: join(artifacts, "react-02-bob-offline.png") });
  assert.deepEqual(alice.errors.map(String), []);
  assert.deepEqual(bob.errors.map(String), []);
  await alice.context.close();
});

test("the browser's online event: a client waiting out a 30 s retry hint reconnects at once", async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${stack.demoUrl}/demo/`);
  const gw = stack.gateways[1];
  await page.evaluate(async (wsUrl) => {
    const { OcvrClient, fetchTicket } = await import("/dist/index.js");
    const config = await (await fetch("/demo-api/config")).json();
    const me = await (await fetch("/demo-api/sign-in", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ user_id: 7, display_name: "Gus" }) })).json();
    const t = (window.onlineTest = { failTickets: false, states: [], recs: [] });
    const client = new OcvrClient({
      url: wsUrl,
      getTicket: async ({ signal }) => {
        if (t.failTickets) throw Object.assign(new Error("test: tickets unavailable"), { retryAfter: 30000 });
        return fetchTicket(config.ticket_url, me.token, { signal });
      },
    });
    t.client = client;
    client.on("state", ({ state }) => t.states.push(state));
    client.on("reconnecting", (r) => t.recs.push(r));
    client.connect();
  }, gw.wsUrl);
  await page.waitForFunction(() => window.onlineTest.client.state === "open");
  await page.evaluate(() => (window.onlineTest.failTickets = true));
  await gw.restart("SIGTERM"); // 1012: the client reconnects, its ticket fails with a 30 s hint
  await page.waitForFunction(() => window.onlineTest.recs.some((r) => r.retryAfter === 30000));
  const rec = await page.evaluate(() => window.onlineTest.recs.find((r) => r.retryAfter === 30000));
  assert.ok(rec.delay >= 30000, `waits at least the hint: ${rec.delay}`);
  await page.evaluate(() => (window.onlineTest.failTickets = false));
  // The network goes away and comes back: Chromium fires offline, then online.
  const started = Date.now();
  await context.setOffline(true);
  await context.setOffline(false);
  await page.waitForFunction(() => window.onlineTest.client.state === "open", null, { timeout: 10000 });
  assert.ok(Date.now() - started < 10000, "well before the hint");
  await page.evaluate(() => window.onlineTest.client.close());
  await context.close();
});
