"""A plan's inputs: the manifests (with their template variables) and resolved secrets."""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Optional, Sequence

from ..errors import MailformError, ManifestError, SecretError
from ..manifest import Desired, load as load_manifests, load_var_file, resolve
from ..manifest.secrets import SecretPolicy
from ..model import EmailAccount, SecretRef
from ..project import Limits

DEFAULT_PATHS = ("manifests",)
SHOWN_ERRORS = 50


@dataclass(frozen=True)
class Inputs:
    """What a user points mailform at: manifest paths and template variables, and what
    the project file adds (``settings.Settings.inputs``): files under the manifest paths
    that are not manifests (``skip``: the project file, var files), the project's
    ownership and the guards' limits."""

    paths: Sequence[str] = ()
    var_files: Sequence[str] = ()
    var_pairs: Sequence[tuple[str, str]] = ()
    environment: str = "default"
    skip: Sequence[str] = ()
    ownership: Optional[str] = None
    limits: Limits = Limits()


@dataclass
class Resolved:
    values: dict[str, dict[str, str]] = field(default_factory=dict)   # name -> path -> value
    refs: dict[str, dict[str, dict]] = field(default_factory=dict)    # name -> path -> ref


@dataclass
class Loaded:
    """The desired state and its secrets, resolved once per run."""

    desired: Desired
    secrets: Resolved
    inputs: Inputs = Inputs()

    def plan_options(self) -> dict:
        """What the planner takes beyond manifests and registry (``planner.PlanInput``):
        ownership, moves, removals and the guards' limits."""
        desired, inputs = self.desired, self.inputs
        return {"ownership": inputs.ownership,
                "moves": [(m.metadata.name, m.spec.from_, m.spec.to) for m in desired.moves],
                "removals": [(r.metadata.name, r.spec.name) for r in desired.removals],
                "max_destroy_percent": inputs.limits.max_destroy_percent,
                "max_change_percent": inputs.limits.max_change_percent}


class SecretsUnresolved(MailformError):
    def __init__(self, errors: list[SecretError]):
        self.errors = errors
        lines = "\n".join(f"  - {e}" for e in errors[:SHOWN_ERRORS])
        more = len(errors) - SHOWN_ERRORS
        if more > 0:
            lines += f"\n  … and {more} more"
        super().__init__(f"{len(errors)} secret reference(s) cannot be resolved:\n{lines}")


def load_desired(inputs: Inputs) -> Desired:
    """Gather template variables and load the manifests; all problems raised together."""
    variables: dict = {}
    problems = []
    for path in inputs.var_files:
        values, found = load_var_file(path)
        variables.update(values)
        problems += found
    variables.update(dict(inputs.var_pairs))
    if problems:
        raise ManifestError(problems)
    skip = tuple(inputs.skip) + tuple(inputs.var_files)
    return load_manifests(inputs.paths or DEFAULT_PATHS, variables, inputs.environment,
                          skip=skip)


def load(inputs: Inputs, registry_url: Optional[str] = None) -> Loaded:
    """Manifests loaded and every secret resolved (ManifestError / SecretsUnresolved), under
    the runner's secret policy for the registry at ``registry_url`` (SECURITY.md)."""
    desired = load_desired(inputs)
    return Loaded(desired, resolve_all(desired.accounts.values(),
                                       desired.secret_policy(registry_url)), inputs)


@functools.lru_cache(maxsize=4096)
def _dir_of(filename: str) -> str:
    return os.path.dirname(os.path.abspath(filename))


def _base_dir(account: EmailAccount) -> str:
    source = account.source
    return _dir_of(source[0]) if source else os.getcwd()


def _declared_refs(account: EmailAccount) -> Iterable[tuple[str, SecretRef]]:
    for section in ("smtp", "inbox"):
        settings = getattr(account.spec, section)
        ref = getattr(settings, "password", None) if settings is not None else None
        if ref is not None:
            yield f"{section}.password", ref


def resolve_all(accounts: Iterable[EmailAccount], policy: Optional[SecretPolicy] = None
                ) -> Resolved:
    """Resolve every secret reference; all failures reported together, never a value.
    ``policy``: where secrets may be read (``Desired.secret_policy``); without one, each
    reference only within its own manifest's folder and the runner's secret folders."""
    out, errors, seen = Resolved(), [], set()
    for account in accounts:
        base = _base_dir(account)
        for path, ref in _declared_refs(account):
            stored_ref = ({"env": ref.env} if ref.env is not None
                          else {"file": os.path.normpath(os.path.join(base, ref.file))})
            out.refs.setdefault(account.name, {})[path] = stored_ref
            try:
                value = resolve(ref, base, account.name, f"spec.{path}", policy=policy)
            except SecretError as exc:
                if (exc.account, exc.reference) not in seen:
                    seen.add((exc.account, exc.reference))
                    errors.append(exc)
                continue
            out.values.setdefault(account.name, {})[path] = value
    if errors:
        raise SecretsUnresolved(errors)
    return out


def saved_plan_policy(registry_url: Optional[str] = None) -> SecretPolicy:
    """Applying a saved plan: its file references are absolute; they may be read inside
    the working directory (the checkout apply runs in) or the runner's secret folders."""
    return SecretPolicy.from_env(roots=[os.getcwd()], registry_url=registry_url)


def resolve_ref(name: str, path: str, ref: Mapping,
                policy: Optional[SecretPolicy] = None) -> str:
    """Resolve a reference recorded in a saved plan (file paths are absolute there)."""
    secret = SecretRef.model_validate(dict(ref))
    return resolve(secret, "/", name, f"spec.{path}", policy=policy or saved_plan_policy())
