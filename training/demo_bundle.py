"""The default demo bundle: a population M2S model (EEG, EYE, ECG) for a person it has never seen, in ONNX.

It lets the service and the README demo run with no dataset. It is committed under
``models/repository/m2s-synthetic-demo/1/`` (about 1 MB) so that images without torch can serve
it, and it is rebuilt deterministically (same seed, CPU) by ``m2s-train demo-bundle --out REPO``
in about 2 minutes on 2 cores.

A lab meets a new person every day (``docs/design/CALIBRATION.md`` §1), so the demo bundle is a
*population* model and the demo plays a person it never saw:

- **Data**: the default :class:`~synthetic.SyntheticConfig` (seed 0, 15 subjects × 15 trials),
  featurised by the synthetic loader (EEG DE 2-s windows, eye 10-s buffer, ECG DE 4-s windows, one
  2-s hop). Subjects :data:`DEMO_UNSEEN_SUBJECTS` (0, 1, 2) are never trained on: subject 0 is the
  one ``m2s simulate`` plays by default, subject 1 gives the manifest's test matrix and subject 2
  validates the one choice the recipe makes (the normalisation scheme). The **pool** is every
  other subject (3..14).
- **Pretraining**: M2S (the benchmark's small network, ``training.experiment._default_model``) on
  the pool's paired windows, labels unused, with the population benchmark's step-budgeted recipe
  (:func:`training.label_efficiency.population_config`: 400 steps, batch 128 capped at a quarter of
  the windows, 40 warm-up steps, lr 1e-3).
- **Generic heads**: per modality a logistic regression (:class:`~training.heads.LinearHead`) on
  that modality's frozen embedding of the pool's labelled windows (A→A), ``C`` chosen by
  leave-one-subject-out over four pool subjects; exported as ``LinearHead.to_torch()`` in place of
  the fine-tuned MLP classifier.
- **Normalisation**: the service has no participant statistics before calibration, so the bundle
  carries one set: the pooled statistics of all pool trials. Training either z-scores each pool
  subject with its own statistics (``per_subject``, as ``training.protocols.population`` does) or
  with the same pooled statistics the bundle carries (``pooled``: training and serving identical).
  Both are trained; the one with the higher mean balanced accuracy of the exported heads on
  subject 2 (windows normalised with the bundle's statistics) is exported. Subjects 0 and 1 play
  no part in any choice.

The manifest's ``training`` section lists the pool (``subjects``) and ``unseen_subjects``; its
``metrics`` carry the A→B matrix on all of subject 1's trials with the bundle's statistics (what a
new participant gets before calibration) and the validation numbers of both schemes on subject 2.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from models.repository import DEFAULT_REPOSITORY, DEMO_BUNDLE, Bundle, ModelRepository
from synthetic import SyntheticConfig

from .datasets.synthetic import load as load_synthetic
from .export import ModalityExport, export_bundle
from .protocols import make_task
from .protocols.normaliser import Normaliser
from .protocols.population import SubjectWindows, concat_windows
from .protocols.windows import make_windows

logger = logging.getLogger(__name__)

DEMO_NAME = DEMO_BUNDLE
DEMO_MODALITIES = ("eeg", "eye", "ecg")
DEMO_REPOSITORY = DEFAULT_REPOSITORY
#: Synthetic subjects the demo bundle never trains on (0: the simulator's default, 1: test, 2: validation).
DEMO_UNSEEN_SUBJECTS: tuple[int, ...] = (0, 1, 2)
#: The unseen subject whose trials give the manifest's A→B matrix (never used for a choice).
DEMO_TEST_SUBJECT = 1
#: The unseen subject that chooses the normalisation scheme.
DEMO_VALIDATION_SUBJECT = 2
#: Normalisation of the pool's training windows (the bundle always carries the pooled statistics).
SCHEMES: tuple[str, ...] = ("per_subject", "pooled")
_SCHEME_TEXT = {
    "per_subject": "training: each pool subject z-scored with its own statistics; bundle: pooled statistics "
    "of all pool trials",
    "pooled": "training and bundle: pooled statistics of all pool trials (train and serve identical)",
}
_HEAD_FOLDS = 4


def _recipe(steps: int, seed: int, device: str):
    """The population benchmark's pretraining recipe (``population_config``) and its network."""
    from .experiment import _default_model
    from .label_efficiency import population_config

    model = _default_model()
    config = population_config(model=model, steps=steps, seed=seed, device=device, progress=False,
                               methods=("m2s_pop",), ks=(0,))  # fmt: skip
    if config.pretrain.warmup_steps >= steps:  # a short (test) run: warm up over a tenth of it
        config = population_config(model=model, steps=steps, warmup_steps=steps // 10, seed=seed, device=device,
                                   progress=False, methods=("m2s_pop",), ks=(0,))  # fmt: skip
    return model, config


