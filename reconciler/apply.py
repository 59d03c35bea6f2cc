"""Plan → registry: under the lock, in one transaction, nothing written on failure."""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from typing import Callable, Mapping, Optional

from .errors import LockedError, MailformError, SecretError, StalePlanError
from .plan import Plan, payload_key
from .registry.base import AccountWrite, Registry
from .registry.common import default_actor

PAUSE_ENV = "MAILFORM_TEST_PAUSE_IN_APPLY"   # test-only: seconds to sleep before commit


@dataclass(frozen=True)
class ApplyResult:
    serial: int
    added: int
    changed: int
    destroyed: int

    def summary_line(self) -> str:
        return (f"Apply complete! Resources: {self.added} added, {self.changed} changed, "
                f"{self.destroyed} destroyed.")


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


def secrets_from_payload(plan: Plan, registry: Registry,
                         resolve: Callable[[str, str, dict], str]) -> dict[str, dict[str, str]]:
    """Re-resolve a saved plan's secret references; each must match its recorded fingerprint."""
    out: dict[str, dict[str, str]] = {}
    for name, entry in sorted(plan.payload.items()):
        for path, secret in sorted(entry.get("secrets", {}).items()):
            if path in entry.get("keep_secrets", ()):
                continue            # ignored: the registry's own value is written back
            ref = secret.get("ref") or {}
            try:
                value = resolve(name, path, ref)
            except SecretError as exc:
                raise StalePlanError(f"{exc}; the plan cannot be applied") from None
            if registry.fingerprint(path, value) != secret.get("fingerprint"):
                what = f"env {ref['env']}" if "env" in ref else f"file {ref.get('file')}"
                raise StalePlanError(f"account {name}: spec.{path}: the secret in {what} changed "
                                     "since the plan was made; run `mailform plan` again")
            out.setdefault(name, {})[path] = value
    return out


def _pause() -> None:
    seconds = os.environ.get(PAUSE_ENV)
    if seconds:
        print("mailform: test pause inside the apply transaction", file=sys.stderr, flush=True)
        time.sleep(float(seconds))


def _still_ours(registry: Registry, lock_id: Optional[str]) -> None:
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


def apply_plan(registry: Registry, plan: Plan, secrets: Mapping[str, Mapping[str, str]],
               who: Optional[str] = None, statuses: Optional[Mapping[str, dict]] = None,
               lock_id: Optional[str] = None) -> ApplyResult:
    """Write the plan. The caller holds the registry lock (``lock_id``) and has checked
    freshness."""
    statuses = statuses or {}
    with registry.transaction() as tx:
        _still_ours(registry, lock_id)
        for rc in plan.resource_changes:
            if rc.kind == "bounce_policy":
                tx.put_setting("bounce_policy", plan.payload[payload_key(rc)]["record"])
                continue
            if rc.action in ("delete", "replace"):
                tx.delete_account(rc.name)
            if rc.action == "delete":
                continue
            entry = plan.payload[rc.name]
            values = dict(secrets.get(rc.name, {}))
            if entry.get("keep_secrets"):
                current = registry.secrets(rc.name)
                values.update({p: current[p] for p in entry["keep_secrets"] if p in current})
            fps = {path: s["fingerprint"] for path, s in entry.get("secrets", {}).items()}
            status = dict(statuses.get(rc.name, {}))
            if entry.get("activation"):
                status["activation"] = entry["activation"]
            tx.put_account(AccountWrite(rc.name, entry["type"], entry["record"], values, fps, status))
        summary = plan.summary
        serial = tx.add_history({"actor": who or actor(), "counts": summary,
                                 "changes": [rc.to_dict() for rc in plan.resource_changes]})
        _pause()
    return ApplyResult(serial, summary["add"], summary["change"], summary["destroy"])
