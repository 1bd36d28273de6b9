"""Declaring skills: a decorator tags each tool, the registry scans skills for tags.

A tool is declared once (name, description, pydantic argument model, handler). From that one
declaration the registry emits the OpenAI-style JSON schema the LLM sees and validates the
arguments of every call, whichever path produced it, before the handler runs.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Annotated, Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from assistant.messages import (
    Action,
    CommandNotSentError,
    CommandNotSupportedError,
    EntityCommand,
    ToolCall,
    ToolResult,
)
from assistant.safety import Verdict

if TYPE_CHECKING:
    from assistant.registry import DeviceRegistry, Entity
    from assistant.safety import SafetyPolicy
    from device_adapters.base import ReportWait

# JSON-schema marker on arguments that name registry entities; the LLM layer turns it into an
# enum of live entity ids (optionally limited to these domains).
ENTITY_REF_KEY = "x-entity-ref"


def entity_ids_field(*domains: str, description: str = "Target entity ids") -> Any:
    """Annotated type for a non-empty list of entity ids, optionally of the given domains."""
    return Annotated[
        list[str],
        Field(
            min_length=1,
            max_length=64,
            description=description,
            json_schema_extra={ENTITY_REF_KEY: list(domains)},
        ),
    ]


class CommandSink(Protocol):
    """Encodes every command first (so a bad one stops all), then publishes them."""

    async def __call__(self, commands: list[tuple[Entity, EntityCommand]]) -> None: ...


class ConfirmationRequired(RuntimeError):
    """The safety policy wants a "yes" before these entities are actuated."""

    def __init__(self, entities: list[Entity]) -> None:
        super().__init__(f"{', '.join(e.entity_id for e in entities)} need(s) a confirmation")
        self.entities = entities


class ActionRefusedError(RuntimeError):
    """The safety policy refuses the command outright; the text says why."""


@dataclass(frozen=True)
class ToolContext:
    """What a handler may use: the home, where the speaker is, and a way to send commands."""

    registry: DeviceRegistry
    send_command: CommandSink
    policy: SafetyPolicy
    area: str | None = None
    # The entities the user has said "yes" for, for exactly the calls being run now.
    confirmed: frozenset[str] = frozenset()
    # Entities to ask about whatever the policy says: the request did not clearly name them.
    ask_first: frozenset[str] = frozenset()
    # How long replies wait for devices to report what a command did; None: no waiting.
    report_wait: ReportWait | None = None
    # Who asked: timers and reminders answer there; None for a rule or a schedule.
    conversation_id: str | None = None
    # The tools themselves, for a tool that keeps calls to run later (``rehearse``).
    skills: SkillRegistry | None = None

    async def send(self, commands: list[tuple[Entity, EntityCommand]]) -> None:
        """The one gate: every command passes the safety policy before anything is sent."""
        unconfirmed: list[Entity] = []
        for entity, command in commands:
            decision = self.policy.decide(entity, command)
            if decision.verdict is Verdict.REFUSE:
                raise ActionRefusedError(decision.reason)
            wanted = decision.verdict is Verdict.CONFIRM or entity.entity_id in self.ask_first
            if wanted and entity.entity_id not in self.confirmed and entity not in unconfirmed:
                unconfirmed.append(entity)
        if unconfirmed:
            raise ConfirmationRequired(unconfirmed)
        await self.send_command(commands)


Handler = Callable[[Any, BaseModel, ToolContext], Awaitable[ToolResult]]


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    args_model: type[BaseModel]
    handler: Handler

    def json_schema(self) -> dict[str, Any]:
        return self.args_model.model_json_schema()

    def openai_schema(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.json_schema(),
            },
        }


_TOOL_ATTR = "__mimo_tool__"


def tool(name: str, description: str, args: type[BaseModel]) -> Callable[[Handler], Handler]:
    """Tag a skill method as a tool; ``SkillRegistry.register`` finds it."""

    def tag(func: Handler) -> Handler:
        if not inspect.iscoroutinefunction(func):
            raise TypeError(f"tool {name} must be an async method")
        setattr(func, _TOOL_ATTR, (name, description, args))
        return func

    return tag


class Skill:
    """Base class for skills; subclasses declare tools with ``@tool``."""

    name: str = "skill"
    # What the skill can do, as the end of "I can ..." (answers "what can you do?").
    summary: str = ""
    # Its tools act only through ``ToolContext.send``, so ``rehearse`` can run them with a
    # sink that sends nothing, and a timer or schedule may keep them for later.
    rehearsable: bool = False
    # Words a request for this skill says ("timer"): the LLM's calls to its tools that name
    # no device are kept only for a request with one of them (never for chit-chat).
    topic_words: frozenset[str] = frozenset()


class ToolValidationError(ValueError):
    """A tool call that does not fit its declaration: unknown tool or bad arguments."""


@dataclass(frozen=True)
class BoundTool:
    spec: ToolSpec
    skill: Skill


class SkillRegistry:
    def __init__(self) -> None:
        self._tools: dict[str, BoundTool] = {}

    def register(self, skill: Skill) -> Callable[[], None]:
        found: list[str] = []
        for _, member in inspect.getmembers(type(skill), inspect.isfunction):
            tagged = getattr(member, _TOOL_ATTR, None)
            if tagged is None:
                continue
            name, description, args = tagged
            if name in self._tools:
                raise ValueError(f"tool {name!r} is declared twice")
            self._tools[name] = BoundTool(ToolSpec(name, description, args, member), skill)
            found.append(name)

        def unregister() -> None:
            for name in found:
                self._tools.pop(name, None)

        return unregister

    def has_tool(self, name: str) -> bool:
        return name in self._tools

    def topic_words(self, name: str) -> frozenset[str]:
        bound = self._tools.get(name)
        return bound.skill.topic_words if bound is not None else frozenset()

    def speaks_of_a_skill(self, words: Iterable[str]) -> bool:
        """Whether words of a request name what some skill is about ("timer", "list")."""
        said = set(words)
        return any(bound.skill.topic_words & said for bound in self._tools.values())

    def rehearsable(self, name: str) -> bool:
        bound = self._tools.get(name)
        return bound is not None and bound.skill.rehearsable

    def specs(self) -> list[ToolSpec]:
        return [bound.spec for bound in self._tools.values()]

    def spec(self, name: str) -> ToolSpec:
        try:
            return self._tools[name].spec
        except KeyError:
            raise ToolValidationError(f"unknown tool {name!r}") from None

    def capabilities(self) -> list[str]:
        """Each registered skill's summary, in registration order."""
        skills = dict.fromkeys(bound.skill for bound in self._tools.values())
        return [skill.summary for skill in skills if skill.summary]

    def openai_tools(self) -> list[dict[str, Any]]:
        return [spec.openai_schema() for spec in self.specs()]

    def validate(self, call: ToolCall, registry: DeviceRegistry | None = None) -> BaseModel:
        """The call's arguments as the tool's model; entity ids must exist in ``registry``."""
        spec = self.spec(call.tool)
        try:
            args = spec.args_model.model_validate(call.args)
        except ValidationError as exc:
            raise ToolValidationError(_describe(call.tool, exc)) from None
        if registry is not None:
            unknown = [eid for eid in referenced_entity_ids(args) if registry.get(eid) is None]
            if unknown:
                raise ToolValidationError(
                    f"{call.tool}: unknown entity id(s) {', '.join(unknown)}"
                )
        return args

    async def run(self, call: ToolCall, context: ToolContext) -> ToolResult:
        args = self.validate(call, context.registry)
        bound = self._tools[call.tool]
        return await bound.spec.handler(bound.skill, args, context)


