"""Secrets at rest: the master key, its subkeys, AES-GCM encryption and fingerprints.

The master key is 32 random bytes, written as urlsafe base64. It comes from
``MAILFORM_MASTER_KEY`` when set, else from a key file beside a SQLite registry
(``<db>.key``, see ``keyfile``), created with mode 0600 on first use. HKDF derives independent
subkeys from it: one encrypts secrets, one keys the fingerprints (HMAC-SHA256),
one produces the key check value stored in the registry so that a wrong key is
caught when the registry is opened, not when a secret is first decrypted.

Nothing here ever puts a key or a secret value into an error message.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
from dataclasses import dataclass, field
from functools import cached_property
from typing import Optional

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..errors import RegistryError, WrongKeyError

ENV_VAR = "MAILFORM_MASTER_KEY"
BLOB_VERSION = b"\x01"
NONCE_BYTES = 12
_CHECK_MESSAGE = b"mailform registry key check v1"


class MalformedKeyError(RegistryError):
    """The master key (environment or key file) is not urlsafe base64 of 32 bytes."""


class MissingKeyError(WrongKeyError):
    """The registry holds encrypted data but its key file is gone and no key is set."""


def generate_key() -> str:
    """A new master key as urlsafe base64 text (what MAILFORM_MASTER_KEY holds)."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode("ascii")


def decode_key(text: str, source: str) -> bytes:
    """Decode a master key; ``source`` names where it came from, for the message."""
    cleaned = text.strip()
    try:
        raw = base64.b64decode(cleaned + "=" * (-len(cleaned) % 4), altchars=b"-_",
                               validate=True)
    except (binascii.Error, ValueError):
        raw = None
    if raw is None or len(raw) != 32:
        got = "not valid base64" if raw is None else f"{len(raw)} bytes"
        raise MalformedKeyError(
            f"{source} is malformed: expected urlsafe base64 of 32 bytes ({got}); "
            "generate one with: python -c \"import base64,os; "
            "print(base64.urlsafe_b64encode(os.urandom(32)).decode())\"")
    return raw


def _derive(master: bytes, purpose: str) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"mailform-registry",
                info=f"mailform {purpose} v1".encode())
    return hkdf.derive(master)


@dataclass(frozen=True)
class KeyRing:
    """Subkeys derived from one master key, and where that key came from."""

    enc_key: bytes = field(repr=False)      # kept out of repr(), so out of logs
    fp_key: bytes = field(repr=False)
    check_key: bytes = field(repr=False)
    source: str          # "MAILFORM_MASTER_KEY" or "key file /path/to/registry.db.key"

    @classmethod
    def from_master(cls, master: bytes, source: str) -> "KeyRing":
        return cls(_derive(master, "encryption"), _derive(master, "fingerprint"),
                   _derive(master, "key-check"), source)

    @cached_property
    def _aead(self) -> AESGCM:
        return AESGCM(self.enc_key)

    def fingerprint(self, path: str, value: str) -> str:
        msg = f"{path}\0{value}".encode("utf-8")
        return "hmac-sha256:" + hmac.digest(self.fp_key, msg, "sha256").hex()  # (one-shot)

    @cached_property
    def _sign_key(self) -> bytes:
        # A subkey of the fingerprint key, so that a KeyRing stays four fields; HKDF
        # with its own label keeps signatures and fingerprints independent.
        return _derive(self.fp_key, "signature")

    def sign(self, purpose: str, data: bytes) -> str:
        """Keyed HMAC of ``data`` for ``purpose`` (e.g. saved plan files): only a holder of
        this registry's key can make one that verifies."""
        msg = purpose.encode("utf-8") + b"\0" + data
        return "hmac-sha256:" + hmac.new(self._sign_key, msg, hashlib.sha256).hexdigest()

    def carry(self, path: str, old_fingerprint: str) -> str:
        """A fingerprint re-keyed without its value (an applied secret that the registry
        no longer holds): stable, equal only to itself, never to a value's fingerprint
        (the message starts with a label no secret path has)."""
        msg = f"rekeyed\0{path}\0{old_fingerprint}".encode("utf-8")
        return "hmac-sha256:" + hmac.new(self.fp_key, msg, hashlib.sha256).hexdigest()

    def check_value(self) -> str:
        return "hmac-sha256:" + hmac.new(self.check_key, _CHECK_MESSAGE, hashlib.sha256).hexdigest()

    def matches(self, stored_check: str) -> bool:
        return hmac.compare_digest(stored_check, self.check_value())

    def verify(self, stored_check: str, where: str, hint: str = "") -> None:
        if not self.matches(stored_check):
            raise WrongKeyError(
                f"the registry {where} was encrypted with a different key ({self.source}); "
                f"use the key it was created with (MAILFORM_MASTER_KEY or its key file)"
                + hint)

    def encrypt(self, secrets: dict[str, str], name: str) -> Optional[bytes]:
        """One blob per account: version byte, random 96-bit nonce, AES-GCM ciphertext."""
        if not secrets:
            return None
        nonce = os.urandom(NONCE_BYTES)
        plain = json.dumps(secrets, sort_keys=True).encode("utf-8")
        return BLOB_VERSION + nonce + self._aead.encrypt(nonce, plain, name.encode())

    def decrypt(self, blob: Optional[bytes], name: str) -> dict[str, str]:
        if not blob:
            return {}
        blob = bytes(blob)
        if blob[:1] != BLOB_VERSION:
            raise RegistryError(f"account {name}: unknown secret format in the registry")
        nonce, ciphertext = blob[1:1 + NONCE_BYTES], blob[1 + NONCE_BYTES:]
        try:
            plain = self._aead.decrypt(nonce, ciphertext, name.encode())
        except InvalidTag:
            raise RegistryError(
                f"account {name}: its secrets cannot be decrypted (the row was altered "
                f"or encrypted with another key than {self.source})") from None
        return json.loads(plain)


def key_from_env() -> Optional[KeyRing]:
    text = os.environ.get(ENV_VAR)
    if text is None or not text.strip():
        return None
    return KeyRing.from_master(decode_key(text, ENV_VAR), ENV_VAR)
