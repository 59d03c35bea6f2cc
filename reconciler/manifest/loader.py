"""Manifests on disk → the desired state, or every problem found on the way."""
from __future__ import annotations

import gc
import hashlib
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Optional

import yaml
from pydantic import ValidationError

from ..errors import ManifestError, Problem
from ..model import (API_VERSION, KINDS, MODELS, BouncePolicy, EmailAccount, Moved, Removed,
                     rule_violations, warnings_for)
from ..model.lazy import AccountStub, Accounts, sort_accounts
from .files import read_manifest as _read
from .finding import check_paths, find_files
from .cached import (NAME_LOC, Counted, DocumentCache, Entry, ReplayedDocument, entry_of,
                     register_stubs)
from . import parallel
from .compact import Compactor
from .messages import _message, _suggest
from .secrets import SecretPolicy, manifests_root
from .template import TemplateFailure, render
from .yamlpos import Document, DuplicateKey, documents, forget_resolved, syntax_problem

MAX_PROBLEMS = 1000     # errors collected in one run, then it stops (SECURITY.md)
WINDOW = 64             # files rendered (and parsed in parallel) a window ahead of registering
_NAME_LOC = NAME_LOC


@dataclass
class Desired:
    """What the manifests declare."""

    accounts: Accounts = field(default_factory=Accounts)   # (or a plain dict: model.lazy)
    policy: Optional[BouncePolicy] = None
    moves: list[Moved] = field(default_factory=list)        # renames (kind Moved)
    removals: list[Removed] = field(default_factory=list)   # let go (kind Removed)
    warnings: list[Problem] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    digest: str = ""
    root: str = ""   # the manifests' root (secrets.manifests_root of the PATHS given)
    lean: bool = False   # validate only: accounts are counted, their models not kept (None)
    record_digests: dict[str, bytes] = field(default_factory=dict)  # from a cache (planner)

    def secret_policy(self, registry_url: Optional[str] = None,
                      environ: Optional[dict] = None) -> SecretPolicy:
        """The runner's secret policy for these manifests: ``{file:}`` inside ``root`` or
        MAILFORM_SECRET_DIRS, never in the registry at ``registry_url``'s folder."""
        return SecretPolicy.from_env(roots=[self.root] if self.root else None,
                                     registry_url=registry_url, environ=environ)


class _FileCheck:
    """Validation of one rendered file's documents, collecting problems."""

    def __init__(self, filename: str, desired: Desired, problems: list[Problem], names: dict,
                 compactor: Optional[Compactor] = None):
        self.filename, self.desired, self.problems, self.names = filename, desired, problems, names
        self.recorded: Optional[list[Entry]] = None     # for a cache: set to a list
        self.replaying = False
        self.compactor = compactor or Compactor()

    def replay(self, entries: list[Entry], kept: bool = True) -> None:
        """Register a clean file's documents as a cache kept them (``kept``), or as a worker
        parsed them: their models shared nothing with other files' yet, so they are
        compacted here with this run's (what 100,000 accounts cost in memory)."""
        self.replaying = kept       # a cache's models were compacted before they were kept
        if kept:
            entries = register_stubs(self, entries)
        for entry in entries:
            self._register(ReplayedDocument(entry), entry.kind, entry.name, entry.model, False,
                           entry.warnings)
        self.note_records(entries)

    def note_records(self, entries: list[Entry]) -> None:
        """The records' digests a cache made (``Entry.record``), for the planner."""
        for entry in entries:
            if entry.record is not None:
                self.desired.record_digests[entry.name] = entry.record

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
        failed = len(self.problems) > errors_before
        if self.recorded is not None and not failed:
            self.recorded.append(entry_of(doc, data, obj))
        meta = data.get("metadata")
        self._register(doc, data["kind"], meta.get("name") if isinstance(meta, dict) else None,
                       obj, failed)

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

    def _register(self, doc: Any, kind: str, name: Any, obj: Any, failed: bool,
                  warnings: Optional[tuple] = None) -> None:
        """A document of ``kind`` and ``metadata.name`` (anything: as written) registered;
        ``warnings``: an account's ``warnings_for``, when a cache kept them."""
        if isinstance(name, str):
            line, col = doc.position(_NAME_LOC)
            key = (kind, name)
            if key in self.names:
                first = self.names[key]
                self.problems.append(Problem(
                    self.filename, line, col, "metadata.name",
                    f"duplicate {kind} name '{name}': first defined at "
                    f"{first[0]}:{first[1]}:{first[2]}"))
                return
            self.names[key] = (self.filename, line, col)
        if failed or obj is None:
            return
        if obj.__class__ is AccountStub or obj.__class__ is Counted:
            # a cache's account (its model unpickled when asked for), or for a lean run
            # a worker's valid account; warnings kept with either
            self._stub(doc, obj)
            for loc, message in warnings or ():
                self.problem(doc, loc, message, severity="warning")
        elif isinstance(obj, EmailAccount):
            self._account(doc, obj)
            for loc, message in warnings if warnings is not None else warnings_for(obj):
                self.problem(doc, loc, message, severity="warning")
        elif isinstance(obj, Moved):
            self.desired.moves.append(obj)
        elif isinstance(obj, Removed):
            self.desired.removals.append(obj)
        elif self.desired.policy is not None:
            self.problem(doc, ("kind",), "only one BouncePolicy may be declared")
        else:
            self.desired.policy = obj

    def _stub(self, doc: Any, stub: Any) -> None:
        if self.desired.lean or stub.__class__ is Counted:
            self.desired.accounts[stub.name] = None
            return
        line, col = doc.position(())
        stub.source = (self.filename, self.compactor.number(line), self.compactor.number(col))
        self.desired.accounts[stub.name] = stub

    def _account(self, doc: Document, obj: EmailAccount) -> None:
        if self.desired.lean:           # validate: counted, not kept (nor placed)
            self.desired.accounts[obj.name] = None
            return
        line, col = doc.position(())
        source = (self.filename, self.compactor.number(line), self.compactor.number(col))
        private = obj.__pydantic_private__
        if self.replaying and private is not None:
            private["_source"] = source     # (played back: with this run's shared numbers)
        else:
            obj._source = source
        self.desired.accounts[obj.name] = obj if self.replaying else self.compactor.compact(obj)


