"""What a relay through an account's upstream server comes to, and how the client hears it.

``RelayResult`` is a failure (or success) of a whole step with the upstream; ``one_line``
makes an upstream's text safe for one reply line or log line; ``failure_reply`` turns a
failed step into the temporary answer the client gets (451: it keeps the message).
``relay_message`` sends one message in one session (synchronous, for one-off use and
tests); the proxy itself keeps sessions open per account (``pool``, ``transaction``).
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Optional

from ..servers import DEFAULT_TIMEOUT, ServerSettings

STATUS_OF_STAGE = {"connect": "4.4.1", "tls": "4.7.0", "auth": "4.7.0", "account": "4.7.0",
                   "registry": "4.3.0", "shutdown": "4.3.2"}


@dataclass(frozen=True)
class RelayResult:
    ok: bool
    stage: str                 # connect | tls | greeting | auth | mail | rcpt | data | done
    code: Optional[int] = None
    detail: str = ""

    def describe(self) -> str:
        code = f"{self.code} " if self.code else ""
        return f"{self.stage}: {code}{self.detail}".strip()


def one_line(text, limit: int = 200) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def failure_reply(result: RelayResult) -> str:
    """A 451: the client keeps the message and tries again later."""
    status = STATUS_OF_STAGE.get(result.stage, "4.4.0")
    code = f"{result.code} " if result.code else ""
    detail = one_line(f"{code}{result.detail}", 160) or "no reply"
    return (f"451 {status} Upstream {result.stage} failed ({detail}); "
            "message not sent, try again later")


async def relay_once(up: ServerSettings, sender: str, recipients: list[str], data: bytes, *,
                     local_hostname: Optional[str] = None, eightbit: bool = False
                     ) -> RelayResult:
    """One message in one session; ok only when every recipient and DATA got 2xx."""
    from .upstream import StepFailed, Upstream
    session = Upstream(up, local_hostname, up.timeout)
    try:
        await session.open()
        await session.mail(sender, eightbit)
        for rcpt in recipients:
            code, text = await session.rcpt(rcpt)
            if code // 100 != 2:
                return RelayResult(False, "rcpt", code, text)
        code, text = await session.data(data)
        return RelayResult(code // 100 == 2, "done" if code // 100 == 2 else "data", code, text)
    except StepFailed as failed:
        return RelayResult(False, failed.stage, failed.code, failed.detail)
    finally:
        await session.close(polite=not session.broken)


def relay_message(up: ServerSettings, sender: str, recipients: list[str], data: bytes, *,
                  local_hostname: Optional[str] = None, eightbit: bool = False) -> RelayResult:
    """``relay_once`` from synchronous code; never raises for a network or SMTP failure."""
    return asyncio.run(relay_once(up, sender, recipients, data,
                                  local_hostname=local_hostname, eightbit=eightbit))


__all__ = ["RelayResult", "relay_message", "relay_once", "failure_reply", "one_line",
           "DEFAULT_TIMEOUT"]
