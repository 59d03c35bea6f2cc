"""The registry: the platform's live account database (SPEC §5).

``open_registry(url)`` picks the backend from the URL:

* ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db`` or a plain path:
  the embedded SQLite registry (folder created on first use, key file
  ``<db>.key`` beside it unless ``MAILFORM_MASTER_KEY`` is set);
* ``postgresql://…`` / ``postgres://…``: PostgreSQL (needs ``MAILFORM_MASTER_KEY``).

Only writers create a registry (``create=True``: apply, ``registry init``); readers
pass ``create=False`` and get ``RegistryMissing`` — or ``open_or_empty``'s
``EmptyRegistry`` stand-in — so that a mistyped URL creates no folder, database,
key file or PostgreSQL schema.

``registry.rekey(...)`` moves a registry to a new master key (``rekey``,
``rotation``, ``keyfile``); a SQLite file that cannot be written is opened
read-only (``sqlfile``).
"""
from __future__ import annotations

from ..errors import LockedError, NotFoundError, RegistryError, WrongKeyError
from .base import (AccountWrite, LockInfo, Registry, RegistryMeta, Rekeyed, StoredAccount,
                   Transaction)
from .empty import EmptyRegistry, RegistryMissing

__all__ = ["open_registry", "open_or_empty", "registry_exists", "EmptyRegistry",
           "RegistryMissing", "AccountWrite", "LockInfo", "Registry", "RegistryMeta",
           "Rekeyed", "StoredAccount", "Transaction", "RegistryError", "WrongKeyError",
           "LockedError", "NotFoundError"]


_POSTGRES_SCHEMES = ("postgresql://", "postgres://", "postgresql+psycopg://")


def open_registry(url: str, create: bool = True) -> Registry:
    """Open (and migrate, when needed) the registry at ``url``; create it when missing
    only with ``create`` (otherwise RegistryMissing, nothing created)."""
    if not create and not registry_exists(url):
        raise RegistryMissing(_shown(url))
    if _is_postgres(url):
        from .postgres import PostgresRegistry
        return PostgresRegistry(url)
    from .sqlite import SQLiteRegistry
    return SQLiteRegistry(url)


def open_or_empty(url: str) -> Registry:
    """The registry at ``url``, or (``.missing``) an empty stand-in when there is none."""
    try:
        return open_registry(url, create=False)
    except RegistryMissing as exc:
        return EmptyRegistry(exc.url)


def _shown(url: str) -> str:
    """``url`` as messages show it (a PostgreSQL password replaced by ***)."""
    if _is_postgres(url):
        from .postgres import split_url
        return split_url(url)[2]
    return url


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
