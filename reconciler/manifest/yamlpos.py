"""YAML loading that remembers where every key and value is.

libyaml's composer (through PyYAML's CSafeLoader) builds a node tree with
positions; a short converter turns it into plain Python values. The node tree
is kept per document so that an error's field path can be turned back into a
line and column, only when there is an error to report.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Optional

import yaml

from ..errors import Problem

try:
    _Base = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - libyaml is in the wheels we pin
    _Base = yaml.SafeLoader

_PLAIN: dict = {}
_MAX_RESOLVED = 50_000
_STR_TAG = "tag:yaml.org,2002:str"
_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"


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
                if len(_PLAIN) < _MAX_RESOLVED:
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


def syntax_problem(filename: str, exc: yaml.MarkedYAMLError) -> Problem:
    """A YAML syntax error as a Problem, at the problem's position, naming its context."""
    mark = exc.problem_mark or exc.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    message = f"YAML syntax error: {exc.problem or exc.context}"
    context = exc.context_mark
    if exc.problem and exc.context and context is not None and context is not mark:
        message += (f" ({exc.context} that starts at line {context.line + 1}, "
                    f"column {context.column + 1})")
    return Problem(filename, line, col, "", message)


@dataclass
class Document:
    """One YAML document: its value and the node tree it came from."""

    value: Any
    root: yaml.Node
    index: int

    def position(self, loc: tuple, key: bool = False) -> tuple[int, int]:
        """1-based (line, column) of ``loc``; the deepest existing part when it is missing.

        With ``key=True`` the key's own position is returned (for unknown fields).
        """
        node, key_node = self.root, None
        for part in loc:
            child = _child(node, part)
            if child is None:
                target = key_node or node
                return target.start_mark.line + 1, target.start_mark.column + 1
            key_node, node = child
        target = key_node if (key and key_node is not None) else node
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
            return _constructor.construct_yaml_int(node)
    if tag == _FLOAT:
        return _constructor.construct_yaml_float(node)
    return node.value  # timestamps, binary and custom tags stay text


_ScalarNode, _SequenceNode = yaml.ScalarNode, yaml.SequenceNode


def convert(node: yaml.Node) -> Any:
    """Node tree → plain Python values (dict, list, str, int, float, bool, None)."""
    cls = node.__class__
    if cls is _ScalarNode:
        return node.value if node.tag == _STR else scalar(node)
    if cls is _SequenceNode:
        return [convert(item) for item in node.value]
    out: dict = {}
    for key_node, value_node in node.value:
        if key_node.__class__ is _ScalarNode and key_node.tag == _STR:
            key = key_node.value
        else:
            key = convert(key_node)
            if isinstance(key, (dict, list)):
                key = str(key)
        if key in out:
            raise DuplicateKey(str(key), _first_key(node, key), key_node)
        out[key] = convert(value_node)
    return out


def _first_key(node: yaml.MappingNode, key: Any) -> yaml.Node:
    for key_node, _ in node.value:
        found = convert(key_node)
        if (str(found) if isinstance(found, (dict, list)) else found) == key:
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


def documents(text: str) -> Iterator[Document]:
    """Yield every non-empty document of ``text``. Raises yaml.YAMLError / DuplicateKey."""
    loader = _Loader(text)
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
                value = convert(root)
            except DuplicateKey as exc:
                exc.path = ".".join(str(p) for p in _key_path(root, exc.second) or [exc.key])
                raise
            yield Document(value, root, index)
    finally:
        loader.dispose()
