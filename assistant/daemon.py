"""The daemon: builds every part from the config, starts and stops them from one place.

Each connection is one supervised task; a task that dies is logged and restarted with
backoff. SIGTERM/SIGINT stop it gracefully: no new requests, requests in flight finish,
the broker hears "offline", the registry is closed (its writer thread stores what is left,
one transaction per batch, so nothing is ever half-written).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import logging
import signal
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from assistant.announce import SelfDevice
from assistant.appliances import ApplianceInventory, find_mqtt_broker, serve_inventory
from assistant.automations import Automations
from assistant.config import Config
from assistant.conversation import Conversation, Reasoner
from assistant.devices import DeviceGateway
from assistant.messages import (
    ConversationRequest,
    ConversationResponse,
    EntityCommand,
    ScheduledRun,
)
from assistant.registry import Area, DeviceRegistry, Entity, EntityPatch, Floor
from assistant.transport.rules_api import serve_rules
from assistant.safety import SafetyPolicy, exposure_predicate, extract_secrets
from assistant.transport.api import ConversationApi
from assistant.transport.mqtt_link import MqttLink
from assistant.transport.sdnotify import SystemdNotifier
from assistant.understanding.fastpath import FastPath
from device_adapters.base import DeviceAdapter, ReportWait
from device_adapters.ha_discovery.adapter import HomeAssistantDiscoveryAdapter
from device_adapters.homie import HomieAdapter
from device_adapters.shelly import ShellyAdapter
from device_adapters.tasmota import TasmotaAdapter
from device_adapters.zigbee2mqtt import Zigbee2MqttAdapter
from skills.base import SkillRegistry
from skills.home_control import HomeControlSkill

if TYPE_CHECKING:
    from assistant.voice.service import VoiceService

log = logging.getLogger(__name__)

# Past this long without a broker the watchdog starves and systemd restarts us.
BROKER_GRACE_S = 120.0
MAX_RESTART_BACKOFF_S = 30.0
STOP_AGAIN_S = 5.0  # a stopped task still running this long is cancelled again
# how long the home has no new names, rooms or devices before the fast path's lists are
# rebuilt ahead of the next request
LISTS_SETTLE_S = 1.0
BROKER_SEARCH_S = 3.0  # how long a daemon without mqtt.host waits for an advertised broker


@dataclass(frozen=True, slots=True)
class CommandsSent:
    """Commands just published; ``request_id`` is the request they were sent for, None when
    a timer, schedule or rule sent them."""

    request_id: int | None
    commands: tuple[EntityCommand, ...]


@dataclass(frozen=True, slots=True)
class RequestAnswered:
    request_id: int
    request: ConversationRequest
    response: ConversationResponse
    elapsed_ms: float


DaemonEvent = CommandsSent | RequestAnswered
DaemonWatcher = Callable[[DaemonEvent], None]
# The request being handled, seen by the commands it sends however deep in its tasks they are.
# A callback scheduled meanwhile (the scheduler's wakeup) keeps it: only while the request is
# being answered does it name the sender.
_current_request: ContextVar[int | None] = ContextVar("current_request", default=None)


class Supervisor:
    """Runs named long-lived coroutines and restarts any that fail, with backoff."""

    def __init__(self) -> None:
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def start(self, name: str, factory: Callable[[], Awaitable[None]]) -> None:
        self._tasks[name] = asyncio.create_task(self._keep_running(name, factory), name=name)

    async def _keep_running(self, name: str, factory: Callable[[], Awaitable[None]]) -> None:
        delay = 1.0
        while True:
            started = time.monotonic()
            try:
                await factory()
                log.warning("task %s ended; restarting", name)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("task %s failed; restarting in %.0f s", name, delay)
            if time.monotonic() - started > 60:
                delay = 1.0
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RESTART_BACKOFF_S)

    async def stop(self) -> None:
        """Cancel every task and wait for them. One still running a while later had its
        cancellation dropped (Python 3.11's ``wait_for`` can, when what it waits for ends
        at that moment) and is cancelled again, rather than waited for for ever."""
        running = set(self._tasks.values())
        while running:
            for task in running:
                task.cancel()
            _, running = await asyncio.wait(running, timeout=STOP_AGAIN_S)
            for task in running:
                log.warning("task %s is still running after it was stopped; stopping it again",
                            task.get_name())
        self._tasks.clear()


def settle_heap() -> None:
    """Keep what start-up built (intents and their templates, the registry) out of the
    garbage collector's full passes: it lives as long as the process, and scanning it again
    on every pass cost about a tenth of the fast path's time (``mimo-home bench nlu``)."""
    gc.collect()
    gc.freeze()


