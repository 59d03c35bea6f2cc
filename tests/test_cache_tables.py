"""The table a run's cache entries share (workflow.shared_table): accounts read from the
cache share what a cold load shares, across files; a table missing, corrupt, forged or
unwritable, and an entry of the older layout, change nothing but are rebuilt; what no
run used for two weeks is swept away."""
from __future__ import annotations

import hashlib
import hmac
import os
import pickle
import time
from pathlib import Path

import pytest

from clihelpers import Cli, smtp_account
from test_cache import _Evil  # (a pickle that writes a file when it is loaded)
from reconciler.manifest import load, parallel
from reconciler.workflow.cache import DocStore, local_cache
from reconciler.workflow.shared_table import TableReader, TableWriter

CACHE = Path(".mailform") / "cache"
ENV = {"SHARED_PASSWORD": "pw-shared"}
FILES = 3


def _account(name: str) -> dict:
    return smtp_account(name, password_env="SHARED_PASSWORD", labels={"team": "mail"},
                        smtp={"host": "smtp.example.com", "port": 587,
                              "security": "starttls", "username": f"{name}-user",
                              "password": {"env": "SHARED_PASSWORD"}})


def _cli(tmp_path: Path) -> Cli:
    cli = Cli(tmp_path / "w", env=ENV)
    for index in range(FILES):
        cli.write_accounts([_account(f"a{index}x"), _account(f"a{index}y")],
                           f"manifests/f{index}.yaml")
    assert cli.apply().code == 0
    return cli


def _plan(cli: Cli, *args: str):
    return cli.plan("--format", "json", *args)


def _tables(cli: Cli) -> list[Path]:
    return sorted(p for p in (cli.dir / CACHE / "tables").glob("*") if p.is_file())


PARTS = {
    "labels": lambda a: a.metadata.labels,
    "secret reference": lambda a: a.spec.smtp.password,
    "host": lambda a: a.spec.smtp.host,
    "type": lambda a: a.spec.type,
    "fields set": lambda a: a.spec.__pydantic_fields_set__,
    "smtp fields set": lambda a: a.spec.smtp.__pydantic_fields_set__,
    "a field's name": lambda a: next(iter(a.spec.__dict__)),
}


def _sharing(accounts: dict) -> dict[str, bool]:
    """For each part: whether every account's is one and the same object."""
    values = list(accounts.values())
    return {name: all(part(a) is part(values[0]) for a in values[1:])
            for name, part in PARTS.items()}


@pytest.mark.parametrize("jobs", ["1", "2"])       # parsed here, or in worker processes
def test_accounts_read_from_the_cache_share_across_files_what_a_cold_load_shares(
        tmp_path, monkeypatch, jobs):
    cli = _cli(tmp_path)
    monkeypatch.chdir(cli.dir)
    monkeypatch.delenv("MAILFORM_MASTER_KEY", raising=False)
    monkeypatch.setenv("MAILFORM_JOBS", jobs)
    monkeypatch.setattr(parallel, "MIN_FILES", 1)
    monkeypatch.setattr(parallel, "MIN_BYTES", 0)
    monkeypatch.setattr(parallel, "can_fork", lambda: True)   # (the test server's thread)
    parsed = []
    real = parallel.parse_all
    monkeypatch.setattr(parallel, "parse_all", lambda *a: parsed.append(1) or real(*a))
    cache = local_cache(cli.url)
    paths = [str(cli.dir / "manifests")]
    cold = load(paths, cache=cache.docs)
    assert bool(parsed) == (jobs == "2")
    assert len(_tables(cli)) == 1                   # one table for the run's entries
    warm = load(paths, cache=cache.docs)
    assert cache.docs.hits == FILES
    assert warm.accounts == cold.accounts
    shared = _sharing(cold.accounts)
    assert shared == dict(dict.fromkeys(PARTS, True), **{
        "a field's name": jobs == "1"})   # (unpickled from a worker: each file its own)
    assert _sharing(warm.accounts) == shared
    assert len(_tables(cli)) == 1                   # a run that writes nothing writes no table


def test_entries_whose_table_is_gone_are_rebuilt(tmp_path):
    cli = _cli(tmp_path)
    expected = _plan(cli, "--no-cache").out
    assert _plan(cli).out == expected
    for table in _tables(cli):
        table.unlink()
    assert _plan(cli).out == expected               # misses: rebuilt, with a new table
    assert len(_tables(cli)) == 1
    assert _plan(cli).out == expected


