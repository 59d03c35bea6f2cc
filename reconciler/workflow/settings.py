"""What the project file, the environment variables and the flags decide together.

The project file (``mailform.yaml``) is found by walking up from the working
directory, or named with ``--config FILE``. Paths in it (manifests, var files, a
SQLite registry) are relative to its folder and are given to the rest of mailform
relative to the working directory. The precedence rules themselves are in
``reconciler.project``. Without a project file everything is as before: manifests in
``manifests/``, the registry from ``--registry`` / ``MAILFORM_REGISTRY`` or the
default path, the default guards, every account managed.
"""
from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass
from typing import Mapping, Optional

import yaml
from pydantic import ValidationError

from ..errors import MailformError, ManifestError, Problem
from ..manifest.secrets import DEFAULT_REGISTRY
from ..manifest.yamlpos import DuplicateKey, documents, syntax_problem
from .inputs import Inputs
from ..project import (PROJECT_FILES, REGISTRY_VAR, Limits, Project, ProjectError,
                       RegistryChoice, choose_environment, choose_limits, choose_registry,
                       environment_of)

DEFAULT_REGISTRY_PATH = os.path.join(".mailform", "registry.db")
REGISTRY_URL = re.compile(r"(?:sqlite|postgres(?:ql)?(?:\+psycopg)?)://", re.IGNORECASE)


@dataclass(frozen=True)
class ProjectFile:
    """A project file found (or none: ``path`` None), and where paths in it start."""

    path: Optional[str] = None          # as messages show it: relative to ``cwd``
    project: Optional[Project] = None
    cwd: str = "."
    folder: str = "."                   # the project file's folder (absolute)

    def here(self, path: str) -> str:
        """A path of the project file, relative to the working directory."""
        if os.path.isabs(path) or self.path is None:
            return path
        return os.path.relpath(os.path.join(self.folder, path), self.cwd)

    @property
    def manifests(self) -> tuple[str, ...]:
        return tuple(self.here(p) for p in self.project.spec.manifests) if self.project else ()

    @property
    def ownership(self) -> Optional[str]:
        return self.project.ownership if self.project else None

    @property
    def not_manifests(self) -> tuple[str, ...]:
        """Found under the manifest paths, never loaded: this file, every var file."""
        if self.project is None:
            return ()
        var_files = [f for env in self.project.spec.environments.values() for f in env.var_files]
        return (self.path,) + tuple(self.here(f) for f in var_files)


@dataclass(frozen=True)
class Settings:
    """The environment and what it brings: var files and guard limits."""

    project: ProjectFile
    environment: str
    var_files: tuple[str, ...] = ()
    limits: Limits = Limits()

    def inputs(self, paths=(), var_files=(), var_pairs=()) -> Inputs:
        """PATHS (default: the project's manifests), the environment's var files then
        ``var_files`` (later wins), ``--var`` pairs, and what the project adds."""
        return Inputs(tuple(paths) or self.project.manifests, self.var_files + tuple(var_files),
                      tuple(var_pairs), self.environment, self.project.not_manifests,
                      self.project.ownership, self.limits)


def find_project_file(start: str) -> Optional[str]:
    """mailform.yaml (or .yml) in ``start`` or the nearest folder above it."""
    folder = os.path.abspath(start)
    while True:
        for name in PROJECT_FILES:
            candidate = os.path.join(folder, name)
            if os.path.isfile(candidate):
                return candidate
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent


def open_project(config: Optional[str] = None, cwd: Optional[str] = None) -> ProjectFile:
    """The project file named by ``--config``, else the one found from ``cwd`` up."""
    cwd = os.path.abspath(cwd or os.getcwd())
    named = os.path.join(cwd, config) if config is not None else None
    if named is not None and not os.path.isfile(named):
        raise MailformError(f"{config}: no such project file (--config)")
    found = named or find_project_file(cwd)
    if found is None:
        return ProjectFile(cwd=cwd, folder=cwd)
    shown = os.path.relpath(found, cwd)
    return ProjectFile(shown, read_project(found, shown), cwd, os.path.dirname(found))


def read_project(path: str, shown: Optional[str] = None) -> Project:
    """The project file, validated; every problem with its file:line:column (``shown``:
    the name messages give it)."""
    name = shown or path
    doc = _only_document(path, name)
    try:
        project = Project.model_validate(doc.value)
    except ValidationError as exc:
        raise ManifestError([_problem(name, doc, err) for err in exc.errors()]) from None
    escapes = _escaping_paths(project, os.path.dirname(os.path.abspath(path)))
    if escapes:
        raise ManifestError([Problem(name, *doc.position(loc), ".".join(map(str, loc)),
                                     f"{value}: {OUTSIDE_PROJECT}") for loc, value in escapes])
    return project


