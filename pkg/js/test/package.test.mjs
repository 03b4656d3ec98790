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

test("the README's React page and plain client snippets compile against the published declarations", async () => {
  const { execFile } = await import("node:child_process");
  const { mkdirSync, rmSync, writeFileSync } = await import("node:fs");
  const readme = readFileSync(join(jsDir, "README.md"), "utf8");
  const block = (lang, heading) => {
    const at = readme.indexOf(heading);
    assert.ok(at >= 0, `README.md has "${heading}"`);
    const m = new RegExp("```" + lang + "\\n([\\s\\S]*?)```").exec(readme.slice(at));
    assert.ok(m, `a ${lang} block under "${heading}"`);
    return m[1];
  };
  // What the snippets leave to the app (its backend calls, its UI).
  const prelude = [
    "declare function getSessionToken(): string;",
    'declare function loadRecentMessages(channelId: string): Promise<import("@ocvr/realtime-client").MessageCreate[]>;',
    'declare function loadFriendsPresence(): Promise<import("@ocvr/realtime-client").PresenceUpdate[]>;',
    "declare const sessionToken: string;",
    "declare function showToast(s: string): void; declare function refreshPresence(): void; declare function reloadNotifications(): void;",
    "declare function showSignIn(): void; declare function reloadMessages(ch: string): void; declare function removeChannel(ch: string, code?: string): void;",
  ].join("\n");
  const dir = join(jsDir, "test", ".readme");
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  try {
    writeFileSync(join(dir, "react-page.tsx"), block("tsx", "## From `npm install` to a React page") + "\n" + prelude + "\n");
    writeFileSync(join(dir, "plain.ts"), block("ts", "## Without React") + "\nexport {};\n" + prelude + "\n");
    writeFileSync(
      join(dir, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: { target: "ES2022", module: "ES2022", moduleResolution: "bundler", jsx: "react-jsx", lib: ["ES2022", "DOM"], types: [], strict: true, noEmit: true, skipLibCheck: true },
        files: ["react-page.tsx", "plain.ts"],
      }),
    );
    const tsc = join(jsDir, "node_modules", "typescript", "bin", "tsc");
    const out = await new Promise((res) => execFile(process.execPath, [tsc, "-p", join(dir, "tsconfig.json")], (err, stdout, stderr) => res({ err, text: stdout + stderr })));
    assert.equal(out.err, null, out.text);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the close-code and error-code policy is pkg/protocol/testdata/policy.json's (the Go client's)", async () => {
  const { KNOWN_ERROR_CODES, closeAction, errorPolicy } = await import("@ocvr/realtime-client");
  const policy = JSON.parse(readFileSync(join(jsDir, "..", "protocol", "testdata", "policy.json"), "utf8"));
  for (const { code, name, action } of policy.close_codes) assert.equal(closeAction(code), action, `${code} ${name}`);
  for (const code of policy.unlisted_close_codes.examples) assert.equal(closeAction(code), policy.unlisted_close_codes.action, `unlisted ${code}`);
  assert.deepEqual(KNOWN_ERROR_CODES, policy.error_codes.map((e) => e.code));
  for (const e of policy.error_codes) {
    assert.deepEqual(errorPolicy(e.code), { retryable: e.retryable, endsConnection: e.ends_connection, subscribe: e.subscribe }, e.code);
  }
  for (const code of policy.unlisted_error_codes.examples) assert.equal(errorPolicy(code), undefined, `unlisted ${code}: not retryable`);
  assert.equal(errorPolicy("constructor"), undefined, "no prototype keys");
});

test("server-side rendering in Node.js: the hooks render with an idle client, nothing connects", async () => {
  const { createElement } = await import("react");
  const { renderToString } = await import("react-dom/server");
  const { OcvrClient } = await import("@ocvr/realtime-client");
  const { OcvrProvider, useChannel, useConnectionState, usePresence } = await import("@ocvr/realtime-client/react");
  const client = new OcvrClient({ url: "ws://127.0.0.1:1/v1/ws", ticketUrl: "http://127.0.0.1:1", token: "sess_x" });
  function Page() {
    const state = useConnectionState();
    const ch = useChannel("ch_general");
    const presence = usePresence();
    return createElement("p", null, `${state} ${ch.state} ${presence.size}`);
  }
  const html = renderToString(createElement(OcvrProvider, { client }, createElement(Page)));
  assert.equal(html, "<p>idle unsubscribed 0</p>");
  // Without a WebSocket (Node.js 20), a subscribe rejects with the TypeError instead of throwing.
  if (globalThis.WebSocket === undefined) await assert.rejects(new OcvrClient({ url: "ws://127.0.0.1:1/v1/ws", getTicket: async () => "wst_x" }).subscribe("ch_a"), TypeError);
  assert.equal(client.state, "idle");
  assert.deepEqual(client.channels, []);
});

test("the packed package (npm pack) holds every file its exports name, and no sources or tests", async () => {
  const { execFile } = await import("node:child_process");
  const out = await new Promise((res, rej) =>
    execFile("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], { cwd: jsDir }, (err, stdout) => (err ? rej(err) : res(stdout))),
  );
  const files = new Set(JSON.parse(out)[0].files.map((f) => f.path));
  const named = [];
  const walk = (v) => (typeof v === "string" ? named.push(v.replace(/^\.\//, "")) : Object.values(v).forEach(walk));
  walk(pkg.exports);
  for (const f of [...named, pkg.main, pkg.module, pkg.types].map((f) => f.replace(/^\.\//, ""))) assert.ok(files.has(f), `${f} is packed`);
  assert.ok(files.has("dist/cjs/package.json"), "dist/cjs/package.json (CommonJS) is packed");
  for (const f of files) assert.match(f, /^(README\.md|package\.json|dist\/.+)$/, `${f} should not be packed`);
});
