"""EmailAccount (desired state) + resolved secrets -> the endpoints to check."""

from __future__ import annotations

from typing import Mapping

from ..model import EmailAccount
from .results import Endpoint
from .runner import CheckItem


def smtp_endpoint(account: EmailAccount, secrets: Mapping[str, str]) -> Endpoint | None:
    smtp = account.spec.smtp
    if smtp is None:
        return None
    return Endpoint(
        kind="smtp", host=smtp.host, port=smtp.port, security=smtp.security,
        authenticate=smtp.authenticate, username=smtp.username or account.spec.email,
        password=secrets.get("smtp.password"), verify_certificate=smtp.verify_certificate,
        mail_from=account.spec.email)


def inbox_endpoint(account: EmailAccount, secrets: Mapping[str, str]) -> Endpoint | None:
    inbox = account.spec.inbox
    if inbox is None:
        return None
    return Endpoint(
        kind=inbox.protocol, host=inbox.host, port=inbox.port, security=inbox.security,
        authenticate=True, username=inbox.username or account.spec.email,
        password=secrets.get("inbox.password") or secrets.get("smtp.password"),
        verify_certificate=inbox.verify_certificate, folder=inbox.folder or "INBOX")


def endpoints_for(account: EmailAccount, secrets: Mapping[str, str]) -> dict[str, Endpoint]:
    """role ("smtp" / "inbox") -> Endpoint, for the servers the account declares."""
    out = {}
    smtp = smtp_endpoint(account, secrets)
    if smtp is not None:
        out["smtp"] = smtp
    inbox = inbox_endpoint(account, secrets)
    if inbox is not None:
        out["inbox"] = inbox
    return out


def check_items(account: EmailAccount, secrets: Mapping[str, str],
                send_test_to: str | None = None) -> list[CheckItem]:
    """What `verify` runs for one account.  `send_test_to` applies to SMTP only;
    an empty string means the account's own address."""
    items = []
    for role, endpoint in endpoints_for(account, secrets).items():
        rcpt = None
        if role == "smtp" and send_test_to is not None:
            rcpt = send_test_to or account.spec.email
        items.append(CheckItem(endpoint, account=account.name, send_test_to=rcpt, role=role))
    return items
