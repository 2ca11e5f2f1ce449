"""Tests for clients.sdk against the REAL service app under uvicorn (committed demo bundle).

Expected answers come from plain httpx requests to the same server (the REST JSON), independent
of the SDK's request building and parsing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
import uuid

import httpx
import numpy as np
import pytest
import uvicorn

from clients.sdk import (
    AsyncClient,
    CalibrationInfo,
    CalibrationResult,
    Client,
    EmotionState,
    M2SError,
    RecordingInfo,
    Recordings,
    StreamInfo,
)
from clients.simulator import Simulator
from models.repository import DEMO_BUNDLE
from service.api.deps import NOT_AUTHENTICATED
from service.api.routes.ws import REASON_UNAUTHORIZED, unknown_stream_reason
from service.app import create_app
from service.config import AttachRequest
from synthetic import SyntheticConfig
from tests.clients.conftest import EegOutlet, wait_until
from tests.service.conftest import make_settings, run_server

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def meta(server_url):
    """The demo bundle's metadata as the service sends it."""
    return httpx.get(f"{server_url}/v2/models/{DEMO_BUNDLE}").json()


@pytest.fixture(scope="module")
def features(meta):
    """A seeded (T, D) EEG feature window of the demo bundle's shape."""
    eeg = meta["modalities"]["eeg"]
    return np.random.default_rng(0).normal(1.0, 0.5, size=(eeg["seq_len"], eeg["dim"]))


@pytest.fixture(scope="module")
def token_url():
    """A second real app that requires the bearer token TOKEN."""
    with run_server(create_app(make_settings(api_token=TOKEN))) as url:
        yield url


