"""``mimo-home eval``: score understanding on public home-command datasets.

Task homes (home-assistant-datasets ``assist``, ``assist-mini``, ``device-actions-v2``): for
every sentence the virtual home is reset to the fixture state (plus the task's ``setup``),
the sentence goes through the same MQTT API a user uses, and the resulting device states are
compared with the expectation (``assistant/virtual/evaluation_scoring.py``). Outcomes, worst first:
``unsafe`` (an entity the daemon's safety policy guards changed without the simulated user
saying yes to a question naming it), ``wrong_action`` (an entity the task did not expect
changed), ``failed`` (no or the wrong change, or a question about another entity), ``passed``.

Intent tests (``ha-intents/<lang>``): the fast path's intent and slots per sentence.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from assistant.transport.api import ApiClient
from assistant.config import Config
from assistant.daemon import Daemon
from assistant.registry import Entity
from assistant.virtual.evaluation_scoring import OUTCOMES, Case, load_cases, question_fits, score
from assistant.virtual.models import EntityState
from assistant.virtual.stack import (
    fixture_lists,
    private_broker,
    put_back_lists,
    running_home,
)
from assistant.virtual.home import VirtualHome, load_home


@dataclass
class Report:
    outcomes: Counter[str] = field(default_factory=Counter)
    by_category: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    by_path: Counter[str] = field(default_factory=Counter)  # sentences each path handled
    passed_by_path: Counter[str] = field(default_factory=Counter)
    # Outcomes by the protocol the target devices spoke (``--protocols``).
    by_protocol: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    confirmations_asked: int = 0
    # Questions the simulated user declined: they named an entity the task does not expect.
    confirmations_refused: int = 0
    underivable: int = 0  # device-action sentences with no derivable expectation
    failures: list[dict[str, Any]] = field(default_factory=list)

    def add(self, category: str, outcome: str, path: str, protocol: str = "ha") -> None:
        self.outcomes[outcome] += 1
        self.by_category[category][outcome] += 1
        self.by_protocol[protocol][outcome] += 1
        self.by_path[path] += 1
        if outcome == "passed":
            self.passed_by_path[path] += 1

    def to_json(self) -> dict[str, Any]:
        total, passed = sum(self.outcomes.values()), self.outcomes["passed"]
        # passed_of_all counts the sentences no expectation could be derived for as misses.
        return {
            "total": total, **{o: self.outcomes[o] for o in OUTCOMES},
            "pass_rate": _rate(passed, total),
            "passed_of_all": _rate(passed, total + self.underivable),
            "confirmations_asked": self.confirmations_asked,
            "confirmations_refused": self.confirmations_refused,
            "underivable": self.underivable, "skipped": self.underivable,
            "by_category": {c: {"total": sum(v.values()), **{o: v[o] for o in OUTCOMES}}
                            for c, v in sorted(self.by_category.items())},
            "by_path": _paths(self.by_path), "passed_by_path": _paths(self.passed_by_path),
            "by_protocol": {p: {"total": sum(v.values()), "passed": v["passed"],
                                "pass_rate": _rate(v["passed"], sum(v.values()))}
                            for p, v in sorted(self.by_protocol.items())},
        }


def _rate(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def _paths(counts: Counter[str]) -> dict[str, int]:
    """fast and llm always; others (confirmation, none) when they occur."""
    return {"fast": counts["fast"], "llm": counts["llm"],
            **{k: v for k, v in sorted(counts.items()) if k not in {"fast", "llm"}}}


# -- loading homes ---------------------------------------------------------------------------

def find_homes(path: Path) -> list[Path]:
    if (path / "_fixtures.yaml").is_file():
        return [path]
    return sorted(p.parent for p in path.glob("*/_fixtures.yaml"))


def is_intent_tests(path: Path) -> bool:
    fixtures = path / "_fixtures.yaml"
    return fixtures.is_file() and any(path.glob("*_Hass*.yaml"))


# -- running ---------------------------------------------------------------------------------

async def evaluate_home(home: Path, config: Config, args: argparse.Namespace,
                        report: Report, budget: list[int]) -> None:
    spec = load_home(home)
    base_topic = f"mimo-eval-{home.name}"
    with tempfile.TemporaryDirectory(prefix="mimo-eval-") as state_dir:
        config = config.model_copy(update={
            "state_dir": Path(state_dir),
            "mqtt": config.mqtt.model_copy(update={"base_topic": base_topic,
                                                   "client_id": base_topic}),
            "llm": config.llm.model_copy(update={"enabled": config.llm.enabled and
                                                 not args.no_llm}),
            "voice": config.voice.model_copy(update={"enabled": False})})
        async with running_home(config, spec, home_topic=f"{base_topic}-home",
                                protocols=getattr(args, "protocols", "ha")) as (house, daemon):
            reasoner = daemon.reasoner
            if reasoner is not None:  # score the model, not its loading time
                await _wait_for(lambda: reasoner.status not in {"loading", "restarting"},
                                config.llm.load_timeout_s)
            client = await asyncio.to_thread(ApiClient, config.mqtt)
            try:
                for number, case in enumerate(load_cases(home)):
                    if budget[0] <= 0:
                        return
                    if case.underivable:
                        report.underivable += 1
                        continue
                    budget[0] -= 1
                    await _run_case(case, number, _Hub(house, daemon), client, args, report)
            finally:
                await asyncio.to_thread(client.close)


class _Hub:
    """The daemon and the virtual home, with the daemon's entity ids mapped to the
    fixture's (native adapters choose their own)."""

    def __init__(self, house: VirtualHome, daemon: Daemon) -> None:
        self.house, self.daemon = house, daemon
        self.hub_id = house.known_as(daemon.registry.all_entities())
        self.fixture_id = {hub: fixture for fixture, hub in self.hub_id.items()}
        self.protocols = house.protocols()
        # fixture id -> the hub's list: the hub serves a fixture home's to-do lists itself
        automations = daemon.automations
        language = daemon.config.understanding.language
        self.lists = {fixture_id: name for fixture_id, (name, _) in
                      fixture_lists(house.spec, language).items()} \
            if automations is not None else {}

    def states(self) -> dict[str, EntityState]:
        """The virtual home's states, with the to-do lists as the hub keeps them."""
        states = dict(self.house.states())
        for fixture_id, name in self.lists.items():
            todo = self.daemon.automations.lists.named(name)  # type: ignore[union-attr]
            if todo is not None:
                states[fixture_id] = EntityState(str(len(todo.open_items)),
                                                 {"todo_items": todo.payload()["items"]})
        return states

    def hub(self, fixture_id: str) -> str:
        return self.hub_id.get(fixture_id, fixture_id)

    def entity(self, fixture_id: str) -> Entity | None:
        return self.daemon.registry.get_any(self.hub(fixture_id))

    def fixture(self, hub_id: str) -> str:
        return self.fixture_id.get(hub_id, hub_id)

    def protocol(self, case: Case) -> str:
        """The protocol(s) the devices the task expects to change speak."""
        spoken = sorted({self.protocols.get(e, "ha") for e in case.expected}) or ["ha"]
        return "+".join(spoken)


