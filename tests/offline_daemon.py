"""Run inside a network namespace with loopback only (``tests/netns.py``): a Mosquitto, the
virtual home and the real daemon process, whose every socket destination is recorded
(``tests/socket_audit``). Prints one JSON line: what the request did and what was tried.

``python -m tests.offline_daemon DIRECTORY``
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import time
from pathlib import Path

from assistant.transport.embedded_broker import free_loopback_port
from tests.daemon_process_support import (
    DaemonProcess, light_state, until, virtual_home, wait_discovered,
    write_config)
from tests.netns import start_mosquitto

AUDIT_SHIM = Path(__file__).with_name("socket_audit")


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


async def main(directory: Path) -> dict[str, object]:
    port = free_loopback_port()
    broker = start_mosquitto(port, directory)
    try:
        await until(lambda: listening(port), 10, "mosquitto to listen")
        config_file = write_config(directory, port, directory / "state")
        audit = directory / "sockets.jsonl"
        path = os.pathsep.join(filter(None, [str(AUDIT_SHIM), os.environ.get("PYTHONPATH")]))
        daemon = DaemonProcess(config_file, directory / "daemon.log",
                               env={"PYTHONPATH": path, "MIMO_SOCKET_AUDIT": str(audit)})
        async with virtual_home(config_file) as house:
            await daemon.start()
            await wait_discovered(daemon, house)
            started = time.monotonic()
            reply = await daemon.ask("turn on the kitchen light", timeout=10)
            await until(lambda: light_state(house) == "on", 10, "the kitchen light on")
            took = time.monotonic() - started
            code = await daemon.stop()
        records = [json.loads(line) for line in audit.read_text().splitlines()]
        return {"path": reply["path"], "success": reply["success"], "took_s": took,
                "exit": code, "port": port, "sockets": records, "log": daemon.log_tail(15)}
    finally:
        broker.terminate()
        broker.wait(10)


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(Path(sys.argv[1])))))
