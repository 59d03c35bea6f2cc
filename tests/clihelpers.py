"""Running the real CLI, and writing manifests.

`Cli.run` calls ``reconciler.cli.main(argv)`` in this process, as a fresh
``python -m reconciler`` would see it: the Cli's environment (exactly, not added to
ours), its directory as the working directory, stdin from ``input`` (never a
terminal), stdout and stderr captured apart, the exit code from ``SystemExit``.
What a command may leave behind in the process (the cwd, ``os.environ``, a frozen
garbage collector, signal handlers, logging handlers, lru caches keyed by relative
paths) is put back after every call — see `run_in_process`.

In-process runs share the process: one at a time (not from several threads at once).
`Cli.run_subprocess` and `Cli.popen` start a real ``python -m reconciler`` for the
few tests that need a process: a SIGKILL, two appliers at once, signals, the real
file descriptors of stdin. MAILFORM_TEST_SUBPROCESS=1 in pytest's environment runs
every `Cli.run` as a process, to tell a harness difference from a product one.

Every `Cli` is isolated: its own working directory, its own SQLite registry
URL (``MAILFORM_REGISTRY``), ``MAILFORM_MASTER_KEY`` unset (so a key file is
created beside the database), no color, a fixed actor.
"""
from __future__ import annotations

import contextlib
import gc
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

import click
import click.formatting
import yaml
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parent.parent
SUBPROCESS_ENV = "MAILFORM_TEST_SUBPROCESS"    # =1: every Cli.run in a child process


def in_process() -> bool:
    """Whether `Cli.run` and `mailform` run here (not MAILFORM_TEST_SUBPROCESS=1)."""
    return os.environ.get(SUBPROCESS_ENV) != "1"


@dataclass
class Result:
    code: int
    out: str
    err: str
    args: tuple

    @property
    def text(self) -> str:
        return self.out + self.err

    # the names of subprocess.CompletedProcess, so a helper can swap one for the other
    @property
    def returncode(self) -> int:
        return self.code

    @property
    def stdout(self) -> str:
        return self.out

    @property
    def stderr(self) -> str:
        return self.err

    def __repr__(self) -> str:   # shown by pytest when an assertion fails
        return (f"Result(args={self.args!r}, code={self.code})\n--- stdout ---\n{self.out}"
                f"\n--- stderr ---\n{self.err}")


class Cli:
    """One isolated mailform user: a working directory and a registry."""

    def __init__(self, workdir: Path, registry_name: str = "reg.db",
                 env: Optional[dict[str, str]] = None):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.db = self.dir / ".mailform" / registry_name
        self.url = f"sqlite:///{self.db}"          # absolute path: sqlite:////abs/path
        self.env = _clean_env()
        self.env.update({"MAILFORM_REGISTRY": self.url, "NO_COLOR": "1",
                         "MAILFORM_ACTOR": "tester", "PYTHONPATH": str(ROOT)})
        self.env.update(env or {})

    # -- running ---------------------------------------------------------------
    def _env(self, extra: Optional[dict]) -> dict[str, str]:
        env = dict(self.env)
        for key, value in (extra or {}).items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        return env

    def run(self, *args: str, env: Optional[dict] = None, input: Optional[str] = None,
            timeout: float = 60, subprocess: bool = False) -> Result:
        """`mailform ARGS` in this process (``subprocess=True``, or MAILFORM_TEST_SUBPROCESS=1
        in the environment of pytest for every call: in a new one)."""
        if subprocess or not in_process():
            return self.run_subprocess(*args, env=env, input=input, timeout=timeout)
        return run_in_process(args, env=self._env(env), cwd=self.dir, input=input)

    def run_subprocess(self, *args: str, env: Optional[dict] = None,
                       input: Optional[str] = None, timeout: float = 60) -> Result:
        """`python -m reconciler ARGS` as a child process (stdin a pipe, never a TTY)."""
        return run_process(args, env=self._env(env), cwd=self.dir, input=input, timeout=timeout)

    def popen(self, *args: str, env: Optional[dict] = None) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "reconciler", *args], cwd=self.dir,
                                env=self._env(env), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def plan(self, *args: str, **kw: Any) -> Result:
        return self.run("plan", *args, **kw)

    def apply(self, *args: str, **kw: Any) -> Result:
        return self.run("apply", "--auto-approve", "--skip-verify", *args, **kw)

    # -- files -----------------------------------------------------------------
    def write(self, relpath: str, text: str) -> Path:
        path = self.dir / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    def write_accounts(self, docs: list[dict], relpath: str = "manifests/accounts.yaml") -> Path:
        return self.write(relpath, dump(docs))

    def remove(self, relpath: str) -> None:
        (self.dir / relpath).unlink()

    def registry(self):
        """The registry opened in this process, with this Cli's environment's key (opened
        under exactly this Cli's environment: a MAILFORM_MASTER_KEY of the shell that runs
        pytest does not replace the key file its runs created)."""
        from reconciler.registry import open_registry
        saved = dict(os.environ)
        os.environ.clear()
        os.environ.update(self.env)
        try:
            return open_registry(self.url)
        finally:
            os.environ.clear()
            os.environ.update(saved)

    def db_files(self) -> list[Path]:
        """The SQLite database, its -wal and -shm files and the key file, those that exist."""
        names = [self.db, Path(f"{self.db}-wal"), Path(f"{self.db}-shm"), Path(f"{self.db}.key")]
        return [p for p in names if p.exists()]


