"""Hot reload (service.reload, ``/v2/repository``): streams following a model move to its new versions.

The poller's rules run first on a real engine and stream manager whose streams never connect (a stub
acquisition worker: no LSL, no data); then the real app under uvicorn with the simulator's EEG outlet
(x8) shows the switch in the states: by polling, by the load route with polling off, with no gap
longer than one hop, a pinned stream untouched and a broken version never served.

New versions are written the way every writer of the repository does: into a temporary folder, renamed
into place (the demo bundle with its manifest's version rewritten; manifest.json is not checksummed).
"""

import json
import logging
import os
import shutil
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from websockets.sync.client import connect

from clients.simulator import Simulator
from models.bundle import BundleError, load_manifest, write_manifest
from models.repository import DEFAULT_REPOSITORY, DEMO_BUNDLE, ModelRepository
from service.app import create_app
from service.config import AttachRequest, Settings
from service.engine import InferenceEngine
from service.hub import StateHub
from service.reload import LoadFailed, ModelPoller, fingerprint
from service.streams import StreamManager, follows_latest
from synthetic import SyntheticConfig
from tests.service.conftest import CPU, make_settings, run_server

HOP_S = 2.0  # the demo bundle's EEG hop (window 2 s x 5 vectors spaced 2 s)
SPEED = 8.0


def write_version(root: Path, version: int, *, corrupt: bool = False, name: str = DEMO_BUNDLE) -> Path:
    """Version ``version`` of ``name``: the demo bundle renamed into ``root/name/version`` from a temporary folder."""
    staging = root / f".staging-{name}-{version}"
    shutil.copytree(DEFAULT_REPOSITORY / DEMO_BUNDLE / "1", staging)
    manifest = load_manifest(staging, verify=False)
    write_manifest(staging, manifest.model_copy(update={"name": name, "version": version}))
    if corrupt:
        with open(staging / "eye.onnx", "ab") as f:
            f.write(b"\0")  # the sha256 no longer matches
    (root / name).mkdir(parents=True, exist_ok=True)
    return staging.rename(root / name / str(version))


# -- the poller, without LSL ----------------------------------------------------------------------


class _Idle:
    """An acquisition worker that never connects (the stream keeps its model state, nothing else)."""

    def __init__(self, selector, on_chunk, **kwargs):
        self.selector, self.info = selector, None

    def start(self):
        pass

    def stop(self):
        pass

    def status(self):
        return {
            "info": None,
            "connected": False,
            "stale": True,
            "data_age_s": None,
            "effective_srate": None,
            "n_reconnects": 0,
            "last_error": None,
        }


@pytest.fixture
def repo(tmp_path):
    write_version(tmp_path, 1)
    return tmp_path


@pytest.fixture
def manager(repo):
    settings = Settings(model_repository=repo, providers=[CPU], attach=[], default_model=DEMO_BUNDLE)
    with InferenceEngine(ModelRepository(repo), providers=[CPU]) as engine:
        manager = StreamManager(engine, StateHub(), settings, stream_factory=_Idle)
        yield manager
        manager.close()


def _attach(manager, model=None):
    return manager.attach(AttachRequest(modality="eeg", source_id="never", model=model)).id


def test_follows_latest_is_name_or_latest():
    assert follows_latest("m") and follows_latest("m:latest") and not follows_latest("m:3")
    with pytest.raises(BundleError, match="invalid model reference"):
        follows_latest("m:0")


