"""`debug NAME --discover`: servers found through SRV records (NSD, devtools/dnsserver.py),
an autoconfig file over HTTPS (a local server with its own test CA) and MX guesses, then
probed and logged into on the real mail stack; `--fix` rewrites the host too."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from devtools.dnsserver import nsd_missing, AutoconfigServer, DnsServer, DnsServerError
from reconciler.cli.cmd_debug import debug
from reconciler.cli.cmd_verify import verify
from reconciler.deliverability.discover import discover
from reconciler.deliverability.resolver import Lookup

pytestmark = pytest.mark.mailstack

AUTOCONFIG = """<?xml version="1.0"?>
<clientConfig version="1.1">
  <emailProvider id="discover.test">
    <domain>discover.test</domain>
    <incomingServer type="imap">
      <hostname>localhost</hostname><port>{imaps}</port><socketType>SSL</socketType>
      <username>%EMAILADDRESS%</username>
    </incomingServer>
    <incomingServer type="pop3">
      <hostname>pop.%EMAILDOMAIN%</hostname><port>995</port><socketType>SSL</socketType>
    </incomingServer>
  </emailProvider>
</clientConfig>
"""

MANIFEST = """\
# found by discovery: keep this comment
apiVersion: mailform/v1
kind: EmailAccount
metadata: {name: disc}
spec:
  type: smtp
  email: alice@discover.test
  display_name: Disc   # and this one
  shared: true
  smtp:
    host: smtp.discover.invalid   # wrong on purpose
    port: 2
    security: ssl
    username: alice@mailform.test
    password: {env: ALICE_PW}
  inbox:
    protocol: imap
    host: imap.discover.invalid
    port: 3
    security: starttls
    username: alice@mailform.test
"""


@pytest.fixture
def world(mailstack, tmp_path, monkeypatch):
    """NSD with discover.test (SRV for submission, autoconfig host, an MX) and the
    autoconfig server, trusted through a CA bundle with the stack's CA."""
    web = AutoconfigServer(tmp_path / "web", {
        "/mail/config-v1.1.xml": AUTOCONFIG.format(imaps=mailstack.ports["imaps"])},
        ["autoconfig.discover.test", "discover.test"])
    server = DnsServer(tmp_path / "nsd").add_zone("discover.test", [
        f"_submission._tcp SRV 0 1 {mailstack.ports['submission']} localhost.",
        f"_submissions._tcp SRV 0 1 {mailstack.ports['smtps']} mail.discover.test.",
        "mail A 127.0.0.1",
        "_imap._tcp SRV 0 0 0 .", "autoconfig A 127.0.0.1", "@ MX 10 mx", "mx A 127.0.0.1"])
    try:
        server.start()
    except DnsServerError as exc:
        nsd_missing(exc)
    bundle = tmp_path / "ca-bundle.pem"
    bundle.write_text(open(mailstack.ca_file).read() + web.ca_file.read_text())
    monkeypatch.setenv("MAILFORM_CA_FILE", str(bundle))
    monkeypatch.setenv("MAILFORM_DNS_SERVER", server.address)
    monkeypatch.setenv("MAILFORM_DEBUG_PORT_MAP", f"443={web.port}")
    monkeypatch.setenv("ALICE_PW", mailstack.user_password("alice"))
    with web:
        yield server, web
    server.stop()


def run(cmd, args):
    result = CliRunner().invoke(cmd, [str(a) for a in args], standalone_mode=False)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.return_value, result.output


def test_discover_lists_each_candidate_with_its_source(world, mailstack):
    _server, web = world
    found = discover("alice@discover.test", Lookup(), port_map={443: web.port})
    got = {(c.kind, c.host, c.port, c.security): c.source for c in found.candidates}
    assert got[("smtp", "localhost", mailstack.ports["submission"], "starttls")] == \
        "SRV _submission._tcp.discover.test"
    assert got[("imap", "localhost", mailstack.ports["imaps"], "ssl")] == \
        "autoconfig https://autoconfig.discover.test/mail/config-v1.1.xml"
    assert got[("pop3", "pop.discover.test", 995, "ssl")].startswith("autoconfig")
    assert got[("smtp", "mx.discover.test", 465, "ssl")] == "MX guess (mx.discover.test)"
    assert ("autoconfig.discover.test",
            "/mail/config-v1.1.xml?emailaddress=alice%40discover.test") in web.requests


def test_debug_discover_finds_and_fixes_the_host(world, mailstack, tmp_path):
    path = tmp_path / "disc.yaml"
    path.write_text(MANIFEST)
    code, out = run(debug, ["disc", path, "--discover", "--timeout", "5"])
    assert code == 0, out
    assert "(from SRV _submission._tcp.discover.test)" in out
    assert f"Proposal: host localhost, port {mailstack.ports['submission']}" in out
    assert f"Proposal: host localhost, port {mailstack.ports['imaps']}, security ssl" in out
    assert path.read_text() == MANIFEST

    code, out = run(debug, ["disc", path, "--discover", "--fix", "--format", "json"])
    assert code == 0, out
    data = json.loads(out[:out.rindex("}") + 1])
    assert data["smtp"]["proposal"]["host"] == "localhost"
    assert any(row["source"].startswith("autoconfig") and row["code"] == "ok"
               for row in data["inbox"]["rows"])
    # mail.discover.test exists only in the DNS server given: the probe reached it there
    # (and refused its certificate, which names localhost), not a dns_error
    nsd_only = [row for row in data["smtp"]["rows"] if row["host"] == "mail.discover.test"]
    assert nsd_only and nsd_only[0]["code"] == "certificate_invalid", nsd_only
    assert nsd_only[0]["cert_reason"] == "hostname mismatch"
    text = path.read_text()
    assert "    host: localhost   # wrong on purpose\n" in text
    assert f"    port: {mailstack.ports['submission']}\n" in text
    assert "# found by discovery: keep this comment" in text
    code, out = run(verify, [path, "--account", "disc"])
    assert code == 0, out


def test_autoconfig_needs_a_trusted_certificate(world, mailstack, monkeypatch):
    _server, web = world
    monkeypatch.setenv("MAILFORM_CA_FILE", mailstack.ca_file)     # not the web CA
    found = discover("alice@discover.test", Lookup(), port_map={443: web.port})
    assert not [c for c in found.candidates if c.source.startswith("autoconfig")]
    assert any("CERTIFICATE_VERIFY_FAILED" in p or "certificate" in p.lower()
               for p in found.problems), found.problems
