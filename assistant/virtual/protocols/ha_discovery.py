"""Home Assistant MQTT discovery: the virtual home's first and most complete front end.

Topics (``<base>`` is the simulator's base topic, ``<node>`` the same with ``-`` as ``_``)::

    <prefix>/<component>/<node>/<object_id>/config  retained discovery config
    <base>/availability                             online/offline for the whole simulator
                                                    (offline is its last will)
    <base>/<domain>/<object_id>/availability        online/offline for one device
    <base>/<domain>/<object_id>/state               main state, retained
    <base>/<domain>/<object_id>/<aspect>            other state: position, percentage, ...
    <base>/<domain>/<object_id>/set                 main command
    <base>/<domain>/<object_id>/<aspect>/set        other commands

Domains (commands on ``set`` unless an aspect is named):

    light          schema json: {"state": "ON"|"OFF", "brightness": 0..255, "color": {r,g,b[,w]},
                   "color_temp": kelvin}
    switch         ON/OFF
    fan            ON/OFF; percentage/set 0..100 (when it has speeds)
    cover          OPEN/CLOSE/STOP; position/set 0..100 (when it has a position)
    valve          OPEN/CLOSE, or a position 0..100 when it reports one
    lock           LOCK/UNLOCK; state LOCKED/UNLOCKED
    climate        mode/set, temperature/set, power/set ON/OFF (back to the last mode)
    media_player   ON/OFF; play, pause, play_pause, next, previous (any payload); volume/set 0..1
    vacuum         start, pause, stop, return_to_base; state {"state": ...}
    scene, button  ON / PRESS
    sensor, binary_sensor, todo (a sensor of open items): read-only

``<prefix>/status`` saying ``online`` (Home Assistant restarted) re-announces everything.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, ClassVar

from device_adapters.wire import PAYLOAD_NONE, parse_json_object

from assistant.virtual.fixtures import HomeSpec
from assistant.virtual.models import (
    UNKNOWN,
    BUTTON,
    CLIMATE,
    COVER,
    FAN,
    LIGHT,
    LOCK,
    MEDIA_PLAYER,
    SCENE,
    SWITCH,
    VACUUM,
    VALVE,
    Device,
    EntityState,
    LightModel,
    lookup,
)
from assistant.virtual.protocols.base import FrontEnd, PresentedOn, Publication, Reaction

DEFAULT_DISCOVERY_PREFIX = "homeassistant"
ONLINE, OFFLINE = "online", "offline"
QOS = 1

Handler = Callable[[Device, str], EntityState]
Config = dict[str, Any]

_ON_OFF = {"ON": True, "OFF": False}  # command payload -> on?
_ON_OFF_WIRE = {"on": "ON", "off": "OFF"}  # state -> state payload
_MOVES = {"OPEN": 100, "CLOSE": 0}
_LOCK_WIRE = {"locked": "LOCKED", "unlocked": "UNLOCKED", "locking": "LOCKING",
              "unlocking": "UNLOCKING", "jammed": "JAMMED", "open": "OPEN", "opening": "OPENING"}
# Platforms whose discovery config carries the entity's device_class.
# media_player has no Home Assistant platform, but tv/speaker helps the daemon tell them apart.
_DEVICE_CLASS_COMPONENTS = frozenset({"binary_sensor", "button", "cover", "media_player",
                                      "sensor", "switch", "valve"})
_COMPONENTS = {"todo": "sensor"}  # a to-do list has no MQTT platform: a sensor of open items


class _Topics:
    """One device's topics under ``<base>/<domain>/<object_id>``."""

    def __init__(self, base: str, device: Device) -> None:
        self.root = f"{base}/{device.spec.domain}/{device.spec.object_id}"

    def state(self, aspect: str = "state") -> str:
        return f"{self.root}/{aspect}"

    def command(self, aspect: str = "") -> str:
        return f"{self.root}/{aspect}/set" if aspect else f"{self.root}/set"


def _power(state: EntityState) -> str:
    return _ON_OFF_WIRE.get(state.state, PAYLOAD_NONE)


def _plain_state(state: EntityState) -> str:
    return PAYLOAD_NONE if state.state == UNKNOWN else state.state


# -- per domain: discovery options, state payloads, command handlers ----------------------------


class _Domain:
    def options(self, device: Device, t: _Topics) -> Config:
        return {}

    def wire(self, device: Device) -> dict[str, str]:
        """What to publish, retained: {aspect: payload}."""
        return {}

    def commands(self, device: Device) -> dict[str, Handler]:
        """{aspect: handler}; "" is the main command topic."""
        return {}


