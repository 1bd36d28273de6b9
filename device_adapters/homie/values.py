"""Homie payloads and formats: what a property's datatype and format allow, read strictly.

The convention says a value that is not valid for its property is not a value: it is
ignored, never guessed at. Formats are checked when a description is read, so a property
whose format is illegal is ignored as a whole (the convention's forward-compatibility rule).
"""

from __future__ import annotations

import colorsys
import json
import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

DATATYPES = frozenset({"integer", "float", "boolean", "string", "enum", "color", "datetime",
                       "duration", "json"})
V4_DATATYPES = frozenset({"integer", "float", "boolean", "string", "enum", "color"})
COLOR_FORMATS = ("rgb", "hsv", "xyz")
EMPTY_STRING = "\x00"  # MQTT cannot carry an empty retained value; Homie sends one NUL byte

_INTEGER = re.compile(r"-?[0-9]+")
# Digits, one ".", an exponent and "-" only: no "+", spaces, "nan" or "inf".
_FLOAT = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE]-?[0-9]+)?")
_DURATION = re.compile(r"PT(?=[0-9.])(?:[0-9]+H)?(?:[0-9]+M)?(?:[0-9]+(?:\.[0-9]+)?S)?")
INT64 = 2**63  # Homie integers are 64-bit signed
# Each channel's range in a color payload: rgb 0..255, hsv 360/100/100, xyz two of 0..1.
_COLOR_RANGES = {"rgb": (255, 255, 255), "hsv": (360, 100, 100), "xyz": (1, 1)}


class FormatError(ValueError):
    """A property format the convention does not allow for its datatype."""


@dataclass(frozen=True, slots=True)
class NumberRange:
    low: float | None = None
    high: float | None = None
    step: float | None = None

    def holds(self, value: float) -> bool:
        return (self.low is None or value >= self.low) and (self.high is None or value <= self.high)

    def snap(self, value: float) -> float:
        """``value`` rounded to the nearest step, counted from min, else max (the
        convention's rule: the range is checked after rounding)."""
        if not self.step:
            return value
        base = self.low if self.low is not None else self.high or 0
        return base + round((value - base) / self.step) * self.step


@dataclass(frozen=True, slots=True)
class Color:
    kind: str  # "rgb", "hsv" or "xyz"
    channels: tuple[float, ...]


def parse_number(text: str, integer: bool) -> int | float | None:
    if integer:
        if not _INTEGER.fullmatch(text):
            return None
        value = int(text)
        return value if -INT64 <= value < INT64 else None
    if not _FLOAT.fullmatch(text):
        return None
    number = float(text)
    return number if math.isfinite(number) else None


def parse_range(text: str | None, integer: bool) -> NumberRange:
    """``[min]:[max][:step]``; absent or ``":"`` is open-ended."""
    if text is None:
        return NumberRange()
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise FormatError(f"{text!r} is not [min]:[max][:step]")
    bounds = [parse_number(part, integer) if part else None for part in parts]
    if any(part and bound is None for part, bound in zip(parts, bounds, strict=True)):
        raise FormatError(f"{text!r} holds something that is not a number")
    low, high = bounds[0], bounds[1]
    step = bounds[2] if len(parts) == 3 else None
    if low is not None and high is not None and low > high:
        raise FormatError(f"{text!r}: min is above max")
    if len(parts) == 3 and (step is None or step <= 0):
        raise FormatError(f"{text!r}: the step must be above 0")
    return NumberRange(low, high, step)


def parse_choices(text: str | None, datatype: str) -> tuple[str, ...]:
    """An enum's values, a color's formats or a boolean's two labels."""
    if text is None:
        if datatype == "boolean":
            return ("false", "true")
        raise FormatError(f"a {datatype} needs a format")
    values = tuple(text.split(","))
    if datatype == "boolean" and len(values) != 2:
        raise FormatError(f"a boolean format names two labels, not {text!r}")
    if "" in values or len(set(values)) != len(values):
        raise FormatError(f"{text!r} has an empty or repeated entry")
    if datatype == "color" and not set(values) <= set(COLOR_FORMATS):
        raise FormatError(f"{text!r} names a color format other than rgb, hsv, xyz")
    return values


def check_format(datatype: str, text: str | None) -> None:
    """Raises FormatError when ``text`` is not a legal format for ``datatype``."""
    if datatype in ("integer", "float"):
        parse_range(text, datatype == "integer")
    elif datatype in ("enum", "color", "boolean"):
        parse_choices(text, datatype)


