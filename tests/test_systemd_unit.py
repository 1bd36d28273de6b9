"""systemd/mimo-home.service: loads cleanly (systemd-analyze verify) and stays well sandboxed
(systemd-analyze security). Neither needs a running systemd."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from assistant.config import ENV_PREFIX, Config, ConfigError, load_config

UNIT = Path(__file__).resolve().parent.parent / "systemd" / "mimo-home.service"
INSTALLED_BINARY = "/usr/local/bin/mimo-home"
MAX_EXPOSURE = 4.0

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_systemd_analyze = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed (apt install systemd)")


def directives(text: str) -> dict[str, list[str]]:
    """Key -> values of the [Service] section, in order."""
    found: dict[str, list[str]] = {}
    section = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
            continue
        if section == "[Service]":
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def config_keys_named(text: str) -> set[str]:
    """Config keys the text names: ``MIMO_HOME__A__B`` variables and dotted ``a.b.c`` keys
    that start with a top-level section (not inside names such as mimo-home.service)."""
    sections = "|".join(Config.model_fields)
    dotted = re.findall(rf"(?<![\w./-])((?:{sections})(?:\.[a-z_]+)+)\b", text)
    variables = re.findall(rf"{ENV_PREFIX}([A-Z][A-Z0-9_]*)", text)
    return {*dotted, *(v.lower().replace("__", ".") for v in variables)}


def unknown_keys(keys: set[str]) -> list[str]:
    """Those of ``keys`` the configuration models do not have (set each through the
    environment, as the unit does, and see which the loader calls unknown)."""
    unknown = []
    for key in sorted(keys):
        variable = ENV_PREFIX + key.upper().replace(".", "__")
        try:
            load_config(None, environ={variable: "1"})
        except ConfigError as exc:
            if any(p.startswith(f"{key}: unknown key") for p in exc.problems):
                unknown.append(key)
    return unknown


def test_the_keys_the_unit_names_exist() -> None:
    named = config_keys_named(UNIT.read_text())
    assert {"state_dir", "mqtt.password_file", "voice.microphone.device",
            "llm.model_path"} <= named
    assert unknown_keys(named) == []


def test_a_key_that_does_not_exist_is_caught() -> None:
    named = config_keys_named("# voice.input_device / mimo-home.service\n"
                              "Environment=MIMO_HOME__MQTT__HOTS=x MIMO_HOME__<KEY>\n")
    assert named == {"voice.input_device", "mqtt.hots"}
    assert unknown_keys(named) == ["mqtt.hots", "voice.input_device"]


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    assert SYSTEMD_ANALYZE is not None
    return subprocess.run([SYSTEMD_ANALYZE, *args], capture_output=True, text=True, timeout=120)


def test_key_directives() -> None:
    service = directives(UNIT.read_text())
    assert service["Type"] == ["notify"]
    assert service["NotifyAccess"] == ["main"]
    assert service["WatchdogSec"] and float(service["WatchdogSec"][0]) > 0
    assert service["Restart"] == ["on-failure"]
    assert "RestartSec" in service
    assert service.get("User") == ["mimo-home"] or service.get("DynamicUser") == ["yes"]
    assert "audio" in " ".join(service.get("SupplementaryGroups", []))
    assert service["StateDirectory"] == ["mimo-home"]
    assert service["ConfigurationDirectory"] == ["mimo-home"]
    assert service["RuntimeDirectory"] == ["mimo-home"]
    # assistant/config.py reads MIMO_HOME__<KEY>; the state dir must follow StateDirectory=.
    assert "MIMO_HOME__STATE_DIR=%S/mimo-home" in service["Environment"]
    assert service["ExecStart"][0].split()[:2] == [INSTALLED_BINARY, "run"]


@needs_systemd_analyze
def test_verify(tmp_path: Path) -> None:
    # `verify` insists that ExecStart's binary exists and is executable; the unit names where
    # the package installs it, which is not this machine. So verify a copy in which only that
    # path is swapped for an existing executable: every other line, the arguments and the
    # unit name are unchanged. (User=mimo-home need not exist: verify does not resolve users.)
    original = UNIT.read_text()
    line = f"ExecStart={INSTALLED_BINARY} "
    assert original.count(line) == 1, "ExecStart no longer starts with the installed binary"
    stand_in = shutil.which("true") or "/bin/true"
    copy = tmp_path / UNIT.name
    copy.write_text(original.replace(line, f"ExecStart={stand_in} "))
    changed = [a for a, b in zip(original.splitlines(), copy.read_text().splitlines()) if a != b]
    assert len(changed) == 1

    result = analyze("verify", str(copy))
    assert result.returncode == 0, result.stderr
    # verify exits 0 on unknown keys and unparsable values (it only warns): any message about
    # our unit is a failure.
    ours = [m for m in result.stderr.splitlines() if UNIT.name in m or str(copy) in m]
    assert not ours, "\n".join(ours)


@needs_systemd_analyze
def test_security_exposure() -> None:
    result = analyze("security", "--offline=true", str(UNIT))
    assert result.returncode == 0, result.stderr
    assert "Unknown key" not in result.stderr and "Failed to parse" not in result.stderr, \
        result.stderr
    match = re.search(rf"Overall exposure level for {re.escape(UNIT.name)}: (\d+(?:\.\d+)?)",
                      result.stdout)
    assert match, result.stdout + result.stderr
    exposure = float(match.group(1))
    assert exposure <= MAX_EXPOSURE, result.stdout
