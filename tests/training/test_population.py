"""The population regime: folds that cannot leak the target's test trials, and the label-efficiency runner."""

import dataclasses

import numpy as np
import pytest

from training.datasets.base import EmotionDataset, ModalityInfo, Trial
from training.experiment import modality_configs
from training.label_efficiency import (
    PopulationConfig,
    default_targets,
    k_key,
    parse_k,
    run_fold,
    run_population,
)
from training.protocols import make_task
from training.protocols.population import PopulationFold, first_trials_per_class, population_folds

SMALL = {"d_model": 16, "n_blocks": 1, "d_ff": 32, "n_heads": 2, "head_dim": 8, "d_ei": 16}


def _dataset(n_subjects=4, n_trials=9, n_vectors=10, seed=0):
    """Three classes read through a shared latent; each subject adds its own offset (per-subject z-scoring
    removes it)."""
    rng = np.random.default_rng(seed)
    means, a_eeg, a_eye = rng.normal(size=(3, 4)), rng.normal(size=(4, 20)), rng.normal(size=(4, 6))
    trials = []
    for s in range(n_subjects):
        off_eeg, off_eye = 3 * rng.normal(size=20), 3 * rng.normal(size=6)
        for t in range(n_trials):
            z = 1.5 * means[t % 3] + 0.5 * rng.normal(size=(n_vectors, 4))
            feats = {
                "eeg": z @ a_eeg + 0.3 * rng.normal(size=(n_vectors, 20)) + off_eeg,
                "eye": z @ a_eye + 0.3 * rng.normal(size=(n_vectors, 6)) + off_eye,
            }
            trials.append(Trial(str(s), 1, t + 1, t % 3, {}, feats))
    infos = {"eeg": ModalityInfo(20, 1.0, "test"), "eye": ModalityInfo(6, 1.0, "test")}
    return EmotionDataset("synthetic", trials, infos, class_names=("a", "b", "c"))


def _poison_test(ds, fold):
    """The same dataset with the target's TEST trials replaced by huge noise and rotated labels."""
    test = {t.key for t in fold.test}
    rng = np.random.default_rng(99)
    trials = []
    for t in ds.trials:
        if t.key in test:
            feats = {m: 1e3 * rng.normal(size=f.shape) for m, f in t.features.items()}
            t = dataclasses.replace(t, features=feats, label=(t.label + 1) % 3)
        trials.append(t)
    return EmotionDataset(ds.name, trials, ds.modalities, class_names=ds.class_names)


def _config(methods, **kw):
    from training.finetune import FinetuneConfig
    from training.pretrain import PretrainConfig

    return PopulationConfig(
        model=SMALL,
        pretrain=PretrainConfig(epochs=2, batch_size=32, device="cpu", progress=False, lr=1e-3),
        supervised=FinetuneConfig(epochs=3, batch_size=32, device="cpu", progress=False),
        methods=methods,
        **kw,
    )


def test_folds_are_leave_one_subject_out():
    ds = _dataset()
    task = make_task(ds)
    folds = population_folds(ds, task, protocol="fraction:0.67")
    assert [f.target for f in folds] == ["0", "1", "2", "3"]
    for f in folds:
        assert f.target not in f.pool_subjects and len(f.pool_subjects) == 3
        assert [t.trial for t in f.calibration] == list(range(1, 7))
        assert [t.trial for t in f.test] == [7, 8, 9]
        assert {t.subject for t in f.calibration + f.test} == {f.target}
    # kfold protocols test on the LAST fold, so calibration comes first in recording order.
    f = population_folds(ds, task, targets=["2"], protocol="kfold:3")[0]
    assert [t.trial for t in f.test] == [7, 8, 9]


def test_fold_refuses_leaks():
    ds = _dataset(n_subjects=2)
    task = make_task(ds)
    own = [t for t in ds.trials if t.subject == "0"]
    other = [t for t in ds.trials if t.subject == "1"]
    with pytest.raises(ValueError, match="holds the target's own trials"):
        PopulationFold("0", other + own[:1], own[:6], own[6:], task)
    with pytest.raises(ValueError, match="both calibration and test"):
        PopulationFold("0", other, own[:7], own[6:], task)
    with pytest.raises(ValueError, match="come from other subjects"):
        PopulationFold("0", other[1:], own[:6] + other[:1], own[6:], task)


def test_first_trials_per_class_in_recording_order():
    ds = _dataset(n_subjects=1)
    task = make_task(ds)
    trials = list(reversed(ds.trials))
    assert [t.trial for t in first_trials_per_class(trials, task, 1)] == [1, 2, 3]
    assert [t.trial for t in first_trials_per_class(trials, task, 2)] == [1, 2, 3, 4, 5, 6]
    assert len(first_trials_per_class(trials, task, None)) == 9
    assert first_trials_per_class(trials, task, 0) == ()


