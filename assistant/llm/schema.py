"""The one JSON schema the model must answer in, and the check of what it answered.

``{"calls": [{"tool": <const>, "args": {...}}, ...], "reply": "..."}``: each item of
``calls`` is one of the tools (``oneOf``), and every argument that names entities (marked with
``x-entity-ref`` in the tool's pydantic model) is an enum of this request's candidate entity
ids, so a grammar built from it cannot name a device that does not exist or was not shown.
Grammars do not enforce numeric bounds exactly (the worker only bounds their digits), so every
call is validated afterwards with ``SkillRegistry.validate`` as well.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from assistant.messages import ToolCall
from assistant.registry import DeviceRegistry, Entity
from skills.base import (
    ENTITY_REF_KEY,
    SkillRegistry,
    ToolSpec,
    ToolValidationError,
    referenced_entity_ids,
)

MAX_CALLS = 3
REPLY_MAX_CHARS = 160
_NOISE_KEYS = ("title", "description", "default", "examples", "discriminator")
_THINK = re.compile(r"<think>.*?(</think>|$)", re.DOTALL)


class InvalidOutput(ValueError):
    """The model's answer does not fit the schema or the tools; the text says what is wrong."""


@dataclass(frozen=True, slots=True)
class ParsedOutput:
    calls: tuple[ToolCall, ...]
    reply: str | None


def args_schema(spec: ToolSpec) -> dict[str, Any]:
    """The tool's argument schema, self-contained: ``$ref``s inlined, optional = omittable."""
    schema = spec.json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                merged = {**defs[ref.removeprefix("#/$defs/")], **{k: v for k, v in node.items()
                                                                    if k != "$ref"}}
                return resolve(merged)
            variants = node.get("anyOf")
            if isinstance(variants, list):
                # "X or null" for an optional argument: leaving it out says the same, shorter.
                kept = [v for v in variants if v != {"type": "null"}]
                if len(kept) == 1:
                    rest = {k: v for k, v in node.items() if k != "anyOf"}
                    return resolve({**kept[0], **rest})
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    return resolve(schema)


def entity_ref_domains(prop: dict[str, Any]) -> list[str] | None:
    """The domains an entity-naming argument accepts ([] = any), None for other arguments."""
    marker = prop.get(ENTITY_REF_KEY)
    return list(marker) if isinstance(marker, list) else None


def build_output_schema(skills: SkillRegistry, candidates: Sequence[Entity], *,
                        max_calls: int = MAX_CALLS,
                        reply_max_chars: int = REPLY_MAX_CHARS) -> dict[str, Any]:
    """The answer schema for one request; tools with no candidate to act on are left out."""
    id_defs: dict[str, dict[str, Any]] = {}
    variants = []
    for spec in skills.specs():
        args = _grammar_args(args_schema(spec), candidates, id_defs)
        if args is None:
            continue
        variants.append({
            "type": "object",
            "properties": {"tool": {"const": spec.name}, "args": args},
            "required": ["tool", "args"],
            "additionalProperties": False,
        })
    # With nothing to act on, "no calls" must be a constant: llama.cpp's converter turns an
    # item-less array into "any JSON array", whatever maxItems says.
    calls: dict[str, Any] = {"type": "array", "maxItems": max_calls,
                             "items": {"oneOf": variants}} if variants else {"const": []}
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {"calls": calls,
                       "reply": {"type": "string", "maxLength": reply_max_chars}},
        "required": ["calls", "reply"],
        "additionalProperties": False,
    }
    if id_defs:
        schema["$defs"] = id_defs
    return schema


