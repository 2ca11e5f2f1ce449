"""``--tune``: the small recipe grid and its choice on validation data, for both regimes.

One change at a time from the recipe (coordinate-wise, to keep the grid small and each choice
explainable). The subject-dependent regime scores a candidate on the **validation** trials of its
splits (:func:`tune_subject`); the population regime on development subjects that are never
targets (:func:`training.label_efficiency.tune_population`). Test trials never reach a choice.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from signals._checks import check_range, ensure_int

logger = logging.getLogger(__name__)

#: Candidates of ``--tune`` (population regime): one change at a time from the recipe.
TUNE_CANDIDATES: dict[str, dict[str, Any]] = {
    "recipe": {},
    "lr=3e-4": {"pretrain": {"lr": 3e-4, "estimator_lr": 3e-4}},
    "steps x3": {"pretrain": {"steps": 3}},
    "weight_decay=1e-2": {"pretrain": {"weight_decay": 1e-2}},
    "w_contra=0.3": {"model": {"w_contra": 0.3}},
    "no CLUB": {"model": {"w_club": 0.0}},
    "head on pool+target": {"head_data": "pool+target"},
    "in-modal head on the latent": {"in_modal_features": "latent"},
}

#: Candidates of ``--tune`` in the subject-dependent regime (no pool, so no ``head_data``).
SUBJECT_TUNE_CANDIDATES: dict[str, dict[str, Any]] = {
    k: v for k, v in TUNE_CANDIDATES.items() if "head_data" not in v
}


def apply_candidate(config, candidate: Mapping[str, Any]):
    """``config`` (a ``PopulationConfig`` or ``ExperimentConfig``) with one candidate applied.

    ``{"pretrain": {"steps": n}}`` multiplies the pretraining budget by ``n`` (both ``epochs`` and
    ``min_steps``, so the step count of :meth:`~training.pretrain.PretrainConfig.plan` grows ``n``-fold
    whichever of the two binds); other ``pretrain`` / ``model`` entries replace fields; ``head_data``
    and ``in_modal_features`` replace the config's own.
    """
    changes: dict[str, Any] = {}
    if "pretrain" in candidate:
        pre = dict(candidate["pretrain"])
        factor = pre.pop("steps", None)
        if factor is not None:
            pre["epochs"] = factor * config.pretrain.epochs
            pre["min_steps"] = factor * config.pretrain.min_steps
        changes["pretrain"] = dataclasses.replace(config.pretrain, **pre)
    if "model" in candidate:
        changes["model"] = {**config.model, **candidate["model"]}
    for key in ("head_data", "in_modal_features"):
        if key in candidate:
            if not hasattr(config, key):
                raise ValueError(f"candidate changes {key!r}, which {type(config).__name__} does not have.")
            changes[key] = candidate[key]
    return dataclasses.replace(config, **changes)


def validation_splits(splits: Sequence) -> list:
    """Each split with its validation trials as the test part and no validation part.

    The training trials (and so the normaliser) are unchanged; heads then choose ``C``
    leave-one-trial-out on the training trials (:func:`training.experiment.fit_linear_head`).
    Splits without validation trials are left out.
    """
    return [
        dataclasses.replace(s, name=f"{s.name} (validation)", test=s.val, val=()) for s in splits if s.val
    ]


def tune_subject(
    splits: Sequence,
    config,
    modalities: Sequence,
    *,
    candidates: Mapping[str, Mapping[str, Any]] | None = None,
    n_splits: int = 5,
    method: str = "m2s",
):
    """Choose among ``candidates`` on the validation trials of the first ``n_splits`` splits.

    Each candidate runs ``method`` on :func:`validation_splits` (pretraining on the training trials,
    heads chosen without the validation trials, scored on them): mean balanced accuracy over every
    A→B and split. The best candidate (ties: the earlier one) is returned. Candidates that do not
    apply (``in_modal_features`` with ``head='mlp'``) are skipped and listed.

    Parameters
    ----------
    splits : sequence of Split
    config : ExperimentConfig
    modalities : sequence of ModalityConfig
    candidates : mapping of str to dict | None
        None: :data:`SUBJECT_TUNE_CANDIDATES`.
    n_splits : int
        How many splits (with validation trials) score each candidate; more costs proportionally.
    method : str
        The pretraining method being tuned.

    Returns
    -------
    config : ExperimentConfig
        ``config`` with the chosen candidate applied.
    record : dict
        ``{"selected", "change", "scores", "skipped", "splits", "objective"}`` for results.json.
    """
    from training.experiment import run_split

    candidates = SUBJECT_TUNE_CANDIDATES if candidates is None else candidates
    ensure_int(n_splits, "n_splits")
    check_range(n_splits, "n_splits", low=1)
    held = validation_splits(splits)[:n_splits]
    if not held:
        raise ValueError(
            "--tune needs validation trials, and no split has any; set val_per_class >= 1 "
            "(whole training trials per class held out for validation)."
        )
    scores: dict[str, float] = {}
    skipped: list[str] = []
    for name, cand in candidates.items():
        if cand.get("in_modal_features", "projection") != "projection" and config.head != "linear":
            skipped.append(name)
            continue
        cfg = dataclasses.replace(apply_candidate(config, cand), methods=(method,))
        accs = [
            v["balanced_accuracy"]
            for split in held
            for v in run_split(split, method, cfg, modalities).matrix.values()
        ]
        scores[name] = float(np.mean(accs))
        logger.info("tune %s: %.4f on the validation trials of %d split(s)", name, scores[name], len(held))
    if not scores:
        raise ValueError(f"no tuning candidate applies to head={config.head!r}.")
    best = max(scores.values())
    selected = next(n for n, s in scores.items() if s >= best - 1e-12)
    record = {
        "selected": selected,
        "change": dict(candidates[selected]),
        "scores": scores,
        "skipped": skipped,
        "splits": [s.name for s in held],
        "objective": f"{method}: mean balanced accuracy over every A->B on the validation trials "
        f"(heads chosen leave-one-trial-out on the training trials) of {len(held)} split(s)",
    }
    return apply_candidate(config, candidates[selected]), record
