"""A tiny sd_notify(3) client: readiness, status text and watchdog pings to systemd.

Without ``$NOTIFY_SOCKET`` (not started by systemd with Type=notify) every call is a no-op.
Sending never blocks and never raises: a vanished or full socket is logged and the daemon
keeps running.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)


class SystemdNotifier:
    """Talks to the socket named by ``$NOTIFY_SOCKET`` ("/path" or "@abstract")."""

    def __init__(self, address: str | None = None, watchdog_usec: int | None = None) -> None:
        self._address: str | None = None
        if address and address[0] in "/@":
            # A leading "@" names a Linux abstract socket: a NUL byte on the wire.
            self._address = "\0" + address[1:] if address[0] == "@" else address
        elif address:
            log.warning("unsupported NOTIFY_SOCKET %r; not notifying systemd", address)
        self._watchdog_usec = watchdog_usec if watchdog_usec and watchdog_usec > 0 else None
        self._sock: socket.socket | None = None
        self._failing = False

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> SystemdNotifier:
        env = os.environ if environ is None else environ
        usec: int | None = None
        pid = env.get("WATCHDOG_PID", "")
        if not pid or pid == str(os.getpid()):  # the watchdog may be meant for our parent
            try:
                usec = int(env.get("WATCHDOG_USEC", ""))
            except ValueError:
                usec = None
        return cls(env.get("NOTIFY_SOCKET") or None, usec)

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def watchdog_interval(self) -> float | None:
        """Seconds between ``watchdog()`` calls (half of WatchdogSec=), or None if disabled."""
        return self._watchdog_usec / 2e6 if self._watchdog_usec else None

    def ready(self, status: str | None = None) -> None:
        self.notify("READY=1" if status is None else f"READY=1\nSTATUS={_one_line(status)}")

    def status(self, text: str) -> None:
        self.notify(f"STATUS={_one_line(text)}")

    def watchdog(self) -> None:
        self.notify("WATCHDOG=1")

    def stopping(self) -> None:
        self.notify("STOPPING=1")

    def notify(self, message: str) -> None:
        """Send one datagram of newline-separated ``KEY=value`` lines; never raises."""
        if self._address is None:
            return
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._sock.setblocking(False)
            self._sock.sendto(message.encode(), self._address)
        except OSError as exc:
            # Warn once per outage, not at every watchdog tick.
            log.log(logging.DEBUG if self._failing else logging.WARNING,
                    "cannot notify systemd (%s): %s", message.split("\n", 1)[0], exc)
            self._failing = True
        else:
            if self._failing:
                log.info("notifying systemd again")
            self._failing = False

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _one_line(text: str) -> str:
    # The protocol is one assignment per line.
    return " ".join(text.splitlines())
