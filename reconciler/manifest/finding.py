"""Which files are manifests: the PATHS given, and the *.yaml / *.yml below them."""
from __future__ import annotations

import os
from typing import Iterable

from ..errors import ManifestError, MailformError, Problem

SUFFIXES = (".yaml", ".yml")
PROJECT_FILES = ("mailform.yaml", "mailform.yml")    # project.PROJECT_FILES, never a manifest


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


def check_paths(paths: list[str]) -> None:
    """PATHS that are not there, or files given by name that are not manifests: problems
    without a position (there is no line to point at)."""
    problems = [Problem(p, 0, 0, "", "no such file or directory") for p in paths
                if not os.path.exists(p)]
    problems += [Problem(p, 0, 0, "", "not a manifest file: manifests are *.yaml or *.yml "
                         "files") for p in paths
                 if os.path.isfile(p) and not p.endswith(SUFFIXES)]
    if problems:
        raise ManifestError(problems)
