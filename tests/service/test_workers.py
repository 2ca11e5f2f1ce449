"""M2S_WORKERS=2: the real app under uvicorn shards streams across two real worker processes.

Real parts only: pylsl outlets on loopback push synthetic EEG at 8x real time, the app runs under uvicorn
with two spawned worker processes, a real websockets client collects the states, httpx talks REST. A
worker is killed with SIGKILL and must come back with its streams (same ids, same WebSocket connection);
the API process is killed too (in a child process) and must take its workers along.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import shutil
import signal
import threading
import time
import types
import uuid
from pathlib import Path

import httpx
import numpy as np
import pylsl
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from clients.service_process import ServiceProcess
from models.bundle import BundleError, load_manifest, write_manifest
from models.repository import DEFAULT_REPOSITORY, DEMO_BUNDLE
from service import workers as workers_module
from service.app import create_app, start_workers
from service.calibration import CalibrationConflict
from service.config import AttachRequest
from service.engine import session_options
from service.hub import StateHub
from service.metrics import ServiceMetrics
from service.streams import StreamLimitError
from service.worker_process import _Outbox, error_payload, intra_op_threads, rebuild_error
from service.workers import WorkerUnavailable, _Worker
from synthetic import SyntheticConfig, generate_trial

from .conftest import make_settings, run_server

SFREQ = 200.0
SPEED = 8.0  # signal seconds per wall second: a 10-s EEG window fills in 1.25 s
GAPS_MODEL = "m2s-gaps"  # the demo bundle with another gap rule: a stream cannot be swapped to it live


def _repository(root: Path) -> Path:
    """The demo bundle, plus ``m2s-gaps:1``: the same model whose EEG spec has another gap rule."""
    shutil.copytree(DEFAULT_REPOSITORY / DEMO_BUNDLE, root / DEMO_BUNDLE)
    shutil.copytree(DEFAULT_REPOSITORY / DEMO_BUNDLE / "1", root / GAPS_MODEL / "1")
    manifest = load_manifest(root / GAPS_MODEL / "1", verify=False)
    eeg = manifest.graphs["eeg"]
    spec = eeg.feature_spec.model_copy(update={"gap_factor": eeg.feature_spec.gap_factor + 1.0})
    graphs = {**manifest.graphs, "eeg": eeg.model_copy(update={"feature_spec": spec})}
    write_manifest(
        root / GAPS_MODEL / "1", manifest.model_copy(update={"name": GAPS_MODEL, "graphs": graphs})
    )
    return root


class _Outlets:
    """``n`` real EEG outlets (62 channels, µV) pushing a looped synthetic trial at ``SPEED`` x real time."""

    def __init__(self, n: int):
        trial = generate_trial(SyntheticConfig(trial_duration_s=20), 0, 0, 0, modalities=("eeg",))
        self.signal, labels = trial.signals["eeg"], trial.channel_names["eeg"]
        self.source_ids = [f"m2s-workers-{uuid.uuid4().hex[:12]}" for _ in range(n)]
        self.outlets = []
        for source_id in self.source_ids:
            info = pylsl.StreamInfo(source_id, "EEG", len(labels), SFREQ, "double64", source_id)
            channels = info.desc().append_child("channels")
            for label in labels:
                ch = channels.append_child("channel")
                ch.append_child_value("label", label)
                ch.append_child_value("unit", "microvolts")
            self.outlets.append(pylsl.StreamOutlet(info, chunk_size=20))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="test-outlets", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        t0, start, sent = pylsl.local_clock(), time.monotonic(), 0
        n_signal = self.signal.shape[1]
        while not self._stop.wait(0.05):
            due = int((time.monotonic() - start) * SPEED * SFREQ)
            idx = np.arange(sent, due)
            if idx.size:
                chunk = np.ascontiguousarray(self.signal[:, idx % n_signal].T)
                for outlet in self.outlets:
                    outlet.push_chunk(chunk, list(t0 + idx / SFREQ))
                sent = due

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)


class _Collector:
    """A real websockets client on /ws in its own thread: every state with the time it arrived."""

    def __init__(self, base: str):
        self.states: list[tuple[float, dict]] = []
        self.lock = threading.Lock()
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=asyncio.run, args=(self._run(base),), daemon=True)
        self._thread.start()
        assert self.connected.wait(10), "the WebSocket client did not connect"

    async def _run(self, base: str) -> None:
        async with connect(base.replace("http://", "ws://") + "/ws") as ws:
            self.connected.set()
            while not self._stop.is_set():
                try:
                    message = json.loads(await asyncio.wait_for(ws.recv(), 0.2))
                except asyncio.TimeoutError:
                    continue
                except ConnectionClosed:  # the server shut down (the shutdown test)
                    return
                if message["type"] == "state":
                    with self.lock:
                        self.states.append((time.monotonic(), message["state"]))

    def since(self, t: float) -> list[dict]:
        with self.lock:
            return [s for at, s in self.states if at >= t]

    def wait_for(self, stream_ids, since: float, timeout: float) -> float:
        """Wait until each of ``stream_ids`` has a state that arrived after ``since``; return when the last came."""
        deadline = time.monotonic() + timeout
        while True:
            seen = {}
            with self.lock:
                for at, s in self.states:
                    if at >= since and s["stream_id"] in stream_ids:
                        seen.setdefault(s["stream_id"], at)
            if set(seen) == set(stream_ids):
                return max(seen.values())
            assert time.monotonic() < deadline, (
                f"no state within {timeout} s from {set(stream_ids) - set(seen)}"
            )
            time.sleep(0.05)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)


def _running(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def _wait_gone(pids, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while any(_running(p) for p in pids):
        assert time.monotonic() < deadline, (
            f"worker processes still running: {[p for p in pids if _running(p)]}"
        )
        time.sleep(0.1)


def _workers(http) -> list[dict]:
    return http.get("/v2/health/ready").json()["workers"]


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return _repository(tmp_path_factory.mktemp("repository"))


@pytest.fixture(scope="module")
def outlets():
    o = _Outlets(4)
    yield o
    o.close()


@pytest.fixture(scope="module")
def sharded(repo, outlets):
    """The app with M2S_WORKERS=2 (5 streams at most) and a WebSocket client connected from the start.

    ``stop()`` shuts the server down (the last test checks what that leaves behind); teardown does it otherwise.
    """
    settings = make_settings(model_repository=repo, workers=2, max_streams=5, stale_after_s=30.0)
    app = create_app(settings)
    server = run_server(app)
    base = server.__enter__()
    stopped = []

    def stop():
        if not stopped:
            stopped.append(True)
            server.__exit__(None, None, None)

    collector = _Collector(base)
    with httpx.Client(base_url=base, timeout=30) as http:
        yield types.SimpleNamespace(url=base, http=http, ws=collector, stop=stop, ids=[], app=app)
    collector.close()
    stop()


@pytest.fixture(scope="module")
def single(repo):
    """The same app with the streams in the API process (M2S_WORKERS=1), to compare answers with."""
    with run_server(create_app(make_settings(model_repository=repo, max_streams=5))) as base:
        with httpx.Client(base_url=base, timeout=30) as http:
            yield http


@pytest.mark.slow
def test_streams_spread_over_the_workers_and_their_states_reach_one_client(sharded, outlets):
    """4 streams: 2 on each worker process (their pids), and one WebSocket client gets the states of all 4."""
    http = sharded.http
    t0 = time.monotonic()
    for source_id in outlets.source_ids:
        r = http.post("/streams", json={"modality": "eeg", "source_id": source_id})
        assert r.status_code == 201, r.text
        sharded.ids.append(r.json()["id"])
    workers = _workers(http)
    assert [w["index"] for w in workers] == [0, 1]
    assert sorted(len(w["streams"]) for w in workers) == [2, 2]
    assert sorted(sid for w in workers for sid in w["streams"]) == sorted(sharded.ids)
    pids = [w["pid"] for w in workers]
    assert len(set(pids)) == 2 and os.getpid() not in pids and all(_running(p) for p in pids)
    assert all(w["alive"] and w["restarts"] == 0 and w["last_exit_code"] is None for w in workers)

    sharded.ws.wait_for(set(sharded.ids), t0, timeout=20)
    listed = http.get("/streams").json()
    assert listed["count"] == 4 and [s["id"] for s in listed["data"]] == sharded.ids
    assert all(s["connected"] and s["n_states"] > 0 for s in listed["data"])
    one = http.get(f"/streams/{sharded.ids[0]}").json()
    assert one["id"] == sharded.ids[0] and one["model"] == {"name": DEMO_BUNDLE, "version": 1}
    metrics = http.get("/metrics").text
    assert "m2s_streams_attached 4.0" in metrics
    for sid in sharded.ids:
        assert f'm2s_states_emitted_total{{stream="{sid}"}}' in metrics
        assert f'm2s_stream_effective_srate_hz{{stream="{sid}"}}' in metrics
    assert "m2s_inference_windows_count" in metrics and "m2s_inference_windows_count 0.0" not in metrics


@pytest.mark.slow
def test_errors_are_those_of_one_process(sharded, single):
    """Route answers to bad requests are the single process's, status and text, also those raised in a worker;
    the stream limit counts all workers together; detach and swap work."""
    http = sharded.http
    for client in (http, single):  # a stream each (no outlet needed) to swap to a model with another gap rule
        r = client.post("/streams", json={"modality": "eeg", "source_id": "m2s-workers-no-such-outlet"})
        assert r.status_code == 201, r.text
        client.stream_id = r.json()["id"]
    requests = [
        ("patch", "/streams/{id}", {"model": GAPS_MODEL}),  # raised in the worker: ValueError -> 422
        ("patch", "/streams/{id}", {"model": "nope:1"}),
        ("patch", "/streams/{id}", {"model": f"{DEMO_BUNDLE}:7"}),
        ("post", "/streams", {"modality": "pps", "source_id": "x"}),
        ("post", "/streams", {"modality": "eeg", "source_id": "x", "model": "nope"}),
    ]
    for method, path, body in requests:
        answers = [
            getattr(client, method)(path.format(id=client.stream_id), json=body) for client in (http, single)
        ]
        assert answers[0].status_code == answers[1].status_code != 201, (path, body, answers[0].text)
        assert answers[0].json() == answers[1].json(), (path, body)
    assert (
        http.patch(f"/streams/{http.stream_id}", json={"model": GAPS_MODEL})
        .json()["detail"]
        .startswith(f"{GAPS_MODEL}:1/eeg treats timestamp gaps differently (gap_factor ")
    )
    attached = ", ".join(sorted([*sharded.ids, http.stream_id]))
    for method in ("get", "delete"):
        r = getattr(http, method)("/streams/eeg-nope")
        assert (r.status_code, r.json()) == (
            404,
            {"detail": f"Stream 'eeg-nope' not found; attached streams: {attached}."},
        )
    r = http.post("/streams", json={"modality": "eeg", "source_id": "y"})  # the 6th, on 2 workers: over 5
    assert (r.status_code, r.json()) == (
        409,
        {
            "detail": "The service already serves 5 streams, its limit (M2S_MAX_STREAMS); detach one "
            "(DELETE /streams/{id}) or raise the limit."
        },
    )
    assert http.delete(f"/streams/{http.stream_id}").status_code == 204
    assert http.get(f"/streams/{http.stream_id}").status_code == 404
    assert sum(len(w["streams"]) for w in _workers(http)) == 4

    sid = sharded.ids[0]  # a live one: pinned, then following again; its states keep coming
    r = http.patch(f"/streams/{sid}", json={"model": f"{DEMO_BUNDLE}:1"})
    assert r.status_code == 200 and r.json()["follows_latest"] is False, r.text
    assert http.get("/streams").json()["data"][0]["follows_latest"] is False
    t = time.monotonic()
    sharded.ws.wait_for({sid}, t, timeout=10)
    assert http.patch(f"/streams/{sid}", json={"model": DEMO_BUNDLE}).json()["follows_latest"] is True


@pytest.mark.slow
def test_calibration_and_recording_need_one_process(sharded):
    """Both need the streams' taps in the API process: 409 with what to do instead."""
    http, sid = sharded.http, sharded.ids[0]
    r = http.post("/calibrations", json={"participant": "p01", "streams": [sid], "labels": {"rest": True}})
    assert (r.status_code, r.json()) == (
        409,
        {
            "detail": "Live calibration needs the streams in the API process; this service runs M2S_WORKERS=2 "
            "worker processes. Run a service with M2S_WORKERS=1 to calibrate."
        },
    )
    r = http.post("/recordings", json={"streams": [sid]})
    assert (r.status_code, r.json()) == (
        409,
        {
            "detail": "Recordings need the streams in the API process; this service runs M2S_WORKERS=2 worker "
            "processes. Run a service with M2S_WORKERS=1 to record."
        },
    )


