"""The registry part ``scan_state`` on SQLite and PostgreSQL: marks, a batch's transaction,
resets on a new UIDVALIDITY, forgetting what the server no longer has."""
from __future__ import annotations


import psycopg
import pytest

from fleetkit import drop_database, new_database
from reconciler.registry import open_registry


@pytest.fixture(params=["sqlite", "postgres"])
def registry(request, tmp_path, monkeypatch):
    if request.param == "sqlite":
        reg = open_registry(f"sqlite:///{tmp_path}/reg.db")
        yield reg
        reg.close()
        return
    try:
        url = new_database("mf_scanstate")
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL at 127.0.0.1:5432: {exc}")
    monkeypatch.setenv("MAILFORM_MASTER_KEY", "A" * 43 + "=")
    reg = open_registry(url)
    yield reg
    reg.close()
    drop_database(url)


def test_mark_moves_with_its_batch(registry):
    state = registry.scan_state
    assert state.mark("a", "imap:INBOX") == ("", 0)
    with state.batch():
        registry.record_message("a", "imap:INBOX:9", "4000000000", [])   # UIDs are 32-bit
        state.advance("a", "imap:INBOX", "9@h", 4000000000)
    assert state.mark("a", "imap:INBOX") == ("9@h", 4000000000)
    with pytest.raises(RuntimeError), state.batch():
        registry.record_message("a", "imap:INBOX:9", "4000000001", [])
        state.advance("a", "imap:INBOX", "9@h", 4000000001)
        raise RuntimeError("crash inside the batch")
    assert state.mark("a", "imap:INBOX") == ("9@h", 4000000000)
    assert registry.processed_uids("a", "imap:INBOX:9") == {"4000000000"}


def test_remembered_above_and_forget(registry):
    state = registry.scan_state
    registry.mark_processed("a", "imap:INBOX:1", ["2", "10", "300"])
    assert state.remembered("a", "imap:INBOX:1", above=9) == {"10", "300"}
    assert state.remembered_count("a", "imap:INBOX:1", up_to=10) == 2
    assert state.forget("a", "imap:INBOX:1", ["10", "999"]) == 1
    assert state.remembered("a", "imap:INBOX:1") == {"2", "300"}


def test_reset_forgets_other_id_spaces_of_the_folder_only(registry):
    state = registry.scan_state
    registry.mark_processed("a", "imap:INBOX:1", ["1"])
    registry.mark_processed("a", "imap:INBOX:2", ["1"])
    registry.mark_processed("a", "imap:Bounces:1", ["1"])
    registry.mark_processed("b", "imap:INBOX:1", ["1"])
    assert state.reset("a", "imap:INBOX", "2@h", "imap:INBOX:2", keep_current=True) == 1
    assert registry.processed_uids("a", "imap:INBOX:2") == {"1"}
    assert registry.processed_uids("a", "imap:Bounces:1") == {"1"}
    assert registry.processed_uids("b", "imap:INBOX:1") == {"1"}
    assert state.reset("a", "imap:INBOX", "2@other", "imap:INBOX:2") == 1
    assert registry.processed_uids("a", "imap:INBOX:2") == set()
    assert state.mark("a", "imap:INBOX") == ("2@other", 0)


def test_a_deleted_or_moved_account_takes_its_marks(registry):
    state = registry.scan_state
    state.advance("old", "imap:INBOX", "1", 5)
    state.advance("gone", "imap:INBOX", "1", 7)
    with state.batch() as cur:
        state.rename_account(cur, "old", "new")
        state.forget_account(cur, "gone")
    assert state.mark("new", "imap:INBOX") == ("1", 5)
    assert state.mark("gone", "imap:INBOX") == ("", 0)
