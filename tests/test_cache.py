"""The local cache (.mailform/cache): a second plan reads what did not change, and a
cache that is corrupt, forged, another registry's or unwritable changes nothing."""
from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import pytest

from clihelpers import Cli, marketing_account, smtp_account
from reconciler.manifest import load
from reconciler.workflow.cache import DocStore, RowStore, cache_key, local_cache

PASSWORDS = {"NEWS_SMTP_PASSWORD": "pw-news", "SALES_SMTP_PASSWORD": "pw-sales"}
CACHE = Path(".mailform") / "cache"


def _cli(tmp_path: Path, name: str = "w") -> Cli:
    cli = Cli(tmp_path / name, env=PASSWORDS)
    cli.write_accounts([smtp_account("news"), marketing_account("promo")],
                       "manifests/a.yaml")
    cli.write_accounts([smtp_account("sales", display_name="Sales {{ var.team }}")],
                       "manifests/b.yaml")
    assert cli.apply("--var", "team=one").code == 0
    return cli


def _plan(cli: Cli, *args: str):
    return cli.plan("--format", "json", "--var", "team=two", *args)


def _entries(cli: Cli) -> list[Path]:
    return sorted(p for p in (cli.dir / CACHE / "docs").rglob("*") if p.is_file())


def test_a_second_plan_reads_the_cache_and_says_the_same(tmp_path):
    cli = _cli(tmp_path)
    uncached = _plan(cli, "--no-cache")
    assert not (cli.dir / CACHE).exists()            # --no-cache: nothing written
    first, second = _plan(cli), _plan(cli)
    assert first.code == second.code == uncached.code == 0
    assert first.out == second.out == uncached.out
    assert len(_entries(cli)) == 2
    assert (cli.dir / CACHE / "rows").exists()        # the rows, as digests (SQLite too)


def test_rows_kept_as_digests_read_their_text_only_when_the_plan_looks(tmp_path):
    cli = _cli(tmp_path)
    assert _plan(cli).code == 0                      # keeps the rows
    cli.write_accounts([smtp_account("news", display_name="Renamed desk")],
                       "manifests/a.yaml")
    cached, uncached = _plan(cli), _plan(cli, "--no-cache")
    assert cached.code == uncached.code == 0 and cached.out == uncached.out
    assert "Renamed desk" in cached.out


def test_the_texts_a_plan_needs_are_read_back_in_one_query(tmp_path, monkeypatch):
    from reconciler.registry.sqlbase import SQLRegistry
    cli = _cli(tmp_path)
    assert _plan(cli).code == 0                      # keeps the rows
    cli.write_accounts([smtp_account("news", display_name="Renamed"),
                        marketing_account("promo", display_name="Also renamed")],
                       "manifests/a.yaml")
    calls: list = []
    real = SQLRegistry.spec_texts
    monkeypatch.setattr(SQLRegistry, "spec_texts",
                        lambda self, names: calls.append(sorted(names)) or real(self, names))
    monkeypatch.setattr(SQLRegistry, "account", lambda self, name: calls.append(name))
    cached = _plan(cli)
    assert calls == [["news", "promo", "sales"]]          # (sales: team=two, not one)
    monkeypatch.undo()
    assert cached.out == _plan(cli, "--no-cache").out and "Also renamed" in cached.out


def test_a_row_kept_as_its_digest_that_changed_since_is_an_error_not_a_wrong_plan():
    from reconciler.errors import RegistryError
    from reconciler.registry.rows import SAME_AS_LIVE, StoredRow, from_kept, kept
    text, fps = '{"display_name":"News"}', {}      # (the same fingerprints: unchanged)
    row = StoredRow("news", "smtp", text, SAME_AS_LIVE, fps, fps, {}, None)
    (item,) = kept([row])
    assert len(item) == 6 and text not in repr(item)
    now = {"news": row}
    again = from_kept([item], now.get)["news"]
    assert again.spec == {"display_name": "News"} and again == row
    now["news"] = StoredRow("news", "smtp", '{"display_name":"Other"}', SAME_AS_LIVE,
                            fps, fps, {}, None)
    with pytest.raises(RegistryError, match="changed in the registry while the plan"):
        from_kept([item], now.get)["news"].spec
    with pytest.raises(RegistryError, match="changed in the registry while the plan"):
        from_kept([item], {}.get)["news"].spec           # gone since


def test_the_cache_holds_no_secret(tmp_path):
    cli = _cli(tmp_path)
    _plan(cli)
    blobs = b"".join(p.read_bytes() for p in (cli.dir / CACHE).rglob("*") if p.is_file())
    assert blobs and b"pw-news" not in blobs and b"pw-sales" not in blobs


def test_corrupt_entries_are_ignored_and_rebuilt(tmp_path):
    cli = _cli(tmp_path)
    expected = _plan(cli).out
    for path in _entries(cli):
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data[: len(data) - 3]))
    assert _plan(cli).out == expected
    assert _plan(cli).out == expected                 # rebuilt: valid again


