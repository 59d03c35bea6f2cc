"""The DNS checks of one account's sender domain and reply-to (issue 15).

Own (smtp) accounts: the SMTP host's addresses must pass SPF and have forward-confirmed
reverse DNS.  Marketing accounts: the SPF record must include the platform's include
(``spec.platform.spf_include`` in the project file, or ``--spf-include``).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Mapping, Optional

from . import records as rec
from . import spf
from .findings import ERROR, INFO, WARNING, AccountReport, domain_of
from .resolver import DnsLookupError, Lookup

STRONG_BITS, MIN_BITS = 2048, 1024


@dataclass(frozen=True)
class Facts:
    """What the checks need of an account, read from its spec (model or registry row)."""

    name: str
    type: str
    email: str
    reply_to: str
    smtp_host: Optional[str] = None
    dkim_selector: Optional[str] = None

    @classmethod
    def from_spec(cls, name: str, spec: Mapping) -> "Facts":
        reply = (spec.get("reply_to") or {}).get("email") or spec["email"]
        smtp = spec.get("smtp") or {}
        dkim = spec.get("dkim") or {}       # optional `spec.dkim: {selector}` (issue 15)
        return cls(name, spec.get("type", "smtp"), spec["email"], reply,
                   smtp.get("host"), dkim.get("selector"))


@dataclass(frozen=True)
class Options:
    dns_server: Optional[str] = None
    spf_include: Optional[str] = None
    probe_reply_to: bool = False
    timeout: float = 10.0
    port_map: Mapping[int, int] = field(default_factory=dict)


class AccountCheck:
    """Runs each check in turn; a lookup no server answers is noted, not fatal."""

    def __init__(self, facts: Facts, options: Options, lookup: Lookup):
        self.facts, self.options, self.lookup = facts, options, lookup
        self.domain = domain_of(facts.email)
        self.report = AccountReport(facts.name, self.domain)
        self.spf_aligned = self.dkim_aligned = False

    def run(self) -> AccountReport:
        for step in (self.mx, self.spf, self.dkim, self.dmarc, self.ptr, self.mta_sts,
                     self.tls_rpt, self.reply_to):
            try:
                step()
            except DnsLookupError as exc:
                self.report.errors.append(str(exc))
        return self.report

    def add(self, *args, **kwargs) -> None:
        self.report.add(*args, **kwargs)

    # --- sender domain -------------------------------------------------------------
    def mx(self) -> None:
        hosts = self.lookup.mx(self.domain)
        self.report.records["mx"] = [host for _, host in hosts]
        if not any(host for _, host in hosts):
            what = "a null MX (accepts no mail)" if hosts else "no MX record"
            self.add("mx_missing", f"{self.domain} has {what}: bounces and replies to the "
                     "sender address are lost, and some receivers refuse such senders",
                     f"publish an MX record for {self.domain}")

    def spf(self) -> None:
        texts = spf.records_of(self.lookup, self.domain)
        self.report.records["spf"] = texts
        if not texts:
            self.add("spf_missing", f"{self.domain} publishes no SPF record",
                     f"add a TXT record \"v=spf1 {self._spf_hint()} ~all\" to {self.domain}")
            return
        if self._spf_valid(texts):
            self._spf_limit()
            self._spf_covers()

    def _spf_hint(self) -> str:
        if self.facts.type == "marketing":
            return f"include:{self.options.spf_include}" if self.options.spf_include else \
                "include:<the platform's SPF include>"
        return f"a:{self.facts.smtp_host}" if self.facts.smtp_host else "mx"

    def _spf_valid(self, texts: list[str]) -> bool:
        problem = f"{len(texts)} SPF records (there must be exactly one)" \
            if len(texts) > 1 else None
        try:
            spf.parse(texts[0])
        except spf.SpfError as exc:
            problem = problem or str(exc)
        if problem:
            self.add("spf_invalid", f"the SPF record of {self.domain} is invalid: {problem}",
                     f"merge and correct the SPF record of {self.domain} (one 'v=spf1' "
                     "TXT record, known mechanisms only)")
        return problem is None

    def _spf_limit(self) -> None:
        tree = spf.walk(self.lookup, self.domain)
        self.report.records["spf_lookups"] = tree.lookups
        self.report.records["spf_includes"] = tree.includes
        if tree.lookups > spf.MAX_LOOKUPS:
            self.add("spf_too_many_lookups", f"the SPF record of {self.domain} needs "
                     f"{tree.lookups} DNS lookups (at most {spf.MAX_LOOKUPS}): receivers "
                     "treat it as a permanent error",
                     f"flatten includes in the SPF record of {self.domain} (replace "
                     "include:/a/mx terms by ip4:/ip6: ranges) to 10 lookups or fewer")
        for problem in tree.problems:
            self.add("spf_invalid", f"an SPF record included by {self.domain} is invalid: "
                     f"{problem}", f"fix or remove that include in {self.domain}'s SPF record")

    def _spf_covers(self) -> None:
        if self.facts.type == "marketing":
            self._spf_includes_platform()
            return
        host = self.facts.smtp_host
        addresses = self.lookup.addresses(host) if host else []
        self.report.records["smtp_addresses"] = addresses
        results = {ip: spf.check_host(self.lookup, ip, self.domain, self.facts.email)
                   for ip in addresses}
        self.report.records["spf_results"] = results
        refused = [ip for ip, result in results.items() if result != "pass"]
        self.spf_aligned = bool(addresses) and not refused
        if refused:
            terms = " ".join(f"ip{ipaddress_version(ip)}:{ip}" for ip in refused)
            self.add("spf_not_authorized", f"the SPF record of {self.domain} does not "
                     f"authorize the SMTP host {host} ({', '.join(refused)}: "
                     f"{', '.join(results[ip] for ip in refused)})",
                     f"add `a:{host}` or `{terms}` to the SPF record of {self.domain}")

    def _spf_includes_platform(self) -> None:
        wanted = (self.options.spf_include or "").lower().rstrip(".")
        if not wanted:
            self.report.records["spf_include"] = None   # not configured: nothing to test
            return
        found = wanted in self.report.records.get("spf_includes", [])
        self.spf_aligned = found
        if not found:
            self.add("spf_not_authorized", f"the SPF record of {self.domain} does not "
                     f"include the platform's servers ({wanted})",
                     f"add `include:{wanted}` to the SPF record of {self.domain}")

    def dkim(self) -> None:
        selector = self.facts.dkim_selector
        if not selector:
            self.add("dkim_missing", "the account declares no DKIM selector, so its DKIM key "
                     "was not checked", "declare `spec.dkim: {selector: NAME}` with the "
                     "selector your mail is signed with", severity=INFO)
            return
        name = f"{selector}._domainkey.{self.domain}"
        record = rec.dkim_record(self.lookup, selector, self.domain)
        if record is None or not record.get("p"):
            why = "is revoked (empty p=)" if record is not None else "is not published"
            self.add("dkim_missing", f"the DKIM key {name} {why}",
                     f"publish the DKIM public key as a TXT record at {name}")
            return
        self._dkim_length(name, rec.key_bits(record))

    def _dkim_length(self, name: str, bits: Optional[int]) -> None:
        self.report.records["dkim_bits"] = bits
        if bits is None:
            self.add("dkim_missing", f"the DKIM record {name} holds no readable public key",
                     f"publish the key again at {name} (base64 of the DER public key in p=)")
            return
        self.dkim_aligned = bits >= MIN_BITS
        if bits < STRONG_BITS:
            weak = bits < MIN_BITS
            self.add("dkim_weak_key", f"the DKIM key {name} has {bits} bits "
                     f"({'receivers ignore keys under 1024' if weak else 'under 2048'})",
                     "publish a 2048-bit RSA key under a new selector and sign with it",
                     severity=ERROR if weak else WARNING)

    def dmarc(self) -> None:
        record, where = rec.dmarc_record(self.lookup, self.domain)
        self.report.records["dmarc"] = record
        name = f"_dmarc.{self.domain}"
        if record is None:
            self.add("dmarc_missing", f"{self.domain} publishes no DMARC record",
                     f"add a TXT record \"v=DMARC1; p=quarantine; rua=mailto:dmarc@"
                     f"{self.domain}\" at {name}")
            return
        policy = record.get("p", "").lower() if where == self.domain else \
            record.get("sp", record.get("p", "")).lower()
        if policy not in {"quarantine", "reject"}:
            self.add("dmarc_policy_none", f"the DMARC policy of {self.domain} is "
                     f"p={policy or '(missing)'}: failing mail is still delivered",
                     f"once reports show your mail aligns, set p=quarantine (then "
                     f"p=reject) at _dmarc.{where}")
        if not (self.spf_aligned or self.dkim_aligned):
            self.add("dmarc_unaligned", f"neither SPF nor DKIM can align with the From "
                     f"domain {self.domain}, so DMARC fails for this account",
                     f"fix the SPF findings or publish a DKIM key for {self.domain} and "
                     "declare its selector in spec.dkim")

    def ptr(self) -> None:
        host = self.facts.smtp_host
        if self.facts.type == "marketing" or not host:
            return
        from .hosts import forward_confirmed
        try:
            bad = [ip for ip in self.lookup.addresses(host)
                   if not forward_confirmed(self.lookup, ip)]
        except DnsLookupError as exc:
            bad = [f"lookup failed: {exc}"]
        if bad:
            self.add("ptr_mismatch", f"the SMTP host {host} has no forward-confirmed reverse "
                     f"DNS ({', '.join(bad)})", f"ask the owner of {', '.join(bad)} for a PTR "
                     f"record naming {host}, and keep {host}'s A/AAAA records pointing back",
                     domain=host)

    def mta_sts(self) -> None:
        found = rec.tagged(self.lookup, f"_mta-sts.{self.domain}", "STSv1")
        self.report.records["mta_sts"] = found[0] if found else None
        if not found:
            self.add("mta_sts_missing", f"{self.domain} publishes no MTA-STS policy",
                     f"publish _mta-sts.{self.domain} TXT \"v=STSv1; id=...\" and the policy "
                     f"at https://mta-sts.{self.domain}/.well-known/mta-sts.txt")

    def tls_rpt(self) -> None:
        found = rec.tagged(self.lookup, f"_smtp._tls.{self.domain}", "TLSRPTv1")
        self.report.records["tls_rpt"] = found[0] if found else None
        if not found:
            self.add("tls_rpt_missing", f"{self.domain} publishes no TLS-RPT record",
                     f"add _smtp._tls.{self.domain} TXT \"v=TLSRPTv1; rua=mailto:tls@"
                     f"{self.domain}\"")

    def reply_to(self) -> None:
        from .hosts import check_reply_to
        check_reply_to(self)


def ipaddress_version(ip: str) -> int:
    return 6 if ":" in ip else 4


def check_accounts(facts: list[Facts], options: Options,
                   lookup: Optional[Lookup] = None) -> list[AccountReport]:
    """Every account's report, in the order given (accounts checked at once)."""
    if not facts:
        return []
    lookup = lookup or Lookup(options.dns_server, lifetime=options.timeout)
    with ThreadPoolExecutor(max_workers=min(8, len(facts))) as pool:
        return list(pool.map(lambda f: AccountCheck(f, options, lookup).run(), facts))