class ScheduledCall(BaseModel):
    """A tool call kept to run later: a timer's or a schedule's command."""

    model_config = ConfigDict(extra="forbid")
    tool: str = Field(..., min_length=1, max_length=64)
    args: dict[str, Any] = Field(default_factory=dict)

    def to_call(self) -> ToolCall:
        return ToolCall(self.tool, dict(self.args))


@dataclass(frozen=True)
class Rehearsal:
    """What calls would do now, found by running them with a sink that sends nothing."""

    actions: tuple[Action, ...]
    # Devices that need the user's yes (not yet in ``ToolContext.confirmed``).
    to_confirm: tuple[str, ...]
    # Why calls would fail: unknown tools, bad arguments, refused or unsupported commands.
    problems: tuple[str, ...]

    @property
    def runnable(self) -> bool:
        return not self.problems and bool(self.actions or self.to_confirm)


async def rehearse(calls: Sequence[ToolCall], context: ToolContext) -> Rehearsal:
    """Run ``calls`` through validation and the safety policy without sending anything, so a
    timer or schedule is checked (and its sensitive devices confirmed) when it is made."""
    if context.skills is None:
        raise RuntimeError("rehearse needs ToolContext.skills")

    async def send_nothing(_commands: list[tuple[Entity, EntityCommand]]) -> None:
        return None

    dry = replace(context, send_command=send_nothing, report_wait=None)
    actions: list[Action] = []
    to_confirm: list[str] = []
    problems: list[str] = []
    for call in calls:
        if context.skills.has_tool(call.tool) and not context.skills.rehearsable(call.tool):
            problems.append(f"I can only keep device commands for later, not "
                            f"{call.tool.replace('_', ' ')}")
            continue
        try:
            result = await context.skills.run(call, dry)
        except (ToolValidationError, CommandNotSupportedError, CommandNotSentError) as exc:
            problems.append(str(exc))
            continue
        actions.extend(result.actions)
        to_confirm.extend(eid for asked in result.needs_confirmation
                          for eid in call_entity_ids(asked) if eid not in to_confirm)
        if not result.success and not result.needs_confirmation:
            problems.append(result.reply)
    return Rehearsal(tuple(actions), tuple(to_confirm), tuple(problems))


def call_entity_ids(call: ToolCall) -> list[str]:
    """The devices a call acts on, also those of the calls it keeps for later (``calls``)."""
    ids = list(call.args.get("entity_ids") or ())
    for kept in call.args.get("calls") or ():
        inner = kept if isinstance(kept, ScheduledCall) else ScheduledCall.model_validate(kept)
        ids.extend(eid for eid in call_entity_ids(inner.to_call()) if eid not in ids)
    return ids


def said_as_names(error: Exception, entities: Iterable[Entity]) -> str:
    """An adapter's reason for the user: "Sorry, …" with entity ids said as names."""
    text = str(error)
    for entity in entities:
        text = text.replace(entity.entity_id, f"the {entity.name}")
    return f"Sorry, {text}."


def spoken_names(entities: list[Entity]) -> str:
    """"the Kitchen Light", "the A and the B", "the A, the B and the C"."""
    names = [f"the {e.name}" for e in entities]
    if len(names) <= 2:
        return " and ".join(names)
    return ", ".join(names[:-1]) + f" and {names[-1]}"


def referenced_entity_ids(args: BaseModel) -> list[str]:
    ids: list[str] = []
    for name, field in type(args).model_fields.items():
        extra = field.json_schema_extra
        if isinstance(extra, dict) and ENTITY_REF_KEY in extra:
            value = getattr(args, name)
            ids.extend(value if isinstance(value, list) else [value])
    return ids


def _describe(tool_name: str, exc: ValidationError) -> str:
    problems = "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or '(arguments)'}: {err['msg']}"
        for err in exc.errors()
    )
    return f"{tool_name}: {problems}"
