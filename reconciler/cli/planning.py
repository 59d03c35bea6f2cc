"""Gathering a plan's inputs: manifests, resolved secrets, registry state."""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from typing import Iterable, Optional

from ..errors import MailformError, SecretError
from ..manifest import Desired, resolve
from ..model import EmailAccount
from ..plan import Plan, PlanInput, build_plan
from ..registry import open_registry
from ..registry.base import Registry


SHOWN_ERRORS = 50


class SecretsUnresolved(MailformError):
    def __init__(self, errors: list[SecretError]):
        self.errors = errors
        lines = "\n".join(f"  - {e}" for e in errors[:SHOWN_ERRORS])
        more = len(errors) - SHOWN_ERRORS
        if more > 0:
            lines += f"\n  … and {more} more"
        super().__init__(f"{len(errors)} secret reference(s) cannot be resolved:\n{lines}")


@dataclass
class Resolved:
    values: dict[str, dict[str, str]] = field(default_factory=dict)   # name -> path -> value
    refs: dict[str, dict[str, dict]] = field(default_factory=dict)    # name -> path -> ref


@functools.lru_cache(maxsize=4096)
def _dir_of(filename: str) -> str:
    return os.path.dirname(os.path.abspath(filename))


def _base_dir(account: EmailAccount) -> str:
    source = account.source
    return _dir_of(source[0]) if source else os.getcwd()


def resolve_all(accounts: Iterable[EmailAccount]) -> Resolved:
    """Resolve every secret reference; all failures reported together, never a value."""
    out, errors, seen = Resolved(), [], set()
    for account in accounts:
        for section in ("smtp", "inbox"):
            settings = getattr(account.spec, section)
            ref = getattr(settings, "password", None) if settings is not None else None
            if ref is None:
                continue
            path = f"{section}.password"
            base = _base_dir(account)
            stored_ref = ({"env": ref.env} if ref.env is not None
                          else {"file": os.path.normpath(os.path.join(base, ref.file))})
            out.refs.setdefault(account.name, {})[path] = stored_ref
            try:
                value = resolve(ref, base, account.name, f"spec.{path}")
            except SecretError as exc:
                if (exc.account, exc.reference) not in seen:
                    seen.add((exc.account, exc.reference))
                    errors.append(exc)
                continue
            out.values.setdefault(account.name, {})[path] = value
    if errors:
        raise SecretsUnresolved(errors)
    return out


def resolve_ref(name: str, path: str, ref: dict) -> str:
    """Resolve a reference recorded in a saved plan (file paths are absolute there)."""
    from ..model import SecretRef
    secret = SecretRef.model_validate(ref)
    return resolve(secret, "/", name, f"spec.{path}")


def make_plan(registry: Registry, desired: Desired, secrets: Resolved,
              targets: Optional[Iterable[str]] = None) -> Plan:
    actual = registry.accounts()
    if targets:
        unknown = sorted(set(targets) - set(desired.accounts) - set(actual))
        if unknown:
            raise MailformError("--target names no account in the manifests or the registry: "
                                + ", ".join(unknown))
    meta = registry.meta()
    fps = {name: {path: registry.fingerprint(path, value) for path, value in values.items()}
           for name, values in secrets.values.items()}
    return build_plan(PlanInput(
        accounts=desired.accounts, actual=actual, lineage=meta.lineage, serial=meta.serial,
        manifest_digest=desired.digest, fingerprints=fps, secret_refs=secrets.refs,
        contact_count=registry.contact_count(), targets=targets,
        policy=desired.policy.spec.model_dump() if desired.policy else None,
        actual_policy=registry.get_setting("bounce_policy")))


def registry_at(url: str) -> Registry:
    return open_registry(url)


def registry_if_exists(url: str) -> Optional[Registry]:
    """The registry, unless it is a SQLite file that does not exist yet."""
    if url.startswith("sqlite:///") or "://" not in url:
        path = url[len("sqlite:///"):] if url.startswith("sqlite:///") else url
        if not os.path.exists(path):
            return None
    return open_registry(url)
