"""ONNX Runtime engine on the committed demo bundle: exact outputs, micro-batching, warm-up, providers, errors."""

import json
import logging
import os
import shutil
import threading
import time

import numpy as np
import onnxruntime as ort
import pytest

from models.bundle import BundleError, file_sha256
from models.repository import DEFAULT_REPOSITORY, DEMO_BUNDLE, ModelRepository
from service import engine as engine_module
from service.engine import InferenceEngine, default_providers
from tests.no_torch import run_without

SHAPES = {"eeg": (5, 310), "eye": (5, 33), "ecg": (5, 10)}  # (T, D) of the demo bundle, from its manifest
CPU = "CPUExecutionProvider"


@pytest.fixture(scope="module")
def repository():
    return ModelRepository(DEFAULT_REPOSITORY)


@pytest.fixture(scope="module")
def direct(repository):
    """Independent single-window reference: one plain ORT session per modality, no engine involved."""
    bundle = repository.load(DEMO_BUNDLE)
    sessions = {m: ort.InferenceSession(str(bundle.graph_path(m)), providers=[CPU]) for m in SHAPES}

    def run(modality, windows):
        windows = np.asarray(windows, dtype=np.float32)
        return np.concatenate([sessions[modality].run(None, {"window": w[None]})[0] for w in windows])

    return run


@pytest.fixture
def engine(repository):
    eng = InferenceEngine(repository)
    eng.load(DEMO_BUNDLE)
    yield eng
    eng.close()


class _Recorder:
    """Replaces ort.InferenceSession in the engine with a subclass that records every run() input."""

    def __init__(self, monkeypatch):
        self.runs = []  # (graph file name, input array)
        self.created = 0
        self.fail_next = False
        recorder = self

        class RecordingSession(ort.InferenceSession):
            def __init__(self, path, *args, **kwargs):
                super().__init__(path, *args, **kwargs)
                self.file = str(path).rsplit("/", 1)[-1]
                recorder.created += 1

            def run(self, output_names, input_feed, run_options=None):
                recorder.runs.append((self.file, np.array(input_feed["window"])))
                if recorder.fail_next:
                    recorder.fail_next = False
                    raise RuntimeError("injected ORT failure")
                return super().run(output_names, input_feed, run_options)

        monkeypatch.setattr(engine_module.ort, "InferenceSession", RecordingSession)


@pytest.fixture
def recorder(monkeypatch):
    return _Recorder(monkeypatch)


def _windows(rng, modality, n):
    return rng.normal(size=(n, *SHAPES[modality])).astype(np.float32)


def test_outputs_equal_direct_session(engine, direct):
    """Engine probabilities equal a plain single-window ORT run for random windows, every modality."""
    rng = np.random.default_rng(0)
    for modality in SHAPES:
        x = _windows(rng, modality, 7)
        np.testing.assert_allclose(engine.predict(DEMO_BUNDLE, modality, x), direct(modality, x), atol=1e-6)


def test_probabilities_sum_to_one(engine):
    """Each row is a probability distribution over the manifest's three classes."""
    x = _windows(np.random.default_rng(0), "eeg", 32) * 3
    p = engine.predict(f"{DEMO_BUNDLE}:1", "eeg", x)
    assert p.shape == (32, 3) and p.dtype == np.float32
    assert np.all(p >= 0)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)


def test_other_dtypes_are_converted_and_input_untouched(engine, direct):
    """float64 and int windows give the float32 result, and the caller's array is not modified."""
    rng = np.random.default_rng(0)
    x64 = rng.normal(size=(3, *SHAPES["ecg"]))
    before = x64.copy()
    np.testing.assert_allclose(engine.predict(DEMO_BUNDLE, "ecg", x64), direct("ecg", x64), atol=1e-6)
    np.testing.assert_array_equal(x64, before)
    ints = rng.integers(-3, 3, size=(2, *SHAPES["ecg"]))
    np.testing.assert_allclose(engine.predict(DEMO_BUNDLE, "ecg", ints), direct("ecg", ints), atol=1e-6)
    lists = x64[:1].tolist()
    np.testing.assert_allclose(engine.predict(DEMO_BUNDLE, "ecg", lists), direct("ecg", lists), atol=1e-6)