def _pool_windows(trials, task, seq_len: int, scheme: str, pooled: Normaliser) -> SubjectWindows:
    """The pool's windows under ``scheme``, with the subject of each window (for leave-one-subject-out)."""
    parts, labels = [], []
    for s in dict.fromkeys(t.subject for t in trials):
        own = [t for t in trials if t.subject == s]
        norm = Normaliser.fit(own) if scheme == "per_subject" else pooled
        w = make_windows(own, task, seq_len, normaliser=norm, modalities=list(DEMO_MODALITIES))
        parts.append(w)
        labels += [s] * len(w)
    return SubjectWindows(concat_windows(parts), np.array(labels, dtype=object))


def _balanced(y: np.ndarray, pred: np.ndarray, n_classes: int) -> dict[str, float]:
    from .metrics import classification_metrics

    metrics = classification_metrics(y, pred, n_classes)
    return {k: float(metrics[k]) for k in ("balanced_accuracy", "kappa", "f1")}


def _train_scheme(
    scheme: str, pool, task, model_cfg, recipe, pooled: Normaliser, validation
) -> dict[str, Any]:
    """Pretrain on the pool's windows under ``scheme``, fit the heads, score them on the validation windows."""
    from .finetune import embed
    from .heads import LinearHead, choose_c
    from .pretrain import pretrain

    t0 = time.perf_counter()
    windows = _pool_windows(pool, task, recipe.seq_len, scheme, pooled)
    result = pretrain(model_cfg, windows.x, recipe.pretrain)
    model = result.model.cpu().eval()

    def feat(m, x):
        return embed(model.embedder(m), x).cpu().numpy().astype(np.float64)

    n_classes = task.n_classes
    heads, choices, val = {}, {}, {}
    for m in DEMO_MODALITIES:
        z = feat(m, windows.x[m])
        choice = choose_c(z, windows.y, windows.subjects, n_classes, grid=recipe.c_grid,
                          selected_on="leave-one-subject-out on the pool", max_folds=_HEAD_FOLDS)  # fmt: skip
        heads[m] = LinearHead(n_classes, choice.c).fit(z, windows.y)
        choices[m] = {"c": choice.c, "selected_on": choice.selected_on, "scores": choice.scores}
        pred = heads[m].predict(feat(m, validation.x[m]))
        val[m] = _balanced(validation.y, pred, n_classes)["balanced_accuracy"]
    val["mean"] = float(np.mean([val[m] for m in DEMO_MODALITIES]))
    seconds = time.perf_counter() - t0
    logger.info("demo bundle, scheme %s: validation %s (%.0f s)", scheme, {k: round(v, 3) for k, v in val.items()},
                seconds)  # fmt: skip
    return {
        "model": model, "heads": heads, "choices": choices, "validation": val, "feat": feat,
        "plan": result.plan, "n_windows": len(windows), "history": result.history,
    }  # fmt: skip


