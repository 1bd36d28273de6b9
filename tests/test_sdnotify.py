"""assistant.transport.sdnotify against a real AF_UNIX datagram socket standing in for systemd."""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from assistant.transport import sdnotify
from assistant.transport.sdnotify import SystemdNotifier


def _receive(sock: socket.socket) -> bytes:
    sock.settimeout(2)
    return sock.recv(4096)


def _short_dir(tmp_path: Path) -> Path:
    # sun_path holds at most 107 bytes; long test names can push tmp_path past that.
    return tmp_path if len(str(tmp_path)) < 80 else Path(tempfile.mkdtemp(prefix="sdn-"))


@pytest.fixture
def systemd_socket(tmp_path: Path,
                   monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[socket.socket, Path]]:
    path = _short_dir(tmp_path) / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield sock, path
    sock.close()


def test_sends_the_exact_datagrams(systemd_socket: tuple[socket.socket, Path]) -> None:
    sock, _ = systemd_socket
    notifier = SystemdNotifier.from_environment()
    assert notifier.enabled

    notifier.ready()
    assert _receive(sock) == b"READY=1"
    notifier.ready("12 entities, broker connected")
    assert _receive(sock) == b"READY=1\nSTATUS=12 entities, broker connected"
    notifier.status("connecting to the MQTT broker")
    assert _receive(sock) == b"STATUS=connecting to the MQTT broker"
    notifier.status("two\nlines")  # one assignment per line: a newline must not start another
    assert _receive(sock) == b"STATUS=two lines"
    notifier.watchdog()
    assert _receive(sock) == b"WATCHDOG=1"
    notifier.stopping()
    assert _receive(sock) == b"STOPPING=1"
    notifier.close()


def test_abstract_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"mimo-home-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        notifier = SystemdNotifier.from_environment()
        notifier.ready("up")
        assert _receive(sock) == b"READY=1\nSTATUS=up"
        notifier.watchdog()
        assert _receive(sock) == b"WATCHDOG=1"


def test_without_notify_socket_every_call_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)

    def no_socket(*args: object, **kwargs: object) -> None:
        raise AssertionError("no socket may be opened without NOTIFY_SOCKET")

    monkeypatch.setattr(sdnotify.socket, "socket", no_socket)
    notifier = SystemdNotifier.from_environment()
    assert not notifier.enabled
    notifier.ready("up")
    notifier.status("x")
    notifier.watchdog()
    notifier.stopping()
    notifier.close()


def test_unsupported_address_disables_notifications(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="assistant.transport.sdnotify"):
        notifier = SystemdNotifier.from_environment({"NOTIFY_SOCKET": "vsock:2:1234"})
    assert not notifier.enabled
    assert "unsupported NOTIFY_SOCKET" in caplog.text
    notifier.ready()  # no-op, no exception


def test_vanished_socket_is_logged_not_raised(systemd_socket: tuple[socket.socket, Path],
                                              caplog: pytest.LogCaptureFixture) -> None:
    sock, path = systemd_socket
    notifier = SystemdNotifier.from_environment()
    notifier.ready()
    assert _receive(sock) == b"READY=1"

    sock.close()
    path.unlink()
    with caplog.at_level(logging.DEBUG, logger="assistant.transport.sdnotify"):
        for _ in range(3):
            notifier.watchdog()
        notifier.status("still running")
        notifier.stopping()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, "one warning per outage, not one per watchdog tick"
    assert "cannot notify systemd" in warnings[0].getMessage()

    # systemd comes back at the same path (e.g. after daemon-reexec): notifications resume.
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as again:
        again.bind(str(path))
        notifier.watchdog()
        assert _receive(again) == b"WATCHDOG=1"
    notifier.close()


def test_full_socket_never_blocks(systemd_socket: tuple[socket.socket, Path]) -> None:
    # Nobody reads: the receive queue fills up; sending must drop, not block the event loop.
    notifier = SystemdNotifier.from_environment()
    started = time.monotonic()
    for _ in range(2000):
        notifier.status("x" * 512)
    assert time.monotonic() - started < 5
    notifier.close()


@pytest.mark.parametrize(("environ", "expected"), [
    ({"WATCHDOG_USEC": "30000000"}, 15.0),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 15.0),
    ({"WATCHDOG_USEC": "500000", "WATCHDOG_PID": ""}, 0.25),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),  # not ours
    ({}, None),
    ({"WATCHDOG_USEC": "0"}, None),
    ({"WATCHDOG_USEC": "soon"}, None),
])
def test_watchdog_interval(environ: dict[str, str], expected: float | None) -> None:
    environ = {"NOTIFY_SOCKET": "/run/systemd/notify", **environ}
    assert SystemdNotifier.from_environment(environ).watchdog_interval() == expected


def test_watchdog_interval_reads_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert SystemdNotifier.from_environment().watchdog_interval() == 15.0
