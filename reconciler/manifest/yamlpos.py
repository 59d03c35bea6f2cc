"""YAML loading that remembers where every key and value is.

libyaml's composer (through PyYAML's CSafeLoader) builds a node tree with
positions; a short converter turns it into plain Python values. The node tree
is kept per document so that an error's field path can be turned back into a
line and column, only when there is an error to report.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Optional

import yaml

from ..errors import Problem

try:
    _Base = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - libyaml is in the wheels we pin
    _Base = yaml.SafeLoader

_PLAIN: dict = {}
_MAX_RESOLVED = 50_000
_MAX_MEMO_LENGTH = 64      # only short scalars are remembered: the memo outlives documents

MAX_FILE_BYTES = 16 * 1024 * 1024   # a manifest or var file (and a rendered manifest)

# Bounds on alias expansion, per document ("billion laughs": ten anchors of nine aliases
# in 449 bytes would expand to 3.5 billion nodes). Documented in SECURITY.md.
MAX_ALIAS_NODES = 100_000  # nodes a document may gain by expanding aliases of collections
MAX_ALIASES = 1_000        # aliases of collections a document may use
# Nodes of one document as written (each costs a few hundred bytes once composed: a 16 MiB
# document of short scalars would take gigabytes). Counted on the event stream, before
# composing, for texts over _PRECHECK_BYTES (smaller ones cannot reach the bound).
MAX_DOCUMENT_NODES = 200_000
_PRECHECK_BYTES = 256 * 1024
_INDEXED_KEYS = 32   # mappings this large get a key index for positions
_NODE_EVENTS = (yaml.ScalarEvent, yaml.SequenceStartEvent, yaml.MappingStartEvent,
                yaml.AliasEvent)
_STR_TAG = "tag:yaml.org,2002:str"
_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"


def forget_resolved() -> None:
    """Empty the memo of resolved scalars (``_Loader.resolve``): at the end of a load, so
    that the values it keeps (up to _MAX_RESOLVED) are not held while a plan is made."""
    _PLAIN.clear()


class _Loader(_Base):  # type: ignore[valid-type,misc]
    """The safe loader with a memo of implicit tag resolution.

    libyaml calls back into Python's regex-based resolver for every node; the
    same keys and values ("spec", "true", "587") recur in every document, and
    for a plain scalar the answer depends only on its text. Path resolvers are
    not used by the safe loader, so its descend/ascend hooks are no-ops here.
    """

    def resolve(self, kind, value, implicit):
        if kind is yaml.ScalarNode:
            if not implicit[0]:
                return _STR_TAG          # quoted: always a string
            try:
                return _PLAIN[value]
            except KeyError:
                tag = _Base.resolve(self, kind, value, implicit)
                if len(_PLAIN) < _MAX_RESOLVED and len(value) <= _MAX_MEMO_LENGTH:
                    _PLAIN[value] = tag
                return tag
        return _MAP_TAG if kind is yaml.MappingNode else _SEQ_TAG

    def descend_resolver(self, current_node, current_index):
        return None

    def ascend_resolver(self):
        return None


_BOOL = {"yes": True, "no": False, "true": True, "false": False, "on": True, "off": False}
_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_BOOLTAG = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_FLOAT = "tag:yaml.org,2002:float"
_constructor = yaml.constructor.SafeConstructor()


class DuplicateKey(Exception):
    """A key given twice in one mapping; ``path`` is its dotted field path."""

    def __init__(self, key: str, first: yaml.Node, second: yaml.Node):
        self.key, self.first, self.second = key, first, second
        self.path = key


class YAMLLimit(yaml.MarkedYAMLError):
    """A document beyond a bound (alias expansion, nesting, size), at the node (or event)
    concerned. ``problem`` is the whole message: these are not syntax errors."""

    def __init__(self, problem: str, node: yaml.Node | yaml.Event):
        super().__init__(problem=problem, problem_mark=node.start_mark)


TAB_MESSAGE = ("YAML syntax error: a tab character; YAML indents with spaces only "
               "(replace the tab with spaces)")


def syntax_problem(filename: str, exc: yaml.MarkedYAMLError, text: str = "") -> Problem:
    """A YAML syntax error as a Problem, at the problem's position, naming its context
    (``text``, when given, lets a tab be named as the culprit)."""
    mark = exc.problem_mark or exc.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    if isinstance(exc, YAMLLimit):
        return Problem(filename, line, col, "", str(exc.problem))
    if mark is not None and _char_at(text, mark.line, mark.column) == "\t":
        return Problem(filename, line, col, "", TAB_MESSAGE)
    message = f"YAML syntax error: {exc.problem or exc.context}"
    context = exc.context_mark
    if exc.problem and exc.context and context is not None and context is not mark:
        message += (f" ({exc.context} that starts at line {context.line + 1}, "
                    f"column {context.column + 1})")
    return Problem(filename, line, col, "", message)


def _char_at(text: str, line: int, column: int) -> str:
    lines = text.split("\n", line + 1)
    row = lines[line] if line < len(lines) else ""
    return row[column] if column < len(row) else ""


@dataclass
class Document:
    """One YAML document: its value and the node tree it came from."""

    value: Any
    root: yaml.Node
    index: int
    # key text -> (key node, value node), per large mapping node (by id): a document with
    # 100,000 unknown fields has as many problems, each looked up here (linear, not quadratic)
    _keys: dict = field(default_factory=dict, repr=False, compare=False)

    def _child(self, node: yaml.Node, part: Any) -> Optional[tuple[Optional[yaml.Node],
                                                                   yaml.Node]]:
        if not isinstance(node, yaml.MappingNode) or len(node.value) < _INDEXED_KEYS:
            return _child(node, part)
        keys = self._keys.get(id(node))
        if keys is None:
            keys = self._keys[id(node)] = {}
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode):
                    keys.setdefault(k.value, (k, v))
        return keys.get(str(part))

    def position(self, loc: tuple, key: bool = False) -> tuple[int, int]:
        """1-based (line, column) of ``loc``; the deepest existing part when it is missing.

        With ``key=True`` the key's own position is returned (for unknown fields); so it is
        for a block (a mapping or list) as a whole: its key, not its first line inside.
        """
        node, key_node = self.root, None
        for part in loc:
            child = self._child(node, part)
            if child is None:
                target = key_node or node
                return target.start_mark.line + 1, target.start_mark.column + 1
            key_node, node = child
        block = isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) and not node.flow_style
        target = key_node if ((key or block) and key_node is not None) else node
        return target.start_mark.line + 1, target.start_mark.column + 1


def _child(node: yaml.Node, part: Any) -> Optional[tuple[Optional[yaml.Node], yaml.Node]]:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == str(part):
                return k, v
    elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
        if 0 <= part < len(node.value):
            return None, node.value[part]
    return None


def scalar(node: yaml.ScalarNode) -> Any:
    tag = node.tag
    if tag == _STR:
        return node.value
    if tag == _BOOLTAG:
        return _BOOL[node.value.lower()]
    if tag == _NULL:
        return None
    if tag == _INT:
        try:
            return int(node.value)
        except ValueError:
            return _long_int(node)
    if tag == _FLOAT:
        return _constructor.construct_yaml_float(node)
    return node.value  # timestamps, binary and custom tags stay text


def _long_int(node: yaml.ScalarNode) -> int:
    """YAML's other integer forms (0x…, 0o…, 1_000, 1:30); a number too long for Python to
    read (over 4,300 digits) is an error at its position, not a crash."""
    try:
        return _constructor.construct_yaml_int(node)
    except ValueError:
        raise YAMLLimit("YAML number is too long to be read as an integer", node) from None


_ScalarNode, _SequenceNode = yaml.ScalarNode, yaml.SequenceNode


def convert(node: yaml.Node) -> Any:
    """Node tree → plain Python values (dict, list, str, int, float, bool, None).

    No accounting: use it on trees already checked by ``_Converter`` (or known small).
    """
    cls = node.__class__
    if cls is _ScalarNode:
        return node.value if node.tag == _STR else scalar(node)
    if cls is _SequenceNode:
        return [convert(item) for item in node.value]
    out: dict = {}
    for key_node, value_node in node.value:
        key = _key(key_node)
        if key in out:
            raise DuplicateKey(str(key), _first_key(node, key), key_node)
        out[key] = convert(value_node)
    return out


def _key(key_node: yaml.Node) -> Any:
    """A mapping key: a plain value. A list or mapping as a key (``? [a]``) has no use in
    manifests, and its text nested in itself grows exponentially: refused."""
    if key_node.__class__ is not _ScalarNode:
        raise YAMLLimit("YAML mapping key is a list or mapping; keys must be plain values",
                        key_node)
    return key_node.value if key_node.tag == _STR else scalar(key_node)


class _Converter:
    """``convert`` for one document, with aliases of collections counted and bounded.

    libyaml's composer hands an alias back as the very node it names, so a node met a
    second time is an alias: its size (known once it was converted) is charged before it
    is copied, and one still being converted is a recursive alias. Aliases of scalars
    cost nothing (the same string) and are not counted.
    """

    __slots__ = ("sizes", "built", "expanded", "aliases")

    def __init__(self) -> None:
        self.sizes: dict[int, Optional[int]] = {}   # id(collection) → nodes it expands to
        self.built = self.expanded = self.aliases = 0

    def value(self, node: yaml.Node) -> Any:
        cls = node.__class__
        if cls is _ScalarNode:
            return node.value if node.tag == _STR else scalar(node)
        ident = id(node)
        if ident in self.sizes:
            return self._alias(node, self.sizes[ident])
        self.sizes[ident] = None
        before = self.built
        self.built += len(node.value) if cls is _SequenceNode else 2 * len(node.value)
        out = self._sequence(node) if cls is _SequenceNode else self._mapping(node)
        self.sizes[ident] = self.built - before
        return out

    def _sequence(self, node: yaml.SequenceNode) -> list:
        return [self.value(item) for item in node.value]

    def _mapping(self, node: yaml.MappingNode) -> dict:
        out: dict = {}
        for key_node, value_node in node.value:
            key = _key(key_node)
            if key in out:
                raise DuplicateKey(str(key), _first_key(node, key), key_node)
            out[key] = self.value(value_node)
        return out

    def _alias(self, node: yaml.Node, size: Optional[int]) -> Any:
        if size is None:
            raise YAMLLimit("YAML alias used inside its own anchor (a recursive structure)", node)
        self.aliases += 1
        self.expanded += size
        if self.aliases > MAX_ALIASES:
            raise YAMLLimit(f"more than {MAX_ALIASES} YAML aliases of collections in one document "
                            "(the limit per document)", node)
        if self.expanded > MAX_ALIAS_NODES:
            raise YAMLLimit(f"YAML aliases expand to more than {MAX_ALIAS_NODES} nodes in one "
                            "document (the limit per document; the node defined here is one "
                            "of those aliased)", node)
        self.built += size
        return convert(node)


def _first_key(node: yaml.MappingNode, key: Any) -> yaml.Node:
    for key_node, _ in node.value:
        if _key(key_node) == key:
            return key_node
    return node  # pragma: no cover - the key was seen, so it is there


def _key_path(node: yaml.Node, target: yaml.Node) -> Optional[list]:
    """The field path (keys and indexes) leading to the key node ``target``."""
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if key_node is target:
                return [key_node.value]
            sub = _key_path(value_node, target)
            if sub is not None:
                return [key_node.value] + sub
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            sub = _key_path(item, target)
            if sub is not None:
                return [index] + sub
    return None


def _check_document_sizes(text: str) -> None:
    """Refuse a document of more than MAX_DOCUMENT_NODES nodes before composing it (the
    event stream costs little memory). Syntax errors are left to the composing pass."""
    loader = _Loader(text)
    try:
        count = 0
        while loader.check_event():
            event = loader.get_event()
            if event.__class__ in _NODE_EVENTS:
                count += 1
                if count > MAX_DOCUMENT_NODES:
                    raise YAMLLimit(f"YAML document of more than {MAX_DOCUMENT_NODES} nodes "
                                    "(the limit per document)", event)
            elif event.__class__ is yaml.DocumentStartEvent:
                count = 0
    except YAMLLimit:
        raise
    except yaml.YAMLError:
        return
    finally:
        loader.dispose()


def documents(text: str) -> Iterator[Document]:
    """Yield every non-empty document of ``text``. Raises yaml.YAMLError / DuplicateKey."""
    if len(text) > _PRECHECK_BYTES:
        _check_document_sizes(text)
    loader = _Loader(text)
    # Without an "&" there is no anchor, so no alias: nothing to count (the common case).
    converter = (lambda root: _Converter().value(root)) if "&" in text else convert
    try:
        index = 0
        while loader.check_node():
            root = loader.get_node()
            index += 1
            if root is None:
                continue
            if isinstance(root, yaml.ScalarNode) and root.tag == _NULL:
                continue
            try:
                value = converter(root)
            except DuplicateKey as exc:
                exc.path = ".".join(str(p) for p in _key_path(root, exc.second) or [exc.key])
                raise
            except RecursionError:
                raise YAMLLimit("YAML nesting is too deep", root) from None
            yield Document(value, root, index)
    finally:
        loader.dispose()
