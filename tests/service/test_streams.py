"""Tests for service.streams: real pylsl outlets on loopback → StreamManager → real engine on the demo bundle.

Outlets push synthetic EEG (:mod:`synthetic`) faster than real time with explicit, regular timestamps
that end near "now", plus an extra ``INDEX`` channel holding the sample number: the model ignores it
(map_channels picks the spec's channels), the test uses it to know exactly which samples each window saw.
Expected probabilities come from an independent offline path: spec.compute on the received samples →
manifest normalisation → windows of T vectors at the training spacing → a fresh onnxruntime session.
"""

from __future__ import annotations

import threading
import time
import uuid

import numpy as np
import onnxruntime as ort
import pylsl
import pytest

from models.bundle import BundleError
from models.repository import DEFAULT_REPOSITORY, DEMO_BUNDLE, ModelRepository
from service.config import AttachRequest, Settings
from service.engine import InferenceEngine
from service.hub import StateHub
from service.lsl import LslStream
from service.metrics import ServiceMetrics
from service.schemas import EmotionState
from service.streams import StreamManager, _health
from signals.units import channel_factors, spec_channel_units
from synthetic import SyntheticConfig, generate_trial

SFREQ = 200.0
CHUNK = 20  # samples per push (0.1 s of signal)
SPEEDUP = 8.0  # signal seconds pushed per wall second


@pytest.fixture(scope="module")
def engine():
    """The real engine with the demo bundle loaded (shared: loading takes about a second)."""
    with InferenceEngine(ModelRepository(DEFAULT_REPOSITORY)) as eng:
        eng.load(DEMO_BUNDLE)
        yield eng


@pytest.fixture(scope="module")
def bundle(engine):
    return engine.get(DEMO_BUNDLE).bundle


@pytest.fixture(scope="module")
def eeg_trial():
    """40 s of synthetic EEG (62 channels, µV) at 200 Hz."""
    return generate_trial(SyntheticConfig(trial_duration_s=40), 0, 0, 0, modalities=("eeg",))


class _Recorder:
    """An LslStream factory that also keeps every chunk the manager receives (thread-safe).

    A chunk is recorded once the manager has processed it, so :meth:`wait_samples` returning means
    every state those samples produce has been published.
    """

    def __init__(self):
        self.lock = threading.Condition()
        self.chunks: list[tuple[np.ndarray, np.ndarray, float]] = []
        self.streams: list[LslStream] = []

    def __call__(self, selector, on_chunk, **kwargs):
        def recording(data, timestamps):
            chunk = (data.copy(), timestamps.copy(), time.perf_counter())
            try:
                on_chunk(data, timestamps)
            finally:
                with self.lock:
                    self.chunks.append(chunk)
                    self.lock.notify_all()

        stream = LslStream(selector, recording, **kwargs)
        self.streams.append(stream)
        return stream

    def arrays(self):
        with self.lock:
            return np.concatenate([c[0] for c in self.chunks], axis=1), np.concatenate(
                [c[1] for c in self.chunks]
            )

    def wait_samples(self, n, timeout=10):
        """Block until ``n`` samples have been received and processed."""
        with self.lock:
            if not self.lock.wait_for(lambda: sum(c[1].size for c in self.chunks) >= n, timeout):
                raise AssertionError(f"timed out after {timeout} s waiting for {n} samples")


class _Collector:
    """Publishes go to the real hub; this subscriber-free spy keeps them in order."""

    def __init__(self, hub: StateHub):
        self.states: list[EmotionState] = []
        self.lock = threading.Lock()
        original = hub.publish

        def publish(state):
            with self.lock:
                self.states.append(state)
            original(state)

        hub.publish = publish

    def snapshot(self) -> list[EmotionState]:
        with self.lock:
            return list(self.states)


