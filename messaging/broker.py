"""One supervised AMQP connection per process: reconnect with backoff, re-declare, resume.

`Broker.run` keeps a connection open for as long as the process lives. Every time it connects it
declares the topology and calls the registered `on_connect` callbacks (consumers attach there);
when the connection is lost it calls `on_disconnect`, waits with exponential backoff and starts
again. Publishing goes through one confirm-mode channel with `mandatory`, so a message is either
confirmed by the broker or the caller gets an exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, cast

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractConnection
from tenacity import AsyncRetrying, retry_if_exception, wait_exponential, wait_random

from contracts.topology import Topology
from messaging import topology as declare
from messaging.errors import BrokerUnavailable, PublishRejected
from messaging.logs import get_logger, redact
from messaging.message import OutgoingMessage
from messaging.tasks import cancel_and_wait

log = get_logger(__name__)

ConnectCallback = Callable[[AbstractConnection], Awaitable[None]]
DisconnectCallback = Callable[[], Awaitable[None]]

_CONNECT_ERRORS = (
    OSError,
    TimeoutError,
    aiormq.exceptions.AMQPConnectionError,
    aiormq.exceptions.ConnectionClosed,
)


#: A connection that lived this long was healthy: the next loss starts backing off from scratch.
_STABLE_AFTER = 30.0

#: How long closing a channel or a connection may take. A broker that stopped answering (say, a
#: half-open TCP connection) never sends its close-ok: it must not hold up a shutdown.
CLOSE_TIMEOUT = 5.0


async def close_quietly(closable: AbstractChannel | AbstractConnection) -> None:
    """Close `closable`, giving up after CLOSE_TIMEOUT; errors are ignored (the peer may be
    gone already)."""
    with contextlib.suppress(Exception):  # TimeoutError included
        async with asyncio.timeout(CLOSE_TIMEOUT):
            await closable.close()


def _is_connect_error(exc: BaseException) -> bool:
    return isinstance(exc, _CONNECT_ERRORS)


class Broker:
    def __init__(
        self,
        url: str,
        *,
        app_id: str,
        topology: Topology | None,
        reconnect_min: float = 0.2,
        reconnect_max: float = 10.0,
        publish_timeout: float = 15.0,
        prefix: str = "",
    ) -> None:
        self.url = url
        self.app_id = app_id
        self._topology = topology
        self._reconnect_min = reconnect_min
        self._reconnect_max = reconnect_max
        self._publish_timeout = publish_timeout
        #: Prepended to every named exchange a message goes to (`Topology.with_prefix`).
        self.prefix = prefix
        self._on_connect: list[ConnectCallback] = []
        self._on_disconnect: list[DisconnectCallback] = []
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._channel_lock = asyncio.Lock()
        #: Connections being dropped for want of confirms, and the tasks closing them.
        self._dropping: weakref.WeakSet[AbstractConnection] = weakref.WeakSet()
        self._background: set[asyncio.Task[None]] = set()
        self._connected = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self.connections_made = 0

    # -- lifecycle -------------------------------------------------------------------------------

    def on_connect(self, callback: ConnectCallback) -> None:
        self._on_connect.append(callback)

    def on_disconnect(self, callback: DisconnectCallback) -> None:
        self._on_disconnect.append(callback)

    @property
    def is_connected(self) -> bool:
        return self._connected.is_set()

    async def wait_connected(self, seconds: float | None = None) -> bool:
        try:
            async with asyncio.timeout(seconds):  # not wait_for: see OutboxRelay._run
                await self._connected.wait()
        except TimeoutError:
            return False
        return True

    def start(self) -> None:
        """Start supervising in the background; returns at once, even if the broker is down."""
        if self._task is None:
            self._task = asyncio.create_task(self._supervise(), name=f"broker:{self.app_id}")

    async def close(self) -> None:
        self._stopping = True
        if self._connection is not None:
            await close_quietly(self._connection)
        if self._task is not None:
            await cancel_and_wait([self._task])
            self._task = None

    async def _supervise(self) -> None:
        failures = 0  # consecutive connections that failed or did not last
        while not self._stopping:
            lost = asyncio.Event()
            started = asyncio.get_running_loop().time()
            try:
                connection = await self._connect()
                connection.close_callbacks.add(lambda *_, lost=lost: lost.set())
                await self._setup(connection)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("broker set-up failed", error=repr(exc))
                lost.set()
            else:
                self.connections_made += 1
                self._connected.set()
                log.info(
                    "broker connected", url=redact(self.url), connections=self.connections_made
                )
            await lost.wait()
            await self._teardown()
            if self._stopping:
                break
            lasted = asyncio.get_running_loop().time() - started
            failures = 0 if lasted > _STABLE_AFTER else failures + 1
            delay = min(self._reconnect_max, self._reconnect_min * 2**failures)
            log.warning("broker connection lost; reconnecting", delay=round(delay, 2))
            await asyncio.sleep(delay)

    async def _connect(self) -> AbstractConnection:
        async for attempt in AsyncRetrying(
            retry=retry_if_exception(_is_connect_error),
            wait=wait_exponential(multiplier=self._reconnect_min, max=self._reconnect_max)
            + wait_random(0, self._reconnect_min),
            before_sleep=lambda state: log.warning(
                "broker unreachable",
                url=redact(self.url),
                attempt=state.attempt_number,
                error=repr(state.outcome.exception()) if state.outcome else None,
            ),
        ):
            with attempt:
                connection = await aio_pika.connect(
                    self.url, timeout=10, client_properties={"connection_name": self.app_id}
                )
                self._connection = connection
                return connection
        raise AssertionError("unreachable")  # pragma: no cover - AsyncRetrying never stops

    async def _setup(self, connection: AbstractConnection) -> None:
        if self._topology is not None:
            channel = await connection.channel()
            await declare.declare(channel, self._topology)
            await channel.close()
        for callback in self._on_connect:
            await callback(connection)

    async def _teardown(self) -> None:
        self._connected.clear()
        self._channel = None
        connection, self._connection = self._connection, None
        for callback in self._on_disconnect:
            try:
                await callback()
            except Exception as exc:
                log.warning("disconnect callback failed", error=repr(exc))
        if connection is not None and not connection.is_closed:
            await close_quietly(connection)

    async def reconnect(self) -> None:
        """Drop the connection so that the supervisor builds everything again."""
        if self._connection is not None:
            await close_quietly(self._connection)

    # -- publishing ------------------------------------------------------------------------------

    async def _publish_channel(self) -> AbstractChannel:
        async with self._channel_lock:
            if self._channel is None or self._channel.is_closed:
                connection = self._connection
                if connection is None or connection.is_closed or not self.is_connected:
                    raise BrokerUnavailable("not connected to RabbitMQ")
                self._channel = await connection.channel(
                    publisher_confirms=True, on_return_raises=True
                )
            return self._channel

    async def publish(self, message: OutgoingMessage) -> None:
        """Publish with confirms and `mandatory`; return only once the broker confirmed it.

        Raises `BrokerUnavailable` when there is no connection (try again later) and
        `PublishRejected` when the broker nacked it or could not route it.

        Goes to aiormq's channel with `wait=False`: aio-pika's `Exchange.publish` holds the
        channel's lock until its frames have been written out by the connection's writer task,
        so concurrent publishes (a relay's batch) leave one per turn of the event loop — on a
        busy service loop, a batch of 500 took seconds. Without the wait, the frames of a batch
        are queued in call order at once; the confirm is still awaited for each message.
        """
        connection = self._connection
        try:
            channel = await self._publish_channel()
            # The concrete channel: `wait` is not in aiormq's abstract signature.
            underlay = cast(aiormq.Channel, await channel.get_underlay_channel())
            amqp = message.to_amqp()
            await underlay.basic_publish(
                amqp.body,
                exchange=self.prefix + message.exchange if message.exchange else "",
                routing_key=message.routing_key,
                properties=amqp.properties,
                mandatory=True,
                timeout=self._publish_timeout,
                wait=False,
            )
        except aiormq.exceptions.PublishError as exc:
            raise PublishRejected(
                f"unroutable: no queue bound for {message.routing_key!r} on "
                f"{message.exchange or '(default exchange)'!r}"
            ) from exc
        except aiormq.exceptions.DeliveryError as exc:
            raise PublishRejected(f"nacked by the broker: {exc!r}") from exc
        except aiormq.exceptions.ChannelClosed as exc:
            # A channel-level error (e.g. 404 for a missing exchange) closes only the channel.
            self._channel = None
            if self._connection is None or self._connection.is_closed:
                raise BrokerUnavailable(repr(exc)) from exc
            raise PublishRejected(f"channel closed by the broker: {exc!r}") from exc
        except (BrokerUnavailable, PublishRejected):
            raise
        except TimeoutError as exc:
            self._drop_stuck(connection)
            raise BrokerUnavailable(
                f"no confirm within {self._publish_timeout:g} s; reconnecting"
            ) from exc
        except (*_CONNECT_ERRORS, aiormq.exceptions.AMQPError, RuntimeError) as exc:
            raise BrokerUnavailable(repr(exc)) from exc

    def _drop_stuck(self, connection: AbstractConnection | None) -> None:
        """A publish got no confirm in time: the connection is stuck — a resource alarm blocks
        publishers, or the network stalls. Frames queued on it would still go out whenever it
        moves, on top of the copies the caller publishes again when it retries; dropping the
        connection discards them, so a retry starts afresh with nothing queued behind it. Once
        per connection, however many publishes time out on it."""
        if connection is None or connection is not self._connection:
            return
        if connection in self._dropping:
            return
        self._dropping.add(connection)
        log.warning("no publisher confirm in time; dropping the connection", url=redact(self.url))
        task = asyncio.create_task(self.reconnect())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def publish_many(self, messages: list[OutgoingMessage]) -> list[BaseException | None]:
        """Publish in order, pipelined (frames leave in call order); one outcome per message."""
        results: list[Any] = await asyncio.gather(
            *(self.publish(m) for m in messages), return_exceptions=True
        )
        return [r if isinstance(r, BaseException) else None for r in results]
