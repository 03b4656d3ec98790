// End-to-end: the demo chat page (pkg/js/demo, using the built client) in
// headless Debian Chromium, driven by playwright-core, against the real
// stack (test/harness.mjs): two browser contexts as two users on two
// gateway replicas. Then the golden frames of the protocol document
// (pkg/protocol/testdata/frames.json, shared with the Go tests), published
// from this Node.js side with a plain NATS client: the page must receive
// each one byte for byte and hand it to its handlers. Screenshots go to
// test-artifacts/e2e/ at the repository root.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { isDeepStrictEqual } from "node:util";
import { connect as connectNats } from "nats";
import { chromium } from "playwright-core";

import { goldenSubject, loadGoldenFrames, nowSeconds, repoRoot, sleep, startStack, waitFor, withoutContinuity } from "../test/harness.mjs";

const CHROMIUM = process.env.OCVR_CHROMIUM ?? "/usr/bin/chromium";
const GRACE_MS = 2000;
const HEARTBEAT_MS = 2000;
const artifacts = join(repoRoot, "test-artifacts", "e2e");

let stack;
let browser;

before(async () => {
  rmSync(artifacts, { recursive: true, force: true });
  mkdirSync(artifacts, { recursive: true });
  stack = await startStack({
    gateways: 2,
    gatewayArgs: ["--presence-grace", `${GRACE_MS}ms`, "--heartbeat-interval", `${HEARTBEAT_MS}ms`, "--heartbeat-timeout", "5s"],
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
  await u.page.screenshot({ path: join(artifacts, `${step}-${u.name.toLowerCase().replace(/[^a-z0-9]+/g, "-")}.png`) });
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

  await t.test("B's gateway restarts: the page reconnects, resumes without a hole and keeps receiving", async () => {
    const socketsBefore = bob.sockets.length;
    await stack.gateways[1].stop("SIGTERM"); // drains with 1012
    // Sent while B is disconnected (through the event stream, as ocvrctl does).
    await stack.ocvrctl("publish", "message-create", "--channel", "ch_general", "--author", "1", "--name", "Alice", "--content", "While away 1");
    await stack.ocvrctl("publish", "message-create", "--channel", "ch_general", "--author", "1", "--name", "Alice", "--content", "While away 2");
    await stack.ocvrctl("notify", "--user", "2", "--type", "friend_request", "--title", "Missed notification", "--body", "sent while away");
    await stack.gateways[1].start(); // back on the same port
    await B.waitForFunction(() => window.ocvrDemo.connects >= 2, null, { timeout: 15000 });
    await B.locator('[data-testid="status"][data-state="open"][data-resumed="true"]').waitFor({ timeout: 5000 });
    assert.match(await B.getByTestId("status").textContent(), /· resumed$/);
    await B.locator('[data-testid="channels"] li[data-channel="ch_general"][data-status="subscribed"]').waitFor();
    assert.ok(bob.sockets.length > socketsBefore, "a new socket");
    assert.deepEqual(await B.evaluate(() => window.ocvrDemo.lastResume.channels), { ch_general: true });
    assert.equal(await B.evaluate(() => window.ocvrDemo.lastResume.user), true);
    // No hole: the messages sent meanwhile, once each, in order, after the
    // reconnect note; the notification too.
    const messages = B.getByTestId("messages");
    await messages.locator("li", { hasText: "While away 2" }).waitFor({ timeout: 5000 });
    await B.getByTestId("notifications").locator("li", { hasText: "Missed notification" }).waitFor({ timeout: 5000 });
    const texts = await messages.locator("li").allTextContents();
    const away = texts.map((x, i) => [x, i]).filter(([x]) => /While away|Reconnected/.test(x));
    assert.equal(away.length, 3, `the note and each message once: ${JSON.stringify(texts)}`);
    assert.match(away[0][0], /Reconnected: resumed, no message missed/);
    assert.match(away[1][0], /While away 1/);
    assert.match(away[2][0], /While away 2/);
    assert.equal(await messages.locator('li.system[data-kind="not-resumed"]').count(), 0);
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

// --- golden frames ---

/**
 * Runs in the page before its scripts: wraps the page's WebSocket so that
 * the test sees the text of every message as the page received it
 * (MessageEvent.data) and every frame the page sent.
 */
function captureSockets() {
  const Native = window.WebSocket;
  const received = (window.__ocvrReceived = []);
  const sent = (window.__ocvrSent = []);
  window.WebSocket = class CapturingWebSocket extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener("message", (ev) => received.push(typeof ev.data === "string" ? ev.data : null));
    }
    send(data) {
      sent.push(typeof data === "string" ? data : null);
      return super.send(data);
    }
  };
}

/** Opens the demo page on one gateway and signs in as any user id (the custom form). */
async function openCustom(userId, name, gateway) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 760 } });
  await context.addInitScript(captureSockets);
  const page = await context.newPage();
  const u = { userId, name, context, page, pageErrors: [] };
  page.on("pageerror", (e) => u.pageErrors.push(e));
  await page.goto(`${stack.demoUrl}/?ws=${encodeURIComponent(gateway.wsUrl)}`);
  await page.locator('#custom-user input[name="user_id"]').fill(String(userId));
  await page.locator('#custom-user input[name="display_name"]').fill(name);
  await page.locator('#custom-user button[type="submit"]').click();
  await page.locator('[data-testid="status"][data-state="open"]').waitFor();
  return u;
}

