"""Generic recordings: EDF/BDF/FIF/XDF fixtures -> labelled trials featurised per modality, units converted once."""

import numpy as np
import pytest
import pyxdf

from signals.eye import EYE_CHANNELS
from signals.spec import DESpec, EyeSpec, PpsSpec
from tests.fixtures.recordings import (
    EEG_CHANNELS,
    XdfStream,
    make_recording,
    write_bdf,
    write_edf,
    write_fif,
    write_xdf,
    write_xdf_streams,
)
from training.datasets import recordings
from training.datasets.base import DatasetError
from training.datasets.pairing import pair_frames

REC = make_recording()
MNE_WRITERS = {"edf": write_edf, "bdf": write_bdf, "fif": write_fif}
# EDF stores 16 bits over ±500 µV (0.015 µV steps), BDF 24 bits, FIF float32 volts.
TOLERANCE = {"edf": 1e-3, "bdf": 1e-5, "fif": 1e-5}
PICKS = {"eeg": list(EEG_CHANNELS), "ecg": ["ECG"]}


def _path(tmp_path, kind):
    return tmp_path / ("rec_raw.fif" if kind == "fif" else f"rec.{kind}")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("rec")
    out = {kind: w(_path(d, kind), REC) for kind, w in MNE_WRITERS.items()}
    out["xdf"] = write_xdf(d / "rec.xdf", REC)
    return out


def _expected_eeg(spec, start, end):
    i0, i1 = int(round(start * REC.sfreq)), int(round(end * REC.sfreq))
    return spec.compute(REC.eeg[:, i0:i1]).features


@pytest.mark.parametrize("kind", ["edf", "bdf", "fif"])
def test_mne_formats_give_spec_features_of_each_trial(files, kind):
    """EDF/BDF/FIF: features equal spec.compute of the written µV signals, one trial per marker pair."""
    ds = recordings.load(files[kind], picks=PICKS)
    assert ds.class_names == ("happy", "sad") and [t.label for t in ds.trials] == [0, 1, 0]
    assert [t.trial for t in ds.trials] == [1, 2, 3] and ds.subjects == ["1"]
    spec = ds.modalities["eeg"].spec
    assert spec.unit == "uV" and spec.window_s == 1.0
    for trial, (start, end, _) in zip(ds.trials, REC.trials, strict=True):
        np.testing.assert_allclose(
            trial.features["eeg"], _expected_eeg(spec, start, end), rtol=TOLERANCE[kind]
        )
        assert trial.n_windows == end - start  # 1-s windows inside a 4-s trial: none crosses its end


def test_ecg_converted_once_to_the_spec_unit(files):
    """FIF stores volts; an ECG spec in mV gets the mV signal back (DE equal to spec.compute of it)."""
    spec = DESpec(modality="ecg", sfreq=REC.sfreq, channels=("ECG",), unit="mV", window_s=2, hop_s=1)
    ds = recordings.load(files["fif"], picks={"ecg": ["ECG"]}, specs={"ecg": spec}, include_raw=True)
    np.testing.assert_allclose(ds.trials[1].raw["ecg"].data, REC.ecg[:, 1024:1536], rtol=1e-6)
    np.testing.assert_allclose(ds.trials[1].features["ecg"], spec.compute(REC.ecg[:, 1024:1536]).features,
                               rtol=1e-5)  # fmt: skip


def test_sinusoid_channel_peaks_in_alpha(files):
    """Cz's 20-µV 10-Hz sinusoid gives Cz its largest DE in alpha."""
    ds = recordings.load(files["bdf"], picks={"eeg": list(EEG_CHANNELS)})
    cz = ds.trials[0].features["eeg"][:, 5:10]  # channel 1 × 5 bands
    assert (np.argmax(cz, axis=1) == 2).all()


