"""Building a plan: (desired, actual) → Plan. Pure: no files, no network, no database.

Every decision a plan carries is made here once: which registry accounts the
project manages, moves and removals (``scope``), the action per account, drift,
the payload apply writes (with the activation of a new marketing account), and
the safety guards.
"""
from __future__ import annotations

import hashlib

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

from .diff import (Change, compare, is_ignored, merge_ignored, record_of, secret_presence,
                   with_defaults)
from .model import EmailAccount
from .model.lazy import peeker, type_of
from .plan import (Action, Activation, AccountPayload, Drift, Guard, Plan, PolicyPayload,
                   Resource, ResourceChange, SecretEntry)
from .policy import ACTIVATION_CONTACT_LIMIT, effective_bounce_policy, needs_activation
from .scope import Scope, find_scope

GUARD_PERCENT = 30.0          # SPEC §4: more than 30% …
GUARD_MIN_ACCOUNTS = 10       # … once the project manages 10 accounts or more
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
    ownership: Optional[str] = None           # the project's ownership.name; None: every account
    moves: Sequence[tuple[str, str, str]] = ()    # (Moved document, from, to)
    removals: Sequence[tuple[str, str]] = ()      # (Removed document, account)
    max_destroy_percent: float = GUARD_PERCENT
    max_change_percent: float = GUARD_PERCENT
    record_digests: Mapping[str, bytes] = field(default_factory=dict)  # see _same_by_digest


def build_plan(inp: PlanInput) -> Plan:
    scope = find_scope(inp.accounts, inp.actual, inp.ownership, inp.moves, inp.removals)
    targets = set(inp.targets) if inp.targets else None
    names = _names(sorted(set(inp.accounts) | set(scope.managed)), scope, targets)
    drift = [Drift(scope.moved.get(n, n), ch) for n in names if n in scope.managed
             for ch in [_drift(scope.managed[n], inp.accounts, n)] if ch]
    look = peeker(inp.accounts)
    rcs = [rc for rc in (_account_change(n, inp, scope, look) for n in names) if rc is not None]
    rcs += [ResourceChange(n, Action.FORGET, []) for n in _names(scope.forgets, scope, targets)]
    rcs.sort(key=lambda rc: rc.name)
    policy = _policy_change(inp) if targets is None else None
    if policy is not None:
        rcs.append(policy)
    return Plan(inp.lineage, inp.serial, inp.manifest_digest, drift, rcs,
                _guards(rcs, inp, scope.total), unmanaged=len(scope.unmanaged))


def _names(names: Iterable[str], scope: Scope, targets: Optional[set[str]]) -> list[str]:
    """``--target``: an account by its name, or a moved one by its old name too."""
    if targets is None:
        return list(names)
    return [n for n in names if n in targets or scope.moved.get(n) in targets]


def _policy_change(inp: PlanInput) -> Optional[ResourceChange]:
    if inp.policy is None and (inp.actual_policy is None or inp.ownership):
        return None   # nothing declared: the defaults hold, or (shared registry) the stored one
    desired = effective_bounce_policy(inp.policy)
    before = (effective_bounce_policy(inp.actual_policy)
              if inp.actual_policy is not None else None)
    changes, unchanged = compare(before, desired, {}, {})
    if not changes:
        return None
    action = Action.UPDATE if before is not None else Action.CREATE
    return ResourceChange(POLICY_NAME, action, changes, unchanged,
                          resource=Resource.BOUNCE_POLICY, payload=PolicyPayload(desired))


def _drift(stored, accounts: Mapping[str, EmailAccount], name: str) -> list[Change]:
    """Out-of-band edits since the last apply; edits under ignore_changes are not drift."""
    if getattr(stored, "unchanged_since_apply", False) or (
            stored.applied == stored.spec
            and stored.applied_fingerprints == stored.fingerprints):
        return []          # the common case, decided by plain equality (no flattening)
    account = accounts.get(name)
    ignore = account.spec.lifecycle.ignore_changes if account is not None else ()
    changes, _ = compare(stored.applied, stored.spec, stored.applied_fingerprints,
                         stored.fingerprints, ignore)
    return changes


def _account_change(name: str, inp: PlanInput, scope: Scope, look: Callable[[str], Any]
                    ) -> Optional[ResourceChange]:
    account, stored = look(name), scope.managed.get(name)     # (look: model.lazy.peeker)
    if account is None:
        changes, _ = compare(stored.spec, None, stored.fingerprints, {})
        return ResourceChange(name, Action.DELETE, changes)
    previous = scope.moved.get(name)
    if previous is None and _same_by_digest(name, account, stored, inp):
        return None
    account = inp.accounts[name]        # (a cache's stub: its model now)
    record = record_of(account)
    action, changes, unchanged = _compare_account(account, record, stored, inp)
    if action is None:
        return None if previous is None else ResourceChange(
            name, Action.MOVE, [], account_type=account.spec.type, previous=previous)
    payload = _payload(action, account, record, stored, inp)
    rc = ResourceChange(name, Action.MOVE if previous and action is Action.UPDATE else action,
                        changes, unchanged, account_type=account.spec.type, payload=payload,
                        previous=previous)
    if payload.activation is Activation.PENDING:
        rc.notes.append(_pending_note(name, inp.contact_count))
    if previous and action is Action.REPLACE:
        rc.notes.append(f"moved from account.{previous}, then replaced: its type changes")
    return rc


