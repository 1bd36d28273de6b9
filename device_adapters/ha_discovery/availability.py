"""Home Assistant's availability: ``availability_topic`` and/or an ``availability`` list,
combined as the latest message, all topics or any topic online (``availability_mode``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from device_adapters.ha_discovery.vocabulary import availability_entries


@dataclass(frozen=True, slots=True)
class AvailabilityTopic:
    available: str
    not_available: str
    template: str | None


@dataclass(slots=True)
class Availability:
    mode: str
    topics: dict[str, AvailabilityTopic]
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


def _topic(entry: Mapping[str, Any], template_option: str) -> AvailabilityTopic:
    return AvailabilityTopic(
        str(entry.get("payload_available", "online")),
        str(entry.get("payload_not_available", "offline")),
        entry.get(template_option),
    )


def availability(config: Mapping[str, Any], previous: Availability | None) -> Availability:
    """The availability ``config`` describes; a re-published config keeps what its topics
    already said (``previous``)."""
    topics: dict[str, AvailabilityTopic] = {}
    if config.get("availability_topic"):
        topics[config["availability_topic"]] = _topic(config, "availability_template")
    for entry in availability_entries(config):
        topics[entry["topic"]] = _topic(entry, "value_template")
    result = Availability(config.get("availability_mode", "latest"), topics)
    if previous is not None:
        result.online = {t: v for t, v in previous.online.items() if t in topics}
        result.latest = previous.latest
    return result
