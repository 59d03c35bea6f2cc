"""Small pure helpers shared by the registry backends."""
from __future__ import annotations

import copy
import errno
import getpass
import json
import os
from datetime import datetime, timedelta, timezone
from typing import Any

from ..errors import RegistryError


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def iso(moment: datetime) -> str:
    """ISO 8601 UTC with milliseconds and a ``Z``: sortable as text."""
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def as_moment(value: Any) -> datetime:
    """Accept a datetime or an ISO 8601 string (naive means UTC)."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if value is None:
        return utcnow()
    return parse_iso(str(value))


def later(moment: datetime, seconds: float) -> datetime:
    return moment + timedelta(seconds=seconds)


_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def dumps(value: Any) -> str:
    """Canonical compact JSON (one shared encoder: cheaper than json.dumps per call)."""
    return _ENCODER.encode(value)


def loads(text: Any) -> Any:
    return None if text is None else json.loads(text)


def default_actor() -> str:
    actor = os.environ.get("MAILFORM_ACTOR")
    if actor:
        return actor
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this host (signal 0 probes it)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.EPERM   # exists, owned by someone else
    return True


def deep_merge(base: dict, update: dict) -> dict:
    """A new dict: mappings merged recursively, other values replaced, None deletes."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def split_path(path: str) -> list[str]:
    parts = path.split(".")
    if not path or any(not part for part in parts):
        raise RegistryError(f"invalid field path {path!r}: use dotted names like smtp.port")
    return parts


def set_path(spec: dict, path: str, value: Any) -> dict:
    """A copy of ``spec`` with the dotted ``path`` set (None removes the field)."""
    out = copy.deepcopy(spec)
    parts = split_path(path)
    node = out
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            where = ".".join(parts[:i + 1])
            raise RegistryError(f"cannot set {path}: {where} is not a mapping")
        node = child
    if value is None:
        node.pop(parts[-1], None)
    else:
        node[parts[-1]] = value
    return out
