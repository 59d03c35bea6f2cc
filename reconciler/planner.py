"""Building a plan: (desired, actual) → Plan. Pure: no files, no network, no database.

Every decision a plan carries is made here once: the action per account, drift,
the payload apply writes (with the activation of a new marketing account), and
the safety guards.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Optional

from .diff import Change, compare, is_ignored, merge_ignored, record_of, secret_presence
from .model import EmailAccount
from .plan import (Action, Activation, AccountPayload, Drift, Guard, Plan, PolicyPayload,
                   Resource, ResourceChange, SecretEntry)
from .policy import ACTIVATION_CONTACT_LIMIT, effective_bounce_policy, needs_activation

GUARD_RATIO = 0.30
GUARD_MIN_ACCOUNTS = 10
POLICY_NAME = "default"


@dataclass
class PlanInput:
    """Everything a plan is computed from, gathered by the caller."""

    accounts: Mapping[str, EmailAccount]
    actual: Mapping[str, Any]                  # name -> StoredAccount (registry.base)
    lineage: str
    serial: int
    manifest_digest: str = ""
    fingerprints: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    secret_refs: Mapping[str, Mapping[str, dict]] = field(default_factory=dict)
    contact_count: int = 0
    targets: Optional[Iterable[str]] = None
    policy: Optional[Mapping] = None          # declared BouncePolicy spec, None = defaults
    actual_policy: Optional[Mapping] = None   # what the registry holds, None = defaults


def build_plan(inp: PlanInput) -> Plan:
    targets = set(inp.targets) if inp.targets else None
    names = sorted(set(inp.accounts) | set(inp.actual))
    if targets is not None:
        names = [n for n in names if n in targets]
    drift = [Drift(n, ch) for n in names if n in inp.actual
             for ch in [_drift(inp.actual[n], inp.accounts.get(n))] if ch]
    rcs = [rc for rc in (_account_change(n, inp) for n in names) if rc is not None]
    policy = _policy_change(inp) if targets is None else None
    if policy is not None:
        rcs.append(policy)
    return Plan(inp.lineage, inp.serial, inp.manifest_digest, drift, rcs, _guards(rcs, inp))


def _policy_change(inp: PlanInput) -> Optional[ResourceChange]:
    if inp.policy is None and inp.actual_policy is None:
        return None                      # nothing declared, nothing stored: the defaults hold
    desired = effective_bounce_policy(inp.policy)
    before = (effective_bounce_policy(inp.actual_policy)
              if inp.actual_policy is not None else None)
    changes, unchanged = compare(before, desired, {}, {})
    if not changes:
        return None
    action = Action.UPDATE if before is not None else Action.CREATE
    return ResourceChange(POLICY_NAME, action, changes, unchanged,
                          resource=Resource.BOUNCE_POLICY, payload=PolicyPayload(desired))


def _drift(stored, account: Optional[EmailAccount]) -> list[Change]:
    """Out-of-band edits since the last apply; edits under ignore_changes are not drift."""
    if stored.applied == stored.spec and stored.applied_fingerprints == stored.fingerprints:
        return []          # the common case, decided by plain equality (no flattening)
    ignore = account.spec.lifecycle.ignore_changes if account is not None else ()
    changes, _ = compare(stored.applied, stored.spec, stored.applied_fingerprints,
                         stored.fingerprints, ignore)
    return changes


def _account_change(name: str, inp: PlanInput) -> Optional[ResourceChange]:
    account, stored = inp.accounts.get(name), inp.actual.get(name)
    if account is None:
        changes, _ = compare(stored.spec, None, stored.fingerprints, {})
        return ResourceChange(name, Action.DELETE, changes)
    action, changes, unchanged = _compare_account(account, stored, inp)
    if action is None:
        return None
    payload = _payload(action, account, stored, inp)
    rc = ResourceChange(name, action, changes, unchanged, account_type=account.spec.type,
                        payload=payload)
    if payload.activation is Activation.PENDING:
        rc.notes.append(_pending_note(name, inp.contact_count))
    return rc


def _compare_account(account: EmailAccount, stored, inp: PlanInput
                     ) -> tuple[Optional[Action], list[Change], int]:
    fps = dict(inp.fingerprints.get(account.name, {}))
    record = record_of(account)
    if stored is None or stored.type != account.spec.type:
        before = stored.spec if stored is not None else None
        before_fps = stored.fingerprints if stored is not None else {}
        changes, unchanged = compare(before, record, before_fps, fps)
        return (Action.CREATE if stored is None else Action.REPLACE), changes, unchanged
    if stored.spec == record and stored.fingerprints == fps:
        return None, [], 0   # equal records cannot differ field by field (no flattening)
    ignore = account.spec.lifecycle.ignore_changes
    changes, unchanged = compare(stored.spec, record, stored.fingerprints, fps, ignore)
    return (Action.UPDATE if changes else None), changes, unchanged


def _pending_note(name: str, contact_count: int) -> str:
    return (f"pending_activation: the platform holds {contact_count} contacts (more than "
            f"{ACTIVATION_CONTACT_LIMIT}), so a platform operator must activate this account "
            f"(`mailform accounts activate {name}`)")


def _activation(action: Action, account: EmailAccount, contact_count: int
                ) -> Optional[Activation]:
    """A newly created marketing account waits for an operator on a large platform."""
    if account.spec.type != "marketing" or not action.adds:
        return None
    return Activation.PENDING if needs_activation(contact_count) else Activation.ACTIVE


def _payload(action: Action, account: EmailAccount, stored, inp: PlanInput) -> AccountPayload:
    record = record_of(account)
    ignore = account.spec.lifecycle.ignore_changes
    keep: tuple[str, ...] = ()
    fps = dict(inp.fingerprints.get(account.name, {}))
    if action is Action.UPDATE:
        record = merge_ignored(record, stored.spec, ignore)
        keep = tuple(p for p in secret_presence(account)
                     if is_ignored(p, ignore) and p in stored.fingerprints)
        fps.update({p: stored.fingerprints[p] for p in keep})
    refs = inp.secret_refs.get(account.name, {})
    secrets = {path: SecretEntry(refs.get(path), fps.get(path))
               for path in secret_presence(account)}
    return AccountPayload(account.spec.type, record, secrets,
                          _activation(action, account, inp.contact_count), keep)


def _protected(rc: ResourceChange, inp: PlanInput) -> bool:
    stored, account = inp.actual.get(rc.name), inp.accounts.get(rc.name)
    return bool((stored is not None and stored.spec.get("lifecycle", {}).get("prevent_destroy"))
                or (account is not None and account.spec.lifecycle.prevent_destroy))


def _guards(rcs: list[ResourceChange], inp: PlanInput) -> list[Guard]:
    accounts = [rc for rc in rcs if rc.is_account]
    protected = [rc.address for rc in accounts if rc.action.destroys and _protected(rc, inp)]
    guards = [Guard("prevent_destroy", bool(protected),
                    ("would destroy " + ", ".join(protected)) if protected else "none affected")]
    total = len(inp.actual)
    counts = (("delete_threshold", sum(rc.action.destroys for rc in accounts)),
              ("update_threshold", sum(rc.action is Action.UPDATE for rc in accounts)))
    for name, count in counts:
        share = count / total if total else 0.0
        blocked = total >= GUARD_MIN_ACCOUNTS and share > GUARD_RATIO
        guards.append(Guard(name, blocked, f"{count} of {total} ({share:.0%})"))
    return guards
