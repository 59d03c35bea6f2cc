"""Reading a manifest file: bounded, regular files only, inside the manifests' root."""
from __future__ import annotations

import os
from typing import Optional

from ..errors import Problem
from .secrets import read_regular
from .yamlpos import MAX_FILE_BYTES


def _read_bytes(real: str) -> bytes:
    """At most MAX_FILE_BYTES + 1 bytes, asked for by the file's size: a read of the
    whole limit makes (and unmaps) a 16 MiB buffer for every file (0.4 s per 100 files).
    A file that grew since its size was taken is read again in full."""
    try:
        size = min(os.stat(real).st_size, MAX_FILE_BYTES)
    except OSError:
        size = MAX_FILE_BYTES       # read_regular reports it
    raw = read_regular(real, size)
    if len(raw) > size and size < MAX_FILE_BYTES:
        raw = read_regular(real, MAX_FILE_BYTES)
    return raw


def read_manifest(filename: str, root: str, problems: list[Problem]) -> Optional[str]:
    """A manifest's text: a regular file (a FIFO or device is refused without blocking)
    that resolves, after symlinks, inside the manifests' root, of at most 16 MiB."""
    real = os.path.realpath(filename)
    if root and not (real == root or real.startswith(root.rstrip(os.sep) + os.sep)):
        problems.append(Problem(filename, 1, 1, "", "resolves (through a symlink) outside the "
                                "manifests' root; it is not read"))
        return None
    try:
        raw = _read_bytes(real)
    except OSError as exc:
        problems.append(Problem(filename, 1, 1, "", f"cannot read file: {exc.strerror}"))
        return None
    if len(raw) > MAX_FILE_BYTES:
        problems.append(Problem(filename, 1, 1, "", f"file is larger than "
                                f"{MAX_FILE_BYTES // 2**20} MiB (the limit of a manifest)"))
        return None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        problems.append(Problem(filename, line, 1, "", "file is not valid UTF-8 text"))
        return None
