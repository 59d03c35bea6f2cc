"""A SQLite registry on a read-only file system (a read-only bind mount in a private mount
namespace, as a container mounts it; CI runs as root, so permissions alone would not stop
it): plan, state list/show and history work; every write fails with a registry error that
says why (exit 1) and the files stay as they were. Also with permissions alone, for a user
who is not root (run as `nobody` when the tests run as root)."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import site
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from clihelpers import ROOT, Cli, Result, smtp_account

SECRETS = {"SUPPORT_SMTP_PASSWORD": "pw-support-1", "ALICE_SMTP_PASSWORD": "pw-alice-1"}
_MOUNT_RO = ('mount --bind "$1" "$1" && mount -o remount,ro,bind "$1" "$1" && shift '
             '&& exec "$@"')


def _can_unshare() -> bool:
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "-m", "sh", "-c", _MOUNT_RO, "sh", "/tmp", "true"],
                           capture_output=True, timeout=30)
    return probe.returncode == 0


needs_unshare = pytest.mark.skipif(not _can_unshare(),
                                   reason="needs root and mount namespaces (unshare -m)")


@pytest.fixture
def cli(tmp_path):
    c = Cli(tmp_path, env=dict(SECRETS))
    c.write_accounts([smtp_account("support"), smtp_account("alice")])
    assert c.apply().code == 0
    assert c.run("registry", "set", "alice", "smtp.port=2525").code == 0   # drift to show
    return c


def _read_only_run(cli: Cli, *args: str, env: dict | None = None) -> Result:
    """`mailform ARGS` in a private mount namespace where the registry's folder is a
    read-only bind mount of itself."""
    folder = str(cli.db.parent)
    argv = ["unshare", "-m", "sh", "-c", _MOUNT_RO, "sh", folder,
            sys.executable, "-m", "reconciler", *args]
    proc = subprocess.run(argv, cwd=cli.dir, env={**cli.env, **(env or {})},
                          capture_output=True, text=True, timeout=120)
    return Result(proc.returncode, proc.stdout, proc.stderr, tuple(args))


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.iterdir())}


def _reads_work(run) -> None:
    listed = run("state", "list")
    assert listed.code == 0 and "2 account(s)" in listed.out, listed
    shown = run("state", "show", "alice", "--format", "json")
    assert shown.code == 0 and json.loads(shown.out)["spec"]["smtp"]["port"] == 2525, shown
    history = run("history")
    assert history.code == 0 and "apply +2 ~0 -0" in history.out, history
    plan = run("plan", "--format", "json")
    assert plan.code == 0, plan
    assert [d["address"] for d in json.loads(plan.out)["drift"]] == ["account.alice"]


def _writes_fail(run) -> None:
    for args in (("apply", "--auto-approve", "--skip-verify"),
                 ("registry", "set", "alice", "smtp.port=25"),
                 ("accounts", "activate", "alice"), ("registry", "rekey")):
        result = run(*args)
        assert result.code == 1, result
        assert "is read-only here" in result.err, result
        assert "internal error" not in result.err


@needs_unshare
def test_reads_work_and_writes_fail_clearly_on_a_read_only_mount(cli):
    before = _digests(cli.db.parent)
    assert not Path(f"{cli.db}-shm").exists()       # WAL mode, closed: no -shm to read
    run = lambda *args: _read_only_run(cli, *args)  # noqa: E731
    _reads_work(run)
    assert "read-only file system" in run("registry", "rekey").err
    _writes_fail(run)
    saved = run("plan", "-o", str(cli.dir / "ro.plan"))
    assert saved.code == 0, saved                    # signing needs only the key
    assert _digests(cli.db.parent) == before
    applied = cli.run("apply", "--auto-approve", "--skip-verify", "ro.plan")
    assert applied.code == 0, applied                # and it applies where writable


@needs_unshare
def test_reads_see_the_writes_of_a_writer_that_still_has_the_file_open(cli):
    """A writer elsewhere keeps the registry open (its -wal holds a commit not yet copied
    into the file): read-only reads go through its -shm and see that commit."""
    code = (f"import sys, time; sys.path.insert(0, {str(ROOT)!r})\n"
            "import sqlite3\n"
            "from reconciler.registry import open_registry\n"
            f"reg = open_registry({cli.url!r})\n"
            "reg.store._conn.execute('PRAGMA wal_autocheckpoint = 0')\n"
            "reg.set_field('alice', 'display_name', 'Seen Through WAL')\n"
            "print('written', flush=True); time.sleep(60)\n")
    writer = subprocess.Popen([sys.executable, "-c", code], env=cli.env, cwd=cli.dir,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "written"
        assert Path(f"{cli.db}-wal").stat().st_size > 0
        shown = _read_only_run(cli, "state", "show", "alice", "--format", "json")
        assert shown.code == 0, shown
        assert json.loads(shown.out)["spec"]["display_name"] == "Seen Through WAL"
    finally:
        writer.kill()
        writer.wait()


@needs_unshare
def test_a_registry_that_does_not_exist_cannot_be_created_on_a_read_only_mount(tmp_path):
    cli = Cli(tmp_path, env=dict(SECRETS))
    cli.db.parent.mkdir(parents=True)
    listed = _read_only_run(cli, "state", "list")            # a reader creates nothing
    assert listed.code == 0 and "there is no registry" in listed.err, listed
    created = _read_only_run(cli, "registry", "init")        # a writer cannot
    assert created.code == 1 and "cannot open the registry" in created.err, created
    assert "internal error" not in created.err
    assert list(cli.db.parent.iterdir()) == []


# -- permissions only (no read-only mount) ----------------------------------------------

def _nobody_python(env: dict) -> list[str] | None:
    """An interpreter that user nobody can run with mailform importable, or None."""
    for python in (sys.executable, "/usr/bin/python3"):
        try:
            probe = subprocess.run([python, "-c", "import reconciler.cli, cryptography"],
                                   env=env, capture_output=True, user=65534, group=65534,
                                   extra_groups=[], cwd="/", timeout=60)
        except OSError:
            continue                          # not even executable for nobody
        if probe.returncode == 0:
            return [python]
    return None


@pytest.fixture
def read_only_copy(cli):
    """(working folder, registry folder, env): as root, the project copied where user
    nobody can reach it, the registry's folder owned by nobody; then, for both, the
    registry made read-only by permissions alone (folder 0555, files 0444, key 0400)."""
    if os.geteuid() != 0:
        yield _locked_down(cli.dir, cli.db.parent, dict(cli.env))
        return
    base = Path(tempfile.mkdtemp(prefix="mailform-ro-"))
    try:
        os.chmod(base, 0o755)
        work = base / "work"
        shutil.copytree(cli.dir, work)
        for path in work.rglob("*"):
            if not path.name.endswith(".key"):
                os.chmod(path, 0o755 if path.is_dir() else 0o644)
        os.chmod(work, 0o755)
        folder = work / cli.db.parent.name
        for path in [folder, *folder.iterdir()]:
            os.chown(path, 65534, 65534)
        env = {**cli.env, "MAILFORM_REGISTRY": f"sqlite:///{folder / cli.db.name}",
               "HOME": str(base)}
        yield _locked_down(work, folder, env)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _locked_down(work: Path, folder: Path, env: dict) -> tuple[Path, Path, dict]:
    for path in folder.iterdir():
        os.chmod(path, 0o400 if path.name.endswith(".key") else 0o444)
    os.chmod(folder, 0o555)
    return work, folder, env


def test_permissions_alone_make_it_read_only_for_a_user_who_is_not_root(cli, read_only_copy):
    work, folder, env = read_only_copy
    as_nobody = os.geteuid() == 0
    env = {**env, "PYTHONPATH": os.pathsep.join([str(ROOT), *site.getsitepackages()])}
    python = _nobody_python(env) if as_nobody else [sys.executable]
    if python is None:
        pytest.skip("no interpreter that user nobody can run with mailform importable")
    user = {"user": 65534, "group": 65534, "extra_groups": []} if as_nobody else {}
    before = _digests(folder)

    def run(*args: str) -> Result:
        proc = subprocess.run([*python, "-m", "reconciler", *args], cwd=work, env=env,
                              capture_output=True, text=True, timeout=120, **user)
        return Result(proc.returncode, proc.stdout, proc.stderr, args)
    try:
        _reads_work(run)
        _writes_fail(run)
        assert _digests(folder) == before
    finally:
        os.chmod(folder, 0o755)
        for path in folder.iterdir():
            os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
