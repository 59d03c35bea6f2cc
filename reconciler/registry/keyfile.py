"""The key file beside a SQLite registry: created once, rotated without a gap.

``<db>.key`` holds the master key (urlsafe base64, mode 0600), created on first
use. Rotating it (``mailform registry rekey``) never leaves a moment in which a
crash makes the registry unreadable:

1. the new key is written to ``<db>.key.new`` (private, fsynced) — the registry
   still holds data for the old key, which ``<db>.key`` still has;
2. the registry is re-encrypted in one transaction, which also stores the new
   key's check value — committed, or not at all;
3. ``<db>.key.new`` is renamed over ``<db>.key``.

A crash between 2 and 3 leaves a registry whose check value matches
``<db>.key.new``, not ``<db>.key``: opening it finds the finished rotation, moves
the new key into place (when the folder can be written; otherwise it just uses
it) and goes on. A ``<db>.key.new`` that does not match (a rotation that never
committed) is ignored, and replaced by the next rotation.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from ..errors import RegistryError
from .crypto import ENV_VAR, KeyRing, MissingKeyError, decode_key, generate_key


def pending_path(path: Path) -> Path:
    """Where a rotation puts the new key until the registry has committed to it."""
    return path.with_name(path.name + ".new")


def key_from_file(path: Path, create: bool, check: str = "") -> KeyRing:
    """The key of the registry whose key check value is ``check`` ("" for a new one):
    a finished rotation's key first, else the key file (created when allowed)."""
    if check:
        finished = _finished_rotation(path, check)
        if finished is not None:
            return finished
    if not path.exists():
        if not create:
            raise MissingKeyError(
                f"the registry holds encrypted data but its key file {path} is missing; "
                f"restore that file or set {ENV_VAR} to the key it was created with")
        write_private(path, generate_key(), replace=False)
    return _read(path, path)


def _read(path: Path, named: Path) -> KeyRing:
    source = f"key file {named}"
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise RegistryError(f"cannot read the {source}: {exc.__class__.__name__}") from None
    return KeyRing.from_master(decode_key(text, source), source)


def _finished_rotation(path: Path, check: str) -> Optional[KeyRing]:
    """The new key of a rotation that committed but was not moved into place."""
    pending = pending_path(path)
    if not pending.exists():
        return None
    try:
        keys = _read(pending, path)
    except RegistryError:
        return None          # half-written by a rotation that cannot have committed
    if not keys.matches(check):
        return None
    try:
        os.replace(pending, path)
        _sync_folder(path.parent)
    except OSError:
        pass                 # a read-only folder: use it from <db>.key.new
    return keys


def stage(path: Path, text: str) -> None:
    """Step 1 of a rotation: the new key in ``<db>.key.new`` (any stale one replaced)."""
    try:
        write_private(pending_path(path), text, replace=True)
    except OSError as exc:
        reason = exc.strerror or exc.__class__.__name__
        raise RegistryError(f"cannot write the new key file {pending_path(path)}: {reason}; "
                            "nothing was changed") from None


def install(path: Path, text: str) -> bool:
    """Step 3, after the commit: the new key becomes ``<db>.key``. False when it could
    not be moved (the next open does it: see the module docstring)."""
    pending = pending_path(path)
    try:
        if _holds(pending, text):
            os.replace(pending, path)
            _sync_folder(path.parent)
        else:
            write_private(path, text, replace=True)
    except OSError:
        return False
    return True


def discard(path: Path, text: str) -> None:
    """A rotation whose transaction did not commit: forget its new key."""
    pending = pending_path(path)
    try:
        if _holds(pending, text):
            pending.unlink()
    except OSError:
        pass


def _holds(path: Path, text: str) -> bool:
    try:
        return path.read_text(encoding="ascii").strip() == text.strip()
    except (OSError, UnicodeDecodeError):
        return False


def write_private(path: Path, text: str, replace: bool) -> None:
    """Write ``text`` to a private (0600) temp file, fsync it, then put it in place.

    Without ``replace``, ``os.link`` fails when the target exists, so two processes
    creating the key at once end up sharing the first one; with it, ``os.replace``
    swaps the file in atomically. Nobody ever reads a half-written file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, (text.strip() + "\n").encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        _put_in_place(tmp, path, replace)
    finally:
        if tmp.exists():
            tmp.unlink()
    _sync_folder(path.parent)


def _put_in_place(tmp: Path, path: Path, replace: bool) -> None:
    if replace:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass


def _sync_folder(folder: Path) -> None:
    """Make a rename durable: fsync the folder that holds it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
