"""media_player (best effort).

Home Assistant has no MQTT media_player platform. Configs on
``<prefix>/media_player/<object_id>/config`` are read in the de-facto community layout:

=====================================  ===========================================
state_topic                            off/on/idle/playing/paused/standby/buffering
                                       (case-insensitive, "stopped" means idle)
volume_state_topic                     volume 0..1
volume_set_topic                       volume_set publishes round(volume_level, 2)
command_topic / payload_on, _off       turn_on / turn_off (power), "ON" / "OFF"
play_topic / payload_play              media_play, payload default "Play"
pause_topic / payload_pause            media_pause, "Pause"
play_pause_topic / payload_play_pause  media_play_pause, "PlayPause"
next_topic / payload_next              media_next_track, "Next"
previous_topic / payload_previous      media_previous_track, "Previous"
media_title_topic, media_artist_topic, media_album_name_topic   text attributes
=====================================  ===========================================

The spellings of the ``mqtt_media_player`` custom integration (``state_state_topic``,
``state_volume_topic``, ``command_volume_topic``, ``command_play_topic`` with
``command_play_payload``, ``state_title_topic`` ...) are accepted as aliases.
"""

from assistant.messages import MqttMessage
from assistant.registry import Entity
from device_adapters.ha_discovery.components.kind import (
    Command, ComponentKind, Reader, Request, Toggle, Update
)
from device_adapters.ha_discovery.components.shared import attribute_reader, message, number, send
from device_adapters.ha_discovery.vocabulary import Config

_STATES = frozenset({"off", "on", "idle", "playing", "paused", "standby", "buffering"})

# The mqtt_media_player custom integration's spellings.
_ALIASES: dict[str, str] = {
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


def _state(config: Config, value: str, entity: Entity) -> Update:
    state = value.strip().lower()
    state = "idle" if state == "stopped" else state
    if state not in _STATES:
        raise ValueError(f"unexpected media player state {value[:80]!r}")
    return Update(state)


def _volume(config: Config, value: str, entity: Entity) -> Update:
    level = float(value)
    if not 0 <= level <= 1:
        raise ValueError(f"volume {value[:20]!r} is outside 0..1")
    return Update(attributes={"volume_level": level})


def _volume_set(request: Request) -> list[MqttMessage]:
    level = number(request, "volume_level", 0, 1, required=True)
    return [message(request, "volume_set_topic", round(float(level), 2))]


KIND = ComponentKind(
    name="media_player",
    component="media_player",
    defaults={
        "payload_on": "ON",
        "payload_off": "OFF",
        "payload_play": "Play",
        "payload_pause": "Pause",
        "payload_play_pause": "PlayPause",
        "payload_next": "Next",
        "payload_previous": "Previous",
    },
    readers=(
        Reader("state_topic", None, _state),
        Reader("volume_state_topic", None, _volume),
        Reader("media_title_topic", None, attribute_reader("media_title")),
        Reader("media_artist_topic", None, attribute_reader("media_artist")),
        Reader("media_album_name_topic", None, attribute_reader("media_album_name")),
    ),
    commands={
        "turn_on": send("payload_on"),
        "turn_off": send("payload_off"),
        "media_play": send("payload_play", "play_topic"),
        "media_pause": send("payload_pause", "pause_topic"),
        "media_play_pause": send("payload_play_pause", "play_pause_topic"),
        "media_next_track": send("payload_next", "next_topic"),
        "media_previous_track": send("payload_previous", "previous_topic"),
        "volume_set": Command(_volume_set, ("volume_set_topic",)),
    },
    toggle=Toggle("media_pause", "media_play", frozenset({"playing"})),
    aliases=_ALIASES,
)
