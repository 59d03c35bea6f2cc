"""What one job does: scan one inbox, re-verify one applied account, one reconcile pass.

Like a controller's reconcile: each job re-reads the registry, does its one thing,
and writes the account's status condition on every exit path (success, failure,
a crash: see ``schedule.recover``). A transient failure (a server that times out
or refuses, a registry error) raises ``Transient`` after writing the condition, so
the queue retries it with backoff; a terminal one (bad credentials, a certificate
that does not verify, invalid manifests) is recorded and the job ends: the
schedule does not start it again until what it observed changes (``observed``).
"""
from __future__ import annotations

import hashlib
import json
import logging
import socket
import ssl
import threading
import time
from datetime import timedelta
from typing import Optional

from .. import metrics
from ..bounces.mailbox import open_mailbox_modules
from ..bounces.scan import ScanReport, scan_stored
from ..errors import MailformError, RegistryError
from ..events.deliver import deliver_pending
from ..registry import open_registry
from ..registry.common import parse_iso, utcnow
from ..servers import servers_of
from ..trust import client_context, trust_file
from ..verify.runner import CheckItem, run_checks
from ..workflow.checks import by_account, check_plan
from ..workflow.reconcile import PassOptions, run_pass
from .config import FleetConfig

SCANNED, VERIFIED = "InboxScanned", "Verified"
TERMINAL_CODES = {"auth_failed", "auth_unsupported", "certificate_invalid",
                  "starttls_unsupported", "sender_rejected", "recipient_rejected", "dns_error"}
_AUTH_WORDS = ("auth", "login", "credential", "password")
# reasons a schedule does not retry while the account stays as it was observed
TERMINAL_REASONS = {"AuthFailed", "AuthUnsupported", "CertificateInvalid",
                    "StarttlsUnsupported", "SenderRejected", "RecipientRejected", "DnsError",
                    "LoginRefused", "NoServers"}
_local = threading.local()
log = logging.getLogger("mailform.fleet")


class Transient(MailformError):
    """Retry this job later (with backoff)."""


def observed(stored) -> str:
    """A short digest of what a check of this account depends on: its live settings."""
    body = json.dumps([stored.spec, stored.fingerprints], sort_keys=True, default=str)
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def camel(code: str) -> str:
    return "".join(part.capitalize() for part in code.split("_"))


def registry_of(config: FleetConfig):
    """This thread's registry connection (opened once, reconnected by the store)."""
    cached = getattr(_local, "registry", None)
    if cached is None or cached[0] != config.registry_url:
        try:
            cached = (config.registry_url, open_registry(config.registry_url, create=False))
        except (MailformError, OSError) as exc:
            raise Transient(f"registry unreachable: {exc}") from None
        _local.registry = cached
    return cached[1]


def warm(config: FleetConfig) -> None:
    """What this thread's first job would otherwise open (a worker warms its job threads
    as it starts): its registry connection, the mailbox clients' modules and, once per
    process, the client TLS context with the trust store."""
    open_mailbox_modules()
    try:
        client_context(True, trust_file())
    except (OSError, ssl.SSLError):
        pass            # e.g. MAILFORM_CA_FILE unreadable: each check says so
    try:
        registry_of(config)
    except Transient:
        pass            # not reachable yet: the first job opens it (and says why not)


def drop_registry() -> None:
    cached = getattr(_local, "registry", None)
    _local.registry = None
    if cached is not None:
        try:
            cached[1].close()
        except Exception:       # closing a broken connection: nothing more to do
            pass


def timed(kind: str, subject: Optional[tuple[str, str]], work, *args) -> str:
    """Run one job body; count its outcome and duration. A registry error is transient;
    any other unexpected error still leaves the account's condition saying so."""
    started, outcome = time.monotonic(), "failed"
    try:
        outcome = work(*args)
        return outcome
    except Transient as exc:
        outcome = "retried"
        drop_registry()
        _retrying(kind, subject, last_error(exc))
        raise
    except RegistryError as exc:
        outcome = "retried"
        drop_registry()
        _retrying(kind, subject, last_error(exc))
        raise Transient(last_error(exc)) from None
    except Exception as exc:
        _crashed(args[0], subject, exc)
        raise
    finally:
        metrics.job_done(kind, outcome, time.monotonic() - started)


def _retrying(kind: str, subject: Optional[tuple[str, str]], error: Optional[str]) -> None:
    """A transient failure, said where operators look (the queue retries the job later,
    with backoff): the job's kind, its account and the error (which never holds a
    secret: scan and check errors are redacted where they are made)."""
    log.warning(f"{kind} job failed, to be retried: {error}",
                extra={"event": "job_retried", "kind": kind,
                       "account": subject[0] if subject else None, "error": error})


def _crashed(config: FleetConfig, subject: Optional[tuple[str, str]], exc: Exception) -> None:
    if subject is None:
        return
    try:
        registry_of(config).conditions.set(*subject, "Unknown", "JobFailed",
                                           f"{type(exc).__name__}: {last_error(exc)}")
    except (Transient, MailformError):
        pass


# --- outbound webhooks (issue 14) ------------------------------------------------------

def deliver(config: FleetConfig) -> str:
    """One delivery pass of new events to the project's webhooks (one at a time in the
    fleet, so each contact's events leave in order)."""
    report = deliver_pending(registry_of(config), config.webhooks)
    return "failed" if report.dead else "ok"


