"""Loading many files in worker processes reports exactly what a serial run reports:
the same models, the same errors and warnings at the same positions."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from clihelpers import dump, marketing_account, smtp_account
from reconciler.errors import ManifestError
from reconciler.manifest import load, parallel

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def forced(monkeypatch):
    """Workers for any number of files; counts the pools started."""
    started = []
    real = parallel.start_pool
    monkeypatch.setattr(parallel, "MIN_FILES", 1)
    monkeypatch.setattr(parallel, "MIN_BYTES", 0)
    monkeypatch.setattr(parallel, "can_fork", lambda: True)   # (the test server's thread)
    monkeypatch.setattr(parallel, "start_pool", lambda n: started.append(n) or real(n))
    return started


def _outcome(paths, jobs: str, monkeypatch, **kw):
    monkeypatch.setenv("MAILFORM_JOBS", jobs)
    try:
        desired = load([str(p) for p in paths], **kw)
    except ManifestError as exc:
        return [str(p) for p in exc.problems], [str(w) for w in exc.warnings], None
    return [], [str(w) for w in desired.warnings], (desired.accounts, desired.policy,
                                                    desired.digest)


@pytest.mark.parametrize("lean", [False, True], ids=["plan", "validate"])
@pytest.mark.parametrize("folder", ["bad", "good"])
def test_the_fixtures_in_workers_as_in_one_process(folder, lean, forced, monkeypatch):
    serial = _outcome([FIXTURES / folder], "1", monkeypatch, variables={"team": "x"},
                      lean=lean)
    assert forced == []
    workers = _outcome([FIXTURES / folder], "2", monkeypatch, variables={"team": "x"},
                       lean=lean)
    assert forced == [2]
    assert workers == serial


def test_validate_in_workers_counts_accounts_and_keeps_warnings(tmp_path, forced,
                                                                monkeypatch):
    """validate (lean): the workers send back names, positions and warnings; the counts,
    warnings and a duplicate across files are those of one process."""
    for i in range(12):
        docs = [smtp_account(f"s{i}"), marketing_account(f"m{i}")]
        docs[0]["spec"]["smtp"]["security"] = "none"                  # a warning
        if i == 9:
            docs.append(smtp_account("s2"))                           # a duplicate
        (tmp_path / f"f{i:02d}.yaml").write_text(dump(docs))
    serial = _outcome([tmp_path], "1", monkeypatch, lean=True)
    workers = _outcome([tmp_path], "2", monkeypatch, lean=True)
    assert forced == [2] and workers == serial
    assert any("duplicate" in p for p in serial[0]) and serial[1]
    (tmp_path / "f09.yaml").write_text(dump([smtp_account("s9"), marketing_account("m9")]))
    serial = _outcome([tmp_path], "1", monkeypatch, lean=True)
    workers = _outcome([tmp_path], "2", monkeypatch, lean=True)
    assert workers == serial and serial[0] == [] and len(serial[2][0]) == 24
    assert set(serial[2][0].values()) == {None}                      # counted, not kept


def test_many_files_with_cross_file_problems(tmp_path, forced, monkeypatch):
    for i in range(30):
        docs = [smtp_account(f"s{i}", display_name="{{ var.team }}"), marketing_account(f"m{i}")]
        if i % 7 == 3:
            docs.append(marketing_account(f"m{i - 1}"))              # a duplicate elsewhere
        if i % 11 == 5:
            docs[0]["spec"]["smtp"]["port"] = "587"                  # a wrong type
        (tmp_path / f"f{i:02d}.yaml").write_text(dump(docs) + ("{{ oops" if i == 17 else ""))
    serial = _outcome([tmp_path], "1", monkeypatch, variables={"team": "t"})
    workers = _outcome([tmp_path], "2", monkeypatch, variables={"team": "t"})
    assert forced == [2] and workers == serial and len(serial[0]) >= 6


@pytest.mark.parametrize("max_problems", [1000, 4])
def test_windows_parsed_ahead_register_as_one_process(tmp_path, forced, monkeypatch,
                                                     max_problems):
    """The workers parse the next window of files while this one is registered: across
    many windows (and when the run stops at MAX_PROBLEMS) the outcome is one process's."""
    from reconciler.manifest import loader
    monkeypatch.setattr(loader, "WINDOW", 3)
    monkeypatch.setattr(loader, "MAX_PROBLEMS", max_problems)
    for i in range(20):
        docs = [smtp_account(f"s{i}"), marketing_account(f"m{i}")]
        if i % 6 == 4:
            docs.append(marketing_account(f"m{i - 3}"))              # a duplicate earlier
        if i % 5 == 2:
            docs[0]["spec"]["smtp"]["port"] = "587"                  # a wrong type
        (tmp_path / f"f{i:02d}.yaml").write_text(dump(docs))
    serial = _outcome([tmp_path], "1", monkeypatch)
    workers = _outcome([tmp_path], "2", monkeypatch)
    assert forced == [2] and workers == serial and len(serial[0]) >= 4


def test_clean_files_in_workers_give_the_same_models(tmp_path, forced, monkeypatch):
    for i in range(20):
        (tmp_path / f"f{i:02d}.yaml").write_text(dump(
            [smtp_account(f"s{i}", reply_to={"email": "r@example.com"}),
             marketing_account(f"m{i}", labels={"team": "a"})]))
    serial = _outcome([tmp_path], "1", monkeypatch)
    workers = _outcome([tmp_path], "2", monkeypatch)
    assert workers == serial and len(serial[2][0]) == 40
    assert [a.source for a in serial[2][0].values()] == \
        [a.source for a in workers[2][0].values()]


def test_no_workers_for_a_few_small_files(tmp_path, monkeypatch):
    (tmp_path / "a.yaml").write_text(dump([marketing_account("a")]))
    monkeypatch.setattr(parallel, "start_pool", _never)
    monkeypatch.setenv("MAILFORM_JOBS", "4")
    assert list(load([str(tmp_path)]).accounts) == ["a"]
    assert parallel.jobs({"MAILFORM_JOBS": "1"}) == 1 and parallel.jobs({}) >= 1
    assert parallel.jobs({"MAILFORM_JOBS": "3"}, lean=True) == 3
    assert 1 <= parallel.jobs({}, lean=True) <= parallel.MAX_JOBS
    monkeypatch.setattr(parallel, "_running_now", lambda: 0)
    cpus = len(os.sched_getaffinity(0))
    assert parallel.jobs({}, lean=True) == max(1, min(parallel.MAX_JOBS, cpus))
    monkeypatch.setattr(parallel, "_running_now", lambda: 64)
    assert parallel.jobs({}, lean=True) == 1
    assert os.environ["MAILFORM_JOBS"] == "4"


def _never(n):
    raise AssertionError("no pool for one small file")
