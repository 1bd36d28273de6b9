"""What devices may bring into the hub: the limits, and device text and values as plain data.

Whatever a device says (names, states, media titles, effect lists, attributes) can reach
replies, prompts, logs, TTS and STT hotwords. It enters as bounded single-line text without
control characters, in bounded lists and objects; a device that sends more is cut to the
limits, which are configurable (``adapters.limits``).
"""

from __future__ import annotations

import json
import math
import re
from itertools import islice
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# C0/C1 controls, line and paragraph separators, bidirectional overrides, zero-width marks,
# and lone surrogates (JSON can escape them; they cannot be stored or encoded as UTF-8).
_CONTROL_CHARACTERS = re.compile(
    "[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u2069\ufeff"
    "\ud800-\udfff]"
)
_MAX_DEPTH = 4  # nesting kept in an attribute value: {"wifi": {"rssi": -60}} and a bit more
_INT_BOUND = 2**63  # what SQLite, JSON readers and prompts treat as a plain number


class DeviceLimits(BaseModel):
    """Bounds on what devices may send; the defaults fit real devices with room to spare."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Device-based discovery configs of real devices reach tens of kilobytes.
    max_config_bytes: int = Field(256 * 1024, ge=1024)
    max_state_bytes: int = Field(64 * 1024, ge=256)  # state, attribute, availability payloads
    # A bridge's list of all its devices with their definitions (Zigbee2MQTT's bridge/devices
    # takes about 7 KB a device).
    max_device_list_bytes: int = Field(4 * 1024 * 1024, ge=16 * 1024)
    max_entities_per_source: int = Field(5000, ge=1)  # per adapter
    max_areas: int = Field(500, ge=1)  # areas devices may create with their suggested_area
    max_aliases: int = Field(20, ge=1)  # per entity, besides the ones the config file adds
    max_attributes: int = Field(100, ge=1)  # per entity
    max_text_chars: int = Field(255, ge=16)  # one device string: a state, title, list item...
    max_value_chars: int = Field(4096, ge=64)  # JSON size of one list or object attribute
    max_list_items: int = Field(100, ge=1)  # effect lists, modes, lists inside attributes


def clean_text(value: Any, limit: int) -> str | None:
    """Device text as plain data: a bounded single line without control characters, or None."""
    if type(value) is str and len(value) <= limit and value.isprintable():
        return value.strip() or None  # most device text, on every state message: as it is
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return None
    head = value[: limit * 4]
    # Printable text holds none of those characters: skip the pattern (most device text).
    text = (head if head.isprintable() else _CONTROL_CHARACTERS.sub(" ", head)).strip()
    text = text[:limit].strip()
    return text or None


def bounded_text_list(values: list[Any], limits: DeviceLimits) -> list[str]:
    """A device's list of names (modes, effects): clean, unique, at most ``max_list_items``."""
    cleaned = (clean_text(value, limits.max_text_chars) for value in values)
    return list(dict.fromkeys(text for text in cleaned if text))[: limits.max_list_items]


def bounded_value(value: Any, limits: DeviceLimits, depth: int = 0) -> Any:
    """A device value as plain bounded data; None for what cannot be kept."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if -_INT_BOUND < value < _INT_BOUND else None
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return clean_text(value, limits.max_text_chars)
    if depth >= _MAX_DEPTH:
        return None
    if isinstance(value, list | tuple):
        return [bounded_value(item, limits, depth + 1) for item in value[: limits.max_list_items]]
    if isinstance(value, dict):
        bounded = {}
        for key, item in islice(value.items(), limits.max_list_items):
            name = clean_text(key, limits.max_text_chars)
            if name is not None:
                bounded[name] = bounded_value(item, limits, depth + 1)
        return bounded
    return None


def bounded_attributes(attributes: dict[str, Any], limits: DeviceLimits) -> dict[str, Any]:
    """Attributes from one device message: at most ``max_attributes``, each value bounded
    and a list or object value no larger than ``max_value_chars`` as JSON (else dropped)."""
    bounded: dict[str, Any] = {}
    for key, value in islice(attributes.items(), limits.max_attributes):
        name = clean_text(key, limits.max_text_chars)
        kept = bounded_value(value, limits)
        if name is None or (
            isinstance(kept, list | dict) and len(json.dumps(kept)) > limits.max_value_chars
        ):
            continue
        bounded[name] = kept
    return bounded
