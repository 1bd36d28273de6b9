"""Zeroconf advertisement of the satellite server, inside an isolated network namespace.

mDNS must not touch the host's real interfaces, so the check runs in a child process under
``unshare -rn`` (a private network namespace with only loopback), with mDNS on 127.0.0.1.
"""

from __future__ import annotations

import textwrap

from tests.netns import run_python

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


def test_satellite_server_is_advertised_and_withdrawn() -> None:
    seen = run_python("-c", CHILD, timeout=60)
    assert seen == {"port": 10777, "addresses": ["127.0.0.1"], "server": "mimo-test.local.",
                    "after_unregister": None}
