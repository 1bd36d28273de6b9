"""Device templates in Jinja's sandbox: Home Assistant's forms, and the budgets that stop a
hostile template (loops, doubling, huge strings) without threads."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from assistant import templating as templates
from assistant.templating import (
    MAX_SIZE,
    TemplateRenderError,
    UnsupportedTemplateError,
    render_template,
    value_variables,
)


def render(template: str, payload: str = "") -> str:
    return render_template(template, value_variables(payload))


# -- Home Assistant's forms -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "payload", "expected"),
    [
        ("{{ value | float(0) }}", "n/a", "0"),
        ("{{ value | float(0) }}", "21.5", "21.5"),
        ("{{ value | int(-1) }}", "", "-1"),
        ("{{ value | int(0) }}", "0x1f", "0"),  # base 10 unless told
        ("{{ value | int(0, 16) }}", "0x1f", "31"),
        ("{{ value_json.t | round(1, 'ceil') }}", '{"t": 20.21}', "20.3"),
        ("{{ value_json.t | round(0, 'half') }}", '{"t": 20.3}', "20"),
        ("{{ value_json.t | round(default='x') }}", '{"t": "warm"}', "x"),
        ("{{ (value | from_json).a }}", '{"a": 5}', "5"),
        ("{{ value_json | to_json }}", '{"a": "é"}', '{"a": "\\u00e9"}'),
        ("{{ value_json.a | is_defined }}", '{"a": 1}', "1"),
        ("{{ iif(value_json.on, 'ON', 'OFF') }}", '{"on": true}', "ON"),
        ("{{ value_json.on | iif('ON', 'OFF') }}", '{"on": false}', "OFF"),
        ("{{ iif(value_json.on, 'ON', 'OFF', 'unknown') }}", '{"on": null}', "unknown"),
        ("{{ value_json.x | default('none') }}", "{}", "none"),
        ("{{ 'ON' if value_json.state == 'on' else 'OFF' }}", '{"state": "on"}', "ON"),
        ("{{ 'yes' if value_json.missing else 'no' }}", "{}", "no"),  # undefined is false
        ("{{ 'json' if value_json is defined else 'text' }}", "plain", "text"),
        ("{{ value | lower }}/{{ value | upper }}", "MiX", "mix/MIX"),
        ("{{ value_json.v | map('string') | join(',') }}", '{"v": [1, 2]}', "1,2"),
        ("{% for x in value_json %}{{ x }}{% endfor %}", "[1, 2, 3]", "123"),
        ("{% set t = value_json.t * 2 %}{{ t }}", '{"t": 4}', "8"),
        ("{{ value_json.get('a', 'none') }}", "{}", "none"),
        ("{{ value.split(',')[1] }}", "1,2", "2"),
        ("{{ value_json.on | bool }}", '{"on": "yes"}', "True"),
        ("{{ value is is_number }} {{ is_number('x') }}", "1.5", "True False"),
        ("  {{ value }}  \n", "ON", "ON"),  # stripped, as Home Assistant does
    ],
)
def test_home_assistant_template_forms(template: str, payload: str, expected: str) -> None:
    assert render(template, payload) == expected


@pytest.mark.parametrize(
    ("template", "payload"),
    [
        ("{{ value | float }}", "warm"),  # no default: fails, as in Home Assistant
        ("{{ value | int }}", "n/a"),
        ("{{ value_json.x | float }}", "{}"),
        ("{{ value_json.x | is_defined }}", "{}"),
        ("{{ value_json.x }}", "not json"),  # value_json is undefined
        ("{{ value_json.x.y }}", '{"x": 1}'),
        ("{{ value | from_json }}", "not json"),
        ("{{ value_json.t | bool }}", '{"t": "maybe"}'),
    ],
)
def test_template_failures_on_a_payload(template: str, payload: str) -> None:
    with pytest.raises(TemplateRenderError):
        render(template, payload)


def test_command_variables_are_offered_only_where_given() -> None:
    assert render_template("{{ red }},{{ green }}", {"value": "", "red": 1, "green": 2}) == "1,2"
    with pytest.raises(UnsupportedTemplateError):
        render_template("{{ red }}", {"value": "x"})


def test_each_template_is_compiled_once() -> None:
    template = "{{ value_json.cached_once | float(0) }}"
    render(template, '{"cached_once": 1}')
    before = templates.compile_template.cache_info()
    for n in range(50):
        assert render(template, json.dumps({"cached_once": n})) == str(float(n))
    after = templates.compile_template.cache_info()
    assert after.hits - before.hits == 50 and after.misses == before.misses


def test_rendering_is_fast() -> None:
    template = "{{ (value_json.temperature | float(0)) | round(1) }}"
    started = time.perf_counter()
    for n in range(2000):
        render(template, f'{{"temperature": {n}.26, "humidity": 40}}')
    assert time.perf_counter() - started < 2.0  # about 20 µs each; 0.1 s on this machine


# -- what a hostile template cannot do --------------------------------------------------------


@pytest.mark.parametrize(
    "template",
    [
        "{{ value.__class__.__mro__ }}",
        "{{ value_json.__class__ }}",
        "{{ value.format(1) }}",
        "{{ '{:>100000000}'.format(1) }}",
        "{{ value.center(100000000) }}",
        "{{ value.zfill(100000000) }}",
        "{{ cycler }}{{ namespace() }}",
        "{{ lipsum() }}",
        "{{ value | indent(100000000) }}",
        "{{ value | format(1) }}",
        "{% filter upper %}{{ value }}{% endfilter %}",
        "{% set x %}{{ value }}{% endset %}{{ x }}",
        "{% for x in [value] recursive %}{{ loop([x]) }}{% endfor %}",
        "{% include 'x' %}",
        "x" * (templates.MAX_TEMPLATE_CHARS + 1),
    ],
)
def test_what_is_not_offered_is_refused(template: str) -> None:
    with pytest.raises(UnsupportedTemplateError):
        render(template, "abc")


@pytest.mark.parametrize(
    "template",
    [
        # loops that would run (nearly) forever
        "{% for a in range(1000) %}{% for b in range(1000) %}{% endfor %}{% endfor %}",
        "{% for a in range(100000000) %}{% endfor %}",
        "{% for a in value %}{% for b in value %}{% for c in value %}{% endfor %}{% endfor %}"
        "{% endfor %}",
        # values that would grow to gigabytes
        "{{ value * 100000000 }}",
        "{{ [value] * 100000000 }}",
        "{{ 'x' * 1000000 }}",
        "{{ 10 ** 100000000 }}",
        "{{ '%100000000d' % 1 }}",
        "{{ '%.100000000f' % 1 }}",
        "{{ value | replace('', value) }}",
        "{{ range(999) | join(value) }}",
        "{% set s = value ~ value %}" + "{% set s = s ~ s %}" * 40 + "{{ s | length }}",
        "{% set s = [value, value] %}" + "{% set s = [s, s] %}" * 40 + "{{ s | length }}",
        "{% set s = [value] %}" + "{% set s = s + s %}" * 40 + "{{ s | length }}",
        "{% for i in range(1000) %}{{ value }}{% endfor %}",
        "{% set s = [[1]] * 1000 %}{{ s | sum(start=[]) | length }}",
    ],
)
def test_budgets_stop_a_hostile_template(template: str) -> None:
    started = time.perf_counter()
    with pytest.raises(TemplateRenderError):
        render(template, "x" * 4096)
    assert time.perf_counter() - started < 2.0


def test_the_same_growth_within_the_budget_renders() -> None:
    # a right answer beside each hostile form above: small loops, copies and joins work
    assert render("{% for a in range(3) %}{% for b in range(2) %}.{% endfor %}{% endfor %}") == (
        "......")
    assert render("{% set s = value ~ value %}{% set s = s ~ s %}{{ s }}", "ab") == "abababab"
    assert render("{{ value * 3 }}|{{ range(3) | join(value) }}", "-") == "---|0-1-2"
    assert render("{{ value | replace('', '.') }}", "ab") == ".a.b."
    assert len(render("{{ 'x' * size }}".replace("size", str(MAX_SIZE)))) == MAX_SIZE


def test_a_template_out_of_cpu_time_is_refused_from_then_on() -> None:
    payload = json.dumps(list(range(20_000)))
    template = "{% for i in range(1000) %}{{ value_json | length }}{% endfor %}"  # ~20 s
    started = time.perf_counter()
    with pytest.raises(TemplateRenderError, match="CPU time"):
        render(template, payload)
    assert time.perf_counter() - started < 2.0
    with pytest.raises(TemplateRenderError, match="once ran out"):
        render(template, "[]")  # cheap now, but refused: it will not cost the time again
    assert render(template.replace("1000", "2"), "[]") == "00"


def test_oversized_output_is_cut() -> None:
    with pytest.raises(TemplateRenderError):
        render("{% for i in range(100) %}{{ value }}{% endfor %}", "x" * (MAX_SIZE // 50))
    assert len(render("{% for i in range(10) %}{{ value }}{% endfor %}", "x" * 100)) == 1000


@pytest.mark.parametrize("payload", ["[" * 5000 + "]" * 5000, '{"a":' * 3000 + "1" + "}" * 3000])
def test_deep_payloads_are_just_text(payload: str) -> None:
    variables: dict[str, Any] = value_variables(payload)
    assert "value_json" not in variables  # too deep for json: the template sees plain text
    assert render_template("{{ value | length }}", variables) == str(len(payload))