class _Switch(_Domain):
    def options(self, device: Device, t: _Topics) -> Config:
        return {"command_topic": t.command(), "state_topic": t.state(),
                "payload_on": "ON", "payload_off": "OFF"}

    def wire(self, device: Device) -> dict[str, str]:
        return {"state": _power(device.state)}

    def commands(self, device: Device) -> dict[str, Handler]:
        model = SWITCH
        return {"": lambda d, payload: model.switch(d, _on(payload))}


class _BinarySensor(_Domain):
    def options(self, device: Device, t: _Topics) -> Config:
        return {"state_topic": t.state(), "payload_on": "ON", "payload_off": "OFF"}

    def wire(self, device: Device) -> dict[str, str]:
        return {"state": _power(device.state)}


class _Sensor(_Domain):
    def options(self, device: Device, t: _Topics) -> Config:
        attributes = device.spec.attributes
        options = {"state_topic": t.state()}
        for option in ("unit_of_measurement", "state_class"):
            if attributes.get(option):
                options[option] = attributes[option]
        return options

    def wire(self, device: Device) -> dict[str, str]:
        return {"state": _plain_state(device.state)}


class _Todo(_Sensor):
    def options(self, device: Device, t: _Topics) -> Config:
        return {"state_topic": t.state(), "unit_of_measurement": "items",
                "icon": "mdi:clipboard-list"}


class _Light(_Domain):
    """``schema: json``; brightness 0..255 on the wire, color_temp in kelvin."""

    def options(self, device: Device, t: _Topics) -> Config:
        model = LIGHT
        modes = model.modes(device.spec)
        options: Config = {"schema": "json", "command_topic": t.command(),
                           "state_topic": t.state(), "supported_color_modes": modes}
        if model.dims(device.spec):
            options["brightness"] = True
        if "color_temp" in modes:
            options.update(color_temp_kelvin=True, min_kelvin=model.MIN_KELVIN,
                           max_kelvin=model.MAX_KELVIN)
        return options

    def wire(self, device: Device) -> dict[str, str]:
        attributes = device.state.attributes
        power = _ON_OFF_WIRE.get(device.state.state)
        document: dict[str, Any] = {"state": power}
        if power == "ON":
            mode = attributes.get("color_mode")
            document["color_mode"] = mode
            if "brightness" in attributes:
                document["brightness"] = attributes["brightness"]
            color = attributes.get(LightModel.COLOR_ATTRIBUTES.get(mode or "", ""))
            if mode in ("rgb", "rgbw") and color is not None:
                document["color"] = dict(zip("rgbw", color))
            if mode == "color_temp" and "color_temp_kelvin" in attributes:
                document["color_temp"] = attributes["color_temp_kelvin"]
        return {"state": json.dumps(document)}

    def commands(self, device: Device) -> dict[str, Handler]:
        return {"": self._command}

    @staticmethod
    def _command(device: Device, payload: str) -> EntityState:
        model = LIGHT
        command = parse_json_object(payload)
        on = lookup(_ON_OFF, command.get("state"))
        color = command.get("color")
        channels = None
        if color is not None:
            channels = (color["r"], color["g"], color["b"],
                        *([color["w"]] if "w" in color else []))
        return model.set(device, bool(on), command.get("brightness"), channels,
                         command.get("color_temp"))


class _Leveled(_Domain):
    """A main command, and when the device has one a 0..100 level on its own aspect."""

    aspect: ClassVar[str]  # the level's topics: <root>/<aspect>[/set]
    attribute: ClassVar[str]  # the level's attribute

    def has_level(self, device: Device) -> bool:
        raise NotImplementedError

    def main(self, device: Device) -> tuple[Config, str, Handler]:
        """(discovery options, state payload, command handler) of the main topic."""
        raise NotImplementedError

    def level(self, device: Device, t: _Topics) -> tuple[Config, Handler]:
        """(discovery options, command handler) of the level."""
        raise NotImplementedError

    def options(self, device: Device, t: _Topics) -> Config:
        options: Config = {"command_topic": t.command(), "state_topic": t.state(),
                           **self.main(device)[0]}
        if self.has_level(device):
            options.update(self.level(device, t)[0])
        return options

    def wire(self, device: Device) -> dict[str, str]:
        messages = {"state": self.main(device)[1]}
        if self.has_level(device):
            messages[self.aspect] = str(device.state.attributes.get(self.attribute, 0))
        return messages

    def commands(self, device: Device) -> dict[str, Handler]:
        handlers = {"": self.main(device)[2]}
        if self.has_level(device):
            handlers[self.aspect] = self.level(device, _Topics("", device))[1]
        return handlers


