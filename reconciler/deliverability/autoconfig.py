"""Thunderbird's autoconfig file (config-v1.1.xml) over HTTPS with certificate checks.

URLs tried, in order: https://autoconfig.DOMAIN/mail/config-v1.1.xml?emailaddress=EMAIL
and https://DOMAIN/.well-known/autoconfig/mail/config-v1.1.xml.  Host names are
resolved through the one resolver (`Lookup`); the certificate must be valid for the
name (system trust store plus MAILFORM_CA_FILE).  The port map (MAILFORM_DEBUG_PORT_MAP)
may point 443 elsewhere, for tests.
"""
from __future__ import annotations

import http.client
import socket
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING, Mapping, Optional
from urllib.parse import quote

from ..trust import client_context, trust_file
from .findings import domain_of
from .resolver import DnsLookupError, Lookup

if TYPE_CHECKING:
    from .discover import Candidate

MAX_BYTES = 256 * 1024
SOCKET_TYPES = {"ssl": "ssl", "tls": "ssl", "starttls": "starttls", "plain": "none"}
KINDS = {"smtp", "imap", "pop3"}


def urls(email: str) -> list[tuple[str, str]]:
    """(host, path) of each autoconfig location for ``email``."""
    domain = domain_of(email)
    return [(f"autoconfig.{domain}", f"/mail/config-v1.1.xml?emailaddress={quote(email)}"),
            (domain, "/.well-known/autoconfig/mail/config-v1.1.xml")]


def fetch_autoconfig(email: str, lookup: Lookup, *, port_map: Mapping[int, int],
                     timeout: float, problems: list[str]) -> list["Candidate"]:
    """The candidates of the first autoconfig file found (problems noted, not raised)."""
    for host, path in urls(email):
        url = f"https://{host}{path}"
        try:
            body = get(host, path, lookup, port_map.get(443, 443), timeout)
        except (OSError, http.client.HTTPException, ValueError, DnsLookupError) as exc:
            problems.append(f"autoconfig {url}: {type(exc).__name__}: {exc}")
            continue
        if body is None:
            continue
        try:
            return parse(body, email, f"autoconfig {url.split('?')[0]}")
        except ET.ParseError as exc:
            problems.append(f"autoconfig {url}: not valid XML ({exc})")
    return []


class _Connection(http.client.HTTPSConnection):
    """HTTPS to a given address, checking the certificate against the host name."""

    def __init__(self, host: str, address: str, port: int, timeout: float):
        super().__init__(host, port, timeout=timeout,
                         context=client_context(True, trust_file()))
        self.address = address

    def connect(self) -> None:
        sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def get(host: str, path: str, lookup: Lookup, port: int, timeout: float) -> Optional[bytes]:
    """The body of a 200 answer; None for a host that does not resolve or another status."""
    addresses = lookup.addresses(host)
    if not addresses:
        return None
    conn = _Connection(host, addresses[0], port, timeout)
    try:
        conn.request("GET", path, headers={"Host": host, "User-Agent": "mailform"})
        response = conn.getresponse()
        if response.status != 200:
            return None
        return response.read(MAX_BYTES + 1)[:MAX_BYTES]
    finally:
        conn.close()


def parse(body: bytes, email: str, source: str) -> list["Candidate"]:
    """Servers of a config-v1.1.xml (placeholders %EMAILDOMAIN% etc. filled in)."""
    from .discover import Candidate
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise ET.ParseError("DTDs and entities are refused")
    root = ET.fromstring(body)
    out = []
    for node in root.iter():
        kind = (node.get("type") or "").lower()
        if node.tag not in {"incomingServer", "outgoingServer"} or kind not in KINDS:
            continue
        host = _fill(node.findtext("hostname") or "", email)
        port = (node.findtext("port") or "").strip()
        security = SOCKET_TYPES.get((node.findtext("socketType") or "").strip().lower())
        if host and port.isdigit() and security:
            out.append(Candidate(kind, host.lower(), int(port), security, source))
    return out


def _fill(text: str, email: str) -> str:
    local, _, domain = email.partition("@")
    return (text.strip().replace("%EMAILDOMAIN%", domain).replace("%EMAILLOCALPART%", local)
            .replace("%EMAILADDRESS%", email))
