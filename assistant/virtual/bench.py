"""``mimo-home bench nlu``: fast-path latency on synthetic homes of a given size."""

from __future__ import annotations

import statistics
import time

from assistant.understanding.fastpath import FastPath, FastPathResult
from assistant.registry import Area, DeviceRegistry, Entity

ROOMS = ["Kitchen", "Living Room", "Bedroom", "Bathroom", "Office", "Hallway", "Garage",
         "Dining Room", "Guest Room", "Nursery", "Laundry", "Attic", "Basement", "Patio",
         "Porch", "Library", "Gym", "Studio", "Pantry", "Cellar"]
# (domain, device class, name) kinds repeated across rooms until the home has N entities
KINDS = [("light", None, "Ceiling Light"), ("light", None, "Lamp"), ("switch", None, "Plug"),
         ("sensor", "temperature", "Temperature"), ("cover", "blind", "Blinds"),
         ("fan", None, "Fan"), ("light", None, "Spotlight"), ("binary_sensor", "motion",
                                                               "Motion")]
UTTERANCES = [
    "turn on the kitchen ceiling light", "turn off the bedroom lamp",
    "set the office spotlight to 40%", "what is the temperature in the kitchen",
    "open the living room blinds", "turn on the lights in the hallway",
    "turn off the office plug", "is the bathroom fan on", "dim the kitchen lamp to 20 percent",
    "turn the bedroom ceiling light red",
]


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


def run_nlu_bench(sizes: tuple[int, ...] = (50, 500), repeats: int = 20) -> dict[str, dict]:
    """Latency of FastPath.understand per utterance, per home size: median and p95 over
    repeated runs, and the median of each utterance's first run (``first_median_ms``), which
    also pays for working out which templates can match that kind of sentence."""
    results: dict[str, dict] = {}
    for size in sizes:
        fast = FastPath(synthetic_home(size))
        fast.understand("hello")  # builds the slot lists once; not measured
        first = [_timed(fast, text)[0] for text in UTTERANCES]
        timings = []
        matched = 0
        for _ in range(repeats):
            for text in UTTERANCES:
                elapsed_ms, result = _timed(fast, text)
                timings.append(elapsed_ms)
                matched += bool(result.calls)
        timings.sort()
        results[str(size)] = {
            "median_ms": round(statistics.median(timings), 3),
            "p95_ms": round(timings[max(0, int(len(timings) * 0.95) - 1)], 3),
            "first_median_ms": round(statistics.median(first), 3),
            "samples": len(timings),
            "matched": matched,
        }
        fast.close()
    return results


def _timed(fast: FastPath, text: str) -> tuple[float, FastPathResult]:
    started = time.perf_counter()
    result = fast.understand(text)
    return (time.perf_counter() - started) * 1000, result
