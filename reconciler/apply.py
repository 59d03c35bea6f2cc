"""Plan → registry: under the lock, in one transaction, nothing written on failure."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Optional

from .errors import LockedError, MailformError, SecretError, StalePlanError
from .plan import AccountPayload, Action, Plan, PolicyPayload, ResourceChange
from .registry.base import RELEASED, AccountWrite, Registry, Transaction
from .registry.common import default_actor
from .registry.history import INLINE_CHANGES

Secrets = Mapping[str, Mapping[str, str]]      # account -> secret path -> clear value


@dataclass(frozen=True)
class ApplyResult:
    serial: int
    added: int
    changed: int
    destroyed: int
    moved: int = 0
    forgotten: int = 0

    def summary_line(self) -> str:
        extra = "".join(f", {n} {what}" for n, what in ((self.moved, "moved"),
                                                         (self.forgotten, "forgotten")) if n)
        return (f"Apply complete! Resources: {self.added} added, {self.changed} changed, "
                f"{self.destroyed} destroyed{extra}.")


def actor() -> str:
    """Who applies: MAILFORM_ACTOR, else the OS user."""
    return default_actor()


def check_fresh(registry: Registry, plan: Plan) -> None:
    """A saved plan applies only to the registry state it was made from."""
    meta = registry.meta()
    if meta.lineage != plan.lineage:
        raise StalePlanError(f"the plan was made for registry lineage {plan.lineage}, "
                             f"but this registry is {meta.lineage}")
    if meta.serial != plan.serial:
        raise StalePlanError(f"the registry changed since the plan was made (serial {plan.serial} "
                             f"then, {meta.serial} now); run `mailform plan` again")


def secrets_of_saved_plan(plan: Plan, registry: Registry,
                          resolve: Callable[[str, str, Mapping], str]) -> dict[str, dict[str, str]]:
    """Re-resolve a saved plan's secret references; each must match its recorded fingerprint."""
    out: dict[str, dict[str, str]] = {}
    for rc in plan.resource_changes:
        if not isinstance(rc.payload, AccountPayload):
            continue
        for path, entry in sorted(rc.payload.secrets.items()):
            if path in rc.payload.keep_secrets:
                continue            # ignored: the registry's own value is written back
            value = _resolve_entry(rc.name, path, entry.ref or {}, resolve)
            if registry.fingerprint(path, value) != entry.fingerprint:
                ref = entry.ref or {}
                what = f"env {ref['env']}" if "env" in ref else f"file {ref.get('file')}"
                raise StalePlanError(f"account {rc.name}: spec.{path}: the secret in {what} "
                                     "changed since the plan was made; run `mailform plan` again")
            out.setdefault(rc.name, {})[path] = value
    return out


def _resolve_entry(name: str, path: str, ref: Mapping, resolve) -> str:
    try:
        return resolve(name, path, ref)
    except SecretError as exc:
        raise StalePlanError(f"{exc}; the plan cannot be applied") from None


def still_ours(registry: Registry, lock_id: Optional[str]) -> None:
    """A lease can run out while someone reads the plan at the prompt; then another
    writer may have taken the lock over, and this apply must not write."""
    if lock_id is None:
        return
    held = registry.current_lock()
    if held is None or held.id != lock_id:
        if held is not None:
            raise LockedError(held.as_dict())
        raise MailformError("the registry lock's lease ran out before the apply started "
                            "writing; nothing was written — run the apply again")


BATCH = 1000      # account writes sent to the registry at once


def _account_write(registry: Registry, rc: ResourceChange, secrets: Secrets,
                   status: Mapping) -> AccountWrite:
    payload = rc.payload
    assert isinstance(payload, AccountPayload)
    values = dict(secrets.get(rc.name, {}))
    if payload.keep_secrets:
        current = registry.secrets(rc.name)
        values.update({p: current[p] for p in payload.keep_secrets if p in current})
    status = dict(status)
    if payload.activation:
        status["activation"] = str(payload.activation)
    return AccountWrite(rc.name, payload.account_type, dict(payload.record), values,
                        payload.fingerprints(), status, payload.owner)