def test_xdf_streams_read_back_with_pyxdf(files):
    """The XDF writer's file loads in pyxdf with names, shapes, units, timestamps and marker strings."""
    streams, header = pyxdf.load_xdf(str(files["xdf"]))
    by_name = {s["info"]["name"][0]: s for s in streams}
    assert header["info"]["version"] == ["1.0"]
    eeg = by_name["EEG"]
    np.testing.assert_allclose(eeg["time_series"], REC.eeg.T)
    np.testing.assert_allclose(eeg["time_stamps"], 1000.0 + REC.times, atol=1e-9)
    chans = eeg["info"]["desc"][0]["channels"][0]["channel"]
    assert [c["label"][0] for c in chans] == list(EEG_CHANNELS) and chans[0]["unit"] == ["microvolts"]
    assert by_name["ECG"]["time_series"].shape == (2 * REC.eeg.shape[1], 1)
    assert [m[0] for m in by_name["Markers"]["time_series"]] == [text for _, text in REC.markers]
    assert int(by_name["EEG"]["footer"]["info"]["sample_count"][0]) == REC.eeg.shape[1]


def test_xdf_trials_from_marker_stream(files):
    """XDF: samples start <= t < end of the marker stream, EEG and ECG streams paired per window."""
    ds = recordings.load(files["xdf"], picks={"eeg": "EEG", "ecg": "ECG"})
    streams, _ = pyxdf.load_xdf(str(files["xdf"]))
    by_name = {s["info"]["name"][0]: s for s in streams}
    marks = by_name["Markers"]["time_stamps"]
    ts, x = by_name["EEG"]["time_stamps"], by_name["EEG"]["time_series"].T
    spec = ds.modalities["eeg"].spec
    assert [t.label for t in ds.trials] == [0, 1, 0]
    for k, trial in enumerate(ds.trials):
        sel = (ts >= marks[2 * k]) & (ts < marks[2 * k + 1])
        np.testing.assert_allclose(trial.features["eeg"], spec.compute(x[:, sel], ts[sel]).features)
        assert trial.features["ecg"].shape == (4, 5)


def test_simulator_onset_markers_make_trials(tmp_path, files):
    """The simulator's JSON onsets (one parser, signals.markers): with a trial_end after each, the same trials
    as the string markers; onsets alone end at the next onset and the last at the end of the recording."""
    import dataclasses
    import json

    onsets = [(s, json.dumps({"trial": k, "label": lab})) for k, (s, _, lab) in enumerate(REC.trials)]
    ended = sorted(onsets + [(e, "trial_end") for _, e, _ in REC.trials])
    path = write_xdf(tmp_path / "onsets.xdf", dataclasses.replace(REC, markers=ended))
    ds = recordings.load(path, picks={"eeg": "EEG", "ecg": "ECG"})
    ref = recordings.load(files["xdf"], picks={"eeg": "EEG", "ecg": "ECG"})
    assert [t.label for t in ds.trials] == [t.label for t in ref.trials] and ds.class_names == ref.class_names
    for a, b in zip(ds.trials, ref.trials, strict=True):
        np.testing.assert_array_equal(a.features["eeg"], b.features["eeg"])
    bare = recordings.load(write_xdf(tmp_path / "bare.xdf", dataclasses.replace(REC, markers=onsets)),
                           picks={"eeg": "EEG", "ecg": "ECG"})  # fmt: skip
    # 2-8 s, 8-14 s, 14 s-end (20 s); the fixture stamps markers 1/256 s late, so the last trial holds
    # 5.996 s of data: five whole 1-s DE windows.
    assert [t.n_windows for t in bare.trials] == [6, 6, 5]


def test_custom_marker_convention_and_class_order(tmp_path):
    """start/end patterns with a 'label' group and class_names ordering are honoured."""
    rec = make_recording(start_text="S_{label}", end_text="E")
    path = write_fif(tmp_path / "custom_raw.fif", rec)
    ds = recordings.load(
        path, start_pattern=r"^S_(?P<label>\w+)$", end_pattern=r"^E$", class_names=("sad", "happy")
    )
    assert ds.class_names == ("sad", "happy") and [t.label for t in ds.trials] == [1, 0, 1]


def test_unlabelled_trials_and_longer_windows(tmp_path):
    """Unlabelled start markers give label None; 3-s windows give 2 vectors per 4-s trial."""
    path = write_edf(tmp_path / "plain.edf", make_recording(start_text="trial_start"))
    spec = DESpec(modality="eeg", sfreq=REC.sfreq, channels=EEG_CHANNELS, window_s=3, hop_s=1)
    ds = recordings.load(path, specs={"eeg": spec})
    assert ds.class_names is None and all(t.label is None for t in ds.trials)
    assert [t.n_windows for t in ds.trials] == [2, 2, 2]


