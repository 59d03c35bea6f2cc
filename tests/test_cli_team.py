"""Working as a team, through the real CLI: the project file (environments, their
registries, var files and guards), ownership of a shared registry, Moved and Removed,
`state mv` / `state rm`, `import --adopt`, and the guards' limits and --force."""
from __future__ import annotations

import json

import pytest

from clihelpers import Cli, dump, in_process, marketing_account, smtp_account

PROJECT = """\
# yaml-language-server: $schema=schemas/mailform-project.v1.json
apiVersion: mailform/v1
kind: Project
metadata: {name: growth}
spec:
  manifests: [manifests]
  default_environment: staging
  environments:
    staging:
      registry: sqlite:///.mailform/staging.db
      var_files: [environments/staging.yaml]
    production:
      registry: {env: PRODUCTION_REGISTRY}
      var_files: [environments/production.yaml]
      guards: {max_destroy_percent: 10, max_change_percent: 50}
  ownership: {name: growth}
"""

TEMPLATED = """\
apiVersion: mailform/v1
kind: EmailAccount
metadata: {name: news}
spec:
  type: smtp
  email: news@example.com
  display_name: "News ({{ environment }})"
  smtp: {host: "{{ var.smtp_host }}", port: 587, security: starttls,
         password: {env: NEWS_SMTP_PASSWORD}}
  shared: true
"""


def project_cli(path, name="growth", project=PROJECT, **env) -> Cli:
    cli = Cli(path, env={"NEWS_SMTP_PASSWORD": "pw", "PROMO_SMTP_PASSWORD": "pw", **env})
    del cli.env["MAILFORM_REGISTRY"]          # the project file decides
    cli.write("mailform.yaml", project.replace("{name: growth}", "{name: %s}" % name))
    cli.write("environments/staging.yaml", "smtp_host: smtp.staging.example.com\n")
    cli.write("environments/production.yaml", "smtp_host: smtp.example.com\n")
    return cli


@pytest.fixture
def growth(tmp_path):
    cli = project_cli(tmp_path / "growth", PRODUCTION_REGISTRY=f"sqlite:///{tmp_path}/prod.db")
    cli.write("manifests/news.yaml", TEMPLATED)
    cli.write_accounts([marketing_account("promo")], "manifests/promo.yaml")
    return cli


def test_each_environment_plans_and_applies_against_its_own_registry(growth, tmp_path):
    staged = growth.apply()
    assert staged.code == 0, staged
    assert (growth.dir / ".mailform" / "staging.db").exists()
    assert not (tmp_path / "prod.db").exists()
    assert "No changes" in growth.plan().out
    production = growth.plan("--environment", "production", "--detailed-exitcode")
    assert production.code == 2, production             # another registry: all to add
    assert 'smtp.host = "smtp.example.com"' in production.out
    assert "Plan: 2 to add" in production.out
    by_variable = growth.plan(env={"MAILFORM_ENVIRONMENT": "production"})
    assert "Plan: 2 to add" in by_variable.out
    assert growth.apply("--environment", "production").code == 0
    assert (tmp_path / "prod.db").exists()
    shown = json.loads(growth.run("state", "show", "news", "--environment", "production",
                                  "--format", "json").out)
    assert shown["spec"]["display_name"] == "News (production)"


def test_registry_precedence_flag_then_variable_then_project(growth, tmp_path):
    flag = f"sqlite:///{tmp_path}/flag.db"
    assert growth.apply("--registry", flag, env={"MAILFORM_REGISTRY": "sqlite:///x.db"}).code == 0
    assert (tmp_path / "flag.db").exists() and not (growth.dir / "x.db").exists()
    variable = f"sqlite:///{tmp_path}/variable.db"
    assert growth.apply(env={"MAILFORM_REGISTRY": variable}).code == 0
    assert (tmp_path / "variable.db").exists()
    assert not (growth.dir / ".mailform" / "staging.db").exists()


