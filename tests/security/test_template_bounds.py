"""Bounded templates (SECURITY.md, "Bounded inputs"): every way a template could take the
runner's memory or CPU is a template error at its file and line. Each attack renders in a
forked child that may grow by at most 768 MiB and is killed after 30 s (before these
bounds, ``('a' * 10**8) * 100`` took 24 GB and nested ``range(100000)`` loops ran for
minutes)."""
from __future__ import annotations

import re

import pytest

from boundhelpers import in_child, mailform_limited, no_traceback
from reconciler.manifest.sandbox import (MAX_ITERATIONS, MAX_OUTPUT, MAX_RANGE, MAX_SIZE,
                                         RENDER_SECONDS, TemplateLimits)
from reconciler.manifest.template import TemplateFailure, render

HEAD = "apiVersion: mailform/v1\nkind: EmailAccount\n"   # the attack is on line 3


def _render(source: str, limits=None) -> str:
    try:
        return "rendered " + str(len(render(source, "f.yaml", {"var": {}, "environment": "e"},
                                            limits)))
    except TemplateFailure as exc:
        return str(exc.problem)


ATTACKS = {
    "nested range loops": "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}"
                          "{% endfor %}",
    "nested loops over lists": "{% set r = range(10000)|list %}{% for i in r %}{% for j in r %}"
                               "{% endfor %}{% endfor %}",
    "string repetition": "{{ ('a' * 10**8) * 100 }}",
    "string repetition under the cap, then again": "{{ ('a' * 999999) * 100 }}",
    "list repetition": "{{ [0] * 10**8 }}",
    "a long range": "{{ range(10**6)|list }}",
    "an endless range": "{{ range(10**30) }}",
    "a huge power": "{{ 2 ** (10 ** 10) }}",
    "squaring an integer": "{% set ns = namespace(x=3) %}{% for i in range(64) %}"
                           "{% set ns.x = ns.x * ns.x %}{% endfor %}{{ ns.x }}",
    "a % width": "{{ '%0100000000d' % 1 }}",
    "a format width": "{{ '{:>100000000}'.format(1) }}",
    "the format filter": "{{ '%099999999d'|format(1) }}",
    "a nested format width": "{{ '{:{w}}'.format('x', w=10**8) }}",
    "a * width": "{{ '%*d' % (10**8, 1) }}",
    "center": "{{ 'a'|center(100000000) }}",
    "indent": "{{ ('a\\n' * 500000)|indent(1000) }}",
    "the replace filter": "{{ ('a' * 999999)|replace('a', 'aaaa') }}",
    "str.replace": "{{ ('a' * 999999).replace('a', 'aaaa') }}",
    "str.translate": "{{ ('a' * 999999).translate({97: 'x' * 1000}) }}",
    "str.expandtabs": "{{ ('\\t' * 999999).expandtabs(1000) }}",
    "join": "{{ (range(10000)|list)|join('x' * 999999) }}",
    "nested literals printed": "{% set a = ['x' * 100000] %}{% set b = [a,a,a,a,a,a,a,a,a,a] %}"
                               "{% set c = [b,b,b,b,b,b,b,b,b,b] %}{{ [c,c,c,c,c,c,c,c,c,c] }}",
    "nested literals as a string": "{% set a = ['x' * 100000] %}{% set b = [a,a,a,a,a,a,a,a,a,a] %}"
                                   "{% set c = [b,b,b,b,b,b,b,b,b,b] %}{{ c|string|length }}",
    "doubling with ~": "{% set ns = namespace(s='a') %}{% for i in range(40) %}"
                       "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}",
    "doubling with +": "{% set ns = namespace(s='a') %}{% for i in range(40) %}"
                       "{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s|length }}",
    "doubling in a recursive macro": "{% macro d(s, n) %}{% if n %}{{ d(s ~ s, n - 1) }}"
                                     "{% else %}{{ s|length }}{% endif %}{% endmacro %}"
                                     "{{ d('a', 40) }}",
    "output": "{% for i in range(10000) %}{{ 'a' * 999999 }}{% endfor %}",
    "output kept in a block": "{% set x %}{% for i in range(10000) %}{{ 'a' * 999999 }}"
                              "{% endfor %}{% endset %}{{ x|length }}",
    "sum of lists": "{{ ([[1]] * 100000)|sum(start=[]) }}",
    "endless recursion": "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
    "deep expression": "{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}",
}

