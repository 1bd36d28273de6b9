"""Shopping and to-do lists, kept in SQLite and shown as ``todo`` entities.

Each configured list is a registry entity ``todo.<slug>`` whose state is the number of open
items, as in Home Assistant, so the fast path finds "my chores list" by name like any device.
Items are cleaned and bounded (``MAX_SUMMARY_CHARS``, ``MAX_ITEMS_PER_LIST``). Every change is
one SQLite transaction, run off the event loop and stored before the list in memory changes
(a reply never says "added" for what was not saved); then the entity's state is updated and
the list is published (the daemon sends it to ``<base>/lists/<slug>``, retained).

An item is found by its words, case and punctuation aside: the same text first, else the same
words without a leading article and in the singular ("the apples" finds "Apple").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from itertools import count
from pathlib import Path
from typing import Any, Literal

from assistant.registry import DeviceRegistry, Entity, normalize_name

log = logging.getLogger(__name__)

SOURCE = "lists"  # the registry source of the list entities
DOMAIN = "todo"
MAX_SUMMARY_CHARS = 200
MAX_ITEMS_PER_LIST = 500
INFLECT_LOAD_S = 30.0  # how long a list edit waits for the singular forms to load
# Punctuation that speech-to-text and typing leave around an item ("milk." or "'eggs'").
_EDGE_PUNCTUATION = " .,;:!?\"'`“”‘’"
_ARTICLES = frozenset({"a", "an", "the", "some"})

ItemStatus = Literal["needs_action", "completed"]
_STATUSES: frozenset[str] = frozenset({"needs_action", "completed"})
Publish = Callable[[str, dict[str, Any]], None]
Outcome = Literal["added", "reopened", "already_there", "completed", "already_completed",
                  "removed", "cleared", "not_found", "replaced"]


class ListError(ValueError):
    """A list request that cannot be carried out; nothing was changed."""


class UnknownListError(ListError):
    """No configured list has this entity id."""


class UnnamedListError(ListError):
    """No list was named and several could be meant: which one is for the user to say."""

    def __init__(self, names: Sequence[str]) -> None:
        super().__init__(", ".join(names))
        self.names = tuple(names)


class ListFullError(ListError):
    """The list already holds ``MAX_ITEMS_PER_LIST`` items."""


class EmptyItemError(ListError):
    """Nothing is left of the item's text once it is cleaned."""


class ListNotSavedError(RuntimeError):
    """The change could not be stored; the list is as it was."""


@dataclass(frozen=True, slots=True)
class ListItem:
    summary: str
    status: ItemStatus = "needs_action"

    @property
    def done(self) -> bool:
        return self.status == "completed"


@dataclass(frozen=True, slots=True)
class TodoList:
    slug: str
    name: str
    items: tuple[ListItem, ...] = ()

    @property
    def entity_id(self) -> str:
        return f"{DOMAIN}.{self.slug}"

    @property
    def open_items(self) -> tuple[ListItem, ...]:
        return tuple(item for item in self.items if not item.done)

    def payload(self) -> dict[str, Any]:
        return {"name": self.name,
                "items": [{"summary": i.summary, "status": i.status} for i in self.items]}


@dataclass(frozen=True, slots=True)
class ListChange:
    """What a request did: the list afterwards, the item it concerned (as stored, or as
    asked for when ``not_found``) and, for ``cleared``, how many items went."""

    outcome: Outcome
    todo: TodoList
    item: ListItem | None = None
    count: int = 0

    @property
    def changed(self) -> bool:
        return self.outcome in {"added", "reopened", "completed", "removed"} or (
            self.outcome == "cleared" and self.count > 0)


def clean_summary(text: str) -> str:
    """One line of at most ``MAX_SUMMARY_CHARS``: control and format characters become
    spaces, runs of spaces one, and the punctuation around the item goes."""
    text = unicodedata.normalize("NFC", text[: MAX_SUMMARY_CHARS * 8])  # bounded work
    text = "".join(" " if unicodedata.category(c).startswith("C") else c for c in text)
    text = " ".join(text.split()).strip(_EDGE_PUNCTUATION)
    return text[:MAX_SUMMARY_CHARS].rstrip(_EDGE_PUNCTUATION)


