"""A soak: a real `mimo-home run` process under a steady load of state messages with requests
mixed in, for MIMO_SOAK_S seconds (600 unless set). Its resident memory and open file
descriptors are sampled and printed; after the warm-up, memory may grow by at most
MIMO_SOAK_RSS_MB (20 unless set) and descriptors not at all beyond a little slack.

Skipped unless asked for: ``pytest -m soak tests/test_soak.py -s`` (or MIMO_SOAK_S set)."""

from __future__ import annotations

import asyncio
import itertools
import os
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import free_port, start_mosquitto
from tests.reliability_support import (
    Lights, Requester, StateStream, until, until_known, write_hub)

SOAK_S = float(os.environ.get("MIMO_SOAK_S", "600"))
STATES_PER_S = int(os.environ.get("MIMO_SOAK_STATES_PER_S", "500"))
REQUESTS_PER_S = 2.0
SAMPLE_S = max(1.0, SOAK_S / 60)
WARM_UP_S = max(30.0, SOAK_S / 10)
RSS_GROWTH_MB = float(os.environ.get("MIMO_SOAK_RSS_MB", "20"))
FD_SLACK = 3  # a reconnect or a sqlite journal may hold one more for a moment
LAMPS = tuple(f"{word}_lamp" for word in ("desk", "floor", "reading", "porch", "attic",
                                           "garden", "bench", "corner"))

pytestmark = [pytest.mark.soak, pytest.mark.timeout(SOAK_S + 240)]


@pytest.fixture(autouse=True)
def only_when_asked(request: pytest.FixtureRequest) -> None:
    if "soak" not in (request.config.getoption("markexpr") or "") \
            and "MIMO_SOAK_S" not in os.environ:
        pytest.skip("a soak runs only when asked: pytest -m soak (or MIMO_SOAK_S=<seconds>)")


def sample(pid: int) -> tuple[float, int, int, float]:
    """The process's resident memory (MB), open file descriptors, threads and CPU seconds."""
    fields = dict(line.split(":", 1) for line in
                  Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    rss_mb = int(fields["VmRSS"].split()[0]) / 1024
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu_s = (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
    return rss_mb, len(os.listdir(f"/proc/{pid}/fd")), int(fields["Threads"]), cpu_s


def requests() -> itertools.cycle[str]:
    said = []
    for n, lamp in enumerate(LAMPS):
        name = lamp.replace("_", " ")
        said += [f"turn on the {name}", f"set the {name} brightness to {10 + 9 * n}%",
                 f"is the {name} on", f"turn off the {name}"]
    return itertools.cycle([*said, "what time is it", "add milk to the shopping list",
                            "remove milk from the shopping list"])


async def test_soak_memory_and_descriptors_stay_bounded(tmp_path: Path) -> None:
    port, base = free_port(), f"soak{uuid.uuid4().hex[:8]}"
    broker = start_mosquitto(port)
    hub = write_hub(tmp_path, port, base)
    lights = Lights(port, base, LAMPS)
    requester = Requester(port, base)
    stream: StateStream | None = None
    samples: list[tuple[float, float, int, int, int, int, float]] = []
    answered = failed = 0

    def measure(started: float, states: int) -> None:
        assert hub.process is not None and hub.process.returncode is None, "daemon died"
        rss, fds, threads, cpu_s = sample(hub.pid)
        at = time.monotonic() - started
        samples.append((at, rss, fds, threads, states, answered, cpu_s))
        print(f"{at:7.0f} s  rss {rss:7.1f} MB  fds {fds:4d}  threads {threads:3d}  "
              f"cpu {cpu_s:7.1f} s  states {states:9d}  requests {answered:6d}", flush=True)
    try:
        await until(lambda: lights.subscribed and requester.subscribed, what="subscriptions")
        lights.announce(f"{base}-ha")
        await hub.start()
        await until_known(requester, LAMPS)
        stream = StateStream(port, base, LAMPS, per_s=STATES_PER_S)
        started = time.monotonic()
        next_sample = started
        texts = requests()
        while (now := time.monotonic()) < started + SOAK_S:
            if now >= next_sample:
                measure(started, stream.sent)
                next_sample += SAMPLE_S
            reply = await requester.ask(next(texts))
            answered += 1
            failed += "error" in reply  # the daemon itself failed (a miss is no error)
            await asyncio.sleep(1 / REQUESTS_PER_S)  # the request rate, not a wait for an event
        measure(started, stream.sent)
    finally:
        if stream is not None:
            stream.close()
        requester.close()
        lights.close()
        await hub.stop()
        broker.stop_sync()

    settled = [s for s in samples if s[0] >= WARM_UP_S]
    assert len(settled) >= 3, "the soak was too short to judge"
    base_rss, base_fds = settled[0][1], settled[0][2]
    peak_rss, peak_fds = max(s[1] for s in settled), max(s[2] for s in settled)
    elapsed = samples[-1][0] - samples[0][0]
    print(f"\nsoak {elapsed:.0f} s: {samples[-1][4]:,} state messages "
          f"({samples[-1][4] / elapsed:.0f}/s), {answered:,} requests ({failed} errors); "
          f"rss {samples[0][1]:.1f} MB at start, {base_rss:.1f} MB after the warm-up, "
          f"{samples[-1][1]:.1f} MB at the end (peak {peak_rss:.1f}); fds {samples[0][2]} at "
          f"start, {base_fds} after the warm-up, {samples[-1][2]} at the end (peak {peak_fds}); "
          f"daemon CPU {(samples[-1][6] - samples[0][6]) / elapsed:.0%} of one core")
    assert failed == 0
    assert peak_rss - base_rss <= RSS_GROWTH_MB, (base_rss, peak_rss)
    assert peak_fds - base_fds <= FD_SLACK and samples[-1][2] <= base_fds + 1, \
        (base_fds, peak_fds)