def test_project_mistakes_are_clear_errors(growth):
    unknown = growth.plan("--environment", "prod")
    assert unknown.code == 1 and "production, staging: 'prod' is not one of them" in unknown.err
    unset = growth.plan("--environment", "production", env={"PRODUCTION_REGISTRY": None})
    assert unset.code == 1 and "PRODUCTION_REGISTRY, which is not set" in unset.err
    growth.write("mailform.yaml", PROJECT.replace("ownership:", "ownership_:"))
    broken = growth.run("validate")
    assert broken.code == 1 and "mailform.yaml:16:3: spec.ownership_: unknown field" in broken.err
    assert "Traceback" not in broken.text


def test_commands_run_from_a_subfolder_and_with_config(growth, tmp_path):
    assert growth.apply().code == 0
    sub = Cli(growth.dir / "manifests", env=dict(growth.env))
    sub.env.pop("MAILFORM_REGISTRY", None)
    sub.env.update({k: v for k, v in growth.env.items() if k != "MAILFORM_REGISTRY"})
    assert "No changes" in sub.plan().out
    assert sub.run("validate").code == 0
    elsewhere = Cli(tmp_path / "elsewhere", env=dict(growth.env))
    elsewhere.env.pop("MAILFORM_REGISTRY", None)
    config = str(growth.dir / "mailform.yaml")
    assert "No changes" in elsewhere.plan("--config", config).out
    assert elsewhere.plan().code == 1            # no project file, no manifests/ here


def test_var_files_and_the_project_file_under_manifests_are_not_manifests(tmp_path):
    cli = project_cli(tmp_path, project=PROJECT.replace("[manifests]", "[.]").replace(
        "environments/staging.yaml", "vars/staging.yaml"))
    cli.write("vars/staging.yaml", "smtp_host: smtp.staging.example.com\n")
    cli.remove("environments/staging.yaml")            # production's var file stays: skipped
    cli.write("manifests/news.yaml", TEMPLATED)
    result = cli.run("validate")
    assert result.code == 0 and "1 account, 0 bounce policies: valid" in result.out, result


def test_guards_limits_from_the_project_and_the_command_line(tmp_path):
    cli = project_cli(tmp_path, PRODUCTION_REGISTRY=f"sqlite:///{tmp_path}/prod.db")
    accounts = [marketing_account(f"m{i}") for i in range(12)]
    cli.write_accounts(accounts)
    assert cli.apply("--environment", "production").code == 0
    cli.write_accounts(accounts[:10])                      # 2 of 12 deleted: 17% > 10%
    blocked = cli.plan("--environment", "production")
    assert blocked.code == 3, blocked
    assert "Error: blocked by safety guard delete_threshold: 2 of 12 (17%), limit 10%" \
        in blocked.err
    relaxed = cli.plan("--environment", "production", "--max-destroy-percent", "20")
    assert relaxed.code == 0 and "limit 20%" in cli.plan(
        "--environment", "production", "--max-destroy-percent", "20", "--format", "json").out
    staging = cli.apply()                                   # staging: its own registry, 30%
    assert staging.code == 0, staging
    forced = cli.plan("--environment", "production", "--force")
    assert forced.code == 0, forced
    assert "Error" not in forced.err
    assert ("Warning: safety guard delete_threshold (2 of 12 (17%), limit 10%) passed with "
            "--force") in forced.err
    assert "Guard delete_threshold passed with --force" in forced.out
    applied = cli.apply("--environment", "production", "--force")
    assert applied.code == 0 and "Error" not in applied.err, applied
    assert "passed with --force" in applied.err


def test_rename_with_moved_keeps_the_account(growth):
    growth.write_accounts([marketing_account("promo")], "manifests/promo.yaml")
    assert growth.apply().code == 0
    growth.write_accounts([marketing_account("promotions", email="promo@example.com",
                                             display_name="Promo")], "manifests/promo.yaml")
    growth.write("manifests/moves.yaml", dump([
        {"apiVersion": "mailform/v1", "kind": "Moved", "metadata": {"name": "rename-promo"},
         "spec": {"from": "promo", "to": "promotions"}}]))
    plan = growth.plan("--detailed-exitcode")
    assert plan.code == 2 and "# account.promo has moved to account.promotions" in plan.out
    assert "destroy" in plan.out and "0 to destroy" in plan.out
    body = json.loads(growth.plan("--format", "json").out)
    assert [(rc["action"], rc.get("previous_address")) for rc in body["resource_changes"]] == \
        [("move", "account.promo")]
    assert growth.run("registry", "init").code == 0
    assert growth.plan("-o", "move.plan").code == 0
    applied = growth.apply("move.plan")
    assert applied.code == 0 and "1 moved" in applied.out, applied
    assert "No changes" in growth.plan().out             # the Moved document may stay
    assert growth.run("history").out.rstrip().endswith("apply +0 ~0 -0, 1 moved")
    listed = growth.run("state", "list").out
    assert "promotions" in listed and "promo " not in listed


