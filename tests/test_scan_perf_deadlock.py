"""A batch the database rolled back for it to be tried again (a deadlock between two scans'
batches, SQLSTATE 40P01; a serialization failure, 40001) is tried again at once: the scan
ends without an error, every message counted once. Any other registry error still ends
the scan with that error, and so does a rollback that keeps coming back. A fake mailbox
on a real SQLite registry (the rollback is made to happen); on a real PostgreSQL
registry older than its event counter, concurrent first scans (whose first events create
the counter) end without an error, and without a deadlock to retry."""
from __future__ import annotations

import threading

import pytest

import fleetkit
from reconciler.bounces import scan as scan_mod
from reconciler.bounces.mailbox import FETCH_BATCH
from reconciler.errors import RegistryError
from reconciler.registry import open_registry
from reconciler.registry.base import AccountWrite
from test_scan_unit import SETTINGS, FakeMailbox, dsn


class RolledBack(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"rolled back ({sqlstate})")
        self.sqlstate = sqlstate


def _registry(url: str, names=("news",)):
    reg = open_registry(url)
    with reg.lock("test"), reg.transaction() as tx:
        for name in names:
            tx.put_account(AccountWrite(name, "smtp", {"email": f"{name}@example.com"}, {},
                                        {}))
        tx.add_history({"actor": "test", "counts": {}, "changes": []})
    reg.upsert_contacts([(f"c{i}@example.com", {}) for i in range(6)])
    return reg


@pytest.fixture
def registry(tmp_path):
    reg = _registry(f"sqlite:///{tmp_path}/reg.db")
    yield reg
    reg.close()


def _failing(registry, monkeypatch, failures: list):
    """record_messages fails, after writing, with the next of ``failures`` (None: that
    call works; once they are used up, every call works)."""
    real = registry.record_messages
    calls = []

    def record(*args, **kwargs):
        calls.append([m[0] for m in args[2]])
        out = real(*args, **kwargs)
        cause = failures.pop(0) if failures else None
        if cause is not None:
            raise RegistryError(f"registry x: {cause}") from cause
        return out
    monkeypatch.setattr(registry, "record_messages", record)
    return calls


def _scan(registry, box, monkeypatch, batch=10000):
    monkeypatch.setattr(scan_mod, "open_mailbox", lambda settings: box)
    return scan_mod.scan_account(registry, "news", SETTINGS, batch, False)


@pytest.mark.parametrize("sqlstate", ["40P01", "40001"])
def test_a_rolled_back_batch_is_tried_again_at_once(registry, monkeypatch, sqlstate):
    messages = {str(i): dsn(f"c{i % 6}@example.com", "4.2.2")
                for i in range(1, FETCH_BATCH + 11)}
    box = FakeMailbox(messages)
    calls = _failing(registry, monkeypatch, [RolledBack(sqlstate)])
    report = _scan(registry, box, monkeypatch)
    assert report.ok and report.scanned == len(messages), report.error
    assert report.bounces["soft"] == len(messages)
    assert calls[0] == calls[1] and len(calls) == 3      # the first batch twice, then the rest
    assert registry.processed_uids("news", box.key) == set(messages)
    assert registry.account("news").status["bounce_totals"]["soft"] == len(messages)
    soft = sum(len(registry.contact(f"c{i}@example.com")["soft_bounces"]) for i in range(6))
    assert soft == len(messages)                        # nothing counted twice


def test_the_retry_keeps_the_runs_batch_size(registry, monkeypatch):
    messages = {str(i): dsn(f"c{i % 6}@example.com", "4.2.2")
                for i in range(1, 2 * FETCH_BATCH + 1)}
    box = FakeMailbox(messages)
    calls = _failing(registry, monkeypatch, [None, RolledBack("40P01")])
    report = _scan(registry, box, monkeypatch, batch=FETCH_BATCH + 10)
    assert report.ok and report.scanned == FETCH_BATCH + 10
    assert [len(c) for c in calls] == [FETCH_BATCH, 10, 10]
    assert report.remaining == len(messages) - FETCH_BATCH - 10


def test_other_registry_errors_and_endless_rollbacks_end_the_scan(registry, monkeypatch):
    box = FakeMailbox({"1": dsn("c0@example.com", "4.2.2")})
    _failing(registry, monkeypatch, [RolledBack("23505")])
    report = _scan(registry, box, monkeypatch)
    assert not report.ok and "23505" in report.error and report.scanned == 0
    calls = _failing(registry, monkeypatch, [RolledBack("40P01")] * (scan_mod.AT_ONCE + 1))
    report = _scan(registry, box, monkeypatch)
    assert not report.ok and "40P01" in report.error
    assert len(calls) == scan_mod.AT_ONCE + 1
    assert registry.processed_uids("news", box.key) == set()


def test_concurrent_first_scans_on_postgresql_end_without_an_error(monkeypatch):
    """The first batches of a registry made before its event counter was made with it
    create the counter: made to run at the same time, they each insert it, the first
    one's row wins and the others count on it. (They used to take ``LOCK TABLE meta``
    after an ``UPDATE meta`` that found no row: deadlock victims, which the scans tried
    again at once.)"""
    from reconciler.registry import events
    monkeypatch.setenv("MAILFORM_MASTER_KEY", fleetkit.master_key())
    url = fleetkit.new_database()
    names = [f"n{i}" for i in range(4)]
    try:
        with _registry(url, names) as reg:    # no contact shared: no row lock in common
            reg.upsert_contacts([(f"{n}.c{i}@example.com", {}) for n in names
                                 for i in range(6)])
            with reg.store.write() as cur:     # as a registry of an earlier mailform
                cur.execute("DELETE FROM meta WHERE key = 'event_seq'")
        boxes = {n: FakeMailbox({str(i): dsn(f"{n}.c{i % 6}@example.com", "4.2.2").replace(
            b"news@example.com", f"{n}@example.com".encode()) for i in range(1, 21)})
            for n in names}                  # each quoting its own account: counted
        monkeypatch.setattr(scan_mod, "open_mailbox", lambda settings: boxes[settings.username])
        together, mine = threading.Barrier(len(names)), threading.local()
        real = events._numbered_insert

        def numbered_insert(*args):          # every first batch past its UPDATE meta at once
            out = real(*args)
            if not getattr(mine, "waited", False):
                mine.waited = True
                try:
                    together.wait(10)
                except threading.BrokenBarrierError:
                    pass
            return out
        monkeypatch.setattr(events, "_numbered_insert", numbered_insert)
        reports, retried = {}, []
        real_retry = scan_mod.rolled_back_to_retry
        monkeypatch.setattr(scan_mod, "rolled_back_to_retry",
                            lambda exc: retried.append(str(exc)) or real_retry(exc))

        def one(name):
            with open_registry(url, create=False) as reg:
                settings = SETTINGS.__class__(**{**SETTINGS.__dict__, "username": name})
                reports[name] = scan_mod.scan_account(reg, name, settings, 100, False)
        threads = [threading.Thread(target=one, args=(n,)) for n in names]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert retried == []
        assert all(r.ok and r.bounces["soft"] == 20 for r in reports.values()), {
            n: r.error for n, r in reports.items()}
        with open_registry(url, create=False) as reg:
            seqs = [e["seq"] for e in reg.events.since()]
            processed = sum(len(reg.processed_uids(n, boxes[n].key)) for n in names)
        assert processed == 20 * len(names)
        assert seqs == list(range(1, len(seqs) + 1)) and seqs
    finally:
        fleetkit.drop_database(url)
