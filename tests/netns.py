"""A Python child in a private network namespace (``unshare -rn``: only loopback, with
multicast on), so mDNS tests never touch the host's interfaces."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]


def _isolated(command: str) -> list[str]:
    return ["unshare", "-rn", "sh", "-c",
            f"ip link set lo up && ip link set lo multicast on && {command}"]


def run_python(*arguments: str, timeout: float) -> Any:
    """Run ``python *arguments`` in a fresh namespace, from the repository; the last line
    it prints, read as JSON. Skips the test where no namespace can be made."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("needs unshare and ip (util-linux, iproute2) for an isolated network")
    probe = subprocess.run(_isolated("true"), capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        pytest.skip("cannot create an isolated network namespace here (unshare -rn: "
                    f"{probe.stderr.strip() or probe.returncode}); mDNS is not run on the "
                    "host's interfaces")
    command = " ".join(shlex.quote(part) for part in (sys.executable, *arguments))
    child = subprocess.run(_isolated(f"exec {command}"), capture_output=True, text=True,
                           timeout=timeout, cwd=REPO)
    assert child.returncode == 0, child.stderr[-4000:]
    return json.loads(child.stdout.strip().splitlines()[-1])


def start_mosquitto(port: int, directory: Path, host: str = "127.0.0.1") -> subprocess.Popen[bytes]:
    """A real Mosquitto inside the namespace (call it from the child); "user root" keeps it
    from dropping privileges to a user the namespace cannot map."""
    conf = directory / "mosquitto.conf"
    conf.write_text(f"user root\nlistener {port} {host}\nallow_anonymous true\n"
                    "persistence false\n")
    return subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
