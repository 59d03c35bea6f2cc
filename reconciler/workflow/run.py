"""Plan against a registry; apply a plan under the lock with approval, verification and
progress passed in."""
from __future__ import annotations

import functools
import json
import socket
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Callable, Iterable, Mapping, Optional, Protocol

from ..apply import ApplyResult, actor, apply_plan, check_fresh, secrets_of_saved_plan
from ..errors import MailformError, StalePlanError
from ..plan import Plan, Signer, canonical, from_file_dict
from ..diff import record_of
from ..manifest import Desired
from ..model.lazy import AccountStub, peeker
from ..planner import PlanInput, build_plan, record_digest
from ..registry import RegistryMissing, open_registry
from ..registry.base import Registry
from ..registry.common import dumps, utcnow
from ..registry.rows import Match
from ..registry.locking import can_take_over
from .checks import Checks, check_plan, failures, probed_only
from .destinations import Destinations, allowed_hosts
from .inputs import Loaded, resolve_ref, saved_plan_policy

PLAN_SIGNING = "plan file"
ACCOUNT_ADDRESS = "account."
PROBED_NOTE = ("verified without logging in ({roles}): credentials go only to servers this "
               "account has applied, or to hosts allowed with --verify-allow-host / "
               "MAILFORM_VERIFY_ALLOW_HOSTS; `apply` checks the login")


def make_plan(registry: Registry, loaded: Loaded, targets: Optional[Iterable[str]] = None
              ) -> Plan:
    """The plan from the manifests to this registry (read now; its rows from the local
    cache when the registry has not changed since, see workflow.cache). The serial is
    read before the rows: a write that lands in between leaves the plan with the older
    serial, so a saved plan made then is refused as stale, never applied over rows it
    did not see."""
    desired, secrets = loaded.desired, loaded.secrets
    meta = registry.meta()
    fps = fingerprints_of(registry, secrets.values)
    actual = loaded.registry_rows(registry, unchanged_by_digest(desired, fps))
    targets = target_names(targets)
    if targets:
        unknown = sorted(set(targets) - set(desired.accounts) - set(actual))
        if unknown:
            raise MailformError("--target names no account in the manifests or the registry: "
                                + ", ".join(unknown))
    return build_plan(PlanInput(
        accounts=desired.accounts, actual=actual, lineage=meta.lineage, serial=meta.serial,
        manifest_digest=desired.digest, fingerprints=fps, secret_refs=secrets.refs,
        contact_count=registry.contact_count(), targets=targets,
        policy=desired.policy.spec.model_dump() if desired.policy else None,
        actual_policy=registry.get_setting("bounce_policy"),
        record_digests=desired.record_digests, **loaded.plan_options()))


def unchanged_by_digest(desired: Desired, fingerprints: Mapping[str, Mapping[str, str]]
                        ) -> Match:
    """For reading the registry's rows (registry.rows.unread_specs): the digest of a row's
    spec when the planner will find it unchanged by digest (planner._same_by_digest) and so
    never read it — same type, same secrets, the desired record's digest — else None.
    Accounts moved away or removed keep their rows whole. A desired record's digest not
    known yet (no cache) is made here, once, for the planner (``record_digests``).
    Its ``needs_text(name, type, fingerprints, digest)``: whether the planner will read
    the spec of a row kept as the ``digest`` of its text (workflow.cache) — the row of
    an account declared (or moved away) that it will not find unchanged by digest."""
    accounts, digests = desired.accounts, desired.record_digests
    keep = {m.spec.from_ for m in desired.moves} | {r.spec.name for r in desired.removals}
    look, none = peeker(accounts), {}

    def wanted(name: str, type_: str, row_fps: Mapping) -> Optional[bytes]:
        account = look(name)
        if account is None or name in keep or row_fps != fingerprints.get(name, none) \
                or type_ != (account.type if account.__class__ is AccountStub
                             else account.spec.type):
            return None
        want = digests.get(name)
        if want is None:
            want = digests[name] = record_digest(dumps(record_of(accounts[name])))
        return want

    def match(name: str, type_: str, text: str, row_fps: Mapping) -> Optional[bytes]:
        want = wanted(name, type_, row_fps)
        return want if want is not None and record_digest(text) == want else None

    def needs_text(name: str, type_: str, row_fps: Mapping, digest: bytes) -> bool:
        if look(name) is None:
            return name in keep
        return wanted(name, type_, row_fps) != digest

    match.needs_text = needs_text         # type: ignore[attr-defined]
    return match


def fingerprints_of(registry: Registry, values: Mapping[str, Mapping[str, str]]
                    ) -> dict[str, dict[str, str]]:
    """Each account's secrets' fingerprints; accounts that share one mapping of secrets
    (inputs.resolve_all: a handful for 100,000 accounts) share its fingerprints."""
    done: dict[int, dict[str, str]] = {}
    out = {}
    for name, secrets in values.items():
        found = done.get(id(secrets))
        if found is None:
            found = done[id(secrets)] = {path: registry.fingerprint(path, value)
                                         for path, value in secrets.items()}
        out[name] = found
    return out


