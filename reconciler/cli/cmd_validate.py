"""`mailform validate` and `mailform schema`."""
from __future__ import annotations

import json
import os

import click

from ..errors import ManifestError
from .options import format_option, load_desired, manifest_options
from .output import plural, print_problems


@click.command()
@manifest_options
@format_option("human", "json")
def validate(paths, var_files, var_pairs, environment, fmt):
    """Parse, render and validate manifests; no registry, no network."""
    try:
        desired = load_desired(paths, var_files, var_pairs, environment, lean=True)
    except ManifestError as exc:
        if fmt == "json":
            click.echo(json.dumps({"valid": False,
                                   "errors": [p.to_dict() for p in exc.problems],
                                   "warnings": [p.to_dict() for p in exc.warnings]}, indent=2))
        else:
            print_problems(exc.problems, exc.warnings)
            click.echo(f"{plural(len(exc.problems), 'error')}: invalid", err=True)
        return 1
    if fmt == "json":
        click.echo(json.dumps({"valid": True, "errors": [],
                               "warnings": [p.to_dict() for p in desired.warnings]}, indent=2))
        return 0
    print_problems([], desired.warnings)
    policies = 1 if desired.policy else 0
    click.echo(f"{plural(len(desired.accounts), 'account')}, "
               f"{plural(policies, 'bounce policy', 'bounce policies')}: valid")
    return 0


@click.command()
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Write mailform.v1.json and mailform-project.v1.json into DIR instead of "
                   "printing one.")
@click.option("--project", "project_file", is_flag=True,
              help="Print the project file's schema (mailform.yaml) instead of a manifest's.")
def schema(out_dir, project_file):
    """Write the JSON Schemas of a manifest document and of the project file."""
    from ..schema import PROJECT_SCHEMA_FILE, SCHEMA_FILE, files
    texts = files()
    if out_dir is None:
        click.echo(texts[PROJECT_SCHEMA_FILE if project_file else SCHEMA_FILE], nl=False)
        return 0
    os.makedirs(out_dir, exist_ok=True)
    for name, text in texts.items():
        path = os.path.join(out_dir, name)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
        click.echo(f"wrote {path}")
    return 0