class StateDirectoryError(RuntimeError):
    """Nothing could be stored: restarting cannot fix that (the CLI exits with status 2)."""


def check_state_directory(path: Path) -> None:
    """Fail at start with the reason, rather than on the first write (or as a crash loop)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise StateDirectoryError(
            f"the state directory {path} is not writable ({exc.strerror or exc}); fix its "
            "mount or permissions, or set state_dir") from None


class Daemon:
    def __init__(self, config: Config, *, reasoner: Reasoner | None = None,
                 notifier: SystemdNotifier | None = None) -> None:
        self.config = config
        check_state_directory(Path(config.state_dir))
        self.notifier = notifier or SystemdNotifier.from_environment()
        self.registry = DeviceRegistry(Path(config.state_dir) / "registry.sqlite3",
                                       config.adapters.limits)
        self.registry.set_exposure(exposure_predicate(config.exposure))
        # An appliance that also arrives over HA discovery is controlled through one adapter.
        ha_rank = 1 if config.adapters.prefer == "native" else 0
        self.registry.set_source_preference(
            lambda source: ha_rank if source == HomeAssistantDiscoveryAdapter.name else 1 - ha_rank)
        self._apply_home_config()
        self.link = MqttLink(config.mqtt)
        # The policy is built from the gateway's encoder, so the gateway asks it lazily.
        self.gateway = DeviceGateway(self.registry, self.link,
                                     is_sensitive=lambda entity: self.policy.is_sensitive(entity))
        self.policy = SafetyPolicy(
            self.registry, encode=self.gateway.encode,
            user_marks={entity_id: o.sensitive for entity_id, o in config.home.entities.items()
                        if o.sensitive is not None})
        self.skills = SkillRegistry()
        self.skills.register(HomeControlSkill())
        # Timers, schedules and rules run their commands through the conversation's executor.
        self.automations = Automations(
            config, self.registry, self.skills, send=self._send, policy=self.policy,
            execute=self.run_scheduled,
            publish=self.link.publish, subscribe=self.link.subscribe) \
            if config.automation.enabled else None
        self.fast_path = FastPath(self.registry, config.understanding.language,
                                  policy=self.policy) \
            if config.understanding.fast_path else None
        self.reasoner = reasoner if reasoner is not None else self._make_reasoner()
        self.conversation = Conversation(self.registry, self.skills, self._send,
                                         self.fast_path, self.reasoner, config.understanding,
                                         policy=self.policy, report_wait=ReportWait(
                                             config.understanding.report_wait_s,
                                             self.gateway.reports_state),
                                         notices_for_reply=self.automations.notices_for_reply
                                         if self.automations is not None else None,
                                         followup_window_s=config.llm.history_window_s)
        self.api = ConversationApi(config.mqtt.base_topic, self.converse, self.link.publish)
        self.appliances = ApplianceInventory(config.mdns, self.registry)
        self.supervisor = Supervisor()
        self.stop_requested = asyncio.Event()  # by a signal or a caller
        self._cleanups: list[Callable[[], object]] = []
        self.ready = asyncio.Event()  # all started, voice too (systemd hears READY before it)
        self.voice_error: str | None = None
        self.self_device: SelfDevice | None = None
        self._watchers: list[DaemonWatcher] = []
        self._request_ids = itertools.count(1)
        self._answering: set[int] = set()

    def _apply_home_config(self) -> None:
        home = self.config.home
        for floor in home.floors:
            self.registry.set_floor(Floor(id=floor.id, name=floor.name, level=floor.level,
                                          aliases=tuple(floor.aliases)))
        for area in home.areas:
            self.registry.set_area(Area(id=area.id, name=area.name, floor=area.floor,
                                        aliases=tuple(area.aliases)))
        self.registry.set_overrides({
            entity_id: EntityPatch(o.name, tuple(o.aliases), o.area)
            for entity_id, o in home.entities.items()})

    def _adapters(self) -> list[DeviceAdapter]:
        """The protocol adapters the config enables, in one place."""
        cfg = self.config.adapters
        enabled: list[tuple[bool, Callable[[], DeviceAdapter]]] = [
            (cfg.ha_discovery.enabled,
             lambda: HomeAssistantDiscoveryAdapter(cfg.ha_discovery.prefix)),
            (cfg.shelly.enabled,
             lambda: ShellyAdapter(cfg.shelly.prefixes, cfg.shelly.rpc_timeout_s,
                                   self.config.mqtt.client_id)),
            (cfg.homie.enabled, lambda: HomieAdapter(cfg.homie.base_topic)),
            (cfg.tasmota.enabled, lambda: TasmotaAdapter(cfg.tasmota.discovery_prefix)),
            (cfg.zigbee2mqtt.enabled, lambda: Zigbee2MqttAdapter(cfg.zigbee2mqtt.base_topic)),
        ]
        return [make() for on, make in enabled if on]

    def _make_reasoner(self) -> Reasoner | None:
        if not self.config.llm.enabled:
            return None
        from assistant.llm.reasoner import LlmReasoner  # heavy: only when configured

        return LlmReasoner(self.config.llm, self.skills, self.registry,
                           self.config.understanding.language)

    def watch(self, watcher: DaemonWatcher) -> Callable[[], None]:
        """Hear of every request answered and every command sent (the demo shows them);
        returns the function that stops it. A watcher must be quick and must not raise."""
        self._watchers.append(watcher)
        return lambda: self._watchers.remove(watcher) if watcher in self._watchers else None

    def _tell(self, event: DaemonEvent) -> None:
        for watcher in list(self._watchers):
            try:
                watcher(event)
            except Exception:  # a broken watcher must not break a request
                log.exception("daemon watcher failed")

    async def _send(self, commands: list[tuple[Entity, EntityCommand]]) -> None:
        await self.gateway.send(commands)
        request_id = _current_request.get()
        self._tell(CommandsSent(request_id if request_id in self._answering else None,
                                tuple(c for _, c in commands)))

    async def run_scheduled(self, run: ScheduledRun) -> ConversationResponse:
        """A timer's, schedule's or rule's run: no request's doing, even when the callback
        that started it was scheduled while one was answered."""
        token = _current_request.set(None)
        try:
            return await self.conversation.run_scheduled(run)
        finally:
            _current_request.reset(token)

    async def converse(self, request: ConversationRequest) -> ConversationResponse:
        started = time.perf_counter()
        request_id = next(self._request_ids)
        token = _current_request.set(request_id)
        self._answering.add(request_id)
        try:
            response = await self.conversation.handle(request)
        finally:
            self._answering.discard(request_id)
            _current_request.reset(token)
        if self.self_device is not None:
            self.self_device.record(request.text, response)
        elapsed_ms = (time.perf_counter() - started) * 1000
        log.info("%r -> %r via %s in %.0f ms", extract_secrets(request.text)[0],
                 response.reply, response.path, elapsed_ms)
        self._tell(RequestAnswered(request_id, request, response, elapsed_ms))
        return response

    def request_stop(self) -> None:
        self.stop_requested.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.request_stop)
                self._cleanups.append(lambda s=sig: loop.remove_signal_handler(s))
        try:
            await self._start()
            await self.stop_requested.wait()
        finally:
            await self._shutdown()

    async def _start(self) -> None:
        cfg = self.config
        if cfg.mdns.enabled and "host" not in cfg.mqtt.model_fields_set:
            await self._use_advertised_broker()
        self.notifier.status("connecting to the MQTT broker")
        self.supervisor.start("mqtt", self.link.run)
        for adapter in self._adapters():
            self._cleanups.append(self.gateway.add_adapter(adapter))
        self._cleanups.append(self.api.start(self.link.subscribe))
        await self.appliances.start()
        self._cleanups.append(self.appliances.stop)
        self._cleanups.append(serve_inventory(cfg.mqtt.base_topic, self.registry, self.appliances,
                                              self.link.subscribe, self.link.publish))
        interval = self.notifier.watchdog_interval()
        if interval:
            self.supervisor.start("watchdog", lambda: self._feed_watchdog(interval))
        with contextlib.suppress(TimeoutError):
            await self.link.wait_connected(timeout=10)
        if self.automations is not None:
            # After the broker: jobs missed while down and rules' "start" send commands.
            self._cleanups.append(await self.automations.start())
            self._cleanups.append(serve_rules(cfg.mqtt.base_topic, self.automations.rules,
                                              self.link.subscribe, self.link.publish))
        # Text is answered from here on. The rest loads now, not sharing the CPU with what
        # came before: the reasoning model in its worker (the fast path serves meanwhile),
        # the fast path's lists on a thread (a request meanwhile waits for them), then
        # Whisper and Piper (seconds), all after systemd hears READY.
        if self.reasoner is not None:
            self.reasoner.start()
            self._cleanups.append(self.reasoner.stop)
        self.notifier.ready(self._status_text())
        if self.fast_path is not None:
            # its lists first (a request meanwhile waits for them), then the voice models
            await self.fast_path.prepare()
            settle_heap()
            self.supervisor.start("fast path", self._keep_fast_path_current)
        voice = await self._start_voice() if cfg.voice.enabled else None
        if self.automations is not None:
            self.automations.use_voice(voice.speak if voice is not None else None)
        if cfg.announce.enabled:
            self.self_device = SelfDevice(
                cfg.mqtt.base_topic, cfg.adapters.ha_discovery.prefix, cfg.mqtt.client_id,
                self.link.publish, self.link.subscribe,
                set_muted=voice.set_muted if voice is not None else None)
            self._cleanups.append(self.self_device.start())
        self.ready.set()
        self.supervisor.start("status", self._report_status)

    async def _keep_fast_path_current(self) -> None:
        """The fast path's lists, built again off the loop each time a burst of changes (a
        discovery) has settled, so that a request rarely waits for them."""
        assert self.fast_path is not None
        while True:
            await self.fast_path.changes_settled(LISTS_SETTLE_S)
            await self.fast_path.prepare()

    async def _use_advertised_broker(self) -> None:
        """No broker configured: use one the LAN advertises (``_mqtt._tcp``), else localhost."""
        self.notifier.status("looking for an MQTT broker on the network")
        found = await find_mqtt_broker(self.config.mdns.interfaces, BROKER_SEARCH_S)
        if found is None:
            log.info("no MQTT broker advertised over mDNS; using %s:%d",
                     self.config.mqtt.host, self.config.mqtt.port)
            return
        log.info("using the MQTT broker advertised at %s:%d", *found)
        self.link.use_broker(*found)

    async def _start_voice(self) -> VoiceService | None:
        """Voice is an extra: if its models or devices fail, text keeps working."""
        from assistant.voice.service import VoiceService  # heavy: only when configured

        # The voice hears and speaks the home's language; its models live in the state dir.
        config = self.config.voice.for_home(self.config.understanding.language,
                                            self.config.state_dir)
        voice = VoiceService(config, self.converse, self.registry, self.link)
        try:
            await voice.start()
        except Exception as exc:
            self.voice_error = f"{type(exc).__name__}: {exc}"
            log.error("voice is off: %s (check the voice: section of the config)",
                      self.voice_error)
            await voice.stop()
            return None
        self._cleanups.append(voice.stop)
        return voice

    def _status_text(self) -> str:
        broker = "connected" if self.link.connected else f"waiting for broker ({self.link.last_error})"
        llm = f", LLM {self.reasoner.status}" if self.reasoner is not None else ""
        voice = f", voice off ({self.voice_error})" if self.voice_error else ""
        return f"{len(self.registry)} entities, broker {broker}{llm}{voice}"

    async def _report_status(self) -> None:
        last = ""
        while True:
            text = self._status_text()
            if text != last:
                self.notifier.status(text)
                last = text
            await asyncio.sleep(2)

    async def _feed_watchdog(self, interval: float) -> None:
        """Feed systemd's watchdog only while the loop runs on time and the broker is near."""
        while True:
            before = time.monotonic()
            await asyncio.sleep(interval)
            loop_late = time.monotonic() - before - interval
            if loop_late < interval and self.link.disconnected_for < BROKER_GRACE_S:
                self.notifier.watchdog()
            else:
                log.error("not feeding the watchdog: loop %.1f s late, broker away %.0f s",
                          loop_late, self.link.disconnected_for)

    async def _shutdown(self) -> None:
        self.notifier.stopping()
        await self.api.drain(timeout=5)
        for cleanup in reversed(self._cleanups):
            try:
                result = cleanup()
                if asyncio.iscoroutine(result):
                    await result
            except Exception:
                log.exception("cleanup failed")
        self._cleanups.clear()
        await self.supervisor.stop()
        if self.fast_path is not None:
            self.fast_path.close()
        self.policy.close()
        self.registry.close()
        log.info("stopped")
