"""`state mv`, `state rm` and `import --adopt`: ownership and names changed at the terminal.

A move and a removal are one-change plans applied like any other (``apply.apply_plan``):
under the registry lock, in one transaction, bumping the serial and recorded in the
history. Adopting records the project as the accounts' manager, likewise under the lock
and in the history. ``ownership`` is the project's ``ownership.name`` (None without one).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional

from ..apply import ApplyResult, apply_plan
from ..errors import MailformError, NotFoundError
from ..model import is_valid_name
from ..plan import Action, Plan, ResourceChange
from ..policy import RELEASED, manages
from ..registry.base import Registry
from ..scope import managed_by


def _managed(registry: Registry, name: str, ownership: Optional[str]):
    stored = registry.account(name)
    if stored is None:
        raise NotFoundError(f"no account '{name}' in the registry")
    if not manages(ownership, stored.owner):
        raise MailformError(f"account.{name} is managed by {managed_by(stored.owner)}, not by "
                            "this project: adopt it first (`mailform import --adopt "
                            f"{name}`)")
    return stored


def _apply_one(registry: Registry, change: ResourceChange, holder: str, timeout: float,
               history: dict) -> ApplyResult:
    with registry.lock(holder=holder, timeout=timeout) as held:
        meta = registry.meta()
        plan = Plan(meta.lineage, meta.serial, "", [], [change], [])
        return apply_plan(registry, plan, {}, who=holder, lock_id=held.id, history=history)


def state_move(registry: Registry, old: str, new: str, ownership: Optional[str],
               holder: str, timeout: float = 0) -> ApplyResult:
    """Rename ``old`` to ``new`` in the registry: status, activation, secrets and
    history stay with it. The manifests must then name it ``new``."""
    if not is_valid_name(new):
        raise MailformError(f"'{new}' is not a valid account name (1-63 lower-case letters, "
                            "digits and dashes, starting and ending with a letter or digit)")
    _managed(registry, old, ownership)
    if registry.account(new) is not None:
        raise MailformError(f"cannot move account.{old} to account.{new}: account.{new} "
                            "already exists in the registry")
    change = ResourceChange(new, Action.MOVE, [], previous=old)
    return _apply_one(registry, change, holder, timeout,
                      {"action": "state mv", "account": f"{old} -> {new}"})


def state_remove(registry: Registry, name: str, ownership: Optional[str], holder: str,
                 timeout: float = 0) -> ApplyResult:
    """Let ``name`` go: it stays in the registry as it is, managed by no project."""
    _managed(registry, name, ownership)
    change = ResourceChange(name, Action.FORGET, [])
    return _apply_one(registry, change, holder, timeout, {"action": "state rm", "account": name})


@dataclass(frozen=True)
class Adopted:
    serial: int
    taken: dict[str, Optional[str]]     # account -> who managed it before (None: no project)
    already: list[str]                  # managed by this project already: unchanged


def adopt(registry: Registry, names: Iterable[str], ownership: Optional[str], holder: str,
          timeout: float = 0) -> Adopted:
    """Take accounts over: recorded as this project's (``ownership``), or, without one,
    no longer let go. Every name must be in the registry."""
    names = list(dict.fromkeys(names))
    with registry.lock(holder=holder, timeout=timeout):
        stored = {n: registry.account(n) for n in names}
        missing = [n for n, s in stored.items() if s is None]
        if missing:
            raise NotFoundError("not in the registry, nothing adopted: " + ", ".join(missing))
        taken = {n: s.owner for n, s in stored.items() if not manages(ownership, s.owner)}
        serial = registry.meta().serial
        if taken:
            serial = _record_owner(registry, taken, ownership, holder)
    return Adopted(serial, taken, [n for n in names if n not in taken])


def _record_owner(registry: Registry, taken: dict, ownership: Optional[str], holder: str
                  ) -> int:
    with registry.transaction() as tx:
        for name in taken:
            tx.set_owner(name, ownership)
        return tx.add_history({"actor": holder, "action": "adopt",
                               "account": ", ".join(sorted(taken)), "owner": ownership,
                               "from": {n: o for n, o in taken.items() if o not in (None,
                                                                                     RELEASED)}})
