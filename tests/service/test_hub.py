"""Tests for service.hub: bounded per-client queues, oldest dropped and reported, publish never blocks."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from service.hub import HubClosed, StateHub
from service.schemas import EmotionState, ModelRef


def _state(i: int, stream_id: str = "eeg-1") -> EmotionState:
    return EmotionState(
        label="neutral",
        probabilities={"negative": 0.25, "neutral": 0.5, "positive": 0.25},
        modality="eeg",
        model=ModelRef(name="m", version=1),
        stream_id=stream_id,
        lsl_time=float(i),
        wall_time=0.0,
    )


def test_slow_consumer_loses_oldest_and_is_told():
    """A full queue drops its oldest states; the next get() says how many, then the newest follow in order."""

    async def scenario():
        hub = StateHub(queue_size=4)
        sub = hub.subscribe()
        for i in range(10):
            hub.publish(_state(i))
        first = await sub.get()
        rest = [await sub.get() for _ in range(4)]
        return first, rest, sub.n_dropped

    first, rest, n_dropped = asyncio.run(scenario())
    assert first == {"type": "dropped", "count": 6} and n_dropped == 6
    assert [m["state"]["lsl_time"] for m in rest] == [6.0, 7.0, 8.0, 9.0]


def test_fast_consumer_unaffected_by_stuck_one():
    """A consumer that keeps up gets every state from another thread while a stuck one overflows."""

    async def scenario():
        dropped = []
        hub = StateHub(queue_size=8, on_dropped=dropped.append)
        stuck = hub.subscribe()
        fast = hub.subscribe()
        n = 200

        def producer():
            for i in range(n):
                hub.publish(_state(i))
                time.sleep(0.0005)

        thread = threading.Thread(target=producer)
        thread.start()
        got = [await asyncio.wait_for(fast.get(), 5) for _ in range(n)]
        thread.join()
        return got, stuck.qsize(), stuck.n_dropped, sum(dropped)

    got, stuck_size, stuck_dropped, counted = asyncio.run(scenario())
    assert [m["type"] for m in got] == ["state"] * 200
    assert [m["state"]["lsl_time"] for m in got] == [float(i) for i in range(200)]
    assert stuck_size == 8 and stuck_dropped == 192 == counted


def test_publish_never_blocks():
    """10 000 publishes with a stuck consumer take well under a second (no waiting on the client)."""

    async def scenario():
        hub = StateHub(queue_size=16)
        stuck = hub.subscribe()
        states = [_state(i) for i in range(10_000)]
        start = time.perf_counter()
        await asyncio.to_thread(lambda: [hub.publish(s) for s in states])
        return time.perf_counter() - start, stuck.n_dropped

    elapsed, n_dropped = asyncio.run(scenario())
    assert n_dropped == 10_000 - 16
    assert elapsed < 1.0, f"10k publishes took {elapsed:.3f} s"


def test_stream_filter_and_close():
    """A stream subscription sees only its stream; close() wakes a waiting get() with HubClosed."""

    async def scenario():
        hub = StateHub()
        one = hub.subscribe("eeg-1")
        hub.publish(_state(0, "eeg-2"))
        hub.publish(_state(1, "eeg-1"))
        message = await one.get()
        waiter = asyncio.create_task(one.get())
        await asyncio.sleep(0.01)
        hub.close()
        with pytest.raises(HubClosed, match="shutting down"):
            await asyncio.wait_for(waiter, 2)
        with pytest.raises(RuntimeError, match="closed StateHub"):
            hub.subscribe()
        return message

    assert asyncio.run(scenario())["state"]["stream_id"] == "eeg-1"


def test_validation():
    """Bad arguments are refused with what to do."""
    with pytest.raises(ValueError, match="queue_size must be at least 1"):
        StateHub(queue_size=0)
    with pytest.raises(TypeError, match="on_dropped must be callable"):
        StateHub(on_dropped=3)
    with pytest.raises(RuntimeError, match="must be called from a coroutine"):
        StateHub().subscribe()
    with pytest.raises(TypeError, match="state"):
        StateHub().publish({"label": "x"})
