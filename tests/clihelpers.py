"""Running the real CLI (`python -m reconciler`) as a subprocess, and writing manifests.

Every `Cli` is isolated: its own working directory, its own SQLite registry
URL (``MAILFORM_REGISTRY``), ``MAILFORM_MASTER_KEY`` unset (so a key file is
created beside the database), no color, a fixed actor.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import yaml

ROOT = Path(__file__).resolve().parent.parent
PAUSE_LINE = "mailform: test pause inside the apply transaction"


@dataclass
class Result:
    code: int
    out: str
    err: str
    args: tuple

    @property
    def text(self) -> str:
        return self.out + self.err

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
            timeout: float = 60) -> Result:
        proc = subprocess.run([sys.executable, "-m", "reconciler", *args], cwd=self.dir,
                              env=self._env(env), input=input if input is not None else "",
                              capture_output=True, text=True, timeout=timeout)
        return Result(proc.returncode, proc.stdout, proc.stderr, args)

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
        """The registry opened in this process, with this Cli's environment's key."""
        from reconciler.registry import open_registry
        return open_registry(self.url)

    def db_files(self) -> list[Path]:
        """The SQLite database, its -wal and -shm files and the key file, those that exist."""
        names = [self.db, Path(f"{self.db}-wal"), Path(f"{self.db}-shm"), Path(f"{self.db}.key")]
        return [p for p in names if p.exists()]


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
    """Read the process's stderr until a line containing ``needle``; the text read so far."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        seen.append(line)
        if needle in line:
            return "".join(seen)
    raise AssertionError(f"never saw {needle!r} on stderr; got: {''.join(seen)!r} "
                         f"(exit {proc.poll()})")


def kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    for stream in (proc.stdout, proc.stderr):
        if stream:
            stream.close()
