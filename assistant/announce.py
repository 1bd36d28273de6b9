"""mimo-home as a device in Home Assistant, announced with MQTT device-based discovery.

One retained config on ``<prefix>/device/<object_id>/config`` (``dev``, ``o`` origin, ``cmps``)
offers three entities: the last request and the last result (diagnostic sensors) and a switch
that mutes listening (config; ON = muted; only when there is something to mute). Their
availability is the MQTT link's own status topic: ``online`` retained on each connect,
``offline`` as its Last Will or on a clean stop.

The config and the current states are published on ``start`` and again whenever the link
comes back: MqttLink has no connect callback, but it re-subscribes and then publishes
``online`` on its status topic on every (re)connect, so a live (not retained) ``online``
is the signal; a restarted broker may have forgotten every retained message. Home
Assistant's birth message (``online`` on ``<prefix>/status``, retained or not) re-announces
too. Everything goes out now or never (``resend=False``): while the broker is away nothing
waits in the link's bounded queue, where it would crowd out device commands, and the next
``online`` republishes the latest state anyway.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import re
from collections.abc import Callable
from typing import Any

from assistant.device_data import clean_text
from assistant.messages import ConversationResponse, MqttMessage
from assistant.safety import extract_secrets, redact_text
from assistant.transport.mqtt_link import BrokerUnreachableError

log = logging.getLogger(__name__)

Publish = Callable[[MqttMessage], None]
Subscribe = Callable[[str, Callable[[MqttMessage], None]], Callable[[], None]]

# Home Assistant refuses a sensor state longer than this.
MAX_STATE_CHARS = 255
ONLINE = b"online"
MUTED, UNMUTED = "ON", "OFF"  # Home Assistant's switch payloads (its defaults)
_NOT_AN_ID_CHARACTER = re.compile(r"[^a-zA-Z0-9_-]")


def object_id_for(client_id: str) -> str:
    """The discovery object id of the hub with this MQTT client id: ``[a-zA-Z0-9_-]`` only.

    An id that had to be cleaned gets a digest of the original, so ``hub.1`` and ``hub:1``
    (distinct client ids, both cleaned to ``hub_1``) stay distinct devices.
    """
    cleaned = _NOT_AN_ID_CHARACTER.sub("_", client_id)
    if cleaned == client_id and cleaned:
        return cleaned
    digest = hashlib.blake2s(client_id.encode(), digest_size=4).hexdigest()
    return f"{cleaned}_{digest}" if cleaned else digest


def _version() -> str | None:
    try:
        return importlib.metadata.version("mimo-home")
    except importlib.metadata.PackageNotFoundError:  # running from a bare source tree
        return None


class SelfDevice:
    """The hub's own discovery config, its states, and the mute switch's commands."""

    def __init__(self, base_topic: str, discovery_prefix: str, client_id: str,
                 publish: Publish, subscribe: Subscribe, *,
                 set_muted: Callable[[bool], None] | None = None) -> None:
        prefix = discovery_prefix.strip("/")
        self.object_id = object_id_for(client_id)
        self.name = clean_text(client_id, 64) or "mimo-home"
        self.config_topic = f"{prefix}/device/{self.object_id}/config"
        self.birth_topic = f"{prefix}/status"
        self.availability_topic = f"{base_topic}/status"  # MqttLink.status_topic
        self.request_topic = f"{base_topic}/assistant/last_request"
        self.result_topic = f"{base_topic}/assistant/last_result"
        self.mute_command_topic = f"{base_topic}/listening/mute/set"
        self.mute_state_topic = f"{base_topic}/listening/mute/state"
        self._publish = publish
        self._subscribe = subscribe
        self._set_muted = set_muted
        self.muted = False
        self._last_request: str | None = None
        self._last_result: str | None = None

    def start(self) -> Callable[[], None]:
        """Announce now (if the link is up), then on every reconnect and Home Assistant
        birth; listen for mute commands. Returns ``stop``."""
        unsubscribers = [self._subscribe(self.availability_topic, self._on_link_status),
                         self._subscribe(self.birth_topic, self._on_home_assistant_status)]
        if self._set_muted is not None:
            unsubscribers.append(self._subscribe(self.mute_command_topic, self._on_mute_command))
        self.announce()

        def stop() -> None:
            while unsubscribers:
                unsubscribers.pop()()

        return stop

    def record(self, request_text: str, response: ConversationResponse) -> None:
        """Publish what was asked and answered, secrets masked, each at most 255 characters."""
        text, spoken_secrets = extract_secrets(request_text)
        reply = response.reply  # masked by the conversation already; the codes are a second net
        for params in (*(action.args for action in (*response.actions, *response.pending)),
                       *({"code": secret} for secret in spoken_secrets)):
            reply = redact_text(reply, params)
        self._last_request = clean_text(text, MAX_STATE_CHARS) or ""
        self._last_result = json.dumps({"reply": clean_text(reply, MAX_STATE_CHARS) or "",
                                        "path": response.path, "success": response.success})
        self._send(self.request_topic, self._last_request)
        self._send(self.result_topic, self._last_result)

    # -- announcing ---------------------------------------------------------------------------

    def discovery_config(self) -> dict[str, Any]:
        version = _version()
        device: dict[str, Any] = {"ids": [f"mimo-home_{self.object_id}"], "name": self.name,
                                  "mf": "mimo-home", "mdl": "Home hub"}
        origin: dict[str, Any] = {"name": "mimo-home"}
        if version:
            device["sw"] = origin["sw"] = version
        components: dict[str, dict[str, Any]] = {
            "last_request": {
                "p": "sensor", "name": "Last request", "ent_cat": "diagnostic",
                "ic": "mdi:account-voice", "stat_t": self.request_topic,
                "uniq_id": f"{self.object_id}_last_request"},
            "last_result": {
                "p": "sensor", "name": "Last result", "ent_cat": "diagnostic",
                "ic": "mdi:message-reply-text", "stat_t": self.result_topic,
                "val_tpl": "{{ value_json.reply }}", "json_attr_t": self.result_topic,
                "uniq_id": f"{self.object_id}_last_result"},
        }
        if self._set_muted is not None:
            components["mute_listening"] = {
                "p": "switch", "name": "Mute listening", "ent_cat": "config",
                "ic": "mdi:microphone-off", "cmd_t": self.mute_command_topic,
                "stat_t": self.mute_state_topic, "pl_on": MUTED, "pl_off": UNMUTED,
                "uniq_id": f"{self.object_id}_mute_listening"}
        return {"dev": device, "o": origin, "cmps": components,
                "avty": [{"t": self.availability_topic}],
                "pl_avail": "online", "pl_not_avail": "offline", "qos": 1}

    def announce(self) -> None:
        """The config, then the states it points at (a new broker has none of them)."""
        self._send(self.config_topic, json.dumps(self.discovery_config()))
        if self._last_request is not None and self._last_result is not None:
            self._send(self.request_topic, self._last_request)
            self._send(self.result_topic, self._last_result)
        if self._set_muted is not None:
            self._send_mute_state()

    def _on_link_status(self, message: MqttMessage) -> None:
        # Live: the link has just (re)connected. A retained copy only says it did earlier.
        if message.payload == ONLINE and not message.retain:
            self.announce()

    def _on_home_assistant_status(self, message: MqttMessage) -> None:
        if message.payload == ONLINE:
            self.announce()

    # -- the mute switch ----------------------------------------------------------------------

    def _on_mute_command(self, message: MqttMessage) -> None:
        assert self._set_muted is not None
        if message.payload not in (MUTED.encode(), UNMUTED.encode()):
            log.warning("ignoring mute command %.40r: expected %s or %s", message.payload,
                        MUTED, UNMUTED)
            return
        muted = message.payload == MUTED.encode()
        if muted != self.muted:
            try:
                self._set_muted(muted)
            except Exception:  # the switch shows what really holds: the state as it was
                log.exception("could not %s listening", "mute" if muted else "unmute")
            else:
                self.muted = muted
        self._send_mute_state()

    def _send_mute_state(self) -> None:
        self._send(self.mute_state_topic, MUTED if self.muted else UNMUTED)

    def _send(self, topic: str, payload: str) -> None:
        try:
            self._publish(MqttMessage(topic, payload.encode(), qos=1, retain=True, resend=False))
        except BrokerUnreachableError:
            log.debug("not announcing %s now: the broker is away (it is on reconnect)", topic)
