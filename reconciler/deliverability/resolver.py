"""The one resolver every DNS lookup of mailform goes through (checks and discovery).

``--dns-server HOST[:PORT]`` or MAILFORM_DNS_SERVER picks the server ("[::1]:53" for
IPv6); otherwise the system's resolvers.  Answers are cached per `Lookup` (SPF walks
ask for the same names again).  A name that does not exist, or has no record of the
type asked, is an empty answer; a server that does not answer is a `DnsLookupError`.
"""
from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
from typing import Iterator, Optional

import dns.exception
import dns.resolver
import dns.reversename

from ..errors import MailformError

DNS_SERVER_ENV = "MAILFORM_DNS_SERVER"
DEFAULT_LIFETIME = 5.0


class DnsLookupError(MailformError):
    """No DNS server answered (a timeout, every server refused or failed)."""


def parse_server(text: str) -> tuple[str, int]:
    """``HOST[:PORT]`` -> (IP address, port); HOST may be a name, an IPv4 address or an
    IPv6 address in brackets."""
    text = text.strip()
    host, port = text, "53"
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else "53"
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise MailformError(f"DNS server '{text}' is not HOST[:PORT]")
    return _address(host, text), int(port)


def _address(host: str, text: str) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    try:
        return socket.getaddrinfo(host, 53, proto=socket.IPPROTO_UDP)[0][4][0]
    except OSError:
        raise MailformError(f"DNS server '{text}': cannot resolve {host}") from None


def server_from(flag: Optional[str], environ=os.environ) -> Optional[str]:
    """The DNS server to use: the flag, else MAILFORM_DNS_SERVER, else None (system)."""
    return flag or environ.get(DNS_SERVER_ENV) or None


class Lookup:
    """Cached DNS queries through one resolver."""

    def __init__(self, server: Optional[str] = None, lifetime: float = DEFAULT_LIFETIME):
        self.server = server_from(server)
        self.resolver = self._resolver(lifetime)
        self.cache: dict[tuple[str, str], list] = {}
        self.down: Optional[str] = None     # after one timeout, the server is not asked again

    def _resolver(self, lifetime: float) -> dns.resolver.Resolver:
        if self.server is None:
            resolver = dns.resolver.Resolver()
        else:
            address, port = parse_server(self.server)
            resolver = dns.resolver.Resolver(configure=False)
            resolver.nameservers = [address]
            resolver.port = port
        resolver.lifetime = lifetime
        resolver.timeout = min(2.0, lifetime)
        return resolver

    def query(self, name: str, rdtype: str) -> list:
        """The answer's records; [] when the name or the record type does not exist."""
        key = (name.lower().rstrip("."), rdtype)
        if key not in self.cache:
            self.cache[key] = self._ask(key[0] + ".", rdtype)
        return self.cache[key]

    def _ask(self, name: str, rdtype: str) -> list:
        if self.down:
            raise DnsLookupError(f"DNS lookup of {name} {rdtype} skipped: {self.down}")
        try:
            return list(self.resolver.resolve(name, rdtype, search=False))
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except (dns.resolver.NoNameservers, dns.exception.Timeout,
                dns.resolver.LifetimeTimeout) as exc:
            where = self.server or "the system resolver"
            if not isinstance(exc, dns.resolver.NoNameservers):
                self.down = f"{where} did not answer in time"
            raise DnsLookupError(f"DNS lookup of {name} {rdtype} failed via {where}: "
                                 f"{type(exc).__name__}") from None
        except (dns.exception.DNSException, ValueError) as exc:
            raise DnsLookupError(f"DNS lookup of {name} {rdtype} failed: {exc}") from None

    def txt(self, name: str) -> list[str]:
        return [b"".join(r.strings).decode("utf-8", "replace") for r in self.query(name, "TXT")]

    def mx(self, name: str) -> list[tuple[int, str]]:
        """(preference, host) sorted by preference; host "" for a null MX (RFC 7505)."""
        return sorted((r.preference, r.exchange.to_text(omit_final_dot=True).lower())
                      for r in self.query(name, "MX"))

    def addresses(self, name: str) -> list[str]:
        """A and AAAA of ``name`` (an IP literal is its own address)."""
        try:
            return [str(ipaddress.ip_address(name.strip("[]")))]
        except ValueError:
            pass
        return [r.address for t in ("A", "AAAA") for r in self.query(name, t)]

    def ptr(self, address: str) -> list[str]:
        name = dns.reversename.from_address(address).to_text(omit_final_dot=True)
        return [r.target.to_text(omit_final_dot=True).lower() for r in self.query(name, "PTR")]

    def srv(self, name: str) -> list[tuple[int, int, int, str]]:
        """(priority, -weight, port, target) in preference order; target "" means the
        service is not offered there (RFC 2782 ".")."""
        return sorted((r.priority, -r.weight, r.port,
                       r.target.to_text(omit_final_dot=True).lower())
                      for r in self.query(name, "SRV"))


@contextlib.contextmanager
def host_lookups_through(lookup: Lookup) -> Iterator[None]:
    """While active, host names that the probes resolve with ``socket.getaddrinfo`` are
    looked up through ``lookup`` first (names it cannot answer fall back to the system
    resolver).  Used by `debug --discover` when a DNS server is given, so that the
    servers it discovers are reached at the addresses that server publishes."""
    original = socket.getaddrinfo

    def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
        found = _addresses_or_none(lookup, host)
        if not found:
            return original(host, port, family, type, proto, flags)
        return [_addrinfo(ip, port, type) for ip in found
                if family in (0, socket.AF_INET6 if ":" in ip else socket.AF_INET)]

    socket.getaddrinfo = getaddrinfo
    try:
        yield
    finally:
        socket.getaddrinfo = original


def _addresses_or_none(lookup: Lookup, host) -> Optional[list[str]]:
    if not isinstance(host, str) or host.lower() == "localhost":
        return None
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    try:
        return lookup.addresses(host)
    except DnsLookupError:
        return None


def _addrinfo(ip: str, port, type_: int) -> tuple:
    if ":" in ip:
        return (socket.AF_INET6, type_ or socket.SOCK_STREAM, 0, "", (ip, int(port), 0, 0))
    return (socket.AF_INET, type_ or socket.SOCK_STREAM, 0, "", (ip, int(port)))
