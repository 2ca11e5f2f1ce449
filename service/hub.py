"""Fan-out of EmotionStates to WebSocket clients: one bounded queue per client, publish never blocks.

Acquisition threads call :meth:`StateHub.publish`; each WebSocket handler owns a
:class:`Subscription` and awaits :meth:`Subscription.get` on the event loop.

Rules
-----
- **Publish never blocks and never waits for a client.** It appends the message to every
  matching subscription's deque under that subscription's own short lock, then wakes the
  consumer with ``loop.call_soon_threadsafe`` (at most one pending wake-up per subscription,
  so 10 000 publishes to a stuck client schedule one callback, not 10 000).
- **A full queue drops its oldest message.** The subscription counts what it dropped; the next
  :meth:`Subscription.get` returns ``{"type": "dropped", "count": n}`` before any further state,
  so a slow client knows exactly how many states it missed. Other clients are unaffected.
- Messages are ``{"type": "state", "state": {...}}`` with the EmotionState serialised once per
  publish, to JSON text, on the publishing thread: every subscriber's WebSocket sends that same text
  (:meth:`Subscription.get_text`), so the event loop encodes nothing per client.
  :meth:`StateHub.publish_text` takes a state serialised elsewhere (a worker process,
  :mod:`service.workers`) as it is. :meth:`Subscription.get` decodes the text again, for callers
  that want the dict (tests, in-process consumers).
- :meth:`StateHub.close` (graceful shutdown) makes every pending and future ``get`` raise
  :class:`HubClosed`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from service.schemas import EmotionState
from signals._checks import check_type, ensure_int

logger = logging.getLogger(__name__)


def state_message_text(state_json: str) -> str:
    """The WebSocket message for a state given as JSON text: ``{"type":"state","state":<state_json>}``."""
    return '{"type":"state","state":' + state_json + "}"


class HubClosed(RuntimeError):
    """The hub was closed (service shutting down); no more messages will come."""


class Subscription:
    """One client's bounded message queue; created by :meth:`StateHub.subscribe` on the event loop.

    Attributes
    ----------
    stream_id : str or None
        Only states of this stream are delivered; None = all streams.
    queue_size : int
        Messages kept before the oldest are dropped.
    n_dropped : int
        Messages dropped since the subscription was created (all reported or still to report).
    """

    def __init__(self, stream_id: str | None, queue_size: int, loop: asyncio.AbstractEventLoop):
        self.stream_id = stream_id
        self.queue_size = queue_size
        self.n_dropped = 0
        self._loop = loop
        self._lock = threading.Lock()
        self._messages: deque[str] = deque()  # JSON text, shared with the other subscriptions
        self._unreported = 0  # dropped since the last get()
        self._event = asyncio.Event()
        self._wakeup_pending = False
        self._closed = False

    def __repr__(self) -> str:
        return (
            f"<Subscription stream={self.stream_id!r} queued={len(self._messages)} dropped={self.n_dropped}>"
        )

    def _put(self, message: str) -> int:
        """Queue a message (any thread); return how many old messages it pushed out (0 or 1)."""
        with self._lock:
            if self._closed:
                return 0
            dropped = 0
            if len(self._messages) >= self.queue_size:
                self._messages.popleft()
                self._unreported += 1
                self.n_dropped += 1
                dropped = 1
            self._messages.append(message)
            wake, self._wakeup_pending = not self._wakeup_pending, True
        if wake:
            self._wake()
        return dropped

    def _close(self) -> None:
        with self._lock:
            self._closed = True
        self._wake()

    def _wake(self) -> None:
        try:
            self._loop.call_soon_threadsafe(self._event.set)
        except RuntimeError:  # the loop is closed: its consumer is gone, nothing to wake
            pass

    async def get(self) -> dict[str, Any]:
        """Wait for the next message.

        Returns
        -------
        message : dict
            ``{"type": "dropped", "count": n}`` when ``n`` messages were dropped since the last
            call, else ``{"type": "state", "state": {...}}``.

        Raises
        ------
        HubClosed
            The hub was closed (pending messages are discarded).
        """
        return json.loads(await self.get_text())

    async def get_text(self) -> str:
        """Wait for the next message, as the JSON text a WebSocket sends (see :meth:`get`).

        Raises
        ------
        HubClosed
            The hub was closed (pending messages are discarded).
        """
        while True:
            with self._lock:
                if self._closed:
                    raise HubClosed("the state hub was closed (the service is shutting down).")
                if self._unreported:
                    count, self._unreported = self._unreported, 0
                    return f'{{"type":"dropped","count":{count}}}'
                if self._messages:
                    return self._messages.popleft()
                self._event.clear()
                self._wakeup_pending = False
            await self._event.wait()

    def qsize(self) -> int:
        """Messages waiting (dropped notices not included)."""
        with self._lock:
            return len(self._messages)


class StateHub:
    """Publish EmotionStates from any thread to every subscribed WebSocket client.

    Parameters
    ----------
    queue_size : int
        Messages buffered per client before its oldest are dropped (>= 1).
    on_dropped : callable or None
        ``on_dropped(n)`` after a publish that pushed ``n`` old messages out of client queues,
        e.g. :meth:`service.metrics.ServiceMetrics.dropped`; called on the publishing thread
        and must not block.
    """

    def __init__(self, queue_size: int = 256, *, on_dropped: Callable[[int], None] | None = None):
        queue_size = ensure_int(queue_size, "queue_size")
        if queue_size < 1:
            raise ValueError(f"queue_size must be at least 1 message, got {queue_size}.")
        if on_dropped is not None and not callable(on_dropped):
            raise TypeError(f"on_dropped must be callable or None, got {type(on_dropped).__name__} instead.")
        self.queue_size = queue_size
        self.on_dropped = on_dropped
        self._lock = threading.Lock()
        self._subscriptions: tuple[
            Subscription, ...
        ] = ()  # replaced, never mutated: publish reads it lock-free
        self._closed = False

    def subscribe(self, stream_id: str | None = None) -> Subscription:
        """Register a client; call from the event loop that will await :meth:`Subscription.get`.

        Parameters
        ----------
        stream_id : str or None
            Deliver only this stream's states; None = every stream.

        Raises
        ------
        RuntimeError
            No running event loop, or the hub is closed.
        """
        if stream_id is not None:
            check_type(stream_id, str, "stream_id")
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError(
                "StateHub.subscribe() must be called from a coroutine on the event loop that reads the "
                "subscription (e.g. inside the WebSocket handler)."
            ) from None
        sub = Subscription(stream_id, self.queue_size, loop)
        with self._lock:
            if self._closed:
                raise RuntimeError("subscribe() called on a closed StateHub; the service is shutting down.")
            self._subscriptions = (*self._subscriptions, sub)
        logger.debug("subscribed %r (%d subscribers)", sub, len(self._subscriptions))
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Forget a subscription (idempotent)."""
        check_type(sub, Subscription, "sub")
        with self._lock:
            self._subscriptions = tuple(s for s in self._subscriptions if s is not sub)
        sub._close()

    @property
    def n_subscribers(self) -> int:
        """Subscriptions currently registered."""
        return len(self._subscriptions)

    def publish(self, state: EmotionState) -> None:
        """Queue ``state`` for every matching subscriber; thread-safe and never blocks on a client.

        Parameters
        ----------
        state : EmotionState
            Delivered to subscribers of ``state.stream_id`` and to those of all streams.
        """
        check_type(state, EmotionState, "state")
        if self._subscriptions:
            self.publish_text(state.stream_id, state.model_dump_json())

    def publish_text(self, stream_id: str, state_json: str) -> None:
        """Like :meth:`publish` for a state already serialised (``EmotionState.model_dump_json()``).

        Parameters
        ----------
        stream_id : str
            The state's ``stream_id`` (which subscribers get it).
        state_json : str
            The state's JSON object, sent to the clients as it is (not parsed or checked here).
        """
        subscriptions = self._subscriptions
        if not subscriptions:
            return
        message = state_message_text(state_json)
        dropped = 0
        for sub in subscriptions:
            if sub.stream_id is None or sub.stream_id == stream_id:
                dropped += sub._put(message)
        if dropped and self.on_dropped is not None:
            try:
                self.on_dropped(dropped)
            except Exception:
                logger.exception("on_dropped callback failed")

    def close(self) -> None:
        """Wake every subscriber with :class:`HubClosed` and refuse new subscriptions (idempotent)."""
        with self._lock:
            self._closed = True
            subscriptions, self._subscriptions = self._subscriptions, ()
        for sub in subscriptions:
            sub._close()


__all__ = ["HubClosed", "StateHub", "Subscription", "state_message_text"]
