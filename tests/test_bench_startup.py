"""``mimo-home bench startup``: a real daemon process started and measured; a daemon that never
says READY is reported as a timeout, one that dies as what it exited with."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from assistant.config import Config
from assistant.virtual.bench_startup import run_startup_bench


def _light_config(tmp_path: Path) -> Config:
    """No reasoning model; voice on with a Whisper model that is not there, so voice fails
    to load at once: what it says about voice shows whether READY came before voice did."""
    return Config.model_validate({
        "llm": {"enabled": False}, "mdns": {"enabled": False},
        "voice": {"enabled": True, "stt": {"model_dir": str(tmp_path / "no-such-model")}}})


def test_a_real_start_reaches_ready_and_answers_on_the_fast_path(tmp_path: Path) -> None:
    result = run_startup_bench(_light_config(tmp_path), repeats=1, ready_timeout_s=60,
                               settle_timeout_s=60)
    assert result["repeats"] == 1 and result["reached_ready"] == 1, result.get("errors")
    assert "errors" not in result
    run = result["runs"][0]
    assert 0 < result["ready_s"]["median"] <= result["settled_s"]["median"]
    assert result["ready_s"]["p95"] >= result["ready_s"]["median"]
    assert result["ready_cpu_s"]["median"] > 0
    assert result["rss_mb"]["daemon"]["median"] > 0
    assert run["rss_mb"]["children"] >= 0 and isinstance(run["rss_mb"]["each_child"], list)
    # READY is sent before the voice models load; the status after it tells how voice went
    assert "voice off" not in run["status_at_ready"]
    assert "voice off" in run["status"]
    assert run["probe"]["path"] == "fast", run["probe"]
    assert run["stop_s"] < 20


def test_a_daemon_that_never_says_ready_is_a_timeout_not_a_hang(tmp_path: Path) -> None:
    began = time.monotonic()
    result = run_startup_bench(_light_config(tmp_path), repeats=1, ready_timeout_s=2,
                               command=(sys.executable, "-c", "import time; time.sleep(120)"))
    assert time.monotonic() - began < 30
    assert result["reached_ready"] == 0 and result["ready_s"] is None
    assert result["rss_mb"] is None
    run = result["runs"][0]
    assert run["timed_out"] is True and run["error"] == "no READY within 2 s"
    assert result["errors"] == ["no READY within 2 s"]


def test_a_daemon_that_dies_while_starting_is_reported_with_its_exit_code(
        tmp_path: Path) -> None:
    result = run_startup_bench(_light_config(tmp_path), repeats=1, ready_timeout_s=30,
                               command=(sys.executable, "-c",
                                        "import sys; print('bad config', file=sys.stderr); "
                                        "sys.exit(3)"))
    run = result["runs"][0]
    assert result["reached_ready"] == 0 and "timed_out" not in run
    assert run["error"] == "the daemon exited with code 3"
    assert run["log_tail"] == ["bad config"]