@lru_cache(maxsize=4096)
def item_key(text: str) -> str:
    """What two wordings of one item share: "The Apples" and "an apple" are both "apple"
    (the singular is inflect's, which knows "berries" and "tomatoes")."""
    words = normalize_name(text).split()
    if len(words) > 1 and words[0] in _ARTICLES:
        words = words[1:]
    phrase = " ".join(words)
    return (_inflect_engine().singular_noun(phrase) or phrase) if phrase else ""


@lru_cache(maxsize=1)
def _inflect_engine() -> Any:
    """inflect's methods carry typeguard's ``@typechecked``, which re-parses and recompiles
    inflect's 4,000-line module once per method as it is imported: seconds with the GIL held,
    the daemon's loop stalled. Those checks only guard the strings we pass, so inflect is
    imported without them (still half a second: the lists load it off the loop as they
    start, not on the daemon's way to READY)."""
    import typeguard

    checked = typeguard.typechecked
    typeguard.typechecked = _unchecked
    try:
        import inflect
    finally:
        typeguard.typechecked = checked
    return inflect.engine()


def _unchecked(target: Any) -> Any:
    return target


def _required_summary(text: str) -> str:
    summary = clean_summary(text)
    if not summary:
        raise EmptyItemError(text[:80])
    return summary


def _same_text(a: str, b: str) -> bool:
    return " ".join(a.casefold().split()) == " ".join(b.casefold().split())


def find_item(items: Sequence[ListItem], text: str,
              prefer: ItemStatus | None = None) -> int | None:
    """The index of the item ``text`` names: the same text first, else the same key; among
    several, the first in the ``prefer`` status."""
    for matches in (lambda i: _same_text(i.summary, text),
                    lambda i: item_key(i.summary) == item_key(text)):
        found = [n for n, item in enumerate(items) if matches(item)]
        if found:
            return next((n for n in found if items[n].status == prefer), found[0])
    return None


def list_slug(name: str) -> str:
    return normalize_name(name).replace(" ", "_")