def test_removed_lets_go_and_another_project_adopts(growth, tmp_path):
    assert growth.apply().code == 0
    growth.remove("manifests/promo.yaml")
    growth.write("manifests/removed.yaml", dump([
        {"apiVersion": "mailform/v1", "kind": "Removed", "metadata": {"name": "let-go"},
         "spec": {"name": "promo"}}]))
    plan = growth.plan()
    assert "# account.promo will be forgotten" in plan.out
    assert plan.out.rstrip().endswith("Plan: 0 to add, 0 to change, 0 to destroy, 1 to forget.")
    assert growth.apply().code == 0
    assert growth.run("history").out.rstrip().endswith("apply +0 ~0 -0, 1 forgotten")
    after = growth.plan()
    assert "No changes" in after.out and "1 account of the registry" in after.out
    shared = f"sqlite:///{growth.dir}/.mailform/staging.db"
    billing = project_cli(tmp_path / "billing", name="billing",
                          project=PROJECT.replace("sqlite:///.mailform/staging.db", shared))
    billing.write_accounts([marketing_account("promo")])
    refused = billing.plan()
    assert refused.code == 1 and "account.promo is managed by no project" in refused.err
    adopted = billing.run("import", "--adopt", "promo")
    assert adopted.code == 0 and "Adopted account.promo" in adopted.err, adopted
    assert "name: promo" in adopted.out
    assert "No changes" in billing.plan().out


def test_a_shared_registry_with_another_projects_accounts(growth, tmp_path):
    assert growth.apply().code == 0
    shared = f"sqlite:///{growth.dir}/.mailform/staging.db"
    billing = project_cli(tmp_path / "billing", name="billing",
                          project=PROJECT.replace("sqlite:///.mailform/staging.db", shared))
    billing.write_accounts([marketing_account("invoices")])
    plan = billing.plan()
    assert plan.code == 0 and "2 accounts of the registry managed by another project or by " \
        "none: left alone." in plan.out
    assert "will be destroyed" not in plan.out
    assert billing.apply().code == 0
    assert "No changes" in growth.plan().out              # and growth leaves invoices alone
    imported = billing.run("import")
    assert "invoices" in imported.out and "news" not in imported.out
    assert "2 account(s) of the registry are managed by another project" in imported.err
    billing.write_accounts([marketing_account("invoices"),
                            marketing_account("promo")])
    conflict = billing.plan()
    assert conflict.code == 1 and "account.promo is managed by project 'growth'" in conflict.err
    assert "mailform import --adopt promo" in conflict.err
    assert billing.run("import", "--adopt", "promo").code == 0
    assert "No changes" in billing.plan().out
    taken = growth.plan()
    assert taken.code == 1 and "account.promo is managed by project 'billing'" in taken.err
    history = billing.run("history").out
    assert "adopt promo" in history


def test_state_mv_and_state_rm(growth):
    assert growth.apply().code == 0
    serial = json.loads(growth.run("history", "--format", "json").out)[-1]["serial"]
    moved = growth.run("state", "mv", "promo", "promotions")
    assert moved.code == 0 and "Moved account.promo to account.promotions" in moved.out, moved
    removed = growth.run("state", "rm", "news")
    assert removed.code == 0 and "no longer managed" in removed.out
    entries = json.loads(growth.run("history", "--format", "json").out)
    assert [e["serial"] for e in entries[-2:]] == [serial + 1, serial + 2]
    assert [e["action"] for e in entries[-2:]] == ["state mv", "state rm"]
    again = growth.run("state", "rm", "news")
    assert again.code == 1 and "managed by no project" in again.err
    missing = growth.run("state", "mv", "nobody", "x")
    assert missing.code == 1 and "nobody" in missing.err
    growth.write_accounts([marketing_account("promotions", email="promo@example.com",
                                             display_name="Promo")], "manifests/promo.yaml")
    growth.remove("manifests/news.yaml")
    assert "No changes" in growth.plan().out


