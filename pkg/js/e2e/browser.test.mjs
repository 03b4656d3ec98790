// End-to-end: the demo chat page (pkg/js/demo, using the built client) in
// headless Debian Chromium, driven by playwright-core, against the real
// stack (test/harness.mjs): two browser contexts as two users on two
// gateway replicas. Screenshots go to test-artifacts/e2e/ at the
// repository root.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

import { repoRoot, sleep, startStack } from "../test/harness.mjs";

const CHROMIUM = process.env.OCVR_CHROMIUM ?? "/usr/bin/chromium";
const GRACE_MS = 2000;
const artifacts = join(repoRoot, "test-artifacts", "e2e");

let stack;
let browser;

before(async () => {
  rmSync(artifacts, { recursive: true, force: true });
  mkdirSync(artifacts, { recursive: true });
  stack = await startStack({
    gateways: 2,
    gatewayArgs: ["--presence-grace", `${GRACE_MS}ms`, "--heartbeat-interval", "2s", "--heartbeat-timeout", "5s"],
  });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // playwright-core starts the browser with a fresh temporary profile (--user-data-dir).
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
  });
});

after(async () => {
  await browser?.close();
  await stack?.stop();
});

/** Opens the demo page on one gateway, signs in as a demo user and waits for the connection. */
async function openAs(name, gateway) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 760 } });
  const page = await context.newPage();
  const u = { name, context, page, sockets: [], pageErrors: [] };
  page.on("websocket", (ws) => u.sockets.push(ws.url()));
  page.on("pageerror", (e) => u.pageErrors.push(e));
  await page.goto(`${stack.demoUrl}/?ws=${encodeURIComponent(gateway.wsUrl)}`);
  await page.getByTestId(`sign-in-${name.toLowerCase()}`).click();
  await page.locator('[data-testid="status"][data-state="open"]').waitFor();
  await page.locator('[data-testid="channels"] li[data-channel="ch_general"][data-status="subscribed"]').waitFor();
  return u;
}

async function shot(u, step) {
  await u.page.screenshot({ path: join(artifacts, `${step}-${u.name.toLowerCase()}.png`) });
}

test("two users on two gateways: typing, messages, notifications, restart, presence, revocation", async (t) => {
  const alice = await openAs("Alice", stack.gateways[0]);
  const bob = await openAs("Bob", stack.gateways[1]);
  const A = alice.page;
  const B = bob.page;
  const bobFriendAlice = B.locator('[data-testid="friends"] li[data-user="1"]');
  assert.match(await A.getByTestId("status").textContent(), new RegExp(`127.0.0.1:${stack.gateways[0].port}`));
  assert.match(await B.getByTestId("status").textContent(), new RegExp(`127.0.0.1:${stack.gateways[1].port}`));
  await bobFriendAlice.and(B.locator('[data-presence="online"]')).waitFor();
  await shot(alice, "01-signed-in");
  await shot(bob, "01-signed-in");

  await t.test("A types, B sees the typing indicator", async () => {
    await A.getByTestId("composer-input").pressSequentially("Hello Bob", { delay: 20 });
    await B.getByTestId("typing").filter({ hasText: "Alice is typing…" }).waitFor({ timeout: 5000 });
    await shot(bob, "02-typing");
    assert.equal(await A.getByTestId("typing").textContent(), "", "never shown to the typing user");
  });

  await t.test("A sends, B sees the message (demo chat backend, and ocvrctl publish)", async () => {
    await A.getByTestId("send").click();
    await B.getByTestId("messages").locator("li", { hasText: "Hello Bob" }).waitFor({ timeout: 5000 });
    assert.equal(await B.getByTestId("typing").textContent(), "", "the message clears the indicator");
    await A.getByTestId("messages").locator("li.mine", { hasText: "Hello Bob" }).waitFor();
    await stack.ocvrctl("publish", "message-create", "--channel", "ch_general", "--author", "1", "--name", "Alice", "--content", "Sent with ocvrctl");
    await B.getByTestId("messages").locator("li", { hasText: "Sent with ocvrctl" }).waitFor({ timeout: 5000 });
    await shot(bob, "03-message");
  });

  await t.test("B gets a notification", async () => {
    await bob.page.bringToFront();
    await A.locator('[data-testid="friends"] li[data-user="2"] button').click();
    await B.getByTestId("notifications").locator("li", { hasText: "Alice poked you" }).waitFor({ timeout: 5000 });
    await shot(bob, "04-notification");
  });

  await t.test("B's gateway restarts: the page reconnects, resubscribes and keeps receiving", async () => {
    const socketsBefore = bob.sockets.length;
    await stack.gateways[1].restart("SIGTERM"); // drains with 1012, comes back on the same port
    await B.waitForFunction(() => window.ocvrDemo.connects >= 2, null, { timeout: 15000 });
    await B.locator('[data-testid="status"][data-state="open"]').waitFor();
    await B.locator('[data-testid="channels"] li[data-channel="ch_general"][data-status="subscribed"]').waitFor();
    assert.ok(bob.sockets.length > socketsBefore, "a new socket");
    await stack.ocvrctl("publish", "message-create", "--channel", "ch_general", "--author", "1", "--name", "Alice", "--content", "After the restart");
    await B.getByTestId("messages").locator("li", { hasText: "After the restart" }).waitFor({ timeout: 5000 });
    await A.getByTestId("composer-input").fill("Still here?");
    await A.getByTestId("send").click();
    await B.getByTestId("messages").locator("li", { hasText: "Still here?" }).waitFor({ timeout: 5000 });
    await shot(bob, "05-reconnected");
  });

  await t.test("A closes, B sees A go offline after the grace", async () => {
    await bobFriendAlice.and(B.locator('[data-presence="online"]')).waitFor();
    const closedAt = Date.now();
    await alice.context.close();
    await bobFriendAlice.and(B.locator('[data-presence="offline"]')).waitFor({ timeout: GRACE_MS + 8000 });
    const took = Date.now() - closedAt;
    assert.ok(took >= GRACE_MS - 200, `offline after ${took} ms, before the ${GRACE_MS} ms grace`);
    await shot(bob, "06-offline");
    // Heartbeats every 2 s kept B's connection alive all along (--heartbeat-timeout 5s):
    // its only reconnect was the gateway restart.
    assert.equal(await B.evaluate(() => window.ocvrDemo.connects), 2);
  });

  await t.test("B's session is revoked: the page shows it and does not reconnect", async () => {
    const sessionId = await B.evaluate(() => window.ocvrDemo.me.session_id);
    await stack.ocvrctl("session", "revoke", "--session", sessionId, "--reason", "logout");
    await B.getByTestId("signed-out").waitFor({ timeout: 5000 });
    assert.equal(await B.getByTestId("signed-out").getAttribute("data-reason"), "session_revoked");
    assert.match(await B.getByTestId("signed-out-text").textContent(), /session revoked: logout/);
    assert.equal(await B.getByTestId("status").getAttribute("data-state"), "closed");
    const sockets = bob.sockets.length;
    await sleep(3000);
    assert.equal(bob.sockets.length, sockets, "no new socket after 4003");
    assert.equal(await B.evaluate(() => window.ocvrDemo.client.state), "closed");
    await shot(bob, "07-revoked");
  });

  assert.deepEqual(alice.pageErrors.map(String), []);
  assert.deepEqual(bob.pageErrors.map(String), []);
});
