"""``mimo-home bench``: every subcommand wired with ``--json``, the machine in every output,
and ``bench all``'s one document, a part that fails recorded in it rather than stopping it."""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping
from typing import Any

import pytest

from assistant import cli
from assistant.virtual import bench as nlu_bench
from assistant.virtual import bench_report

MACHINE_KEYS = {"cpu", "cores", "usable_cores", "memory_gb", "os", "kernel", "python",
                "mimo_home", "load_average", "summary"}
SPREAD = {"median", "p95"}
# where each part keeps a median and a p95 (path to the figure, the median key, the p95 key)
FIGURES: dict[str, list[tuple[tuple[str, ...], str, str]]] = {
    "nlu": [(("entities", "50"), "median_ms", "p95_ms")],
    "llm": [((), "ttft_cached_ms", "p95")],
    "voice": [((), "e2e_ms", "e2e_p95_ms"), ((), "stt_ms", "stt_p95_ms")],
    "mqtt": [((key,), "median", "p95")
             for key in ("raw_per_s", "ingest_per_s", "ingest_ratio", "roundtrip_ms")],
    "startup": [(("ready_s",), "median", "p95"), (("rss_mb", "daemon"), "median", "p95")],
}


def assert_machine(machine: Mapping[str, Any]) -> None:
    assert set(machine) == MACHINE_KEYS
    assert machine["cores"] > 0 and machine["memory_gb"] > 0
    assert machine["python"].count(".") == 2 and machine["kernel"] and machine["cpu"]
    assert machine["python"] in machine["summary"] and machine["cpu"] in machine["summary"]


def assert_document(document: Mapping[str, Any], parts: set[str]) -> None:
    """The shape ``bench all --json`` promises."""
    assert_machine(document["machine"])
    datetime.datetime.fromisoformat(document["taken_at"])
    assert set(document["parts"]) == parts
    for name, result in document["parts"].items():
        assert result["took_s"] >= 0
        if name in document["failed"]:
            assert isinstance(result["error"], str) and result["error"]
            continue
        assert "error" not in result
        for path, median, p95 in FIGURES[name]:
            node = result
            for key in path:
                node = node[key]
            assert isinstance(node[median], float) and node[median] >= 0
            high = node[p95][median] if isinstance(node[p95], dict) else node[p95]
            assert isinstance(high, float) and high >= node[median]


def _spread(median: float) -> dict[str, float]:
    return {"median": median, "p95": median * 1.5}


MQTT = {"broker": "mosquitto (stand-in)", "messages": 100, "raw_per_s": _spread(50000.0),
        "ingest_per_s": _spread(30000.0), "ingest_ratio": _spread(0.6),
        "roundtrip_ms": _spread(2.0)}
LLM = {"model": "stand-in.gguf", "ttft_cached_ms": 40.0, "p95": {"ttft_cached_ms": 60.0}}
VOICE = {"runs": 10, "e2e_ms": 300.0, "e2e_p95_ms": 400.0, "stt_ms": 250.0,
         "stt_p95_ms": 300.0}
STARTUP = {"repeats": 1, "reached_ready": 1, "ready_s": _spread(2.5),
           "rss_mb": {"daemon": _spread(120.0), "children": _spread(0.0)}}


@pytest.fixture(autouse=True)
def keep_pytest_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    """The commands set up logging for a terminal; here pytest keeps its own."""
    monkeypatch.setattr(cli, "setup_logging", lambda _level: None)


@pytest.fixture
def quick_parts(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[dict[str, Any]]]:
    """The fast path measured for real on the smallest home, once; the other parts stand-ins
    of their shapes (their own benches take minutes). Returns the arguments each got."""
    calls: dict[str, list[dict[str, Any]]] = {"mqtt": [], "nlu": []}
    real_nlu = nlu_bench.run_nlu_bench

    def small_nlu(repeats: int = 20) -> dict[str, dict]:
        calls["nlu"].append({"repeats": repeats})
        return real_nlu(sizes=(50,), repeats=repeats)

    def mqtt(messages: int = 20000, repeats: int = 3, broker: str = "auto") -> dict[str, Any]:
        calls["mqtt"].append({"messages": messages, "repeats": repeats, "broker": broker})
        return dict(MQTT)

    import assistant.virtual.bench_mqtt as bench_mqtt

    monkeypatch.setattr(nlu_bench, "run_nlu_bench", small_nlu)
    monkeypatch.setattr(bench_mqtt, "run_mqtt_bench", mqtt)
    monkeypatch.setattr(bench_report, "llm_part", lambda _config_file: dict(LLM))
    monkeypatch.setattr(bench_report, "voice_part", lambda _config: dict(VOICE))
    monkeypatch.setattr(bench_report, "startup_part", lambda _config, _repeats: dict(STARTUP))
    return calls


