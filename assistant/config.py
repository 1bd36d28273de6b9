"""Configuration: pydantic models loaded from YAML, with environment-variable overrides.

Unknown keys are errors. Any key can be overridden from the environment as
``MIMO_HOME__<SECTION>__<KEY>=value`` (double underscores between levels; the value is
parsed as a YAML scalar), e.g. ``MIMO_HOME__MQTT__HOST=broker.lan``. Secrets come from a
file (``mqtt.password_file``) or the ``MIMO_HOME__MQTT__PASSWORD`` variable.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)

from assistant.device_data import DeviceLimits
from assistant.llm.config import LlmConfig
from assistant.voice.config import VoiceConfig

ENV_PREFIX = "MIMO_HOME__"
DEFAULT_CONFIG_PATH = Path("/etc/mimo-home/mimo-home.yaml")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TlsConfig(Strict):
    enabled: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    insecure: bool = Field(False, description="skip hostname verification (self-signed brokers)")


class MqttConfig(Strict):
    host: str = "localhost"
    port: int = Field(1883, ge=1, le=65535)
    client_id: str = "mimo-home"
    username: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    tls: TlsConfig = TlsConfig()
    keepalive_s: int = Field(30, ge=5, le=3600)
    base_topic: str = Field("mimo-home", min_length=1)
    reconnect_min_s: float = Field(1.0, gt=0)
    reconnect_max_s: float = Field(30.0, gt=0)
    # Commands issued while the broker is away wait here, in order, up to these bounds; a
    # command older than queue_max_age_s is dropped, also when paho would re-send it after
    # a reconnect because the broker never acknowledged it.
    queue_max: int = Field(100, ge=1, le=10_000)
    queue_max_age_s: float = Field(30.0, gt=0)

    @model_validator(mode="after")
    def _one_password_source(self) -> MqttConfig:
        if self.password is not None and self.password_file is not None:
            raise ValueError("give either password or password_file, not both")
        if "#" in self.base_topic or "+" in self.base_topic:
            raise ValueError("base_topic must not contain MQTT wildcards")
        return self

    def resolved_password(self) -> str | None:
        if self.password_file is not None:
            return self.password_file.read_text(encoding="utf-8").strip()
        return self.password.get_secret_value() if self.password else None


class FloorConfig(Strict):
    id: str
    name: str
    level: int | None = None
    aliases: list[str] = []


class AreaConfig(Strict):
    id: str
    name: str
    floor: str | None = None
    aliases: list[str] = []


class EntityOverride(Strict):
    name: str | None = None
    aliases: list[str] = []
    area: str | None = None
    # true: always ask before acting on it; false: lift a mark that came from its name or
    # its topics only (locks, alarms, valves, garage doors and gates always ask).
    sensitive: bool | None = None


class HomeConfig(Strict):
    floors: list[FloorConfig] = []
    areas: list[AreaConfig] = []
    # Per-entity additions keyed by entity id: extra aliases, a better name, the area.
    entities: dict[str, EntityOverride] = {}

    @model_validator(mode="after")
    def _areas_name_known_floors(self) -> HomeConfig:
        floor_ids = {f.id for f in self.floors}
        for area in self.areas:
            if area.floor is not None and area.floor not in floor_ids:
                raise ValueError(f"area {area.id!r} names unknown floor {area.floor!r}")
        return self


class ExposureRule(Strict):
    entities: list[str] = []
    domains: list[str] = []
    areas: list[str] = []  # area ids
    entity_categories: list[Literal["config", "diagnostic"]] = []


class ExposureConfig(Strict):
    """Which entities the assistant may see and touch. An entity id named in ``exclude`` is
    hidden and one named in ``include`` is shown, whatever else matches; then anything
    matching ``exclude`` is hidden; a non-empty ``include`` shows only what it matches."""

    include: ExposureRule = ExposureRule()
    exclude: ExposureRule = ExposureRule(entity_categories=["config", "diagnostic"])
    # Entities whose device says ``enabled_by_default: false`` stay hidden unless included.
    expose_disabled_by_default: bool = False


def _topic_prefix(value: str) -> str:
    value = value.strip("/")
    if not value or "#" in value or "+" in value or "\x00" in value:
        raise ValueError("a topic prefix must be non-empty and hold no MQTT wildcard")
    return value


# Where an adapter's devices publish: a topic prefix without wildcards.
TopicPrefix = Annotated[str, AfterValidator(_topic_prefix)]


class HaDiscoveryConfig(Strict):
    enabled: bool = True
    prefix: TopicPrefix = "homeassistant"


class Zigbee2MqttConfig(Strict):
    enabled: bool = True
    base_topic: TopicPrefix = "zigbee2mqtt"  # Zigbee2MQTT's mqtt.base_topic


class TasmotaConfig(Strict):
    enabled: bool = True
    discovery_prefix: TopicPrefix = "tasmota/discovery"  # where Tasmota (9.x+) announces itself


class ShellyConfig(Strict):
    enabled: bool = True
    # Gen2+ devices' MQTT topic prefixes (their mqtt.topic_prefix); devices that say
    # "<prefix>/online" are found without being listed.
    prefixes: list[TopicPrefix] = []
    rpc_timeout_s: float = Field(5.0, gt=0, le=60)


class HomieConfig(Strict):
    enabled: bool = True
    base_topic: TopicPrefix = "homie"  # v5 devices live under <base>/5/<id>, v4 under <base>/<id>


class AdaptersConfig(Strict):
    ha_discovery: HaDiscoveryConfig = HaDiscoveryConfig()
    zigbee2mqtt: Zigbee2MqttConfig = Zigbee2MqttConfig()
    tasmota: TasmotaConfig = TasmotaConfig()
    shelly: ShellyConfig = ShellyConfig()
    homie: HomieConfig = HomieConfig()
    # A device that arrives both in its own protocol and over HA discovery becomes one set
    # of entities: from its native adapter ("native") or from HA discovery.
    prefer: Literal["native", "ha_discovery"] = "native"
    # What devices may send: payload sizes, entity/area/alias/attribute counts, text lengths.
    limits: DeviceLimits = DeviceLimits()


class MdnsConfig(Strict):
    """The appliance inventory: what the LAN advertises over mDNS (and a broker to use)."""

    enabled: bool = True
    # Addresses of the interfaces to browse on; empty: all of them.
    interfaces: list[str] = []


class AnnounceConfig(Strict):
    """mimo-home as a device in Home Assistant (discovery under adapters.ha_discovery.prefix)."""

    enabled: bool = True


def _valid_time_zone(name: str | None) -> str | None:
    if name is not None:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {name!r} (an IANA name such as "
                             "Europe/Rome)") from None
    return name


class LocationConfig(Strict):
    """Where the home is: for sunrise and sunset, computed locally."""

    latitude: float = Field(..., ge=-90, le=90)
    longitude: float = Field(..., ge=-180, le=180)
    elevation: float = Field(0.0, ge=-500, le=9000)


class AutomationConfig(Strict):
    """Timers, reminders, schedules, lists and rules (docs/AUTOMATIONS.md)."""

    enabled: bool = True
    # IANA name; None: the system's local time zone.
    time_zone: Annotated[str | None, AfterValidator(_valid_time_zone)] = None
    location: LocationConfig | None = None
    # A job missed while the hub was down still runs at start within this; later it is
    # reported instead (a timer rings late rather than not at all).
    misfire_grace_s: float = Field(300.0, ge=0, le=86_400)
    lists: list[Annotated[str, Field(min_length=1, max_length=60)]] = Field(
        default_factory=lambda: ["Shopping List", "To-do"], max_length=20)
    # A request that names no list ("put milk on the list"): the first of `lists` (the shopping
    # list), or "ask" which one when there are several.
    unnamed_list: Literal["first", "ask"] = "first"
    # Home Assistant automation YAML files; None: <state_dir>/rules.
    rules_dir: Path | None = None
    # Sensitive devices (locks, garage doors, ...) rule files may command without a yes.
    rules_allow_sensitive: list[str] = []
    rules_max_runs_per_minute: int = Field(30, ge=1, le=600)


def _known_language(code: str) -> str:
    """A language home-assistant-intents covers ("it", "es", "pt-BR"): its intents are the
    fast path's, and replies, confirmation words and speech follow it."""
    from home_assistant_intents import get_languages

    known = get_languages()
    if code not in known:
        close = difflib.get_close_matches(code, known, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ValueError(f"unknown language {code!r}{hint}; known: {', '.join(known)}")
    return code


class UnderstandingConfig(Strict):
    language: Annotated[str, AfterValidator(_known_language)] = "en"
    fast_path: bool = True
    # How long a "yes" still confirms a lock/garage/valve/alarm action.
    confirmation_window_s: float = Field(20.0, gt=0, le=300)
    # How long a reply waits for the devices to report the state a command asked for.
    report_wait_s: float = Field(1.5, ge=0, le=30)


class Config(Strict):
    state_dir: Path = Path("/var/lib/mimo-home")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    mqtt: MqttConfig = MqttConfig()
    home: HomeConfig = HomeConfig()
    adapters: AdaptersConfig = AdaptersConfig()
    exposure: ExposureConfig = ExposureConfig()
    mdns: MdnsConfig = MdnsConfig()
    announce: AnnounceConfig = AnnounceConfig()
    understanding: UnderstandingConfig = UnderstandingConfig()
    automation: AutomationConfig = AutomationConfig()
    llm: LlmConfig = LlmConfig()
    voice: VoiceConfig = VoiceConfig()

    @model_validator(mode="after")
    def _voice_fits_the_language(self) -> Config:
        self.voice.for_home(self.understanding.language, self.state_dir)  # raises on a misfit
        return self


class ConfigError(Exception):
    """Everything wrong with a configuration, one problem per line."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


def load_config(path: Path | str | None, environ: Mapping[str, str] | None = None) -> Config:
    """Read ``path`` (None: defaults only), apply environment overrides, validate."""
    environ = os.environ if environ is None else environ
    source = str(path) if path else "(defaults)"
    data: Any = {}
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(source, [f"cannot read the file: {exc.strerror or exc}"]) from None
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(source, [f"not valid YAML: {exc}"]) from None
        if not isinstance(data, dict):
            raise ConfigError(source, ["the top level must be a mapping of keys to values"])
    data = apply_env_overrides(data, environ)
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, describe_validation_error(exc)) from None


def apply_env_overrides(data: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    merged = dict(data)
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or not raw:
            continue
        keys = [k.lower() for k in name[len(ENV_PREFIX):].split("__")]
        node = merged
        for key in keys[:-1]:
            child = node.get(key)
            node[key] = dict(child) if isinstance(child, dict) else {}
            node = node[key]
        node[keys[-1]] = _env_scalar(raw)
    return merged


def _env_scalar(raw: str) -> Any:
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw


def describe_validation_error(exc: ValidationError) -> list[str]:
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "(top level)"
        if error["type"] == "extra_forbidden":
            problems.append(f"{where}: unknown key{_closest_key_hint(error['loc'])}")
            continue
        expected = error["msg"]
        got = error.get("input")
        shown = "" if isinstance(got, dict) or got is None else f" (got {got!r})"
        problems.append(f"{where}: {expected}{shown}")
    return problems


def _closest_key_hint(loc: tuple[int | str, ...]) -> str:
    """' (did you mean port?)' for mqtt.portt: the nearest field name at that path."""
    known = _field_names_at(Config, loc[:-1])
    close = difflib.get_close_matches(str(loc[-1]), known, n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def _field_names_at(annotation: Any, path: tuple[int | str, ...]) -> list[str]:
    """The field names of the model found by following ``path`` (field names, list indexes,
    mapping keys) from ``annotation``; empty where the path leads to no model."""
    origin = get_origin(annotation)
    if origin in (Union, UnionType):
        return [name for arg in get_args(annotation) for name in _field_names_at(arg, path)]
    if origin is not None:  # list[X], dict[str, X]: an index or a key leads to X
        args = get_args(annotation)
        return _field_names_at(args[-1], path[1:]) if path and args else []
    if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
        return []
    if not path:
        return list(annotation.model_fields)
    field = annotation.model_fields.get(str(path[0]))
    return _field_names_at(field.annotation, path[1:]) if field else []


def mqtt_env_overrides() -> dict[str, object]:
    """The ``mqtt`` keys the environment sets (``MIMO_HOME__MQTT__<KEY>``)."""
    section = apply_env_overrides({}, os.environ).get("mqtt")
    return section if isinstance(section, dict) else {}
