"""Tests for training.experiment: methods, per-split pipeline, T x N sweep, a tiny synthetic run."""

import json

import numpy as np
import pytest

from signals.spec import DESpec, EyeSpec
from training.datasets.base import EmotionDataset, ModalityInfo, Trial
from training.experiment import (
    BENCHMARK_METHODS,
    METHODS,
    BenchmarkConfig,
    ExperimentConfig,
    infer_n_channels,
    method_model_config,
    modality_configs,
    run_methods,
    run_split,
    run_tn_sweep,
)
from training.finetune import FinetuneConfig
from training.pretrain import PretrainConfig
from training.protocols import make_task, subject_dependent_splits

SMALL = {"d_model": 16, "n_blocks": 1, "d_ff": 32, "n_heads": 2, "head_dim": 8, "d_ei": 16}


def _dataset(n_subjects=1, n_trials=9, n_vectors=12, seed=0):
    """Two modalities reading a shared class latent (3 classes), no spec (dims tell the layout)."""
    rng = np.random.default_rng(seed)
    means, a_eeg, a_eye = rng.normal(size=(3, 4)), rng.normal(size=(4, 20)), rng.normal(size=(4, 6))
    trials = []
    for s in range(n_subjects):
        for t in range(n_trials):
            z = 1.5 * means[t % 3] + 0.5 * rng.normal(size=(n_vectors, 4))
            feats = {"eeg": z @ a_eeg + 0.3 * rng.normal(size=(n_vectors, 20)), "eye": z @ a_eye}
            trials.append(Trial(str(s), 1, t + 1, t % 3, {}, feats))
    infos = {"eeg": ModalityInfo(20, 1.0, "test"), "eye": ModalityInfo(6, 1.0, "test")}
    return EmotionDataset("synthetic", trials, infos, class_names=("a", "b", "c"))


def _exp(**kw):
    base = {
        "model": SMALL,
        "pretrain": PretrainConfig(epochs=2, batch_size=16, device="cpu", progress=False),
        "finetune": FinetuneConfig(epochs=3, batch_size=16, device="cpu", progress=False),
        "supervised": FinetuneConfig(epochs=3, batch_size=16, device="cpu", progress=False),
    }
    return ExperimentConfig(**{**base, **kw})


def _splits(ds):
    return subject_dependent_splits(ds, make_task(ds), protocol="fraction:0.67")


def test_method_table():
    """CLIP keeps only the contrastive loss; each ablation zeroes exactly one weight."""
    mods = modality_configs(_dataset(), ["eeg", "eye"])
    cfg = _exp()
    m2s = method_model_config("m2s", mods, cfg)
    clip = method_model_config("clip", mods, cfg)
    assert (clip.w_club, clip.w_recon, clip.w_cpc, clip.w_contra) == (0, 0, 0, m2s.w_contra)
    for name, weight in (("recon", "w_recon"), ("cpc", "w_cpc"), ("club", "w_club"), ("contra", "w_contra")):
        c = method_model_config(f"m2s_no_{name}", mods, cfg)
        assert getattr(c, weight) == 0
        others = [w for w in ("w_recon", "w_cpc", "w_club", "w_contra") if w != weight]
        assert all(getattr(c, w) == getattr(m2s, w) for w in others)
    assert method_model_config("m2s_attention_mha", mods, cfg).attention == "mha"
    assert method_model_config("m2s_attention_none", mods, cfg).attention == "none"
    assert m2s.attention == "sts" and m2s.d_model == 16
    assert set(BENCHMARK_METHODS) <= set(METHODS)


def test_infer_n_channels():
    """Spec first (DE: one token per channel; eye: sequence), then the override, then D heuristics."""
    de = DESpec(modality="eeg", sfreq=200.0, channels=("a", "b"), window_s=1.0, hop_s=1.0)
    assert infer_n_channels("eeg", ModalityInfo(10, 1.0, "", spec=de)) == 2
    assert infer_n_channels("eye", ModalityInfo(33, 1.0, "", spec=EyeSpec(sfreq=120.0))) is None
    assert infer_n_channels("eeg", ModalityInfo(310, 1.0, "")) == 62
    assert infer_n_channels("eeg", ModalityInfo(128, 1.0, "")) == 32
    assert infer_n_channels("pps", ModalityInfo(48, 1.0, "")) == 8
    assert infer_n_channels("eye", ModalityInfo(33, 1.0, "")) is None
    assert infer_n_channels("eeg", ModalityInfo(310, 1.0, ""), {"eeg": 31}) == 31


def test_experiment_config_validation():
    """Unknown methods, duplicate methods and unknown model fields raise."""
    with pytest.raises(ValueError, match="unknown method"):
        ExperimentConfig(methods=("m2s", "bdae"))
    with pytest.raises(ValueError, match="lists a method twice"):
        ExperimentConfig(methods=("m2s", "m2s"))
    with pytest.raises(ValueError, match="unknown model field"):
        ExperimentConfig(model={"modalities": ()})
    with pytest.raises(ValueError, match="methods is empty"):
        ExperimentConfig(methods=())
    with pytest.raises(ValueError, match="seq_len and stride must be >= 1"):
        ExperimentConfig(seq_len=0)


