"""The broker crashes (SIGKILL) and comes back during a stream of 1,000 commands to a real
`mimo-home run` process: every command answered with success reached its light exactly once
in effect (in order; a repeat of the same set-state right after itself is harmless,
counted), each light ends in the state of its last command, and nothing was sent older than
``mqtt.queue_max_age_s`` — what waited less arrives once the broker is back, what waited
longer never goes out.

Commands come in through the text API (docs/API.md) and, for the daemon's own queue, from a
rule that publishes the time it ran every second, also while the broker is away."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
import uuid
from pathlib import Path

import yaml

from tests.conftest import free_port, start_mosquitto
from tests.reliability_support import Gate, Lights, Requester, until, until_known, write_hub

LAMPS = ("desk_lamp", "floor_lamp", "reading_lamp", "porch_lamp")
COMMANDS = 1000
KILL_AFTER = 400  # commands sent before the broker dies
MAX_AGE_S = 3.0  # the daemon's mqtt.queue_max_age_s
OUTAGE_S = MAX_AGE_S + 3.0  # so that the first commands queued are too old when it returns
SLACK_S = 0.5  # a tick's way from the daemon's clock to the light's


def percent_of(raw: int) -> int:
    return round(raw * 100 / 255)


def order_problems(requested: list[tuple[int, bool]], applied: list[int]) -> list[str]:
    """What is wrong with the values a light applied against those asked of it, in order
    (value, answered with success): a repeat right after itself is harmless, anything else
    out of order or missing for a success is not."""
    collapsed = [v for i, v in enumerate(applied) if i == 0 or applied[i - 1] != v]
    problems, at = [], 0
    for value in collapsed:
        while at < len(requested) and requested[at][0] != value:
            if requested[at][1]:
                problems.append(f"command {at} ({requested[at][0]} %) succeeded, not applied")
            at += 1
        if at == len(requested):
            problems.append(f"{value} % applied out of order or never asked")
            return problems
        at += 1
    problems += [f"command {i} ({value} %) succeeded, not applied"
                 for i, (value, ok) in enumerate(requested[at:], at) if ok]
    return problems


def tick_rule(base: str) -> list[dict[str, object]]:
    return [{"alias": "Tick", "mode": "parallel",
             "triggers": [{"trigger": "time_pattern", "seconds": "*"}],
             "actions": [{"action": "mqtt.publish", "data": {
                 "topic": f"{base}/tick", "payload": "{{ as_timestamp(now()) }}"}}]}]


class CommandStream:
    """Workers, one per lamp, each sending its lamp's commands one after another."""

    def __init__(self, requester: Requester) -> None:
        self.requester = requester
        self.sent = 0
        self.requested: dict[str, list[tuple[int, bool]]] = {lamp: [] for lamp in LAMPS}
        self.unanswered = 0
        self._lock = threading.Lock()

    def run_lamp(self, lamp: str, count: int) -> None:
        requester = self.requester
        for k in range(count):
            value = 1 + (k * 7) % 100  # never the same twice in a row
            with self._lock:
                self.sent += 1
            # The API is on the broker: wait for it.
            assert requester.wait_online(60), "the daemon never came back"
            name = lamp.replace("_", " ")
            request_id = requester.send(f"set the {name} brightness to {value}%")
            deadline = time.monotonic() + 3.0
            reply = None
            while reply is None and time.monotonic() < deadline:
                reply = requester.wait_reply(request_id, 0.1)
                if not requester.online:  # a reply may wait in the daemon's queue
                    deadline = time.monotonic() + 3.0
            ok = bool(reply and reply.get("success"))
            with self._lock:
                self.requested[lamp].append((value, ok))
                self.unanswered += reply is None


