"""The SQL registry, made of parts that share one store.

* ``store`` (``SQLStore``): the connection, the backend's dialect, reads and
  explicit transactions;
* ``account_book`` (``AccountBook``): accounts, their secrets and status, settings;
* ``write_lock`` (``WriteLock``): the lock apply holds;
* ``ledger`` (``ContactLedger``): contacts, bounces, processed messages;
* ``sent_log`` (``SentLog``): tagged messages sent, for trusting their bounces;
* ``history_log`` (``HistoryLog``): lineage, serial and the history of applies.

Each part receives the store explicitly and knows no other part. The registry
keeps the ``Registry`` protocol that the rest of mailform uses and composes what
spans parts in one transaction: an operator's edit is an account change plus a
serial bump; deleting an account forgets its processed messages; a re-key
(``rekey``) rewrites every account under a new key. Every write that uses the
key first checks that the registry is still under this object's key.

A backend (``SQLiteRegistry``, ``PostgresRegistry``) connects and passes its
``Backend``; the schema is migrated and the key found on construction.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, ContextManager, Iterable, Iterator, Optional, Sequence

from ..errors import RegistryError, WrongKeyError
from ..policy import DEFAULT_SOFT_BOUNCE_LIMIT, DEFAULT_SOFT_BOUNCE_WINDOW_DAYS
from . import rekey, schema
from .accounts import AccountBook
from .base import AccountWrite, LockInfo, Rekeyed, RegistryMeta, StoredAccount
from .conditions import Conditions
from .crypto import KeyRing
from .delivery import DeliveryLog
from .events import EventLog
from .history import HistoryLog
from .ledger import ContactLedger, Outcome, ScannedMessage
from .sent import SentLog
from .locking import WriteLock
from .notify import ChangeFeed
from .opening import open_schema
from .rotation import plan_rotation
from .scanstate import ScanState
from .store import Backend, SQLStore
from .throttle import LoginThrottle


class SQLRegistry:
    """A registry on one SQL connection (see the module docstring)."""

    def __init__(self, url: str, conn: Any, backend: Backend,
                 migrations: Optional[Sequence[schema.Migration]] = None) -> None:
        self.url = url
        self.store = SQLStore(url, conn, backend)
        try:
            steps = schema.MIGRATIONS if migrations is None else tuple(migrations)
            self.keys: KeyRing = open_schema(self.store, steps)
        except BaseException:
            self.store.close()
            raise
        self.account_book = AccountBook(self.store, self.keys)
        self.write_lock = WriteLock(self.store)
        self.ledger = ContactLedger(self.store)
        self.sent_log = SentLog(self.store)
        self.history_log = HistoryLog(self.store)
        self.delivery_log = DeliveryLog(self.store)       # the proxy's (issue 12)
        self.login_throttle = LoginThrottle(self.store)
        self.changes = ChangeFeed(self.store)
        self.conditions = Conditions(self.store)
        self.events = EventLog(self.store)                # issue 14
        self.scan_state = ScanState(self.store)           # the inbox scanner's (issue 13)

    def close(self) -> None:
        self.store.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- meta and history ----------------------------------------------------------
    def meta(self) -> RegistryMeta:
        return self.history_log.meta()

    def schema_version(self) -> int:
        return self.history_log.schema_version()

    def history(self) -> list[dict]:
        return self.history_log.entries()

    # -- accounts ------------------------------------------------------------------
    def accounts(self) -> dict[str, StoredAccount]:
        return self.account_book.all()

    def account(self, name: str) -> Optional[StoredAccount]:
        return self.account_book.get(name)

    def spec_texts(self, names: list[str]) -> dict[str, str]:
        """The live spec text of each of ``names`` held (a page of names per query)."""
        return self.account_book.spec_texts(names)

    def fingerprint(self, path: str, value: str) -> str:
        return self.keys.fingerprint(path, value)

    def secrets(self, name: str) -> dict[str, str]:
        return self.account_book.secrets(name)

    def sign(self, purpose: str, data: bytes) -> str:
        """Keyed HMAC with this registry's key (saved plans): an edited file, or one
        made against another registry, does not verify."""
        return self.keys.sign(purpose, data)

    def key_source(self) -> str:
        """Where the key came from: MAILFORM_MASTER_KEY or the key file's path."""
        return self.keys.source

    def get_setting(self, key: str) -> Any:
        return self.account_book.get_setting(key)

    # -- the key ---------------------------------------------------------------------
    def rekeyed_serial(self) -> int:
        """The serial of the last `registry rekey` (0: never): saved plans made before
        it were signed with the old key."""
        return rekey.rekeyed_serial(self.store)

    def rekey(self, new_key_env: Optional[str], holder: str, timeout: float = 0) -> Rekeyed:
        """A new master key for this registry (see ``rekey`` and ``rotation``)."""
        rotation = plan_rotation(self.keys, new_key_env, self.store.backend.key_file())
        with self.lock(holder, timeout=timeout) as held:
            def guard(cur: Any) -> None:
                self.write_lock.check_held(cur, held.id)
                self._check_key(cur)
            done = rekey.rekey(self.store, self.keys, rotation, holder, guard,
                               self.history_log.add)
        self.keys = rotation.keys
        self.account_book = AccountBook(self.store, self.keys)
        return done

    def _check_key(self, cur: Any) -> None:
        """Inside a write: the registry is still under the key this object holds (another
        process may have re-keyed it since it was opened), else nothing is written."""
        cur.execute("SELECT value FROM meta WHERE key = 'key_check'")
        row = cur.fetchone()
        if row is None or not self.keys.matches(row[0]):
            raise WrongKeyError(f"the registry {self.url} was re-keyed since this command "
                                "opened it; nothing was written: run the command again")

    def set_field(self, name: str, path: str, value: Any) -> int:
        """Out-of-band edit of the live spec (or a secret); bumps serial (a history entry
        naming the field, never the value), returns it."""
        with self.store.write() as cur:
            self._check_key(cur)
            self.account_book.set_field(cur, name, path, value)
            return self.history_log.add(cur, {"action": "set", "account": name, "field": path})

    def activate(self, name: str) -> int:
        with self.store.write() as cur:
            self.account_book.activate(cur, name)
            return self.history_log.add(cur, {"action": "activate", "account": name})

    def set_status(self, name: str, status: dict,
                   add: Optional[dict[str, dict[str, int]]] = None) -> None:
        """Merge runtime status (verification, scan) without bumping serial; ``add``:
        counters added to those stored under each key, in the same transaction."""
        with self.store.write() as cur:
            self.account_book.merge_status(cur, name, status, add)

    # -- lock and transaction ----------------------------------------------------------
    def lock(self, holder: str, lease_seconds: float = 300,
             timeout: float = 0) -> ContextManager[LockInfo]:
        return self.write_lock.hold(holder, lease_seconds, timeout)

    def current_lock(self) -> Optional[LockInfo]:
        return self.write_lock.current()

    def force_unlock(self, lock_id: str) -> None:
        self.write_lock.force_unlock(lock_id)

    @contextmanager
    def transaction(self) -> Iterator["SQLTransaction"]:
        with self.store.write() as cur:
            self._check_key(cur)
            txn = SQLTransaction(self, cur)
            try:
                yield txn
            finally:
                txn.closed = True

    # -- contact ledger ------------------------------------------------------------
    def contact_count(self) -> int:
        return self.ledger.count()

    def upsert_contacts(self, rows: Iterable[tuple[str, dict]]) -> tuple[int, int]:
        return self.ledger.upsert(rows)

    def contacts(self, status: Optional[str] = None) -> list[dict]:
        return self.ledger.all(status)

    def contact(self, email: str) -> Optional[dict]:
        return self.ledger.get(email)

    def record_bounce(self, email: str, kind: str, status: Optional[str], account: str,
                      when: Any = None, soft_limit: int = DEFAULT_SOFT_BOUNCE_LIMIT,
                      window_days: int = DEFAULT_SOFT_BOUNCE_WINDOW_DAYS) -> Optional[str]:
        return self.ledger.record_bounce(email, kind, status, account, when, soft_limit,
                                         window_days)

    def record_message(self, account: str, mailbox: str, uid: Any,
                       recipients: Iterable[tuple], soft_limit: int = DEFAULT_SOFT_BOUNCE_LIMIT,
                       window_days: int = DEFAULT_SOFT_BOUNCE_WINDOW_DAYS, when: Any = None,
                       unverified: Iterable[tuple] = (),
                       message_id: Optional[str] = None) -> list[Outcome]:
        return self.ledger.record_message(account, mailbox, uid, recipients, soft_limit,
                                          window_days, when, unverified, message_id)

    def record_messages(self, account: str, mailbox: str, messages: Sequence[ScannedMessage],
                        soft_limit: int = DEFAULT_SOFT_BOUNCE_LIMIT,
                        window_days: int = DEFAULT_SOFT_BOUNCE_WINDOW_DAYS,
                        when: Any = None) -> list[list[Outcome]]:
        return self.ledger.record_messages(account, mailbox, messages, soft_limit,
                                           window_days, when)

    def unverified_bounces(self, email: str) -> list[dict]:
        return self.ledger.unverified(email)

    def record_sent(self, tag: str, account: str, recipients: Iterable[str],
                    when: Any = None) -> None:
        """A tagged message; its tag was signed with this object's key, so after another
        process re-keyed the registry it is refused (WrongKeyError), like other writes."""
        with self.store.write() as cur:
            self._check_key(cur)
            self.sent_log.record(tag, account, recipients, when)

    def sent_message(self, tag: str) -> Optional[dict]:
        return self.sent_log.get(tag)

    def is_processed(self, account: str, mailbox: str, uid: Any) -> bool:
        return self.ledger.is_processed(account, mailbox, uid)

    def processed_uids(self, account: str, mailbox: str) -> set[str]:
        return self.ledger.processed_uids(account, mailbox)

    def mark_processed(self, account: str, mailbox: str, uids: Iterable[Any]) -> None:
        self.ledger.mark_processed(account, mailbox, uids)