def test_a_forged_entry_is_never_unpickled(tmp_path):
    cli = _cli(tmp_path)
    expected = _plan(cli).out
    marker = tmp_path / "pwned"
    evil = pickle.dumps(_Evil(str(marker)))
    for path in _entries(cli):
        path.write_bytes(b"\0" * 32 + evil)           # a MAC nobody without the key can make
    assert _plan(cli).out == expected
    assert not marker.exists()


class _Evil:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_another_registrys_cache_is_ignored(tmp_path):
    ours, theirs = _cli(tmp_path, "ours"), _cli(tmp_path, "theirs")
    _plan(theirs)
    shutil.rmtree(ours.dir / CACHE, ignore_errors=True)
    shutil.copytree(theirs.dir / CACHE, ours.dir / CACHE)
    theirs.run("registry", "set", "news", "display_name=Theirs only")
    expected = _plan(ours, "--no-cache").out
    assert _plan(ours).out == expected


def test_a_cache_that_cannot_be_written_is_skipped(tmp_path):
    cli = _cli(tmp_path)
    (cli.dir / CACHE).parent.mkdir(exist_ok=True)
    (cli.dir / CACHE).write_text("not a folder")       # unwritable, whoever runs the tests
    result = _plan(cli)
    assert result.code == 0 and result.out == _plan(cli, "--no-cache").out
    assert (cli.dir / CACHE).read_text() == "not a folder"


def test_read_only_store_is_skipped_quietly(tmp_path, monkeypatch):
    store = DocStore(str(tmp_path / "cache"), b"k" * 32)
    monkeypatch.setattr("reconciler.workflow.cache._write_atomic", _refuse)
    store.put("f.yaml", "text", [])
    assert store.writable is False and store.get("f.yaml", "text") is None


def _refuse(path, data):
    raise OSError(30, "Read-only file system")


def test_errors_are_the_same_with_a_cache(tmp_path):
    cli = _cli(tmp_path)
    _plan(cli)
    cli.write_accounts([smtp_account("news", display_name="Twice")], "manifests/c.yaml")
    cached, uncached = _plan(cli), _plan(cli, "--no-cache")
    assert cached.code == uncached.code == 1
    assert cached.err == uncached.err and "duplicate EmailAccount name 'news'" in cached.err


def test_cached_documents_load_as_the_uncached(tmp_path, monkeypatch):
    cli = _cli(tmp_path)
    monkeypatch.chdir(cli.dir)
    monkeypatch.delenv("MAILFORM_MASTER_KEY", raising=False)
    cache = local_cache(cli.url)
    assert cache is not None
    paths, variables = [str(cli.dir / "manifests")], {"team": "x"}
    cold = load(paths, variables)
    load(paths, variables, cache=cache.docs)
    warm = load(paths, variables, cache=cache.docs)
    assert cache.docs.hits == 2
    assert warm.accounts == cold.accounts and warm.digest == cold.digest
    assert [a.source for a in warm.accounts.values()] == \
        [a.source for a in cold.accounts.values()]


def test_a_first_load_with_a_cache_hands_the_planner_every_record_digest(tmp_path,
                                                                          monkeypatch):
    """The digests the cache makes when it keeps a file (planner._same_by_digest) are the
    planner's at once: the first plan does not make them a second time."""
    from reconciler.diff import record_of
    from reconciler.planner import record_digest
    from reconciler.registry.common import dumps
    cli = _cli(tmp_path)
    monkeypatch.chdir(cli.dir)
    monkeypatch.delenv("MAILFORM_MASTER_KEY", raising=False)
    cache = local_cache(cli.url)
    paths = [str(cli.dir / "manifests")]
    assert load(paths, {"team": "x"}).record_digests == {}     # no cache: none made
    for run in ("cold", "warm"):
        desired = load(paths, {"team": "x"}, cache=cache.docs)
        assert desired.record_digests == {
            name: record_digest(dumps(record_of(account)))
            for name, account in desired.accounts.items()}, run


def test_the_rows_cache_follows_the_registry(tmp_path, monkeypatch):
    cli = _cli(tmp_path)
    monkeypatch.delenv("MAILFORM_MASTER_KEY", raising=False)
    monkeypatch.chdir(cli.dir)
    with cli.registry() as registry:
        store = RowStore(str(cli.dir / CACHE), cache_key(registry), local_too=True)
        first = store.accounts(registry)
        assert not store.hit and store.accounts(registry) == first and store.hit
        assert store.accounts(registry)["news"].spec["display_name"] == "News"
    cli.run("registry", "set", "news", "display_name=Elsewhere")      # serial + 1
    cli.write("contacts.csv", "email\na@example.com\n")
    with cli.registry() as registry:
        store.hit = False
        assert store.accounts(registry)["news"].spec["display_name"] == "Elsewhere"
        assert not store.hit
        assert cli.run("contacts", "import", "contacts.csv").code == 0   # the count
        store.accounts(registry)
        assert not store.hit
        store.path.write_bytes(b"\0" * 32 + pickle.dumps(_Evil(str(tmp_path / "x"))))
        assert store.accounts(registry)["news"].spec["display_name"] == "Elsewhere"
        assert not (tmp_path / "x").exists()
