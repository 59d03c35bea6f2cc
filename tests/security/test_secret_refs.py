"""Secrets are read only where the runner allows (SECURITY.md, "Secret references").

A manifest author could write ``password: {file: ../../../../etc/shadow}`` (or the
registry's key file, ``/proc/self/environ``, a FIFO that hangs the run) or
``{env: MAILFORM_MASTER_KEY}`` and have it sent to a server of theirs. ``{file:}`` must
resolve, after symlinks, inside the manifests' root or MAILFORM_SECRET_DIRS, never in the
registry's folder, and be a regular file; ``{env:}`` never names mailform's settings and,
with MAILFORM_SECRET_ENV, only allowed names. Errors name the reference, never a value.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from boundhelpers import in_child, no_traceback
from clihelpers import Cli, smtp_account
from reconciler.errors import SecretError
from reconciler.manifest import SecretPolicy, load, manifests_root, resolve
from reconciler.manifest.secrets import registry_denials
from reconciler.model import SecretRef

VALUE = "s3cret-value-that-must-not-leak"


def _resolve(ref: dict, base: Path, environ=None, policy=None) -> str:
    return resolve(SecretRef(**ref), str(base), "news", "spec.smtp.password",
                   environ if environ is not None else {}, policy)


def _refusal(ref: dict, base: Path, environ=None, policy=None) -> str:
    with pytest.raises(SecretError) as caught:
        _resolve(ref, base, environ, policy)
    message = str(caught.value)
    assert message.startswith("account news: spec.smtp.password: ")
    assert VALUE not in message
    return message


@pytest.fixture
def manifests(tmp_path: Path) -> Path:
    folder = tmp_path / "repo" / "manifests"
    folder.mkdir(parents=True)
    (folder / "pw").write_text(VALUE + "\n")
    (tmp_path / "outside").write_text(VALUE)
    return folder


@pytest.mark.parametrize("path", ["../../outside", "/etc/passwd", "/proc/self/environ",
                                  "../../../../../../../../etc/hostname", "/dev/stdin"])
def test_a_file_outside_the_manifests_root_is_refused(manifests, path):
    assert "resolves outside the manifests' root" in _refusal({"file": path}, manifests)


def test_a_symlink_is_followed_before_the_check(manifests, tmp_path):
    (manifests / "sneaky").symlink_to(tmp_path / "outside")
    (manifests / "fine").symlink_to(manifests / "pw")
    assert "resolves outside" in _refusal({"file": "sneaky"}, manifests)
    assert _resolve({"file": "fine"}, manifests) == VALUE


def test_the_runner_allows_more_folders_with_MAILFORM_SECRET_DIRS(manifests, tmp_path):
    store = tmp_path / "run-secrets"
    store.mkdir()
    (store / "db").write_text(VALUE)
    environ = {"MAILFORM_SECRET_DIRS": os.pathsep.join(["/nonexistent", str(store)])}
    assert _resolve({"file": str(store / "db")}, manifests, environ) == VALUE
    assert "outside" in _refusal({"file": str(store / "db")}, manifests)


def test_the_registry_folder_is_never_read(manifests, tmp_path):
    folder = manifests / ".mailform"
    folder.mkdir()
    (folder / "reg.db.key").write_text(VALUE)
    environ = {"MAILFORM_REGISTRY": f"sqlite:///{folder}/reg.db"}
    message = _refusal({"file": ".mailform/reg.db.key"}, manifests, environ)
    assert "registry's folder or files" in message
    policy = SecretPolicy.from_env(roots=[str(manifests)],
                                   registry_url=f"sqlite:///{folder}/reg.db")
    assert "registry" in _refusal({"file": ".mailform/reg.db.key"}, manifests, policy=policy)


def test_a_registry_at_the_top_of_the_checkout_denies_only_its_own_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folders, files = registry_denials("sqlite:///reg.db")
    assert folders == () and files == (os.path.realpath(tmp_path / "reg.db"),)
    (tmp_path / "reg.db.key").write_text(VALUE)
    (tmp_path / "pw").write_text(VALUE)
    environ = {"MAILFORM_REGISTRY": "sqlite:///reg.db"}
    assert "registry" in _refusal({"file": "reg.db.key"}, tmp_path, environ)
    assert _resolve({"file": "pw"}, tmp_path, environ) == VALUE


def _resolve_fifo(base: str) -> str:
    try:
        return _resolve({"file": "pipe"}, Path(base))
    except SecretError as exc:
        return str(exc)


def test_a_fifo_is_refused_without_blocking(manifests):
    os.mkfifo(manifests / "pipe")          # nobody ever writes: opening it would hang
    started = time.monotonic()
    status, message = in_child(_resolve_fifo, str(manifests), seconds=20)
    assert status == "ok" and "is a FIFO, not a regular file" in message
    assert time.monotonic() - started < 20


def test_a_device_is_refused(manifests):
    environ = {"MAILFORM_SECRET_DIRS": "/dev"}
    assert "a device, not a regular file" in _refusal({"file": "/dev/zero"}, manifests, environ)
    assert "not a regular file" in _refusal({"file": "/dev/null"}, manifests, environ)


@pytest.mark.parametrize("name", ["MAILFORM_MASTER_KEY", "MAILFORM_REGISTRY", "mailform_master_key",
                                  "MAILFORM_SECRET_ENV"])
def test_mailforms_own_settings_are_never_secrets(manifests, name):
    environ = {name: VALUE}
    assert "mailform's own settings" in _refusal({"env": name}, manifests, environ)


def test_MAILFORM_SECRET_ENV_allows_only_matching_names(manifests):
    environ = {"MAILFORM_SECRET_ENV": "SMTP_*, NEWS_PASSWORD", "SMTP_NEWS": VALUE,
               "NEWS_PASSWORD": VALUE, "AWS_SECRET_ACCESS_KEY": VALUE}
    assert _resolve({"env": "SMTP_NEWS"}, manifests, environ) == VALUE
    assert _resolve({"env": "NEWS_PASSWORD"}, manifests, environ) == VALUE
    refused = _refusal({"env": "AWS_SECRET_ACCESS_KEY"}, manifests, environ)
    assert "MAILFORM_SECRET_ENV does not allow" in refused
    unset = _refusal({"env": "GITHUB_TOKEN"}, manifests, environ)
    assert unset.replace("GITHUB_TOKEN", "X") == refused.replace("AWS_SECRET_ACCESS_KEY", "X")


def test_the_manifests_root_covers_every_path_given(manifests, tmp_path, monkeypatch):
    sub = manifests / "team" / "a.yaml"
    sub.parent.mkdir()
    sub.write_text("")
    assert manifests_root([str(manifests)]) == os.path.realpath(manifests)
    assert manifests_root([str(sub)]) == os.path.realpath(sub.parent)
    assert manifests_root([str(sub), str(manifests)]) == os.path.realpath(manifests)
    monkeypatch.chdir(manifests)
    assert manifests_root([]) == os.path.realpath(manifests)


def test_a_symlink_planted_in_the_checkout_does_not_move_the_root(tmp_path, monkeypatch):
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (checkout / "manifests").symlink_to("/etc")
    monkeypatch.chdir(checkout)
    root = manifests_root(["manifests"])
    assert root == os.path.join(os.path.realpath(checkout), "manifests")
    policy = SecretPolicy.from_env(roots=[root], environ={})
    assert "outside" in _refusal({"file": "hostname"}, checkout / "manifests", policy=policy)


ACCOUNT = """\
apiVersion: mailform/v1
kind: EmailAccount
metadata: {name: news}
spec:
  type: smtp
  email: news@example.com
  display_name: News
  shared: true
  smtp: {host: smtp.example.com, port: 587, security: starttls, password: {file: ../secrets/pw}}