def test_concurrent_callers_get_their_own_rows_in_shared_runs(repository, recorder, direct):
    """16 threads with distinct inputs each get their own rows back, and fewer runs than requests happen."""
    eng = InferenceEngine(repository, max_wait_s=0.05)
    eng.load(DEMO_BUNDLE)
    warmups = len(recorder.runs)
    rng = np.random.default_rng(0)
    inputs = [_windows(rng, "eeg", 1 + i % 3) for i in range(16)]
    results = [None] * 16
    barrier = threading.Barrier(16)

    def call(i):
        barrier.wait()
        results[i] = eng.predict(DEMO_BUNDLE, "eeg", inputs[i])

    threads = [threading.Thread(target=call, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    eng.close()
    for x, p in zip(inputs, results, strict=True):
        np.testing.assert_allclose(p, direct("eeg", x), atol=1e-6)
    runs = recorder.runs[warmups:]
    stats = eng.stats()[(f"{DEMO_BUNDLE}:1", "eeg")]
    assert stats.n_runs == len(runs) < 16  # batched: some runs served several callers
    assert stats.n_requests == 16
    assert sum(len(x) for _, x in runs) == stats.n_windows == sum(len(x) for x in inputs)
    assert stats.max_batch_seen == max(len(x) for _, x in runs)


class _ObservedSession(ort.InferenceSession):
    """Records each run's batch size and thread; can hold the first real run until released."""

    sizes: list = []
    threads: list = []
    hold_run: int | None = None  # index (in sizes) of the run to hold
    started = threading.Event()
    release = threading.Event()

    def run(self, output_names, input_feed, run_options=None):
        cls = type(self)
        cls.sizes.append(len(input_feed["window"]))
        cls.threads.append(threading.current_thread().name)
        if len(cls.sizes) - 1 == cls.hold_run:
            cls.started.set()
            cls.release.wait(10)
        return super().run(output_names, input_feed, run_options)


@pytest.fixture
def observed(monkeypatch):
    session = type(
        "Observed",
        (_ObservedSession,),
        {"sizes": [], "threads": [], "started": threading.Event(), "release": threading.Event()},
    )
    monkeypatch.setattr(engine_module.ort, "InferenceSession", session)
    yield session
    session.release.set()


def test_lone_caller_runs_inline_in_its_own_thread(repository, observed, direct):
    """With max_wait_s=0 an idle session runs the caller's windows in the caller's thread, no batcher hand-off."""
    with InferenceEngine(repository, max_wait_s=0) as eng:
        eng.load(DEMO_BUNDLE)
        n_warmups = len(observed.sizes)
        x = _windows(np.random.default_rng(0), "eeg", 3)
        np.testing.assert_allclose(eng.predict(DEMO_BUNDLE, "eeg", x), direct("eeg", x), atol=1e-6)
        stats = eng.stats()[(f"{DEMO_BUNDLE}:1", "eeg")]
    assert observed.threads[n_warmups:] == [threading.current_thread().name]
    assert (stats.n_runs, stats.n_requests, stats.n_windows) == (1, 1, 3)


def test_callers_arriving_during_a_run_are_batched_together(repository, observed, direct):
    """While one run is busy, 8 more callers queue and the batcher serves them in one run when it ends."""
    observed.hold_run = 3  # the first run after the three warm-ups (eeg, eye, ecg)
    rng = np.random.default_rng(0)
    inputs = [_windows(rng, "ecg", 1) for _ in range(9)]
    results = [None] * 9
    with InferenceEngine(repository, max_wait_s=0) as eng:
        eng.load(DEMO_BUNDLE)

        def call(i):
            results[i] = eng.predict(DEMO_BUNDLE, "ecg", inputs[i])

        first = threading.Thread(target=call, args=(0,))
        first.start()
        assert observed.started.wait(10)
        others = [threading.Thread(target=call, args=(i,)) for i in range(1, 9)]
        for t in others:
            t.start()
        queue = eng._sessions[(f"{DEMO_BUNDLE}:1", "ecg")]._queue
        deadline = time.monotonic() + 10
        while queue.qsize() < 8 and time.monotonic() < deadline:
            time.sleep(0.01)
        observed.release.set()
        for t in [first, *others]:
            t.join(10)
    for x, p in zip(inputs, results, strict=True):
        np.testing.assert_allclose(p, direct("ecg", x), atol=1e-6)
    assert observed.sizes[3:] == [1, 8]
    assert observed.threads[4].startswith("m2s-batcher")


def test_large_request_is_split_at_max_batch(repository, recorder, direct):
    """A request larger than max_batch runs in chunks of at most max_batch windows, results in order."""
    with InferenceEngine(repository, max_batch=4, max_wait_s=0) as eng:
        eng.load(DEMO_BUNDLE)
        warmups = len(recorder.runs)
        x = _windows(np.random.default_rng(0), "eye", 10)
        np.testing.assert_allclose(eng.predict(DEMO_BUNDLE, "eye", x), direct("eye", x), atol=1e-6)
    assert [len(w) for _, w in recorder.runs[warmups:]] == [4, 4, 2]


def test_warm_up_runs_before_load_returns(repository, recorder):
    """load() returns only after one zero window of the manifest shape ran through every session."""
    with InferenceEngine(repository) as eng:
        loaded = eng.load(DEMO_BUNDLE)
        assert sorted(f for f, _ in recorder.runs) == ["ecg.onnx", "eeg.onnx", "eye.onnx"]
        for file, window in recorder.runs:
            assert window.shape == (1, *SHAPES[file.removesuffix(".onnx")])
            assert not window.any()
        assert set(loaded.providers) == set(SHAPES)
        assert all(s.warmup_s > 0 and s.n_runs == 0 for s in eng.stats().values())


def test_provider_reported_is_cpu_here(engine):
    """On this CPU-only onnxruntime the automatic choice and every session's provider is CPU."""
    assert "CUDAExecutionProvider" not in ort.get_available_providers()
    assert default_providers() == [CPU]
    assert engine.providers == [CPU]
    assert engine.get(DEMO_BUNDLE).providers == {m: CPU for m in SHAPES}


@pytest.mark.filterwarnings("ignore:Specified provider 'CUDAExecutionProvider' is not in available")
def test_silent_cuda_fallback_is_reported(repository, monkeypatch, caplog):
    """When CUDA is requested but ORT falls back to CPU, the provider in use (CPU) is reported and logged."""
    monkeypatch.setattr(engine_module.ort, "get_available_providers", lambda: ["CUDAExecutionProvider", CPU])
    assert default_providers() == ["CUDAExecutionProvider", CPU]
    with caplog.at_level(logging.WARNING, logger="service.engine"), InferenceEngine(repository) as eng:
        loaded = eng.load(DEMO_BUNDLE)
    assert eng.providers == ["CUDAExecutionProvider", CPU]
    assert loaded.providers == {m: CPU for m in SHAPES}
    assert "runs on CPUExecutionProvider although CUDAExecutionProvider was requested" in caplog.text


def test_unavailable_providers_are_dropped_or_refused(repository, caplog):
    """Providers this build lacks are dropped with a warning; if none is usable, or a name is unknown, it fails."""
    with caplog.at_level(logging.WARNING, logger="service.engine"):
        eng = InferenceEngine(repository, providers=["CUDAExecutionProvider", CPU])
    assert eng.providers == [CPU]
    assert "not available in this onnxruntime build" in caplog.text
    with pytest.raises(ValueError, match="none of the requested providers.*onnxruntime-gpu"):
        InferenceEngine(repository, providers=["CUDAExecutionProvider"])
    with pytest.raises(ValueError, match=r"unknown execution provider\(s\) \['GPU'\]"):
        InferenceEngine(repository, providers=["GPU"])
    with pytest.raises(ValueError, match="providers is empty; pass None"):
        InferenceEngine(repository, providers=[])
    with pytest.raises(TypeError, match="providers must be a list"):
        InferenceEngine(repository, providers=CPU)


def test_constructor_validation(repository):
    """Wrong repository type, max_batch < 1 and negative max_wait_s are refused."""
    with pytest.raises(TypeError, match="repository must be an instance of ModelRepository"):
        InferenceEngine(str(DEFAULT_REPOSITORY))
    with pytest.raises(ValueError, match="max_batch must be >= 1"):
        InferenceEngine(repository, max_batch=0)
    with pytest.raises(TypeError, match="max_batch must be an int"):
        InferenceEngine(repository, max_batch=True)
    with pytest.raises(ValueError, match="max_wait_s must be >= 0"):
        InferenceEngine(repository, max_wait_s=-0.1)


@pytest.mark.parametrize(
    ("ref", "modality", "windows", "error", "match"),
    [
        (
            "other-model",
            "eeg",
            np.zeros((1, 5, 310)),
            ValueError,
            r"'other-model' is not loaded; loaded models: m2s-synthetic-demo:1\. Load it with load",
        ),
        (f"{DEMO_BUNDLE}:2", "eeg", np.zeros((1, 5, 310)), ValueError, "loaded models: m2s-synthetic-demo:1"),
        ("bad ref!", "eeg", np.zeros((1, 5, 310)), ValueError, "invalid model reference 'bad ref!'"),
        (
            DEMO_BUNDLE,
            "emg",
            np.zeros((1, 5, 310)),
            ValueError,
            r"has no 'emg' model; its modalities are \['ecg', 'eeg', 'eye'\]",
        ),
        (
            DEMO_BUNDLE,
            "eeg",
            np.zeros((1, 5, 33)),
            ValueError,
            r"shape \(n, 5, 310\).*got shape \(1, 5, 33\)",
        ),
        (DEMO_BUNDLE, "eeg", np.zeros((5, 310)), ValueError, r"got shape \(5, 310\)\. For a single window"),
        (DEMO_BUNDLE, "eeg", np.zeros((0, 5, 310)), ValueError, "windows is empty"),
        (
            DEMO_BUNDLE,
            "eeg",
            np.pad(np.full((1, 5, 310), np.nan), ((1, 0), (0, 0), (0, 0))),
            ValueError,
            r"contain 1550 NaN or infinite value\(s\) \(windows \[1\]\)",
        ),
        (DEMO_BUNDLE, "eeg", np.full((1, 5, 310), 1e39), ValueError, "NaN or infinite.*fit in float32"),
        (DEMO_BUNDLE, "eeg", np.zeros((1, 5, 310), dtype=complex), TypeError, "got dtype complex128"),
        (DEMO_BUNDLE, "eeg", "window", TypeError, "must be an array of numbers"),
        (DEMO_BUNDLE, 3, np.zeros((1, 5, 310)), TypeError, "modality must be an instance of str"),
    ],
    ids=[
        "model",
        "version",
        "ref",
        "modality",
        "dim",
        "2d",
        "empty",
        "nan",
        "overflow",
        "complex",
        "str",
        "int",
    ],
)
def test_predict_errors(engine, ref, modality, windows, error, match):
    """Each bad predict() input raises a clear error saying what to fix."""
    with pytest.raises(error, match=match):
        engine.predict(ref, modality, windows)


def test_load_is_idempotent_and_thread_safe(repository, recorder):
    """Concurrent loads of 'name' and 'name:1' give one LoadedModel and one session per modality."""
    with InferenceEngine(repository) as eng:
        results = [None] * 8
        barrier = threading.Barrier(8)

        def load(i):
            barrier.wait()
            results[i] = eng.load(DEMO_BUNDLE if i % 2 else f"{DEMO_BUNDLE}:1")

        threads = [threading.Thread(target=load, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert all(r is results[0] for r in results)
        assert recorder.created == len(SHAPES)
        assert list(eng.models) == [f"{DEMO_BUNDLE}:1"]


def test_load_refuses_unknown_and_tampered_bundles(tmp_path):
    """Unknown names and checksum mismatches are BundleErrors from the repository."""
    shutil.copytree(DEFAULT_REPOSITORY, tmp_path, dirs_exist_ok=True)
    with InferenceEngine(ModelRepository(tmp_path)) as eng:
        with pytest.raises(BundleError, match="no model named 'nope'"):
            eng.load("nope")
        graph = tmp_path / DEMO_BUNDLE / "1" / "eye.onnx"
        graph.write_bytes(graph.read_bytes() + b"\0")
        with pytest.raises(BundleError, match=r"checksum mismatch for .*eye\.onnx"):
            eng.load(DEMO_BUNDLE)
        assert eng.models == {}


def test_graph_that_contradicts_manifest_is_refused(tmp_path):
    """A graph whose input shape differs from the manifest's (T, D) is refused at load, no threads left."""
    shutil.copytree(DEFAULT_REPOSITORY, tmp_path, dirs_exist_ok=True)
    folder = tmp_path / DEMO_BUNDLE / "1"
    shutil.copyfile(folder / "ecg.onnx", folder / "eye.onnx")  # eye graph now takes (batch, 5, 10)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["sha256"]["eye.onnx"] = file_sha256(folder / "eye.onnx")
    (folder / "manifest.json").write_text(json.dumps(manifest))
    before = {t.name for t in threading.enumerate()}
    with InferenceEngine(ModelRepository(tmp_path)) as eng:
        with pytest.raises(
            BundleError, match=r"expects windows of shape \(batch, 5, 10\).*says \(batch, 5, 33\)"
        ):
            eng.load(DEMO_BUNDLE)
    time.sleep(0.05)
    assert {t.name for t in threading.enumerate() if t.name.startswith("m2s-batcher")} <= before


@pytest.mark.parametrize("max_wait_s", [0, 0.001])  # inline run / batcher thread
def test_ort_failure_reaches_caller_and_batcher_survives(repository, recorder, direct, max_wait_s):
    """An exception inside session.run becomes the caller's RuntimeError; the next request still works."""
    with InferenceEngine(repository, max_wait_s=max_wait_s) as eng:
        eng.load(DEMO_BUNDLE)
        x = _windows(np.random.default_rng(0), "ecg", 2)
        recorder.fail_next = True
        with pytest.raises(RuntimeError, match="inference failed on m2s-synthetic-demo:1/ecg: injected"):
            eng.predict(DEMO_BUNDLE, "ecg", x)
        np.testing.assert_allclose(eng.predict(DEMO_BUNDLE, "ecg", x), direct("ecg", x), atol=1e-6)


def test_close_serves_queued_requests_and_joins_threads(repository, direct):
    """close() runs what is queued (cutting the batching wait short), joins the batchers and refuses new work."""
    eng = InferenceEngine(repository, max_wait_s=5.0)
    eng.load(DEMO_BUNDLE)
    x = _windows(np.random.default_rng(0), "eeg", 2)
    result = {}
    caller = threading.Thread(target=lambda: result.setdefault("p", eng.predict(DEMO_BUNDLE, "eeg", x)))
    caller.start()
    time.sleep(0.2)  # the request waits in the batcher for more company (up to 5 s)
    start = time.monotonic()
    eng.close()
    caller.join(5)
    assert time.monotonic() - start < 2.0
    np.testing.assert_allclose(result["p"], direct("eeg", x), atol=1e-6)
    assert not [t for t in threading.enumerate() if t.name.startswith("m2s-batcher[m2s-synthetic-demo:1/")]
    assert eng.closed
    eng.close()  # idempotent
    with pytest.raises(RuntimeError, match=r"predict\(\) called on a closed InferenceEngine"):
        eng.predict(DEMO_BUNDLE, "eeg", x)
    with pytest.raises(RuntimeError, match=r"load\(\) called on a closed InferenceEngine"):
        eng.load(DEMO_BUNDLE)


_WITHOUT_TORCH = r"""
import sys
import numpy as np
import service, service.config, service.engine
from models.repository import DEFAULT_REPOSITORY, ModelRepository
settings = service.config.Settings()
with service.engine.InferenceEngine(ModelRepository(settings.model_repository)) as engine:
    engine.load(settings.default_model)
    p = engine.predict(settings.default_model, 'ecg', np.zeros((2, 5, 10), np.float32))
assert p.shape == (2, 3)
assert not [m for m in sys.modules if m.split('.')[0] == 'torch']
print('ok')
"""


def test_service_core_works_without_torch():
    """service.config and service.engine import, load and predict in a process where torch cannot be imported."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("M2S_")}
    out = run_without(_WITHOUT_TORCH, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_offline_only_features_are_warned_about_once_per_load(tmp_path, caplog):
    """A bundle whose manifest says its features are not reproducible online loads with one warning."""
    from signals.normalisation import Normalisation
    from signals.spec import PpsSpec
    from tests.bundles import write_linear_bundle

    spec = PpsSpec(sfreq=128, channels=("GSR",))
    folder = write_linear_bundle(
        tmp_path, "offline", {"pps": (spec, 2, 1.0, Normalisation.identity(spec.n_features))}
    )
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["graphs"]["pps"]["reproducible_online"] = False  # e.g. a trial-baseline subtraction
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with (
        InferenceEngine(ModelRepository(tmp_path)) as eng,
        caplog.at_level(logging.WARNING, "service.engine"),
    ):
        eng.load("offline")
        eng.load("offline")  # cached: no second warning
    warnings = [r.getMessage() for r in caplog.records if "does not reproduce exactly" in r.getMessage()]
    assert len(warnings) == 1 and "offline:1/pps" in warnings[0]
