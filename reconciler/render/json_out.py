"""SPEC §4's plan object, as JSON."""
from __future__ import annotations

import json

from ..plan import Plan


def render_json(plan: Plan) -> str:
    return json.dumps(plan.to_dict(), indent=2, ensure_ascii=False) + "\n"


def render_plan_file(plan: Plan) -> str:
    """The saved plan: the same object plus the payload apply needs (no secret values)."""
    return json.dumps(plan.to_dict(with_payload=True), indent=2, ensure_ascii=False) + "\n"