FRAGMENTS = {
    "nested range loops": f"loops ran more than {MAX_ITERATIONS} times",
    "nested loops over lists": f"loops ran more than {MAX_ITERATIONS} times",
    "a long range": f"range() of more than {MAX_RANGE} items",
    "an endless range": f"range() of more than {MAX_RANGE} items",
    "output": f"longer than {MAX_OUTPUT} characters",
    "output kept in a block": f"longer than {MAX_OUTPUT} characters",
    "endless recursion": "nested too deeply",
    "deep expression": "nested too deeply",
}


@pytest.mark.parametrize("name", list(ATTACKS))
def test_an_attack_is_a_template_error_at_its_line(name):
    status, message = in_child(_render, HEAD + ATTACKS[name] + "\n")
    assert status == "ok", message
    assert message.startswith("f.yaml:3:1: template error: "), message
    fragment = FRAGMENTS.get(name, "beyond a limit")
    assert fragment in message, message
    if name not in FRAGMENTS:
        assert str(MAX_SIZE) in message or "bits" in message, message


def test_rendering_time_is_bounded():
    slow = ("{% for i in range(10000) %}{% for j in range(99) %}"
            "{{ ('x' * 99999)|replace('x', 'y')|length }}{% endfor %}{% endfor %}")
    status, message = in_child(_render, HEAD + slow, TemplateLimits(seconds=0.5))
    assert status == "ok"
    assert message.startswith("f.yaml:3:1:") and "longer than 0.5 s" in message


def test_the_documented_defaults():
    limits = TemplateLimits()
    assert (limits.range, limits.size, limits.iterations, limits.output, limits.seconds) == (
        MAX_RANGE, MAX_SIZE, MAX_ITERATIONS, MAX_OUTPUT, RENDER_SECONDS) == (
        10_000, 1_000_000, 1_000_000, 16 * 2**20, 10.0)


@pytest.mark.parametrize("source", [
    "{{ ''.__class__.__mro__ }}", "{{ [].append(1) }}", "{{ {}.update(a=1) }}",
    "{{ lipsum(10**6) }}", "{{ 'a'|wordwrap(1) }}", "{{ 'x'|urlize }}",
    "{% include '/etc/passwd' %}", "{{ cycler.__init__.__globals__ }}",
])
def test_the_sandbox_still_refuses(source):
    message = _render(HEAD + source + "\n")
    assert re.match(r"f\.yaml:3:\d+: template", message), message


def test_ordinary_templates_render_as_before():
    source = ("a: {{ var.x | default('d') }}\n"
              "{% for i in range(3) %}- {{ i ~ '!' }} {{ loop.index }}/{{ loop.length }}\n"
              "{% else %}none\n{% endfor %}"
              "{% macro m(n) %}{{ n * 2 }}{% endmacro %}b: {{ m(21) }}\n"
              "c: {{ '%03d' % 7 }} {{ '{:>4}'.format('x') }} {{ 'a,b'|replace(',', ';') }}\n"
              "d: {{ [1, 2] + [3] }} {{ ['x', 'y']|join('-') }} {{ 2 ** 10 }} {{ 'ab' * 2 }}\n")
    out = render(source, "f.yaml", {"var": {}, "environment": "e"})
    assert out == ("a: d\n- 0! 1/3\n- 1! 2/3\n- 2! 3/3\nb: 42\n"
                   "c: 007    x a;b\nd: [1, 2, 3] x-y 1024 abab\n")


def test_validate_reports_a_template_attack_under_a_memory_limit(tmp_path):
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "a.yaml").write_text(HEAD + ATTACKS["string repetition"] + "\n")
    result = mailform_limited(["validate"], cwd=tmp_path)
    assert result.returncode == 1 and no_traceback(result.stdout + result.stderr)
    assert "manifests/a.yaml:3:1: template error: beyond a limit" in result.stdout + result.stderr


def test_large_numbers_are_values_where_they_are_not_sizes():
    source = ("{% macro m(n) %}{{ n }}{% endmacro %}{{ m(987654321) }} {{ '{}'.format(12345678) }}"
              " {{ '%d' % 123456789 }} {{ 5 | default(99999999) }} {{ 2 ** 64 }}")
    assert render(source, "f.yaml", {}) == ("987654321 12345678 123456789 5 "
                                            "18446744073709551616")
