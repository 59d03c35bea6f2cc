"""Resolving secret references, only where the runner allows. Errors name the reference,
never a value.

Whoever runs mailform owns the secrets; whoever writes the manifests may not be trusted
(a pull request). So what a reference may reach is decided by the runner — a
``SecretPolicy`` built from command-line options and ``MAILFORM_*`` variables — and never
by a file in the repository under review (see SECURITY.md):

* ``{file: PATH}`` resolves, after symlinks, inside the manifests' root or one of the
  runner's secret directories (``MAILFORM_SECRET_DIRS``, ``os.pathsep``-separated), never
  inside the registry's folder; it must be a regular file (a FIFO, device or socket is
  refused without blocking) of at most 64 KiB.
* ``{env: NAME}`` never resolves mailform's own settings (``MAILFORM_*``) and, when the
  runner sets ``MAILFORM_SECRET_ENV`` (comma-separated shell patterns), only names that
  match one of them.
"""
from __future__ import annotations

import functools
import os
import re
import stat
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Iterable, Mapping, Optional

from ..errors import SecretError
from ..model import EmailAccount, SecretRef, secret_refs

MAX_SECRET_FILE = 64 * 1024
OWN_PREFIX = "MAILFORM_"
# The names `mailform import` writes for secrets (manifest/export.py env_name). mailform's
# own settings never end in _SMTP_PASSWORD / _INBOX_PASSWORD, _OAUTH2_REFRESH_TOKEN /
# _OAUTH2_CLIENT_SECRET or _PROXY_PASSWORD, so these stay readable.
IMPORTED_SECRET = re.compile(r"MAILFORM_[A-Z0-9_]+_(?:(?:SMTP|INBOX)_(?:PASSWORD|OAUTH2_"
                             r"(?:REFRESH_TOKEN|CLIENT_SECRET))|PROXY_PASSWORD)")
SECRET_DIRS_VAR = "MAILFORM_SECRET_DIRS"
SECRET_ENV_VAR = "MAILFORM_SECRET_ENV"
REGISTRY_VAR = "MAILFORM_REGISTRY"
DEFAULT_REGISTRY = "sqlite:///.mailform/registry.db"   # the CLI's default (cli/options.py)
_OPEN_FLAGS = (os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0)
               | getattr(os, "O_CLOEXEC", 0))