def _eeg_outlet(trial, source_id, *, sfreq=SFREQ, unit="microvolts", shuffle=True):
    """A real outlet with the trial's 62 channels (shuffled order) plus INDEX, described in desc()."""
    labels = [*trial.channel_names["eeg"], "INDEX"]
    order = np.random.default_rng(0).permutation(len(labels)) if shuffle else np.arange(len(labels))
    info = pylsl.StreamInfo(f"m2s-test-{source_id[:8]}", "EEG", len(labels), sfreq, "double64", source_id)
    channels = info.desc().append_child("channels")
    for i in order:
        ch = channels.append_child("channel")
        ch.append_child_value("label", labels[i])
        ch.append_child_value("unit", "count" if labels[i] == "INDEX" else unit)
    return pylsl.StreamOutlet(info, chunk_size=CHUNK), order


def _push(outlet, order, signal, first, n, t_first, *, scale=1.0, sfreq=SFREQ):
    """Push samples ``first .. first + n`` (INDEX = sample number) stamped ``t_first + k / sfreq``, paced by SPEEDUP."""
    start = time.perf_counter()
    for k in range(0, n, CHUNK):
        idx = np.arange(first + k, first + min(k + CHUNK, n))
        rows = np.vstack([signal[:, idx] * scale, idx[np.newaxis].astype(float)])  # (63, m)
        outlet.push_chunk(np.ascontiguousarray(rows[order].T), list(t_first + (idx - first) / sfreq))
        delay = start + (k + CHUNK) / sfreq / SPEEDUP - time.perf_counter()
        if delay > 0:
            time.sleep(delay)


def _anchor(n, sfreq=SFREQ):
    """First timestamp so that ``n`` samples pushed at SPEEDUP are never stamped in the future."""
    return pylsl.local_clock() - n / sfreq * (1 - 1 / SPEEDUP)


def _wait_until(condition, timeout, what):
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _manager(engine, recorder, **settings):
    hub = StateHub(queue_size=64)
    collector = _Collector(hub)
    s = Settings(stale_after_s=settings.pop("stale_after_s", 0.5), resolve_timeout_s=1.0, **settings)
    return StreamManager(engine, hub, s, metrics=ServiceMetrics(), stream_factory=recorder), collector


def _offline(bundle, data, timestamps, index):
    """Expected probabilities keyed by window-end timestamp, with the INDEX range each window covers."""
    graph = bundle.manifest.graph("eeg")
    spec = graph.feature_spec
    frames = spec.compute(data, timestamps)
    feats = (frames.features - np.asarray(graph.normalisation.mean)) / np.asarray(graph.normalisation.std)
    step = round(graph.spacing_s / spec.hop_s)
    span = (graph.seq_len - 1) * step
    pos_of_time = {t: i for i, t in enumerate(timestamps)}
    windows, keys = [], []
    for j in range(span, len(frames)):
        sel = np.arange(j - span, j + 1, step)
        if np.all(frames.segments[sel] == frames.segments[j]) and np.isfinite(feats[sel]).all():
            windows.append(feats[sel])
            keys.append(float(frames.timestamps[j]))
    session = ort.InferenceSession(str(bundle.graph_path("eeg")), providers=["CPUExecutionProvider"])
    (probs,) = session.run(["probabilities"], {"window": np.asarray(windows, np.float32)})
    n_window = round(spec.window_s * spec.sfreq)
    covered = {}
    for key in keys:
        end = pos_of_time[key]
        first = end - (n_window - 1) - span * round(spec.hop_s * spec.sfreq)
        covered[key] = (index[first], index[end])
    return dict(zip(keys, probs, strict=True)), covered


def _received_in_spec_order(bundle, recorder, trial):
    data, timestamps = recorder.arrays()
    labels = [*trial.channel_names["eeg"], "INDEX"]
    order = np.random.default_rng(0).permutation(len(labels))
    stream_labels = [labels[i] for i in order]
    rows = [stream_labels.index(c) for c in bundle.manifest.graph("eeg").feature_spec.channels]
    return data[rows], timestamps, data[stream_labels.index("INDEX")]


