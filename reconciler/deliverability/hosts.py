"""Checks that reach hosts: forward-confirmed reverse DNS, and whether the reply-to
address can receive mail (MX, else A/AAAA; with --probe-reply-to, RCPT TO without DATA)."""
from __future__ import annotations

import smtplib
import socket
from typing import TYPE_CHECKING, Optional

from .findings import domain_of
from .resolver import DnsLookupError, Lookup

if TYPE_CHECKING:
    from .checks import AccountCheck

SMTP_PORT = 25


def forward_confirmed(lookup: Lookup, ip: str) -> bool:
    """Some PTR name of ``ip`` resolves back to ``ip`` (FCrDNS)."""
    return any(ip in lookup.addresses(name) for name in lookup.ptr(ip))


def mail_hosts(lookup: Lookup, domain: str) -> Optional[list[str]]:
    """Where mail for ``domain`` goes: its MX hosts, else the domain itself when it has
    an address (RFC 5321 §5.1); [] when it accepts none (null MX or nothing)."""
    hosts = lookup.mx(domain)
    if hosts:
        return [host for _, host in hosts if host]
    return [domain] if lookup.addresses(domain) else []


def check_reply_to(check: "AccountCheck") -> None:
    address = check.facts.reply_to
    domain = domain_of(address)
    hosts = mail_hosts(check.lookup, domain)
    check.report.records["reply_to_hosts"] = hosts
    if not hosts:
        check.add("reply_to_no_mx", f"the reply-to domain {domain} accepts no mail (no MX, "
                  f"no A/AAAA): replies and bounces to {address} are lost",
                  f"publish an MX record for {domain}, or set spec.reply_to.email to an "
                  "address that receives mail", domain=domain)
        return
    if check.options.probe_reply_to:
        _probe(check, address, domain, hosts)


def _probe(check: "AccountCheck", address: str, domain: str, hosts: list[str]) -> None:
    verdict = probe_mailbox(check.lookup, hosts, address, "", check.options.timeout,
                            check.options.port_map.get(SMTP_PORT, SMTP_PORT))
    check.report.records["reply_to_probe"] = verdict
    if verdict["code"] and 500 <= verdict["code"] < 600:
        check.add("reply_to_rejected", f"{verdict['host']} refused RCPT TO:<{address}>: "
                  f"{verdict['code']} {verdict['text']}",
                  f"create the mailbox {address}, or set spec.reply_to.email to one that "
                  "exists", domain=domain)


def probe_mailbox(lookup: Lookup, hosts: list[str], address: str, sender: str,
                  timeout: float, port: int = SMTP_PORT) -> dict:
    """Ask the first mail host that answers whether it takes ``address`` (EHLO, MAIL FROM,
    RCPT TO, then QUIT: no DATA, nothing is sent).  ``sender`` "" is the null
    reverse-path, as address-verification callouts use, so that a policy on the
    account's own address does not pass for a missing mailbox."""
    last = {"host": None, "code": None, "text": "no mail host answered"}
    for host in hosts[:3]:
        try:
            ips = lookup.addresses(host)
        except DnsLookupError as exc:
            last = {"host": host, "code": None, "text": str(exc)}
            continue
        for ip in ips[:2]:
            verdict = _rcpt(host, ip, port, address, sender, timeout)
            if verdict["code"] is not None and verdict["code"] < 400 or \
                    verdict["code"] is not None and verdict["code"] >= 500:
                return verdict
            last = verdict
    return last


def _rcpt(host: str, ip: str, port: int, address: str, sender: str, timeout: float) -> dict:
    try:
        with smtplib.SMTP(timeout=timeout, local_hostname=_helo_name()) as client:
            client.connect(ip, port)
            client.ehlo_or_helo_if_needed()
            code, text = client.mail(sender)
            if code >= 400:     # the sender refused: says nothing about the mailbox
                return {"host": host, "code": None, "text": f"MAIL FROM:<{sender}> refused: "
                        f"{code} {text.decode('utf-8', 'replace')}"}
            code, text = client.rcpt(address)
            return {"host": host, "code": code, "text": text.decode("utf-8", "replace")}
    except (OSError, smtplib.SMTPException) as exc:
        return {"host": host, "code": None, "text": f"{type(exc).__name__}: {exc}"}


def _helo_name() -> str:
    name = socket.getfqdn()
    return name if "." in name else "localhost.localdomain"
