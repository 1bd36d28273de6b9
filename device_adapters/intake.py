"""How every adapter takes in device messages: bounded payloads, UTF-8 text, warnings
that a hostile device cannot multiply, and handlers that never take the MQTT link down."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from assistant.device_data import DeviceLimits
from assistant.messages import MqttMessage

log = logging.getLogger(__name__)

# What a malformed message raises while being read: logged and skipped, never fatal.
SKIP_ERRORS = (ValueError, TypeError, KeyError, ArithmeticError, RecursionError)
_MAX_WARNED = 1000  # distinct warn-once keys kept: hostile topics must not grow memory


class OncePerMessage(logging.Filter):
    """Lets each distinct log line through once (a bounded number of them): for libraries
    that log what a device sent on every message it sends."""

    def __init__(self) -> None:
        super().__init__()
        self._seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        line = record.getMessage()[:300]
        if line in self._seen or len(self._seen) >= _MAX_WARNED:
            return False
        self._seen.add(line)
        return True


class Intake:
    """One adapter's gate for what devices send; ``limits`` is read on every message, so a
    changed config applies at once."""

    def __init__(self, adapter: str, limits: Callable[[], DeviceLimits]) -> None:
        self.adapter = adapter
        self._limits = limits
        self._warned: set[tuple[str, str]] = set()

    @property
    def limits(self) -> DeviceLimits:
        return self._limits()

    def warn_once(self, key: tuple[str, str], message: str, *args: Any) -> None:
        key = (key[0], key[1][:200])  # device-chosen topics and names can be long
        if key not in self._warned and len(self._warned) < _MAX_WARNED:
            self._warned.add(key)
            log.warning(f"{self.adapter}: {message}", *args)

    def oversized(self, message: MqttMessage, limit: int, option: str) -> bool:
        if len(message.payload) <= limit:
            return False
        self.warn_once(("oversized", message.topic), "dropped a %d-byte payload on %.200r: over "
                       "adapters.limits.%s (%d)", len(message.payload), message.topic, option,
                       limit)
        return True

    def text(self, message: MqttMessage, *, config: bool = False) -> str | None:
        """The payload as text, or None (logged) when it is over the state limit (the config
        limit for discovery documents) or not UTF-8."""
        option = "max_config_bytes" if config else "max_state_bytes"
        if self.oversized(message, getattr(self.limits, option), option):
            return None
        try:
            return message.payload.decode("utf-8")
        except UnicodeDecodeError:
            self.warn_once(("utf-8", message.topic), "ignoring a non-UTF-8 payload on %.200r",
                           message.topic)
            return None

    def run(self, topic: str, function: Callable[..., None], *args: Any) -> None:
        """Call a message handler; what it raises is logged, never passed to the link."""
        try:
            function(*args)
        except SKIP_ERRORS as error:
            # Topics and errors quote device text: repr'd and cut, so no line in the log is forged.
            log.warning("%s: skipped a message on %.200r: %.300s", self.adapter, topic, error)
        except Exception:
            log.exception("%s: failed to handle a message on %.200r", self.adapter, topic)

    def handler(self, function: Callable[[MqttMessage], None]) -> Callable[[MqttMessage], None]:
        """``function`` as a subscription handler guarded by :meth:`run`."""
        return lambda message: self.run(message.topic, function, message)
