"""Connecting to a SQLite registry file: read-write in WAL mode, or read-only.

Where the file and its folder can be written, the connection is read-write in
WAL mode. Where they cannot (a read-only mount, a folder or file without write
permission for this user), WAL mode cannot keep its ``-shm`` index beside the
file, so the registry is opened read-only instead:

* ``mode=ro`` first: it reads the ``-wal`` and ``-shm`` files when a writer
  elsewhere left them there;
* else, when there is no ``-shm`` and none can be created, ``immutable=1``:
  SQLite then reads the main file alone — correct as long as no ``-wal`` holds
  writes not yet copied into it, so a non-empty ``-wal`` is refused instead
  (opening it once where it can be written folds it in).

Reads (plan, state, history) then work; every write fails with a registry error
that gives the reason (``Backend.read_only``).
"""
from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from urllib.parse import quote

from ..errors import RegistryError

BUSY_TIMEOUT_MS = 10_000
_READ_ONLY_ERRORS = ("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_AUTH")


def connect(path: Path) -> tuple[sqlite3.Connection, str]:
    """A connection to the registry at ``path``, and why it is read-only ("": it is not)."""
    reason = unwritable(path)
    if not reason:
        try:
            return _connect_read_write(path), ""
        except sqlite3.Error as exc:
            if not (path.exists() and _is_read_only_error(exc)):
                raise RegistryError(f"cannot open the registry {path}: {exc}") from None
            reason = f"the file system refused a write: {exc}"
        except OSError as exc:
            raise RegistryError(f"cannot open the registry {path}: {exc}") from None
    return _connect_read_only(path, reason), reason


def unwritable(path: Path) -> str:
    """Why an existing registry file cannot be written here ("" when it can, or when
    it does not exist yet: creating it says why it cannot)."""
    if not path.exists():
        return ""
    if os.statvfs(path).f_flag & os.ST_RDONLY:
        return f"{path} is on a read-only file system"
    if not os.access(path, os.W_OK):
        return f"{path} cannot be written"
    folder = path.parent if str(path.parent) else Path(".")
    if not os.access(folder, os.W_OK):
        return f"its folder {folder} cannot be written (WAL mode keeps files beside it)"
    return ""


def _is_read_only_error(exc: sqlite3.Error) -> bool:
    return str(getattr(exc, "sqlite_errorname", "")).startswith(_READ_ONLY_ERRORS)


def _connect_read_write(path: Path) -> sqlite3.Connection:
    if not path.exists():
        make_folder(path.parent)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                           timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        mode = _wal_mode(_configure(conn))
    except BaseException:
        conn.close()
        raise
    if str(mode).lower() != "wal":
        conn.close()
        raise RegistryError(f"cannot put the registry {path} in WAL mode (got {mode})")
    return conn


def _wal_mode(conn: sqlite3.Connection) -> str:
    """Switch to WAL. On a brand-new file another process may be creating the tables:
    SQLite then answers "database is locked" at once, without its busy handler, so wait
    here as long as the busy timeout would."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            return conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def make_folder(folder: Path) -> None:
    """The folder of a new registry; one mailform creates (or the usual ``.mailform``)
    gets a ``.gitignore`` of ``*``: the database and its key never belong in git."""
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    ignore = folder / ".gitignore"
    if (created or folder.name == ".mailform") and not ignore.exists():
        try:
            ignore.write_text("# made by mailform: the registry and its key stay out of git\n*\n",
                              encoding="utf-8")
        except OSError:
            pass                  # a folder we may write the database into, but not this


def _connect_read_only(path: Path, reason: str) -> sqlite3.Connection:
    try:
        return _open_uri(path, "mode=ro")
    except sqlite3.Error:
        pass               # no -shm, and none can be created beside the file
    wal = Path(f"{path}-wal")
    if wal.exists() and wal.stat().st_size > 0:
        raise RegistryError(
            f"cannot open the registry {path} read-only ({reason}): {wal.name} holds writes "
            "that only a writable open reads; open it once where it can be written")
    try:
        return _open_uri(path, "immutable=1")
    except sqlite3.Error as exc:
        raise RegistryError(f"cannot open the registry {path} ({reason}): {exc}") from None


def _open_uri(path: Path, parameter: str) -> sqlite3.Connection:
    uri = f"file:{quote(str(path.absolute()))}?{parameter}"
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False,
                           timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()   # opens the file now
        return _configure(conn)
    except BaseException:
        conn.close()
        raise


def _configure(conn: sqlite3.Connection) -> sqlite3.Connection:
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn
