"""Status conditions, as controllers report them: per account, one row per type.

Types: ``Verified`` (the live settings log in), ``InboxScanned`` (the last scan
ended), ``Applied`` (the registry holds what the manifests say), ``Drifted`` (the
live entry differs from what was applied). Each has a status (``True``,
``False``, ``Unknown``), a CamelCase reason, a message, the time its status last
changed (``lastTransitionTime``) and the time it was last checked
(``lastProbeTime``). ``observed`` is what the check saw (e.g. the account's
record version): a terminal failure is not retried while it stays the same.

Subjects that are not accounts start with ``@`` (``@fleet``: the reconcile
pass); ``for_accounts`` leaves them out. Writing a condition does not bump the
serial: conditions are observations, not desired state.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from .common import iso, utcnow
from .store import SQLStore

TYPES = ("Verified", "InboxScanned", "Applied", "Drifted")
FLEET = "@fleet"
_COLUMNS = "subject, type, status, reason, message, observed, last_transition, last_probe"
# the row written; its last transition kept while the status stays the same (the SET's
# right-hand sides read the row as it was)
_UPSERT = (f"INSERT INTO conditions ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
           "ON CONFLICT (subject, type) DO UPDATE SET status = excluded.status, "
           "reason = excluded.reason, message = excluded.message, "
           "observed = excluded.observed, last_probe = excluded.last_probe, "
           "last_transition = CASE WHEN conditions.status = excluded.status "
           "THEN conditions.last_transition ELSE excluded.last_transition END")


@dataclass(frozen=True)
class Condition:
    type: str
    status: str                 # "True" | "False" | "Unknown"
    reason: str
    message: str = ""
    observed: str = ""
    last_transition: str = ""
    last_probe: str = ""

    def as_dict(self) -> dict:
        return {"type": self.type, "status": self.status, "reason": self.reason,
                "message": self.message, "lastTransitionTime": self.last_transition,
                "lastProbeTime": self.last_probe}


def status_of(value: object) -> str:
    if value is None:
        return "Unknown"
    return "True" if value else "False"


class Conditions:
    """The conditions table of one registry."""

    def __init__(self, store: SQLStore) -> None:
        self._store = store

    def set(self, subject: str, type_: str, status: str, reason: str, message: str = "",
            observed: str = "") -> Condition:
        """Record one observation now; the transition time moves only when the status does.
        One statement: a job writes its condition in one round trip to the database."""
        now, message = iso(utcnow()), message[:2000]
        rows = self._store.write_one(_UPSERT + " RETURNING last_transition",
                                     (subject, type_, status, reason, message, observed, now,
                                      now))
        return Condition(type_, status, reason, message, observed, rows[0][0], now)

    def set_many(self, rows: list[tuple[str, str, str, str, str, str]]) -> list[Condition]:
        """(subject, type, status, reason, message, observed) rows, in one transaction."""
        with self._store.write():
            return [self.set(*row) for row in rows]

    def of(self, subject: str) -> dict[str, Condition]:
        """type -> condition of one subject."""
        rows = self._store.read(f"SELECT {_COLUMNS} FROM conditions WHERE subject = ?",
                                (subject,))
        return {row[1]: Condition(*row[1:]) for row in rows}

    def get(self, subject: str, type_: str) -> Optional[Condition]:
        return self.of(subject).get(type_)

    def all(self) -> dict[str, dict[str, Condition]]:
        """subject -> type -> condition, every subject (accounts and ``@`` ones)."""
        out: dict[str, dict[str, Condition]] = {}
        for row in self._store.read(f"SELECT {_COLUMNS} FROM conditions ORDER BY subject, type"):
            out.setdefault(row[0], {})[row[1]] = Condition(*row[1:])
        return out

    def for_accounts(self, names) -> dict[str, dict[str, Condition]]:
        """account -> type -> condition, for the accounts named only."""
        wanted = set(names)
        return {subject: conds for subject, conds in self.all().items() if subject in wanted}

    def forget(self, subject: str) -> None:
        with self._store.write() as cur:
            self.forget_account(cur, subject)

    def forget_account(self, cur: Any, name: str) -> None:
        """Inside a transaction: a deleted account leaves no conditions behind."""
        cur.execute(self._store.q("DELETE FROM conditions WHERE subject = ?"), (name,))

    def rename_account(self, cur: Any, old: str, new: str) -> None:
        """Inside a transaction: a moved account keeps its conditions."""
        cur.execute(self._store.q("DELETE FROM conditions WHERE subject = ?"), (new,))
        cur.execute(self._store.q("UPDATE conditions SET subject = ? WHERE subject = ?"),
                    (new, old))


class NoConditions:
    """What a registry that does not exist yet reports: none."""

    def of(self, subject: str) -> dict:
        return {}

    def get(self, subject: str, type_: str) -> None:
        return None

    def all(self) -> dict:
        return {}

    def for_accounts(self, names) -> dict:
        return {}
