"""Loaded models made smaller: what 100,000 accounts cost in memory.

Pydantic gives every model instance its own ``__pydantic_fields_set__`` (a set of
the fields given), about 40% of a loaded account's memory; across a run only a
handful of distinct sets occur. ``Compactor.compact`` replaces each with one shared
frozenset (read by ``exclude_unset``; a model assigned to after loading would fail
loudly instead of changing the others' sets), and makes equal short strings (hosts,
owners, label values), equal integers (ports, line numbers of sources) and equal
string-to-string mappings (labels) one object each.
Loaded models are read-only: nothing changes them after validation.
"""
from __future__ import annotations

from enum import Enum
from typing import Any

from pydantic import BaseModel

_FIELDS_SETS: dict[frozenset, frozenset] = {}
MAX_SHARED_LENGTH = 64      # longer strings are rarely repeated
MAX_NUMBERS = 100_000       # integers kept shared


_PLAIN = frozenset({str, int, bool, float, type(None)})
_UNSHARED = object()
_TRIAL = 500            # sub-models of a kind looked up before giving up on sharing it


class Compactor:
    """One load's memo of strings, small mappings and sub-models seen (dropped with the
    load): equal sub-models (a lifecycle, a secret reference, a from_override) become
    one shared instance."""

    def __init__(self) -> None:
        self.strings: dict[str, str] = {}
        self.mappings: dict[tuple, dict] = {}
        self.models: dict[tuple, BaseModel] = {}
        self.shared: set[int] = set()       # ids of the shared mappings and models
        self.seen: dict[Any, list[int]] = {}       # kind or (kind, field) -> [hits, misses]
        self.numbers: dict[int, int] = {}          # ports, line numbers: repeated (> 256)
        self.names: dict[type, list[str]] = {}    # a model class -> the names its pickle repeats
        self._listed = [0, 0, 0, 0, 0]             # what new_shared() has handed out

    def new_shared(self) -> list:
        """The objects this memo made shared (the names models' pickles repeat, fields
        sets, sub-models, mappings, strings) that no call listed before, in the order they
        were made shared: a cache pickles its entries against them
        (``workflow.shared_table``), so that a run reading the cache shares them across
        files as this run does. (They are never changed.)"""
        new: list = []
        for index, made in enumerate((self.names, _FIELDS_SETS, self.models,
                                      self.mappings, self.strings)):
            listed = self._listed[index]
            if len(made) > listed:
                added = list(made.values())[listed:]
                new += [n for names in added for n in names] if index == 0 else added
                self._listed[index] = len(made)
        return new

    @staticmethod
    def _names(model: BaseModel) -> list[str]:
        """The strings every pickle of a ``model``'s class repeats: its state's keys, its
        fields' and private attributes' names (first in a cache's table: short references)."""
        owner = model.__class__
        return [*model.__getstate__(), *owner.model_fields, *owner.__private_attributes__]

    def compact(self, model: BaseModel) -> BaseModel:
        """The same model, its (and its sub-models') parts shared; returns it. (A model
        compacted before, e.g. by a worker process, only has its parts shared with this
        memo's: a sub-model this memo already shares is left as it is.)"""
        fields = model.__pydantic_fields_set__
        if fields.__class__ is not frozenset or _FIELDS_SETS.get(fields) is not fields:
            fields = frozenset(fields)
            object.__setattr__(model, "__pydantic_fields_set__",
                               _FIELDS_SETS.setdefault(fields, fields))
        values = model.__dict__
        owner = model.__class__
        if owner not in self.names:
            self.names[owner] = self._names(model)
        for key, value in values.items():
            kind = value.__class__
            if kind is str:
                if len(value) <= MAX_SHARED_LENGTH:
                    values[key] = self._string(owner, key, value)
            elif kind is int:
                if value > 256:               # (smaller ones are one object already)
                    values[key] = self.number(value)
            elif kind in _PLAIN:
                continue
            elif kind is dict:
                values[key] = self._mapping(value)
            elif kind is list:
                self._each(value)
            elif isinstance(value, BaseModel) and id(value) not in self.shared:
                values[key] = self._model(self.compact(value))
        return model

    def number(self, value: int) -> int:
        """One object for equal integers (a port, a line number), the first MAX_NUMBERS."""
        found = self.numbers.get(value)
        if found is None:
            if len(self.numbers) >= MAX_NUMBERS:
                return value
            found = self.numbers[value] = value
        return found

    def _string(self, owner: type, field: str, value: str) -> str:
        """One object for equal strings of a field whose values repeat (a host, an owner);
        a field of each account's own values (an email) is left alone after a while."""
        seen = self.seen.setdefault((owner, field), [0, 0])
        if seen[1] > _TRIAL and seen[0] < seen[1]:
            return value
        found = self.strings.get(value)
        if found is None:
            seen[1] += 1
            found = self.strings[value] = value
        else:
            seen[0] += 1
        return found

    def _model(self, model: BaseModel) -> BaseModel:
        """One instance for equal sub-models made only of plain or shared values; a kind
        that rarely repeats (a reply_to with each account's own address) is left alone
        after a while, so that the memo stays small."""
        seen = self.seen.setdefault(model.__class__, [0, 0])      # [hits, misses]
        if model.__pydantic_private__ or model.__pydantic_extra__ or (
                seen[1] > _TRIAL and seen[0] < seen[1]):
            return model
        parts = []
        for value in model.__dict__.values():
            part = self._part(value)
            if part is _UNSHARED:
                return model
            parts.append(part)
        key = (model.__class__, model.__pydantic_fields_set__, tuple(parts))
        found = self.models.get(key)
        if found is None:
            seen[1] += 1
            found = self.models[key] = model
            self.shared.add(id(model))
        else:
            seen[0] += 1
        return found

    def _part(self, value: Any) -> Any:
        """``value`` as part of a sub-model's key (plain values, enum members, lists of
        them, shared objects), or _UNSHARED."""
        if value.__class__ in _PLAIN or isinstance(value, Enum):
            return (value.__class__, value)
        if id(value) in self.shared:
            return ("shared", id(value))
        if value.__class__ is list and all(v.__class__ in _PLAIN for v in value):
            return ("list", tuple(value))
        return _UNSHARED

    def _mapping(self, mapping: dict) -> dict:
        if not all(k.__class__ is str and v.__class__ is str for k, v in mapping.items()):
            return mapping
        key = tuple(mapping.items())
        shared = self.mappings.get(key)
        if shared is None:
            shared = self.mappings[key] = {self.strings.setdefault(k, k):
                                           self.strings.setdefault(v, v)
                                           for k, v in mapping.items()}
            self.shared.add(id(shared))
        return shared

    def _each(self, values: list[Any]) -> None:
        for value in values:
            if isinstance(value, BaseModel):
                self.compact(value)