def target_names(targets: Optional[Iterable[str]]) -> list[str]:
    """``--target`` values as account names: ``NAME`` or the address a plan prints,
    ``account.NAME``."""
    return [t.removeprefix(ACCOUNT_ADDRESS) for t in targets or ()]


def plan_signer(registry: Registry) -> Signer:
    """Saved plans are signed with a key derived from the registry's own key."""
    return lambda data: registry.sign(PLAN_SIGNING, data)


def read_saved_plan(path: str, registry: Registry) -> Plan:
    """A saved plan file, authenticated against this registry."""
    try:
        with open(path, encoding="utf-8") as handle:
            body = json.load(handle, object_pairs_hook=_no_duplicate_keys)
        if isinstance(body, dict):
            canonical(body)     # what a signature cannot cover (a lone surrogate) is refused
    except (OSError, ValueError, RecursionError) as exc:   # UnicodeError is a ValueError
        raise MailformError(f"{path}: cannot read the plan file: {exc}") from None
    lineage = registry.meta().lineage
    if _made_before_rekey(body, lineage, registry.rekeyed_serial()):
        raise StalePlanError("the registry was re-keyed since this plan was made; "
                             "run plan again")
    return from_file_dict(body, plan_signer(registry), lineage)


def _no_duplicate_keys(pairs: list) -> dict:
    """A JSON object whose keys are all different: with a key given twice, a reader that
    keeps the first would see another plan than the one signed (the last)."""
    body = dict(pairs)
    if len(body) != len(pairs):
        seen: set = set()
        twice = next(key for key, _ in pairs if key in seen or seen.add(key))
        raise ValueError(f"the key {twice!r} is given twice")
    return body


def open_for_saved_plan(url: str, path: str) -> Registry:
    """The registry a saved plan is applied to. A saved plan is made against a registry
    that exists, so a missing one is not the plan's: stale (exit 4), and nothing created."""
    try:
        return open_registry(url, create=False)
    except RegistryMissing as exc:
        try:
            with open(path, encoding="utf-8") as handle:
                lineage = (json.load(handle).get("registry") or {}).get("lineage")
        except (OSError, ValueError, AttributeError):
            lineage = None
        made = f" (lineage {lineage})" if lineage else ""
        raise StalePlanError(f"the plan was made for an existing registry{made}, but {exc}; "
                             "nothing was created — check --registry / MAILFORM_REGISTRY"
                             ) from None


def _made_before_rekey(body: object, lineage: str, rekeyed_serial: int) -> bool:
    """A plan for this registry from before its last re-key: signed with the old key,
    so its signature cannot match — stale, and said so (refused either way)."""
    made = body.get("registry") if isinstance(body, dict) else None
    if not isinstance(made, dict) or made.get("lineage") != lineage:
        return False
    serial = made.get("serial")
    return isinstance(serial, int) and serial < rekeyed_serial


def annotate(plan: Plan, checks: Checks) -> None:
    """`plan --verify`: results into each created/changed account's `verification`, and
    a note on each account whose credentials were not sent."""
    for rc in plan.resource_changes:
        if rc.name in checks and rc.is_account:
            rc.verification = checks[rc.name]
            probed = probed_only(rc.verification)
            if probed:
                rc.notes.append(PROBED_NOTE.format(roles=" and ".join(probed)))


def verify_plan(registry: Registry, plan: Plan, secrets: Mapping[str, Mapping[str, str]],
                allow_hosts: Iterable[str] = (), trust_registry: bool = True) -> list[str]:
    """`plan --verify` on manifests nobody has reviewed: credentials only to the servers
    each account has applied, or to the runner's allowed hosts (see destinations.py);
    results and notes into the plan. Returns the failed checks. ``trust_registry`` False
    (a registry named by the project file, which the pull request may have changed): its
    applied servers are not trusted, only the allowed hosts."""
    applied = registry.accounts() if trust_registry else {}
    destinations = Destinations.from_registry(applied, allowed_hosts(allow_hosts),
                                              registry.fingerprint)
    found = check_plan(plan, secrets, destinations=destinations)
    annotate(plan, found)
    return failures(found)


# --- apply ---------------------------------------------------------------------------

class Status(StrEnum):
    APPLIED = "applied"
    NO_CHANGES = "no_changes"
    BLOCKED = "blocked"                  # a safety guard, without force
    NOT_APPROVABLE = "not_approvable"    # nobody can answer the prompt
    VERIFY_FAILED = "verify_failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class Event:
    """Progress, for the caller to print: ``waiting`` (result: the lock's holder, before
    waiting up to the lock timeout), ``planned`` (plan), ``verify_skipped``, ``verified``
    (account, role, result), ``wrote`` (address, action: one resource written, inside the
    transaction), ``writing`` (serial, inside the transaction, before the commit)."""

    kind: str
    plan: Optional[Plan] = None
    account: str = ""
    role: str = ""
    result: Optional[dict] = None
    serial: int = 0
    address: str = ""
    action: str = ""


