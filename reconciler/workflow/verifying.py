"""`mailform verify`: which checks run for the desired accounts, and where results go.

Unlike the apply gate (``checks.check_plan``), verify checks the manifests as they are
(every selected account, with `--send-test` if asked) and records results only as the
status of applied accounts whose settings are the ones checked; it never creates a
registry.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Iterable, Mapping, Optional, Sequence

from ..errors import MailformError, RegistryError, SecretError
from ..manifest import Desired, account_secrets
from ..model import EmailAccount
from ..registry import open_registry, registry_exists
from ..verify.accounts import check_items
from ..verify.runner import CheckItem
from .checks import by_account, record_checks


@dataclass
class VerifyRun:
    """The checks to run, and what could not be checked."""

    items: list[CheckItem] = field(default_factory=list)
    secret_errors: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)       # marketing: no servers of theirs


def select(accounts: Mapping[str, EmailAccount], names: Sequence[str]) -> list[EmailAccount]:
    """The accounts named (in order, once each), or all of them sorted by name."""
    if not names:
        return [accounts[name] for name in sorted(accounts)]
    missing = [name for name in names if name not in accounts]
    if missing:
        raise MailformError(f"no account named {', '.join(missing)} in the manifests")
    return [accounts[name] for name in dict.fromkeys(names)]


def gather(desired: Desired, names: Sequence[str], send_test: Optional[str],
           registry_url: Optional[str]) -> VerifyRun:
    """Every check of the selected accounts, secrets read under the runner's policy."""
    run, policy = VerifyRun(), desired.secret_policy(registry_url)
    for account in select(desired.accounts, names):
        if account.spec.smtp is None and account.spec.inbox is None:
            run.skipped.append(account.name)
            continue
        try:
            secrets = account_secrets(account, policy=policy)
        except SecretError as exc:
            run.secret_errors.append(str(exc))
            continue
        run.items += check_items(account, secrets, send_test)
    return run


def tag_test_messages(registry_url: str, items: list[CheckItem],
                      warn: Callable[[str], None]) -> list[CheckItem]:
    """--send-test messages carry a bounce tag recorded in the registry (SECURITY.md), when
    there is one; without it (verify never creates one) or unwritable, they go untagged."""
    if not any(item.send_test_to for item in items) or not registry_exists(registry_url):
        return items
    from ..bounces.tags import new_message_id
    try:
        with open_registry(registry_url) as registry:
            return [replace(item, message_id=new_message_id(
                        registry, item.account, item.endpoint.mail_from or
                        item.endpoint.username or "", [item.send_test_to]))
                    if item.send_test_to else item for item in items]
    except RegistryError as exc:
        warn(f"the test messages are not tagged: {exc}")
        return items


def record(registry_url: str, desired_accounts: Mapping[str, EmailAccount],
           items: Iterable[CheckItem], results: Iterable) -> None:
    """Results become status of matching applied accounts; verify never creates a registry."""
    if registry_exists(registry_url):
        with open_registry(registry_url) as registry:
            record_checks(registry, desired_accounts, by_account(items, results))
