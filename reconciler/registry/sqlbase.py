"""What both SQL backends share: opening and migrating, transactions, accounts.

A backend subclass connects (one connection per Registry object, autocommit
mode: every transaction is begun and ended here explicitly), names its dialect
(placeholder style, BEGIN statement, driver error class, binary column type)
and how it finds the master key; then calls ``_open()``.

Every write runs in one explicit transaction, committed at the end of its
``with`` block and rolled back on any exception. A write started while the same
object already has a transaction open (``registry.set_status`` inside an apply)
joins that transaction. A lock (``threading.RLock``) serialises threads sharing
one Registry object.
"""
from __future__ import annotations

import threading
import uuid
from contextlib import contextmanager
from typing import Any, Iterator, Optional

from ..errors import NotFoundError, RegistryError
from ..model import SECRET_PATHS
from . import schema
from .base import AccountWrite, RegistryMeta, StoredAccount
from .common import deep_merge, default_actor, dumps, iso, loads, set_path, utcnow
from .contacts import ContactsMixin
from .crypto import KeyRing, key_from_env
from .locking import LockingMixin

_ACCOUNT_COLUMNS = "name, type, spec, applied, fingerprints, applied_fingerprints, status"
# An empty `applied` / `applied_fingerprints` column means "the same as the live one":
# apply writes it so (half the bytes to store and read back); the first out-of-band
# edit copies the live value there before changing it.
SAME_AS_LIVE = ""
_KEEP_APPLIED = "CASE WHEN applied = '' THEN spec ELSE applied END"
_KEEP_APPLIED_FPS = ("CASE WHEN applied_fingerprints = '' THEN fingerprints "
                     "ELSE applied_fingerprints END")


