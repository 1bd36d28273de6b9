"""Home control: switching, dimming, covers, climate, fans, locks, media, vacuums, questions.

Each tool maps its arguments to one ``EntityCommand`` per target entity in Home Assistant
service terms; the device gateway turns those into wire messages. Locks, alarms, valves,
garage doors and gates are answered with a confirmation question first: the executor
(``ToolContext.send``) asks the safety policy (``assistant/safety.py``) about every command.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from assistant.messages import Action, CommandNotSupportedError, EntityCommand, ToolCall, ToolResult
from assistant.registry import DeviceRegistry, Entity
from assistant.safety import redact
from skills.reports import Commands, ReportWatch, Silent
from skills.base import (
    ActionRefusedError,
    ConfirmationRequired,
    Skill,
    ToolContext,
    entity_ids_field,
    said_as_names,
    spoken_names,
    tool,
)

COLORS: dict[str, tuple[int, int, int]] = {
    "white": (255, 255, 255), "warm white": (255, 197, 143), "red": (255, 0, 0),
    "green": (0, 255, 0), "blue": (0, 0, 255), "yellow": (255, 255, 0),
    "orange": (255, 165, 0), "purple": (128, 0, 128), "pink": (255, 192, 203),
    "cyan": (0, 255, 255), "magenta": (255, 0, 255), "brown": (165, 42, 42),
    "gold": (255, 215, 0), "lime": (50, 205, 50), "teal": (0, 128, 128),
    "violet": (238, 130, 238), "indigo": (75, 0, 130),
}
ColorName = Literal[tuple(COLORS)]  # type: ignore[valid-type]
HvacMode = Literal["off", "heat", "cool", "heat_cool", "auto", "dry", "fan_only"]
BRIGHTNESS_STEP_PCT = 25


class Targets(BaseModel):
    model_config = ConfigDict(extra="forbid")
    entity_ids: entity_ids_field()  # type: ignore[valid-type]


class StateQuestion(Targets):
    state: str | None = Field(None, description="ask only which are in this state, e.g. on, "
                                                "open, locked")


class LightArgs(Targets):
    entity_ids: entity_ids_field("light")  # type: ignore[valid-type]
    brightness_pct: int | None = Field(None, ge=0, le=100, description="absolute brightness")
    brightness_step_pct: int | None = Field(
        None, ge=-100, le=100, description="relative change, e.g. 25 brighter, -25 dimmer")
    color: ColorName | None = None  # type: ignore[valid-type]
    color_temp_kelvin: int | None = Field(None, ge=1500, le=9000)

    @model_validator(mode="after")
    def _something_to_set(self) -> LightArgs:
        if all(v is None for v in (self.brightness_pct, self.brightness_step_pct, self.color,
                                   self.color_temp_kelvin)):
            raise ValueError("give brightness_pct, brightness_step_pct, color or color_temp_kelvin")
        return self


class PositionArgs(Targets):
    entity_ids: entity_ids_field("cover", "valve")  # type: ignore[valid-type]
    position: int = Field(..., ge=0, le=100, description="0 closed, 100 fully open")


class TemperatureArgs(Targets):
    entity_ids: entity_ids_field("climate")  # type: ignore[valid-type]
    # In the thermostat's own unit (°C or °F); the device's min/max are checked when encoding.
    temperature: float = Field(..., ge=-20, le=100, description="target temperature")
    hvac_mode: HvacMode | None = None


class HvacModeArgs(Targets):
    entity_ids: entity_ids_field("climate")  # type: ignore[valid-type]
    hvac_mode: HvacMode


class FanSpeedArgs(Targets):
    entity_ids: entity_ids_field("fan")  # type: ignore[valid-type]
    percentage: int = Field(..., ge=0, le=100)


class LockArgs(Targets):
    entity_ids: entity_ids_field("lock")  # type: ignore[valid-type]


class CoverArgs(Targets):
    entity_ids: entity_ids_field("cover", "valve")  # type: ignore[valid-type]


class MediaArgs(Targets):
    entity_ids: entity_ids_field("media_player")  # type: ignore[valid-type]
    command: Literal["play", "pause", "next", "previous"]


class VolumeArgs(Targets):
    entity_ids: entity_ids_field("media_player")  # type: ignore[valid-type]
    volume_pct: int | None = Field(None, ge=0, le=100)
    volume_step_pct: int | None = Field(None, ge=-100, le=100)

    @model_validator(mode="after")
    def _one_of(self) -> VolumeArgs:
        if (self.volume_pct is None) == (self.volume_step_pct is None):
            raise ValueError("give exactly one of volume_pct or volume_step_pct")
        return self


class VacuumArgs(Targets):
    entity_ids: entity_ids_field("vacuum")  # type: ignore[valid-type]
    command: Literal["start", "return_to_base", "stop", "pause"]


class AlarmArgs(Targets):
    entity_ids: entity_ids_field("alarm_control_panel")  # type: ignore[valid-type]
    command: Literal["arm_home", "arm_away", "disarm"]
    code: str | None = Field(None, max_length=32)


# turn_on / turn_off per domain, following Home Assistant's HassTurnOn/HassTurnOff.
# Locks and alarm panels have no on/off: "turn off the front door" must never unlock it.
_ON_SERVICE = {"cover": "open_cover", "valve": "open_valve",
               "scene": "activate", "script": "turn_on", "button": "press",
               "vacuum": "vacuum_start", "media_player": "turn_on"}
_OFF_SERVICE = {"cover": "close_cover", "valve": "close_valve",
                "vacuum": "vacuum_return_to_base", "media_player": "turn_off"}
_SWITCHABLE = frozenset({"light", "switch", "fan", "input_boolean", "climate", "media_player",
                         "humidifier", "siren"})


# service -> (verb for a confirmation question, past tense for the reply)
SERVICE_VERBS: dict[str, tuple[str, str]] = {
    "turn_on": ("turn on", "turned on"), "turn_off": ("turn off", "turned off"),
    "lock": ("lock", "locked"), "unlock": ("unlock", "unlocked"),
    "open_cover": ("open", "opened"), "close_cover": ("close", "closed"),
    "open_valve": ("open", "opened"), "close_valve": ("close", "closed"),
    "set_cover_position": ("move", "moved"), "set_valve_position": ("set", "set"),
    "activate": ("activate", "activated"), "press": ("press", "pressed"),
    "vacuum_start": ("start", "started"), "vacuum_return_to_base": ("send back", "sent back"),
    "alarm_disarm": ("disarm", "disarmed"), "alarm_arm_home": ("arm", "armed"),
    "alarm_arm_away": ("arm", "armed"),
}


def turn_command(on: bool) -> Callable[[Entity], EntityCommand]:
    table = _ON_SERVICE if on else _OFF_SERVICE

    def command(entity: Entity) -> EntityCommand:
        service = table.get(entity.domain)
        if service is None:
            if entity.domain not in _SWITCHABLE:
                hint = " (say lock or unlock)" if entity.domain == "lock" else \
                    " (say arm or disarm)" if entity.domain == "alarm_control_panel" else ""
                raise CommandNotSupportedError(
                    f"the {entity.name} cannot be turned {'on' if on else 'off'}{hint}")
            service = "turn_on" if on else "turn_off"
        return EntityCommand(entity.entity_id, service)

    return command


def is_on(entity: Entity) -> bool:
    return entity.state in {"on", "open", "opening", "locked", "playing", "cleaning", "heat",
                            "cool", "auto", "heat_cool"}


class HomeControlSkill(Skill):
    name = "home_control"
    rehearsable = True
    summary = ("switch lights, plugs, fans and media players on and off, dim lights and change "
               "their colour, move blinds and covers, set thermostats, control music volume "
               "and playback, start or dock vacuums, and tell you what your devices and "
               "sensors report; locks, garage doors, gates, alarms and valves only after you "
               "say yes")

    @tool("turn_on", "Switch devices on; opens covers and valves, activates scenes, presses "
          "buttons, starts vacuums. Never for locks or alarms.", Targets)
    async def turn_on(self, args: Targets, ctx: ToolContext) -> ToolResult:
        return await _act(ctx, "turn_on", args, turn_command(True))

    @tool("turn_off", "Switch devices off; closes covers and valves, sends vacuums back to "
          "their dock. Never for locks or alarms.", Targets)
    async def turn_off(self, args: Targets, ctx: ToolContext) -> ToolResult:
        return await _act(ctx, "turn_off", args, turn_command(False))

    @tool("toggle", "Flip devices between on and off.", Targets)
    async def toggle(self, args: Targets, ctx: ToolContext) -> ToolResult:
        return await _act(ctx, "toggle", args, lambda e: turn_command(not is_on(e))(e))

    @tool("set_light", "Set light brightness (absolute or relative) and/or color.", LightArgs)
    async def set_light(self, args: LightArgs, ctx: ToolContext) -> ToolResult:
        def command(entity: Entity) -> EntityCommand:
            params: dict[str, object] = {}
            if args.brightness_pct is not None:
                if args.brightness_pct == 0:
                    return EntityCommand(entity.entity_id, "turn_off")
                params["brightness"] = round(args.brightness_pct * 255 / 100)
            elif args.brightness_step_pct is not None:
                current = entity.attributes.get("brightness") if entity.state == "on" else 0
                current_pct = round(int(current or 0) * 100 / 255)
                target = max(0, min(100, current_pct + args.brightness_step_pct))
                if target == 0:
                    return EntityCommand(entity.entity_id, "turn_off")
                params["brightness"] = round(target * 255 / 100)
            if args.color is not None:
                params["rgb_color"] = list(COLORS[args.color])
            if args.color_temp_kelvin is not None:
                params["color_temp_kelvin"] = args.color_temp_kelvin
            return EntityCommand(entity.entity_id, "turn_on", params)

        return await _act(ctx, "set_light", args, command, "adjusted {names}")

    @tool("set_position", "Move covers (blinds, curtains, garage doors) or valves to a "
          "position in percent.", PositionArgs)
    async def set_position(self, args: PositionArgs, ctx: ToolContext) -> ToolResult:
        def command(entity: Entity) -> EntityCommand:
            service = "set_valve_position" if entity.domain == "valve" else "set_cover_position"
            return EntityCommand(entity.entity_id, service, {"position": args.position})

        return await _act(ctx, "set_position", args, command, f"set {{names}} to {args.position}%")

    @tool("open", "Open covers, doors, blinds or valves.", CoverArgs)
    async def open(self, args: CoverArgs, ctx: ToolContext) -> ToolResult:
        return await _act(ctx, "open", args, turn_command(True))

    @tool("close", "Close covers, doors, blinds or valves.", CoverArgs)
    async def close(self, args: CoverArgs, ctx: ToolContext) -> ToolResult:
        return await _act(ctx, "close", args, turn_command(False))

    @tool("set_temperature", "Set the target temperature of thermostats.", TemperatureArgs)
    async def set_temperature(self, args: TemperatureArgs, ctx: ToolContext) -> ToolResult:
        params: dict[str, object] = {"temperature": args.temperature}
        if args.hvac_mode:
            params["hvac_mode"] = args.hvac_mode
        return await _act(ctx, "set_temperature", args,
                          lambda e: EntityCommand(e.entity_id, "set_temperature", params),
                          f"set {{names}} to {args.temperature:g} degrees")

    @tool("set_hvac_mode", "Set a thermostat's mode (heat, cool, auto, off ...).", HvacModeArgs)
    async def set_hvac_mode(self, args: HvacModeArgs, ctx: ToolContext) -> ToolResult:
        return await _act(ctx, "set_hvac_mode", args,
                          lambda e: EntityCommand(e.entity_id, "set_hvac_mode",
                                                  {"hvac_mode": args.hvac_mode}),
                          f"set {{names}} to {args.hvac_mode.replace('_', ' ')}")

    @tool("set_fan_speed", "Set fan speed in percent.", FanSpeedArgs)
    async def set_fan_speed(self, args: FanSpeedArgs, ctx: ToolContext) -> ToolResult:
        return await _act(ctx, "set_fan_speed", args,
                          lambda e: EntityCommand(e.entity_id, "set_percentage",
                                                  {"percentage": args.percentage}),
                          f"set {{names}} to {args.percentage}%")

    @tool("lock", "Lock locks. Always confirmed with the user first.", LockArgs)
    async def lock(self, args: LockArgs, ctx: ToolContext) -> ToolResult:
        return await _act(ctx, "lock", args, lambda e: EntityCommand(e.entity_id, "lock"),
                          "locked {names}")

    @tool("unlock", "Unlock locks. Always confirmed with the user first.", LockArgs)
    async def unlock(self, args: LockArgs, ctx: ToolContext) -> ToolResult:
        return await _act(ctx, "unlock", args, lambda e: EntityCommand(e.entity_id, "unlock"),
                          "unlocked {names}")

    @tool("media", "Play, pause, skip to the next or previous track.", MediaArgs)
    async def media(self, args: MediaArgs, ctx: ToolContext) -> ToolResult:
        service = {"play": "media_play", "pause": "media_pause", "next": "media_next_track",
                   "previous": "media_previous_track"}[args.command]
        verb = {"play": "resumed {names}", "pause": "paused {names}",
                "next": "skipped forward on {names}",
                "previous": "went back on {names}"}[args.command]
        return await _act(ctx, "media", args, lambda e: EntityCommand(e.entity_id, service), verb)

    @tool("set_volume", "Set media player volume, absolute or relative, in percent.",
          VolumeArgs)
    async def set_volume(self, args: VolumeArgs, ctx: ToolContext) -> ToolResult:
        def command(entity: Entity) -> EntityCommand:
            if args.volume_pct is not None:
                level = args.volume_pct / 100
            else:
                current = float(entity.attributes.get("volume_level") or 0)
                level = current + (args.volume_step_pct or 0) / 100
            return EntityCommand(entity.entity_id, "volume_set",
                                 {"volume_level": round(max(0.0, min(1.0, level)), 2)})

        return await _act(ctx, "set_volume", args, command, "changed the volume of {names}")

    @tool("vacuum", "Start, stop, pause a robot vacuum or send it back to its dock.",
          VacuumArgs)
    async def vacuum(self, args: VacuumArgs, ctx: ToolContext) -> ToolResult:
        return await _act(ctx, "vacuum", args,
                          lambda e: EntityCommand(e.entity_id, f"vacuum_{args.command}"),
                          {"start": "started {names}",
                           "return_to_base": "sent {names} back to the dock",
                           "stop": "stopped {names}", "pause": "paused {names}"}[args.command])

    @tool("alarm", "Arm or disarm an alarm panel. Always confirmed with the user first.",
          AlarmArgs)
    async def alarm(self, args: AlarmArgs, ctx: ToolContext) -> ToolResult:
        params = {"code": args.code} if args.code else {}
        return await _act(ctx, "alarm", args,
                          lambda e: EntityCommand(e.entity_id, f"alarm_{args.command}", params),
                          {"arm_home": "armed {names} (home)", "arm_away": "armed {names} (away)",
                           "disarm": "disarmed {names}"}[args.command])

    @tool("get_state", "Answer a question about the current state of devices and sensors.",
          StateQuestion)
    async def get_state(self, args: StateQuestion, ctx: ToolContext) -> ToolResult:
        entities = [e for e in map(ctx.registry.get, args.entity_ids) if e is not None]
        if args.state is None or not entities:
            return ToolResult(reply=" ".join(describe_state(e, ctx) for e in entities))
        return ToolResult(reply=_in_state_reply(entities, args.state, ctx))


async def _act(ctx: ToolContext, tool_name: str, args: Targets,
               make_command: Callable[[Entity], EntityCommand],
               done: str | None = None) -> ToolResult:
    """Run one command per entity; ``done`` is the past-tense reply with a {names} slot
    (default: from the services, e.g. "locked {names}"). What the safety policy wants
    confirmed is asked about, the rest is done now."""
    entities = [e for e in map(ctx.registry.get, args.entity_ids) if e is not None]
    offline = [e for e in entities if not e.available]
    if offline:
        return ToolResult(reply=f"{spoken_names(offline).capitalize()} {'is' if len(offline) == 1 else 'are'} "
                          "unavailable right now.", success=False)
    commands, unsupported = [], []
    for entity in entities:
        try:
            commands.append((entity, make_command(entity)))
        except CommandNotSupportedError as exc:
            unsupported.append(said_as_names(exc, entities))
    watch = ReportWatch(ctx.registry, commands, ctx.report_wait)  # hears even quick answers
    try:
        commands, to_ask = await _send_or_ask(ctx, commands)
        outcome = await watch.outcome(commands)
    except ActionRefusedError as exc:
        return ToolResult(reply=f"Sorry, I won't do that: {exc}.", success=False)
    except CommandNotSupportedError as exc:
        return ToolResult(reply=said_as_names(exc, entities), success=False)
    finally:
        watch.close()
    replies, actions = [], ()
    if commands:
        actions = tuple(Action(tool_name, e.entity_id, redact(dict(c.params) or _args_of(args)))
                        for e, c in commands)
        silent = {s.entity.entity_id for s in outcome.silent}
        answered = [(e, c) for e, c in commands if e.entity_id not in silent]
        if answered:
            done = done or _verbs(answered, 1) + " {names}"
            replies.append(f"OK, {done.format(names=spoken_names([e for e, _ in answered]))}"
                           f"{_optimistic_note(outcome.optimistic, answered)}.")
        replies.extend(_silent_replies(outcome.silent))
    pending: tuple[ToolCall, ...] = ()
    if to_ask:
        pending = (ToolCall(tool_name, {**args.model_dump(exclude_none=True),
                                        "entity_ids": [e.entity_id for e, _ in to_ask]}),)
        replies.append(f"Do you want me to {_verbs(to_ask, 0)} {spoken_names([e for e, _ in to_ask])}? "
                       "Say yes to confirm.")
    return ToolResult(reply=" ".join([*replies, *unsupported]), actions=actions,
                      needs_confirmation=pending, success=not unsupported and not outcome.silent)


async def _send_or_ask(ctx: ToolContext, commands: Commands) -> tuple[Commands, Commands]:
    """Sends what the safety policy lets through now; returns (sent, to ask about)."""
    try:
        await ctx.send(commands)
        return commands, []
    except ConfirmationRequired as needed:
        asked = {e.entity_id for e in needed.entities}
        to_ask = [(e, c) for e, c in commands if e.entity_id in asked]
        sent = [(e, c) for e, c in commands if e.entity_id not in asked]
        if sent:
            await ctx.send(sent)
        return sent, to_ask


def _optimistic_note(optimistic: tuple[Entity, ...], answered: Commands) -> str:
    """"; it does not report its state" for devices that never say what they did."""
    if not optimistic:
        return ""
    one = len(optimistic) == 1
    who = ("it" if one else "they") if len(optimistic) == len(answered) \
        else spoken_names(list(optimistic))
    return f"; {who} {'does' if one else 'do'} not report {'its' if one else 'their'} state"


def _silent_replies(silent: tuple[Silent, ...]) -> list[str]:
    """"The Front Door did not report locked.", one sentence per expected state."""
    by_expected: dict[str, list[Entity]] = {}
    for item in silent:
        state = item.expected[0] if item.expected else None
        what = "back" if state is None else \
            f"being {state}" if state in {"on", "off"} else state.replace("_", " ")
        by_expected.setdefault(what, []).append(item.entity)
    replies = []
    for what, entities in by_expected.items():
        names = spoken_names(entities)
        replies.append(f"{names[0].upper()}{names[1:]} did not report {what}.")
    return replies


def _args_of(args: Targets) -> dict[str, object]:
    return args.model_dump(exclude={"entity_ids"}, exclude_none=True)


def _verbs(commands: list[tuple[Entity, EntityCommand]], tense: int) -> str:
    """The commands' verbs ("lock", or "locked" for tense 1), joined when they differ."""
    verbs = dict.fromkeys(SERVICE_VERBS.get(c.service, (c.service.replace("_", " "),) * 2)[tense]
                          for _, c in commands)
    return " / ".join(verbs)


