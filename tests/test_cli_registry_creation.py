"""Who creates a registry (issue 10, problem 4): only `apply` and `registry init`.

plan, state, history, import, verify and validate never create one: a missing
registry is planned against (and shown) as empty, with one line saying so; a
mistyped URL leaves no folder, database or key file behind. A folder mailform
creates for a registry carries a `.gitignore` of `*`.
"""
from __future__ import annotations

import json
import os

import pytest

from clihelpers import Cli, marketing_account, smtp_account

SECRETS = {"SUPPORT_SMTP_PASSWORD": "pw-support-1"}
NOTE = "there is no registry at"


@pytest.fixture
def cli(tmp_path):
    c = Cli(tmp_path / "work", env=SECRETS)
    c.write_accounts([smtp_account("support"), marketing_account("news")])
    return c


def test_a_mistyped_registry_is_planned_as_empty_and_nothing_is_created(cli, tmp_path):
    typo = tmp_path / "typo" / "r.db"
    planned = cli.plan("--registry", f"sqlite:///{typo}", "--detailed-exitcode")
    assert planned.code == 2 and "Plan: 2 to add" in planned.out, planned
    (note,) = [line for line in planned.err.splitlines() if NOTE in line]
    assert str(typo) in note and "planning against an empty one" in note
    assert "mailform registry init" in note
    assert not (tmp_path / "typo").exists()


@pytest.mark.parametrize("args", [
    ("plan",), ("plan", "--format", "json"), ("plan", "--verify", "--target", "news"),
    ("state", "list"),
    ("state", "show", "news"), ("history",), ("import",), ("validate",),
    ("verify", "--account", "news"),
])
def test_readers_never_create_the_registry(cli, args):
    result = cli.run(*args)
    assert result.code in (0, 1), result
    assert "Traceback" not in result.text
    assert not (cli.dir / ".mailform").exists(), (args, list(cli.dir.iterdir()))
    if args[0] in ("plan", "state", "history", "import"):
        assert result.err.count(NOTE) == 1, result


def test_empty_views_of_a_missing_registry(cli):
    listed = cli.run("state", "list")
    assert listed.code == 0 and "0 account(s)" in listed.out, listed
    assert json.loads(cli.run("state", "list", "--format", "json").out) == []
    assert cli.run("history").out.strip() == "No applies yet."
    shown = cli.run("state", "show", "news")
    assert shown.code == 1 and "no account 'news'" in shown.err, shown
    as_json = json.loads(cli.plan("--format", "json").out)
    assert as_json["registry"] == {"lineage": "", "serial": 0}
    assert as_json["summary"] == {"add": 2, "change": 0, "destroy": 0}


@pytest.mark.parametrize("args", [
    ("registry", "set", "news", "display_name=X"), ("accounts", "activate", "news"),
    ("force-unlock", "some-id"), ("sender", "preview", "news"),
])
def test_writers_on_existing_accounts_refuse_a_missing_registry(cli, args):
    result = cli.run(*args)
    assert result.code == 1 and NOTE in result.err, result
    assert "`mailform apply` or `mailform registry init` creates it" in result.err
    assert not (cli.dir / ".mailform").exists()


def test_a_saved_plan_is_never_applied_to_a_registry_that_it_creates(cli, tmp_path):
    assert cli.run("registry", "init").code == 0
    assert cli.plan("-o", "x.plan").code == 0
    elsewhere = tmp_path / "elsewhere" / "r.db"
    result = cli.apply("x.plan", env={"MAILFORM_REGISTRY": f"sqlite:///{elsewhere}"})
    assert result.code == 4 and "lineage" in result.err and NOTE in result.err, result
    assert not (tmp_path / "elsewhere").exists()


def test_apply_creates_the_registry_and_its_folder_ignores_itself(cli):
    applied = cli.apply()
    assert applied.code == 0, applied
    folder = cli.dir / ".mailform"
    assert sorted(p.name for p in folder.iterdir()) >= [".gitignore", "reg.db", "reg.db.key"]
    assert (folder / ".gitignore").read_text().splitlines()[-1] == "*"
    assert NOTE not in cli.plan().err


def test_registry_init_creates_it_and_a_folder_that_existed_keeps_its_files(cli, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    url = f"sqlite:///{mine}/r.db"
    assert cli.run("registry", "init", "--registry", url).code == 0
    assert not (mine / ".gitignore").exists()          # not a folder mailform created
    made = tmp_path / "made" / "deeper"
    assert cli.run("registry", "init", "--registry", f"sqlite:///{made}/r.db").code == 0
    assert (made / ".gitignore").exists()


def test_verify_records_status_in_an_existing_registry_only(cli):
    result = cli.run("verify", "--account", "news")
    assert result.code == 0 and not (cli.dir / ".mailform").exists(), result
    assert os.listdir(cli.dir) == ["manifests"]


def _schema_exists(schema: str) -> bool:
    import psycopg
    from test_registry_support import PG_URL
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        return bool(conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname = %s",
                                 (schema,)).fetchone()[0])


def test_state_list_does_not_create_a_postgres_schema(cli):
    from test_registry_support import PG_URL, _postgres_available
    if not _postgres_available():
        pytest.skip("no PostgreSQL server")
    import uuid
    from reconciler.registry.crypto import generate_key
    schema = f"t_{uuid.uuid4().hex[:16]}"
    env = {"MAILFORM_REGISTRY": f"{PG_URL}?schema={schema}", "MAILFORM_MASTER_KEY": generate_key()}
    for args in (("state", "list"), ("plan",), ("history",)):
        result = cli.run(*args, env=env)
        assert result.code == 0 and NOTE in result.err, result
    assert not _schema_exists(schema)
    try:
        assert cli.run("registry", "init", env=env).code == 0
        assert _schema_exists(schema)
        listed = cli.run("state", "list", env=env)
        assert listed.code == 0 and NOTE not in listed.err, listed
    finally:
        import psycopg
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
