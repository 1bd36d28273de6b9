"""The appliance inventory: what the LAN advertises over mDNS, linked to the registry's
entities, and the ``mimo-home devices`` report built from both."""

from assistant.appliances.inventory import ApplianceInventory, find_mqtt_broker
from assistant.appliances.records import Appliance, ApplianceEvent
from assistant.appliances.report import serve_inventory

__all__ = ["Appliance", "ApplianceEvent", "ApplianceInventory", "find_mqtt_broker",
           "serve_inventory"]
