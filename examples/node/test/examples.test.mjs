// The backend examples against the real stack (NATS with JetStream,
// ticketsvc, a gateway), with real clients (ocvrctl connect): what each
// example publishes reaches exactly the connections it should, a refused
// frame is caught before publishing, and a revocation through the session
// service both closes the sockets (4003) and invalidates the session (401).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startStack, run, sleep, repoRoot, exampleDir } from "./stack.mjs";
import { OcvrBackend, ServiceError } from "../ocvr.mjs";

// The interpreter make test-examples found with jsonschema (scripts/ci/install-python.sh).
const python = process.env.OCVR_PYTHON || "python3";

let stack;
before(async () => {
  stack = await startStack();
  await stack.ocvrctl("channel", "create", "--channel", "ch_general");
  for (const u of [1, 2]) await stack.ocvrctl("member", "add", "--channel", "ch_general", "--user", String(u));
});
after(async () => stack?.stop());

/**
 * Ada (user 1) on a phone and a headset, Bo (user 2) on one device: the
 * example sends Ada's message except her phone's connection, notifies Bo,
 * revokes Bo's session. prog is the example's command line.
 */
async function scenario(prog, args) {
  const [phone, headset, bo] = [await stack.session(1, "Ada"), await stack.session(1, "Ada"), await stack.session(2, "Bo")];
  const clients = {
    phone: await stack.client(phone.token, "ch_general"),
    headset: await stack.client(headset.token, "ch_general"),
    bo: await stack.client(bo.token, "ch_general"),
  };
  const r = await run(prog, args, {
    OCVR_NATS_URL: stack.natsUrl, CHANNEL: "ch_general", AUTHOR_ID: "1", MENTIONED_ID: "2",
    SENDER_SESSION: clients.phone.sessionId, REVOKE_SESSION: clients.bo.sessionId,
  });
  assert.equal(r.code, 0, `${prog} ${args.join(" ")} failed:\n${r.stdout}\n${r.stderr}`);
  assert.match(r.stdout, /published message_create \S+ to ch_general \(stream OCVR_EVENTS seq \d+\)/);
  assert.match(r.stdout, /refused before publishing: .*session_revoked/);
  assert.match(r.stdout, /revoked 1 session/);

  // The message: Ada's headset and Bo, not the phone it was sent from.
  await clients.headset.wait("message_create");
  await clients.bo.wait("message_create");
  const [m] = clients.headset.of("message_create");
  assert.equal(m.data.channel_id, "ch_general");
  assert.equal(m.data.author.id, 1);
  assert.ok(Number.isSafeInteger(m.seq), "a stream event carries its position");
  // Bo's notification, then his revocation: socket closed with 4003 ...
  await clients.bo.wait("notification");
  assert.equal(clients.bo.of("notification")[0].data.type, "mention");
  await clients.bo.wait("session_revoked");
  assert.equal(clients.bo.of("session_revoked")[0].data.reason, "logout");
  assert.equal(await clients.bo.exited, 5, `connect exits 5 (refused) on 4003: ${clients.bo.stderr}`);
  assert.match(clients.bo.stderr, /4003/);
  // ... and the session is gone from the store: no new ticket.
  assert.equal(await stack.ticketStatus(bo.token), 401);
  assert.equal(await stack.ticketStatus(phone.token), 200);
  // The phone never got the message (the headset did, long ago).
  await sleep(300);
  assert.equal(clients.phone.of("message_create").length, 0, "the sender's own connection got its message");
  assert.equal(clients.phone.of("session_revoked").length + clients.headset.of("session_revoked").length, 0);
  clients.phone.proc.kill();
  clients.headset.proc.kill();
}

test("the Node example publishes, notifies and revokes through plain NATS", async () => {
  await scenario(process.execPath, [join(exampleDir, "backend.mjs")]);
});

test("the Python example does the same", async () => {
  await scenario(python, [join(exampleDir, "..", "python", "backend.py")]);
});

// pkg/README.md's Python snippets are whole scripts: run them as they
// stand, against this stack's NATS (OCVR_NATS_URL). Without nats-py the
// stand-in examples/python/shim provides `import nats`.
const hasNatsPy = (await run(python, ["-c", "import nats"], {})).code === 0;
test("the README's Python snippets run as scripts", async () => {
  const readme = readFileSync(join(repoRoot, "pkg", "README.md"), "utf8");
  const blocks = [...readme.matchAll(/```python\n([\s\S]*?)```/g)].map((b) => b[1]);
  assert.ok(blocks.length >= 1, "no python block in pkg/README.md");
  const dir = mkdtempSync(join(tmpdir(), "ocvr-readme-"));
  const env = {
    OCVR_NATS_URL: stack.natsUrl,
    OCVR_SCHEMA: join(repoRoot, "pkg", "protocol", "busevent.schema.json"),
    ...(hasNatsPy ? {} : { PYTHONPATH: join(exampleDir, "..", "python", "shim") }),
  };
  for (const [i, code] of blocks.entries()) {
    const file = join(dir, `snippet${i}.py`);
    writeFileSync(file, code);
    const r = await run(python, [file], env);
    assert.equal(r.code, 0, `README python block ${i}:\n${code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`);
    assert.match(r.stdout, /stored at seq \d+|^None\n.*session_revoked/s, `README python block ${i} printed ${r.stdout}`);
  }
});

test("the session service answers a plain NATS client", async () => {
  const b = await OcvrBackend.connect({ servers: stack.natsUrl });
  try {
    const s = await b.createSession(3, "Cy", 60);
    assert.match(s.token, /^sess_/);
    assert.equal(await stack.ticketStatus(s.token), 200);
    const again = await b.createSession(3, "Cy", 60);
    assert.deepEqual(await b.revokeUser(3, { exceptSessionId: again.session_id }), { revoked: 1 });
    assert.equal(await stack.ticketStatus(s.token), 401);
    assert.equal(await stack.ticketStatus(again.token), 200);
    await assert.rejects(b.revokeSession(s.session_id), (e) => e instanceof ServiceError && e.code === "NOT_FOUND");
    await assert.rejects(b.revokeSession("sess_not.an.id"), (e) => e instanceof ServiceError && e.code === "INVALID_REQUEST");
  } finally {
    await b.close();
  }
});
