"""The exception tree. Every error carries what a user needs to fix it.

Nothing here imports other mailform modules. Messages never contain a secret
value: callers pass names of variables and files, not what they hold.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, order=True)
class Problem:
    """One finding about the manifests, with where it is."""

    file: str
    line: int
    column: int
    path: str
    message: str
    severity: str = field(default="error", compare=False)

    def __str__(self) -> str:
        # line 0: about the path as a whole (missing, not a manifest): no position to give
        where = f"{self.file}:{self.line}:{self.column}" if self.line else self.file
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"

    def to_dict(self) -> dict:
        return {"file": self.file, "line": self.line, "column": self.column,
                "path": self.path, "message": self.message}


class MailformError(Exception):
    """Base of every error mailform reports to a user. ``exit_code`` per SPEC §3."""

    exit_code = 1


class UsageError(MailformError):
    exit_code = 64


class ManifestError(MailformError):
    """The manifests are invalid; ``problems`` lists every error of the run."""

    def __init__(self, problems: list[Problem], warnings: list[Problem] | None = None):
        self.problems = sorted(problems)
        self.warnings = sorted(warnings or [])
        super().__init__("\n".join(str(p) for p in self.problems)
                         or "the manifests are invalid")


class SecretError(MailformError):
    """A secret reference could not be resolved. Names the reference, never a value."""

    def __init__(self, account: str, field_path: str, reference: str, reason: str):
        self.account, self.field_path, self.reference = account, field_path, reference
        super().__init__(f"account {account}: {field_path}: {reference}: {reason}")


class RegistryError(MailformError):
    """The registry cannot be opened, read or written."""


class WrongKeyError(RegistryError):
    pass


class NotFoundError(MailformError):
    pass


class LockedError(MailformError):
    exit_code = 5

    def __init__(self, lock: dict):
        self.lock = lock
        super().__init__(
            "the registry is locked by {holder} on {host} (pid {pid}) since {started}; "
            "lease until {expires}; lock id {id}. Wait for it, or run "
            "`mailform force-unlock {id}` if that process is gone.".format(**lock))


class StalePlanError(MailformError):
    exit_code = 4


class GuardBlocked(MailformError):
    exit_code = 3
