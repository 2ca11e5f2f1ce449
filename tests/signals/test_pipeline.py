"""The feature pipeline: live windows equal the windows training cuts, normalised as in the manifest, never across a gap."""

import logging
from pathlib import Path

import numpy as np
import pytest

from models.bundle import ModalityGraph
from models.repository import DEFAULT_REPOSITORY, DEMO_BUNDLE, ModelRepository
from signals.channels import map_channels
from signals.pipeline import WindowReady, window_ends
from signals.spec import DESpec, PpsSpec, SmoothingSpec
from signals.streaming import FeatureFrames
from signals.units import unit_scale
from synthetic import SyntheticConfig, generate_trial
from tests.no_torch import run_without

T0 = 1000.0  # LSL clocks do not start at zero
LOGGER = "signals.pipeline"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bundle():
    return ModelRepository(DEFAULT_REPOSITORY).load(DEMO_BUNDLE)


@pytest.fixture(scope="module")
def trial():
    return generate_trial(SyntheticConfig(), 0, 0, 0, modalities=("eeg", "eye", "ecg"))


def _graph(base, **update):
    """A validated copy of ``base`` with some fields replaced (nested models as dicts)."""
    data = base.model_dump(mode="json")
    data.update(update)
    return ModalityGraph.model_validate(data)


def _random_normalisation(dim, seed=0):
    rng = np.random.default_rng(seed)
    return {"mean": rng.normal(0, 3, dim).tolist(), "std": rng.uniform(0.5, 2.0, dim).tolist()}


def _recording(trial, modality):
    x = trial.signals[modality]
    return x, T0 + np.arange(x.shape[1]) / trial.sfreq[modality]


def _feed(pipeline, x, ts, rng, max_chunk):
    """Push ``x`` in random chunk sizes; collect every window."""
    out, i = [], 0
    while i < x.shape[1]:
        n = int(rng.integers(1, max_chunk + 1))
        out += pipeline.push(x[:, i : i + n], ts[i : i + n])
        i += n
    return out


def _reference_windows(graph, x, ts):
    """Offline: features of the whole recording, manifest z-scoring, windows of T vectors ``step`` apart.

    A window ending at vector ``e`` exists when its ``(T - 1) * step + 1`` vectors all come from one
    segment and are all finite. Returns windows (n, T, D), end times (n,), segments (n,).
    """
    spec = graph.feature_spec
    frames = spec.compute(x, ts)
    step = round(graph.spacing_s / spec.hop_s)
    span = (graph.seq_len - 1) * step
    z = (frames.features - np.array(graph.normalisation.mean)) / np.array(graph.normalisation.std)
    finite = np.isfinite(frames.features).all(axis=1)
    windows, times, segments = [], [], []
    for end in range(span, len(frames)):
        first = end - span
        if frames.segments[first] != frames.segments[end] or not finite[first : end + 1].all():
            continue
        windows.append(z[first : end + 1 : step])
        times.append(frames.timestamps[end])
        segments.append(frames.segments[end])
    shape = (-1, graph.seq_len, graph.dim)
    return (np.array(windows).reshape(shape), np.array(times), np.array(segments, dtype=int))


def _assert_same_windows(emitted, reference):
    windows, times, segments = reference
    assert len(emitted) == len(windows) > 0
    np.testing.assert_allclose(np.stack([w.window for w in emitted]), windows, atol=1e-5, rtol=0)
    np.testing.assert_array_equal([w.lsl_time for w in emitted], times)
    np.testing.assert_array_equal([w.segment for w in emitted], segments)


@pytest.mark.parametrize("modality", ["eeg", "eye", "ecg"])
def test_matches_offline_reference(bundle, trial, modality):
    """Each demo modality, fed in random chunks, emits exactly the offline windows of the manifest."""
    graph = bundle.manifest.graph(modality)
    x, ts = _recording(trial, modality)
    emitted = _feed(
        graph.feature_pipeline(live=True),
        x,
        ts,
        np.random.default_rng(0),
        max_chunk=int(3 * graph.feature_spec.sfreq),
    )
    _assert_same_windows(emitted, _reference_windows(graph, x, ts))
    assert all(w.window.dtype == np.float32 and w.window.shape == (graph.seq_len, graph.dim) for w in emitted)


