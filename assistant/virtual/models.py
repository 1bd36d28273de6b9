"""Device models of the virtual home: how each Home Assistant domain behaves, in Home
Assistant's terms and independent of any wire protocol.

A model is stateless; the ``Device`` it works on carries the state and what the device
remembers while off. Every operation returns the device's next state (it does not store
it: the home records it) and raises ValueError for what the device would refuse. The
protocol front ends (``assistant.virtual.protocols``) translate their payloads into these
operations and the states back into their payloads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal, TypeVar

from assistant.virtual.fixtures import VirtualEntitySpec

UNKNOWN = "unknown"
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class EntityState:
    """What Home Assistant would show: the state string and the attributes."""

    state: str
    attributes: dict[str, Any] = field(default_factory=dict)


ChangeCause = Literal["command", "reset"]


@dataclass(frozen=True, slots=True)
class StateChange:
    sequence: int
    entity_id: str
    before: EntityState
    after: EntityState
    cause: ChangeCause


@dataclass(slots=True)
class Device:
    """One simulated device: its description and what it is doing now."""

    spec: VirtualEntitySpec
    model: DomainModel
    state: EntityState = field(default_factory=lambda: EntityState(UNKNOWN))
    # What the device keeps while off (a bulb's last brightness), not shown in its state.
    memory: dict[str, Any] = field(default_factory=dict)
    available: bool = True


def updated(current: EntityState, state: str | None = None, **attributes: Any) -> EntityState:
    """``current`` with a new state and attributes; a None attribute is removed."""
    merged = {**current.attributes, **attributes}
    return EntityState(state or current.state,
                       {key: value for key, value in merged.items() if value is not None})


def number_in(value: Any, low: float, high: float) -> float:
    """A command's number, refused (ValueError) unless it is one within ``low..high``."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a number")
    number = float(value)
    if not low <= number <= high:  # also refuses NaN
        raise ValueError(f"{number} is outside {low}..{high}")
    return number


def lookup(table: Mapping[str, T], payload: Any) -> T:
    if payload not in table:
        raise ValueError(f"expected one of {sorted(table)}")
    return table[payload]


def _by_level(level: Any, above_zero: str, at_zero: str) -> str | None:
    """The state a level (brightness, percentage, position) implies, if one is given."""
    return None if level is None else (above_zero if level > 0 else at_zero)


def _timestamp() -> str:
    return datetime.now(UTC).isoformat()


class DomainModel:
    """How one Home Assistant domain behaves."""

    published: ClassVar[bool] = True  # False: kept in the state table, on no wire
    default_state: ClassVar[str] = UNKNOWN

    def infer_state(self, attributes: Mapping[str, Any]) -> str | None:
        """The state the attributes imply (a position, a brightness), if they imply one."""
        return None

    def settle(self, device: Device, state: str | None, attributes: dict[str, Any]) -> EntityState:
        """A consistent state from a wanted state (None: infer) and attributes."""
        return EntityState(state or self.infer_state(attributes) or self.default_state,
                           attributes)

    def side_effects(self, device: Device) -> Mapping[str, Mapping[str, Any]]:
        """Other entities a command on ``device`` sets: {entity_id: setup entry}."""
        return {}


class PassiveModel(DomainModel):
    """Domains with no MQTT platform (weather, calendar): kept in the table, not published."""

    published = False


class SwitchModel(DomainModel):
    default_state = "off"

    def switch(self, device: Device, on: bool | None) -> EntityState:
        """On, off, or (None) the other way round."""
        if on is None:
            on = device.state.state != "on"
        return updated(device.state, "on" if on else "off")


class BinarySensorModel(DomainModel):
    pass


class SensorModel(DomainModel):
    pass


class TodoModel(SensorModel):
    """A to-do list: its state is the number of open items."""

    def settle(self, device: Device, state: str | None, attributes: dict[str, Any]) -> EntityState:
        items = attributes.get("todo_items") or []
        done = [i for i in items if isinstance(i, dict) and i.get("status") == "completed"]
        return EntityState(str(len(items) - len(done)), attributes)


