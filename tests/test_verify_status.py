"""`mailform verify` stores its results as status of the applied accounts it checked,
and `apply` refuses every change when one created account fails its checks."""
import json
import os
import uuid
from pathlib import Path

import pytest

import clihelpers

pytestmark = pytest.mark.mailstack
ROOT = Path(__file__).resolve().parent.parent

ACCOUNT = """\
apiVersion: mailform/v1
kind: EmailAccount
metadata: {{name: {name}}}
spec:
  type: smtp
  email: {email}
  display_name: Status Test
  shared: true
  smtp: {{host: 127.0.0.1, port: {port}, security: {security}, password: {{env: {var}}}}}
"""


def run(env, *args):
    return clihelpers.mailform(*args, env=env, cwd=ROOT)


@pytest.fixture(scope="module")
def mailbox(mailstack):
    """A mailbox user of this module's own (the tests only log in with it)."""
    local = "st" + uuid.uuid4().hex[:8]
    password = "pw-" + uuid.uuid4().hex
    mailstack.add_user(local, password)
    return local, password


@pytest.fixture
def setup(mailstack, mailbox, tmp_path):
    local, password = mailbox
    manifests = tmp_path / "m"
    manifests.mkdir()
    env = dict(os.environ, GOOD_PW=password, MAILFORM_CA_FILE=mailstack.ca_file, NO_COLOR="1",
               MAILFORM_REGISTRY=f"sqlite:///{tmp_path}/reg.db")
    env.pop("MAILFORM_MASTER_KEY", None)
    return mailstack, local, password, manifests, env


def write(manifests, stack, name, email, port_name, security, var="GOOD_PW"):
    (manifests / f"{name}.yaml").write_text(ACCOUNT.format(
        name=name, email=email, port=stack.ports[port_name], security=security, var=var))


def test_verify_records_status_of_applied_accounts(setup):
    stack, local, _, manifests, env = setup
    write(manifests, stack, "good", stack.address(local), "submission", "starttls")
    assert run(env, "apply", str(manifests), "--auto-approve", "--skip-verify").returncode == 0
    shown = json.loads(run(env, "state", "show", "good", "--format", "json").stdout)
    assert "verification" not in shown["status"]
    assert run(env, "verify", str(manifests)).returncode == 0
    shown = json.loads(run(env, "state", "show", "good", "--format", "json").stdout)
    assert shown["status"]["verification"]["smtp"]["code"] == "ok"
    listed = run(env, "state", "list").stdout
    assert "smtp:ok" in listed


def test_verify_never_creates_a_registry(setup, tmp_path):
    stack, local, _, manifests, env = setup
    write(manifests, stack, "good", stack.address(local), "submission", "starttls")
    assert run(env, "verify", str(manifests)).returncode == 0
    assert not (tmp_path / "reg.db").exists()


def test_apply_refuses_all_when_one_account_fails(setup):
    stack, local, _, manifests, env = setup
    write(manifests, stack, "good", stack.address(local), "submission", "starttls")
    write(manifests, stack, "bad", stack.address(local), "smtps", "starttls")
    proc = run(env, "apply", str(manifests), "--auto-approve")
    assert proc.returncode == 1
    assert "bad (smtp:" in proc.stderr and "nothing was applied" in proc.stderr
    assert "0 account(s)" in run(env, "state", "list").stdout
    plan = run(env, "plan", str(manifests), "--verify", "--format", "json")
    assert plan.returncode == 1
    body = json.loads(plan.stdout)
    codes = {rc["name"]: rc["verification"]["smtp"]["code"] for rc in body["resource_changes"]}
    assert codes["good"] == "ok" and codes["bad"] != "ok"
    assert env["GOOD_PW"] not in plan.stdout + plan.stderr + proc.stdout + proc.stderr