# -- pure helpers -------------------------------------------------------------------------------------


def test_channel_factors_convert_voltages(bundle):
    """Volts, millivolts and microvolts streams get the factors that bring them to the spec's µV."""
    spec = bundle.manifest.graph("eeg").feature_spec
    n = len(spec.channels)
    assert np.allclose(channel_factors(["microvolts"] * n, spec), 1.0)
    assert np.allclose(channel_factors(["V"] * n, spec), 1e6)
    mixed = channel_factors(["mV"] + ["uV"] * (n - 1), spec)
    assert mixed[0] == pytest.approx(1e3) and np.allclose(mixed[1:], 1.0)


def test_channel_factors_refuse_unknown_voltage(bundle):
    """An EEG channel without a declared unit is refused: a wrong voltage scale would corrupt DE."""
    spec = bundle.manifest.graph("eeg").feature_spec
    units = ["uV"] * len(spec.channels)
    units[3] = "unknown"
    with pytest.raises(ValueError, match="channel 'AF3' declares no unit"):
        channel_factors(units, spec)
    units[3] = "deg"
    with pytest.raises(ValueError, match="channel 'AF3': cannot convert the stream's unit 'deg'"):
        channel_factors(units, spec)


def test_eye_units_per_channel(bundle, caplog):
    """The eye's 'deg,mm' means deg for gaze, mm for pupils, anything for validity; 'unknown' only warns."""
    spec = bundle.manifest.graph("eye").feature_spec
    assert spec_channel_units(spec) == ("deg", "deg", "mm", "mm", None)
    assert np.array_equal(channel_factors(["degrees", "deg", "millimeters", "mm", "bool"], spec), np.ones(5))
    with caplog.at_level("WARNING", logger="signals.units"):
        assert np.array_equal(channel_factors(["unknown"] * 5, spec), np.ones(5))
    assert "declare no unit" in caplog.text and "gaze_x" in caplog.text
    with pytest.raises(ValueError, match="channel 'pupil_left': cannot convert the stream's unit 'cm'"):
        channel_factors(["deg", "deg", "cm", "mm", "bool"], spec)
    with pytest.raises(TypeError, match="single string"):
        channel_factors("deg", spec)


def test_attach_validates_model_and_modality(engine):
    """Unknown model or a modality the bundle lacks fail at attach, with what exists."""
    manager = StreamManager(engine, StateHub(), Settings())
    with pytest.raises(BundleError, match="no 'pps' model; it has"):
        manager.attach(AttachRequest(modality="pps", type="PPS"))
    with pytest.raises(BundleError):
        manager.attach(AttachRequest(modality="eeg", type="EEG", model="no-such-model"))
    with pytest.raises(TypeError, match="request"):
        manager.attach({"modality": "eeg", "type": "EEG"})
    with pytest.raises(KeyError, match="no attached stream 'eeg-x'; attached streams: none"):
        manager.detach("eeg-x")
    manager.close()
    with pytest.raises(RuntimeError, match="closed StreamManager"):
        manager.attach(AttachRequest(modality="eeg", type="EEG"))
    assert manager.list() == []


