"""Tests for training.protocols: tasks, whole-trial splits, training-only normalisation, windows."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from training.datasets.base import DatasetError, EmotionDataset, ModalityInfo, Trial
from training.protocols import (
    DEFAULT_PROTOCOLS,
    MIN_STD,
    Normaliser,
    Split,
    Task,
    cross_subject_splits,
    make_task,
    make_windows,
    subject_dependent_splits,
)

# Trial labels of the real datasets (docs/design/datasets.md §1.2, §2.2, §3.2), so class balance is realistic.
SEED_LABELS = [2, 1, 0, 0, 1, 2, 0, 1, 2, 2, 1, 0, 1, 2, 0]
SEED_IV_LABELS = {
    1: [1, 2, 3, 0, 2, 0, 0, 1, 0, 1, 2, 1, 1, 1, 2, 3, 2, 2, 3, 3, 0, 3, 0, 3],
    2: [2, 1, 3, 0, 0, 2, 0, 2, 3, 3, 2, 3, 2, 0, 1, 1, 2, 1, 0, 3, 0, 1, 3, 1],
    3: [1, 2, 2, 1, 3, 3, 3, 1, 1, 2, 1, 0, 2, 3, 3, 0, 2, 3, 0, 0, 2, 0, 1, 0],
}
# Each block of five SEED-V trials holds every emotion once.
SEED_V_LABELS = [4, 1, 0, 2, 3, 4, 1, 0, 2, 3, 4, 1, 0, 2, 3]


def uid(subject_index: int, session: int, trial: int) -> int:
    """A number unique to each trial, stored in feature column 0."""
    return subject_index * 10_000 + session * 100 + trial


def make_dataset(
    name="seed",
    *,
    n_subjects=2,
    labels_per_session=None,
    class_names=("negative", "neutral", "positive"),
    ratings=None,
    rating_scales=None,
    lengths=(8, 20),
    seed=0,
):
    """A dataset whose feature columns are (trial uid, position in trial, noise...) for every modality.

    ``labels_per_session`` maps session -> list of labels (one per trial); ``ratings`` maps
    trial number -> ratings dict (labels None then).
    """
    rng = np.random.default_rng(seed)
    if labels_per_session is None:
        labels_per_session = {1: SEED_LABELS}
    dims = {"eeg": 4, "eye": 3}
    trials = []
    for si in range(n_subjects):
        subject = str(si + 1)
        for session, labels in labels_per_session.items():
            for ti, label in enumerate(labels, start=1):
                w = int(rng.integers(lengths[0], lengths[1] + 1))
                feats = {}
                for m, d in dims.items():
                    f = rng.normal(size=(w, d)) * (si + 1)
                    f[:, 0] = uid(si, session, ti)
                    f[:, 1] = np.arange(w)
                    feats[m] = f
                r = {} if ratings is None else dict(ratings(si, ti))
                trials.append(Trial(subject, session, ti, label, r, feats))
    modalities = {m: ModalityInfo(dim=d, spacing_s=1.0, description=m) for m, d in dims.items()}
    return EmotionDataset(
        name=name,
        trials=trials,
        modalities=modalities,
        class_names=class_names,
        rating_scales=rating_scales or {},
    )


def deap_like(n_subjects=2, n_trials=40, scale=(1.0, 9.0), seed=0):
    """A DEAP-style rated dataset (no categorical labels)."""
    rng = np.random.default_rng(seed)
    values = rng.uniform(scale[0], scale[1], size=(n_subjects, n_trials, 4))
    names = ("valence", "arousal", "dominance", "liking")
    return make_dataset(
        "deap",
        n_subjects=n_subjects,
        labels_per_session={1: [None] * n_trials},
        class_names=None,
        ratings=lambda si, ti: {n: float(values[si, ti - 1, k]) for k, n in enumerate(names)},
        rating_scales={n: scale for n in names},
        seed=seed,
    )


def identity_normaliser(dataset):
    """mean 0 / std 1, so windows hold the raw feature values."""
    return Normaliser(
        mean={m: np.zeros(i.dim) for m, i in dataset.modalities.items()},
        std={m: np.ones(i.dim) for m, i in dataset.modalities.items()},
        n_vectors=1,
    )


def keys(trials):
    return {t.key for t in trials}


# ---------------------------------------------------------------------------------------------- Task


def test_emotion_task_uses_trial_labels_and_class_names():
    """'emotion' labels are Trial.label, named by dataset.class_names."""
    ds = make_dataset()
    task = make_task(ds)
    assert task.class_names == ("negative", "neutral", "positive")
    assert task.labels(ds.trials).tolist() == [t.label for t in ds.trials]
    assert task.labels(ds.trials).dtype == np.int64


def test_rating_task_default_threshold_is_scale_midpoint_and_equal_is_low():
    """DEAP's default threshold is 5 on 1-9; a rating of exactly 5 is low, above is high."""
    ds = deap_like()
    task = make_task(ds, "valence")
    assert task.threshold == 5.0 and task.class_names == ("low", "high")
    trial = ds.trials[0]
    for value, expected in [(5.0, 0), (5.01, 1), (4.99, 0), (9.0, 1)]:
        t = Trial(trial.subject, 1, 1, None, {"valence": value}, trial.features)
        assert task.label(t) == expected
    expected = [int(t.ratings["valence"] > 5.0) for t in ds.trials]
    assert task.labels(ds.trials).tolist() == expected