@pytest.mark.slow
def test_hot_reload_switches_the_followers_in_every_worker(sharded, repo):
    """A new version loaded by the API process is loaded by each worker, which switches its followers; states
    of the new version come from streams on both workers (and a killed worker brings them back on it, below)."""
    http = sharded.http
    staging = repo / f".staging-{DEMO_BUNDLE}-2"
    shutil.copytree(repo / DEMO_BUNDLE / "1", staging)
    write_manifest(staging, load_manifest(staging, verify=False).model_copy(update={"version": 2}))
    staging.rename(repo / DEMO_BUNDLE / "2")
    r = http.post(f"/v2/repository/models/{DEMO_BUNDLE}/load")
    assert r.status_code == 200, r.text
    assert sorted(r.json()["switched"]) == sorted(sharded.ids)
    t = time.monotonic()
    sharded.ws.wait_for(set(sharded.ids), t, timeout=10)
    deadline = time.monotonic() + 10
    while {s["model"]["version"] for s in sharded.ws.since(t + 1.0)} != {
        2
    }:  # states under way may still be v1
        assert time.monotonic() < deadline, "states of version 2 only did not come"
        time.sleep(0.1)
    assert {s["model"]["version"] for s in http.get("/streams").json()["data"]} == {2}


@pytest.mark.slow
def test_an_attach_that_timed_out_is_undone_when_it_completes_late(sharded, monkeypatch):
    """The worker attaches a stream after its caller gave up (503): that stream has no record, so the late
    answer detaches it (else it would run unseen, uncounted and not deletable)."""
    manager = sharded.app.state.manager
    monkeypatch.setattr(workers_module, "LOAD_TIMEOUT_S", 0.0)
    with pytest.raises(WorkerUnavailable, match=r"did not answer attach within 0 s"):
        manager.attach(AttachRequest(modality="eeg", source_id="m2s-workers-late"), stream_id="eeg-late")
    monkeypatch.undo()
    assert "eeg-late" not in manager
    # Commands change a worker one at a time, in order: once this is answered, the attach ran and its late
    # answer (sent before this one) has been handled.
    barrier = manager._call_each("detach", stream_id="eeg-no-such")
    assert all(isinstance(answer, KeyError) for answer in barrier.values()) and len(barrier) == 2
    deadline = time.monotonic() + 10
    while any(s.id == "eeg-late" for streams in manager._call_all("list").values() for s in streams):
        assert time.monotonic() < deadline, "the stream attached late still runs in its worker"
        time.sleep(0.05)
    assert sorted(s.id for s in manager.list()) == sorted(sharded.ids)