# -- live streams -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_states_match_offline_path(engine, bundle, eeg_trial):
    """Each hop gives one state equal to the offline path on the same samples; lsl_time steps by the hop."""
    recorder = _Recorder()
    manager, collector = _manager(engine, recorder)
    source_id = uuid.uuid4().hex
    outlet, order = _eeg_outlet(eeg_trial, source_id)
    try:
        sid = manager.attach(AttachRequest(modality="eeg", source_id=source_id)).id
        _wait_until(lambda: manager.get(sid).connected, 10, "connection")
        n = int(18 * SFREQ)
        _push(outlet, order, eeg_trial.signals["eeg"], 0, n, _anchor(n))
        _wait_until(lambda: len(collector.snapshot()) >= 5, 10, "5 states")
        recorder.wait_samples(n)  # the last chunks reach the worker
        public = manager.get(sid)
        # The worker is told how many samples the next vector needs: 2 s windows, 2 s hop, 18 s received.
        assert recorder.streams[0].samples_wanted() == int(2 * SFREQ)
    finally:
        manager.close()
    states = collector.snapshot()
    data, timestamps, index = _received_in_spec_order(bundle, recorder, eeg_trial)
    assert np.array_equal(index, np.arange(n))  # every sample arrived once, in order
    expected, _ = _offline(bundle, data, timestamps, index)
    assert len(states) == len(expected) == 5  # windows end at 10, 12, ..., 18 s
    assert public.n_states == 5 and public.channels[0] == [*eeg_trial.channel_names["eeg"], "INDEX"][order[0]]
    assert public.sfreq == SFREQ and public.last_error is None
    times = [s.lsl_time for s in states]
    assert np.allclose(np.diff(times), 2.0, atol=1e-6)
    for s in states:
        assert s.stream_id == sid and s.modality == "eeg" and s.model.name == DEMO_BUNDLE
        probs = np.array(list(s.probabilities.values()))
        assert probs.sum() == pytest.approx(1.0, abs=1e-5)
        assert np.allclose(probs, expected[s.lsl_time], atol=1e-5)
        assert s.label == max(s.probabilities, key=s.probabilities.get)
        assert 0 < s.latency_ms < 1000 and -0.05 < s.data_age_s < 20  # pacing may run a few ms ahead


@pytest.mark.slow
def test_unit_conversion_and_rate_check(engine, bundle, eeg_trial):
    """A stream in volts predicts like the µV one; a 100 Hz stream gets last_error and no states."""
    recorder = _Recorder()
    manager, collector = _manager(engine, recorder)
    volts_id, slow_id = uuid.uuid4().hex, uuid.uuid4().hex
    volts, order = _eeg_outlet(eeg_trial, volts_id, unit="V")
    slow, _ = _eeg_outlet(eeg_trial, slow_id, sfreq=100.0)
    try:
        volts_sid = manager.attach(AttachRequest(modality="eeg", source_id=volts_id)).id
        slow_sid = manager.attach(AttachRequest(modality="eeg", source_id=slow_id)).id
        _wait_until(
            lambda: manager.get(volts_sid).connected and manager.get(slow_sid).connected, 10, "connections"
        )
        n = int(10 * SFREQ)
        t0 = _anchor(n)
        _push(slow, order, eeg_trial.signals["eeg"], 0, 400, t0, sfreq=100.0)
        _push(volts, order, eeg_trial.signals["eeg"], 0, n, t0, scale=1e-6)
        _wait_until(lambda: len(collector.snapshot()) >= 1, 10, "a state")
        slow_public, volts_public = manager.get(slow_sid), manager.get(volts_sid)
        manager._refresh_metrics()
        unusable = manager.metrics.stream_unusable
        gauges = {sid: unusable.labels(stream=sid)._value.get() for sid in (slow_sid, volts_sid)}
    finally:
        manager.close()
    (state,) = collector.snapshot()
    assert state.stream_id == volts_sid
    offline, _ = _offline(bundle, eeg_trial.signals["eeg"][:, :n], t0 + np.arange(n) / SFREQ, np.arange(n))
    (expected,) = offline.values()
    assert np.allclose(list(state.probabilities.values()), expected, atol=1e-5)
    assert slow_public.n_states == 0
    assert "runs at 100 Hz but the 'eeg' model needs 200 Hz" in slow_public.last_error
    # Connected, yet it can never produce a state: health says so (issue 18), and so do the metrics.
    assert slow_public.connected and slow_public.health == "unusable"
    assert volts_public.health in ("ok", "stale") and gauges == {slow_sid: 1.0, volts_sid: 0.0}


