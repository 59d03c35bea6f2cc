"""EmailAccount (desired state) + resolved secrets -> the endpoints to check."""

from __future__ import annotations

from typing import Mapping

from ..model import EmailAccount
from .results import Endpoint
from .runner import CheckItem


def endpoints_from_spec(spec: Mapping, secrets: Mapping[str, str]) -> dict[str, Endpoint]:
    """role ("smtp" / "inbox") -> Endpoint, from an account's spec as plain data (the
    manifest's, or the registry record apply wrote)."""
    out = {}
    smtp, inbox, email = spec.get("smtp"), spec.get("inbox"), spec.get("email")
    if smtp:
        out["smtp"] = Endpoint(
            kind="smtp", host=smtp["host"], port=smtp["port"], security=smtp["security"],
            authenticate=smtp.get("authenticate", True), username=smtp.get("username") or email,
            password=secrets.get("smtp.password"),
            verify_certificate=smtp.get("verify_certificate", True), mail_from=email)
    if inbox:
        out["inbox"] = Endpoint(
            kind=inbox["protocol"], host=inbox["host"], port=inbox["port"],
            security=inbox["security"], authenticate=True,
            username=inbox.get("username") or email,
            password=secrets.get("inbox.password") or secrets.get("smtp.password"),
            verify_certificate=inbox.get("verify_certificate", True),
            folder=inbox.get("folder") or "INBOX")
    return out


def endpoints_for(account: EmailAccount, secrets: Mapping[str, str]) -> dict[str, Endpoint]:
    """role ("smtp" / "inbox") -> Endpoint, for the servers the account declares."""
    return endpoints_from_spec(account.spec.model_dump(), secrets)


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
