"""Pure comparison of account records: flatten, compare, list field changes.

A record is the nested, JSON-ready spec of an account without its secrets,
plus ``labels``. Secrets are compared by keyed fingerprint, never by value.
Inside a record that differs, DeepDiff finds the changed fields (see README,
"deepdiff", for what it costs the plan).
"""
from __future__ import annotations

from operator import itemgetter
from typing import Any, Iterable, Mapping, NamedTuple, Optional

from .model import (SECRET_FIELDS, AccountSpec, EmailAccount, FromOverride, InboxSettings,
                    Lifecycle, ReplyTo, SmtpSettings, secret_refs, without_secrets)

SENSITIVE = "(sensitive)"


class Change(NamedTuple):
    """One field's change (a named tuple: a plan of 100,000 creates makes millions)."""

    path: str
    before: Any
    after: Any
    sensitive: bool = False

    def to_dict(self) -> dict:
        if self.sensitive:
            before = None if self.before is None else SENSITIVE
            after = None if self.after is None else SENSITIVE
            return {"path": self.path, "before": before, "after": after, "sensitive": True}
        return dict(zip(_KEYS, self))


_KEYS = Change._fields
_BY_PATH = itemgetter(0)        # a change's path (sorting millions of them)


def record_of(account: EmailAccount) -> dict:
    """The registry form of a desired account: its spec without secrets, and its labels."""
    # Python mode: every spec field is already a JSON type (str, int, bool, list, dict),
    # and it is several times faster than mode="json".
    spec = without_secrets(account.spec.model_dump())
    spec["labels"] = dict(sorted(account.metadata.labels.items()))
    return spec


def _defaults(model: Any) -> dict[str, Any]:
    out = {}
    for name, info in model.model_fields.items():
        if info.is_required():
            continue
        value = info.get_default(call_default_factory=True)
        out[name] = value.model_dump() if hasattr(value, "model_dump") else value
    return out


_SECTIONS = {"smtp": SmtpSettings, "inbox": InboxSettings, "reply_to": ReplyTo,
             "from_override": FromOverride, "lifecycle": Lifecycle}
_SPEC_DEFAULTS = {k: v for k, v in _defaults(AccountSpec).items() if k not in SECRET_FIELDS}
_SECTION_DEFAULTS = {name: {k: v for k, v in _defaults(model).items() if k != "password"}
                     for name, model in _SECTIONS.items()}


def with_defaults(spec: Mapping) -> Mapping:
    """A registry record written by an older mailform, with the fields added since then at
    their model defaults (a new field is not a change); the record itself when complete."""
    missing = _SPEC_DEFAULTS.keys() - spec.keys()
    short = [name for name, defaults in _SECTION_DEFAULTS.items()
             if isinstance(spec.get(name), dict) and defaults.keys() - spec[name].keys()]
    if not missing and not short:
        return spec
    out = {**{k: _SPEC_DEFAULTS[k] for k in missing}, **spec}
    for name in short:
        out[name] = {**_SECTION_DEFAULTS[name], **spec[name]}
    return out


def secret_presence(account: EmailAccount) -> list[str]:
    """Secret paths the account declares (after defaults)."""
    return [path for path, _ in secret_refs(account.spec)]


_new = tuple.__new__        # a Change without a Python-level __new__ call (millions at 100,000)
_LEAF_TYPES = frozenset({str, int, float, bool, list, type(None)})   # skip the slow ABC check


_PATHS: dict[tuple[str, str], str] = {}
_MAX_PATHS = 10000          # (labels are free-form: a bound for long-running processes)