class LightModel(DomainModel):
    """A bulb with Home Assistant's color modes; brightness 0..255."""

    default_state = "off"
    MODES = ("onoff", "brightness", "color_temp", "rgb", "rgbw")  # the ones we simulate
    COLOR_ATTRIBUTES = {"rgb": "rgb_color", "rgbw": "rgbw_color",
                        "color_temp": "color_temp_kelvin"}
    MIN_KELVIN, MAX_KELVIN = 2000, 6500  # what the bulbs announce
    # What a bulb remembers while off and shows again when turned on.
    _KEPT_WHILE_OFF = ("brightness", "color_mode", "rgb_color", "rgbw_color", "color_temp_kelvin")

    def modes(self, spec: VirtualEntitySpec) -> list[str]:
        wanted = [m for m in spec.attributes.get("supported_color_modes") or () if m in self.MODES]
        colors = [m for m in wanted if m not in ("onoff", "brightness")]
        if colors:  # Home Assistant: onoff/brightness never combine with color modes
            return colors
        if wanted:
            return wanted[-1:]
        return ["brightness" if "brightness" in spec.attributes else "onoff"]

    def dims(self, spec: VirtualEntitySpec) -> bool:
        return self.modes(spec) != ["onoff"]

    def color_mode(self, spec: VirtualEntitySpec) -> str | None:
        """The RGB mode it has (rgbw before rgb), if any."""
        return next((m for m in ("rgbw", "rgb") if m in self.modes(spec)), None)

    def infer_state(self, attributes: Mapping[str, Any]) -> str | None:
        return _by_level(attributes.get("brightness"), "on", "off")

    def settle(self, device: Device, state: str | None, attributes: dict[str, Any]) -> EntityState:
        state = state or self.infer_state(attributes) or self.default_state
        modes = self.modes(device.spec)
        attributes = {**attributes, "supported_color_modes": modes}
        if attributes.get("brightness") == 0:
            del attributes["brightness"]  # 0 is "off", never a level to come back to
        if state != "on":
            for name in self._KEPT_WHILE_OFF:
                if attributes.get(name) is not None:
                    device.memory[name] = attributes[name]
                attributes.pop(name, None)
            return EntityState(state, attributes)
        lit = {**{k: v for k, v in device.memory.items() if k in self._KEPT_WHILE_OFF},
               **{k: v for k, v in attributes.items() if v is not None}}
        if lit.get("color_mode") not in modes:
            lit["color_mode"] = modes[0]
        if self.dims(device.spec):
            lit.setdefault("brightness", 255)
        else:
            lit.pop("brightness", None)
        return EntityState("on", lit)

    def lit(self, device: Device, key: str) -> Any:
        """What the bulb shows, or would show when turned on (its remembered level)."""
        return device.state.attributes.get(key, device.memory.get(key))

    def set(self, device: Device, on: bool, brightness: Any = None,
            color: tuple[Any, ...] | None = None, kelvin: Any = None) -> EntityState:
        """Switch, and set what is given: brightness 0..255 (0: off), an RGB(W) color,
        a color temperature in kelvin."""
        attributes = dict(device.state.attributes)
        if not on or brightness == 0:
            return self.settle(device, "off", attributes)
        modes = self.modes(device.spec)
        if brightness is not None:
            if not self.dims(device.spec):
                raise ValueError("this light does not dim")
            attributes["brightness"] = round(number_in(brightness, 0, 255))
        if color is not None:
            mode = self.color_mode(device.spec)
            if mode is None:
                raise ValueError("this light has no color")
            channels = tuple(color[:3]) + ((tuple(color[3:4]) or (0,)) if mode == "rgbw" else ())
            attributes[self.COLOR_ATTRIBUTES[mode]] = [round(number_in(v, 0, 255))
                                                       for v in channels]
            attributes["color_mode"] = mode
        if kelvin is not None:
            if "color_temp" not in modes:
                raise ValueError("this light has no color temperature")
            attributes["color_temp_kelvin"] = round(number_in(kelvin, 1000, 12000))
            attributes["color_mode"] = "color_temp"
        return self.settle(device, "on", attributes)


