"""``mimo-home rules check DIR``: every error in a rules directory, one line each."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from assistant.rules.loader import LoadedRule, load_rules
from assistant.rules.schema import RuleError

# Checks that need more than the file (the engine's ``rule_problems``: services it cannot
# run, a sun trigger without the home's location).
RuleCheck = Callable[[LoadedRule], Iterable[RuleError]]


def _counted(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def check_directory(directory: Path, rule_check: RuleCheck | None = None) -> tuple[str, int]:
    """(the report, the exit code): one line per error naming file, rule and key, then
    "N rules OK in M files"; exit code 1 when there is any error."""
    result = load_rules(directory)
    errors = list(result.errors)
    good = 0
    for loaded in result.rules:
        problems = list(rule_check(loaded)) if rule_check else []
        errors.extend(problems)
        good += not problems
    summary = f"{_counted(good, 'rule')} OK in {_counted(result.files, 'file')}"
    if errors:
        summary += f"; {_counted(len(errors), 'error')}"
    return "\n".join([*(str(error) for error in errors), summary]), 1 if errors else 0
