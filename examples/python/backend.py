#!/usr/bin/env python3
"""A chat backend's day with OCVR Realtime, in Python (python3 backend.py):

  1. Ada sends a message from her phone: it goes to the channel, to every
     connection but her phone's (her headset still gets it),
  2. Bo is notified of the mention,
  3. Bo logs out on one device: that session is revoked through ticketsvc's
     session service (the session store and its sockets together),

and a frame the gateways would refuse is caught before it is published,
with the published JSON Schema (pkg/protocol/busevent.schema.json).

Needs nats-py (pip install nats-py) and jsonschema (pip install jsonschema).
Without nats-py it uses shim/nats, a minimal stand-in with the same calls
(this project's CI cannot reach PyPI). Settings from the environment:
OCVR_NATS_URL, OCVR_PREFIX, CHANNEL, AUTHOR_ID, SENDER_SESSION (the session
id the author's client got in ready.data.session_id), MENTIONED_ID,
REVOKE_SESSION (optional). pkg/README.md, "Publishing from other
languages", is the reference.
"""
import asyncio
import json
import os
import re
import sys
import time

try:
    import nats
except ImportError:  # no nats-py: the stand-in beside this file
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "shim"))
    import nats

try:
    import jsonschema
except ImportError:
    sys.exit("backend.py needs jsonschema: pip install jsonschema (or apt-get install python3-jsonschema)")

SCHEMA_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "pkg", "protocol", "busevent.schema.json")
ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_EVENT_SIZE = 64 << 10


class Refused(Exception):
    """A frame the gateways would refuse."""


class ServiceError(Exception):
    """An error answer of the session service (code: NOT_FOUND, INVALID_REQUEST, UNAVAILABLE)."""

    def __init__(self, code, message):
        super().__init__(f"{code}: {message}")
        self.code = code


def make_validator():
    """check(scope, payload, channel_id): None, or why the gateways would refuse the payload."""
    with open(SCHEMA_PATH) as f:
        schema = json.load(f)
    try:  # jsonschema >= 4.18
        from referencing import Registry, Resource
        registry = Registry().with_resource(schema["$id"], Resource.from_contents(schema))
        validators = {scope: jsonschema.Draft202012Validator({"$ref": f"{schema['$id']}#/$defs/{scope}"}, registry=registry)
                      for scope in ("channel", "user", "broadcast")}
    except ImportError:  # older releases (Debian's python3-jsonschema)
        resolver = jsonschema.RefResolver.from_schema(schema)
        validators = {scope: jsonschema.Draft202012Validator({"$ref": f"{schema['$id']}#/$defs/{scope}"}, resolver=resolver)
                      for scope in ("channel", "user", "broadcast")}

    def check(scope, payload: bytes, channel_id=None):
        if len(payload) > MAX_EVENT_SIZE:
            return f"{len(payload)} bytes, limit {MAX_EVENT_SIZE}"
        try:
            frame = json.loads(payload)
        except ValueError as e:
            return f"not JSON: {e}"
        err = jsonschema.exceptions.best_match(validators[scope].iter_errors(frame))
        if err is not None:
            return f"{'/'.join(map(str, err.absolute_path)) or '/'}: {err.message}"
        # What a schema cannot say: a channel event names its own channel.
        if scope == "channel" and isinstance(frame["data"].get("channel_id"), str) and frame["data"]["channel_id"] != channel_id:
            return f"data.channel_id {frame['data']['channel_id']!r} does not name the subject's channel {channel_id}"
        return None

    return check