def build_demo_bundle(
    repository: ModelRepository | Path | str = DEMO_REPOSITORY,
    *,
    seed: int = 0,
    steps: int = 400,
    synthetic: SyntheticConfig | None = None,
    pool_subjects: Sequence[int] | None = None,
    schemes: Sequence[str] = SCHEMES,
    device: str = "cpu",
    n_jobs: int = 2,
) -> tuple[Bundle, dict[str, float]]:
    """Train and export the population demo bundle as a new version in ``repository``.

    Parameters
    ----------
    repository : ModelRepository | path
        Where the bundle goes (``<repository>/m2s-synthetic-demo/<next version>/``).
    seed : int
        Seed of the synthetic data (when ``synthetic`` is None) and of training.
    steps : int
        Minimum pretraining optimiser steps (the population recipe's 400).
    synthetic : SyntheticConfig | None
        The synthetic world (None: the default config with ``seed``). It needs the unseen subjects
        and at least two pool subjects.
    pool_subjects : sequence of int | None
        Training subjects (None: every subject of the config except :data:`DEMO_UNSEEN_SUBJECTS`);
        they may not include an unseen subject.
    schemes : sequence of str
        Normalisation schemes to train and choose among on the validation subject (see the module
        docstring); with one, that one is exported.
    device : str
        Training device; 'cpu' (default) is deterministic for a given seed.
    n_jobs : int
        Processes generating and featurising the synthetic data (the data do not depend on it).

    Returns
    -------
    bundle : Bundle
    parity : dict of str to float
        Max abs difference torch vs ONNX Runtime per graph.
    """
    t_start = time.perf_counter()
    synthetic = SyntheticConfig(seed=seed) if synthetic is None else synthetic
    unseen = list(DEMO_UNSEEN_SUBJECTS)
    if synthetic.n_subjects <= max(unseen) + 2:
        raise ValueError(
            f"the demo bundle needs subjects {unseen} unseen and at least two pool subjects; the synthetic "
            f"config has n_subjects={synthetic.n_subjects}."
        )
    pool_ids = [s for s in range(synthetic.n_subjects) if s not in unseen] if pool_subjects is None else [
        int(s) for s in pool_subjects
    ]  # fmt: skip
    if set(pool_ids) & set(unseen) or len(set(pool_ids)) < 2:
        raise ValueError(f"pool_subjects must be at least two subjects outside {unseen}, got {pool_ids}.")
    if not all(0 <= s < synthetic.n_subjects for s in pool_ids):
        raise ValueError(f"pool_subjects must lie in [0, {synthetic.n_subjects}), got {pool_ids}.")
    schemes = tuple(schemes)
    if not schemes or any(s not in SCHEMES for s in schemes):
        raise ValueError(f"schemes must be among {SCHEMES}, got {schemes}.")

    import torch

    threads = torch.get_num_threads()
    # One thread: the same float results on any CPU, and no oversubscription on shared cores.
    torch.set_num_threads(1)
    try:
        return _build(repository, seed, steps, synthetic, pool_ids, schemes, device, n_jobs, t_start)
    finally:
        torch.set_num_threads(threads)


