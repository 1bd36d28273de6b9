"""Color spaces the native protocols speak, to and from Home Assistant's RGB: hue and
saturation (Zigbee2MQTT's color_hs, Tasmota's HSBColor) and CIE xy (Zigbee2MQTT's
color_xy, with the sRGB/D65 matrix and gamma Philips documents for Hue bulbs)."""

from __future__ import annotations

import colorsys
from collections.abc import Sequence


def rgb_to_hs(rgb: Sequence[float]) -> tuple[float, float]:
    """(hue 0..360, saturation 0..100)."""
    hue, saturation, _ = colorsys.rgb_to_hsv(*(channel / 255 for channel in rgb[:3]))
    return round(hue * 360, 1), round(saturation * 100, 1)


def hs_to_rgb(hue: float, saturation: float) -> tuple[int, int, int]:
    red, green, blue = colorsys.hsv_to_rgb(hue / 360 % 1, saturation / 100, 1)
    return round(red * 255), round(green * 255), round(blue * 255)


def _linear(channel: float) -> float:
    return ((channel + 0.055) / 1.055) ** 2.4 if channel > 0.04045 else channel / 12.92


def _gamma(channel: float) -> float:
    return 1.055 * channel ** (1 / 2.4) - 0.055 if channel > 0.0031308 else 12.92 * channel


def rgb_to_xy(rgb: Sequence[float]) -> tuple[float, float]:
    red, green, blue = (_linear(channel / 255) for channel in rgb[:3])
    x = red * 0.4124 + green * 0.3576 + blue * 0.1805
    y = red * 0.2126 + green * 0.7152 + blue * 0.0722
    z = red * 0.0193 + green * 0.1192 + blue * 0.9505
    total = x + y + z
    return (0.3127, 0.329) if total == 0 else (round(x / total, 4), round(y / total, 4))


def xy_to_rgb(x: float, y: float) -> tuple[int, int, int]:
    """Full brightness; the bulb's brightness is a channel of its own."""
    if not (0 <= x <= 1 and 0 < y <= 1):
        raise ValueError(f"({x}, {y}) is not a CIE xy color")
    big_x, big_z = x / y, (1 - x - y) / y
    linear = (big_x * 3.2406 - 1.5372 - big_z * 0.4986,
              -big_x * 0.9689 + 1.8758 + big_z * 0.0415,
              big_x * 0.0557 - 0.2040 + big_z * 1.0570)
    peak = max(max(linear), 1e-9)
    red, green, blue = (round(_gamma(max(c, 0) / peak) * 255) for c in linear)
    return red, green, blue
