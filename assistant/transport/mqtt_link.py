"""The daemon's one connection to the MQTT broker (paho-mqtt 2.x, callback API v2).

paho runs its network loop in its own thread and reconnects with exponential backoff by
itself; every callback re-enters the event loop with ``call_soon_threadsafe``, so handlers,
the outgoing queue and subscriptions are only touched on the loop.

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

log = logging.getLogger(__name__)

MessageHandler = Callable[[MqttMessage], None]


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
        self._loop = asyncio.get_running_loop()
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
        client = paho.Client(
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

    def _call_on_loop(self, func: Callable[..., None], *args: object) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(func, *args)

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
            for topic_filter, wildcard_handlers in self._wildcard.items():
                if paho.topic_matches_sub(topic_filter, message.topic):
                    handlers.extend(wildcard_handlers)
        for handler in handlers:
            try:
                handler(message)
            except Exception:  # one bad payload or handler must not take the link down
                log.exception("handler for %s failed", message.topic)


def _wait_published(info: paho.MQTTMessageInfo, timeout: float) -> None:
    try:
        info.wait_for_publish(timeout)
    except (RuntimeError, ValueError):
        pass  # not connected any more: the will covers us