def _compare_account(account: EmailAccount, record: dict, stored, inp: PlanInput
                     ) -> tuple[Optional[Action], list[Change], int]:
    fps = dict(inp.fingerprints.get(account.name, {}))
    if stored is None or stored.type != account.spec.type:
        before = stored.spec if stored is not None else None
        before_fps = stored.fingerprints if stored is not None else {}
        changes, unchanged = compare(before, record, before_fps, fps)
        return (Action.CREATE if stored is None else Action.REPLACE), changes, unchanged
    if _same_spec(stored, record) and stored.fingerprints == fps:
        return None, [], 0   # equal records cannot differ field by field (no flattening)
    live = with_defaults(stored.spec)      # written by an older mailform: new fields
    if live is not stored.spec and live == record and stored.fingerprints == fps:
        return None, [], 0
    ignore = account.spec.lifecycle.ignore_changes
    changes, unchanged = compare(live, record, stored.fingerprints, fps, ignore)
    return (Action.UPDATE if changes else None), changes, unchanged


def record_digest(text: str) -> bytes:
    """What ``record_digests`` hold: SHA-256 of a record's canonical JSON."""
    return hashlib.sha256(text.encode()).digest()


def _same_by_digest(name: str, account: Any, stored, inp: PlanInput) -> bool:
    """Unchanged, told without building the record: the digest of its JSON (from a cache,
    ``record_digests``) is that of the registry row's text, or the digest a row read
    without its text kept (registry.rows), and the secrets' fingerprints are equal.
    (``name``: the account's.)"""
    digest = inp.record_digests.get(name)
    if digest is None or stored is None or stored.type != type_of(account):
        return False
    found = getattr(stored, "spec_digest", None)      # a row read without its text
    if found is None:
        text = getattr(stored, "spec_text", None)
        if text is None:
            return False
        found = record_digest(text)
    return found == digest and stored.fingerprints == inp.fingerprints.get(name, {})


def _same_spec(stored, record: dict) -> bool:
    """A registry row that can tell by its text (registry.rows) is asked so: no decoding."""
    equals = getattr(stored, "spec_equals", None)
    return equals(record) if equals is not None else stored.spec == record


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


def _payload(action: Action, account: EmailAccount, record: dict, stored, inp: PlanInput
             ) -> AccountPayload:
    ignore = account.spec.lifecycle.ignore_changes
    keep: tuple[str, ...] = ()
    fps = dict(inp.fingerprints.get(account.name, {}))
    if action is Action.UPDATE:
        record = merge_ignored(record, stored.spec, ignore)
        keep = tuple(p for p in secret_presence(account)
                     if is_ignored(p, ignore) and p in stored.fingerprints)
        fps.update({p: stored.fingerprints[p] for p in keep})
    refs = inp.secret_refs.get(account.name, {})
    # (resolved references name every secret the account declares, in the same order)
    secrets = {path: SecretEntry(refs.get(path), fps.get(path))
               for path in (refs or secret_presence(account))}
    owner = inp.ownership or (stored.owner if stored is not None else None)
    return AccountPayload(account.spec.type, record, secrets,
                          _activation(action, account, inp.contact_count), keep, owner)


def _protected(rc: ResourceChange, inp: PlanInput) -> bool:
    stored, account = inp.actual.get(rc.previous or rc.name), inp.accounts.get(rc.name)
    return bool((stored is not None and stored.spec.get("lifecycle", {}).get("prevent_destroy"))
                or (account is not None and account.spec.lifecycle.prevent_destroy))


def _guards(rcs: list[ResourceChange], inp: PlanInput, total: int) -> list[Guard]:
    """prevent_destroy, and the thresholds: shares of the ``total`` accounts the project
    manages, blocking above their limit once it manages GUARD_MIN_ACCOUNTS or more."""
    accounts = [rc for rc in rcs if rc.is_account]
    protected = [rc.address for rc in accounts if rc.action.destroys and _protected(rc, inp)]
    guards = [Guard("prevent_destroy", bool(protected),
                    ("would destroy " + ", ".join(protected)) if protected else "none affected")]
    counts = (("delete_threshold", sum(rc.action.destroys for rc in accounts),
               inp.max_destroy_percent),
              ("update_threshold", sum(rc.changes_fields for rc in accounts),
               inp.max_change_percent))
    for name, count, limit in counts:
        guards.append(threshold_guard(name, count, total, limit))
    return guards


def threshold_guard(name: str, count: int, total: int, limit: float) -> Guard:
    share = count / total if total else 0.0
    over = count * 100 > limit * total          # exact: "more than", never float noise
    detail = f"{count} of {total} ({share:.0%}), limit {limit:g}%"
    if over and total < GUARD_MIN_ACCOUNTS:
        detail += f" (not applied below {GUARD_MIN_ACCOUNTS} accounts)"
    return Guard(name, over and total >= GUARD_MIN_ACCOUNTS, detail)
