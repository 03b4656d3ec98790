// Tests of the package as installed: the `exports` map gives CommonJS to
// require() (Jest, older Node tools) and ES modules to import, for the
// client and the React entry point, with the same exports; the minified
// bundle works; README.md states the bundle's size as the build measured
// it (dist/size.json), within 0.5 KiB. No stack needed: these take milliseconds.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { gzipSync } from "node:zlib";

import { jsDir } from "./harness.mjs";

const require = createRequire(import.meta.url);
const pkg = JSON.parse(readFileSync(join(jsDir, "package.json"), "utf8"));

test("require() gets CommonJS and import gets ES modules, with the same exports (client and React)", async () => {
  assert.equal(pkg.name, "@ocvr/realtime-client");
  const cjs = require("@ocvr/realtime-client");
  const esm = await import("@ocvr/realtime-client");
  assert.match(require.resolve("@ocvr/realtime-client"), /dist\/cjs\/index\.js$/);
  assert.deepEqual(Object.keys(cjs).filter((k) => k !== "__esModule").sort(), Object.keys(esm).sort());
  for (const m of [cjs, esm]) {
    assert.equal(typeof m.OcvrClient, "function");
    // No side effects in the constructor, even without a WebSocket (Node.js 20, server-side rendering).
    const c = new m.OcvrClient({ url: "ws://127.0.0.1:1/v1/ws", ticketUrl: "http://127.0.0.1:1", token: "sess_x" });
    assert.equal(c.state, "idle");
    assert.ok(c.channel("ch_a") instanceof m.Subscription);
    assert.equal(c.channel("ch_a").state, "unsubscribed");
  }
  const rcjs = require("@ocvr/realtime-client/react");
  const resm = await import("@ocvr/realtime-client/react");
  assert.deepEqual(Object.keys(rcjs).filter((k) => k !== "__esModule").sort(), Object.keys(resm).sort());
  for (const name of ["OcvrProvider", "useOcvrClient", "useConnectionState", "useChannel", "usePresence", "useClientEvent"]) {
    assert.equal(typeof rcjs[name], "function", `cjs ${name}`);
    assert.equal(typeof resm[name], "function", `esm ${name}`);
  }
});

test("the minified bundle exports the client; README.md states its size as built", async () => {
  const min = await import("@ocvr/realtime-client/min");
  const esm = await import("@ocvr/realtime-client");
  assert.deepEqual(Object.keys(min).sort(), Object.keys(esm).sort());
  assert.equal(new min.OcvrClient({ url: "ws://x/v1/ws", getTicket: async () => "wst_x" }).state, "idle");

  const bytes = readFileSync(join(jsDir, "dist", "ocvr-realtime.min.js"));
  const size = JSON.parse(readFileSync(join(jsDir, "dist", "size.json"), "utf8"));
  assert.deepEqual(size, { minified: bytes.length, gzip: gzipSync(bytes, { level: 9 }).length }, "dist/size.json is the bundle's");
  // Within 0.5 KiB each, so that not every change has to touch the README.
  const readme = readFileSync(join(jsDir, "README.md"), "utf8");
  const m = /\*\*([\d.]+) KiB minified, ([\d.]+) KiB gzipped\*\*/.exec(readme);
  assert.ok(m, "README.md states the size as **X KiB minified, Y KiB gzipped**");
  const built = `${(size.minified / 1024).toFixed(1)} KiB minified, ${(size.gzip / 1024).toFixed(1)} KiB gzipped`;
  assert.ok(Math.abs(Number(m[1]) * 1024 - size.minified) <= 512, `README.md says ${m[0]}; the build: ${built}`);
  assert.ok(Math.abs(Number(m[2]) * 1024 - size.gzip) <= 512, `README.md says ${m[0]}; the build: ${built}`);
});