def test_dreamer_default_threshold_is_three():
    """On DREAMER's 1-5 scale the default threshold is 3 (3 low, 4 high)."""
    ds = deap_like(n_trials=18, scale=(1.0, 5.0))
    task = make_task(ds, "arousal")
    assert task.threshold == 3.0
    t0 = ds.trials[0]
    assert task.label(Trial("1", 1, 1, None, {"arousal": 3.0}, t0.features)) == 0
    assert task.label(Trial("1", 1, 1, None, {"arousal": 4.0}, t0.features)) == 1


def test_explicit_threshold_is_used():
    """threshold= overrides the midpoint."""
    ds = deap_like()
    task = make_task(ds, "liking", threshold=3.5)
    assert task.labels(ds.trials).tolist() == [int(t.ratings["liking"] > 3.5) for t in ds.trials]


def test_task_errors():
    """Missing labels/ratings and misplaced thresholds raise clear errors."""
    seed = make_dataset()
    deap = deap_like()
    with pytest.raises(DatasetError, match="has no 'valence' task; its tasks are emotion"):
        make_task(seed, "valence")
    with pytest.raises(DatasetError, match="no categorical emotion labels; its tasks are arousal"):
        make_task(deap, "emotion")
    with pytest.raises(ValueError, match="threshold applies to rating tasks only"):
        make_task(seed, "emotion", threshold=1.0)
    with pytest.raises(ValueError, match=r"threshold must lie in \[1.0, 9.0\)"):
        make_task(deap, "valence", threshold=9.0)
    with pytest.raises(TypeError, match="dataset must be an instance of EmotionDataset"):
        make_task("seed")


def test_task_errors_for_unlabelled_trials_and_missing_scale():
    """A trial without label, a trial without the rating, and a rating without scale are reported."""
    ds = make_dataset(labels_per_session={1: [0, 1, None]})
    with pytest.raises(DatasetError, match="2 trial\\(s\\) have no emotion label"):
        make_task(ds)
    rated = make_dataset(
        "deap",
        labels_per_session={1: [None, None]},
        class_names=None,
        ratings=lambda si, ti: {"valence": 2.0} if ti == 1 else {},
        rating_scales={"valence": (1.0, 9.0)},
    )
    with pytest.raises(DatasetError, match="have no 'valence' rating"):
        make_task(rated, "valence")
    no_scale = make_dataset(
        "deap", labels_per_session={1: [None]}, class_names=None, ratings=lambda si, ti: {"valence": 2.0}
    )
    with pytest.raises(DatasetError, match="declares no scale for 'valence'"):
        make_task(no_scale, "valence")
    assert make_task(no_scale, "valence", threshold=1.5).threshold == 1.5


def test_task_label_errors_name_the_trial():
    """Task.label reports a trial without label or rating, and a label outside the classes."""
    ds = make_dataset(labels_per_session={1: [0, 5]})
    task = Task("emotion", ("a", "b"))
    with pytest.raises(DatasetError, match="trial 2 has label 5, outside the 2 classes"):
        task.labels(ds.trials)
    with pytest.raises(DatasetError, match="has no 'valence' rating"):
        Task("valence", ("low", "high"), "valence", 5.0).label(ds.trials[0])
    unlabelled = Trial("1", 1, 9, None, {}, ds.trials[0].features)
    with pytest.raises(DatasetError, match="trial 9 has no emotion label"):
        task.label(unlabelled)


def test_task_round_trips_through_json():
    """Task.to_dict/from_dict survive JSON."""
    task = make_task(deap_like(), "valence")
    back = Task.from_dict(json.loads(json.dumps(task.to_dict())))
    assert back == task
    with pytest.raises(ValueError, match="needs the keys \\['class_names'\\]"):
        Task.from_dict({"name": "emotion"})


# ---------------------------------------------------------------------------------------- Normaliser


def test_normaliser_matches_numpy_over_all_training_vectors():
    """mean/std equal numpy's over the concatenated vectors of the trials (population std)."""
    ds = make_dataset()
    trials = ds.trials[:9]
    norm = Normaliser.fit(trials)
    for m in ("eeg", "eye"):
        stacked = np.concatenate([t.features[m] for t in trials])
        np.testing.assert_allclose(norm.mean[m], stacked.mean(axis=0), rtol=1e-12)
        np.testing.assert_allclose(norm.std[m], stacked.std(axis=0), rtol=1e-10)
        x = trials[3].features[m]
        z = norm.apply(m, x)
        assert z.dtype == np.float32 and z.shape == x.shape
        np.testing.assert_allclose(z, (x - stacked.mean(0)) / stacked.std(0), rtol=1e-5, atol=1e-5)
    assert norm.n_vectors == sum(t.n_windows for t in trials)


