"""SPF (RFC 7208): find, parse and validate a domain's record, count its DNS lookups,
and evaluate it for an address (check_host, without macros beyond %{d} %{i} %{s}
%{l} %{o})."""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from .resolver import Lookup

MAX_LOOKUPS = 10
MECHANISMS = {"all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists"}
LOOKUP_TERMS = {"include", "a", "mx", "ptr", "exists", "redirect"}
_MODIFIER = re.compile(r"^([a-z][a-z0-9_.-]*)=(.*)$", re.I)
_MECHANISM = re.compile(r"^([+?~-]?)([a-z0-9]+)(?::([^/]+))?(/\d+)?(//\d+)?$", re.I)
RESULTS = {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}


class SpfError(ValueError):
    """A record that is not valid SPF (permerror)."""


@dataclass(frozen=True)
class Term:
    qualifier: str
    name: str
    value: str = ""
    cidr4: int | None = None
    cidr6: int | None = None


@dataclass
class Record:
    text: str
    mechanisms: list[Term] = field(default_factory=list)
    redirect: str | None = None


def records_of(lookup: Lookup, domain: str) -> list[str]:
    return [t for t in lookup.txt(domain) if t.lower() == "v=spf1" or
            t.lower().startswith("v=spf1 ")]


def parse(text: str) -> Record:
    record = Record(text)
    for word in text.split()[1:]:
        modifier = _MODIFIER.match(word)
        if modifier and ":" not in modifier.group(1):
            _modifier(record, modifier.group(1).lower(), modifier.group(2))
            continue
        record.mechanisms.append(_term(word))
    return record


def _modifier(record: Record, name: str, value: str) -> None:
    if name == "redirect":
        if record.redirect is not None or not value:
            raise SpfError("more than one redirect= modifier, or an empty one")
        record.redirect = value


def _term(word: str) -> Term:
    match = _MECHANISM.match(word)
    if not match or match.group(2).lower() not in MECHANISMS:
        raise SpfError(f"unknown mechanism '{word}'")
    qualifier, name, value, c4, c6 = match.groups()
    name = name.lower()
    if name in {"include", "exists", "ip4", "ip6"} and not value:
        raise SpfError(f"'{word}' needs a value")
    if name in {"ip4", "ip6"}:
        _check_network(name, value, c4)
    return Term(qualifier or "+", name, value or "",
                int(c4[1:]) if c4 else None, int(c6[2:]) if c6 else None)


def _check_network(name: str, value: str, cidr: str | None) -> None:
    try:
        network = ipaddress.ip_network(value + (cidr or ""), strict=False)
    except ValueError:
        raise SpfError(f"'{name}:{value}{cidr or ''}' is not an address") from None
    if (network.version == 4) != (name == "ip4"):
        raise SpfError(f"'{name}:{value}' holds an IPv{network.version} address")


@dataclass
class Walk:
    """The record tree below one domain: lookups counted, includes seen, problems."""

    lookups: int = 0
    includes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def walk(lookup: Lookup, domain: str, state: Walk | None = None, depth: int = 0) -> Walk:
    """Count the DNS-querying terms of ``domain``'s record and of every record it
    includes or redirects to (RFC 7208 §4.6.4), and collect the includes."""
    state = state or Walk()
    if depth > MAX_LOOKUPS:
        state.problems.append("include loop")
        return state
    texts = records_of(lookup, domain)
    if len(texts) != 1:
        if depth:
            state.problems.append(f"{domain}: {len(texts)} SPF records")
        return state
    try:
        record = parse(texts[0])
    except SpfError as exc:
        state.problems.append(f"{domain}: {exc}")
        return state
    for term in record.mechanisms:
        _walk_term(lookup, domain, term, state, depth)
    if record.redirect:
        state.lookups += 1
        walk(lookup, expand(record.redirect, domain), state, depth + 1)
    return state


def _walk_term(lookup: Lookup, domain: str, term: Term, state: Walk, depth: int) -> None:
    if term.name not in LOOKUP_TERMS:
        return
    state.lookups += 1
    if term.name == "include":
        target = expand(term.value, domain).lower()
        state.includes.append(target)
        walk(lookup, target, state, depth + 1)


def expand(spec: str, domain: str, ip: str = "", sender: str = "") -> str:
    """The few macros a static check can expand; others stay (and match nothing)."""
    local, _, sender_domain = (sender or f"postmaster@{domain}").rpartition("@")
    for macro, value in (("%{d}", domain), ("%{i}", ip), ("%{s}", sender),
                         ("%{l}", local), ("%{o}", sender_domain)):
        spec = spec.replace(macro, value)
    return spec.rstrip(".")


def check_host(lookup: Lookup, ip: str, domain: str, sender: str = "", depth: int = 0) -> str:
    """pass / fail / softfail / neutral / none / permerror for ``ip`` sending as ``domain``."""
    if depth > MAX_LOOKUPS:
        return "permerror"
    texts = records_of(lookup, domain)
    if len(texts) != 1:
        return "none" if not texts else "permerror"
    try:
        record = parse(texts[0])
    except SpfError:
        return "permerror"
    for term in record.mechanisms:
        if _matches(lookup, term, ip, domain, sender, depth):
            return RESULTS[term.qualifier]
    if record.redirect:
        result = check_host(lookup, ip, expand(record.redirect, domain, ip, sender), sender,
                            depth + 1)
        return "permerror" if result == "none" else result
    return "neutral"


def _matches(lookup: Lookup, term: Term, ip: str, domain: str, sender: str,
             depth: int) -> bool:
    target = expand(term.value, domain, ip, sender) if term.value else domain
    if "%" in target:
        return False
    if term.name == "all":
        return True
    if term.name in {"ip4", "ip6"}:
        suffix = f"/{term.cidr4}" if term.cidr4 is not None else ""
        return _in_networks(ip, [term.value + suffix])
    if term.name == "include":
        return check_host(lookup, ip, target, sender, depth + 1) == "pass"
    if term.name == "a":
        return _in_networks(ip, lookup.addresses(target), term.cidr4, term.cidr6)
    if term.name == "mx":
        hosts = [host for _, host in lookup.mx(target)[:10] if host]
        return any(_in_networks(ip, lookup.addresses(h), term.cidr4, term.cidr6) for h in hosts)
    if term.name == "exists":
        return bool(lookup.query(target, "A"))
    return False  # ptr: deprecated (RFC 7208 §5.5), never relied on here


def _in_networks(ip: str, addresses: list[str], cidr4: int | None = None,
                 cidr6: int | None = None) -> bool:
    address = ipaddress.ip_address(ip)
    for text in addresses:
        base = ipaddress.ip_address(text.split("/")[0])
        if base.version != address.version:
            continue
        prefix = cidr4 if base.version == 4 else cidr6
        network = ipaddress.ip_network(f"{base}/{prefix}" if prefix is not None else text,
                                       strict=False)
        if address in network:
            return True
    return False
