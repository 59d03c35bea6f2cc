"""SPEC §4's plan object, as JSON."""
from __future__ import annotations

import json

from ..plan import Plan, Signer, to_file_dict


def render_json(plan: Plan) -> str:
    return json.dumps(plan.to_dict(), indent=2, ensure_ascii=False) + "\n"


def render_plan_file(plan: Plan, sign: Signer) -> str:
    """The saved plan: the same object plus the payload apply needs (no secret values),
    signed with the registry's key."""
    return json.dumps(to_file_dict(plan, sign), indent=2, ensure_ascii=False) + "\n"
