"""Manifests for what a registry holds (`mailform import`): the registry's records back
into documents, secrets as references to environment variables, keys in SPEC order."""
from __future__ import annotations

import re
from typing import Any, Iterable, Mapping, Optional

from ..model import API_VERSION, SECRET_FIELDS, canonical_key_order

SECTIONS = ("reply_to", "from_override", "smtp", "inbox", "lifecycle", "dkim")
POLICY_NAME = "default"


def env_name(account: str, path: str) -> str:
    """The generated variable name of a secret: MAILFORM_<ACCOUNT>_<SECTION>_PASSWORD,
    MAILFORM_<ACCOUNT>_SMTP_OAUTH2_REFRESH_TOKEN, MAILFORM_<ACCOUNT>_PROXY_PASSWORD…"""
    return "MAILFORM_" + re.sub(r"[^A-Z0-9]", "_", f"{account}_{path}".upper())


def _ordered(mapping: Mapping, order: list[str]) -> dict:
    keys = [k for k in order if k in mapping] + sorted(k for k in mapping if k not in order)
    return {k: mapping[k] for k in keys if mapping[k] is not None}


def _put(body: dict, parts: list[str], ref: dict) -> None:
    """Set a secret reference at a dotted path whose parents exist (copied, not shared)."""
    node = body
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            return
        node[part] = dict(node[part])
        node = node[part]
    node[parts[-1]] = ref


def account_document(name: str, spec: Mapping[str, Any], secret_paths: Iterable[str]) -> dict:
    """One EmailAccount document from a registry record (spec without secrets, labels)."""
    orders = canonical_key_order()
    body = {k: v for k, v in spec.items() if k != "labels"}
    for path in SECRET_FIELDS:
        if path in secret_paths:
            _put(body, path.split("."), {"env": env_name(name, path)})
    for section in SECTIONS:
        if isinstance(body.get(section), dict):
            body[section] = _ordered(body[section], orders[section])
            oauth2 = body[section].get("oauth2")
            if isinstance(oauth2, dict):
                body[section]["oauth2"] = _ordered(oauth2, orders["oauth2"])
    metadata: dict[str, Any] = {"name": name}
    if spec.get("labels"):
        metadata["labels"] = dict(spec["labels"])
    return {"apiVersion": API_VERSION, "kind": "EmailAccount", "metadata": metadata,
            "spec": _ordered(body, orders["spec:EmailAccount"])}


def policy_document(policy: Optional[Mapping[str, Any]]) -> Optional[dict]:
    """The BouncePolicy document for a stored policy (None when none was ever applied, so
    that planning the imported manifests keeps the registry's policy)."""
    if policy is None:
        return None
    order = canonical_key_order()["spec:BouncePolicy"]
    return {"apiVersion": API_VERSION, "kind": "BouncePolicy",
            "metadata": {"name": POLICY_NAME}, "spec": _ordered(policy, order)}
