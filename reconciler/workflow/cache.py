"""The local cache that makes a second plan cheap (``.mailform/cache/``).

Kept: the validated documents of each clean manifest file, by the digest of its
rendered text, its file name, the manifest schema (the models' source), mailform's
and pydantic's versions (see ``manifest.cached``); and the registry's account rows,
by its lineage, serial, contact count, settings and schema (``RowStore``). Nothing secret is in it: secret
references stay references, resolved on every run. The entries a run writes share one
table of the objects its load made shared (``shared_table``): read back, the accounts of
all files share them as a cold load's do.

A cache may be carried between CI runs, where a pull request could write it, so
every entry carries an HMAC-SHA256 under a key derived from the registry's own key
(``registry.sign``); an entry that does not verify — corrupt, forged, or from another
registry — is ignored and written again (so is an entry whose table is missing or does
not verify, and an entry of the older layout, pickled without a table). Entries and
tables are verified *before* they are unpickled. A cache that cannot be written (a
read-only filesystem) is skipped, and ``--no-cache`` turns it off. Without a registry there is no key, so no cache.
What no run has read or written for KEEP_DAYS is swept away (``DocStore.sweep``).
"""
from __future__ import annotations

import hashlib
import hmac
import os
import pickle
import struct
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional

import pydantic

from .. import __version__
from ..errors import MailformError
from ..diff import record_of
from ..manifest.cached import NAME_LOC, Entry
from ..model import EmailAccount
from ..model.lazy import AccountStub, FileModels, stub_of
from ..planner import record_digest
from ..registry import open_registry, registry_exists
from ..registry.common import dumps
from ..registry.rows import Match, from_kept, kept, unread_specs
from .shared_table import ID_BYTES, Tables, TableWriter

CACHE_DIR = os.path.join(".mailform", "cache")
PURPOSE = "local cache"
_MAC_BYTES = 32
_SHARING = b"\xffMF3"     # entries pickled against their run's table (then the table's id)
_LENGTH = struct.Struct(">Q")     # the index's length; the file's account models follow it
LOCAL_ROWS = True       # cache a SQLite registry's rows too (False: tests of reading them)
KEEP_DAYS = 14          # entries and tables not read or written for this long are removed
PRUNE_EVERY = 86400     # seconds: the folder is swept at most this often (``.swept``)


def schema_version() -> str:
    """A digest of the models' source (and of the records made from them): any change
    to them is another cache."""
    package = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()     # (diff.py: the records kept beside the models)
    for path in sorted(package.glob("model/*.py")) + [package / "diff.py"]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