def test_target_statistics_come_from_calibration_trials_only():
    ds = _dataset()
    task = make_task(ds)
    fold = population_folds(ds, task, targets=["1"], protocol="fraction:0.67")[0]
    poisoned = population_folds(_poison_test(ds, fold), task, targets=["1"], protocol="fraction:0.67")[0]
    for k in (0, 1, 2, None):
        a, b = fold.target_normaliser(k), poisoned.target_normaliser(k)
        for m in ("eeg", "eye"):
            np.testing.assert_array_equal(a.mean[m], b.mean[m])
            np.testing.assert_array_equal(a.std[m], b.std[m])
    # k = 1 statistics come from the first trial of each class only.
    direct = np.concatenate([t.features["eeg"] for t in fold.calibration[:3]])
    np.testing.assert_allclose(fold.target_normaliser(1).mean["eeg"], direct.mean(axis=0))


@pytest.mark.parametrize("methods", [("lr", "cca_lr"), ("m2s_pop", "s_pop", "m2s_subject")])
def test_poisoned_test_trials_change_nothing_but_the_scores(methods):
    """Pretraining, statistics, head choices and weights are identical when the test trials are poisoned."""
    ds = _dataset()
    task = make_task(ds)
    mods = modality_configs(ds, ["eeg", "eye"])
    cfg = _config(methods, ks=(0, 1, 2))
    fold = population_folds(ds, task, targets=["2"], protocol="fraction:0.67")[0]
    bad = population_folds(_poison_test(ds, fold), task, targets=["2"], protocol="fraction:0.67")[0]
    clean, poisoned = run_fold(fold, cfg, mods), run_fold(bad, cfg, mods)
    assert clean.heads.keys() == poisoned.heads.keys() and clean.heads
    for key, head in clean.heads.items():
        np.testing.assert_array_equal(head.coef, poisoned.heads[key].coef)
        assert head.c == poisoned.heads[key].c
    assert clean.choices == poisoned.choices
    assert clean.pretrain_history.keys() == poisoned.pretrain_history.keys()

    def losses(hist):  # wall time aside
        if isinstance(hist, dict):
            return {k: losses(v) for k, v in hist.items()}
        return [{k: v for k, v in rec.items() if k != "seconds"} for rec in hist]

    assert losses(clean.pretrain_history) == losses(poisoned.pretrain_history)
    # ...while the scores do read the (poisoned) test trials.
    assert clean.scores != poisoned.scores


def test_curve_keys_and_method_pairs():
    ds = _dataset()
    task = make_task(ds)
    mods = modality_configs(ds, ["eeg", "eye"])
    folds = population_folds(ds, task, targets=["0", "3"], protocol="fraction:0.67")
    outcomes, per_subject = run_population(folds, _config(("lr", "cca_lr", "s_subject")), mods)
    assert [o.target for o in outcomes] == ["0", "3"]
    assert set(per_subject["lr"]) == {"k=0", "k=1", "k=2", "k=all"}
    assert set(per_subject["s_subject"]) == {"k=1", "k=2", "k=all"}  # no zero-shot point
    assert set(per_subject["lr"]["k=1"]) == {"eeg->eeg", "eye->eye"}
    assert set(per_subject["cca_lr"]["k=1"]) == {"eeg->eeg", "eeg->eye", "eye->eeg", "eye->eye"}
    assert set(per_subject["lr"]["k=1"]["eeg->eeg"]) == {"0", "3"}
    m = per_subject["lr"]["k=all"]["eeg->eeg"]["0"]
    assert set(m) == {"balanced_accuracy", "kappa", "f1"}


def test_tiny_population_run_beats_chance_at_one_trial_per_class():
    ds = _dataset(n_subjects=5, n_vectors=12)
    task = make_task(ds)
    mods = modality_configs(ds, ["eeg", "eye"])
    folds = population_folds(ds, task, targets=["0", "4"], protocol="fraction:0.67")
    _, per_subject = run_population(folds, _config(("m2s_pop", "lr"), ks=(1,)), mods)
    for method in ("m2s_pop", "lr"):
        for pair in ("eeg->eeg", "eye->eye"):
            accs = [v["balanced_accuracy"] for v in per_subject[method]["k=1"][pair].values()]
            assert np.mean(accs) > 0.6, (method, pair, accs)  # chance is 1/3


def test_k_keys_and_targets():
    assert [k_key(k) for k in (0, 2, None)] == ["k=0", "k=2", "k=all"]
    assert [parse_k(t) for t in ("k=0", "2", "all", None, 3)] == [0, 2, None, None, 3]
    with pytest.raises(ValueError, match="non-negative integer or 'all'"):
        parse_k("k=two")
    assert default_targets([str(i) for i in range(15)], 3) == ["0", "7", "14"]
    with pytest.raises(ValueError, match="unknown method"):
        PopulationConfig(methods=("m2s",))