class _Store:
    """The items of every list in one SQLite table; each write is one transaction."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            self._db.execute("CREATE TABLE IF NOT EXISTS items (list TEXT NOT NULL, "
                             "position INTEGER NOT NULL, summary TEXT NOT NULL, "
                             "status TEXT NOT NULL, PRIMARY KEY (list, position))")
            (check,) = self._db.execute("PRAGMA quick_check").fetchone()
            if check != "ok":
                raise sqlite3.DatabaseError(f"quick_check: {check}")
        except sqlite3.Error:
            self._db.close()
            raise

    def load(self) -> dict[str, list[tuple[Any, Any]]]:
        rows: dict[str, list[tuple[Any, Any]]] = {}
        for slug, summary, status in self._db.execute(
                "SELECT list, summary, status FROM items ORDER BY list, position"):
            rows.setdefault(str(slug), []).append((summary, status))
        return rows

    def write(self, slug: str, items: Sequence[ListItem]) -> None:
        try:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("DELETE FROM items WHERE list = ?", (slug,))
            self._db.executemany(
                "INSERT INTO items (list, position, summary, status) VALUES (?, ?, ?, ?)",
                [(slug, n, item.summary, item.status) for n, item in enumerate(items)])
            self._db.execute("COMMIT")
        except sqlite3.Error:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self._db.close()


def _open_store(path: Path) -> tuple[_Store, dict[str, list[tuple[Any, Any]]]]:
    """The store and its rows; a file that is not a readable lists database is moved aside
    (kept for the user to look at) and the lists start empty."""
    store: _Store | None = None
    try:
        store = _Store(path)
        return store, store.load()
    except sqlite3.DatabaseError as exc:
        if store is not None:
            store.close()
        aside = _aside_path(path)
        path.replace(aside)
        journal = path.with_name(path.name + "-journal")
        if journal.exists():
            journal.replace(aside.with_name(aside.name + "-journal"))
        log.error("lists: %s is not a readable lists database (%s); moved it to %s and the "
                  "lists start empty", path, exc, aside)
        return _Store(path), {}


def _aside_path(path: Path) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%S")
    names = (f"{path.name}.corrupt-{stamp}" + (f"-{n}" if n > 1 else "") for n in count(1))
    return next(p for p in map(path.with_name, names) if not p.exists())


def _stored_items(slug: str, rows: Sequence[tuple[Any, Any]]) -> tuple[ListItem, ...]:
    """The stored rows that are still good items, cleaned and bounded like new ones."""
    items: list[ListItem] = []
    for summary, status in rows:
        cleaned = clean_summary(summary) if isinstance(summary, str) else ""
        if cleaned and status in _STATUSES and len(items) < MAX_ITEMS_PER_LIST:
            items.append(ListItem(cleaned, status))
    if len(items) != len(rows):
        log.warning("lists: skipped %d unreadable or surplus stored items of %s",
                    len(rows) - len(items), slug)
    return tuple(items)


# An edit changes ``items`` in place, given the index of the item meant (None: not there)
# and the cleaned text; it says what it did and to which item.
_ItemEdit = Callable[[list[ListItem], int | None, str], tuple[Outcome, ListItem]]


def _add(items: list[ListItem], found: int | None, summary: str) -> tuple[Outcome, ListItem]:
    if found is None:
        items.append(ListItem(summary))
        return "added", items[-1]
    if not items[found].done:
        return "already_there", items[found]
    items[found] = replace(items[found], status="needs_action")
    return "reopened", items[found]


def _complete(items: list[ListItem], found: int | None,
              summary: str) -> tuple[Outcome, ListItem]:
    if found is None:
        return "not_found", ListItem(summary)
    if items[found].done:
        return "already_completed", items[found]
    items[found] = replace(items[found], status="completed")
    return "completed", items[found]


def _remove(items: list[ListItem], found: int | None, summary: str) -> tuple[Outcome, ListItem]:
    return ("not_found", ListItem(summary)) if found is None else ("removed", items.pop(found))


class ListService:
    """The configured lists; ``start`` loads them, registers their entities and publishes."""

    def __init__(self, store: Path | None, registry: DeviceRegistry, *,
                 publish: Publish | None = None,
                 names: Sequence[str] = ("Shopping List", "To-do"),
                 ask_which: bool = False) -> None:
        self._path = store
        # a request that names no list: the first one (the shopping list), or ask which
        self._ask_which = ask_which
        self._registry = registry
        self._publish = publish
        self._lists: dict[str, TodoList] = {}
        for name in names:
            name = " ".join(name.split())
            slug = list_slug(name)
            if not slug:
                raise ValueError(f"list name {name!r} has no words")
            if slug in self._lists:
                raise ValueError(f"list names {self._lists[slug].name!r} and {name!r} are one")
            self._lists[slug] = TodoList(slug, name)
        if not self._lists:
            raise ValueError("no list names")
        self._default = next(iter(self._lists))
        self._store: _Store | None = None
        self._lock = asyncio.Lock()  # one change at a time, stored in order
        self._singulars: asyncio.Task[Any] | None = None  # inflect, loading off the loop

    async def start(self) -> None:
        """Load the stored items (off the loop), register the lists, publish each once."""
        self._singulars = asyncio.create_task(asyncio.to_thread(_inflect_engine))
        async with self._lock:
            rows: dict[str, list[tuple[Any, Any]]] = {}
            if self._path is not None:
                self._store, rows = await asyncio.to_thread(_open_store, self._path)
            for slug, todo in self._lists.items():
                self._lists[slug] = replace(todo, items=_stored_items(slug, rows.get(slug, ())))
            self._registry.remove_source(SOURCE, keep=[t.entity_id for t in self.lists()])
            for todo in self.lists():
                self._registry.upsert(_entity(todo))
                self._announce(todo)

    async def close(self) -> None:
        async with self._lock:
            if self._store is not None:
                await asyncio.to_thread(self._store.close)
                self._store = None

    def lists(self) -> list[TodoList]:
        return list(self._lists.values())

    def named(self, name: str) -> TodoList | None:
        """The list called ``name`` (as configured), or None."""
        return self._lists.get(list_slug(name))

    def get(self, entity_id: str | None = None) -> TodoList:
        """The list with this entity id; None: the default one (the first configured), or
        ``UnnamedListError`` where the lists have no default and there are several."""
        if entity_id is None:
            if self._ask_which and len(self._lists) > 1:
                raise UnnamedListError([todo.name for todo in self._lists.values()])
            return self._lists[self._default]
        domain, _, slug = entity_id.partition(".")
        if domain != DOMAIN or slug not in self._lists:
            raise UnknownListError(entity_id)
        return self._lists[slug]

    # -- changes -------------------------------------------------------------------------

    async def add(self, entity_id: str | None, text: str) -> ListChange:
        """Add an item; one already there (open) stays as it is, a checked-off one reopens."""
        return await self._edit(entity_id, text, _add, prefer="needs_action")

    async def complete(self, entity_id: str | None, text: str) -> ListChange:
        """Check an item off (Home Assistant's "complete", "check off", "remove")."""
        return await self._edit(entity_id, text, _complete, prefer="needs_action")

    async def remove(self, entity_id: str | None, text: str) -> ListChange:
        """Delete an item for good."""
        return await self._edit(entity_id, text, _remove)

    async def _edit(self, entity_id: str | None, text: str, edit: _ItemEdit,
                    prefer: ItemStatus | None = None) -> ListChange:
        wanted = _required_summary(text)
        if self._singulars is not None:  # find_item singularizes on the loop
            with contextlib.suppress(asyncio.TimeoutError):  # then it loads here, late
                await asyncio.wait_for(asyncio.shield(self._singulars), INFLECT_LOAD_S)
        async with self._lock:
            todo = self.get(entity_id)
            items = list(todo.items)
            outcome, item = edit(items, find_item(items, wanted, prefer), wanted)
            if len(items) > MAX_ITEMS_PER_LIST:
                raise ListFullError(todo.name)
            if tuple(items) == todo.items:
                return ListChange(outcome, todo, item)
            return await self._save(todo, items, outcome, item)

    async def replace_items(self, entity_id: str,
                            items: Sequence[tuple[str, ItemStatus]]) -> ListChange:
        """The list set to ``items`` at once (a home's own lists taken over; an evaluation
        putting a list back as its task starts). Items are cleaned; empty ones are left out."""
        kept = [ListItem(summary, status) for text, status in items
                if (summary := clean_summary(text)) and status in _STATUSES]
        async with self._lock:
            todo = self.get(entity_id)
            return await self._save(todo, kept[:MAX_ITEMS_PER_LIST], "replaced")

    async def clear_completed(self, entity_id: str | None) -> ListChange:
        async with self._lock:
            todo = self.get(entity_id)
            kept = list(todo.open_items)
            gone = len(todo.items) - len(kept)
            if not gone:
                return ListChange("cleared", todo)
            return await self._save(todo, kept, "cleared", count=gone)

    async def _save(self, todo: TodoList, items: list[ListItem], outcome: Outcome,
                    item: ListItem | None = None, count: int = 0) -> ListChange:
        """Store, then show: memory, the entity's state and the published list follow only
        what was stored."""
        if self._store is not None:
            try:
                await asyncio.to_thread(self._store.write, todo.slug, items)
            except sqlite3.Error as exc:
                log.error("lists: could not store %s: %s", todo.slug, exc)
                raise ListNotSavedError(todo.name) from exc
        todo = self._lists[todo.slug] = replace(todo, items=tuple(items))
        self._registry.update_state(todo.entity_id, state=str(len(todo.open_items)))
        self._announce(todo)
        return ListChange(outcome, todo, item, count)

    def _announce(self, todo: TodoList) -> None:
        if self._publish is None:
            return
        try:
            self._publish(f"lists/{todo.slug}", todo.payload())
        except Exception:  # a failed publish must not undo a stored change
            log.exception("lists: could not publish %s", todo.slug)


def _entity(todo: TodoList) -> Entity:
    # "To-do" is also said "todo", "Trader Joe's" also "Trader Joes".
    aliases = tuple(dict.fromkeys(
        variant for variant in (todo.name.replace("-", ""), todo.name.replace("'", ""),
                                todo.name.replace("’", "")) if variant != todo.name))
    return Entity(entity_id=todo.entity_id, name=todo.name, domain=DOMAIN, aliases=aliases,
                  state=str(len(todo.open_items)), source=SOURCE,
                  unique_id=f"{SOURCE}:{todo.slug}")
