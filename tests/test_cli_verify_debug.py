"""`mailform verify` and `mailform debug [--fix]` against the local mail stack."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from reconciler.cli.cmd_debug import debug
from reconciler.cli.cmd_verify import verify

pytestmark = pytest.mark.mailstack

MANIFEST = """\
# Accounts of the growth team.  Keep this comment!
apiVersion: mailform/v1
kind: EmailAccount
metadata:
  name: {name}            # the key
  labels: {{team: growth}}
spec:
  type: smtp
  email: alice@mailform.test
  display_name: "Alice's News"   # quoted on purpose
  shared: true
  smtp:
    host: localhost   # the relay
    port: {smtp_port}   # was 587 once
    security: '{smtp_security}'   # single-quoted
    password: {{env: ALICE_PW}}
  inbox:
    protocol: imap
    host: localhost
    port: {imap_port}
    security: {imap_security}  # trailing comment
    folder: INBOX
"""

OTHER = """\
---
# a second account in the same file, untouched by --fix
apiVersion: mailform/v1
kind: EmailAccount
metadata: {{name: other}}
spec:
  type: smtp
  email: bob@mailform.test
  display_name: Bob
  shared: true
  smtp: {{host: localhost, port: {port}, security: ssl, password: {{env: BOB_PW}}}}
"""


@pytest.fixture
def env(mailstack, monkeypatch):
    monkeypatch.setenv("MAILFORM_CA_FILE", mailstack.ca_file)
    monkeypatch.setenv("ALICE_PW", mailstack.user_password("alice"))
    monkeypatch.setenv("BOB_PW", mailstack.user_password("bob"))
    monkeypatch.delenv("MAILFORM_DEBUG_PORT_MAP", raising=False)
    return mailstack


def write(tmp_path, text, name="accounts.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def run(cmd, args):
    result = CliRunner().invoke(cmd, [str(a) for a in args], standalone_mode=False)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.return_value, result.output


def good_manifest(stack, name="news"):
    return MANIFEST.format(name=name, smtp_port=stack.ports["submission"],
                           smtp_security="starttls", imap_port=stack.ports["imaps"],
                           imap_security="ssl")


def test_verify_all_good(env, tmp_path):
    path = write(tmp_path, good_manifest(env))
    code, out = run(verify, [path])
    assert code == 0, out
    assert "2 checks: 2 ok, 0 failed" in out
    assert env.user_password("alice") not in out


def test_verify_json_and_exit_1_on_failure(env, tmp_path, monkeypatch):
    monkeypatch.setenv("ALICE_PW", "wrong-password")
    path = write(tmp_path, good_manifest(env))
    code, out = run(verify, [path, "--format", "json", "--timeout", "5"])
    assert code == 1
    data = json.loads(out)
    assert [(r["role"], r["code"]) for r in data["results"]] == [
        ("smtp", "auth_failed"), ("inbox", "auth_failed")]
    assert data["summary"] == {"checks": 2, "ok": 0, "failed": 2, "errors": 0}
    assert "wrong-password" not in out


def test_verify_send_test_defaults_to_own_address(env, tmp_path):
    path = write(tmp_path, good_manifest(env, name="sendtest"))
    code, out = run(verify, [path, "--account", "sendtest", "--send-test", "--format", "json"])
    assert code == 0, out
    smtp = json.loads(out)["results"][0]
    assert smtp["message_id"] and "sendtest" in smtp["message_id"]
    env.wait_for_mail("alice", lambda m: m["Message-ID"] == smtp["message_id"], 20)


def test_verify_debug_transcript_redacts_auth(env, tmp_path):
    path = write(tmp_path, good_manifest(env))
    code, out = run(verify, [path, "--debug", "--format", "json"])
    assert code == 0, out
    smtp, inbox = json.loads(out)["results"]
    assert "C: AUTH PLAIN (redacted)" in smtp["transcript"]
    assert any(line.endswith("AUTHENTICATE PLAIN") for line in inbox["transcript"])
    assert "C: (redacted)" in inbox["transcript"]
    assert env.user_password("alice") not in out
    result = CliRunner().invoke(verify, [str(path), "--debug"],
                                                standalone_mode=False)
    assert "C: AUTH PLAIN (redacted)" in result.stderr
    assert env.user_password("alice") not in result.stderr + result.stdout


def test_verify_unknown_account_and_missing_secret(env, tmp_path, monkeypatch):
    path = write(tmp_path, good_manifest(env))
    with pytest.raises(Exception, match="no account named nope"):
        run(verify, [path, "--account", "nope"])
    monkeypatch.delenv("ALICE_PW")
    code, out = run(verify, [path])
    assert code == 1 and "ALICE_PW" in out


def test_debug_fix_rewrites_only_port_and_security(env, tmp_path):
    stack = env
    wrong = MANIFEST.format(name="news", smtp_port=stack.ports["smtps"],
                            smtp_security="starttls", imap_port=stack.ports["imap"],
                            imap_security="ssl") + OTHER.format(port=stack.ports["smtps"])
    path = write(tmp_path, wrong)
    code, out = run(debug, ["news", path, "--timeout", "5"])
    assert code == 0, out
    assert "Proposal: port %d, security ssl" % stack.ports["smtps"] in out
    assert "Proposal: port %d, security starttls" % stack.ports["imap"] in out
    assert path.read_text() == wrong  # no --fix: untouched

    code, out = run(debug, ["news", path, "--fix", "--timeout", "5"])
    assert code == 0, out
    expected = MANIFEST.format(name="news", smtp_port=stack.ports["smtps"],
                               smtp_security="ssl", imap_port=stack.ports["imap"],
                               imap_security="starttls") + OTHER.format(port=stack.ports["smtps"])
    assert path.read_text() == expected  # golden: only the two values changed
    code, out = run(verify, [path, "--account", "news"])
    assert code == 0, out


def test_debug_wrong_port_with_port_map(env, tmp_path, monkeypatch):
    stack = env
    monkeypatch.setenv("MAILFORM_DEBUG_PORT_MAP",
                       f"465={stack.ports['smtps']},587={stack.ports['submission']},"
                       f"993={stack.ports['imaps']},143={stack.ports['imap']}")
    text = MANIFEST.format(name="news", smtp_port=1, smtp_security="starttls",
                           imap_port=2, imap_security="ssl")
    path = write(tmp_path, text)
    code, out = run(debug, ["news", path, "--fix", "--format", "json", "--timeout", "3"])
    assert code == 0, out
    assert f"port: {stack.ports['smtps']}   # was 587 once" in path.read_text()
    assert f"security: 'ssl'   # single-quoted" in path.read_text()
    assert f"port: {stack.ports['imaps']}\n" in path.read_text()


def test_debug_nothing_works_exits_1(env, tmp_path, monkeypatch):
    monkeypatch.setenv("ALICE_PW", "bad")
    path = write(tmp_path, good_manifest(env))
    code, out = run(debug, ["news", path, "--timeout", "3"])
    assert code == 1
    assert "No working combination found (login: auth_failed)" in out


TEMPLATED = """\
# {{ environment }}: the growth team's account
apiVersion: mailform/v1
kind: EmailAccount
metadata:
  name: news
