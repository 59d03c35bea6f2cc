"""plan / apply through the real CLI on real SQLite files: exit codes (SPEC §3),
guards, saved plans, --target."""
from __future__ import annotations

import json

import pytest

from clihelpers import Cli, marketing_account, smtp_account

SECRETS = {"SUPPORT_SMTP_PASSWORD": "pw-support-1", "ALICE_SMTP_PASSWORD": "pw-alice-1"}


@pytest.fixture
def cli(tmp_path):
    c = Cli(tmp_path, env=SECRETS)
    c.write_accounts([smtp_account("support"), marketing_account("news"),
                      smtp_account("alice", shared=False, owner="alice@example.com")])
    return c


def _no_traceback(result):
    assert "Traceback" not in result.text, result


def test_plan_apply_plan_round_trip_and_detailed_exitcode(cli):
    first = cli.plan("--detailed-exitcode")
    assert first.code == 2, first
    assert "# account.support will be created" in first.out
    assert "smtp.password = (sensitive value)" in first.out
    assert first.out.rstrip().endswith("Plan: 3 to add, 0 to change, 0 to destroy.")
    assert cli.plan().code == 0      # changes, but no --detailed-exitcode
    applied = cli.apply()
    assert applied.code == 0, applied
    assert "Apply complete! Resources: 3 added, 0 changed, 0 destroyed." in applied.out
    after = cli.plan("--detailed-exitcode")
    assert after.code == 0, after
    assert "No changes. The registry matches the manifests." in after.out
    assert (cli.dir / ".mailform" / "reg.db.key").stat().st_mode & 0o777 == 0o600


def test_invalid_manifest_exits_1_naming_file_line_and_field(cli):
    cli.write("manifests/bad.yaml", "apiVersion: mailform/v1\nkind: EmailAccount\n"
              "metadata: {name: bad}\nspec:\n  type: marketing\n  email: b@example.com\n"
              "  display_name: B\n  shared: true\n  colour: red\n")
    for command in ("validate", "plan"):
        result = cli.run(command)
        assert result.code == 1, result
        assert "bad.yaml:9:" in result.err and "colour" in result.err, result
        _no_traceback(result)
    result = cli.apply()
    assert result.code == 1, result
    assert not cli.db.exists() or cli.run("state", "list").out.count("@example.com") == 0


def test_unresolvable_secret_exits_1_naming_the_variable(cli):
    result = cli.plan(env={"ALICE_SMTP_PASSWORD": None})
    assert result.code == 1, result
    assert "ALICE_SMTP_PASSWORD" in result.err and "alice" in result.err, result
    assert SECRETS["SUPPORT_SMTP_PASSWORD"] not in result.text
    _no_traceback(result)
    assert cli.apply(env={"ALICE_SMTP_PASSWORD": ""}).code == 1


def test_apply_refuses_without_auto_approve_when_stdin_is_not_a_terminal(cli):
    result = cli.run("apply", "--skip-verify", input="yes\n")
    assert result.code == 1, result
    assert "--auto-approve" in result.err
    listed = cli.run("state", "list")
    assert listed.code == 0 and "0 account(s)" in listed.out, listed


@pytest.mark.parametrize("args", [
    ("plan", "--format", "yaml"),
    ("apply", "--no-such-option"),
    ("registry", "set", "support", "display_name"),     # no PATH=VALUE
])
def test_usage_errors_exit_64(cli, args):
    result = cli.run(*args)
    assert result.code == 64, result
    _no_traceback(result)


def test_prevent_destroy_blocks_delete_and_replace_force_passes(cli):
    cli.write_accounts([smtp_account("support"),
                        marketing_account("news", lifecycle={"prevent_destroy": True})])
    assert cli.apply().code == 0
    # replace (type change) of a protected account
    cli.write_accounts([smtp_account("support"),
                        smtp_account("news", lifecycle={"prevent_destroy": True})],)
    blocked = cli.plan(env={"NEWS_SMTP_PASSWORD": "n"})
    assert blocked.code == 3, blocked
    assert "must be replaced" in blocked.out and "prevent_destroy" in blocked.err
    # delete of a protected account (the manifest no longer has it)
    cli.write_accounts([smtp_account("support")])
    blocked = cli.plan("--format", "json")
    assert blocked.code == 3, blocked
    guards = {g["name"]: g for g in json.loads(blocked.out)["guards"]}
    assert guards["prevent_destroy"]["blocked"] and "account.news" in guards["prevent_destroy"]["detail"]
    refused = cli.apply()
    assert refused.code == 3, refused
    assert "Apply complete" not in refused.out
    assert "news" in cli.run("state", "list").out
    assert cli.plan("--force").code == 0       # reports, does not fail
    forced = cli.apply("--force")
    assert forced.code == 0, forced
    assert "0 added, 0 changed, 1 destroyed" in forced.out