def test_poller_switches_followers_not_pinned_streams(manager, repo):
    """A new version is loaded, then every stream following the name is switched; a pinned one stays; PATCH-like
    swaps set whether a stream follows; nothing happens while all followers serve the latest version."""
    default, named, latest, pinned = (
        _attach(manager),
        _attach(manager, DEMO_BUNDLE),
        _attach(manager, f"{DEMO_BUNDLE}:latest"),
        _attach(manager, f"{DEMO_BUNDLE}:1"),
    )
    assert [manager.get(s).follows_latest for s in (default, named, latest, pinned)] == [
        True,
        True,
        True,
        False,
    ]
    assert manager.followed() == {DEMO_BUNDLE: {1}}
    poller = ModelPoller(manager.engine, manager, interval_s=0)
    assert poller.scan() == {}  # up to date
    write_version(repo, 2)
    done = poller.scan()[DEMO_BUNDLE]
    assert done.loaded.ref == f"{DEMO_BUNDLE}:2" and sorted(done.switched) == sorted([default, named, latest])
    assert [manager.get(s).model.version for s in (default, named, latest, pinned)] == [2, 2, 2, 1]
    assert manager.get(named).follows_latest and not manager.get(pinned).follows_latest
    assert poller.scan() == {}
    manager.swap(named, f"{DEMO_BUNDLE}:1")  # PATCH with a version pins
    manager.swap(pinned, DEMO_BUNDLE)  # PATCH with a name follows (and serves the latest now)
    assert not manager.get(named).follows_latest and manager.get(pinned).follows_latest
    assert manager.get(pinned).model.version == 2
    shutil.rmtree(repo / DEMO_BUNDLE / "2")  # the latest version removed: followers go back to the one before
    assert sorted(poller.scan()[DEMO_BUNDLE].switched) == sorted([default, latest, pinned])
    assert manager.get(default).model.version == 1


def test_replaced_versions_are_unloaded_once_nothing_uses_them(manager, repo):
    """Days of new versions do not keep every one loaded: a replaced version goes once no stream serves it and no
    running calibration has it as its base; a request for it then says so, and a load brings it back."""
    engine = manager.engine
    follower, pinned = _attach(manager), _attach(manager, f"{DEMO_BUNDLE}:1")
    in_use: set[str] = set()
    poller = ModelPoller(engine, manager, interval_s=0, in_use=lambda: set(in_use))
    write_version(repo, 2)
    poller.scan()
    assert set(engine.models) == {
        f"{DEMO_BUNDLE}:1",
        f"{DEMO_BUNDLE}:2",
    }  # v1 still served by the pinned stream
    window = np.zeros((1, 5, 310), np.float32)
    manager.detach(pinned)
    write_version(repo, 3)
    in_use.add(f"{DEMO_BUNDLE}:1")  # a calibration's base
    poller.scan()
    assert set(engine.models) == {f"{DEMO_BUNDLE}:1", f"{DEMO_BUNDLE}:3"}  # v2 served by nobody: unloaded
    assert manager.get(follower).model.version == 3
    in_use.clear()
    write_version(repo, 4)
    poller.scan()
    assert set(engine.models) == {f"{DEMO_BUNDLE}:4"}
    with pytest.raises(ValueError, match=f"model '{DEMO_BUNDLE}:1' is not loaded"):
        engine.predict(f"{DEMO_BUNDLE}:1", "eeg", window)
    assert not engine.unload(f"{DEMO_BUNDLE}:1")  # already gone
    engine.load(f"{DEMO_BUNDLE}:1")
    assert engine.predict(f"{DEMO_BUNDLE}:1", "eeg", window).shape == (1, 3)


def test_versions_replaced_by_someone_else_are_unloaded_too(manager, repo):
    """A calibration's activate switches the followers itself (the poller then finds them up to date): the
    version they left is unloaded at the next scan all the same (the soak: every calibrated version stayed
    loaded, +40 MB and two threads per fit)."""
    engine = manager.engine
    follower = _attach(manager)
    poller = ModelPoller(engine, manager, interval_s=0)
    write_version(repo, 2)
    loaded = engine.load(f"{DEMO_BUNDLE}:2")
    assert manager.follow(loaded)[0] == [follower]  # switched by another path than the poller
    poller.scan()
    assert set(engine.models) == {f"{DEMO_BUNDLE}:2"}


def test_a_request_racing_an_unload_is_answered_not_stranded(manager):
    """predict() that found a session just before it was unloaded gets a clear error, never a wait without end."""
    engine = manager.engine
    ref = engine.load(DEMO_BUNDLE).ref
    session = engine._sessions[(ref, "eeg")]
    engine.unload(ref)
    assert session.stopped and session.join(5)
    with pytest.raises(RuntimeError, match="was unloaded; load the model again"):
        session.submit(np.zeros((1, 5, 310), np.float32))


