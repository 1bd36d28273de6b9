"""The appliance inventory: what the LAN advertises over mDNS, live.

zeroconf's asyncio browser calls its handlers on the event loop; a handler only records the
change and starts a task that resolves the service, so no handler waits on the network.
What a hostile LAN can grow is bounded: appliances kept, resolutions in flight, and the
text of each (``records.describe``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from zeroconf import InterfaceChoice, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from assistant.appliances.protocols import MQTT_BROKER_TYPE, PROTOCOLS
from assistant.appliances.records import (
    Advertisement,
    Appliance,
    ApplianceEvent,
    EntityIndex,
    describe,
    linked,
)
from assistant.config import MdnsConfig
from assistant.registry import DeviceRegistry, RegistryChange

log = logging.getLogger(__name__)

MAX_APPLIANCES = 1000
MAX_RESOLVING = 32  # resolutions in flight at once
RESOLVE_TIMEOUT_MS = 3000
RELINK_DELAY_S = 0.2  # gathers a burst of registry changes into one relink

ApplianceListener = Callable[[ApplianceEvent], None]


def _zeroconf(interfaces: list[str]) -> AsyncZeroconf:
    return AsyncZeroconf(interfaces=list(interfaces) or InterfaceChoice.All)


async def _resolve(zeroconf: Zeroconf, service_type: str, name: str) -> Advertisement | None:
    info = AsyncServiceInfo(service_type, name)
    if not await info.async_request(zeroconf, RESOLVE_TIMEOUT_MS):
        return None
    return Advertisement(service_type, name, info.server, tuple(info.parsed_scoped_addresses()),
                         info.port, info.properties)


class ApplianceInventory:
    """Browses the service types of ``protocols.PROTOCOLS`` and keeps what they advertise,
    linked to the registry's entities of the same appliance."""

    def __init__(self, config: MdnsConfig, registry: DeviceRegistry, *,
                 max_appliances: int = MAX_APPLIANCES) -> None:
        self.config = config
        self.registry = registry
        self.max_appliances = max_appliances
        self._appliances: dict[str, Appliance] = {}  # by the service's name as zeroconf has it
        self._resolving: dict[str, asyncio.Task[None]] = {}
        self._stale: set[str] = set()  # updated while being resolved (a part of _resolving)
        self._listeners: list[ApplianceListener] = []
        self._warned: set[str] = set()
        self._zeroconf: AsyncZeroconf | None = None
        self._browser: AsyncServiceBrowser | None = None
        self._unsubscribe_registry: Callable[[], None] | None = None
        self._relink_pending: asyncio.TimerHandle | None = None
        self._index: EntityIndex | None = None  # None: the registry changed since it was built
        self._loop: asyncio.AbstractEventLoop | None = None
        self._unavailable = False

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Browse from now on; without mDNS sockets (no multicast here) the inventory stays
        empty and says so (``status``), the daemon runs on."""
        if not self.config.enabled or self._zeroconf is not None:
            return
        self._loop = asyncio.get_running_loop()
        try:
            self._zeroconf = _zeroconf(self.config.interfaces)
        except OSError as exc:
            log.warning("mDNS inventory unavailable: cannot open mDNS sockets on %s (%s)",
                        ", ".join(self.config.interfaces) or "all interfaces", exc)
            self._unavailable = True
            return
        self._unsubscribe_registry = self.registry.subscribe(self._on_registry_change)
        self._browser = AsyncServiceBrowser(
            self._zeroconf.zeroconf, [protocol.service_type for protocol in PROTOCOLS],
            handlers=[self._on_service_change])
        log.info("mDNS inventory: browsing %d service types on %s", len(PROTOCOLS),
                 ", ".join(self.config.interfaces) or "all interfaces")

    @property
    def status(self) -> str:
        """"browsing", "off" (``mdns.enabled`` is false; or not started) or "unavailable"."""
        if self._browser is not None:
            return "browsing"
        return "unavailable" if self._unavailable else "off"

    async def stop(self) -> None:
        if self._unsubscribe_registry is not None:
            self._unsubscribe_registry()
            self._unsubscribe_registry = None
        if self._relink_pending is not None:
            self._relink_pending.cancel()
            self._relink_pending = None
        for task in list(self._resolving.values()):
            task.cancel()
        await asyncio.gather(*self._resolving.values(), return_exceptions=True)
        self._resolving.clear()
        self._stale.clear()
        if self._browser is not None:
            await self._browser.async_cancel()
            self._browser = None
        if self._zeroconf is not None:
            await self._zeroconf.async_close()
            self._zeroconf = None

    # -- reading --------------------------------------------------------------------------

    def appliances(self) -> list[Appliance]:
        return sorted(self._appliances.values(), key=lambda a: (a.protocol, a.name, a.key))

    def subscribe(self, listener: ApplianceListener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    # -- browsing -------------------------------------------------------------------------

    def _on_service_change(self, zeroconf: Zeroconf, service_type: str, name: str,
                           state_change: ServiceStateChange) -> None:
        """zeroconf's handler, on the event loop: never waits, never raises."""
        try:
            if state_change is ServiceStateChange.Removed:
                self._forget(name)
            else:
                self._start_resolving(zeroconf, service_type, name)
        except Exception:  # zeroconf must keep browsing whatever one service does
            log.exception("mDNS inventory: cannot follow %.120s", name)

    def _start_resolving(self, zeroconf: Zeroconf, service_type: str, name: str) -> None:
        if name in self._resolving:
            self._stale.add(name)  # the running resolution may have read the old records
            return
        if name not in self._appliances and self._full(len(self._resolving)):
            return
        if len(self._resolving) >= MAX_RESOLVING:
            self._warn_once("busy", "mDNS inventory: %d services resolving at once; the "
                            "rest wait for their next announcement", MAX_RESOLVING)
            return
        task = asyncio.get_running_loop().create_task(
            self._resolve_and_keep(zeroconf, service_type, name))
        self._resolving[name] = task
        task.add_done_callback(
            lambda done: self._resolving.pop(name) if self._resolving.get(name) is done else None)

    async def _resolve_and_keep(self, zeroconf: Zeroconf, service_type: str,
                                name: str) -> None:
        stale = True
        while stale:  # updated while being resolved: read it again
            self._stale.discard(name)
            try:
                advert = await _resolve(zeroconf, service_type, name)
            except Exception:  # a malformed answer costs this service, nothing else
                log.exception("mDNS inventory: cannot resolve %.120s", name)
                return
            appliance = describe(advert, self.registry.limits) if advert else None
            if appliance is not None:
                self._keep(name, linked(appliance, self._entity_index()))
            stale = name in self._stale

    def _full(self, pending: int = 0) -> bool:
        """No room for one more appliance (besides ``pending`` ones being resolved)."""
        if len(self._appliances) + pending < self.max_appliances:
            return False
        self._warn_once("full", "mDNS inventory: %d appliances kept; more are ignored",
                        self.max_appliances)
        return True

    def _keep(self, name: str, appliance: Appliance) -> None:
        old = self._appliances.get(name)
        if old == appliance or (old is None and self._full()):
            return
        self._appliances[name] = appliance
        self._notify(ApplianceEvent("added" if old is None else "updated", appliance))

    def _forget(self, name: str) -> None:
        self._stale.discard(name)
        task = self._resolving.pop(name, None)
        if task is not None:
            task.cancel()
        appliance = self._appliances.pop(name, None)
        if appliance is not None:
            self._notify(ApplianceEvent("removed", appliance))

    # -- linking to the registry ------------------------------------------------------------

    def _entity_index(self) -> EntityIndex:
        if self._index is None:
            self._index = EntityIndex(self.registry.all_entities())
        return self._index

    def _on_registry_change(self, change: RegistryChange) -> None:
        if change.structure and self._loop is not None:
            self._loop.call_soon_threadsafe(self._schedule_relink)

    def _schedule_relink(self) -> None:
        self._index = None
        if self._relink_pending is None and self._loop is not None:
            self._relink_pending = self._loop.call_later(RELINK_DELAY_S, self._relink)

    def _relink(self) -> None:
        self._relink_pending = None
        index = self._entity_index()
        for name, appliance in list(self._appliances.items()):
            self._keep(name, linked(appliance, index))

    # -- helpers --------------------------------------------------------------------------

    def _notify(self, event: ApplianceEvent) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # one broken listener must not stop the inventory
                log.exception("appliance listener failed")

    def _warn_once(self, key: str, fmt: str, *args: object) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(fmt, *args)


