"""Outbound webhooks as the project file declares them (``spec.events.webhooks``), with
their secrets resolved by the one rule for secret references (``manifest.secrets``:
``{file:}`` relative to the project file's folder and inside it or the runner's secret
folders; ``{env:}`` never one of mailform's own settings)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping, Optional

from ..manifest.secrets import SecretPolicy, resolve
from ..project import Project


@dataclass(frozen=True)
class WebhookTarget:
    name: str
    url: str
    secret: bytes
    kinds: tuple[str, ...] = ()          # empty: every kind
    timeout: float = 10.0
    max_attempts: int = 10
    backoff_seconds: float = 30.0

    def __repr__(self) -> str:            # never the secret
        return f"WebhookTarget({self.name!r}, {self.url!r})"


def webhooks_of(project: Optional[Project], folder: str,
                environ: Optional[Mapping[str, str]] = None) -> list[WebhookTarget]:
    """The project's webhooks; ``folder``: the project file's folder."""
    if project is None:
        return []
    environ = os.environ if environ is None else environ
    policy = SecretPolicy.from_env(roots=[folder], environ=environ)
    out = []
    for i, hook in enumerate(project.spec.events.webhooks):
        secret = resolve(hook.secret, folder, f"webhook {hook.name}",
                         f"spec.events.webhooks[{i}].secret", environ, policy)
        out.append(WebhookTarget(hook.name, hook.url, secret.encode(), tuple(hook.kinds),
                                 hook.timeout, hook.max_attempts, hook.backoff_seconds))
    return out


def retention_days(project: Optional[Project]) -> Optional[int]:
    return project.spec.events.retention_days if project is not None else None
