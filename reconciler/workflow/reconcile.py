"""The reconcile loop: plan, report drift, apply when asked, back off on errors.

Every pass re-reads the manifests and the registry. Transient failures (a lock
held by someone else, a registry or network error) back off exponentially;
terminal ones (invalid manifests, an unresolvable secret, a blocked guard, a
failed connectivity check) are reported once and retried only after the
manifests change. The clock and the sleep are passed in, so the loop's timing
is tested without waiting.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Optional

from .. import metrics
from ..errors import LockedError, ManifestError, MailformError, RegistryError
from ..registry import open_registry
from .checkout import StaleCheckoutError, commit_of, refuse_if_stale
from .inputs import DEFAULT_PATHS, Inputs, load
from .pass_conditions import account_rows, names_of, pending_of, pass_row, record
from .run import ApplyRequest, AutoApprove, Status, Verify, apply, make_plan

MAX_BACKOFF = 600.0


@dataclass
class PassResult:
    result: str             # in_sync | drift | changes | applied | error | blocked | stale
    message: str = ""
    transient: bool = False
    digest: str = ""
    counts: dict = field(default_factory=dict)
    drift: int = 0
    exit_code: int = 0
    conditions: dict = field(default_factory=dict)      # subject -> conditions written

    @property
    def terminal(self) -> bool:
        return not self.transient and self.result in ("error", "blocked", "stale")


@dataclass(frozen=True)
class PassOptions:
    registry_url: str
    auto_apply: bool = False
    force: bool = False
    detailed: bool = False          # exit 2 when changes are pending
    holder: str = "reconcile"


def run_pass(inputs: Inputs, options: PassOptions, verify: Optional[Verify]) -> PassResult:
    """One pass; never raises for expected failures. Writes the accounts' ``Applied`` and
    ``Drifted`` conditions and the pass's own, and the drift / serial / last-success
    metrics."""
    try:
        loaded = load(inputs, options.registry_url)
    except ManifestError as exc:
        return _unplanned(options, PassResult(
            "error", f"{len(exc.problems)} manifest error(s); first: {exc.problems[0]}",
            exit_code=1))
    except MailformError as exc:
        return _unplanned(options, PassResult("error", str(exc).splitlines()[0],
                                              exit_code=exc.exit_code))
    digest = loaded.desired.digest
    try:
        with open_registry(options.registry_url) as registry:
            return _observed(_pass(registry, loaded, options, verify), registry)
    except LockedError as exc:
        return PassResult("error", str(exc), transient=True, digest=digest, exit_code=5)
    except (RegistryError, OSError) as exc:
        return PassResult("error", str(exc), transient=True, digest=digest, exit_code=1)
    except MailformError as exc:
        return PassResult("error", str(exc), digest=digest, exit_code=exc.exit_code)


def _unplanned(options: PassOptions, outcome: PassResult) -> PassResult:
    """A pass that never planned: its condition, when the registry can be reached."""
    try:
        with open_registry(options.registry_url, create=False) as registry:
            record(registry, [pass_row(outcome.result, outcome.message, outcome.digest)])
    except (MailformError, OSError):
        pass
    return outcome


def _observed(outcome: PassResult, registry) -> PassResult:
    metrics.DRIFT.set(outcome.drift)
    metrics.SERIAL.set(registry.meta().serial)
    if outcome.result in ("in_sync", "applied", "changes", "drift"):
        metrics.LAST_SUCCESS.labels(kind="reconcile").set_to_current_time()
    return outcome


def _pass(registry, loaded, options: PassOptions, verify: Optional[Verify]) -> PassResult:
    plan = make_plan(registry, loaded)
    base = PassResult("in_sync", digest=loaded.desired.digest, counts=plan.summary,
                      drift=len(plan.drift))
    applied = not plan.has_changes
    if plan.has_changes and not options.auto_apply:
        base.result = "drift" if plan.drift else "changes"
        base.message = "changes pending; run with --auto-apply or `mailform apply`"
        base.exit_code = 2 if options.detailed else 0
    elif plan.has_changes:
        base = _apply(registry, loaded, options, verify, base)
        applied = base.result == "applied"
    rows = account_rows(plan, names_of(plan, loaded), pending_of(plan, applied),
                        base.result, base.message, base.digest)
    base.conditions = record(registry, [*rows, pass_row(base.result, base.message,
                                                        base.digest)])
    return base


def _apply(registry, loaded, options: PassOptions, verify: Optional[Verify],
           base: PassResult) -> PassResult:
    commit = commit_of(loaded.inputs.paths or DEFAULT_PATHS)
    request = ApplyRequest(
        loaded=loaded, force=options.force, holder=options.holder,
        history={"commit": commit} if commit else {},
        under_lock=lambda reg: refuse_if_stale(loaded.inputs.paths or DEFAULT_PATHS, commit,
                                               reg.history()))
    try:
        outcome = apply(registry, request, AutoApprove(), verify)
    except StaleCheckoutError as exc:
        base.result, base.message, base.exit_code = "stale", str(exc), 3
        return base
    return _applied(base, outcome)


def _applied(base: PassResult, outcome) -> PassResult:
    plan = outcome.plan
    base.counts = plan.summary if plan is not None else base.counts
    if outcome.status is Status.BLOCKED:
        detail = "; ".join(f"{g.name}: {g.detail}" for g in plan.blocked_guards)
        base.result, base.message, base.exit_code = "blocked", \
            f"blocked by safety guards: {detail}", 3
    elif outcome.status is Status.VERIFY_FAILED:
        base.result, base.message, base.exit_code = "error", \
            "connectivity checks failed: " + ", ".join(outcome.failures), 1
    elif outcome.status is Status.APPLIED:
        base.result, base.message = "applied", f"registry serial {outcome.result.serial}"
    return base                         # NO_CHANGES: someone else got there first


@dataclass
class Loop:
    """Runs passes until ``stopped()``; reports each (a terminal failure only once, until
    the manifests or the failure change); backs off exponentially on transient ones."""

    run: Callable[[], PassResult]
    report: Callable[[PassResult], None]
    interval: float
    stopped: Callable[[], bool]
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    failures: int = 0
    parked_on: Optional[tuple] = None

    def forever(self) -> None:
        while not self.stopped():
            self.wait(self.step())

    def step(self) -> float:
        """One pass; the delay before the next."""
        outcome = self.run()
        key = (outcome.result, outcome.message, outcome.digest)
        if outcome.transient:
            self.failures += 1
            self.report(outcome)
        elif outcome.terminal:
            if key != self.parked_on:
                self.report(outcome)
            self.parked_on, self.failures = key, 0
        else:
            self.parked_on, self.failures = None, 0
            self.report(outcome)
        return self.delay()

    def delay(self) -> float:
        if not self.failures:
            return self.interval
        return min(self.interval * (2 ** self.failures), max(MAX_BACKOFF, self.interval))

    def wait(self, delay: float) -> None:
        """Sleep in short steps so that a stop request is seen quickly."""
        deadline = self.clock() + delay
        while not self.stopped() and self.clock() < deadline:
            self.sleep(min(0.2, max(0.0, deadline - self.clock())))
