"""aiosmtpd handler hooks: the transparent relay, one client transaction at a time.

The upstream session opens at MAIL FROM (an idle one of the account is reused, RSET
between messages: ``pool``); each RCPT TO is forwarded and the upstream's answer is the
client's answer for that recipient; DATA's final answer is the upstream's. An upstream
that fails or stalls (every step has its deadline: ``upstream``) gives 451 for that step,
so the client keeps the message. The message gets a ``Received:`` line and its bounce tag
(``bounces.tags``) on the way; when the transaction ends (DATA answered, RSET, QUIT, a
lost connection) the upstream session goes back to the pool and the delivery log and
contact ledger are written in the background (``records``).
"""
from __future__ import annotations

import logging
import uuid
from typing import Optional

from ..servers import ServerSettingsError
from .auth import ProxyAccount, same_address
from .pool import pool_key
from .records import Delivery, Outcome, message_id_of, received_line
from .relay import RelayResult, failure_reply, one_line
from .upstream import StepFailed, Upstream

log = logging.getLogger("mailform.proxy")
R_BROKEN = "451 4.4.2 The upstream session was lost; message not sent, try again later"


class Transaction:
    """A client transaction: its delivery record and its upstream session."""

    def __init__(self, delivery: Delivery) -> None:
        self.delivery = delivery
        self.key: Optional[tuple] = None
        self.upstream: Optional[Upstream] = None

    @property
    def usable(self) -> bool:
        return self.upstream is not None and not self.upstream.broken


def _reply_for(failed: StepFailed) -> str:
    """The upstream's own refusal of the transaction passed back; 451 when it gave no
    answer or failed before the transaction (its login failing is not the client's)."""
    if failed.stage in ("mail", "rcpt", "data") and failed.code and failed.code >= 400 \
            and not failed.broken:
        return f"{failed.code} {one_line(failed.detail, 400)}"
    return failure_reply(RelayResult(False, failed.stage, failed.code, failed.detail))