def test_unknown_extension_raises(tmp_path):
    """An unsupported extension is refused with the supported ones listed."""
    path = tmp_path / "rec.txt"
    path.write_text("x")
    assert not recordings.detect(path)
    with pytest.raises(DatasetError, match=r"unknown recording extension '\.txt'.*\.edf"):
        recordings.load(path)


def test_missing_channels_list_what_exists(files):
    """Asking for absent channels lists the file's channels."""
    with pytest.raises(
        DatasetError, match=r"channels \['Oz'\].*It has \{'EEG \(128 Hz\)': \['Fz', 'Cz', 'Pz', 'ECG'\]\}"
    ):
        recordings.load(files["edf"], picks={"eeg": ["Fz", "Oz"]})


def test_missing_xdf_stream_lists_streams(files):
    """An absent XDF stream name lists the streams."""
    with pytest.raises(
        DatasetError,
        match=r"modality 'emg': .*no signal stream named 'EMG'; its signal streams are \['EEG', 'ECG'\]\. Its marker streams are \['Markers'\]\.",
    ):
        recordings.load(files["xdf"], picks={"emg": "EMG"})


def test_no_markers_names_the_convention(tmp_path):
    """A recording without trial markers says which convention is expected."""
    rec = make_recording(start_text="go_{label}", end_text="stop")
    path = write_edf(tmp_path / "nomark.edf", rec)
    with pytest.raises(DatasetError, match=r"no trial markers found.*trial_start.*'go_happy'"):
        recordings.load(path)


@pytest.mark.parametrize(
    ("trials_", "match"),
    [
        (((2.0, 6.0, "a"), (4.0, 8.0, "b")), "before the trial started at 2.000 s has ended"),
        (((2.0, 6.0, "a"),), None),
    ],
)
def test_overlapping_starts_raise(tmp_path, trials_, match):
    """A start before the previous trial's end is refused."""
    rec = make_recording(trials=trials_)
    markers = sorted(rec.markers)
    rec = type(rec)(rec.eeg, rec.ecg, rec.sfreq, markers, rec.trials)
    path = write_fif(tmp_path / "overlap_raw.fif", rec)
    if match is None:
        assert len(recordings.load(path).trials) == 1
    else:
        with pytest.raises(DatasetError, match=match):
            recordings.load(path)


def test_unmatched_end_and_start_raise(tmp_path):
    """An end without a start, and a start without an end, are refused."""
    rec = make_recording()
    lone_end = type(rec)(rec.eeg, rec.ecg, rec.sfreq, [(1.0, "trial_end"), *rec.markers], rec.trials)
    with pytest.raises(DatasetError, match="has no matching start marker"):
        recordings.load(write_fif(tmp_path / "end_raw.fif", lone_end))
    lone_start = type(rec)(rec.eeg, rec.ecg, rec.sfreq, [*rec.markers, (19.0, "trial_start:x")], rec.trials)
    with pytest.raises(DatasetError, match="started at 19.000 s has no end marker"):
        recordings.load(write_fif(tmp_path / "start_raw.fif", lone_start))


def test_spec_and_label_mismatches_raise(files):
    """A spec at another sfreq, and labels outside class_names, are refused."""
    spec = PpsSpec(modality="eeg", sfreq=256, channels=("Fz",))
    with pytest.raises(DatasetError, match="sfreq is 256.0 Hz but the data is sampled at 128.0 Hz"):
        recordings.load(files["fif"], specs={"eeg": spec})
    with pytest.raises(DatasetError, match=r"labels \['sad'\] are not in class_names"):
        recordings.load(files["fif"], class_names=("happy",))


def test_xdf_marker_stream_must_be_unique(tmp_path):
    """Two string streams and no marker_stream is refused with both names."""
    t = 10 + np.arange(512) / 128
    streams = [
        XdfStream(
            "EEG", "EEG", 128.0, t, np.random.default_rng(0).standard_normal((512, 1)), ("C3",), "microvolts"
        ),
        XdfStream("M1", "Markers", 0.0, np.array([10.5, 12.5]), ["trial_start", "trial_end"]),
        XdfStream("M2", "Markers", 0.0, np.array([11.0]), ["hello"]),
    ]
    path = write_xdf_streams(tmp_path / "two.xdf", streams)
    with pytest.raises(DatasetError, match=r"found 2 \['M1', 'M2'\]"):
        recordings.load(path)
    ds = recordings.load(path, marker_stream="M1")
    assert len(ds.trials) == 1 and ds.trials[0].n_windows == 2  # 10.5-12.5 s


