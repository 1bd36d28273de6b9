"""Home Assistant MQTT discovery adapter.

Devices that speak Home Assistant's MQTT discovery announce themselves with retained JSON
configs on ``<prefix>/<component>/[<node_id>/]<object_id>/config`` (one entity) or
``<prefix>/device/<device_id>/config`` (a ``cmps`` map of entities). This adapter turns those
configs into registry entities, follows their state, attribute and availability topics, and
encodes entity commands in the payload format each config declares.

Discovery follows Home Assistant's rules: abbreviated keys (``stat_t``, ``cmd_t``, ``avty_t``,
``dev`` with ``ids``/``sa`` ...) are expanded; a ``~`` at the start or end of a ``*topic`` value
(and of an availability entry's ``topic``) is replaced by the config's ``~`` base; a device
config shares ``availability*``, ``payload_(not_)available``, ``state_topic`` and
``command_topic`` with components that do not set them; an empty retained config removes the
entity, as does a component omitted from (or reduced to its ``p`` in) a re-published ``cmps``.
Leniencies: a device-level ``~`` also serves components without their own, and
``availability_topic`` may be combined with an ``availability`` list.

Entity ids: ``default_entity_id``, else the legacy ``object_id`` option, else the object id of
the discovery topic (``<device id>_<component id>`` for device configs); on a clash with an
entity owned by another config or adapter, ``<component>.<node_id>_<object_id>`` is tried, then
the first with ``_2``, ``_3``... An entity id stays bound to the ``unique_id`` that created it:
after a restart a retained config with another ``unique_id`` (or none) never takes over a
persisted entity, its aliases and area.

Hostile devices are data (limits in ``DeviceLimits``, ``adapters.limits`` in the config):
oversized payloads are dropped with a warning; every topic must be one exact topic (a config
naming ``+``/``#``, a NUL or no level at all is refused, so no entity listens to the whole
broker); device strings, lists and attributes are cleaned and bounded as they arrive.

Supported components: alarm_control_panel, binary_sensor, button, climate, cover, fan, light
(default and ``schema: json``), lock, media_player (see below), scene, sensor, switch, vacuum
(state schema) and valve. Left out: ``schema: template`` lights, cover tilt, light hs/xy/rgbw/
rgbww/white/effect commands, climate fan/swing/humidity/dual set points, vacuum fan speed and
send_command, and the other platforms (number, select, text, ...).

media_player (best effort)
    Home Assistant has no MQTT media_player platform. Configs on
    ``<prefix>/media_player/<object_id>/config`` are read in the de-facto community layout:

    ===================================  ===========================================
    state_topic                          off/on/idle/playing/paused/standby/buffering
                                         (case-insensitive, "stopped" means idle)
    volume_state_topic                   volume 0..1
    volume_set_topic                     volume_set publishes round(volume_level, 2)
    command_topic / payload_on, _off     turn_on / turn_off (power), "ON" / "OFF"
    play_topic / payload_play            media_play, payload default "Play"
    pause_topic / payload_pause          media_pause, "Pause"
    play_pause_topic / payload_play_pause  media_play_pause, "PlayPause"
    next_topic / payload_next            media_next_track, "Next"
    previous_topic / payload_previous    media_previous_track, "Previous"
    media_title_topic, media_artist_topic, media_album_name_topic   text attributes
    ===================================  ===========================================

    The spellings of the ``mqtt_media_player`` custom integration (``state_state_topic``,
    ``state_volume_topic``, ``command_volume_topic``, ``command_play_topic`` with
    ``command_play_payload``, ``state_title_topic`` ...) are accepted as aliases.

Templates are evaluated by a tiny evaluator (no Jinja, no eval) that knows the forms devices
use in practice: ``{{ value }}``, ``{{ value_json.key }}``, ``{{ value_json['key'] }}``,
``{{ value_json.a.b }}``, ``{{ value_json.list[0] }}``, each optionally piped through ``int``,
``float``, ``round(n)``, ``upper`` or ``lower``, with literal text around the expressions kept.
A value template it cannot evaluate is logged once and the raw payload is used; a command
whose template it cannot render is refused.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, ClassVar

from assistant.device_data import (
    DeviceLimits,
    bounded_attributes,
    bounded_text_list,
    bounded_value,
    clean_text,
)
from assistant.messages import EntityCommand, MqttMessage
from assistant.registry import DeviceRegistry, Entity, RegistryFullError, normalize_name
from device_adapters.base import (
    AdapterContext,
    CommandNotSupportedError,
    DeviceAdapter,
    Unsubscribe,
)

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_PREFIX",
    "HomeAssistantDiscoveryAdapter",
    "TemplateRenderError",
    "UnsupportedTemplateError",
    "render_template",
]

Config = dict[str, Any]
DiscoveryKey = tuple[str, str]  # (component, discovery id), as Home Assistant keys configs

DEFAULT_PREFIX = "homeassistant"
SOURCE = "ha_discovery"
TOPIC_BASE = "~"
PAYLOAD_NONE = "None"  # Home Assistant's payload for "state unknown"
COMMAND_QOS = 1

_DISCOVERY_TOPIC = re.compile(
    r"(?P<component>\w+)/(?:(?P<node_id>[a-zA-Z0-9_-]+)/)?(?P<object_id>[a-zA-Z0-9_-]+)/config"
)
_COMPONENT_ID = re.compile(r"[a-zA-Z0-9_-]+")
_MAX_TOPIC_BYTES = 65535  # MQTT's limit
_MAX_ID_SUFFIX = 100  # entity ids tried per config: <id>_2 .. <id>_100
_MAX_WARNED = 1000  # distinct warn-once keys kept: hostile topics must not grow memory

# -- Home Assistant's discovery vocabulary --------------------------------------------------

ABBREVIATIONS: dict[str, str] = {
    "act_t": "action_topic",
    "act_tpl": "action_template",
    "atype": "automation_type",
    "aux_cmd_t": "aux_command_topic",
    "aux_stat_t": "aux_state_topic",
    "aux_stat_tpl": "aux_state_template",
    "av_tones": "available_tones",
    "avty": "availability",
    "avty_mode": "availability_mode",
    "avty_t": "availability_topic",
    "avty_tpl": "availability_template",
    "away_mode_cmd_t": "away_mode_command_topic",
    "away_mode_stat_t": "away_mode_state_topic",
    "away_mode_stat_tpl": "away_mode_state_template",
    "b_tpl": "blue_template",
    "bat_lev_t": "battery_level_topic",
    "bat_lev_tpl": "battery_level_template",
    "bri_cmd_t": "brightness_command_topic",
    "bri_cmd_tpl": "brightness_command_template",
    "bri_scl": "brightness_scale",
    "bri_stat_t": "brightness_state_topic",
    "bri_tpl": "brightness_template",
    "bri_val_tpl": "brightness_value_template",
    "chrg_t": "charging_topic",
    "chrg_tpl": "charging_template",
    "cln_t": "cleaning_topic",
    "cln_tpl": "cleaning_template",
    "clr_temp_cmd_t": "color_temp_command_topic",
    "clr_temp_cmd_tpl": "color_temp_command_template",
    "clr_temp_k": "color_temp_kelvin",
    "clr_temp_stat_t": "color_temp_state_topic",
    "clr_temp_tpl": "color_temp_template",
    "clr_temp_val_tpl": "color_temp_value_template",
    "clrm": "color_mode",
    "clrm_stat_t": "color_mode_state_topic",
    "clrm_val_tpl": "color_mode_value_template",
    "cmd_off_tpl": "command_off_template",
    "cmd_on_tpl": "command_on_template",
    "cmd_t": "command_topic",
    "cmd_tpl": "command_template",
    "cmps": "components",
    "cod_arm_req": "code_arm_required",
    "cod_dis_req": "code_disarm_required",
    "cod_trig_req": "code_trigger_required",
    "cont_type": "content_type",
    "curr_temp_t": "current_temperature_topic",
    "curr_temp_tpl": "current_temperature_template",
    "def_ent_id": "default_entity_id",
    "dev": "device",
    "dev_cla": "device_class",
    "dir_cmd_t": "direction_command_topic",
    "dir_cmd_tpl": "direction_command_template",
    "dir_stat_t": "direction_state_topic",
    "dir_val_tpl": "direction_value_template",
    "dock_t": "docked_topic",
    "dock_tpl": "docked_template",
    "dsp_prc": "display_precision",
    "e": "encoding",
    "en": "enabled_by_default",
    "ent_cat": "entity_category",
    "ent_pic": "entity_picture",
    "err_t": "error_topic",
    "err_tpl": "error_template",
    "evt_typ": "event_types",
    "exp_aft": "expire_after",
    "fan_mode_cmd_t": "fan_mode_command_topic",
    "fan_mode_cmd_tpl": "fan_mode_command_template",
    "fan_mode_stat_t": "fan_mode_state_topic",
    "fan_mode_stat_tpl": "fan_mode_state_template",
    "fanspd_lst": "fan_speed_list",
    "fanspd_t": "fan_speed_topic",
    "fanspd_tpl": "fan_speed_template",
    "flsh": "flash",
    "flsh_tlng": "flash_time_long",
    "flsh_tsht": "flash_time_short",
    "frc_upd": "force_update",
    "fx_cmd_t": "effect_command_topic",
    "fx_cmd_tpl": "effect_command_template",
    "fx_list": "effect_list",
    "fx_stat_t": "effect_state_topic",
    "fx_tpl": "effect_template",
    "fx_val_tpl": "effect_value_template",
    "g_tpl": "green_template",
    "hold_cmd_t": "hold_command_topic",
    "hold_cmd_tpl": "hold_command_template",
    "hold_stat_t": "hold_state_topic",
    "hold_stat_tpl": "hold_state_template",
    "hs_cmd_t": "hs_command_topic",
    "hs_cmd_tpl": "hs_command_template",
    "hs_stat_t": "hs_state_topic",
    "hs_val_tpl": "hs_value_template",
    "hum_cmd_t": "target_humidity_command_topic",
    "hum_cmd_tpl": "target_humidity_command_template",
    "hum_stat_t": "target_humidity_state_topic",
    "hum_state_tpl": "target_humidity_state_template",
    "ic": "icon",
    "img_e": "image_encoding",
    "img_t": "image_topic",
    "init": "initial",
    "json_attr": "json_attributes",
    "json_attr_t": "json_attributes_topic",
    "json_attr_tpl": "json_attributes_template",
    "l_ver_t": "latest_version_topic",
    "l_ver_tpl": "latest_version_template",
    "lrst_t": "last_reset_topic",
    "lrst_val_tpl": "last_reset_value_template",
    "max": "max",
    "max_hum": "max_humidity",
    "max_k": "max_kelvin",
    "max_mirs": "max_mireds",
    "max_temp": "max_temp",
    "migr_discvry": "migrate_discovery",
    "min": "min",
    "min_hum": "min_humidity",
    "min_k": "min_kelvin",
    "min_mirs": "min_mireds",
    "min_temp": "min_temp",
    "mode": "mode",
    "mode_cmd_t": "mode_command_topic",
    "mode_cmd_tpl": "mode_command_template",
    "mode_stat_t": "mode_state_topic",
    "mode_stat_tpl": "mode_state_template",
    "modes": "modes",
    "name": "name",
    "o": "origin",
    "obj_id": "object_id",
    "off_dly": "off_delay",
    "on_cmd_type": "on_command_type",
    "ops": "options",
    "opt": "optimistic",
    "osc_cmd_t": "oscillation_command_topic",
    "osc_cmd_tpl": "oscillation_command_template",
    "osc_stat_t": "oscillation_state_topic",
    "osc_val_tpl": "oscillation_value_template",
    "p": "platform",
    "pct_cmd_t": "percentage_command_topic",
    "pct_cmd_tpl": "percentage_command_template",
    "pct_stat_t": "percentage_state_topic",
    "pct_val_tpl": "percentage_value_template",
    "pl": "payload",
    "pl_arm_away": "payload_arm_away",
    "pl_arm_custom_b": "payload_arm_custom_bypass",
    "pl_arm_home": "payload_arm_home",
    "pl_arm_nite": "payload_arm_night",
    "pl_arm_vacation": "payload_arm_vacation",
    "pl_avail": "payload_available",
    "pl_cln_sp": "payload_clean_spot",
    "pl_cls": "payload_close",
    "pl_dir_fwd": "payload_direction_forward",
    "pl_dir_rev": "payload_direction_reverse",
    "pl_disarm": "payload_disarm",
    "pl_home": "payload_home",
    "pl_inst": "payload_install",
    "pl_loc": "payload_locate",
    "pl_lock": "payload_lock",
    "pl_not_avail": "payload_not_available",
    "pl_not_home": "payload_not_home",
    "pl_off": "payload_off",
    "pl_on": "payload_on",
    "pl_open": "payload_open",
    "pl_osc_off": "payload_oscillation_off",
    "pl_osc_on": "payload_oscillation_on",
    "pl_paus": "payload_pause",
    "pl_prs": "payload_press",
    "pl_ret": "payload_return_to_base",
    "pl_rst": "payload_reset",
    "pl_rst_hum": "payload_reset_humidity",
    "pl_rst_mode": "payload_reset_mode",
    "pl_rst_pct": "payload_reset_percentage",
    "pl_rst_pr_mode": "payload_reset_preset_mode",
    "pl_stop": "payload_stop",
    "pl_stop_tilt": "payload_stop_tilt",
    "pl_stpa": "payload_start_pause",
    "pl_strt": "payload_start",
    "pl_toff": "payload_turn_off",
    "pl_ton": "payload_turn_on",
    "pl_trig": "payload_trigger",
    "pl_unlk": "payload_unlock",
    "pos": "reports_position",
    "pos_clsd": "position_closed",
    "pos_open": "position_open",
    "pos_t": "position_topic",
    "pos_tpl": "position_template",
    "pow_cmd_t": "power_command_topic",
    "pow_cmd_tpl": "power_command_template",
    "pr_mode_cmd_t": "preset_mode_command_topic",
    "pr_mode_cmd_tpl": "preset_mode_command_template",
    "pr_mode_stat_t": "preset_mode_state_topic",
    "pr_mode_val_tpl": "preset_mode_value_template",
    "pr_modes": "preset_modes",
    "ptrn": "pattern",
    "r_tpl": "red_template",
    "rel_s": "release_summary",
    "rel_u": "release_url",
    "ret": "retain",
    "rgb_cmd_t": "rgb_command_topic",
    "rgb_cmd_tpl": "rgb_command_template",
    "rgb_stat_t": "rgb_state_topic",
    "rgb_val_tpl": "rgb_value_template",
    "rgbw_cmd_t": "rgbw_command_topic",
    "rgbw_cmd_tpl": "rgbw_command_template",
    "rgbw_stat_t": "rgbw_state_topic",
    "rgbw_val_tpl": "rgbw_value_template",
    "rgbww_cmd_t": "rgbww_command_topic",
    "rgbww_cmd_tpl": "rgbww_command_template",
    "rgbww_stat_t": "rgbww_state_topic",
    "rgbww_val_tpl": "rgbww_value_template",
    "send_cmd_t": "send_command_topic",
    "send_if_off": "send_if_off",
    "set_fan_spd_t": "set_fan_speed_topic",
    "set_pos_t": "set_position_topic",
    "set_pos_tpl": "set_position_template",
    "spd_rng_max": "speed_range_max",
    "spd_rng_min": "speed_range_min",
    "src_type": "source_type",
    "stat_cla": "state_class",
    "stat_closing": "state_closing",
    "stat_clsd": "state_closed",
    "stat_jam": "state_jammed",
    "stat_locked": "state_locked",
    "stat_locking": "state_locking",
    "stat_off": "state_off",
    "stat_on": "state_on",
    "stat_open": "state_open",
    "stat_opening": "state_opening",
    "stat_stopped": "state_stopped",
    "stat_t": "state_topic",
    "stat_tpl": "state_template",
    "stat_unlocked": "state_unlocked",
    "stat_unlocking": "state_unlocking",
    "stat_val_tpl": "state_value_template",
    "step": "step",
    "stype": "subtype",
    "sug_dsp_prc": "suggested_display_precision",
    "sup_clrm": "supported_color_modes",
    "sup_dur": "support_duration",
    "sup_feat": "supported_features",
    "sup_vol": "support_volume_set",
    "swing_mode_cmd_t": "swing_mode_command_topic",
    "swing_mode_cmd_tpl": "swing_mode_command_template",
    "swing_mode_stat_t": "swing_mode_state_topic",
    "swing_mode_stat_tpl": "swing_mode_state_template",
    "t": "topic",
    "temp_cmd_t": "temperature_command_topic",
    "temp_cmd_tpl": "temperature_command_template",
    "temp_hi_cmd_t": "temperature_high_command_topic",
    "temp_hi_cmd_tpl": "temperature_high_command_template",
    "temp_hi_stat_t": "temperature_high_state_topic",
    "temp_hi_stat_tpl": "temperature_high_state_template",
    "temp_lo_cmd_t": "temperature_low_command_topic",
    "temp_lo_cmd_tpl": "temperature_low_command_template",
    "temp_lo_stat_t": "temperature_low_state_topic",
    "temp_lo_stat_tpl": "temperature_low_state_template",
    "temp_stat_t": "temperature_state_topic",
    "temp_stat_tpl": "temperature_state_template",
    "temp_unit": "temperature_unit",
    "tilt_clsd_val": "tilt_closed_value",
    "tilt_cmd_t": "tilt_command_topic",
    "tilt_cmd_tpl": "tilt_command_template",
    "tilt_max": "tilt_max",
    "tilt_min": "tilt_min",
    "tilt_opnd_val": "tilt_opened_value",
    "tilt_opt": "tilt_optimistic",
    "tilt_status_t": "tilt_status_topic",
    "tilt_status_tpl": "tilt_status_template",
    "tit": "title",
    "trns": "transition",
    "uniq_id": "unique_id",
    "unit_of_meas": "unit_of_measurement",
    "url_t": "url_topic",
    "url_tpl": "url_template",
    "val_tpl": "value_template",
    "whit_cmd_t": "white_command_topic",
    "whit_scl": "white_scale",
    "xy_cmd_t": "xy_command_topic",
    "xy_cmd_tpl": "xy_command_template",
    "xy_stat_t": "xy_state_topic",
    "xy_val_tpl": "xy_value_template",
}

DEVICE_ABBREVIATIONS: dict[str, str] = {
    "cns": "connections",
    "cu": "configuration_url",
    "hw": "hw_version",
    "ids": "identifiers",
    "mdl": "model",
    "mdl_id": "model_id",
    "mf": "manufacturer",
    "name": "name",
    "sa": "suggested_area",
    "sn": "serial_number",
    "sw": "sw_version",
}

ORIGIN_ABBREVIATIONS: dict[str, str] = {"name": "name", "sw": "sw_version", "url": "support_url"}

# Options a device config hands down to components that do not set them.
SHARED_OPTIONS = (
    "availability",
    "availability_mode",
    "availability_template",
    "availability_topic",
    "command_topic",
    "payload_available",
    "payload_not_available",
    "state_topic",
)

# The mqtt_media_player custom integration's spellings of the community media_player layout.
MEDIA_PLAYER_ALIASES: dict[str, str] = {
    "state_state_topic": "state_topic",
    "state_volume_topic": "volume_state_topic",
    "command_volume_topic": "volume_set_topic",
    "command_play_topic": "play_topic",
    "command_play_payload": "payload_play",
    "command_pause_topic": "pause_topic",
    "command_pause_payload": "payload_pause",
    "command_playpause_topic": "play_pause_topic",
    "command_playpause_payload": "payload_play_pause",
    "command_next_topic": "next_topic",
    "command_next_payload": "payload_next",
    "command_previous_topic": "previous_topic",
    "command_previous_payload": "payload_previous",
    "state_title_topic": "media_title_topic",
    "state_artist_topic": "media_artist_topic",
    "state_album_topic": "media_album_name_topic",
}


class MalformedConfigError(ValueError):
    """A discovery config that cannot describe a usable entity."""


# -- templates ------------------------------------------------------------------------------


class UnsupportedTemplateError(ValueError):
    """The template needs more Jinja than the small evaluator understands."""


class TemplateRenderError(ValueError):
    """A supported template failed on this payload (missing key, not a number, not JSON)."""


_NOT_JSON = object()  # what value_json is when the payload is not JSON
_NO_DEFAULT = object()
_EXPRESSION = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_VARIABLE = re.compile(r"\s*([A-Za-z_]\w*)")
_ACCESSOR = re.compile(r"\s*(?:\.\s*([A-Za-z_]\w*)|\[\s*(?:'([^']*)'|\"([^\"]*)\"|(-?\d+))\s*\])")
_FILTER = re.compile(r"\s*([A-Za-z_]\w*)\s*(?:\((.*)\))?\s*", re.DOTALL)
_LITERAL = re.compile(r"\s*(?:(-?\d+(?:\.\d+)?)|'([^']*)'|\"([^\"]*)\")\s*")
_PIPE = re.compile(r"\|(?=(?:[^'\"]|'[^']*'|\"[^\"]*\")*$)")  # a "|" outside quotes


def render_template(template: str, variables: Mapping[str, Any]) -> str:
    """Render the simple Jinja forms MQTT devices use; see the module docstring."""
    if "{%" in template or "{#" in template:
        raise UnsupportedTemplateError("statements and comments are not supported")
    parts: list[str] = []
    position = 0
    for match in _EXPRESSION.finditer(template):
        parts.append(template[position : match.start()])
        parts.append(_as_text(_evaluate(match.group(1), variables)))
        position = match.end()
    parts.append(template[position:])
    return "".join(parts)


def _template_variables(payload: str) -> dict[str, Any]:
    try:
        value_json = json.loads(payload)
    except ValueError:
        value_json = _NOT_JSON
    return {"value": payload, "value_json": value_json}


def _evaluate(expression: str, variables: Mapping[str, Any]) -> Any:
    operand, *filters = _PIPE.split(expression)
    value = _resolve(operand, variables)
    for text in filters:
        value = _apply_filter(text, value)
    return value


def _resolve(text: str, variables: Mapping[str, Any]) -> Any:
    match = _VARIABLE.match(text)
    if match is None or match.group(1) not in variables:
        raise UnsupportedTemplateError(f"unsupported expression {text.strip()!r}")
    value = variables[match.group(1)]
    position = match.end()
    while text[position:].strip():
        step = _ACCESSOR.match(text, position)
        if step is None:
            raise UnsupportedTemplateError(f"unsupported expression {text.strip()!r}")
        name, single_quoted, double_quoted, index = step.groups()
        key = int(index) if index is not None else next(
            part for part in (name, single_quoted, double_quoted) if part is not None
        )
        value = _lookup(value, key)
        position = step.end()
    return value


def _lookup(container: Any, key: str | int) -> Any:
    if container is _NOT_JSON:
        raise TemplateRenderError("the payload is not JSON")
    if isinstance(key, int) and isinstance(container, list):
        if -len(container) <= key < len(container):
            return container[key]
    elif isinstance(container, dict) and key in container:
        return container[key]
    raise TemplateRenderError(f"no {key!r} in the payload")


def _apply_filter(text: str, value: Any) -> Any:
    match = _FILTER.fullmatch(text)
    if match is None or match.group(1) not in _FILTERS:
        raise UnsupportedTemplateError(f"unsupported filter {text.strip()!r}")
    function, max_arguments = _FILTERS[match.group(1)]
    arguments = _literals(match.group(2) or "")
    if len(arguments) > max_arguments:
        raise UnsupportedTemplateError(f"unsupported filter arguments {text.strip()!r}")
    return function(value, *arguments)


def _literals(text: str) -> list[Any]:
    if not text.strip():
        return []
    values: list[Any] = []
    for piece in text.split(","):
        match = _LITERAL.fullmatch(piece)
        if match is None:
            raise UnsupportedTemplateError(f"unsupported argument {piece.strip()!r}")
        number, single_quoted, double_quoted = match.groups()
        if number is not None:
            values.append(float(number) if "." in number else int(number))
        else:
            values.append(single_quoted if single_quoted is not None else double_quoted)
    return values


def _to_number(kind: type[int] | type[float], value: Any, default: Any = _NO_DEFAULT) -> Any:
    # Like Home Assistant's int/float filters: "21.7" | int is 21, junk fails unless defaulted.
    value = _plain(value)
    conversions = (kind, lambda text: int(float(text))) if kind is int else (kind,)
    for convert in conversions:
        try:
            return convert(value)
        except (TypeError, ValueError, ArithmeticError):
            continue
    if default is not _NO_DEFAULT:
        return default
    raise TemplateRenderError(f"{value!r} is not a number")


def _plain(value: Any) -> Any:
    if value is _NOT_JSON:
        raise TemplateRenderError("the payload is not JSON")
    return value


def _round(value: Any, precision: int = 0) -> float | int:
    rounded = round(_to_number(float, value), int(precision))
    return int(rounded) if precision == 0 else rounded


_FILTERS: dict[str, tuple[Callable[..., Any], int]] = {
    "int": (partial(_to_number, int), 1),
    "float": (partial(_to_number, float), 1),
    "round": (_round, 1),
    "upper": (lambda value: _as_text(value).upper(), 0),
    "lower": (lambda value: _as_text(value).lower(), 0),
}


def _as_text(value: Any) -> str:
    if isinstance(_plain(value), dict | list):
        return json.dumps(value)
    return str(value)


# -- option defaults and validation ----------------------------------------------------------

_VACUUM_DEFAULT_FEATURES = ["start", "stop", "return_home", "battery", "clean_spot"]
_ALARM_DEFAULT_FEATURES = [
    "arm_home", "arm_away", "arm_night", "arm_vacation", "arm_custom_bypass", "trigger",
]

# Home Assistant's defaults per entity kind ("light_json" is a light with schema: json).
_OPTION_DEFAULTS: dict[str, Config] = {
    "alarm_control_panel": {
        "payload_arm_away": "ARM_AWAY",
        "payload_arm_custom_bypass": "ARM_CUSTOM_BYPASS",
        "payload_arm_home": "ARM_HOME",
        "payload_arm_night": "ARM_NIGHT",
        "payload_arm_vacation": "ARM_VACATION",
        "payload_disarm": "DISARM",
        "payload_trigger": "TRIGGER",
        "supported_features": _ALARM_DEFAULT_FEATURES,
    },
    "binary_sensor": {"payload_on": "ON", "payload_off": "OFF"},
    "button": {"payload_press": "PRESS"},
    "climate": {
        "modes": ["auto", "off", "cool", "heat", "dry", "fan_only"],
        "payload_on": "ON",
        "payload_off": "OFF",
        "preset_modes": [],
        "temp_step": 1,
    },
    "cover": {
        "payload_open": "OPEN",
        "payload_close": "CLOSE",
        "payload_stop": "STOP",
        "position_open": 100,
        "position_closed": 0,
        "state_open": "open",
        "state_opening": "opening",
        "state_closed": "closed",
        "state_closing": "closing",
        "state_stopped": "stopped",
    },
    "fan": {
        "payload_on": "ON",
        "payload_off": "OFF",
        "payload_reset_percentage": PAYLOAD_NONE,
        "payload_reset_preset_mode": PAYLOAD_NONE,
        "preset_modes": [],
        "speed_range_min": 1,
        "speed_range_max": 100,
    },
    "light": {
        "brightness_scale": 255,
        "on_command_type": "last",
        "payload_on": "ON",
        "payload_off": "OFF",
    },
    "light_json": {"brightness_scale": 255},
    "lock": {
        "payload_lock": "LOCK",
        "payload_unlock": "UNLOCK",
        "state_jammed": "JAMMED",
        "state_locked": "LOCKED",
        "state_locking": "LOCKING",
        "state_open": "OPEN",
        "state_opening": "OPENING",
        "state_unlocked": "UNLOCKED",
        "state_unlocking": "UNLOCKING",
    },
    "media_player": {
        "payload_on": "ON",
        "payload_off": "OFF",
        "payload_play": "Play",
        "payload_pause": "Pause",
        "payload_play_pause": "PlayPause",
        "payload_next": "Next",
        "payload_previous": "Previous",
    },
    "scene": {"payload_on": "ON"},
    "switch": {"payload_on": "ON", "payload_off": "OFF"},
    "vacuum": {
        "payload_pause": "pause",
        "payload_return_to_base": "return_to_base",
        "payload_start": "start",
        "payload_stop": "stop",
        "supported_features": _VACUUM_DEFAULT_FEATURES,
    },
    "valve": {
        "payload_open": "OPEN",
        "payload_close": "CLOSE",
        "position_open": 100,
        "position_closed": 0,
        "reports_position": False,
        "state_open": "open",
        "state_opening": "opening",
        "state_closed": "closed",
        "state_closing": "closing",
    },
}

# Options whose default is another option's value (a switch reports what it is sent).
_DERIVED_DEFAULTS: dict[str, dict[str, str]] = {
    "switch": {"state_on": "payload_on", "state_off": "payload_off"},
}

_REQUIRED_OPTIONS: dict[str, tuple[str, ...]] = {
    "alarm_control_panel": ("command_topic", "state_topic"),
    "binary_sensor": ("state_topic",),
    "button": ("command_topic",),
    "fan": ("command_topic",),
    "light": ("command_topic",),
    "light_json": ("command_topic",),
    "lock": ("command_topic",),
    "scene": ("command_topic",),
    "sensor": ("state_topic",),
    "switch": ("command_topic",),
}

_INT_OPTIONS = (
    "brightness_scale", "max_kelvin", "max_mireds", "min_kelvin", "min_mireds",
    "position_closed", "position_open", "speed_range_max", "speed_range_min",
)
_FLOAT_OPTIONS = ("max_temp", "min_temp", "temp_step")
_TEXT_LIST_OPTIONS = (
    "effect_list", "fan_speed_list", "modes", "preset_modes", "supported_color_modes",
    "supported_features",
)
_CHOICES = {
    "availability_mode": ("all", "any", "latest"),
    "on_command_type": ("first", "last", "brightness"),
}

_SUPPORTED_COMPONENTS = frozenset({
    "alarm_control_panel", "binary_sensor", "button", "climate", "cover", "fan", "light",
    "lock", "media_player", "scene", "sensor", "switch", "vacuum", "valve",
})


def _kind(component: str, config: Mapping[str, Any]) -> str:
    """The entity kind whose tables apply: the component, split by light schema."""
    if component != "light":
        return component
    schema = config.get("schema", "basic")
    if schema in ("basic", "default"):
        return "light"
    if schema == "json":
        return "light_json"
    raise MalformedConfigError(f"light schema {schema!r} is not supported")


def _effective(kind: str, wire: Mapping[str, Any]) -> Config:
    """The wire config with Home Assistant's defaults filled in and numbers coerced."""
    config = {**_OPTION_DEFAULTS.get(kind, {}), **wire}
    for option, source in _DERIVED_DEFAULTS.get(kind, {}).items():
        if config.get(option) is None:
            config[option] = config.get(source)
    for kind_of_number, options in ((int, _INT_OPTIONS), (float, _FLOAT_OPTIONS)):
        for option in options:
            if option in config:
                if isinstance(config[option], bool):
                    raise MalformedConfigError(f"{option} must be a number")
                config[option] = kind_of_number(config[option])
    return config


