"""A minimal stand-in for nats-py (https://github.com/nats-io/nats.py), for
machines that cannot install it (no PyPI access: this project's CI). It
speaks the real NATS client protocol to the real server, but only the calls
the OCVR examples use, with nats-py's names and signatures:

    nc = await nats.connect("nats://127.0.0.1:4222")
    await nc.publish(subject, payload, headers={...})
    msg = await nc.request(subject, payload, timeout=2, headers={...})   # msg.data, msg.headers
    ack = await nc.jetstream().publish(subject, payload, headers={...})  # ack.stream, ack.seq, ack.duplicate
    await nc.drain()   # or close()

With nats-py installed (pip install nats-py) this package is not used:
examples/python/backend.py imports it only when `import nats` fails.
Not for production: no reconnects, TLS or authentication.
"""
import asyncio
import json
import secrets
from dataclasses import dataclass, field
from typing import Dict, Optional
from urllib.parse import urlparse

from . import errors
from .js import JetStreamContext

__all__ = ["connect", "Client", "Msg", "errors"]


@dataclass
class Msg:
    subject: str
    reply: str = ""
    data: bytes = b""
    headers: Optional[Dict[str, str]] = None
    status: str = field(default="", repr=False)


def _encode_headers(headers: Dict[str, str]) -> bytes:
    lines = ["NATS/1.0"]
    for k, v in headers.items():
        if any(c in str(k) + str(v) for c in "\r\n") or ":" in str(k):
            raise ValueError(f"invalid header {k!r}")
        lines.append(f"{k}: {v}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _decode_headers(raw: bytes):
    text = raw.decode()
    first, _, rest = text.partition("\r\n")
    status = first[len("NATS/1.0"):].strip().split(" ")[0] if first.startswith("NATS/1.0") else ""
    headers = {}
    for line in rest.split("\r\n"):
        if ":" in line:
            k, _, v = line.partition(":")
            headers[k.strip()] = v.strip()
    return status, headers


class Client:
    def __init__(self):
        self._reader = None
        self._writer = None
        self._inbox = "_INBOX." + secrets.token_hex(11)
        self._pending: Dict[str, asyncio.Future] = {}
        self._pong: Optional[asyncio.Future] = None
        self._read_task = None
        self._closed = False

    async def _connect(self, server: str, timeout: float):
        u = urlparse(server if "://" in server else "nats://" + server)
        self._reader, self._writer = await asyncio.wait_for(
            asyncio.open_connection(u.hostname or "127.0.0.1", u.port or 4222), timeout)
        info = await asyncio.wait_for(self._reader.readline(), timeout)
        if not info.startswith(b"INFO "):
            raise errors.Error(f"not a NATS server: {info[:40]!r}")
        opts = {"verbose": False, "pedantic": False, "headers": True, "no_responders": True,
                "lang": "python-ocvr-shim", "version": "0.1", "protocol": 1}
        if u.username:
            opts.update(user=u.username, **({"pass": u.password} if u.password else {}))
        self._writer.write(b"CONNECT " + json.dumps(opts).encode() + b"\r\nPING\r\n")
        await self._writer.drain()
        while True:  # PONG, or -ERR (authorization); a cluster may send INFO updates first
            line = await asyncio.wait_for(self._reader.readline(), timeout)
            if not line or line.startswith(b"-ERR"):
                raise errors.Error(line.decode().strip() or "connection closed during CONNECT")
            if line.startswith(b"PONG"):
                break
        self._writer.write(f"SUB {self._inbox}.* 1\r\n".encode())
        self._read_task = asyncio.ensure_future(self._read_loop())

    async def _read_loop(self):
        try:
            while True:
                line = await self._reader.readline()
                if not line:
                    break
                op, _, args = line.decode().rstrip("\r\n").partition(" ")
                op = op.upper()
                if op == "PING":
                    self._writer.write(b"PONG\r\n")
                elif op == "PONG":
                    if self._pong and not self._pong.done():
                        self._pong.set_result(True)
                elif op in ("MSG", "HMSG"):
                    parts = args.split(" ")
                    subject, reply = parts[0], ""
                    if op == "MSG":
                        if len(parts) == 4:
                            reply = parts[2]
                        hdr_len, total = 0, int(parts[-1])
                    else:
                        if len(parts) == 5:
                            reply = parts[2]
                        hdr_len, total = int(parts[-2]), int(parts[-1])
                    body = await self._reader.readexactly(total + 2)
                    status, headers = _decode_headers(body[:hdr_len]) if hdr_len else ("", None)
                    self._deliver(Msg(subject, reply, body[hdr_len:total], headers, status))
                elif op == "-ERR":
                    for f in self._pending.values():
                        if not f.done():
                            f.set_exception(errors.Error(args))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            for f in self._pending.values():
                if not f.done():
                    f.set_exception(errors.ConnectionClosedError())

    def _deliver(self, msg: Msg):
        fut = self._pending.pop(msg.subject, None)
        if fut and not fut.done():
            if msg.status == "503":
                fut.set_exception(errors.NoRespondersError())
            else:
                fut.set_result(msg)

    async def publish(self, subject: str, payload: bytes = b"", reply: str = "", headers: Optional[Dict[str, str]] = None):
        if self._closed:
            raise errors.ConnectionClosedError()
        if not subject or any(c in subject for c in " \t\r\n"):
            raise errors.BadSubjectError()
        r = f" {reply}" if reply else ""
        if headers:
            h = _encode_headers(headers)
            self._writer.write(f"HPUB {subject}{r} {len(h)} {len(h) + len(payload)}\r\n".encode() + h + payload + b"\r\n")
        else:
            self._writer.write(f"PUB {subject}{r} {len(payload)}\r\n".encode() + payload + b"\r\n")
        await self._writer.drain()

    async def request(self, subject: str, payload: bytes = b"", timeout: float = 0.5, old_style: bool = False,
                      headers: Optional[Dict[str, str]] = None) -> Msg:
        inbox = f"{self._inbox}.{secrets.token_hex(8)}"
        fut = asyncio.get_running_loop().create_future()
        self._pending[inbox] = fut
        try:
            await self.publish(subject, payload, reply=inbox, headers=headers)
            return await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            raise errors.TimeoutError() from None
        finally:
            self._pending.pop(inbox, None)

    def jetstream(self, **_) -> JetStreamContext:
        return JetStreamContext(self)

    async def flush(self, timeout: float = 10):
        self._pong = asyncio.get_running_loop().create_future()
        self._writer.write(b"PING\r\n")
        await self._writer.drain()
        try:
            await asyncio.wait_for(self._pong, timeout)
        except asyncio.TimeoutError:
            raise errors.FlushTimeoutError() from None

    async def close(self):
        if self._closed:
            return
        self._closed = True
        if self._read_task:
            self._read_task.cancel()
        self._writer.close()
        try:
            await self._writer.wait_closed()
        except ConnectionError:
            pass

    async def drain(self):
        if not self._closed:
            await self.flush()
        await self.close()


async def connect(servers="nats://127.0.0.1:4222", connect_timeout: float = 2, **_) -> Client:
    if isinstance(servers, str):
        servers = [servers]
    last = None
    for s in servers:
        nc = Client()
        try:
            await nc._connect(s, connect_timeout)
            return nc
        except (OSError, asyncio.TimeoutError, errors.Error) as e:
            last = e
    raise errors.NoServersError() from last
