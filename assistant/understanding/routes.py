"""How a matched intent becomes a tool call, and the intents each language brings.

Upstream intents (home-assistant-intents) we act on are routed in ``ROUTES``; each skill's
intents are routed by its own ``data/routes_<skill>.yaml``, the same for every language. A
language adds its words only: upstream's, and ours in ``data/sentences_<lang>[_<skill>].yaml``.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import yaml
from hassil import Intents
from hassil.parse_expression import parse_sentence
from hassil.sample import sample_expression
from hassil.util import is_template
from home_assistant_intents import get_intents

# Upstream intents this module maps onto tools; the rest are left out of matching entirely,
# which also keeps recognition fast (fewer templates to try). Our own intents come from
# data/sentences_<lang>.yaml and are always kept.
SUPPORTED_INTENTS = frozenset({
    "HassTurnOn", "HassTurnOff", "HassToggle", "HassLightSet", "HassGetState",
    "HassClimateGetTemperature", "HassClimateSetTemperature", "HassSetPosition",
    "HassFanSetSpeed", "HassMediaPause", "HassMediaUnpause", "HassMediaNext",
    "HassMediaPrevious", "HassSetVolume", "HassSetVolumeRelative", "HassVacuumStart",
    "HassVacuumReturnToBase", "HassNevermind", "HassGetCurrentTime", "HassGetCurrentDate",
    "HassMediaPlayerMute",
})

VOLUME_STEP_PCT = 10
BRIGHTNESS_STEP_PCT = 25
# libyaml's loader reads the same documents ten times faster: a few hundred ms off each start
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

def _fixed(**args: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda _slots: args


def _no_args(_slots: dict[str, Any]) -> dict[str, Any]:
    return {}


def _light_args(slots: dict[str, Any]) -> dict[str, Any]:
    args: dict[str, Any] = {}
    if "brightness" in slots:
        args["brightness_pct"] = int(slots["brightness"])
    if "brightness_step" in slots:
        args["brightness_step_pct"] = _step(slots["brightness_step"], BRIGHTNESS_STEP_PCT)
    if "color" in slots:
        args["color"] = str(slots["color"])
    if "temperature" in slots:  # upstream: {color_temperature:temperature}, in kelvin
        args["color_temp_kelvin"] = int(slots["temperature"])
    return args


def _state_args(slots: dict[str, Any]) -> dict[str, Any]:
    """ "Which lights are on": only those in the state asked about."""
    return {"state": str(slots["state"])} if "state" in slots else {}


def _volume_step_args(slots: dict[str, Any]) -> dict[str, Any]:
    return {"volume_step_pct": _step(slots["volume_step"], VOLUME_STEP_PCT)}


def _step(step: Any, default_pct: int) -> int:
    """A relative change: "up"/"down" by the default step, or a signed number of percent."""
    return default_pct if step == "up" else -default_pct if step == "down" else int(step)


def _temperature_args(slots: dict[str, Any]) -> dict[str, Any]:
    degrees = float(slots["temperature"])
    if slots.get("temperature_unit") == "fahrenheit":  # the tool takes °C
        degrees = round((degrees - 32) * 5 / 9 * 2) / 2
    return {"temperature": degrees}


@dataclass(frozen=True, slots=True)
class Route:
    """How a matched intent becomes one tool call."""

    tool: str
    # what the tool acts on: limits a named target, and is the target when none was said
    domains: tuple[str, ...] = ()
    args: Callable[[dict[str, Any]], dict[str, Any]] = _no_args
    device_classes: tuple[str, ...] = ()
    # When several devices fit, those in one of these states are the ones meant: "pause"
    # pauses what is playing.
    prefer_states: frozenset[str] = frozenset()
    # False for a skill's own intents (timers, lists, schedules): no device is meant.
    targeted: bool = True


_PLAYING = frozenset({"playing"})
_CLEANING = frozenset({"cleaning"})
ROUTES: dict[str, Route] = {
    "HassTurnOn": Route("turn_on"),
    "HassTurnOff": Route("turn_off"),
    "HassToggle": Route("toggle"),
    "HassGetState": Route("get_state", args=_state_args),
    "HassClimateGetTemperature": Route("get_state", ("climate", "sensor"),
                                        device_classes=("temperature",)),
    "HassLightSet": Route("set_light", ("light",), _light_args),
    "HassClimateSetTemperature": Route("set_temperature", ("climate",), _temperature_args),
    "MimoClimateSetMode": Route("set_hvac_mode", ("climate",),
                                 lambda slots: {"hvac_mode": str(slots["hvac_mode"])}),
    "HassSetPosition": Route("set_position", ("cover", "valve"),
                              lambda slots: {"position": int(slots["position"])}),
    "HassFanSetSpeed": Route("set_fan_speed", ("fan",),
                              lambda slots: {"percentage": int(slots["percentage"])}),
    "HassMediaPause": Route("media", ("media_player",), _fixed(command="pause"),
                             prefer_states=_PLAYING),
    "HassMediaUnpause": Route("media", ("media_player",), _fixed(command="play"),
                               prefer_states=frozenset({"paused"})),
    "HassMediaNext": Route("media", ("media_player",), _fixed(command="next"),
                            prefer_states=_PLAYING),
    "HassMediaPrevious": Route("media", ("media_player",), _fixed(command="previous"),
                                prefer_states=_PLAYING),
    "HassSetVolume": Route("set_volume", ("media_player",),
                            lambda slots: {"volume_pct": int(slots["volume_level"])},
                            prefer_states=_PLAYING),
    "HassSetVolumeRelative": Route("set_volume", ("media_player",), _volume_step_args,
                                    prefer_states=_PLAYING),
    "HassMediaPlayerMute": Route("set_volume", ("media_player",), _fixed(volume_pct=0),
                                  prefer_states=_PLAYING),
    "HassVacuumStart": Route("vacuum", ("vacuum",), _fixed(command="start")),
    "HassVacuumReturnToBase": Route("vacuum", ("vacuum",), _fixed(command="return_to_base")),
    # "Stop vacuuming" ends the cleaning: the robot goes back to its dock, as Home Assistant
    # does; one left standing mid-room is what "pause" asks for.
    "MimoVacuumStop": Route("vacuum", ("vacuum",), _fixed(command="return_to_base"),
                             prefer_states=_CLEANING),
    "MimoVacuumPause": Route("vacuum", ("vacuum",), _fixed(command="pause"),
                              prefer_states=_CLEANING),
}
REPLIES: dict[str, Callable[[], str]] = {
    "HassNevermind": lambda: "OK.",
    # names and numbers apart, so that the reply catalogs say them in the home's language
    "HassGetCurrentTime": lambda: f"It is {time.strftime('%H:%M')}.",
    "HassGetCurrentDate": lambda: _today(time.localtime()),
}


def _today(now: time.struct_time) -> str:
    return (f"Today is {time.strftime('%A', now)}, {time.strftime('%B', now)} {now.tm_mday}, "
            f"{now.tm_year}.")


@dataclass(frozen=True, slots=True)
class Language:
    """A language's intents (upstream and ours) and the routes our skill files declare."""

    intents: Intents
    routes: dict[str, Route]