spec:
  type: smtp
  email: alice@mailform.test
  display_name: "News ({{ environment }})"
  shared: true
  smtp:
    host: localhost
    port: {{ var.submission_port }}
    security: {{ var.submission_security }}
    password: {env: ALICE_PW}
"""


def test_debug_fix_writes_a_templated_value_into_its_var_file(env, tmp_path):
    from clihelpers import Cli
    stack = env
    cli = Cli(tmp_path, env={"MAILFORM_CA_FILE": stack.ca_file,
                             "ALICE_PW": stack.user_password("alice")})
    cli.write("manifests/news.yaml", TEMPLATED)
    vars_text = (f"# staging: keep this comment\nsubmission_port: {stack.ports['smtps']}"
                 "   # the port\nsubmission_security: starttls  # wrong on purpose\n")
    cli.write("environments/staging.yaml", vars_text)
    fixed = cli.run("debug", "news", "--var-file", "environments/staging.yaml", "--fix",
                    "--timeout", "5", "--environment", "staging")
    assert fixed.code == 0, fixed
    assert "--fix: environments/staging.yaml:3: var.submission_security = ssl" in fixed.out
    assert (cli.dir / "manifests/news.yaml").read_text() == TEMPLATED
    assert (cli.dir / "environments/staging.yaml").read_text() == vars_text.replace(
        "submission_security: starttls", "submission_security: ssl")
    verified = cli.run("verify", "--var-file", "environments/staging.yaml", "--account", "news")
    assert verified.code == 0, verified

    cli.write("manifests/news.yaml", TEMPLATED.replace("{{ var.submission_security }}",
                                                       "{{ var.submission_security | lower }}"))
    cli.write("environments/staging.yaml", vars_text)
    refused = cli.run("debug", "news", "--var-file", "environments/staging.yaml", "--fix",
                      "--timeout", "5")
    assert refused.code == 1, refused
    assert "manifests/news.yaml:14:15: spec.smtp.security: is the template expression " \
           "{{ var.submission_security | lower }}, not one template variable" in refused.err
    assert (cli.dir / "environments/staging.yaml").read_text() == vars_text


PROJECT = """\
apiVersion: mailform/v1
kind: Project
metadata: {name: growth}
spec:
  default_environment: staging
  environments:
    staging: {var_files: [environments/staging.yaml]}
"""


def test_debug_fix_finds_the_variable_in_the_project_files_var_files(env, tmp_path):
    """The layout the README recommends: the var file comes from mailform.yaml's
    environment, not from --var-file; and a value the proposal keeps is not touched,
    whatever it is (here a filter `--fix` could not edit)."""
    from clihelpers import Cli
    stack = env
    cli = Cli(tmp_path, env={"MAILFORM_CA_FILE": stack.ca_file,
                             "ALICE_PW": stack.user_password("alice")})
    cli.write("mailform.yaml", PROJECT)
    manifest = TEMPLATED.replace("{{ var.submission_port }}", "{{ var.submission_port | int }}")
    cli.write("manifests/news.yaml", manifest)
    vars_text = (f"# staging\nsubmission_port: {stack.ports['smtps']}   # the port\n"
                 "submission_security: starttls  # wrong on purpose\n")
    cli.write("environments/staging.yaml", vars_text)
    fixed = cli.run("debug", "news", "--fix", "--timeout", "5")
    assert fixed.code == 0, fixed
    assert "--fix: environments/staging.yaml:3: var.submission_security = ssl" in fixed.out
    assert "submission_port =" not in fixed.out
    assert (cli.dir / "manifests/news.yaml").read_text() == manifest
    assert (cli.dir / "environments/staging.yaml").read_text() == vars_text.replace(
        "submission_security: starttls", "submission_security: ssl")
    assert cli.run("verify", "--account", "news").code == 0