def _real(path: str) -> str:
    return os.path.realpath(os.path.abspath(path))


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def registry_denials(url: Optional[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(folders, file prefixes) a SQLite registry at ``url`` puts out of reach: its folder
    (the key file ``<db>.key`` lives there too) — or, when that folder holds the current
    directory (a registry kept at the top of a checkout), the database's own files
    (``<db>``, ``<db>-wal``, ``<db>.key``…). Nothing for PostgreSQL."""
    if not url or ("://" in url and not url.startswith("sqlite:")):
        return (), ()
    path = url[len("sqlite:///"):] if url.startswith("sqlite:///") else url.split("://")[-1]
    database = _real(path.split("?")[0])
    folder = os.path.dirname(database)
    if _inside(_real("."), folder):
        return (), (database,)
    return (folder,), ()


def trusted_folder(path: str) -> str:
    """A folder the runner named, as an absolute path whose symlinks are resolved only where
    the runner, not the repository, owns them: below the current directory (the checkout,
    where anyone who can open a pull request can plant a symlink) the path is kept as
    written; the current directory itself and anything outside it are resolved."""
    absolute = os.path.abspath(path)
    cwd = os.path.abspath(os.getcwd())
    if _inside(absolute, cwd):
        return os.path.normpath(os.path.join(_real(cwd), os.path.relpath(absolute, cwd)))
    return _real(absolute)


def manifests_root(paths: Iterable[str]) -> str:
    """The manifests' root: the deepest folder holding every PATH given (a file counts by
    its folder), see ``trusted_folder``; the current directory when no path is given."""
    folders = [p if os.path.isdir(p) else (os.path.dirname(p) or ".") for p in paths]
    if not folders:
        return trusted_folder(".")
    return trusted_folder(os.path.commonpath([os.path.abspath(f) for f in folders]))


class NotRegularFile(OSError):
    """A FIFO, device, socket or folder where a file's content is wanted."""

    def __init__(self, mode: int):
        what = ("a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
                else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
                else "a folder" if stat.S_ISDIR(mode) else "a special file")
        super().__init__(0, f"it is {what}, not a regular file")


def read_regular(path: str, limit: int) -> bytes:
    """At most ``limit + 1`` bytes of the regular file ``path`` (symlinks resolved by the
    caller). Never blocks on a FIFO or device: refused on ``stat`` before opening, and
    opened non-blocking in case it was swapped since. Raises OSError / NotRegularFile."""
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        raise NotRegularFile(mode)
    fd = os.open(path, _OPEN_FLAGS)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotRegularFile(info.st_mode)
        chunks, size = [], 0
        while size <= limit:        # (no buffer of ``limit`` bytes for a file of a few)
            chunk = os.read(fd, min(limit + 1 - size, max(info.st_size, 4096) + 1))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class SecretPolicy:
    """Where secret references may be read from; built by the runner, never by manifests.

    ``roots``: absolute folders (as ``trusted_folder`` gives them, e.g. ``Desired.root``)
    where ``{file:}`` may resolve; ``None`` means the folder of the manifest that holds the
    reference. ``secret_dirs``: the runner's extra folders. ``denied`` / ``denied_files``:
    folders / file prefixes never read (the registry's, see ``registry_denials``).
    ``env_patterns``: names ``{env:}`` may read (``None``: any name but mailform's own
    settings).
    """

    roots: Optional[tuple[str, ...]] = None
    secret_dirs: tuple[str, ...] = ()
    denied: tuple[str, ...] = ()
    denied_files: tuple[str, ...] = ()
    env_patterns: Optional[tuple[str, ...]] = None
    max_bytes: int = MAX_SECRET_FILE

    @classmethod
    def from_env(cls, roots: Optional[Iterable[str]] = None, registry_url: Optional[str] = None,
                 environ: Optional[Mapping[str, str]] = None) -> "SecretPolicy":
        """The runner's policy: ``roots`` (e.g. ``[Desired.root]``), the registry URL in use
        (default: ``MAILFORM_REGISTRY`` or the CLI's default), and the MAILFORM_SECRET_*
        variables of ``environ`` (default ``os.environ``)."""
        environ = os.environ if environ is None else environ
        url = registry_url or environ.get(REGISTRY_VAR) or DEFAULT_REGISTRY
        folders, files = registry_denials(url)
        return cls(roots=None if roots is None else tuple(os.path.abspath(r) for r in roots),
                   secret_dirs=_secret_dirs(environ.get(SECRET_DIRS_VAR, "")),
                   denied=folders, denied_files=files,
                   env_patterns=_env_patterns(environ.get(SECRET_ENV_VAR)))

    def file_refusal(self, real: str, base_dir: str) -> Optional[str]:
        """Why the real path ``real`` may not be read, or None."""
        roots = self.roots if self.roots is not None else (trusted_folder(base_dir),)
        allowed = roots + self.secret_dirs
        if not any(_inside(real, folder) for folder in allowed):
            return (f"resolves outside the manifests' root and the runner's secret folders "
                    f"(the runner may allow a folder with {SECRET_DIRS_VAR})")
        if (any(_inside(real, folder) for folder in self.denied)
                or any(real.startswith(prefix) for prefix in self.denied_files)):
            return "resolves to the registry's folder or files, which are never read for secrets"
        return None

    def env_refusal(self, name: str) -> Optional[str]:
        """Why ``{env: name}`` may not be read, or None."""
        if name.upper().startswith(OWN_PREFIX) and not IMPORTED_SECRET.fullmatch(name):
            return ("mailform's own settings (MAILFORM_*) are never secrets of a manifest "
                    "(only the MAILFORM_…_SMTP_PASSWORD / _INBOX_PASSWORD names that "
                    "`mailform import` writes)")
        patterns = self.env_patterns
        if patterns is not None and not any(fnmatchcase(name, p) for p in patterns):
            return f"the runner's {SECRET_ENV_VAR} does not allow this variable"
        return None


def _secret_dirs(value: str) -> tuple[str, ...]:
    return tuple(trusted_folder(p) for p in value.split(os.pathsep) if p.strip())


def _env_patterns(value: Optional[str]) -> Optional[tuple[str, ...]]:
    if value is None or not value.strip():
        return None
    return tuple(p.strip() for p in value.split(",") if p.strip())


@functools.lru_cache(maxsize=16)
def _cached_policy(dirs: Optional[str], env: Optional[str], registry: Optional[str],
                   cwd: str) -> SecretPolicy:
    environ = {k: v for k, v in ((SECRET_DIRS_VAR, dirs), (SECRET_ENV_VAR, env),
                                 (REGISTRY_VAR, registry)) if v is not None}
    return SecretPolicy.from_env(environ=environ)


def default_policy(environ: Optional[Mapping[str, str]] = None) -> SecretPolicy:
    """The policy when the caller passes none: each reference's own manifest folder as the
    root, the registry of MAILFORM_REGISTRY (or the default) denied, MAILFORM_SECRET_*."""
    environ = os.environ if environ is None else environ
    return _cached_policy(environ.get(SECRET_DIRS_VAR), environ.get(SECRET_ENV_VAR),
                          environ.get(REGISTRY_VAR), os.getcwd())


def resolve(ref: SecretRef, base_dir: str, account: str, field_path: str,
            environ: Optional[Mapping[str, str]] = None,
            policy: Optional[SecretPolicy] = None) -> str:
    """The secret's value. ``{file: PATH}`` is relative to ``base_dir`` (the manifest's folder).

    ``policy`` (default: ``default_policy(environ)``) says what may be read.
    """
    environ = os.environ if environ is None else environ
    if ref.env is not None:   # only the variable patterns matter: no path work per reference
        policy = policy or _env_policy(environ.get(SECRET_ENV_VAR))
        return _from_env(ref.env, environ, policy, account, field_path)
    return _from_file(ref.file, base_dir, policy or default_policy(environ), account, field_path)


@functools.lru_cache(maxsize=16)
def _env_policy(patterns: Optional[str]) -> SecretPolicy:
    return SecretPolicy(env_patterns=_env_patterns(patterns))


def _from_env(name: str, environ: Mapping[str, str], policy: SecretPolicy, account: str,
              field_path: str) -> str:
    refusal = policy.env_refusal(name)
    if refusal:
        raise SecretError(account, field_path, f"env {name}", refusal)
    value = environ.get(name)
    if value is None:
        raise SecretError(account, field_path, f"env {name}", "environment variable is not set")
    if value == "":
        raise SecretError(account, field_path, f"env {name}", "environment variable is empty")
    return value


def _from_file(file: str, base_dir: str, policy: SecretPolicy, account: str,
               field_path: str) -> str:
    reference = f"file {file}"
    path = os.path.join(base_dir, file)
    refusal = policy.file_refusal(_real(path), base_dir)
    if refusal:
        raise SecretError(account, field_path, reference, refusal)
    try:
        data = read_regular(_real(path), policy.max_bytes)
    except OSError as exc:
        raise SecretError(account, field_path, reference,
                          f"cannot read {path}: {exc.strerror}") from None
    return _text(data, policy.max_bytes, account, field_path, reference)


def _text(data: bytes, limit: int, account: str, field_path: str, reference: str) -> str:
    if len(data) > limit:
        raise SecretError(account, field_path, reference,
                          f"file is larger than {limit // 1024} KiB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SecretError(account, field_path, reference, "file is not UTF-8 text") from None
    value = text[:-1] if text.endswith("\n") else text
    value = value[:-1] if value.endswith("\r") else value
    if value == "":
        raise SecretError(account, field_path, reference, "file is empty")
    return value


def account_secrets(account: EmailAccount, environ: Optional[Mapping[str, str]] = None,
                    policy: Optional[SecretPolicy] = None) -> dict[str, str]:
    """Every secret of an account, by spec path (``smtp.password``, ``inbox.password``,
    ``smtp.oauth2.refresh_token``, ``proxy_password``…: model.SECRET_FIELDS)."""
    base_dir = os.path.dirname(account.source[0]) if account.source else "."
    return {path: resolve(ref, base_dir, account.name, f"spec.{path}", environ, policy)
            for path, ref in secret_refs(account.spec)}