def test_tuning_never_reads_the_targets():
    """Development subjects are non-targets; poisoning every trial of the targets changes no score or choice."""
    from training.label_efficiency import tune_population

    ds = _dataset(n_subjects=6)
    task = make_task(ds)
    mods = modality_configs(ds, ["eeg", "eye"])
    cands = {
        "recipe": {},
        "head on pool+target": {"head_data": "pool+target"},
        "no CLUB": {"model": {"w_club": 0.0}},
    }
    cfg = _config(("m2s_pop",))
    tuned, record = tune_population(
        ds, task, ["0", "1"], cfg, mods, protocol="fraction:0.67", candidates=cands
    )
    assert record["dev_subjects"] == ["4", "5"] and record["pool_subjects"] == ["2", "3"]
    assert set(record["selected"].split(" + ")) <= set(cands)
    assert record["unchanged"] == ["head on pool+target"]  # the default already
    assert set(cands) == set(record["scores"]) | set(record["unchanged"])
    rng = np.random.default_rng(5)
    poisoned = EmotionDataset(
        ds.name,
        [
            dataclasses.replace(
                t, features={m: 1e3 * rng.normal(size=f.shape) for m, f in t.features.items()}
            )
            if t.subject in ("0", "1")
            else t
            for t in ds.trials
        ],
        ds.modalities,
        class_names=ds.class_names,
    )
    _, again = tune_population(
        poisoned, task, ["0", "1"], cfg, mods, protocol="fraction:0.67", candidates=cands
    )
    assert again == record
    assert isinstance(tuned, PopulationConfig)


def test_population_benchmark_command(tmp_path):
    """``m2s-train benchmark --regime population`` writes the curves schema, the report and the figure."""
    import json

    from training.cli import main

    config = {
        "synthetic": {"n_subjects": 4, "n_trials": 6, "trial_duration_s": 20},
        "n_targets": 1,
        "methods": ["m2s_pop", "lr", "cca_lr"],
        "pretrain_steps": 5,
        "warmup_steps": 1,
        "device": "cpu",
        "n_jobs": 1,
        "model": SMALL,
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    assert main(["benchmark", "--regime", "population", "--config", str(path), "--out", str(tmp_path / "out"),
                 "--no-progress"]) == 0  # fmt: skip
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    curves = results["curves"]
    assert set(curves) == {"m2s_pop", "lr", "cca_lr"}
    assert set(curves["m2s_pop"]) == {"k=0", "k=1", "k=2", "k=all"}
    cell = curves["m2s_pop"]["k=1"]["eeg->eye"]
    assert set(cell) == {"balanced_accuracy", "kappa", "f1"} and 0 <= cell["balanced_accuracy"] <= 1
    assert results["population"]["targets"] == ["0"] and results["population"]["tuning"] is None
    assert (tmp_path / "out" / "label_efficiency.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| M2S-pop |" in (tmp_path / "out" / "report.md").read_text()
    details = json.loads((tmp_path / "out" / "details.json").read_text())
    assert set(details["curves"]["lr"]["k=1"]["eeg->eeg"]["per_subject"]) == {"0"}


def test_reproduce_population_refuses_subject_regime_flags(capsys):
    from training.cli import main

    assert main(["reproduce", "synthetic", "x", "--out", "y", "--regime", "population", "--sweep"]) == 2
    assert "--sweep belongs to the subject regime" in capsys.readouterr().err


def test_shipped_population_configs_validate():
    """The GPU reference config in benchmarks/configs loads (its network is the paper's size)."""
    from pathlib import Path

    from training.label_efficiency import PopulationBenchmarkConfig

    root = Path(__file__).resolve().parents[2] / "benchmarks" / "configs"
    config = PopulationBenchmarkConfig.from_json(root / "population-reference-gpu.json")
    assert config.model["d_model"] == 128 and config.model["n_blocks"] == 4 and config.device == "cuda"
    assert config.population().pretrain.min_steps == 2000


@pytest.mark.parametrize(
    "kind", ["seed_iv", *(pytest.param(k, marks=pytest.mark.slow) for k in ("seed_v", "deap", "dreamer"))]
)
def test_reproduce_population_on_every_dataset_kind(kind, tmp_path):
    """``m2s-train reproduce KIND PATH --regime population`` runs on each native format's fixture."""
    import json

    from tests.fixtures.deap import write_deap
    from tests.fixtures.dreamer import write_dreamer
    from tests.fixtures.seed import write_seed_iv, write_seed_v
    from training.cli import main

    if kind == "seed_iv":
        path, extra = (
            write_seed_iv(tmp_path / "d", n_subjects=3, n_sessions=1, n_windows=6, include_raw=False).root,
            [],
        )
    elif kind == "seed_v":
        path, extra = write_seed_v(tmp_path / "d", n_subjects=3, n_sessions=3, n_windows=6).root, []
    elif kind == "deap":
        path, extra = (
            write_deap(tmp_path / "d", n_subjects=3, n_trials=8),
            ["--task", "valence", "--protocol", "kfold:2"],
        )
    else:
        path, extra = (
            write_dreamer(tmp_path / "d", n_subjects=3, n_clips=8),
            ["--task", "valence", "--protocol", "kfold:2"],
        )
    out = tmp_path / "out"
    argv = ["reproduce", kind, str(path), "--out", str(out), "--regime", "population", "--methods", "lr",
            "--seq-len", "2", "--min-steps", "2", "--warmup-steps", "0", "--no-progress", "--device", "cpu", *extra]  # fmt: skip
    assert main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert set(results["curves"]) == {"lr", "cca_lr"}
    assert results["population"]["targets"] and "k=0" in results["curves"]["lr"]