def test_normaliser_std_floor_centres_constant_features_without_scaling():
    """A feature constant in training gets std 1: centred, not divided by ~0."""
    base = make_dataset(n_subjects=1).trials[:3]
    trials = []
    for t in base:
        f = {m: v.copy() for m, v in t.features.items()}
        f["eeg"][:, 2] = 7.0
        trials.append(Trial(t.subject, t.session, t.trial, t.label, {}, f))
    norm = Normaliser.fit(trials)
    assert norm.std["eeg"][2] == 1.0 and norm.mean["eeg"][2] == 7.0
    assert norm.std["eeg"][3] > MIN_STD and norm.std["eeg"][3] != 1.0
    x = np.full((2, 4), 9.5)
    assert norm.apply("eeg", x)[0, 2] == pytest.approx(2.5)


def test_normaliser_round_trips_through_json():
    """to_dict gives plain lists; from_dict restores identical statistics and outputs."""
    ds = make_dataset()
    norm = Normaliser.fit(ds.trials[:5])
    obj = json.loads(json.dumps(norm.to_dict()))
    assert isinstance(obj["modalities"]["eeg"]["mean"], list)
    back = Normaliser.from_dict(obj)
    for m in norm.modalities:
        np.testing.assert_array_equal(back.mean[m], norm.mean[m])
        np.testing.assert_array_equal(back.std[m], norm.std[m])
        x = ds.trials[7].features[m]
        np.testing.assert_array_equal(back.apply(m, x), norm.apply(m, x))
    assert back.n_vectors == norm.n_vectors


def test_normaliser_does_not_keep_references_to_inputs():
    """Changing the arrays given to the constructor does not change the normaliser."""
    mean = np.zeros(3)
    norm = Normaliser(mean={"eye": mean}, std={"eye": np.ones(3)}, n_vectors=1)
    mean[0] = 5.0
    assert norm.mean["eye"][0] == 0.0
    with pytest.raises(ValueError, match="read-only"):
        norm.mean["eye"][0] = 1.0


def test_normaliser_errors():
    """Bad inputs to fit/apply/from_dict/constructor raise with what to do."""
    ds = make_dataset()
    norm = Normaliser.fit(ds.trials[:3])
    with pytest.raises(ValueError, match="no statistics for 'ecg'; it knows \\['eeg', 'eye'\\]"):
        norm.apply("ecg", np.zeros((2, 4)))
    with pytest.raises(ValueError, match="must have shape \\(..., 4\\), got shape \\(2, 3\\)"):
        norm.apply("eeg", np.zeros((2, 3)))
    with pytest.raises(ValueError, match="the training split is empty"):
        Normaliser.fit([])
    with pytest.raises(ValueError, match="modality 'ecg' is missing"):
        Normaliser.fit(ds.trials[:2], modalities=["ecg"])
    bad = Trial("9", 1, 1, 0, {}, {"eeg": np.full((3, 4), np.nan), "eye": np.zeros((3, 3))})
    with pytest.raises(ValueError, match="'eeg'.*zero finite feature vectors \\(3 had NaN or inf entries\\)"):
        Normaliser.fit([bad])
    with pytest.raises(ValueError, match="needs 'modalities'"):
        Normaliser.from_dict({"mean": [0.0]})
    with pytest.raises(ValueError, match="modality 'eeg' needs 'mean' and 'std'"):
        Normaliser.from_dict({"modalities": {"eeg": {"mean": [0.0]}}})
    with pytest.raises(ValueError, match="std finite and > 0"):
        Normaliser(mean={"eeg": np.zeros(2)}, std={"eeg": np.zeros(2)}, n_vectors=1)
    with pytest.raises(ValueError, match="must both have shape \\(D,\\)"):
        Normaliser(mean={"eeg": np.zeros(2)}, std={"eeg": np.ones(3)}, n_vectors=1)
    with pytest.raises(ValueError, match="same modalities"):
        Normaliser(mean={"eeg": np.zeros(2)}, std={"eye": np.ones(2)}, n_vectors=1)
    with pytest.raises(TypeError, match="each trial must be an instance of Trial"):
        Normaliser.fit([np.zeros((2, 4))])


# -------------------------------------------------------------------------------------------- Splits