def _many(n: int, **spec) -> list[dict]:
    return [marketing_account(f"m{i:02d}", **spec) for i in range(n)]


def test_delete_and_update_thresholds(cli):
    cli.write_accounts(_many(10))
    assert cli.apply().code == 0
    cli.write_accounts(_many(10)[:7])                 # 3 of 10 deleted: 30%, not more
    assert cli.plan().code == 0
    cli.write_accounts(_many(10)[:6])                 # 4 of 10: 40%
    blocked = cli.plan()
    assert blocked.code == 3, blocked
    assert "delete_threshold" in blocked.err and "4 of 10 (40%)" in blocked.err
    docs = _many(10)
    for doc in docs[:4]:
        doc["spec"]["display_name"] = "Renamed"
    cli.write_accounts(docs)
    blocked = cli.apply()
    assert blocked.code == 3 and "update_threshold" in blocked.err, blocked
    assert cli.plan("--detailed-exitcode", "--force").code == 2
    forced = cli.apply("--force")
    assert forced.code == 0 and "0 added, 4 changed, 0 destroyed" in forced.out, forced
    assert cli.plan("--detailed-exitcode").code == 0


def test_guards_do_not_apply_below_ten_accounts(cli):
    cli.write_accounts(_many(9))
    assert cli.apply().code == 0
    cli.write_accounts(_many(9)[:1])
    result = cli.apply()          # 8 of 9 deleted, but fewer than 10 accounts: no guard
    assert result.code == 0 and "8 destroyed" in result.out, result


# --- saved plans ------------------------------------------------------------------

def test_plan_out_needs_an_existing_registry_and_registry_init_makes_one(cli):
    missing = cli.plan("-o", "plan.json")
    assert missing.code == 1 and "mailform registry init" in missing.err, missing
    assert not (cli.dir / "plan.json").exists() and not cli.db.exists()
    created = cli.run("registry", "init")
    assert created.code == 0 and "created" in created.out and "key file" in created.out, created
    assert cli.db.exists() and cli.db.with_name(cli.db.name + ".key").exists()
    again = cli.run("registry", "init")
    assert again.code == 0 and "already exists" in again.out, again
    with cli.registry() as reg:
        assert reg.meta().serial == 0 and reg.accounts() == {}
    assert cli.plan("-o", "plan.json").code == 0


def test_saved_plan_applies_holds_no_secret_and_tampering_is_refused(cli):
    assert cli.run("registry", "init").code == 0
    saved = cli.plan("-o", "plan.json")
    assert saved.code == 0 and "Saved the plan to plan.json" in saved.out, saved
    text = (cli.dir / "plan.json").read_text()
    for secret in SECRETS.values():
        assert secret not in text
    body = json.loads(text)
    assert body["summary"] == {"add": 3, "change": 0, "destroy": 0}
    assert body["format_version"] == "2" and body["checksum"].startswith("hmac-sha256:")

    tampered = json.loads(text)
    tampered["payload"]["account.support"]["record"]["smtp"]["host"] = "evil.example.net"
    cli.write("tampered.json", json.dumps(tampered))
    refused = cli.apply("tampered.json")
    assert refused.code == 1 and "signature" in refused.err, refused
    version_1 = dict(json.loads(text), format_version="1")
    cli.write("old.json", json.dumps(version_1))
    old = cli.apply("old.json")
    assert old.code == 4 and "plan -o FILE" in old.err, old
    cli.write("foreign.json", json.dumps({"hello": "world"}))
    assert cli.apply("foreign.json").code == 1

    applied = cli.apply("plan.json")
    assert applied.code == 0, applied
    assert "3 added" in applied.out
    assert cli.plan("--detailed-exitcode").code == 0
    again = cli.apply("plan.json")          # the serial moved: this plan is spent
    assert again.code == 4, again


