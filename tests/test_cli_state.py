"""The registry-facing commands through the real CLI: state list/show, history,
registry set (drift), accounts activate, import."""
from __future__ import annotations

import json

import pytest
import yaml

from clihelpers import Cli, marketing_account, smtp_account

SECRETS = {"SUPPORT_SMTP_PASSWORD": "pw-support-1", "ALICE_SMTP_PASSWORD": "pw-alice-1"}


def _accounts() -> list[dict]:
    return [
        smtp_account("support", labels={"team": "support"}, proxy=True,
                     reply_to={"email": "help@example.com", "name": "Help"},
                     inbox={"protocol": "imap", "host": "imap.example.com", "port": 993,
                            "security": "ssl", "batch_size": 50}),
        smtp_account("alice", shared=False, owner="alice@example.com",
                     lifecycle={"ignore_changes": ["display_name"]},
                     inbox={"protocol": "pop3", "host": "pop.example.com", "port": 995,
                            "security": "ssl", "password": {"env": "ALICE_INBOX_PASSWORD"}}),
        marketing_account("news", from_override={"email_detail": "mgr_email",
                                                 "name_detail": "mgr_name"},
                          lifecycle={"prevent_destroy": True}),
    ]


def _imported_into(tmp_path, cli, manifests: str) -> Cli:
    """A new checkout holding `import`'s output, planning against the same registry, with
    the secrets under the variable names import wrote."""
    other = Cli(tmp_path / "imported", env={
        "MAILFORM_REGISTRY": cli.url, "MAILFORM_ALICE_SMTP_PASSWORD": "pw-alice-1",
        "MAILFORM_ALICE_INBOX_PASSWORD": "pw-alice-inbox",
        "MAILFORM_SUPPORT_SMTP_PASSWORD": "pw-support-1",
        "MAILFORM_SUPPORT_INBOX_PASSWORD": "pw-support-1"})
    other.write("manifests/imported.yaml", manifests)
    return other


@pytest.fixture
def cli(tmp_path):
    c = Cli(tmp_path, env={**SECRETS, "ALICE_INBOX_PASSWORD": "pw-alice-inbox"})
    c.write_accounts(_accounts())
    applied = c.apply()
    assert applied.code == 0, applied
    return c


def test_state_list_show_and_history(cli):
    listed = cli.run("state", "list")
    assert listed.code == 0, listed
    lines = {line.split()[0]: line.split() for line in listed.out.splitlines()[1:] if line.strip()
             and not line.endswith("account(s)")}
    assert set(lines) == {"alice", "news", "support"}
    assert lines["news"][1:4] == ["marketing", "news@example.com", "active"]
    as_json = json.loads(cli.run("state", "list", "--format", "json").out)
    assert [a["name"] for a in as_json] == ["alice", "news", "support"]

    shown = cli.run("state", "show", "support")
    assert shown.code == 0 and "(sensitive value)" in shown.out, shown
    body = json.loads(cli.run("state", "show", "support", "--format", "json").out)
    assert body["spec"]["smtp"]["port"] == 587
    assert body["secrets"] == {"inbox.password": "(sensitive value)",
                               "smtp.password": "(sensitive value)"}
    missing = cli.run("state", "show", "nobody")
    assert missing.code == 1 and "nobody" in missing.err

    history = cli.run("history")
    assert history.code == 0 and history.out.splitlines()[0].split() == [
        "SERIAL", "TIME", "ACTOR", "WHAT"], history
    assert history.out.splitlines()[1].split()[0] == "1" and "tester" in history.out
    assert "apply +3 ~0 -0" in history.out
    entries = json.loads(cli.run("history", "--format", "json").out)
    assert entries[0]["counts"] == {"add": 3, "change": 0, "destroy": 0}


def test_registry_set_is_drift_then_apply_corrects_it(cli):
    assert cli.run("registry", "set", "support", "smtp.port=2525").code == 0
    assert cli.run("registry", "set", "support", "labels.team=ops").code == 0
    secret = cli.run("registry", "set", "alice", "smtp.password=hand-typed-pw")
    assert secret.code == 0 and "hand-typed-pw" not in secret.text, secret
    plan = cli.plan("--format", "json")
    body = json.loads(plan.out)
    drift = {d["address"]: {c["path"]: c for c in d["changes"]} for d in body["drift"]}
    assert drift["account.support"]["smtp.port"]["before"] == 587
    assert drift["account.support"]["smtp.port"]["after"] == 2525
    assert "labels.team" in drift["account.support"]
    assert drift["account.alice"]["smtp.password"]["sensitive"] is True
    assert body["summary"] == {"add": 0, "change": 2, "destroy": 0}
    human = cli.plan()
    assert human.out.index("Objects changed outside of mailform") < human.out.index(
        "will perform the following actions")
    assert "~ smtp.port = 2525 -> 587" in human.out
    assert cli.apply().code == 0
    after = cli.plan("--detailed-exitcode")
    assert after.code == 0 and "No changes" in after.out, after
    assert "Objects changed outside" not in after.out