class _Fan(_Leveled):
    aspect, attribute = "percentage", "percentage"

    def has_level(self, device: Device) -> bool:
        return FAN.has_speeds(device.spec)

    def main(self, device: Device) -> tuple[Config, str, Handler]:
        model = FAN
        return ({"payload_on": "ON", "payload_off": "OFF"}, _power(device.state),
                lambda d, payload: model.switch(d, _on(payload)))

    def level(self, device: Device, t: _Topics) -> tuple[Config, Handler]:
        model = FAN
        return ({"percentage_command_topic": t.command("percentage"),
                 "percentage_state_topic": t.state("percentage"),
                 "speed_range_min": 1, "speed_range_max": 100}, model.set_percentage)


class _Cover(_Leveled):
    aspect, attribute = "position", "current_position"

    def has_level(self, device: Device) -> bool:
        return COVER.has_position(device.spec)

    def main(self, device: Device) -> tuple[Config, str, Handler]:
        return ({"payload_open": "OPEN", "payload_close": "CLOSE", "payload_stop": "STOP"},
                _plain_state(device.state), self._command)

    def level(self, device: Device, t: _Topics) -> tuple[Config, Handler]:
        model = COVER
        return ({"position_topic": t.state("position"),
                 "set_position_topic": t.command("position"),
                 "position_open": 100, "position_closed": 0}, model.move_to)

    @staticmethod
    def _command(device: Device, payload: str) -> EntityState:
        model = COVER
        if payload == "STOP":
            return model.stop(device)
        if payload not in _MOVES:
            raise ValueError("expected OPEN, CLOSE or STOP")
        return model.move_to(device, _MOVES[payload])


class _Valve(_Domain):
    def options(self, device: Device, t: _Topics) -> Config:
        model = VALVE
        options: Config = {"command_topic": t.command(), "state_topic": t.state(),
                           "reports_position": model.has_position(device.spec)}
        if not options["reports_position"]:
            # Home Assistant refuses payload_open/close on a valve that reports a position.
            options.update(payload_open="OPEN", payload_close="CLOSE")
        return options

    def wire(self, device: Device) -> dict[str, str]:
        model = VALVE
        state = device.state
        if state.state == UNKNOWN:
            return {"state": PAYLOAD_NONE}
        if model.has_position(device.spec):
            position = state.attributes.get("current_position", 0)
            return {"state": json.dumps({"state": state.state, "position": position})}
        return {"state": state.state}

    def commands(self, device: Device) -> dict[str, Handler]:
        return {"": self._command}

    @staticmethod
    def _command(device: Device, payload: str) -> EntityState:
        model = VALVE
        if payload in _MOVES:  # Home Assistant sends a position instead when it can
            return model.move_to(device, _MOVES[payload])
        if not model.has_position(device.spec):
            raise ValueError("expected OPEN or CLOSE")
        return model.move_to(device, payload)


class _Lock(_Domain):
    def options(self, device: Device, t: _Topics) -> Config:
        return {"command_topic": t.command(), "state_topic": t.state(),
                "payload_lock": "LOCK", "payload_unlock": "UNLOCK",
                "state_locked": "LOCKED", "state_unlocked": "UNLOCKED"}

    def wire(self, device: Device) -> dict[str, str]:
        return {"state": _LOCK_WIRE.get(device.state.state, PAYLOAD_NONE)}

    def commands(self, device: Device) -> dict[str, Handler]:
        model = LOCK
        table = {"LOCK": "locked", "UNLOCK": "unlocked"}
        return {"": lambda d, payload: model.lock(d, lookup(table, payload) == "locked")}


