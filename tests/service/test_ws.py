"""Tests for the WebSocket route /ws through the real app under uvicorn, with a real `websockets` client."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid

import httpx
import numpy as np
import pylsl
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from service.api.routes.ws import REASON_SHUTDOWN, REASON_UNAUTHORIZED, unknown_stream_reason
from service.app import create_app
from service.schemas import EmotionState, ModelRef
from synthetic import SyntheticConfig, generate_trial

from .conftest import make_settings, run_server

TOKEN = "s3cret-token"
SFREQ = 200.0
CHUNK = 20


def _ws_url(base: str, query: str = "") -> str:
    return base.replace("http://", "ws://") + "/ws" + query


async def _close_of(url: str, **kwargs) -> tuple[int, str]:
    """Connect and return the (code, reason) the server closes with."""
    async with connect(url, **kwargs) as ws:
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), 5)
    return info.value.rcvd.code, info.value.rcvd.reason


def test_token_and_unknown_stream(serve):
    """Without the token: 4401; with it (header or ?token=): accepted; an unknown ?stream=: 4404."""
    base = serve(create_app(make_settings(api_token=TOKEN)))

    async def scenario():
        assert await _close_of(_ws_url(base)) == (4401, REASON_UNAUTHORIZED)
        assert await _close_of(_ws_url(base, "?token=wrong")) == (4401, REASON_UNAUTHORIZED)
        assert await _close_of(_ws_url(base, f"?token={TOKEN}&stream=eeg-nope")) == (
            4404,
            unknown_stream_reason("eeg-nope"),
        )
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with connect(_ws_url(base), additional_headers=headers) as ws:
            with pytest.raises(asyncio.TimeoutError):  # open, nothing to say: no stream attached
                await asyncio.wait_for(ws.recv(), 0.3)
            await ws.send("hello")  # client messages are ignored
            await ws.ping()

    asyncio.run(scenario())


@pytest.mark.slow
def test_states_flow_to_filtered_client():
    """A stream attached over REST pushes states to ?stream=<id> clients; shutdown closes the socket."""
    trial = generate_trial(SyntheticConfig(trial_duration_s=40), 0, 0, 0, modalities=("eeg",))
    signal, labels = trial.signals["eeg"], trial.channel_names["eeg"]
    source_id = uuid.uuid4().hex
    info = pylsl.StreamInfo(f"m2s-ws-{source_id[:8]}", "EEG", len(labels), SFREQ, "double64", source_id)
    channels = info.desc().append_child("channels")
    for label in labels:
        ch = channels.append_child("channel")
        ch.append_child_value("label", label)
        ch.append_child_value("unit", "microvolts")
    outlet = pylsl.StreamOutlet(info, chunk_size=CHUNK)
    n_hops = 12
    n = int((10 + 2 * (n_hops - 1)) * SFREQ)  # 10 s for the first window, then one state per 2 s hop

    with run_server(create_app(make_settings(stale_after_s=30.0))) as base:
        reply = httpx.post(base + "/streams", json={"modality": "eeg", "source_id": source_id}, timeout=30)
        assert reply.status_code in (200, 201), reply.text
        stream_id = reply.json()["id"]

        async def scenario():
            async with connect(_ws_url(base, f"?stream={stream_id}")) as ws, connect(_ws_url(base)) as other:
                deadline = time.monotonic() + 10
                while not httpx.get(base + f"/streams/{stream_id}").json()["connected"]:
                    assert time.monotonic() < deadline, "stream did not connect"
                    await asyncio.sleep(0.05)
                t0 = pylsl.local_clock() - n / SFREQ
                for k in range(0, n, CHUNK):  # as fast as possible: states are computed as chunks arrive
                    idx = np.arange(k, k + CHUNK)
                    outlet.push_chunk(np.ascontiguousarray(signal[:, idx].T), list(t0 + idx / SFREQ))
                    if k % 400 == 0:
                        await asyncio.sleep(0.01)
                got = [json.loads(await asyncio.wait_for(ws.recv(), 10)) for _ in range(n_hops)]
                also = json.loads(await asyncio.wait_for(other.recv(), 10))
                return got, also, ws

        got, also, ws = asyncio.run(scenario())
    assert all(m["type"] == "state" and m["state"]["stream_id"] == stream_id for m in got)
    times = [m["state"]["lsl_time"] for m in got]
    assert np.allclose(np.diff(times), 2.0, atol=1e-6)
    assert all(abs(sum(m["state"]["probabilities"].values()) - 1) < 1e-5 for m in got)
    assert also["type"] == "state" and also["state"]["stream_id"] == stream_id
    latency = np.array([m["state"]["latency_ms"] for m in got])
    assert latency.max() < 500


def test_server_shutdown_closes_socket():
    """Stopping the server closes a connected client's socket (service shutting down or uvicorn's 1012)."""
    closed = {}

    with run_server(create_app(make_settings())) as base:

        async def connect_and_wait(ready):
            async with connect(_ws_url(base)) as ws:
                ready.set()
                try:
                    await asyncio.wait_for(ws.recv(), 20)
                except ConnectionClosed as err:
                    closed["code"], closed["reason"] = err.rcvd.code, err.rcvd.reason

        ready = threading.Event()
        thread = threading.Thread(target=lambda: asyncio.run(connect_and_wait(ready)))
        thread.start()
        assert ready.wait(5)
        time.sleep(0.2)
    thread.join(10)
    assert (closed.get("code"), closed.get("reason")) in ((1001, REASON_SHUTDOWN), (1012, ""))


def _state(k: int) -> EmotionState:
    return EmotionState(
        label="neutral",
        probabilities={"negative": 0.2, "neutral": 0.6, "positive": 0.2},
        modality="eeg",
        model=ModelRef(name="m2s-synthetic-demo", version=1),
        stream_id="eeg-slow",
        lsl_time=float(k),
        wall_time=time.time(),
    )


def test_a_client_that_stops_reading_loses_the_oldest_states_and_is_told():
    """Over a real socket: a client that reads nothing while 3000 states (~0.8 MB) are published gets, once it
    reads again, 'dropped' notices and the newest states, every state delivered or counted; publishing never
    waited for it. (The soak's slow client never reached this: the service's keepalive closed it first.)"""
    n = 3000
    app = create_app(make_settings(ws_queue_size=64))
    with run_server(app) as base:

        async def scenario():
            # max_queue=1: the client library stops reading the socket after one unread frame (no hidden buffer).
            async with connect(_ws_url(base), max_queue=1) as ws:
                while app.state.hub.n_subscribers == 0:
                    await asyncio.sleep(0.01)
                t0 = time.perf_counter()
                for k in range(n):
                    app.state.hub.publish(_state(k))  # from here, as a stream's worker thread would
                publish_s = time.perf_counter() - t0
                await asyncio.sleep(1.0)  # the service sends what the socket takes, then queues and drops
                got = []
                while True:
                    try:
                        got.append(json.loads(await asyncio.wait_for(ws.recv(), 2)))
                    except TimeoutError:
                        return got, publish_s

        got, publish_s = asyncio.run(scenario())
    dropped = sum(m["count"] for m in got if m["type"] == "dropped")
    times = [m["state"]["lsl_time"] for m in got if m["type"] == "state"]
    assert times == sorted(times) and times[-1] == n - 1  # in order, and the newest came
    assert publish_s < 2.0  # publishing never waited for the client
    assert dropped > 0 and dropped + len(times) == n  # every state delivered or counted as dropped