def test_ignore_changes_keeps_the_operator_edit(cli):
    assert cli.run("registry", "set", "alice", "display_name=Alice B.").code == 0
    plan = cli.plan("--format", "json")
    body = json.loads(plan.out)
    assert body["drift"] == [] and body["resource_changes"] == []   # ignored: not drift either
    shown = json.loads(cli.run("state", "show", "alice", "--format", "json").out)
    assert shown["spec"]["display_name"] == "Alice B."


def test_accounts_activate_after_creating_with_many_contacts(cli):
    with cli.registry() as reg:
        reg.upsert_contacts((f"c{i}@example.org", {}) for i in range(1001))
    cli.write_accounts(_accounts() + [marketing_account("promo")])
    plan = cli.plan("--format", "json")
    (rc,) = json.loads(plan.out)["resource_changes"]
    assert rc["name"] == "promo" and any("pending_activation" in n for n in rc["notes"])
    assert "pending_activation" in cli.plan().out
    assert cli.apply().code == 0
    body = json.loads(cli.run("state", "show", "promo", "--format", "json").out)
    assert body["status"]["activation"] == "pending_activation"
    assert "pending_activation" in cli.run("state", "list").out
    activated = cli.run("accounts", "activate", "promo")
    assert activated.code == 0, activated
    body = json.loads(cli.run("state", "show", "promo", "--format", "json").out)
    assert body["status"]["activation"] == "active"
    assert cli.run("accounts", "activate", "promo").code == 1        # not pending any more
    assert cli.plan("--detailed-exitcode").code == 0


def test_import_applied_back_plans_no_changes(cli, tmp_path):
    imported = cli.run("import")
    assert imported.code == 0, imported
    for value in SECRETS.values():
        assert value not in imported.out
    docs = list(yaml.safe_load_all(imported.out))
    assert {d["metadata"]["name"] for d in docs} == {"alice", "news", "support"}
    env_names = [line.strip("# ").strip() for line in imported.out.splitlines()
                 if line.startswith("#   ")]
    assert sorted(env_names) == ["MAILFORM_ALICE_INBOX_PASSWORD", "MAILFORM_ALICE_SMTP_PASSWORD",
                                 "MAILFORM_SUPPORT_INBOX_PASSWORD",
                                 "MAILFORM_SUPPORT_SMTP_PASSWORD"]
    other = _imported_into(tmp_path, cli, imported.out)
    assert other.run("validate").code == 0
    plan = other.plan("--detailed-exitcode")
    assert plan.code == 0 and "No changes" in plan.out, plan


def test_import_keeps_the_bounce_policy(cli, tmp_path):
    policy = {"apiVersion": "mailform/v1", "kind": "BouncePolicy", "metadata": {"name": "default"},
              "spec": {"soft_bounce_limit": 5}}
    cli.write_accounts(_accounts() + [policy])
    assert cli.apply().code == 0
    imported = cli.run("import")
    docs = list(yaml.safe_load_all(imported.out))
    (found,) = [d for d in docs if d["kind"] == "BouncePolicy"]
    assert found["spec"] == {"soft_bounce_limit": 5, "soft_bounce_window_days": 30}
    other = _imported_into(tmp_path, cli, imported.out)
    plan = other.plan("--detailed-exitcode")
    assert plan.code == 0 and "No changes" in plan.out, plan


