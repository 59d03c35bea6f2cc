"""Connectivity checks as plan, apply and verify use them, and where their results go."""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, Mapping, Optional

from ..diff import record_of
from ..model import EmailAccount
from ..plan import AccountPayload, Plan
from ..registry.base import Registry

if TYPE_CHECKING:        # the probes are imported when a check runs, not by every plan
    from ..verify.results import CheckResult
    from ..verify.runner import CheckItem
    from .destinations import Destinations

DEFAULT_TIMEOUT = 10.0
Checks = dict[str, dict[str, dict]]          # account -> role -> stamped result


def _items(plan: Plan, values: Mapping[str, Mapping[str, str]],
           destinations: Optional["Destinations"]) -> list["CheckItem"]:
    from ..servers import servers_of
    from ..verify.runner import CheckItem
    items = []
    for rc in plan.accounts_to_write():
        assert isinstance(rc.payload, AccountPayload)
        servers = servers_of(rc.payload.record, values.get(rc.name, {}))
        for role, settings in servers.items():
            trusted = destinations is None or destinations.may_log_in(rc.name, role, settings)
            items.append(CheckItem(settings, account=rc.name, role=role,
                                   mode="login" if trusted else "probe"))
    return items


def by_account(items: Iterable["CheckItem"], results: Iterable["CheckResult"]) -> Checks:
    """Results as stored and shown: per account and role, stamped, with whether the
    account's credentials were sent (False: a connectivity-only check)."""
    out: Checks = {}
    for item, result in zip(items, results):
        stamped = dict(result.stamped(), credentials_sent=item.mode != "probe")
        if item.mode == "probe":
            stamped["summary"] += " (connectivity only: no login)"
        out.setdefault(item.account or "", {})[item.role] = stamped
    return out


def check_plan(plan: Plan, values: Mapping[str, Mapping[str, str]],
               timeout: float = DEFAULT_TIMEOUT,
               destinations: Optional["Destinations"] = None) -> Checks:
    """Check every created, updated or replaced account's servers, as the plan will
    write them: name -> role -> result dict. With ``destinations`` (plan --verify),
    credentials go only where they may; other servers get a connectivity-only check."""
    from ..verify.runner import DEFAULT_CONCURRENCY, run_checks
    items = _items(plan, values, destinations)
    return by_account(items, run_checks(items, DEFAULT_CONCURRENCY, timeout))


def probed_only(roles: Mapping[str, dict]) -> list[str]:
    """The roles of one account checked without logging in."""
    return sorted(role for role, result in roles.items()
                  if not result.get("credentials_sent", True))


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


# --- deliverability (issue 15): warnings in plan --verify and the apply gate ----------

DNS_FAILED = "dns_failed"


def dns_reports(plan: Plan, options) -> list:
    """The DNS checks of every created, updated or replaced account, as it will be
    written (``options``: deliverability.checks.Options)."""
    from ..deliverability.gate import check_specs
    specs = [(rc.name, rc.payload.record) for rc in plan.accounts_to_write()
             if isinstance(rc.payload, AccountPayload)]
    return check_specs(specs, options)


def annotate_dns(plan: Plan, reports: list) -> None:
    """`plan --verify`: each finding as a note on its account's change."""
    by_name = {report.account: report for report in reports}
    for rc in plan.resource_changes:
        report = by_name.get(rc.name)
        if report is not None and rc.is_account:
            rc.notes.extend(f"dns: {f.line()}" for f in report.findings)
            rc.notes.extend(f"dns: {error}" for error in report.errors)


def dns_failures(reports: list, strict: bool) -> list[str]:
    """What fails the plan or the gate: nothing unless ``strict`` (then errors, warnings
    and unanswered lookups)."""
    from ..deliverability.gate import failing
    return failing(reports, strict=True) if strict else []


def with_dns(verify, options, strict: bool, warn):
    """The apply gate: ``verify`` (connectivity), then the DNS checks. Findings go to
    ``warn``; with ``strict``, an account with failing findings gets a failed `dns`
    check, so nothing is applied."""
    from ..deliverability.gate import warnings_of

    def gate(plan: Plan, secrets) -> Checks:
        found = verify(plan, secrets)
        reports = dns_reports(plan, options)
        for line in warnings_of(reports):
            warn(line)
        for name in sorted({r.account for r in reports if dns_failures([r], strict)}):
            found.setdefault(name, {})["dns"] = {
                "code": DNS_FAILED, "credentials_sent": False,
                "summary": "deliverability DNS checks failed (--strict-dns)"}
        return found
    return gate
