// End-to-end: permessage-deflate with a real browser. A gateway run with
// --compression, the demo page (the built client) in headless Debian
// Chromium, which always offers the extension: the handshake answers it
// with no context takeover both ways, the frames go compressed on the wire
// (the gateway's own byte counters say so), and the page's client gets
// every document frame, and a long chat message, byte for byte.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { connect as connectNats } from "nats";
import { chromium } from "playwright-core";

import { goldenSubject, loadGoldenFrames, startStack, waitFor } from "../test/harness.mjs";

const CHROMIUM = process.env.OCVR_CHROMIUM ?? "/usr/bin/chromium";

let stack;
let browser;

before(async () => {
  stack = await startStack({ gateways: 1, gatewayArgs: ["--compression"] });
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

/** Runs in the page before its scripts: records every message's text as the page received it. */
function captureMessages() {
  const Native = window.WebSocket;
  const received = (window.__ocvrReceived = []);
  window.WebSocket = class CapturingWebSocket extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener("message", (ev) => received.push(typeof ev.data === "string" ? ev.data : null));
    }
  };
}

/** The gateway's /metrics as "name{labels}" → value. */
async function metrics(g) {
  const text = await (await fetch(`http://127.0.0.1:${g.adminPort}/metrics`)).text();
  const out = {};
  for (const line of text.split("\n")) {
    const m = line.match(/^(\S+) (\S+)$/);
    if (m) out[m[1]] = Number(m[2]);
  }
  return out;
}

test("Chromium negotiates permessage-deflate and its client gets the frames byte for byte", async () => {
  const gw = stack.gateways[0];
  const golden = loadGoldenFrames();
  const CH = golden.find((g) => g.name === "subscribe").frame.data.channel_id;
  const USER = 301;
  await stack.ocvrctl("channel", "create", "--channel", CH);
  await stack.ocvrctl("member", "add", "--channel", CH, "--user", String(USER));

  const context = await browser.newContext();
  await context.addInitScript(captureMessages);
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send("Network.enable");
  const handshakes = [];
  cdp.on("Network.webSocketHandshakeResponseReceived", (e) => handshakes.push(e.response));
  await page.goto(`${stack.demoUrl}/?ws=${encodeURIComponent(gw.wsUrl)}`);
  await page.locator('#custom-user input[name="user_id"]').fill(String(USER));
  await page.locator('#custom-user input[name="display_name"]').fill("Deflate");
  await page.locator('#custom-user button[type="submit"]').click();
  await page.locator('[data-testid="status"][data-state="open"]').waitFor();
  await page.locator(`[data-testid="channels"] li[data-channel="${CH}"][data-status="subscribed"]`).waitFor();

  // The handshake: offered by Chromium, answered without context takeover.
  const upgrade = handshakes.find((r) => r.status === 101);
  assert.ok(upgrade, "the socket's handshake was seen");
  const ext = Object.entries(upgrade.headers).find(([k]) => k.toLowerCase() === "sec-websocket-extensions")?.[1] ?? "";
  assert.match(ext, /^permessage-deflate/, "Chromium and the gateway agreed on permessage-deflate");
  assert.match(ext, /server_no_context_takeover/);
  assert.match(ext, /client_no_context_takeover/);

  // Every document frame with a subject (the revocation would end the
  // page's session), and a long chat message, published to the live
  // subjects as a backend in any language would; the page must receive
  // each one's exact bytes.
  const long = JSON.stringify({
    type: "message_create",
    data: {
      id: "msg_deflate_1", channel_id: CH, author: { id: 48213, display_name: "Mira Okafor" },
      content: "Are we still meeting in the lobby at 8? I'll bring the new headset so we can test the hand tracking before the match. Also the Neon Harbor map keeps crashing on my Quest when more than 12 people join — can someone check the server in Frankfurt?",
      created_at: 1765104000, attachments: [],
    },
  });
  const frames = [...golden.filter((g) => g.direction === "server" && g.subject && g.frame.type !== "session_revoked"), { name: "long chat message", subject: "channel", wire: long, frame: JSON.parse(long) }];
  const before = await metrics(gw);
  const nc = await connectNats({ servers: stack.natsUrl, name: "ocvr-js-compression" });
  try {
    for (const g of frames) {
      nc.publish(goldenSubject(g, USER), new TextEncoder().encode(g.wire));
      await nc.flush();
      await waitFor(async () => (await page.evaluate(() => window.__ocvrReceived)).includes(g.wire), { timeout: 5000, what: `${g.name} byte for byte` });
    }
  } finally {
    await nc.close();
  }

  // On the wire the large frames went compressed: the gateway counted
  // their bytes as deflate, smaller than the JSON they carried.
  const after = await metrics(gw);
  assert.equal(after['ocvr_gateway_compression_negotiated_total{negotiated="true"}'], 1, "one compressing connection");
  const zBytes = after['ocvr_gateway_frame_payload_bytes_total{encoding="deflate"}'] - (before['ocvr_gateway_frame_payload_bytes_total{encoding="deflate"}'] ?? 0);
  const source = after.ocvr_gateway_deflated_source_bytes_total - (before.ocvr_gateway_deflated_source_bytes_total ?? 0);
  assert.ok(source >= long.length, `the long message went compressed (${source} bytes of JSON compressed)`);
  assert.ok(zBytes > 0 && zBytes < source, `compressed ${source} bytes of JSON to ${zBytes}`);
  await context.close();
});