def _build(repository, seed, steps, synthetic, pool_ids, schemes, device, n_jobs, t_start):
    from models.config import M2SConfig

    from .experiment import modality_configs

    unseen = list(DEMO_UNSEEN_SUBJECTS)
    model_fields, recipe = _recipe(steps, seed, device)
    dataset = load_synthetic(
        synthetic, modalities=list(DEMO_MODALITIES),
        subjects=[*pool_ids, DEMO_TEST_SUBJECT, DEMO_VALIDATION_SUBJECT], n_jobs=n_jobs,
    )  # fmt: skip
    logger.info("demo bundle: synthetic data ready after %.0f s", time.perf_counter() - t_start)
    task = make_task(dataset, "emotion")
    pool_names = {str(s) for s in pool_ids}
    pool = [t for t in dataset.trials if t.subject in pool_names]
    pooled = Normaliser.fit(pool)  # the statistics the bundle carries
    t = recipe.seq_len

    def subject_windows(s: int) -> SubjectWindows:
        trials = [tr for tr in dataset.trials if tr.subject == str(s)]
        w = make_windows(trials, task, t, normaliser=pooled, modalities=list(DEMO_MODALITIES))
        return SubjectWindows(w, np.array([str(s)] * len(w), dtype=object))

    validation = subject_windows(DEMO_VALIDATION_SUBJECT)
    model_cfg = M2SConfig(modalities=modality_configs(dataset, DEMO_MODALITIES), seq_len=t, **model_fields)
    trained = {s: _train_scheme(s, pool, task, model_cfg, recipe, pooled, validation) for s in schemes}
    # Ties go to 'pooled' (training and serving identical), then to the order of SCHEMES.
    order = sorted(schemes, key=lambda s: (-round(trained[s]["validation"]["mean"], 12), s != "pooled"))
    scheme = order[0]
    chosen = trained[scheme]

    # The test matrix: every trial of the test subject, statistics of the population (no calibration).
    test = subject_windows(DEMO_TEST_SUBJECT)
    feat, heads = chosen["feat"], chosen["heads"]
    z_test = {m: feat(m, test.x[m]) for m in DEMO_MODALITIES}
    matrix = {
        f"{a}->{b}": _balanced(test.y, heads[a].predict(z_test[b]), task.n_classes)
        for a in DEMO_MODALITIES
        for b in DEMO_MODALITIES
    }
    model = chosen["model"]
    items = {}
    for m in DEMO_MODALITIES:
        info = dataset.modalities[m]
        items[m] = ModalityExport(
            embedder=model.embedder(m),
            classifier=heads[m].to_torch(),
            feature_spec=info.spec,
            normalisation=pooled.normalisation(m),
            spacing_s=info.spacing_s,
            check_windows=test.x[m],
        )
    validation_numbers = {s: trained[s]["validation"] for s in schemes}
    plan = chosen["plan"]
    pretrain_cfg = recipe.pretrain
    training = {
        "dataset": "synthetic",
        "synthetic_config": synthetic.model_dump(mode="json"),
        "subjects": pool_ids,
        "unseen_subjects": unseen,
        "test_subject": DEMO_TEST_SUBJECT,
        "validation_subject": DEMO_VALIDATION_SUBJECT,
        "task": task.to_dict(),
        "method": "m2s (population)",
        "head": "per modality: logistic regression (training.heads.LinearHead) on its own frozen embedding "
        "of the pool's labelled windows (A->A); C by leave-one-subject-out on the pool",
        "head_c": {m: chosen["choices"][m]["c"] for m in DEMO_MODALITIES},
        "head_selection": chosen["choices"],
        "normalisation": {
            "scheme": scheme,
            "description": _SCHEME_TEXT[scheme],
            "candidates": {s: _SCHEME_TEXT[s] for s in schemes},
            "chosen_on": f"synthetic subject {DEMO_VALIDATION_SUBJECT} (never trained on): mean over "
            f"{', '.join(DEMO_MODALITIES)} of the exported heads' balanced accuracy, windows normalised "
            "with the bundle's statistics",
            "validation": validation_numbers,
        },
        "model_config": model.config.to_dict(),
        "seq_len": t,
        "recipe": {
            "function": "training.demo_bundle.build_demo_bundle",
            "pretrain": "training.label_efficiency.population_config",
            "min_steps": pretrain_cfg.min_steps,
            "batch_size": pretrain_cfg.batch_size,
            "max_batch_fraction": pretrain_cfg.max_batch_fraction,
            "warmup_steps": pretrain_cfg.warmup_steps,
            "lr": pretrain_cfg.lr,
            "weight_decay": pretrain_cfg.weight_decay,
            "device": device,
        },
        "pool_windows": chosen["n_windows"],
        "batch_size": plan.batch_size if plan else None,
        "epochs": plan.epochs if plan else None,
        "steps": plan.total_steps if plan else None,
        "seed": seed,
    }
    metrics = {
        "matrix": matrix,
        "evaluated_on": f"synthetic subject {DEMO_TEST_SUBJECT}, never seen in training; statistics of the "
        "population (no calibration)",
        "validation": {
            "evaluated_on": f"synthetic subject {DEMO_VALIDATION_SUBJECT}, never seen in training; statistics of "
            "the population (no calibration); chooses the normalisation scheme",
            "balanced_accuracy": validation_numbers,
            "chosen": scheme,
        },
    }
    bundle, parity = export_bundle(
        repository,
        DEMO_NAME,
        items,
        class_names=tuple(task.class_names),
        seq_len=t,
        training=training,
        metrics=metrics,
        seed=seed,
        model=model,  # the network's weights (m2s.pt), so 'm2s-train adapt' can start from the demo
    )
    logger.info(
        "demo bundle %s (scheme %s) in %.0f s: subject %d %s",
        bundle.ref, scheme, time.perf_counter() - t_start, DEMO_TEST_SUBJECT,
        {k: round(v["balanced_accuracy"], 3) for k, v in matrix.items()},
    )  # fmt: skip
    return bundle, parity


def validation_summary(training: Mapping[str, Any]) -> str:
    """One line with the validation numbers of each scheme, from a manifest's ``training`` section."""
    val = training["normalisation"]["validation"]
    return "; ".join(
        f"{s}: " + ", ".join(f"{m} {v:.3f}" for m, v in scores.items()) for s, scores in val.items()
    )
