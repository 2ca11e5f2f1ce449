"""The classical anchors LR and CCA-LR as methods of the subject-dependent regime, and ``head='linear'``.

LR and CCA-LR must equal a direct scikit-learn computation on the same split, their ``C`` must be
chosen on the validation trials only (never on the test trials), LR reports A→A only, CCA-LR every
A→B, and the commands always carry them.
"""

import dataclasses
import json

import numpy as np
import pytest
from sklearn.cross_decomposition import CCA
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.metrics import confusion_matrix as sk_confusion

from training.datasets.base import EmotionDataset, ModalityInfo, Trial
from training.experiment import (
    BENCHMARK_METHODS,
    CLASSICAL_ANCHORS,
    METHODS,
    SELECTED_ON_TRAINING_TRIALS,
    BenchmarkConfig,
    ExperimentConfig,
    modality_configs,
    run_methods,
    run_split,
)
from training.finetune import FinetuneConfig
from training.heads import C_GRID
from training.pretrain import PretrainConfig
from training.protocols import Split, make_task, subject_dependent_splits

NAMES = ["eeg", "eye"]
T = 5


def _dataset(n_trials=12, n_vectors=14, noise=1.2, seed=3, n_subjects=1):
    """Two modalities reading a shared class latent (3 classes) through noise, so ``C`` matters."""
    rng = np.random.default_rng(seed)
    means, a_eeg, a_eye = rng.normal(size=(3, 4)), rng.normal(size=(4, 12)), rng.normal(size=(4, 6))
    trials = []
    for s in range(n_subjects):
        for t in range(n_trials):
            z = means[t % 3] + noise * rng.normal(size=(n_vectors, 4)) + 0.8 * rng.normal(size=4)
            feats = {
                "eeg": z @ a_eeg + noise * rng.normal(size=(n_vectors, 12)),
                "eye": z @ a_eye + 0.5 * noise * rng.normal(size=(n_vectors, 6)),
            }
            trials.append(Trial(str(s), 1, t + 1, t % 3, {}, feats))
    infos = {"eeg": ModalityInfo(12, 1.0, "test"), "eye": ModalityInfo(6, 1.0, "test")}
    return EmotionDataset("synthetic", trials, infos, class_names=("a", "b", "c"))


def _split(ds=None, val_per_class=1):
    ds = _dataset() if ds is None else ds
    (split,) = subject_dependent_splits(
        ds, make_task(ds), protocol="fraction:0.67", val_per_class=val_per_class
    )
    return split


def _exp(**kw):
    base = {
        "seq_len": T,
        "model": {"d_model": 16, "n_blocks": 1, "d_ff": 32, "n_heads": 2, "head_dim": 8, "d_ei": 16},
        "pretrain": PretrainConfig(epochs=2, batch_size=16, device="cpu", progress=False),
        "finetune": FinetuneConfig(epochs=3, batch_size=16, device="cpu", progress=False),
        "methods": CLASSICAL_ANCHORS,
    }
    return ExperimentConfig(**{**base, **kw})


def _run(split, method, **kw):
    ds_mods = modality_configs(_dataset(), NAMES)
    return run_split(split, method, _exp(), ds_mods, keep_models=True, **kw)


def _means(split):
    """Window means (float64) and labels per part, computed here independently of training.heads."""
    out = {}
    for part in ("train", "val", "test"):
        w = split.windows(part, T, modalities=NAMES)
        out[part] = ({m: w.x[m].astype(np.float64).mean(axis=1) for m in NAMES}, w.y)
    return out


def _sk_head(z_tr, y_tr, z_va, y_va):
    """scikit-learn: each C of the grid fitted on train, scored on validation; best wins, ties -> smaller C."""
    scores = {
        c: balanced_accuracy_score(y_va, LogisticRegression(C=c, max_iter=2000).fit(z_tr, y_tr).predict(z_va))
        for c in C_GRID
    }
    best = max(scores.values())
    chosen = min(c for c, s in scores.items() if s >= best - 1e-12)
    return chosen, scores, LogisticRegression(C=chosen, max_iter=2000).fit(z_tr, y_tr)