test("golden frames: the document's frames reach the page's client on both gateways byte for byte", async (t) => {
  const golden = loadGoldenFrames();
  const entry = (name) => {
    const e = golden.find((g) => g.name === name);
    assert.ok(e, `frames.json has no frame named ${name}`);
    return e;
  };
  const CH = entry("subscribe").frame.data.channel_id; // the document's ch_abc123
  const WAIT = 5000;
  const nc = await connectNats({ servers: stack.natsUrl, name: "ocvr-js-golden-browser" });
  t.after(() => nc.close());
  const publish = async (subject, wire) => {
    nc.publish(subject, new TextEncoder().encode(wire));
    await nc.flush();
  };

  // Two users, members of the document's channel before they sign in: the
  // demo page subscribes to it (and shows it first, ch_abc123 < ch_general).
  const users = [
    { userId: 201, name: "Golden A", gateway: stack.gateways[0] },
    { userId: 202, name: "Golden B", gateway: stack.gateways[1] },
  ];
  await stack.ocvrctl("channel", "create", "--channel", CH);
  for (const u of users) await stack.ocvrctl("member", "add", "--channel", CH, "--user", String(u.userId));
  const pages = [];
  for (const u of users) pages.push(await openCustom(u.userId, u.name, u.gateway));
  const [A, B] = pages;

  const received = (u) => u.page.evaluate(() => window.__ocvrReceived);
  const sent = (u) => u.page.evaluate(() => window.__ocvrSent);
  const parse = (raw) => {
    try {
      return raw === null ? undefined : JSON.parse(raw);
    } catch {
      return undefined;
    }
  };
  /**
   * Waits until the page received a message whose text is exactly wire
   * (with continuity: compact, and wire once the additive continuity fields
   * are taken out); the failure shows what came instead.
   */
  async function receivedVerbatim(u, wire, what, { continuity = false } = {}) {
    const same = (r) => r === wire || (continuity && r !== null && JSON.stringify(JSON.parse(r)) === r && withoutContinuity(r) === wire);
    try {
      await waitFor(async () => (await received(u)).some(same), { timeout: WAIT, what });
    } catch (e) {
      const type = JSON.parse(wire).type;
      const same = (await received(u)).filter((r) => parse(r)?.type === type);
      throw new Error(`${e.message} (user ${u.userId})\n  want: ${wire}\n  got (${type}): ${same.length ? same.join("\n        ") : "nothing"}`);
    }
  }
  const kind = (v) => (v === null ? "null" : Array.isArray(v) ? "array" : Number.isInteger(v) ? "integer" : typeof v);
  function assertShape(got, want, what) {
    assert.deepEqual(Object.keys(got), Object.keys(want), `${what}: keys`);
    for (const k of Object.keys(want)) assert.equal(kind(got[k]), kind(want[k]), `${what}: ${k} is ${JSON.stringify(got[k])}, the document's is ${JSON.stringify(want[k])}`);
  }
  /** The demo's rendering of a protocol time (unix seconds), computed in the page. */
  const shownTime = (u, seconds) =>
    u.page.evaluate((s) => new Date(s * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" }), seconds);

  await t.test("ready, subscribe → subscribed, heartbeat → heartbeat_ack in unix seconds", async () => {
    for (const u of pages) {
      const ready = parse((await received(u))[0]);
      assert.equal(ready?.type, "ready", "ready comes first");
      // The document's fields, then the continuity extension's.
      assertShape(JSON.parse(withoutContinuity(JSON.stringify(ready))).data, JSON.parse(withoutContinuity(entry("ready").wire)).data, "ready");
      assert.equal(typeof ready.data.resume_token, "string", "ready.resume_token (continuity)");
      assert.equal(ready.data.user_id, u.userId);
      assert.equal(ready.data.heartbeat_interval, HEARTBEAT_MS, "heartbeat_interval: milliseconds");
      assert.ok(Math.abs(ready.data.server_time - nowSeconds()) <= 5, `ready.server_time ${ready.data.server_time} is not unix seconds near ${nowSeconds()}`);
      await u.page.locator(`[data-testid="channels"] li[data-channel="${CH}"][data-status="subscribed"]`).waitFor({ timeout: WAIT });
      assert.ok((await sent(u)).includes(entry("subscribe").wire), "the page sent the document's subscribe");
      await receivedVerbatim(u, entry("subscribed").wire, "subscribed", { continuity: true });
    }
    // The page heartbeats every heartbeat_interval (ms) with the document's frame.
    const from = (await received(A)).length;
    await waitFor(async () => (await sent(A)).includes(entry("heartbeat").wire), { timeout: 3 * HEARTBEAT_MS, what: "a heartbeat" });
    const ackRaw = await waitFor(async () => (await received(A)).slice(from).find((r) => parse(r)?.type === "heartbeat_ack"), { timeout: 3 * HEARTBEAT_MS, what: "a heartbeat_ack" });
    const ack = JSON.parse(ackRaw);
    assertShape(ack.data, entry("heartbeat_ack").frame.data, "heartbeat_ack");
    const skew = ack.data.server_time - nowSeconds();
    assert.ok(Math.abs(skew) <= 5, `heartbeat_ack.server_time ${ack.data.server_time} is ${skew} s from Math.floor(Date.now()/1000): not unix seconds`);
  });

  // The page's app handlers: one per frame type (known or not), and frame.
  const published = golden.filter((g) => g.direction === "server" && g.subject);
  const types = [...new Set(published.map((g) => g.frame.type))];
  for (const u of pages) {
    await u.page.evaluate((types) => {
      const c = window.ocvrDemo.client;
      window.__golden = [];
      for (const type of types) c.on(type, (data) => window.__golden.push({ type, data }));
      c.on("frame", (frame) => window.__golden.push({ type: "frame", data: frame }));
    }, types);
  }
  const handled = (u) => u.page.evaluate(() => window.__golden);

  // Checks of the demo page's rendering after some frames.
  const shown = {
    message_create: async (u) => {
      const li = u.page.locator('[data-testid="messages"] li[data-id="msg_xyz789"]');
      await li.filter({ hasText: "Hello world!" }).waitFor({ timeout: WAIT });
      assert.equal(await li.locator(".time").textContent(), await shownTime(u, 1703523600), "created_at shown from unix seconds");
    },
    message_update: async (u) => {
      await u.page.locator('[data-testid="messages"] li[data-id="msg_xyz789"]').filter({ hasText: "(edited)" }).waitFor({ timeout: WAIT });
    },
    message_delete: async (u) => {
      await u.page.locator('[data-testid="messages"] li[data-id="msg_xyz789"]').waitFor({ state: "detached", timeout: WAIT });
    },
    notification: async (u) => {
      const li = u.page.locator('[data-testid="notifications"] li[data-type="friend_request"]');
      await li.waitFor({ timeout: WAIT });
      assert.equal(await li.locator(".small").textContent(), await shownTime(u, 1703523600), "created_at shown from unix seconds");
    },
    message_create_extra_fields: async (u) => {
      const li = u.page.locator('[data-testid="messages"] li[data-id="msg_xyz790"]');
      await li.filter({ hasText: "(1 attachment)" }).waitFor({ timeout: WAIT });
      assert.equal(await li.locator(".time").textContent(), await shownTime(u, 1703523600));
    },
  };

  const revoked = published.filter((g) => g.frame.type === "session_revoked");
  for (const g of published.filter((g) => g.frame.type !== "session_revoked")) {
    await t.test(`${g.name} (${g.frame.type} on the ${g.subject} subject${g.extra ? ", extra" : ""})`, async () => {
      const subjects = g.subject === "channel" ? [goldenSubject(g)] : pages.map((u) => goldenSubject(g, u.userId));
      for (const s of subjects) await publish(s, g.wire);
      for (const u of pages) {
        await receivedVerbatim(u, g.wire, `${g.name} byte for byte`);
        await waitFor(async () => (await handled(u)).some((h) => h.type === g.frame.type && isDeepStrictEqual(h.data, g.frame.data)), { timeout: WAIT, what: `the page's ${g.frame.type} handler (user ${u.userId})` });
        await waitFor(async () => (await handled(u)).some((h) => h.type === "frame" && isDeepStrictEqual(h.data, g.frame)), { timeout: WAIT, what: `the page's frame handler (user ${u.userId})` });
        await shown[g.name]?.(u);
      }
    });
  }
  await shot(A, "10-golden");

  await t.test("typing → typing_start on the other gateway; unsubscribe → unsubscribed", async () => {
    await A.page.getByTestId("composer-input").pressSequentially("hi", { delay: 20 });
    await waitFor(async () => (await sent(A)).includes(entry("typing").wire), { timeout: WAIT, what: "the document's typing" });
    const typingStart = JSON.stringify({ type: "typing_start", data: { channel_id: CH, user_id: A.userId, display_name: A.name } });
    await receivedVerbatim(B, typingStart, "typing_start");
    await B.page.getByTestId("typing").filter({ hasText: A.name }).waitFor({ timeout: WAIT });
    await sleep(300);
    const errors = (await received(A)).filter((r) => parse(r)?.type === "error");
    assert.deepEqual(errors, [], "typing was answered with an error");

    await A.page.evaluate((ch) => window.ocvrDemo.client.unsubscribe(ch), CH);
    assert.ok((await sent(A)).includes(entry("unsubscribe").wire), "the page sent the document's unsubscribe");
    await receivedVerbatim(A, entry("unsubscribed").wire, "unsubscribed");
  });

  await t.test("a bad ticket: the document's error frame, byte for byte, then 4001", async () => {
    const from = (await received(A)).length;
    const result = await A.page.evaluate(async (url) => {
      const { OcvrClient } = await import("/dist/index.js");
      const errors = [];
      const client = new OcvrClient({ url, getTicket: async () => `wst_${"g".repeat(43)}`, maxInvalidTickets: 1 });
      client.on("error", (e) => errors.push(e));
      client.connect();
      const closed = await new Promise((r) => client.once("closed", r));
      return { code: closed.code, reason: closed.reason, errors };
    }, stack.gateways[0].wsUrl);
    assert.equal(result.code, 4001);
    assert.equal(result.reason, "invalid_ticket");
    // The page's own connection keeps receiving (heartbeat_ack): only the error frames.
    const errorFrames = (await received(A)).slice(from).filter((r) => parse(r)?.type === "error");
    assert.deepEqual(errorFrames, [entry("error").wire], "the document's error frame, byte for byte");
    assert.deepEqual(result.errors, [entry("error").frame.data]);
  });

  await t.test("session_revoked: byte for byte, handled, the page shows it", async () => {
    for (const g of revoked) {
      for (const u of pages) await publish(goldenSubject(g, u.userId), g.wire);
      for (const u of pages) {
        await receivedVerbatim(u, g.wire, `${g.name} byte for byte`);
        await waitFor(async () => (await handled(u)).some((h) => h.type === "session_revoked" && isDeepStrictEqual(h.data, g.frame.data)), { timeout: WAIT, what: "the session_revoked handler" });
        await u.page.getByTestId("signed-out").waitFor({ timeout: WAIT });
        assert.equal(await u.page.getByTestId("signed-out").getAttribute("data-reason"), "session_revoked");
        assert.match(await u.page.getByTestId("signed-out-text").textContent(), new RegExp(g.frame.data.reason));
      }
    }
    await shot(B, "11-golden-revoked");
  });

  for (const u of pages) {
    assert.deepEqual(u.pageErrors.map(String), []);
    await u.context.close();
  }
});