@pytest.mark.slow
def test_a_killed_worker_is_restarted_and_its_streams_resume_on_the_same_socket(sharded):
    """SIGKILL a worker: a new process takes its streams (same ids), their states reach the same client again."""
    http = sharded.http
    before = _workers(http)[0]
    os.kill(before["pid"], signal.SIGKILL)
    killed = time.monotonic()
    deadline = killed + 30
    gone_id = None  # detached while its worker restarts: must not run in the new worker
    while True:
        ready = http.get("/v2/health/ready")
        after = ready.json()["workers"][0]
        if after["alive"] and after["pid"] != before["pid"]:
            break
        if not after["alive"]:  # restarting: still ready (200), but degraded, and its streams stale
            assert ready.status_code == 200 and ready.json()["degraded"] == (
                "1 of 2 worker processes (0) are being restarted; their streams show 'connecting' until they run "
                "again (GET /streams says why, the logs say why they ended)."
            )
            if gone_id is None:
                gone_id = before["streams"][-1]
                assert http.delete(f"/streams/{gone_id}").status_code == 204
            view = http.get(f"/streams/{before['streams'][0]}").json()
            if view["health"] == "connecting":  # not attached again yet
                assert view["stale"] is True and view["last_error"].startswith("its worker process (0) ended")
        assert time.monotonic() < deadline, f"worker 0 not back: {after}"
        time.sleep(0.1)
    assert (after["restarts"], after["last_exit_code"]) == (1, -signal.SIGKILL)
    assert _running(after["pid"]) and not _running(before["pid"])
    assert after["streams"] == [sid for sid in before["streams"] if sid != gone_id]
    assert http.get("/v2/health/ready").json()["degraded"] is None
    running = sharded.app.state.manager._call_all("list")  # what the workers themselves run
    assert sorted(s.id for streams in running.values() for s in streams) == sorted(
        sid for sid in sharded.ids if sid != gone_id
    )
    if gone_id is not None:
        sharded.ids.remove(gone_id)
        before["streams"].remove(gone_id)
    sharded.ws.wait_for(set(before["streams"]), killed, timeout=20)  # measured: 3-9 s after the SIGKILL
    listed = {s["id"]: s for s in http.get("/streams").json()["data"]}
    assert set(listed) == set(sharded.ids) and all(listed[sid]["connected"] for sid in before["streams"])
    assert all(
        listed[sid]["model"]["version"] == 2 and listed[sid]["follows_latest"] for sid in before["streams"]
    )
    metrics = http.get("/metrics").text
    assert 'm2s_worker_restarts_total{worker="0"} 1.0' in metrics and "m2s_workers_alive 2.0" in metrics
    other = _workers(http)[1]
    assert other["restarts"] == 0 and other["alive"]


