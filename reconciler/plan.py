"""Plans: (desired, actual) → a Plan value. Pure: no files, no network, no database.

A Plan is what every renderer prints and what apply carries out. Its JSON form
is SPEC §4's object; a saved plan file adds ``payload`` — what apply will write
(records without secrets, secret references and their fingerprints) — and the
checksum covers all of it.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Optional

from .diff import Change, compare, is_ignored, merge_ignored, record_of, secret_presence
from .errors import MailformError
from .model import DEFAULT_BOUNCE_POLICY, EmailAccount

FORMAT_VERSION = "1"
ACTIVATION_CONTACT_LIMIT = 1000
GUARD_RATIO = 0.30
GUARD_MIN_ACCOUNTS = 10
ACTION_ORDER = {"create": 0, "update": 1, "replace": 2, "delete": 3}


@dataclass
class ResourceChange:
    name: str
    action: str                       # create | update | delete | replace
    changes: list[Change]
    unchanged: int = 0
    type: str = ""
    notes: list[str] = field(default_factory=list)
    verification: Optional[dict] = None
    kind: str = "account"             # account | bounce_policy

    @property
    def address(self) -> str:
        return f"{self.kind}.{self.name}"

    def to_dict(self) -> dict:
        return {"address": self.address, "name": self.name, "action": self.action,
                "changes": [c.to_dict() for c in self.changes],
                "verification": self.verification, "notes": list(self.notes)}


@dataclass
class Drift:
    name: str
    changes: list[Change]

    @property
    def address(self) -> str:
        return f"account.{self.name}"

    def to_dict(self) -> dict:
        return {"address": self.address, "changes": [c.to_dict() for c in self.changes]}


@dataclass(frozen=True)
class Guard:
    name: str
    blocked: bool
    detail: str

    def to_dict(self) -> dict:
        return {"name": self.name, "blocked": self.blocked, "detail": self.detail}


@dataclass
class Plan:
    lineage: str
    serial: int
    manifest_digest: str
    drift: list[Drift]
    resource_changes: list[ResourceChange]
    guards: list[Guard]
    payload: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def summary(self) -> dict:
        add = sum(rc.action in ("create", "replace") for rc in self.resource_changes)
        change = sum(rc.action == "update" for rc in self.resource_changes)
        destroy = sum(rc.action in ("delete", "replace") for rc in self.resource_changes)
        return {"add": add, "change": change, "destroy": destroy}

    @property
    def has_changes(self) -> bool:
        return bool(self.resource_changes)

    @property
    def blocked_guards(self) -> list[Guard]:
        return [g for g in self.guards if g.blocked]

    def to_dict(self, with_payload: bool = False) -> dict:
        body: dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "registry": {"lineage": self.lineage, "serial": self.serial},
            "manifest_digest": self.manifest_digest,
            "drift": [d.to_dict() for d in self.drift],
            "resource_changes": [rc.to_dict() for rc in self.resource_changes],
            "summary": self.summary,
            "guards": [g.to_dict() for g in self.guards],
        }
        if with_payload:
            body["payload"] = self.payload
        body["checksum"] = checksum(body)
        return body


def checksum(body: Mapping) -> str:
    canonical = {k: v for k, v in body.items() if k != "checksum"}
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def from_file_dict(body: Mapping) -> Plan:
    """A saved plan file back into a Plan; a damaged or foreign file is an error."""
    if not isinstance(body, Mapping) or body.get("format_version") != FORMAT_VERSION:
        raise MailformError("not a mailform plan file (format_version 1 expected)")
    if body.get("checksum") != checksum(body) or "payload" not in body:
        raise MailformError("the plan file is damaged or was edited: its checksum does not match")
    rcs = [ResourceChange(name=rc["name"], action=rc["action"],
                          changes=[_change(c) for c in rc["changes"]],
                          notes=list(rc.get("notes", [])), verification=rc.get("verification"),
                          kind=rc["address"].split(".", 1)[0])
           for rc in body["resource_changes"]]
    drift = [Drift(d["address"].split(".", 1)[1], [_change(c) for c in d["changes"]])
             for d in body["drift"]]
    guards = [Guard(g["name"], g["blocked"], g["detail"]) for g in body["guards"]]
    for rc in rcs:
        rc.type = body["payload"].get(payload_key(rc), {}).get("type", "")
    return Plan(body["registry"]["lineage"], body["registry"]["serial"], body["manifest_digest"],
                drift, rcs, guards, dict(body["payload"]))


def _change(c: Mapping) -> Change:
    return Change(c["path"], c["before"], c["after"], bool(c.get("sensitive")))


# --- building a plan -------------------------------------------------------------

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


POLICY_NAME = "default"


def payload_key(rc: "ResourceChange") -> str:
    return rc.name if rc.kind == "account" else f"{rc.kind}.{rc.name}"


def _policy_change(inp: PlanInput) -> Optional[tuple[ResourceChange, dict]]:
    if inp.policy is None and inp.actual_policy is None:
        return None                      # nothing declared, nothing stored: the defaults hold
    desired = dict(DEFAULT_BOUNCE_POLICY, **(inp.policy or {}))
    before = (dict(DEFAULT_BOUNCE_POLICY, **inp.actual_policy)
              if inp.actual_policy is not None else None)
    changes, unchanged = compare(before, desired, {}, {})
    if not changes:
        return None
    action = "update" if before is not None else "create"
    rc = ResourceChange(POLICY_NAME, action, changes, unchanged, kind="bounce_policy")
    return rc, {"type": "bounce_policy", "record": desired, "secrets": {}, "activation": None}


def _drift(stored, account: Optional[EmailAccount]) -> list[Change]:
    """Out-of-band edits since the last apply; edits under ignore_changes are not drift."""
    if stored.applied == stored.spec and stored.applied_fingerprints == stored.fingerprints:
        return []          # the common case, decided by plain equality (no flattening)
    ignore = account.spec.lifecycle.ignore_changes if account is not None else ()
    changes, _ = compare(stored.applied, stored.spec, stored.applied_fingerprints,
                         stored.fingerprints, ignore)
    return changes


def _account_change(name: str, account: Optional[EmailAccount], stored, inp: PlanInput
                    ) -> Optional[ResourceChange]:
    fps = dict(inp.fingerprints.get(name, {}))
    if account is None:
        changes, _ = compare(stored.spec, None, stored.fingerprints, {})
        return ResourceChange(name, "delete", changes, type=stored.type)
    record = record_of(account)
    if stored is None or stored.type != account.spec.type:
        before = stored.spec if stored is not None else None
        before_fps = stored.fingerprints if stored is not None else {}
        changes, unchanged = compare(before, record, before_fps, fps)
        action = "create" if stored is None else "replace"
        return ResourceChange(name, action, changes, unchanged, type=account.spec.type)
    if stored.spec == record and stored.fingerprints == fps:
        return None        # equal records cannot differ field by field (no flattening)
    ignore = account.spec.lifecycle.ignore_changes
    changes, unchanged = compare(stored.spec, record, stored.fingerprints, fps, ignore)
    if not changes:
        return None
    return ResourceChange(name, "update", changes, unchanged, type=account.spec.type)


def _activation_note(rc: ResourceChange, inp: PlanInput) -> Optional[str]:
    if rc.action not in ("create", "replace") or rc.type != "marketing":
        return None
    if inp.contact_count > ACTIVATION_CONTACT_LIMIT:
        return (f"pending_activation: the platform holds {inp.contact_count} contacts (more than "
                f"{ACTIVATION_CONTACT_LIMIT}), so a platform operator must activate this account "
                f"(`mailform accounts activate {rc.name}`)")
    return None


def _payload(rc: ResourceChange, account: EmailAccount, stored, inp: PlanInput) -> dict:
    record = record_of(account)
    if rc.action == "update":
        record = merge_ignored(record, stored.spec, account.spec.lifecycle.ignore_changes)
    activation = None
    if account.spec.type == "marketing" and rc.action in ("create", "replace"):
        pending = inp.contact_count > ACTIVATION_CONTACT_LIMIT
        activation = "pending_activation" if pending else "active"
    refs = inp.secret_refs.get(rc.name, {})
    fps = dict(inp.fingerprints.get(rc.name, {}))
    keep = []     # secrets under ignore_changes: the registry's value stays
    if rc.action == "update":
        ignore = account.spec.lifecycle.ignore_changes
        keep = [p for p in secret_presence(account)
                if is_ignored(p, ignore) and p in stored.fingerprints]
        fps.update({p: stored.fingerprints[p] for p in keep})
    secrets = {path: {"ref": refs.get(path), "fingerprint": fps.get(path)}
               for path in secret_presence(account)}
    return {"type": account.spec.type, "record": record, "secrets": secrets,
            "activation": activation, "keep_secrets": keep}


def _guards(rcs: list[ResourceChange], inp: PlanInput) -> list[Guard]:
    protected = []
    rcs = [rc for rc in rcs if rc.kind == "account"]
    for rc in rcs:
        if rc.action not in ("delete", "replace"):
            continue
        stored = inp.actual.get(rc.name)
        account = inp.accounts.get(rc.name)
        flags = [stored is not None and stored.spec.get("lifecycle", {}).get("prevent_destroy"),
                 account is not None and account.spec.lifecycle.prevent_destroy]
        if any(flags):
            protected.append(rc.address)
    total = len(inp.actual)
    deletes = sum(rc.action in ("delete", "replace") for rc in rcs)
    updates = sum(rc.action == "update" for rc in rcs)
    guards = [Guard("prevent_destroy", bool(protected),
                    ("would destroy " + ", ".join(protected)) if protected else "none affected")]
    for name, count in (("delete_threshold", deletes), ("update_threshold", updates)):
        share = count / total if total else 0.0
        blocked = total >= GUARD_MIN_ACCOUNTS and share > GUARD_RATIO
        guards.append(Guard(name, blocked, f"{count} of {total} ({share:.0%})"))
    return guards


def build_plan(inp: PlanInput) -> Plan:
    targets = set(inp.targets) if inp.targets else None
    names = sorted(set(inp.accounts) | set(inp.actual))
    if targets is not None:
        names = [n for n in names if n in targets]
    drift = [Drift(n, ch) for n in names if n in inp.actual
             for ch in [_drift(inp.actual[n], inp.accounts.get(n))] if ch]
    rcs: list[ResourceChange] = []
    payload: dict = {}
    for name in names:
        account, stored = inp.accounts.get(name), inp.actual.get(name)
        rc = _account_change(name, account, stored, inp)
        if rc is None:
            continue
        note = _activation_note(rc, inp)
        if note:
            rc.notes.append(note)
        if account is not None:
            payload[name] = _payload(rc, account, stored, inp)
        rcs.append(rc)
    policy = _policy_change(inp) if targets is None else None
    if policy is not None:
        rcs.append(policy[0])
        payload[payload_key(policy[0])] = policy[1]
    return Plan(inp.lineage, inp.serial, inp.manifest_digest, drift, rcs,
                _guards(rcs, inp), payload)