def replace_features(dataset, chosen_keys, rng):
    """Copy of ``dataset`` where the trials in ``chosen_keys`` get wild new feature values."""
    trials = []
    for t in dataset.trials:
        if t.key in chosen_keys:
            f = {m: rng.normal(100.0, 50.0, size=v.shape) for m, v in t.features.items()}
            t = Trial(t.subject, t.session, t.trial, t.label, t.ratings, f)
        trials.append(t)
    return EmotionDataset(
        dataset.name, trials, dataset.modalities, dataset.class_names, dataset.rating_scales
    )


@pytest.mark.parametrize("part", ["test", "val"])
def test_test_and_validation_trials_never_reach_the_normaliser(part):
    """Changing every test (or validation) trial's values leaves each split's normaliser identical."""
    ds = make_dataset(n_subjects=2, labels_per_session={1: SEED_LABELS, 2: SEED_LABELS})
    task = make_task(ds)
    splits = subject_dependent_splits(ds, task)
    changed = {t.key for s in splits for t in getattr(s, part)}
    assert changed
    other = subject_dependent_splits(replace_features(ds, changed, np.random.default_rng(1)), task)
    for a, b in zip(splits, other, strict=True):
        assert a.name == b.name
        for m in ("eeg", "eye"):
            np.testing.assert_array_equal(a.normaliser.mean[m], b.normaliser.mean[m])
            np.testing.assert_array_equal(a.normaliser.std[m], b.normaliser.std[m])
    # ...while changing a training trial does change it (the check above can fail).
    train_key = next(iter(keys(splits[0].train)))
    moved = subject_dependent_splits(replace_features(ds, {train_key}, np.random.default_rng(1)), task)
    assert not np.array_equal(moved[0].normaliser.mean["eeg"], splits[0].normaliser.mean["eeg"])


def test_split_normaliser_is_fitted_on_train_without_validation():
    """Split.normaliser equals a normaliser fitted on exactly Split.train."""
    ds = make_dataset()
    split = subject_dependent_splits(ds, make_task(ds))[0]
    expected = Normaliser.fit(split.train)
    np.testing.assert_array_equal(split.normaliser.mean["eeg"], expected.mean["eeg"])
    assert split.normaliser.n_vectors == sum(t.n_windows for t in split.train)


def test_split_refuses_a_trial_in_two_parts():
    """Split raises when a trial is in train and test, or train and val, or val and test."""
    ds = make_dataset()
    task = make_task(ds)
    t = ds.trials
    with pytest.raises(ValueError, match="are in both train and test"):
        Split("x", "1", tuple(t[:9]), (), tuple(t[8:]), task)
    with pytest.raises(ValueError, match="are in both train and val"):
        Split("x", "1", tuple(t[:9]), (t[0],), tuple(t[9:]), task)
    with pytest.raises(ValueError, match="are in both val and test"):
        Split("x", "1", tuple(t[:8]), (t[9],), tuple(t[9:]), task)
    with pytest.raises(ValueError, match="has no test trials"):
        Split("x", "1", tuple(t), (), (), task)
    with pytest.raises(ValueError, match="has no training trials"):
        Split("x", "1", (), (), tuple(t), task)


PAPER_SPLITS = [
    # name, labels per session, n_train (incl. validation), n_test, number of splits per subject
    ("seed", {s: SEED_LABELS for s in (1, 2, 3)}, 9, 6, 3),
    ("seed_iv", SEED_IV_LABELS, 16, 8, 3),
    ("seed_v", {s: SEED_V_LABELS for s in (1, 2, 3)}, 10, 5, 3),
]


@pytest.mark.parametrize(("name", "labels", "n_train", "n_test", "per_subject"), PAPER_SPLITS)
def test_seed_family_split_sizes_match_the_paper(name, labels, n_train, n_test, per_subject):
    """SEED 9:6, SEED-IV 16:8, SEED-V 10:5: first trials train, last trials test, per session."""
    n_classes = max(max(v) for v in labels.values()) + 1
    ds = make_dataset(name, labels_per_session=labels, class_names=tuple(f"c{i}" for i in range(n_classes)))
    splits = subject_dependent_splits(ds, make_task(ds))
    assert len(splits) == 2 * per_subject
    for s in splits:
        subject, session = s.name.split("/")
        assert subject == f"subject={s.subject}"
        assert len(s.train) + len(s.val) == n_train and len(s.test) == n_test
        assert sorted(t.trial for t in s.train + s.val) == list(range(1, n_train + 1))
        assert [t.trial for t in s.test] == list(range(n_train + 1, n_train + n_test + 1))
        assert {t.session for t in s.train + s.val + s.test} == {int(session.split("=")[1])}
        assert {t.subject for t in s.train + s.val + s.test} == {s.subject}
    if name == "seed_v":
        assert all(len({t.label for t in s.test}) == 5 for s in splits)


