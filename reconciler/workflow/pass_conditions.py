"""The status conditions a reconcile pass writes: ``Applied`` and ``Drifted`` per account
the manifests or the registry name, and the pass itself (``@fleet`` ``ReconcilePass``).

Written on every exit path of a pass that got as far as a plan; a pass that failed
before (invalid manifests, registry unreachable) writes only the pass's condition
when the registry can be reached.
"""
from __future__ import annotations

from typing import Iterable, Optional

from ..errors import MailformError
from ..registry.conditions import FLEET

PASS = "ReconcilePass"
# pass result -> (Applied status for accounts with pending changes, reason)
_PENDING = {"changes": "ChangesPending", "drift": "ChangesPending", "blocked": "BlockedByGuards",
            "error": "ApplyFailed", "stale": "StaleCheckout"}


def camel(text: str) -> str:
    return "".join(part.capitalize() for part in text.replace("-", "_").split("_"))


def account_rows(plan, names: Iterable[str], pending: set[str], result: str, message: str,
                 digest: str) -> list[tuple]:
    """Applied / Drifted rows for every account named."""
    drifted = {d.name: d for d in plan.drift}
    rows = []
    for name in sorted(set(names)):
        if name in pending:
            applied = ("False", _PENDING.get(result, "ChangesPending"), message)
        else:
            applied = ("True", "Applied" if result == "applied" else "InSync", "")
        rows.append((name, "Applied", *applied, digest))
        if name in drifted:
            fields = ", ".join(c.path for c in drifted[name].changes)
            rows.append((name, "Drifted", "True", "LiveEdited",
                         f"live entry differs from the last apply: {fields}", digest))
        else:
            rows.append((name, "Drifted", "False", "NoDrift", "", digest))
    return rows


def pass_row(result: str, message: str, digest: str) -> tuple:
    ok = result in ("in_sync", "applied", "changes", "drift")
    return (FLEET, PASS, "True" if ok else "False", camel(result), message, digest)


def record(registry, rows: list[tuple]) -> dict[str, list[dict]]:
    """Write the rows (best effort: a registry this binary may not write is left alone);
    subject -> the conditions written, as shown in the pass's output."""
    try:
        written = registry.conditions.set_many(rows)
    except MailformError:
        return {}
    out: dict[str, list[dict]] = {}
    for row, cond in zip(rows, written):
        out.setdefault(row[0], []).append(cond.as_dict())
    return out


def names_of(plan, loaded) -> set[str]:
    return set(loaded.desired.accounts) | {rc.name for rc in plan.resource_changes
                                           if rc.is_account}


def pending_of(plan, applied: Optional[bool]) -> set[str]:
    return set() if applied else {rc.name for rc in plan.resource_changes if rc.is_account}
