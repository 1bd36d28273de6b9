"""Conversions every protocol shares: brightness scales, percentages of a range, mireds and
kelvin, colours, JSON objects and exact topics. Used by every adapter and by the simulator,
so a value means the same on every wire."""

from __future__ import annotations

import json
import math
from typing import Any

PAYLOAD_NONE = "None"  # Home Assistant's payload for "state unknown"
MAX_TOPIC_BYTES = 65535  # MQTT's limit


def ranged_to_percentage(low: float, high: float, value: float) -> int:
    """Home Assistant's ranged_value_to_percentage: ``low..high`` onto 1..100."""
    return int((value - (low - 1)) * 100 // (high - low + 1))


def percentage_to_ranged(low: float, high: float, percentage: float) -> float:
    """Home Assistant's percentage_to_ranged_value: 1..100 onto ``low..high``."""
    return (high - low + 1) * percentage / 100 + (low - 1)


def clamp(value: float, low: float, high: float) -> float:
    return min(max(value, low), high)


def brightness_from_wire(value: float, scale: float) -> int:
    """A device's 0..``scale`` brightness as Home Assistant's 0..255."""
    return int(clamp(round(value / scale * 255), 0, 255))


def brightness_to_wire(brightness: float, scale: int) -> int:
    """Home Assistant's 0..255 brightness on a device's 1..``scale``; never rounded down to
    0, which would read as off."""
    return int(clamp(round(brightness / 255 * scale), 1, scale))


def mired_kelvin(value: float) -> int:
    """Mireds to kelvin and back: the same reciprocal, floored like Home Assistant."""
    return math.floor(1_000_000 / value)


def scale_rgb(rgb: tuple[int, int, int], brightness: float) -> tuple[int, ...]:
    """An RGB colour dimmed to ``brightness`` (0..255), as lights without a brightness
    channel take it."""
    return tuple(round(channel * brightness / 255) for channel in rgb)


def parse_json_object(text: str | bytes) -> dict[str, Any]:
    """A JSON object from the wire; ValueError for anything else, or for one that cannot be
    stored (a lone UTF-16 surrogate escape)."""
    document = json.loads(text)
    if not isinstance(document, dict):
        raise ValueError("the payload is not a JSON object")
    if text.isascii() and ("\\u" if isinstance(text, str) else b"\\u") not in text:
        return document  # no escape and no raw character can hold a surrogate
    try:
        json.dumps(document, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("the payload holds an unpaired UTF-16 surrogate") from None
    return document


def is_exact_topic(value: Any) -> bool:
    """One exact topic: no filter wildcard, no NUL, some non-empty level, within MQTT's size."""
    if not isinstance(value, str) or not value.strip("/") or any(c in value for c in "+#\x00"):
        return False
    try:
        return len(value.encode("utf-8")) <= MAX_TOPIC_BYTES
    except UnicodeEncodeError:  # a lone surrogate from JSON
        return False


def is_topic_level(value: Any) -> bool:
    """One level a device may put into a topic (a name, an id): no "/", no wildcard."""
    return isinstance(value, str) and "/" not in value and is_exact_topic(value)
