"""Shopping and to-do lists: add, check off, delete, read and tidy up items.

The tools match Home Assistant's list intents: their arguments are the intents' slots
(``item``, and the spoken list name resolved to ``entity_ids`` of ``todo`` entities). Without
``entity_ids`` a tool works on the default list, the shopping list. As in Home Assistant,
"remove milk from my shopping list" checks milk off; ``remove_list_item`` deletes for good.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from assistant.automation.lists import (
    DOMAIN,
    MAX_ITEMS_PER_LIST,
    MAX_SUMMARY_CHARS,
    EmptyItemError,
    ListChange,
    ListFullError,
    ListNotSavedError,
    ListService,
    UnknownListError,
    UnnamedListError,
)
from assistant.messages import Action, ToolResult
from skills.base import ENTITY_REF_KEY, Skill, ToolContext, tool

READ_AT_MOST = 20  # items said by read_list; the rest are counted

# Like ``entity_ids_field("todo")``, but optional: no list said means the shopping list.
ListIds = Annotated[list[str], Field(
    default_factory=list, max_length=8,
    description="The todo lists meant; leave out for the shopping list",
    json_schema_extra={ENTITY_REF_KEY: [DOMAIN]})]


class ListArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    entity_ids: ListIds


class ItemArgs(ListArgs):
    # Longer than a stored item may be: the service cleans and shortens what it keeps.
    item: str = Field(..., min_length=1, max_length=MAX_SUMMARY_CHARS * 5,
                      description="The item as the user said it, e.g. 'milk'")


ListAction = Callable[[str | None], Awaitable[ListChange]]


class ListSkill(Skill):
    name = "lists"
    summary = "keep your shopping and to-do lists"
    topic_words = frozenset({"list", "lists", "shopping", "todo", "groceries"})

    def __init__(self, lists: ListService) -> None:
        self._lists = lists

    @tool("add_to_list", "Add an item to a shopping or to-do list.", ItemArgs)
    async def add_to_list(self, args: ItemArgs, ctx: ToolContext) -> ToolResult:
        return await _each(args, ctx, "add_to_list", lambda eid: self._lists.add(eid, args.item))

    @tool("complete_list_item", "Check an item off a list (it stays on it, marked done); "
          "also for 'remove X from my shopping list'.", ItemArgs)
    async def complete_list_item(self, args: ItemArgs, ctx: ToolContext) -> ToolResult:
        return await _each(args, ctx, "complete_list_item",
                           lambda eid: self._lists.complete(eid, args.item))

    @tool("remove_list_item", "Delete an item from a list for good.", ItemArgs)
    async def remove_list_item(self, args: ItemArgs, ctx: ToolContext) -> ToolResult:
        return await _each(args, ctx, "remove_list_item",
                           lambda eid: self._lists.remove(eid, args.item))

    @tool("clear_completed", "Delete the checked-off items of a list.", ListArgs)
    async def clear_completed(self, args: ListArgs, ctx: ToolContext) -> ToolResult:
        return await _each(args, ctx, "clear_completed", self._lists.clear_completed)

    @tool("read_list", "Say the items still open on a list.", ListArgs)
    async def read_list(self, args: ListArgs, ctx: ToolContext) -> ToolResult:
        replies = []
        for entity_id in args.entity_ids or [None]:
            try:
                todo = self._lists.get(entity_id)
            except UnknownListError:
                return ToolResult(reply=_not_a_list(entity_id, ctx), success=False)
            items = [item.summary for item in todo.open_items]
            if not items:
                replies.append(f"Your {_spoken(todo.name)} is empty.")
                continue
            said = items[:READ_AT_MOST]
            if len(items) > len(said):
                said.append(f"{len(items) - len(said)} more")
            replies.append(f"On your {_spoken(todo.name)}: {_and_joined(said)}.")
        return ToolResult(reply=" ".join(replies))


async def _each(args: ListArgs, ctx: ToolContext, tool_name: str,
                act: ListAction) -> ToolResult:
    """``act`` on every list meant (the default one when none is), one reply for all."""
    replies, actions, success = [], [], True
    for entity_id in args.entity_ids or [None]:
        try:
            change = await act(entity_id)
        except UnknownListError:
            replies.append(_not_a_list(entity_id, ctx))
            success = False
            continue
        except UnnamedListError as exc:
            replies.append(f"Which list do you mean: {_or_joined(exc.names)}?")
            success = False
            continue
        except (EmptyItemError, ListFullError, ListNotSavedError) as exc:
            replies.append(_failure(exc))
            success = False
            continue
        reply, done = _said(change)
        replies.append(reply)
        success = success and done
        if change.changed:
            detail: dict[str, Any] = ({"item": change.item.summary} if change.item
                                      else {"count": change.count})
            actions.append(Action(tool_name, change.todo.entity_id, detail))
    return ToolResult(reply=" ".join(replies), actions=tuple(actions), success=success)


def _said(change: ListChange) -> tuple[str, bool]:
    """The reply for a change, and whether it is a success."""
    where = _spoken(change.todo.name)
    item = change.item.summary if change.item else ""
    match change.outcome:
        case "added" | "reopened":
            return f"Added {item} to your {where}.", True
        case "already_there":
            return _capitalized(f"{item} is already on your {where}."), True
        case "completed":
            return f"Checked off {item}.", True
        case "already_completed":
            return _capitalized(f"{item} is already checked off."), True
        case "removed":
            return f"Removed {item} from your {where}.", True
        case "cleared" if change.count:
            plural = "" if change.count == 1 else "s"
            return f"Cleared {change.count} checked-off item{plural} from your {where}.", True
        case "cleared":
            return f"Nothing on your {where} is checked off.", True
        case _:
            return _capitalized(f"{item} is not on your {where}."), False


def _failure(exc: Exception) -> str:
    if isinstance(exc, EmptyItemError):
        return "Which item do you mean?"
    where = _spoken(str(exc))
    if isinstance(exc, ListFullError):
        return (f"Your {where} is full: it holds {MAX_ITEMS_PER_LIST} items. "
                "Clear the checked-off ones first.")
    return f"Sorry, I could not save your {where}."


def _not_a_list(entity_id: str | None, ctx: ToolContext) -> str:
    entity = ctx.registry.get(entity_id) if entity_id else None
    return f"There is no list called {entity.name if entity else entity_id}."


def _spoken(name: str) -> str:
    """"Shopping List" -> "shopping list", "To-do" -> "to-do list"; a name that says it is a
    list in its own language ("Lista della spesa") stays as it is."""
    name = name.lower()
    return name if any(w.startswith("list") for w in name.split()) else f"{name} list"


def _capitalized(text: str) -> str:
    return text[:1].upper() + text[1:]


def _and_joined(words: list[str]) -> str:
    return _joined(words, "and")


def _or_joined(words: tuple[str, ...]) -> str:
    return _joined(list(words), "or")


def _joined(words: list[str], last: str) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + f" {last} {words[-1]}"
