"""service.api.routes.predict: the cost of a request (tests/service/test_app.py checks the answers)."""

import anyio.to_thread
import numpy as np
import pytest
from fastapi.testclient import TestClient

from models.repository import DEFAULT_REPOSITORY, DEMO_BUNDLE, ModelRepository
from service.api.deps import NOT_READY
from service.app import create_app


@pytest.fixture
def client(settings_factory):
    """TestClient (lifespan run: demo model loaded and warmed up) on the real app."""
    with TestClient(create_app(settings_factory())) as c:
        yield c


@pytest.fixture
def features():
    graph = ModelRepository(DEFAULT_REPOSITORY).load(DEMO_BUNDLE).manifest.graph("eeg")
    z = np.random.default_rng(0).standard_normal((graph.seq_len, graph.dim))
    return (np.asarray(graph.normalisation.mean) + np.asarray(graph.normalisation.std) * z).tolist()


@pytest.fixture
def count_thread_handoffs(monkeypatch):
    """Patch anyio's to_thread.run_sync (under every FastAPI/Starlette threadpool call) to count calls."""
    calls = []
    original = anyio.to_thread.run_sync

    async def counting(func, *args, **kwargs):
        calls.append(getattr(func, "__name__", repr(func)))
        return await original(func, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counting)
    return calls


def test_predict_hands_work_to_the_threadpool_once(client, features, count_thread_handoffs):
    """A /predict request costs one threadpool hand-off; dependencies and response checks stay on the loop."""
    r = client.post("/predict", json={"modality": "eeg", "features": features})
    assert r.status_code == 200, r.text
    assert len(count_thread_handoffs) == 1, count_thread_handoffs


def test_not_ready_answer_is_unchanged_by_async_dependencies(settings_factory, features):
    """Before the lifespan ran (no engine) /predict still answers 503 with the fixed detail."""
    client = TestClient(create_app(settings_factory()))  # not entered: the lifespan does not run
    r = client.post("/predict", json={"modality": "eeg", "features": features})
    assert (r.status_code, r.json()) == (503, {"detail": NOT_READY})
