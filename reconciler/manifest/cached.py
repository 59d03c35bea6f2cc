"""A file's validated documents as a cache keeps them, and played back on a hit.

Only a file whose documents all validated without an error is kept: for each
document its model (with its source position) and the positions that registering
it may report (its name, its kind, the document itself, and the fields its
warnings point at), and an account's warnings themselves. Playing a file back
registers the same models the same way (duplicate names across files, a second
BouncePolicy, warnings), so a run with the cache reports exactly what a run
without it reports.

The store behind it (``workflow.cache``) authenticates what it hands back; this
module only needs ``get(filename, text)``, ``put(filename, text, entries, shared)``
(``shared``: the objects the load made shared since the last call, that entries may
refer to, ``Compactor.new_shared``) and ``flush()`` at the end of the load.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Protocol

from ..model import EmailAccount, warnings_for
from ..model.lazy import AccountStub

Loc = tuple
NAME_LOC: Loc = ("metadata", "name")
_ALWAYS: tuple[Loc, ...] = ((), NAME_LOC, ("kind",))


class DocumentCache(Protocol):
    def get(self, filename: str, text: str) -> Optional[list]: ...
    def put(self, filename: str, text: str, entries: list,
            shared: Callable[[], list]) -> None: ...
    def flush(self) -> None: ...


@dataclass
class Entry:
    """One document of a clean file: its kind, name, model and positions. (A cache plays
    an account without warnings back as its ``model.lazy.AccountStub`` alone.)"""

    kind: str
    name: Optional[str]
    model: Any
    positions: dict = field(default_factory=dict)   # loc -> (line, column)
    record: Optional[bytes] = None  # SHA-256 of an account's record JSON, by the store
    warnings: Optional[tuple] = None  # an account's warnings_for (None: not kept, ask again)


class Counted:
    """An Entry's model for ``validate`` (lean) when a worker parsed a valid account: its
    name only. The model stays in the worker (sending it back cost more than parsing it
    in the main process)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


class ReplayedDocument:
    """Stands in for a parsed ``yamlpos.Document`` when a file is played back."""

    __slots__ = ("positions",)

    def __init__(self, entry: Entry) -> None:
        self.positions = entry.positions

    def position(self, loc: Loc, key: bool = False) -> tuple[int, int]:
        return self.positions[loc if loc.__class__ is tuple else tuple(loc)]


def entry_of(doc: Any, data: dict, model: Any) -> Entry:
    """What a cache keeps of a document that validated."""
    meta = data.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    locs = list(_ALWAYS)
    warnings = None
    if isinstance(model, EmailAccount):
        warnings = tuple(warnings_for(model))
        locs += [tuple(loc) for loc, _ in warnings]
    return Entry(data["kind"], name if isinstance(name, str) else None, model,
                 {loc: doc.position(loc) for loc in locs}, warnings=warnings)


def register_stubs(check: Any, entries: list) -> list:
    """A cache's accounts (``AccountStub``, those without warnings) registered in
    ``check`` (the loader's ``_FileCheck`` of their file) as its ``_register`` would,
    without a call per account (100,000 accounts on every warm plan). Returned for
    ``_register``: the other entries, and as an entry a stub whose name was met before
    (it reports it)."""
    desired = check.desired
    names, accounts, digests = check.names, desired.accounts, desired.record_digests
    number, filename, lean = check.compactor.number, check.filename, desired.lean
    rest = []
    for stub in entries:
        if stub.__class__ is not AccountStub:
            rest.append(stub)
            continue
        name = stub.name
        line, col, name_line, name_col = stub.at
        key = ("EmailAccount", name)
        if key in names:
            rest.append(Entry("EmailAccount", name, stub, {
                (): (line, col), NAME_LOC: (name_line, name_col)}, stub.record, ()))
            continue
        names[key] = (filename, name_line, name_col)
        if lean:                    # validate: counted, not kept
            accounts[name] = None
            continue
        stub.source = (filename, number(line), number(col))
        accounts[name] = stub
        digests[name] = stub.record
    return rest