def _rest_predict(url: str, body: dict) -> dict:
    response = httpx.post(f"{url}/predict", json=body, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def _same_prediction(state: EmotionState, expected: dict) -> None:
    assert state.label == expected["label"]
    assert state.probabilities == pytest.approx(expected["probabilities"], abs=1e-6)
    assert (
        state.model.name == expected["model"]["name"] and state.model.version == expected["model"]["version"]
    )
    assert state.modality == expected["modality"] and state.lsl_time == expected["lsl_time"]


# -- predict ------------------------------------------------------------------------------------------


def test_predict_features_equals_rest(server_url, features):
    """Client.predict on a numpy (T, D) window gives the REST answer for the same features."""
    expected = _rest_predict(server_url, {"modality": "eeg", "features": features.tolist()})
    with Client(server_url) as client:
        state = client.predict("eeg", features=features)
    assert isinstance(state, EmotionState) and state.timing.inference_ms > 0
    _same_prediction(state, expected)


def test_async_predict_features_equals_rest(server_url, features):
    """AsyncClient.predict gives the REST answer, with an explicit model reference."""
    expected = _rest_predict(
        server_url, {"modality": "eeg", "features": features.tolist(), "model": DEMO_BUNDLE}
    )

    async def go():
        async with AsyncClient(server_url) as client:
            return await client.predict("eeg", features=features, model=DEMO_BUNDLE)

    _same_prediction(asyncio.run(go()), expected)


def test_predict_signal_equals_rest(server_url, eeg_signal):
    """A raw numpy signal with timestamps is sent as the REST signal body; lsl_time is the window end."""
    data, labels = eeg_signal
    data = data[:, :2400]  # 12 s: enough for one 10 s window
    stamps = 100.0 + np.arange(data.shape[1]) / 200.0
    signal = {"sfreq": 200, "channels": labels, "data": data, "timestamps": stamps}
    rest_signal = {"sfreq": 200.0, "channels": labels, "data": data.tolist(), "timestamps": stamps.tolist()}
    expected = _rest_predict(server_url, {"modality": "eeg", "signal": rest_signal})
    with Client(server_url) as client:
        state = client.predict("eeg", signal=signal)
    _same_prediction(state, expected)
    assert 100.0 < state.lsl_time <= stamps[-1]


def test_predict_error_carries_service_detail(server_url, features):
    """A 422 answer raises M2SError with the status and the service's detail sentence verbatim."""
    body = {"modality": "eeg", "features": features[:-1].tolist()}
    response = httpx.post(f"{server_url}/predict", json=body)
    with Client(server_url) as client, pytest.raises(M2SError) as info:
        client.predict("eeg", features=features[:-1])
    assert info.value.status == response.status_code == 422
    assert info.value.detail == response.json()["detail"]
    assert "features must be" in info.value.detail


def test_async_unknown_model_is_404(server_url, features):
    """An unknown model raises M2SError 404 with the service's detail, from the async client too."""
    detail = httpx.post(
        f"{server_url}/predict", json={"modality": "eeg", "features": features.tolist(), "model": "nope"}
    ).json()["detail"]

    async def go():
        async with AsyncClient(server_url) as client:
            await client.predict("eeg", features=features, model="nope")

    with pytest.raises(M2SError, match="404") as info:
        asyncio.run(go())
    assert info.value.detail == detail


def test_predict_validates_locally():
    """Both or neither input, a 1-D array or a non-mapping signal are refused before any request."""
    client = Client("http://127.0.0.1:9")
    with pytest.raises(ValueError, match="exactly one of features"):
        client.predict("eeg")
    with pytest.raises(ValueError, match="exactly one of features"):
        client.predict("eeg", features=[[1.0]], signal={"sfreq": 1})
    with pytest.raises(ValueError, match=r"features must be a 2-D array, got shape \(3,\)"):
        client.predict("eeg", features=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="rectangular array"):
        client.predict("eeg", features=[[1.0], [1.0, 2.0]])
    with pytest.raises(TypeError, match="signal must be a mapping"):
        client.predict("eeg", signal=[1, 2])
    with pytest.raises(TypeError, match="modality must be a non-empty str"):
        client.predict("", features=[[1.0]])


def test_client_arguments_are_validated():
    """A base URL without http(s):// and a non-positive timeout are refused."""
    with pytest.raises(ValueError, match="base_url must be an http"):
        Client("127.0.0.1:8000")
    with pytest.raises(ValueError, match="timeout must be a positive"):
        AsyncClient("http://127.0.0.1:8000", timeout=0)


def test_unreachable_service_raises_without_status():
    """A refused connection raises M2SError with status None and the URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    with Client(f"http://127.0.0.1:{port}", timeout=2) as client, pytest.raises(M2SError) as info:
        client.ready()
    assert info.value.status is None and f"127.0.0.1:{port}" in info.value.detail


# -- metadata and health ------------------------------------------------------------------------------


def test_models_and_model_equal_rest(server_url, meta):
    """models(), model(name) and model('name:version') mirror the REST JSON."""
    listed = httpx.get(f"{server_url}/v2/models").json()["data"]
    with Client(server_url) as client:
        assert [m.model_dump() for m in client.models()] == listed
        assert client.model(DEMO_BUNDLE).model_dump() == meta
        assert client.model(f"{DEMO_BUNDLE}:{meta['version']}").version == meta["version"]
        with pytest.raises(ValueError, match="version must be an integer"):
            client.model(f"{DEMO_BUNDLE}:latest")
        with pytest.raises(M2SError) as info:
            client.model("no-such-model")
    assert info.value.status == 404
    assert info.value.detail == httpx.get(f"{server_url}/v2/models/no-such-model").json()["detail"]


def test_load_model_switches_followers_or_says_why(server_url):
    """load_model() (the hot-reload route): an up-to-date model answers its version and switches nobody; an unknown
    one is the service's 404; attach() reports whether the stream follows the model's latest version."""
    with Client(server_url) as client:
        info = client.attach("eeg", source_id="never-sdk-load", model=DEMO_BUNDLE)
        pinned = client.attach("eeg", source_id="never-sdk-load", model=f"{DEMO_BUNDLE}:1")
        try:
            assert info.follows_latest and not pinned.follows_latest
            done = client.load_model(DEMO_BUNDLE)
            assert done.model.name == DEMO_BUNDLE and done.model.version == 1 and done.switched == []
            with pytest.raises(M2SError) as missing:
                client.load_model("no-such-model")
        finally:
            client.detach(info.id)
            client.detach(pinned.id)

    async def go():
        async with AsyncClient(server_url) as client:
            return await client.load_model(DEMO_BUNDLE)

    assert asyncio.run(go()).model.version == 1
    assert missing.value.status == 404 and missing.value.detail.startswith("Model 'no-such-model' not found")


def test_ready(server_url):
    """ready() reports the loaded demo bundle."""
    with Client(server_url) as client:
        readiness = client.ready()
    assert readiness.ready and any(m.startswith(f"{DEMO_BUNDLE}:") for m in readiness.models)


def test_token_is_sent_and_missing_token_refused(token_url, features):
    """With the token the calls succeed; without it the service's 401 detail is raised."""
    with Client(token_url, TOKEN) as client:
        assert client.predict("eeg", features=features).label
    with Client(token_url) as client, pytest.raises(M2SError) as info:
        client.streams()
    assert info.value.status == 401 and info.value.detail == NOT_AUTHENTICATED


def test_stream_wrong_token_raises_4401(token_url):
    """A WebSocket refused for its token raises M2SError 4401 with the reason, not an endless reconnect."""

    async def go():
        async with AsyncClient(token_url, "wrong") as client:
            async for _ in client.stream():
                pass

    with pytest.raises(M2SError) as info:
        asyncio.run(asyncio.wait_for(go(), 10))
    assert info.value.status == 4401 and info.value.detail == REASON_UNAUTHORIZED


def test_stream_unknown_stream_raises_4404(server_url):
    """stream('ghost') raises M2SError 4404 with the service's reason."""

    async def go():
        async with AsyncClient(server_url) as client, client.stream("ghost") as states:
            await anext(states)

    with pytest.raises(M2SError) as info:
        asyncio.run(asyncio.wait_for(go(), 10))
    assert info.value.status == 4404 and info.value.detail == unknown_stream_reason("ghost")


def test_stream_gives_up_after_max_attempts():
    """With max_attempts, an unreachable WebSocket raises M2SError after that many tries."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    async def go():
        async with AsyncClient(f"http://127.0.0.1:{port}") as client:
            stream = client.stream(initial_backoff_s=0.01, max_backoff_s=0.02, max_attempts=3)
            await anext(stream)

    with pytest.raises(M2SError, match="after 3 attempt"):
        asyncio.run(go())


# -- live streams ---------------------------------------------------------------------------------------


def _wait_connected(client: Client, stream_id: str) -> None:
    wait_until(
        lambda: any(s.id == stream_id and s.connected for s in client.streams()), 15, "the stream to connect"
    )


async def _collect(stream, states: list, n: int, until=lambda state: True) -> None:
    """Append states until ``n`` are held and the last satisfies ``until``."""
    async for state in stream:
        states.append(state)
        if len(states) >= n and until(state):
            return


@pytest.mark.slow
def test_attach_stream_detach(server_url, eeg_outlet):
    """attach() a real LSL outlet, receive its states from AsyncClient.stream(id), then detach() it."""
    outlet: EegOutlet = eeg_outlet()

    async def go():
        async with AsyncClient(server_url) as client:
            info = await client.attach("eeg", source_id=outlet.source_id, type="EEG")
            assert isinstance(info, StreamInfo) and info.selector["source_id"] == outlet.source_id
            await asyncio.to_thread(_wait_connected, Client(server_url), info.id)
            states: list[EmotionState] = []
            async with client.stream(info.id) as stream:
                collector = asyncio.create_task(_collect(stream, states, 2))
                await asyncio.sleep(0.3)  # subscribed before the data arrive
                await asyncio.to_thread(outlet.push, 14.0)
                await asyncio.wait_for(collector, 15)
            listed = {s.id: s for s in await client.streams()}
            await client.detach(info.id)
            with pytest.raises(M2SError) as missing:
                await client.detach(info.id)
            return info, states, listed, await client.streams(), missing.value

    info, states, listed, after, missing = asyncio.run(go())
    assert [s.stream_id for s in states] == [info.id, info.id]
    assert all(
        s.modality == "eeg" and sum(s.probabilities.values()) == pytest.approx(1, abs=1e-5) for s in states
    )
    assert listed[info.id].n_states >= 2 and listed[info.id].channels is not None
    assert info.id not in {s.id for s in after}
    assert missing.status == 404 and f"Stream '{info.id}' not found" in missing.detail


@contextlib.contextmanager
def _server_on(port: int):
    """The real app under uvicorn on a fixed port (to restart it where the client reconnects)."""
    app = create_app(make_settings(stale_after_s=5.0, resolve_timeout_s=1.0))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started or not thread.is_alive(), 60, "uvicorn to start")
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.mark.slow
def test_stream_reconnects_after_server_restart(eeg_signal):
    """Stopping the server and starting it again on the same port: the iterator resumes with new states."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    outlets = [EegOutlet(*eeg_signal), EegOutlet(*eeg_signal)]
    ids: list[str] = []

    def attach_and_push(url, outlet):
        with Client(url) as client:
            info = client.attach("eeg", source_id=outlet.source_id)
            _wait_connected(client, info.id)
        ids.append(info.id)
        outlet.push(12.0)

    async def go():
        states: list[EmotionState] = []
        async with AsyncClient(f"http://127.0.0.1:{port}") as client:
            stream = client.stream(initial_backoff_s=0.05, max_backoff_s=0.4)
            with _server_on(port) as url:
                collector = asyncio.create_task(_collect(stream, states, 1))
                await asyncio.sleep(0.3)
                await asyncio.to_thread(attach_and_push, url, outlets[0])
                await asyncio.wait_for(collector, 15)
            # States of the first server may still be buffered: wait for one of the second server's stream.
            collector = asyncio.create_task(
                _collect(stream, states, 2, lambda s: len(ids) == 2 and s.stream_id == ids[1])
            )
            await asyncio.sleep(0.5)  # the client meets a refused port and backs off
            assert stream.n_reconnects == 0
            with _server_on(port) as url:
                while stream.n_reconnects < 1 and not collector.done():
                    await asyncio.sleep(0.05)
                if collector.done():
                    collector.result()  # re-raise what stopped the iterator
                await asyncio.to_thread(attach_and_push, url, outlets[1])
                await asyncio.wait_for(collector, 15)
            await stream.aclose()
        return states, stream

    start = time.perf_counter()
    states, stream = asyncio.run(asyncio.wait_for(go(), 60))
    assert stream.n_reconnects == 1, f"took {time.perf_counter() - start:.1f} s"
    assert ids[0] != ids[1] and states[0].stream_id == ids[0] and states[-1].stream_id == ids[1]


# -- protocol handling against a minimal WebSocket server (cases the real app cannot be made to produce) --


def _state_message(label: str) -> str:
    state = {
        "label": label,
        "probabilities": {"negative": 0.1, "neutral": 0.2, "positive": 0.7},
        "modality": "eeg",
        "model": {"name": "m", "version": 1},
        "stream_id": "eeg-x",
        "wall_time": 1.0,
    }
    return json.dumps({"type": "state", "state": state})


def test_stream_counts_dropped_messages():
    """'dropped' notices are summed into StateStream.dropped and never yielded."""
    from websockets.asyncio.server import serve

    async def handler(ws):
        await ws.send(json.dumps({"type": "dropped", "count": 3}))
        await ws.send(json.dumps({"type": "dropped", "count": 2}))
        await ws.send(_state_message("positive"))
        await ws.wait_closed()

    async def go():
        async with serve(handler, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            async with AsyncClient(f"http://127.0.0.1:{port}") as client, client.stream() as stream:
                state = await anext(stream)
                return state, stream.dropped

    state, dropped = asyncio.run(asyncio.wait_for(go(), 10))
    assert state.label == "positive" and state.probabilities["positive"] == 0.7 and dropped == 5


def test_stream_backs_off_when_closed_before_any_message():
    """A server that accepts and closes at once (1013) is retried with growing delays, not in a tight loop."""
    from websockets.asyncio.server import serve

    connections = []

    async def handler(ws):
        connections.append(time.perf_counter())
        if len(connections) < 5:
            await ws.close(1013, "starting")
        else:
            await ws.send(_state_message("neutral"))
            await ws.wait_closed()

    async def go():
        async with serve(handler, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            async with AsyncClient(f"http://127.0.0.1:{port}") as client:
                stream = client.stream(initial_backoff_s=0.05, max_backoff_s=0.2)
                state = await anext(stream)
                await stream.aclose()
                return state, stream.n_reconnects

    state, n_reconnects = asyncio.run(asyncio.wait_for(go(), 10))
    gaps = np.diff(connections)
    assert state.label == "neutral" and n_reconnects == 4 and len(connections) == 5
    # waits of 0.05, 0.1, 0.2, 0.2 s times a jitter factor in [0.5, 1)
    assert np.all(gaps >= np.array([0.05, 0.1, 0.2, 0.2]) * 0.5 - 0.005)
    assert np.all(gaps < np.array([0.05, 0.1, 0.2, 0.2]) + 0.1)


# -- calibration ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def calibration_server(tmp_path_factory):
    """A real app with a writable calibrated repository and one attached EEG stream that never resolves.

    Yields ``(url, stream_id)``: enough to create, label, refuse and cancel calibrations without data.
    """
    settings = make_settings(
        calibrated_repository=tmp_path_factory.mktemp("calibrated"), resolve_timeout_s=0.2
    )
    with run_server(create_app(settings)) as url, Client(url) as client:
        stream = client.attach("eeg", source_id=f"m2s-sdk-never-{uuid.uuid4().hex[:12]}")
        yield url, stream.id


def test_calibration_errors_carry_service_detail(calibration_server):
    """Unknown id (404), invalid participant id (422) and an unknown class (422) raise the service's detail."""
    url, sid = calibration_server
    rest_body = {"streams": [sid], "labels": {"rest": True}}
    with Client(url) as client:
        with pytest.raises(M2SError) as unknown:
            client.calibration("cal-nope")
        unknown_rest = httpx.get(f"{url}/calibrations/cal-nope")
        with pytest.raises(M2SError) as participant:
            client.create_calibration("p 013!", [sid], rest=True)
        info = client.create_calibration("p-013", [sid], rest=True)
        try:
            with pytest.raises(M2SError) as label:
                client.label(info.id, "joy")
            label_rest = httpx.post(f"{url}/calibrations/{info.id}/label", json={"label": "joy"})
        finally:
            client.cancel_calibration(info.id)
    assert unknown.value.status == 404
    assert unknown.value.detail == unknown_rest.json()["detail"] and "'cal-nope'" in unknown.value.detail
    assert participant.value.status == 422
    rest = httpx.post(f"{url}/calibrations", json={"participant": "p 013!", **rest_body})
    assert participant.value.detail == rest.json()["detail"] and "participant" in participant.value.detail
    assert label.value.status == label_rest.status_code == 422
    assert label.value.detail == label_rest.json()["detail"]
    assert "'joy' is not a class" in label.value.detail


def test_calibration_rest_lifecycle(calibration_server):
    """create -> label -> end -> list -> fit refused (too few trials, keeps collecting) -> cancel."""
    url, sid = calibration_server
    with Client(url) as client:
        info = client.create_calibration("p-rest", [sid], rest=True)
        try:
            started = client.label(info.id, "positive")
            ended = client.label(info.id, None)
            listed = client.calibrations()
            with pytest.raises(M2SError) as fit:
                client.fit_calibration(info.id, activate=True)
            still = client.calibration(info.id)
        finally:
            cancelled = client.cancel_calibration(info.id)
    assert isinstance(info, CalibrationInfo) and info.state == "collecting" and info.labels == "rest"
    assert info.participant == "p-rest" and info.streams == [sid] and info.modalities == {sid: "eeg"}
    assert info.model.name == DEMO_BUNDLE and set(info.trials) == {"negative", "neutral", "positive"}
    assert started.open_label == "positive" and ended.open_label is None
    assert ended.events[-1].label == "positive" and ended.events[-1].end is not None
    assert not ended.events[-1].used  # no window arrived: the trial is not counted
    assert info.id in {c.id for c in listed}
    assert fit.value.status == 422 and "label at least 2 trials of each class" in fit.value.detail
    assert still.state == "collecting" and cancelled.state == "cancelled"


def test_calibrate_times_out_cancels_and_names_the_counts(calibration_server):
    """Without trials, calibrate() gives up after timeout_s, cancels the calibration and reports the counts."""
    url, sid = calibration_server
    seen: list[CalibrationInfo] = []
    start = time.perf_counter()
    with Client(url) as client, pytest.raises(TimeoutError) as info:
        client.calibrate("p-slow", [sid], rest=True, timeout_s=1.0, poll_s=0.2, on_progress=seen.append)
    elapsed = time.perf_counter() - start
    assert 1.0 <= elapsed < 5.0 and len(seen) >= 3
    message = str(info.value)
    assert f"calibration {seen[0].id} (participant p-slow) did not reach 2 trials of each class" in message
    assert "was cancelled" in message and "trials so far: negative 0, neutral 0, positive 0" in message
    assert httpx.get(f"{url}/calibrations/{seen[0].id}").json()["state"] == "cancelled"


def test_async_calibration_calls(calibration_server):
    """AsyncClient: create, label, get, a timed-out calibrate() (async on_progress) and cancel."""
    url, sid = calibration_server
    seen: list[str] = []

    async def on_progress(info: CalibrationInfo) -> None:
        seen.append(info.id)

    async def go():
        async with AsyncClient(url) as client:
            info = await client.create_calibration("p-async", [sid], rest=True)
            labelled = await client.label(info.id, "neutral")
            got = await client.calibration(info.id)
            listed = await client.calibrations()
            cancelled = await client.cancel_calibration(info.id)
            with pytest.raises(TimeoutError, match="trials so far: negative 0"):
                await client.calibrate(
                    "p-async", [sid], rest=True, timeout_s=0.5, poll_s=0.1, on_progress=on_progress
                )
            with pytest.raises(M2SError) as unknown:
                await client.fit_calibration("cal-nope")
            return info, labelled, got, listed, cancelled, unknown.value

    info, labelled, got, listed, cancelled, unknown = asyncio.run(asyncio.wait_for(go(), 20))
    assert labelled.open_label == got.open_label == "neutral" and info.id in {c.id for c in listed}
    assert cancelled.state == "cancelled" and len(seen) >= 2 and seen[0] != info.id
    assert httpx.get(f"{url}/calibrations/{seen[0]}").json()["state"] == "cancelled"
    assert unknown.status == 404 and "cal-nope" in unknown.detail


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"streams": "eeg-1"}, TypeError, r"wrap one id in a list: \['eeg-1'\]"),
        ({"streams": []}, ValueError, "streams is empty"),
        ({"rest": False}, ValueError, "give exactly one label source"),
        ({"rest": True, "markers": {"type": "Markers"}}, ValueError, "give exactly one label source"),
        ({"rest": False, "markers": {"kind": "Markers"}}, ValueError, "by type, name, source_id"),
        ({"rest": False, "markers": {"type": ""}}, ValueError, r"markers\['type'\] must be a non-empty str"),
        ({"participant": 13}, TypeError, "participant must be a str"),
        ({"model": ""}, ValueError, "model must be a non-empty str"),
        ({"trials_per_class": 1}, ValueError, "trials_per_class must be >= 2"),
        ({"trials_per_class": 2.0}, TypeError, "trials_per_class must be an int"),
        ({"timeout_s": 0}, ValueError, "timeout_s must be a positive number"),
        ({"poll_s": float("nan")}, ValueError, "poll_s must be a positive number"),
        ({"on_progress": "print"}, TypeError, "on_progress must be callable"),
        ({"train_modality": ""}, ValueError, "train_modality must be a non-empty str"),
        ({"activate": "yes"}, TypeError, "activate must be True or False"),
    ],
)
def test_calibrate_arguments_are_validated_locally(kwargs, error, match):
    """Bad arguments of calibrate() are refused before any request (nothing listens on the URL)."""
    arguments = {"participant": "p-1", "streams": ["eeg-1"], "rest": True, **kwargs}
    with Client("http://127.0.0.1:9") as client, pytest.raises(error, match=match):
        client.calibrate(arguments.pop("participant"), arguments.pop("streams"), **arguments)


