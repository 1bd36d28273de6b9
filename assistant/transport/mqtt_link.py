"""The daemon's one connection to the MQTT broker (paho-mqtt 2.x, callback API v2).

paho runs its network loop in its own thread and reconnects with exponential backoff by
itself (reading what arrived in one go: ``read_ahead``); every callback re-enters the event
loop, in order, through one queue the loop drains
(one ``call_soon_threadsafe`` wakes it per batch, not per message; during a burst the loop
drains every ``BURST_GATHER_S``, so paho's thread reads without fighting it for the GIL), so
handlers, the outgoing queue and subscriptions are only touched on the loop.

While the broker is away, outgoing messages wait in a bounded queue and are sent in order
when it returns; a message older than ``queue_max_age_s`` is dropped instead — replaying a
minutes-old "open the garage" is worse than not sending it. The same holds for paho's own
re-sends: after a reconnect paho re-sends every QoS 1 message the broker never acknowledged,
however old, so on CONNACK (in paho's thread, just before it re-sends) the link drops those
that are too old or must not be re-sent (``MqttMessage.resend``: false for commands to
sensitive devices, whose yes was for now). Such a message is refused rather than queued while
the broker is away.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from assistant.config import MqttConfig
from assistant.messages import CommandNotSentError, MqttMessage
from assistant.transport.read_ahead import ReadAheadClient

log = logging.getLogger(__name__)

MessageHandler = Callable[[MqttMessage], None]

DRAIN_BATCH = 256  # callbacks run per loop iteration, so a burst does not starve other tasks
BURST = 16  # callbacks found at once that make a burst
BURST_GATHER_S = 0.02  # during a burst, how long paho's thread reads before the loop drains
MATCH_CACHE_SIZE = 4096  # topics whose matching wildcard filters are remembered


class BrokerUnreachableError(CommandNotSentError):
    """The broker is unreachable and the message cannot wait for it."""


class PublishQueueFullError(BrokerUnreachableError):
    """The broker is unreachable and the outgoing queue is full."""


@dataclass(frozen=True, slots=True)
class _Outgoing:
    message: MqttMessage
    asked_at: float  # when publish() was called: its age counts from here


class MqttLink:
    def __init__(self, config: MqttConfig, *, client_id_suffix: str = "") -> None:
        self.config = config
        self.status_topic = f"{config.base_topic}/status"
        self._client_id = config.client_id + client_id_suffix
        self._exact: dict[str, list[MessageHandler]] = {}
        self._wildcard: dict[str, list[MessageHandler]] = {}
        # Handlers added to an exact topic already subscribed, waiting for its retained
        # message: the broker re-sends it on a repeated SUBSCRIBE, to them only.
        self._awaiting_retained: dict[str, list[MessageHandler]] = {}
        # topic -> the wildcard filters it matches; emptied whenever those filters change
        self._matching_filters: dict[str, tuple[str, ...]] = {}
        # paho's callbacks waiting for the loop, in order; appended in paho's thread only
        self._incoming: deque[tuple[Callable[..., None], tuple[object, ...]]] = deque()
        self._drain_scheduled = False
        self._queue: deque[_Outgoing] = deque()
        # QoS 1 messages paho holds until the broker acknowledges them, by paho's mid. Only
        # touched under paho's out-message lock, which paho also holds when it acknowledges.
        self._unacknowledged: dict[int, _Outgoing] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: paho.Client | None = None
        self._connected = asyncio.Event()
        self._disconnected_at: float | None = time.monotonic()
        self._closing = False
        self.last_error: str | None = None

    # -- public API (event loop only) ----------------------------------------------------

    def use_broker(self, host: str, port: int) -> None:
        """Connect to this broker instead of the configured one (one found on the LAN);
        only before ``run``."""
        assert self._client is None, "the link is already running"
        self.config = self.config.model_copy(update={"host": host, "port": port})

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def wait_connected(self, timeout: float) -> None:
        await asyncio.wait_for(self._connected.wait(), timeout)

    def subscribe(self, topic_filter: str, handler: MessageHandler) -> Callable[[], None]:
        table = self._wildcard if ("#" in topic_filter or "+" in topic_filter) else self._exact
        if topic_filter not in table and table is self._wildcard:
            self._matching_filters.clear()
        handlers = table.setdefault(topic_filter, [])
        handlers.append(handler)
        if self.connected and self._client is not None:
            if len(handlers) == 1:
                self._client.subscribe(topic_filter, qos=1)
            elif table is self._exact:
                # A later handler of a topic (a second entity sharing an availability topic)
                # must hear its retained state too: subscribing again makes the broker re-send
                # it (MQTT 3.1.1, 3.8.4), and dispatch hands that copy to the late ones only.
                self._awaiting_retained.setdefault(topic_filter, []).append(handler)
                self._client.subscribe(topic_filter, qos=1)

        def unsubscribe() -> None:
            if handler not in handlers:
                return
            handlers.remove(handler)
            waiting = self._awaiting_retained.get(topic_filter, [])
            if handler in waiting:
                waiting.remove(handler)
            if not handlers:
                del table[topic_filter]
                if table is self._wildcard:
                    self._matching_filters.clear()
                if self.connected and self._client is not None:
                    self._client.unsubscribe(topic_filter)

        return unsubscribe

    def publish(self, message: MqttMessage) -> None:
        """Send now, or queue in order while the broker is unreachable; a message that must
        not be re-sent is refused instead (BrokerUnreachableError)."""
        outgoing = _Outgoing(message, time.monotonic())
        if self.connected and not self._queue:
            self._send(outgoing)
            return
        if not message.resend:
            raise BrokerUnreachableError(
                f"MQTT broker {self.config.host}:{self.config.port} is unreachable, and "
                f"{message.topic} may not be sent later")
        if len(self._queue) >= self.config.queue_max:
            raise PublishQueueFullError(
                f"MQTT broker {self.config.host}:{self.config.port} is unreachable and "
                f"{len(self._queue)} messages are already waiting"
            )
        self._queue.append(outgoing)
        log.info("broker unreachable: queued %s (%d waiting)", message.topic, len(self._queue))

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def unacknowledged(self) -> int:
        """Published QoS 1 messages the broker has not acknowledged yet."""
        return len(self._unacknowledged)

    @property
    def disconnected_for(self) -> float:
        """Seconds since the link was last up (0 while connected)."""
        if self._disconnected_at is None:
            return 0.0
        return time.monotonic() - self._disconnected_at

    async def run(self) -> None:
        """The connection's supervised task: connects, keeps reconnecting, stops on cancel."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # what was queued for a loop that is gone stays there
            self._incoming.clear()
            self._drain_scheduled = False
        self._loop = loop
        client = self._make_client()
        self._client = client
        client.connect_async(self.config.host, self.config.port, self.config.keepalive_s)
        client.loop_start()
        try:
            await asyncio.Event().wait()  # paho's thread does the work until we are cancelled
        finally:
            await self._close(client)

    # -- internals ---------------------------------------------------------------------

    def _make_client(self) -> paho.Client:
        cfg = self.config
        client = ReadAheadClient(
            CallbackAPIVersion.VERSION2, client_id=self._client_id, clean_session=True
        )
        client.reconnect_delay_set(min_delay=max(1, round(cfg.reconnect_min_s)),
                                   max_delay=max(1, round(cfg.reconnect_max_s)))
        if cfg.username:
            client.username_pw_set(cfg.username, cfg.resolved_password())
        if cfg.tls.enabled:
            client.tls_set(
                ca_certs=str(cfg.tls.ca_file) if cfg.tls.ca_file else None,
                certfile=str(cfg.tls.cert_file) if cfg.tls.cert_file else None,
                keyfile=str(cfg.tls.key_file) if cfg.tls.key_file else None,
                cert_reqs=ssl.CERT_REQUIRED,
            )
            client.tls_insecure_set(cfg.tls.insecure)
        client.will_set(self.status_topic, b"offline", qos=1, retain=True)
        client.on_connect = self._on_connect_thread
        client.on_disconnect = self._on_disconnect_thread
        client.on_message = self._on_message_thread
        client.on_plain_message = self._on_plain_message_thread
        client.on_publish = self._on_publish_thread
        return client

    async def _close(self, client: paho.Client) -> None:
        self._closing = True
        if self.connected:
            # A clean disconnect does not fire the will, so say "offline" ourselves.
            info = client.publish(self.status_topic, b"offline", qos=1, retain=True)
            await asyncio.to_thread(_wait_published, info, 2.0)
        client.disconnect()
        await asyncio.to_thread(client.loop_stop)
        self._connected.clear()
        self._disconnected_at = self._disconnected_at or time.monotonic()

    def _send(self, outgoing: _Outgoing) -> None:
        client = self._client
        assert client is not None
        message = outgoing.message
        # Under paho's lock, so the record exists before paho's thread can see the PUBACK.
        with client._out_message_mutex:
            info = client.publish(message.topic, message.payload, message.qos, message.retain)
            kept = info.rc in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN)
            if kept and message.qos > 0:
                self._unacknowledged[info.mid] = outgoing
        if not kept:
            log.warning("publish to %s failed: %s", message.topic, paho.error_string(info.rc))
        elif info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN and not message.resend:
            # paho lost the broker before we heard: it would send this on reconnect, where
            # _drop_stale_resends drops it; say now that it did not go out.
            raise BrokerUnreachableError(f"lost the MQTT broker; {message.topic} was not sent")

    def _drop_stale_resends(self, client: paho.Client) -> None:
        """In paho's thread on CONNACK, right before paho re-sends the QoS 1 messages the
        broker never acknowledged: takes out those too old or not to be re-sent. paho offers
        no API for this, hence its out-message table and lock."""
        now = time.monotonic()
        with client._out_message_mutex:
            for mid, outgoing in list(self._unacknowledged.items()):
                message, age = outgoing.message, now - outgoing.asked_at
                if mid in client._out_messages and message.resend \
                        and age <= self.config.queue_max_age_s:
                    continue
                del self._unacknowledged[mid]
                if client._out_messages.pop(mid, None) is None:
                    continue
                if message.resend:
                    log.warning("not re-sending %s: asked %.0f s ago, older than "
                                "queue_max_age_s", message.topic, age)
                else:
                    log.warning("not re-sending %s after a reconnect: it needs a new "
                                "confirmation", message.topic)

    def _on_publish_thread(self, _client: paho.Client, _userdata: object, mid: int,
                           _reason: paho.ReasonCode, _props: object) -> None:
        # paho holds its out-message lock here for QoS 1 acknowledgements.
        self._unacknowledged.pop(mid, None)

    def _on_connect_thread(self, client: paho.Client, _userdata: object, _flags: object,
                           reason: paho.ReasonCode, _props: object) -> None:
        if reason.is_failure:
            self._call_on_loop(self._set_error, f"broker refused the connection: {reason}")
            return
        sock = client.socket()
        if isinstance(sock, socket.socket):
            # Commands are small and latency-sensitive: do not let Nagle hold them back.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._drop_stale_resends(client)
        self._call_on_loop(self._on_connected)

    def _on_disconnect_thread(self, _client: paho.Client, _userdata: object, _flags: object,
                              reason: paho.ReasonCode, _props: object) -> None:
        self._call_on_loop(self._on_disconnected, str(reason))

    def _on_message_thread(self, _client: paho.Client, _userdata: object,
                           msg: paho.MQTTMessage) -> None:
        message = MqttMessage(msg.topic, bytes(msg.payload), msg.qos, bool(msg.retain))
        self._call_on_loop(self._dispatch, message)

    def _on_plain_message_thread(self, topic: str, payload: bytes, retain: bool) -> None:
        self._call_on_loop(self._dispatch, MqttMessage(topic, payload, 0, retain))

    def _call_on_loop(self, func: Callable[..., None], *args: object) -> None:
        """In paho's thread: queue ``func(*args)`` for the loop; wake the loop only when no
        drain is pending (it clears the flag before draining, so nothing is left behind)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        self._incoming.append((func, args))
        if not self._drain_scheduled:
            self._drain_scheduled = True
            loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        self._drain_scheduled = False
        done = 0
        while done < DRAIN_BATCH and self._incoming:
            func, args = self._incoming.popleft()
            done += 1
            try:
                func(*args)
            except Exception:  # as the loop would log a failed callback, and go on
                log.exception("MQTT link callback %s failed", getattr(func, "__name__", func))
        if self._drain_scheduled:
            return
        if self._incoming:  # more than a batch waiting: the rest once other tasks had a turn
            self._drain_scheduled = True
            asyncio.get_running_loop().call_soon(self._drain)
        elif done >= BURST:
            # A burst: let paho's thread read on alone for a moment (both need the GIL, and
            # handing it over on each of paho's reads costs more than handling the message),
            # then take what it read in one go.
            self._drain_scheduled = True
            asyncio.get_running_loop().call_later(BURST_GATHER_S, self._drain)

    def _set_error(self, text: str) -> None:
        self.last_error = text
        log.error("%s", text)

    def _on_connected(self) -> None:
        assert self._client is not None
        log.info("connected to MQTT broker %s:%d", self.config.host, self.config.port)
        self.last_error = None
        filters = [*self._exact, *self._wildcard]
        self._awaiting_retained.clear()  # every handler hears the retained messages now
        if filters:
            self._client.subscribe([(f, 1) for f in filters])
        self._client.publish(self.status_topic, b"online", qos=1, retain=True)
        self._connected.set()
        self._disconnected_at = None
        self._flush_queue()

    def _on_disconnected(self, reason: str) -> None:
        if self.connected and not self._closing:
            log.warning("lost the MQTT broker (%s); reconnecting with backoff", reason)
        self._connected.clear()
        self._disconnected_at = self._disconnected_at or time.monotonic()
        self.last_error = f"disconnected: {reason}"

    def _flush_queue(self) -> None:
        now = time.monotonic()
        while self._queue and self.connected:
            item = self._queue.popleft()
            age = now - item.asked_at
            if age > self.config.queue_max_age_s:
                log.warning("dropping %s: queued %.0f s ago, older than queue_max_age_s",
                            item.message.topic, age)
                continue
            self._send(item)

    def _dispatch(self, message: MqttMessage) -> None:
        late = self._awaiting_retained.pop(message.topic, None) if message.retain else None
        if late:  # the copy a repeated SUBSCRIBE brought: the others heard it already
            handlers = late
        else:
            handlers = list(self._exact.get(message.topic, ()))
            for topic_filter in self._filters_matching(message.topic):
                handlers.extend(self._wildcard[topic_filter])
        for handler in handlers:
            try:
                handler(message)
            except Exception:  # one bad payload or handler must not take the link down
                log.exception("handler for %s failed", message.topic)

    def _filters_matching(self, topic: str) -> tuple[str, ...]:
        """The wildcard filters ``topic`` matches; remembered, as devices repeat topics."""
        found = self._matching_filters.get(topic)
        if found is None:
            if len(self._matching_filters) >= MATCH_CACHE_SIZE:
                self._matching_filters.clear()  # a flood of new topics must not grow memory
            found = tuple(f for f in self._wildcard if paho.topic_matches_sub(f, topic))
            self._matching_filters[topic] = found
        return found


def _wait_published(info: paho.MQTTMessageInfo, timeout: float) -> None:
    try:
        info.wait_for_publish(timeout)
    except (RuntimeError, ValueError):
        pass  # not connected any more: the will covers us
