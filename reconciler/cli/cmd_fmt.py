"""`mailform fmt`: rewrite manifests in the canonical layout, or `--check` them."""
from __future__ import annotations

import click

from .options import DEFAULT_PATHS, manifest_options
from .output import plural, print_problems


@click.command("fmt")
@manifest_options
@click.option("--check", is_flag=True,
              help="Change nothing; exit 1 and name the files that would be reformatted.")
def fmt(paths, var_files, var_pairs, environment, check):
    """Canonical indentation and key order; comments and quoting kept.

    Templated files keep every {{ }}, {% %} and {# #} byte for byte; where {% %}
    tags enclose YAML lines, the lines keep their order. A template whose YAML
    cannot be read with its tags set aside is skipped with the reason. The
    template options are accepted and ignored.
    """
    from ..manifest import find_files
    from ..manifest.fmt import format_file

    results = [format_file(path, write=not check) for path in find_files(paths or DEFAULT_PATHS)]
    for result in results:
        if result.status == "skipped":
            click.echo(f"skipped {result.path}: {result.note}", err=True)
        elif result.status == "changed":
            click.echo(f"would reformat {result.path}" if check else f"reformatted {result.path}")
    problems = [r.problem for r in results if r.status == "error"]
    print_problems(sorted(problems))
    changed = sum(r.status == "changed" for r in results)
    counts = [plural(changed, "file") + (" would be reformatted" if check else " reformatted"),
              f"{sum(r.status == 'unchanged' for r in results)} unchanged"]
    skipped = sum(r.status == "skipped" for r in results)
    if skipped:
        counts.append(f"{skipped} skipped")
    if problems:
        counts.append(plural(len(problems), "error"))
    click.echo(", ".join(counts) + ".", err=True)
    return 1 if problems or (check and changed) else 0