@pytest.mark.slow
def test_shutdown_stops_every_worker(sharded):
    """A graceful shutdown of the API process leaves no worker process running."""
    pids = [w["pid"] for w in _workers(sharded.http)]
    assert all(_running(p) for p in pids)
    sharded.stop()
    _wait_gone(pids, timeout=15)


@pytest.mark.slow
def test_workers_of_a_killed_api_process_exit(repo):
    """SIGKILL of the API process (m2s-serve in a child): its workers see their pipe close and exit."""
    options = ["--workers", "2", "--repository", str(repo), "--providers", "CPUExecutionProvider"]
    with ServiceProcess(options, ready_timeout_s=60) as service:
        pids = [w["pid"] for w in httpx.get(service.url + "/v2/health/ready", timeout=10).json()["workers"]]
        assert len(pids) == 2 and all(_running(p) for p in pids)
        service.kill(signal.SIGKILL)
        _wait_gone(pids, timeout=15)


# -- the command protocol, over a real pipe ----------------------------------------------------------------


def test_errors_cross_the_pipe_as_their_class_with_their_message():
    """A worker's exception is raised again as the nearest class routes handle, with the same arguments."""
    for err in (
        BundleError("no model named 'x' in repository; models there: a."),
        StreamLimitError("The service already serves 5 streams"),
        KeyError("no attached stream 'eeg-1'; attached streams: none."),
        ValueError("the stream runs at 100 Hz"),
        TypeError("request must be an instance of AttachRequest"),
        RuntimeError("closed"),
    ):
        again = rebuild_error(error_payload(err))
        assert type(again) is type(err) and again.args == err.args and str(again) == str(err)
    again = rebuild_error(error_payload(CalibrationConflict("busy")))
    assert type(again) is RuntimeError and str(again) == "busy"
    again = rebuild_error(error_payload(OSError(28, "No space left on device")))
    assert type(again) is RuntimeError and str(again) == "OSError: [Errno 28] No space left on device"