class SQLRegistry(LockingMixin, ContactsMixin):
    url: str
    _begin_sql = "BEGIN"
    _blob_type = "BLOB"
    _db_errors: tuple[type[BaseException], ...] = ()
    _paramstyle = "qmark"
    _migrations = schema.MIGRATIONS

    def __init__(self) -> None:
        self._mutex = threading.RLock()
        self._depth = 0
        self._conn: Any = None
        self._keys: Optional[KeyRing] = None

    # -- dialect hooks -------------------------------------------------------
    def _schema_version(self, cur: Any) -> int:
        raise NotImplementedError

    def _set_schema_version(self, cur: Any, version: int) -> None:
        cur.execute(self._q("INSERT INTO meta (key, value) VALUES (?, ?) "
                            "ON CONFLICT (key) DO UPDATE SET value = excluded.value"),
                    ("schema_version", str(version)))

    def _key_from_store(self, create: bool) -> KeyRing:
        raise NotImplementedError

    def _before_migrations(self, cur: Any) -> None:
        """Serialise concurrent first opens where BEGIN alone does not (PostgreSQL)."""

    # -- plumbing ------------------------------------------------------------
    def _q(self, sql: str) -> str:
        return sql.replace("?", "%s") if self._paramstyle == "format" else sql

    def _fail(self, exc: BaseException) -> RegistryError:
        return RegistryError(f"registry {self.url}: {exc}".strip())

    @contextmanager
    def _write(self) -> Iterator[Any]:
        """One explicit transaction (or join the one already open on this object)."""
        with self._mutex:
            if self._conn is None:
                raise RegistryError(f"registry {self.url} is closed")
            if self._depth:
                self._depth += 1
                try:
                    yield self._conn.cursor()
                finally:
                    self._depth -= 1
                return
            yield from self._outer_transaction()

    def _outer_transaction(self) -> Iterator[Any]:
        cur = self._conn.cursor()
        try:
            cur.execute(self._begin_sql)
        except self._db_errors as exc:
            raise self._fail(exc) from exc
        self._depth = 1
        try:
            yield cur
            cur.execute("COMMIT")
        except BaseException as exc:
            self._rollback(cur)
            if isinstance(exc, self._db_errors):
                raise self._fail(exc) from exc
            raise
        finally:
            self._depth = 0

    def _rollback(self, cur: Any) -> None:
        try:
            cur.execute("ROLLBACK")
        except self._db_errors:
            pass   # the connection already ended the transaction

    def _read(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._mutex:
            if self._conn is None:
                raise RegistryError(f"registry {self.url} is closed")
            try:
                cur = self._conn.cursor()
                cur.execute(self._q(sql), params)
                return cur.fetchall()
            except self._db_errors as exc:
                raise self._fail(exc) from exc

    @property
    def keys(self) -> KeyRing:
        assert self._keys is not None
        return self._keys

    # -- opening -------------------------------------------------------------
    def _open(self) -> None:
        schema.check_order(self._migrations)
        if self._open_read_only():
            return
        with self._write() as cur:
            self._before_migrations(cur)
            for step in schema.pending(self._schema_version(cur), self._migrations, self.url):
                for statement in step.statements:
                    cur.execute(statement.format(blob=self._blob_type))
                self._set_schema_version(cur, step.version)
            self._keys = self._init_meta(cur)

    def _open_read_only(self) -> bool:
        """Open an initialised, up-to-date registry with plain reads only.

        A write transaction here would wait behind any writer (an apply in
        progress holds one until it commits) and fail after the busy timeout
        with "database is locked" instead of the lock's holder being reported.
        Returns False when migrating or initialising is needed (then a write runs).
        """
        try:
            cur = self._conn.cursor()
            if schema.pending(self._schema_version(cur), self._migrations, self.url):
                return False
            cur.execute("SELECT key, value FROM meta")
            meta = dict(cur.fetchall())
        except self._db_errors:
            return False
        if "lineage" not in meta:
            return False
        keys = key_from_env() or self._key_from_store(create=False)
        keys.verify(meta.get("key_check", ""), self.url)
        self._keys = keys
        return True

    def _init_meta(self, cur: Any) -> KeyRing:
        cur.execute("SELECT key, value FROM meta")
        meta = dict(cur.fetchall())
        if "lineage" in meta:
            keys = key_from_env() or self._key_from_store(create=False)
            keys.verify(meta.get("key_check", ""), self.url)
            return keys
        keys = key_from_env() or self._key_from_store(create=True)
        rows = [("lineage", str(uuid.uuid4())), ("serial", "0"),
                ("key_check", keys.check_value()), ("created", iso(utcnow()))]
        cur.executemany(self._q("INSERT INTO meta (key, value) VALUES (?, ?)"), rows)
        return keys

    def close(self) -> None:
        with self._mutex:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self):
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- reading -------------------------------------------------------------
    def meta(self) -> RegistryMeta:
        rows = dict(self._read("SELECT key, value FROM meta WHERE key IN ('lineage', 'serial')"))
        return RegistryMeta(lineage=rows["lineage"], serial=int(rows["serial"]))

    def schema_version(self) -> int:
        rows = self._read("SELECT value FROM meta WHERE key = 'schema_version'")
        return int(rows[0][0]) if rows else 0

    def accounts(self) -> dict[str, StoredAccount]:
        """Every account, by name. Read-only snapshots: when the live spec (or the
        fingerprints) equals what was applied, ``spec is applied`` — copy before mutating."""
        rows = self._read(f"SELECT {_ACCOUNT_COLUMNS} FROM accounts ORDER BY name")
        return {account.name: account for account in _accounts(rows)}

    def account(self, name: str) -> Optional[StoredAccount]:
        rows = self._read(f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE name = ?", (name,))
        return _accounts(rows)[0] if rows else None

    def fingerprint(self, path: str, value: str) -> str:
        return self.keys.fingerprint(path, value)

    def secrets(self, name: str) -> dict[str, str]:
        rows = self._read("SELECT secrets FROM accounts WHERE name = ?", (name,))
        if not rows:
            raise NotFoundError(f"account {name} is not in the registry")
        return self.keys.decrypt(rows[0][0], name)

    def history(self) -> list[dict]:
        rows = self._read("SELECT serial, time, actor, counts, changes, extra "
                          "FROM history ORDER BY serial")
        return [{**loads(extra), "serial": serial, "time": time, "actor": actor,
                 "counts": loads(counts), "changes": loads(changes)}
                for serial, time, actor, counts, changes, extra in rows]

    # -- writing -------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator["SQLTransaction"]:
        with self._write() as cur:
            txn = SQLTransaction(self, cur)
            try:
                yield txn
            finally:
                txn.closed = True

    def _bump_serial(self, cur: Any) -> int:
        cur.execute("UPDATE meta SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) "
                    "WHERE key = 'serial' RETURNING value")
        return int(cur.fetchall()[0][0])

    def _load_row(self, cur: Any, name: str, columns: str) -> tuple:
        cur.execute(self._q(f"SELECT {columns} FROM accounts WHERE name = ?"), (name,))
        row = cur.fetchone()
        if row is None:
            raise NotFoundError(f"account {name} is not in the registry")
        return row

    def set_field(self, name: str, path: str, value: Any) -> int:
        """Operator edit of the LIVE spec; a secret path re-encrypts and changes only
        the live fingerprint, so the next plan reports drift against the applied one."""
        with self._write() as cur:
            if path in SECRET_PATHS:
                self._set_secret(cur, name, path, value)
            else:
                self._set_spec_field(cur, name, path, value)
            return self._bump_serial(cur)

    def _set_spec_field(self, cur: Any, name: str, path: str, value: Any) -> None:
        (spec,) = self._load_row(cur, name, "spec")
        new_spec = set_path(loads(spec), path, value)
        sql = (f"UPDATE accounts SET applied = {_KEEP_APPLIED}, spec = ?, updated = ?")
        params: tuple = (dumps(new_spec), iso(utcnow()))
        if path == "type":
            sql, params = sql + ", type = ?", params + (str(value),)
        cur.execute(self._q(sql + " WHERE name = ?"), params + (name,))

    def _set_secret(self, cur: Any, name: str, path: str, value: Any) -> None:
        if not isinstance(value, str):
            raise RegistryError(f"{path} of account {name} must be a string")
        fps, blob = self._load_row(cur, name, "fingerprints, secrets")
        secrets = self.keys.decrypt(blob, name)
        secrets[path] = value
        fingerprints = {**loads(fps), path: self.keys.fingerprint(path, value)}
        cur.execute(self._q(f"UPDATE accounts SET applied_fingerprints = {_KEEP_APPLIED_FPS}, "
                            "secrets = ?, fingerprints = ?, updated = ? WHERE name = ?"),
                    (self.keys.encrypt(secrets, name), dumps(fingerprints), iso(utcnow()), name))

    def activate(self, name: str) -> int:
        with self._write() as cur:
            (status,) = self._load_row(cur, name, "status")
            current = loads(status).get("activation")
            if current != "pending_activation":
                raise RegistryError(f"account {name} is not pending activation "
                                    f"(activation: {current or 'unset'})")
            self._merge_status(cur, name, {"activation": "active"})
            return self._bump_serial(cur)

    def get_setting(self, key: str) -> Any:
        """A registry-wide setting written by apply (e.g. ``bounce_policy``), or None."""
        rows = self._read("SELECT value FROM meta WHERE key = ?", (SETTING_PREFIX + key,))
        return loads(rows[0][0]) if rows else None

    def set_status(self, name: str, status: dict) -> None:
        with self._write() as cur:
            self._merge_status(cur, name, status)

    def _merge_status(self, cur: Any, name: str, status: dict) -> None:
        (current,) = self._load_row(cur, name, "status")
        merged = deep_merge(loads(current), status)
        cur.execute(self._q("UPDATE accounts SET status = ? WHERE name = ?"), (dumps(merged), name))


SETTING_PREFIX = "setting:"


def _accounts(rows: list[tuple]) -> list[StoredAccount]:
    """Decode all JSON columns with one ``json.loads`` (the per-call overhead dominates
    at 100,000 accounts); an applied value equal to the live one is decoded once."""
    parts = []
    for _name, _type, spec, applied, fps, applied_fps, status in rows:
        parts.append(f"[{spec},{'0' if applied in (SAME_AS_LIVE, spec) else applied},{fps},"
                     f"{'0' if applied_fps in (SAME_AS_LIVE, fps) else applied_fps},{status}]")
    decoded = loads("[" + ",".join(parts) + "]")
    out = []
    for (name, type_, *_), (spec, applied, fps, applied_fps, status) in zip(rows, decoded):
        out.append(StoredAccount(
            name=name, type=type_, spec=spec, applied=spec if applied == 0 else applied,
            fingerprints=fps, applied_fingerprints=fps if applied_fps == 0 else applied_fps,
            status=status))
    return out


class SQLTransaction:
    """The writes of one apply, inside the registry's open transaction."""

    def __init__(self, registry: SQLRegistry, cur: Any) -> None:
        self._reg, self._cur, self.closed = registry, cur, False

    def _cursor(self) -> Any:
        if self.closed:
            raise RegistryError("this registry transaction has already ended")
        return self._cur

    def put_setting(self, key: str, value: Any) -> None:
        self._cursor().execute(self._reg._q(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE "
            "SET value = excluded.value"), (SETTING_PREFIX + key, dumps(value)))

    def put_account(self, write: AccountWrite) -> None:
        cur, keys = self._cursor(), self._reg.keys
        fingerprints = dict(write.fingerprints)
        for path, value in write.secrets.items():
            actual = keys.fingerprint(path, value)
            if fingerprints.setdefault(path, actual) != actual:
                raise RegistryError(f"account {write.name}: the fingerprint given for {path} "
                                    "does not match its value")
        cur.execute(self._reg._q("SELECT status FROM accounts WHERE name = ?"), (write.name,))
        row = cur.fetchone()
        status = deep_merge(loads(row[0]) if row else {}, write.status)
        now, spec, fps = iso(utcnow()), dumps(write.spec), dumps(fingerprints)
        cur.execute(self._reg._q(_UPSERT), (
            write.name, write.type, spec, SAME_AS_LIVE, fps, SAME_AS_LIVE,
            keys.encrypt(write.secrets, write.name), dumps(status), now, now))

    def delete_account(self, name: str) -> None:
        cur = self._cursor()
        cur.execute(self._reg._q("DELETE FROM accounts WHERE name = ?"), (name,))
        if cur.rowcount == 0:
            raise NotFoundError(f"account {name} is not in the registry")
        cur.execute(self._reg._q("DELETE FROM processed_messages WHERE account = ?"), (name,))

    def merge_status(self, name: str, status: dict) -> None:
        self._reg._merge_status(self._cursor(), name, status)

    def add_history(self, entry: dict) -> int:
        cur = self._cursor()
        serial = self._reg._bump_serial(cur)
        extra = {k: v for k, v in entry.items()
                 if k not in ("actor", "counts", "changes", "serial", "time")}
        cur.execute(self._reg._q(
            "INSERT INTO history (serial, time, actor, counts, changes, extra) "
            "VALUES (?, ?, ?, ?, ?, ?)"),
            (serial, iso(utcnow()), entry.get("actor") or default_actor(),
             dumps(entry.get("counts", {})), dumps(entry.get("changes", [])), dumps(extra)))
        return serial


_UPSERT = """INSERT INTO accounts (name, type, spec, applied, fingerprints, applied_fingerprints,
                                   secrets, status, created, updated)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (name) DO UPDATE SET type = excluded.type, spec = excluded.spec,
    applied = excluded.applied, fingerprints = excluded.fingerprints,
    applied_fingerprints = excluded.applied_fingerprints, secrets = excluded.secrets,
    status = excluded.status, updated = excluded.updated"""