@pytest.mark.parametrize(("name", "n_trials", "k"), [("deap", 40, 4), ("dreamer", 18, 3)])
def test_deap_and_dreamer_use_contiguous_k_fold(name, n_trials, k):
    """DEAP: 4 folds of 10 trials (30:10); DREAMER: 3 folds of 6 clips (12:6), per subject."""
    ds = deap_like(n_trials=n_trials, scale=(1.0, 9.0) if name == "deap" else (1.0, 5.0))
    ds.name = name
    splits = subject_dependent_splits(ds, make_task(ds, "valence"), val_per_class=0)
    assert len(splits) == 2 * k
    size = n_trials // k
    for i, s in enumerate(splits):
        fold = i % k
        assert s.name == f"subject={s.subject}/fold={fold + 1}"
        assert [t.trial for t in s.test] == list(range(fold * size + 1, (fold + 1) * size + 1))
        assert len(s.train) == n_trials - size and keys(s.train) | keys(s.test) == keys(
            ds.select(subjects=[s.subject])
        )
    # Every trial of a subject is tested exactly once.
    tested = [t.key for s in splits for t in s.test]
    assert sorted(tested) == sorted(t.key for t in ds.trials)


def test_synthetic_default_is_first_sixty_percent_per_session():
    """synthetic: first 60 % of each session's trials train."""
    ds = make_dataset("synthetic", labels_per_session={1: [0, 1, 2] * 3 + [0], 2: [0, 1, 2, 0, 1]})
    splits = subject_dependent_splits(ds, make_task(ds), val_per_class=0)
    sizes = [(len(s.train), len(s.test)) for s in splits]
    assert sizes == [(6, 4), (3, 2)] * 2
    assert DEFAULT_PROTOCOLS["synthetic"] == "fraction:0.6"


def test_protocol_override_by_rule_and_by_dataset_name():
    """protocol='first_k:5' and protocol='seed_v' (a dataset's rule) override the default."""
    ds = make_dataset("seed")
    by_rule = subject_dependent_splits(ds, make_task(ds), protocol="first_k:5", val_per_class=0)
    assert [len(s.test) for s in by_rule] == [10, 10] and by_rule[0].protocol == "first_k:5"
    by_name = subject_dependent_splits(ds, make_task(ds), protocol="seed_v", val_per_class=0)
    assert [len(s.train) for s in by_name] == [10, 10] and by_name[0].protocol == "first_k:10"
    kfold = subject_dependent_splits(ds, make_task(ds), protocol="kfold:5", subjects=["2"], val_per_class=0)
    assert [len(s.test) for s in kfold] == [3] * 5 and {s.subject for s in kfold} == {"2"}


@pytest.mark.parametrize(
    ("protocol", "message"),
    [
        ("first_k:20", "protocol first_k:20 leaves no test trial"),
        ("kfold:16", "needs at least 16"),
        ("first_k:0", "K must be an integer >= 1"),
        ("kfold:1", "K must be an integer >= 2"),
        ("first_k:2.5", "K must be an integer"),
        ("fraction:1.5", "the fraction must lie in \\(0, 1\\)"),
        ("fraction:x", "'x' is not a number"),
        ("leave_one_out", "Invalid protocol 'leave_one_out'"),
    ],
)
def test_bad_protocols_raise(protocol, message):
    """Malformed or impossible protocols raise ValueError naming the problem."""
    ds = make_dataset()
    with pytest.raises(ValueError, match=message):
        subject_dependent_splits(ds, make_task(ds), protocol=protocol)


def test_unknown_dataset_kind_needs_an_explicit_protocol():
    """A dataset kind without default protocol asks for one."""
    ds = make_dataset("my_lab")
    with pytest.raises(ValueError, match="no default protocol for dataset kind 'my_lab'"):
        subject_dependent_splits(ds, make_task(ds))
    with pytest.raises(ValueError, match="unknown subject\\(s\\) \\['7'\\]"):
        subject_dependent_splits(ds, make_task(ds), protocol="seed", subjects=["7"])


def test_validation_is_the_last_training_trial_of_each_class():
    """SEED: validation = last trial of each class among trials 1-9; never a test trial."""
    ds = make_dataset(n_subjects=1)
    split = subject_dependent_splits(ds, make_task(ds))[0]
    # SEED_LABELS[:9] = 2 1 0 0 1 2 0 1 2 -> last of class 0 is trial 7, of 1 trial 8, of 2 trial 9.
    assert sorted(t.trial for t in split.val) == [7, 8, 9]
    assert sorted(t.trial for t in split.train) == [1, 2, 3, 4, 5, 6]
    assert not keys(split.val) & keys(split.test) and not keys(split.val) & keys(split.train)
    assert split.notes == ()