def test_set_normalisation_applies_from_the_next_window(bundle, trial):
    """Switching the statistics mid-stream keeps the live state: the next window comes one vector later,
    normalised with the new statistics (the kept vectors are raw); a wrong size is refused."""
    from signals.normalisation import Normalisation

    graph = bundle.manifest.graph("ecg")
    other = _graph(graph, normalisation=_random_normalisation(graph.dim, seed=3))
    x, ts = _recording(trial, "ecg")
    half = x.shape[1] // 2
    pipeline = graph.feature_pipeline(live=True)
    first = _feed(pipeline, x[:, :half], ts[:half], np.random.default_rng(1), 500)
    pipeline.set_normalisation(other.normalisation)
    second = _feed(pipeline, x[:, half:], ts[half:], np.random.default_rng(2), 500)
    old_ref, new_ref = _reference_windows(graph, x, ts), _reference_windows(other, x, ts)
    n = len(first)
    assert n > 0 and len(second) > 0 and n + len(second) == len(old_ref[0])
    np.testing.assert_allclose(np.stack([w.window for w in first]), old_ref[0][:n], atol=1e-5, rtol=0)
    np.testing.assert_allclose(np.stack([w.window for w in second]), new_ref[0][n:], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="the normalisation has 2 values but the 'ecg' spec gives"):
        pipeline.set_normalisation(Normalisation.identity(2))
    with pytest.raises(TypeError, match="normalisation must be a Normalisation"):
        pipeline.set_normalisation({"mean": [0.0]})


def _ecg_de_graph(bundle, hop_s, spacing_s, seq_len):
    spec = DESpec(modality="ecg", sfreq=256, channels=("ECG1", "ECG2"), unit="mV", window_s=2, hop_s=hop_s)
    return _graph(
        bundle.manifest.graph("ecg"),
        feature_spec=spec.model_dump(mode="json"),
        seq_len=seq_len,
        spacing_s=spacing_s,
        normalisation=_random_normalisation(spec.n_features),
    )


@pytest.mark.parametrize(
    ("hop_s", "spacing_s", "seq_len", "step"), [(1.0, 2.0, 5, 2), (1.0, 3.0, 4, 3), (2.0, 4.0, 5, 2)]
)
def test_spacing_a_multiple_of_the_hop(bundle, trial, hop_s, spacing_s, seq_len, step):
    """With spacing = k hops, each window takes every k-th vector and a window comes every hop."""
    graph = _ecg_de_graph(bundle, hop_s, spacing_s, seq_len)
    pipeline = graph.feature_pipeline(live=True)
    assert pipeline.step == step
    x, ts = _recording(trial, "ecg")
    emitted = _feed(pipeline, x, ts, np.random.default_rng(1), max_chunk=700)
    _assert_same_windows(emitted, _reference_windows(graph, x, ts))
    np.testing.assert_allclose(np.diff([w.lsl_time for w in emitted]), hop_s)
    # Window k+step starts with the vector window k had second: entries really are `step` hops apart.
    np.testing.assert_array_equal(emitted[step].window[:-1], emitted[0].window[1:])


def _index_graph(bundle, *, sfreq=10.0, window_s=1.0, hop_s=0.5, spacing_s=1.0, seq_len=3):
    """A graph whose features are the min and max sample value of each window (identity normalisation)."""
    spec = PpsSpec(
        modality="ecg",
        sfreq=sfreq,
        channels=("index",),
        window_s=window_s,
        hop_s=hop_s,
        statistics=("min", "max"),
    )
    return _graph(
        bundle.manifest.graph("ecg"),
        feature_spec=spec.model_dump(mode="json"),
        dim=2,
        seq_len=seq_len,
        spacing_s=spacing_s,
        normalisation={"mean": [0.0, 0.0], "std": [1.0, 1.0]},
    )


