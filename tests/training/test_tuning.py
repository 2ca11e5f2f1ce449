"""``--tune`` in the subject-dependent regime and the in-modal head on the latent.

The tuner must score candidates on validation trials only (poisoned test trials change nothing),
record its choice in results.json, and the latent head must be exactly a logistic regression on the
mean-pooled encoder output.
"""

import dataclasses
import json

import numpy as np
import pytest
import torch

from tests.training.test_anchor_methods import NAMES, T, _dataset, _exp, _split
from training.experiment import ExperimentConfig, modality_configs, run_split
from training.finetune import embed_latent
from training.pretrain import PretrainConfig
from training.protocols import make_task, subject_dependent_splits
from training.tuning import (
    SUBJECT_TUNE_CANDIDATES,
    TUNE_CANDIDATES,
    apply_candidate,
    effective_candidates,
    greedy_search,
    tune_subject,
    validation_splits,
)

TWO = {"recipe": {}, "w_contra=0.3": {"model": {"w_contra": 0.3}}}


@pytest.fixture(scope="module")
def split():
    return _split()


def test_latent_in_modal_head_reads_the_encoder_output(split):
    """A->A comes from a head on the mean-pooled ER output (d_model wide); A->B from the projection head."""
    mods = modality_configs(_dataset(), NAMES)
    cfg = _exp(methods=("m2s",), head="linear", in_modal_features="latent")
    r = run_split(split, "m2s", cfg, mods, keep_models=True)
    test = split.windows("test", T, modalities=NAMES)
    for a in NAMES:
        own = r.classifiers[f"{a}->{a}"]
        assert own.in_features == 16 and r.classifiers[a].in_features == 32
        assert r.selection[a]["in_modal"]["features"] == "latent"
        assert r.selection[a]["in_modal"]["selected_on"] == "validation"
        with torch.no_grad():
            z = embed_latent(r.model.embedder(a), test.x[a])
            y_pred = own(z).argmax(dim=1).numpy()
        expected = np.zeros((3, 3), dtype=int)
        np.add.at(expected, (test.y, y_pred), 1)
        assert r.matrix[f"{a}->{a}"]["confusion"] == expected.tolist()
    plain = run_split(split, "m2s", _exp(methods=("m2s",), head="linear"), mods)
    assert plain.matrix["eeg->eye"] == r.matrix["eeg->eye"]  # the cross-modal head is unchanged


def test_latent_features_need_the_linear_head():
    with pytest.raises(ValueError, match=r"in_modal_features='latent' needs head='linear'"):
        ExperimentConfig(head="mlp", in_modal_features="latent")
    with pytest.raises(ValueError, match="in_modal_features must be 'projection' or 'latent'"):
        ExperimentConfig(head="linear", in_modal_features="pooled")


def test_validation_splits_score_on_validation_trials(split):
    (v,) = validation_splits([split])
    assert v.test == split.val and v.val == () and v.train == split.train
    np.testing.assert_array_equal(v.normaliser.mean["eeg"], split.normaliser.mean["eeg"])
    no_val = _split(val_per_class=0)
    assert validation_splits([no_val]) == []


def test_validation_trials_that_are_tested_elsewhere_never_score():
    """k-fold: a fold's validation trials are other folds' test trials, so they never take part in a choice."""
    ds = _dataset()
    splits = subject_dependent_splits(ds, make_task(ds), protocol="kfold:3", val_per_class=1)
    tested = {t.key for s in splits for t in s.test}
    assert all(s.val for s in splits) and all(tested & {t.key for t in s.val} for s in splits)
    assert validation_splits(splits) == []
    with pytest.raises(ValueError, match="--tune needs validation trials that are never test trials"):
        tune_subject(
            splits, _exp(methods=("m2s",), head="linear"), modality_configs(ds, NAMES), candidates=TWO
        )


def test_candidates_that_change_nothing_are_skipped():
    cfg = _exp(model={**_exp().model, "w_contra": 0.3}, head="linear")
    kept, same = effective_candidates(cfg, SUBJECT_TUNE_CANDIDATES)
    assert "w_contra=0.3" in same and "in-modal head on the projection" in same and "w_contra=1" in kept
    assert list(kept)[0] == "recipe"


def test_apply_candidate():
    cfg = _exp(pretrain=PretrainConfig(epochs=4, min_steps=10, device="cpu", progress=False))
    tripled = apply_candidate(cfg, TUNE_CANDIDATES["steps x3"])
    assert (tripled.pretrain.epochs, tripled.pretrain.min_steps) == (12, 30)
    assert apply_candidate(cfg, TUNE_CANDIDATES["no CLUB"]).model["w_club"] == 0.0
    assert apply_candidate(cfg, {}) == cfg
    assert "head on pool+target" not in SUBJECT_TUNE_CANDIDATES
    with pytest.raises(
        ValueError, match="candidate changes 'head_data', which ExperimentConfig does not have"
    ):
        apply_candidate(cfg, TUNE_CANDIDATES["head on pool+target"])