def _in_state_reply(entities: list[Entity], state: str, ctx: ToolContext) -> str:
    """"Which lights are on", "is any window open", "are all doors locked": those of
    ``entities`` in ``state`` (as reported, or as said: a window sensor's "on" is "open")."""
    said = state.replace("_", " ")
    inside = [e for e in entities if e.available and state in
              {e.state, _binary_words(e.device_class).get(e.state or "")}]
    if len(entities) == 1:
        sentence = describe_state(entities[0], ctx)
        statement = f"{sentence[0].lower()}{sentence[1:]}"
        return f"Yes, {statement}" if inside else f"No, {statement}"
    if not inside:
        return f"None of the {len(entities)} is {said}."
    if len(inside) == 1:
        return f"1 of {len(entities)} is {said}: {spoken_names(inside)}."
    return f"{len(inside)} of {len(entities)} are {said}: {spoken_names(inside)}."


def describe_state(entity: Entity, ctx: ToolContext) -> str:
    """One sentence about an entity, e.g. "The garage door is closed." """
    attrs = entity.attributes
    if not entity.available:
        return f"The {entity.name} is unavailable."
    if not entity.reported and entity.state is not None:
        # What is known was persisted before a restart: it may no longer be true.
        return f"The {entity.name} has not reported its state since the hub started."
    if entity.domain == "climate":
        parts = [f"The {entity.name} is set to {entity.state or 'unknown'}"]
        if attrs.get("temperature") is not None:
            parts.append(f"targeting {attrs['temperature']} degrees")
        if attrs.get("current_temperature") is not None:
            parts.append(f"and it is {attrs['current_temperature']} degrees now")
        return " ".join(parts) + "."
    if entity.domain == "sensor":
        unit = attrs.get("unit_of_measurement") or ""
        unit = {"°C": " degrees", "°F": " degrees Fahrenheit", "%": " percent"}.get(unit, f" {unit}")
        return f"The {entity.name} is {entity.state}{unit.rstrip()}."
    if entity.domain == "binary_sensor":
        state = _binary_words(entity.device_class).get(entity.state or "", entity.state)
        return f"The {entity.name} is {state}."
    extra = ""
    if entity.domain == "light" and entity.state == "on" and attrs.get("brightness") is not None:
        extra = f" at {round(int(attrs['brightness']) * 100 / 255)}% brightness"
    if entity.domain in {"cover", "valve"} and attrs.get("current_position") is not None \
            and entity.state not in {"closed"}:
        extra = f" ({attrs['current_position']}% open)"
    return f"The {entity.name} is {(entity.state or 'unknown').replace('_', ' ')}{extra}."


