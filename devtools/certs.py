"""Throwaway certificates for the local mail stack (the `cryptography` package)."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path


def _write_pem(path: Path, *objs) -> None:
    from cryptography.hazmat.primitives import serialization

    out = b""
    for obj in objs:
        if hasattr(obj, "private_bytes"):
            out += obj.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        else:
            out += obj.public_bytes(serialization.Encoding.PEM)
    path.write_bytes(out)
    path.chmod(0o644 if path.suffix == ".crt" or "ca" in path.name else 0o600)


def _cert(subject_cn, key, issuer_cert, issuer_key, *, names=(), ca=False,
          not_before=None, not_after=None):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.timezone.utc)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject_cn),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mailform test")])
    issuer = issuer_cert.subject if issuer_cert is not None else subject
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(issuer).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - dt.timedelta(days=1))
        .not_valid_after(not_after or now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer_key is not None and issuer_cert is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_cert.public_key()),
            critical=False)
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False,
            encipher_only=False, decipher_only=False), critical=True)
    else:
        sans = []
        for name in names:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                sans.append(x509.DNSName(name))
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    return builder.sign(issuer_key or key, hashes.SHA256())


def make_certificates(directory: Path) -> dict[str, Path]:
    """A throwaway CA plus server certificates; returns name -> PEM path.

    ``server`` (localhost, 127.0.0.1, signed by the CA), ``wronghost``
    (wrong.example.net, signed by the CA), ``expired`` (localhost, expired,
    signed by the CA), ``selfsigned`` (localhost, its own issuer).  Key and
    certificate chain share one file, which both Postfix and Dovecot accept.
    """
    from cryptography.hazmat.primitives.asymmetric import ec

    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _cert("mailform throwaway test CA", ca_key, None, None, ca=True)
    paths = {"ca": directory / "ca.crt"}
    _write_pem(paths["ca"], ca_cert)
    local = ("localhost", "127.0.0.1")
    specs = {
        "server": dict(cn="localhost", names=local, signed=True),
        "wronghost": dict(cn="wrong.example.net", names=("wrong.example.net",), signed=True),
        "expired": dict(cn="localhost", names=local, signed=True,
                        not_before=now - dt.timedelta(days=60),
                        not_after=now - dt.timedelta(days=30)),
        "selfsigned": dict(cn="localhost", names=local, signed=False),
    }
    for name, spec in specs.items():
        key = ec.generate_private_key(ec.SECP256R1())
        signed = spec.pop("signed")
        cert = _cert(spec.pop("cn"), key, ca_cert if signed else None,
                     ca_key if signed else None, **spec)
        paths[name] = directory / f"{name}.pem"
        _write_pem(paths[name], key, cert)
    return paths