class OcvrBackend:
    def __init__(self, nc, prefix="ocvr"):
        self.nc, self.js, self.prefix = nc, nc.jetstream(), prefix
        self.check = make_validator()

    async def _publish(self, subject, scope, channel_id, frame, except_session=None, msg_id=None):
        payload = json.dumps(frame, separators=(",", ":"), ensure_ascii=False).encode()  # compact: what clients receive
        refused = self.check(scope, payload, channel_id)
        if refused:
            raise Refused(f"the gateways would refuse it: {refused}")
        headers = {"Ocvr-Published-At": str(time.time_ns())}
        if except_session:  # the sender's ready.data.session_id: all its other connections still get it
            if not ID.match(except_session):
                raise ValueError(f"invalid session id {except_session!r}")
            headers["Ocvr-Except-Session"] = except_session
        if msg_id:
            headers["Nats-Msg-Id"] = msg_id  # a retry with the same id is stored once
        return await self.js.publish(subject, payload, headers=headers)

    async def publish_to_channel(self, channel_id, frame, **kw):
        if not ID.match(channel_id):
            raise ValueError(f"invalid channel id {channel_id!r}")
        return await self._publish(f"{self.prefix}.in.channel.{channel_id}", "channel", channel_id, frame, **kw)

    async def publish_to_user(self, user_id: int, frame, **kw):
        if not isinstance(user_id, int) or user_id < 1:
            raise ValueError(f"invalid user id {user_id!r}")
        return await self._publish(f"{self.prefix}.in.user.{user_id}", "user", None, frame, **kw)

    async def notify(self, user_id: int, id, type, title, body="", data=None, **kw):
        frame = {"type": "notification", "data": {"id": id, "type": type, "title": title, "body": body,
                                                  "created_at": int(time.time()), "data": data or {}}}
        return await self.publish_to_user(user_id, frame, msg_id=id, **kw)

    async def _session(self, op, body):
        msg = await self.nc.request(f"{self.prefix}.svc.sessions.{op}", json.dumps(body).encode(), timeout=5)
        reply = json.loads(msg.data)
        if "error" in reply:
            raise ServiceError(reply["error"]["code"], reply["error"]["message"])
        return reply["data"]

    async def create_session(self, user_id: int, display_name: str, ttl_seconds=86400):
        return await self._session("create", {"user_id": user_id, "display_name": display_name, "ttl_seconds": ttl_seconds})

    async def revoke_session(self, session_id, reason="logout"):
        return await self._session("revoke", {"session_id": session_id, "reason": reason})

    async def revoke_user(self, user_id: int, except_session_id=None, reason="logout_all"):
        body = {"user_id": user_id, "reason": reason}
        if except_session_id:
            body["except_session_id"] = except_session_id
        return await self._session("revoke_user", body)


async def main():
    env = os.environ
    nc = await nats.connect(env.get("OCVR_NATS_URL", "nats://127.0.0.1:4222"))
    backend = OcvrBackend(nc, env.get("OCVR_PREFIX", "ocvr"))
    try:
        channel = env.get("CHANNEL", "ch_general")
        author, mentioned = int(env.get("AUTHOR_ID", "1")), int(env.get("MENTIONED_ID", "2"))
        mid = f"msg_py_{time.time_ns()}"
        ack = await backend.publish_to_channel(channel, {"type": "message_create", "data": {
            "id": mid, "channel_id": channel, "author": {"id": author, "display_name": "Ada"},
            "content": "hello from Python", "created_at": int(time.time()), "attachments": []}},
            except_session=env.get("SENDER_SESSION"), msg_id=f"{mid}.create")
        print(f"published message_create {mid} to {channel} (stream {ack.stream} seq {ack.seq})")

        note = await backend.notify(mentioned, id=f"notif_{mid}", type="mention", title="Ada mentioned you",
                                    body="hello from Python", data={"channel_id": channel, "message_id": mid})
        print(f"notified user {mentioned} (seq {note.seq})")

        try:  # refused before it reaches NATS: session_revoked is never a channel event
            await backend.publish_to_channel(channel, {"type": "session_revoked", "data": {"reason": "x"}})
            raise SystemExit("a refused frame was published")
        except Refused as e:
            print(f"refused before publishing: {e}")

        if env.get("REVOKE_SESSION"):
            r = await backend.revoke_session(env["REVOKE_SESSION"], "logout")
            print(f"revoked {r['revoked']} session: {env['REVOKE_SESSION']}")
    finally:
        await nc.drain()


if __name__ == "__main__":
    asyncio.run(main())
