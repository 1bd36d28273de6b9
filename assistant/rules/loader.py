"""The rules directory: every rule file read and checked, hot reload, saving a new file.

``<rules_dir>/**/*.yaml|yml`` (hidden files and ``blueprints/`` left out) each hold one rule,
a list of rules, or ``use_blueprint`` entries naming a blueprint under
``<rules_dir>/blueprints/``. A broken file or rule is reported and never stops the others;
a rule id or alias used again is an error for the later one (files in path order).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import watchfiles
import yaml

from assistant.rules.blueprints import Input, fill_blueprint, read_yaml
from assistant.rules.schema import Rule, RuleError, RuleErrors, parse_rule, rule_name, shown

log = logging.getLogger(__name__)

BLUEPRINTS_DIR = "blueprints"
RULE_SUFFIXES = (".yaml", ".yml")
MAX_FILE_BYTES = 1024 * 1024
MAX_FILES = 1000
MAX_RULES = 2000  # in the whole directory
USE_BLUEPRINT_KEYS = ("id", "alias", "description")  # what a rule may set beside use_blueprint
FILE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


@dataclass(frozen=True, slots=True)
class LoadedRule:
    rule: Rule
    file: Path
    name: str  # alias, else id, else "<file stem>#<index>": unique in one LoadResult


@dataclass(frozen=True, slots=True)
class LoadResult:
    rules: tuple[LoadedRule, ...]
    errors: tuple[RuleError, ...]
    files: int = 0  # rule files read


def rule_files(directory: Path) -> list[Path]:
    """The rule files under ``directory``, in path order."""
    found = []
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory)
        if relative.parts[0] == BLUEPRINTS_DIR or any(part.startswith(".")
                                                       for part in relative.parts):
            continue
        if path.suffix in RULE_SUFFIXES and path.is_file():
            found.append(path)
    return found


def _read(path: Path) -> Any:
    limit = MAX_FILE_BYTES
    with path.open("rb") as stream:
        data = stream.read(limit + 1)
    if len(data) > limit:
        raise RuleError(path, "", "", f"is larger than {limit} bytes")
    try:
        return read_yaml(data.decode("utf-8"), path)
    except UnicodeDecodeError:
        raise RuleError(path, "", "", "is not UTF-8 text") from None


def _holds_input(value: Any) -> str | None:
    """The name of an ``!input`` left in ``value``, if any."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, Input):
            return item.name
        if isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return None


def _blueprint_rule(raw: dict[str, Any], directory: Path, file: Path, name: str) -> Any:
    """The automation a ``use_blueprint`` entry stands for."""
    use = raw["use_blueprint"]
    extra = [key for key in raw if key not in (*USE_BLUEPRINT_KEYS, "use_blueprint")]
    if extra:
        raise RuleError(file, name, str(extra[0]), "unknown key beside use_blueprint "
                        f"(only {', '.join(USE_BLUEPRINT_KEYS)})")
    if not isinstance(use, dict) or not isinstance(use.get("path"), str):
        raise RuleError(file, name, "use_blueprint", "needs path (under blueprints/) "
                        "and input")
    unknown = [key for key in use if key not in ("path", "input")]
    if unknown:
        raise RuleError(file, name, f"use_blueprint.{unknown[0]}", "unknown key")
    inputs = use.get("input") or {}
    if not isinstance(inputs, dict):
        raise RuleError(file, name, "use_blueprint.input", f"{shown(inputs)} is not a "
                        "mapping of input names to values")
    root = (directory / BLUEPRINTS_DIR).resolve()
    path = (root / use["path"]).resolve()
    if not path.is_relative_to(root) or path.suffix not in RULE_SUFFIXES:
        raise RuleError(file, name, "use_blueprint.path", f"{use['path']!r} is not a YAML "
                        "file under blueprints/")
    if not path.is_file():
        raise RuleError(file, name, "use_blueprint.path", f"no blueprint {use['path']!r} "
                        f"in {directory / BLUEPRINTS_DIR}")
    blueprint = _read(path)
    if not isinstance(blueprint, dict):
        raise RuleError(file, name, "use_blueprint.path", f"{use['path']!r} is not a "
                        "blueprint")
    automation = fill_blueprint(blueprint, inputs, file=file, rule=name)
    automation.update({key: raw[key] for key in USE_BLUEPRINT_KEYS if key in raw})
    return automation


