"""The real daemon process where its surroundings fail: no network route at all, a read-only
state directory, a state directory that fills up while it runs.

Namespaces stand in for the machine: ``unshare -rn`` (loopback only, tests/netns.py) and
``unshare -rm`` (a private mount table: a read-only bind mount, a small tmpfs), so nothing
needs root on the host.
"""

from __future__ import annotations

import ast
import contextlib
import errno
import ipaddress
import json
import shlex
import shutil
import socket
import sqlite3
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from assistant.registry import DeviceRegistry, Entity
from assistant.virtual.home import VirtualHome
from tests.conftest import Broker
from tests.daemon_process_support import (
    REPO, DaemonProcess, daemon_command, light_state, until, virtual_home, wait_discovered,
    write_config)
from tests.netns import run_python
from tests.test_systemd_unit import UNIT, directives

LOCAL_FAMILIES = {socket.AF_UNIX, socket.AF_NETLINK}


def beyond_loopback(record: dict) -> bool:
    """Whether a recorded socket destination (tests/socket_audit) leaves this machine."""
    if record["family"] in LOCAL_FAMILIES:
        return False
    address = ast.literal_eval(record["address"])
    host = address[0] if isinstance(address, tuple) else address
    if host is None or host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True  # a name to resolve: on its way somewhere


def test_loopback_destinations_are_told_from_the_rest() -> None:
    inet = int(socket.AF_INET)
    assert not beyond_loopback({"family": inet, "address": "('127.0.0.1', 1883)"})
    assert not beyond_loopback({"family": int(socket.AF_INET6), "address": "('::1', 1883, 0, 0)"})
    assert not beyond_loopback({"family": int(socket.AF_UNIX), "address": "'\\x00notify'"})
    assert beyond_loopback({"family": inet, "address": "('192.168.1.10', 1883)"})
    assert beyond_loopback({"family": inet, "address": "('224.0.0.251', 5353)"})
    assert beyond_loopback({"family": 0, "address": "'huggingface.co'"})


def test_without_any_network_route_it_works_and_reaches_for_nothing_else(
        tmp_path: Path) -> None:
    result = run_python("-m", "tests.offline_daemon", str(tmp_path), timeout=120)
    assert result["path"] == "fast" and result["success"], result["log"]
    assert result["exit"] == 0, result["log"]
    sockets = result["sockets"]
    # The recorder saw the daemon's broker connection, so a stray one would show too.
    assert any(r["event"] == "socket.connect" and f"{result['port']})" in r["address"]
               for r in sockets), sockets
    assert [r for r in sockets if beyond_loopback(r)] == []


# -- the state directory ----------------------------------------------------------------------

def in_mount_namespace(setup: str, command: Sequence[str], after: str = "") -> list[str]:
    """``command`` in a private mount table prepared by ``setup``; ``after`` runs when it
    exits (the mounts vanish with the namespace), and the shell exits with its code."""
    script = (f"set -e; {setup}; set +e; {shlex.join(command)}; code=$?; {after or ':'}; "
              "exit $code")
    return ["unshare", "-rm", "sh", "-c", script]


def needs_mount_namespace() -> None:
    probe = subprocess.run(in_mount_namespace("mount -t tmpfs tmpfs /mnt", ["true"]),
                           capture_output=True, timeout=30)
    if shutil.which("unshare") is None or probe.returncode != 0:
        pytest.skip(f"cannot make a private mount namespace here: {probe.stderr!r}")


def seeded_state(directory: Path) -> bytes:
    """A state directory holding one stored entity; returns the registry file's bytes."""
    registry = DeviceRegistry(directory / "registry.sqlite3")
    registry.upsert(Entity(entity_id="light.porch", name="Porch", domain="light",
                           source="test", state="on"))
    registry.close()
    return (directory / "registry.sqlite3").read_bytes()


def integrity(path: Path) -> str:
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        return db.execute("PRAGMA integrity_check").fetchone()[0]