def _validate(kind: str, config: Config) -> None:
    """Raise MalformedConfigError unless ``config`` describes a usable entity."""
    for option in _REQUIRED_OPTIONS.get(kind, ()):
        if not config.get(option):
            raise MalformedConfigError(f"{kind} needs {option}")
    for key, value in config.items():
        if key.endswith("topic") and value is not None and not _is_topic(value):
            raise MalformedConfigError(f"{key} {str(value)[:80]!r} is not one exact topic "
                                       "(MQTT wildcards + and # are refused)")
    for entry in _availability_entries(config):
        if not isinstance(entry, dict) or not _is_topic(entry.get("topic")):
            raise MalformedConfigError("an availability entry has no topic, or not one exact "
                                       "topic (MQTT wildcards + and # are refused)")
    for option in _TEXT_LIST_OPTIONS:
        value = config.get(option)
        if value is not None and not (
            isinstance(value, list) and all(isinstance(item, str) for item in value)
        ):
            raise MalformedConfigError(f"{option} must be a list of strings")
    if not isinstance(config.get("device", {}), dict):
        raise MalformedConfigError("device must be an object")
    try:
        effective = _effective(kind, config)
    except (TypeError, ValueError) as error:
        raise MalformedConfigError(f"bad number: {error}") from None
    for option, choices in _CHOICES.items():
        if option in effective and effective[option] not in choices:
            raise MalformedConfigError(f"{option} must be one of {choices}")
    if not all(math.isfinite(effective[o]) for o in _FLOAT_OPTIONS if o in effective):
        raise MalformedConfigError(f"{', '.join(_FLOAT_OPTIONS)} must be finite")
    if effective.get("brightness_scale", 1) < 1:
        raise MalformedConfigError("brightness_scale must be at least 1")
    if effective.get("position_open") is not None and (
        effective["position_open"] == effective["position_closed"]
    ):
        raise MalformedConfigError("position_open equals position_closed")
    if kind == "fan" and not 1 <= effective["speed_range_min"] <= effective["speed_range_max"]:
        raise MalformedConfigError("speed range must satisfy 1 <= min <= max")