def test_a_broken_version_is_logged_once_and_retried_when_its_folder_changes(manager, repo, caplog):
    sid = _attach(manager)
    poller = ModelPoller(manager.engine, manager, interval_s=0)
    folder = write_version(repo, 2, corrupt=True)
    caplog.set_level(logging.INFO, logger="service.reload")
    for _ in range(3):
        assert poller.scan()[DEMO_BUNDLE].loaded is None
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1, "logged once, not at every scan"
    assert "checksum mismatch" in errors[0].getMessage() and "stay on their version" in errors[0].getMessage()
    assert "checksum mismatch" in poller.failures()[f"{DEMO_BUNDLE}:2"]
    assert manager.get(sid).model.version == 1 and f"{DEMO_BUNDLE}:2" not in manager.engine.models
    with pytest.raises(LoadFailed, match="checksum mismatch") as err:
        poller.load(DEMO_BUNDLE)  # an explicit load tries again, and says why
    assert err.value.ref == f"{DEMO_BUNDLE}:2"
    before = fingerprint(folder)
    shutil.copyfile(DEFAULT_REPOSITORY / DEMO_BUNDLE / "1" / "eye.onnx", folder / "eye.onnx")  # repaired
    assert fingerprint(folder) != before
    assert poller.scan()[DEMO_BUNDLE].switched == [sid]
    assert manager.get(sid).model.version == 2 and poller.failures() == {}
    assert any("loads now" in r.getMessage() for r in caplog.records)


def test_a_version_a_stream_cannot_take_leaves_it_on_its_own(manager, repo):
    """A newer version without the stream's modality, or one the skip hook refuses, is not served to it."""
    sid = _attach(manager)
    staging = write_version(repo, 2)
    manifest = load_manifest(staging, verify=False)
    write_manifest(staging, manifest.model_copy(update={"graphs": {"eye": manifest.graphs["eye"]}}))
    poller = ModelPoller(manager.engine, manager, interval_s=0)
    done = poller.scan()[DEMO_BUNDLE]
    assert done.switched == [] and "has no 'eeg'" in done.not_switched[sid].replace('"', "'")
    assert manager.get(sid).model.version == 1
    write_version(repo, 3)
    refusing = ModelPoller(manager.engine, manager, interval_s=0, skip=lambda s, g: "busy calibrating")
    assert refusing.scan()[DEMO_BUNDLE].not_switched == {sid: "busy calibrating"}
    assert poller.load(DEMO_BUNDLE).switched == [sid]


def test_a_calibration_collecting_other_features_holds_its_stream(manager):
    """The app's skip hook: a stream in a calibration switches only to a version computing the same features;
    calibration activate's swap (a version, follow=True) makes the stream follow the calibrated name."""
    from types import SimpleNamespace

    from service.reload import calibration_skip

    sid = _attach(manager, f"{DEMO_BUNDLE}:1")
    graph = manager.engine.get(DEMO_BUNDLE).bundle.manifest.graph("eeg")
    calibration = SimpleNamespace(
        id="cal-1",
        base=SimpleNamespace(ref=f"{DEMO_BUNDLE}:1"),
        collectors={sid: SimpleNamespace(graph=graph)},
    )
    skip = calibration_skip(SimpleNamespace(collecting_on=lambda s: calibration if s == sid else None))
    assert skip(sid, graph) is None and skip("other", graph) is None
    reason = skip(sid, graph.model_copy(update={"seq_len": graph.seq_len + 1}))
    assert reason.startswith(
        f"calibration cal-1 collects its 'eeg' features as {DEMO_BUNDLE}:1 computes them"
    )
    assert not manager.get(sid).follows_latest
    assert manager.swap(sid, f"{DEMO_BUNDLE}:1", follow=True).follows_latest  # as activate does


def test_load_refuses_what_is_not_a_model_name(manager):
    poller = ModelPoller(manager.engine, manager, interval_s=0)
    with pytest.raises(BundleError, match="no model named 'nope'"):
        poller.load("nope")
    with pytest.raises(BundleError, match="without a version"):
        poller.load(f"{DEMO_BUNDLE}:1")
    with pytest.raises(ValueError, match="interval_s must be"):
        ModelPoller(manager.engine, manager, interval_s=-1)


