"""TLS contexts, session details and the naming of TLS / certificate failures."""

from __future__ import annotations

import ssl

from ..trust import client_context  # noqa: F401  (re-exported: verify's callers use it)
from . import results as r

# OpenSSL X509_V_ERR_* codes -> reason
_VERIFY_REASONS = {
    2: r.CERT_UNKNOWN_ISSUER,  # unable to get issuer certificate
    9: r.CERT_NOT_YET_VALID,
    10: r.CERT_EXPIRED,
    18: r.CERT_SELF_SIGNED,  # depth zero self-signed
    19: r.CERT_SELF_SIGNED,  # self-signed certificate in chain (untrusted root)
    20: r.CERT_UNKNOWN_ISSUER,  # unable to get local issuer certificate
    21: r.CERT_UNKNOWN_ISSUER,  # unable to verify the first certificate
    62: r.CERT_HOSTNAME_MISMATCH,
    64: r.CERT_HOSTNAME_MISMATCH,  # IP address mismatch
}

_PLAINTEXT_REPLY_ERRORS = ("WRONG_VERSION_NUMBER", "HTTP_REQUEST", "PACKET_LENGTH_TOO_LONG",
                           "UNKNOWN_PROTOCOL", "RECORD_LAYER_FAILURE")


def session_info(sock: ssl.SSLSocket) -> dict:
    """TLS version, cipher and peer certificate subject of an established session."""
    info = {"tls_version": sock.version(), "cipher": None, "cert_subject": None}
    cipher = sock.cipher()
    if cipher:
        info["cipher"] = cipher[0]
    parsed = sock.getpeercert()  # a dict only when the certificate was verified
    if parsed and parsed.get("subject"):
        info["cert_subject"] = ",".join(
            f"{_SHORT.get(k, k)}={v}" for rdn in reversed(parsed["subject"]) for k, v in rdn)
    else:
        der = sock.getpeercert(binary_form=True)
        if der:
            info["cert_subject"] = certificate_subject(der)
    return info


_SHORT = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU",
          "countryName": "C", "localityName": "L", "stateOrProvinceName": "ST",
          "emailAddress": "emailAddress"}


def certificate_subject(der: bytes) -> str | None:
    try:
        from cryptography import x509

        return x509.load_der_x509_certificate(der).subject.rfc4514_string()
    except Exception:  # noqa: BLE001 - a subject is nice to have, never essential
        return None


def certificate_reason(exc: ssl.SSLCertVerificationError) -> str:
    code = getattr(exc, "verify_code", None)
    if code in _VERIFY_REASONS:
        return _VERIFY_REASONS[code]
    message = (getattr(exc, "verify_message", "") or str(exc)).lower()
    for needle, reason in (("hostname", r.CERT_HOSTNAME_MISMATCH), ("ip address", r.CERT_HOSTNAME_MISMATCH),
                           ("expired", r.CERT_EXPIRED), ("self-signed", r.CERT_SELF_SIGNED),
                           ("self signed", r.CERT_SELF_SIGNED), ("issuer", r.CERT_UNKNOWN_ISSUER)):
        if needle in message:
            return reason
    return getattr(exc, "verify_message", None) or "verification failed"


def looks_like_plaintext_reply(exc: ssl.SSLError) -> bool:
    """The peer answered a ClientHello with plain text (a greeting): a non-TLS port."""
    text = f"{getattr(exc, 'reason', '')} {exc}".upper()
    return any(marker in text for marker in _PLAINTEXT_REPLY_ERRORS)


def describe_tls_error(exc: ssl.SSLError) -> tuple[str, str | None, str, str | None]:
    """(code, cert_reason, reply_text, hint) for a failed handshake."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = certificate_reason(exc)
        hint = {
            r.CERT_UNKNOWN_ISSUER: "the issuing CA is not trusted; add it with MAILFORM_CA_FILE "
                                   "or fix the server's chain",
            r.CERT_HOSTNAME_MISMATCH: "the certificate does not name this host; "
                                      "use the host name the certificate was issued for",
            r.CERT_SELF_SIGNED: "the server presents a self-signed certificate",
            r.CERT_EXPIRED: "the server's certificate has expired",
        }.get(reason)
        text = getattr(exc, "verify_message", None) or str(exc)
        return r.CERTIFICATE_INVALID, reason, text, hint
    if looks_like_plaintext_reply(exc):
        return (r.TLS_HANDSHAKE_FAILED, None, "server answered the TLS handshake in plain text",
                "this port speaks plain text first: use security: starttls")
    return r.TLS_HANDSHAKE_FAILED, None, getattr(exc, "reason", None) or str(exc), None