def parse_color(text: str, formats: tuple[str, ...], v4: bool = False) -> Color | None:
    """A color payload in one of ``formats``; Homie 4 sends whole numbers without a type."""
    parts = text.split(",")
    if v4:
        kind = formats[0] if formats and formats[0] in ("rgb", "hsv") else None
        numbers = [parse_number(part, integer=True) for part in parts]
    else:
        kind, numbers = parts[0], [parse_number(part, integer=False) for part in parts[1:]]
    if kind not in formats or kind not in _COLOR_RANGES:
        return None
    ranges = _COLOR_RANGES[kind]
    if len(numbers) != len(ranges) or any(
            number is None or not 0 <= number <= top for number, top in zip(
                numbers, ranges, strict=True)):
        return None
    return Color(kind, tuple(float(number) for number in numbers if number is not None))


def parse_value(datatype: str, format_text: str | None, text: str, v4: bool = False) -> Any:
    """The value ``text`` carries for a property, or None when it is not valid for it.

    Numbers come back as int/float, booleans as bool, colors as Color, the rest as str."""
    if datatype in ("integer", "float"):
        number = parse_number(text, datatype == "integer")
        return number if number is not None and parse_range(
            format_text, datatype == "integer").holds(number) else None
    if datatype == "boolean":
        return {"true": True, "false": False}.get(text)
    if datatype == "enum":
        choices = parse_choices(format_text, datatype)
        text = text.strip() if v4 else text  # whitespace counts in 5, is trimmed in 4
        return text if text in choices else None
    if datatype == "color":
        return parse_color(text, parse_choices(format_text, datatype), v4)
    if datatype == "string":
        return "" if text == EMPTY_STRING else text
    if datatype == "datetime":
        return text if _is_datetime(text) else None
    if datatype == "duration":
        return text if _DURATION.fullmatch(text) else None
    if datatype == "json":
        return text if _is_json_container(text) else None
    return None


def _is_datetime(text: str) -> bool:
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def _is_json_container(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict | list)
    except (ValueError, RecursionError):
        return False


def number_text(value: float, integer: bool) -> str:
    """A number as a Homie payload: no "+" in an exponent, no trailing ".0" noise."""
    if integer:
        return str(int(round(value)))
    return f"{value:.15g}".replace("e+", "e")


def color_text(rgb: tuple[float, float, float], kind: str) -> str:
    """An RGB color (0..255 channels) as a Homie payload of ``kind``."""
    red, green, blue = (channel / 255 for channel in rgb)
    if kind == "rgb":
        channels: tuple[float, ...] = tuple(rgb)
    elif kind == "hsv":
        hue, saturation, value = colorsys.rgb_to_hsv(red, green, blue)
        channels = (hue * 360, saturation * 100, value * 100)
    else:
        channels = rgb_to_xy(red, green, blue)
    return ",".join([kind, *(number_text(round(channel, 4), False) for channel in channels)])


def rgb_to_xy(red: float, green: float, blue: float) -> tuple[float, float]:
    """sRGB (0..1 channels) to CIE 1931 xy, the chromaticity Homie's xyz format carries."""
    linear = [((c + 0.055) / 1.055) ** 2.4 if c > 0.04045 else c / 12.92
              for c in (red, green, blue)]
    x = 0.4124 * linear[0] + 0.3576 * linear[1] + 0.1805 * linear[2]
    y = 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    z = 0.0193 * linear[0] + 0.1192 * linear[1] + 0.9505 * linear[2]
    total = x + y + z
    return (0.3127, 0.329) if total == 0 else (x / total, y / total)  # black: white point


def color_attributes(color: Color) -> dict[str, Any]:
    """A color in Home Assistant's light attributes (and the brightness rgb/hsv carry)."""
    if color.kind == "rgb":
        # rgb carries the brightness too: the color at full brightness, and the brightness.
        top = max(color.channels)
        pure = [round(channel * 255 / top) if top else 0 for channel in color.channels]
        return {"color_mode": "rgb", "rgb_color": pure, "brightness": round(top)}
    if color.kind == "hsv":
        hue, saturation, value = color.channels
        return {"color_mode": "hs", "hs_color": [round(hue, 1), round(saturation, 1)],
                "brightness": round(value * 255 / 100)}
    return {"color_mode": "xy", "xy_color": [round(color.channels[0], 4),
                                             round(color.channels[1], 4)]}