# -- running mailform -----------------------------------------------------------------

def run_process(args: tuple, env: Mapping[str, str], cwd: Path | str,
                input: Optional[str] = None, timeout: float = 60) -> Result:
    """`python -m reconciler ARGS` with exactly ``env``, in ``cwd``."""
    proc = subprocess.run([sys.executable, "-m", "reconciler", *args], cwd=cwd, env=dict(env),
                          input=input if input is not None else "", capture_output=True,
                          text=True, timeout=timeout)
    return Result(proc.returncode, proc.stdout, proc.stderr, tuple(args))


def mailform(*args: str, env: Optional[Mapping[str, str]] = None, cwd: Path | str = ROOT,
             input: Optional[str] = None) -> Result:
    """In-process stand-in for ``subprocess.run([python, "-m", "reconciler", *args],
    env=env, cwd=cwd, capture_output=True, text=True)``: same environment (``env``
    exactly, else this process's), same cwd, stdin from ``input``; the `Result` also
    answers to ``returncode``, ``stdout`` and ``stderr``. MAILFORM_TEST_SUBPROCESS=1 runs
    it as a process, as for `Cli.run`."""
    if not in_process():
        return run_process(args, env=dict(os.environ if env is None else env), cwd=cwd,
                           input=input)
    return run_in_process(args, env=dict(os.environ if env is None else env), cwd=cwd,
                          input=input)


_RUNNER = CliRunner()       # click >= 8.2: stderr is kept apart from stdout
_SIGNALS = [getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGUSR1",
                                               "SIGUSR2", "SIGALRM", "SIGPIPE")
            if hasattr(signal, name)]


def run_in_process(args: tuple, env: Mapping[str, str], cwd: Path | str,
                   input: Optional[str] = None) -> Result:
    """``reconciler.cli.main(list(args))`` here, as if in a fresh process; see the module
    docstring. An exception that escapes main (MAILFORM_DEBUG=1) is exit 1 with its
    traceback on stderr, as Python would print it."""
    from reconciler.cli import main

    restore = _save_process_state()
    overrides: dict[str, Optional[str]] = {k: None for k in os.environ if k not in env}
    overrides.update(env)
    code = 0
    try:
        os.chdir(cwd)
        with _RUNNER.isolation(input=input or "", env=overrides, color=False) as streams, \
                _terminal_size_of_a_pipe(env):
            try:
                main(list(args))
            except SystemExit as exc:
                code = _exit_code(exc.code)
            except Exception:                                   # noqa: BLE001
                traceback.print_exc()
                code = 1
            sys.stdout.flush()
            sys.stderr.flush()
            out = streams[0].getvalue().decode("utf-8", "replace")
            err = streams[1].getvalue().decode("utf-8", "replace")
    finally:
        restore()
    return Result(code, out, err, tuple(args))


@contextlib.contextmanager
def _terminal_size_of_a_pipe(env: Mapping[str, str]):
    """The help text's width as a process whose stdout is a pipe sees it (COLUMNS, else
    80) — not CliRunner's fixed 80, nor the terminal pytest happens to run in."""
    def size(fallback=(80, 24)):
        def number(name, default):
            value = env.get(name, "")
            return int(value) if value.isdigit() and int(value) > 0 else default
        return os.terminal_size((number("COLUMNS", fallback[0]), number("LINES", fallback[1])))

    saved_width, saved_size = click.formatting.FORCED_WIDTH, shutil.get_terminal_size
    click.formatting.FORCED_WIDTH, shutil.get_terminal_size = None, size
    try:
        yield
    finally:
        click.formatting.FORCED_WIDTH, shutil.get_terminal_size = saved_width, saved_size


def _exit_code(value: object) -> int:
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    print(value, file=sys.stderr)            # sys.exit("message"), as Python does
    return 1