def test_a_command_without_answer_times_out_and_a_closed_pipe_fails_what_waits():
    """Every command has a timeout (WorkerUnavailable, a 503); an error answer is raised; EOF fails the waiters."""
    ours, theirs = multiprocessing.Pipe(duplex=True)
    worker = _Worker(3, types.SimpleNamespace(pid=4242), ours, lambda w, m: None)
    waiting = worker.send(1, "list", {})
    with pytest.raises(WorkerUnavailable) as info:
        worker.wait(1, waiting, 0.2)
    assert str(info.value) == (
        "worker 3 (pid 4242) did not answer list within 0.2 s; retry later (its log says what it is doing)."
    )
    assert theirs.recv() == (1, "list", {})
    theirs.send(("batch", [("reply", 1, True, [])]))  # too late: dropped
    pending = worker.send(2, "detach", {"stream_id": "eeg-1"})
    theirs.send(("batch", [("reply", 2, False, error_payload(KeyError("no attached stream 'eeg-1'")))]))
    with pytest.raises(KeyError, match="no attached stream 'eeg-1'"):
        worker.wait(2, pending, 5)
    pending = worker.send(3, "attach", {})
    theirs.close()
    with pytest.raises(
        WorkerUnavailable, match=r"worker 3 \(pid 4242\) ended while answering attach; its streams"
    ):
        worker.wait(3, pending, 5)
    with pytest.raises(WorkerUnavailable, match="worker 3 is restarting"):
        worker.send(4, "list", {})


