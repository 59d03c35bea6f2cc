"""Registry: meta, accounts, transactions, operator edits, status, history, contacts."""
from __future__ import annotations

import threading
from pathlib import Path

import pytest

from reconciler.errors import NotFoundError, RegistryError
from reconciler.registry import open_registry
from reconciler.registry.sqlite import sqlite_path
from test_registry_support import (account, apply, backend, reg_url, registry,  # noqa: F401
                                   snapshot)


def test_new_registry_has_lineage_and_serial_zero(registry):
    meta = registry.meta()
    assert len(meta.lineage) == 36 and meta.serial == 0
    assert registry.accounts() == {} and registry.history() == []


def test_lineage_is_set_once_and_serial_bumps_per_write(reg_url):
    with open_registry(reg_url) as reg:
        lineage = reg.meta().lineage
        assert apply(reg, account("a")) == 1
        assert reg.set_field("a", "display_name", "Changed") == 2
    with open_registry(reg_url) as reg:
        assert reg.meta().lineage == lineage
        assert reg.meta().serial == 2
        assert apply(reg, account("b")) == 3
        assert reg.meta().lineage == lineage


def test_account_round_trip(registry):
    write = account("newsletter", secret="s3cret")
    apply(registry, write)
    stored = registry.account("newsletter")
    assert stored.spec == write.spec and stored.applied == write.spec
    assert stored.type == "smtp" and stored.status == {"activation": "active"}
    fp = registry.fingerprint("smtp.password", "s3cret")
    assert fp.startswith("hmac-sha256:") and len(fp) == len("hmac-sha256:") + 64
    assert stored.fingerprints == stored.applied_fingerprints == {"smtp.password": fp}
    assert registry.secrets("newsletter") == {"smtp.password": "s3cret"}
    assert list(registry.accounts()) == ["newsletter"]
    assert registry.account("missing") is None


def test_fingerprint_mixes_in_the_path(registry):
    assert registry.fingerprint("smtp.password", "x") != registry.fingerprint("inbox.password", "x")
    assert registry.fingerprint("smtp.password", "x") == registry.fingerprint("smtp.password", "x")


def test_put_account_updates_and_merges_status(registry):
    apply(registry, account("a"))
    registry.set_status("a", {"verification": {"smtp": {"result": "ok"}}})
    update = account("a", secret="pw-2", display_name="New")
    update.status = {"verification": {"inbox": {"result": "timeout"}}}
    apply(registry, update)
    stored = registry.account("a")
    assert stored.spec["display_name"] == "New" == stored.applied["display_name"]
    assert stored.status == {"activation": "active", "verification": {
        "smtp": {"result": "ok"}, "inbox": {"result": "timeout"}}}
    assert registry.secrets("a") == {"smtp.password": "pw-2"}


def test_account_without_secrets(registry):
    apply(registry, account("m", secret=None, type="marketing"))
    assert registry.secrets("m") == {}
    assert registry.account("m").fingerprints == {}


def test_wrong_fingerprint_is_refused(registry):
    write = account("a")
    write.fingerprints = {"smtp.password": "hmac-sha256:" + "0" * 64}
    with pytest.raises(RegistryError, match="fingerprint"):
        apply(registry, write)
    assert registry.accounts() == {}


def test_delete_account(registry):
    apply(registry, account("a"), account("b"))
    apply(registry, delete=("a",))
    assert list(registry.accounts()) == ["b"]
    with pytest.raises(NotFoundError):
        apply(registry, delete=("a",))
    with pytest.raises(NotFoundError):
        registry.secrets("a")


def test_transaction_rolls_back_on_exception(registry):
    apply(registry, account("keep"))
    before = snapshot(registry)
    with pytest.raises(ZeroDivisionError):
        with registry.transaction() as txn:
            txn.put_account(account("new"))
            txn.delete_account("keep")
            txn.merge_status("new", {"x": 1})
            txn.add_history({"actor": "t", "counts": {}, "changes": []})
            1 / 0
    assert snapshot(registry) == before
    with registry.transaction() as txn:   # the connection is usable again
        txn.put_account(account("after"))
    assert "after" in registry.accounts()


def test_transaction_object_is_dead_after_the_block(registry):
    with registry.transaction() as txn:
        pass
    with pytest.raises(RegistryError):
        txn.put_account(account("late"))


def test_nested_writes_join_the_open_transaction(registry):
    apply(registry, account("a"))
    with pytest.raises(RuntimeError):
        with registry.transaction() as txn:
            txn.put_account(account("b"))
            registry.set_status("a", {"note": "inside"})
            raise RuntimeError
    assert "note" not in registry.account("a").status
    assert "b" not in registry.accounts()


