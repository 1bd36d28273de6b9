"""What each mDNS service type tells about an appliance, and whether mimo-home drives it.

One declaration per service type. TXT keys follow each vendor's or project's documentation
(sources in tests/data/mdns/README.md): the model key, a better name than the instance
name, where a MAC address can be read, and the sentence saying how (or why not) mimo-home
controls such an appliance.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# A MAC address in any of the usual spellings, read out of a longer text.
_MAC = r"((?:[0-9A-Fa-f]{2}[:-]?){5}[0-9A-Fa-f]{2})"
WHOLE_VALUE = re.compile(rf"^{_MAC}$")

# Where a MAC address is found: a TXT key, or "@instance" / "@host" for the instance name
# and the host name; the pattern's first group is the address.
MacSource = tuple[str, re.Pattern[str]]


@dataclass(frozen=True, slots=True)
class Protocol:
    service_type: str  # "_shelly._tcp.local."
    label: str  # what a person calls it: "Shelly"
    # Why mimo-home does not control it, when no entity of an adapter is this appliance.
    unlinked: str
    # How it is controlled when entities link to it; "{adapters}" names their adapters.
    linked: str = "controlled by the {adapters} adapter"
    model_keys: tuple[str, ...] = ()
    name_keys: tuple[str, ...] = ()  # TXT keys that name the device better than its instance
    macs: tuple[MacSource, ...] = ()
    # The model is the instance name's start (Xiaomi miIO: "zhimi-airpurifier-m1_miio123").
    model_in_instance: re.Pattern[str] | None = None
    # The adapter that knows the device by its instance name (a Shelly's device id is its
    # default MQTT topic prefix and the source of its RPC replies).
    instance_adapter: str | None = None

    @property
    def short_type(self) -> str:
        return self.service_type.removesuffix(".local.")


def _txt_mac(*keys: str) -> tuple[MacSource, ...]:
    return tuple((key, WHOLE_VALUE) for key in keys)


_NO_ADAPTER = "no adapter for {}"

PROTOCOLS: tuple[Protocol, ...] = (
    Protocol("_shelly._tcp.local.", "Shelly",
             unlinked="MQTT not enabled on the device or prefix unknown",
             linked="controlled over MQTT by the {adapters} adapter",
             model_keys=("app", "model"),
             # The device id is "<model>-<mac>" ("shellyplus1pm-a8032ab12345").
             macs=(("@instance", re.compile(r"-([0-9A-Fa-f]{12})$")),),
             instance_adapter="shelly"),
    Protocol("_esphomelib._tcp.local.", "ESPHome",
             unlinked="native API not supported; MQTT with discovery not seen from the node",
             linked="controlled over MQTT by the {adapters} adapter",
             model_keys=("project_name", "board"), name_keys=("friendly_name",),
             macs=_txt_mac("mac")),
    Protocol("_hap._tcp.local.", "HomeKit", unlinked="pairing not supported",
             model_keys=("md",)),  # "id" is the pairing identity, not the MAC
    Protocol("_googlecast._tcp.local.", "Chromecast", unlinked=_NO_ADAPTER.format("cast"),
             model_keys=("md",), name_keys=("fn",)),
    Protocol("_hue._tcp.local.", "Hue", unlinked=_NO_ADAPTER.format("the Hue bridge API"),
             model_keys=("modelid",)),
    Protocol("_matter._tcp.local.", "Matter", unlinked="no Matter controller"),
    Protocol("_matterc._udp.local.", "Matter (commissionable)",
             unlinked="no Matter controller", model_keys=("VP",), name_keys=("DN",)),
    Protocol("_mqtt._tcp.local.", "MQTT broker",
             unlinked="a broker, not an appliance (used when mqtt.host is not set)"),
    Protocol("_miio._udp.local.", "Xiaomi miIO", unlinked=_NO_ADAPTER.format("miIO"),
             macs=(*_txt_mac("mac"), ("poch", re.compile(rf"mac={_MAC}"))),
             model_in_instance=re.compile(r"^(.+?)_miio\d*$")),
    Protocol("_wyoming._tcp.local.", "Wyoming",
             unlinked="a voice service; satellites connect to mimo-home, not the reverse"),
    Protocol("_home-assistant._tcp.local.", "Home Assistant",
             unlinked="another hub; its MQTT devices reach mimo-home through discovery",
             name_keys=("location_name",)),
    Protocol("_ipp._tcp.local.", "Printer (IPP)", unlinked="a printer, not a home device",
             model_keys=("ty", "product")),
    Protocol("_printer._tcp.local.", "Printer (LPD)", unlinked="a printer, not a home device",
             model_keys=("ty", "product")),
    Protocol("_airplay._tcp.local.", "AirPlay", unlinked=_NO_ADAPTER.format("AirPlay"),
             model_keys=("model",), macs=_txt_mac("deviceid")),
    Protocol("_sonos._tcp.local.", "Sonos", unlinked=_NO_ADAPTER.format("Sonos"),
             # The host is "Sonos-<mac>.local." (the player's RINCON id holds the same MAC).
             macs=(("@host", re.compile(r"^Sonos-([0-9A-Fa-f]{12})", re.IGNORECASE)),)),
    Protocol("_spotify-connect._tcp.local.", "Spotify Connect",
             unlinked=_NO_ADAPTER.format("Spotify Connect")),
    Protocol("_companion-link._tcp.local.", "Apple device",
             unlinked=_NO_ADAPTER.format("Apple devices"), model_keys=("rpMd",)),
    Protocol("_elg._tcp.local.", "Elgato", unlinked=_NO_ADAPTER.format("Elgato lights"),
             model_keys=("md",)),
    Protocol("_axis-video._tcp.local.", "Axis camera",
             unlinked=_NO_ADAPTER.format("cameras"), macs=_txt_mac("macaddress")),
    Protocol("_meshcop._udp.local.", "Thread border router",
             unlinked="network infrastructure (Thread), not an appliance",
             model_keys=("mn",)),
    Protocol("_wled._tcp.local.", "WLED",
             unlinked="no adapter for WLED (its JSON API or its own MQTT topics)",
             macs=_txt_mac("mac")),
    Protocol("_nanoleafapi._tcp.local.", "Nanoleaf", unlinked=_NO_ADAPTER.format("Nanoleaf"),
             model_keys=("md",)),
    Protocol("_androidtvremote2._tcp.local.", "Android TV",
             unlinked=_NO_ADAPTER.format("Android TV")),
)

BY_TYPE: dict[str, Protocol] = {protocol.service_type: protocol for protocol in PROTOCOLS}
MQTT_BROKER_TYPE = "_mqtt._tcp.local."


def normalize_mac(text: str | None) -> str | None:
    """12 lowercase hex digits without separators, or None when ``text`` is not a MAC."""
    if text is None:
        return None
    digits = re.sub(r"[:\-.]", "", text).lower()
    return digits if re.fullmatch(r"[0-9a-f]{12}", digits) else None
