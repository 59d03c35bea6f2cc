"""check(): one endpoint, one verdict, bounded by its timeout."""

from __future__ import annotations

import time
from dataclasses import replace

from . import imap, pop3, smtp
from ..servers import ServerSettings
from . import results as r
from .net import Attempt, ProbeFailure, classify

PROBES = {"smtp": smtp.probe, "imap": imap.probe, "pop3": pop3.probe}
MODES = ("probe", "login", "envelope")
RETRY_PAUSE = 0.2
MIN_RETRY_TIME = 0.5  # a retry needs at least this much of the deadline left
MAX_ATTEMPTS = 2


def check(endpoint: ServerSettings, timeout: float = 10.0, send_test_to: str | None = None,
          account_name: str | None = None, *, mode: str = "login",
          transcript: bool = False, message_id: str | None = None) -> r.CheckResult:
    """Check one server.  Never raises for server behaviour; never exceeds `timeout`
    by more than a few tens of milliseconds.

    mode: "probe" = connect, TLS, greeting, capabilities (no credentials sent);
    "login" = also authenticate (IMAP: SELECT the folder, POP3: STAT) and, when
    `send_test_to` is given (SMTP), send a test message;
    "envelope" (SMTP) = log in, then MAIL FROM / RCPT TO to the account's own
    address and stop before DATA.

    transcript=True keeps the protocol dialogue in `CheckResult.transcript`,
    with everything sent while authenticating redacted. `message_id` (SMTP): the test
    message's Message-ID (a tagged one), instead of a generated one.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}")
    started = time.monotonic()
    deadline = started + timeout
    number = 0
    lines: list[str] | None = [] if transcript else None
    while True:
        number += 1
        if lines:
            lines.append(f"-- attempt {number} --")
        att = Attempt(endpoint, deadline, number, lines)
        failure, extras = _attempt(endpoint, att, mode, send_test_to, account_name,
                                   message_id)
        if failure is None or not _should_retry(failure, att, number):
            break
        time.sleep(min(RETRY_PAUSE, att.remaining()))
    res = _result(endpoint, att, failure, extras, time.monotonic() - started, account_name,
                  number)
    if lines:
        res = replace(res, transcript=tuple(_redact(line, endpoint) for line in lines))
    return res


def _attempt(endpoint, att, mode, send_test_to, account_name, message_id=None):
    try:
        tagged = {"message_id": message_id} if message_id else {}
        extras = PROBES[endpoint.kind](endpoint, att, mode, send_test_to, account_name, **tagged)
        return None, extras
    except Exception as exc:  # noqa: BLE001 - every failure becomes a result code
        return classify(exc, att), {}
    finally:
        att.close()


def _should_retry(failure: ProbeFailure, att: Attempt, number: int) -> bool:
    return failure.transient and number < MAX_ATTEMPTS and att.remaining() >= MIN_RETRY_TIME


def _result(ep: ServerSettings, att: Attempt, failure: ProbeFailure | None, extras: dict,
            elapsed: float, account_name: str | None, attempts: int) -> r.CheckResult:
    if failure is None:
        code, reply_code, reply_text, hint, reason = (
            r.OK, att.reply_code, att.reply_text, None, None)
        if not ep.verify_certificate and ep.security != "none":
            hint = "certificate not verified (verify_certificate: false)"
    else:
        code, reason, hint = failure.code, failure.cert_reason, failure.hint
        reply_code = failure.reply_code if failure.reply_code is not None else None
        reply_text = failure.reply_text or att.reply_text
    return r.CheckResult(
        code=code, stage=att.stage, kind=ep.kind, host=ep.host, port=ep.port,
        security=ep.security, account=account_name, reply_code=reply_code,
        reply_text=_redact(reply_text, ep), elapsed=elapsed,
        tls_version=att.tls.get("tls_version"), cipher=att.tls.get("cipher"),
        cert_subject=att.tls.get("cert_subject"), cert_reason=reason, hint=hint,
        message_id=extras.get("message_id"), attempts=attempts)


def _redact(text: str | None, ep: ServerSettings) -> str | None:
    """A server echoing the password back must not put it into our output."""
    return ep.redact(text)
