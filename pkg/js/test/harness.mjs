// The real stack for the client's tests: bin/ocvr-devstack runs NATS
// (embedded, JetStream), ticketsvc, the demo page server and the seed data
// (users 1 Alice and 2 Bob, friends, members of ch_general); the gateways
// are this harness's own child processes, so a test can stop, restart,
// freeze (SIGSTOP) and thaw them. Every port is picked free at start, so
// the tests never collide with `make run` or another stack.
import { spawn, execFile } from "node:child_process";
import { mkdtempSync, openSync, closeSync, readFileSync, existsSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { connect as connectNats } from "nats";

const execFileP = promisify(execFile);

export const jsDir = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const repoRoot = resolve(jsDir, "../..");
export const binDir = process.env.OCVR_BIN ?? join(repoRoot, "bin");

/** A free TCP port on 127.0.0.1 (the OS picks it). */
export async function freePort() {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", rej);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => res(port));
    });
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The current time in unix seconds: the protocol's unit for every time. */
export const nowSeconds = () => Math.floor(Date.now() / 1000);

/** The golden frames of the protocol document, shared with the Go tests. */
export const goldenFramesPath = join(repoRoot, "pkg", "protocol", "testdata", "frames.json");

/**
 * Loads pkg/protocol/testdata/frames.json: entries { direction, name,
 * document?, extra?, subject?, frame }, each with `wire`, the frame
 * compacted (the bytes a backend publishes and the client must receive).
 */
export function loadGoldenFrames() {
  const entries = JSON.parse(readFileSync(goldenFramesPath, "utf8"));
  if (!Array.isArray(entries) || entries.length === 0) throw new Error(`${goldenFramesPath}: no entries`);
  return entries.map((e) => ({ ...e, wire: JSON.stringify(e.frame) }));
}

/**
 * The bus subject a backend publishes a golden server frame on: the
 * frame's channel (`ocvr.channel.<data.channel_id>`) or the receiving
 * user's (`ocvr.user.<userId>`).
 */
export function goldenSubject(entry, userId, prefix = "ocvr") {
  if (entry.subject === "channel") return `${prefix}.channel.${entry.frame.data.channel_id}`;
  if (entry.subject === "user") return `${prefix}.user.${userId}`;
  throw new Error(`golden frame ${entry.name}: no subject`);
}

/**
 * Continuity (gateway/README.md "Continuity"): `ready` and `subscribed` carry
 * additive fields the protocol document's examples do not show (`ready`:
 * `resume_token`, `seq`, `resumed`; `subscribed`: `seq`, `resumed`).
 * Returns a frame's text without them, after checking their JSON types, so
 * that it compares with the document's bytes; other frames as they are
 * (re-encoded compactly: compare only compact texts).
 */
export function withoutContinuity(text) {
  const f = JSON.parse(text);
  const fields = f?.type === "ready" ? { resume_token: "string", seq: "integer", resumed: "boolean" } : f?.type === "subscribed" ? { seq: "integer", resumed: "boolean" } : {};
  for (const [k, kind] of Object.entries(fields)) {
    if (f.data === null || typeof f.data !== "object" || !(k in f.data)) continue;
    const v = f.data[k];
    if (!(kind === "integer" ? Number.isSafeInteger(v) && v >= 0 : typeof v === kind)) throw new Error(`${f.type}.${k}: ${JSON.stringify(v)} is not a ${kind}`);
    delete f.data[k];
  }
  return JSON.stringify(f);
}

/** Polls fn until it returns a truthy value, or throws after timeout ms. */
export async function waitFor(fn, { timeout = 10000, interval = 50, what = "condition" } = {}) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await sleep(interval);
  }
}

// Child processes die with the test process, however it ends. The devstack
// runs in its own process group so that its ticketsvc goes with it.
const children = new Set();
function killChildren() {
  for (const c of children) {
    try {
      if (c.groupLeader) process.kill(-c.pid, "SIGKILL");
      else c.kill("SIGKILL");
    } catch {
      // gone
    }
  }
}
process.on("exit", killChildren);
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.once(sig, () => {
    killChildren();
    process.exit(128 + (sig === "SIGINT" ? 2 : sig === "SIGTERM" ? 15 : 1));
  });
}

