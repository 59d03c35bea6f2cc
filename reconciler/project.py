"""The project file, ``mailform.yaml``: its models, and the precedence rules that choose
the environment, the registry and the guards' limits. Pure: the caller passes the
flags and the environment variables (``workflow.settings`` reads the file).

Precedence (README, "Working as a team"):

* environment: ``--environment`` > ``MAILFORM_ENVIRONMENT`` > ``spec.default_environment``
  > ``default``;
* registry: ``--registry`` > ``MAILFORM_REGISTRY`` > the environment's ``registry`` > the
  default path;
* guards: ``--max-destroy-percent`` / ``--max-change-percent`` > the environment's
  ``guards`` > 30%.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal, Mapping, Optional, Union

from pydantic import ConfigDict, Field

from .errors import MailformError
from .model import NAME_PATTERN, EnvName, Metadata, SecretRef, _Strict

PROJECT_FILES = ("mailform.yaml", "mailform.yml")
DEFAULT_ENVIRONMENT = "default"
DEFAULT_PERCENT = 30.0
ENVIRONMENT_VAR = "MAILFORM_ENVIRONMENT"
REGISTRY_VAR = "MAILFORM_REGISTRY"

Percent = Annotated[float, Field(ge=0, le=100)]
EnvironmentName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")]


class EnvRegistry(_Strict):
    """``{env: VAR}``: the registry URL is in that variable of whoever runs mailform."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={
        "description": "The registry URL, read from this environment variable"})
    env: EnvName


class Guards(_Strict):
    max_destroy_percent: Optional[Percent] = None   # None: the default, 30
    max_change_percent: Optional[Percent] = None


class Environment(_Strict):
    registry: Optional[Union[Annotated[str, Field(min_length=1)], EnvRegistry]] = None
    var_files: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)
    guards: Guards = Field(default_factory=Guards)


class Ownership(_Strict):
    name: Annotated[str, Field(pattern=NAME_PATTERN, max_length=63)]


EventKind = Literal["bounce", "complaint", "replied", "faulty", "reactivated", "erased"]


class Webhook(_Strict):
    """An outbound webhook (issue 14): each event of ``kinds`` (all when empty) POSTed to
    ``url``, signed with HMAC-SHA256 under ``secret``; retried with backoff."""

    name: Annotated[str, Field(pattern=NAME_PATTERN, max_length=63)]
    url: Annotated[str, Field(pattern=r"^https?://[^\s]+$")]
    kinds: list[EventKind] = Field(default_factory=list)
    secret: SecretRef
    timeout: Annotated[float, Field(gt=0, le=300)] = 10.0
    max_attempts: Annotated[int, Field(ge=1, le=100)] = 10
    backoff_seconds: Annotated[float, Field(ge=0, le=86400)] = 30.0


class EventsSpec(_Strict):
    webhooks: list[Webhook] = Field(default_factory=list)
    retention_days: Optional[Annotated[int, Field(ge=1)]] = None   # None: kept for ever


class Platform(_Strict):
    """The platform's own sending setup: what marketing accounts' DNS must name."""

    spf_include: Optional[Annotated[str, Field(min_length=1, max_length=253)]] = None


Duration = Union[Annotated[float, Field(gt=0)],
                 Annotated[str, Field(pattern=r"^\s*\d+(\.\d+)?\s*[smhd]?\s*$")]]


class Fleet(_Strict):
    """``fleet:``: how often `mailform worker` scans, re-verifies and reconciles
    (seconds, or 90s / 5m / 1h / 1d); flags win."""

    scan_interval: Optional[Duration] = None
    verify_interval: Optional[Duration] = None
    reconcile_interval: Optional[Duration] = None


class ProjectSpec(_Strict):
    manifests: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=lambda: ["manifests"], min_length=1)
    default_environment: Optional[EnvironmentName] = None
    environments: dict[EnvironmentName, Environment] = Field(default_factory=dict)
    ownership: Optional[Ownership] = None
    platform: Platform = Field(default_factory=Platform)
    events: EventsSpec = Field(default_factory=EventsSpec)
    fleet: Fleet = Field(default_factory=Fleet)


class Project(_Strict):
    apiVersion: Literal["mailform/v1"]
    kind: Literal["Project"]
    metadata: Metadata
    spec: ProjectSpec = Field(default_factory=ProjectSpec)

    @property
    def ownership(self) -> Optional[str]:
        return self.spec.ownership.name if self.spec.ownership else None


class ProjectError(MailformError):
    """The project file cannot be used as asked (an unknown environment, an unset variable)."""


@dataclass(frozen=True)
class Limits:
    """The guards' thresholds, in percent of the accounts the project manages."""

    max_destroy_percent: float = DEFAULT_PERCENT
    max_change_percent: float = DEFAULT_PERCENT


def choose_environment(flag: Optional[str], environ: Mapping[str, str],
                       project: Optional[Project]) -> str:
    """The environment's name; with a project that declares environments, one of them."""
    name = flag or environ.get(ENVIRONMENT_VAR) or (
        project.spec.default_environment if project else None) or DEFAULT_ENVIRONMENT
    declared = project.spec.environments if project else {}
    if declared and name not in declared:
        how = ("choose one with --environment NAME or MAILFORM_ENVIRONMENT, or set "
               "spec.default_environment" if name == DEFAULT_ENVIRONMENT and not flag
               else f"'{name}' is not one of them")
        raise ProjectError(f"the project file declares the environments "
                           f"{', '.join(sorted(declared))}: {how}")
    return name


def environment_of(project: Optional[Project], name: str) -> Environment:
    if project is None or name not in project.spec.environments:
        return Environment()
    return project.spec.environments[name]


@dataclass(frozen=True)
class RegistryChoice:
    """The registry to use, where that came from, and whether whoever runs mailform chose
    it (a flag, their environment variables, the default path) rather than a URL written
    in the project file — which a pull request can change: `plan --verify` does not trust
    such a registry's applied servers with credentials (SECURITY.md)."""

    url: Optional[str]          # None: the default path
    source: str
    runner_chose: bool = True


def choose_registry(flag: Optional[str], environ: Mapping[str, str],
                    project: Optional[Project], environment: str) -> RegistryChoice:
    if flag:
        return RegistryChoice(flag, "--registry")
    if environ.get(REGISTRY_VAR):
        return RegistryChoice(environ[REGISTRY_VAR], REGISTRY_VAR)
    declared = environment_of(project, environment).registry
    where = f"environment {environment} of the project file"
    if isinstance(declared, EnvRegistry):
        value = environ.get(declared.env)
        if not value:
            raise ProjectError(f"{where}: its registry is read from the environment "
                               f"variable {declared.env}, which is not set")
        return RegistryChoice(value, f"{where} (${declared.env})")
    if declared:
        return RegistryChoice(declared, where, runner_chose=False)
    return RegistryChoice(None, "the default")


def choose_limits(destroy_flag: Optional[float], change_flag: Optional[float],
                  project: Optional[Project], environment: str) -> Limits:
    guards = environment_of(project, environment).guards
    return Limits(_first(destroy_flag, guards.max_destroy_percent),
                  _first(change_flag, guards.max_change_percent))


def _first(*values: Optional[float]) -> float:
    return float(next((v for v in values if v is not None), DEFAULT_PERCENT))
