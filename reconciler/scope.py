"""Which registry accounts a plan manages: ownership, moves and removals. Pure.

* Ownership: with ``ownership.name`` set, the project manages the accounts recorded
  as its own; without it, every account but those let go (``RELEASED``). Any other
  account is left alone — not deleted, not drift — and counted.
* A manifest that names an account the project does not manage is an error naming
  who does (``import --adopt`` takes it over).
* ``Moved`` (from → to): the registry's account ``from`` is planned under its new name;
  chains (a → b, b → c) are followed. ``Removed``: the account is let go.

All problems are raised together (``ScopeError``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

from .errors import MailformError, NotFoundError
from .policy import RELEASED, manages


class ScopeError(MailformError):
    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("the manifests and the registry disagree about who manages what:\n"
                         + "\n".join(f"  - {p}" for p in problems))


@dataclass
class Scope:
    managed: dict[str, Any] = field(default_factory=dict)   # name (after moves) -> stored
    moved: dict[str, str] = field(default_factory=dict)     # new name -> name in the registry
    forgets: list[str] = field(default_factory=list)        # let go by a Removed document
    unmanaged: dict[str, Any] = field(default_factory=dict)  # another project's, or none's
    total: int = 0                                          # accounts managed before the plan
    problems: list[str] = field(default_factory=list)


def managed_by(owner: Optional[str]) -> str:
    """Who manages an account, in words."""
    if owner == RELEASED:
        return "no project (let go by `state rm` or a Removed document)"
    return f"project '{owner}'" if owner else "no project"


def find_scope(accounts: Mapping[str, Any], actual: Mapping[str, Any],
               ownership: Optional[str], moves: Sequence[tuple[str, str, str]] = (),
               removals: Sequence[tuple[str, str]] = ()) -> Scope:
    scope = Scope()
    for name, stored in actual.items():
        owner = getattr(stored, "owner", None)
        target = scope.managed if manages(ownership, owner) else scope.unmanaged
        target[name] = stored
    scope.total = len(scope.managed)
    for name in sorted(set(accounts) & set(scope.unmanaged)):
        scope.problems.append(not_managed(name, scope.unmanaged[name].owner))
    for doc, old, new in _followed(moves, scope.problems):
        _move(scope, accounts, doc, old, new)
    for doc, name in removals:
        _remove(scope, accounts, doc, name)
    if scope.problems:
        raise ScopeError(scope.problems)
    return scope


def not_managed(name: str, owner: Optional[str]) -> str:
    return (f"account.{name} is managed by {managed_by(owner)}: take it over with "
            f"`mailform import --adopt {name}`, or leave it out of these manifests")


def _followed(moves: Sequence[tuple[str, str, str]], problems: list[str]
              ) -> list[tuple[str, str, str]]:
    """Each move to its final name (a → b and b → c: a → c); the same name moved twice,
    or moves in a circle, are problems."""
    step: dict[str, tuple[str, str]] = {}
    for doc, old, new in moves:
        if old in step:
            problems.append(f"Moved '{doc}': account.{old} is already moved to "
                            f"account.{step[old][1]} by Moved '{step[old][0]}'")
        elif old == new:
            problems.append(f"Moved '{doc}': from and to are both account.{old}")
        else:
            step[old] = (doc, new)
    out = []
    for old, (doc, new) in step.items():
        seen = {old}
        while new in step and new not in seen:
            seen.add(new)
            new = step[new][1]
        if new in seen:
            problems.append(f"Moved '{doc}': the moves from account.{old} go round in a circle")
        else:
            out.append((doc, old, new))
    return out


def _move(scope: Scope, accounts: Mapping[str, Any], doc: str, old: str, new: str) -> None:
    where = f"Moved '{doc}' (account.{old} -> account.{new})"
    if old in scope.unmanaged:
        scope.problems.append(f"{where}: {not_managed(old, scope.unmanaged[old].owner)}")
    elif old not in scope.managed:
        return                       # moved already (or never applied): nothing to do
    elif new in scope.managed or new in scope.unmanaged:
        scope.problems.append(f"{where}: account.{new} already exists in the registry")
    elif new not in accounts:
        scope.problems.append(f"{where}: account.{new} is not declared in the manifests")
    elif old in accounts:
        scope.problems.append(f"{where}: account.{old} is still declared in the manifests; "
                              "remove it (the Moved document renames it)")
    else:
        scope.managed[new] = scope.managed.pop(old)
        scope.moved[new] = old


def _remove(scope: Scope, accounts: Mapping[str, Any], doc: str, name: str) -> None:
    if name in accounts:
        scope.problems.append(f"Removed '{doc}': account.{name} is still declared in the "
                              "manifests; remove its EmailAccount document (or this one)")
    elif name in scope.managed and name not in scope.moved:
        scope.managed.pop(name)
        scope.forgets.append(name)


def importable(accounts: Mapping[str, Any], names: Sequence[str],
               ownership: Optional[str]) -> dict[str, Any]:
    """What `import` writes: the accounts this project manages, or the ones named (each must
    exist and be this project's; `import --adopt` takes one over first)."""
    if not names:
        return {n: a for n, a in accounts.items() if manages(ownership, a.owner)}
    missing = [n for n in names if n not in accounts]
    if missing:
        raise NotFoundError("not in the registry: " + ", ".join(missing))
    foreign = [not_managed(n, accounts[n].owner) for n in names
               if not manages(ownership, accounts[n].owner)]
    if foreign:
        raise MailformError("; ".join(foreign))
    return {n: accounts[n] for n in dict.fromkeys(names)}
