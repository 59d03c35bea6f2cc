"""Debug settings: try port/security combinations and propose one that works (SPEC §6).

1. Every candidate is probed at once (staggered by a few ms, each bounded by
   the timeout) *without* credentials: connect, TLS, greeting, capabilities
   (a STARTTLS candidate fails when STARTTLS/STLS is not offered; when the
   account authenticates, a candidate that offers no login fails too).
2. The best working candidates, in rank order, are then logged into with the
   account's credentials (SMTP: also MAIL FROM / RCPT TO, quitting before
   DATA) until one succeeds: that one is the proposal.  Stops at the first
   auth_failed, since wrong credentials are wrong on every port.

Rank: the declared port first, then the standard ports; encrypted before
plain; implicit TLS before STARTTLS.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Mapping, Sequence

from ..servers import ServerSettings
from . import results as r
from .check import check

STANDARD = {
    "smtp": ((465, "ssl"), (587, "starttls"), (25, "starttls"), (2525, "starttls"),
             (587, "none"), (25, "none")),
    "imap": ((993, "ssl"), (143, "starttls"), (143, "none")),
    "pop3": ((995, "ssl"), (110, "starttls"), (110, "none")),
}
SECURITY_ORDER = ("ssl", "starttls", "none")
STAGGER = 0.01  # seconds between candidate starts
MAX_LOGINS = 3


@dataclass(frozen=True)
class DebugRow:
    port: int
    security: str
    code: str
    step: str  # "probe" (no credentials) or "login"
    stage: str = ""
    hint: str | None = None
    reply: str | None = None
    cert_reason: str | None = None
    elapsed: float = 0.0
    declared: bool = False
    host: str = ""
    source: str = ""  # where a discovered candidate came from (debug --discover)

    @property
    def ok(self) -> bool:
        return self.code == r.OK

    @classmethod
    def from_result(cls, res: r.CheckResult, step: str, declared: bool,
                    source: str = "") -> "DebugRow":
        reply = " ".join(str(x) for x in (res.reply_code, res.reply_text) if x) or None
        return cls(port=res.port, security=res.security, code=res.code, step=step,
                   stage=res.stage, hint=res.hint, reply=reply, cert_reason=res.cert_reason,
                   elapsed=res.elapsed, declared=declared, host=res.host, source=source)

    def to_dict(self) -> dict:
        return {"port": self.port, "security": self.security, "code": self.code,
                "step": self.step, "stage": self.stage, "hint": self.hint, "reply": self.reply,
                "cert_reason": self.cert_reason, "elapsed": round(self.elapsed, 3),
                "declared": self.declared, "host": self.host, "source": self.source}


@dataclass(frozen=True)
class Proposal:
    port: int
    security: str
    host: str = ""


@dataclass(frozen=True)
class DebugReport:
    kind: str
    host: str
    declared: Proposal
    rows: tuple[DebugRow, ...]
    proposal: Proposal | None
    login: r.CheckResult | None = None  # the check that proved the proposal

    @property
    def ok(self) -> bool:
        return self.proposal is not None

    @property
    def changed(self) -> bool:
        return self.proposal is not None and self.proposal != self.declared

    def edit(self) -> tuple[int | None, str | None]:
        """(port, security[, host]) that `--fix` writes: None for a value the proposal
        keeps; the host only when a discovered candidate changed it."""
        proposal, declared = self.proposal, self.declared
        if proposal is None:
            return None, None
        edit = (None if proposal.port == declared.port else proposal.port,
                None if proposal.security == declared.security else proposal.security)
        return edit + (proposal.host,) if proposal.host != declared.host else edit

    def to_dict(self) -> dict:
        return {
            "kind": self.kind, "host": self.host,
            "declared": {"port": self.declared.port, "security": self.declared.security},
            "rows": [row.to_dict() for row in self.rows],
            "proposal": None if self.proposal is None else
            {"port": self.proposal.port, "security": self.proposal.security,
             "host": self.proposal.host},
            "login": None if self.login is None else self.login.to_dict(),
        }


def candidates(kind: str, port: int, security: str,
               port_map: dict[int, int] | None = None) -> list[tuple[int, str]]:
    """Candidates in rank order (see module doc).  `port_map` replaces standard
    port numbers (tests point 465, 587, ... at a local stack's high ports)."""
    port_map = port_map or {}
    declared = [(port, sec) for sec in SECURITY_ORDER]
    standard = [(port_map.get(p, p), sec) for p, sec in STANDARD[kind]]
    ordered: list[tuple[int, str]] = []
    for cand in declared + standard:
        if cand not in ordered:
            ordered.append(cand)
    # encrypted before plain, otherwise keep the order above (stable sort)
    return sorted(ordered, key=lambda c: c[1] == "none")


def debug(endpoint: ServerSettings, timeout: float = 5.0, *, port_map: dict[int, int] | None = None,
          stagger: float = STAGGER, max_logins: int = MAX_LOGINS,
          account_name: str | None = None, extra: Sequence[tuple] = ()) -> DebugReport:
    """Probe every candidate for `endpoint`, log in on the best, propose the winner.
    ``extra``: discovered (host, port, security, source) candidates, tried after the
    declared host's."""
    cands = [(endpoint.host, port, sec, "") for port, sec in
             candidates(endpoint.kind, endpoint.port, endpoint.security, port_map)]
    cands += [c for c in dict.fromkeys(map(tuple, extra)) if c[:3] not in
              {x[:3] for x in cands}]
    declared = Proposal(endpoint.port, endpoint.security, endpoint.host)
    probes = _probe_all(endpoint, cands, timeout, stagger, account_name)
    rows = [DebugRow.from_result(res, "probe", (res.host, res.port, res.security) ==
                                 (declared.host, declared.port, declared.security), cand[3])
            for res, cand in zip(probes, cands)]
    proposal, login = None, None
    tried = 0
    for index, res in enumerate(probes):
        if not res.ok or tried >= max_logins:
            continue
        tried += 1
        login = _login(replace(endpoint, host=res.host), res.port, res.security, timeout,
                       account_name)
        rows[index] = DebugRow.from_result(login, "login", rows[index].declared,
                                           rows[index].source)
        if login.ok:
            proposal = Proposal(res.port, res.security, res.host)
            break
        if login.code == r.AUTH_FAILED:
            break
    return DebugReport(kind=endpoint.kind, host=endpoint.host, declared=declared,
                       rows=tuple(rows), proposal=proposal, login=login)


def _probe_all(endpoint: ServerSettings, cands: list[tuple], timeout: float,
               stagger: float, account_name: str | None) -> list[r.CheckResult]:
    def run(index: int, host: str, port: int, security: str) -> r.CheckResult:
        time.sleep(index * stagger)
        ep = replace(endpoint, host=host, port=port, security=security)
        return check(ep, timeout, account_name=account_name, mode="probe")

    with ThreadPoolExecutor(max_workers=len(cands), thread_name_prefix="debug") as pool:
        futures = [pool.submit(run, i, host, port, sec)
                   for i, (host, port, sec, _source) in enumerate(cands)]
        return [f.result() for f in futures]


def _login(endpoint: ServerSettings, port: int, security: str, timeout: float,
           account_name: str | None) -> r.CheckResult:
    ep = replace(endpoint, port=port, security=security)
    mode = "envelope" if endpoint.kind == "smtp" else "login"
    return check(ep, timeout, account_name=account_name, mode=mode)


def debug_servers(servers: dict[str, ServerSettings], timeout: float = 5.0, *,
                  port_map: dict[int, int] | None = None, account_name: str | None = None,
                  extra: Mapping[str, Sequence[tuple]] | None = None
                  ) -> dict[str, DebugReport]:
    """`debug` for each of an account's servers (role -> settings) at once; ``extra``:
    role -> discovered candidates (see `debug`)."""
    if not servers:
        return {}
    extra = extra or {}
    with ThreadPoolExecutor(max_workers=len(servers)) as pool:
        futures = {role: pool.submit(debug, settings, timeout, port_map=port_map,
                                     account_name=account_name, extra=extra.get(role, ()))
                   for role, settings in servers.items()}
        return {role: future.result() for role, future in futures.items()}
