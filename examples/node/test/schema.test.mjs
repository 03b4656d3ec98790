// The published JSON Schema (pkg/protocol/busevent.schema.json) and the
// gateways' check (protocol.ValidateEvent, run here through `ocvrctl
// validate`, which calls it) must agree: on every example frame of
// pkg/protocol/testdata/frames.json and on a corpus of payloads each rule
// refuses. The four rules a schema cannot state (its $comment) are pinned
// too: the schema accepts those payloads, the gateways refuse them, so a
// change on either side shows here. No NATS needed.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import Ajv2020 from "ajv/dist/2020.js";
import { repoRoot, binDir } from "./stack.mjs";
import { schemaPath, makeValidator } from "../ocvr.mjs";

const schema = JSON.parse(readFileSync(schemaPath, "utf8"));
const ajv = new Ajv2020({ strict: false });
ajv.addSchema(schema, "busevent");
const bySchema = (scope, text) => {
  let v;
  try {
    v = JSON.parse(text);
  } catch {
    return false;
  }
  return ajv.getSchema(`busevent#/$defs/${scope}`)(v);
};

const subjects = { channel: "ocvr.channel.ch_abc123", user: "ocvr.user.12345", broadcast: "ocvr.broadcast" };

/** The gateways' verdicts on lines (one payload each) published on subject. */
function byGateway(subject, lines) {
  if (!existsSync(join(binDir, "ocvrctl"))) throw new Error("bin/ocvrctl is missing: run make build");
  return new Promise((res, rej) => {
    const p = execFile(join(binDir, "ocvrctl"), ["--json", "validate", "--subject", subject, "--lines"], { maxBuffer: 1 << 24 }, (err, stdout, stderr) => {
      if (err && err.code !== 5) return rej(new Error(`ocvrctl validate: ${err.message}\n${stderr}`));
      const out = stdout.trim().split("\n").map((l) => JSON.parse(l));
      if (out.length !== lines.length) return rej(new Error(`${out.length} verdicts for ${lines.length} lines`));
      res(out);
    });
    p.stdin.end(lines.join("\n") + "\n");
  });
}

const fixture = JSON.parse(readFileSync(join(repoRoot, "pkg", "protocol", "testdata", "frames.json"), "utf8"));

// [scope, payload text]: each refused by the gateways and by the schema.
const refused = [
  ["user", `[]`],
  ["user", `"x"`],
  ["user", `null`],
  ["user", `{}`],
  ["user", `{"data":{}}`],
  ["user", `{"type":"x"}`],
  ["user", `{"type":"x","data":null}`],
  ["user", `{"type":"x","data":[]}`],
  ["user", `{"type":"x","data":"s"}`],
  ["user", `{"type":"","data":{}}`],
  ["user", `{"type":7,"data":{}}`],
  ["user", `{"type":null,"data":{}}`],
  ["user", `{"type":"x","data":{},"Type":"y"}`],
  ["user", `{"type":"x","data":{},"DATA":{}}`],
  ["user", `{"type":"x","data":{},"seq":1}`],
  ["user", `{"type":"x","data":{},"channel_id":"ch_abc123"}`],
  ["user", `{"type":"x","data":{},"Seq":1}`],
  ["user", `{"type":"x","data":{},"ſeq":1}`],
  ["user", `{"type":"x","data":{"Channel_ID":"ch_abc123"}}`],
  ["user", `{"type":"x","data":{"uſer_id":1}}`],
  ["user", `{"type":"x","data":{"PRESENCE":"online"}}`],
  ["channel", `{"type":"x","data":{"channel_id":5}}`],
  ["channel", `{"type":"x","data":{"channel_id":null}}`],
  ["channel", `{"type":"session_revoked","data":{"reason":"x"}}`],
  ["broadcast", `{"type":"session_revoked","data":{"reason":"x"}}`],
  ["user", `{"type":"presence_update","data":{"user_id":1}}`],
  ["user", `{"type":"presence_update","data":{"presence":"online"}}`],
  ["user", `{"type":"presence_update","data":{"user_id":0,"presence":"online"}}`],
  ["user", `{"type":"presence_update","data":{"user_id":-4,"presence":"online"}}`],
  ["user", `{"type":"presence_update","data":{"user_id":"4","presence":"online"}}`],
  ["user", `{"type":"presence_update","data":{"user_id":4.5,"presence":"online"}}`],
  ["user", `{"type":"presence_update","data":{"user_id":4,"presence":"away"}}`],
  ["user", `{"type":"presence_update","data":{"user_id":4,"presence":null}}`],
  ...["ready", "heartbeat_ack", "error", "subscribed", "unsubscribed", "heartbeat", "subscribe", "unsubscribe", "typing"]
    .flatMap((t) => ["channel", "user", "broadcast"].map((scope) => [scope, JSON.stringify({ type: t, data: {} })])),
];