def test_samples_until_next_vector_counts_down_to_each_vector(bundle):
    """The hint the LSL worker waits on: exactly the samples that complete the next vector, after any chunking."""
    graph = _index_graph(bundle)  # window 10 samples, hop 5
    pipeline = graph.feature_pipeline(live=True)
    assert pipeline.samples_until_next_vector == 10
    index = np.arange(40, dtype=float)[None]
    ts = T0 + np.arange(40) / 10.0
    pipeline.push(index[:, :7], ts[:7])
    assert pipeline.samples_until_next_vector == 3
    pipeline.push(index[:, 7:10], ts[7:10])  # completes the first window
    assert pipeline.samples_until_next_vector == 5
    pipeline.push(index[:, 10:14], ts[10:14])
    assert pipeline.samples_until_next_vector == 1
    pipeline.push(index[:, 14:20] * np.nan, ts[14:20])  # a NaN burst: a new segment, a whole window again
    assert pipeline.samples_until_next_vector == 10


def test_gap_restarts_the_window(bundle):
    """After a timestamp gap the first window waits T*spacing-ish again and no window holds samples from both sides."""
    graph = _index_graph(bundle)  # window 1 s, hop 0.5 s, T = 3 vectors 1 s apart
    sfreq, n, gap_at = 10.0, 300, 137
    index = np.arange(n, dtype=float)[None]  # the sample index is the signal
    ts = T0 + np.arange(n) / sfreq
    ts[gap_at:] += 5.0
    emitted = _feed(graph.feature_pipeline(live=True), index, ts, np.random.default_rng(2), max_chunk=25)
    first_sample = np.array([w.window[0, 0] for w in emitted])  # min of the oldest vector's window
    last_sample = np.array([w.window[-1, 1] for w in emitted])  # max of the newest vector's window
    crosses = (first_sample < gap_at) & (last_sample >= gap_at)
    assert not crosses.any()
    # Every window covers (T-1)*spacing + window of contiguous samples, and ends at its lsl_time.
    np.testing.assert_array_equal(last_sample - first_sample, 2 * 10 + 10 - 1)
    np.testing.assert_allclose([ts[int(s)] for s in last_sample], [w.lsl_time for w in emitted])
    after = [w for w in emitted if w.segment == 2]
    expected_first = ts[gap_at] + (10 - 1) / sfreq + (graph.seq_len - 1) * graph.spacing_s
    assert after[0].lsl_time == pytest.approx(expected_first)
    assert {w.segment for w in emitted} == {1, 2}
    # One window per hop on each side: (segment length - span) / hop + 1.
    assert len(emitted) - len(after) == (gap_at - 30) // 5 + 1
    assert len(after) == (n - gap_at - 30) // 5 + 1


def test_gaps_and_incomplete_segments_are_counted(bundle):
    """Gaps closer together than one window's needs leave incomplete segments, counted for stream health."""
    graph = _index_graph(bundle)  # window 1 s, hop 0.5 s, T = 3 vectors 1 s apart: 3 s gap-free per window
    pipeline = graph.feature_pipeline(live=True)
    sfreq, n = 10.0, 400
    ts = T0 + np.arange(n) / sfreq
    for at in (100, 120, 140):  # gaps after 10 s, then 2-s stretches, then 26 s
        ts[at:] += 1.0
    emitted = _feed(pipeline, np.arange(n, dtype=float)[None], ts, np.random.default_rng(4), max_chunk=7)
    assert pipeline.n_gaps_ == 3
    assert pipeline.n_incomplete_segments_ == 2  # the two 2-s stretches
    assert {w.segment for w in emitted} == {1, 4}
    pipeline.reset()
    assert pipeline.n_gaps_ == 0 and pipeline.n_incomplete_segments_ == 0


def test_nan_burst_is_a_gap(bundle, trial):
    """NaN samples end the segment: windows match the offline reference and none overlaps the burst."""
    graph = bundle.manifest.graph("eeg")
    spec = graph.feature_spec
    x, ts = _recording(trial, "eeg")
    x = x.copy()
    start, stop = int(25.3 * spec.sfreq), int(26.1 * spec.sfreq)
    x[7, start:stop] = np.nan
    emitted = _feed(graph.feature_pipeline(live=True), x, ts, np.random.default_rng(3), max_chunk=500)
    _assert_same_windows(emitted, _reference_windows(graph, x, ts))
    extent = (graph.seq_len - 1) * graph.spacing_s + spec.window_s - 1 / spec.sfreq
    for w in emitted:
        assert w.lsl_time < ts[start] or w.lsl_time - extent >= ts[stop] - 1e-9
    after = [w for w in emitted if w.lsl_time > ts[start]]
    assert after[0].lsl_time == pytest.approx(ts[stop] + extent)