@pytest.mark.parametrize("name", ["nlu", "llm", "voice", "mqtt", "startup", "all"])
def test_every_bench_has_json_and_its_own_command(name: str) -> None:
    args = cli.build_parser().parse_args(["bench", name, "--json"])
    assert args.json is True
    assert args.func is getattr(cli, f"cmd_bench_{name}")


def test_bench_all_is_one_document_of_every_part(
        quick_parts: dict[str, list[dict[str, Any]]], capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["bench", "all", "--json", "--nlu-repeats", "1", "--repeats", "1",
                     "--messages", "100"])
    out = capsys.readouterr().out
    document = json.loads(out)  # one document: nothing else on stdout
    assert code == 0 and document["failed"] == []
    assert_document(document, {"nlu", "llm", "voice", "mqtt", "startup"})
    assert list(document["parts"]) == ["nlu", "llm", "voice", "mqtt", "startup"]
    assert quick_parts["mqtt"] == [{"messages": 100, "repeats": 1, "broker": "auto"}]
    assert quick_parts["nlu"] == [{"repeats": 1}]
    assert document["parts"]["nlu"]["entities"]["50"]["samples"] == len(nlu_bench.UTTERANCES)


def test_a_part_that_fails_is_recorded_and_the_others_still_run(
        quick_parts: dict[str, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    def no_model(_config: object) -> dict[str, Any]:
        raise FileNotFoundError("whisper tiny.en is not installed")

    monkeypatch.setattr(bench_report, "voice_part", no_model)
    code = cli.main(["bench", "all", "--json", "--parts", "voice,mqtt", "--repeats", "1"])
    document = json.loads(capsys.readouterr().out)
    assert code == 1 and document["failed"] == ["voice"]
    assert document["parts"]["voice"]["error"] == \
        "FileNotFoundError: whisper tiny.en is not installed"
    assert document["parts"]["mqtt"]["raw_per_s"] == MQTT["raw_per_s"]
    assert_document(document, {"voice", "mqtt"})


def test_the_document_check_rejects_a_wrong_shape(
        quick_parts: dict[str, list[dict[str, Any]]]) -> None:
    document = bench_report.run_all({"mqtt": lambda: dict(MQTT)})
    assert_document(document, {"mqtt"})
    broken = {**MQTT, "roundtrip_ms": {"median": 2.0}}  # no p95
    with pytest.raises(KeyError):
        assert_document(bench_report.run_all({"mqtt": lambda: broken}), {"mqtt"})
    inverted = {**MQTT, "raw_per_s": {"median": 5.0, "p95": 1.0}}
    with pytest.raises(AssertionError):
        assert_document(bench_report.run_all({"mqtt": lambda: inverted}), {"mqtt"})
    with pytest.raises(AssertionError):
        assert_document({**document, "machine": {"cpu": "?"}}, {"mqtt"})
    with pytest.raises(AssertionError):  # a failure must say why
        assert_document(bench_report.run_all({"mqtt": lambda: {"error": ""}}), {"mqtt"})


def test_unknown_parts_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["bench", "all", "--parts", "nlu,gpu"]) == 2
    assert "unknown gpu" in capsys.readouterr().err


def test_text_outputs_describe_the_machine(
        quick_parts: dict[str, list[dict[str, Any]]], capsys: pytest.CaptureFixture[str]) -> None:
    machine = bench_report.describe_machine()
    assert_machine(machine)
    assert cli.main(["bench", "mqtt", "--messages", "100", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"machine: {machine['cpu']}")
    assert "daemon ingest:    median 30000.0 msg/s, p95 45000.0 msg/s" in out
    assert cli.main(["bench", "all", "--parts", "mqtt,startup"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"machine: {machine['cpu']}")
    assert "mqtt.ingest_ratio.median 0.6" in out and "startup.ready_s.median 2.5" in out


def test_bench_mqtt_json_carries_the_machine(
        quick_parts: dict[str, list[dict[str, Any]]], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["bench", "mqtt", "--json", "--messages", "500", "--repeats", "2",
                     "--broker", "embedded"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert_machine(result.pop("machine"))
    assert result == MQTT
    assert quick_parts["mqtt"] == [{"messages": 500, "repeats": 2, "broker": "embedded"}]


def test_bench_llm_and_nlu_json_carry_the_machine(
        quick_parts: dict[str, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import assistant.llm.bench as llm_bench

    monkeypatch.setattr(llm_bench, "run_llm_bench", lambda *_args, **_kwargs: dict(LLM))
    assert cli.main(["bench", "llm", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert_machine(result.pop("machine"))
    assert result == LLM
    assert cli.main(["bench", "nlu", "--json", "--repeats", "1"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert_machine(result["machine"])
    assert result["entities"]["50"]["median_ms"] > 0
