// The real stack for the examples' tests: bin/ocvr-devstack (embedded NATS
// with JetStream, ticketsvc, one gateway) on free ports, and clients that
// are bin/ocvrctl connect processes. make build first (make test-examples
// does).
import { spawn, execFile } from "node:child_process";
import { mkdtempSync, openSync, closeSync, readFileSync, rmSync, existsSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const execFileP = promisify(execFile);
export const exampleDir = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const repoRoot = resolve(exampleDir, "../..");
export const binDir = process.env.OCVR_BIN ?? join(repoRoot, "bin");

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function freePort() {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.on("error", rej);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => res(port));
    });
  });
}

export async function waitFor(fn, { timeout = 10000, what = "condition" } = {}) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await sleep(50);
  }
}

// Every child dies with the test process, however it ends.
const children = new Set();
process.on("exit", () => {
  for (const c of children) {
    try {
      process.kill(c.groupLeader ? -c.pid : c.pid, "SIGKILL");
    } catch {
      // gone
    }
  }
});

/** Starts the devstack; resolves to the stack's addresses and helpers. */
export async function startStack() {
  for (const b of ["ocvr-devstack", "gateway", "ticketsvc", "ocvrctl"]) {
    if (!existsSync(join(binDir, b))) throw new Error(`${join(binDir, b)} is missing: run make build`);
  }
  const dataDir = mkdtempSync(join(tmpdir(), "ocvr-examples-"));
  const [nats, tsvc, tsvcAdmin, gw, gwAdmin] = [await freePort(), await freePort(), await freePort(), await freePort(), await freePort()];
  const log = join(dataDir, "devstack.log");
  const fd = openSync(log, "w");
  const ds = spawn(join(binDir, "ocvr-devstack"), [
    "--bin", binDir, "--data", dataDir, "--nats-port", String(nats),
    "--ticketsvc-addr", `127.0.0.1:${tsvc}`, "--ticketsvc-admin", `127.0.0.1:${tsvcAdmin}`,
    "--gateway-port", String(gw), "--gateway-admin-port", String(gwAdmin), "--gateways", "1",
    "--demo-addr", "", "--seed=false",
  ], { stdio: ["ignore", fd, fd], detached: true });
  closeSync(fd);
  ds.groupLeader = true;
  children.add(ds);
  let dead = false;
  const exited = new Promise((r) => ds.on("exit", () => {
    dead = true;
    children.delete(ds);
    r();
  }));
  await waitFor(() => {
    if (dead) throw new Error(`ocvr-devstack exited:\n${readFileSync(log, "utf8")}`);
    return readFileSync(log, "utf8").includes("The stack is up.");
  }, { timeout: 30000, what: "the devstack" });

  const stack = {
    natsUrl: `nats://127.0.0.1:${nats}`,
    ticketUrl: `http://127.0.0.1:${tsvc}`,
    wsUrl: `ws://127.0.0.1:${gw}/v1/ws`,
    dataDir,
  };
  /** Runs bin/ocvrctl against the stack's NATS; resolves to its stdout. */
  stack.ocvrctl = async (...args) => (await execFileP(join(binDir, "ocvrctl"), ["--nats-url", stack.natsUrl, ...args])).stdout.trim();
  /** A session as the platform's auth service creates it: { token, sessionId }. */
  stack.session = async (userId, name) => {
    const s = JSON.parse(await stack.ocvrctl("--json", "session", "create", "--user", String(userId), "--name", name));
    return { token: s.token, sessionId: s.session_id };
  };
  /** POST /v1/auth/ws-ticket: the HTTP status a client gets. */
  stack.ticketStatus = async (token) => {
    const r = await fetch(`${stack.ticketUrl}/v1/auth/ws-ticket`, { method: "POST", headers: { Authorization: `Bearer ${token}` } });
    await r.arrayBuffer();
    return r.status;
  };
  /** A client: ocvrctl connect, its frames collected; resolves once subscribed. */
  stack.client = async (token, channel) => {
    const proc = spawn(join(binDir, "ocvrctl"), ["connect", "--session", token, "--subscribe", channel,
      "--ticket-url", stack.ticketUrl, "--ws-url", stack.wsUrl], { stdio: ["ignore", "pipe", "pipe"] });
    children.add(proc);
    const c = { frames: [], stderr: "", proc };
    let buf = "";
    proc.stdout.on("data", (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf("\n")) >= 0) {
        c.frames.push(JSON.parse(buf.slice(0, i)));
        buf = buf.slice(i + 1);
      }
    });
    proc.stderr.on("data", (d) => (c.stderr += d));
    c.exited = new Promise((r) => proc.on("exit", (code) => {
      children.delete(proc);
      r(code);
    }));
    c.of = (type) => c.frames.filter((f) => f.type === type);
    c.wait = (type, what = type) => waitFor(() => c.of(type).length > 0, { what: `${what} (frames so far: ${JSON.stringify(c.frames)}; stderr: ${c.stderr})` });
    await c.wait("subscribed");
    c.sessionId = c.of("ready")[0].data.session_id; // what the app sends its backend along with a message
    return c;
  };
  stack.stop = async () => {
    ds.kill("SIGTERM");
    const t = setTimeout(() => ds.kill("SIGKILL"), 10000);
    await exited;
    clearTimeout(t);
    if (!process.env.OCVR_KEEP_DATA) rmSync(dataDir, { recursive: true, force: true });
  };
  return stack;
}

/** Runs a program of the examples; resolves to { code, stdout, stderr }. */
export function run(cmd, args, env) {
  return new Promise((res) => {
    execFile(cmd, args, { env: { ...process.env, PYTHONDONTWRITEBYTECODE: "1", ...env }, cwd: exampleDir, timeout: 30000 }, (err, stdout, stderr) => {
      res({ code: err ? (err.code ?? 1) : 0, stdout, stderr });
    });
  });
}