def test_flat_channel_never_emits_minus_inf(bundle, trial, caplog):
    """A zero channel gives -inf DE: its windows are dropped and one warning per flat stretch is logged."""
    graph = bundle.manifest.graph("ecg")
    spec = graph.feature_spec
    x, ts = _recording(trial, "ecg")
    x = x.copy()
    for a, b in ((10, 22), (34, 44)):  # two lead-off stretches (s)
        x[0, int(a * spec.sfreq) : int(b * spec.sfreq)] = 0.0
    frames = spec.compute(x, ts)
    n_bad = int((~np.isfinite(frames.features).all(axis=1)).sum())
    assert n_bad > 4 and np.isneginf(frames.features).any()  # the test really produces -inf vectors
    pipeline = graph.feature_pipeline(live=True)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        emitted = _feed(pipeline, x, ts, np.random.default_rng(4), max_chunk=600)
    _assert_same_windows(emitted, _reference_windows(graph, x, ts))
    assert all(np.isfinite(w.window).all() for w in emitted)
    assert pipeline.n_nonfinite_ == n_bad
    assert pipeline.n_windows_ == len(emitted)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert all("-inf" in r.getMessage() and "ECG1:delta" in r.getMessage() for r in warnings)
    assert sum("finite again" in r.getMessage() for r in caplog.records) == 2


def test_nonfinite_vector_clears_the_window(bundle):
    """A single non-finite vector (NaN HRV-like) makes the pipeline wait for (T-1)*step+1 finite vectors."""
    graph = _index_graph(bundle)  # 3 vectors, step 2: 5 vectors kept
    pipeline = graph.feature_pipeline(live=True)
    n = 200
    ts = T0 + np.arange(n) / 10.0
    frames = graph.feature_spec.compute(np.arange(n, dtype=float)[None], ts)
    bad_vector = 12
    features = frames.features.copy()
    features[bad_vector, 1] = np.nan
    cut = pipeline.cut(FeatureFrames(features, frames.timestamps, frames.segments))
    assert cut.ends.tolist() == list(range(4, bad_vector)) + list(range(bad_vector + 5, len(frames)))
    finite = np.isfinite(features).all(axis=1)
    assert window_ends(frames.segments, finite, graph.seq_len, pipeline.step).tolist() == cut.ends.tolist()


def test_window_ends_stride_counts_from_each_run():
    """Training's stride keeps every k-th window of each run of valid windows, restarting after an edge."""
    segments = np.array([1] * 10 + [2] * 7)
    finite = np.ones(17, dtype=bool)
    finite[4] = False
    # T=3, step 1: run 1 is vectors 0-3 (windows end at 2, 3), run 2 is 5-9 (7, 8, 9), run 3 is 10-16.
    assert window_ends(segments, finite, 3).tolist() == [2, 3, 7, 8, 9, *range(12, 17)]
    assert window_ends(segments, finite, 3, stride=2).tolist() == [2, 7, 9, 12, 14, 16]
    assert window_ends(segments, finite, 2, step=2).tolist() == [2, 3, 7, 8, 9, *range(12, 17)]
    assert window_ends(segments[:2], finite[:2], 3).tolist() == []
    with pytest.raises(ValueError, match="seq_len, step and stride must be >= 1, got 0, 1 and 1"):
        window_ends(segments, finite, 0)
    with pytest.raises(ValueError, match="must both have shape \\(W,\\)"):
        window_ends(segments, finite[:3], 2)


def test_mapped_and_scaled_stream_gives_the_same_windows(bundle, trial):
    """A stream with shuffled, differently-cased, extra channels in volts feeds the model like the spec's layout."""
    graph = bundle.manifest.graph("ecg")
    x, ts = _recording(trial, "ecg")
    rng = np.random.default_rng(5)
    stream_channels = ["resp", "ecg2", "Ecg1"]
    stream = np.stack([rng.standard_normal(x.shape[1]), x[1] * 1e-3, x[0] * 1e-3])  # mV -> V
    rows = map_channels(stream_channels, graph.feature_spec.channels)
    np.testing.assert_array_equal(rows, [2, 1])
    factor = unit_scale("volts", graph.feature_spec.unit)
    assert factor == pytest.approx(1e3)
    emitted = graph.feature_pipeline(live=True).push(stream[rows] * factor, ts)
    _assert_same_windows(emitted, _reference_windows(graph, x, ts))