class Approval(Protocol):
    def ready(self) -> bool:
        """Whether anyone can approve at all (checked before any verification runs)."""

    def confirm(self, plan: Plan) -> bool:
        """Asked once the checks have passed; False cancels the apply."""


class AutoApprove:
    def ready(self) -> bool:
        return True

    def confirm(self, plan: Plan) -> bool:
        return True


Verify = Callable[[Plan, Mapping[str, Mapping[str, str]]], Checks]


@dataclass
class ApplyRequest:
    """What to apply: the loaded manifests, or a saved plan file."""

    loaded: Optional[Loaded] = None
    plan_file: Optional[str] = None
    targets: tuple[str, ...] = ()
    force: bool = False
    lock_timeout: float = 0.0
    holder: str = field(default_factory=actor)
    history: dict = field(default_factory=dict)      # more for the history entry (commit)
    under_lock: Optional[Callable[[Registry], None]] = None   # a check once the lock is held


@dataclass
class ApplyOutcome:
    status: Status
    plan: Optional[Plan] = None
    result: Optional[ApplyResult] = None
    failures: list[str] = field(default_factory=list)


def _ignore(event: Event) -> None:
    pass


def apply(registry: Registry, request: ApplyRequest, approval: Approval,
          verify: Optional[Verify], on_event: Callable[[Event], None] = _ignore) -> ApplyOutcome:
    """Plan (or check a saved plan) and apply it, all under the registry lock: guards,
    approval, verification of every written account, then one transaction."""
    saved = read_saved_plan(request.plan_file, registry) if request.plan_file else None
    _say_if_waiting(registry, request.lock_timeout, on_event)
    with registry.lock(holder=request.holder, timeout=request.lock_timeout) as held:
        if request.under_lock is not None:
            request.under_lock(registry)
        plan, secrets = _plan_under_lock(registry, request, saved)
        on_event(Event("planned", plan=plan))
        early = _before_checks(plan, request, approval)
        if early is not None:
            return early
        statuses, failed = _verify(plan, secrets, verify, on_event)
        if failed:
            return ApplyOutcome(Status.VERIFY_FAILED, plan, failures=failed)
        if not approval.confirm(plan):
            return ApplyOutcome(Status.CANCELLED, plan)
        result = apply_plan(registry, plan, secrets, who=request.holder, statuses=statuses,
                            lock_id=held.id, history=_history(plan, request),
                            before_commit=lambda serial: on_event(Event("writing", serial=serial)),
                            on_write=lambda rc: on_event(Event("wrote", address=rc.address,
                                                               action=str(rc.action))))
    return ApplyOutcome(Status.APPLIED, plan, result)


def _history(plan: Plan, request: ApplyRequest) -> dict:
    """What the history entry records beside the changes: the manifests' digest, and
    whatever the caller adds (a reconcile pass: the checkout's git commit)."""
    return {"manifest_digest": plan.manifest_digest, **request.history}


def _say_if_waiting(registry: Registry, timeout: float, on_event) -> None:
    """Before waiting for a lock someone else holds: who holds it (no wait, no event)."""
    if timeout <= 0:
        return
    held = registry.current_lock()
    if held is not None and not can_take_over(held, utcnow(), socket.gethostname()):
        on_event(Event("waiting", result=held.as_dict()))


def _plan_under_lock(registry: Registry, request: ApplyRequest, saved: Optional[Plan]):
    if saved is not None:
        check_fresh(registry, saved)
        policy = saved_plan_policy(registry.url)
        return saved, secrets_of_saved_plan(saved, registry,
                                            functools.partial(resolve_ref, policy=policy))
    assert request.loaded is not None
    plan = make_plan(registry, request.loaded, request.targets)
    return plan, request.loaded.secrets.values


def _before_checks(plan: Plan, request: ApplyRequest, approval: Approval
                   ) -> Optional[ApplyOutcome]:
    if plan.blocked_guards and not request.force:
        return ApplyOutcome(Status.BLOCKED, plan)
    if not plan.has_changes:
        return ApplyOutcome(Status.NO_CHANGES, plan)
    if not approval.ready():
        return ApplyOutcome(Status.NOT_APPROVABLE, plan)
    return None


def _verify(plan: Plan, secrets, verify: Optional[Verify], on_event
            ) -> tuple[dict[str, dict], list[str]]:
    """Statuses to store with the accounts, and the failed checks (none: go ahead)."""
    if verify is None:
        on_event(Event("verify_skipped", plan=plan))
        return {}, []
    checks = verify(plan, secrets)
    for name, roles in sorted(checks.items()):
        for role, result in sorted(roles.items()):
            on_event(Event("verified", plan=plan, account=name, role=role, result=result))
    return {name: {"verification": roles} for name, roles in checks.items()}, failures(checks)
