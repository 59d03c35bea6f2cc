"""The registry's history: its lineage and serial, and one entry per write (apply,
operator edit, activation, re-key).

Every write that changes what plan compares (an apply, an operator's edit, an
activation) bumps the serial, so a saved plan can tell that the registry moved
on since it was made. The bump is ``UPDATE … RETURNING``, which row-locks the
serial: two writers can never hand out the same number.

An apply of more than ``INLINE_CHANGES`` changes keeps its history row small: the
changes go one row each into ``history_changes`` (serialised one at a time, so an
apply of 100,000 accounts never holds them all as one text), and the row records how
many (``changes_stored``). ``entries()`` — `mailform history` — never reads them;
``entry(serial)`` does.
"""
from __future__ import annotations

import json
from typing import Any, Iterator, Optional

from .base import RegistryMeta
from .common import default_actor, dumps, iso, loads, utcnow
from .notify import CHANNEL
from .store import SQLStore

_COLUMNS = ("actor", "counts", "changes", "serial", "time")
INLINE_CHANGES = 100
# a change's body as the plan made it (its keys in their order: no sorting, read back as is)
_BODY = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
STORED = "changes_stored"


class HistoryLog:
    """Meta (lineage, serial, schema version) and the history table."""

    def __init__(self, store: SQLStore) -> None:
        self._store = store

    def meta(self) -> RegistryMeta:
        rows = dict(self._store.read(
            "SELECT key, value FROM meta WHERE key IN ('lineage', 'serial')"))
        return RegistryMeta(lineage=rows["lineage"], serial=int(rows["serial"]))

    def schema_version(self) -> int:
        rows = self._store.read("SELECT value FROM meta WHERE key = 'schema_version'")
        return int(rows[0][0]) if rows else 0

    def entries(self) -> list[dict]:
        """Every entry; an apply's changes inline, or ``changes_stored`` and []."""
        rows = self._store.read("SELECT serial, time, actor, counts, changes, extra "
                                "FROM history ORDER BY serial")
        return [_entry(row) for row in rows]

    def entry(self, serial: int) -> Optional[dict]:
        """One entry with every change it made (also those stored one row each)."""
        rows = self._store.read("SELECT serial, time, actor, counts, changes, extra "
                                "FROM history WHERE serial = ?", (serial,))
        if not rows:
            return None
        entry = _entry(rows[0])
        if entry.get(STORED):
            entry["changes"] = list(self.changes(serial))
        return entry

    def changes(self, serial: int) -> Iterator[Any]:
        """The changes stored one row each for an entry, in order."""
        rows = self._store.read("SELECT body FROM history_changes WHERE serial = ? "
                                "ORDER BY seq", (serial,))
        return (loads(body) for (body,) in rows)

    def bump_serial(self, cur: Any) -> int:
        """The next serial, inside the caller's transaction."""
        cur.execute("UPDATE meta SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) "
                    "WHERE key = 'serial' RETURNING value")
        serial = int(cur.fetchall()[0][0])
        self._store.backend.notify(cur, CHANNEL, str(serial))   # long-running readers
        return serial

    def add(self, cur: Any, entry: dict) -> int:
        """Bump the serial and record {time, actor, counts, changes, …}; the new serial.
        ``changes``: JSON-ready values, or objects with ``to_dict()`` (a plan's changes);
        stored one row each, an object with ``to_json(memo)`` writes its own text (what
        ``to_dict()`` encodes to; ``memo`` lives as long as this call).
        """
        serial = self.bump_serial(cur)
        extra = {k: v for k, v in entry.items() if k not in _COLUMNS}
        changes = entry.get("changes") or []
        if len(changes) > INLINE_CHANGES:
            extra[STORED] = len(changes)
            memo: dict = {}
            cur.executemany(self._store.q(
                "INSERT INTO history_changes (serial, seq, body) VALUES (?, ?, ?)"),
                ((serial, seq, _body(c, memo)) for seq, c in enumerate(changes)))
            changes = []
        cur.execute(self._store.q(
            "INSERT INTO history (serial, time, actor, counts, changes, extra) "
            "VALUES (?, ?, ?, ?, ?, ?)"),
            (serial, iso(utcnow()), entry.get("actor") or default_actor(),
             dumps(entry.get("counts", {})), dumps([_plain(c) for c in changes]),
             dumps(extra)))
        return serial


def _body(change: Any, memo: dict) -> str:
    """A change's row in ``history_changes``: compact JSON, keys as given."""
    to_json = getattr(change, "to_json", None)
    return to_json(memo) if to_json is not None else _BODY.encode(_plain(change))


def _plain(change: Any) -> Any:
    return change.to_dict() if hasattr(change, "to_dict") else change


def _entry(row: tuple) -> dict:
    serial, time, actor, counts, changes, extra = row
    return {**loads(extra), "serial": serial, "time": time, "actor": actor,
            "counts": loads(counts), "changes": loads(changes)}
