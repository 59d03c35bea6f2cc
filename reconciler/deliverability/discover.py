"""Where an account's servers are, as mail clients find them: RFC 6186/8314 SRV
records, the autoconfig file (Thunderbird's format), and guesses from the MX hosts.
Each candidate says where it came from."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Optional

from .autoconfig import fetch_autoconfig
from .findings import domain_of
from .records import organizational
from .resolver import DnsLookupError, Lookup

# SRV service -> (kind, security); implicit TLS first (RFC 8314 §5.1)
SRV_SERVICES = (
    ("_submissions._tcp", "smtp", "ssl"), ("_submission._tcp", "smtp", "starttls"),
    ("_imaps._tcp", "imap", "ssl"), ("_imap._tcp", "imap", "starttls"),
    ("_pop3s._tcp", "pop3", "ssl"), ("_pop3._tcp", "pop3", "starttls"),
)
GUESS_PREFIX = {"smtp": ("smtp", "mail"), "imap": ("imap", "mail"), "pop3": ("pop3", "pop")}
GUESS_PORTS = {"smtp": ((465, "ssl"), (587, "starttls")), "imap": ((993, "ssl"), (143, "starttls")),
               "pop3": ((995, "ssl"), (110, "starttls"))}


@dataclass(frozen=True)
class Candidate:
    kind: str        # smtp | imap | pop3
    host: str
    port: int
    security: str    # ssl | starttls | none
    source: str      # "SRV _submission._tcp.example.com", "autoconfig https://…", "MX guess"

    def to_dict(self) -> dict:
        return {"kind": self.kind, "host": self.host, "port": self.port,
                "security": self.security, "source": self.source}


def srv_candidates(lookup: Lookup, domain: str) -> list[Candidate]:
    out = []
    for service, kind, security in SRV_SERVICES:
        name = f"{service}.{domain}"
        for _prio, _weight, port, target in lookup.srv(name):
            if target and target not in {".", "@"}:
                out.append(Candidate(kind, target, port, security, f"SRV {name}"))
    return out


def mx_guesses(lookup: Lookup, domain: str) -> list[Candidate]:
    """The MX hosts' provider domain with the usual host names (smtp., imap., mail.),
    and the MX host itself, on the standard ports (implicit TLS, then STARTTLS)."""
    out: list[Candidate] = []
    for _, mx in lookup.mx(domain)[:2]:
        if not mx:
            continue
        base = organizational(mx)
        for kind, prefixes in GUESS_PREFIX.items():
            hosts = [h for h in dict.fromkeys([f"{p}.{base}" for p in prefixes] + [mx])
                     if _resolves(lookup, h)]
            out += [Candidate(kind, host, port, security, f"MX guess ({mx})")
                    for host in hosts for port, security in GUESS_PORTS[kind]]
    return out


def _resolves(lookup: Lookup, host: str) -> bool:
    try:
        return bool(lookup.addresses(host))
    except DnsLookupError:
        return False


def discover(email: str, lookup: Lookup, *, port_map: Optional[Mapping[int, int]] = None,
             timeout: float = 5.0,
             fetch: Callable[..., list[Candidate]] = fetch_autoconfig) -> "Discovery":
    """Every candidate for ``email``'s servers, in order: SRV, autoconfig, MX guesses.
    Lookups that fail are noted in ``problems``; discovery never raises for them."""
    domain = domain_of(email)
    found = Discovery(domain)
    for step in (lambda: srv_candidates(lookup, domain),
                 lambda: fetch(email, lookup, port_map=port_map or {}, timeout=timeout,
                               problems=found.problems),
                 lambda: mx_guesses(lookup, domain)):
        try:
            found.add(step())
        except DnsLookupError as exc:
            found.problems.append(str(exc))
    return found


@dataclass
class Discovery:
    domain: str

    def __post_init__(self) -> None:
        self.candidates: list[Candidate] = []
        self.problems: list[str] = []

    def add(self, candidates: list[Candidate]) -> None:
        seen = {(c.kind, c.host, c.port, c.security) for c in self.candidates}
        for cand in candidates:
            if (cand.kind, cand.host, cand.port, cand.security) not in seen:
                seen.add((cand.kind, cand.host, cand.port, cand.security))
                self.candidates.append(cand)

    def of_kind(self, kind: str) -> list[Candidate]:
        return [c for c in self.candidates if c.kind == kind]

    def to_dict(self) -> dict:
        return {"domain": self.domain, "candidates": [c.to_dict() for c in self.candidates],
                "problems": self.problems}