@pytest.mark.slow
def test_reconnect_never_spanned_and_stale_flag(engine, bundle, eeg_trial):
    """An outlet destroyed and recreated with the same source_id: stale appears and clears, states resume, no window spans the gap."""
    recorder = _Recorder()
    manager, collector = _manager(engine, recorder, stale_after_s=0.3)
    source_id = uuid.uuid4().hex
    outlet, order = _eeg_outlet(eeg_trial, source_id)
    signal = eeg_trial.signals["eeg"]
    try:
        sid = manager.attach(AttachRequest(modality="eeg", source_id=source_id)).id
        _wait_until(lambda: manager.get(sid).connected, 10, "connection")
        assert manager.get(sid).stale  # connected, no sample yet
        first = int(12 * SFREQ)
        _push(outlet, order, signal, 0, first, _anchor(first))
        _wait_until(lambda: len(collector.snapshot()) >= 2, 10, "2 states before the loss")
        del outlet  # the last reference: liblsl destroys the outlet
        _wait_until(lambda: manager.get(sid).stale, 5, "stale after the loss")
        outlet, _ = _eeg_outlet(eeg_trial, source_id)
        _wait_until(lambda: manager.get(sid).n_reconnects == 1, 15, "reconnection")
        second = int(12 * SFREQ)
        t_resume = recorder.arrays()[1][-1] + 1.0
        _push(outlet, order, signal, first, second, t_resume)
        _wait_until(lambda: not manager.get(sid).stale, 5, "stale to clear")
        _wait_until(lambda: len(collector.snapshot()) >= 4, 10, "2 states after the reconnection")
        recorder.wait_samples(first + second)
        health = manager.get(sid)  # a reconnection resets the pipeline: gaps count from it
        assert health.n_gaps == 0 and health.n_incomplete_segments == 0
    finally:
        manager.close()
    states = collector.snapshot()
    data, timestamps, index = _received_in_spec_order(bundle, recorder, eeg_trial)
    assert np.array_equal(index, np.arange(first + second))
    expected, covered = _offline(bundle, data, timestamps, index)
    assert len(states) == len(expected) == 4  # 10 and 12 s of data before the gap, and after it
    for s in states:
        lo, hi = covered[s.lsl_time]
        assert hi < first or lo >= first, f"window of samples {lo}..{hi} spans the gap at {first}"
        assert np.allclose(list(s.probabilities.values()), expected[s.lsl_time], atol=1e-5)
    assert covered[states[-1].lsl_time][0] >= first and not states[-1].stale


@pytest.mark.slow
def test_pause_never_spanned_and_stale_flag(engine, bundle, eeg_trial):
    """A pause makes the stream stale, then resumes: no window covers samples on both sides of it."""
    recorder = _Recorder()
    manager, collector = _manager(engine, recorder, stale_after_s=0.3)
    source_id = uuid.uuid4().hex
    outlet, order = _eeg_outlet(eeg_trial, source_id)
    signal = eeg_trial.signals["eeg"]
    try:
        sid = manager.attach(AttachRequest(modality="eeg", source_id=source_id)).id
        _wait_until(lambda: manager.get(sid).connected, 10, "connection")
        assert manager.get(sid).stale  # connected, no sample yet
        first = int(12 * SFREQ)
        _push(outlet, order, signal, 0, first, _anchor(first))
        _wait_until(lambda: len(collector.snapshot()) >= 2, 10, "2 states before the pause")
        _wait_until(lambda: manager.get(sid).stale, 5, "stale during the pause")
        second = int(16 * SFREQ)
        t_resume = recorder.arrays()[1][-1] + 1.0  # a 1 s jump in the timestamps
        _push(outlet, order, signal, first, second, t_resume)
        _wait_until(lambda: not manager.get(sid).stale, 5, "stale to clear")
        _wait_until(
            lambda: any(s.lsl_time > collector.snapshot()[1].lsl_time + 5 for s in collector.snapshot()),
            10,
            "states after the pause",
        )
        recorder.wait_samples(first + second)
        health = manager.get(sid)  # the pause is one gap; both stretches were long enough for windows
        assert health.n_gaps == 1 and health.n_incomplete_segments == 0
    finally:
        manager.close()
    states = collector.snapshot()
    data, timestamps, index = _received_in_spec_order(bundle, recorder, eeg_trial)
    assert np.array_equal(index, np.arange(first + second))
    expected, covered = _offline(bundle, data, timestamps, index)
    assert len(states) == len(expected) and len(states) >= 3
    for s in states:
        lo, hi = covered[s.lsl_time]
        assert hi < first or lo >= first, f"window of samples {lo}..{hi} spans the gap at {first}"
        assert np.allclose(list(s.probabilities.values()), expected[s.lsl_time], atol=1e-5)
        if s.data_age_s > 0.3 + 0.2:  # fast-forwarded data is old when it arrives: stale by definition
            assert s.stale
        if s.lsl_time > t_resume:  # resumed data is stamped ahead of the clock: fresh
            assert not s.stale
    assert covered[states[-1].lsl_time][0] >= first  # predictions resumed after the gap