def _is_topic(value: Any) -> bool:
    """One exact topic: no filter wildcard, no NUL, some non-empty level, within MQTT's size."""
    if not isinstance(value, str) or not value.strip("/") or any(c in value for c in "+#\x00"):
        return False
    try:
        return len(value.encode("utf-8")) <= _MAX_TOPIC_BYTES
    except UnicodeEncodeError:  # a lone surrogate from JSON
        return False


def _availability_entries(config: Mapping[str, Any]) -> list[Any]:
    entries = config.get("availability")
    if entries is None:
        return []
    return entries if isinstance(entries, list) else [entries]


# -- config expansion ---------------------------------------------------------------------


def _expand_keys(raw: Mapping[str, Any], table: Mapping[str, str]) -> Config:
    """Full option names; like Home Assistant, an abbreviated key wins over its long form."""
    expanded = {key: value for key, value in raw.items() if key not in table}
    expanded.update({table[key]: value for key, value in raw.items() if key in table})
    return expanded


def _expand_component(raw: Mapping[str, Any]) -> Config:
    config = _expand_keys(raw, ABBREVIATIONS)
    if isinstance(config.get("device"), dict):
        config["device"] = _expand_keys(config["device"], DEVICE_ABBREVIATIONS)
    if isinstance(config.get("origin"), dict):
        config["origin"] = _expand_keys(config["origin"], ORIGIN_ABBREVIATIONS)
    if "availability" in config:
        config["availability"] = [
            _expand_keys(entry, ABBREVIATIONS) if isinstance(entry, dict) else entry
            for entry in _availability_entries(config)
        ]
    return config


