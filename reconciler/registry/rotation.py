"""Rotating the master key: where the new key comes from, and where it is kept.

* A key from ``MAILFORM_MASTER_KEY`` (always, for PostgreSQL): the operator puts
  the new key in another variable and names it (``--new-key-env NAME``); after
  the re-encryption they switch ``MAILFORM_MASTER_KEY`` to it. mailform never
  prints a key.
* A key file beside a SQLite registry: a new key is generated (or read from
  ``--new-key-env NAME``) and kept as ``keyfile`` describes, so that a crash at
  any point leaves a registry that opens.

The re-encryption itself is ``rekey.rekey``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ..errors import RegistryError
from . import keyfile
from .crypto import ENV_VAR, KeyRing, decode_key, generate_key


@dataclass(frozen=True)
class Rotation:
    """One change of key: the new key ring, and its key file when there is one."""

    keys: KeyRing
    key_path: Optional[Path] = None     # None: the key lives in the environment
    text: str = field(default="", repr=False)   # the new key (key file only; never shown)
    env_name: str = ""                  # the variable the operator gave the new key in

    def stage(self) -> None:
        if self.key_path is not None:
            keyfile.stage(self.key_path, self.text)

    def install(self) -> bool:
        return self.key_path is None or keyfile.install(self.key_path, self.text)

    def discard(self) -> None:
        if self.key_path is not None:
            keyfile.discard(self.key_path, self.text)


def new_key_from_env(name: str) -> str:
    """The new key an operator put in variable ``name`` (validated; never echoed)."""
    if name == ENV_VAR:
        raise RegistryError(f"--new-key-env must name another variable than {ENV_VAR}, "
                            "which holds the current key")
    text = os.environ.get(name, "").strip()
    if not text:
        raise RegistryError(f"--new-key-env {name}: the variable is not set or empty; put the "
                            "new key (urlsafe base64 of 32 bytes) in it")
    decode_key(text, f"the new key in {name}")
    return text


def plan_rotation(current: KeyRing, new_key_env: Optional[str],
                  key_path: Optional[Path]) -> Rotation:
    """The rotation for a registry whose key is ``current``; ``key_path`` is its key file
    (None when there is none: the key must come from the environment)."""
    from_env = current.source == ENV_VAR or key_path is None
    if from_env and not new_key_env:
        raise RegistryError(
            f"this registry's key comes from {ENV_VAR}: put a new key (urlsafe base64 of "
            "32 bytes) in another variable and pass its name with --new-key-env NAME")
    text = new_key_from_env(new_key_env) if new_key_env else generate_key()
    source = ENV_VAR if from_env else f"key file {key_path}"
    keys = KeyRing.from_master(decode_key(text, "the new key"), source)
    if keys.matches(current.check_value()):
        raise RegistryError(f"the new key in {new_key_env} is the registry's current key; "
                            "generate a new one")
    if from_env:
        return Rotation(keys, env_name=new_key_env or "")
    return Rotation(keys, key_path, text, new_key_env or "")