# -- hot swap -----------------------------------------------------------------------------------------


def _personal_copy(root, bundle, name):
    """The demo bundle under another name with a shifted EEG normalisation (same graphs, same spec)."""
    import shutil

    from models.bundle import write_manifest
    from signals.normalisation import Normalisation

    folder = root / name / "1"
    shutil.copytree(bundle.path, folder)
    graph = bundle.manifest.graph("eeg")
    old = graph.normalisation
    norm = Normalisation(mean=np.add(old.mean, 0.5 * np.asarray(old.std)).tolist(), std=list(old.std))
    graphs = {**bundle.manifest.graphs, "eeg": graph.model_copy(update={"normalisation": norm})}
    write_manifest(folder, bundle.manifest.model_copy(update={"name": name, "graphs": graphs}))
    return folder


@pytest.fixture(scope="module")
def swap_engine(tmp_path_factory, bundle):
    """An engine on a repository holding the demo bundle, a personal copy and a bundle with another EEG spec."""
    import shutil

    from signals.normalisation import Normalisation
    from signals.spec import DESpec
    from tests.bundles import write_linear_bundle

    root = tmp_path_factory.mktemp("swap-repository")
    shutil.copytree(bundle.path, root / DEMO_BUNDLE / "1")
    _personal_copy(root, bundle, "demo-p1")
    demo_spec = bundle.manifest.graph("eeg").feature_spec
    spec = DESpec(modality="eeg", sfreq=SFREQ, channels=demo_spec.channels[:3], window_s=1.0, hop_s=1.0)
    write_linear_bundle(
        root, "other-spec", {"eeg": (spec, 2, 1.0, Normalisation.identity(spec.n_features))},
        class_names=tuple(bundle.manifest.class_names),
    )  # fmt: skip
    far = DESpec(modality="eeg", sfreq=SFREQ, channels=("NOT-A-CHANNEL",), window_s=1.0, hop_s=1.0)
    write_linear_bundle(root, "unfeedable", {"eeg": (far, 2, 1.0, Normalisation.identity(far.n_features))})
    with InferenceEngine(ModelRepository(root)) as eng:
        eng.load(DEMO_BUNDLE)
        yield eng


