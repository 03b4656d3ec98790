"""JetStream publish of the stand-in: a request whose reply is the stream's
acknowledgement, as nats-py's JetStreamContext.publish."""
import json
from dataclasses import dataclass
from typing import Dict, Optional

from .. import errors as nats_errors
from . import errors

__all__ = ["JetStreamContext", "PubAck", "errors"]


@dataclass
class PubAck:
    stream: str
    seq: int
    domain: Optional[str] = None
    duplicate: Optional[bool] = None


class JetStreamContext:
    def __init__(self, nc):
        self._nc = nc

    async def publish(self, subject: str, payload: bytes = b"", timeout: Optional[float] = None,
                      stream: Optional[str] = None, headers: Optional[Dict[str, str]] = None) -> PubAck:
        hdrs = dict(headers or {})
        if stream:
            hdrs["Nats-Expected-Stream"] = stream
        try:
            msg = await self._nc.request(subject, payload, timeout=timeout or 5, headers=hdrs or None)
        except nats_errors.NoRespondersError:
            raise errors.NoStreamResponseError() from None
        resp = json.loads(msg.data)
        if "error" in resp:
            e = resp["error"]
            raise errors.APIError(code=e.get("code"), err_code=e.get("err_code"), description=e.get("description"))
        return PubAck(stream=resp["stream"], seq=resp["seq"], domain=resp.get("domain"), duplicate=resp.get("duplicate"))