async function httpOK(url) {
  try {
    const r = await fetch(url);
    await r.arrayBuffer();
    return r.ok;
  } catch {
    return false;
  }
}

/** One gateway process the harness owns. */
class Gateway {
  constructor(stack, index, port, adminPort, extraArgs = []) {
    this.stack = stack;
    this.index = index;
    this.port = port;
    this.adminPort = adminPort;
    this.extraArgs = extraArgs;
    this.name = `gw${index + 1}`;
    this.wsUrl = `ws://127.0.0.1:${port}/v1/ws`;
    this.starts = 0;
  }

  /** Starts the process and waits for /readyz. */
  async start() {
    const log = join(this.stack.dataDir, `${this.name}-${++this.starts}.log`);
    const fd = openSync(log, "w");
    const args = [
      "--listen", `127.0.0.1:${this.port}`,
      "--admin-listen", `127.0.0.1:${this.adminPort}`,
      "--nats-url", this.stack.natsUrl,
      "--pod-name", this.name,
      "--readiness-delay", "0s",
      "--drain-window", "300ms",
      ...this.stack.gatewayArgs,
      ...this.extraArgs,
    ];
    const proc = spawn(join(binDir, "gateway"), args, { stdio: ["ignore", fd, fd] });
    closeSync(fd);
    children.add(proc);
    this.proc = proc;
    this.exited = new Promise((r) => proc.on("exit", (code, signal) => {
      children.delete(proc);
      r({ code, signal });
    }));
    let dead = false;
    this.exited.then(() => (dead = true));
    await waitFor(async () => {
      if (dead) throw new Error(`${this.name} exited during start:\n${readFileSync(log, "utf8")}`);
      return httpOK(`http://127.0.0.1:${this.adminPort}/readyz`);
    }, { timeout: 15000, what: `${this.name} ready` });
  }