class ProxyHandler:
    """Sender policy, recipient limit and the relay (see the module docstring)."""

    def __init__(self, core) -> None:
        self.core = core

    async def handle_PROXY(self, server, session, envelope, proxy_data) -> bool:
        """A valid PROXY v1/v2 header (aiosmtpd parsed it): accept the connection."""
        return bool(proxy_data)

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if not server.may_authenticate():
            responses = [line for line in responses if not line.startswith("250-AUTH")]
        return responses

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        from .smtp import client_ip
        account: ProxyAccount = session.auth_data
        if not same_address(address, account.email):
            log.warning("sender refused account=%s client=%s mail_from=%s",
                        account.name, client_ip(session), one_line(address or "<>", 100))
            return f"553 5.7.1 Sender address must be {account.email}, the account you logged in as"
        eightbit = any(o.upper() == "BODY=8BITMIME" for o in mail_options)
        size = next((int(o[5:]) for o in mail_options
                     if o.upper().startswith("SIZE=") and o[5:].isdigit()), None)
        tx = Transaction(Delivery(uuid.uuid4().hex, account.name, address, client_ip(session),
                                  self.core.now()))
        session.tx = tx
        reply = await self._open(tx, address, eightbit, size)
        if reply is not None:
            await self.end(server, session)
            return reply
        server.phase = "mail"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def _open(self, tx: Transaction, sender: str, eightbit: bool,
                    size: Optional[int] = None) -> Optional[str]:
        """The upstream session with MAIL FROM given; None, or the reply when it failed."""
        try:
            settings = await self.core.settings_of(tx.delivery.account)
        except ServerSettingsError as exc:
            return self._failed(tx, RelayResult(False, "account", None, str(exc)))
        except Exception as exc:  # noqa: BLE001 - the registry is down: temporary
            return self._failed(tx, RelayResult(False, "registry", None,
                                                f"registry unavailable ({type(exc).__name__})"))
        if settings is None:
            return self._failed(tx, RelayResult(False, "account", None,
                                                "account no longer allowed to use the proxy"))
        tx.key = pool_key(tx.delivery.account, settings)
        for _ in range(3):        # a reused session the upstream has closed: another one
            reused = False
            try:
                tx.upstream, reused = await self.core.pool.acquire(
                    tx.key, lambda: self.core.open_upstream(settings))
                await tx.upstream.mail(sender, eightbit, size)
                return None
            except StepFailed as failed:
                if tx.upstream is not None:
                    await self.core.pool.release(tx.key, tx.upstream, reuse=False)
                    tx.upstream = None
                if not (failed.broken and reused):
                    return self._failed(tx, RelayResult(False, failed.stage, failed.code,
                                                        failed.detail), _reply_for(failed))
        return R_BROKEN

    def _failed(self, tx: Transaction, result: RelayResult, reply: str = "") -> str:
        reply = reply or failure_reply(result)
        tx.delivery.upstream_reply = one_line(result.describe(), 300)
        log.error("upstream failure account=%s client=%s stage=%s detail=%s",
                  tx.delivery.account, tx.delivery.client, result.stage,
                  one_line(result.describe(), 300))
        return reply

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        tx: Optional[Transaction] = getattr(session, "tx", None)
        if len(envelope.rcpt_tos) >= self.core.config.max_recipients:
            return "452 4.5.3 Too many recipients"
        if tx is None or not tx.usable:
            return R_BROKEN
        try:
            code, text = await tx.upstream.rcpt(address)
        except StepFailed as failed:
            tx.delivery.outcomes.append(Outcome(address, None, failed.detail))
            return self._failed(tx, RelayResult(False, "rcpt", None, failed.detail))
        tx.delivery.outcomes.append(Outcome(address, code, text))
        if code // 100 == 2:
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.extend(rcpt_options)
        return f"{code} {one_line(text, 400)}"

    async def handle_DATA(self, server, session, envelope):
        tx: Optional[Transaction] = getattr(session, "tx", None)
        server.phase = "relaying"      # until the reply is sent (ProxySMTP.smtp_DATA)
        try:
            if tx is None or not tx.usable:
                return R_BROKEN
            return await self._deliver(tx, session, envelope, server.encrypted())
        finally:
            self.abandon(session)      # the session back (RSET) after the client's answer

    async def _deliver(self, tx: Transaction, session, envelope, tls: bool) -> str:
        data = envelope.original_content or envelope.content or b""
        data = data.encode("utf-8") if isinstance(data, str) else data
        delivery = tx.delivery
        try:
            data = await self.core.tag(delivery, list(envelope.rcpt_tos), data)
        except Exception as exc:  # noqa: BLE001 - the registry cannot be written: temporary
            return self._failed(tx, RelayResult(False, "registry", None,
                                                f"registry unavailable ({type(exc).__name__})"))
        data = received_line(getattr(session, "host_name", ""), delivery.client,
                             self.core.hostname, delivery.id, delivery.started, tls) + data
        delivery.message_id, delivery.size = message_id_of(data), len(data)
        try:
            code, text = await tx.upstream.data(data)
        except StepFailed as failed:
            return self._failed(tx, RelayResult(False, failed.stage, failed.code, failed.detail),
                                _reply_for(failed))
        delivery.upstream_reply = f"{code} {text}"
        log.info("relayed account=%s client=%s recipients=%d size=%d upstream_reply=%s",
                 delivery.account, delivery.client, len(envelope.rcpt_tos), len(data),
                 one_line(delivery.upstream_reply, 200))
        return f"{code} {one_line(text, 400)}"

    async def handle_RSET(self, server, session, envelope):
        await self.end(server, session)
        return "250 2.0.0 OK"

    async def handle_QUIT(self, server, session, envelope):
        await self.end(server, session)
        return "221 2.0.0 Bye"

    async def end(self, server, session) -> None:
        """The transaction is over: its upstream session back, its records written."""
        tx: Optional[Transaction] = getattr(session, "tx", None)
        session.tx = None
        server.phase = "idle"
        if tx is not None:
            await self.core.finish(tx)

    def abandon(self, session) -> None:
        """The transaction is over without waiting for its tidying up (DATA answered, the
        client gone): the same as ``end``, in the background."""
        tx: Optional[Transaction] = getattr(session, "tx", None)
        session.tx = None
        if tx is not None:
            self.core.background(self.core.finish(tx))
