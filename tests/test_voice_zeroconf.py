"""Zeroconf advertisement of the satellite server, inside an isolated network namespace.

mDNS must not touch the host's real interfaces, so the check runs in a child process under
``unshare -rn`` (a private network namespace with only loopback), with mDNS on 127.0.0.1.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

CHILD = textwrap.dedent("""
    import asyncio, json, socket
    from zeroconf.asyncio import AsyncZeroconf
    from assistant.voice.wyoming_server import WYOMING_SERVICE_TYPE, advertise_wyoming

    async def lookup(name, timeout_ms):
        browser = AsyncZeroconf(interfaces=["127.0.0.1"])
        try:
            return await browser.async_get_service_info(
                WYOMING_SERVICE_TYPE, f"{name}.{WYOMING_SERVICE_TYPE}", timeout=timeout_ms)
        finally:
            await browser.async_close()

    async def main():
        unregister = await asyncio.wait_for(
            advertise_wyoming(name="mimo-test", port=10777, address="127.0.0.1"), 20)
        found = await lookup("mimo-test", 3000)
        await asyncio.wait_for(unregister(), 10)
        gone = await lookup("mimo-test", 1000)
        print(json.dumps({
            "port": found and found.port,
            "addresses": found and [socket.inet_ntoa(a) for a in found.addresses],
            "server": found and found.server,
            "after_unregister": gone and gone.port,
        }))

    asyncio.run(main())
""")


def _isolated(command: str) -> list[str]:
    return ["unshare", "-rn", "sh", "-c",
            f"ip link set lo up && ip link set lo multicast on && {command}"]


def test_satellite_server_is_advertised_and_withdrawn() -> None:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("needs unshare and ip (util-linux, iproute2) for an isolated network")
    probe = subprocess.run(_isolated("true"), capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        pytest.skip("cannot create an isolated network namespace here (unshare -rn: "
                    f"{probe.stderr.strip() or probe.returncode}); mDNS is not run on the "
                    "host's interfaces")
    child = subprocess.run(
        _isolated(f"exec {shlex.quote(sys.executable)} -c {shlex.quote(CHILD)}"),
        capture_output=True, text=True, timeout=60, cwd=REPO)
    assert child.returncode == 0, child.stderr
    seen = json.loads(child.stdout.strip().splitlines()[-1])
    assert seen == {"port": 10777, "addresses": ["127.0.0.1"], "server": "mimo-test.local.",
                    "after_unregister": None}
