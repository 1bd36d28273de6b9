"""Homie properties as Home Assistant style entities, and property values as their states.

One property is one entity, except a light: a node with a settable on/off boolean (``power``,
``on``, ``state``, ``switch`` or ``light``, or its only settable boolean) together with a
settable ``brightness`` number and/or a settable color is one light; so is the on/off alone
when the node's id or type names a light ("light", "lamp", "bulb"). The rest, by datatype:

| datatype                  | settable             | not settable                   |
|---------------------------|----------------------|--------------------------------|
| boolean                   | switch               | binary_sensor                  |
| integer, float            | number               | sensor (device class by unit)  |
| enum                      | select               | sensor (device class "enum")   |
| string, datetime, duration, color outside a light | sensor (read-only) | sensor  |
| json                      | not an entity        | not an entity                  |

A v4 device is read-only: booleans are binary sensors, everything else a sensor.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from device_adapters.homie.description import NodeSpec, PropertySpec
from device_adapters.homie.values import (
    Color,
    NumberRange,
    color_attributes,
    number_text,
    parse_choices,
    parse_range,
)
from device_adapters.wire import brightness_from_wire

PROPERTY_FIELDS = tuple(field.name for field in fields(PropertySpec))
POWER_IDS = ("power", "on", "state", "switch", "light")
LIGHT_WORDS = ("light", "lamp", "bulb")  # a node id or type that names a light
ON_OFF_SERVICES = ["toggle", "turn_off", "turn_on"]
_COLOR_MODES = {"rgb": "rgb", "hsv": "hs", "xyz": "xy"}
_UNIT_CLASSES = {
    "°C": "temperature", "°F": "temperature", "W": "power", "kW": "power", "kWh": "energy",
    "Wh": "energy", "V": "voltage", "A": "current", "Pa": "pressure", "hPa": "pressure",
    "psi": "pressure", "lx": "illuminance", "Hz": "frequency", "m³": "volume", "L": "volume",
    "gal": "volume", "s": "duration", "min": "duration", "h": "duration",
}
# (word in the property's id or name, unit or None for any) -> device class
_WORD_CLASSES = (("humid", "%", "humidity"), ("batt", "%", "battery"),
                 ("co2", "ppm", "carbon_dioxide"))
_BINARY_WORDS = (("motion", "motion"), ("occupan", "occupancy"), ("presence", "presence"),
                 ("door", "door"), ("window", "window"), ("contact", "opening"),
                 ("smoke", "smoke"), ("leak", "moisture"), ("moisture", "moisture"),
                 ("water", "moisture"), ("vibration", "vibration"), ("tamper", "tamper"),
                 ("battery", "battery"), ("problem", "problem"))


@dataclass(frozen=True, slots=True)
class Part:
    """One property an entity is made of, in the role it plays there."""

    role: str  # "state" (a one-property entity), or a light's "power", "brightness", "color"
    node: str
    spec: PropertySpec


@dataclass(frozen=True, slots=True)
class Plan:
    """An entity a node offers, before it has an entity id."""

    key: str  # "<node>/<property>" or, for a light, "<node>"
    domain: str
    label: str  # the property's (a light: the node's) name or id
    parts: tuple[Part, ...]
    device_class: str | None = None
    capabilities: Mapping[str, Any] | None = None


def brightness_range(spec: PropertySpec) -> NumberRange | None:
    """The brightness range of a number property: its format, or 0..100 for a bare "%"."""
    if spec.datatype not in ("integer", "float"):
        return None
    numbers = parse_range(spec.format, spec.datatype == "integer")
    if numbers.low is None and numbers.high is None and spec.unit == "%":
        return NumberRange(0, 100, numbers.step)
    if numbers.low is None or numbers.high is None or numbers.low >= numbers.high:
        return None
    return numbers


def _light_parts(node: NodeSpec) -> tuple[Part, ...] | None:
    settable = [spec for spec in node.properties if spec.settable]
    switches = [spec for spec in settable if spec.datatype == "boolean"]
    power = next((spec for spec in switches if spec.id in POWER_IDS),
                 switches[0] if len(switches) == 1 else None)
    brightness = next((spec for spec in settable if spec.id == "brightness"
                       and brightness_range(spec) is not None), None)
    color = next((spec for spec in settable if spec.datatype == "color"), None)
    named_light = power is not None and power.id in POWER_IDS and any(
        word in f"{node.id} {node.type or ''}".casefold() for word in LIGHT_WORDS)
    if power is None or (brightness is None and color is None and not named_light):
        return None
    return tuple(Part(role, node.id, spec) for role, spec in (
        ("power", power), ("brightness", brightness), ("color", color)) if spec is not None)


def _light_plan(node: NodeSpec, parts: tuple[Part, ...]) -> Plan:
    roles = {part.role: part.spec for part in parts}
    color = preferred_color(roles["color"]) if "color" in roles else None
    # xyz is only the chromaticity: such a light dims only with a brightness property.
    dims = "brightness" in roles or color in ("rgb", "hsv")
    modes = [_COLOR_MODES[color]] if color else ["brightness"] if dims else ["onoff"]
    return Plan(node.id, "light", node.name or node.id, parts, capabilities={
        "services": ON_OFF_SERVICES, "supported_color_modes": modes, "brightness": dims})


def preferred_color(spec: PropertySpec) -> str:
    """The color format a device prefers (its format lists them best first)."""
    return parse_choices(spec.format, "color")[0]


def _sensor_class(spec: PropertySpec) -> str | None:
    words = f"{spec.id} {spec.name or ''}".casefold()
    for word, unit, device_class in _WORD_CLASSES:
        if word in words and spec.unit == unit:
            return device_class
    return _UNIT_CLASSES.get(spec.unit or "")


def _binary_class(spec: PropertySpec) -> str | None:
    words = f"{spec.id} {spec.name or ''}".casefold()
    return next((device_class for word, device_class in _BINARY_WORDS if word in words), None)


def _number_capabilities(spec: PropertySpec) -> dict[str, Any]:
    numbers = parse_range(spec.format, spec.datatype == "integer")
    details = {"min": numbers.low, "max": numbers.high, "step": numbers.step}
    return {"services": ["set_value"], **{k: v for k, v in details.items() if v is not None},
            **_unit(spec)}


def _property_plan(node: NodeSpec, spec: PropertySpec, read_only: bool) -> Plan | None:
    settable = spec.settable and not read_only
    parts = (Part("state", node.id, spec),)
    plan = {"key": f"{node.id}/{spec.id}", "label": spec.name or spec.id, "parts": parts}
    if spec.datatype == "json":
        return None
    if spec.datatype == "boolean":
        if settable:
            return Plan(domain="switch", capabilities={"services": ON_OFF_SERVICES}, **plan)
        return Plan(domain="binary_sensor", device_class=_binary_class(spec), **plan)
    if spec.datatype in ("integer", "float"):
        if settable:
            return Plan(domain="number", capabilities=_number_capabilities(spec), **plan)
        device_class = _sensor_class(spec)
        capabilities = {**_unit(spec), "state_class": (
            "total_increasing" if device_class == "energy" else "measurement")}
        return Plan(domain="sensor", device_class=device_class,
                    capabilities={"services": [], **capabilities}, **plan)
    if spec.datatype == "enum":
        options = list(parse_choices(spec.format, "enum"))
        if settable:
            return Plan(domain="select", capabilities={"services": ["select_option"],
                                                       "options": options}, **plan)
        return Plan(domain="sensor", device_class="enum",
                    capabilities={"services": [], "options": options}, **plan)
    return Plan(domain="sensor", capabilities={"services": [], **_unit(spec)}, **plan)


def _unit(spec: PropertySpec) -> dict[str, str]:
    return {"unit_of_measurement": spec.unit} if spec.unit else {}


def plan_node(node: NodeSpec, read_only: bool) -> list[Plan]:
    """The entities one node offers."""
    plans = []
    light = None if read_only else _light_parts(node)
    if light is not None:
        plans.append(_light_plan(node, light))
    taken = {part.spec.id for part in light or ()}
    for spec in node.properties:
        if spec.id not in taken:
            plan = _property_plan(node, spec, read_only)
            if plan is not None:
                plans.append(plan)
    return plans


def wire_of(version: int, device: str, topics: Mapping[str, str], plan: Plan) -> dict[str, Any]:
    """What ``encode`` and ``reports_state`` need to know later (stored with the entity)."""
    return {"version": version, "device": device, "parts": {
        part.role: {"topic": topics[part.role], **{
            name: getattr(part.spec, name) for name in PROPERTY_FIELDS}} for part in plan.parts}}


def reading(domain: str, role: str, spec: PropertySpec, value: Any,
            has_brightness: bool) -> tuple[str | None, dict[str, Any]]:
    """The (state, attributes) a valid property value means for its entity."""
    if isinstance(value, bool):
        return ("on" if value else "off"), {}
    if role == "brightness":
        numbers = brightness_range(spec)
        assert numbers is not None and numbers.low is not None and numbers.high is not None
        return None, {"brightness": brightness_from_wire(value - numbers.low,
                                                         numbers.high - numbers.low)}
    if isinstance(value, Color):
        if domain != "light":
            return ",".join([value.kind, *(number_text(c, False) for c in value.channels)]), {}
        attributes = color_attributes(value)
        if has_brightness:
            attributes.pop("brightness", None)  # the brightness property tells it
        return None, attributes
    if isinstance(value, int | float):
        return number_text(value, isinstance(value, int)), {}
    return value, {}
