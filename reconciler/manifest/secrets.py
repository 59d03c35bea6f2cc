"""Resolving secret references. Errors name the reference, never a value."""
from __future__ import annotations

import os
from typing import Mapping, Optional

from ..errors import SecretError
from ..model import EmailAccount, SecretRef

MAX_SECRET_FILE = 64 * 1024


def resolve(ref: SecretRef, base_dir: str, account: str, field_path: str,
            environ: Optional[Mapping[str, str]] = None) -> str:
    """The secret's value. ``{file: PATH}`` is relative to ``base_dir`` (the manifest's folder)."""
    environ = os.environ if environ is None else environ
    if ref.env is not None:
        if ref.env not in environ:
            raise SecretError(account, field_path, f"env {ref.env}",
                              "environment variable is not set")
        value = environ[ref.env]
        if value == "":
            raise SecretError(account, field_path, f"env {ref.env}", "environment variable is empty")
        return value
    path = os.path.join(base_dir, ref.file)
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_SECRET_FILE + 1)
    except OSError as exc:
        raise SecretError(account, field_path, f"file {ref.file}",
                          f"cannot read {path}: {exc.strerror}") from None
    if len(data) > MAX_SECRET_FILE:
        raise SecretError(account, field_path, f"file {ref.file}", "file is larger than 64 KiB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SecretError(account, field_path, f"file {ref.file}", "file is not UTF-8 text") from None
    value = text[:-1] if text.endswith("\n") else text
    value = value[:-1] if value.endswith("\r") else value
    if value == "":
        raise SecretError(account, field_path, f"file {ref.file}", "file is empty")
    return value


def account_secrets(account: EmailAccount, environ: Optional[Mapping[str, str]] = None
                    ) -> dict[str, str]:
    """Every secret of an account, by spec path (``smtp.password``, ``inbox.password``)."""
    base_dir = os.path.dirname(account.source[0]) if account.source else "."
    out = {}
    for section in ("smtp", "inbox"):
        settings = getattr(account.spec, section)
        ref = getattr(settings, "password", None) if settings is not None else None
        if ref is not None:
            out[f"{section}.password"] = resolve(ref, base_dir, account.name,
                                                 f"spec.{section}.password", environ)
    return out