@cache
def load_language(language: str) -> Language:
    """Upstream intents for ``language`` with our ``sentences_<lang>.yaml`` and
    ``sentences_<lang>_<skill>.yaml`` added, and the routes of ``routes_<skill>.yaml``: a
    skill's routes name, for every language, the tool each of its intents becomes; the
    intent's slots are the tool's arguments."""
    data = get_intents(language)
    if data is None:
        raise ValueError(f"no intents for language {language!r}")
    folder = resources.files("assistant") / "data"
    routes: dict[str, Route] = {}
    for routes_file in sorted((f for f in folder.iterdir() if f.name.startswith("routes_")),
                              key=lambda f: f.name):
        for intent_name, spec in (yaml.load(routes_file.read_text(encoding="utf-8"),
                                            Loader=_YAML_LOADER).get("routes") or {}).items():
            if intent_name in ROUTES or intent_name in routes:
                raise ValueError(f"intent {intent_name} is routed twice")
            routes[intent_name] = _file_route(spec)
    own_files = [folder / f"sentences_{language}.yaml",
                 *sorted((f for f in folder.iterdir()
                          if f.name.startswith(f"sentences_{language}_")
                          and f.name.endswith(".yaml")), key=lambda f: f.name)]
    extras = [yaml.load(f.read_text(encoding="utf-8"), Loader=_YAML_LOADER)
              for f in own_files if f.is_file()]
    kept = SUPPORTED_INTENTS | routes.keys()
    data["intents"] = {k: v for k, v in data["intents"].items() if k in kept}
    for extra in extras:
        merge_own(data, extra)
    _spell_out_lists(data)
    return Language(Intents.from_dict(data), routes)