def _rendered(filename: str, root: str, context: dict, limits: Any
              ) -> tuple[Optional[str], list[Problem]]:
    """A manifest's rendered text, or None and what stopped it."""
    found: list[Problem] = []
    text = _read(filename, root, found)
    if text is None:
        return None, found
    try:
        return render(text, filename, context, limits), found
    except TemplateFailure as exc:
        return None, [exc.problem]


class _Files:
    """The files of one run, a window at a time: rendered in order here, parsed in
    workers when there are enough (``parallel``), then registered in order here."""

    def __init__(self, desired: Desired, context: dict, limits: Any,
                 cache: Optional[DocumentCache], pool: Any) -> None:
        self.desired, self.context, self.limits = desired, context, limits
        self.cache, self.pool = cache, pool
        self.problems: list[Problem] = []
        self.names: dict = {}
        self.digest = hashlib.sha256()
        self.compactor = Compactor()       # shared strings across the run's files

    def run(self, files: list[str]) -> None:
        windows = [files[start:start + WINDOW] for start in range(0, len(files), WINDOW)]
        ahead = self._start(windows[0]) if windows else None
        for index in range(len(windows)):
            rendered, hits, parsed = ahead
            # the workers parse the next window while this one is registered here
            ahead = self._start(windows[index + 1]) if index + 1 < len(windows) else None
            for filename, text, found in rendered:
                mine = parsed is not None and text is not None and filename not in hits
                if self._one(filename, text, found, hits.get(filename),
                             next(parsed) if mine else None):
                    return

    def _start(self, window: list[str]) -> tuple[list, dict, Optional[Iterator]]:
        """A window's files rendered (in order, here), its cache hits, and its other clean
        files handed to the workers: their documents come back in order, each as soon as
        it is parsed (registered here meanwhile)."""
        rendered = [(f, *_rendered(f, self.desired.root, self.context, self.limits))
                    for f in window]
        hits = self._hits(rendered)
        todo = [(f, text) for f, text, _ in rendered if text is not None and f not in hits]
        return rendered, hits, self._in_workers(todo)

    def _in_workers(self, todo: list[tuple[str, str]]) -> Optional[Iterator]:
        """Clean files' documents parsed by the workers, in order (None: parsed here)."""
        if self.pool is None or not parallel.worth_it(
                len(todo), sum(len(text) for _, text in todo), 2):
            return None
        lean = self.desired.lean
        return parallel.parse_all([(f, text, lean) for f, text in todo], _parse_clean,
                                  self.pool)

    def _hits(self, rendered: list) -> dict[str, list]:
        if self.cache is None:
            return {}
        found = ((f, self.cache.get(f, text)) for f, text, _ in rendered if text is not None)
        return {f: entries for f, entries in found if entries is not None}

    def _one(self, filename: str, text: Optional[str], found: list[Problem],
             hit: Optional[list], parsed: Optional[list]) -> bool:
        """Register one file; True once the run has collected MAX_PROBLEMS problems."""
        self.problems += found
        if text is not None:
            self.digest.update(filename.encode() + b"\0" + text.encode() + b"\0")
            check = _FileCheck(filename, self.desired, self.problems, self.names,
                               self.compactor)
            self._check(check, text, hit, parsed)
        if len(self.problems) >= MAX_PROBLEMS:
            self.problems[:] = _first_problems(self.problems, filename)
            return True
        return False

    def _check(self, check: _FileCheck, text: str, hit: Optional[list],
               parsed: Optional[list]) -> None:
        if hit is not None or parsed is not None:
            check.replay(hit if hit is not None else parsed, kept=hit is not None)
            if hit is None and self.cache is not None:
                self.cache.put(check.filename, text, parsed, self.compactor.new_shared)
                check.note_records(parsed)
            return
        if self.cache is None:
            _parse(check.filename, text, check)
            return
        check.recorded, before = [], len(check.problems)
        _parse(check.filename, text, check)
        if len(check.problems) == before:
            self.cache.put(check.filename, text, check.recorded, self.compactor.new_shared)
            check.note_records(check.recorded)


