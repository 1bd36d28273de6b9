"""Declaring skills: a decorator tags each tool, the registry scans skills for tags.

A tool is declared once (name, description, pydantic argument model, handler). From that one
declaration the registry emits the OpenAI-style JSON schema the LLM sees and validates the
arguments of every call, whichever path produced it, before the handler runs.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Protocol

from pydantic import BaseModel, Field, ValidationError

from assistant.messages import EntityCommand, ToolCall, ToolResult

if TYPE_CHECKING:
    from assistant.registry import DeviceRegistry, Entity

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


class UnconfirmedActionError(RuntimeError):
    """Raised when code tries to actuate a sensitive entity without a confirmation."""


@dataclass(frozen=True)
class ToolContext:
    """What a handler may use: the home, where the speaker is, and a way to send commands."""

    registry: DeviceRegistry
    send_command: CommandSink
    area: str | None = None
    # True only when the user has answered "yes" to a confirmation question for this call.
    confirmed: bool = False

    async def send(self, commands: list[tuple[Entity, EntityCommand]]) -> None:
        # The last line of defence: no path reaches a lock or a garage door unconfirmed.
        unconfirmed = [e.entity_id for e, _ in commands if e.sensitive and not self.confirmed]
        if unconfirmed:
            raise UnconfirmedActionError(f"{', '.join(unconfirmed)} need(s) a confirmation")
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

    def specs(self) -> list[ToolSpec]:
        return [bound.spec for bound in self._tools.values()]

    def spec(self, name: str) -> ToolSpec:
        try:
            return self._tools[name].spec
        except KeyError:
            raise ToolValidationError(f"unknown tool {name!r}") from None

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