async def test_commands_survive_a_broker_crash(tmp_path: Path) -> None:
    port, base = free_port(), f"rel{uuid.uuid4().hex[:8]}"
    broker = start_mosquitto(port)
    gate = Gate(port)
    await gate.start()
    hub = write_hub(tmp_path, gate.port, base, mqtt={"queue_max_age_s": MAX_AGE_S},
                    automation={"rules_max_runs_per_minute": 120})
    (hub.state_dir / "rules").mkdir(parents=True)
    (hub.state_dir / "rules" / "tick.yaml").write_text(yaml.safe_dump(tick_rule(base)))
    lights = Lights(port, base, LAMPS)
    requester = Requester(port, base)
    try:
        await until(lambda: lights.subscribed and requester.subscribed, what="subscriptions")
        lights.announce(f"{base}-ha")
        await hub.start()
        await until_known(requester, LAMPS)

        stream = CommandStream(requester)
        workers = asyncio.gather(*(asyncio.to_thread(stream.run_lamp, lamp,
                                                     COMMANDS // len(LAMPS))
                                   for lamp in LAMPS))
        await until(lambda: stream.sent >= KILL_AFTER, 60, "the first commands")
        killed_at = time.time()
        broker.send_signal(signal.SIGKILL)
        gate.hold()
        broker.stop_sync()
        subscribed = lights.subscribed, requester.subscribed
        broker = await asyncio.to_thread(start_mosquitto, port)
        await until(lambda: lights.subscribed > subscribed[0]
                    and requester.subscribed > subscribed[1], what="devices back")
        await asyncio.sleep(max(0.0, killed_at + OUTAGE_S - time.time()))  # the outage
        released_at = time.time()
        gate.release()
        await asyncio.wait_for(workers, 120)
        await until(lambda: all(lights.state[lamp].get("brightness") is not None
                                and percent_of(lights.state[lamp]["brightness"])
                                == stream.requested[lamp][-1][0] for lamp in LAMPS),
                    what="every lamp in its last command's state")
        ticks_end = time.time()
        await until(lambda: any(float(p) >= ticks_end for p in lights.payloads(f"{base}/tick")),
                    what="a tick after the stream")
    finally:
        requester.close()
        lights.close()
        await hub.stop()
        await gate.close()
        broker.stop_sync()

    with lights.lock:
        applied = {lamp: [percent_of(raw) for raw in values]
                   for lamp, values in lights.applied.items()}
        ticks = [(float(payload), arrived) for topic, payload, arrived in lights.received
                 if topic == f"{base}/tick"]
    problems = {lamp: order_problems(stream.requested[lamp], applied[lamp]) for lamp in LAMPS}
    assert not any(problems.values()), problems
    succeeded = sum(ok for lamp in LAMPS for _, ok in stream.requested[lamp])
    assert sum(map(len, stream.requested.values())) == COMMANDS
    # Only what was under way when the broker died may go unanswered or fail.
    assert succeeded >= COMMANDS - 4 * len(LAMPS), (succeeded, stream.unanswered)
    repeats = sum(v[i] == v[i - 1] for v in applied.values() for i in range(1, len(v)))
    print(f"\n{COMMANDS} commands: {succeeded} succeeded, {stream.unanswered} unanswered, "
          f"{sum(map(len, applied.values()))} applied ({repeats} repeats); "
          f"outage {released_at - killed_at:.1f} s")

    asked = [when for when, _ in ticks]
    assert len(asked) == len(set(asked)), "a tick arrived twice"
    late = [(when, arrived - when) for when, arrived in ticks
            if arrived - when > MAX_AGE_S + SLACK_S]
    assert not late, f"sent older than queue_max_age_s: {late}"
    # Asked while the broker was away: the old ones never sent, the recent ones sent.
    too_old = (killed_at + SLACK_S, released_at - MAX_AGE_S - SLACK_S)
    assert too_old[1] - too_old[0] >= 1.0  # at least one tick was asked in there
    assert not [w for w in asked if too_old[0] <= w <= too_old[1]], "a stale tick was sent"
    assert [w for w in asked if released_at - 1.0 <= w <= released_at], \
        "the tick queued just before the broker came back was not sent"