class SQLTransaction:
    """The writes of one apply, inside the registry's open transaction."""

    def __init__(self, registry: SQLRegistry, cur: Any) -> None:
        self._registry, self._cur, self.closed = registry, cur, False

    def _cursor(self) -> Any:
        if self.closed:
            raise RegistryError("this registry transaction has already ended")
        return self._cur

    def put_setting(self, key: str, value: Any) -> None:
        self._registry.account_book.put_setting(self._cursor(), key, value)

    def put_account(self, write: AccountWrite) -> None:
        self._registry.account_book.put(self._cursor(), write)

    def put_accounts(self, writes: list[AccountWrite]) -> None:
        self._registry.account_book.put_many(self._cursor(), writes)

    def delete_account(self, name: str) -> None:
        cur = self._cursor()
        self._registry.account_book.delete(cur, name)
        self._registry.ledger.forget_account(cur, name)
        self._registry.sent_log.forget_account(cur, name)
        self._registry.scan_state.forget_account(cur, name)
        self._registry.conditions.forget_account(cur, name)

    def move_account(self, old: str, new: str) -> None:
        cur = self._cursor()
        self._registry.account_book.rename(cur, old, new)
        self._registry.ledger.rename_account(cur, old, new)
        self._registry.sent_log.rename_account(cur, old, new)
        self._registry.scan_state.rename_account(cur, old, new)
        self._registry.conditions.rename_account(cur, old, new)

    def set_owner(self, name: str, owner: Optional[str]) -> None:
        self._registry.account_book.set_owner(self._cursor(), name, owner)

    def merge_status(self, name: str, status: dict) -> None:
        self._registry.account_book.merge_status(self._cursor(), name, status)

    def add_history(self, entry: dict) -> int:
        return self._registry.history_log.add(self._cursor(), entry)