class _Climate(_Domain):
    def options(self, device: Device, t: _Topics) -> Config:
        model = CLIMATE
        attributes = model.with_defaults(device.spec, device.spec.attributes)
        return {
            "mode_command_topic": t.command("mode"),
            "mode_state_topic": t.state("mode"),
            "modes": attributes["hvac_modes"],
            "temperature_command_topic": t.command("temperature"),
            "temperature_state_topic": t.state("temperature"),
            "current_temperature_topic": t.state("current_temperature"),
            "action_topic": t.state("action"),
            "power_command_topic": t.command("power"),
            "payload_on": "ON",
            "payload_off": "OFF",
            "min_temp": attributes["min_temp"],
            "max_temp": attributes["max_temp"],
            "temp_step": 0.5,
            "precision": 0.1,
            "temperature_unit": model.unit(device.spec),
        }

    def wire(self, device: Device) -> dict[str, str]:
        attributes = device.state.attributes
        messages = {"mode": _plain_state(device.state), "action": attributes["hvac_action"]}
        for name in ("temperature", "current_temperature"):
            if attributes.get(name) is not None:
                messages[name] = str(attributes[name])
        return messages

    def commands(self, device: Device) -> dict[str, Handler]:
        model = CLIMATE
        return {"mode": model.set_mode, "temperature": model.set_temperature,
                "power": lambda d, payload: model.set_power(d, _on(payload))}


class _MediaPlayer(_Domain):
    """Home Assistant has no MQTT media_player: the community layout (see ha_discovery)."""

    _ACTIONS = ("play", "pause", "play_pause", "next", "previous")

    def options(self, device: Device, t: _Topics) -> Config:
        return {"state_topic": t.state(), "command_topic": t.command(),
                "payload_on": "ON", "payload_off": "OFF",
                "volume_state_topic": t.state("volume"),
                "volume_set_topic": t.command("volume"),
                **{f"{action}_topic": t.command(action) for action in self._ACTIONS}}

    def wire(self, device: Device) -> dict[str, str]:
        messages = {"state": _plain_state(device.state)}
        if device.state.attributes.get("volume_level") is not None:
            messages["volume"] = str(device.state.attributes["volume_level"])
        return messages

    def commands(self, device: Device) -> dict[str, Handler]:
        model = MEDIA_PLAYER
        # The topic is the command: any payload on play_topic plays.
        return {"": lambda d, payload: model.power(d, _on(payload)),
                "play": lambda d, _: model.play(d), "pause": lambda d, _: model.pause(d),
                "play_pause": lambda d, _: model.play_pause(d),
                "next": lambda d, _: model.skip(d, +1),
                "previous": lambda d, _: model.skip(d, -1),
                "volume": model.set_volume}


class _Vacuum(_Domain):
    def options(self, device: Device, t: _Topics) -> Config:
        features = ["start", "stop", "pause", "return_home", "status"]
        if "battery_level" in device.spec.attributes:
            features.append("battery")
        return {"command_topic": t.command(), "state_topic": t.state(),
                "supported_features": features,
                **{f"payload_{c}": c for c in VACUUM.COMMANDS}}

    def wire(self, device: Device) -> dict[str, str]:
        state = device.state
        document: dict[str, Any] = {"state": None if state.state == UNKNOWN else state.state}
        if state.attributes.get("battery_level") is not None:
            document["battery_level"] = state.attributes["battery_level"]
        return {"state": json.dumps(document)}

    def commands(self, device: Device) -> dict[str, Handler]:
        return {"": VACUUM.command}


class _Scene(_Domain):
    def options(self, device: Device, t: _Topics) -> Config:
        return {"command_topic": t.command(), "payload_on": "ON"}

    def commands(self, device: Device) -> dict[str, Handler]:
        model = SCENE
        return {"": lambda d, payload: model.activate(_expect(d, payload, "ON"))}


class _Button(_Domain):
    def options(self, device: Device, t: _Topics) -> Config:
        return {"command_topic": t.command(), "payload_press": "PRESS"}

    def commands(self, device: Device) -> dict[str, Handler]:
        model = BUTTON
        return {"": lambda d, payload: model.press(_expect(d, payload, "PRESS"))}


def _expect(device: Device, payload: str, wanted: str) -> Device:
    """``device``, once the payload is the one command it takes."""
    if payload != wanted:
        raise ValueError(f"expected {wanted}")
    return device


def _on(payload: str) -> bool:
    return lookup(_ON_OFF, payload)


_DOMAINS: dict[str, _Domain] = {
    "binary_sensor": _BinarySensor(), "button": _Button(), "climate": _Climate(),
    "cover": _Cover(), "fan": _Fan(), "light": _Light(), "lock": _Lock(),
    "media_player": _MediaPlayer(), "scene": _Scene(), "sensor": _Sensor(),
    "switch": _Switch(), "todo": _Todo(), "vacuum": _Vacuum(), "valve": _Valve(),
}


# -- the front end ------------------------------------------------------------------------------