def _entries(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _file_rules(path: Path, directory: Path) -> Iterator[tuple[int, str, Rule | RuleError]]:
    """(index, name, rule or its errors) for each entry of one file."""
    for index, raw in enumerate(_entries(_read(path)), start=1):
        name = rule_name(raw, index)
        try:
            if isinstance(raw, dict) and "use_blueprint" in raw:
                raw = _blueprint_rule(raw, directory, path, name)
            elif isinstance(raw, dict) and "blueprint" in raw:
                raw = fill_blueprint(raw, file=path, rule=name)  # used with its defaults
            else:
                left = _holds_input(raw)
                if left is not None:
                    raise RuleError(path, name, "", f"!input {left} outside a blueprint")
            yield index, name, parse_rule(raw, file=path, index=index)
        except RuleError as error:
            yield index, name, error


def load_rules(directory: Path) -> LoadResult:
    """Every rule under ``directory``; blocking (see :func:`load_rules_async`)."""
    if not directory.is_dir():
        return LoadResult((), (RuleError(directory, "", "", "is not a directory"),))
    files = rule_files(directory)
    errors: list[RuleError] = []
    if len(files) > MAX_FILES:
        errors.append(RuleError(directory, "", "", f"holds more than {MAX_FILES} rule files; "
                                "the rest are left out"))
        files = files[:MAX_FILES]
    loaded: list[LoadedRule] = []
    seen: dict[str, Path] = {}  # id or alias → the file that has it
    for path in files:
        if len(loaded) >= MAX_RULES:
            errors.append(RuleError(path, "", "", f"more than {MAX_RULES} rules in "
                                    f"{directory}; this file and the rest are left out"))
            break
        try:
            for index, name, rule in _file_rules(path, directory):
                if isinstance(rule, RuleError):
                    errors.extend(rule.errors)
                    continue
                if len(loaded) >= MAX_RULES:
                    errors.append(RuleError(path, name, "", f"more than {MAX_RULES} rules; "
                                            "this one and the rest are left out"))
                    break
                clash = _clash(rule, seen, path, name)
                if clash:
                    errors.append(clash)
                    continue
                for key in (rule.id, rule.alias):
                    if key is not None:
                        seen[key] = path
                loaded.append(LoadedRule(rule, path, rule.alias or rule.id
                                         or f"{path.stem}#{index}"))
        except RuleError as error:
            errors.extend(error.errors)
        except OSError as error:
            errors.append(RuleError(path, "", "", f"cannot be read: {error.strerror or error}"))
    return LoadResult(tuple(loaded), tuple(errors), len(files))


def _clash(rule: Rule, seen: dict[str, Path], path: Path, name: str) -> RuleError | None:
    for kind, key in (("id", rule.id), ("alias", rule.alias)):
        if key is not None and key in seen:
            return RuleError(path, name, kind, f"{key!r} is already used in {seen[key]}")
    return None


async def load_rules_async(directory: Path) -> LoadResult:
    """:func:`load_rules` off the event loop."""
    return await asyncio.to_thread(load_rules, directory)


# -- hot reload ------------------------------------------------------------------------------

def _is_rule_change(change: watchfiles.Change, path: str) -> bool:
    name = Path(path).name
    return name.endswith(RULE_SUFFIXES) and not name.startswith(".")


class RuleDirectoryWatcher:
    """Calls ``on_change`` (on the event loop) once for each burst of changes to rule or
    blueprint files. watchfiles watches from its own thread and hands changes back to the
    loop itself; bursts within ``debounce_ms`` are one change."""

    def __init__(self, directory: Path, on_change: Callable[[], None],
                 debounce_ms: int = 300) -> None:
        self._directory = directory
        self._on_change = on_change
        self._debounce_ms = debounce_ms
        self._stop_event = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> Callable[[], Awaitable[None]]:
        """Watches from now on (a change right after ``start`` returns is seen); returns
        :meth:`stop`."""
        if self._task is not None:
            raise RuntimeError("the watcher is already started")
        self._stop_event.clear()
        armed = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._run(armed), name="rules-watcher")
        await asyncio.wait_for(asyncio.shield(armed), 10)
        return self.stop

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        self._stop_event.set()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _run(self, armed: asyncio.Future[None]) -> None:
        try:
            changes = watchfiles.awatch(
                self._directory, watch_filter=_is_rule_change, debounce=self._debounce_ms,
                stop_event=self._stop_event)
            batch = asyncio.ensure_future(anext(changes))
            # The generator's first step builds the OS watch before it waits: from the next
            # turn of the loop on, nothing written is missed.
            await asyncio.sleep(0)
            if batch.done() and batch.exception() is not None:
                raise batch.exception()  # type: ignore[misc]
            armed.set_result(None)
            while True:
                await batch
                self._notify()
                batch = asyncio.ensure_future(anext(changes))
        except StopAsyncIteration:
            return
        except (OSError, RuntimeError) as error:
            log.error("rules: cannot watch %s: %s", self._directory, error)
            if not armed.done():
                armed.set_exception(error)
        finally:
            if not armed.done():
                armed.cancel()

    def _notify(self) -> None:
        try:
            self._on_change()
        except Exception:  # a listener's bug must not end hot reload
            log.exception("rules: the reload after a file change failed")


# -- saving ----------------------------------------------------------------------------------

def save_rule_file(directory: Path, name: str, rules: list[dict[str, Any]]) -> Path:
    """Writes ``rules`` to ``<directory>/<name>.yaml``, atomically, after checking them (and
    their ids and aliases against the directory's rules). Refuses to overwrite a file.
    Raises :class:`RuleError` (every problem) or ``FileExistsError``; blocking."""
    if not FILE_NAME.match(name):
        raise RuleError(None, "", "", f"{name!r} is not a rule file name (a-z, 0-9, _ and -)")
    path = directory / f"{name}.yaml"
    if path.exists():
        raise FileExistsError(f"{path} already exists")
    try:
        text = yaml.safe_dump(list(rules), sort_keys=False, allow_unicode=True)
    except yaml.YAMLError as error:
        raise RuleError(path, "", "", f"cannot be written as YAML: {error}") from None
    errors: list[RuleError] = []
    present = load_rules(directory) if directory.is_dir() else LoadResult((), ())
    seen = {key: loaded.file for loaded in present.rules
            for key in (loaded.rule.id, loaded.rule.alias) if key is not None}
    for index, raw in enumerate(read_yaml(text, path), start=1):
        try:
            rule = parse_rule(raw, file=path, index=index)
        except RuleError as error:
            errors.extend(error.errors)
            continue
        clash = _clash(rule, seen, path, rule_name(raw, index))
        if clash:
            errors.append(clash)
        seen.update({key: path for key in (rule.id, rule.alias) if key is not None})
    if errors:
        raise RuleErrors(tuple(errors))
    directory.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.link(temporary, path)  # atomic, and fails if the name was taken meanwhile
    finally:
        os.unlink(temporary)
    return path


__all__ = ["LoadResult", "LoadedRule", "RuleDirectoryWatcher", "load_rules",
           "load_rules_async", "rule_files", "save_rule_file"]