def test_random_validation_is_seeded_and_stays_inside_training_trials():
    """val_selection='random' draws from the training trials, reproducibly per seed."""
    ds = make_dataset(n_subjects=1, labels_per_session={1: [0, 1] * 10})
    task = make_task(ds, "emotion")
    draws = {
        seed: tuple(
            sorted(
                t.trial
                for t in subject_dependent_splits(
                    ds, task, protocol="first_k:14", val_per_class=2, val_selection="random", seed=seed
                )[0].val
            )
        )
        for seed in range(6)
    }
    again = subject_dependent_splits(
        ds, task, protocol="first_k:14", val_per_class=2, val_selection="random", seed=0
    )
    assert tuple(sorted(t.trial for t in again[0].val)) == draws[0]
    assert len(set(draws.values())) > 1
    assert all(len(d) == 4 and max(d) <= 14 for d in draws.values())


def test_class_too_small_for_validation_is_kept_in_training_and_noted(caplog):
    """A class with <= val_per_class training trials stays in training; the split says so."""
    ds = make_dataset(n_subjects=1, labels_per_session={1: [0, 0, 0, 1, 0, 0, 1, 1]})
    with caplog.at_level(logging.WARNING, logger="training.protocols"):
        split = subject_dependent_splits(ds, make_task(ds), protocol="first_k:5")[0]
    assert [t.label for t in split.train].count(1) == 1
    assert [t.label for t in split.val] == [0]
    assert any("class 'neutral' has only 1 training trial" in n for n in split.notes)
    assert any("no training trial of class 'positive'" in n for n in split.notes)
    assert "class 'neutral' has only 1 training trial" in caplog.text


def test_validation_parameter_errors():
    """val_per_class < 0, an unknown val_selection and a non-integer seed are refused."""
    ds = make_dataset()
    task = make_task(ds)
    with pytest.raises(ValueError, match="val_per_class must be >= 0"):
        subject_dependent_splits(ds, task, val_per_class=-1)
    with pytest.raises(ValueError, match="Invalid value for the 'val_selection' parameter"):
        subject_dependent_splits(ds, task, val_selection="first")
    with pytest.raises(TypeError, match="seed must be an int"):
        subject_dependent_splits(ds, task, seed="0")
    with pytest.raises(TypeError, match="task must be an instance of Task"):
        subject_dependent_splits(ds, "emotion")


# ----------------------------------------------------------------------------------- cross-subject


def test_leave_one_subject_out_with_validation_trials():
    """Each subject is tested once on all its trials; val = whole trials of the training subjects."""
    ds = make_dataset(n_subjects=4, labels_per_session={1: SEED_LABELS, 2: SEED_LABELS})
    splits = cross_subject_splits(ds, make_task(ds))
    assert [s.name for s in splits] == [f"loso/test={i}" for i in "1234"]
    for s in splits:
        assert keys(s.test) == keys(ds.select(subjects=[s.subject]))
        assert s.subject not in {t.subject for t in s.train + s.val}
        # one trial per class per training subject: 3 classes x 3 subjects
        assert len(s.val) == 9 and {t.subject for t in s.val} == set("1234") - {s.subject}
        assert len(s.train) + len(s.val) + len(s.test) == len(ds.trials)


def test_leave_one_subject_out_with_a_validation_subject():
    """val='subject': one whole training subject validates, drawn reproducibly by seed."""
    ds = make_dataset(n_subjects=4)
    splits = cross_subject_splits(ds, make_task(ds), val="subject", seed=3, sessions=[1])
    for s in splits:
        (val_subject,) = {t.subject for t in s.val}
        assert val_subject != s.subject and val_subject not in {t.subject for t in s.train}
        assert keys(s.val) == keys(ds.select(subjects=[val_subject]))
        assert f"validation subject {val_subject}" in s.notes[0]
    again = cross_subject_splits(ds, make_task(ds), val="subject", seed=3)
    assert [keys(a.val) for a in splits] == [keys(b.val) for b in again]


def test_cross_subject_session_filter_and_errors():
    """sessions= restricts the trials; too few subjects and empty sessions are reported."""
    ds = make_dataset(n_subjects=3, labels_per_session={1: SEED_LABELS, 2: SEED_LABELS})
    splits = cross_subject_splits(ds, make_task(ds), sessions=[2])
    assert {t.session for s in splits for t in s.train + s.val + s.test} == {2}
    with pytest.raises(ValueError, match="needs at least 3 subjects, got 2"):
        cross_subject_splits(ds, make_task(ds), val="subject", subjects=["1", "2"])
    with pytest.raises(DatasetError, match="have no trials in sessions \\[5\\]"):
        cross_subject_splits(ds, make_task(ds), sessions=[5])
    with pytest.raises(ValueError, match="Invalid value for the 'val' parameter"):
        cross_subject_splits(ds, make_task(ds), val="half")


# ------------------------------------------------------------------------------------------ Windows