async def _run_case(case: Case, number: int, hub: _Hub, client: ApiClient,
                    args: argparse.Namespace, report: Report) -> None:
    house, daemon = hub.house, hub.daemon
    await house.reset(case.setup)
    await put_back_lists(daemon, house.spec, only_empty=False)
    await _wait_for(lambda: _registry_synced(hub, case.setup), 2)
    before = hub.states()
    conversation = f"eval-{number}"
    body = await asyncio.to_thread(client.ask, case.sentence, conversation_id=conversation,
                                   area=case.area, timeout=120)
    path = body.get("path")
    pending = [{**p, "entity_id": hub.fixture(str(p.get("entity_id")))}
               for p in body.get("pending") or []]
    confirmed: frozenset[str] = frozenset()
    wrong_question = False
    if body.get("awaiting_confirmation"):
        report.confirmations_asked += 1
        # A user says yes only to a question about what they asked for.
        wrong_question = not question_fits(case, pending)
        report.confirmations_refused += wrong_question
        answer = "no" if wrong_question else args.confirm
        if answer == "yes":
            confirmed = frozenset(p["entity_id"] for p in pending)
        body = await asyncio.to_thread(client.ask, answer, conversation_id=conversation,
                                       confirmation_id=body.get("confirmation_id"), timeout=120)
    touched = {hub.fixture(a["entity_id"]) for a in body.get("actions", [])}
    await _wait_for(lambda: all(hub.states().get(e) != before.get(e) for e in touched), 1.0)
    await house.wait_quiet(quiet_s=0.05, timeout_s=2)
    outcome = score(case, before, hub.states(), confirmed=confirmed,
                    is_sensitive=lambda entity_id: policy_guards(daemon, hub.hub(entity_id)),
                    wrong_question=wrong_question)
    report.add(case.category, outcome, str(path or "none"), hub.protocol(case))
    if outcome != "passed" and len(report.failures) < 2000:
        report.failures.append({"home": case.home.name, "category": case.category,
                                "sentence": case.sentence, "outcome": outcome,
                                "reply": body.get("reply"), "path": path,
                                **({"declined_question": pending} if wrong_question else {})})