def test_pretrain_method_gives_full_matrix_and_validation_selection():
    """A pretraining method evaluates every A->B pair, selecting epochs on validation."""
    ds = _dataset()
    split = _splits(ds)[0]
    r = run_split(split, "clip", _exp(), modality_configs(ds, ["eeg", "eye"]), keep_embeddings=True)
    assert list(r.matrix) == ["eeg->eeg", "eeg->eye", "eye->eeg", "eye->eye"]
    assert all(v["selected_on"] == "validation" for v in r.selection.values())
    assert len(r.pretrain_history) == 2
    assert r.embeddings["eeg"].shape == (len(r.embeddings["y"]), 32)


def test_supervised_gives_a_to_a_only():
    """Baseline S has no shared embedding, hence no cross-modal entries."""
    ds = _dataset()
    r = run_split(_splits(ds)[0], "supervised", _exp(), modality_configs(ds, ["eeg", "eye"]))
    assert list(r.matrix) == ["eeg->eeg", "eye->eye"] and r.pretrain_history == []


def test_train_modalities_restricts_classifiers():
    """Only the listed training modalities get a classifier; every modality is still tested."""
    ds = _dataset()
    r = run_split(
        _splits(ds)[0], "m2s", _exp(train_modalities=("eye",)), modality_configs(ds, ["eeg", "eye"])
    )
    assert list(r.matrix) == ["eye->eeg", "eye->eye"]
    with pytest.raises(ValueError, match="not among the modalities"):
        run_split(
            _splits(ds)[0], "m2s", _exp(train_modalities=("ecg",)), modality_configs(ds, ["eeg", "eye"])
        )


def test_run_split_refuses_too_long_windows():
    """A seq_len longer than the trials is reported, not silently empty."""
    ds = _dataset(n_vectors=4)
    with pytest.raises(ValueError, match="too short for this seq_len"):
        run_split(_splits(ds)[0], "m2s", _exp(), modality_configs(ds, ["eeg", "eye"]))


def test_tn_sweep_skips_invalid_cells():
    """Cells with T < N + 2 are skipped, the others hold a summary per pair."""
    ds = _dataset()
    sweep = run_tn_sweep(
        _splits(ds), _exp(), modality_configs(ds, ["eeg", "eye"]), seq_lens=(3, 4), cpc_steps=(1, 2)
    )
    assert sorted(sweep["cells"]) == ["T=3,N=1", "T=4,N=1", "T=4,N=2"]
    assert "eeg->eye" in sweep["cells"]["T=4,N=2"]


def test_benchmark_config_json(tmp_path):
    """The JSON schema loads nested synthetic fields and rejects unknown keys with the field name."""
    path = tmp_path / "b.json"
    path.write_text(json.dumps({"synthetic": {"n_subjects": 2, "n_trials": 6}, "pretrain_epochs": 3}))
    cfg = BenchmarkConfig.from_json(path)
    assert cfg.synthetic.n_subjects == 2 and cfg.pretrain_epochs == 3 and cfg.methods == BENCHMARK_METHODS
    assert BenchmarkConfig.model_validate_json(cfg.model_dump_json()) == cfg
    path.write_text(json.dumps({"epochs": 3}))
    with pytest.raises(ValueError, match="epochs: Extra inputs"):
        BenchmarkConfig.from_json(path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        BenchmarkConfig.from_json(tmp_path / "none.json")
    path.write_text(json.dumps({"model": {"width": 3}}))
    with pytest.raises(ValueError, match="unknown model field"):
        BenchmarkConfig.from_json(path).experiment()


def test_tiny_synthetic_run_is_clearly_above_chance():
    """Seeded synthetic data through signals features, M2S (d_model 32, 1 block, d_ff 64): both cross-modal
    pairs beat chance (1/3) clearly.

    Thresholds: each cross-modal pair's mean over the 3 subjects > 0.45 and their average > 0.5; measured
    0.55 (EEG->EYE) and 0.79 (EYE->EEG) when written, so the bar sits between chance and the measurement.
    """
    from synthetic import SEED_CHANNELS, SyntheticConfig
    from training.datasets import synthetic

    cfg = SyntheticConfig(
        n_subjects=3, n_trials=15, trial_duration_s=40, eeg={"channel_names": SEED_CHANNELS[:16]}
    )
    ds = synthetic.load(cfg, modalities=["eeg", "eye"], hop_s=2.0)
    exp = ExperimentConfig(
        model={"d_model": 32, "n_blocks": 1, "d_ff": 64, "head_dim": 16, "d_ei": 32},
        pretrain=PretrainConfig(
            epochs=30, batch_size=32, lr=1e-3, estimator_lr=1e-3, device="cpu", progress=False
        ),
        finetune=FinetuneConfig(epochs=40, batch_size=32, patience=10, device="cpu", progress=False),
    )
    splits = subject_dependent_splits(ds, make_task(ds))
    summary = run_methods(splits, exp, modality_configs(ds, ["eeg", "eye"]))["m2s"].summary
    cross = [summary[p]["balanced_accuracy"]["mean"] for p in ("eeg->eye", "eye->eeg")]
    assert min(cross) > 0.45 and np.mean(cross) > 0.5, cross