def test_without_a_project_file_nothing_changes(tmp_path):
    cli = Cli(tmp_path, env={"SUPPORT_SMTP_PASSWORD": "pw"})
    cli.write_accounts([smtp_account("support")])
    assert cli.apply().code == 0 and cli.db.exists()
    assert "No changes" in cli.plan().out
    default = Cli(tmp_path / "default", env={"SUPPORT_SMTP_PASSWORD": "pw"})
    del default.env["MAILFORM_REGISTRY"]
    default.write_accounts([smtp_account("support")])
    assert default.apply().code == 0
    assert (default.dir / ".mailform" / "registry.db").exists()


def test_version_and_shell_completion_are_there(tmp_path):
    cli = Cli(tmp_path)
    version = cli.run("--version")
    assert version.code == 0 and version.out.startswith("mailform, version ")
    script = cli.run(env={"_MAILFORM_COMPLETE": "bash_source"})
    assert script.code == 0 and "_mailform_completion" in script.out, script
    words = cli.run(env={"_MAILFORM_COMPLETE": "bash_complete", "COMP_WORDS": "mailform st",
                         "COMP_CWORD": "1"})
    assert "state" in words.out
    sub = cli.run(env={"_MAILFORM_COMPLETE": "bash_complete", "COMP_WORDS": "mailform state ",
                       "COMP_CWORD": "2"})
    assert "mv" in sub.out and "rm" in sub.out


def test_scripted_session(tmp_path):
    """The story end to end: two environments with their own registries, a rename that
    keeps an activated marketing account active, a removal, and a registry shared with
    another project."""
    growth = project_cli(tmp_path / "growth", PRODUCTION_REGISTRY=f"sqlite:///{tmp_path}/p.db")
    growth.write("manifests/news.yaml", TEMPLATED)
    growth.write_accounts([marketing_account("promo")], "manifests/promo.yaml")
    for environment in ("staging", "production"):
        assert growth.run("validate", "--environment", environment).code == 0
        assert growth.run("registry", "init", "--environment", environment).code == 0
    growth.write("contacts.csv", "email\n" + "".join(f"c{i}@example.com\n" for i in range(1001)))
    assert growth.run("contacts", "import", "contacts.csv").code == 0      # staging: large
    assert growth.apply().code == 0
    assert growth.apply("--environment", "production").code == 0
    assert "pending_activation" in growth.run("state", "list").out
    assert growth.run("accounts", "activate", "promo").code == 0

    growth.write_accounts([marketing_account("promotions", email="promo@example.com",
                                             display_name="Promo")], "manifests/promo.yaml")
    growth.write("manifests/refactors.yaml", dump([
        {"apiVersion": "mailform/v1", "kind": "Moved", "metadata": {"name": "rename-promo"},
         "spec": {"from": "promo", "to": "promotions"}},
        {"apiVersion": "mailform/v1", "kind": "Removed", "metadata": {"name": "drop-news"},
         "spec": {"name": "news"}}]))
    growth.remove("manifests/news.yaml")
    for environment in ("staging", "production"):
        plan = growth.plan("--environment", environment)
        assert "# account.promo has moved to account.promotions" in plan.out, plan
        assert "# account.news will be forgotten" in plan.out
        assert plan.out.rstrip().endswith("0 to destroy, 1 to forget.")
        assert growth.apply("--environment", environment).code == 0
    staging = json.loads(growth.run("state", "list", "--format", "json").out)
    assert {r["name"]: r["activation"] for r in staging} == {"news": "active",
                                                             "promotions": "active"}

    shared = f"sqlite:///{growth.dir}/.mailform/staging.db"
    billing = project_cli(tmp_path / "billing", name="billing",
                          project=PROJECT.replace("sqlite:///.mailform/staging.db", shared))
    billing.write_accounts([marketing_account("invoices")])
    plan = billing.plan()
    assert "2 accounts of the registry managed by another project or by none" in plan.out
    assert "Plan: 1 to add, 0 to change, 0 to destroy." in plan.out
    assert billing.apply().code == 0
    assert billing.run("import", "--adopt", "news").code == 0
    billing.write_accounts([marketing_account("invoices"), growth_news()])
    assert "No changes" in billing.plan().out
    after = growth.plan()
    assert "No changes" in after.out and "2 accounts of the registry" in after.out