def test_map_channels_lists_missing():
    """Missing channels are all named, with what the stream has."""
    with pytest.raises(ValueError, match=r"lacks 2 channel\(s\).*\['Cz', 'Pz'\].*has \['Fz', 'Oz'\]"):
        map_channels(["Fz", "Oz"], ["Fz", "Cz", "Pz"])


def test_map_channels_refuses_ambiguous_labels():
    """Two stream channels that differ only in case cannot both be the spec channel."""
    with pytest.raises(ValueError, match=r"ambiguous.*'Fz': \['FZ', 'fz'\]"):
        map_channels(["FZ", "fz", "Cz"], ["Fz", "Cz"])


def test_map_channels_is_exact_apart_from_case():
    """Whitespace or prefixes are not ignored: 'EEG Fz' is not 'Fz'."""
    with pytest.raises(ValueError, match=r"\['Fz'\]"):
        map_channels(["EEG Fz", "Fz "], ["Fz"])


def test_map_channels_types():
    """A single string or non-string label is a TypeError."""
    with pytest.raises(TypeError, match="single string 'Fz'"):
        map_channels("Fz", ["Fz"])
    with pytest.raises(TypeError, match="every entry of spec_channels must be an instance of str"):
        map_channels(["Fz"], ["Fz", 3])


@pytest.mark.parametrize(
    ("stream_unit", "spec_unit", "factor"),
    [
        ("uV", "uV", 1.0),
        ("µV", "uV", 1.0),  # micro sign U+00B5
        ("\u03bcV", "uV", 1.0),  # Greek mu
        ("microvolts", "uV", 1.0),
        ("Microvolt", "µV", 1.0),
        ("V", "uV", 1e6),
        ("volts", "mV", 1e3),
        ("millivolts", "uV", 1e3),
        ("mV", "V", 1e-3),
        ("uV", "mV", 1e-3),
        ("nV", "uV", 1e-3),
        ("native", "native", 1.0),
        ("a.u.", "A.U.", 1.0),
        ("deg,mm", "deg,mm", 1.0),
        ("degrees", "deg", 1.0),  # one alias table for every input
        ("millimetres", "mm", 1.0),
    ],
)
def test_unit_scale(stream_unit, spec_unit, factor):
    """Known spellings convert with the right factor; other units only to themselves."""
    assert unit_scale(stream_unit, spec_unit) == pytest.approx(factor, rel=1e-12)


@pytest.mark.parametrize(
    ("stream_unit", "spec_unit", "match"),
    [
        ("uV", "native", "no physical scale"),
        ("a.u.", "native", "no physical scale"),
        ("deg", "uV", "voltages convert between"),
        ("uS", "uV", "'uS' to the model's unit 'uV'"),
        ("", "uV", "declares no unit"),
    ],
)
def test_unit_scale_errors(stream_unit, spec_unit, match):
    """Incompatible or missing units are refused with what to do."""
    with pytest.raises(ValueError, match=match):
        unit_scale(stream_unit, spec_unit)


def test_unit_scale_types():
    """A unit must be a string."""
    with pytest.raises(TypeError, match="stream_unit must be an instance of str"):
        unit_scale(None, "uV")


def test_attributes_come_from_the_manifest(bundle):
    """channels, sfreq, unit, T, D and step are the manifest's."""
    graph = bundle.manifest.graph("eeg")
    pipeline = graph.feature_pipeline(live=True)
    assert pipeline.channels == graph.feature_spec.channels and len(pipeline.channels) == 62
    assert (pipeline.sfreq, pipeline.unit) == (200.0, "uV")
    assert (pipeline.seq_len, pipeline.dim, pipeline.step) == (5, 310, 1)


