"""What a Tasmota device's state messages say about one of its entities, in Home Assistant's
terms. Each reader takes the entity's wire description and the message; a value it cannot
read is left out, so one odd field never hides the rest of a report.

Topics (``stat``/``tele`` as the device's FullTopic builds them):
``stat/<topic>/RESULT`` and ``tele/<topic>/STATE``: ``{"POWER1": "ON", "Dimmer": 50, ...}``;
``stat/<topic>/POWER<n>``: the bare state text; ``tele/<topic>/SENSOR``: readings and
``Shutter<n>`` objects; ``stat/<topic>/STATUS10``: the same under ``StatusSNS``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from device_adapters.wire import brightness_from_wire, mired_kelvin, parse_json_object

Config = dict[str, Any]
STATUS_SENSOR = "StatusSNS"  # what STATUS10 puts the SENSOR readings under


class Payload:
    """One message's text, parsed as a JSON object only when a reader asks, and once."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.unreadable = False  # a reader wanted a JSON object and the text was none

    @cached_property
    def document(self) -> Config:
        """The JSON object, or {} (nothing to read) when the text is not one."""
        try:
            return parse_json_object(self.text)
        except ValueError:
            self.unreadable = True
            return {}


@dataclass(frozen=True, slots=True)
class Update:
    state: str | None = None
    attributes: Config = field(default_factory=dict)


Reader = Callable[[Config, Payload], Update | None]


def _number(value: Any, low: float, high: float) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value if low <= value <= high else None


def _power(wire: Config, document: Config) -> str | None:
    """The output's state from a JSON report: POWER<n>, or POWER for the first output."""
    keys = [wire["power"], f"POWER{wire['index']}"] + (["POWER"] if wire["index"] == 1 else [])
    value = next((document[key] for key in keys if key in document), None)
    return {wire["state_on"]: "on", wire["state_off"]: "off"}.get(value) if isinstance(
        value, str) else None


def read_power_text(wire: Config, payload: Payload) -> Update | None:
    """``stat/<topic>/POWER<n>``: the bare state text."""
    state = {wire["state_on"]: "on", wire["state_off"]: "off"}.get(payload.text)
    return Update(state) if state else None


def read_relay(wire: Config, payload: Payload) -> Update | None:
    state = _power(wire, payload.document)
    return Update(state) if state else None


def read_light(wire: Config, payload: Payload) -> Update | None:
    document = payload.document
    attributes: Config = {}
    if wire.get("light_type"):  # a dimmable light: a relay-light has only its power
        dimmer = _number(document.get(wire["dimmer_state"]), 0, 100)
        if dimmer is not None:
            attributes["brightness"] = brightness_from_wire(dimmer, 100)
        attributes.update(_colors(document))
        mireds = _number(document.get("CT"), 1, 1_000_000)
        if mireds is not None:
            attributes.update(color_temp_kelvin=mired_kelvin(mireds), color_temp=round(mireds))
    state = _power(wire, document)
    return Update(state, attributes) if state or attributes else None


def _colors(document: Config) -> Config:
    """``Color`` ("r,g,b[,cw,ww]" or hex "RRGGBB[CWWW]", SetOption17) and ``HSBColor``."""
    colors: Config = {}
    color = document.get("Color")
    if isinstance(color, str) and len(color) <= 64:
        try:
            channels = ([int(part) for part in color.split(",")] if "," in color else
                        [int(color[n : n + 2], 16) for n in range(0, len(color), 2)])
        except ValueError:
            channels = []
        if len(channels) >= 3 and all(0 <= channel <= 255 for channel in channels[:3]):
            colors["rgb_color"] = channels[:3]
    hsb = document.get("HSBColor")
    if isinstance(hsb, str) and len(hsb) <= 64:
        try:
            hue, saturation, _brightness = (float(part) for part in hsb.split(","))
        except ValueError:
            return colors
        if 0 <= hue <= 360 and 0 <= saturation <= 100:
            colors["hs_color"] = [hue, saturation]
    return colors


def read_shutter(wire: Config, payload: Payload, prefix: tuple[str, ...] = ()) -> Update | None:
    """``Shutter<n>``: {"Position": 0..100, "Direction": -1/0/1, ...}; inverted shutters
    (ShutterInvert) count the other way."""
    shutter = _at(payload.document, [*prefix, f"Shutter{wire['index']}"])
    if not isinstance(shutter, dict):
        return None
    position = _number(shutter.get("Position"), 0, 100)
    direction = _number(shutter.get("Direction"), -1, 1)
    if wire.get("inverted"):
        position = None if position is None else 100 - position
        direction = None if direction is None else -direction
    if position is None and direction is None:
        return None
    attributes = {} if position is None else {"current_position": round(position)}
    if direction:
        return Update("opening" if direction > 0 else "closing", attributes)
    return Update(None if position is None else "closed" if position == 0 else "open",
                  attributes)


def read_sensor(wire: Config, payload: Payload, prefix: tuple[str, ...] = ()) -> Update | None:
    value = _at(payload.document, [*prefix, *wire["value_path"]])
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    if isinstance(value, float) and value != value or value in (float("inf"), float("-inf")):
        return None  # JSON readers accept NaN and Infinity; no reading says them
    return Update(str(value))


def _at(document: Any, path: list[Any]) -> Any:
    for key in path:
        if isinstance(document, dict) and isinstance(key, str):
            document = document.get(key)
        elif isinstance(document, list) and isinstance(key, int) and 0 <= key < len(document):
            document = document[key]
        else:
            return None
    return document