def _binary_words(device_class: str | None) -> dict[str, str]:
    return {
        "door": {"on": "open", "off": "closed"}, "window": {"on": "open", "off": "closed"},
        "garage_door": {"on": "open", "off": "closed"}, "opening": {"on": "open", "off": "closed"},
        "motion": {"on": "detecting motion", "off": "not detecting motion"},
        "occupancy": {"on": "occupied", "off": "clear"},
        "lock": {"on": "unlocked", "off": "locked"},
        "moisture": {"on": "wet", "off": "dry"},
    }.get(device_class or "", {"on": "on", "off": "off"})


# -- saying what kept calls will do ---------------------------------------------------------

_KEPT_VERBS = {
    "set_light": "adjust", "set_position": "move", "set_temperature": "set",
    "set_hvac_mode": "set", "set_fan_speed": "set", "set_volume": "change the volume of",
    "get_state": "check",
}
_COMMAND_VERBS = {
    "media": {"play": "resume", "pause": "pause", "next": "skip forward on",
              "previous": "go back on"},
    "vacuum": {"start": "start", "return_to_base": "send back", "stop": "stop",
               "pause": "pause"},
    "alarm": {"arm_home": "arm", "arm_away": "arm", "disarm": "disarm"},
}
# argument -> how its value ends the phrase ("set the Heater to 21 degrees")
_VALUE_ENDINGS = {"position": " to {}%", "temperature": " to {:g} degrees",
                  "percentage": " to {}%", "brightness_pct": " to {}%", "volume_pct": " to {}%",
                  "hvac_mode": " to {}"}