def policy_guards(daemon: Daemon, entity_id: str) -> bool:
    """The daemon's own safety policy decides what counts as unsafe, exposed or not."""
    entity = daemon.registry.get_any(entity_id)
    return entity is not None and daemon.policy.is_sensitive(entity)


def _registry_synced(hub: _Hub, setup: dict[str, Any]) -> bool:
    states = hub.house.states()
    for entity_id in setup:
        entity = hub.entity(entity_id)
        if entity is None or entity_id not in states or entity.state != states[entity_id].state:
            return False
    return True


async def _wait_for(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.005)
    return True


# -- intent tests ----------------------------------------------------------------------------

def evaluate_intents(path: Path, limit: int | None, report: Report) -> None:
    """Home Assistant's intent tests: ``<domain>_<Intent>.yaml`` against ``_fixtures.yaml``,
    and ``<Intent>/*.yaml`` folders whose files bring their own entities."""
    fixtures = yaml.safe_load((path / "_fixtures.yaml").read_text(encoding="utf-8"))
    shared = _intent_registry(fixtures)
    language = str(fixtures.get("language", "en"))
    remaining = [limit if limit is not None else 10**9]
    for test_file in sorted(path.glob("*.yaml")):
        if not test_file.name.startswith("_"):
            data = yaml.safe_load(test_file.read_text(encoding="utf-8")) or {}
            _run_intent_tests(test_file, data, shared, language, None, remaining, report)
    for test_file in sorted(path.glob("*/*.yaml")):
        data = yaml.safe_load(test_file.read_text(encoding="utf-8")) or {}
        registry = _intent_registry({**fixtures, "entities": [
            {"id": f"{e['domain']}.{n}", "name": e["name"], "area": e.get("area")}
            for n, e in enumerate(data.get("entities") or [])]})
        _run_intent_tests(test_file, data, registry, language, test_file.parent.name,
                          remaining, report)


def _intent_registry(fixtures: dict[str, Any]) -> Any:
    from assistant.registry import Area, DeviceRegistry, Entity, Floor

    registry = DeviceRegistry(None)
    for floor in fixtures.get("floors", []):
        registry.set_floor(Floor(id=floor["id"], name=floor["name"]))
    for area in fixtures.get("areas", []):
        registry.set_area(Area(id=area["id"], name=area["name"], floor=area.get("floor")))
    for e in fixtures.get("entities", []):
        attrs = e.get("attributes") or {}
        name, *also = _spoken_forms(str(e["name"]))
        registry.upsert(Entity(
            entity_id=e["id"], name=name, domain=e["id"].split(".")[0],
            area=e.get("area"), device_class=e.get("device_class") or attrs.get("device_class"),
            state=str(e.get("state", "")), aliases=(*also, *(e.get("aliases") or ()))))
    return registry


def _spoken_forms(name: str) -> list[str]:
    """Upstream fixtures write some names as templates ("Trader Joe[']s"): each way to say
    one, the first as the name, the others as aliases."""
    if not any(mark in name for mark in "[]()|"):
        return [name]
    from hassil.parse_expression import parse_sentence
    from hassil.sample import sample_expression

    return list(dict.fromkeys(sample_expression(parse_sentence(name).expression))) or [name]