OUTSIDE_PROJECT = ("resolves (after symlinks) outside the project file's folder; the project "
                   "file comes with the repository, so its manifests and var files stay in "
                   "it (name others on the command line: PATHS, --var-file)")


def _escaping_paths(project: Project, folder: str) -> list[tuple[tuple, str]]:
    """The manifest and var-file paths of the project file that resolve, after symlinks,
    outside its folder. Anyone who can open a pull request writes the project file, so it
    may not name /etc/…, ~/.kube/config, /dev/stdin or a FIFO as a var file (its values
    would be printed in the plan, or the run would hang), nor widen the manifests' root
    that ``{file:}`` secrets are confined to (SECURITY.md)."""
    real = os.path.realpath(folder)
    named = [(("spec", "manifests", i), p) for i, p in enumerate(project.spec.manifests)]
    named += [(("spec", "environments", env, "var_files", i), p)
              for env, declared in project.spec.environments.items()
              for i, p in enumerate(declared.var_files)]
    return [(loc, p) for loc, p in named
            if not _within(os.path.realpath(os.path.join(folder, p)), real)]


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _only_document(path: str, name: str):
    text = ""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        docs = list(documents(text))
    except OSError as exc:
        raise ManifestError([Problem(name, 0, 0, "", f"cannot read: {exc.strerror}")]) from None
    except yaml.MarkedYAMLError as exc:
        raise ManifestError([syntax_problem(name, exc, text)]) from None
    except (yaml.YAMLError, DuplicateKey, UnicodeDecodeError) as exc:
        raise ManifestError([Problem(name, 1, 1, "", f"not valid YAML: {exc}")]) from None
    if len(docs) != 1:
        raise ManifestError([Problem(name, 1, 1, "", "a project file holds exactly one "
                                     "document: apiVersion mailform/v1, kind Project")])
    return docs[0]


def _problem(path: str, doc, err: dict) -> Problem:
    loc = tuple(err["loc"])
    extra = err["type"] == "extra_forbidden"
    line, column = doc.position(loc, key=extra)
    message = (f"unknown field '{loc[-1]}'" if extra else "required field is missing"
               if err["type"] == "missing" else err["msg"].replace("Input should be", "must be"))
    return Problem(path, line, column, ".".join(str(p) for p in loc), message)


def settings_for(project: ProjectFile, environment_flag: Optional[str],
                 environ: Mapping[str, str], destroy_percent: Optional[float] = None,
                 change_percent: Optional[float] = None) -> Settings:
    """The environment chosen, its var files, and the guards' limits."""
    name = choose_environment(environment_flag, environ, project.project)
    declared = environment_of(project.project, name)
    return Settings(project, name, tuple(project.here(f) for f in declared.var_files),
                    choose_limits(destroy_percent, change_percent, project.project, name))


def registry_for(project: ProjectFile, flag: Optional[str], environment_flag: Optional[str],
                 environ: Mapping[str, str]) -> RegistryChoice:
    """The registry: ``--registry`` > MAILFORM_REGISTRY > the environment's registry > the
    default path (beside the project file, when there is one)."""
    if flag or environ.get(REGISTRY_VAR):
        return choose_registry(flag, environ, None, "")
    name = choose_environment(environment_flag, environ, project.project)
    choice = choose_registry(None, environ, project.project, name)
    declared = environment_of(project.project, name).registry
    if not isinstance(declared, (str, type(None))) and not REGISTRY_URL.match(choice.url or ""):
        # the project file (a pull request) picks the variable: it must hold a registry URL,
        # or any of the runner's variables (a token, a password) would be printed as one
        raise ProjectError(f"environment {name} of the project file: its registry is read "
                           f"from the environment variable {declared.env}, which does not "
                           "hold a registry URL (sqlite:///PATH or postgresql://…); its "
                           "value is not shown")
    if choice.url is None:
        return dataclasses.replace(choice, url=_sqlite_here(project, DEFAULT_REGISTRY_PATH))
    if isinstance(environment_of(project.project, name).registry, str):
        return dataclasses.replace(choice, url=_relative_to_project(project, choice.url))
    return choice


def _relative_to_project(project: ProjectFile, url: str) -> str:
    """A SQLite registry written in the project file: its path from the project's folder."""
    if "://" not in url:
        return _sqlite_here(project, url)
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        return _sqlite_here(project, url[len("sqlite:///"):])
    return url


def _sqlite_here(project: ProjectFile, path: str) -> str:
    if project.path is None and path == DEFAULT_REGISTRY_PATH:
        return DEFAULT_REGISTRY
    return "sqlite:///" + project.here(path)