def growth_news() -> dict:
    doc = marketing_account("news", display_name="News (staging)")
    doc["spec"] = {"type": "smtp", "email": "news@example.com", "display_name": "News (staging)",
                   "smtp": {"host": "smtp.staging.example.com", "port": 587,
                            "security": "starttls", "password": {"env": "NEWS_SMTP_PASSWORD"}},
                   "shared": True}
    return doc


def test_reconcile_takes_the_guards_limits(tmp_path):
    cli = project_cli(tmp_path)
    accounts = [marketing_account(f"m{i}") for i in range(12)]
    cli.write_accounts(accounts)
    assert cli.apply().code == 0
    cli.write_accounts(accounts[:10])                      # 2 of 12: 17%
    args = ("reconcile", "--once", "--auto-apply", "--skip-verify")
    blocked = cli.run(*args, "--max-destroy-percent", "10")
    assert blocked.code == 3 and "2 of 12 (17%), limit 10%" in blocked.err, blocked
    applied = cli.run(*args)                               # the default, 30%
    assert applied.code == 0 and "applied" in applied.out, applied


def test_a_saved_plan_is_applied_to_the_environment_it_names(growth, tmp_path):
    production = ("--environment", "production")
    assert growth.run("registry", "init", *production).code == 0
    assert growth.plan("-o", "production.plan", *production).code == 0
    stale = growth.apply("production.plan")              # staging's registry: not its own
    assert stale.code in (1, 4), stale
    applied = growth.apply("production.plan", *production)
    assert applied.code == 0, applied
    assert "news" in growth.run("state", "list", *production).out
    assert "news" not in growth.run("state", "list").out


@pytest.mark.skipif(not in_process(), reason="watches the call in this process")
def test_plan_verify_trusts_only_a_registry_the_runner_named(growth, monkeypatch):
    """A registry URL written in the project file can be changed by a pull request: its
    applied servers are not trusted with credentials (a variable or a flag is the
    runner's)."""
    from reconciler.workflow import run
    seen = []
    monkeypatch.setattr(run, "verify_plan",
                        lambda *args, trust_registry=True, **kw: seen.append(trust_registry)
                        or [])
    growth.plan("--verify")                                   # staging: written in the file
    growth.plan("--verify", "--environment", "production")   # production: {env: …}
    growth.plan("--verify", "--registry", "sqlite:///elsewhere.db")
    growth.plan("--verify", env={"MAILFORM_REGISTRY": "sqlite:///elsewhere.db"})
    assert seen == [False, True, True, True]


def test_a_failed_plan_verify_is_in_the_pull_request_comment_and_the_log(growth):
    """The CI kit posts `plan --verify --format markdown` and fails the job on exit 1: the
    comment names the failed check, and stderr (the job's log) says why it failed."""
    import socket
    with socket.socket() as probe:             # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    growth.write_accounts([smtp_account("news", password_env="NEWS_SMTP_PASSWORD",
                                        smtp={"host": "127.0.0.1", "port": port,
                                              "security": "starttls",
                                              "password": {"env": "NEWS_SMTP_PASSWORD"}})],
                          "manifests/news.yaml")
    planned = growth.plan("--verify", "--format", "markdown", "--detailed-exitcode")
    assert planned.code == 1, planned
    assert "> [!CAUTION]" in planned.out and "> - `news` smtp: connection_refused" in planned.out
    assert "❌ **verify smtp:** `connection_refused" in planned.out
    assert "Error: connectivity checks failed for news (smtp: connection_refused)" in planned.err