class DocStore:
    """Files' documents under ``folder``/docs, one authenticated file per entry."""

    def __init__(self, folder: str, key: bytes, version: Optional[str] = None) -> None:
        self.folder = Path(folder) / "docs"
        self.key = key
        self.version = version or f"{__version__}/{pydantic.VERSION}/{schema_version()}"
        self.writable = True
        self.hits = self.misses = 0
        self.tables = Tables(Path(folder) / "tables", key, self.version)
        self.writer: Optional[TableWriter] = None       # this load's table, while it puts

    def _address(self, filename: str, text: str) -> tuple[Path, bytes]:
        digest = hashlib.sha256(b"\0".join((self.version.encode(), filename.encode(),
                                            text.encode()))).digest()
        name = digest.hex()
        return self.folder / name[:2] / name, digest

    def get(self, filename: str, text: str) -> Optional[list]:
        path, digest = self._address(filename, text)
        try:
            blob = path.read_bytes()
        except OSError:
            return self._miss()
        mac, payload = blob[:_MAC_BYTES], blob[_MAC_BYTES:]
        if not hmac.compare_digest(mac, self._mac(digest, payload)):
            return self._miss()        # corrupt, forged or another registry's: rebuilt
        entries = self._entries(payload)
        if not isinstance(entries, list) or not all(
                e.__class__ is AccountStub or isinstance(e, Entry) for e in entries):
            return self._miss()
        _touch(path)         # (in use: kept by the sweep, see ``flush``)
        self.hits += 1
        return entries

    def _entries(self, payload: bytes) -> Optional[object]:
        """An authenticated entry unpickled with its table's objects: its documents, the
        accounts as stubs whose models stay pickled until asked for (``model.lazy``).
        None: an entry of an older layout, or its table is missing, corrupt or forged
        (rebuilt)."""
        start = len(_SHARING)
        if payload[:start] != _SHARING:
            return None
        table = self.tables.reader(payload[start:start + ID_BYTES])
        if table is None:
            return None
        start += ID_BYTES
        try:
            (length,) = _LENGTH.unpack_from(payload, start)
            start += _LENGTH.size
            models, entries = table.loads(payload[start:start + length])
            if models.__class__ is not FileModels:
                return None
        except Exception:  # noqa: BLE001 - not of this layout after all
            return None
        models.blob, models.loads = payload[start + length:], table.loads
        return entries

    def _miss(self) -> None:
        self.misses += 1
        return None

    def _mac(self, digest: bytes, payload: bytes) -> bytes:
        return hmac.new(self.key, digest + payload, hashlib.sha256).digest()

    def put(self, filename: str, text: str, entries: list,
            shared: Callable[[], list] = list) -> None:
        """Keep a file's entries; ``shared``: the objects the load made shared since the
        last call (``Compactor.new_shared``), pickled into the load's table."""
        if not self.writable:
            return
        path, digest = self._address(filename, text)
        if self.writer is None:
            self.writer = TableWriter(shared)
        models, index = _stored(entries)
        head = self.writer.dumps((models, index))
        payload = (_SHARING + self.writer.id + _LENGTH.pack(len(head)) + head
                   + self.writer.dumps(models.models))
        models.models = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            _write_atomic(path, self._mac(digest, payload) + payload)
        except OSError:
            self.writable = False      # read-only filesystem, full disk: go on without

    def flush(self) -> None:
        """The end of a load: the table its entries share, written once; the tables read
        are let go; at most once a day, what no run has read or written for KEEP_DAYS
        swept away."""
        writer, self.writer = self.writer, None
        self.tables.read.clear()
        if not self.writable:
            return
        try:
            if writer is not None:
                self.tables.write(writer, _write_atomic)
            self.sweep()
        except OSError:
            self.writable = False

    def sweep(self, now: Optional[float] = None, force: bool = False) -> int:
        """Remove the entries and tables (and leftovers of interrupted writes) that no run
        has read or written for KEEP_DAYS: a cache carried between CI runs stops growing.
        Reading an entry touches it and its table, and an entry is read only with its
        table, so a table is never older than an entry that still uses it (one removed
        all the same is a miss, rebuilt). At most every PRUNE_EVERY seconds (``force``:
        now); how many files were removed."""
        now = time.time() if now is None else now
        marker = self.folder.parent / ".swept"
        try:
            if not force and now - marker.stat().st_mtime < PRUNE_EVERY:
                return 0
        except FileNotFoundError:
            pass
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
        horizon, removed = now - KEEP_DAYS * 86400, 0
        for path in [*self.folder.glob("*/*"), *self.tables.folder.glob("*")]:
            try:
                if path.is_file() and path.stat().st_mtime < horizon:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                continue        # another run's sweep
        return removed


def _stored(entries: list[Entry]) -> tuple[FileModels, list]:
    """A file's entries as a cache keeps them: each account as its stub (``model.lazy``:
    with its record's digest, made here if the load did not, and its positions; one with
    warnings in its entry, with their positions), its model among the file's models."""
    models = FileModels()
    models.models = []
    index: list = []
    for entry in entries:
        model = entry.model
        if isinstance(model, EmailAccount):
            if entry.record is None:
                entry.record = record_digest(dumps(record_of(model)))
            stub = stub_of(model, models, len(models.models))
            models.models.append(model)
            stub.record = entry.record
            stub.at = (*entry.positions[()], *entry.positions[NAME_LOC])
            entry = stub if not entry.warnings else Entry(
                entry.kind, entry.name, stub, entry.positions, entry.record, entry.warnings)
        index.append(entry)
    return models, index


def _touch(path: Path) -> None:
    try:
        os.utime(path)
    except OSError:
        pass        # a read-only cache: read, never swept from here


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