def test_a_read_only_state_directory_stops_it_at_once_with_a_reason_and_no_restart(
        tmp_path: Path, broker: Broker) -> None:
    needs_mount_namespace()
    state = tmp_path / "state"
    state.mkdir()
    before = seeded_state(state)
    config_file = write_config(tmp_path, broker.port, state)
    quoted = shlex.quote(str(state))
    run = subprocess.run(
        in_mount_namespace(f"mount --bind {quoted} {quoted}; "
                           f"mount -o remount,bind,ro {quoted}", daemon_command(config_file)),
        cwd=REPO, capture_output=True, text=True, timeout=60)
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and str(state) in lines[0] and "read-only" in lines[0].lower(), \
        run.stderr
    service = directives(UNIT.read_text())
    assert service["Restart"] == ["on-failure"]  # would restart any other failure...
    assert str(run.returncode) in " ".join(service["RestartPreventExitStatus"]).split()
    assert (state / "registry.sqlite3").read_bytes() == before
    assert integrity(state / "registry.sqlite3") == "ok"


def fill(directory: Path) -> Path:
    """Write ``directory``'s file system full; returns the file that holds the space."""
    filler = directory / "filler"
    with filler.open("wb", buffering=0) as out:  # unbuffered: nothing left to fail on close
        try:
            while True:
                out.write(b"\0" * 65536)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    return filler


async def on_a_full_disk(daemon: DaemonProcess, house: VirtualHome, state: Path) -> None:
    """Requests while ``state`` (as the daemon sees it) is full, then after space is back."""
    filler = fill(state)
    for state_now in ("on", "off", "on"):  # each change is a registry batch that fails
        reply = await daemon.ask(f"turn {state_now} the kitchen light", timeout=10)
        assert reply["path"] == "fast" and reply["success"], reply
        await until(lambda: light_state(house) == state_now, 10, "the light to follow")
    listed = await daemon.ask("add milk to the shopping list", timeout=10)
    assert not listed["success"], listed  # it could not be stored: never claims it was
    timer = await daemon.ask("set a timer for 10 minutes", timeout=10)
    assert not timer["success"] and "not set" in timer["reply"], timer
    reminder = await daemon.ask("remind me in 20 minutes to check the oven", timeout=10)
    assert not reminder["success"] and "could not save" in reminder["reply"], reminder
    filler.unlink()
    # No new change is needed: what is held in memory is stored once there is room.
    await until(lambda: "registry: storing again" in daemon.log_tail(400), 10,
                "the registry to store again")
    listed = await daemon.ask("add milk to the shopping list", timeout=10)
    assert listed["success"], listed
    timer = await daemon.ask("set a timer for 10 minutes", timeout=10)
    assert timer["success"], timer
    reminder = await daemon.ask("remind me in 20 minutes to check the oven", timeout=10)
    assert reminder["success"], reminder
    await daemon.ask("turn off the kitchen light", timeout=10)
    await until(lambda: light_state(house) == "off", 10, "the light to follow")


def stored_state(registry: Path, entity_id: str = "light.kitchen") -> str | None:
    with contextlib.closing(sqlite3.connect(f"file:{registry}?mode=ro", uri=True)) as db:
        row = db.execute("SELECT body FROM entities WHERE entity_id = ?", (entity_id,)
                         ).fetchone()
    return json.loads(row[0])["state"] if row else None


async def test_a_full_state_directory_is_survived_and_storing_resumes(
        tmp_path: Path, broker: Broker) -> None:
    needs_mount_namespace()
    state, kept = tmp_path / "state", tmp_path / "kept"
    state.mkdir()
    kept.mkdir()
    config_file = write_config(tmp_path, broker.port, state)
    quoted, out = shlex.quote(str(state)), shlex.quote(str(kept))
    daemon = DaemonProcess(config_file, tmp_path / "daemon.log", wrap=lambda command:
                           in_mount_namespace(f"mount -t tmpfs -o size=8m tmpfs {quoted}",
                                              command, after=f"cp -a {quoted}/. {out}/"))
    async with virtual_home(config_file) as house:
        await daemon.start()
        try:
            await wait_discovered(daemon, house)
            # The daemon's own view of the directory: its tmpfs, seen from outside.
            await on_a_full_disk(daemon, house,
                                 Path(f"/proc/{daemon.pid}/root") / state.relative_to("/"))
        finally:
            code = await daemon.stop()
    assert code == 0, daemon.log_tail()
    log = daemon.log_tail(400)
    # Said once, clearly, however many batches failed; no traceback per batch.
    assert log.count("registry: cannot store") == 1 and "disk is full" in log, log
    assert "Traceback" not in log, log
    for name in ("registry.sqlite3", "lists.sqlite3", "automation.sqlite3"):
        assert integrity(kept / name) == "ok", name
    assert stored_state(kept / "registry.sqlite3") == "off"