def prune(config: FleetConfig) -> str:
    """Forget events, their deliveries and the proxy's delivery log past the project's
    retention (spec.events.retention_days)."""
    registry = registry_of(config)
    days = config.retention_days
    registry.events.prune(utcnow() - timedelta(days=days))
    registry.delivery_log.prune(days)
    return "ok"


# --- scan ------------------------------------------------------------------------------

def scan(config: FleetConfig, account: str, force: bool = False) -> str:
    registry = registry_of(config)
    stored = registry.account(account)
    if stored is None or not stored.spec.get("inbox"):
        return "skipped"
    if not force and _recent(registry, stored, SCANNED, config.scan_interval):
        return "skipped"
    report = scan_stored(registry, stored, config.timeout)
    _count_scan(report)
    return _scan_condition(registry, account, report, observed(stored))


def parked(cond, token: Optional[str]) -> bool:
    """Failed for good on the settings ``token`` describes: not tried again until they
    change (the schedule does not queue it; a job queued before that result skips)."""
    return token is not None and cond.observed == token and cond.reason in TERMINAL_REASONS


def _recent(registry, stored, type_: str, interval: float) -> bool:
    """Nothing to do now: checked successfully less than half an interval ago (a job
    queued while another ran), or failed for good on these very settings (a job queued
    before that result; it waits for a change, as the schedule does). A recovered job
    (``WorkerLost``) or a failed transient check always runs."""
    cond = registry.conditions.get(stored.name, type_)
    if cond is None or not cond.last_probe:
        return False
    if parked(cond, observed(stored)):
        return True
    if cond.status != "True":
        return False
    return (utcnow() - parse_iso(cond.last_probe)).total_seconds() < interval / 2


def _count_scan(report: ScanReport) -> None:
    for kind, count in report.bounces.items():
        if count:
            metrics.MESSAGES.labels(verdict=kind).inc(count)
    if report.other:
        metrics.MESSAGES.labels(verdict="other").inc(report.other)
    if report.newly_faulty:
        metrics.FAULTY.inc(len(report.newly_faulty))


def _scan_condition(registry, account: str, report: ScanReport, seen: str) -> str:
    if report.ok:
        bounces = sum(report.bounces.values())
        registry.conditions.set(account, SCANNED, "True", "Scanned",
                                f"{report.scanned} message(s), {bounces} bounce(s), "
                                f"{report.remaining} left for the next scan", seen)
        metrics.LAST_SUCCESS.labels(kind="scan").set_to_current_time()
        return "ok"
    terminal = any(word in (report.error or "").lower() for word in _AUTH_WORDS)
    registry.conditions.set(account, SCANNED, "False",
                            "LoginRefused" if terminal else "ScanFailed", report.error or "",
                            seen)
    if terminal:
        return "terminal"
    raise Transient(report.error)


# --- verify ----------------------------------------------------------------------------

def verify(config: FleetConfig, account: str, force: bool = False) -> str:
    """Log in to the account's live servers (the registry's settings and secrets)."""
    registry = registry_of(config)
    stored = registry.account(account)
    if stored is None or stored.released:
        return "skipped"
    if not force and _recent(registry, stored, VERIFIED, config.verify_interval):
        return "skipped"
    seen = observed(stored)
    servers = servers_of(stored.spec, registry.secrets(account), timeout=config.timeout)
    if not servers:
        registry.conditions.set(account, VERIFIED, "False", "NoServers",
                                "the account declares no server to check", seen)
        return "terminal"
    items = [CheckItem(ep, account=account, role=role) for role, ep in sorted(servers.items())]
    checks = by_account(items, run_checks(items, concurrency=2, timeout=config.timeout))
    roles = checks.get(account, {})
    registry.set_status(account, {"verification": roles})
    return _verify_condition(registry, account, roles, seen)


def _verify_condition(registry, account: str, roles: dict, seen: str) -> str:
    for result in roles.values():
        metrics.CHECKS.labels(code=result["code"]).inc()
    failed = {role: r for role, r in sorted(roles.items()) if r["code"] != "ok"}
    if not failed:
        registry.conditions.set(account, VERIFIED, "True", "LoginSucceeded",
                                ", ".join(sorted(roles)) + ": ok", seen)
        metrics.LAST_SUCCESS.labels(kind="verify").set_to_current_time()
        return "ok"
    role, first = next(iter(failed.items()))
    message = "; ".join(f"{r}: {res.get('summary') or res['code']}" for r, res in failed.items())
    registry.conditions.set(account, VERIFIED, "False", camel(first["code"]), message, seen)
    if all(r["code"] in TERMINAL_CODES for r in failed.values()):
        return "terminal"
    raise Transient(message)


# --- reconcile -------------------------------------------------------------------------

def reconcile(config: FleetConfig) -> str:
    """One pass over the manifests the worker was started with; guards and verification
    always on; apply only with ``auto_apply``."""
    if config.reconcile is None:
        return "skipped"
    holder = f"{config.name}@{socket.gethostname()} (worker reconcile)"
    options = PassOptions(config.registry_url, auto_apply=config.auto_apply, holder=holder)
    outcome = run_pass(config.reconcile, options, check_plan)
    log.info("reconcile pass", extra={"event": "reconcile_pass", "result": outcome.result,
                                      "detail": outcome.message, "summary": outcome.counts})
    if outcome.transient:
        raise Transient(outcome.message)
    return "terminal" if outcome.terminal else "ok"


def last_error(exc: BaseException) -> Optional[str]:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
