"""Rule files as YAML (with ``!input``), and blueprints: ``use_blueprint`` filled in.

A blueprint is an automation with a ``blueprint:`` block declaring its inputs (name,
description, default, selector; HA's input sections are read too) and ``!input name``
wherever a value comes from the user. ``fill_blueprint`` replaces each ``!input`` with the
input given, else its default; an input without either, or one given that the blueprint does
not declare, is an error naming it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from assistant.rules.schema import RuleError, RuleErrors, shown
from assistant.rules.schema_values import MAX_DEPTH, deeper_than

MAX_NODES = 100_000  # values in one file, an alias counted each time it is used


@dataclass(frozen=True, slots=True)
class Input:
    """``!input name`` as read from a blueprint."""

    name: str


class _RuleLoader(yaml.SafeLoader):
    """YAML 1.1 as Home Assistant reads it, plus its ``!input`` tag; a key written twice in
    one mapping is an error (YAML would keep the last one silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[str] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.value != "<<":
                if key_node.value in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"the key {key_node.value!r} is given twice",
                        key_node.start_mark)
                seen.add(key_node.value)
        return super().construct_mapping(node, deep=deep)


def _input(loader: _RuleLoader, node: yaml.Node) -> Input:
    if not isinstance(node, yaml.ScalarNode) or not str(node.value).strip():
        raise yaml.constructor.ConstructorError(None, None, "!input needs an input name",
                                                node.start_mark)
    return Input(str(node.value).strip())


def _refused(why: str) -> Any:
    def refuse(loader: _RuleLoader, node: yaml.Node) -> Any:
        raise yaml.constructor.ConstructorError(None, None, why, node.start_mark)

    return refuse


_RuleLoader.add_constructor("!input", _input)
_RuleLoader.add_constructor("!secret", _refused(
    "!secret is not supported: rule files hold no secrets here; write the value"))
for _tag in ("!include", "!include_dir_list", "!include_dir_merge_list",
             "!include_dir_named", "!include_dir_merge_named", "!env_var"):
    _RuleLoader.add_constructor(_tag, _refused(
        f"{_tag} is not supported: put the rules in the rules directory, one file each"))


def _count_nodes(value: Any) -> int:
    """Values in ``value``, stopping just past :data:`MAX_NODES` (aliases count each use, so
    a "billion laughs" file is refused, not expanded)."""
    count, pending = 0, [value]
    while pending and count <= MAX_NODES:
        item = pending.pop()
        count += 1
        if isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return count


def read_yaml(text: str, file: Path | None = None) -> Any:
    """The YAML in ``text`` (``!input`` kept as :class:`Input`), or a :class:`RuleError`."""
    try:
        value = yaml.load(text, Loader=_RuleLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise RuleError(file, "", "", f"not valid YAML: {where}"
                        f"{error.problem or error.context}") from None
    except (yaml.YAMLError, RecursionError) as error:
        raise RuleError(file, "", "", f"not valid YAML: {str(error)[:200]}") from None
    if _count_nodes(value) > MAX_NODES:
        raise RuleError(file, "", "", f"holds more than {MAX_NODES} values")
    if deeper_than(value, MAX_DEPTH + 2):  # a file's list and a blueprint's use around a rule
        raise RuleError(file, "", "", f"is nested more than {MAX_DEPTH} levels deep")
    return value


def declared_inputs(blueprint: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """Input name → its definition (sections flattened)."""
    inputs = blueprint.get("input") or {}
    declared: dict[str, Mapping[str, Any]] = {}
    if not isinstance(inputs, dict):
        return declared
    for name, definition in inputs.items():
        definition = definition if isinstance(definition, dict) else {}
        section = definition.get("input")
        if isinstance(section, dict):  # an input section groups inputs
            declared.update(declared_inputs(definition))
        else:
            declared[str(name)] = definition
    return declared


def _filled(value: Any, values: Mapping[str, Any], missing: list[str]) -> Any:
    if isinstance(value, Input):
        if value.name in values:
            return values[value.name]
        if value.name not in missing:
            missing.append(value.name)
        return None
    if isinstance(value, dict):
        return {key: _filled(item, values, missing) for key, item in value.items()}
    if isinstance(value, list):
        return [_filled(item, values, missing) for item in value]
    return value


def fill_blueprint(blueprint_yaml: Mapping[str, Any], inputs: Mapping[str, Any] | None = None,
                   *, file: Path | None = None, rule: str = "") -> dict[str, Any]:
    """The automation in ``blueprint_yaml`` (a blueprint file as :func:`read_yaml` gives it)
    with every ``!input`` filled from ``inputs`` or the input's default. Raises
    :class:`RuleErrors` naming each input that is missing, undeclared or wrong."""
    inputs = dict(inputs or {})
    header = blueprint_yaml.get("blueprint")
    if not isinstance(header, dict):
        raise RuleErrors((RuleError(file, rule, "blueprint", "is not a blueprint "
                                    "(a mapping with name, domain and input)"),))
    errors = []
    if header.get("domain", "automation") != "automation":
        errors.append(RuleError(file, rule, "blueprint.domain",
                                f"{shown(header.get('domain'))}: only automation blueprints "
                                "are rules"))
    declared = declared_inputs(header)
    for name in inputs:
        if name not in declared:
            errors.append(RuleError(file, rule, f"use_blueprint.input.{name}",
                                    f"the blueprint declares no input {name!r} (it has: "
                                    f"{', '.join(declared) or 'none'})"))
    values = {name: definition["default"] for name, definition in declared.items()
              if "default" in definition}
    values.update({name: value for name, value in inputs.items() if name in declared})
    missing: list[str] = []
    automation = _filled({key: value for key, value in blueprint_yaml.items()
                          if key != "blueprint"}, values, missing)
    for name in missing:
        why = "is not declared by the blueprint" if name not in declared else \
            "is not given and has no default"
        errors.append(RuleError(file, rule, f"use_blueprint.input.{name}", why))
    if errors:
        raise RuleErrors(tuple(errors))
    return automation


__all__ = ["MAX_NODES", "Input", "declared_inputs", "fill_blueprint", "read_yaml"]
