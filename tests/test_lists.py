"""Shopping and to-do lists: the service on real SQLite files, the tools, the fast path."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import yaml

from assistant.automation.lists import (
    MAX_ITEMS_PER_LIST,
    MAX_SUMMARY_CHARS,
    ListService,
    UnknownListError,
    clean_summary,
    item_key,
)
from assistant.messages import ToolCall, ToolResult
from assistant.registry import DeviceRegistry, Entity
from assistant.safety import SafetyPolicy
from assistant.understanding.fastpath import FastPath
from skills.base import SkillRegistry, ToolContext, ToolValidationError
from skills.lists import READ_AT_MOST, ListSkill

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
Published = list[tuple[str, dict[str, Any]]]


class Home:
    """A registry with a light, the lists service on ``path`` and its tools."""

    def __init__(self, path: Path | None, names: tuple[str, ...] = ("Shopping List", "To-do"),
                 registry: DeviceRegistry | None = None, ask_which: bool = False) -> None:
        self.registry = registry or DeviceRegistry(None)
        self.registry.upsert(Entity(entity_id="light.kitchen", name="Kitchen Light",
                                    domain="light", source="test"))
        self.published: Published = []
        self.lists = ListService(path, self.registry, names=names, ask_which=ask_which,
                                 publish=lambda topic, body: self.published.append((topic, body)))
        self.skills = SkillRegistry()
        self.skills.register(ListSkill(self.lists))

    async def run(self, tool: str, **args: Any) -> ToolResult:
        async def send_nothing(_commands: list) -> None:
            raise AssertionError("a list tool sent a device command")

        context = ToolContext(self.registry, send_nothing, SafetyPolicy(self.registry))
        return await asyncio.wait_for(self.skills.run(ToolCall(tool, args), context), 5)

    def summaries(self, entity_id: str | None = None) -> list[tuple[str, str]]:
        return [(i.summary, i.status) for i in self.lists.get(entity_id).items]


async def started(path: Path | None, **kwargs: Any) -> Home:
    home = Home(path, **kwargs)
    await asyncio.wait_for(home.lists.start(), 5)
    return home


def stored_rows(path: Path) -> list[tuple[str, int, str, str]]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT list, position, summary, status FROM items "
                          "ORDER BY list, position").fetchall()


async def test_add_check_off_delete_read_and_clear(tmp_path: Path) -> None:
    home = await started(tmp_path / "lists.sqlite")
    assert (await home.run("add_to_list", item="milk")).reply == \
        "Added milk to your shopping list."
    await home.run("add_to_list", item="eggs")
    await home.run("add_to_list", item="bread")
    read = await home.run("read_list")
    assert read.reply == "On your shopping list: milk, eggs and bread." and read.success

    done = await home.run("complete_list_item", item="Milk")
    assert (done.reply, done.success) == ("Checked off milk.", True)
    assert [(a.tool, a.entity_id, a.args) for a in done.actions] == [
        ("complete_list_item", "todo.shopping_list", {"item": "milk"})]
    assert (await home.run("read_list")).reply == "On your shopping list: eggs and bread."
    # Checked off, not gone: it is still stored, as completed.
    assert ("shopping_list", 0, "milk", "completed") in stored_rows(tmp_path / "lists.sqlite")

    removed = await home.run("remove_list_item", item="eggs")
    assert removed.reply == "Removed eggs from your shopping list."
    assert home.summaries() == [("milk", "completed"), ("bread", "needs_action")]

    cleared = await home.run("clear_completed")
    assert cleared.reply == "Cleared 1 checked-off item from your shopping list."
    assert home.summaries() == [("bread", "needs_action")]
    assert (await home.run("clear_completed")).reply == \
        "Nothing on your shopping list is checked off."
    await home.run("complete_list_item", item="bread")
    assert (await home.run("read_list")).reply == "Your shopping list is empty."
    assert stored_rows(tmp_path / "lists.sqlite") == [("shopping_list", 0, "bread", "completed")]
    await home.lists.close()


async def test_an_item_that_is_not_on_the_list_is_not_checked_off(tmp_path: Path) -> None:
    home = await started(tmp_path / "lists.sqlite")
    await home.run("add_to_list", item="eggs")
    before = list(home.published)
    for tool in ("complete_list_item", "remove_list_item"):
        result = await home.run(tool, item="milk")
        assert (result.reply, result.success, result.actions) == (
            "Milk is not on your shopping list.", False, ())
        assert "Checked off" not in result.reply and "Removed" not in result.reply
    assert home.summaries() == [("eggs", "needs_action")]
    assert home.published == before  # nothing changed, nothing published
    # The right item is found, and the wrong-answer check above is not vacuous.
    assert (await home.run("complete_list_item", item="eggs")).reply == "Checked off eggs."


async def test_the_named_list_and_not_the_default_one_changes(tmp_path: Path) -> None:
    home = await started(tmp_path / "lists.sqlite")
    result = await home.run("add_to_list", item="call the plumber", entity_ids=["todo.to_do"])
    assert result.reply == "Added call the plumber to your to-do list."
    assert home.summaries("todo.to_do") == [("call the plumber", "needs_action")]
    assert home.summaries() == []
    missing = await home.run("complete_list_item", item="call the plumber")
    assert (missing.reply, missing.success) == (
        "Call the plumber is not on your shopping list.", False)
    assert (await home.run("read_list", entity_ids=["todo.to_do"])).reply == \
        "On your to-do list: call the plumber."


async def test_lists_without_a_default_ask_which_one_when_none_is_named() -> None:
    home = await started(None, names=("Personal Tasks", "Trader Joe's"), ask_which=True)
    result = await home.run("add_to_list", item="milk")
    assert (result.reply, result.success, result.actions) == (
        "Which list do you mean: Personal Tasks or Trader Joe's?", False, ())
    assert [todo.items for todo in map(home.lists.get, ["todo.personal_tasks",
                                                        "todo.trader_joe_s"])] == [(), ()]
    named = await home.run("add_to_list", item="milk", entity_ids=["todo.trader_joe_s"])
    assert named.success and home.summaries("todo.trader_joe_s") == [("milk", "needs_action")]
    # one list: nothing to ask; and the usual default is the first list
    only = await started(None, names=("Personal Tasks",), ask_which=True)
    assert (await only.run("add_to_list", item="milk")).success
    first = await started(None, names=("Personal Tasks", "Trader Joe's"))
    assert (await first.run("add_to_list", item="milk")).reply == \
        "Added milk to your personal tasks list."


async def test_a_device_or_an_unknown_id_is_not_a_list(tmp_path: Path) -> None:
    home = await started(tmp_path / "lists.sqlite")
    result = await home.run("add_to_list", item="milk", entity_ids=["light.kitchen"])
    assert (result.reply, result.success) == ("There is no list called Kitchen Light.", False)
    with pytest.raises(ToolValidationError):
        await home.run("add_to_list", item="milk", entity_ids=["todo.groceries"])
    with pytest.raises(UnknownListError):
        home.lists.get("todo.groceries")
    assert home.summaries() == [] and home.summaries("todo.to_do") == []


async def test_lists_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "state" / "lists.sqlite"
    first = await started(path)
    for item in ("milk", "eggs", "bread"):
        await first.run("add_to_list", item=item)
    await first.run("complete_list_item", item="eggs")
    await first.run("add_to_list", item="water the plants", entity_ids=["todo.to_do"])
    await first.lists.close()

    second = await started(path)
    assert second.summaries() == [("milk", "needs_action"), ("eggs", "completed"),
                                  ("bread", "needs_action")]
    assert second.summaries("todo.to_do") == [("water the plants", "needs_action")]
    assert second.registry.get("todo.shopping_list").state == "2"
    await second.lists.close()


async def test_without_a_file_lists_live_in_memory(tmp_path: Path) -> None:
    home = await started(None)
    await home.run("add_to_list", item="milk")
    assert home.summaries() == [("milk", "needs_action")]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("content", [
    b"this is not a database" * 100,
    None,  # a real SQLite file whose items table is not ours
])
async def test_a_corrupt_file_is_moved_aside_and_lists_start_empty(
        tmp_path: Path, content: bytes | None, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "lists.sqlite"
    if content is None:
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE items (something_else TEXT)")
        original = path.read_bytes()
    else:
        path.write_bytes(original := content)
    home = await started(path)
    assert home.summaries() == []
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("lists.sqlite.corrupt-")]
    assert len(aside) == 1 and aside[0].read_bytes() == original  # kept for the user
    assert "moved it to" in caplog.text and str(aside[0]) in caplog.text
    # The new file works and keeps what is added.
    await home.run("add_to_list", item="milk")
    await home.lists.close()
    again = await started(path)
    assert again.summaries() == [("milk", "needs_action")]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith("-2")]  # not moved twice


async def test_bad_stored_rows_are_skipped_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / "lists.sqlite"
    await (await started(path)).lists.close()
    with sqlite3.connect(path) as db:
        db.executemany("INSERT INTO items VALUES (?, ?, ?, ?)", [
            ("shopping_list", 0, "milk", "needs_action"),
            ("shopping_list", 1, "eggs", "someday"),
            ("shopping_list", 2, "\x00\x01", "needs_action"),
            ("shopping_list", 3, "x" * 5000, "completed"),
            ("a_list_no_longer_configured", 0, "kept in the file", "needs_action")])
    home = await started(path)
    assert home.summaries() == [("milk", "needs_action"), ("x" * MAX_SUMMARY_CHARS, "completed")]
    # A list that is no longer configured is not shown, but its rows are not deleted.
    assert ("a_list_no_longer_configured", 0, "kept in the file", "needs_action") \
        in stored_rows(path)


async def test_lists_are_todo_entities_with_the_open_count_as_state(tmp_path: Path) -> None:
    registry = DeviceRegistry(None)
    registry.upsert(Entity(entity_id="todo.old_list", name="Old List", domain="todo",
                           source="lists"))  # from a name no longer configured
    home = await started(tmp_path / "lists.sqlite", registry=registry,
                         names=("Shopping List", "To-do", "Trader Joe's"))
    todos = {e.entity_id: e for e in home.registry.entities("todo")}
    assert sorted(todos) == ["todo.shopping_list", "todo.to_do", "todo.trader_joe_s"]
    shopping = todos["todo.shopping_list"]
    assert (shopping.name, shopping.domain, shopping.source, shopping.state) == (
        "Shopping List", "todo", "lists", "0")
    assert todos["todo.to_do"].aliases == ("Todo",)
    assert todos["todo.trader_joe_s"].aliases == ("Trader Joes",)

    await home.run("add_to_list", item="milk")
    await home.run("add_to_list", item="eggs")
    assert home.registry.get("todo.shopping_list").state == "2"
    await home.run("complete_list_item", item="milk")
    assert home.registry.get("todo.shopping_list").state == "1"
    assert home.registry.get("todo.to_do").state == "0"
    await home.run("complete_list_item", item="bread")  # not there: no change
    assert home.registry.get("todo.shopping_list").state == "1"


def test_list_names_must_be_distinct_and_have_words() -> None:
    registry = DeviceRegistry(None)
    with pytest.raises(ValueError, match="are one"):
        ListService(None, registry, names=("Chores", "chores"))
    with pytest.raises(ValueError, match="no words"):
        ListService(None, registry, names=("Chores", "!!"))
    ListService(None, registry, names=("Chores", "Groceries"))  # fine


async def test_each_list_is_published_at_start_and_after_each_change(tmp_path: Path) -> None:
    home = await started(tmp_path / "lists.sqlite")
    assert home.published == [
        ("lists/shopping_list", {"name": "Shopping List", "items": []}),
        ("lists/to_do", {"name": "To-do", "items": []})]
    home.published.clear()
    await home.run("add_to_list", item="milk")
    await home.run("add_to_list", item="eggs")
    await home.run("complete_list_item", item="milk")
    shopping = "lists/shopping_list"
    assert home.published == [
        (shopping, {"name": "Shopping List",
                    "items": [{"summary": "milk", "status": "needs_action"}]}),
        (shopping, {"name": "Shopping List",
                    "items": [{"summary": "milk", "status": "needs_action"},
                              {"summary": "eggs", "status": "needs_action"}]}),
        (shopping, {"name": "Shopping List",
                    "items": [{"summary": "milk", "status": "completed"},
                              {"summary": "eggs", "status": "needs_action"}]})]
    home.published.clear()
    assert (await home.run("add_to_list", item="eggs")).reply == \
        "Eggs is already on your shopping list."
    assert home.published == []  # nothing changed


async def test_a_failing_publisher_does_not_undo_a_stored_change(tmp_path: Path) -> None:
    registry = DeviceRegistry(None)

    def broken(_topic: str, _body: dict[str, Any]) -> None:
        raise ConnectionError("broker gone")

    lists = ListService(tmp_path / "lists.sqlite", registry, publish=broken)
    await lists.start()
    change = await lists.add(None, "milk")
    assert change.outcome == "added" and [i.summary for i in lists.get().items] == ["milk"]


async def test_a_change_that_cannot_be_stored_is_not_claimed(tmp_path: Path) -> None:
    path = tmp_path / "lists.sqlite"
    home = await started(path)
    await home.run("add_to_list", item="milk")
    with sqlite3.connect(path) as db:  # the file loses its table under the running service
        db.execute("DROP TABLE items")
    home.published.clear()
    result = await home.run("add_to_list", item="eggs")
    assert (result.reply, result.success, result.actions) == (
        "Sorry, I could not save your shopping list.", False, ())
    assert home.summaries() == [("milk", "needs_action")]
    assert home.registry.get("todo.shopping_list").state == "1"
    assert home.published == []


def test_item_text_is_cleaned_and_bounded() -> None:
    assert clean_summary("  milk.  ") == "milk"
    assert clean_summary("'eggs'") == "eggs"
    assert clean_summary("oat\x00 milk\x1b\u200b\u202e\nand\tbread") == "oat milk and bread"
    assert clean_summary("Trader Joe's dip") == "Trader Joe's dip"
    assert len(clean_summary("word " * 100_000)) <= MAX_SUMMARY_CHARS
    assert clean_summary("\x00\x01 \x7f ...") == ""


async def test_hostile_item_text(tmp_path: Path) -> None:
    home = await started(tmp_path / "lists.sqlite")
    result = await home.run("add_to_list", item="bananas\x00\x1b[2J" + " " * 300 + "!")
    assert result.reply == "Added bananas [2J to your shopping list."
    long = await home.run("add_to_list", item="y" * 900)
    assert long.success and home.summaries()[-1] == ("y" * MAX_SUMMARY_CHARS, "needs_action")
    with pytest.raises(ToolValidationError):  # a megabyte is refused before the service
        await home.run("add_to_list", item="z" * 1_000_000)
    empty = await home.run("add_to_list", item="\x00\x01\x02")
    assert (empty.reply, empty.success) == ("Which item do you mean?", False)
    assert len(home.summaries()) == 2
    for stored in (row[2] for row in stored_rows(tmp_path / "lists.sqlite")):
        assert stored.isprintable() and len(stored) <= MAX_SUMMARY_CHARS


async def test_a_full_list_refuses_more() -> None:
    home = await started(None)
    for n in range(MAX_ITEMS_PER_LIST):
        await home.lists.add(None, f"item {n}")
    result = await home.run("add_to_list", item="one too many")
    assert not result.success and "full" in result.reply
    assert len(home.summaries()) == MAX_ITEMS_PER_LIST
    # Checked-off items count until cleared; then there is room again.
    await home.run("complete_list_item", item="item 0")
    await home.run("clear_completed")
    assert (await home.run("add_to_list", item="one more")).success


def test_items_match_without_case_articles_or_plural() -> None:
    assert item_key("Apples") == item_key("apple") == item_key("an apple") == \
        item_key("the apples") == item_key("APPLES.")
    assert item_key("tomatoes") == item_key("tomato")
    assert item_key("berries") == item_key("a berry")
    assert item_key("apple pie") != item_key("apple")
    assert item_key("the who") == "who"
    assert item_key("a") == "a"  # a word on its own is not dropped


async def test_matching_prefers_the_same_text_then_the_same_words(tmp_path: Path) -> None:
    home = await started(tmp_path / "lists.sqlite")
    await home.run("add_to_list", item="Apples")
    assert (await home.run("add_to_list", item="an apple")).reply == \
        "Apples is already on your shopping list."
    assert (await home.run("complete_list_item", item="the apple")).reply == \
        "Checked off Apples."
    # Adding a checked-off item again reopens it rather than adding it twice.
    assert (await home.run("add_to_list", item="apples")).reply == \
        "Added Apples to your shopping list."
    assert home.summaries() == [("Apples", "needs_action")]
    await home.run("add_to_list", item="apple pie")
    assert (await home.run("remove_list_item", item="apple pie")).reply == \
        "Removed apple pie from your shopping list."
    assert home.summaries() == [("Apples", "needs_action")]


async def test_reading_a_long_list_counts_the_rest(tmp_path: Path) -> None:
    home = await started(tmp_path / "lists.sqlite")
    for n in range(READ_AT_MOST + 5):
        await home.lists.add(None, f"thing {n}")
    reply = (await home.run("read_list")).reply
    assert reply.endswith(f"thing {READ_AT_MOST - 1} and 5 more.")
    assert f"thing {READ_AT_MOST}," not in reply


async def test_concurrent_changes_are_all_kept_in_order(tmp_path: Path) -> None:
    path = tmp_path / "lists.sqlite"
    home = await started(path)
    await asyncio.wait_for(asyncio.gather(
        *(home.lists.add(None, f"item {n}") for n in range(30))), 10)
    expected = [f"item {n}" for n in range(30)]
    assert [s for s, _ in home.summaries()] == expected
    assert [row[2] for row in stored_rows(path)] == expected
    assert home.registry.get("todo.shopping_list").state == "30"


def test_list_ids_are_optional_in_the_tool_schema(tmp_path: Path) -> None:
    home = Home(None)
    schema = home.skills.spec("add_to_list").json_schema()
    assert schema["required"] == ["item"]
    assert schema["properties"]["entity_ids"]["x-entity-ref"] == ["todo"]
    assert home.skills.capabilities() == ["keep your shopping and to-do lists"]


# -- the fast path ---------------------------------------------------------------------------

LIST_NAMES = ("Shopping List", "To-do", "Chores", "Trader Joe's")


@pytest.fixture()
async def fast_home() -> Home:
    home = await started(None, names=LIST_NAMES)
    return home


@pytest.mark.parametrize(("text", "tool", "args"), [
    ("add oat milk to the shopping list", "add_to_list",
     {"entity_ids": ["todo.shopping_list"], "item": "oat milk"}),
    ("put oat milk on my list", "add_to_list", {"item": "oat milk"}),
    ("add wash the car to my chores list", "add_to_list",
     {"entity_ids": ["todo.chores"], "item": "wash the car"}),
    ("add pay rent to my todo list", "add_to_list",
     {"entity_ids": ["todo.to_do"], "item": "pay rent"}),
    ("add snacks to my trader joes list", "add_to_list",
     {"entity_ids": ["todo.trader_joe_s"], "item": "snacks"}),
    ("put mow the lawn on the chores to-do list", "add_to_list",
     {"entity_ids": ["todo.chores"], "item": "mow the lawn"}),
    # As upstream: "remove" checks an item off; deleting for good has its own words.
    ("remove oat milk from my shopping list", "complete_list_item",
     {"entity_ids": ["todo.shopping_list"], "item": "oat milk"}),
    ("remove wash the car from my chores list", "complete_list_item",
     {"entity_ids": ["todo.chores"], "item": "wash the car"}),
    ("cross off oat milk", "complete_list_item", {"item": "oat milk"}),
    ("mark wash the car as done on my chores list", "complete_list_item",
     {"entity_ids": ["todo.chores"], "item": "wash the car"}),
    ("delete oat milk from the shopping list for good", "remove_list_item",
     {"entity_ids": ["todo.shopping_list"], "item": "oat milk"}),
    ("permanently remove oat milk from the list", "remove_list_item", {"item": "oat milk"}),
    ("erase wash the car from my chores list", "remove_list_item",
     {"entity_ids": ["todo.chores"], "item": "wash the car"}),
    ("what's on my shopping list", "read_list", {"entity_ids": ["todo.shopping_list"]}),
    ("read my to-do list", "read_list", {"entity_ids": ["todo.to_do"]}),
    ("what is on the chores list", "read_list", {"entity_ids": ["todo.chores"]}),
    ("what's on the list", "read_list", {}),
    ("what do we need to buy", "read_list", {}),
    ("clear the checked off items from my chores list", "clear_completed",
     {"entity_ids": ["todo.chores"]}),
    ("clear completed items", "clear_completed", {}),
])
async def test_the_fast_path_routes_list_sentences(fast_home: Home, text: str, tool: str,
                                                   args: dict[str, Any]) -> None:
    fast = FastPath(fast_home.registry)
    result = fast.understand(text)
    assert [(c.tool, c.args) for c in result.calls] == [(tool, args)], result
    fast.close()


@pytest.mark.parametrize("text", [
    "what is on the kitchen light",  # a device is not a list
    "add milk to the kitchen light list",
    "clean up the kitchen",
])
async def test_the_fast_path_does_not_take_devices_for_lists(fast_home: Home, text: str) -> None:
    fast = FastPath(fast_home.registry)
    list_tools = {spec.name for spec in fast_home.skills.specs()}
    assert not any(c.tool in list_tools for c in fast.understand(text).calls)
    fast.close()


async def test_a_sentence_runs_end_to_end(fast_home: Home) -> None:
    fast = FastPath(fast_home.registry)

    async def say(text: str) -> ToolResult:
        (call,) = fast.understand(text).calls
        return await fast_home.run(call.tool, **call.args)

    assert (await say("add paper towels to my shopping list")).reply == \
        "Added paper towels to your shopping list."
    assert (await say("check off the paper towel from my shopping list")).reply == \
        "Checked off paper towels."
    wrong = await say("check off soap from my shopping list")
    assert (wrong.reply, wrong.success) == ("Soap is not on your shopping list.", False)
    assert (await say("what's on my shopping list")).reply == "Your shopping list is empty."
    fast.close()


_UPSTREAM_TOOLS = {"HassShoppingListAddItem": "add_to_list",
                   "HassListAddItem": "add_to_list",
                   "HassShoppingListCompleteItem": "complete_list_item",
                   "HassListCompleteItem": "complete_list_item"}


def _upstream_list_tests() -> list[tuple[str, str, dict[str, str]]]:
    cases = []
    for path in sorted((DATASETS / "ha-intents" / "en").glob("*List*.yaml")):
        for test in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]:
            intent = test["intent"]
            cases += [(text, intent["name"], intent["slots"]) for text in test["sentences"]]
    return cases


async def test_home_assistants_list_test_sentences_reach_the_tools() -> None:
    cases = _upstream_list_tests()
    if not cases:
        pytest.skip(f"no Home Assistant list tests under {DATASETS}")
    names = tuple(dict.fromkeys(("Shopping List", *(s["name"] for _, _, s in cases
                                                    if "name" in s))))
    home = await started(None, names=names)
    fast = FastPath(home.registry)
    wrong = []
    for text, intent, slots in cases:
        calls = [(c.tool, c.args.get("item"), tuple(c.args.get("entity_ids") or ()) or None)
                 for c in fast.understand(text).calls]
        target = (home.lists.get().entity_id,) if "name" not in slots else \
            tuple(t.entity_id for t in home.lists.lists() if t.name == slots["name"])
        allowed = {(_UPSTREAM_TOOLS[intent], slots["item"], ids) for ids in (None, target)}
        if len(calls) != 1 or calls[0] not in allowed:
            wrong.append((text, calls))
    fast.close()
    assert wrong == [], wrong