// Accepted by both: what passes through byte for byte.
const accepted = [
  ["channel", `{"type":"channel_update","data":{"channel_id":"ch_abc123","name":"General"}}`],
  ["channel", `{"type":"x","data":{}}`],
  ["channel", `{"type":"x","data":{"Name":"a","nested":{"Channel_ID":1,"seq":2}}}`],
  ["user", `{"type":"x","data":{},"extra":[1,2,{"type":"ready"}]}`],
  ["user", `{"type":"Ready","data":{}}`],
  ["user", `{"type":"presence_update","data":{"user_id":9007199254740991,"presence":"offline","status_text":""}}`],
  ["user", `{"type":"session_revoked","data":{}}`],
  ["broadcast", `{"type":"notification","data":{"id":"n","type":"maintenance","title":"t","body":"","created_at":1,"data":{}}}`],
  ["user", `{"type":"x","data":{"channel_id":5}}`], // channel_id is routing only on a channel subject
  ["user", ` {"type" : "x" , "data" : { } } `],
];

// The rules of the schema's $comment: the gateways refuse, the schema cannot tell.
const beyondSchema = [
  ["user", `{"type":"x","type":"y","data":{}}`, "duplicate key"],
  ["user", `{"type":"x","data":{"user_id":1,"user_id":2}}`, "duplicate key"],
  ["user", `{"type":"x","data":{"b":"${"x".repeat(64 << 10)}"}}`, "size"],
  ["channel", `{"type":"x","data":{"channel_id":"ch_other"}}`, "channel of the subject"],
  ["user", `{"type":"presence_update","data":{"user_id":1.0,"presence":"online"}}`, "user_id digits"],
  ["user", `{"type":"presence_update","data":{"user_id":1e3,"presence":"online"}}`, "user_id digits"],
];

/**
 * The verdicts of both on cases [scope, text, note, channel?]: a channel
 * case is published on its channel's subject (ch_abc123 unless given).
 */
async function verdicts(cases) {
  const bySubject = new Map();
  for (const c of cases) {
    const subject = c[0] === "channel" && c[3] ? `ocvr.channel.${c[3]}` : subjects[c[0]];
    if (!bySubject.has(subject)) bySubject.set(subject, []);
    bySubject.get(subject).push(c);
  }
  const out = [];
  for (const [subject, mine] of bySubject) {
    const v = await byGateway(subject, mine.map((c) => c[1]));
    mine.forEach((c, i) => out.push({ scope: c[0], text: c[1], note: c[2], gateway: v[i].valid, reason: v[i].reason, schema: bySchema(c[0], c[1]) }));
  }
  return out;
}

test("every example frame: the schema and the gateways agree", async () => {
  const cases = []; // [scope, text, name, channel, want]
  for (const e of fixture) {
    const text = JSON.stringify(e.frame);
    if (e.subject) {
      // A bus event: valid on its own subject (a channel event on its channel's).
      cases.push([e.subject, text, e.name, e.frame.data?.channel_id, true]);
      if (e.subject === "channel") cases.push(["user", text, e.name, undefined, true]);
    } else {
      // Frames the gateway itself speaks, and frames as clients receive them
      // (positioned): never from the bus, on any subject.
      for (const scope of Object.keys(subjects)) cases.push([scope, text, e.name, undefined, false]);
    }
  }
  assert.ok(cases.length > 20, "too few example frames");
  const v = await verdicts(cases);
  for (const c of v) {
    const want = cases.find((x) => x[0] === c.scope && x[1] === c.text)[4];
    assert.equal(c.gateway, want, `gateway on ${c.scope}, ${c.note}: ${c.text} (${c.reason})`);
    assert.equal(c.schema, want, `schema on ${c.scope}, ${c.note}: ${c.text}`);
  }
});

test("refused payloads: refused by both", async () => {
  for (const c of await verdicts(refused)) {
    assert.equal(c.gateway, false, `the gateways accept ${c.text} on ${c.scope}`);
    assert.equal(c.schema, false, `the schema accepts ${c.text} on ${c.scope} (the gateways: ${c.reason})`);
  }
});

test("accepted payloads: accepted by both", async () => {
  for (const c of await verdicts(accepted)) {
    assert.equal(c.gateway, true, `the gateways refuse ${c.text} on ${c.scope}: ${c.reason}`);
    assert.equal(c.schema, true, `the schema refuses ${c.text} on ${c.scope}`);
  }
});

test("the rules beyond a schema: refused by the gateways, by the examples' checks where they can tell", async () => {
  const check = makeValidator();
  for (const c of await verdicts(beyondSchema)) {
    assert.equal(c.gateway, false, `${c.note}: the gateways accept ${c.text.slice(0, 80)}`);
    assert.equal(c.schema, true, `${c.note}: the schema now refuses ${c.text.slice(0, 80)}: update its $comment`);
    if (c.note === "size" || c.note === "channel of the subject") {
      assert.ok(check(c.scope, c.text, "ch_abc123"), `${c.note}: the examples' validator lets it through`);
    }
  }
});
