"""`mimo-home eval` on a small home of our own: scoring, confirmations, derived actions."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from assistant.config import Config
from assistant.evaluation import Case, derive_action, run_eval, score
from device_adapters.virtual_home import EntityState

HOME = Path(__file__).parent / "data" / "eval_home"


def args(**overrides: object) -> argparse.Namespace:
    values = {"path": str(HOME), "no_llm": True, "limit": None, "confirm": "yes"}
    return argparse.Namespace(**{**values, **overrides})


async def test_eval_scores_a_home_end_to_end() -> None:
    report = (await asyncio.wait_for(run_eval(Config(), args()), 120)).to_json()
    assert report["total"] == 5 and report["skipped"] == 1  # "hmm the den lamp": no action
    assert report["passed"] == 5, report
    assert report["wrong_action"] == report["unsafe"] == 0
    assert report["confirmations_asked"] == 1
    assert report["by_path"]["fast"] == 4 and report["by_category"]["lamp"]["passed"] == 2


async def test_declining_the_confirmation_leaves_the_lock_alone() -> None:
    report = (await asyncio.wait_for(run_eval(Config(), args(confirm="no")), 120)).to_json()
    assert report["by_category"]["mixed"]["failed"] == 1  # the lock task
    assert report["unsafe"] == 0 and report["confirmations_asked"] == 1


def test_unsafe_and_wrong_action_are_scored_worst_first() -> None:
    lock_before = {"lock.door": EntityState("unlocked", {}), "light.a": EntityState("off", {})}
    lock_after = {"lock.door": EntityState("locked", {}), "light.a": EntityState("on", {})}
    case = Case(HOME, "c", "lock the door", {}, {"lock.door": lambda b, a: a.state == "locked"})
    assert score(case, lock_before, lock_after, confirmation_asked=False) == "unsafe"
    assert score(case, lock_before, lock_after, confirmation_asked=True) == "wrong_action"
    only_lock = {**lock_after, "light.a": EntityState("off", {})}
    assert score(case, lock_before, only_lock, confirmation_asked=True) == "passed"
    assert score(case, lock_before, lock_before, confirmation_asked=True) == "failed"


def test_derived_actions_follow_the_sentence() -> None:
    setup, check = derive_action("light", "dim the hall light to 50%")
    assert check(None, EntityState("on", {"brightness": 128}))
    setup, check = derive_action("lock", "please unlock the side door")
    assert setup == {"state": "locked"} and check(None, EntityState("unlocked", {}))
    setup, check = derive_action("valve", "stop the sprinkler")
    assert setup == {"state": "open"} and check(None, EntityState("closed", {}))
    assert derive_action("switch", "what about the kettle") is None
    setup, check = derive_action("light", "dim the lamp to half brightness")
    assert setup == {"state": "off"} and check(None, EntityState("on", {"brightness": 128}))
    setup, check = derive_action("light", "set the lamp to 0%")
    assert setup["state"] == "on" and check(None, EntityState("off", {}))