def test_a_late_answer_goes_to_its_handler_and_a_closed_pipe_waits_for_its_reader():
    """A command answered after its timeout still ran in the worker: the late answer reaches its handler. The pipe
    of an ended worker is closed only once its reader has stopped (its descriptor number may be reused)."""
    ours, theirs = multiprocessing.Pipe(duplex=True)
    busy, release = threading.Event(), threading.Event()

    def on_message(worker, message):
        busy.set()
        release.wait(10)

    worker = _Worker(5, types.SimpleNamespace(pid=4343), ours, on_message)
    late = []
    for request_id, ok, payload in ((1, True, "attached"), (2, False, error_payload(KeyError("gone")))):
        pending = worker.send(request_id, "attach", {}, late=lambda *answer: late.append(answer))
        with pytest.raises(WorkerUnavailable, match="did not answer attach within 0.05 s"):
            worker.wait(request_id, pending, 0.05)
        theirs.send(("batch", [("reply", request_id, ok, payload)]))
    theirs.send(("batch", [("state", "eeg-1", "{}")]))  # the reader is busy with it until released
    assert busy.wait(5)
    assert late[0] == (True, "attached")
    assert type(late[1][1]) is KeyError and late[1][0] is False and str(late[1][1]) == "'gone'"
    theirs.close()
    worker.close_pipe(0.1)
    assert not ours.closed  # still read by its busy reader: not closed under it
    release.set()
    worker.close_pipe(5)
    assert ours.closed and worker.gone.is_set()


def _drain(conn, last=lambda m: m[0] == "reply" and m[1] == "last") -> list[tuple]:
    """The batches the outbox sent, up to the one holding the message ``last`` recognises (or 2 s of silence)."""
    messages = []
    while conn.poll(2):
        kind, batch = conn.recv()
        assert kind == "batch"
        messages.append(batch)
        if any(last(m) for m in batch):
            break
    return messages


