"""Rolling upgrades: a binary that finds a registry newer than it understands can read it
but refuses to write, with a clear message (SQLite and PostgreSQL)."""
from __future__ import annotations

import base64
import os
import sqlite3
from pathlib import Path

import pytest

import clihelpers
from fleetkit import drop_database, new_database
from reconciler.errors import RegistryError
from reconciler.registry import open_registry
from reconciler.registry.schema import LATEST

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT = """\
apiVersion: mailform/v1
kind: EmailAccount
metadata: {name: news}
spec: {type: marketing, email: news@example.com, display_name: News, shared: true}
"""


def _newer_sqlite(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {LATEST + 1}")
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(LATEST + 1),))
        conn.execute("CREATE TABLE from_the_future (x TEXT)")     # what the newer one added


def _env(tmp_path):
    env = dict(os.environ, MAILFORM_REGISTRY=f"sqlite:///{tmp_path}/registry.db", NO_COLOR="1")
    env.pop("MAILFORM_MASTER_KEY", None)
    return env


def test_older_binary_reads_a_newer_sqlite_registry_but_does_not_write(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "a.yaml").write_text(ACCOUNT)
    env = _env(tmp_path)
    applied = clihelpers.mailform("apply", str(tmp_path / "m"), "--auto-approve", env=env, cwd=ROOT)
    assert applied.returncode == 0, applied.stderr
    _newer_sqlite(tmp_path / "registry.db")
    shown = clihelpers.mailform("state", "list", env=env, cwd=ROOT)
    assert shown.returncode == 0 and "news" in shown.stdout
    assert clihelpers.mailform("history", env=env, cwd=ROOT).returncode == 0
    (tmp_path / "m" / "a.yaml").write_text(ACCOUNT.replace("display_name: News,", "display_name: Renamed,"))
    planned = clihelpers.mailform("plan", str(tmp_path / "m"), env=env, cwd=ROOT)
    assert planned.returncode in (0, 2) and "Renamed" in planned.stdout
    refused = clihelpers.mailform("apply", str(tmp_path / "m"), "--auto-approve", env=env,
                                  cwd=ROOT)
    assert refused.returncode != 0
    message = refused.stderr
    assert f"schema version {LATEST + 1} is newer than this mailform understands" in message
    assert "upgrade mailform" in message and "Traceback" not in message


@pytest.fixture
def pg_url(monkeypatch):
    url = new_database("mf_roll")
    monkeypatch.setenv("MAILFORM_MASTER_KEY", base64.urlsafe_b64encode(os.urandom(32)).decode())
    yield url
    drop_database(url)


def test_older_binary_beside_a_newer_postgres_registry(pg_url):
    with open_registry(pg_url) as registry:
        registry.conditions.set("news", "Verified", "True", "LoginSucceeded")
        registry.store.read("UPDATE meta SET value = %s WHERE key = 'schema_version' "
                            "RETURNING value", (str(LATEST + 1),))
    with open_registry(pg_url, create=False) as older:
        assert older.conditions.get("news", "Verified").status == "True"   # reads work
        assert older.accounts() == {}
        with pytest.raises(RegistryError, match="newer than this mailform understands"):
            older.conditions.set("news", "Verified", "False", "AuthFailed")