def test_label_and_fit_arguments_are_validated_locally():
    """An empty label, a non-bool activate and an empty calibration id are refused before any request."""
    with Client("http://127.0.0.1:9") as client:
        with pytest.raises(ValueError, match="label must be a non-empty str"):
            client.label("cal-1", "")
        with pytest.raises(TypeError, match="activate must be True or False"):
            client.fit_calibration("cal-1", activate=1)
        with pytest.raises(ValueError, match="expected a non-empty id"):
            client.calibration("")


@pytest.mark.slow
def test_calibrate_with_markers_end_to_end(tmp_path):
    """The simulator's marker stream labels the trials; calibrate() fits m2s-synthetic-demo-<p>:1 and activates it.

    3 calibration trials per class are played and 2 asked: the first onset may pass before the marker inlet
    connects. The simulator starts at the first progress call, right after the calibration is created.
    """
    prefix = f"m2s-sdk-cal-{uuid.uuid4().hex[:12]}"
    sim = Simulator(
        SyntheticConfig(trial_duration_s=30.0),
        subject=0,
        modalities=("eeg", "eye"),
        speed=8.0,
        calibration_trials=3,
        source_id_prefix=prefix,
    )
    attach = [AttachRequest(modality=m, source_id=sim.source_ids[m]) for m in ("eeg", "eye")]
    settings = make_settings(attach=attach, stale_after_s=30.0, calibrated_repository=tmp_path)
    seen: list[CalibrationInfo] = []

    def on_progress(info: CalibrationInfo) -> None:
        seen.append(info)
        if not seen[1:]:
            sim.start()

    start = time.perf_counter()
    with run_server(create_app(settings)) as url, Client(url) as client:
        ids = [s.id for s in client.streams()]
        try:
            result = client.calibrate(
                "p-sdk",
                ids,
                markers={"source_id": sim.source_ids["markers"]},
                trials_per_class=2,
                timeout_s=150,
                poll_s=0.5,
                on_progress=on_progress,
            )
        finally:
            sim.stop()
        streams = client.streams()
        final = client.calibration(seen[0].id)
    name = f"{DEMO_BUNDLE}-p-sdk"
    assert isinstance(result, CalibrationResult), f"took {time.perf_counter() - start:.0f} s"
    assert (result.model.name, result.model.version) == (name, 1)
    assert sorted(result.activated) == sorted(ids)
    assert {(s.id, s.model.name, s.model.version) for s in streams} == {(i, name, 1) for i in ids}
    assert set(result.validation.per_modality) == {"eeg", "eye"}
    assert all(m.n_windows > 0 for m in result.validation.per_modality.values())
    assert min(result.validation.n_trials.values()) >= 2
    assert 0.0 <= result.validation.balanced_accuracy <= 1.0
    assert (
        seen[0].state == "collecting"
        and min(seen[-1].trials.values()) >= 2
        and min(seen[-2].trials.values()) < 2
    )
    assert final.state == "done" and final.result.model == result.model
    assert (tmp_path / name / "1").is_dir()