def test_a_corrupt_table_is_ignored_and_rebuilt(tmp_path):
    cli = _cli(tmp_path)
    expected = _plan(cli).out
    for table in _tables(cli):
        data = bytearray(table.read_bytes())
        data[-5] ^= 0xFF
        table.write_bytes(bytes(data))
    assert _plan(cli).out == expected
    assert _plan(cli).out == expected


def test_a_forged_table_is_never_unpickled(tmp_path):
    cli = _cli(tmp_path)
    expected = _plan(cli).out
    marker = tmp_path / "pwned"
    for table in _tables(cli):
        table.write_bytes(b"\0" * 32 + pickle.dumps(_Evil(str(marker)), protocol=3))
    assert _plan(cli).out == expected
    assert not marker.exists()


def test_a_table_that_cannot_be_written_changes_nothing(tmp_path):
    cli = _cli(tmp_path)
    (cli.dir / CACHE).mkdir(parents=True)
    (cli.dir / CACHE / "tables").write_text("not a folder")
    expected = _plan(cli, "--no-cache").out
    assert _plan(cli).out == expected
    assert _plan(cli).out == expected
    assert (cli.dir / CACHE / "tables").read_text() == "not a folder"


def test_an_entry_of_the_older_layout_is_a_miss_and_is_rewritten(tmp_path):
    """Written before entries shared a table: a plain pickle of the entries."""
    store = DocStore(str(tmp_path / "cache"), b"k" * 32, version="v")
    store.put("f.yaml", "text", [])
    store.flush()
    assert store.get("f.yaml", "text") == [] and store.hits == 1
    path, digest = store._address("f.yaml", "text")
    payload = pickle.dumps([], protocol=pickle.HIGHEST_PROTOCOL)
    path.write_bytes(hmac.new(b"k" * 32, digest + payload, hashlib.sha256).digest() + payload)
    assert store.get("f.yaml", "text") is None and store.misses == 1


def test_an_entry_reads_with_the_whole_table_of_its_run():
    """An entry written when its table held k objects refers only to those, and puts its
    own at k and above: the table as finished (more objects) reads it right."""
    made: list = []
    listed = [0]

    def new_shared() -> list:
        new, listed[0] = made[listed[0]:], len(made)
        return new

    writer = TableWriter(new_shared)
    first, second = "shared-first", frozenset({"a", "b"})
    made.append(first)
    early = writer.dumps([first, "own", ["own"], first])
    made += [second, {"team": first}]
    late = writer.dumps([second, first, made[2], "own"])
    table = TableReader(writer.payload())
    one, two = table.loads(early), table.loads(late)
    assert one == [first, "own", ["own"], first] and one[0] is one[3]
    assert two == [second, first, {"team": first}, "own"]
    assert two[1] is one[0] and two[2]["team"] is one[0]
    assert table.loads(early)[0] is one[0]              # the same objects for every entry


def _age(path: Path, days: float) -> None:
    when = time.time() - days * 86400
    os.utime(path, (when, when))


def test_the_sweep_removes_what_no_run_used_for_two_weeks(tmp_path):
    cli = _cli(tmp_path)
    assert _plan(cli).code == 0
    docs = sorted(p for p in (cli.dir / CACHE / "docs").glob("*/*"))
    assert len(docs) == FILES and len(_tables(cli)) == 1
    for path in docs + _tables(cli):
        _age(path, 30)
    stale = cli.dir / CACHE / "docs" / "00" / ("00" * 32)      # an earlier run's entry
    stale.parent.mkdir(exist_ok=True)
    stale.write_bytes(b"old")
    _age(stale, 30)
    (cli.dir / CACHE / ".swept").unlink(missing_ok=True)
    expected = _plan(cli, "--no-cache").out
    assert _plan(cli).out == expected       # reads (touches) the entries and their table
    assert not stale.exists()
    assert all(p.exists() for p in docs) and len(_tables(cli)) == 1
    assert _plan(cli).out == expected


def test_the_sweep_runs_at_most_once_a_day_and_spares_young_files(tmp_path):
    store = DocStore(str(tmp_path / "cache"), b"k" * 32, version="v")
    store.put("f.yaml", "text", [])
    store.flush()                           # (sweeps: nothing old yet)
    old = store.folder / "ab" / "old"
    old.parent.mkdir(parents=True, exist_ok=True)
    old.write_bytes(b"x")
    _age(old, 15)
    store.flush()
    assert old.exists()                     # swept less than a day ago
    assert store.sweep(force=True) == 1 and not old.exists()
    assert store.get("f.yaml", "text") == []
    assert store.sweep(now=time.time() + 13 * 86400, force=True) == 0
