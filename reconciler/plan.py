"""The plan contract: what a plan holds, and its JSON and saved-file forms. Pure: no I/O.

A Plan is what every renderer prints and what apply carries out. Its JSON form
is SPEC §4's object. A saved plan file adds, per created, updated or replaced
resource, the payload apply will write (records without secrets, secret
references and their fingerprints), and is authenticated: its ``checksum`` is
an HMAC keyed from the registry's key (the caller passes ``sign``), so an edited
file, or one made against another registry, is refused. Building a plan is
``planner.build_plan``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Callable, Mapping, Optional, Union

from .diff import Change
from .errors import MailformError, StalePlanError

FORMAT_VERSION = "2"
_KEYS = Change._fields       # a change's dict: its fields in order
Signer = Callable[[bytes], str]          # canonical bytes -> "hmac-sha256:…" (the registry's)


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    REPLACE = "replace"
    MOVE = "move"          # renamed (kind Moved, `state mv`), possibly changed as well
    FORGET = "forget"      # let go: stays in the registry, no longer managed (kind Removed)

    @property
    def adds(self) -> bool:
        return self in (Action.CREATE, Action.REPLACE)

    @property
    def destroys(self) -> bool:
        return self in (Action.DELETE, Action.REPLACE)


class Resource(StrEnum):
    """What a resource change is about: the first half of its address."""

    ACCOUNT = "account"
    BOUNCE_POLICY = "bounce_policy"


class Activation(StrEnum):
    ACTIVE = "active"
    PENDING = "pending_activation"


@dataclass(frozen=True)
class SecretEntry:
    """One secret of an account as a plan carries it: where to read it, what it hashed to."""

    ref: Optional[Mapping[str, str]]      # {"env": NAME} or {"file": /absolute/path}
    fingerprint: Optional[str]

    def to_dict(self) -> dict:
        return {"ref": dict(self.ref) if self.ref is not None else None,
                "fingerprint": self.fingerprint}

    @classmethod
    def from_dict(cls, body: Mapping) -> "SecretEntry":
        return cls(body.get("ref"), body.get("fingerprint"))


@dataclass(frozen=True)
class AccountPayload:
    """What apply writes for one created, updated or replaced account."""

    account_type: str                       # smtp | marketing
    record: Mapping[str, Any]               # the registry form: spec without secrets, labels
    secrets: Mapping[str, SecretEntry]      # secret path -> entry
    activation: Optional[Activation] = None  # decided once, for created marketing accounts
    keep_secrets: tuple[str, ...] = ()      # under ignore_changes: the registry's value stays
    owner: Optional[str] = None             # the managing project recorded (None: unchanged)

    def fingerprints(self) -> dict[str, Optional[str]]:
        return {path: entry.fingerprint for path, entry in self.secrets.items()}

    def to_dict(self) -> dict:
        return {"account_type": self.account_type, "record": self.record,
                "secrets": {p: e.to_dict() for p, e in sorted(self.secrets.items())},
                "activation": self.activation, "keep_secrets": list(self.keep_secrets),
                "owner": self.owner}

    @classmethod
    def from_dict(cls, body: Mapping) -> "AccountPayload":
        activation = body.get("activation")
        return cls(body["account_type"], body["record"],
                   {p: SecretEntry.from_dict(e) for p, e in body["secrets"].items()},
                   Activation(activation) if activation else None,
                   tuple(body.get("keep_secrets", ())), body.get("owner"))


@dataclass(frozen=True)
class PolicyPayload:
    """The bounce policy apply writes (defaults filled in)."""

    record: Mapping[str, Any]

    def to_dict(self) -> dict:
        return {"record": self.record}

    @classmethod
    def from_dict(cls, body: Mapping) -> "PolicyPayload":
        return cls(body["record"])


Payload = Union[AccountPayload, PolicyPayload]


@dataclass
class ResourceChange:
    name: str
    action: Action
    changes: list[Change]
    unchanged: int = 0
    resource: Resource = Resource.ACCOUNT
    account_type: Optional[str] = None      # smtp | marketing (created or updated accounts)
    payload: Optional[Payload] = None       # None for a delete
    notes: list[str] = field(default_factory=list)
    verification: Optional[dict] = None     # role -> check result (plan --verify)
    previous: Optional[str] = None          # a moved account's old name

    @property
    def address(self) -> str:
        return f"{self.resource}.{self.name}"

    @property
    def previous_address(self) -> Optional[str]:
        return f"{self.resource}.{self.previous}" if self.previous is not None else None

    @property
    def changes_fields(self) -> bool:
        """Counted as a change: an update, or a move that changes fields too."""
        return self.action is Action.UPDATE or (self.action is Action.MOVE and bool(self.changes))

    @property
    def is_account(self) -> bool:
        return self.resource is Resource.ACCOUNT

    def to_dict(self) -> dict:
        body = {"address": self.address, "name": self.name, "action": str(self.action)}
        if self.previous is not None:
            body["previous_address"] = self.previous_address
        body.update({"changes": [c.to_dict() if c.sensitive else dict(zip(_KEYS, c))
                                 for c in self.changes],         # (inline: millions at scale)
                     "verification": self.verification, "notes": list(self.notes)})
        return body

    def to_json(self, memo: dict) -> str:
        """``to_dict()`` as compact JSON (separators ``,`` and ``:``, non-ASCII kept, keys
        in order), written piece by piece: a change object met before (a plan of creates
        shares most of them, see diff._created) is encoded once per ``memo`` (up to
        MEMO_LIMIT of them), which the caller keeps no longer than the changes it was
        filled from."""
        head = (f'{{"address":{_json(self.address)},"name":{_json(self.name)},'
                f'"action":{_json(str(self.action))},')
        if self.previous is not None:
            head += f'"previous_address":{_json(self.previous_address)},'
        changes = ",".join([memo.get(id(c)) or _change_json(c, memo) for c in self.changes])
        return (f'{head}"changes":[{changes}],"verification":{_json(self.verification)},'
                f'"notes":{_json(list(self.notes))}}}')


MEMO_LIMIT = 4096      # changes kept encoded or rendered (the shared ones are met early)
_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_encode_str = json.encoder.encode_basestring     # the compact encoder's, non-ASCII kept


def _json(value: Any) -> str:
    """``_COMPACT.encode(value)``; the common leaves without the encoder's call."""
    kind = type(value)
    if kind is str:
        return _encode_str(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if kind is int:
        return int.__repr__(value)
    return _COMPACT.encode(value)


def _change_json(change: Change, memo: dict) -> str:
    """One change's ``to_dict()`` (as ResourceChange.to_dict makes it) as compact JSON."""
    if change.sensitive:
        text = _COMPACT.encode(change.to_dict())
    else:
        path, before, after, sensitive = change
        text = (f'{{"path":{_json(path)},"before":{_json(before)},"after":{_json(after)},'
                f'"sensitive":{_json(sensitive)}}}')
    if len(memo) < MEMO_LIMIT:
        memo[id(change)] = text
    return text


@dataclass
class Drift:
    name: str
    changes: list[Change]

    @property
    def address(self) -> str:
        return f"{Resource.ACCOUNT}.{self.name}"

    def to_dict(self) -> dict:
        return {"address": self.address, "changes": [c.to_dict() for c in self.changes]}


@dataclass(frozen=True)
class Guard:
    name: str
    blocked: bool
    detail: str                 # "10 of 12 (83%), limit 30%"
    forced: bool = False        # it would block, and --force passes it

    def to_dict(self) -> dict:
        body = {"name": self.name, "blocked": self.blocked, "detail": self.detail}
        if self.forced:
            body["forced"] = True
        return body

    def passed(self) -> "Guard":
        """This guard as --force leaves it: not blocking, and said so."""
        return Guard(self.name, False, self.detail, True) if self.blocked else self


@dataclass
class Plan:
    lineage: str
    serial: int
    manifest_digest: str
    drift: list[Drift]
    resource_changes: list[ResourceChange]
    guards: list[Guard]
    warnings: list[str] = field(default_factory=list)
    unmanaged: int = 0      # accounts of the registry another project manages, or none

    @property
    def summary(self) -> dict:
        """add, change, destroy; move and forget too when there are any."""
        rcs = self.resource_changes
        out = {"add": sum(rc.action.adds for rc in rcs),
               "change": sum(rc.changes_fields for rc in rcs),
               "destroy": sum(rc.action.destroys for rc in rcs)}
        for action in (Action.MOVE, Action.FORGET):
            count = sum(rc.action is action for rc in rcs)
            if count:
                out[str(action)] = count
        return out

    def forced(self) -> "Plan":
        """The plan as `--force` shows it: every blocking guard passed (``Guard.forced``)."""
        return dataclasses.replace(self, guards=[g.passed() for g in self.guards])

    @property
    def has_changes(self) -> bool:
        return bool(self.resource_changes)

    @property
    def blocked_guards(self) -> list[Guard]:
        return [g for g in self.guards if g.blocked]

    def accounts_to_write(self) -> list[ResourceChange]:
        """Created, updated and replaced accounts (and moved ones that change): what
        verification checks."""
        return [rc for rc in self.resource_changes if rc.is_account and rc.payload is not None]

    def to_dict(self) -> dict:
        """SPEC §4's object (what `plan --format json` prints); the checksum is a plain
        digest of the content, since this form is never applied."""
        body = self._body()
        body["checksum"] = "sha256:" + hashlib.sha256(canonical(body)).hexdigest()
        return body

    def _body(self) -> dict:
        body = {
            "format_version": FORMAT_VERSION,
            "registry": {"lineage": self.lineage, "serial": self.serial},
            "manifest_digest": self.manifest_digest,
            "drift": [d.to_dict() for d in self.drift],
            "resource_changes": [rc.to_dict() for rc in self.resource_changes],
            "summary": self.summary,
            "guards": [g.to_dict() for g in self.guards],
        }
        if self.unmanaged:
            body["unmanaged"] = self.unmanaged
        return body


def canonical(body: Mapping) -> bytes:
    """The bytes a checksum covers: every key but ``checksum``, sorted, compact."""
    content = {k: v for k, v in body.items() if k != "checksum"}
    return json.dumps(content, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")


# --- the saved plan file -----------------------------------------------------------

def to_file_dict(plan: Plan, sign: Signer) -> dict:
    """The saved plan: SPEC §4's object, the payloads, and the registry-keyed HMAC."""
    body = plan._body()
    body["payload"] = {rc.address: rc.payload.to_dict()
                       for rc in plan.resource_changes if rc.payload is not None}
    body["checksum"] = sign(canonical(body))
    return body


def from_file_dict(body: Any, sign: Signer, lineage: Optional[str] = None) -> Plan:
    """A saved plan back into a Plan. Refused: another format, a plan for another
    registry (``lineage``, when given), a file whose HMAC does not match."""
    _check_version(body)
    made_for = body.get("registry", {}).get("lineage") if isinstance(body.get("registry"), Mapping) \
        else None
    if lineage is not None and made_for != lineage:
        raise StalePlanError(f"the plan was made for registry lineage {made_for}, "
                             f"but this registry is {lineage}")
    if not hmac.compare_digest(str(body.get("checksum", "")), sign(canonical(body))):
        raise MailformError("the plan file was edited, or made with another registry's key: "
                            "its signature does not match; run `mailform plan -o FILE` again")
    try:
        return _plan_from(body)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise MailformError(f"the plan file is malformed ({type(exc).__name__}: {exc}); "
                            "run `mailform plan -o FILE` again") from None


def _check_version(body: Any) -> None:
    if not isinstance(body, Mapping) or "format_version" not in body:
        raise MailformError("not a mailform plan file (no format_version)")
    version = body["format_version"]
    if version == "1":
        raise StalePlanError("this plan file has format_version 1, written by an older mailform "
                             "without authentication; it cannot be applied: run "
                             "`mailform plan -o FILE` again")
    if version != FORMAT_VERSION:
        raise MailformError(f"unsupported plan format_version {version!r} "
                            f"(this mailform reads {FORMAT_VERSION})")


def _plan_from(body: Mapping) -> Plan:
    payloads = body["payload"]
    rcs = [_resource_change(rc, payloads.get(rc["address"])) for rc in body["resource_changes"]]
    drift = [Drift(d["address"].split(".", 1)[1], [_change(c) for c in d["changes"]])
             for d in body["drift"]]
    guards = [Guard(g["name"], g["blocked"], g["detail"], bool(g.get("forced")))
              for g in body["guards"]]
    return Plan(body["registry"]["lineage"], body["registry"]["serial"],
                body["manifest_digest"], drift, rcs, guards,
                unmanaged=int(body.get("unmanaged", 0)))


def _resource_change(rc: Mapping, payload: Optional[Mapping]) -> ResourceChange:
    resource = Resource(rc["address"].split(".", 1)[0])
    action = Action(rc["action"])
    loaded = _payload_from(resource, payload)
    if action in _WRITES and loaded is None:
        raise ValueError(f"{rc['address']}: no payload for a {action}")
    previous = rc.get("previous_address")
    return ResourceChange(
        name=rc["name"], action=action, changes=[_change(c) for c in rc["changes"]],
        resource=resource, payload=loaded, notes=list(rc.get("notes", [])),
        verification=rc.get("verification"),
        account_type=loaded.account_type if isinstance(loaded, AccountPayload) else None,
        previous=previous.split(".", 1)[1] if previous else None)


_WRITES = (Action.CREATE, Action.UPDATE, Action.REPLACE)   # always carry a payload


def _payload_from(resource: Resource, body: Optional[Mapping]) -> Optional[Payload]:
    if body is None:
        return None
    if resource is Resource.ACCOUNT:
        return AccountPayload.from_dict(body)
    return PolicyPayload.from_dict(body)


def _change(c: Mapping) -> Change:
    return Change(c["path"], c["before"], c["after"], bool(c.get("sensitive")))