  /** Stops the process: SIGTERM drains (clients get 1012), SIGKILL drops every socket (1006). */
  async stop(signal = "SIGTERM") {
    if (!this.proc || this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.proc.kill(signal);
    await this.exited;
  }

  async restart(signal = "SIGTERM") {
    await this.stop(signal);
    await this.start();
  }

  /** Freezes the process: its sockets stay open but nothing answers (a dead connection). */
  pause() {
    this.proc.kill("SIGSTOP");
  }

  resume() {
    this.proc.kill("SIGCONT");
  }
}

/**
 * Starts NATS + ticketsvc + the demo server (the devstack) and `gateways`
 * gateway processes with `gatewayArgs`.
 */
export async function startStack({ gateways = 2, gatewayArgs = [], ticketsvcArgs = [] } = {}) {
  for (const b of ["ocvr-devstack", "gateway", "ticketsvc", "ocvrctl"]) {
    if (!existsSync(join(binDir, b))) throw new Error(`${join(binDir, b)} is missing: run make build`);
  }
  const dataDir = mkdtempSync(join(tmpdir(), "ocvr-js-"));
  if (process.env.OCVR_KEEP_DATA) console.error(`ocvr test stack: data and logs in ${dataDir}`);
  const [natsPort, tsvcPort, tsvcAdmin, demoPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const stack = {
    dataDir,
    gatewayArgs,
    natsUrl: `nats://127.0.0.1:${natsPort}`,
    ticketUrl: `http://127.0.0.1:${tsvcPort}`,
    demoUrl: `http://127.0.0.1:${demoPort}`,
    gateways: [],
    extraGateways: [],
  };

  const fd = openSync(join(dataDir, "devstack.log"), "w");
  const ds = spawn(join(binDir, "ocvr-devstack"), [
    "--bin", binDir,
    "--data", dataDir,
    "--nats-port", String(natsPort),
    "--ticketsvc-addr", `127.0.0.1:${tsvcPort}`,
    "--ticketsvc-admin", `127.0.0.1:${tsvcAdmin}`,
    "--gateways", "0",
    "--demo-addr", `127.0.0.1:${demoPort}`,
    "--demo-dir", jsDir,
    ...(ticketsvcArgs.length ? ["--ticketsvc-args", ticketsvcArgs.join(" ")] : []),
  ], { stdio: ["ignore", fd, fd], detached: true });
  closeSync(fd);
  ds.groupLeader = true;
  children.add(ds);
  const dsExited = new Promise((r) => ds.on("exit", () => {
    children.delete(ds);
    r();
  }));
  let dsDead = false;
  dsExited.then(() => (dsDead = true));
  await waitFor(() => {
    if (dsDead) throw new Error(`ocvr-devstack exited:\n${readFileSync(join(dataDir, "devstack.log"), "utf8")}`);
    return readFileSync(join(dataDir, "devstack.log"), "utf8").includes("The stack is up.");
  }, { timeout: 30000, what: "the devstack" });

  for (let i = 0; i < gateways; i++) {
    const g = new Gateway(stack, i, await freePort(), await freePort());
    stack.gateways.push(g);
  }
  await Promise.all(stack.gateways.map((g) => g.start()));

  /**
   * Starts one more gateway, with the stack's gateway flags plus extraArgs
   * (later flags win), for a test that needs another configuration (a
   * connection limit, a long readiness delay). Not in stack.gateways; the
   * stack stops it with the others.
   */
  stack.startGateway = async (extraArgs = []) => {
    const g = new Gateway(stack, gateways + stack.extraGateways.length, await freePort(), await freePort(), extraArgs);
    stack.extraGateways.push(g);
    await g.start();
    return g;
  };

  /** Runs bin/ocvrctl against this stack's NATS; resolves to its stdout. */
  stack.ocvrctl = async (...args) => {
    const { stdout } = await execFileP(join(binDir, "ocvrctl"), ["--nats-url", stack.natsUrl, ...args]);
    return stdout.trim();
  };

  /** Creates a session; resolves to { token, sessionId }. */
  stack.createSession = async (userId, name) => {
    const out = await stack.ocvrctl("session", "create", "--user", String(userId), "--name", name);
    const token = out.split("\n")[0].trim();
    const sessionId = out.match(/\bses_[A-Za-z0-9_-]+/)?.[0];
    if (!token.startsWith("sess_") || !sessionId) throw new Error(`unexpected ocvrctl session create output: ${out}`);
    return { token, sessionId };
  };

  // A NATS connection of the tests' own, as a backend in any language would
  // use (the nats package, no OCVR code).
  let nc;
  stack.nats = async () => (nc ??= await connectNats({ servers: stack.natsUrl, name: "ocvr-js-tests" }));

  /**
   * Publishes a frame through the event stream, as the Go SDK and ocvrctl
   * do: a JetStream publish to ocvr.in.channel.<channel> or
   * ocvr.in.user.<user>, acknowledged once stored. The stream republishes
   * it to the live subject with its position. Resolves to the position
   * (the stream sequence the client sees as the frame's top-level seq).
   */
  stack.publishStream = async ({ channel, user }, frame) => {
    const subject = channel !== undefined ? `ocvr.in.channel.${channel}` : `ocvr.in.user.${user}`;
    const js = (await stack.nats()).jetstream();
    const ack = await js.publish(subject, new TextEncoder().encode(typeof frame === "string" ? frame : JSON.stringify(frame)));
    return ack.seq;
  };

  stack.stop = async () => {
    await nc?.close();
    await Promise.all([...stack.gateways, ...stack.extraGateways].map((g) => {
      if (g.proc && g.proc.signalCode === null && g.proc.exitCode === null) g.resume();
      return g.stop("SIGKILL");
    }));
    ds.kill("SIGTERM");
    const t = setTimeout(() => ds.kill("SIGKILL"), 10000);
    await dsExited;
    clearTimeout(t);
    if (!process.env.OCVR_KEEP_DATA) rmSync(dataDir, { recursive: true, force: true });
  };
  return stack;
}
