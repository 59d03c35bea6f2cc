"""The registry: the platform's live account database (SPEC §5).

``open_registry(url)`` picks the backend from the URL:

* ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db`` or a plain path:
  the embedded SQLite registry (folder created on first use, key file
  ``<db>.key`` beside it unless ``MAILFORM_MASTER_KEY`` is set);
* ``postgresql://…`` / ``postgres://…``: PostgreSQL (needs ``MAILFORM_MASTER_KEY``).
"""
from __future__ import annotations

from ..errors import LockedError, NotFoundError, RegistryError, WrongKeyError
from .base import (AccountWrite, LockInfo, Registry, RegistryMeta, StoredAccount,
                   Transaction)

__all__ = ["open_registry", "AccountWrite", "LockInfo", "Registry", "RegistryMeta",
           "StoredAccount", "Transaction", "RegistryError", "WrongKeyError",
           "LockedError", "NotFoundError"]


def open_registry(url: str) -> Registry:
    """Open (and create or migrate, when needed) the registry at ``url``."""
    if url.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        from .postgres import PostgresRegistry
        return PostgresRegistry(url)
    if "://" in url and not url.startswith("sqlite:"):
        raise RegistryError(f"unsupported registry URL {url!r}: use sqlite:///path.db "
                            "or postgresql://…")
    from .sqlite import SQLiteRegistry
    return SQLiteRegistry(url)
