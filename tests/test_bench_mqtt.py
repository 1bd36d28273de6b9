"""``bench mqtt`` on a small run: every figure is there and well-formed, and a daemon that
does not apply every message gets no rate but a problem. Timings are never asserted."""

from __future__ import annotations

from typing import Any

import pytest

from assistant.figures import figure
from assistant.registry import DeviceRegistry
from assistant.transport.embedded_broker import mosquitto_executable
from assistant.virtual.bench_mqtt import mqtt_bench

SMALL = {"messages": 2000, "repeats": 1, "roundtrip_count": 10}


def test_figure_is_the_median_and_the_nearest_rank_p95() -> None:
    assert figure([3.0, 1.0, 2.0]) == {"median": 2.0, "p95": 3.0}
    assert figure(list(range(1, 101))) == {"median": 50.5, "p95": 95}
    assert figure([]) == {"median": None, "p95": None}


async def test_a_small_run_reports_every_figure() -> None:
    result = await mqtt_bench(**SMALL)
    assert result["problems"] == [] and result["complete"] is True
    assert result["broker"].startswith("mosquitto" if mosquitto_executable() else "embedded")
    assert (result["messages"], result["repeats"], result["roundtrips"]) == (2000, 1, 10)
    for name in ("raw_per_s", "ingest_per_s", "ingest_ratio", "roundtrip_ms"):
        assert 0 < result[name]["median"] <= result[name]["p95"], name
    raw, ingest = result["raw_per_s"]["median"], result["ingest_per_s"]["median"]
    assert result["ingest_ratio"]["median"] == pytest.approx(ingest / raw, rel=0.01)


async def test_messages_the_daemon_does_not_apply_are_reported_not_rated(
        monkeypatch: pytest.MonkeyPatch) -> None:
    apply = DeviceRegistry.update_state

    def loses_some(self: DeviceRegistry, entity_id: str, state: str | None = None,
                   attributes: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        if (attributes or {}).get("brightness") == 100:  # twice per light in 2,000
            return None
        return apply(self, entity_id, state, attributes, **kwargs)

    monkeypatch.setattr(DeviceRegistry, "update_state", loses_some)
    result = await mqtt_bench(**SMALL)
    assert result["complete"] is False
    assert result["ingest_per_s"] == {"median": None, "p95": None}
    assert result["ingest_ratio"] == {"median": None, "p95": None}
    assert result["problems"] == ["ingest: 1992 of 2000 messages"]
    assert result["raw_per_s"]["median"] > 0  # the broker and the subscriber lost nothing
