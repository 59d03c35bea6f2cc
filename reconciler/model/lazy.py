"""Accounts played back from a cache, their models unpickled only when someone looks.

A warm plan of 100,000 accounts needs, of each account a pull request did not touch,
its name, its type, its secret references and where it was declared: its record's
digest (kept with it) and its registry row tell the planner it is unchanged. So a
cache keeps those beside the models (``AccountStub``), and the models of a file stay
pickled (``FileModels``) until one of them is asked for.

``Accounts`` is the mapping the loader fills: indexing it (``[]``, ``get``,
``values()``, ``items()``) always gives the account's model — unpickled then, once —
so code that reads accounts sees what a load without the cache gives. Only the few
places that run once per account in every plan look without unpickling (``peeker``,
``raw_values``, ``type_of``, ``declared_refs``, ``source_of``); they work on a plain
dict of models too.
"""
from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any, Callable, Iterable, Iterator, Optional

from .account import EmailAccount, secret_refs


class FileModels:
    """The account models of one cached file, pickled until one is asked for."""

    __slots__ = ("blob", "loads", "models")

    def __init__(self) -> None:
        self.blob: Optional[bytes] = None
        self.loads: Optional[Callable[[bytes], Any]] = None
        self.models: Optional[list] = None

    def __reduce__(self) -> tuple:     # (a cache pickles the place, not the models)
        return (FileModels, ())

    def model(self, index: int) -> EmailAccount:
        models = self.models
        if models is None:
            models = self.models = self.loads(self.blob)
            self.blob = self.loads = None
        return models[index]


class AccountStub:
    """What a plan reads of an account a cache played back, until it needs the model:
    its name, its type (``spec.type``), its secret references as ``secret_refs`` gives
    them, and its place among its file's models; for the loader, its record's digest
    (``manifest.cached.Entry.record``) and where the document and its name are (``at``:
    line, column, name's line, name's column). ``source``: (file, line, column), set
    when the loader registers it."""

    __slots__ = ("name", "type", "refs", "file", "index", "record", "at", "source")

    def __init__(self, name: str, type_: str, refs: tuple, file: FileModels,
                 index: int) -> None:
        self.name, self.type, self.refs, self.file, self.index = name, type_, refs, file, index
        self.record: Optional[bytes] = None
        self.at: tuple[int, int, int, int] = (0, 0, 0, 0)

    def model(self) -> EmailAccount:
        found = self.file.model(self.index)
        source = getattr(self, "source", None)
        private = found.__pydantic_private__
        if private is not None:
            private["_source"] = source
        else:
            found._source = source
        return found


class Accounts(MutableMapping):
    """Account name -> model, in which a cache's accounts wait as stubs (see above)."""

    __slots__ = ("_data",)

    def __init__(self, data: Optional[dict] = None) -> None:
        self._data: dict[str, Any] = {} if data is None else data

    def __getitem__(self, name: str) -> Any:
        value = self._data[name]
        if value.__class__ is AccountStub:
            value = self._data[name] = value.model()
        return value

    def __setitem__(self, name: str, value: Any) -> None:
        self._data[name] = value

    def __delitem__(self, name: str) -> None:
        del self._data[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, name: object) -> bool:
        return name in self._data

    def __repr__(self) -> str:
        return f"Accounts({len(self._data)} accounts)"

    def peek(self, name: str) -> Any:
        """The model, or the stub a cache played back (None: no such account)."""
        return self._data.get(name)

    def raw_values(self) -> Iterable[Any]:
        return self._data.values()

    def sort(self) -> None:
        """In name order (without unpickling)."""
        self._data = dict(sorted(self._data.items()))


def peeker(accounts: Any) -> Callable[[str], Any]:
    """``accounts.get``, but a cache's stub left as it is (``Accounts.peek``)."""
    return getattr(accounts, "peek", None) or accounts.get


def raw_values(accounts: Any) -> Iterable[Any]:
    """The models (and stubs) of ``accounts``, none unpickled."""
    getter = getattr(accounts, "raw_values", None)
    return getter() if getter is not None else accounts.values()


def sort_accounts(accounts: Any) -> Any:
    """``accounts`` in name order: the same Accounts sorted, or a sorted dict."""
    if isinstance(accounts, Accounts):
        accounts.sort()
        return accounts
    return dict(sorted(accounts.items()))


def type_of(account: Any) -> str:
    """``account.spec.type`` of a model or a stub."""
    return account.type if account.__class__ is AccountStub else account.spec.type


def declared_refs(account: Any) -> Iterable[tuple[str, Any]]:
    """``secret_refs(account.spec)`` of a model or a stub."""
    return account.refs if account.__class__ is AccountStub else secret_refs(account.spec)


def source_of(account: Any) -> Optional[tuple[str, int, int]]:
    """``account.source`` of a model or a stub, without pydantic's attribute look-up."""
    if account.__class__ is AccountStub:
        return getattr(account, "source", None)
    private = account.__pydantic_private__
    return private["_source"] if private and "_source" in private else account.source


def stub_of(model: EmailAccount, file: FileModels, index: int) -> AccountStub:
    """What a cache keeps of ``model``, the ``index``-th account of its file."""
    return AccountStub(model.metadata.name, model.spec.type, tuple(secret_refs(model.spec)),
                       file, index)
