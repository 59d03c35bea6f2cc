"""The registry: the platform's live account database (SPEC §5).

``open_registry(url)`` picks the backend from the URL:

* ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db`` or a plain path:
  the embedded SQLite registry (folder created on first use, key file
  ``<db>.key`` beside it unless ``MAILFORM_MASTER_KEY`` is set);
* ``postgresql://…`` / ``postgres://…``: PostgreSQL (needs ``MAILFORM_MASTER_KEY``).

``registry.rekey(...)`` moves a registry to a new master key (``rekey``,
``rotation``, ``keyfile``); a SQLite file that cannot be written is opened
read-only (``sqlfile``).
"""
from __future__ import annotations

from ..errors import LockedError, NotFoundError, RegistryError, WrongKeyError
from .base import (AccountWrite, LockInfo, Registry, RegistryMeta, Rekeyed, StoredAccount,
                   Transaction)

__all__ = ["open_registry", "registry_exists", "AccountWrite", "LockInfo", "Registry", "RegistryMeta",
           "Rekeyed", "StoredAccount", "Transaction", "RegistryError", "WrongKeyError",
           "LockedError", "NotFoundError"]


_POSTGRES_SCHEMES = ("postgresql://", "postgres://", "postgresql+psycopg://")


def open_registry(url: str) -> Registry:
    """Open (and create or migrate, when needed) the registry at ``url``."""
    if _is_postgres(url):
        from .postgres import PostgresRegistry
        return PostgresRegistry(url)
    from .sqlite import SQLiteRegistry
    return SQLiteRegistry(url)


def registry_exists(url: str) -> bool:
    """Whether a registry was created at ``url`` already: opening one that was not
    creates it, with a new key, which a caller may want to refuse (a saved plan)."""
    if _is_postgres(url):
        from .postgres import postgres_registry_exists
        return postgres_registry_exists(url)
    from .sqlite import sqlite_path
    return sqlite_path(url).exists()


def _is_postgres(url: str) -> bool:
    if url.startswith(_POSTGRES_SCHEMES):
        return True
    if "://" in url and not url.startswith("sqlite:"):
        raise RegistryError(f"unsupported registry URL {url!r}: use sqlite:///path.db "
                            "or postgresql://…")
    return False