# -- session recordings -------------------------------------------------------------------------------


def test_recording_errors_carry_service_detail(calibration_server):
    """An unknown stream (404), a bad file name (422) and an unknown recording (404): the service's detail."""
    url, sid = calibration_server
    with Client(url) as client:
        with pytest.raises(M2SError) as unknown_stream:
            client.start_recording(["eeg-nope"])
        with pytest.raises(M2SError) as bad_name:
            client.start_recording([sid], name="no/slash")
        with pytest.raises(M2SError) as unknown:
            client.stop_recording("rec-nope")
    rest = httpx.post(f"{url}/recordings", json={"streams": ["eeg-nope"]})
    assert unknown_stream.value.status == rest.status_code == 404
    assert unknown_stream.value.detail == rest.json()["detail"]
    assert unknown_stream.value.detail.startswith("No attached stream 'eeg-nope'; attached streams: ")
    rest = httpx.post(f"{url}/recordings", json={"streams": [sid], "name": "no/slash"})
    assert bad_name.value.status == rest.status_code == 422
    assert bad_name.value.detail == rest.json()["detail"]
    assert unknown.value.status == 404
    assert unknown.value.detail == httpx.delete(f"{url}/recordings/rec-nope").json()["detail"]


def test_recording_round_trip(calibration_server):
    """start -> get -> list -> stop on a stream whose outlet never existed: a valid, empty recording."""
    url, sid = calibration_server
    name = f"sdk-{uuid.uuid4().hex[:8]}"
    with Client(url) as client:
        started = client.start_recording([sid], markers={"source_id": "m2s-sdk-no-markers"}, name=name)
        try:
            got = client.recording(started.id)
            listed = client.recordings()
        finally:
            stopped = client.stop_recording(started.id)
        again = client.stop_recording(started.id)
        after = client.recordings()
    assert isinstance(started, RecordingInfo) and started.state == "recording"
    assert started.id.startswith("rec-") and started.file == f"{name}.xdf" and started.name == name
    assert [(s.stream_id, s.modality, s.n_samples) for s in started.streams] == [(sid, "eeg", 0)]
    assert started.markers.selector == {"source_id": "m2s-sdk-no-markers"} and not started.markers.connected
    assert got.id == started.id and got.calibration_id is None
    assert isinstance(listed, Recordings) and started.id in {r.id for r in listed.recordings}
    assert stopped.state == again.state == "closed" and stopped.ended is not None and stopped.bytes > 0
    assert stopped.streams[0].n_samples == 0 and again.ended == stopped.ended
    assert {r.id: r.state for r in after.recordings}[started.id] == "closed"
    assert httpx.get(f"{url}/recordings/{started.id}").json() == stopped.model_dump(mode="json")