def said_calls(calls: Iterable[ToolCall], registry: DeviceRegistry) -> str:
    """What calls kept for later will do, as said after "I'll": "turn on the Kitchen Light
    and close the Living Room Blinds" (each device by what on or off means for it)."""
    phrases = []
    for call in calls:
        entities = [e for e in map(registry.get, call.args.get("entity_ids") or ())
                    if e is not None]
        ending = "".join(form.format(_said_value(call.args[key]))
                         for key, form in _VALUE_ENDINGS.items() if key in call.args)
        phrases.extend(" ".join(part for part in (verb, spoken_names(group)) if part) + ending
                       for verb, group in _verbs_for(call, entities))
    return " and ".join(phrases)


def _verbs_for(call: ToolCall, entities: list[Entity]) -> list[tuple[str, list[Entity]]]:
    if call.tool in ("turn_on", "turn_off", "open", "close"):
        on = call.tool in ("turn_on", "open")
        grouped: dict[str, list[Entity]] = {}
        for entity in entities:
            try:
                service = turn_command(on)(entity).service
            except CommandNotSupportedError:
                service = "turn_on" if on else "turn_off"
            grouped.setdefault(SERVICE_VERBS.get(service, (service.replace("_", " "),))[0],
                               []).append(entity)
        return list(grouped.items()) or [(call.tool.replace("_", " "), [])]
    verb = _COMMAND_VERBS.get(call.tool, {}).get(str(call.args.get("command"))) \
        or _KEPT_VERBS.get(call.tool) or call.tool.replace("_", " ")
    return [(verb, entities)]


def _said_value(value: Any) -> Any:
    return value.replace("_", " ") if isinstance(value, str) else value
