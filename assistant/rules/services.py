"""Home Assistant service calls as our ``EntityCommand`` vocabulary.

A rule says ``light.turn_on`` with ``brightness_pct: 40``; the device gateway speaks
``EntityCommand(entity_id, "turn_on", {"brightness": 102})``. One table maps each service
we can run to the entity domains it acts on, the data keys it takes and how those become
command parameters. A service or a data key that is not in the table is an error when the
rule is loaded (so ``mimo-home rules check`` names it); a value that only a template gives
is checked when the rule runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from assistant.messages import CommandNotSupportedError, EntityCommand
from assistant.registry import Entity
from skills.home_control import COLORS, is_on, turn_command

# Keys every service call may carry that name targets, not data (HA accepts them in data).
TARGET_KEYS = frozenset({"entity_id", "area_id", "device_id"})
# Keys that change nothing our devices can do: accepted and not sent.
IGNORED_KEYS = frozenset({"transition", "metadata", "enqueue", "announce"})

Build = Callable[[Entity, Mapping[str, Any]], EntityCommand]


class ServiceError(ValueError):
    """A service call that cannot become a command: unknown service, key or value."""


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    name: str  # "light.turn_on"
    domains: frozenset[str]  # entity domains it acts on
    keys: frozenset[str]  # data keys it takes
    build: Build
    # What an ``area_id`` target sweeps (never a sensitive device: the engine checks)
    area_domains: frozenset[str]

    def check_keys(self, keys: Any) -> None:
        unknown = sorted(set(keys) - self.keys - TARGET_KEYS - IGNORED_KEYS)
        if unknown:
            takes = ", ".join(sorted(self.keys)) or "no data"
            raise ServiceError(f"{self.name} does not take {', '.join(unknown)} "
                               f"(it takes {takes})")

    def command(self, entity: Entity, data: Mapping[str, Any]) -> EntityCommand:
        """The command for ``entity``; CommandNotSupportedError when it cannot take it."""
        if entity.domain not in self.domains:
            raise CommandNotSupportedError(
                f"{self.name} cannot act on {entity.entity_id} (a {entity.domain})")
        self.check_keys(data)
        return self.build(entity, data)


# -- value checks -------------------------------------------------------------------------------


def _number(data: Mapping[str, Any], key: str, low: float, high: float) -> float:
    value = data[key]
    try:
        if isinstance(value, bool):
            raise TypeError
        number = float(value)
    except (TypeError, ValueError):
        raise ServiceError(f"{key} must be a number, got {str(value)[:40]!r}") from None
    if not low <= number <= high:
        raise ServiceError(f"{key} {number:g} is outside {low:g}..{high:g}")
    return number


def _text(data: Mapping[str, Any], key: str) -> str:
    value = data[key]
    if not isinstance(value, str | int | float) or isinstance(value, bool) or not str(value):
        raise ServiceError(f"{key} must be a text, got {str(value)[:40]!r}")
    return str(value)[:512]


def _rgb(value: Any) -> list[int]:
    if not (isinstance(value, list | tuple) and len(value) == 3):
        raise ServiceError(f"rgb_color must be three numbers 0..255, got {str(value)[:40]!r}")
    return [round(_number({"rgb_color": c}, "rgb_color", 0, 255)) for c in value]


def _params(**readers: Callable[[Mapping[str, Any], str], Any]) -> Callable[
        [Mapping[str, Any]], dict[str, Any]]:
    """Command parameters from the data keys present, each read by its reader."""

    def read(data: Mapping[str, Any]) -> dict[str, Any]:
        return {key: reader(data, key) for key, reader in readers.items() if key in data}

    return read


def _in(low: float, high: float, integer: bool = False) -> Callable[[Mapping[str, Any], str], Any]:
    def read(data: Mapping[str, Any], key: str) -> Any:
        value = _number(data, key, low, high)
        return round(value) if integer else value

    return read


def _simple(service: str, **readers: Callable[[Mapping[str, Any], str], Any]) -> Build:
    """One command whose parameters are the data keys as they are (checked)."""
    params = _params(**readers)
    return lambda entity, data: EntityCommand(entity.entity_id, service, params(data))


# -- services with more than a renaming -------------------------------------------------------


def _turn_on(entity: Entity, data: Mapping[str, Any]) -> EntityCommand:
    return turn_command(True)(entity)


def _turn_off(entity: Entity, data: Mapping[str, Any]) -> EntityCommand:
    return turn_command(False)(entity)


def _toggle(entity: Entity, data: Mapping[str, Any]) -> EntityCommand:
    return turn_command(not is_on(entity))(entity)


def _light_brightness(entity: Entity, data: Mapping[str, Any]) -> int | None:
    """The brightness 0..255 the data asks for, absolute or relative, or None."""
    if "brightness_pct" in data:
        return round(_number(data, "brightness_pct", 0, 100) * 255 / 100)
    if "brightness" in data:
        return round(_number(data, "brightness", 0, 255))
    current = int(entity.attributes.get("brightness") or 0) if entity.state == "on" else 0
    if "brightness_step_pct" in data:
        return max(0, min(255, current + round(
            _number(data, "brightness_step_pct", -100, 100) * 255 / 100)))
    if "brightness_step" in data:
        return max(0, min(255, current + round(_number(data, "brightness_step", -255, 255))))
    return None


def _light_on(entity: Entity, data: Mapping[str, Any]) -> EntityCommand:
    params: dict[str, Any] = {}
    brightness = _light_brightness(entity, data)
    if brightness == 0:
        return EntityCommand(entity.entity_id, "turn_off")
    if brightness is not None:
        params["brightness"] = brightness
    if "rgb_color" in data:
        params["rgb_color"] = _rgb(data["rgb_color"])
    if "color_name" in data:
        name = str(data["color_name"]).casefold()
        if name not in COLORS:
            raise ServiceError(f"color_name {name[:40]!r} is not one of {', '.join(COLORS)}")
        params["rgb_color"] = list(COLORS[name])
    for key in ("color_temp_kelvin", "kelvin"):
        if key in data:
            params["color_temp_kelvin"] = round(_number(data, key, 1000, 10000))
    return EntityCommand(entity.entity_id, "turn_on", params)


def _play_media(entity: Entity, data: Mapping[str, Any]) -> EntityCommand:
    if "media_content_id" not in data:
        raise ServiceError("media_player.play_media needs media_content_id")
    params = {"media_content_id": _text(data, "media_content_id")}
    if "media_content_type" in data:
        params["media_content_type"] = _text(data, "media_content_type")
    return EntityCommand(entity.entity_id, "play_media", params)


# -- the table ----------------------------------------------------------------------------------

_LIGHT_KEYS = frozenset({"brightness", "brightness_pct", "brightness_step", "brightness_step_pct",
                         "rgb_color", "color_name", "color_temp_kelvin", "kelvin"})
# What homeassistant.turn_on/turn_off/toggle reach, as home control's on/off does.
_GENERIC = frozenset({"light", "switch", "fan", "input_boolean", "climate", "media_player",
                      "humidifier", "siren", "cover", "valve", "scene", "script", "button",
                      "vacuum"})
# What "turn on the kitchen" (homeassistant.turn_on with an area) switches, as a sweep does.
_AREA_SWITCHED = frozenset({"light", "switch", "fan", "media_player", "climate", "humidifier",
                            "input_boolean"})
_ON_OFF = ("turn_on", "turn_off", "toggle")
_ON_OFF_BUILD = {"turn_on": _turn_on, "turn_off": _turn_off, "toggle": _toggle}
_CODE = {"code": lambda data, key: _text(data, key)}


def _table() -> dict[str, ServiceSpec]:
    specs: list[ServiceSpec] = []

    def add(name: str, domains: frozenset[str] | str, build: Build, keys: frozenset[str] |
            tuple[str, ...] = ()) -> None:
        domains = frozenset({domains}) if isinstance(domains, str) else domains
        specs.append(ServiceSpec(name, domains, frozenset(keys), build,
                                 _AREA_SWITCHED if domains is _GENERIC else domains))

    for service in _ON_OFF:
        add(f"homeassistant.{service}", _GENERIC, _ON_OFF_BUILD[service])
        for domain in ("switch", "input_boolean", "siren", "humidifier"):
            add(f"{domain}.{service}", domain, _ON_OFF_BUILD[service])
    add("light.turn_on", "light", _light_on, _LIGHT_KEYS)
    add("light.turn_off", "light", _turn_off)
    add("light.toggle", "light", _toggle)
    fan_readers = {"percentage": _in(0, 100, integer=True), "preset_mode": _text}
    add("fan.turn_on", "fan", _simple("turn_on", **fan_readers), tuple(fan_readers))
    add("fan.turn_off", "fan", _turn_off)
    add("fan.toggle", "fan", _toggle)
    add("fan.set_percentage", "fan", _simple("set_percentage", percentage=_in(0, 100, True)),
        ("percentage",))
    add("fan.set_preset_mode", "fan", _simple("set_preset_mode", preset_mode=_text),
        ("preset_mode",))
    for kind in ("cover", "valve"):
        for service in (f"open_{kind}", f"close_{kind}", f"stop_{kind}"):
            add(f"{kind}.{service}", kind, _simple(service))
        add(f"{kind}.set_{kind}_position", kind,
            _simple(f"set_{kind}_position", position=_in(0, 100, True)), ("position",))
        add(f"{kind}.toggle", kind, _toggle)
    for service in ("lock", "unlock", "open"):
        add(f"lock.{service}", "lock", _simple(service, **_CODE), ("code",))
    climate_modes = {"hvac_mode": _text}
    add("climate.set_temperature", "climate",
        _simple("set_temperature", temperature=_in(-50, 150), **climate_modes),
        ("temperature", "hvac_mode"))
    add("climate.set_hvac_mode", "climate", _simple("set_hvac_mode", **climate_modes),
        ("hvac_mode",))
    add("climate.set_preset_mode", "climate", _simple("set_preset_mode", preset_mode=_text),
        ("preset_mode",))
    add("climate.turn_on", "climate", _turn_on)
    add("climate.turn_off", "climate", _turn_off)
    for service in ("turn_on", "turn_off", "toggle"):
        add(f"media_player.{service}", "media_player", _ON_OFF_BUILD[service])
    for service in ("media_play", "media_pause", "media_play_pause", "media_next_track",
                    "media_previous_track"):
        add(f"media_player.{service}", "media_player", _simple(service))
    add("media_player.volume_set", "media_player",
        _simple("volume_set", volume_level=_in(0, 1)), ("volume_level",))
    add("media_player.play_media", "media_player", _play_media,
        ("media_content_id", "media_content_type"))
    for service in ("start", "pause", "stop", "return_to_base"):
        add(f"vacuum.{service}", "vacuum", _simple(f"vacuum_{service}"))
    for service in ("alarm_arm_home", "alarm_arm_away", "alarm_arm_night", "alarm_arm_vacation",
                    "alarm_disarm"):
        add(f"alarm_control_panel.{service}", "alarm_control_panel",
            _simple(service, **_CODE), ("code",))
    add("scene.turn_on", "scene", _simple("activate"))
    add("script.turn_on", "script", _simple("turn_on"))
    add("button.press", "button", _simple("press"))
    return {spec.name: spec for spec in specs}


SERVICES: Mapping[str, ServiceSpec] = _table()


def service_spec(name: str) -> ServiceSpec:
    """The spec of ``name`` ("light.turn_on"); ServiceError naming what exists otherwise."""
    spec = SERVICES.get(name)
    if spec is None:
        domain = name.partition(".")[0]
        same = sorted(s for s in SERVICES if s.startswith(f"{domain}."))
        hint = f"; {domain} has {', '.join(same)}" if same else ""
        raise ServiceError(f"{name!r} is not a service mimo-home can run{hint}")
    return spec