def flatten(record: Mapping, prefix: str = "") -> dict[str, Any]:
    """Nested mapping → {dotted.path: leaf}. Lists are leaves; empty mappings vanish."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        path = _PATHS.get((prefix, key))
        if path is None:          # one string per field path, shared by every account
            path = f"{prefix}{key}"
            if len(_PATHS) < _MAX_PATHS:
                _PATHS[(prefix, key)] = path
        if type(value) is dict or (type(value) not in _LEAF_TYPES and isinstance(value, Mapping)):
            out.update(flatten(value, path + "."))
        else:
            out[path] = value
    return out


def unflatten(flat: Mapping[str, Any]) -> dict:
    out: dict = {}
    for path, value in flat.items():
        node = out
        parts = path.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        if value is None and isinstance(node.get(parts[-1]), dict):
            continue
        node[parts[-1]] = value
    return out


def is_ignored(path: str, ignore: Iterable[str]) -> bool:
    return any(path == p or path.startswith(p + ".") for p in ignore)


def _at(record: Any, parts: tuple) -> Any:
    """The value under a key path; a missing key (or a leaf on the way) is None."""
    for part in parts:
        if not isinstance(record, Mapping):
            return None
        record = record.get(part)
    return record


def _located(before: Mapping, after: Mapping) -> set[tuple]:
    """Key paths of the subtrees that differ, cut at the first list (lists are leaves).

    Top-level sections are told apart by plain equality; DeepDiff then finds the
    changed fields inside the sections that differ.
    """
    keys = [k for k in before.keys() | after.keys() if before.get(k) != after.get(k)]
    if not keys:
        return set()
    from deepdiff import DeepDiff    # loaded by the first plan that changes an account
    tree = DeepDiff({k: before.get(k) for k in keys}, {k: after.get(k) for k in keys},
                    view="tree", zip_ordered_iterables=True)
    located = set()
    for levels in tree.values():
        for level in levels:
            parts = level.path(output_format="list")
            cut = next((i for i, p in enumerate(parts) if not isinstance(p, str)), len(parts))
            located.add(tuple(parts[:cut]))
    return located


def _leaves(value: Any, parts: tuple) -> dict[str, Any]:
    """A subtree as {dotted.path: leaf}; a value that is not a mapping is one leaf."""
    path = ".".join(parts)
    if isinstance(value, Mapping):
        return flatten(value, path + "." if path else "")
    return {path: value}


def _leaf_changes(old: Mapping[str, Any], new: Mapping[str, Any], ignore: tuple) -> list[Change]:
    if not new:                 # a delete: every present field goes
        return [_new(Change, (path, value, None, False)) for path, value in old.items()
                if value is not None and not (ignore and is_ignored(path, ignore))]
    if not old:                 # a create: every present field comes
        return [_created(path, value) for path, value in new.items()
                if value is not None and not (ignore and is_ignored(path, ignore))]
    return [Change(path, old.get(path), new.get(path)) for path in old.keys() | new.keys()
            if old.get(path) != new.get(path) and not (ignore and is_ignored(path, ignore))]


_CREATED: dict[tuple, Change] = {}
_MAX_CREATED = 10000        # (a bound for long-running processes)
_SHARED_TYPES = frozenset({str, int, bool})      # equal values of one type: the same JSON


def _created(path: str, value: Any) -> Change:
    """A created field's change, one tuple for every account creating the same value (a
    plan of 100,000 creates repeats most of them: tens of megabytes)."""
    kind = type(value)
    if kind not in _SHARED_TYPES:
        return _new(Change, (path, None, value, False))
    change = _CREATED.get((path, value, kind))
    if change is None:
        change = _new(Change, (path, None, value, False))
        if len(_CREATED) < _MAX_CREATED:
            _CREATED[(path, value, kind)] = change
    return change


def _created_fields(record: Mapping, prefix: str) -> list[Change]:
    """``_leaf_changes({}, flatten(record), ())`` in one walk (a plan of 100,000 creates)."""
    out: list[Change] = []
    for key, value in record.items():
        path = _PATHS.get((prefix, key))
        if path is None:
            path = f"{prefix}{key}"
            if len(_PATHS) < _MAX_PATHS:
                _PATHS[(prefix, key)] = path
        kind = type(value)
        if kind is dict or (kind not in _LEAF_TYPES and isinstance(value, Mapping)):
            out += _created_fields(value, path + ".")
        elif value is not None:
            change = _CREATED.get((path, value, kind)) if kind in _SHARED_TYPES else None
            out.append(change if change is not None else _created(path, value))
    return out


def _field_changes(before: Mapping, after: Mapping, ignore: tuple) -> list[Change]:
    found: dict[str, Change] = {}
    for parts in _located(before, after):
        old, new = _leaves(_at(before, parts), parts), _leaves(_at(after, parts), parts)
        found.update((c.path, c) for c in _leaf_changes(old, new, ignore))
    return list(found.values())


def compare(before: Optional[Mapping], after: Optional[Mapping],
            before_fps: Mapping[str, str], after_fps: Mapping[str, str],
            ignore: Iterable[str] = ()) -> tuple[list[Change], int]:
    """Field changes from ``before`` to ``after`` (records, flattened) and secrets.

    Returns (changes sorted by path, number of unchanged fields). Paths under
    ``ignore`` are left out. Missing keys and None are the same; lists are leaves.
    """
    ignore = tuple(ignore)
    if not before and after and not ignore:
        changes, unchanged = _created_fields(after, ""), 0      # a create: every field
    else:
        flat_a = flatten(after or {})
        if before and after:
            changes = _field_changes(before, after, ignore)
        else:            # a delete (or an ignored create): every field, nothing to locate
            changes = _leaf_changes(flatten(before or {}), flat_a, ignore)
        unchanged = 0 if not before else _unchanged(flat_a, changes, ignore)
    for path in sorted(before_fps.keys() | after_fps.keys()):
        if is_ignored(path, ignore):
            continue
        old, new = before_fps.get(path), after_fps.get(path)
        if old == new:
            unchanged += 1
        else:
            changes.append(Change(path, old, new, sensitive=True))
    changes.sort(key=_BY_PATH)
    return changes, unchanged


def _unchanged(flat_after: Mapping[str, Any], changes: list[Change], ignore: tuple) -> int:
    """Fields present after, not ignored, that no change touches (a create: none)."""
    present = sum(v is not None and not (ignore and is_ignored(p, ignore))
                  for p, v in flat_after.items())
    return present - sum(c.after is not None for c in changes)


def merge_ignored(desired: Mapping, live: Optional[Mapping], ignore: Iterable[str]) -> dict:
    """The record an update writes: desired, but live values kept under ignored paths."""
    ignore = list(ignore)
    if not ignore or live is None:
        return dict(desired)
    flat_d, flat_l = flatten(desired), flatten(live)
    merged = {p: v for p, v in flat_d.items() if not is_ignored(p, ignore)}
    merged.update({p: v for p, v in flat_l.items()
                   if is_ignored(p, ignore) and not _section_removed(p, flat_d, ignore)})
    return unflatten(merged)


def _section_removed(path: str, flat_desired: Mapping[str, Any], ignore: list[str]) -> bool:
    """The desired record removes a section above ``path`` (``reply_to: null``) and the
    section itself is not ignored: an ignored field inside it goes too, rather than
    leaving a half section (a ``reply_to`` without its email)."""
    parts = path.split(".")
    for end in range(1, len(parts)):
        section = ".".join(parts[:end])
        if section in flat_desired and flat_desired[section] is None \
                and not is_ignored(section, ignore):
            return True
    return False
