"""`mimo-home demo` as a new user runs it: where it listens, how clients find it, Ctrl-C."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

from tests.conftest import free_port

STOP_S = 15  # what the daemon's shutdown needs, with room; a hang is far longer


async def wait_for_file(path: Path, process: asyncio.subprocess.Process, timeout: float) -> None:
    async def poll() -> None:
        while not path.exists():
            assert process.returncode is None, "the demo exited before it was ready"
            await asyncio.sleep(0.1)
    await asyncio.wait_for(poll(), timeout)


async def test_the_demo_listens_where_the_environment_says_and_stops_on_ctrl_c(
        tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIMO_HOME")}
    env.update(XDG_RUNTIME_DIR=str(tmp_path), XDG_STATE_HOME=str(tmp_path / "state"),
               MIMO_HOME__MQTT__PORT=str(port), MIMO_HOME__LLM__ENABLED="false",
               MIMO_HOME__VOICE__ENABLED="false")
    demo = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "assistant.cli", "demo", env=env,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)
    runtime = tmp_path / "mimo-home-demo.json"
    try:
        await wait_for_file(runtime, demo, 120)
        assert json.loads(runtime.read_text())["port"] == port

        ask = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "assistant.cli", "ask", "--json", "turn on the kitchen light",
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(ask.communicate(), 60)
        assert ask.returncode == 0, err.decode()
        assert [a["entity_id"] for a in json.loads(out)["actions"]] == ["light.kitchen"]

        # Ctrl-C while stdin stays open (a terminal nobody types into) ends the demo.
        demo.send_signal(signal.SIGINT)
        await asyncio.wait_for(demo.wait(), STOP_S)
        assert not runtime.exists()
    finally:
        if demo.returncode is None:
            demo.kill()
            await demo.wait()
