"""Put on PYTHONPATH with MIMO_SOCKET_AUDIT=<file>: every socket destination the process
tries (connect, sendto, sendmsg) and every name it resolves is appended to that file as one
JSON line, from an audit hook (PEP 578), so a test sees attempts even where they fail."""

import json
import os
import sys

_PATH = os.environ.get("MIMO_SOCKET_AUDIT")
_DESTINATIONS = {"socket.connect", "socket.sendto", "socket.sendmsg"}


def _record(event: str, args: tuple) -> None:
    if event in _DESTINATIONS:
        sock, address = args[0], args[1]
        _OUT.write(json.dumps({"event": event, "family": int(sock.family),
                               "address": repr(address)}) + "\n")
    elif event == "socket.getaddrinfo":
        _OUT.write(json.dumps({"event": event, "family": 0, "address": repr(args[0])}) + "\n")


if _PATH:
    _OUT = open(_PATH, "a", buffering=1, encoding="utf-8")  # opened once: no hook recursion
    sys.addaudithook(_record)
