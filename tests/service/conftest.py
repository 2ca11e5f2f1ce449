"""Fixtures running the REAL service app under uvicorn on a free loopback port (reused by the service tests)."""

import asyncio
import contextlib
import json
import tempfile
import threading
import time

import httpx
import numpy as np
import pytest
import uvicorn
from websockets.asyncio.client import connect

from models.repository import DEFAULT_REPOSITORY, DEMO_BUNDLE
from service.app import create_app
from service.config import Settings

CPU = "CPUExecutionProvider"


def make_settings(**overrides) -> Settings:
    """Settings for tests: demo bundle, CPU, no token, no streams (explicit, so M2S_* env vars cannot leak in);
    calibrated models and recordings go to fresh temporary folders, never into the source tree."""
    values = {
        "calibrated_repository": tempfile.mkdtemp(prefix="m2s-test-calibrated-"),
        "recordings_dir": tempfile.mkdtemp(prefix="m2s-test-recordings-"),
        "model_repository": DEFAULT_REPOSITORY,
        "default_model": DEMO_BUNDLE,
        "host": "127.0.0.1",
        "port": 0,
        "attach": [],
        "api_token": None,
        "providers": [CPU],
        "max_body_bytes": 8_000_000,
    }
    values.update(overrides)
    return Settings(**values)


@contextlib.contextmanager
def run_server(app, *, startup_timeout_s: float = 60.0, **config):
    """Serve ``app`` with uvicorn in a background thread on 127.0.0.1:<free port>; yield its base URL.

    The lifespan runs (model load and warm-up) before the URL is yielded; at exit the server shuts down
    gracefully (lifespan shutdown included) and the thread is joined. ``config``: more ``uvicorn.Config``
    options (e.g. ``root_path``).
    """
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on", **config)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout_s
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("uvicorn exited during startup (see the log above)")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"uvicorn did not start within {startup_timeout_s} s")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture
def serve():
    """Factory: ``serve(app)`` starts ``app`` under uvicorn and returns its base URL; stopped at teardown."""
    with contextlib.ExitStack() as stack:
        yield lambda app: stack.enter_context(run_server(app))


@pytest.fixture(scope="module")
def server_url():
    """Base URL of one real app (demo bundle, CPU, no token, 8 MB body limit) shared by a test module."""
    with run_server(create_app(make_settings())) as url:
        yield url


@pytest.fixture(scope="module")
def http(server_url):
    """An httpx client on :func:`server_url`."""
    with httpx.Client(base_url=server_url, timeout=30) as client:
        yield client


@pytest.fixture
def settings_factory():
    """``settings_factory(**overrides)`` -> test Settings (see :func:`make_settings`)."""
    return make_settings


@pytest.fixture(scope="module")
def serve_module():
    """Like :func:`serve`, but the servers live until the end of the test module."""
    with contextlib.ExitStack() as stack:
        yield lambda app: stack.enter_context(run_server(app))


#: The longest live window (eye: 18 s of signal): states whose context straddles a trial change are not scored.
CONTEXT_S = 18.0


def score_states(states, sim, modality, keep=lambda state: True) -> tuple[float, int]:
    """Balanced accuracy of the ``modality`` states that ``keep`` accepts against the simulator's ground truth
    (states whose whole context lies in one trial); and how many were scored."""
    truth, pred = [], []
    for s in states:
        if s["modality"] != modality or not keep(s):
            continue
        label = sim.label_at(s["lsl_time"])
        if label is None or sim.label_at(s["lsl_time"] - CONTEXT_S) != label:
            continue
        truth.append(label)
        pred.append(s["label"])
    truth, pred = np.asarray(truth), np.asarray(pred)
    recalls = [np.mean(pred[truth == c] == c) for c in np.unique(truth)]
    return float(np.mean(recalls)) if recalls else float("nan"), len(truth)


async def collect_states(url, states: list, until) -> None:
    """Append every EmotionState of the service's /ws to ``states`` until ``until()`` is true (checked twice a second)."""
    async with connect(url.replace("http://", "ws://") + "/ws") as ws:
        while not until():
            try:
                msg = json.loads(await asyncio.wait_for(ws.recv(), 0.5))
            except asyncio.TimeoutError:
                continue
            if msg.get("type") == "state":
                states.append(msg["state"])