def test_irregular_numeric_stream_beside_the_data(tmp_path):
    """A numeric stream with nominal rate 0 (events) does not disturb the trials (nor the end of the data)."""
    t = 10 + np.arange(512) / 128
    streams = [
        XdfStream(
            "EEG", "EEG", 128.0, t, np.random.default_rng(0).standard_normal((512, 1)), ("C3",), "microvolts"
        ),
        XdfStream("Events", "Events", 0.0, np.array([11.0, 30.0]), np.array([[1.0], [2.0]]), ("code",)),
        XdfStream("M1", "Markers", 0.0, np.array([10.5, 12.5]), ['{"trial": 0, "label": "a"}', "trial_end"]),
    ]
    ds = recordings.load(write_xdf_streams(tmp_path / "events.xdf", streams), picks={"eeg": "EEG"})
    assert len(ds.trials) == 1 and ds.trials[0].n_windows == 2


def test_pair_frames_trims_leading_vectors():
    """pair_frames keeps vectors whose windows end together (short windows lose their leading ones)."""
    x = np.random.default_rng(0).standard_normal((1, 1280))
    short = DESpec(modality="a", sfreq=128, channels=("x",), window_s=1, hop_s=1).compute(x)
    long = DESpec(modality="b", sfreq=128, channels=("x",), window_s=4, hop_s=1).compute(x)
    out, segments = pair_frames({"a": short, "b": long}, {"a": 128.0, "b": 128.0}, where="test")
    np.testing.assert_array_equal(out["a"], short.features[3:])
    np.testing.assert_array_equal(out["b"], long.features)
    assert segments.tolist() == [1] * len(long)