def test_history_oldest_first_with_actor_counts_changes(registry, monkeypatch):
    monkeypatch.setenv("MAILFORM_ACTOR", "ci-bot")
    apply(registry, account("a"))
    with registry.transaction() as txn:
        txn.add_history({"counts": {"add": 0, "change": 1}, "changes": [{"path": "x"}],
                         "plan_checksum": "sha256:abc"})
    first, second = registry.history()
    assert (first["serial"], first["actor"], first["changes"]) == (1, "tests", ["a"])
    assert second["actor"] == "ci-bot" and second["serial"] == 2
    assert second["counts"] == {"add": 0, "change": 1}
    assert second["plan_checksum"] == "sha256:abc"
    assert second["time"].endswith("Z")


@pytest.mark.parametrize("path, value, expect", [
    ("display_name", "Edited", {"display_name": "Edited"}),
    ("smtp.port", 465, {"smtp": {"host": "smtp.example.com", "port": 465,
                                 "security": "starttls"}}),
    ("reply_to.name", "Replies", {"reply_to": {"name": "Replies"}}),
    ("labels.team", "sales", {"labels": {"team": "sales"}}),
])
def test_set_field_edits_live_spec_only(registry, path, value, expect):
    apply(registry, account("a"))
    serial = registry.meta().serial
    assert registry.set_field("a", path, value) == serial + 1
    stored = registry.account("a")
    assert stored.applied == account("a").spec            # what apply wrote
    assert stored.spec == {**account("a").spec, **expect}  # live: drifted
    last = registry.history()[-1]                            # an operator's edit, not an apply
    assert (last["serial"], last["action"], last["account"], last["field"]) == (
        serial + 1, "set", "a", path)
    assert "value" not in last


def test_set_field_on_a_secret_changes_live_fingerprint_only(registry):
    apply(registry, account("a", secret="old"))
    registry.set_field("a", "smtp.password", "new")
    stored = registry.account("a")
    assert stored.fingerprints["smtp.password"] == registry.fingerprint("smtp.password", "new")
    assert stored.applied_fingerprints["smtp.password"] == registry.fingerprint("smtp.password", "old")
    assert stored.spec == stored.applied
    assert registry.secrets("a") == {"smtp.password": "new"}
    registry.set_field("a", "inbox.password", "in")
    assert registry.secrets("a") == {"smtp.password": "new", "inbox.password": "in"}
    assert "inbox.password" not in registry.account("a").applied_fingerprints


def test_set_field_errors(registry):
    with pytest.raises(NotFoundError):
        registry.set_field("ghost", "display_name", "x")
    apply(registry, account("a"))
    with pytest.raises(RegistryError, match="not a mapping"):
        registry.set_field("a", "display_name.inner", "x")
    with pytest.raises(RegistryError, match="invalid field path"):
        registry.set_field("a", "smtp..port", 1)
    assert registry.meta().serial == 1


def test_activate_pending_account(registry):
    pending = account("m", secret=None, type="marketing")
    pending.status = {"activation": "pending_activation"}
    apply(registry, pending)
    assert registry.activate("m") == 2
    assert registry.account("m").status["activation"] == "active"
    with pytest.raises(RegistryError, match="not pending"):
        registry.activate("m")
    with pytest.raises(NotFoundError):
        registry.activate("ghost")


def test_set_status_does_not_bump_serial(registry):
    apply(registry, account("a"))
    registry.set_status("a", {"last_scan": {"time": "t", "processed": 3}})
    registry.set_status("a", {"last_scan": {"processed": 4}})
    assert registry.account("a").status["last_scan"] == {"time": "t", "processed": 4}
    assert registry.meta().serial == 1
    with pytest.raises(NotFoundError):
        registry.set_status("ghost", {})


def test_set_status_adds_counters_in_its_transaction(registry):
    apply(registry, account("a"))
    registry.set_status("a", {"last_scan": {"processed": 2}},
                        add={"bounce_totals": {"hard": 2, "soft": 0}})
    registry.set_status("a", {"last_scan": {"processed": 1}},
                        add={"bounce_totals": {"hard": 1, "unverified": 1}})
    status = registry.account("a").status
    assert status["bounce_totals"] == {"hard": 3, "soft": 0, "unverified": 1}
    assert status["last_scan"] == {"processed": 1}