"""


def test_the_policy_of_a_load_is_its_manifests_root(manifests):
    (manifests / "team").mkdir()
    (manifests / "team" / "a.yaml").write_text(ACCOUNT)
    (manifests / "secrets").mkdir()
    (manifests / "secrets" / "pw").write_text(VALUE)
    desired = load([str(manifests)])
    assert desired.root == os.path.realpath(manifests)
    account = desired.accounts["news"]
    base = manifests / "team"
    policy = desired.secret_policy(environ={})
    assert _resolve({"file": "../secrets/pw"}, base, policy=policy) == VALUE
    # without the caller's policy, only the manifest's own folder is allowed
    assert "outside" in _refusal({"file": "../secrets/pw"}, base)
    assert account.source[0].endswith("a.yaml")


# -- through the CLI -------------------------------------------------------------------------

def _plan(cli: Cli, **env: str):
    result = cli.run_subprocess("plan", env=env or None, timeout=60)
    assert no_traceback(result.text), result
    return result


def test_plan_refuses_a_file_outside_and_prints_no_content(tmp_path):
    cli = Cli(tmp_path)
    (tmp_path / "loot").write_text(VALUE)
    cli.write_accounts([smtp_account("news", smtp={"host": "evil.example", "port": 587,
                                                   "security": "starttls",
                                                   "password": {"file": "../loot"}})])
    result = _plan(cli)
    assert result.code == 1 and "resolves outside the manifests' root" in result.err
    assert VALUE not in result.text


def test_plan_refuses_a_fifo_without_hanging(tmp_path):
    cli = Cli(tmp_path)
    cli.write_accounts([smtp_account("news", smtp={"host": "smtp.example.com", "port": 587,
                                                   "security": "starttls",
                                                   "password": {"file": "pipe"}})])
    os.mkfifo(tmp_path / "manifests" / "pipe")
    result = _plan(cli)
    assert result.code == 1 and "FIFO" in result.err


def test_plan_refuses_the_master_key_as_a_secret(tmp_path):
    key = "mk-" + "A" * 40
    cli = Cli(tmp_path, env={"MAILFORM_MASTER_KEY": key})
    cli.write_accounts([smtp_account("news", password_env="MAILFORM_MASTER_KEY")])
    result = _plan(cli)
    assert result.code == 1 and "mailform's own settings" in result.err
    assert key not in result.text


def test_a_secret_file_beside_the_manifests_still_works(tmp_path):
    cli = Cli(tmp_path)
    cli.write("manifests/secrets/pw", VALUE + "\n")
    cli.write_accounts([smtp_account("news", smtp={"host": "smtp.example.com", "port": 587,
                                                   "security": "starttls",
                                                   "password": {"file": "secrets/pw"}})])
    result = _plan(cli)
    assert result.code == 0, result
    assert VALUE not in result.text


def test_imported_secret_names_resolve_but_settings_never_do():
    """`mailform import` writes {env: MAILFORM_<ACCOUNT>_<SMTP|INBOX>_PASSWORD}; those stay
    readable, every other MAILFORM_* name (the master key, the registry URL) never is."""
    from reconciler.manifest.export import env_name
    from reconciler.manifest.secrets import SecretPolicy
    policy = SecretPolicy()
    for name in (env_name("news-letter", "smtp.password"), env_name("a", "inbox.password")):
        assert policy.env_refusal(name) is None, name
    for name in ("MAILFORM_MASTER_KEY", "MAILFORM_REGISTRY", "MAILFORM_CA_FILE",
                 "mailform_master_key", "MAILFORM_SMTP_PASSWORD_X"):
        assert policy.env_refusal(name), name


def test_plan_never_reads_the_registry_key_even_inside_the_root(tmp_path):
    """PATHS `.`: the checkout is the manifests' root and holds the registry; its key file
    is refused with the registry's URL the runner passed (here MAILFORM_REGISTRY)."""
    cli = Cli(tmp_path)
    cli.run("registry", "init")
    key_file = cli.db.with_name(cli.db.name + ".key")
    assert key_file.exists()
    cli.write_accounts([smtp_account("news", smtp={
        "host": "evil.example", "port": 587, "security": "starttls",
        "password": {"file": os.path.relpath(key_file, tmp_path / "manifests")}})])
    result = cli.plan(".")
    assert result.code == 1 and "registry" in result.err, result
    assert key_file.read_text().strip() not in result.text