# A list value written as a template ("abiert(o|a)[s]") is matched by walking the template
# wherever the list may start; spelled out in its plain forms it is compared as text, many
# times faster. A value with more forms than this stays a template.
_MAX_FORMS = 64


def _spell_out_lists(data: dict[str, Any]) -> None:
    for spec in data.get("lists", {}).values():
        if isinstance(spec, dict) and spec.get("values"):
            spec["values"] = [form for value in spec["values"] for form in _forms(value)]


def _forms(value: Any) -> list[Any]:
    """The plain forms of a list value, each with the value's out, context and metadata."""
    entry = value if isinstance(value, dict) else {"in": value}
    text = entry.get("in")
    if not isinstance(text, str) or not is_template(text) or any(c in text for c in "<{"):
        return [value]  # plain already, or it refers to rules or lists
    forms = list(dict.fromkeys(" ".join(form.split()) for form in itertools.islice(
        sample_expression(parse_sentence(text).expression), _MAX_FORMS + 1)))
    if len(forms) > _MAX_FORMS or "" in forms:
        return [value]
    return [{**entry, "in": form} for form in forms]


def _file_route(spec: dict[str, Any]) -> Route:
    """``{tool, args (fixed), domains}``: with domains, the spoken name or area is resolved
    to ``entity_ids`` of those domains like any device; without, no device is meant."""
    fixed = dict(spec.get("args") or {})
    domains = tuple(spec.get("domains") or ())

    def args(slots: dict[str, Any]) -> dict[str, Any]:
        what = {k: v for k, v in slots.items() if not domains or k not in TARGET_SLOTS}
        return {**_slots_as_args(what), **fixed}

    return Route(str(spec["tool"]), domains, args, targeted=bool(domains))


# Slots that say which devices are meant, not what to do with them.
TARGET_SLOTS = frozenset({"name", "area", "floor", "domain", "device_class"})


# Slots holding the words of a command to run later (HA's ``conversation_command``): the
# conversation understands them into ``calls`` before the tool runs.
COMMAND_TEXT = "command_text"
_COMMAND_SLOTS = frozenset({"conversation_command", "command"})


def _slots_as_args(slots: dict[str, Any]) -> dict[str, Any]:
    """A skill intent's slots, as its tool's arguments."""
    return {(COMMAND_TEXT if name in _COMMAND_SLOTS else name):
            value.strip() if isinstance(value, str) else value
            for name, value in slots.items()}


def merge_own(base: dict[str, Any], extra: dict[str, Any]) -> None:
    """Add our own templates, lists and rules to the upstream intent data."""
    for intent_name, intent in extra.get("intents", {}).items():
        base["intents"].setdefault(intent_name, {"data": []})["data"].extend(intent["data"])
    for key in ("lists", "expansion_rules"):
        clash = base.setdefault(key, {}).keys() & extra.get(key, {}).keys()
        if clash:  # replacing an upstream list or rule would change upstream sentences
            raise ValueError(f"own {key} reuse upstream names: {sorted(clash)}")
        base[key].update(extra.get(key, {}))
    base["skip_words"] = [*base.get("skip_words", []), *extra.get("skip_words", [])]
