"""A plan's inputs: the manifests (with their template variables) and resolved secrets."""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Optional, Sequence

from ..errors import MailformError, ManifestError, SecretError
from ..manifest import Desired, load as load_manifests, load_var_file, resolve
from ..manifest.cached import DocumentCache
from ..manifest.secrets import SecretPolicy
from ..model import EmailAccount, SecretRef
from ..model.lazy import declared_refs, raw_values, source_of
from ..project import Limits

if TYPE_CHECKING:
    from ..registry.rows import Match

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
    cache: Optional[Any] = None     # workflow.cache.LocalCache, or None (--no-cache)

    def registry_rows(self, registry: Any, match: Optional["Match"] = None) -> dict:
        """The registry's accounts, from the local cache when it has not changed.
        ``match``: rows read from the registry keep only a digest of the specs it vouches
        for (registry.rows.unread_specs)."""
        if self.cache:
            return self.cache.rows.accounts(registry, match)
        from ..registry.rows import unread_specs     # (validate loads no registry code)
        with unread_specs(match):
            return registry.accounts()

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


def load_desired(inputs: Inputs, cache: Optional[DocumentCache] = None,
                 lean: bool = False) -> Desired:
    """Gather template variables and load the manifests; all problems raised together.
    ``cache``: clean files' validated documents (``workflow.cache``); ``lean``: validate
    only, the accounts' models are not kept."""
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
                          skip=skip, cache=cache, lean=lean)


def load(inputs: Inputs, registry_url: Optional[str] = None) -> Loaded:
    """Manifests loaded and every secret resolved (ManifestError / SecretsUnresolved), under
    the runner's secret policy for the registry at ``registry_url`` (SECURITY.md)."""
    desired = load_desired(inputs)
    return Loaded(desired, resolve_all(raw_values(desired.accounts),
                                       desired.secret_policy(registry_url)), inputs)


@functools.lru_cache(maxsize=4096)
def _dir_of(filename: str) -> str:
    return os.path.dirname(os.path.abspath(filename))


def _base_dir(account: EmailAccount) -> str:
    source = source_of(account)
    return _dir_of(source[0]) if source else os.getcwd()


def resolve_all(accounts: Iterable[EmailAccount], policy: Optional[SecretPolicy] = None
                ) -> Resolved:
    """Resolve every secret reference; all failures reported together, never a value.
    ``policy``: where secrets may be read (``Desired.secret_policy``); without one, each
    reference only within its own manifest's folder and the runner's secret folders.
    ``accounts``: models, or a cache's stubs (``model.lazy.raw_values``)."""
    out, errors, seen, resolver = Resolved(), [], set(), _Resolver(policy)
    for account in accounts:
        base = _base_dir(account)
        refs, values = {}, {}
        for path, ref in declared_refs(account):
            key = (ref.env, ref.file, None if ref.env is not None else base)
            refs[path] = resolver.stored(key, ref, base)
            try:
                values[path] = resolver.value(key, ref, base, account.name, path)
            except SecretError as exc:
                if (exc.account, exc.reference) not in seen:
                    seen.add((exc.account, exc.reference))
                    errors.append(exc)
        if refs:
            out.refs[account.name] = resolver.shared(refs)
        if values:
            out.values[account.name] = resolver.shared(values)
    if errors:
        raise SecretsUnresolved(errors)
    return out


class _Resolver:
    """One resolution per distinct reference (100,000 accounts often share a handful of
    secrets), and one object for equal per-account mappings. A failure is not kept: each
    account's own error names it."""

    def __init__(self, policy: Optional[SecretPolicy]) -> None:
        self.policy = policy
        self.refs: dict[tuple, dict] = {}
        self.values: dict[tuple, str] = {}
        self.mappings: dict[tuple, dict] = {}

    def stored(self, key: tuple, ref: SecretRef, base: str) -> dict:
        found = self.refs.get(key)
        if found is None:
            found = self.refs[key] = (
                {"env": ref.env} if ref.env is not None
                else {"file": os.path.normpath(os.path.join(base, ref.file))})
        return found

    def value(self, key: tuple, ref: SecretRef, base: str, account: str, path: str) -> str:
        found = self.values.get(key)
        if found is None:
            found = self.values[key] = resolve(ref, base, account, f"spec.{path}",
                                               policy=self.policy)
        return found

    def shared(self, mapping: dict) -> dict:
        """One object for equal mappings of shared parts (read-only)."""
        key = tuple([(path, id(part)) for path, part in mapping.items()])
        return self.mappings.setdefault(key, mapping)


def saved_plan_policy(registry_url: Optional[str] = None) -> SecretPolicy:
    """Applying a saved plan: its file references are absolute; they may be read inside
    the working directory (the checkout apply runs in) or the runner's secret folders."""
    return SecretPolicy.from_env(roots=[os.getcwd()], registry_url=registry_url)


def resolve_ref(name: str, path: str, ref: Mapping,
                policy: Optional[SecretPolicy] = None) -> str:
    """Resolve a reference recorded in a saved plan (file paths are absolute there)."""
    secret = SecretRef.model_validate(dict(ref))
    return resolve(secret, "/", name, f"spec.{path}", policy=policy or saved_plan_policy())