def test_reset_forgets_everything(bundle, trial):
    """After reset the same input gives the same windows as a fresh pipeline, segments counted from 1."""
    graph = bundle.manifest.graph("ecg")
    x, ts = _recording(trial, "ecg")
    pipeline = graph.feature_pipeline(live=True)
    first = pipeline.push(x[:, : x.shape[1] // 2], ts[: x.shape[1] // 2])
    pipeline.reset()
    assert pipeline.n_windows_ == 0
    again = pipeline.push(x[:, : x.shape[1] // 2], ts[: x.shape[1] // 2])
    assert len(again) == len(first) > 0
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a.window, b.window)
        assert (a.lsl_time, a.segment) == (b.lsl_time, b.segment) == (a.lsl_time, 1)


def test_window_is_read_only(bundle, trial):
    """Emitted windows cannot be modified by a consumer."""
    graph = bundle.manifest.graph("ecg")
    window = graph.feature_pipeline(live=True).push(*_recording(trial, "ecg"))[0]
    assert isinstance(window, WindowReady)
    with pytest.raises(ValueError, match="read-only"):
        window.window[0, 0] = 0.0


def test_empty_push(bundle):
    """An empty LSL pull gives no windows."""
    pipeline = bundle.manifest.graph("ecg").feature_pipeline(live=True)
    assert pipeline.push(np.empty((2, 0)), np.empty(0)) == []


def test_push_validates_shapes(bundle):
    """Wrong channel count, wrong dimensions and mismatched timestamps are refused."""
    pipeline = bundle.manifest.graph("ecg").feature_pipeline(live=True)
    with pytest.raises(ValueError, match=r"n_channels=2, n_times\) with rows \[ECG1, ECG2\].*got \(3, 10\)"):
        pipeline.push(np.zeros((3, 10)), np.arange(10.0))
    with pytest.raises(ValueError, match="2-D"):
        pipeline.push(np.zeros(10), np.arange(10.0))
    with pytest.raises(ValueError, match="one timestamp per sample"):
        pipeline.push(np.zeros((2, 10)), np.arange(9.0))


def test_offline_only_features_are_refused(bundle):
    """A graph trained on offline-smoothed (LDS) features cannot run live."""
    graph = bundle.manifest.graph("ecg")
    spec = graph.feature_spec.model_copy(update={"smoothing": SmoothingSpec(method="lds")})
    offline = _graph(graph, feature_spec=spec.model_dump(mode="json"), reproducible_online=False)
    with pytest.raises(ValueError, match="cannot run on a live stream.*'lds'"):
        offline.feature_pipeline(live=True)


def test_imports_without_torch():
    """The feature pipeline is built from the demo bundle in a process that cannot import torch."""
    code = (
        "import sys\n"
        "import numpy as np\n"
        "from models.repository import DEFAULT_REPOSITORY, DEMO_BUNDLE, ModelRepository\n"
        "graph = ModelRepository(DEFAULT_REPOSITORY).load(DEMO_BUNDLE).manifest.graph('ecg')\n"
        "out = graph.feature_pipeline(live=True).push(np.random.default_rng(0).standard_normal((2, 256 * 20)), "
        "np.arange(256 * 20) / 256)\n"
        "assert 'torch' not in sys.modules\n"
        "print(len(out))\n"
    )
    out = run_without(code, blocked=("torch", "onnxruntime"), timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.strip()) > 0


def test_live_windows_carry_their_raw_features_and_the_push_its_vectors(bundle, trial):
    """A live window's ``features`` are its vectors before normalisation; ``last_vectors_`` are every vector of
    the push, so live calibration can renormalise with a participant's statistics (the same windows)."""
    graph = _graph(bundle.manifest.graph("eeg"), normalisation=_random_normalisation(310, seed=3))
    pipeline = graph.feature_pipeline(live=True)
    x, ts = _recording(trial, "eeg")
    windows, vectors = [], []
    for a in range(0, x.shape[1], 700):
        windows += pipeline.push(x[:, a : a + 700], ts[a : a + 700])
        vectors.append(pipeline.last_vectors_.features)
    assert windows
    all_vectors = np.concatenate(vectors)
    offline = graph.feature_pipeline().features(x, ts).features
    np.testing.assert_allclose(all_vectors, offline[: len(all_vectors)], rtol=1e-10, atol=1e-12)
    for w in windows:
        assert w.features.shape == (graph.seq_len, graph.dim) and not w.features.flags.writeable
        np.testing.assert_array_equal(w.window, graph.normalisation.apply(w.features))