def _check_pair(entry, y_true, y_pred):
    assert entry["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y_true, y_pred), abs=1e-9)
    assert entry["confusion"] == sk_confusion(y_true, y_pred, labels=[0, 1, 2]).tolist()
    assert entry["n_windows"] == y_true.size
    assert set(entry) >= {"balanced_accuracy", "kappa", "f1", "confusion", "n_windows"}


@pytest.fixture(scope="module")
def split():
    return _split()


def test_methods_registered_and_validated():
    """Both anchors are 'classical' methods of the benchmark; unknown method and head names are refused."""
    assert METHODS["lr"].label == "LR" and METHODS["cca_lr"].label == "CCA-LR"
    assert {METHODS[m].kind for m in CLASSICAL_ANCHORS} == {"classical"}
    assert set(CLASSICAL_ANCHORS) <= set(BENCHMARK_METHODS)
    assert BenchmarkConfig().methods == BENCHMARK_METHODS
    with pytest.raises(ValueError, match="unknown method"):
        ExperimentConfig(methods=("lr", "svm"))
    with pytest.raises(ValueError, match="head must be one of"):
        ExperimentConfig(head="tree")
    assert BenchmarkConfig().experiment().head == "linear"  # the tuned defaults (SUBJECT_RECIPE)
    mlp = BenchmarkConfig(head="mlp").experiment()
    assert (mlp.head, mlp.in_modal_features) == ("mlp", "projection")
    with pytest.raises(ValueError, match="in_modal_features='latent' needs head='linear'"):
        BenchmarkConfig(head="mlp", in_modal_features="latent").experiment()
    with pytest.raises(ValueError):
        BenchmarkConfig(head="tree")


def test_lr_equals_scikit_learn_and_reports_a_to_a_only(split):
    """LR: C chosen on validation, head and test predictions as scikit-learn's on the same window means."""
    r = _run(split, "lr")
    assert list(r.matrix) == ["eeg->eeg", "eye->eye"]
    assert r.model is None and r.pretrain_history == [] and r.embeddings is None
    data = _means(split)
    (tr, y_tr), (va, y_va), (te, y_te) = data["train"], data["val"], data["test"]
    for a in NAMES:
        chosen, scores, model = _sk_head(tr[a], y_tr, va[a], y_va)
        sel = r.selection[a]
        assert sel["selected_on"] == "validation" and sel["best_epoch"] is None
        assert sel["c"] == chosen
        assert sel["scores"] == pytest.approx(scores, abs=1e-12)
        head = r.classifiers[f"{a}->{a}"]
        np.testing.assert_array_equal(head.predict(te[a]), model.predict(te[a]))
        np.testing.assert_allclose(head.coef, model.coef_, atol=1e-9)
        _check_pair(r.matrix[f"{a}->{a}"], y_te, model.predict(te[a]))
    # the choice is not trivial on these data (otherwise the test could not tell C apart)
    assert any(len(set(r.selection[a]["scores"].values())) > 1 for a in NAMES)


def test_cca_lr_equals_scikit_learn_and_reports_every_pair(split):
    """CCA-LR: PCA per modality, CCA on the paired training means of (A, partner), head on A's projection,
    B's projection tested."""
    r = _run(split, "cca_lr")
    assert list(r.matrix) == ["eeg->eeg", "eeg->eye", "eye->eeg", "eye->eye"]
    data = _means(split)
    (raw_tr, y_tr), (raw_va, y_va), (raw_te, y_te) = data["train"], data["val"], data["test"]
    for a in NAMES:
        b = next(m for m in NAMES if m != a)  # the partner of A->B and, with two modalities, of A->A
        n_pca = min(32, raw_tr[a].shape[0] // 5)
        pca = {
            m: PCA(n_components=min(n_pca, raw_tr[m].shape[1]), svd_solver="full").fit(raw_tr[m])
            for m in (a, b)
        }
        tr = {m: pca[m].transform(raw_tr[m]) for m in (a, b)}
        va = {m: pca[m].transform(raw_va[m]) for m in (a, b)}
        te = {m: pca[m].transform(raw_te[m]) for m in (a, b)}
        k = min(16, tr[a].shape[1], tr[b].shape[1], tr[a].shape[0] - 1)
        cca = CCA(n_components=k, scale=True, max_iter=1000).fit(tr[a], tr[b])
        chosen, scores, model = _sk_head(cca.transform(tr[a]), y_tr, cca.transform(va[a]), y_va)
        sel = r.selection[a]
        assert sel["selected_on"] == "validation" and sel["partner"] == b
        assert sel["c"] == chosen and sel["scores"] == pytest.approx(scores, abs=1e-12)
        assert sel["partners"][b]["n_components"] == k
        pred_aa = model.predict(cca.transform(te[a]))
        pred_ab = model.predict(cca.transform(te[a], te[b])[1])
        _check_pair(r.matrix[f"{a}->{a}"], y_te, pred_aa)
        _check_pair(r.matrix[f"{a}->{b}"], y_te, pred_ab)
        assert r.model[f"{a}->{b}"].n_components == k


def _poisoned(split, seed=9):
    """The same split with every test trial's labels rotated and features replaced by loud noise."""
    rng = np.random.default_rng(seed)
    bad = tuple(
        dataclasses.replace(
            t,
            label=(t.label + 1) % 3,
            features={m: 50.0 * rng.normal(size=v.shape) for m, v in t.features.items()},
        )
        for t in split.test
    )
    return Split(split.name, split.subject, split.train, split.val, bad, split.task, split.protocol)


@pytest.mark.parametrize("method", CLASSICAL_ANCHORS)
def test_c_is_chosen_without_the_test_trials(split, method):
    """Poisoning the test trials changes neither the chosen C, its scores nor the heads' coefficients."""
    clean, dirty = _run(split, method), _run(_poisoned(split), method)
    for a in NAMES:
        assert clean.selection[a]["c"] == dirty.selection[a]["c"]
        assert clean.selection[a]["scores"] == dirty.selection[a]["scores"]
    assert list(clean.classifiers) == list(dirty.classifiers)
    for pair, head in clean.classifiers.items():
        np.testing.assert_array_equal(head.coef, dirty.classifiers[pair].coef)
        np.testing.assert_array_equal(head.intercept, dirty.classifiers[pair].intercept)
    assert clean.matrix != dirty.matrix  # the test windows did change


def test_without_validation_c_is_chosen_leave_one_trial_out():
    """val_per_class=0: C by leave-one-trial-out on the training trials (pooled predictions), as scikit-learn."""
    split = _split(val_per_class=0)
    assert not split.val
    r = run_split(split, "lr", _exp(train_modalities=("eeg",)), modality_configs(_dataset(), NAMES))
    assert list(r.matrix) == ["eeg->eeg"]
    w = split.windows("train", T, modalities=NAMES)
    groups = np.array(["/".join(map(str, k)) for k in w.trial_keys])
    z = w.x["eeg"].astype(np.float64).mean(axis=1)
    scores = {}
    for c in C_GRID:
        pred = np.empty_like(w.y)
        for g in np.unique(groups):
            held = groups == g
            pred[held] = LogisticRegression(C=c, max_iter=2000).fit(z[~held], w.y[~held]).predict(z[held])
        scores[c] = balanced_accuracy_score(w.y, pred)
    best = max(scores.values())
    sel = r.selection["eeg"]
    assert sel["selected_on"] == SELECTED_ON_TRAINING_TRIALS
    assert sel["c"] == min(c for c, s in scores.items() if s >= best - 1e-12)
    assert sel["scores"] == pytest.approx(scores, abs=1e-12)


def test_train_modalities_and_no_checkpoints(tmp_path):
    """train_modalities restricts A (every B still tested); classical methods write no checkpoint folder."""
    ds = _dataset(n_subjects=2)
    splits = subject_dependent_splits(ds, make_task(ds), protocol="fraction:0.67")
    res = run_methods(splits, _exp(train_modalities=("eye",)), modality_configs(ds, NAMES), out_dir=tmp_path)
    assert list(res) == ["lr", "cca_lr"]
    assert list(res["lr"].summary) == ["eye->eye"]
    assert list(res["cca_lr"].summary) == ["eye->eeg", "eye->eye"]
    assert res["cca_lr"].label == "CCA-LR" and len(res["lr"].splits) == 2
    assert not (tmp_path / "checkpoints").exists()


def test_report_shows_dash_for_lr_cross_pairs(tmp_path):
    """The report's tables carry LR with '—' in the cross-modal columns, CCA-LR with numbers."""
    from training.reports import write_report

    ds = _dataset(n_subjects=2)
    splits = subject_dependent_splits(ds, make_task(ds), protocol="fraction:0.67")
    res = run_methods(splits, _exp(), modality_configs(ds, NAMES))
    paths = write_report(tmp_path, res, class_names=("a", "b", "c"))
    report = paths["report"].read_text(encoding="utf-8")
    lr_rows = [line for line in report.splitlines() if line.startswith("| LR |")]
    assert lr_rows and all(row.count("—") == 2 for row in lr_rows[:3])  # EEG→EYE, EYE→EEG
    cca_rows = [line for line in report.splitlines() if line.startswith("| CCA-LR |")]
    assert cca_rows and "—" not in cca_rows[0]
    details = json.loads(paths["details"].read_text(encoding="utf-8"))
    sel = details["methods"]["lr"]["splits"][0]["selection"]["eeg"]
    assert sel == {"best_epoch": None, "selected_on": "validation"}


def test_reproduce_always_adds_the_anchors_and_passes_head(tmp_path, monkeypatch):
    """reproduce: the methods are the chosen ones plus lr and cca_lr; --head reaches the experiment."""
    import training.experiment as experiment
    from tests.fixtures.seed import write_seed
    from training.cli import build_parser, main

    assert build_parser().parse_args(["reproduce", "seed", "d", "--out", "o"]).head == "mlp"
    root = tmp_path / "seed"
    root.mkdir()
    write_seed(root, n_subjects=1, n_sessions=1, layout="multimodal", n_windows=6)
    seen = {}
    real = experiment.run_methods

    def only_anchors(splits, config, modalities, **kw):  # no pretraining in this test
        seen["config"] = config
        return real(splits, dataclasses.replace(config, methods=CLASSICAL_ANCHORS), modalities, **kw)

    monkeypatch.setattr(experiment, "run_methods", only_anchors)
    out = tmp_path / "rep"
    argv = ["reproduce", "seed", str(root), "--out", str(out), "--baselines", "--seq-len", "3",
            "--head", "linear", "--no-progress", "--device", "cpu"]  # fmt: skip
    assert main(argv) == 0
    assert seen["config"].methods == ("m2s", "clip", "supervised", "lr", "cca_lr")
    assert seen["config"].head == "linear"
    results = json.loads((out / "results.json").read_text())
    assert sorted(results["methods"]["lr"]["matrix"]) == ["eeg->eeg", "eye->eye"]
    assert len(results["methods"]["cca_lr"]["matrix"]) == 4
    assert "| CCA-LR |" in (out / "report.md").read_text()
    with pytest.raises(SystemExit):
        build_parser().parse_args(["reproduce", "seed", str(root), "--out", str(out), "--head", "tree"])


def test_linear_head_end_to_end(split):
    """head='linear': pretraining, a LinearHead per A on its frozen embedding (C on validation), every A->B;
    the kept classifiers are nn.Linear modules that the export path and evaluate_matrix consume as is."""
    from torch import nn

    from training.evaluate import evaluate_matrix

    mods = modality_configs(_dataset(), NAMES)
    r = run_split(
        split, "m2s", _exp(methods=("m2s",), head="linear"), mods, keep_models=True, keep_embeddings=True
    )
    assert list(r.matrix) == ["eeg->eeg", "eeg->eye", "eye->eeg", "eye->eye"]
    assert len(r.pretrain_history) == 2
    for a in NAMES:
        sel = r.selection[a]
        assert sel["selected_on"] == "validation" and sel["c"] in C_GRID and set(sel["scores"]) == set(C_GRID)
        clf = r.classifiers[a]
        assert isinstance(clf, nn.Linear) and (clf.in_features, clf.out_features) == (32, 3)
    test = split.windows("test", T, modalities=NAMES)
    again = evaluate_matrix(r.model, r.classifiers, test.x, test.y, 3)
    for pair, entry in r.matrix.items():
        assert again[pair]["confusion"] == entry["confusion"]