async def find_mqtt_broker(interfaces: list[str], timeout_s: float) -> tuple[str, int] | None:
    """The address and port of the first broker advertised as ``_mqtt._tcp``, or None when
    none answers within ``timeout_s`` (an IPv4 address when the broker has one)."""
    found: asyncio.Future[tuple[str, int]] = asyncio.get_running_loop().create_future()
    resolving: set[asyncio.Task[None]] = set()

    async def resolve(zeroconf: Zeroconf, name: str) -> None:
        advert = await _resolve(zeroconf, MQTT_BROKER_TYPE, name)
        if advert is None or not advert.addresses or not advert.port or found.done():
            return
        address = next((a for a in advert.addresses if ":" not in a), advert.addresses[0])
        found.set_result((address, advert.port))

    def on_change(zeroconf: Zeroconf, service_type: str, name: str,
                  state_change: ServiceStateChange) -> None:
        if state_change is ServiceStateChange.Added and len(resolving) < MAX_RESOLVING:
            task = asyncio.get_running_loop().create_task(resolve(zeroconf, name))
            resolving.add(task)
            task.add_done_callback(resolving.discard)

    zeroconf = _zeroconf(interfaces)
    browser = AsyncServiceBrowser(zeroconf.zeroconf, MQTT_BROKER_TYPE, handlers=[on_change])
    try:
        return await asyncio.wait_for(found, timeout_s)
    except TimeoutError:
        return None
    finally:
        for task in list(resolving):
            task.cancel()
        await asyncio.gather(*resolving, return_exceptions=True)
        await browser.async_cancel()
        await zeroconf.async_close()