def test_async_recording_calls_and_a_recorded_calibration(calibration_server):
    """AsyncClient: start, get, list, stop; create_calibration(record=True) records until it is cancelled."""
    url, sid = calibration_server

    async def go():
        async with AsyncClient(url) as client:
            started = await client.start_recording([sid])
            got = await client.recording(started.id)
            listed = await client.recordings()
            stopped = await client.stop_recording(started.id)
            info = await client.create_calibration("p-rec", [sid], rest=True, record=True)
            recording = await client.recording(info.recording_id)
            await client.cancel_calibration(info.id)
            ended = await client.recording(info.recording_id)
            return started, got, listed, stopped, info, recording, ended

    started, got, listed, stopped, info, recording, ended = asyncio.run(asyncio.wait_for(go(), 20))
    assert got.id == started.id and started.id in {r.id for r in listed.recordings}
    assert started.file.startswith("session-") and stopped.state == "closed"
    assert info.recording_id and recording.calibration_id == info.id and recording.state == "recording"
    assert ended.state == "closed"


def test_recording_arguments_are_validated_locally():
    """A bare string, an empty list, a bad marker selector, an empty name or a non-bool record: no request."""
    with Client("http://127.0.0.1:9") as client:
        with pytest.raises(TypeError, match=r"wrap one id in a list: \['eeg-1'\]"):
            client.start_recording("eeg-1")
        with pytest.raises(ValueError, match="give the ids of the attached streams to record"):
            client.start_recording([])
        with pytest.raises(ValueError, match="by type, name, source_id"):
            client.start_recording(["eeg-1"], markers={"kind": "Markers"})
        with pytest.raises(ValueError, match="name must be a non-empty str"):
            client.start_recording(["eeg-1"], name=" ")
        with pytest.raises(TypeError, match="record must be True or False"):
            client.create_calibration("p-1", ["eeg-1"], rest=True, record="yes")
        with pytest.raises(ValueError, match="expected a non-empty id"):
            client.recording("")