def _parse_clean(item: tuple[str, str, bool]) -> Optional[list[Entry]]:
    """In a worker: a rendered file's documents if it has no problem of its own (for a
    lean run, accounts as names with their positions and warnings, no models)."""
    filename, text, lean = item
    check = _FileCheck(filename, Desired(lean=lean), [], {})
    check.recorded = []
    _parse(filename, text, check)
    if check.problems:
        return None
    if lean:
        for entry in check.recorded:
            if isinstance(entry.model, EmailAccount):
                entry.model = Counted(entry.model.name)
    return check.recorded


def _parse(filename: str, text: str, check: _FileCheck) -> None:
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


def _settle_gc(was_enabled: bool) -> None:
    """Turn the collector back on without it first walking every object the load made
    (with it off, they all wait in the youngest generation: at 100,000 accounts a
    second's pass). Unless someone froze objects of theirs, move them to the oldest."""
    if not was_enabled:
        return
    if gc.get_freeze_count() == 0:
        gc.freeze()
        gc.unfreeze()
    gc.enable()


def load(paths: Iterable[str], variables: Optional[dict] = None,
         environment: str = "default", template_limits: Any = None,
         skip: Iterable[str] = (), cache: Optional[DocumentCache] = None,
         lean: bool = False) -> Desired:
    """Render, parse and validate every manifest below ``paths``.

    ``template_limits`` (a ``sandbox.TemplateLimits``) overrides the documented bounds
    of rendering. Raises ManifestError carrying every problem of the run, sorted by file
    and line. ``cache``: clean files' documents kept by rendered text (``cached``).
    ``lean``: only validate — the accounts' models are not kept (``Desired.lean``).
    """
    paths = list(paths)
    check_paths(paths)
    files = find_files(paths, skip)
    desired = Desired(files=files, root=manifests_root(paths), lean=lean)
    if not files:
        raise ManifestError([Problem(p, 0, 0, "", "no manifest files (*.yaml, *.yml) found in "
                                     "this folder or below it") for p in paths])
    context = {"var": variables or {}, "environment": environment}
    workers = parallel.jobs(lean=lean)
    gc_was_enabled = gc.isenabled()
    gc.disable()            # (forked workers inherit it)
    pool = parallel.start_pool(workers) if parallel.worth_it(
        len(files), parallel.size_of(files), workers) and parallel.can_fork() else None
    run = _Files(desired, context, template_limits, cache, pool)
    try:
        run.run(files)
        desired.warnings.sort()      # (with the collector off: at 100,000 accounts a
        if not run.problems:         # collection here would walk every model, thrice)
            desired.accounts = sort_accounts(desired.accounts)
    finally:
        if pool is not None:
            pool.terminate()
        if cache is not None:
            cache.flush()       # the objects its entries share (``workflow.shared_table``)
        forget_resolved()
        _settle_gc(gc_was_enabled)
    desired.digest = "sha256:" + run.digest.hexdigest()
    if run.problems:
        raise ManifestError(run.problems, desired.warnings)
    return desired
