"""Amazon SNS message signatures (SignatureVersion 1: SHA1withRSA, 2: SHA256withRSA).

The signed text is the message's fields, each name and value on its own line, in the
order SNS documents for the message type. The signing certificate is fetched over HTTPS
(the system's trust plus ``MAILFORM_CA_FILE``) only from a URL that matches the
allow-list pattern (``--sns-cert-url-pattern``; by default Amazon's
``https://sns.<region>.amazonaws.com/SimpleNotificationService-….pem``), and cached.
"""
from __future__ import annotations

import base64
import re
import threading
from datetime import datetime, timezone
from typing import Any, Callable, Optional

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from .http import open_url
from .provider import SignatureError

DEFAULT_CERT_URL_PATTERN = (r"https://sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/"
                            r"SimpleNotificationService-[0-9a-f]+\.pem")
MAX_CERT_BYTES = 64 * 1024
FETCH_TIMEOUT = 10.0
_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp",
                                 "Token", "TopicArn", "Type"),
    "UnsubscribeConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp",
                                "Token", "TopicArn", "Type"),
}
_HASHES = {"1": hashes.SHA1, "2": hashes.SHA256}


def string_to_sign(message: dict) -> bytes:
    fields = _FIELDS.get(str(message.get("Type")))
    if fields is None:
        raise SignatureError(f"unknown SNS message type {message.get('Type')!r}")
    lines = []
    for name in fields:
        if name in message and message[name] is not None:
            lines += [name, str(message[name])]
    return ("\n".join(lines) + "\n").encode()


class CertificateCache:
    """Signing certificates by URL, fetched once from allowed URLs only."""

    def __init__(self, pattern: str = DEFAULT_CERT_URL_PATTERN,
                 fetch: Optional[Callable[[str], bytes]] = None) -> None:
        self.pattern = re.compile(pattern)
        self._fetch = fetch or _fetch
        self._certs: dict[str, x509.Certificate] = {}
        self._lock = threading.Lock()

    def get(self, url: str) -> x509.Certificate:
        if not url.startswith("https://") or not self.pattern.fullmatch(url):
            raise SignatureError(f"the SNS signing certificate URL {url!r} is not allowed "
                                 f"(it must match {self.pattern.pattern})")
        with self._lock:
            if url not in self._certs:
                self._certs[url] = _load(self._fetch(url), url)
            return self._certs[url]


def _fetch(url: str) -> bytes:
    try:
        with open_url(url, FETCH_TIMEOUT) as answer:
            return answer.read(MAX_CERT_BYTES + 1)
    except (OSError, ValueError) as exc:
        raise SignatureError(f"cannot fetch the SNS signing certificate {url}: {exc}") from None


def _load(pem: bytes, url: str) -> x509.Certificate:
    if len(pem) > MAX_CERT_BYTES:
        raise SignatureError(f"the SNS signing certificate at {url} is too large")
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise SignatureError(f"{url} does not hold a PEM certificate") from None


def verify(message: Any, certificates: CertificateCache) -> None:
    """A SNS message's signature, or SignatureError saying why not."""
    if not isinstance(message, dict):
        raise SignatureError("an SNS message is a JSON object")
    algorithm = _HASHES.get(str(message.get("SignatureVersion")))
    if algorithm is None:
        raise SignatureError("unknown SNS SignatureVersion "
                             f"{message.get('SignatureVersion')!r}")
    cert = certificates.get(str(message.get("SigningCertURL") or message.get("SigningCertUrl")))
    _check_dates(cert)
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise SignatureError("the SNS signing certificate does not hold an RSA key")
    try:
        key.verify(base64.b64decode(str(message.get("Signature", ""))),
                   string_to_sign(message), padding.PKCS1v15(), algorithm())
    except (InvalidSignature, ValueError):
        raise SignatureError("the SNS message signature does not verify") from None


def _check_dates(cert: x509.Certificate) -> None:
    now = datetime.now(timezone.utc)
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise SignatureError("the SNS signing certificate is expired or not yet valid")