def test_ignored_password_is_kept_when_other_fields_change(cli):
    """ignore_changes: [smtp.password] — a changed secret in the manifest is not written,
    even when an update of another field rewrites the account."""
    with cli.registry() as reg:
        before = reg.account("alice").fingerprints["smtp.password"]
    accounts = _accounts()
    accounts[1]["spec"]["display_name"] = "Alice New"
    accounts[1]["spec"]["lifecycle"] = {"ignore_changes": ["smtp.password"]}
    cli.write_accounts(accounts)
    cli.env["ALICE_SMTP_PASSWORD"] = "a-completely-different-password"
    plan = json.loads(cli.plan("--format", "json").out)
    (rc,) = plan["resource_changes"]
    assert [c["path"] for c in rc["changes"]] == ["display_name", "lifecycle.ignore_changes"]
    assert cli.apply().code == 0
    with cli.registry() as reg:
        assert reg.account("alice").fingerprints["smtp.password"] == before
    assert cli.plan("--detailed-exitcode").code == 0


# --- issue 10: registry set refuses what the account could not hold (problem 7) ---------

@pytest.mark.parametrize("assignment, message", [
    ("smtp.prot=1", "spec.smtp.prot: unknown field 'prot'; did you mean 'port'?"),
    ("smtp.port=abc", 'spec.smtp.port: must be a whole number, not the string "abc"'),
    ("smtp.port=465", "spec.smtp.security: security starttls cannot work on port 465"),
    ("email=not-an-address", "spec.email:"),
    ("smtp=3", "spec.smtp: must be a mapping"),
    ("smtp.port.x=1", "smtp.port is not a mapping"),
    ("news.reply_to.name=x", "unknown field 'news'"),
])
def test_registry_set_refuses_an_invalid_edit_naming_the_field(cli, assignment, message):
    with cli.registry() as reg:
        before = (reg.meta().serial, reg.account("support").spec)
    result = cli.run("registry", "set", "support", assignment)
    assert result.code == 1, result
    assert message in result.err and "nothing was changed" in result.err, result
    with cli.registry() as reg:
        assert (reg.meta().serial, reg.account("support").spec) == before
    assert cli.plan("--detailed-exitcode").code == 0


def test_registry_set_still_takes_valid_edits_and_new_fields(cli):
    added = cli.run("registry", "set", "support", "from_override.email_detail=mgr")
    assert added.code == 0 and "adding it" in added.err, added
    assert cli.run("registry", "set", "support", "smtp.port=2525").code == 0
    assert cli.run("registry", "set", "support", "smtp.password=anything at all").code == 0


# --- history and state show (problem 9) ---------------------------------------------------

def test_history_has_a_header_and_every_write(cli):
    with cli.registry() as reg:
        reg.upsert_contacts((f"c{i}@example.org", {}) for i in range(1001))
    cli.write_accounts(_accounts() + [marketing_account("promo")])
    assert cli.apply().code == 0
    assert cli.run("registry", "set", "support", "display_name=Desk").code == 0
    assert cli.run("accounts", "activate", "promo").code == 0
    assert cli.run("registry", "rekey").code == 0
    rows = [line.split(None, 3) for line in cli.run("history").out.splitlines()]
    assert rows[0] == ["SERIAL", "TIME", "ACTOR", "WHAT"]
    assert [(r[0], r[3]) for r in rows[1:]] == [
        ("1", "apply +3 ~0 -0"), ("2", "apply +1 ~0 -0"),
        ("3", "registry set account.support display_name"),
        ("4", "accounts activate account.promo"),
        ("5", "key rotated (4 account(s) re-encrypted)")]
    entries = json.loads(cli.run("history", "--format", "json").out)
    assert entries[2]["action"] == "set" and "Desk" not in json.dumps(entries)


def test_state_show_shows_activation_as_state_list_does(cli):
    listed = {a["name"]: a["activation"] for a in
              json.loads(cli.run("state", "list", "--format", "json").out)}
    for name in ("alice", "news", "support"):
        shown = json.loads(cli.run("state", "show", name, "--format", "json").out)
        assert shown["status"]["activation"] == listed[name] == "active"
    assert "status:\n  activation: active" in cli.run("state", "show", "support").out


def test_registry_set_null_on_a_field_with_a_default_stores_the_default(cli, tmp_path):
    """Found by the import round trip: `shared=null` removed the field, and the imported
    manifests (with the model's default) then planned a change forever."""
    done = cli.run("registry", "set", "support", "proxy=null")
    assert done.code == 0 and "proxy = false" in done.out, done
    refused = cli.run("registry", "set", "news", "shared=null")    # false needs an owner
    assert refused.code == 1 and "owner" in refused.err, refused
    imported = cli.run("import")
    other = _imported_into(tmp_path, cli, imported.out)
    plan = other.plan("--detailed-exitcode")
    assert plan.code == 0 and "No changes" in plan.out, plan
