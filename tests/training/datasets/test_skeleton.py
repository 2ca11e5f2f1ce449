"""Every dataset loader goes through one skeleton (training.datasets.skeleton): same checks, same messages."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.fixtures.deap import write_deap
from tests.fixtures.dreamer import write_dreamer
from tests.fixtures.recordings import write_fif
from tests.fixtures.seed import write_seed, write_seed_iv, write_seed_v
from training.datasets import LOADERS, DatasetError, load_dataset, loader
from training.datasets.skeleton import Loader, find_files, require_file, select_subjects

# kind -> (subject the fixture has, options keeping the load small)
KINDS = {
    "seed": ("1", {}),
    "seed_iv": ("1", {}),
    "seed_v": ("1", {}),
    "deap": ("s01", {}),
    "dreamer": ("1", {}),
    "recording": ("1", {}),
    "synthetic": ("0", {"n_jobs": 1, "modalities": ["eeg"]}),
}


@pytest.fixture(scope="module")
def paths(tmp_path_factory) -> dict[str, Path]:
    """One small dataset of every kind."""
    from synthetic import SyntheticConfig

    root = tmp_path_factory.mktemp("skeleton")
    config = root / "synthetic.json"
    config.write_text(
        SyntheticConfig(n_subjects=1, n_sessions=1, n_trials=2, trial_duration_s=12).model_dump_json()
    )
    return {
        "seed": write_seed(root / "seed", n_subjects=1, n_sessions=1, include_raw=False).root,
        "seed_iv": write_seed_iv(root / "seed_iv", n_subjects=1, n_sessions=1, include_raw=False).root,
        "seed_v": write_seed_v(root / "seed_v", n_subjects=1).root,
        "deap": write_deap(root / "deap", n_subjects=1, n_trials=2),
        "dreamer": write_dreamer(root / "dreamer", n_subjects=1, n_clips=2),
        "recording": write_fif(root / "rec_raw.fif"),
        "synthetic": config,
    }


def test_every_kind_has_a_skeleton_loader():
    """Each registered module's load runs a Loader of the same name (no loader bypasses the skeleton)."""
    assert set(KINDS) == set(LOADERS)
    for kind in LOADERS:
        module = loader(kind)
        assert isinstance(module._LOADER, Loader) and module._LOADER.name == kind


@pytest.mark.parametrize("kind", list(KINDS))
def test_unknown_subject_is_the_same_error_everywhere(paths, kind):
    """An unknown subject: 'subject(s) [...] not in ...; it has [...]' from every loader."""
    present, options = KINDS[kind]
    with pytest.raises(
        DatasetError, match=rf"^subject\(s\) \['nobody'\] not in .*; it has \['{present}'\]\.$"
    ):
        load_dataset(paths[kind], kind, subjects=["nobody"], **options)
    with pytest.raises(DatasetError, match=r"^subjects is empty"):
        load_dataset(paths[kind], kind, subjects=[], **options)


@pytest.mark.parametrize("kind", list(KINDS))
def test_unknown_modality_is_the_same_error_everywhere(paths, kind):
    """An unknown modality: '... has modalities [...]; cannot load ['emg']' from every loader."""
    options = {k: v for k, v in KINDS[kind][1].items() if k != "modalities"}
    with pytest.raises(
        DatasetError, match=r"has modalities \[.*\]; cannot load \['emg'\]\. Pass a non-empty"
    ):
        load_dataset(paths[kind], kind, modalities=["emg"], **options)
    with pytest.raises(TypeError, match="modalities must be a list or tuple of str, got int"):
        load_dataset(paths[kind], kind, modalities=3, **options)


@pytest.mark.parametrize("kind", list(KINDS))
def test_subjects_come_back_in_dataset_order_and_are_logged_once(paths, kind, caplog):
    """A load names the subject it was asked for, and the skeleton logs one summary line."""
    present, options = KINDS[kind]
    with caplog.at_level(logging.INFO, logger="training.datasets.skeleton"):
        ds = load_dataset(paths[kind], kind, subjects=[present, present], **options)
    assert ds.subjects == [present] and ds.name == kind and ds.trials
    lines = [r for r in caplog.records if r.name == "training.datasets.skeleton"]
    assert len(lines) == 1 and f"{len(ds.trials)} trials" in lines[0].getMessage()


def test_select_subjects_keeps_dataset_order():
    """Requested subjects come back in the dataset's order, once each."""
    assert select_subjects([3, "1", 3], ["1", "2", "3"], "here") == ["1", "3"]
    with pytest.raises(TypeError, match="subjects must be a list of str or int, got float"):
        select_subjects(1.5, ["1"], "here")


def test_file_discovery_names_what_the_folder_holds(tmp_path):
    """No matching file: the error lists what the folder holds; a missing partner file says what it holds."""
    (tmp_path / "notes.txt").write_text("")
    with pytest.raises(DatasetError, match=r"has no 'x_1\.npz' files \(it holds \['notes\.txt'\]\)"):
        find_files(tmp_path, r"x_(\d)\.npz", "'x_1.npz' files")
    (tmp_path / "1").mkdir()
    (tmp_path / "1" / "x_1.npz").write_text("")
    assert [m.group(1) for m in find_files(tmp_path, r"1/x_(\d)\.npz", "files", glob="*/*")] == ["1"]
    with pytest.raises(DatasetError, match=r"eye\.npz is missing; it holds the eye features\.$"):
        require_file(tmp_path / "eye.npz", "it holds the eye features")