def test_concurrent_status_writers_on_their_own_connections_lose_nothing(reg_url):
    """Scans counting bounces and verifications recording their result for one account,
    each on its own connection (a fleet's jobs, `inbox scan` beside them): the row is
    locked from its read to its write, so no merge overwrites another's."""
    with open_registry(reg_url) as reg:
        apply(reg, account("a"))
    rounds, errors = 25, []

    def scanner() -> None:
        with open_registry(reg_url) as reg:
            for _ in range(rounds):
                reg.set_status("a", {"last_scan": {"ok": True}},
                               add={"bounce_totals": {"hard": 1}})

    def verifier(role: str) -> None:
        with open_registry(reg_url) as reg:
            for n in range(rounds):
                reg.set_status("a", {"verification": {role: {"n": n}}})

    def run(target, *args) -> None:
        try:
            target(*args)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
    threads = [threading.Thread(target=run, args=(scanner,)) for _ in range(3)]
    threads += [threading.Thread(target=run, args=(verifier, role))
                for role in ("smtp", "inbox")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with open_registry(reg_url) as reg:
        status = reg.account("a").status
    assert status["bounce_totals"] == {"hard": 3 * rounds}
    assert status["verification"] == {"smtp": {"n": rounds - 1}, "inbox": {"n": rounds - 1}}


def test_threads_share_one_registry(registry):
    apply(registry, *(account(f"a{i}") for i in range(4)))

    def worker(i: int) -> None:
        for n in range(20):
            registry.set_status(f"a{i}", {"verification": {"smtp": {"n": n}}})
            registry.accounts()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(a.status["verification"]["smtp"]["n"] == 19
               for a in registry.accounts().values())


# -- contacts -------------------------------------------------------------------

def test_contacts_upsert_is_case_insensitive_and_merges_details(registry):
    assert registry.upsert_contacts([("Ann@Example.com", {"first": "Ann"}),
                                     ("bob@example.com", {}),
                                     ("ANN@example.com", {"city": "Oslo"})]) == (2, 0)
    assert registry.upsert_contacts([("ann@EXAMPLE.com", {"first": "Anna"}),
                                     ("cy@example.com", {"first": "Cy"})]) == (1, 1)
    assert registry.contact_count() == 3
    ann = registry.contact("ANN@example.com")
    assert ann["email"] == "ann@example.com" and ann["status"] == "active"
    assert ann["details"] == {"first": "Anna", "city": "Oslo"}
    assert [c["email"] for c in registry.contacts()] == [
        "ann@example.com", "bob@example.com", "cy@example.com"]
    assert registry.contact("nobody@example.com") is None


def test_contacts_upsert_in_bulk(registry):
    rows = [(f"user{i:05d}@example.com", {"n": str(i)}) for i in range(1200)]
    assert registry.upsert_contacts(rows) == (1200, 0)
    assert registry.upsert_contacts(rows[:700]) == (0, 700)
    assert registry.contact_count() == 1200


def test_bounces_mark_contacts_faulty(registry):
    registry.upsert_contacts([("hard@x.io", {}), ("soft@x.io", {}), ("old@x.io", {})])
    assert registry.record_bounce("hard@x.io", "hard", "5.1.1", "a") == "faulty"
    assert registry.record_bounce("soft@x.io", "blocked", "5.7.1", "a") == "active"
    for day in (1, 2):
        assert registry.record_bounce("soft@x.io", "soft", "4.2.2", "a",
                                      when=f"2026-01-0{day}T00:00:00Z") == "active"
    assert registry.record_bounce("soft@x.io", "soft", "4.2.2", "a",
                                  when="2026-01-03T00:00:00Z") == "faulty"
    for when in ("2025-01-01T00:00:00Z", "2025-06-01T00:00:00Z", "2026-01-01T00:00:00Z"):
        status = registry.record_bounce("old@x.io", "soft", None, "a", when=when)
    assert status == "active"        # the older two fell out of the 30-day window
    assert len(registry.contact("old@x.io")["soft_bounces"]) == 1
    assert registry.record_bounce("stranger@x.io", "hard", "5.1.1", "a") is None
    assert registry.contact_count() == 3
    assert [c["email"] for c in registry.contacts(status="faulty")] == ["hard@x.io", "soft@x.io"]
    assert registry.contact("hard@x.io")["last_bounce"]["status"] == "5.1.1"


def test_soft_bounces_are_stored_as_before(registry):
    """The stored history keeps its JSON shape (no migration for the policy module)."""
    registry.upsert_contacts([("soft@x.io", {})])
    registry.record_bounce("soft@x.io", "soft", "4.2.2", "news", when="2026-01-01T00:00:00Z")
    contact = registry.contact("soft@x.io")
    assert contact["soft_bounces"] == [
        {"time": "2026-01-01T00:00:00.000Z", "status": "4.2.2", "account": "news"}]
    assert contact["last_bounce"] == {"time": "2026-01-01T00:00:00.000Z", "kind": "soft",
                                      "status": "4.2.2", "account": "news"}


def test_record_message_reports_before_and_after(registry):
    registry.upsert_contacts([("hard@x.io", {}), ("blocked@x.io", {})])
    outcomes = registry.record_message("a", "imap:INBOX:1", 5, [
        ("hard@x.io", "hard", "5.1.1"), ("blocked@x.io", "blocked", "5.7.1"),
        ("stranger@x.io", "hard", "5.1.1"), ("HARD@x.io", "soft", "4.2.2")])
    assert outcomes == [("active", "faulty"), ("active", "active"), (None, None),
                        ("faulty", "faulty")]
    assert registry.contact("blocked@x.io")["last_bounce"] is None
    assert registry.processed_uids("a", "imap:INBOX:1") == {"5"}


def test_processed_messages(registry):
    key = "imap:INBOX:12345"
    assert not registry.is_processed("a", key, 7)
    registry.mark_processed("a", key, [7, 8])
    registry.mark_processed("a", key, [8, 9])
    assert registry.is_processed("a", key, 7) and registry.is_processed("a", key, "9")
    assert not registry.is_processed("a", "pop3", 7)
    assert registry.processed_uids("a", key) == {"7", "8", "9"}


# -- opening ----------------------------------------------------------------------

@pytest.mark.parametrize("url, expected", [
    ("sqlite:///rel/dir/r.db", Path("rel/dir/r.db")),
    ("sqlite:////abs/dir/r.db", Path("/abs/dir/r.db")),
    ("plain/r.db", Path("plain/r.db")),
])
def test_sqlite_urls(url, expected):
    assert sqlite_path(url) == expected


def test_relative_url_creates_folder_under_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MAILFORM_MASTER_KEY", raising=False)
    with open_registry("sqlite:///.mailform/registry.db") as reg:
        assert reg.meta().serial == 0
    assert (tmp_path / ".mailform" / "registry.db").is_file()
    assert (tmp_path / ".mailform" / "registry.db.key").is_file()
    with open_registry(str(tmp_path / "plain" / "r.db")) as reg:
        assert reg.meta().serial == 0


def test_bad_urls(tmp_path):
    with pytest.raises(RegistryError, match="unsupported registry URL"):
        open_registry("mysql://x/y")
    with pytest.raises(RegistryError, match="invalid SQLite registry URL"):
        open_registry("sqlite://host/x.db")


def test_closed_registry_says_so(registry):
    registry.close()
    with pytest.raises(RegistryError, match="closed"):
        registry.meta()


# -- PostgreSQL specifics ------------------------------------------------------------

def test_postgres_url_keeps_schema_and_hides_password():
    from reconciler.registry.postgres import split_url
    conninfo, schema, shown = split_url(
        "postgresql://bob:hunter2@db.example:5433/reg?schema=team_a&sslmode=require")
    assert conninfo == "postgresql://bob:hunter2@db.example:5433/reg?sslmode=require"
    assert schema == "team_a"
    assert shown == "postgresql://bob:***@db.example:5433/reg?schema=team_a&sslmode=require"
    assert split_url("postgresql://root@h/test")[1] is None


def test_postgres_connection_error_hides_password(monkeypatch):
    monkeypatch.setenv("MAILFORM_MASTER_KEY", __import__(
        "reconciler.registry.crypto", fromlist=["x"]).generate_key())
    with pytest.raises(RegistryError, match="cannot open the registry") as err:
        open_registry("postgresql://bob:hunter2@127.0.0.1:1/test?connect_timeout=2")
    assert "hunter2" not in str(err.value)


def test_postgres_needs_the_master_key(backend, reg_url, monkeypatch):
    if backend != "postgres":
        pytest.skip("PostgreSQL only")
    monkeypatch.delenv("MAILFORM_MASTER_KEY")
    with pytest.raises(RegistryError, match="needs MAILFORM_MASTER_KEY"):
        open_registry(reg_url)


# -- existence, key source, signatures ------------------------------------------------

def test_registry_exists_only_once_created(reg_url):
    from reconciler.registry import registry_exists
    assert not registry_exists(reg_url)
    with open_registry(reg_url) as reg:
        assert registry_exists(reg_url)
        source = reg.key_source()
    assert source == "MAILFORM_MASTER_KEY" or source.startswith("key file ")


def test_signatures_are_keyed_by_the_registry(reg_url, tmp_path, monkeypatch):
    with open_registry(reg_url) as reg:
        first = reg.sign("plan", b"payload")
        assert first == reg.sign("plan", b"payload")
        assert first != reg.sign("plan", b"payload!") != reg.sign("other", b"payload")
    monkeypatch.delenv("MAILFORM_MASTER_KEY", raising=False)
    with open_registry(f"sqlite:///{tmp_path}/other/registry.db") as other:
        assert other.sign("plan", b"payload") != first
