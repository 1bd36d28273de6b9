"""Small typed messages that flow between the daemon's parts.

utterance -> understanding -> ToolCall(s) -> executor -> EntityCommand(s) -> adapter -> MqttMessage
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

UnderstandingPath = Literal["fast", "llm", "confirmation", "none"]


class CommandNotSupportedError(ValueError):
    """The entity cannot do what was asked (no such command topic, feature or mode)."""


class CommandNotSentError(RuntimeError):
    """The command could not go out now (the broker is unreachable) and was not kept."""


class NotStoredError(RuntimeError):
    """What was asked could not be written to the state directory (full or read-only), so
    it did not happen."""


@dataclass(frozen=True, slots=True)
class MqttMessage:
    """One message received from or to be sent to the broker."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    # False for a command to a sensitive device: it goes out now or never, and is not re-sent
    # after a reconnect (the user's yes was for now; a late "unlock" needs a new one).
    resend: bool = True


@dataclass(frozen=True, slots=True)
class EntityCommand:
    """A device-level command in Home Assistant service terms (``turn_on``, ``lock``, ...).

    ``params`` carries service data such as ``brightness`` (0-255), ``rgb_color``,
    ``position`` (0-100), ``temperature``, ``hvac_mode``, ``percentage``, ``volume_level`` (0-1).
    """

    entity_id: str
    service: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A request to run one skill tool; produced by the fast path or by the LLM."""

    tool: str
    args: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Action:
    """Something that was done (or would be done, once confirmed) to one entity."""

    tool: str
    entity_id: str
    args: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ToolResult:
    """What a tool handler did: the actions taken and the text to say."""

    reply: str
    actions: tuple[Action, ...] = ()
    success: bool = True
    # Set when the handler refused to act until the user confirms; the calls to run on "yes".
    needs_confirmation: tuple[ToolCall, ...] = ()


@dataclass(frozen=True, slots=True)
class ConversationRequest:
    text: str
    conversation_id: str | None = None
    area: str | None = None  # the speaker's area (satellite room), used to resolve "the light"
    # Set when answering a confirmation question: the yes counts for that question only.
    confirmation_id: str | None = None


@dataclass(frozen=True, slots=True)
class ConversationResponse:
    reply: str
    actions: tuple[Action, ...] = ()
    path: UnderstandingPath = "none"
    conversation_id: str | None = None
    # True while the assistant waits for a yes/no answer to a confirmation question.
    awaiting_confirmation: bool = False
    confirmation_id: str | None = None  # the question's id, while awaiting_confirmation
    pending: tuple[Action, ...] = ()  # what a "yes" to that question would do
    # True when the assistant asked which device the user meant.
    clarification: bool = False
    success: bool = True

    def to_json(self) -> dict[str, Any]:
        return {
            "reply": self.reply,
            "actions": [
                {"tool": a.tool, "entity_id": a.entity_id, "args": a.args} for a in self.actions
            ],
            "path": self.path,
            "conversation_id": self.conversation_id,
            "awaiting_confirmation": self.awaiting_confirmation,
            "confirmation_id": self.confirmation_id,
            "pending": [
                {"tool": a.tool, "entity_id": a.entity_id, "args": a.args} for a in self.pending
            ],
            "clarification": self.clarification,
            "success": self.success,
        }


NoticeKind = Literal["timer", "reminder", "schedule", "rule", "missed"]


@dataclass(frozen=True, slots=True)
class Notice:
    """Something the assistant says on its own: a timer is due, a reminder, a missed job.

    Spoken in ``area`` (where it was set), published on MQTT, and told in the next reply of
    ``conversation_id`` (or of that area) when no speaker there could say it.
    """

    kind: NoticeKind
    text: str
    area: str | None = None
    conversation_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)  # published with it (ids, names)


@dataclass(frozen=True, slots=True)
class ScheduledRun:
    """Calls that a timer, schedule or rule runs on its own. They go through the same
    executor and safety policy as a spoken request; ``confirmed`` holds only the devices the
    user said yes for when the timer or schedule was made."""

    calls: tuple[ToolCall, ...]
    origin: str  # "timer pizza", "schedule 2", "rule hall light": for logs and replies
    area: str | None = None
    conversation_id: str | None = None
    confirmed: frozenset[str] = frozenset()


Announce = Callable[[Notice], Awaitable[None]]
Execute = Callable[[ScheduledRun], Awaitable[ConversationResponse]]
