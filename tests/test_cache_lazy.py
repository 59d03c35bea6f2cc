"""Accounts played back from the cache keep their models pickled until asked for
(model.lazy): a warm plan unpickles only the accounts it finds changed, and whatever
reads an account gets the model a load without the cache gives."""
from __future__ import annotations

from pathlib import Path

from clihelpers import Cli, smtp_account
from reconciler.manifest import load
from reconciler.model.lazy import AccountStub, Accounts, raw_values, sort_accounts
from reconciler.registry import open_registry
from reconciler.workflow.cache import local_cache
from reconciler.workflow.inputs import Loaded, resolve_all
from reconciler.workflow.run import make_plan

ENV = {"SHARED_PASSWORD": "pw-shared", "OWN_PASSWORD": "pw-own"}


def _account(name: str, password_env: str = "SHARED_PASSWORD") -> dict:
    return smtp_account(name, labels={"team": "mail"},
                        smtp={"host": "smtp.example.com", "port": 587,
                              "security": "starttls", "username": f"{name}-user",
                              "password": {"env": password_env}})


def _cli(tmp_path: Path) -> Cli:
    cli = Cli(tmp_path / "w", env=ENV)
    for index in range(3):
        cli.write_accounts([_account(f"a{index}x"), _account(f"a{index}y", "OWN_PASSWORD")],
                           f"manifests/f{index}.yaml")
    assert cli.apply().code == 0
    assert cli.plan().code == 0          # (writes the cache)
    return cli


def _unpickled(accounts: Accounts) -> set[str]:
    """The accounts read (a model now) or whose file's models have been unpickled."""
    return {a.name for a in raw_values(accounts)
            if a.__class__ is not AccountStub or a.file.models is not None}


def _warm(cli: Cli, monkeypatch):
    monkeypatch.chdir(cli.dir)
    monkeypatch.delenv("MAILFORM_MASTER_KEY", raising=False)
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    cache = local_cache(cli.url)
    paths = ["manifests"]              # (as the plan that wrote the cache named them)
    return cache, paths, load(paths, cache=cache.docs)


def test_a_warm_plan_of_unchanged_accounts_unpickles_no_model(tmp_path, monkeypatch):
    cli = _cli(tmp_path)
    cache, _, desired = _warm(cli, monkeypatch)
    assert cache.docs.hits == 3
    stubs = list(raw_values(desired.accounts))
    assert len(stubs) == 6 and all(s.__class__ is AccountStub for s in stubs)
    loaded = Loaded(desired, resolve_all(raw_values(desired.accounts)), cache=cache)
    assert set(loaded.secrets.values["a1y"].values()) == {"pw-own"}
    assert set(loaded.secrets.values["a1x"].values()) == {"pw-shared"}
    with open_registry(cli.url) as registry:
        plan = make_plan(registry, loaded)
    assert not plan.has_changes
    assert _unpickled(desired.accounts) == set()


def test_a_changed_account_unpickles_its_file_only(tmp_path, monkeypatch):
    cli = _cli(tmp_path)
    monkeypatch.chdir(cli.dir)
    assert cli.run("registry", "set", "a1x", "display_name=Edited out of band").code == 0
    cache, _, desired = _warm(cli, monkeypatch)
    loaded = Loaded(desired, resolve_all(raw_values(desired.accounts)), cache=cache)
    with open_registry(cli.url) as registry:
        plan = make_plan(registry, loaded)
    assert [rc.name for rc in plan.resource_changes] == ["a1x"]
    assert _unpickled(desired.accounts) == {"a1x", "a1y"}       # (f1.yaml's models)


def test_reading_an_account_gives_the_model_an_uncached_load_gives(tmp_path, monkeypatch):
    cli = _cli(tmp_path)
    _, paths, warm = _warm(cli, monkeypatch)
    cold = load(paths)
    assert list(warm.accounts) == list(cold.accounts) == sorted(cold.accounts)
    for name, model in cold.accounts.items():
        got = warm.accounts[name]
        assert got.__class__ is model.__class__
        assert got.model_dump() == model.model_dump()
        assert got.source == model.source and got.source[0].endswith(".yaml")
        assert warm.accounts.peek(name) is got          # unpickled once, then kept
    assert warm.accounts == cold.accounts
    assert dict(warm.accounts.items()) == dict(cold.accounts.items())


def test_accounts_behaves_as_a_mapping():
    accounts = Accounts()
    accounts["b"] = 2
    accounts["a"] = 1
    assert "a" in accounts and "c" not in accounts and len(accounts) == 2
    assert accounts.get("c") is None and accounts.get("a") == 1
    assert list(sort_accounts(accounts)) == ["a", "b"]
    assert sort_accounts({"b": 2, "a": 1}) == {"a": 1, "b": 2}
    del accounts["a"]
    assert dict(accounts) == {"b": 2}


def test_a_name_met_first_in_a_file_before_a_cached_one_is_reported_the_same(tmp_path):
    cli = _cli(tmp_path)
    cli.write_accounts([_account("a1y")], "manifests/0-first.yaml")
    cached, uncached = cli.plan(), cli.plan("--no-cache")
    assert cached.code == uncached.code == 1
    assert cached.err == uncached.err
    assert "duplicate EmailAccount name 'a1y'" in cached.err and "f1.yaml" in cached.err


def test_an_account_with_warnings_plays_back_its_warnings(tmp_path):
    cli = Cli(tmp_path / "w", env=ENV)
    careless = _account("careless")
    careless["spec"]["smtp"]["verify_certificate"] = False
    cli.write_accounts([_account("fine"), careless], "manifests/f.yaml")
    assert cli.apply().code == 0
    first, cached, uncached = cli.plan(), cli.plan(), cli.plan("--no-cache")
    assert "certificate verification is off" in cached.err
    assert first.err == cached.err == uncached.err and cached.out == uncached.out
