"""Manifests on disk → the desired state, or every problem found on the way."""
from __future__ import annotations

import difflib
import gc
import hashlib
import os
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional

import yaml
from pydantic import ValidationError

from ..errors import ManifestError, MailformError, Problem
from ..model import (API_VERSION, KINDS, MODELS, NAME_PATTERN, BouncePolicy, EmailAccount,
                     Moved, Removed, _submodel,
                     rule_violations, warnings_for)
from .secrets import SecretPolicy, manifests_root, read_regular
from .template import TemplateFailure, render
from .yamlpos import MAX_FILE_BYTES, Document, DuplicateKey, documents, syntax_problem

SUFFIXES = (".yaml", ".yml")
MAX_PROBLEMS = 1000     # errors collected in one run, then it stops (SECURITY.md)
PROJECT_FILES = ("mailform.yaml", "mailform.yml")    # project.PROJECT_FILES, never a manifest


@dataclass
class Desired:
    """What the manifests declare."""

    accounts: dict[str, EmailAccount] = field(default_factory=dict)
    policy: Optional[BouncePolicy] = None
    moves: list[Moved] = field(default_factory=list)        # renames (kind Moved)
    removals: list[Removed] = field(default_factory=list)   # let go (kind Removed)
    warnings: list[Problem] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    digest: str = ""
    root: str = ""   # the manifests' root (secrets.manifests_root of the PATHS given)

    def secret_policy(self, registry_url: Optional[str] = None,
                      environ: Optional[dict] = None) -> SecretPolicy:
        """The runner's secret policy for these manifests: ``{file:}`` inside ``root`` or
        MAILFORM_SECRET_DIRS, never in the registry at ``registry_url``'s folder."""
        return SecretPolicy.from_env(roots=[self.root] if self.root else None,
                                     registry_url=registry_url, environ=environ)


def find_files(paths: Iterable[str], skip: Iterable[str] = ()) -> list[str]:
    """Every *.yaml / *.yml below the paths, recursive and sorted; files given are taken as is.
    Found below a folder, the project file (mailform.yaml) and the files in ``skip`` (var
    files) are not manifests."""
    skipped = {os.path.realpath(f) for f in skip}
    found: list[str] = []
    for path in paths:
        if os.path.isfile(path):
            found.append(path)
        elif os.path.isdir(path):
            batch = []
            for dirpath, dirnames, filenames in os.walk(path):
                dirnames[:] = [d for d in dirnames if not d.startswith(".")]
                batch += [os.path.normpath(os.path.join(dirpath, f)) for f in filenames
                          if f.endswith(SUFFIXES) and f not in PROJECT_FILES
                          and not (skipped and os.path.realpath(os.path.join(dirpath, f))
                                   in skipped)]
            found += sorted(batch)
        else:
            raise MailformError(f"{path}: no such file or directory")
    return list(dict.fromkeys(found))


# Plain-language descriptions of the patterns in the models.
PATTERN_HINTS = {
    NAME_PATTERN: "must be 1-63 lower-case letters, digits and dashes, starting and ending "
                  "with a letter or digit",
    r"^[^\s/@]+$": "must be a host name or address, without spaces, '/' or '@'",
    r"^[A-Za-z_][A-Za-z0-9_]*$": "must be an environment variable name (letters, digits "
                                 "and _, not starting with a digit)",
}


_TYPE_NAMES = {"int_type": "a whole number", "int_parsing": "a whole number",
               "bool_type": "true or false", "bool_parsing": "true or false"}


def _wrong_type(kind: str, value: Any) -> str:
    """`port: "587"`: a quoted number is a string in YAML; say so, and how to write it."""
    wanted = _TYPE_NAMES[kind]
    if isinstance(value, str):
        plain = yaml.safe_load(value) if len(value) < 40 and "\n" not in value else None
        if wanted == "a whole number" and isinstance(plain, int) and not isinstance(plain, bool) \
                or wanted == "true or false" and isinstance(plain, bool):
            return f"must be {wanted}, not the string \"{value}\": write it without quotes"
        return f"must be {wanted}, not the string \"{value[:40]}\""
    return f"must be {wanted}, not {type(value).__name__ if value is not None else 'empty'}"


def _message(err: dict) -> str:
    kind, msg = err["type"], err["msg"]
    if kind in _TYPE_NAMES and "input" in err:
        return _wrong_type(kind, err["input"])
    if kind == "extra_forbidden":
        return f"unknown field '{err['loc'][-1]}'"
    if kind == "missing":
        return "required field is missing"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return "must be a mapping"
    if kind == "string_pattern_mismatch":
        hint = PATTERN_HINTS.get(str((err.get("ctx") or {}).get("pattern")))
        if hint:
            return hint
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
    return msg.replace("Input should be", "must be").replace("String should", "must")


