"""How validation errors read: pydantic's findings in a user's words (``loader``)."""
from __future__ import annotations

import difflib
from typing import Any

import yaml

from ..model import MODELS, NAME_PATTERN, _submodel
from .yamlpos import Document

# Plain-language descriptions of the patterns in the models.
PATTERN_HINTS = {
    NAME_PATTERN: "must be 1-63 lower-case letters, digits and dashes, starting and ending "
                  "with a letter or digit",
    r"^[^\s/@]+$": "must be a host name or address, without spaces, '/' or '@'",
    r"^[A-Za-z_][A-Za-z0-9_]*$": "must be an environment variable name (letters, digits "
                                 "and _, not starting with a digit)",
}


_TYPE_NAMES = {"int_type": "a whole number", "int_parsing": "a whole number",
               "bool_type": "true or false", "bool_parsing": "true or false"}


def _wrong_type(kind: str, value: Any) -> str:
    """`port: "587"`: a quoted number is a string in YAML; say so, and how to write it."""
    wanted = _TYPE_NAMES[kind]
    if isinstance(value, str):
        plain = yaml.safe_load(value) if len(value) < 40 and "\n" not in value else None
        if wanted == "a whole number" and isinstance(plain, int) and not isinstance(plain, bool) \
                or wanted == "true or false" and isinstance(plain, bool):
            return f"must be {wanted}, not the string \"{value}\": write it without quotes"
        return f"must be {wanted}, not the string \"{value[:40]}\""
    return f"must be {wanted}, not {type(value).__name__ if value is not None else 'empty'}"


def _message(err: dict) -> str:
    kind, msg = err["type"], err["msg"]
    if kind in _TYPE_NAMES and "input" in err:
        return _wrong_type(kind, err["input"])
    if kind == "extra_forbidden":
        return f"unknown field '{err['loc'][-1]}'"
    if kind == "missing":
        return "required field is missing"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return "must be a mapping"
    if kind == "string_pattern_mismatch":
        hint = PATTERN_HINTS.get(str((err.get("ctx") or {}).get("pattern")))
        if hint:
            return hint
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
    return msg.replace("Input should be", "must be").replace("String should", "must")


def _suggest(err: dict, doc: Document) -> str:
    """'did you mean' for unknown fields, from the sibling fields the model knows."""
    model = MODELS.get(doc.value.get("kind")) if isinstance(doc.value, dict) else None
    sub: Any = model
    for part in err["loc"][:-1]:
        fields = getattr(sub, "model_fields", {})
        if part not in fields:
            return ""
        sub = _submodel(fields[part].annotation)
    known = list(getattr(sub, "model_fields", {}))
    close = difflib.get_close_matches(str(err["loc"][-1]), known, n=1)
    return f"; did you mean '{close[0]}'?" if close else ""
