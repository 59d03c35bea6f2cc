"""Deliverability DNS checks against a real authoritative server (NSD on a loopback
high port, devtools/dnsserver.py) serving zones written here; nothing leaves the
machine: every lookup goes to that server (MAILFORM_DNS_SERVER / --dns-server)."""
from __future__ import annotations

import base64
import json
import secrets

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from devtools.dnsserver import nsd_missing, DnsServer, DnsServerError, txt
from reconciler.cli.cmd_verify import verify
from reconciler.deliverability.autoconfig import parse
from reconciler.deliverability.checks import Facts, Options, check_accounts
from reconciler.deliverability.resolver import DnsLookupError, Lookup, parse_server


def dkim_value(bits: int) -> str:
    """A DKIM TXT value with an RSA key of ``bits`` (under 1024: a modulus built by
    hand, since cryptography refuses to generate such keys)."""
    if bits >= 1024:
        key = rsa.generate_private_key(65537, bits).public_key()
    else:
        key = rsa.RSAPublicNumbers(65537, secrets.randbits(bits) | (1 << bits - 1) | 1
                                   ).public_key()
    der = key.public_bytes(serialization.Encoding.DER,
                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"


def base(extra=()) -> list[str]:
    return ["@ MX 10 mx", "mx A 127.0.0.1", "smtp A 127.0.0.1",
            f'_mta-sts TXT {txt("v=STSv1; id=2026")}',
            f'_smtp._tls TXT {txt("v=TLSRPTv1; rua=mailto:tls@example.net")}', *extra]


def many_includes() -> list[str]:
    root = " ".join(f"include:i{n}.many.test" for n in range(1, 12))
    return base([f'@ TXT {txt(f"v=spf1 a:smtp.many.test {root} -all")}',
                 '_dmarc TXT "v=DMARC1; p=reject"'] +
                [f'i{n} TXT "v=spf1 ip4:192.0.2.{n} -all"' for n in range(1, 12)])


ZONES = {
    "good.test": lambda: base(['@ TXT "v=spf1 mx a:smtp.good.test -all"',
                               '_dmarc TXT "v=DMARC1; p=reject; rua=mailto:d@good.test"',
                               f"s2048._domainkey TXT {txt(dkim_value(2048))}",
                               f"s1024._domainkey TXT {txt(dkim_value(1024))}",
                               f"s768._domainkey TXT {txt(dkim_value(768))}",
                               '"empty._domainkey" TXT "v=DKIM1; p="']),
    "nospf.test": lambda: base(['_dmarc TXT "v=DMARC1; p=quarantine"']),
    "badspf.test": lambda: base(['@ TXT "v=spf1 a foo:bar -all"',
                                 '_dmarc TXT "v=DMARC1; p=reject"']),
    "many.test": many_includes,
    "notcovered.test": lambda: base(['@ TXT "v=spf1 ip4:192.0.2.1 -all"',
                                     '_dmarc TXT "v=DMARC1; p=reject"']),
    "dmarcnone.test": lambda: ["@ MX 10 mx", "mx A 127.0.0.1", "smtp A 127.0.0.2",
                               '@ TXT "v=spf1 ip4:192.0.2.9 -all"',
                               '_dmarc TXT "v=DMARC1; p=none"'],
    "noreply.test": lambda: [],
    "mkt.test": lambda: base(['@ TXT "v=spf1 include:spf.platform.test -all"',
                              '_dmarc TXT "v=DMARC1; p=reject"']),
    "platform.test": lambda: ['spf TXT "v=spf1 ip4:192.0.2.0/24 -all"'],
    "0.0.127.in-addr.arpa": lambda: ["1 PTR smtp.good.test."],
}


@pytest.fixture(scope="module")
def dns_server(tmp_path_factory):
    server = DnsServer(tmp_path_factory.mktemp("nsd"))
    for zone, records in ZONES.items():
        server.add_zone(zone, records())
    try:
        server.start()
    except DnsServerError as exc:
        nsd_missing(exc)
    yield server
    server.stop()


@pytest.fixture
def dns(dns_server, monkeypatch):
    monkeypatch.setenv("MAILFORM_DNS_SERVER", dns_server.address)
    return dns_server


def check(dns, email, host=None, selector=None, reply=None, kind="smtp", **options):
    facts = Facts("acct", kind, email, reply or email, host, selector)
    report, = check_accounts([facts], Options(dns_server=dns.address, **options))
    return report


def codes(report) -> dict[str, str]:
    return {f.code: f.severity for f in report.findings}


def test_good_domain_has_no_findings(dns):
    report = check(dns, "news@good.test", "smtp.good.test", "s2048")
    assert codes(report) == {}, report.to_dict()
    assert report.errors == []
    assert report.records["spf_results"] == {"127.0.0.1": "pass"}
    assert report.records["dkim_bits"] == 2048
    assert report.records["mta_sts"]["id"] == "2026"


def test_missing_spf(dns):
    report = check(dns, "news@nospf.test", "smtp.nospf.test")
    assert codes(report)["spf_missing"] == "error"
    assert "dmarc_unaligned" in codes(report)
    fix = next(f.fix for f in report.findings if f.code == "spf_missing")
    assert "v=spf1 a:smtp.nospf.test ~all" in fix and "nospf.test" in fix


def test_invalid_spf(dns):
    assert codes(check(dns, "a@badspf.test", "smtp.badspf.test"))["spf_invalid"] == "error"


def test_spf_over_the_lookup_limit(dns):
    report = check(dns, "a@many.test", "smtp.many.test")
    assert codes(report)["spf_too_many_lookups"] == "error"
    assert report.records["spf_lookups"] == 12


def test_spf_not_covering_the_host(dns):
    report = check(dns, "a@notcovered.test", "smtp.notcovered.test")
    finding = next(f for f in report.findings if f.code == "spf_not_authorized")
    assert finding.severity == "error"
    assert "ip4:127.0.0.1" in finding.fix and "notcovered.test" in finding.fix


@pytest.mark.parametrize("selector,severity", [("s1024", "warning"), ("s768", "error")])
def test_dkim_short_keys(dns, selector, severity):
    report = check(dns, "news@good.test", "smtp.good.test", selector)
    assert codes(report) == {"dkim_weak_key": severity}


def test_dkim_missing_or_revoked_or_undeclared(dns):
    assert codes(check(dns, "n@good.test", "smtp.good.test", "nope"))["dkim_missing"] == "error"
    assert codes(check(dns, "n@good.test", "smtp.good.test", "empty"))["dkim_missing"] == "error"
    assert codes(check(dns, "n@good.test", "smtp.good.test")) == {"dkim_missing": "info"}


def test_dmarc_none_and_misaligned(dns):
    found = codes(check(dns, "a@dmarcnone.test", "smtp.dmarcnone.test"))
    assert found["dmarc_policy_none"] == "warning"
    assert found["dmarc_unaligned"] == "warning"
    assert found["mta_sts_missing"] == "info" and found["tls_rpt_missing"] == "info"
    assert found["ptr_mismatch"] == "warning"      # 127.0.0.2 has no PTR


def test_dmarc_missing_and_mx_missing(dns):
    found = codes(check(dns, "a@noreply.test", None, kind="marketing"))
    assert found["dmarc_missing"] == "error" and found["mx_missing"] == "warning"
    assert found["spf_missing"] == "error" and found["reply_to_no_mx"] == "error"


def test_reply_to_domain_without_mx(dns):
    report = check(dns, "news@good.test", "smtp.good.test", "s2048", reply="r@noreply.test")
    assert codes(report) == {"reply_to_no_mx": "error"}
    assert report.findings[0].domain == "noreply.test"


def test_marketing_spf_include(dns):
    assert codes(check(dns, "m@mkt.test", kind="marketing", selector="x",
                       spf_include="spf.platform.test")) == {"dkim_missing": "error"}
    report = check(dns, "m@mkt.test", kind="marketing", spf_include="other.platform.test")
    fix = next(f.fix for f in report.findings if f.code == "spf_not_authorized")
    assert fix == "add `include:other.platform.test` to the SPF record of mkt.test"


def test_unanswered_lookups_are_errors_not_tracebacks(dns):
    report = check(dns, "a@unknown-zone.test", "smtp.unknown-zone.test")
    assert report.errors and "NoNameservers" in report.errors[0]


def test_parse_server():
    assert parse_server("127.0.0.1:5353") == ("127.0.0.1", 5353)
    assert parse_server("[::1]:53") == ("::1", 53)
    assert parse_server("127.0.0.2") == ("127.0.0.2", 53)


def test_lookup_reports_a_silent_server_once():
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        lookup = Lookup(f"127.0.0.1:{silent.getsockname()[1]}", lifetime=0.5)
        with pytest.raises(DnsLookupError, match="Timeout"):
            lookup.txt("good.test")
        with pytest.raises(DnsLookupError, match="skipped"):
            lookup.mx("good.test")


# --- the command --------------------------------------------------------------------

MANIFEST = """\
apiVersion: mailform/v1
kind: EmailAccount
metadata: {{name: {name}}}
spec:
  type: smtp
  email: news@{domain}
  display_name: News
  shared: true
  smtp: {{host: smtp.{domain}, port: 587, security: starttls, password: {{env: PW}}}}
"""


def run(args):
    result = CliRunner().invoke(verify, [str(a) for a in args], standalone_mode=False)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.return_value, result.output


def test_verify_dns_json_and_exit_code(dns, tmp_path, monkeypatch):
    monkeypatch.delenv("PW", raising=False)         # --dns never needs the secrets
    path = tmp_path / "a.yaml"
    path.write_text(MANIFEST.format(name="good", domain="good.test") + "---\n" +
                    MANIFEST.format(name="bad", domain="notcovered.test"))
    code, out = run(["--dns", path, "--format", "json"])
    assert code == 1, out
    data = json.loads(out)
    by_account = {r["account"]: r for r in data["deliverability"]}
    assert [f["code"] for f in by_account["good"]["findings"]] == ["dkim_missing"]
    bad = {f["code"]: f for f in by_account["bad"]["findings"]}
    assert bad["spf_not_authorized"]["severity"] == "error"
    assert bad["spf_not_authorized"]["fix"].startswith("add `a:smtp.notcovered.test`")
    assert data["summary"]["accounts"] == 2 and data["summary"]["errors"] >= 1

    code, out = run(["--dns", path, "--account", "good"])
    assert code == 0, out
    assert "no findings" not in out and "dkim_missing" in out and "fix: declare" in out


def test_verify_dns_strict_and_dns_server_flag(dns_server, tmp_path, monkeypatch):
    monkeypatch.delenv("MAILFORM_DNS_SERVER", raising=False)
    path = tmp_path / "a.yaml"
    path.write_text(MANIFEST.format(name="dm", domain="dmarcnone.test").replace(
        "news@dmarcnone.test", "news@good.test").replace("smtp.dmarcnone.test",
                                                          "smtp.good.test"))
    code, out = run(["--dns", path, "--dns-server", dns_server.address])
    assert code == 0, out                       # only info: dkim not declared
    code, out = run(["--dns", path, "--dns-server", dns_server.address, "--strict-dns"])
    assert code == 0, out                       # info never fails
    path.write_text(MANIFEST.format(name="dm", domain="dmarcnone.test").replace(
        "smtp.dmarcnone.test", "smtp.good.test"))
    code, out = run(["--dns", path, "--dns-server", dns_server.address])
    assert code == 1 and "spf_not_authorized" in out and "dmarc_policy_none" in out


def test_project_file_spf_include(dns, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mailform.yaml").write_text(
        "apiVersion: mailform/v1\nkind: Project\nmetadata: {name: p}\n"
        "spec: {platform: {spf_include: elsewhere.platform.test}}\n")
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "m.yaml").write_text(
        "apiVersion: mailform/v1\nkind: EmailAccount\nmetadata: {name: m}\n"
        "spec: {type: marketing, email: m@mkt.test, display_name: M, shared: true}\n")
    code, out = run(["--dns"])
    assert code == 1 and "include:elsewhere.platform.test" in out
    code, out = run(["--dns", "--spf-include", "spf.platform.test"])
    assert "spf_not_authorized" not in out, out


