"""Live calibration, the parts without LSL: the session's trial/window bookkeeping and the head fit.

The session is fed exactly what a stream's tap gives it (``WindowReady`` windows with raw features, the
push's raw vectors); the fit gets embeddings. The routes, the real LSL path and the hot swap are tested in
``test_calibration_api.py``.
"""

from types import SimpleNamespace

import numpy as np
import pytest

from models.repository import DEFAULT_REPOSITORY, DEMO_BUNDLE, ModelRepository
from service.calibration.fit import LabelledEmbeddings, fit_heads, trials_per_class
from service.calibration.session import PENDING_S, Calibration
from service.engine import LoadedModel
from signals.normalisation import FeatureStatistics
from signals.pipeline import WindowReady
from signals.streaming import FeatureFrames

CLASSES = ("negative", "neutral", "positive")


@pytest.fixture(scope="module")
def base():
    bundle = ModelRepository(DEFAULT_REPOSITORY).load(DEMO_BUNDLE)
    return LoadedModel(bundle=bundle, providers={})


class _Clock:
    def __init__(self, t=100.0):
        self.t = t

    def __call__(self):
        return self.t


def _calibration(base, labels="markers", clock=None):
    graphs = {"eeg-1": base.bundle.manifest.graphs["eeg"], "eye-1": base.bundle.manifest.graphs["eye"]}
    return Calibration("cal-test", "p-1", base, graphs, labels, clock=clock or _Clock())


def _window(end, value, dim):
    features = np.full((5, dim), float(value))
    return WindowReady(window=features.astype(np.float32), lsl_time=end, segment=1, features=features)


def _feed(cal, stream_id, ends, dim, value=0.0):
    """Windows ending at ``ends`` (s) and one raw vector per window, as a tap would deliver them."""
    windows = [_window(e, value, dim) for e in ends]
    vectors = FeatureFrames(
        np.full((len(ends), dim), float(value)), np.asarray(ends, float), np.ones(len(ends), int)
    )
    cal.tap(SimpleNamespace(id=stream_id), windows, vectors)


def test_windows_inside_a_marker_trial_are_its_data(base):
    """EEG windows span 10 s (eye 18 s): only those wholly inside [onset, next onset) are claimed, even when the
    marker arrives after them; test-phase and unknown-label trials are seen but never used."""
    cal = _calibration(base)
    eeg_span = 10.0 - 1 / 200  # first to last sample of an EEG window
    # Windows arrive before the marker that opens their trial (marker inlets lag): they wait.
    _feed(cal, "eeg-1", [105.0, 110.0, 112.0, 130.0, 131.0], 310)
    cal.on_marker(100.0, '{"trial": 0, "label": "negative", "phase": "calibration"}')
    assert cal.counts()["eeg"]["negative"] == 4  # the open trial's windows so far
    cal.on_marker(130.5, '{"trial": 1, "label": "positive", "phase": "calibration"}')
    # 105.0 starts before 100 (105 - 9.995 < 100): outside; 130.0 ends before 130.5: inside; 131.0 straddles.
    assert cal.counts()["eeg"] == {"negative": 3, "neutral": 0, "positive": 0}
    assert cal.trials() == {"negative": 1, "neutral": 0, "positive": 0}
    _feed(cal, "eeg-1", [130.5 + eeg_span, 150.0], 310)
    cal.on_marker(160.0, '{"trial": 2, "label": "neutral", "phase": "test"}')  # evaluation: never used
    _feed(cal, "eeg-1", [175.0], 310)
    cal.on_marker(180.0, '{"trial": 3, "label": "fear", "phase": "calibration"}')  # not a class of the model
    _feed(cal, "eeg-1", [195.0], 310)
    cal.on_marker(200.0, "trial_end")
    assert cal.counts()["eeg"] == {"negative": 3, "neutral": 0, "positive": 2}
    assert cal.counts()["eye"] == {"negative": 0, "neutral": 0, "positive": 0}
    snap = cal.snapshot()
    assert [(e["label"], e["phase"], e["used"]) for e in snap["events"]] == [
        ("negative", "calibration", True),
        ("positive", "calibration", True),
        ("neutral", "test", False),
        ("fear", "calibration", False),
    ]
    assert any(
        "'fear', not a class of m2s-synthetic-demo:1 (negative, neutral, positive)" in n
        for n in snap["notes"]
    )
    _, x, y, trials = cal.labelled_data()["eeg"]
    assert x.shape == (5, 5, 310) and y.tolist() == [0, 0, 0, 2, 2] and trials.tolist() == [0, 0, 0, 1, 1]