def test_the_worker_sends_replies_first_drops_the_oldest_states_and_caps_its_batches():
    """A slow API process: a worker keeps at most max_states queued (the oldest dropped, the count sent), replies
    jump the queue, and one write carries at most max_batch states."""
    ours, theirs = multiprocessing.Pipe(duplex=True)
    outbox = _Outbox(theirs, max_states=5, max_batch=2, start=False)
    for i in range(8):
        outbox.put(("state", "eeg-1", str(i)))
    outbox.put(("reply", 1, True, None))
    outbox.put(("inference", 0.001, 1))
    outbox.thread.start()  # everything is queued before the sender runs: its batches are deterministic
    outbox.close()
    batches = _drain(ours, last=lambda m: m[0] == "inference")
    assert batches[0] == [
        ("reply", 1, True, None),
        ("state", "eeg-1", "4"),
        ("state", "eeg-1", "5"),
        ("dropped", 4),  # 0-3 pushed out
    ]
    rest = [m for batch in batches[1:] for m in batch]
    assert all(sum(m[0] == "state" for m in batch) <= 2 for batch in batches[1:])
    assert rest == [("state", "eeg-1", "6"), ("state", "eeg-1", "7"), ("inference", 0.001, 1)]


def test_an_unpicklable_answer_becomes_an_error_answer_and_the_sender_goes_on():
    """A message that cannot be pickled never kills the sender: a reply is answered with the error instead, a
    state is dropped; the rest of its batch and what follows are sent."""
    ours, theirs = multiprocessing.Pipe(duplex=True)
    outbox = _Outbox(theirs, start=False)
    outbox.put(("reply", 1, True, threading.Lock()))
    outbox.put(("state", "eeg-1", threading.Lock()))
    outbox.put(("state", "eeg-1", "ok"))
    outbox.thread.start()  # everything is queued before the sender runs: its batches are deterministic
    outbox.close()
    messages = [m for batch in _drain(ours, last=lambda m: m == ("state", "eeg-1", "ok")) for m in batch]
    assert messages[0][:3] == ("reply", 1, False) and messages[0][3][0] == "RuntimeError"
    assert messages[0][3][1][0].startswith(
        "the answer could not be sent: cannot pickle '_thread.lock' object"
    )
    assert messages[1:] == [("state", "eeg-1", "ok")]  # the unpicklable state dropped, the next one sent
    assert outbox.thread.is_alive() is False and not outbox.closed.is_set()


def test_each_worker_gets_its_share_of_the_cpus_as_onnx_runtime_threads():
    """N workers: max(1, CPUs allowed // N) intra-op threads each, not one per core each; None keeps the default."""
    allowed = len(os.sched_getaffinity(0))
    assert intra_op_threads(1) == allowed and intra_op_threads(2) == max(1, allowed // 2)
    assert intra_op_threads(4 * allowed) == 1
    assert session_options(3).intra_op_num_threads == 3
    assert session_options().intra_op_num_threads == session_options(None).intra_op_num_threads
    with pytest.raises(ValueError) as info:
        session_options(0)
    assert str(info.value) == "intra_op_threads must be >= 1 thread or None, got 0."


@pytest.mark.slow
def test_workers_started_for_a_cancelled_startup_are_stopped(repo):
    """Ctrl-C while the workers warm up: the startup's wait is cancelled, and the workers it started stop."""
    settings = make_settings(model_repository=repo, workers=2)
    hub = StateHub(8)

    def workers_running() -> list:
        return [p for p in multiprocessing.active_children() if p.name.startswith("m2s-worker-")]

    async def cancel_while_starting() -> None:
        task = asyncio.ensure_future(start_workers(settings, hub, ServiceMetrics()))
        deadline = time.monotonic() + 30
        while not workers_running():
            assert time.monotonic() < deadline, "no worker process started"
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    assert not workers_running()
    asyncio.run(cancel_while_starting())
    deadline = time.monotonic() + 60  # they warm up, then the thread that started them stops them
    while workers_running():
        assert time.monotonic() < deadline, f"worker processes left running: {workers_running()}"
        time.sleep(0.1)
    hub.close()