class FanModel(DomainModel):
    default_state = "off"

    def has_speeds(self, spec: VirtualEntitySpec) -> bool:
        return "set_speed" in spec.features or "percentage" in spec.attributes

    def infer_state(self, attributes: Mapping[str, Any]) -> str | None:
        return _by_level(attributes.get("percentage"), "on", "off")

    def settle(self, device: Device, state: str | None, attributes: dict[str, Any]) -> EntityState:
        state = state or self.infer_state(attributes) or self.default_state
        if not self.has_speeds(device.spec):
            return EntityState(state, attributes)
        percentage = attributes.get("percentage") or 0
        if state == "on":
            percentage = percentage or device.memory.get("percentage", 100)
            device.memory["percentage"] = percentage
        else:
            percentage = 0  # Home Assistant shows a fan that is off at 0 %
        return EntityState(state, {**attributes, "percentage": percentage})

    def switch(self, device: Device, on: bool) -> EntityState:
        return self.settle(device, "on" if on else "off", dict(device.state.attributes))

    def set_percentage(self, device: Device, percentage: Any) -> EntityState:
        percentage = round(number_in(percentage, 0, 100))
        state = "on" if percentage else "off"
        return self.settle(device, state, {**device.state.attributes, "percentage": percentage})


class PositionModel(DomainModel):
    """Covers and valves: open/closed plus an optional 0..100 position; moves are instant,
    so a harness sees the end state at once."""

    default_state = "closed"

    def has_position(self, spec: VirtualEntitySpec) -> bool:
        return "set_position" in spec.features or "current_position" in spec.attributes

    def infer_state(self, attributes: Mapping[str, Any]) -> str | None:
        return _by_level(attributes.get("current_position"), "open", "closed")

    def settle(self, device: Device, state: str | None, attributes: dict[str, Any]) -> EntityState:
        state = state or self.infer_state(attributes) or self.default_state
        if not self.has_position(device.spec):
            return EntityState(state, attributes)
        position = attributes.get("current_position")
        if state == "closed":
            position = 0
        elif state == "open" and not position:
            position = 100
        return EntityState(state, {**attributes, "current_position": position or 0})

    def position(self, device: Device) -> int:
        """Where it is, 0..100, also for one that only knows open and closed."""
        if self.has_position(device.spec):
            return int(device.state.attributes.get("current_position", 0))
        return 100 if device.state.state == "open" else 0

    def move_to(self, device: Device, position: Any) -> EntityState:
        position = number_in(position, 0, 100)
        attributes = dict(device.state.attributes)
        if self.has_position(device.spec):
            attributes["current_position"] = round(position)
        return self.settle(device, "open" if position > 0 else "closed", attributes)

    def stop(self, device: Device) -> EntityState:
        return device.state  # it has already arrived


class CoverModel(PositionModel):
    pass


class ValveModel(PositionModel):
    def has_position(self, spec: VirtualEntitySpec) -> bool:
        return super().has_position(spec) or spec.attributes.get("reports_position") is True


class LockModel(DomainModel):
    default_state = "locked"

    def lock(self, device: Device, locked: bool) -> EntityState:
        return updated(device.state, "locked" if locked else "unlocked")


class ClimateModel(DomainModel):
    default_state = "off"
    _DEFAULT_MODES = ["off", "heat", "cool", "auto"]
    _DEFAULT_RANGES = {"C": (7.0, 35.0), "F": (44.6, 95.0)}  # Home Assistant's defaults
    # hvac_action per mode: (when the room is below target, above it, at it)
    _ACTIONS = {"heat": ("heating", "idle", "idle"), "cool": ("idle", "cooling", "idle"),
                "auto": ("heating", "cooling", "idle"), "heat_cool": ("heating", "cooling", "idle"),
                "dry": ("drying",) * 3, "fan_only": ("fan",) * 3, "off": ("off",) * 3}

    def unit(self, spec: VirtualEntitySpec) -> str:
        return "F" if "F" in str(spec.attributes.get("unit_of_measurement", "")) else "C"

    def with_defaults(self, spec: VirtualEntitySpec,
                      attributes: Mapping[str, Any]) -> dict[str, Any]:
        low, high = self._DEFAULT_RANGES[self.unit(spec)]
        return {"hvac_modes": list(self._DEFAULT_MODES), "min_temp": low, "max_temp": high,
                **attributes}

    def settle(self, device: Device, state: str | None, attributes: dict[str, Any]) -> EntityState:
        state = state or self.default_state
        attributes = self.with_defaults(device.spec, attributes)
        if state != "off":
            device.memory["mode"] = state
        target, current = attributes.get("temperature"), attributes.get("current_temperature")
        below, above, at = self._ACTIONS.get(state, ("idle",) * 3)
        action = at
        if target is not None and current is not None and current != target:
            action = below if current < target else above
        return EntityState(state, {**attributes, "hvac_action": action})

    def set_mode(self, device: Device, mode: Any) -> EntityState:
        if mode not in device.state.attributes["hvac_modes"]:
            raise ValueError(f"not one of {device.state.attributes['hvac_modes']}")
        return self.settle(device, mode, dict(device.state.attributes))

    def set_temperature(self, device: Device, target: Any) -> EntityState:
        attributes = device.state.attributes
        target = number_in(target, attributes["min_temp"], attributes["max_temp"])
        return self.settle(device, device.state.state, {**attributes, "temperature": target})

    def set_power(self, device: Device, on: bool) -> EntityState:
        """Off, or back on in the last mode it had."""
        if not on:
            return self.settle(device, "off", dict(device.state.attributes))
        if device.state.state != "off":
            return device.state
        modes = [m for m in device.state.attributes["hvac_modes"] if m != "off"]
        if not modes:
            raise ValueError("this thermostat only knows off")
        mode = device.memory.get("mode")
        mode = mode if mode in modes else modes[0]
        return self.settle(device, mode, dict(device.state.attributes))


