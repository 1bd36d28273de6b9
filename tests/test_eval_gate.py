"""The regression gate: the fast path on a few public homes must keep its strict score.

The datasets sit beside the clone (``../shared/datasets``, read in place, never copied). The
floors are a little under the strict figures measured when they were set
(docs/EVALUATION.md), so a real regression fails while a sentence or two of noise does not;
any wrong or unsafe action fails at once. Raise a floor when the figures improve.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import pytest

from assistant.config import Config
from assistant.virtual.evaluation import Report, evaluate_homes, evaluate_intents, find_homes

DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
TASKS = DATASETS / "home-assistant-datasets"

# group -> (homes, floor for passed_of_all). Chosen to cover what matters most: questions
# (locks, valves, garage doors, sprinklers), numbers (volume, brightness, temperature,
# positions), media and sentences with no derivable action, in under a minute together.
GATES: dict[str, tuple[tuple[str, ...], float]] = {
    "assist-mini": (("assist-mini",), 0.88),  # 45 of 50 on 2026-12-01 (lists)
    "assist": (("assist",), 0.9),  # 89 of 95 on 2026-12-01 (#13)
    "device-actions": (("device-actions-v2-fixtures/home2-ca",  # 269 of 329 on 2026-12-01
                        "device-actions-v2-fixtures/home7-cn",
                        "device-actions-v2-fixtures/home8-ru"), 0.78),
}


def gate_failure(group: str, report: Report, floor: float) -> str | None:
    """Why ``report`` fails the gate, or None when it passes."""
    summary = report.to_json()
    if summary["unsafe"] or summary["wrong_action"]:
        harmful = [f for f in report.failures if f["outcome"] in {"wrong_action", "unsafe"}]
        return f"{group}: {summary['unsafe']} unsafe, {summary['wrong_action']} wrong: {harmful}"
    if summary["passed_of_all"] < floor:
        return (f"{group}: {summary['passed']} of {summary['total'] + summary['underivable']} "
                f"passed ({summary['passed_of_all']:.1%}), below the floor of {floor:.0%}")
    return None


@pytest.mark.parametrize("group", sorted(GATES))
async def test_fast_path_keeps_its_strict_score(group: str) -> None:
    if not DATASETS.is_dir():
        pytest.skip(f"no evaluation datasets at {DATASETS} (they sit beside the clone in CI)")
    names, floor = GATES[group]
    homes = [home for name in names for home in find_homes(TASKS / name)]
    assert len(homes) >= len(names), f"a gate home is missing under {TASKS}: {names}"
    args = argparse.Namespace(no_llm=True, limit=None, confirm="yes")
    report = await asyncio.wait_for(evaluate_homes(Config(), args, homes), 90)
    assert gate_failure(group, report, floor) is None


# Home Assistant's timer and list intents: every sentence passed when skills came for them.
SKILL_INTENTS = ("HassStartTimer", "HassCancelTimer", "HassCancelAllTimers",
                 "HassIncreaseTimer", "HassDecreaseTimer", "HassPauseTimer",
                 "HassUnpauseTimer", "HassTimerStatus", "HassShoppingListAddItem",
                 "HassShoppingListCompleteItem", "HassListAddItem", "HassListCompleteItem")


_INTENT_REPORTS: dict[str, Report] = {}


async def intent_report(language: str) -> Report:
    """``ha-intents/<language>`` scored once per session: the skill check and the language
    floor read the same English run."""
    intents = DATASETS / "ha-intents" / language
    if not intents.is_dir():
        pytest.skip(f"no evaluation datasets at {DATASETS} (they sit beside the clone in CI)")
    if language not in _INTENT_REPORTS:
        report = Report()
        await asyncio.wait_for(asyncio.to_thread(evaluate_intents, intents, None, report), 300)
        _INTENT_REPORTS[language] = report
    return _INTENT_REPORTS[language]


async def test_every_timer_and_list_intent_sentence_passes() -> None:
    report = await intent_report("en")
    missing = [name for name in SKILL_INTENTS if not report.by_category[name]["passed"]]
    failed = {name: report.by_category[name]["failed"] for name in SKILL_INTENTS
              if report.by_category[name]["failed"]}
    assert not missing and not failed, (missing, failed, [
        f for f in report.failures if f["expected"].get("name") in SKILL_INTENTS][:10])


# ha-intents languages -> floor for the pass rate (#13: it 424 of 454, es 850 of 872,
# en 947 of 1089 on 2026-12-01); any wrong intent-and-slots answer is a failure, not harm.
LANGUAGE_FLOORS = {"en": 0.85, "it": 0.9, "es": 0.95}


@pytest.mark.parametrize("language", sorted(LANGUAGE_FLOORS))
async def test_each_language_keeps_its_intent_score(language: str) -> None:
    report = await intent_report(language)
    assert gate_failure(f"ha-intents/{language}", report, LANGUAGE_FLOORS[language]) is None


def test_the_gate_fails_a_drop_and_any_harm() -> None:
    def report(*outcomes: str, underivable: int = 0) -> Report:
        made = Report(underivable=underivable)
        for outcome in outcomes:
            made.add("c", outcome, "fast")
            if outcome != "passed":
                made.failures.append({"outcome": outcome})
        return made

    assert gate_failure("g", report("passed", "passed", "passed", "failed"), 0.75) is None
    assert gate_failure("g", report("passed", "passed", "failed", "failed"), 0.75)
    # Underivable sentences count against the floor.
    assert gate_failure("g", report("passed", "passed", "passed", underivable=1), 0.75) is None
    assert gate_failure("g", report("passed", "passed", "passed", underivable=2), 0.75)
    for harm in ("wrong_action", "unsafe"):
        assert gate_failure("g", report(*["passed"] * 99, harm), 0.5)
