"""Tag-value records (DKIM, DMARC, MTA-STS, TLS-RPT): find and read them."""
from __future__ import annotations

import base64
import binascii
from typing import Optional

from .resolver import Lookup


def tags(text: str) -> dict[str, str]:
    """``v=DMARC1; p=none`` -> {"v": "DMARC1", "p": "none"} (keys lower-case)."""
    out = {}
    for part in text.split(";"):
        key, sep, value = part.partition("=")
        if sep:
            out[key.strip().lower()] = "".join(value.split())
    return out


def tagged(lookup: Lookup, name: str, version: str) -> list[dict[str, str]]:
    """The records at ``name`` whose v= tag is ``version`` (case-insensitive)."""
    found = []
    for text in lookup.txt(name):
        parsed = tags(text)
        if parsed.get("v", "").lower() == version.lower():
            found.append(parsed)
    return found


def dkim_record(lookup: Lookup, selector: str, domain: str) -> Optional[dict[str, str]]:
    """The DKIM key record of ``selector`` (v=DKIM1 is optional, RFC 6376 §3.6.1)."""
    for text in lookup.txt(f"{selector}._domainkey.{domain}"):
        parsed = tags(text)
        if "p" in parsed and parsed.get("v", "DKIM1").upper() == "DKIM1":
            return parsed
    return None


def key_bits(record: dict[str, str]) -> Optional[int]:
    """The key length in bits (RSA); 256 for ed25519; None when ``p=`` is not a key."""
    if record.get("k", "rsa").lower() == "ed25519":
        return 256
    try:
        der = base64.b64decode(record.get("p", ""), validate=True)
    except (binascii.Error, ValueError):
        return None
    return _rsa_bits(der)


def _rsa_bits(der: bytes) -> Optional[int]:
    from cryptography.hazmat.primitives.serialization import load_der_public_key
    try:
        key = load_der_public_key(der)
    except (ValueError, TypeError):
        return None
    return getattr(key, "key_size", None)


def organizational(domain: str) -> str:
    """The organisational domain, approximated as the last two labels (no public
    suffix list: a domain under a two-label suffix such as co.uk is looked up as is)."""
    labels = domain.split(".")
    return ".".join(labels[-2:]) if len(labels) > 2 else domain


def dmarc_record(lookup: Lookup, domain: str) -> tuple[Optional[dict[str, str]], str]:
    """(record, where it was found): the domain's own, else its organisational domain's
    (RFC 7489 §6.6.3)."""
    for name in dict.fromkeys((domain, organizational(domain))):
        found = tagged(lookup, f"_dmarc.{name}", "DMARC1")
        if found:
            return found[0], name
    return None, domain


def aligned(identifier: str, from_domain: str, mode: str) -> bool:
    """DMARC identifier alignment: strict ("s") = equal, relaxed = same organisation."""
    identifier, from_domain = identifier.lower(), from_domain.lower()
    if mode == "s":
        return identifier == from_domain
    return organizational(identifier) == organizational(from_domain)