def _save_process_state() -> Callable[[], None]:
    """What a command may change in the process; the returned function puts it back."""
    cwd = os.getcwd()
    environ = dict(os.environ)
    gc_enabled, gc_frozen = gc.isenabled(), gc.get_freeze_count()
    handlers = {sig: signal.getsignal(sig) for sig in _SIGNALS}
    loggers = _logger_states()

    def restore() -> None:
        os.chdir(cwd)
        if dict(os.environ) != environ:
            os.environ.clear()
            os.environ.update(environ)
        if not gc_frozen:
            gc.unfreeze()                      # plan/apply freeze the heap for their run
        (gc.enable if gc_enabled else gc.disable)()
        for sig, handler in handlers.items():
            if handler is not None and signal.getsignal(sig) is not handler:
                signal.signal(sig, handler)
        _restore_loggers(loggers)
        _clear_reconciler_caches()

    return restore


def _logger_states() -> dict:
    manager = logging.Logger.manager
    names = [None] + [n for n, lg in manager.loggerDict.items() if isinstance(lg, logging.Logger)]
    states = {}
    for name in names:
        logger = logging.getLogger(name)
        states[name] = (list(logger.handlers), logger.level, logger.propagate, logger.disabled)
    states["__disable__"] = manager.disable
    return states


def _restore_loggers(states: dict) -> None:
    manager = logging.Logger.manager
    logging.disable(states.pop("__disable__"))
    known = set(states)
    for name, logger in list(manager.loggerDict.items()):
        if not isinstance(logger, logging.Logger) or name in known:
            continue
        for handler in list(logger.handlers):    # a logger the command created
            logger.removeHandler(handler)
    for name, (handlers, level, propagate, disabled) in states.items():
        logger = logging.getLogger(name)
        for handler in logger.handlers:
            if handler not in handlers:           # e.g. a StreamHandler on the captured stderr
                handler.close()
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate, logger.disabled = propagate, disabled


def _clear_reconciler_caches() -> None:
    """lru caches of ``reconciler`` modules: some are keyed by relative file names, which
    mean something else once the next run has another working directory."""
    for name, module in list(sys.modules.items()):
        if module is None or not (name == "reconciler" or name.startswith("reconciler.")):
            continue
        for value in list(vars(module).values()):
            clear = getattr(value, "cache_clear", None)
            if clear is not None and getattr(value, "__module__", None) == name:
                clear()


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items()
            if not k.startswith("MAILFORM_") and k not in ("NO_COLOR", "FORCE_COLOR")}


def dump(docs: list[dict]) -> str:
    return yaml.safe_dump_all(docs, sort_keys=False, explicit_start=True)


def smtp_account(name: str, password_env: str = "", **spec: Any) -> dict:
    """A valid smtp account document; ``spec`` keys override or add fields."""
    body: dict[str, Any] = {
        "type": "smtp", "email": f"{name}@example.com", "display_name": name.title(),
        "smtp": {"host": "smtp.example.com", "port": 587, "security": "starttls",
                 "password": {"env": password_env or _env_name(name)}},
        "shared": True,
    }
    body.update(spec)
    return _doc(name, body)


def marketing_account(name: str, **spec: Any) -> dict:
    body: dict[str, Any] = {"type": "marketing", "email": f"{name}@example.com",
                            "display_name": name.title(), "shared": True}
    body.update(spec)
    return _doc(name, body)


def _doc(name: str, spec: dict) -> dict:
    spec = dict(spec)
    labels = spec.pop("labels", None)
    metadata: dict[str, Any] = {"name": name}
    if labels:
        metadata["labels"] = labels
    return {"apiVersion": "mailform/v1", "kind": "EmailAccount", "metadata": metadata,
            "spec": spec}


def _env_name(name: str) -> str:
    return name.upper().replace("-", "_") + "_SMTP_PASSWORD"


def wait_for_line(proc: subprocess.Popen, needle: str, timeout: float = 30) -> str:
    """Read the process's stderr until a line containing ``needle``; the text read so far.
    The handshake with a child: no sleeping, and the deadline holds even when the child
    prints nothing at all (the read runs in a thread)."""
    seen: list[str] = []
    found = threading.Event()

    def read() -> None:
        for line in iter(proc.stderr.readline, ""):
            seen.append(line)
            if needle in line:
                found.set()
                return

    reader = threading.Thread(target=read, daemon=True, name=f"wait-for-{needle[:20]}")
    reader.start()
    reader.join(timeout)
    if found.is_set():
        return "".join(seen)
    raise AssertionError(f"never saw {needle!r} on stderr within {timeout}s; got: "
                         f"{''.join(seen)!r} (exit {proc.poll()})")


def kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream:
            try:
                stream.close()
            except OSError:          # a pipe to a dead child: nothing left to flush
                pass
