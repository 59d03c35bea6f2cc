"""`registry set NAME PATH=VALUE`: an operator's out-of-band edit, checked and normalised.

The edit must leave a valid account (``manifest.registry_edit.edit_problems`` names what it
breaks). The value stored is the model's: removing a field that has a default (``shared=null``)
stores the default, so the registry never holds a record its own manifests (`import`) could
not reproduce.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..diff import flatten, record_of
from ..errors import MailformError, NotFoundError
from ..manifest.export import account_document
from ..manifest.registry_edit import edit_problems, edited_spec
from ..model import SECRET_FIELDS, EmailAccount
from ..registry.base import Registry


@dataclass(frozen=True)
class Edit:
    serial: int
    value: Any              # as stored (the model's value at the path)
    new_field: bool         # the path was not in the record before


def set_field(registry: Registry, name: str, path: str, value: Any) -> Edit:
    account = registry.account(name)
    if account is None:
        raise NotFoundError(f"no account '{name}' in the registry")
    problems = edit_problems(account.name, account.type, account.spec, account.fingerprints,
                             path, value)
    if problems:
        raise MailformError(f"refusing to set {path} on account {name} (nothing was "
                            "changed): " + "; ".join(problems))
    stored = value if path in SECRET_FIELDS else _normalised(account, path, value)
    new_field = (path not in SECRET_FIELDS and path not in flatten(account.spec)
                 and not path.startswith("labels."))
    return Edit(registry.set_field(name, path, stored), stored, new_field)


def _normalised(account, path: str, value: Any) -> Any:
    spec = edited_spec(account.spec, path, value)
    doc = account_document(account.name, {"type": account.type, **spec}, account.fingerprints)
    return flatten(record_of(EmailAccount.model_validate(doc))).get(path, value)
