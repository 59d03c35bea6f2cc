"""EmailAccount (desired state) + resolved secrets -> the checks `verify` runs.

The servers themselves come from ``servers.servers_of``: the one derivation
that the inbox scanner and the proxy's relay use too."""

from __future__ import annotations

from typing import Mapping

from ..model import EmailAccount
from ..servers import servers_for
from .runner import CheckItem


def check_items(account: EmailAccount, secrets: Mapping[str, str],
                send_test_to: str | None = None) -> list[CheckItem]:
    """What `verify` runs for one account.  `send_test_to` applies to SMTP only;
    an empty string means the account's own address."""
    items = []
    for role, endpoint in servers_for(account, secrets).items():
        rcpt = None
        if role == "smtp" and send_test_to is not None:
            rcpt = send_test_to or account.spec.email
        items.append(CheckItem(endpoint, account=account.name, send_test_to=rcpt, role=role))
    return items