def test_pair_frames_after_a_nan_burst_in_one_modality(caplog):
    """A NaN burst in one modality restarts its hop grid; half a hop of tolerance keeps pairing after it."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1, 128 * 20))
    y = rng.standard_normal((1, 128 * 20))
    y[0, 128 * 8 + 37 : 128 * 8 + 50] = np.nan  # 0.1 s of NaN in b only, off its 1-s grid
    a = DESpec(modality="a", sfreq=128, channels=("x",), window_s=1, hop_s=1).compute(x)
    b = DESpec(modality="b", sfreq=128, channels=("x",), window_s=1, hop_s=1).compute(y)
    with caplog.at_level("WARNING", logger="training.datasets.pairing"):
        strict, _ = pair_frames({"a": a, "b": b}, {"a": 128.0, "b": 128.0}, where="strict")
    assert len(strict["a"]) == 8  # one sample of tolerance: everything after the burst is lost
    assert "inside the trial found no partner" not in caplog.text  # a trailing loss, not an inner one
    out, segments = pair_frames({"a": a, "b": b}, {"a": 128.0, "b": 128.0}, where="t", tolerance_s=0.5)
    assert len(out["a"]) == len(b) and segments.tolist() == [1] * 8 + [2] * (len(b) - 8)


def test_pair_frames_segments_follow_gaps_and_unpaired_vectors():
    """A gap in either modality, or a vector without a partner, starts a new segment of the pairs."""
    rng = np.random.default_rng(1)
    t = np.arange(128 * 12) / 128.0
    t[128 * 6 :] += 3.0  # a 3-s pause after 6 s
    a = DESpec(modality="a", sfreq=128, channels=("x",), window_s=1, hop_s=1).compute(
        rng.standard_normal((1, t.size)), t
    )
    b = DESpec(modality="b", sfreq=128, channels=("x",), window_s=2, hop_s=1).compute(
        rng.standard_normal((1, t.size)), t
    )
    out, segments = pair_frames({"a": a, "b": b}, {"a": 128.0, "b": 128.0}, where="test")
    # b (2-s windows) has vectors ending at 2..6 s and 11..15 s; a's vectors ending at 1 s and 10 s are unpaired.
    assert len(out["a"]) == len(out["b"]) == 10
    assert segments.tolist() == [1] * 5 + [2] * 5


# Regression tests for the one recording reader (signals.recording), shared with `m2s replay`.


def test_mixed_rate_edf_trains_at_the_header_rates(tmp_path):
    """A 200-Hz EEG + 256-Hz ECG EDF: each modality at its header rate, as replay streams it (was 256 Hz for both)."""
    from clients.replay import load_recording
    from tests.fixtures.recordings import write_synthetic_edf

    path = write_synthetic_edf(
        tmp_path / "mixed.edf", duration_s=8.0, markers=[(1.0, "trial_start:a"), (7.0, "trial_end")]
    )
    eeg = [f"{c.upper()}" for c in load_recording(path)[1].channels]  # the bundle's spelling, FP1 for Fp1
    ds = recordings.load(path, picks={"eeg": eeg, "ecg": ["ECG1", "ECG2"]})
    rates = {m: info.spec.sfreq for m, info in ds.modalities.items()}
    assert rates == {"eeg": 200.0, "ecg": 256.0}
    assert {s.sfreq for s in load_recording(path) if not s.is_string} == {200.0, 256.0}
    assert ds.modalities["eeg"].spec.channels[:2] == ("Fp1", "Fpz")  # matched ignoring case, file's spelling
    with pytest.raises(DatasetError, match=r"needs the EEG channels at one rate.*EEG-256Hz \(256 Hz\)"):
        recordings.load(path)  # MNE types every EDF signal EEG: which are the EEG is ambiguous
    with pytest.raises(DatasetError, match="channels recorded at different rates"):
        recordings.load(path, picks={"eeg": ["FP1", "ECG1"]})


def test_channel_names_match_ignoring_case(files):
    """picks and spec channels match file labels ignoring case, as the live service does (was exact)."""
    ds = recordings.load(files["fif"], picks={"eeg": ["FZ", "cz", "Pz"]})
    ref = recordings.load(files["fif"], picks={"eeg": ["Fz", "Cz", "Pz"]})
    np.testing.assert_array_equal(ds.trials[0].features["eeg"], ref.trials[0].features["eeg"])


def test_xdf_timestamps_are_the_replays_and_keep_short_pauses(tmp_path):
    """Jittered XDF with a 0.3-s pause inside a trial: the loader's stamps are replay's, and no window spans the pause.

    pyxdf's dejitter (what training used) only breaks at 1 s or 500 samples, so it spread the pause over
    the trial and a window spanned it, while the live worker saw a gap.
    """
    from clients.replay import load_recording
    from signals.recording import read_recording

    rng = np.random.default_rng(0)
    n = 8 * 128
    true = 100.0 + np.arange(n) / 128
    true[3 * 128 + 64 :] += 0.3  # a pause 1.5 s into the trial 2-6 s
    raw = true + rng.uniform(-1e-3, 1e-3, n)
    x = rng.standard_normal((n, 1)) * 10
    streams = [
        XdfStream("EEG", "EEG", 128.0, raw, x, ("C3",), "microvolts"),
        XdfStream("Markers", "Markers", 0.0, np.array([102.0, 106.3]), ["trial_start", "trial_end"]),
    ]
    path = write_xdf_streams(tmp_path / "pause.xdf", streams)
    ds = recordings.load(path)
    spec = ds.modalities["eeg"].spec
    loader_ts = read_recording(path, gap_factor=None).stream("EEG").dejittered(spec.gap_factor).timestamps
    (replayed,) = [s for s in load_recording(path) if not s.is_string]
    np.testing.assert_array_equal(replayed.timestamps, loader_ts)
    sel = (loader_ts >= 102.0) & (loader_ts < 106.3)
    np.testing.assert_array_equal(
        ds.trials[0].features["eeg"], spec.compute(x.T[:, sel], loader_ts[sel]).features
    )
    assert ds.trials[0].n_windows == 3  # 1.5 s + 2.5 s around the pause: 1 + 2 one-second windows, not 4


def test_markers_cut_the_same_samples_in_every_format(tmp_path):
    """Markers between samples are not snapped: FIF and XDF trials hold the same samples (EDF used to snap)."""
    rec = make_recording(duration_s=10.0, trials=((2.003, 6.003, "a"),))
    first, last = int(np.ceil(2.003 * 128)), int(np.ceil(6.003 * 128))  # samples with 2.003 <= t < 6.003
    for path in (write_fif(tmp_path / "m_raw.fif", rec), write_xdf(tmp_path / "m.xdf", rec)):
        picks = {"eeg": list(EEG_CHANNELS)} if path.suffix == ".fif" else {"eeg": "EEG"}
        ds = recordings.load(path, picks=picks, include_raw=True)
        np.testing.assert_allclose(ds.trials[0].raw["eeg"].data, rec.eeg[:, first:last], rtol=1e-6, atol=1e-4)


def test_units_convert_through_the_one_table(tmp_path, files):
    """EDF µV/mV headers, FIF volts and XDF 'microvolts' all reach a µV spec in µV; undeclared units are refused."""
    for kind in ("edf", "fif"):
        ds = recordings.load(files[kind], picks={"ecg": ["ECG"]}, include_raw=True,
                             specs={"ecg": DESpec(modality="ecg", sfreq=128, channels=("ECG",), unit="uV")})  # fmt: skip
        np.testing.assert_allclose(
            ds.trials[0].raw["ecg"].data, REC.ecg[:, 256:768] * 1e3, rtol=1e-3, atol=0.2
        )
    t = 10 + np.arange(512) / 128
    streams = [
        XdfStream("EEG", "EEG", 128.0, t, np.ones((512, 1)), ("C3",), ""),
        XdfStream("M", "Markers", 0.0, np.array([10.5, 12.5]), ["trial_start", "trial_end"]),
    ]
    path = write_xdf_streams(tmp_path / "nounit.xdf", streams)
    spec = DESpec(modality="eeg", sfreq=128, channels=("C3",), unit="uV")
    with pytest.raises(DatasetError, match=r"channel 'C3'.*declares no unit.*'native'"):
        recordings.load(path, specs={"eeg": spec})
    assert recordings.load(path).modalities["eeg"].spec.unit == "native"  # default spec: as recorded


def test_spec_overrides_set_window_and_hop(files):
    """spec_overrides (--window-s/--hop-s) replace fields of a recording's spec, through load_dataset too."""
    from training.datasets import load_dataset

    overrides = {"eeg": {"window_s": 2.0, "hop_s": 0.5}}
    ds = load_dataset(files["fif"], spec_overrides=overrides, picks={"eeg": list(EEG_CHANNELS)})
    spec = ds.modalities["eeg"].spec
    assert (spec.window_s, spec.hop_s, ds.modalities["eeg"].spacing_s) == (2.0, 0.5, 0.5)
    start, end, _ = REC.trials[0]
    np.testing.assert_allclose(ds.trials[0].features["eeg"], _expected_eeg(spec, start, end), rtol=1e-5)
    with pytest.raises(DatasetError, match="share one hop_s"):
        recordings.load(files["fif"], picks=PICKS, spec_overrides={"eeg": {"hop_s": 0.5}})


def test_units_are_checked_per_channel_as_live(tmp_path):
    """An eye spec's 'deg,mm' checks each channel by the live rule: aliases pass, a pupil in cm is refused."""
    rng = np.random.default_rng(0)
    n = 30 * 60
    t = 100 + np.arange(n) / 60
    x = np.column_stack([rng.normal(0, 2, (n, 2)), 3.5 + rng.normal(0, 0.1, (n, 2)), np.ones((n, 1))])
    markers = XdfStream("M", "Markers", 0.0, np.array([101.0, 129.0]), ["trial_start", "trial_end"])

    def load(units):
        eye = XdfStream("Eye", "Gaze", 60.0, t, x, EYE_CHANNELS, units)
        path = write_xdf_streams(tmp_path / "eye.xdf", [eye, markers])
        return recordings.load(path, picks={"eye": "Eye"}, specs={"eye": EyeSpec(sfreq=60.0)})

    assert load(("degrees", "deg", "millimeters", "mm", "")).trials[0].n_windows > 0
    with pytest.raises(DatasetError, match=r"channel 'pupil_left'.*unit 'cm' to the model's unit 'mm'"):
        load(("deg", "deg", "cm", "mm", ""))