def _suggest(err: dict, doc: Document) -> str:
    """'did you mean' for unknown fields, from the sibling fields the model knows."""
    model = MODELS.get(doc.value.get("kind")) if isinstance(doc.value, dict) else None
    sub: Any = model
    for part in err["loc"][:-1]:
        fields = getattr(sub, "model_fields", {})
        if part not in fields:
            return ""
        sub = _submodel(fields[part].annotation)
    known = list(getattr(sub, "model_fields", {}))
    close = difflib.get_close_matches(str(err["loc"][-1]), known, n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


class _FileCheck:
    """Validation of one rendered file's documents, collecting problems."""

    def __init__(self, filename: str, desired: Desired, problems: list[Problem], names: dict):
        self.filename, self.desired, self.problems, self.names = filename, desired, problems, names

    def problem(self, doc: Document, loc: tuple, message: str, key: bool = False,
                severity: str = "error") -> None:
        line, col = doc.position(loc, key=key)
        path = ".".join(str(p) for p in loc)
        target = self.problems if severity == "error" else self.desired.warnings
        target.append(Problem(self.filename, line, col, path, message, severity))

    def document(self, doc: Document) -> None:
        data = doc.value
        if not isinstance(data, dict):
            self.problem(doc, (), "a manifest document must be a mapping with apiVersion, kind, "
                         "metadata and spec")
            return
        if not self._header_ok(doc, data):
            return
        model = MODELS[data["kind"]]
        errors_before = len(self.problems)
        if data["kind"] == "EmailAccount":
            for loc, message in rule_violations(data):
                self.problem(doc, loc, message)
        try:
            obj = model.model_validate(data)
        except ValidationError as exc:
            for err in exc.errors(include_url=False, include_input=True):
                extra = err["type"] == "extra_forbidden"
                suffix = _suggest(err, doc) if extra else ""
                self.problem(doc, tuple(err["loc"]), _message(err) + suffix, key=extra)
            obj = None
        self._register(doc, data, obj, len(self.problems) > errors_before)

    def _header_ok(self, doc: Document, data: dict) -> bool:
        ok = True
        if data.get("apiVersion") != API_VERSION:
            what = "missing" if "apiVersion" not in data else f"'{data.get('apiVersion')}' is not supported"
            self.problem(doc, ("apiVersion",), f"apiVersion {what}; supported: {API_VERSION}")
            ok = False
        if data.get("kind") not in KINDS:
            what = "missing" if "kind" not in data else f"'{data.get('kind')}' is not supported"
            self.problem(doc, ("kind",), f"kind {what}; supported: {', '.join(KINDS)}")
            ok = False
        return ok

    def _register(self, doc: Document, data: dict, obj: Any, failed: bool) -> None:
        meta = data.get("metadata")
        name = meta.get("name") if isinstance(meta, dict) else None
        if isinstance(name, str):
            line, col = doc.position(("metadata", "name"))
            key = (data["kind"], name)
            if key in self.names:
                first = self.names[key]
                self.problems.append(Problem(
                    self.filename, line, col, "metadata.name",
                    f"duplicate {data['kind']} name '{name}': first defined at "
                    f"{first[0]}:{first[1]}:{first[2]}"))
                return
            self.names[key] = (self.filename, line, col)
        if failed or obj is None:
            return
        if isinstance(obj, EmailAccount):
            line, col = doc.position(())
            obj._source = (self.filename, line, col)
            self.desired.accounts[obj.name] = obj
            for loc, message in warnings_for(obj):
                self.problem(doc, loc, message, severity="warning")
        elif isinstance(obj, Moved):
            self.desired.moves.append(obj)
        elif isinstance(obj, Removed):
            self.desired.removals.append(obj)
        elif self.desired.policy is not None:
            self.problem(doc, ("kind",), "only one BouncePolicy may be declared")
        else:
            self.desired.policy = obj


def _read(filename: str, root: str, problems: list[Problem]) -> Optional[str]:
    """A manifest's text: a regular file (a FIFO or device is refused without blocking)
    that resolves, after symlinks, inside the manifests' root, of at most 16 MiB."""
    real = os.path.realpath(filename)
    if root and not (real == root or real.startswith(root.rstrip(os.sep) + os.sep)):
        problems.append(Problem(filename, 1, 1, "", "resolves (through a symlink) outside the "
                                "manifests' root; it is not read"))
        return None
    try:
        raw = read_regular(real, MAX_FILE_BYTES)
    except OSError as exc:
        problems.append(Problem(filename, 1, 1, "", f"cannot read file: {exc.strerror}"))
        return None
    if len(raw) > MAX_FILE_BYTES:
        problems.append(Problem(filename, 1, 1, "", f"file is larger than "
                                f"{MAX_FILE_BYTES // 2**20} MiB (the limit of a manifest)"))
        return None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        problems.append(Problem(filename, line, 1, "", "file is not valid UTF-8 text"))
        return None


def _load_file(filename: str, context: dict, check: _FileCheck, digest,
               limits: Any = None) -> None:
    text = _read(filename, check.desired.root, check.problems)
    if text is None:
        return
    try:
        text = render(text, filename, context, limits)
    except TemplateFailure as exc:
        check.problems.append(exc.problem)
        return
    digest.update(filename.encode() + b"\0" + text.encode() + b"\0")
    try:
        for doc in documents(text):
            check.document(doc)
            if len(check.problems) >= MAX_PROBLEMS:
                break
    except yaml.MarkedYAMLError as exc:
        check.problems.append(syntax_problem(filename, exc, text))
    except yaml.YAMLError as exc:
        check.problems.append(Problem(filename, 1, 1, "", f"YAML error: {exc}"))
    except DuplicateKey as exc:
        mark, first = exc.second.start_mark, exc.first.start_mark
        check.problems.append(Problem(filename, mark.line + 1, mark.column + 1, exc.path,
                                      f"duplicate key '{exc.key}' (first at line {first.line + 1}, "
                                      f"column {first.column + 1})"))
    except RecursionError:
        check.problems.append(Problem(filename, 1, 1, "", "YAML nesting is too deep"))


def _first_problems(problems: list[Problem], filename: str) -> list[Problem]:
    """The first MAX_PROBLEMS problems found, and one saying the run stopped there (a 16 MiB
    file of empty documents would otherwise collect millions: gigabytes, and as many lines)."""
    return sorted(problems)[:MAX_PROBLEMS] + [Problem(
        filename, 0, 0, "", f"more than {MAX_PROBLEMS} errors: stopped reading here; the "
        "first ones are shown, fix them and run again")]


def document_problems(data: Any) -> list[Problem]:
    """What validation reports for one document given as plain data (positions are those
    of its YAML dump): e.g. a registry record after an operator's edit."""
    problems: list[Problem] = []
    check = _FileCheck("", Desired(), problems, {})
    for doc in documents(yaml.safe_dump(data, sort_keys=False)):
        check.document(doc)
    return problems


def _check_paths(paths: list[str]) -> None:
    """PATHS that are not there, or files given by name that are not manifests: problems
    without a position (there is no line to point at)."""
    problems = [Problem(p, 0, 0, "", "no such file or directory") for p in paths
                if not os.path.exists(p)]
    problems += [Problem(p, 0, 0, "", "not a manifest file: manifests are *.yaml or *.yml "
                         "files") for p in paths
                 if os.path.isfile(p) and not p.endswith(SUFFIXES)]
    if problems:
        raise ManifestError(problems)


def load(paths: Iterable[str], variables: Optional[dict] = None,
         environment: str = "default", template_limits: Any = None,
         skip: Iterable[str] = ()) -> Desired:
    """Render, parse and validate every manifest below ``paths``.

    ``template_limits`` (a ``sandbox.TemplateLimits``) overrides the documented bounds
    of rendering. Raises ManifestError carrying every problem of the run, sorted by file
    and line.
    """
    paths = list(paths)
    _check_paths(paths)
    files = find_files(paths, skip)
    desired = Desired(files=files, root=manifests_root(paths))
    problems: list[Problem] = []
    if not files:
        raise ManifestError([Problem(p, 0, 0, "", "no manifest files (*.yaml, *.yml) found in "
                                     "this folder or below it") for p in paths])
    context = {"var": variables or {}, "environment": environment}
    names: dict = {}
    digest = hashlib.sha256()
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for filename in files:
            _load_file(filename, context, _FileCheck(filename, desired, problems, names), digest,
                       template_limits)
            if len(problems) >= MAX_PROBLEMS:
                problems[:] = _first_problems(problems, filename)
                break
    finally:
        if gc_was_enabled:
            gc.enable()
    desired.digest = "sha256:" + digest.hexdigest()
    desired.warnings.sort()
    if problems:
        raise ManifestError(problems, desired.warnings)
    desired.accounts = dict(sorted(desired.accounts.items()))
    return desired