class HaDiscoveryFrontEnd(FrontEnd):
    name = "ha"
    domains = frozenset(_DOMAINS)

    def __init__(self, home: HomeSpec, base_topic: str,
                 discovery_prefix: str = DEFAULT_DISCOVERY_PREFIX) -> None:
        super().__init__(home, base_topic)
        self.discovery_prefix = discovery_prefix.strip("/")
        # One node id per base topic: two simulators on one broker never share configs.
        self.node_id = re.sub(r"[^a-zA-Z0-9_]", "_", base_topic)
        self._routes: dict[str, tuple[Device, Handler]] = {}

    @property
    def availability_topic(self) -> str:
        return f"{self.base_topic}/availability"

    def add(self, device: Device) -> None:
        super().add(device)
        topics = _Topics(self.base_topic, device)
        for aspect, handler in _DOMAINS[device.spec.domain].commands(device).items():
            self._routes[topics.command(aspect)] = (device, handler)

    def subscriptions(self) -> list[str]:
        return [f"{self.base_topic}/+/+/set", f"{self.base_topic}/+/+/+/set",
                f"{self.discovery_prefix}/status"]

    def announce(self) -> list[Publication]:
        messages = []
        for device in self.devices:
            messages.append(Publication(self._config_topic(device),
                                        json.dumps(self._config(device))))
            messages += self.availability_messages(device)
            messages += self.state_messages(device)
        messages.append(Publication(self.availability_topic, ONLINE))
        return messages

    def state_messages(self, device: Device) -> list[Publication]:
        topics = _Topics(self.base_topic, device)
        return [Publication(topics.state(aspect), payload)
                for aspect, payload in _DOMAINS[device.spec.domain].wire(device).items()]

    def availability_messages(self, device: Device) -> list[Publication]:
        return [Publication(_Topics(self.base_topic, device).state("availability"),
                            ONLINE if device.available else OFFLINE)]

    def handle(self, topic: str, payload: bytes) -> Reaction | None:
        if topic == f"{self.discovery_prefix}/status":
            # Home Assistant restarted: announce again.
            return Reaction(None, reply=self.announce) if payload == ONLINE.encode() else None
        route = self._routes.get(topic)
        if route is None:
            return None
        device, handler = route
        text = payload.decode("utf-8")
        return Reaction(device, lambda d: handler(d, text))

    def farewell(self) -> list[Publication]:
        # Configs first: the entities go away before their states are cleared.
        topics = [self._config_topic(device) for device in self.devices]
        for device in self.devices:
            topics += [m.topic for m in self.availability_messages(device)]
            topics += [m.topic for m in self.state_messages(device)]
        topics.append(self.availability_topic)
        return [Publication(topic, b"") for topic in topics]

    def presented_on(self, device: Device) -> PresentedOn:
        return PresentedOn(self.name, (), self.default_entity_id(device))

    @staticmethod
    def default_entity_id(device: Device) -> str:
        spec = device.spec
        component = _COMPONENTS.get(spec.domain, spec.domain)
        return f"{component}.{spec.object_id}"  # Home Assistant keeps the platform's domain

    def _config_topic(self, device: Device) -> str:
        component = _COMPONENTS.get(device.spec.domain, device.spec.domain)
        return (f"{self.discovery_prefix}/{component}/{self.node_id}/"
                f"{device.spec.object_id}/config")

    def _config(self, device: Device) -> Config:
        spec = device.spec
        owner = self.home.device(spec.device)
        device_block: Config = {
            "identifiers": [f"{self.node_id}_{owner.id if owner else spec.entity_id}"],
            "name": owner.name if owner else spec.name,
        }
        if owner is not None:
            device_block.update({k: v for k, v in (("manufacturer", owner.manufacturer),
                                                   ("model", owner.model),
                                                   ("sw_version", owner.sw_version)) if v})
        area = self.home.area_name(spec.area)
        if area:
            device_block["suggested_area"] = area
        component = _COMPONENTS.get(spec.domain, spec.domain)
        topics = _Topics(self.base_topic, device)
        config: Config = {
            "name": spec.name,
            "unique_id": f"{self.node_id}_{spec.domain}_{spec.object_id}",
            "default_entity_id": self.default_entity_id(device),
            "device": device_block,
            "origin": {"name": "mimo-home virtual home"},
            # The simulator's last will and the device's own topic: offline if either says so.
            "availability": [{"topic": self.availability_topic},
                             {"topic": topics.state("availability")}],
            "availability_mode": "all",
            "qos": QOS,
            **_DOMAINS[spec.domain].options(device, topics),
        }
        if spec.device_class and component in _DEVICE_CLASS_COMPONENTS:
            config["device_class"] = spec.device_class
        return config
