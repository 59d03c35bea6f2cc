"""A plan of many creates shares equal field changes between accounts; the shared
changes, their JSON (history rows, `plan --format json`) and fingerprints are exactly
those made one by one."""
from __future__ import annotations

import hashlib
import hmac
import json

from reconciler.diff import Change, compare
from reconciler.plan import Action, ResourceChange
from reconciler.registry.crypto import KeyRing


def _created(record: dict) -> list[Change]:
    return compare(None, record, {}, {})[0]


def test_equal_values_of_other_types_stay_apart() -> None:
    first = _created({"a": 1, "b": True, "c": "1", "d": [1], "e": 0.0})
    second = _created({"a": True, "b": 1, "c": "1", "d": [True], "e": -0.0})
    assert [json.dumps(c.after) for c in first] == ["1", "true", '"1"', "[1]", "0.0"]
    assert [json.dumps(c.after) for c in second] == ["true", "1", '"1"', "[true]", "-0.0"]
    assert first[2] is second[2]            # the same created value: one tuple


def test_a_resource_change_as_a_dict_is_every_field_change_in_order() -> None:
    changes = [Change("a", None, 1), Change("b", "x", None), Change("p", None, "fp", True)]
    body = ResourceChange("n", Action.CREATE, changes).to_dict()
    assert body["changes"] == [
        {"path": "a", "before": None, "after": 1, "sensitive": False},
        {"path": "b", "before": "x", "after": None, "sensitive": False},
        {"path": "p", "before": None, "after": "(sensitive)", "sensitive": True}]
    assert list(body) == ["address", "name", "action", "changes", "verification", "notes"]


def test_fingerprints_are_the_keyed_hmac_of_path_and_value() -> None:
    keys = KeyRing.from_master(b"k" * 32, "test")
    expected = hmac.new(keys.fp_key, "smtp.password\0s3cret".encode(), hashlib.sha256)
    assert keys.fingerprint("smtp.password", "s3cret") == "hmac-sha256:" + expected.hexdigest()


def test_a_create_renders_a_shared_change_as_any_other() -> None:
    """render.human keeps the line of a change object met before: the text is the same."""
    from reconciler.diff import _created
    from reconciler.plan import Guard, Plan
    from reconciler.render.human import render_human
    shared = _created("smtp.port", 587)
    rcs = [ResourceChange(f"a{i}", Action.CREATE, [shared, Change("email", None, f"x{i}@e.org")])
           for i in range(3)]
    text = render_human(Plan("l", 1, "", [], rcs, [Guard("prevent_destroy", False, "none")]))
    assert text.count("      + smtp.port = 587\n") == 3
    assert "      + email = \"x2@e.org\"\n" in text