def test_no_window_spans_two_trials_even_with_equal_neighbouring_labels():
    """Every window holds consecutive positions of one trial (uid and position columns prove it)."""
    ds = make_dataset(n_subjects=2, labels_per_session={1: [0, 0, 0, 1, 1, 2, 2, 2]})
    task = make_task(ds)
    win = make_windows(ds.trials, task, 5, normaliser=identity_normaliser(ds))
    uid_of = {t.key: uid(int(t.subject) - 1, t.session, t.trial) for t in ds.trials}
    for m in ("eeg", "eye"):
        x = win.x[m]
        assert x.dtype == np.float32 and x.shape[1:] == (5, ds.modalities[m].dim)
        assert np.all(x[:, :, 0] == x[:, :1, 0])  # one trial per window
        assert np.all(np.diff(x[:, :, 1], axis=1) == 1)  # consecutive positions
        np.testing.assert_array_equal(x[:, 0, 0], [uid_of[k] for k in win.trial_keys])
        np.testing.assert_array_equal(x[:, 0, 1], win.starts)
    # Paired: both modalities cut at the same positions of the same trials.
    np.testing.assert_array_equal(win.x["eeg"][:, :, :2], win.x["eye"][:, :, :2])


def test_window_count_labels_and_values_match_an_independent_computation():
    """N = sum(W - T + 1); y is the trial's class; values are (x - mean) / std of the training fit."""
    ds = make_dataset()
    task = make_task(ds)
    norm = Normaliser.fit(ds.trials[:9])
    win = make_windows(ds.trials, task, 4, normaliser=norm)
    lengths = [t.n_windows for t in ds.trials]
    assert len(win) == sum(w - 3 for w in lengths)
    assert win.y.dtype == np.int64
    np.testing.assert_array_equal(win.y, np.repeat([t.label for t in ds.trials], [w - 3 for w in lengths]))
    i = 17
    trial = next(t for t in ds.trials if t.key == win.trial_keys[i])
    start = int(win.starts[i])
    raw = trial.features["eeg"][start : start + 4]
    stacked = np.concatenate([t.features["eeg"] for t in ds.trials[:9]])
    expected = (raw - stacked.mean(0)) / stacked.std(0)
    np.testing.assert_allclose(win.x["eeg"][i], expected, rtol=1e-5, atol=1e-5)


def test_stride_and_modality_selection():
    """stride=k keeps every k-th start; modalities= keeps only those."""
    ds = make_dataset(n_subjects=1)
    task = make_task(ds)
    win = make_windows(ds.trials, task, 3, normaliser=identity_normaliser(ds), modalities=["eye"], stride=4)
    assert list(win.x) == ["eye"]
    assert len(win) == sum(len(range(0, t.n_windows - 2, 4)) for t in ds.trials)
    assert set(win.starts.tolist()) <= set(range(0, 100, 4))