def test_the_thread_polls_and_stops(manager, repo):
    sid = _attach(manager)
    poller = ModelPoller(manager.engine, manager, interval_s=0.1)
    poller.start()
    try:
        write_version(repo, 2)
        deadline = time.monotonic() + 20
        while manager.get(sid).model.version != 2:
            assert time.monotonic() < deadline, "the poller did not switch the stream"
            time.sleep(0.05)
    finally:
        assert poller.close(timeout=10)
    assert not poller.running
    idle = ModelPoller(manager.engine, manager, interval_s=0)
    idle.start()
    assert not idle.running and idle.close()


def test_poll_interval_setting():
    assert make_settings().model_poll_interval_s == 5.0
    assert make_settings(model_poll_interval_s=0).model_poll_interval_s == 0
    with pytest.raises(ValueError, match="M2S_MODEL_POLL_INTERVAL_S must be 0 .no polling. or between 0.1"):
        make_settings(model_poll_interval_s=0.01)


# -- the real service, with LSL -------------------------------------------------------------------


class _States:
    """EmotionStates from the service's WebSocket, collected by a thread."""

    def __init__(self, url: str):
        self.states: list[dict] = []
        self._url = url.replace("http://", "ws://") + "/ws"
        self._stop = threading.Event()
        self._open = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._open.wait(10), "the WebSocket did not open"

    def _run(self):
        with connect(self._url, open_timeout=10) as ws:
            self._open.set()
            while not self._stop.is_set():
                try:
                    message = json.loads(ws.recv(timeout=0.2))
                except TimeoutError:
                    continue
                if message.get("type") == "state":
                    self.states.append(message["state"])

    def of(self, sid: str) -> list[dict]:
        return [s for s in list(self.states) if s["stream_id"] == sid]

    def wait(self, predicate, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.05)

    def close(self):
        self._stop.set()
        self._thread.join(5)


def _versions(states: list[dict]) -> list[int]:
    return [s["model"]["version"] for s in states]


def _assert_switch_without_gap(states: list[dict], version: int):
    versions = _versions(states)
    switch = versions.index(version)
    assert switch >= 1 and set(versions[switch:]) == {version}, versions
    times = np.array([s["lsl_time"] for s in states[max(switch - 2, 0) : switch + 3]])
    assert np.allclose(np.diff(times), HOP_S, atol=1e-6), f"a gap at the switch: {np.diff(times)}"


@pytest.fixture
def simulator():
    sim = Simulator(
        SyntheticConfig(trial_duration_s=60.0),
        modalities=("eeg",),
        speed=SPEED,
        source_id_prefix=f"reload{os.getpid()}-{time.monotonic_ns()}",
    )
    with sim:
        yield sim
    assert sim.error is None