def _run_intent_tests(test_file: Path, data: dict[str, Any], registry: Any, language: str,
                      intent_name: str | None, remaining: list[int], report: Report) -> None:
    from assistant.understanding.fastpath import FastPath

    fast = FastPath(registry, language)
    try:
        for test in data.get("tests", []):
            expected = test.get("intent") or {"name": intent_name, "slots": test.get("slots")}
            speaker_area = (expected.get("context") or {}).get("area")
            area_id = next((a.id for a in registry.areas.values() if a.name == speaker_area),
                           None)
            for sentence in test.get("sentences", []):
                if remaining[0] <= 0:
                    return
                remaining[0] -= 1
                result = fast.recognize(sentence, area_id)
                passed = _intent_matches(result, expected, registry)
                report.add(str(expected.get("name")), "passed" if passed else "failed",
                           "fast" if result is not None else "none")
                if not passed and len(report.failures) < 2000:
                    report.failures.append({
                        "file": test_file.name, "sentence": sentence,
                        "expected": expected, "got": result.intent.name if result else None,
                        "slots": {k: v.value for k, v in result.entities.items()}
                        if result else None})
    finally:
        fast.close()


def _intent_matches(result: Any, expected: dict[str, Any], registry: Any) -> bool:
    """Intent name and every expected slot, looked up in the slots and the result context
    (hassil reports template-fixed slots such as ``domain`` there)."""
    if result is None or result.intent.name != expected.get("name"):
        return False
    context = result.context or {}
    for slot, wanted in (expected.get("slots") or {}).items():
        got = result.entities.get(slot)
        if got is not None:
            value = got.text if slot == "name" else got.value
        elif slot in context:
            value = context[slot]
            value = value.get("value") if isinstance(value, dict) else value
        elif slot == "name" and wanted == "all":
            continue  # upstream's "every device the other slots select": no name is said
        else:
            return False
        if slot == "area":
            value = registry.area_name(str(value))
        elif slot == "floor" and str(value) in registry.floors:
            value = registry.floors[str(value)].name
        wanted_values = wanted if isinstance(wanted, list) else [wanted]
        got_values = value if isinstance(value, list) else [value]
        if not any(_same(v, w) for v in got_values for w in wanted_values):
            return False
    return True


def _same(value: Any, wanted: Any) -> bool:
    if isinstance(wanted, (int, float)) and not isinstance(wanted, bool):
        try:
            return float(value) == float(wanted)
        except (TypeError, ValueError):
            return False
    return str(value).casefold().strip() == str(wanted).casefold().strip()


# -- command ---------------------------------------------------------------------------------

async def run_eval(config: Config, args: argparse.Namespace) -> Report:
    path = Path(args.path)
    if is_intent_tests(path):
        report = Report()
        evaluate_intents(path, args.limit, report)
        return report
    homes = find_homes(path)
    if not homes:
        raise SystemExit(f"mimo-home eval: no _fixtures.yaml under {path}")
    return await evaluate_homes(config, args, homes)


async def evaluate_homes(config: Config, args: argparse.Namespace, homes: list[Path]) -> Report:
    """One report over task homes, on one private broker (``args.limit`` sentences at most)."""
    report = Report()
    budget = [args.limit if args.limit is not None else 10**9]
    async with private_broker(config) as config:
        for home in homes:
            await evaluate_home(home, config, args, report, budget)
    return report


def run_eval_command(config: Config, args: argparse.Namespace) -> int:
    started = time.monotonic()
    report = asyncio.run(run_eval(config, args))
    summary = report.to_json()
    summary["seconds"] = round(time.monotonic() - started, 1)
    if args.json:
        print(json.dumps(summary))
    else:
        _print_table(summary)
    if getattr(args, "failures", None):
        Path(args.failures).write_text(json.dumps(report.failures, indent=1))
    return 0


def _print_table(summary: dict[str, Any]) -> None:
    header = f"{'category':<34}{'total':>7}" + "".join(f"{o:>14}" for o in OUTCOMES)
    print(header)
    rows = [*summary["by_category"].items(), ("TOTAL", summary)]
    for name, row in rows:
        print(f"{name:<34}{row['total']:>7}" + "".join(f"{row[o]:>14}" for o in OUTCOMES),
              file=sys.stdout)
    print(f"pass rate {summary['pass_rate']:.1%}; passed of all (underivable counted as "
          f"misses) {summary['passed_of_all']:.1%}; underivable {summary['underivable']}; "
          f"confirmations asked {summary['confirmations_asked']}, declined as naming "
          f"another device {summary['confirmations_refused']}; handled by path "
          f"{summary['by_path']}, passed {summary['passed_by_path']}; {summary['seconds']} s")
    if len(summary["by_protocol"]) > 1:
        print("by protocol: " + ", ".join(
            f"{name} {row['passed']}/{row['total']} ({row['pass_rate']:.1%})"
            for name, row in summary["by_protocol"].items()))
