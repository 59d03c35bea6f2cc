"""A round of jobs is queued in one statement (``schedule.defer_many``), and a job like
one already waiting (its queueing lock) is skipped, not queued twice: on a real
PostgreSQL queue."""
from __future__ import annotations

import asyncio

import pytest

import fleetkit
from reconciler.fleet import queue, schedule, tasks
from reconciler.fleet.config import FleetConfig


@pytest.fixture
def config():
    url = fleetkit.new_database()
    config = FleetConfig(url)
    try:
        queue.migrate(config)
        yield config
    finally:
        fleetkit.drop_database(url)


def _defer(config, wanted, force=False) -> int:
    app = tasks.register(queue.make_app(config), config)

    async def go() -> int:
        async with app.open_async():
            return await schedule.defer_many(app, wanted, force=force)
    return asyncio.run(go())


def _waiting(config) -> list[tuple]:
    with queue.connect(config) as conn:
        return conn.execute("SELECT task_name, lock, queueing_lock, args FROM "
                            "procrastinate_jobs WHERE status = 'todo' ORDER BY id").fetchall()


def test_a_round_is_queued_at_once_with_its_locks(config):
    assert _defer(config, [("scan", "a"), ("scan", "b"), ("verify", "a")], force=True) == 3
    assert _waiting(config) == [
        ("scan", "inbox:a", "inbox:a", {"account": "a", "force": True}),
        ("scan", "inbox:b", "inbox:b", {"account": "b", "force": True}),
        ("verify", "verify:a", "verify:a", {"account": "a", "force": True})]


def test_jobs_already_waiting_are_skipped_and_the_others_queued(config, monkeypatch):
    assert _defer(config, [("scan", "a")]) == 1
    assert _defer(config, [("scan", "a"), ("scan", "b"), ("reconcile", None)]) == 2
    assert [row[1] for row in _waiting(config)] == ["inbox:a", "inbox:b", "reconcile"]
    assert _defer(config, [("scan", "a"), ("scan", "b")]) == 0
    monkeypatch.setattr(schedule, "BATCH", 2)          # several statements for one round
    assert _defer(config, [("scan", n) for n in "abcde"]) == 3
    assert len(_waiting(config)) == 6
    assert _defer(config, []) == 0


def test_a_job_queued_meanwhile_is_skipped_and_the_rest_of_its_batch_queued(config,
                                                                            monkeypatch):
    assert _defer(config, [("scan", "b")]) == 1

    async def nothing_waiting(app, locks):          # queued after the look: a race
        return set()
    monkeypatch.setattr(schedule, "_waiting", nothing_waiting)
    assert _defer(config, [("scan", "a"), ("scan", "b"), ("scan", "c")]) == 2
    assert [row[1] for row in _waiting(config)] == ["inbox:b", "inbox:a", "inbox:c"]