def _grammar_args(schema: dict[str, Any], candidates: Sequence[Entity],
                  id_defs: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """Entity arguments as enums of candidate ids; None when a required one has no candidate."""
    return _with_id_enums(_strip_noise(copy.deepcopy(schema)), candidates, id_defs)


def _with_id_enums(node: dict[str, Any], candidates: Sequence[Entity],
                   id_defs: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """``node`` with every entity-naming value, also inside nested objects, lists and variants
    (a rule's trigger), an enum of candidate ids; None when nothing could fill it."""
    domains = entity_ref_domains(node)
    if domains is not None:
        ids = [e.entity_id for e in candidates if not domains or e.domain in domains]
        if not ids:
            return None
        key = "ids_" + ("_".join(sorted(domains)) or "any")
        id_defs[key] = {"enum": ids}
        ref = {"$ref": f"#/$defs/{key}"}
        if node.get("type") != "array":
            return ref
        # The same id twice is useless; so is a longer list than there are ids.
        return {**{k: v for k, v in node.items() if k != ENTITY_REF_KEY}, "items": ref,
                "maxItems": min(node.get("maxItems", len(ids)), len(ids))}
    if isinstance(node.get("properties"), dict):
        required = set(node.get("required", []))
        properties = {}
        for name, prop in node["properties"].items():
            filled = _with_id_enums(prop, candidates, id_defs)
            if filled is None:
                if name in required:
                    return None
                continue  # an optional argument nothing can fill is left out
            properties[name] = filled
        node = {**node, "properties": properties}
    if isinstance(node.get("items"), dict):
        items = _with_id_enums(node["items"], candidates, id_defs)
        if items is None:
            return None
        node = {**node, "items": items}
    for key in ("oneOf", "anyOf"):
        if isinstance(node.get(key), list):
            variants = [filled for variant in node[key]
                        if (filled := _with_id_enums(variant, candidates, id_defs)) is not None]
            if not variants:
                return None
            node = {**node, key: variants}
    return node


def _strip_noise(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip_noise(v) for k, v in node.items() if k not in _NOISE_KEYS}
    if isinstance(node, list):
        return [_strip_noise(v) for v in node]
    return node


def strip_reasoning(text: str) -> str:
    """Drop ``<think>…</think>`` blocks: reasoning is logged, never said to the user."""
    return _THINK.sub("", text).strip()


def parse_output(text: str, skills: SkillRegistry, registry: DeviceRegistry,
                 shown_ids: Iterable[str]) -> ParsedOutput:
    """The calls and reply in ``text``; raises InvalidOutput naming the first problem."""
    try:
        answer = json.loads(strip_reasoning(text))
    except ValueError as exc:
        raise InvalidOutput(f"the answer is not complete JSON ({exc})") from None
    if not isinstance(answer, dict) or not isinstance(answer.get("calls"), list):
        raise InvalidOutput('the answer must be an object with a "calls" list')
    reply = answer.get("reply")
    if reply is not None and not isinstance(reply, str):
        raise InvalidOutput('"reply" must be a string')
    shown = set(shown_ids)
    calls: list[ToolCall] = []
    for item in answer["calls"]:
        if not isinstance(item, dict) or not isinstance(item.get("tool"), str) \
                or not isinstance(item.get("args"), dict):
            raise InvalidOutput('each call must be {"tool": NAME, "args": {...}}')
        call = ToolCall(item["tool"], _dedupe_entity_lists(item["tool"], item["args"], skills))
        try:
            args = skills.validate(call, registry)
        except ToolValidationError as exc:
            raise InvalidOutput(str(exc)) from None
        wrong = _wrong_domain(call, skills, registry)
        if wrong:
            raise InvalidOutput(f"{call.tool}: {'; '.join(wrong)}")
        unseen = [eid for eid in referenced_entity_ids(args) if eid not in shown]
        if unseen:
            # Only devices the model was shown: their ids came with the user's words.
            raise InvalidOutput(f"{call.tool}: {', '.join(unseen)} is not in the device list")
        if call not in calls:
            calls.append(call)
    reply = strip_reasoning(reply).strip() if reply else ""
    return ParsedOutput(tuple(calls), reply or None)


def _entity_props(tool: str, skills: SkillRegistry) -> dict[str, list[str]]:
    """The tool's entity-naming arguments and the domains each accepts ([] = any)."""
    try:
        properties = skills.spec(tool).json_schema().get("properties", {})
    except ToolValidationError:
        return {}
    return {name: domains for name, prop in properties.items()
            if (domains := entity_ref_domains(prop)) is not None}


def _dedupe_entity_lists(tool: str, args: dict[str, Any],
                         skills: SkillRegistry) -> dict[str, Any]:
    cleaned = dict(args)
    for name in _entity_props(tool, skills):
        if isinstance(cleaned.get(name), list):
            cleaned[name] = list(dict.fromkeys(cleaned[name]))
    return cleaned


def _wrong_domain(call: ToolCall, skills: SkillRegistry, registry: DeviceRegistry) -> list[str]:
    """Ids whose domain the argument does not accept (a grammar prevents this; a server that
    ignores the schema does not)."""
    wrong = []
    for name, domains in _entity_props(call.tool, skills).items():
        value = call.args.get(name)
        for entity_id in value if isinstance(value, list) else [value]:
            entity = registry.get(entity_id) if isinstance(entity_id, str) else None
            if domains and entity is not None and entity.domain not in domains:
                wrong.append(f"{entity_id} is not a {'/'.join(domains)}")
    return wrong