def test_streams_following_a_model_switch_by_polling_without_a_gap(repo, simulator):
    """Polling every 0.2 s: version 2 reaches the following stream one hop after its last v1 state, the pinned
    stream stays on v1; a broken version 3 is never served, the index and the load route say why; shutdown
    stops the poller."""
    source = simulator.source_ids["eeg"]
    attach = [
        AttachRequest(modality="eeg", source_id=source),  # the default model, no version: follows
        AttachRequest(modality="eeg", source_id=source, model=f"{DEMO_BUNDLE}:1"),
    ]
    app = create_app(
        make_settings(model_repository=repo, attach=attach, model_poll_interval_s=0.2, stale_after_s=30.0)
    )
    with run_server(app) as url, httpx.Client(base_url=url, timeout=30) as http:
        streams = http.get("/streams").json()["data"]
        following, pinned = (s["id"] for s in sorted(streams, key=lambda s: not s["follows_latest"]))
        assert [s["follows_latest"] for s in streams] == [True, False]
        watch = _States(url)
        try:
            watch.wait(lambda: len(watch.of(following)) >= 3, 30, "v1 states")
            write_version(repo, 2)
            watch.wait(lambda: _versions(watch.of(following))[-3:] == [2, 2, 2], 20, "three v2 states")
            _assert_switch_without_gap(watch.of(following), 2)
            assert set(_versions(watch.of(pinned))) == {1}
            assert http.get(f"/streams/{following}").json()["model"] == {"name": DEMO_BUNDLE, "version": 2}

            write_version(repo, 3, corrupt=True)
            n = len(watch.of(following))
            watch.wait(
                lambda: len(watch.of(following)) >= n + 4, 20, "states after v3 appeared"
            )  # 1 s of polls
            assert set(_versions(watch.of(following))) == {1, 2}
            index = http.post("/v2/repository/index").json()
            v3 = next(e for e in index if e["version"] == "3")
            assert v3["state"] == "UNAVAILABLE" and "checksum mismatch" in v3["reason"]
            assert {e["version"]: e["state"] for e in index} == {
                "1": "READY",
                "2": "READY",
                "3": "UNAVAILABLE",
            }
            assert [e["version"] for e in http.post("/v2/repository/index", json={"ready": True}).json()] == [
                "1",
                "2",
            ]
            r = http.post(f"/v2/repository/models/{DEMO_BUNDLE}/load")
            assert r.status_code == 409
            assert r.json()["detail"].startswith(
                f"Model {DEMO_BUNDLE}:3 could not be loaded: checksum mismatch"
            )
            assert r.json()["detail"].endswith(
                f"The streams following '{DEMO_BUNDLE}' stay on their version; fix or replace the bundle, "
                "then load again."
            )
            r = http.post("/v2/repository/models/nope/load")
            assert r.status_code == 404
            assert r.json() == {
                "detail": f"Model 'nope' not found; models in the repository: '{DEMO_BUNDLE}'."
            }
        finally:
            watch.close()
        poller = app.state.poller
        assert poller.running
    assert not poller.running, "shutdown stops the poller"


def test_the_load_route_switches_at_once_without_polling(repo, simulator):
    """Polling off: a new version is not picked up by itself; POST .../load loads it and switches the following
    stream (no gap); bodies are optional, and a body with parameters is refused."""
    attach = [AttachRequest(modality="eeg", source_id=simulator.source_ids["eeg"], model=DEMO_BUNDLE)]
    app = create_app(
        make_settings(model_repository=repo, attach=attach, model_poll_interval_s=0, stale_after_s=30.0)
    )
    with run_server(app) as url, httpx.Client(base_url=url, timeout=30) as http:
        (sid,) = [s["id"] for s in http.get("/streams").json()["data"]]
        watch = _States(url)
        try:
            watch.wait(lambda: len(watch.of(sid)) >= 3, 30, "v1 states")
            write_version(repo, 2)
            n = len(watch.of(sid))
            watch.wait(lambda: len(watch.of(sid)) >= n + 3, 20, "more v1 states")
            assert set(_versions(watch.of(sid))) == {1}, "no polling: nothing switches by itself"
            assert not app.state.poller.running
            r = http.post(f"/v2/repository/models/{DEMO_BUNDLE}/load", json={"parameters": {"config": "{}"}})
            assert r.status_code == 422
            assert r.json()["detail"].startswith(
                "Invalid request: parameters: unsupported load parameter(s) 'config'"
            )
            r = http.post(
                f"/v2/repository/models/{DEMO_BUNDLE}/load",
                content="x",
                headers={"content-type": "text/plain"},
            )
            assert r.status_code == 415
            r = http.post(f"/v2/repository/models/{DEMO_BUNDLE}/load", json={})
            assert r.status_code == 200, r.text
            assert r.json() == {
                "model": {"name": DEMO_BUNDLE, "version": 2},
                "switched": [sid],
                "not_switched": {},
            }
            watch.wait(lambda: _versions(watch.of(sid))[-3:] == [2, 2, 2], 20, "three v2 states")
            _assert_switch_without_gap(watch.of(sid), 2)
            again = http.post(
                f"/v2/repository/models/{DEMO_BUNDLE}/load"
            )  # no body: up to date, nothing to switch
            assert again.status_code == 200 and again.json()["switched"] == []
        finally:
            watch.close()