AUTOCONFIG = b"""<clientConfig version="1.1"><emailProvider id="x">
<incomingServer type="imap"><hostname>localhost</hostname><port>993</port>
<socketType>SSL</socketType></incomingServer>
<incomingServer type="pop3"><hostname>pop.%EMAILDOMAIN%</hostname><port>995</port>
<socketType>SSL</socketType></incomingServer></emailProvider></clientConfig>"""


def test_autoconfig_parse_refuses_entities():
    with pytest.raises(Exception):
        parse(b'<!DOCTYPE x [<!ENTITY a "b">]><clientConfig/>', "a@b.test", "x")
    servers = parse(AUTOCONFIG, "bob@b.test", "autoconfig x")
    assert [(s.kind, s.host, s.port, s.security) for s in servers] == [
        ("imap", "localhost", 993, "ssl"), ("pop3", "pop.b.test", 995, "ssl")]


def test_verify_dns_reads_the_accounts_dkim_selector(dns, tmp_path):
    from reconciler.model import AccountSpec
    if "dkim" not in AccountSpec.model_fields:
        pytest.skip("spec.dkim is not in the model yet")
    path = tmp_path / "a.yaml"
    path.write_text(MANIFEST.format(name="weak", domain="good.test") +
                    "  dkim: {selector: s768}\n")
    code, out = run(["--dns", path])
    assert code == 1, out
    assert "dkim_weak_key" in out and "768 bits" in out
    path.write_text(MANIFEST.format(name="strong", domain="good.test") +
                    "  dkim: {selector: s2048}\n")
    code, out = run(["--dns", path])
    assert code == 0 and "strong: good.test: no findings" in out, out
    assert "MTA-STS" in out and "TLS-RPT" in out


