"""Deliverability findings in `plan --verify` and the apply gate (warnings; failures
with --strict-dns), and `verify --dns --probe-reply-to` (RCPT TO, no DATA) against the
real mail stack; DNS from NSD (devtools/dnsserver.py)."""
from __future__ import annotations

import json

import pytest

from clihelpers import Cli
from devtools.dnsserver import nsd_missing, DnsServer, DnsServerError

pytestmark = pytest.mark.mailstack

ACCOUNT = """\
apiVersion: mailform/v1
kind: EmailAccount
metadata: {{name: news}}
spec:
  type: smtp
  email: news@{domain}
  display_name: News
  shared: true
  reply_to: {{email: {reply}}}
  smtp: {{host: localhost, port: {port}, security: starttls, username: alice@mailform.test,
          password: {{env: ALICE_PW}}}}
"""


@pytest.fixture
def cli(mailstack, tmp_path):
    server = DnsServer(tmp_path / "nsd")
    server.add_zone("localhost", ["@ A 127.0.0.1"])
    server.add_zone("notcovered.test", ["@ MX 10 localhost.", '@ TXT "v=spf1 ip4:192.0.2.1 -all"',
                                        '_dmarc TXT "v=DMARC1; p=reject"'])
    server.add_zone("mailform.test", ["@ MX 10 localhost."])
    server.add_zone("elsewhere.test", ["@ MX 10 localhost."])
    try:
        server.start()
    except DnsServerError as exc:
        nsd_missing(exc)
    env = {"MAILFORM_CA_FILE": mailstack.ca_file, "MAILFORM_DNS_SERVER": server.address,
           "ALICE_PW": mailstack.user_password("alice"),
           "MAILFORM_DEBUG_PORT_MAP": f"25={mailstack.ports['smtp']}"}
    yield Cli(tmp_path / "work", env=env), mailstack
    server.stop()


def write(cli, stack, reply="alice@mailform.test"):
    cli.write("manifests/news.yaml", ACCOUNT.format(domain="notcovered.test", reply=reply,
                                                    port=stack.ports["submission"]))


def test_plan_verify_notes_findings_and_strict_fails(cli):
    cli, stack = cli
    write(cli, stack)
    plan = cli.plan("--verify")
    assert plan.code == 0, plan
    assert "dns: spf_not_authorized (error) notcovered.test" in plan.out
    data = json.loads(cli.plan("--verify", "--format", "json").out)
    notes = data["resource_changes"][0]["notes"]
    assert any(n.startswith("dns: spf_not_authorized") for n in notes), notes
    strict = cli.plan("--verify", "--strict-dns")
    assert strict.code == 1, strict
    assert "deliverability checks failed (--strict-dns) for news (dns: spf_not_authorized)" \
        in strict.err


def test_apply_gate_warns_and_strict_applies_nothing(cli):
    cli, stack = cli
    write(cli, stack)
    strict = cli.run("apply", "--auto-approve", "--strict-dns")
    assert strict.code == 1, strict
    assert "news (dns: dns_failed)" in strict.err and "nothing was applied" in strict.err
    applied = cli.run("apply", "--auto-approve")
    assert applied.code == 0, applied
    assert "Warning: account.news: spf_not_authorized (error) notcovered.test" in applied.err
    assert "verify account.news smtp: " in applied.err


def test_verify_dns_probe_reply_to(cli):
    cli, stack = cli
    write(cli, stack)
    ok = cli.run("verify", "--dns", "--probe-reply-to", "--format", "json")
    report = json.loads(ok.out)["deliverability"][0]
    assert report["records"]["reply_to_probe"]["code"] == 250, report
    assert "reply_to_rejected" not in ok.out
    write(cli, stack, reply="nobody@elsewhere.test")        # the stack relays for no one
    refused = cli.run("verify", "--dns", "--probe-reply-to")
    assert refused.code == 1, refused
    assert "reply_to_rejected" in refused.out and "Relay access denied" in refused.out
    unprobed = cli.run("verify", "--dns")
    assert "reply_to_rejected" not in unprobed.out


def test_probe_reply_to_uses_the_null_sender(cli):
    cli, stack = cli
    cli.write("manifests/news.yaml", ACCOUNT.format(domain="notcovered.test",
                                                    reply="alice@mailform.test",
                                                    port=stack.ports["submission"])
              .replace("news@notcovered.test", "blocked@mailform.test"))
    result = cli.run("verify", "--dns", "--probe-reply-to", "--format", "json")
    report = json.loads(result.out)["deliverability"][0]
    assert report["records"]["reply_to_probe"]["code"] == 250, report   # not "blocked@"
    assert "reply_to_rejected" not in result.out