def test_marker_errors_are_noted_not_raised(base):
    cal = _calibration(base)
    cal.on_marker(10.0, "trial_end")  # an end without a start
    cal.on_marker(11.0, "trial_start")  # no label: the trial is noted and not used
    _feed(cal, "eeg-1", [22.0], 310)
    cal.on_marker(30.0, "trial_end")
    notes = cal.snapshot()["notes"]
    assert "trial end 'trial_end' at 10.000 s has no matching start marker before it." in notes[0]
    assert "trial at 11.000 s has no label; its windows are not used." in notes[1]
    assert cal.trials() == dict.fromkeys(CLASSES, 0)


def test_unclaimed_windows_wait_at_most_pending_s(base):
    cal = _calibration(base)
    _feed(cal, "eeg-1", [20.0, 20.0 + PENDING_S + 20.0], 310)
    assert len(cal.collectors["eeg-1"].pending) == 1  # the first can no longer be claimed by a late marker


def test_statistics_cover_all_vectors_labelled_or_not(base):
    """The participant's normalisation is over every vector the stream produced, inside trials or not."""
    cal = _calibration(base)
    rng = np.random.default_rng(0)
    chunks = [rng.normal(size=(4, 33)) for _ in range(3)]
    for i, v in enumerate(chunks):
        cal.tap(SimpleNamespace(id="eye-1"), [], FeatureFrames(v, np.arange(4.0) + 10 * i, np.ones(4, int)))
    expected = FeatureStatistics(33).update(np.concatenate(chunks)).normalisation()
    stats = cal.labelled_data()["eye"][0]
    np.testing.assert_allclose(stats.normalisation().mean, expected.mean)
    np.testing.assert_allclose(stats.normalisation().std, expected.std)


def test_rest_labels_start_switch_and_end_trials_at_the_lsl_clock(base):
    clock = _Clock(100.0)
    cal = _calibration(base, "rest", clock)
    with pytest.raises(
        ValueError,
        match=r"label 'happy' is not a class of m2s-synthetic-demo:1; use one of: negative, neutral, positive\.",
    ):
        cal.label("happy")
    with pytest.raises(
        ValueError, match=r'no labelled trial is open; start one with \{"label": "<class>"\} first\.'
    ):
        cal.label(None)
    cal.label("neutral")
    _feed(cal, "eeg-1", [112.0, 118.0], 310)
    clock.t = 120.0
    cal.label("positive")  # ends the neutral trial and starts a positive one
    assert cal.snapshot()["open_label"] == "positive"
    _feed(cal, "eeg-1", [131.0], 310)
    clock.t = 135.0
    cal.label(None)
    assert cal.counts()["eeg"] == {"negative": 0, "neutral": 2, "positive": 1}
    assert cal.trials() == {"negative": 0, "neutral": 1, "positive": 1}
    cal.state = "cancelled"
    with pytest.raises(
        RuntimeError, match="calibration cal-test is cancelled; labels are taken only while collecting"
    ):
        cal.label("neutral")
    _feed(cal, "eeg-1", [150.0], 310)  # a tap after the end changes nothing
    assert cal.counts()["eeg"]["positive"] == 1


def _embeddings(rng, trials_per_class, n_per_trial=10, separation=3.0, dim=8, shift=None):
    y, trials, z = [], [], []
    centres = rng.normal(size=(3, dim)) * separation
    t = 0
    for _ in range(trials_per_class):
        for c in range(3):
            z.append(centres[c] + rng.normal(size=(n_per_trial, dim)) + (0 if shift is None else shift))
            y += [c] * n_per_trial
            trials += [t] * n_per_trial
            t += 1
    return LabelledEmbeddings(np.concatenate(z), np.asarray(y), np.asarray(trials)), centres


def test_fit_heads_validates_by_leave_one_trial_out():
    """Separable classes score near 1 by leave-one-trial-out; shuffled labels score near chance."""
    rng = np.random.default_rng(0)
    data, _ = _embeddings(rng, 3)
    assert trials_per_class(data, 3) == [3, 3, 3]
    fit = fit_heads({"eeg": data}, 3)
    assert fit.serve == {"eeg": "eeg"}
    assert fit.per_modality["eeg"]["balanced_accuracy"] > 0.95
    assert fit.heads["eeg"].coef.shape == (3, 8)
    shuffled = LabelledEmbeddings(data.z, rng.permutation(data.y), data.trials)
    # labels permuted across windows: a trial no longer has one class, and nothing is learnable
    assert fit_heads({"eeg": shuffled}, 3).balanced_accuracy < 0.6