def _poisoned(split):
    """The split with every test trial's features replaced by noise and its labels rotated."""
    rng = np.random.default_rng(99)
    bad = tuple(
        dataclasses.replace(
            t,
            label=(t.label + 1) % 3,
            features={m: 50 * rng.normal(size=v.shape) for m, v in t.features.items()},
        )
        for t in split.test
    )
    return dataclasses.replace(split, test=bad)


def test_tune_subject_never_reads_test_trials(split):
    """Scores come from the validation trials: poisoning the test trials leaves the record unchanged."""
    mods = modality_configs(_dataset(), NAMES)
    cfg = _exp(methods=("m2s",), head="linear")
    tuned, record = tune_subject([split], cfg, mods, candidates=TWO)
    _, again = tune_subject([_poisoned(split)], cfg, mods, candidates=TWO)
    assert record == again
    assert set(record["scores"]) == set(TWO) and record["skipped"] == []
    assert record["selected"] == max(record["scores"], key=lambda k: (record["scores"][k], k == "recipe"))
    assert record["splits"] == [f"{split.name} (validation)"]
    assert tuned == apply_candidate(cfg, TWO[record["selected"]])
    json.dumps(record)


def test_greedy_search_combines_only_what_helps():
    """Each change alone, then from the best, add changes that beat the baseline while the score rises."""
    cands = {"base": {}, "a": {"x": 1}, "b": {"y": 1}, "c": {"z": 1}, "d": {"w": 1}}
    table = {"base": 0.5, "a": 0.7, "b": 0.6, "c": 0.4, "d": 0.55, "a + b": 0.75, "a + b + d": 0.74}
    calls = []

    def score(names):
        calls.append(" + ".join(names))
        return table[" + ".join(names)]

    chosen, scores = greedy_search(cands, score)
    assert chosen == ["a", "b"] and scores == table
    assert calls == ["base", "a", "b", "c", "d", "a + b", "a + b + d"]  # c never beat the baseline
    chosen, _ = greedy_search({"base": {}, "a": {"x": 1}}, lambda names: 0.5)
    assert chosen == ["base"]  # ties keep the earlier, simpler choice


def test_tune_subject_skips_what_does_not_apply_and_needs_validation(split):
    mods = modality_configs(_dataset(), NAMES)
    cands = {"recipe": {}, "latent": {"in_modal_features": "latent"}}
    _, record = tune_subject([split], _exp(methods=("m2s",)), mods, candidates=cands)
    assert record["skipped"] == ["latent"] and list(record["scores"]) == ["recipe"]
    with pytest.raises(ValueError, match="--tune needs validation trials that are never test trials"):
        tune_subject([_split(val_per_class=0)], _exp(), mods, candidates=cands)


def test_reproduce_tune_records_the_choice(tmp_path, monkeypatch, capsys):
    """reproduce --tune (subject regime): the choice reaches results.json and the report."""
    import training.tuning as tuning
    from tests.fixtures.seed import write_seed
    from training.cli import main

    monkeypatch.setattr(tuning, "SUBJECT_TUNE_CANDIDATES", TWO)
    root = tmp_path / "seed"
    root.mkdir()
    write_seed(root, n_subjects=1, n_sessions=1, layout="multimodal", n_windows=6)
    out = tmp_path / "rep"
    argv = ["reproduce", "seed", str(root), "--out", str(out), "--seq-len", "3", "--head", "linear",
            "--in-modal-features", "latent", "--tune", "--tune-splits", "1", "--epochs", "1", "--min-steps", "0",
            "--warmup-steps", "0", "--model", '{"d_model": 16, "d_ff": 32, "d_ei": 16}', "--no-progress",
            "--device", "cpu"]  # fmt: skip
    assert main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert set(results["tuning"]["scores"]) == set(TWO)
    assert results["tuning"]["selected"] in TWO
    assert "tuning" in (out / "report.md").read_text()
    capsys.readouterr()
    assert main(argv[:5] + ["--in-modal-features", "latent", "--device", "cpu"]) == 2
    assert "--in-modal-features latent needs --head linear" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["reproduce", "seed", "x", "--out", "o", "--tune-splits", "2"], "--tune-splits needs --tune"),
        (["reproduce", "seed", "x", "--out", "o", "--tune", "--tune-splits", "0"], "--tune-splits must be >= 1, got 0."),
        (["benchmark", "--out", "o", "--regime", "population", "--tune", "--tune-splits", "2"],
         "--tune-splits belongs to the subject regime; the population regime tunes on development subjects."),
        (["reproduce", "seed", "x", "--out", "o", "--regime", "population", "--tune-splits", "2"],
         "--tune-splits belongs to the subject regime"),
    ],
)  # fmt: skip
def test_tune_splits_is_checked_before_any_work(argv, message, capsys):
    from training.cli import main

    assert main(argv) == 2
    assert message in capsys.readouterr().err