def test_saved_plan_is_stale_after_registry_set(cli):
    assert cli.apply().code == 0
    cli.write_accounts([smtp_account("support", display_name="Desk"), marketing_account("news"),
                        smtp_account("alice", shared=False, owner="alice@example.com")])
    assert cli.plan("-o", "plan.json").code == 0
    assert cli.run("registry", "set", "news", "display_name=Out of band").code == 0
    stale = cli.apply("plan.json")
    assert stale.code == 4, stale
    assert "serial" in stale.err and "mailform plan" in stale.err
    assert "Desk" not in cli.run("state", "show", "support").out


def test_saved_plan_is_stale_when_a_secret_changed(cli):
    assert cli.run("registry", "init").code == 0
    assert cli.plan("-o", "plan.json").code == 0
    stale = cli.apply("plan.json", env={"ALICE_SMTP_PASSWORD": "pw-alice-2"})
    assert stale.code == 4, stale
    assert "alice" in stale.err and "ALICE_SMTP_PASSWORD" in stale.err, stale
    assert "pw-alice" not in stale.text
    gone = cli.apply("plan.json", env={"ALICE_SMTP_PASSWORD": None})
    assert gone.code == 4 and "ALICE_SMTP_PASSWORD" in gone.err, gone
    assert "0 account(s)" in cli.run("state", "list").out


def test_saved_plan_for_another_registry_is_stale(cli, tmp_path):
    assert cli.run("registry", "init").code == 0
    assert cli.plan("-o", "plan.json").code == 0
    other = f"sqlite:///{tmp_path}/other/reg.db"
    result = cli.apply("plan.json", env={"MAILFORM_REGISTRY": other})
    assert result.code == 4 and "lineage" in result.err, result


# --- --target ---------------------------------------------------------------------

def test_target_limits_plan_and_apply(cli):
    planned = cli.plan("--target", "news", "--target", "alice", "--format", "json")
    assert planned.code == 0, planned
    names = [rc["name"] for rc in json.loads(planned.out)["resource_changes"]]
    assert names == ["alice", "news"]
    applied = cli.apply("--target", "news")
    assert applied.code == 0 and "1 added" in applied.out, applied
    listed = cli.run("state", "list").out
    assert "news" in listed and "support" not in listed and "alice" not in listed
    rest = cli.plan("--format", "json")
    assert json.loads(rest.out)["summary"] == {"add": 2, "change": 0, "destroy": 0}
    unknown = cli.plan("--target", "nobody")
    assert unknown.code == 1 and "nobody" in unknown.err, unknown


# --- issue 10, problem 9 ------------------------------------------------------------------

@pytest.mark.parametrize("extra, named", [
    (("--var", "x=1"), "--var"), (("--var-file", "v.yaml"), "--var-file"),
    (("--environment", "production"), "--environment"), (("--target", "news"), "--target"),
])
def test_options_that_would_change_a_saved_plan_are_usage_errors(cli, extra, named):
    cli.write("v.yaml", "x: 1\n")
    assert cli.run("registry", "init").code == 0
    assert cli.plan("-o", "x.plan").code == 0
    result = cli.apply("x.plan", *extra)
    assert result.code == 64, result
    assert f"{named} cannot be combined with a saved plan" in result.err
    assert cli.run("state", "list").out.count("@example.com") == 0
    from_env = cli.apply("x.plan", env={"MAILFORM_ENVIRONMENT": "ci"})   # not given: fine
    assert from_env.code == 0, from_env


def test_target_takes_the_address_the_plan_prints(cli):
    planned = cli.plan("--target", "account.news", "--target", "alice", "--format", "json")
    assert planned.code == 0, planned
    assert [rc["address"] for rc in json.loads(planned.out)["resource_changes"]] == [
        "account.alice", "account.news"]
    applied = cli.apply("--target", "account.news")
    assert applied.code == 0 and "1 added" in applied.out, applied
    unknown = cli.plan("--target", "account.nobody")
    assert unknown.code == 1 and "nobody" in unknown.err, unknown


def test_apply_prints_a_line_per_account_written(cli):
    applied = cli.apply()
    assert applied.code == 0, applied
    lines = applied.out.splitlines()
    done = lines.index("Apply complete! Resources: 3 added, 0 changed, 0 destroyed.")
    assert lines[done - 4:done] == ["account.alice: created", "account.news: created",
                                    "account.support: created", ""]
    cli.write_accounts([smtp_account("support", display_name="Desk"), marketing_account("news")])
    again = cli.apply()
    assert "account.support: updated in-place" in again.out
    assert "account.alice: destroyed" in again.out, again