class StubLookup:
    """Answers from a dict, for the SPF evaluator's unit tests."""

    def __init__(self, txt=None, addresses=None, mx=None):
        self._txt, self._addr, self._mx = txt or {}, addresses or {}, mx or {}

    def txt(self, name):
        return self._txt.get(name, [])

    def addresses(self, name):
        return self._addr.get(name, [])

    def mx(self, name):
        return self._mx.get(name, [])

    def query(self, name, rdtype):
        return self._addr.get(name, [])


def test_spf_parse_and_check_host():
    from reconciler.deliverability import spf
    record = spf.parse("v=spf1 ip6:2001:db8::/32 a:h.x.test/24 mx//64 redirect=_spf.x.test")
    assert [t.name for t in record.mechanisms] == ["ip6", "a", "mx"]
    assert record.redirect == "_spf.x.test"
    with pytest.raises(spf.SpfError):
        spf.parse("v=spf1 ip4:2001:db8::1 -all")
    lookup = StubLookup(
        txt={"x.test": ["v=spf1 ip6:2001:db8::/32 a:h.x.test/24 redirect=_spf.x.test"],
             "_spf.x.test": ["v=spf1 include:p.test ~all"], "p.test": ["v=spf1 ip4:192.0.2.7 -all"]},
        addresses={"h.x.test": ["198.51.100.1"]})
    assert spf.check_host(lookup, "2001:db8::5", "x.test") == "pass"
    assert spf.check_host(lookup, "198.51.100.200", "x.test") == "pass"       # /24
    assert spf.check_host(lookup, "192.0.2.7", "x.test") == "pass"           # redirect, include
    assert spf.check_host(lookup, "203.0.113.1", "x.test") == "softfail"
    tree = spf.walk(lookup, "x.test")
    assert tree.lookups == 3 and tree.includes == ["p.test"]