class RowStore:
    """The registry's account rows as the last plan read them, by everything a plan reads
    from the registry: lineage, serial (every write that changes a row bumps it), the
    contact count, the settings and the schema. One entry (the latest) is kept; a row
    unchanged since its last apply as its digest (``registry.rows.kept``)."""

    def __init__(self, folder: str, key: bytes, local_too: Optional[bool] = None) -> None:
        self.path = Path(folder) / "rows"
        self.key = key
        self.local_too = LOCAL_ROWS if local_too is None else local_too
        self.writable = True
        self.hit = False

    def accounts(self, registry, match: Optional[Match] = None) -> dict:
        """``registry.accounts()``, from the cache when the registry has not changed.
        ``match``: rows read from the registry keep only a digest of the specs it vouches
        for (registry.rows.unread_specs). The cache keeps a row unchanged since its last
        apply as its digest (``registry.rows.kept``): its spec text is read again from the
        registry only if the plan looks at it — only for an account it does not find
        unchanged by digest."""
        if not self.local_too and str(registry.url).startswith("sqlite"):
            with unread_specs(match):
                return registry.accounts()
        before = self._state(registry)
        found = self._read(before)
        if found is not None:
            self.hit = True
            return _with_texts(from_kept(found, registry.account), registry, match)
        with unread_specs(match):
            accounts = registry.accounts()
        if self._state(registry) == before:       # no write came in between
            self._write(before, kept(accounts.values()))
        return accounts

    @staticmethod
    def _state(registry) -> bytes:
        meta = registry.meta()
        return repr((meta.lineage, meta.serial, registry.contact_count(),
                     registry.get_setting("bounce_policy"),
                     getattr(registry, "schema_version", lambda: 0)(),
                     __version__)).encode()

    def _mac(self, state: bytes, payload: bytes) -> bytes:
        return hmac.new(self.key, hashlib.sha256(state).digest() + payload,
                        hashlib.sha256).digest()

    def _read(self, state: bytes) -> Optional[list]:
        try:
            blob = self.path.read_bytes()
        except OSError:
            return None
        mac, payload = blob[:_MAC_BYTES], blob[_MAC_BYTES:]
        if not hmac.compare_digest(mac, self._mac(state, payload)):
            return None                 # another state, corrupt, forged: read again
        try:
            found = pickle.loads(payload)
        except Exception:  # noqa: BLE001 - an authenticated entry of an older layout
            return None
        return found if isinstance(found, list) else None

    def _write(self, state: bytes, rows: list) -> None:
        if not self.writable:
            return
        payload = pickle.dumps(rows, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            _write_atomic(self.path, self._mac(state, payload) + payload)
        except OSError:
            self.writable = False


def _with_texts(rows: dict, registry, match: Optional[Match]) -> dict:
    """Rows kept as digests, the spec texts the plan will look at read back in pages (a
    plan that changes a tenth of 100,000 accounts: a hundred queries, not ten thousand;
    the others, such as an account deleted from the manifests, one by one when looked at).
    ``match``'s ``needs_text`` (``workflow.run.unchanged_by_digest``) tells which."""
    needs = getattr(match, "needs_text", None)
    read = getattr(registry, "spec_texts", None)
    if needs is None or read is None:
        return rows
    wanted = [name for name, row in rows.items()
              if row.spec_text is None and needs(name, row.type, row.fingerprints,
                                                 row.spec_digest)]
    if wanted:
        texts = read(wanted)
        for name in wanted:
            rows[name].given_text(texts.get(name))
    return rows


class LocalCache:
    """Both caches, under one key derived from the registry's."""

    def __init__(self, folder: str, key: bytes) -> None:
        self.docs = DocStore(folder, key)
        self.rows = RowStore(folder, key)


def cache_key(registry) -> bytes:
    """The cache's key, derived from the registry's own key."""
    return registry.sign(PURPOSE, b"mailform cache key v1").encode("ascii")


def local_cache(registry_url: str, folder: str = CACHE_DIR) -> Optional[LocalCache]:
    """The caches for plans against ``registry_url`` (None: no registry yet)."""
    try:
        if not registry_exists(registry_url):
            return None
        with open_registry(registry_url, create=False) as registry:
            key = cache_key(registry)
    except MailformError:
        return None     # the run itself reports what is wrong with the registry
    return LocalCache(folder, key)