@pytest.mark.slow
def test_hot_swap_keeps_the_inlet_and_misses_no_state(swap_engine, eeg_trial):
    """PATCH's engine: between two chunks the stream switches model; same spec -> the next state comes one hop
    after the last (new normalisation already applied); another spec -> a fresh pipeline; never a reconnect."""
    recorder = _Recorder()
    manager, collector = _manager(swap_engine, recorder)
    source_id = uuid.uuid4().hex
    outlet, order = _eeg_outlet(eeg_trial, source_id)
    signal = eeg_trial.signals["eeg"]
    n1, n2, n3 = int(12 * SFREQ), int(6 * SFREQ), int(4 * SFREQ)
    t0 = _anchor(n1 + n2 + n3)
    try:
        sid = manager.attach(AttachRequest(modality="eeg", source_id=source_id)).id
        _wait_until(lambda: manager.get(sid).connected, 10, "connection")
        _push(outlet, order, signal, 0, n1, t0)
        recorder.wait_samples(n1)
        pipeline = manager._streams[sid].pipeline
        with pytest.raises(ValueError, match="cannot be fed|channel"):
            manager.swap(sid, "unfeedable:1")  # refused: nothing changes
        assert manager.get(sid).model.name == DEMO_BUNDLE and manager._streams[sid].pipeline is pipeline
        with pytest.raises(BundleError):
            manager.swap(sid, "no-such-model")
        with pytest.raises(KeyError, match="no attached stream 'eeg-x'"):
            manager.swap("eeg-x", "demo-p1:1")
        public = manager.swap(sid, "demo-p1:1")
        assert public.model.name == "demo-p1" and manager._streams[sid].pipeline is pipeline
        _push(outlet, order, signal, n1, n2, t0 + n1 / SFREQ)
        recorder.wait_samples(n1 + n2)
        n_personal = len(collector.snapshot())
        assert manager.swap(sid, "other-spec:1").model.name == "other-spec"
        assert manager._streams[sid].pipeline is not pipeline
        _push(outlet, order, signal, n1 + n2, n3, t0 + (n1 + n2) / SFREQ)
        recorder.wait_samples(n1 + n2 + n3)
        final = manager.get(sid)
    finally:
        manager.close()
    states = collector.snapshot()
    names = [s.model.name for s in states]
    demo = [s for s in states if s.model.name == DEMO_BUNDLE]
    personal = [s for s in states if s.model.name == "demo-p1"]
    other = [s for s in states if s.model.name == "other-spec"]
    assert names == [DEMO_BUNDLE] * len(demo) + ["demo-p1"] * len(personal) + ["other-spec"] * len(other)
    assert len(demo) == 2 and len(personal) == 3 and len(other) >= 1 and n_personal == 5
    assert personal[0].lsl_time - demo[-1].lsl_time == pytest.approx(2.0, abs=1e-6)  # one hop: none missed
    # The personal states are the offline path with the personal normalisation on the same samples.
    data, timestamps, index = _received_in_spec_order(
        swap_engine.get(DEMO_BUNDLE).bundle, recorder, eeg_trial
    )
    expected, _ = _offline(swap_engine.load("demo-p1:1").bundle, data, timestamps, index)
    for s in personal:
        assert np.allclose(list(s.probabilities.values()), expected[s.lsl_time], atol=1e-5)
    # Another spec restarts the windows: its first state needs a whole window (2 vectors of 1 s) of new data.
    assert other[0].lsl_time > personal[-1].lsl_time
    assert final.n_reconnects == 0 and len(recorder.streams) == 1 and final.last_error is None


@pytest.mark.parametrize(
    ("connected", "stale", "unusable", "failing", "health"),
    [
        (False, True, False, False, "connecting"),
        (True, False, True, False, "unusable"),  # fresh data that can never make a state
        (True, True, True, True, "unusable"),  # the cause outranks its symptoms
        (True, True, False, True, "stale"),
        (True, False, False, True, "failing"),  # data flows, every chunk fails: not 'ok'
        (True, False, False, False, "ok"),
    ],
)
def test_health_names_why_no_state_comes(connected, stale, unusable, failing, health):
    """StreamPublic.health from the worker's flags (issue 18: a stream that cannot produce states looked healthy)."""
    assert _health(connected, stale, unusable, failing) == health