def test_cross_modal_head_serves_the_other_modality_and_reports_its_own_head():
    """A head fitted on EEG serves the eye windows of the same trials (shared space); the eye's own head is
    reported beside it."""
    rng = np.random.default_rng(1)
    eeg, centres = _embeddings(rng, 2)
    eye = LabelledEmbeddings(
        np.concatenate([centres[c] + rng.normal(size=(1, 8)) for c in eeg.y]), eeg.y.copy(), eeg.trials.copy()
    )
    fit = fit_heads({"eeg": eeg, "eye": eye}, 3, train_modality="eeg")
    assert fit.serve == {"eeg": "eeg", "eye": "eeg"} and list(fit.heads) == ["eeg"]
    assert fit.per_modality["eye"]["head"] == "eeg"
    assert fit.per_modality["eye"]["balanced_accuracy"] > 0.9
    assert fit.per_modality["eye"]["own_head_balanced_accuracy"] > 0.9
    assert fit.per_modality["eeg"]["own_head_balanced_accuracy"] is None
    assert fit.balanced_accuracy == fit.per_modality["eeg"]["balanced_accuracy"]
    with pytest.raises(
        ValueError,
        match=r"train_modality 'ecg' has no labelled windows in this calibration; modalities with labelled windows: eeg, eye\.",
    ):
        fit_heads({"eeg": eeg, "eye": eye}, 3, train_modality="ecg")


def test_test_trials_never_enter_the_statistics(base):
    """Vectors inside a test-phase trial (even before its marker arrives) are not the participant's
    calibration data: the normalisation is computed without them."""
    cal = _calibration(base)
    calm = FeatureFrames(np.zeros((3, 33)), np.array([1.0, 2.0, 3.0]), np.ones(3, int))
    cal.tap(SimpleNamespace(id="eye-1"), [], calm)
    late = FeatureFrames(np.full((3, 33), 600.0), np.array([10.0, 11.0, 12.0]), np.ones(3, int))
    cal.tap(SimpleNamespace(id="eye-1"), [], late)  # arrives before the test onset marker at 9 s
    cal.on_marker(9.0, '{"trial": 5, "label": "neutral", "phase": "test"}')
    cal.tap(
        SimpleNamespace(id="eye-1"),
        [],
        FeatureFrames(np.full((1, 33), 600.0), np.array([50.0]), np.ones(1, int)),
    )
    stats = cal.labelled_data()["eye"][0]
    assert stats.n_vectors == 3
    assert stats.normalisation().mean == (0.0,) * 33
    assert cal.counts()["eye"]["neutral"] == 0  # an open test trial's windows are not counted either


def test_a_finished_calibration_releases_its_windows(base):
    cal = _calibration(base, "rest")
    cal.label("neutral")
    _feed(cal, "eeg-1", [112.0, 113.0], 310)
    cal.clock.t = 120.0
    cal.label(None)
    before = cal.counts()
    cal.release()
    assert cal.collectors["eeg-1"].labelled == [] and not cal.collectors["eeg-1"].pending
    assert cal.counts() == before  # the counts stay for GET


def test_a_lost_marker_stream_drops_the_open_trial(base):
    """After the marker stream reconnects, the trial that was open is dropped (its end may have been sent while
    it was away): its windows are never labelled, and the next onset starts afresh."""
    cal = _calibration(base)
    cal.on_marker(100.0, '{"trial": 0, "label": "negative", "phase": "calibration"}')
    _feed(cal, "eeg-1", [112.0, 114.0], 310)
    cal.markers_lost()
    assert cal.snapshot()["open_label"] is None and cal.snapshot()["events"] == []
    assert "the trial open since 100.000 s (negative) is dropped" in cal.snapshot()["notes"][-1]
    cal.on_marker(130.0, '{"trial": 2, "label": "positive", "phase": "calibration"}')
    _feed(cal, "eeg-1", [142.0], 310)
    cal.on_marker(160.0, '{"trial": 3, "label": "neutral", "phase": "calibration"}')
    assert cal.counts()["eeg"] == {"negative": 0, "neutral": 0, "positive": 1}