def _apply_aliases(component: str, config: Config) -> None:
    if component == "media_player":
        for alias, option in MEDIA_PLAYER_ALIASES.items():
            if alias in config:
                config.setdefault(option, config.pop(alias))


def _apply_topic_base(config: Config, base: Any) -> None:
    """Replace a leading or trailing ``~`` in topic options by the base topic."""
    if base is None:
        return
    if not isinstance(base, str):
        raise MalformedConfigError("~ must be a string")

    def substitute(topic: Any) -> Any:
        if not isinstance(topic, str) or not topic:
            return topic
        if topic.startswith(TOPIC_BASE):
            topic = base + topic[1:]
        if topic.endswith(TOPIC_BASE):
            topic = topic[:-1] + base
        return topic

    for key, value in config.items():
        if key.endswith("topic"):
            config[key] = substitute(value)
    if "availability" in config:  # new entries: a device's list is shared by its components
        config["availability"] = [
            {**entry, "topic": substitute(entry.get("topic"))} if isinstance(entry, dict) else entry
            for entry in _availability_entries(config)
        ]


def _parse_object(text: str) -> Config:
    document = json.loads(text)
    if not isinstance(document, dict):
        raise MalformedConfigError("the config is not a JSON object")
    try:  # the entity keeps its config: it must be storable, so no lone "\ud800" escapes
        json.dumps(document, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise MalformedConfigError("the config holds an unpaired UTF-16 surrogate") from None
    return document


def _is_migration(document: Mapping[str, Any]) -> bool:
    return "migrate_discovery" in document or "migr_discvry" in document


# -- numbers on the wire ------------------------------------------------------------------


def _ranged_to_percentage(low: float, high: float, value: float) -> int:
    """Home Assistant's ranged_value_to_percentage."""
    return int((value - (low - 1)) * 100 // (high - low + 1))


def _percentage_to_ranged(low: float, high: float, percentage: float) -> float:
    """Home Assistant's percentage_to_ranged_value."""
    return (high - low + 1) * percentage / 100 + (low - 1)


def _position_range(config: Mapping[str, Any]) -> tuple[int, int]:
    return config["position_closed"] + 1, config["position_open"]


def _position_percentage(config: Mapping[str, Any], value: Any) -> int:
    """A cover or valve position on the wire as 0..100 (closed..open), clamped."""
    return min(max(_ranged_to_percentage(*_position_range(config), float(value)), 0), 100)


def _brightness_from_wire(value: float, scale: int) -> int:
    return min(round(value / scale * 255), 255)


def _brightness_to_wire(brightness: float, scale: int) -> int:
    # Never round a dim light down to 0: that would read as off.
    return max(min(round(brightness / 255 * scale), scale), 1)


def _mired_kelvin(value: float) -> int:
    """Mireds to kelvin and back: the same reciprocal, floored like Home Assistant."""
    return math.floor(1_000_000 / value)


def _color_temp_attributes(config: Mapping[str, Any], value: float) -> Config:
    if config.get("color_temp_kelvin"):
        kelvin = round(value)
        return {"color_temp_kelvin": kelvin, "color_temp": _mired_kelvin(kelvin)}
    return {"color_temp_kelvin": _mired_kelvin(value), "color_temp": round(value)}


def _color_temp_range(config: Mapping[str, Any]) -> tuple[int, int]:
    """Supported (min, max) kelvin; Home Assistant's 2000..6535 unless configured."""
    low = config.get("min_kelvin") or (
        _mired_kelvin(config["max_mireds"]) if config.get("max_mireds") else 2000
    )
    high = config.get("max_kelvin") or (
        _mired_kelvin(config["min_mireds"]) if config.get("min_mireds") else 6535
    )
    return low, high


def _color_temp_to_wire(config: Mapping[str, Any], kelvin: float) -> int:
    low, high = _color_temp_range(config)
    kelvin = min(max(kelvin, low), high)  # Home Assistant clamps to what the light supports
    return round(kelvin) if config.get("color_temp_kelvin") else _mired_kelvin(kelvin)


def _scale_rgb(rgb: tuple[int, int, int], brightness: float) -> tuple[int, ...]:
    return tuple(round(channel * brightness / 255) for channel in rgb)


_DEFAULT_TEMPERATURE_RANGE = {"C": (7.0, 35.0), "F": (44.6, 95.0)}


def _temperature_range(config: Mapping[str, Any]) -> tuple[float, float]:
    low, high = _DEFAULT_TEMPERATURE_RANGE["F" if config.get("temperature_unit") == "F" else "C"]
    return config.get("min_temp", low), config.get("max_temp", high)


def _basic_color_modes(config: Mapping[str, Any]) -> list[str]:
    """Home Assistant's color modes of a default-schema light, from its command topics."""
    modes = [mode for topic, mode in _COLOR_MODE_TOPICS if config.get(topic)]
    if modes:
        return modes
    return ["brightness"] if config.get("brightness_command_topic") else ["onoff"]


_COLOR_MODE_TOPICS = (
    ("color_temp_command_topic", "color_temp"),
    ("hs_command_topic", "hs"),
    ("rgb_command_topic", "rgb"),
    ("rgbw_command_topic", "rgbw"),
    ("rgbww_command_topic", "rgbww"),
    ("white_command_topic", "white"),
    ("xy_command_topic", "xy"),
)


def _json_color_modes(config: Mapping[str, Any]) -> list[str]:
    modes = config.get("supported_color_modes")
    if modes:
        return list(modes)
    return ["brightness"] if config.get("brightness") else ["onoff"]


def _dims(modes: list[str]) -> bool:
    return any(mode != "onoff" for mode in modes)


# -- state readers --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Update:
    state: str | None = None
    attributes: Config = field(default_factory=dict)


StateApplier = Callable[[Config, str, Entity], _Update | None]


@dataclass(frozen=True, slots=True)
class _Reader:
    """What one state topic means: its option, the template option, and how to apply it."""

    topic: str
    template: str | None
    apply: StateApplier


def _state_from_table(config: Mapping[str, Any], value: str, table: Mapping[str, str]) -> str:
    for option, state in table.items():
        expected = config.get(option)
        if expected is not None and value == str(expected):
            return state
    if value == PAYLOAD_NONE:
        return "unknown"
    raise ValueError(f"unexpected state payload {value[:80]!r}")


def _state_reader(table: Mapping[str, str]) -> StateApplier:
    return lambda config, value, entity: _Update(_state_from_table(config, value, table))


def _state_in(states: frozenset[str]) -> StateApplier:
    def apply(config: Config, value: str, entity: Entity) -> _Update:
        if value == PAYLOAD_NONE:
            return _Update("unknown")
        if value not in states:
            raise ValueError(f"unexpected state payload {value[:80]!r}")
        return _Update(value)

    return apply


def _attribute_reader(name: str, convert: Callable[[str], Any] = str) -> StateApplier:
    return lambda config, value, entity: _Update(attributes={name: convert(value)})


def _json_object(value: str) -> Config:
    document = json.loads(value)
    if not isinstance(document, dict):
        raise ValueError("the payload is not a JSON object")
    return document


_ON_OFF_PAYLOADS = {"payload_on": "on", "payload_off": "off"}
_SWITCH_STATES = {"state_on": "on", "state_off": "off"}
_LOCK_STATES = {
    "state_locked": "locked",
    "state_locking": "locking",
    "state_unlocked": "unlocked",
    "state_unlocking": "unlocking",
    "state_jammed": "jammed",
    "state_open": "open",
    "state_opening": "opening",
}
_COVER_STATES = {
    "state_open": "open",
    "state_opening": "opening",
    "state_closed": "closed",
    "state_closing": "closing",
    "state_stopped": "stopped",
}
_VALVE_STATES = {key: state for key, state in _COVER_STATES.items() if state != "stopped"}
_ALARM_STATES = frozenset({
    "disarmed", "armed_home", "armed_away", "armed_night", "armed_vacation",
    "armed_custom_bypass", "pending", "triggered", "arming", "disarming",
})
_VACUUM_STATES = frozenset({"cleaning", "docked", "paused", "idle", "returning", "error"})
_MEDIA_STATES = frozenset({"off", "on", "idle", "playing", "paused", "standby", "buffering"})


def _sensor_state(config: Config, value: str, entity: Entity) -> _Update:
    if len(value) > 255:
        raise ValueError("a sensor state longer than 255 characters")
    return _Update(value)


def _light_brightness(config: Config, value: str, entity: Entity) -> _Update | None:
    level = float(value)
    if level == 0:  # Home Assistant ignores 0: "off" comes from the state topic
        return None
    brightness = _brightness_from_wire(level, config["brightness_scale"])
    return _Update(attributes={"brightness": brightness})


def _light_rgb(config: Config, value: str, entity: Entity) -> _Update | None:
    rgb = [int(part) for part in value.split(",")]
    if len(rgb) != 3:
        raise ValueError(f"not an r,g,b color: {value[:80]!r}")
    if config.get("brightness_state_topic"):
        return _Update(attributes={"rgb_color": rgb})
    # Without a brightness topic the color carries the brightness (Home Assistant's rule).
    brightness = max(rgb)
    if brightness == 0:
        return None
    normalized = [min(round(channel / brightness * 255), 255) for channel in rgb]
    return _Update(attributes={"rgb_color": normalized, "brightness": brightness})


def _light_color_temp(config: Config, value: str, entity: Entity) -> _Update:
    return _Update(attributes=_color_temp_attributes(config, float(value)))


def _light_json_state(config: Config, value: str, entity: Entity) -> _Update:
    document = _json_object(value)
    state = None
    if "state" in document:
        raw_state = document["state"]
        if raw_state is not None and raw_state not in ("ON", "OFF"):
            raise ValueError(f"unexpected light state {str(raw_state)[:80]!r}")
        state = raw_state.lower() if raw_state else "unknown"
    attributes: Config = {}
    if document.get("brightness"):
        level = float(document["brightness"])
        attributes["brightness"] = _brightness_from_wire(level, config["brightness_scale"])
    color = document.get("color")
    if isinstance(color, dict) and all(channel in color for channel in ("r", "g", "b")):
        attributes["rgb_color"] = [int(color[channel]) for channel in ("r", "g", "b")]
    if document.get("color_temp") is not None:
        attributes.update(_color_temp_attributes(config, float(document["color_temp"])))
    if isinstance(document.get("color_mode"), str):
        attributes["color_mode"] = document["color_mode"]
    if "effect" in document:
        attributes["effect"] = document["effect"]
    return _Update(state, attributes)


def _fan_percentage(config: Config, value: str, entity: Entity) -> _Update:
    if value == config["payload_reset_percentage"]:
        return _Update(attributes={"percentage": None})
    low, high = config["speed_range_min"], config["speed_range_max"]
    percentage = _ranged_to_percentage(low, high, float(value))
    if not 0 <= percentage <= 100:
        raise ValueError(f"speed {value[:20]!r} is outside {low}..{high}")
    return _Update(attributes={"percentage": percentage})


def _preset_mode(config: Config, value: str, entity: Entity) -> _Update:
    if value == config.get("payload_reset_preset_mode", PAYLOAD_NONE):
        return _Update(attributes={"preset_mode": None})
    if value not in config["preset_modes"]:
        raise ValueError(f"unknown preset mode {value[:80]!r}")
    return _Update(attributes={"preset_mode": value})


def _cover_state(config: Config, value: str, entity: Entity) -> _Update:
    state = _state_from_table(config, value, _COVER_STATES)
    if state == "stopped":  # Home Assistant shows a stopped cover as open or closed
        position = entity.attributes.get("current_position")
        if config.get("position_topic") and position is not None:
            state = "closed" if position == 0 else "open"
        else:
            state = "closed" if entity.state in ("closed", "closing") else "open"
    return _Update(state)


def _cover_position(config: Config, value: str, entity: Entity) -> _Update:
    try:
        document = json.loads(value)
    except ValueError:
        document = None
    if isinstance(document, dict):
        value = str(document["position"])
    percentage = _position_percentage(config, value)
    state = None if config.get("state_topic") else ("closed" if percentage == 0 else "open")
    return _Update(state, {"current_position": percentage})


def _valve_state(config: Config, value: str, entity: Entity) -> _Update | None:
    state_payload: Any = value
    position_payload: Any = value
    try:
        document = json.loads(value)
    except ValueError:
        document = None
    if isinstance(document, dict):
        required = "position" if config["reports_position"] else "state"
        if required not in document:
            raise ValueError(f"the JSON state has no {required!r}")
        state_payload, position_payload = document.get("state"), document.get("position")
    if not config["reports_position"]:
        return _Update(_state_from_table(config, str(state_payload), _VALVE_STATES))
    return _valve_position_update(config, state_payload, position_payload, entity)


def _valve_position_update(
    config: Config, state_payload: Any, position_payload: Any, entity: Entity
) -> _Update | None:
    if state_payload == PAYLOAD_NONE:
        return _Update(attributes={"current_position": None})
    moving = {config["state_opening"]: "opening", config["state_closing"]: "closing"}.get(
        state_payload
    )
    if moving is not None and position_payload == state_payload:
        return _Update(moving)  # a bare "opening"/"closing" payload carries no position
    percentage = _position_percentage(config, position_payload)
    if moving is not None:
        state = moving
    elif percentage in (0, 100) or entity.state not in ("opening", "closing"):
        state = "closed" if percentage == 0 else "open"
    else:
        state = None  # still moving: Home Assistant keeps opening/closing until an end stop
    return _Update(state, {"current_position": percentage})


def _climate_mode(config: Config, value: str, entity: Entity) -> _Update:
    return _state_in(frozenset(config["modes"]))(config, value, entity)


def _vacuum_state(config: Config, value: str, entity: Entity) -> _Update:
    document = _json_object(value)
    state = document.get("state")
    if state is not None and state not in _VACUUM_STATES:
        raise ValueError(f"unexpected vacuum state {str(state)[:80]!r}")
    attributes = {key: document[key] for key in ("battery_level", "fan_speed") if key in document}
    return _Update(state, attributes)


def _media_state(config: Config, value: str, entity: Entity) -> _Update:
    state = value.strip().lower()
    state = "idle" if state == "stopped" else state
    if state not in _MEDIA_STATES:
        raise ValueError(f"unexpected media player state {value[:80]!r}")
    return _Update(state)


def _media_volume(config: Config, value: str, entity: Entity) -> _Update:
    level = float(value)
    if not 0 <= level <= 1:
        raise ValueError(f"volume {value[:20]!r} is outside 0..1")
    return _Update(attributes={"volume_level": level})


# Attributes this adapter computes; a device's json_attributes must not overwrite them
# (zigbee2mqtt points json_attributes_topic at a state that holds raw brightness, say).
_MANAGED_ATTRIBUTES = frozenset({
    "available", "battery_level", "brightness", "color_mode", "color_temp",
    "color_temp_kelvin", "current_position", "current_temperature", "device_class", "effect",
    "fan_speed", "friendly_name", "hvac_action", "icon", "media_album_name", "media_artist",
    "media_title", "percentage", "preset_mode", "rgb_color", "state", "supported_features",
    "temperature", "unit_of_measurement", "volume_level",
})


def _json_attributes(config: Config, value: str, entity: Entity) -> _Update:
    document = _json_object(value)
    return _Update(attributes={
        key: item for key, item in document.items() if key not in _MANAGED_ATTRIBUTES
    })


_ATTRIBUTES_READER = _Reader(
    "json_attributes_topic", "json_attributes_template", _json_attributes
)

_READERS: dict[str, tuple[_Reader, ...]] = {
    "alarm_control_panel": (_Reader("state_topic", "value_template", _state_in(_ALARM_STATES)),),
    "binary_sensor": (_Reader("state_topic", "value_template", _state_reader(_ON_OFF_PAYLOADS)),),
    "climate": (
        _Reader("mode_state_topic", "mode_state_template", _climate_mode),
        _Reader("temperature_state_topic", "temperature_state_template",
                _attribute_reader("temperature", float)),
        _Reader("current_temperature_topic", "current_temperature_template",
                _attribute_reader("current_temperature", float)),
        _Reader("action_topic", "action_template", _attribute_reader("hvac_action")),
        _Reader("preset_mode_state_topic", "preset_mode_value_template", _preset_mode),
    ),
    "cover": (
        _Reader("state_topic", "value_template", _cover_state),
        _Reader("position_topic", "position_template", _cover_position),
    ),
    "fan": (
        _Reader("state_topic", "state_value_template", _state_reader(_ON_OFF_PAYLOADS)),
        _Reader("percentage_state_topic", "percentage_value_template", _fan_percentage),
        _Reader("preset_mode_state_topic", "preset_mode_value_template", _preset_mode),
    ),
    "light": (
        _Reader("state_topic", "state_value_template", _state_reader(_ON_OFF_PAYLOADS)),
        _Reader("brightness_state_topic", "brightness_value_template", _light_brightness),
        _Reader("rgb_state_topic", "rgb_value_template", _light_rgb),
        _Reader("color_temp_state_topic", "color_temp_value_template", _light_color_temp),
    ),
    "light_json": (_Reader("state_topic", None, _light_json_state),),
    "lock": (_Reader("state_topic", "value_template", _state_reader(_LOCK_STATES)),),
    "media_player": (
        _Reader("state_topic", None, _media_state),
        _Reader("volume_state_topic", None, _media_volume),
        _Reader("media_title_topic", None, _attribute_reader("media_title")),
        _Reader("media_artist_topic", None, _attribute_reader("media_artist")),
        _Reader("media_album_name_topic", None, _attribute_reader("media_album_name")),
    ),
    "sensor": (_Reader("state_topic", "value_template", _sensor_state),),
    "switch": (_Reader("state_topic", "value_template", _state_reader(_SWITCH_STATES)),),
    "vacuum": (_Reader("state_topic", None, _vacuum_state),),
    "valve": (_Reader("state_topic", "value_template", _valve_state),),
}


# -- commands -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Request:
    entity: Entity
    config: Config  # the entity's wire config with defaults
    params: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class _Command:
    """How to encode one service, and what the config must offer for the entity to have it."""

    encode: Callable[[_Request], list[MqttMessage]]
    requires: tuple[str, ...] = ()
    feature: str | None = None  # entry needed in supported_features (alarm, vacuum)

    def missing(self, config: Mapping[str, Any]) -> str | None:
        absent = [option for option in self.requires if _is_absent(config.get(option))]
        if absent:
            return "it has no " + ", ".join(absent)
        if self.feature and self.feature not in config.get("supported_features", ()):
            return f"{self.feature!r} is not in its supported_features"
        return None


def _is_absent(value: Any) -> bool:
    return value is None or value is False  # not 0 or "": a payload of 0 is a real payload


def _message(
    request: _Request,
    topic_option: str,
    value: Any,
    template_option: str | None = None,
    variables: Mapping[str, Any] | None = None,
) -> MqttMessage:
    config = request.config
    topic = config.get(topic_option)
    if not _is_topic(topic):
        raise CommandNotSupportedError(f"{request.entity.entity_id} has no usable {topic_option}")
    template = config.get(template_option) if template_option else None
    if template:
        try:
            payload = render_template(str(template), {"value": value, **(variables or {})})
        except (UnsupportedTemplateError, TemplateRenderError) as error:
            raise CommandNotSupportedError(
                f"{request.entity.entity_id}: cannot render {template_option}: {error}"
            ) from None
    elif isinstance(value, dict):
        payload = json.dumps(value, separators=(",", ":"))
    else:
        payload = str(value)
    retain = config.get("retain") is True
    return MqttMessage(topic, payload.encode(), qos=COMMAND_QOS, retain=retain)


def _number(
    request: _Request, name: str, low: float, high: float, *, required: bool = False
) -> Any:
    value = request.params.get(name)
    if value is None:
        if required:
            raise CommandNotSupportedError(f"{request.entity.entity_id}: {name} is required")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise CommandNotSupportedError(f"{name} must be a number, got {value!r}") from None
    if not low <= value <= high:
        raise CommandNotSupportedError(f"{name} {value} is outside {low}..{high}")
    return value


def _choice(request: _Request, name: str, choices: list[str]) -> str:
    value = request.params.get(name)
    if value not in choices:
        raise CommandNotSupportedError(
            f"{request.entity.entity_id}: {name} {value!r} is not one of {choices}"
        )
    return value


def _rgb(request: _Request) -> tuple[int, int, int] | None:
    value = request.params.get("rgb_color")
    if value is None:
        return None
    if not (
        isinstance(value, list | tuple)
        and len(value) == 3
        and all(
            isinstance(c, int | float) and not isinstance(c, bool) and 0 <= c <= 255 for c in value
        )
    ):
        raise CommandNotSupportedError(f"rgb_color must be three numbers 0..255, got {value!r}")
    red, green, blue = (round(channel) for channel in value)
    return red, green, blue


def _brightness(request: _Request) -> int | None:
    value = _number(request, "brightness", 0, 255)
    return None if value is None else round(value)


def _unsupported(request: _Request, what: str) -> CommandNotSupportedError:
    return CommandNotSupportedError(f"{request.entity.entity_id} does not support {what}")


def _send(
    payload_option: str,
    topic_option: str = "command_topic",
    *,
    template: str | None = None,
    feature: str | None = None,
) -> _Command:
    """A command that publishes one configured payload, as most services do."""

    def encode(request: _Request) -> list[MqttMessage]:
        payload = request.config[payload_option]
        # action/code are the alarm panel's template variables; other templates ignore them.
        variables = {"action": payload, "code": request.params.get("code")}
        return [_message(request, topic_option, payload, template, variables)]

    return _Command(encode, (topic_option, payload_option), feature)


def _light_turn_on(request: _Request) -> list[MqttMessage]:
    """Default-schema light: separate topics, ON first or last as on_command_type says."""
    config, attributes = request.config, request.entity.attributes
    brightness, rgb = _brightness(request), _rgb(request)
    kelvin = _number(request, "color_temp_kelvin", 1, 1_000_000)
    if brightness == 0:
        return _COMMANDS["light"]["turn_off"].encode(request)
    on_command_type = config["on_command_type"]
    turn_on = _message(request, "command_topic", config["payload_on"])
    messages = [turn_on] if on_command_type == "first" else []
    if on_command_type == "brightness" and brightness is None:
        brightness = attributes.get("brightness") or 255  # the brightness is the on command
    has_brightness_topic = bool(config.get("brightness_command_topic"))
    if rgb is not None:
        if not config.get("rgb_command_topic"):
            raise _unsupported(request, "rgb_color")
        scale = 255 if has_brightness_topic else brightness or attributes.get("brightness") or 255
        messages.append(_rgb_message(request, _scale_rgb(rgb, scale)))
    if brightness is not None:
        if has_brightness_topic:
            level = _brightness_to_wire(brightness, config["brightness_scale"])
            messages.append(
                _message(request, "brightness_command_topic", level, "brightness_command_template")
            )
        elif config.get("rgb_command_topic"):
            if rgb is None:  # dim by scaling the current color
                color = tuple(attributes.get("rgb_color") or (255, 255, 255))
                messages.append(_rgb_message(request, _scale_rgb(color, brightness)))
        elif "brightness" in request.params:
            raise _unsupported(request, "brightness")
    if kelvin is not None:
        if not config.get("color_temp_command_topic"):
            raise _unsupported(request, "color_temp_kelvin")
        messages.append(_message(
            request, "color_temp_command_topic", _color_temp_to_wire(config, kelvin),
            "color_temp_command_template",
        ))
    if on_command_type == "last":
        messages.append(turn_on)
    if not messages:
        raise _unsupported(request, "turning on without brightness")
    return messages


def _rgb_message(request: _Request, rgb: tuple[int, ...]) -> MqttMessage:
    red, green, blue = rgb
    return _message(
        request, "rgb_command_topic", f"{red},{green},{blue}", "rgb_command_template",
        {"red": red, "green": green, "blue": blue},
    )


def _light_json_turn_on(request: _Request) -> list[MqttMessage]:
    config = request.config
    modes = _json_color_modes(config)
    brightness, rgb = _brightness(request), _rgb(request)
    kelvin = _number(request, "color_temp_kelvin", 1, 1_000_000)
    if brightness == 0:
        return _light_json_turn_off(request)
    message: Config = {"state": "ON"}
    if rgb is not None:
        if "rgb" not in modes:
            raise _unsupported(request, "rgb_color")
        # A light that dims gets the pure color; one that cannot carries brightness in it.
        red, green, blue = _scale_rgb(rgb, 255 if _dims(modes) else brightness or 255)
        message["color"] = {"r": red, "g": green, "b": blue}
    if brightness is not None:
        if not _dims(modes):
            raise _unsupported(request, "brightness")
        message["brightness"] = _brightness_to_wire(brightness, config["brightness_scale"])
    if kelvin is not None:
        if "color_temp" not in modes:
            raise _unsupported(request, "color_temp_kelvin")
        message["color_temp"] = _color_temp_to_wire(config, kelvin)
    return [_message(request, "command_topic", message)]


def _light_json_turn_off(request: _Request) -> list[MqttMessage]:
    return [_message(request, "command_topic", {"state": "OFF"})]


def _fan_turn_on(request: _Request) -> list[MqttMessage]:
    messages = [
        _message(request, "command_topic", request.config["payload_on"], "command_template")
    ]
    if _number(request, "percentage", 0, 100):  # 0 would mean off: Home Assistant skips it
        messages.extend(_fan_set_percentage(request))
    if request.params.get("preset_mode") is not None:
        messages.extend(_set_preset_mode(request))
    return messages


def _fan_set_percentage(request: _Request) -> list[MqttMessage]:
    percentage = _number(request, "percentage", 0, 100, required=True)
    if percentage == 0:
        return _COMMANDS["fan"]["turn_off"].encode(request)
    config = request.config
    speed = math.ceil(
        _percentage_to_ranged(config["speed_range_min"], config["speed_range_max"], percentage)
    )
    return [_message(request, "percentage_command_topic", speed, "percentage_command_template")]


def _set_preset_mode(request: _Request) -> list[MqttMessage]:
    preset = _choice(request, "preset_mode", request.config["preset_modes"])
    return [_message(request, "preset_mode_command_topic", preset, "preset_mode_command_template")]


def _position_variables(request: _Request, percentage: float) -> Config:
    config = request.config
    return {
        "position": percentage,
        "position_open": config["position_open"],
        "position_closed": config["position_closed"],
    }


def _ranged_position(request: _Request) -> tuple[float, int]:
    percentage = _number(request, "position", 0, 100, required=True)
    return percentage, round(_percentage_to_ranged(*_position_range(request.config), percentage))


def _set_cover_position(request: _Request) -> list[MqttMessage]:
    percentage, position = _ranged_position(request)
    return [_message(
        request, "set_position_topic", position, "set_position_template",
        _position_variables(request, percentage),
    )]


def _set_valve_position(request: _Request) -> list[MqttMessage]:
    percentage, position = _ranged_position(request)
    return [_message(
        request, "command_topic", position, "command_template",
        _position_variables(request, percentage),
    )]


def _climate_set_temperature(request: _Request) -> list[MqttMessage]:
    low, high = _temperature_range(request.config)
    temperature = _number(request, "temperature", low, high, required=True)
    messages = _climate_set_hvac_mode(request) if request.params.get("hvac_mode") else []
    messages.append(_message(
        request, "temperature_command_topic", float(temperature), "temperature_command_template"
    ))
    return messages


def _climate_set_hvac_mode(request: _Request) -> list[MqttMessage]:
    mode = _choice(request, "hvac_mode", request.config["modes"])
    return [_message(request, "mode_command_topic", mode, "mode_command_template")]


def _climate_turn_off(request: _Request) -> list[MqttMessage]:
    config = request.config
    if config.get("power_command_topic"):
        return [_message(
            request, "power_command_topic", config["payload_off"], "power_command_template"
        )]
    if "off" in config["modes"] and config.get("mode_command_topic"):
        return [_message(request, "mode_command_topic", "off", "mode_command_template")]
    raise _unsupported(request, "turn_off (no power_command_topic and no off mode)")


def _media_volume_set(request: _Request) -> list[MqttMessage]:
    level = _number(request, "volume_level", 0, 1, required=True)
    return [_message(request, "volume_set_topic", round(float(level), 2))]


_COMMANDS: dict[str, dict[str, _Command]] = {
    "alarm_control_panel": {
        **{
            f"alarm_{feature}": _send(
                f"payload_{feature}", template="command_template", feature=feature
            )
            for feature in _ALARM_DEFAULT_FEATURES
        },
        "alarm_disarm": _send("payload_disarm", template="command_template"),
    },
    "button": {"press": _send("payload_press", template="command_template")},
    "climate": {
        "set_temperature": _Command(_climate_set_temperature, ("temperature_command_topic",)),
        "set_hvac_mode": _Command(_climate_set_hvac_mode, ("mode_command_topic",)),
        "set_preset_mode": _Command(_set_preset_mode, ("preset_mode_command_topic",)),
        "turn_on": _send("payload_on", "power_command_topic", template="power_command_template"),
        "turn_off": _Command(_climate_turn_off),
    },
    "cover": {
        "open_cover": _send("payload_open"),
        "close_cover": _send("payload_close"),
        "stop_cover": _send("payload_stop"),
        "set_cover_position": _Command(_set_cover_position, ("set_position_topic",)),
    },
    "fan": {
        "turn_on": _Command(_fan_turn_on, ("command_topic",)),
        "turn_off": _send("payload_off", template="command_template"),
        "set_percentage": _Command(_fan_set_percentage, ("percentage_command_topic",)),
        "set_preset_mode": _Command(_set_preset_mode, ("preset_mode_command_topic",)),
    },
    "light": {
        "turn_on": _Command(_light_turn_on, ("command_topic",)),
        "turn_off": _send("payload_off"),
    },
    "light_json": {
        "turn_on": _Command(_light_json_turn_on, ("command_topic",)),
        "turn_off": _Command(_light_json_turn_off, ("command_topic",)),
    },
    "lock": {
        "lock": _send("payload_lock", template="command_template"),
        "unlock": _send("payload_unlock", template="command_template"),
        "open": _send("payload_open", template="command_template"),
    },
    "media_player": {
        "turn_on": _send("payload_on"),
        "turn_off": _send("payload_off"),
        "media_play": _send("payload_play", "play_topic"),
        "media_pause": _send("payload_pause", "pause_topic"),
        "media_play_pause": _send("payload_play_pause", "play_pause_topic"),
        "media_next_track": _send("payload_next", "next_topic"),
        "media_previous_track": _send("payload_previous", "previous_topic"),
        "volume_set": _Command(_media_volume_set, ("volume_set_topic",)),
    },
    "scene": {"activate": _send("payload_on"), "turn_on": _send("payload_on")},
    "switch": {
        "turn_on": _send("payload_on", template="command_template"),
        "turn_off": _send("payload_off", template="command_template"),
    },
    "vacuum": {
        "vacuum_start": _send("payload_start", feature="start"),
        "vacuum_pause": _send("payload_pause", feature="pause"),
        "vacuum_stop": _send("payload_stop", feature="stop"),
        "vacuum_return_to_base": _send("payload_return_to_base", feature="return_home"),
    },
    "valve": {
        "open_valve": _send("payload_open", template="command_template"),
        "close_valve": _send("payload_close", template="command_template"),
        "stop_valve": _send("payload_stop", template="command_template"),
        "set_valve_position": _Command(_set_valve_position, ("command_topic", "reports_position")),
    },
}

# toggle: (service when on, service when off, states that count as on)
_TOGGLES: dict[str, tuple[str, str, frozenset[str]]] = {
    "cover": ("close_cover", "open_cover", frozenset({"open", "opening"})),
    "fan": ("turn_off", "turn_on", frozenset({"on"})),
    "light": ("turn_off", "turn_on", frozenset({"on"})),
    "light_json": ("turn_off", "turn_on", frozenset({"on"})),
    "media_player": ("media_pause", "media_play", frozenset({"playing"})),
    "switch": ("turn_off", "turn_on", frozenset({"on"})),
    "valve": ("close_valve", "open_valve", frozenset({"open", "opening"})),
}


# -- capabilities -------------------------------------------------------------------------


def _light_details(modes: list[str], config: Mapping[str, Any]) -> Config:
    details: Config = {"supported_color_modes": modes, "brightness": _dims(modes)}
    if "color_temp" in modes:
        details["min_color_temp_kelvin"], details["max_color_temp_kelvin"] = _color_temp_range(
            config
        )
    if config.get("effect_list"):
        details["effect_list"] = list(config["effect_list"])
    return details


def _fan_details(config: Mapping[str, Any]) -> Config:
    low, high = config["speed_range_min"], config["speed_range_max"]
    return {
        "speed_range": [low, high],
        "speed_count": high - low + 1,
        "preset_modes": list(config["preset_modes"]),
    }


def _climate_details(config: Mapping[str, Any]) -> Config:
    low, high = _temperature_range(config)
    return {
        "hvac_modes": list(config["modes"]),
        "min_temp": low,
        "max_temp": high,
        "target_temp_step": config["temp_step"],
        "temperature_unit": config.get("temperature_unit"),
        "preset_modes": list(config["preset_modes"]),
    }


def _optional_details(*options: str) -> Callable[[Mapping[str, Any]], Config]:
    return lambda config: {option: config[option] for option in options if config.get(option)}


_CAPABILITY_DETAILS: dict[str, Callable[[Mapping[str, Any]], Config]] = {
    "climate": _climate_details,
    "cover": lambda config: {"reports_position": bool(config.get("position_topic"))},
    "fan": _fan_details,
    "light": lambda config: _light_details(_basic_color_modes(config), config),
    "light_json": lambda config: _light_details(_json_color_modes(config), config),
    "sensor": _optional_details("unit_of_measurement", "state_class"),
    "valve": lambda config: {"reports_position": bool(config["reports_position"])},
    "vacuum": _optional_details("fan_speed_list"),
}


def _capabilities(kind: str, config: Mapping[str, Any]) -> Config:
    """What the entity can do: the services its config offers plus kind-specific details."""
    services = {
        service for service, command in _COMMANDS.get(kind, {}).items()
        if command.missing(config) is None
    }
    toggle = _TOGGLES.get(kind)
    if toggle and {toggle[0], toggle[1]} <= services:
        services.add("toggle")
    details = _CAPABILITY_DETAILS.get(kind)
    return {"services": sorted(services), **(details(config) if details else {})}


# -- availability -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _AvailabilityTopic:
    available: str
    not_available: str
    template: str | None


@dataclass(slots=True)
class _Availability:
    """Home Assistant's availability: latest message wins, or all/any topics online."""

    mode: str
    topics: dict[str, _AvailabilityTopic]
    online: dict[str, bool] = field(default_factory=dict)
    latest: bool = False

    @property
    def available(self) -> bool:
        if not self.topics:
            return True
        if self.mode == "all":
            return all(self.online.get(topic, False) for topic in self.topics)
        if self.mode == "any":
            return any(self.online.get(topic, False) for topic in self.topics)
        return self.latest

    def record(self, topic: str, online: bool) -> None:
        self.online[topic] = online
        self.latest = online


def _availability(config: Mapping[str, Any], previous: _Availability | None) -> _Availability:
    topics: dict[str, _AvailabilityTopic] = {}
    if config.get("availability_topic"):
        topics[config["availability_topic"]] = _AvailabilityTopic(
            str(config.get("payload_available", "online")),
            str(config.get("payload_not_available", "offline")),
            config.get("availability_template"),
        )
    for entry in _availability_entries(config):
        topics[entry["topic"]] = _AvailabilityTopic(
            str(entry.get("payload_available", "online")),
            str(entry.get("payload_not_available", "offline")),
            entry.get("value_template"),
        )
    availability = _Availability(config.get("availability_mode", "latest"), topics)
    if previous is not None:  # a re-published config keeps what its topics already said
        availability.online = {t: v for t, v in previous.online.items() if t in topics}
        availability.latest = previous.latest
    return availability


# -- the adapter --------------------------------------------------------------------------


@dataclass(slots=True)
class _Tracked:
    """One discovered entity: its config, availability and subscriptions."""

    entity_id: str
    kind: str
    wire: Config
    config: Config  # wire with defaults
    availability: _Availability
    unsubscribes: list[Unsubscribe] = field(default_factory=list)


# Errors that mean "this message is bad": logged as a warning, never raised out of a handler.
_SKIP_ERRORS = (ValueError, TypeError, KeyError, ArithmeticError, RecursionError)


def _run_logged(topic: str, function: Callable[..., None], *args: Any) -> None:
    try:
        function(*args)
    except _SKIP_ERRORS as error:
        # Topics and errors quote device text: repr'd and cut, so no line in the log is forged.
        log.warning("ha_discovery: skipped a message on %.200r: %.300s", topic, error)
    except Exception:  # a handler must never take the MQTT link down
        log.exception("ha_discovery: failed to handle a message on %.200r", topic)


def _slug(text: str) -> str:
    # Home Assistant caps entity ids at 255 characters; leave room for the domain and _2.
    return re.sub(r"\W+", "_", text.lower(), flags=re.ASCII).strip("_")[:200]


def _unique_id(config: Mapping[str, Any]) -> str | None:
    value = config.get("unique_id")
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # Home Assistant reads unique_id as a string
    return value if isinstance(value, str) and value else None


class HomeAssistantDiscoveryAdapter(DeviceAdapter):
    """Entities announced with Home Assistant MQTT discovery, and commands back to them."""

    name: ClassVar[str] = "ha_discovery"

    def __init__(self, discovery_prefix: str = DEFAULT_PREFIX) -> None:
        self._prefix = discovery_prefix.strip("/")
        self._context: AdapterContext | None = None
        self._tracked: dict[DiscoveryKey, _Tracked] = {}
        # device discovery id -> {component key: component id} of its cmps
        self._devices: dict[str, dict[DiscoveryKey, str]] = {}
        self._warned: set[tuple[str, str]] = set()

    @property
    def _limits(self) -> DeviceLimits:
        return self._registry.limits

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self, context: AdapterContext) -> Callable[[], None]:
        self._context = context
        unsubscribe = context.subscribe(
            f"{self._prefix}/#",
            lambda message: _run_logged(message.topic, self._on_discovery, message),
        )

        def stop() -> None:
            if self._context is not context:
                return  # already stopped
            unsubscribe()
            for tracked in self._tracked.values():
                self._unsubscribe(tracked)
            self._tracked.clear()
            self._devices.clear()
            self._context = None

        return stop

    @property
    def _registry(self) -> DeviceRegistry:
        assert self._context is not None, "the adapter is not started"
        return self._context.registry

    # -- discovery ----------------------------------------------------------------------------

    def _on_discovery(self, message: MqttMessage) -> None:
        prefix = self._prefix + "/"
        if not message.topic.startswith(prefix) or not message.topic.endswith("/config"):
            return  # state published under the prefix, not a config
        match = _DISCOVERY_TOPIC.fullmatch(message.topic[len(prefix) :])
        if match is None:
            log.warning("ha_discovery: ignoring config on malformed topic %.200r", message.topic)
            return
        if self._oversized(message, self._limits.max_config_bytes, "max_config_bytes"):
            return
        component, node_id, object_id = match.group("component", "node_id", "object_id")
        text = message.payload.decode("utf-8")
        if component == "device":
            self._on_device_config(node_id, object_id, text)
        else:
            self._on_component_config(component, node_id, object_id, text)

    def _on_component_config(
        self, component: str, node_id: str | None, object_id: str, text: str
    ) -> None:
        key = (component, f"{node_id} {object_id}" if node_id else object_id)
        if not text.strip():
            self._forget(key)
            return
        if component not in _SUPPORTED_COMPONENTS:
            self._warn_once(("component", component), "component %r is not supported", component)
            return
        document = _parse_object(text)
        if _is_migration(document):
            self._forget(key, remove=False)  # the device config that follows takes it over
            return
        config = _expand_component(document)
        _apply_aliases(component, config)
        _apply_topic_base(config, config.pop(TOPIC_BASE, None))
        self._discover(key, component, object_id, config)

    def _on_device_config(self, node_id: str | None, object_id: str, text: str) -> None:
        device_id = f"{node_id} {object_id}" if node_id else object_id
        if not text.strip():
            for key in self._devices.pop(device_id, {}):
                self._forget(key)
            return
        document = _expand_component(_parse_object(text))
        if _is_migration(document):
            for key in self._devices.pop(device_id, {}):
                self._forget(key, remove=False)
            return
        components, device = document.get("components"), document.get("device")
        if not isinstance(components, dict) or not isinstance(device, dict):
            raise MalformedConfigError("a device config needs a device and a cmps map")
        inherited: Config = {
            option: document[option] for option in SHARED_OPTIONS if option in document
        }
        inherited["device"] = device
        if isinstance(document.get("origin"), dict):
            inherited["origin"] = document["origin"]
        prefix = f"{object_id} {node_id}" if node_id else object_id
        previous = self._devices.get(device_id, {})
        current: dict[DiscoveryKey, str] = {}
        for component_id, raw in components.items():
            try:
                key = self._discover_device_component(
                    prefix, component_id, raw, inherited, document.get(TOPIC_BASE)
                )
            except _SKIP_ERRORS as error:
                log.warning("ha_discovery: device %s component %r skipped: %s",
                            device_id, component_id, error)
                # A broken entry must not remove what that component was before.
                current.update({k: c for k, c in previous.items() if c == component_id})
                continue
            if key is not None:
                current[key] = component_id
        for key in previous.keys() - current.keys():
            self._forget(key)
        self._devices[device_id] = current

    def _discover_device_component(
        self, prefix: str, component_id: Any, raw: Any, inherited: Config, device_base: Any
    ) -> DiscoveryKey | None:
        """Discover one ``cmps`` entry; its key, or None when it was removed or ignored."""
        if not isinstance(component_id, str) or not _COMPONENT_ID.fullmatch(component_id):
            raise MalformedConfigError("component ids may only hold [a-zA-Z0-9_-]")
        if not isinstance(raw, dict):
            raise MalformedConfigError("the component config is not an object")
        config = _expand_component(raw)
        platform = config.pop("platform", None)
        if not isinstance(platform, str):
            raise MalformedConfigError("the component has no platform")
        key = (platform, f"{prefix} {component_id}")
        if not config:  # only "p" left: Home Assistant's way to remove one component
            self._forget(key)
            return None
        if platform not in _SUPPORTED_COMPONENTS:
            self._warn_once(("component", platform), "component %r is not supported", platform)
            return None
        base = config.pop(TOPIC_BASE, device_base)
        config = {
            **{o: v for o, v in inherited.items() if o not in config},
            **config,
            "device": inherited["device"],
        }
        _apply_aliases(platform, config)
        _apply_topic_base(config, base)
        self._discover(key, platform, _slug(key[1]), config)
        return key

    def _oversized(self, message: MqttMessage, limit: int, option: str) -> bool:
        if len(message.payload) <= limit:
            return False
        self._warn_once(("oversized", message.topic), "dropped a %d-byte payload on %.200r: over "
                        "adapters.limits.%s (%d)", len(message.payload), message.topic, option,
                        limit)
        return True

    def _bounded_lists(self, wire: Config) -> Config:
        """``wire`` with its lists of names (modes, effects...) cleaned and bounded."""
        bounded = dict(wire)
        for option in _TEXT_LIST_OPTIONS:
            if isinstance(wire.get(option), list):
                if len(wire[option]) > self._limits.max_list_items:
                    self._warn_once(("max_list_items", option), "%s cut to adapters.limits."
                                    "max_list_items (%d)", option, self._limits.max_list_items)
                bounded[option] = bounded_text_list(wire[option], self._limits)
        return bounded

    def _discover(
        self, key: DiscoveryKey, component: str, object_id: str, wire: Config
    ) -> None:
        """Create or replace the entity ``wire`` describes; a bad config changes nothing."""
        kind = _kind(component, wire)
        _validate(kind, wire)
        wire = self._bounded_lists(wire)
        old = self._tracked.get(key)
        if old is not None and old.wire == wire:
            return  # a re-published retained config: nothing changed
        entity_id = self._claim_entity_id(key, component, wire, object_id)
        config = _effective(kind, wire)
        availability = _availability(wire, old.availability if old else None)
        entity = self._entity(entity_id, component, kind, wire, config, availability.available)
        try:
            self._registry.upsert(entity)
        except RegistryFullError:
            return  # the registry has warned; what was there stays
        if old is not None:
            self._unsubscribe(old)
            if old.entity_id != entity_id:
                self._remove_entity(old.entity_id)
        tracked = _Tracked(entity_id, kind, wire, config, availability)
        self._tracked[key] = tracked
        tracked.unsubscribes = self._subscribe(key, tracked)
        log.info("ha_discovery: %s %s from %s", "updated" if old else "discovered", entity_id, key)

    def _claim_entity_id(
        self, key: DiscoveryKey, component: str, config: Config, object_id: str
    ) -> str:
        preferred = config.get("default_entity_id") or config.get("object_id")
        if isinstance(preferred, str) and _slug(preferred.split(".", 1)[-1]):
            object_id = preferred.split(".", 1)[-1]
        object_part = _slug(object_id) or _slug(key[1])
        if not object_part:
            raise MalformedConfigError(f"no usable object id in {key[1]!r}")
        first = f"{component}.{object_part}"
        candidates = (first, f"{component}.{_slug(key[1]) or object_part}", *(
            f"{first}_{n}" for n in range(2, _MAX_ID_SUFFIX + 1)))
        owners = {tracked.entity_id: other for other, tracked in self._tracked.items()}
        unique_id = _unique_id(config)
        for entity_id in candidates:
            if owners.get(entity_id, key) != key:
                continue  # another live config has it
            existing = self._registry.get_any(entity_id)
            # Free, ours, or a persisted entity of ours whose device came back; never one that
            # another adapter owns or that another unique_id created (a look-alike config).
            if existing is None or existing.source == SOURCE and (
                existing.unique_id is None or existing.unique_id == unique_id
            ):
                return entity_id
        raise MalformedConfigError(f"entity id {first} and its variants belong to other devices")

    def _entity(
        self,
        entity_id: str,
        component: str,
        kind: str,
        wire: Config,
        config: Config,
        available: bool,
    ) -> Entity:
        device = wire.get("device") or {}
        device_name = clean_text(device.get("name"), 100)
        entity_name = clean_text(wire.get("name"), 100)
        device_class = clean_text(wire.get("device_class"), 40)
        name = entity_name or device_name or entity_id.split(".", 1)[1].replace("_", " ")[:100]
        # Home Assistant shows "<device> <entity>" (or "<device> <device class>"); keep it as
        # an alias so "hallway sensor temperature" finds an entity named "Temperature".
        qualifier = entity_name or (device_class.replace("_", " ") if device_class else None)
        aliases = []
        if device_name and qualifier and (
            normalize_name(device_name) not in normalize_name(qualifier)
        ):
            aliases.append(f"{device_name} {qualifier}")
        existing = self._registry.get_any(entity_id)
        suggested_area = clean_text(device.get("suggested_area"), 100)
        area = self._registry.ensure_area(suggested_area, SOURCE) if suggested_area else None
        if existing is not None:  # keep what people set by hand
            aliases = list(dict.fromkeys((*existing.aliases, *aliases)))
            area = area or existing.area
        unit = clean_text(wire.get("unit_of_measurement"), 20)
        capabilities = _capabilities(kind, config)
        return Entity(
            entity_category=clean_text(wire.get("entity_category"), 20),
            enabled_by_default=wire.get("enabled_by_default") is not False,
            unique_id=_unique_id(wire),
            entity_id=entity_id,
            name=name,
            domain=component,
            aliases=tuple(alias for alias in aliases if alias != name),
            area=area,
            device_class=device_class,
            capabilities={k: bounded_value(v, self._limits) for k, v in capabilities.items()},
            attributes={"unit_of_measurement": unit} if unit else {},
            available=available,
            source=SOURCE,
            wire=wire,
        )

    # -- subscriptions and state --------------------------------------------------------------

    def _subscribe(self, key: DiscoveryKey, tracked: _Tracked) -> list[Unsubscribe]:
        assert self._context is not None
        routes: dict[str, list[Callable[[str], None]]] = {}
        for reader in (*_READERS.get(tracked.kind, ()), _ATTRIBUTES_READER):
            topic = tracked.config.get(reader.topic)
            if topic:
                routes.setdefault(topic, []).append(partial(self._on_state, key, reader))
        for topic in tracked.availability.topics:
            routes.setdefault(topic, []).append(partial(self._on_availability, key, topic))
        return [
            self._context.subscribe(topic, partial(self._dispatch, handlers))
            for topic, handlers in routes.items()
        ]

    def _dispatch(self, handlers: list[Callable[[str], None]], message: MqttMessage) -> None:
        if self._oversized(message, self._limits.max_state_bytes, "max_state_bytes"):
            return
        try:
            text = message.payload.decode("utf-8")
        except UnicodeDecodeError:
            log.warning("ha_discovery: ignoring a non-UTF-8 payload on %.200r", message.topic)
            return
        for handler in handlers:  # each on its own: one bad reading must not hide another
            _run_logged(message.topic, handler, text)

    def _on_state(self, key: DiscoveryKey, reader: _Reader, text: str) -> None:
        tracked = self._tracked.get(key)
        entity = self._registry.get_any(tracked.entity_id) if tracked else None
        if tracked is None or entity is None:
            return
        template = tracked.config.get(reader.template) if reader.template else None
        value = self._render_value(tracked.entity_id, template, text)
        if not value:  # Home Assistant ignores empty state messages
            return
        update = reader.apply(tracked.config, value, entity)
        if update is not None:
            self._registry.update_state(
                entity.entity_id, clean_text(update.state, self._limits.max_text_chars),
                bounded_attributes(update.attributes, self._limits),
            )

    def _on_availability(self, key: DiscoveryKey, topic: str, text: str) -> None:
        tracked = self._tracked.get(key)
        if tracked is None:
            return
        expected = tracked.availability.topics[topic]
        value = self._render_value(tracked.entity_id, expected.template, text)
        if value not in (expected.available, expected.not_available):
            return  # Home Assistant ignores anything else
        tracked.availability.record(topic, value == expected.available)
        self._registry.update_state(tracked.entity_id, available=tracked.availability.available)

    def _render_value(self, entity_id: str, template: Any, payload: str) -> str:
        if not template:
            return payload
        try:
            return render_template(str(template), _template_variables(payload))
        except UnsupportedTemplateError as error:
            self._warn_once(
                (entity_id, str(template)), "%s: template %r is not supported (%s); using the "
                "raw payload", entity_id, template, error,
            )
            return payload

    def _warn_once(self, key: tuple[str, str], message: str, *args: Any) -> None:
        key = (key[0], key[1][:200])  # device-chosen topics and names can be long
        if key not in self._warned and len(self._warned) < _MAX_WARNED:
            self._warned.add(key)
            log.warning("ha_discovery: " + message, *args)

    def _forget(self, key: DiscoveryKey, *, remove: bool = True) -> None:
        tracked = self._tracked.pop(key, None)
        if tracked is None:
            return
        self._unsubscribe(tracked)
        if remove:
            self._remove_entity(tracked.entity_id)
            log.info("ha_discovery: removed %s", tracked.entity_id)

    def _remove_entity(self, entity_id: str) -> None:
        existing = self._registry.get_any(entity_id)
        if existing is not None and existing.source == SOURCE:
            self._registry.remove(entity_id)

    @staticmethod
    def _unsubscribe(tracked: _Tracked) -> None:
        for unsubscribe in tracked.unsubscribes:
            unsubscribe()
        tracked.unsubscribes.clear()

    # -- commands -----------------------------------------------------------------------------

    def encode(self, entity: Entity, command: EntityCommand) -> list[MqttMessage]:
        if not entity.wire:
            raise CommandNotSupportedError(f"{entity.entity_id} has no discovery config")
        try:
            kind = _kind(entity.domain, entity.wire)
            config = _effective(kind, entity.wire)
        except (TypeError, ValueError) as error:
            raise CommandNotSupportedError(f"{entity.entity_id}: {error}") from None
        service = command.service
        if service == "toggle" and kind in _TOGGLES:
            when_on, when_off, on_states = _TOGGLES[kind]
            service = when_on if entity.state in on_states else when_off
        handler = _COMMANDS.get(kind, {}).get(service)
        if handler is None:
            raise CommandNotSupportedError(
                f"{entity.entity_id} ({kind}) has no {command.service!r} command"
            )
        problem = handler.missing(config)
        if problem:
            raise CommandNotSupportedError(f"{entity.entity_id} cannot {service}: {problem}")
        return handler.encode(_Request(entity, config, command.params))

    def reports_state(self, entity: Entity) -> bool:
        """Home Assistant's optimistic rule: a device with no state topic for its kind, or
        marked ``optimistic: true``, never confirms a command."""
        try:
            kind = _kind(entity.domain, entity.wire)
        except (TypeError, ValueError):
            return False
        if entity.wire.get("optimistic") is True:
            return False
        return any(not _is_absent(entity.wire.get(reader.topic))
                   for reader in _READERS.get(kind, ()))
