"""What a run's cache entries share: one table of objects per run that writes entries.

A cold load shares equal strings, fields sets, sub-models and label mappings across all
its files (``manifest.compact``). Pickled one file at a time, each entry would bring its
own copies back. So while a run writes entries, the objects its ``Compactor`` made
shared are pickled, a batch at a time, into the run's *table*; every entry is pickled
with a pickler whose memo is the table pickler's at that moment (a C-level copy: no call
into Python per object), so an object of the table is written as a reference to it
(``BINGET``). At the end of the load the table is written once, authenticated like the
entries, in ``tables/`` beside them.

A run reading the cache loads the table an entry names (once) and unpickles the entry
with an unpickler whose memo is the table's: the shared objects are the same objects
for every file of that run. Protocol 3 writes each memo index explicitly (``BINPUT``):
an entry written when its table had ``k`` objects refers only to indices below ``k``
and puts its own objects at ``k`` and above, so the whole table (``k`` objects or more)
reads it right. (Protocol 4's ``MEMOIZE`` counts instead, which an unpickler given a
memo does not.) A table missing, corrupt or forged makes its entries misses.
"""
from __future__ import annotations

import hashlib
import hmac
import io
import os
import pickle
from pathlib import Path
from typing import Callable, Optional

PROTOCOL = 3            # explicit memo indices (see above)
ID_BYTES = 16
MAC_BYTES = 32
_C_MEMO = pickle.Pickler.__module__ == "_pickle" and pickle.Unpickler.__module__ == "_pickle"


def _copy(memo):
    """A memo to hand to another (un)pickler: the C one copies a memo assigned to it (in C,
    no call per object); the pure-Python one would share the dict."""
    return memo if _C_MEMO else memo.copy()


class TableWriter:
    """The table of one run that writes entries: shared objects pickled as they come."""

    def __init__(self, shared: Callable[[], list]) -> None:
        self.id = os.urandom(ID_BYTES)
        self.shared = shared                 # Compactor.new_shared
        self.buffer = io.BytesIO()
        self.pickler = pickle.Pickler(self.buffer, PROTOCOL)

    def dumps(self, obj: object) -> bytes:
        """``obj`` pickled against the table: its shared objects written as references."""
        new = self.shared()
        if new:
            self.pickler.dump(new)        # (the memo keeps them alive: ids stay theirs)
        out = io.BytesIO()
        pickler = pickle.Pickler(out, PROTOCOL)
        pickler.memo = _copy(self.pickler.memo)
        pickler.dump(obj)
        return out.getvalue()

    def payload(self) -> bytes:
        return self.buffer.getvalue()


class TableReader:
    """A table as read back: its unpickler's memo seeds every entry's."""

    def __init__(self, payload: bytes) -> None:
        stream = _stream(payload)
        self.unpickler = pickle.Unpickler(stream)
        while stream.tell() < len(payload):
            self.unpickler.load()           # the batches, as they were written

    def loads(self, data: bytes) -> object:
        unpickler = pickle.Unpickler(_stream(data))
        unpickler.memo = _copy(self.unpickler.memo)
        return unpickler.load()


def _stream(data: bytes) -> io.BufferedReader:
    """``data`` to unpickle from. Buffered: the C unpickler then reads ahead through
    ``peek`` (a plain BytesIO, without frames, costs a call into Python per opcode:
    three times slower)."""
    return io.BufferedReader(io.BytesIO(data), max(len(data), 1))


class Tables:
    """The tables under ``folder``: one file each, named by its id, with an HMAC-SHA256
    (under ``key``, over the id, ``version`` and the contents) checked before reading."""

    def __init__(self, folder: Path, key: bytes, version: str) -> None:
        self.folder, self.key, self.version = folder, key, version.encode()
        self.read: dict[bytes, Optional[TableReader]] = {}

    def _mac(self, table_id: bytes, payload: bytes) -> bytes:
        return hmac.new(self.key, b"table\0" + self.version + b"\0" + table_id + payload,
                        hashlib.sha256).digest()

    def reader(self, table_id: bytes) -> Optional[TableReader]:
        """The table ``table_id`` (read once), or None: missing, corrupt or forged."""
        if table_id not in self.read:
            self.read[table_id] = self._load(table_id)
        return self.read[table_id]

    def _load(self, table_id: bytes) -> Optional[TableReader]:
        try:
            blob = (self.folder / table_id.hex()).read_bytes()
        except OSError:
            return None
        payload = blob[MAC_BYTES:]
        if not hmac.compare_digest(blob[:MAC_BYTES], self._mac(table_id, payload)):
            return None
        try:
            os.utime(self.folder / table_id.hex())     # in use (workflow.cache's sweep)
        except OSError:
            pass
        try:
            return TableReader(payload)
        except Exception:  # noqa: BLE001 - authenticated, yet not a table of this layout
            return None

    def write(self, writer: TableWriter, write_atomic: Callable[[Path, bytes], None]) -> None:
        payload = writer.payload()
        path = self.folder / writer.id.hex()
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, self._mac(writer.id, payload) + payload)
