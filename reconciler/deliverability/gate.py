"""Deliverability checks as verify, plan --verify and the apply gate use them."""
from __future__ import annotations

from typing import Iterable, Mapping

from .checks import Facts, Options, check_accounts
from .findings import AccountReport


def facts_of(named_specs: Iterable[tuple[str, Mapping]]) -> list[Facts]:
    """Facts of (name, spec mapping) pairs: a model's ``spec.model_dump()`` or a
    registry/plan record."""
    return [Facts.from_spec(name, spec) for name, spec in named_specs]


def check_specs(named_specs: Iterable[tuple[str, Mapping]], options: Options
                ) -> list[AccountReport]:
    return check_accounts(facts_of(named_specs), options)


def failing(reports: Iterable[AccountReport], strict: bool = False) -> list[str]:
    """`name (dns: code)` for each finding that fails (errors; with ``strict``,
    warnings too) and each lookup no DNS server answered."""
    out = []
    for report in reports:
        out += [f"{report.account} (dns: {f.code})" for f in report.failing(strict)]
        out += [f"{report.account} (dns: lookup failed)" for _ in report.errors[:1]]
    return out


def warnings_of(reports: Iterable[AccountReport]) -> list[str]:
    """One line per finding and lookup error, for plan and apply to show."""
    lines = []
    for report in reports:
        lines += [f"account.{report.account}: {f.line()}" for f in report.findings]
        lines += [f"account.{report.account}: {error}" for error in report.errors]
    return lines
