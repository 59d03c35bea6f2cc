"""The registry's history: its lineage and serial, and one entry per write (apply,
operator edit, activation, re-key).

Every write that changes what plan compares (an apply, an operator's edit, an
activation) bumps the serial, so a saved plan can tell that the registry moved
on since it was made. The bump is ``UPDATE … RETURNING``, which row-locks the
serial: two writers can never hand out the same number.
"""
from __future__ import annotations

from typing import Any

from .base import RegistryMeta
from .common import default_actor, dumps, iso, loads, utcnow
from .store import SQLStore

_COLUMNS = ("actor", "counts", "changes", "serial", "time")


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
        rows = self._store.read("SELECT serial, time, actor, counts, changes, extra "
                                "FROM history ORDER BY serial")
        return [{**loads(extra), "serial": serial, "time": time, "actor": actor,
                 "counts": loads(counts), "changes": loads(changes)}
                for serial, time, actor, counts, changes, extra in rows]

    def bump_serial(self, cur: Any) -> int:
        """The next serial, inside the caller's transaction."""
        cur.execute("UPDATE meta SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) "
                    "WHERE key = 'serial' RETURNING value")
        return int(cur.fetchall()[0][0])

    def add(self, cur: Any, entry: dict) -> int:
        """Bump the serial and record {time, actor, counts, changes, …}; the new serial."""
        serial = self.bump_serial(cur)
        extra = {k: v for k, v in entry.items() if k not in _COLUMNS}
        cur.execute(self._store.q(
            "INSERT INTO history (serial, time, actor, counts, changes, extra) "
            "VALUES (?, ?, ?, ?, ?, ?)"),
            (serial, iso(utcnow()), entry.get("actor") or default_actor(),
             dumps(entry.get("counts", {})), dumps(entry.get("changes", [])), dumps(extra)))
        return serial
