"""Connectivity checks as plan and apply use them: created and changed accounts only."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Mapping, Optional

import click

from ..plan import Plan
from ..verify.accounts import endpoints_from_spec
from ..verify.runner import DEFAULT_CONCURRENCY, CheckItem, run_checks

DEFAULT_TIMEOUT = 10.0


def endpoints_of(name: str, record: Mapping, secrets: Mapping[str, str]) -> list[CheckItem]:
    """The servers of one account record (registry form): SMTP and, if declared, the inbox."""
    return [CheckItem(endpoint, account=name, role=role)
            for role, endpoint in endpoints_from_spec(record, secrets).items()]


def stamp(result) -> dict:
    body = result.to_dict()
    body["time"] = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    body["summary"] = result.summary()
    return body


def check_plan(plan: Plan, values: Mapping[str, Mapping[str, str]],
               timeout: float = DEFAULT_TIMEOUT) -> dict[str, dict[str, dict]]:
    """Check every created, updated or replaced account: name -> role -> result dict."""
    items = []
    for rc in plan.resource_changes:
        if rc.action == "delete" or rc.kind != "account":
            continue
        entry = plan.payload.get(rc.name, {})
        items += endpoints_of(rc.name, entry.get("record", {}), values.get(rc.name, {}))
    results = run_checks(items, DEFAULT_CONCURRENCY, timeout)
    out: dict[str, dict[str, dict]] = {}
    for item, result in zip(items, results):
        out.setdefault(item.account, {})[item.role] = stamp(result)
    return out


def annotate_plan(plan: Plan, values: Mapping[str, Mapping[str, str]]) -> None:
    """`plan --verify`: results into each created/changed account's `verification`."""
    by_account = check_plan(plan, values)
    for rc in plan.resource_changes:
        if rc.name in by_account:
            rc.verification = by_account[rc.name]


def failures(by_account: Mapping[str, Mapping[str, dict]]) -> list[str]:
    """`name (role: code)` for every failed check, in a stable order."""
    return [f"{name} ({role}: {result['code']})" for name, roles in sorted(by_account.items())
            for role, result in sorted(roles.items()) if result["code"] != "ok"]


def verify_changed(plan: Plan, values) -> Optional[dict[str, dict]]:
    """Before apply: statuses to store, or None when an account failed its checks."""
    by_account = check_plan(plan, values)
    for name, roles in sorted(by_account.items()):
        for role, result in sorted(roles.items()):
            mark = "" if result["code"] == "ok" else "FAILED "
            click.echo(f"verify account.{name} {role}: {mark}{result['summary']}", err=True)
    failed = failures(by_account)
    if failed:
        click.echo(f"Error: connectivity checks failed for {', '.join(failed)}; nothing was "
                   "applied. Fix the settings (try `mailform debug NAME`) or pass --skip-verify.",
                   err=True)
        return None
    return {name: {"verification": roles} for name, roles in by_account.items()}
