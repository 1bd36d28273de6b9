"""``mimo-home bench nlu``: fast-path latency on synthetic homes of a given size.

Each utterance goes through the fast path's readings the conversation acts on
(``assistant/understanding/reading.py``), in their order and without running anything: a
follow-up of the last turn first (while the last turn had calls), then the whole sentence,
then a compound split when the whole did not match. The utterances are said in order, as one
conversation, so that "turn it off" follows the request it refers to.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Literal

from assistant.daemon import settle_heap
from assistant.figures import figure
from assistant.messages import ToolCall
from assistant.registry import Area, DeviceRegistry, Entity
from assistant.understanding.fastpath import FastPath, FastPathResult
from assistant.understanding.followups import FollowUp, LastTurn
from assistant.understanding.reading import FastReader

SIZES = (50, 500, 2000)
ROOMS = ["Kitchen", "Living Room", "Bedroom", "Bathroom", "Office", "Hallway", "Garage",
         "Dining Room", "Guest Room", "Nursery", "Laundry", "Attic", "Basement", "Patio",
         "Porch", "Library", "Gym", "Studio", "Pantry", "Cellar"]
# (domain, device class, name) kinds repeated across rooms until the home has N entities
KINDS = [("light", None, "Ceiling Light"), ("light", None, "Lamp"), ("switch", None, "Plug"),
         ("sensor", "temperature", "Temperature"), ("cover", "blind", "Blinds"),
         ("fan", None, "Fan"), ("light", None, "Spotlight"), ("binary_sensor", "motion",
                                                               "Motion")]
# One conversation: follow-ups refer to the request before them.
UTTERANCES = [
    "turn on the kitchen ceiling light", "turn off the bedroom lamp",
    "and the kitchen lamp too",
    "set the office spotlight to 40%", "what is the temperature in the kitchen",
    "open the living room blinds", "turn on the lights in the hallway",
    "turn off the office plug", "is the bathroom fan on", "dim the kitchen lamp to 20 percent",
    "turn the bedroom ceiling light red",
    "turn on the kitchen ceiling light and turn off the hallway lamp",
    "turn on the office spotlight", "turn it off",
    "turn off the bedroom lamp and the office plug",
    "turn on the bedroom spotlight", "make it brighter",
]

Path = Literal["follow-up", "whole", "compound", "none"]


@dataclass(frozen=True, slots=True)
class Understood:
    """What the understanding steps made of one utterance: the calls a request would run
    and which step found them."""

    path: Path
    calls: tuple[ToolCall, ...] = ()
    understood: tuple[str, ...] = ()


class Understanding:
    """The conversation's readings of requests in one conversation, without execution."""

    def __init__(self, fast: FastPath) -> None:
        self.reader = FastReader(fast)
        self.last: LastTurn | None = None

    def understand(self, text: str, area: str | None = None) -> Understood:
        understood = self._understand(text, area)
        if understood.calls:  # what the conversation keeps as the last turn once they ran
            self.last = LastTurn(understood.understood, understood.calls)
        return understood

    def _understand(self, text: str, area: str | None) -> Understood:
        for reading in self.reader.readings(text, area, self.last):
            if isinstance(reading, FollowUp):
                if reading.calls:
                    return Understood("follow-up", reading.undo + reading.calls,
                                      reading.understood)
            elif isinstance(reading, FastPathResult):
                if reading.calls:
                    return Understood("whole", reading.calls, (text,))
            elif done := [part for part in reading if part.result.calls]:
                return Understood("compound", tuple(c for p in done for c in p.result.calls),
                                  tuple(p.understood or p.said for p in done))
        return Understood("none")


def synthetic_home(size: int) -> DeviceRegistry:
    registry = DeviceRegistry(None)
    for room in ROOMS:
        registry.set_area(Area(id=room.lower().replace(" ", "_"), name=room))
    count = 0
    copy = 0
    while count < size:
        for room in ROOMS:
            for domain, device_class, kind in KINDS:
                if count >= size:
                    break
                area_id = room.lower().replace(" ", "_")
                suffix = f" {copy + 1}" if copy else ""
                name = f"{room} {kind}{suffix}"
                registry.upsert(Entity(
                    entity_id=f"{domain}.{name.lower().replace(' ', '_')}", name=name,
                    domain=domain, area=area_id, device_class=device_class,
                    state="20.5" if domain == "sensor" else "off", source="bench"))
                count += 1
        copy += 1
    return registry


def run_nlu_bench(sizes: tuple[int, ...] = SIZES, repeats: int = 20) -> dict[str, dict]:
    """Latency of the understanding steps per utterance, per home size: median and p95 over
    repeated runs, and the median of each utterance's first run (``first_median_ms``), which
    also pays for working out which templates can match that kind of sentence. The median of
    the CPU time the thread spent (``cpu_median_ms``) leaves out the waits for a core on a
    busy machine. ``paths`` counts the samples by the step that understood them."""
    results: dict[str, dict] = {}
    for size in sizes:
        fast = FastPath(synthetic_home(size))
        fast.understand("hello")  # builds the slot lists once; not measured
        settle_heap()  # as the daemon does once started
        understanding = Understanding(fast)
        first = [_timed(understanding, text)[0] for text in UTTERANCES]
        timings, cpu_timings = [], []
        paths: dict[str, int] = dict.fromkeys(("whole", "compound", "follow-up", "none"), 0)
        for _ in range(repeats):
            for text in UTTERANCES:
                elapsed_ms, understood, cpu_ms = _timed(understanding, text)
                timings.append(elapsed_ms)
                cpu_timings.append(cpu_ms)
                paths[understood.path] += 1
        spread = figure(timings)
        results[str(size)] = {
            "median_ms": spread["median"],
            "p95_ms": spread["p95"],
            "first_median_ms": round(statistics.median(first), 3),
            "cpu_median_ms": round(statistics.median(cpu_timings), 3),
            "samples": len(timings),
            "matched": len(timings) - paths["none"],
            "paths": paths,
        }
        fast.close()
    return results


def _timed(understanding: Understanding, text: str) -> tuple[float, Understood, float]:
    """Wall-clock milliseconds, what was understood, and the thread's CPU milliseconds."""
    started, cpu_started = time.perf_counter(), time.thread_time()
    understood = understanding.understand(text)
    return ((time.perf_counter() - started) * 1000, understood,
            (time.thread_time() - cpu_started) * 1000)
