"""``mimo-home devices`` for a terminal: entities grouped by area, then the LAN's appliances.

The reply is read as data: every cell is cleaned again (no control characters reach the
terminal, whoever answered on the response topic) and cut to its column's width.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import groupby
from typing import Any

from assistant.device_data import clean_text

NO_AREA = "(no area)"
LEGEND = ("Flags: H hidden from the assistant (exposure), U unavailable, ? no state known.\n"
          "Control: yes = an adapter of mimo-home drives it; no = why not.")
_WIDTHS = {"entity": 34, "name": 28, "source": 14, "state": 12, "capabilities": 40,
           "protocol": 22, "model": 22, "address": 24, "control": 60}


def _cell(value: Any, width: int) -> str:
    text = clean_text(value, 1000) or "-"
    return text if len(text) <= width else text[: width - 1] + "…"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Header and rows, each column as wide as its widest cell, two spaces apart."""
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    return ["  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
            for row in (header, *rows)]


def _flags(entity: Mapping[str, Any]) -> str:
    flags = ("" if entity.get("exposed", True) else "H") \
        + ("" if entity.get("available", True) else "U") \
        + ("?" if entity.get("state") is None else "")
    return flags or "-"


def _entity_lines(entities: list[Mapping[str, Any]]) -> list[str]:
    hidden = sum(1 for entity in entities if not entity.get("exposed", True))
    away = sum(1 for entity in entities if not entity.get("available", True))
    lines = [f"ENTITIES: {len(entities)} ({hidden} hidden, {away} unavailable)"]

    def area(entity: Mapping[str, Any]) -> str:
        return clean_text(entity.get("area"), 200) or NO_AREA

    ordered = sorted(entities, key=lambda e: (area(e) == NO_AREA, area(e).casefold(),
                                              str(e.get("entity_id"))))
    rows = [(_cell(e.get("entity_id"), _WIDTHS["entity"]), _cell(e.get("name"), _WIDTHS["name"]),
             _cell(e.get("source"), _WIDTHS["source"]), _cell(e.get("state"), _WIDTHS["state"]),
             _flags(e), _cell(e.get("capabilities"), _WIDTHS["capabilities"]))
            for e in ordered]
    header, *aligned = _table(("ENTITY", "NAME", "SOURCE", "STATE", "FLAGS", "CAPABILITIES"),
                              rows)
    lines.append(header)
    # One table for all areas, so the columns line up; each area opens with its name.
    at = 0
    for name, group in groupby(ordered, key=area):
        count = sum(1 for _entity in group)
        lines += [_cell(name, 60), *aligned[at: at + count]]
        at += count
    return lines


def _address(appliance: Mapping[str, Any]) -> str:
    addresses = appliance.get("addresses") or []
    first = addresses[0] if isinstance(addresses, list) and addresses else None
    port = appliance.get("port")
    if first is None:
        return "-"
    return f"[{first}]:{port}" if ":" in str(first) and port else \
        f"{first}:{port}" if port else str(first)


def _control(appliance: Mapping[str, Any]) -> str:
    note = str(appliance.get("note") or "")
    reason = note.split(": ", 1)[-1]  # the note starts with the protocol, already shown
    return f"yes: {reason}" if appliance.get("controlled") else f"no: {reason}"


def _appliance_lines(appliances: list[Mapping[str, Any]], mdns: str) -> list[str]:
    if mdns == "unavailable":
        return ["APPLIANCES: mDNS is unavailable here (no multicast; see the daemon's log)"]
    if mdns != "browsing":
        return ["APPLIANCES: mDNS browsing is off (mdns.enabled)"]
    controlled = sum(1 for appliance in appliances if appliance.get("controlled"))
    lines = [f"APPLIANCES ON THE LAN (mDNS): {len(appliances)} ({controlled} controlled)"]
    if not appliances:
        return [*lines, "  none seen yet"]
    ordered = sorted(appliances, key=lambda a: (str(a.get("protocol")), str(a.get("name"))))
    rows = [(_cell(a.get("protocol"), _WIDTHS["protocol"]), _cell(a.get("name"), _WIDTHS["name"]),
             _cell(a.get("model"), _WIDTHS["model"]), _cell(_address(a), _WIDTHS["address"]),
             _cell(_control(a), _WIDTHS["control"])) for a in ordered]
    return [*lines, *_table(("PROTOCOL", "NAME", "MODEL", "ADDRESS", "CONTROL"), rows)]


def render_inventory(body: Mapping[str, Any]) -> str:
    """The inventory reply as aligned text."""
    entities = [e for e in body.get("entities") or [] if isinstance(e, dict)]
    appliances = [a for a in body.get("appliances") or [] if isinstance(a, dict)]
    lines = [*_entity_lines(entities), "", *_appliance_lines(appliances, str(body.get("mdns"))),
             "", LEGEND]
    return "\n".join(lines)