class MediaPlayerModel(DomainModel):
    default_state = "off"

    def power(self, device: Device, on: bool) -> EntityState:
        if not on:
            return updated(device.state, "off")
        return updated(device.state, "idle") if device.state.state == "off" else device.state

    def play(self, device: Device) -> EntityState:
        return updated(device.state, "playing")

    def pause(self, device: Device) -> EntityState:
        return updated(device.state, "paused" if self._playing(device) else None)

    def play_pause(self, device: Device) -> EntityState:
        return updated(device.state, "paused" if self._playing(device) else "playing")

    def skip(self, device: Device, step: int) -> EntityState:
        track = int(device.state.attributes.get("media_track") or 1)
        return updated(device.state, media_track=max(1, track + step))

    def set_volume(self, device: Device, level: Any) -> EntityState:
        return updated(device.state, volume_level=number_in(level, 0, 1))

    @staticmethod
    def _playing(device: Device) -> bool:
        return device.state.state == "playing"


class VacuumModel(DomainModel):
    default_state = "docked"
    COMMANDS = {"start": "cleaning", "pause": "paused", "stop": "idle",
                "return_to_base": "returning"}

    def command(self, device: Device, name: Any) -> EntityState:
        state = lookup(self.COMMANDS, name)
        if state == "paused" and device.state.state not in ("cleaning", "returning"):
            return device.state  # nothing to pause
        return updated(device.state, state)


class SceneModel(DomainModel):
    """Activating a scene sets its entities; its state is when it was last activated."""

    def settle(self, device: Device, state: str | None, attributes: dict[str, Any]) -> EntityState:
        if device.spec.scene_states:
            attributes = {**attributes, "entity_id": list(device.spec.scene_states)}
        return super().settle(device, state, attributes)

    def activate(self, device: Device) -> EntityState:
        return updated(device.state, _timestamp())

    def side_effects(self, device: Device) -> Mapping[str, Mapping[str, Any]]:
        return device.spec.scene_states


class ButtonModel(DomainModel):
    def press(self, device: Device) -> EntityState:
        return updated(device.state, _timestamp())


# The models are stateless: one of each serves every device of its domain.
BINARY_SENSOR, BUTTON, CLIMATE = BinarySensorModel(), ButtonModel(), ClimateModel()
COVER, FAN, LIGHT, LOCK = CoverModel(), FanModel(), LightModel(), LockModel()
MEDIA_PLAYER, SCENE, SENSOR = MediaPlayerModel(), SceneModel(), SensorModel()
SWITCH, TODO, VACUUM, VALVE = SwitchModel(), TodoModel(), VacuumModel(), ValveModel()
MODELS: dict[str, DomainModel] = {
    "binary_sensor": BINARY_SENSOR, "button": BUTTON, "climate": CLIMATE, "cover": COVER,
    "fan": FAN, "light": LIGHT, "lock": LOCK, "media_player": MEDIA_PLAYER, "scene": SCENE,
    "sensor": SENSOR, "switch": SWITCH, "todo": TODO, "vacuum": VACUUM, "valve": VALVE,
}
_PASSIVE = PassiveModel()


def model_for(domain: str) -> DomainModel:
    return MODELS.get(domain, _PASSIVE)