def _plain_put(rc: ResourceChange) -> bool:
    """A create or an update in place: written in a batch with its neighbours."""
    return (isinstance(rc.payload, AccountPayload) and rc.previous is None
            and rc.action is not Action.FORGET and not rc.action.destroys)


def _write(tx: Transaction, registry: Registry, rc: ResourceChange, secrets: Secrets,
           statuses: Mapping[str, dict]) -> None:
    if isinstance(rc.payload, PolicyPayload):
        tx.put_setting("bounce_policy", dict(rc.payload.record))
        return
    if rc.action is Action.FORGET:
        tx.set_owner(rc.name, RELEASED)       # let go: it stays, as it is
        return
    if rc.previous is not None:
        tx.move_account(rc.previous, rc.name)  # keeps status, activation, secrets, history
    if rc.action.destroys:
        tx.delete_account(rc.name)
    if rc.payload is not None:
        tx.put_account(_account_write(registry, rc, secrets, statuses.get(rc.name, {})))


class _Writer:
    """The plan's writes in order; runs of plain account writes go in batches."""

    def __init__(self, tx: Transaction, registry: Registry, secrets: Secrets,
                 statuses: Mapping[str, dict], on_write) -> None:
        self.tx, self.registry, self.secrets, self.statuses = tx, registry, secrets, statuses
        self.on_write = on_write or (lambda rc: None)
        self.pending: list[ResourceChange] = []
        self.batched = getattr(tx, "put_accounts", None)

    def write(self, rc: ResourceChange) -> None:
        if self.batched is not None and _plain_put(rc):
            self.pending.append(rc)
            if len(self.pending) >= BATCH:
                self.flush()
            return
        self.flush()
        _write(self.tx, self.registry, rc, self.secrets, self.statuses)
        self.on_write(rc)

    def flush(self) -> None:
        if not self.pending:
            return
        self.batched([_account_write(self.registry, rc, self.secrets,
                                     self.statuses.get(rc.name, {})) for rc in self.pending])
        for rc in self.pending:
            self.on_write(rc)
        self.pending = []


def apply_plan(registry: Registry, plan: Plan, secrets: Secrets,
               who: Optional[str] = None, statuses: Optional[Mapping[str, dict]] = None,
               lock_id: Optional[str] = None,
               before_commit: Optional[Callable[[int], None]] = None,
               on_write: Optional[Callable[[ResourceChange], None]] = None,
               history: Optional[Mapping] = None) -> ApplyResult:
    """Write the plan. The caller holds the registry lock (``lock_id``) and has checked
    freshness. ``on_write(change)`` runs after each resource is written and
    ``before_commit(serial)`` after every write, both inside the transaction.
    ``history``: more to record in the history entry (e.g. the command, `state mv`)."""
    statuses = statuses or {}
    with registry.transaction() as tx:
        still_ours(registry, lock_id)
        writer = _Writer(tx, registry, secrets, statuses, on_write)
        for rc in plan.resource_changes:
            writer.write(rc)
        writer.flush()
        summary = plan.summary
        serial = tx.add_history({"actor": who or actor(), "counts": summary,
                                 "changes": _history_changes(plan), **(history or {})})
        if before_commit is not None:
            before_commit(serial)
    return ApplyResult(serial, summary["add"], summary["change"], summary["destroy"],
                       summary.get("move", 0), summary.get("forget", 0))


def _history_changes(plan: Plan) -> list:
    """Each change as the history records it: the plan's own objects when the registry
    serialises them one at a time (``to_dict``), else dicts."""
    changes = plan.resource_changes
    return list(changes) if len(changes) > INLINE_CHANGES else [rc.to_dict() for rc in changes]