def test_windows_follow_the_live_rule_for_gaps_and_nonfinite_vectors():
    """Inside a trial no window spans a segment edge or a vector that is NaN in any modality (paired)."""
    rng = np.random.default_rng(4)
    eeg, eye = rng.normal(size=(12, 4)), rng.normal(size=(12, 3))
    eye[5, 1] = np.nan  # e.g. a NaN pupil feature: its vector and every window over it are dropped
    segments = np.array([1] * 9 + [2] * 3)  # a gap in the recording before vector 9
    trial = Trial("1", 1, 1, 0, {}, {"eeg": eeg, "eye": eye}, segments=segments)
    norm = Normaliser.fit([trial])
    windows = make_windows([trial], Task("emotion", ("a", "b")), 3, normaliser=norm)
    assert windows.starts.tolist() == [0, 1, 2, 6, 9]
    for i, start in enumerate(windows.starts):
        np.testing.assert_array_equal(windows.x["eeg"][i], norm.apply("eeg", eeg[start : start + 3]))
    # The statistics skip the NaN vector of 'eye' only.
    np.testing.assert_allclose(norm.mean["eye"], np.delete(eye, 5, axis=0).mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(norm.mean["eeg"], eeg.mean(axis=0), rtol=1e-12)
    with pytest.raises(DatasetError, match="segments must have one entry per feature vector \\(12\\)"):
        Trial("1", 1, 1, 0, {}, {"eeg": eeg}, segments=segments[:5])


def test_short_trials_give_no_window_and_are_logged(caplog):
    """Trials with W < T contribute nothing and a warning names them."""
    ds = make_dataset(n_subjects=1, labels_per_session={1: [0, 1, 2]}, lengths=(3, 3))
    with caplog.at_level(logging.WARNING, logger="training.protocols"):
        win = make_windows(ds.trials, make_task(ds), 4, normaliser=identity_normaliser(ds))
    assert len(win) == 0 and win.x["eeg"].shape == (0, 4, 4) and win.y.shape == (0,)
    assert "3 of 3 trial(s) have no run of seq_len=4 finite feature vectors in one segment" in caplog.text
    assert len(make_windows(ds.trials, make_task(ds), 3, normaliser=identity_normaliser(ds))) == 3


def test_split_windows_use_the_split_normaliser():
    """Split.windows('test') equals make_windows on the test trials with the training statistics."""
    ds = make_dataset()
    split = subject_dependent_splits(ds, make_task(ds))[1]
    got = split.windows("test", 5)
    expected = make_windows(split.test, split.task, 5, normaliser=split.normaliser)
    np.testing.assert_array_equal(got.x["eeg"], expected.x["eeg"])
    assert got.trial_keys == expected.trial_keys and set(got.trial_keys) <= keys(split.test)
    with pytest.raises(ValueError, match="Invalid value for the 'part' parameter"):
        split.windows("all", 5)


def test_split_windows_take_a_given_normaliser():
    """Split.windows(normaliser=...) normalises with those statistics (a run record's), not the refitted ones."""
    ds = make_dataset()
    split = subject_dependent_splits(ds, make_task(ds))[1]
    recorded = identity_normaliser(ds)
    got = split.windows("val", 5, normaliser=recorded)
    expected = make_windows(split.val, split.task, 5, normaliser=recorded)
    np.testing.assert_array_equal(got.x["eeg"], expected.x["eeg"])
    assert not np.array_equal(got.x["eeg"], split.windows("val", 5).x["eeg"])


def test_make_windows_errors():
    """Bad seq_len, stride, modality, trials or normaliser raise."""
    ds = make_dataset(n_subjects=1)
    task = make_task(ds)
    norm = identity_normaliser(ds)
    with pytest.raises(ValueError, match="seq_len and stride must be >= 1"):
        make_windows(ds.trials, task, 0, normaliser=norm)
    with pytest.raises(ValueError, match="seq_len and stride must be >= 1"):
        make_windows(ds.trials, task, 2, normaliser=norm, stride=0)
    with pytest.raises(TypeError, match="seq_len must be an int"):
        make_windows(ds.trials, task, 2.5, normaliser=norm)
    with pytest.raises(ValueError, match="modalities \\['ecg'\\] have no normaliser statistics"):
        make_windows(ds.trials, task, 2, normaliser=norm, modalities=["ecg"])
    with pytest.raises(TypeError, match="got a single Trial"):
        make_windows(ds.trials[0], task, 2, normaliser=norm)
    with pytest.raises(TypeError, match="normaliser must be an instance of Normaliser"):
        make_windows(ds.trials, task, 2, normaliser=None)
    eye_only = Normaliser(mean={"ecg": np.zeros(2)}, std={"ecg": np.ones(2)}, n_vectors=1)
    with pytest.raises(ValueError, match="has no features for \\['ecg'\\]"):
        make_windows(ds.trials, task, 2, normaliser=eye_only)


def test_first_k_splits_by_trial_number_not_position():
    """A missing trial 4 does not pull trial 10 into training (SEED: 1-9 train, 10-15 test)."""
    ds = make_dataset(n_subjects=1)
    gap = EmotionDataset("seed", [t for t in ds.trials if t.trial != 4], ds.modalities, ds.class_names)
    split = subject_dependent_splits(gap, make_task(gap), val_per_class=0)[0]
    assert [t.trial for t in split.train] == [1, 2, 3, 5, 6, 7, 8, 9]
    assert [t.trial for t in split.test] == [10, 11, 12, 13, 14, 15]


def test_fraction_of_a_single_trial_session_is_refused():
    """fraction:F needs at least one training and one test trial per session."""
    ds = make_dataset("synthetic", labels_per_session={1: [0]})
    with pytest.raises(DatasetError, match="protocol fraction:0.6 leaves no training trial"):
        subject_dependent_splits(ds, make_task(ds))


def test_splits_and_windows_of_loader_output(tmp_path):
    """SEED-IV and DEAP as their loaders read them: paper split sizes, windows inside trials."""
    from tests.fixtures.deap import write_deap
    from tests.fixtures.seed import write_seed_iv
    from training.datasets import load_dataset

    seed_iv = load_dataset(write_seed_iv(tmp_path / "iv", n_subjects=1, n_sessions=2, include_raw=False).root)
    splits = subject_dependent_splits(seed_iv, make_task(seed_iv))
    assert [(len(s.train) + len(s.val), len(s.test)) for s in splits] == [(16, 8), (16, 8)]
    assert [len(s.val) for s in splits] == [4, 4]  # one per class
    win = splits[0].windows("test", 2)
    assert len(win) == sum(t.n_windows - 1 for t in splits[0].test)
    assert set(win.x) == {"eeg", "eye"} and win.x["eeg"].shape[1:] == (2, 310)

    deap = load_dataset(write_deap(tmp_path / "deap", n_subjects=1, n_trials=8))
    folds = subject_dependent_splits(deap, make_task(deap, "arousal"), val_per_class=0)
    assert [[t.trial for t in s.test] for s in folds] == [[1, 2], [3, 4], [5, 6], [7, 8]]
