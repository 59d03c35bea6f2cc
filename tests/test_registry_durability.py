"""A kill in the middle of a transaction changes nothing; schema migrations."""
from __future__ import annotations

import signal

import pytest

from reconciler.errors import RegistryError
from reconciler.registry import open_registry
from reconciler.registry.schema import LATEST, MIGRATIONS, Migration
from reconciler.registry.sqlite import SQLiteRegistry
from test_registry_support import (account, apply, backend, reg_url, snapshot,  # noqa: F401
                                   spawn, wait_for_line)

KILLED_MID_APPLY = """
    import sys, time
    from reconciler.registry import open_registry, AccountWrite
    reg = open_registry(sys.argv[1])
    with reg.lock("doomed-apply", lease_seconds=3600):
        with reg.transaction() as txn:
            txn.put_account(AccountWrite("fresh", "smtp", {"email": "f@x.io"},
                                         {"smtp.password": "doomed"}, {}))
            txn.put_account(AccountWrite("keep", "marketing", {"email": "changed@x.io"}, {}, {}))
            txn.delete_account("gone")
            txn.merge_status("keep", {"activation": "pending_activation"})
            txn.add_history({"actor": "doomed", "counts": {"add": 1}, "changes": []})
            reg.upsert_contacts([("new@x.io", {})] + [(f"c{i}@x.io", {}) for i in range(3000)])
            print("IN-TRANSACTION", flush=True)
            time.sleep(60)
"""


def test_sigkill_mid_transaction_leaves_registry_unchanged(reg_url):
    with open_registry(reg_url) as reg:
        apply(reg, account("keep"), account("gone"))
        reg.upsert_contacts([("old@x.io", {"a": "1"})])
        before = snapshot(reg)
    child = spawn(KILLED_MID_APPLY, reg_url)
    wait_for_line(child, "IN-TRANSACTION")
    with open_registry(reg_url) as reg:             # readers are not blocked meanwhile
        assert snapshot(reg) == before
    child.send_signal(signal.SIGKILL)
    child.wait(10)
    with open_registry(reg_url) as reg:
        assert snapshot(reg) == before
        assert reg.current_lock().holder == "doomed-apply"
        assert apply(reg, account("next")) == before["meta"].serial + 1   # dead holder: taken over
        assert reg.current_lock() is None


def _registry_class(url: str):
    if url.startswith("postgresql"):
        from reconciler.registry.postgres import PostgresRegistry
        return PostgresRegistry
    return SQLiteRegistry


def _sqlite_url(tmp_path, monkeypatch) -> str:
    monkeypatch.delenv("MAILFORM_MASTER_KEY", raising=False)
    return f"sqlite:///{tmp_path}/registry.db"


def _tables(reg) -> set[str]:
    return {name for (name,) in reg.store.read("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_v1_database_is_migrated_forward(tmp_path, monkeypatch):
    url = _sqlite_url(tmp_path, monkeypatch)
    with SQLiteRegistry(url, migrations=MIGRATIONS[:1]) as old:
        assert old.store.read("PRAGMA user_version")[0][0] == 1
        assert "processed_messages" not in _tables(old)
        apply(old, account("a", secret="survives"))
        lineage = old.meta().lineage
    with open_registry(url) as reg:
        assert reg.store.read("PRAGMA user_version")[0][0] == LATEST == reg.schema_version()
        assert "processed_messages" in _tables(reg)
        assert reg.meta().lineage == lineage
        assert reg.secrets("a") == {"smtp.password": "survives"}
        reg.mark_processed("a", "pop3", ["u1"])


def test_a_newer_step_runs_on_open(reg_url):
    with open_registry(reg_url):
        pass
    step = Migration(LATEST + 1, "test step", ("CREATE TABLE extra_step (x TEXT)",))
    with _registry_class(reg_url)(reg_url, migrations=MIGRATIONS + (step,)) as reg:
        assert reg.schema_version() == LATEST + 1
        reg.store.read("SELECT x FROM extra_step")
        assert reg.meta().serial == 0


def test_a_database_newer_than_the_code_is_read_only(reg_url):
    """Rolling upgrades (issue 13): a binary one version behind still reads a newer
    registry and refuses, clearly, to write to it."""
    step = Migration(LATEST + 1, "from the future", ("CREATE TABLE future (x TEXT)",))
    registry_class = _registry_class(reg_url)
    registry_class(reg_url, migrations=MIGRATIONS + (step,)).close()
    with open_registry(reg_url) as reg:
        assert reg.meta().serial == 0                      # reads work
        with pytest.raises(RegistryError, match=rf"schema version {LATEST + 1} is newer than "
                                                rf"this mailform understands \(up to {LATEST}\)"):
            reg.conditions.set("a", "Verified", "True", "LoginSucceeded")


def test_a_failed_migration_changes_nothing(tmp_path, monkeypatch):
    url = _sqlite_url(tmp_path, monkeypatch)
    SQLiteRegistry(url, migrations=MIGRATIONS[:1]).close()
    broken = Migration(2, "broken", ("CREATE TABLE half (x TEXT)", "NOT SQL AT ALL"))
    with pytest.raises(RegistryError):
        SQLiteRegistry(url, migrations=(MIGRATIONS[0], broken))
    with SQLiteRegistry(url, migrations=MIGRATIONS[:1]) as reg:
        assert reg.store.read("PRAGMA user_version")[0][0] == 1
        assert "half" not in _tables(reg)


def test_migration_steps_must_be_in_order(tmp_path, monkeypatch):
    url = _sqlite_url(tmp_path, monkeypatch)
    with pytest.raises(RegistryError, match="out of order"):
        SQLiteRegistry(url, migrations=(MIGRATIONS[1], MIGRATIONS[0]))


def test_concurrent_first_opens_agree(reg_url):
    code = """
        import sys
        from reconciler.registry import open_registry
        print("READY", flush=True)
        sys.stdin.readline()
        with open_registry(sys.argv[1]) as reg:
            print(reg.meta().lineage, reg.fingerprint("smtp.password", "x"))
    """
    procs = [spawn(code, reg_url) for _ in range(3)]
    for proc in procs:
        wait_for_line(proc, "READY")
    for proc in procs:
        proc.stdin.write("GO\n")
        proc.stdin.flush()
    results = [proc.communicate(timeout=60) for proc in procs]
    assert all(proc.returncode == 0 for proc in procs), [err for _, err in results]
    assert len({out for out, _ in results}) == 1       # one lineage, one key
