"""Connectivity checks as plan, apply and verify use them, and where their results go."""
from __future__ import annotations

from typing import Iterable, Mapping

from ..diff import record_of
from ..model import EmailAccount
from ..plan import AccountPayload, Plan
from ..registry.base import Registry
from ..servers import servers_of
from ..verify.results import CheckResult
from ..verify.runner import DEFAULT_CONCURRENCY, CheckItem, run_checks

DEFAULT_TIMEOUT = 10.0
Checks = dict[str, dict[str, dict]]          # account -> role -> stamped result


def _items(plan: Plan, values: Mapping[str, Mapping[str, str]]) -> list[CheckItem]:
    items = []
    for rc in plan.accounts_to_write():
        assert isinstance(rc.payload, AccountPayload)
        servers = servers_of(rc.payload.record, values.get(rc.name, {}))
        items += [CheckItem(settings, account=rc.name, role=role)
                  for role, settings in servers.items()]
    return items


def by_account(items: Iterable[CheckItem], results: Iterable[CheckResult]) -> Checks:
    out: Checks = {}
    for item, result in zip(items, results):
        out.setdefault(item.account or "", {})[item.role] = result.stamped()
    return out


def check_plan(plan: Plan, values: Mapping[str, Mapping[str, str]],
               timeout: float = DEFAULT_TIMEOUT) -> Checks:
    """Check every created, updated or replaced account's servers, as the plan will
    write them: name -> role -> result dict."""
    items = _items(plan, values)
    return by_account(items, run_checks(items, DEFAULT_CONCURRENCY, timeout))


def failures(checks: Checks) -> list[str]:
    """`name (role: code)` for every failed check, in a stable order."""
    return [f"{name} ({role}: {result['code']})" for name, roles in sorted(checks.items())
            for role, result in sorted(roles.items()) if result["code"] != "ok"]


def record_checks(registry: Registry, desired: Mapping[str, EmailAccount],
                  checks: Checks) -> list[str]:
    """`verify`'s results become the status of applied accounts whose settings are the
    ones checked (an account changed since its apply keeps its own status). Returns the
    names written."""
    stored = registry.accounts()
    written = []
    for name, roles in sorted(checks.items()):
        if name in stored and stored[name].spec == record_of(desired[name]):
            registry.set_status(name, {"verification": roles})
            written.append(name)
    return written
