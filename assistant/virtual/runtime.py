"""Where a running ``mimo-home demo`` says how to reach it, for the client commands."""

from __future__ import annotations

import json
import os
from pathlib import Path


def demo_runtime_file() -> Path:
    base = os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/mimo-home-{os.getuid()}"
    return Path(base) / "mimo-home-demo.json"


def running_demo() -> dict[str, object] | None:
    """The running demo's broker (host, port, base_topic), state directory and automation
    settings (where its rules are, its location), or None when none runs."""
    try:
        info = json.loads(demo_runtime_file().read_text())
        os.kill(int(info["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return {"host": info["host"], "port": int(info["port"]), "base_topic": info["base_topic"],
            "state_dir": info.get("state_dir"), "automation": info.get("automation")}
