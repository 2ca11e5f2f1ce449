"""``--tune``: the small recipe grid and its choice on validation data, for both regimes.

One change at a time from the recipe (coordinate-wise, to keep the grid small and each choice
explainable). The subject-dependent regime scores a candidate on the **validation** trials of its
splits (:func:`tune_subject`); the population regime on development subjects that are never
targets (:func:`training.label_efficiency.tune_population`). Test trials never reach a choice.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from signals._checks import check_range, ensure_int

logger = logging.getLogger(__name__)

#: Candidates of ``--tune`` (population regime): one change at a time from the recipe. Pairs such as
#: w_contra 0.3 / 1 let the search move either way from whatever the defaults are; a candidate that
#: changes nothing in the config at hand is skipped (:func:`effective_candidates`).
TUNE_CANDIDATES: dict[str, dict[str, Any]] = {
    "recipe": {},
    "lr=3e-4": {"pretrain": {"lr": 3e-4, "estimator_lr": 3e-4}},
    "steps x3": {"pretrain": {"steps": 3}},
    "weight_decay=1e-2": {"pretrain": {"weight_decay": 1e-2}},
    "w_contra=0.3": {"model": {"w_contra": 0.3}},
    "w_contra=1": {"model": {"w_contra": 1.0}},
    "no CLUB": {"model": {"w_club": 0.0}},
    "temperature_init=5": {"model": {"temperature_init": 5.0}},
    "head on pool+target": {"head_data": "pool+target"},
    "head on target only": {"head_data": "target"},
    "in-modal head on the latent": {"in_modal_features": "latent"},
    "in-modal head on the projection": {"in_modal_features": "projection"},
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


def apply_candidates(config, candidates: Mapping[str, Mapping[str, Any]], names: Sequence[str]):
    """``config`` with the named candidates applied one after the other."""
    for name in names:
        config = apply_candidate(config, candidates[name])
    return config


def greedy_search(
    candidates: Mapping[str, Mapping[str, Any]], score: Callable[[list[str]], float]
) -> tuple[list[str], dict[str, float]]:
    """One change at a time, then greedy combination, all scored by ``score`` (validation data only).

    Every candidate is scored alone. From the best one, each other candidate that beat the first
    (the recipe as it is) is added in the order of its own score and kept only when the combination
    scores higher than the best so far. Ties keep the earlier, simpler choice.

    Parameters
    ----------
    candidates : mapping of str to dict
        The first is the baseline (usually ``{}``).
    score : callable
        Names of candidates applied together -> validation score (higher is better).

    Returns
    -------
    chosen : list of str
        Names applied in order (one name when no combination helped).
    scores : dict of str to float
        Every scored setting: single names, and combinations as ``"a + b"``.
    """
    names = list(candidates)
    scores = {name: float(score([name])) for name in names}
    best_score = max(scores.values())
    chosen = [next(n for n in names if scores[n] >= best_score - 1e-12)]
    baseline = scores[names[0]]
    helpful = sorted(
        (n for n in names[1:] if n not in chosen and candidates[n] and scores[n] > baseline + 1e-12),
        key=lambda n: -scores[n],
    )
    for name in helpful:
        trial = [n for n in chosen if candidates[n]] + [name]
        key = " + ".join(trial)
        scores[key] = float(score(trial))
        if scores[key] > best_score + 1e-12:
            chosen, best_score = trial, scores[key]
    return chosen, scores


def effective_candidates(
    config, candidates: Mapping[str, Mapping[str, Any]]
) -> tuple[dict[str, Mapping[str, Any]], list[str]]:
    """The first candidate (the recipe) and every other one that changes ``config``; the rest are named."""
    names = list(candidates)
    kept = {names[0]: candidates[names[0]]} if names else {}
    same = []
    for name in names[1:]:
        if apply_candidate(config, candidates[name]) == config:
            same.append(name)
        else:
            kept[name] = candidates[name]
    return kept, same


def choose_recipe(config, candidates: Mapping[str, Mapping[str, Any]], score: Callable[[list[str]], float]):
    """:func:`greedy_search` over the candidates that change ``config``; the choice and its record.

    ``score(names)`` scores ``config`` with the named candidates applied (validation data only).

    Returns
    -------
    config
        ``config`` with the chosen candidates applied.
    record : dict
        ``{"selected", "change", "scores", "unchanged", "search"}`` (``selected``: names joined by
        ``" + "``); each regime adds where it scored.
    """
    usable, same = effective_candidates(config, candidates)
    chosen, scores = greedy_search(usable, score)
    record = {
        "selected": " + ".join(chosen),
        "change": [dict(usable[n]) for n in chosen],
        "scores": scores,
        "unchanged": same,
        "search": "each change alone, then greedy combination of the changes that beat the recipe",
    }
    return apply_candidates(config, usable, chosen), record


def validation_splits(splits: Sequence) -> list:
    """Each split with its validation trials as the test part and no validation part.

    The training trials (and so the normaliser) are unchanged; heads then choose ``C``
    leave-one-trial-out on the training trials (:func:`training.experiment.fit_linear_head`).
    Splits without validation trials are left out, and so are splits whose validation trials are
    test trials of another split (the k-fold protocols: fold 1's validation trials are tested in
    fold 2), so no trial that is ever tested takes part in a choice.
    """
    # A trial that is a test trial of any split (k-fold: another fold of the same subject) never scores.
    tested = {t.key for s in splits for t in s.test}
    return [
        dataclasses.replace(s, name=f"{s.name} (validation)", test=s.val, val=())
        for s in splits
        if s.val and not tested & {t.key for t in s.val}
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
    A→B and split, searched by :func:`greedy_search`. Candidates that do not apply
    (``in_modal_features`` with ``head='mlp'``) are skipped and listed.

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
        ``config`` with the chosen candidates applied.
    record : dict
        ``{"selected", "change", "scores", "skipped", "unchanged", "splits", "objective", "applies_to",
        "search"}`` for
        results.json (``selected``: names joined by ``" + "``).
    """
    from training.experiment import run_split

    candidates = SUBJECT_TUNE_CANDIDATES if candidates is None else candidates
    ensure_int(n_splits, "n_splits")
    check_range(n_splits, "n_splits", low=1)
    held = validation_splits(splits)[:n_splits]
    if not held:
        raise ValueError(
            "--tune needs validation trials that are never test trials, and no split has any: set "
            "val_per_class >= 1 (whole training trials per class held out for validation), and use a protocol "
            "whose validation trials are not another split's test trials (k-fold tests every trial once)."
        )
    skipped = [
        name
        for name, cand in candidates.items()
        if cand.get("in_modal_features", "projection") != "projection" and config.head != "linear"
    ]
    usable = {n: c for n, c in candidates.items() if n not in skipped}
    if not usable:
        raise ValueError(f"no tuning candidate applies to head={config.head!r}.")

    def score(names: list[str]) -> float:
        cfg = dataclasses.replace(apply_candidates(config, usable, names), methods=(method,))
        accs = [
            v["balanced_accuracy"]
            for split in held
            for v in run_split(split, method, cfg, modalities).matrix.values()
        ]
        logger.info(
            "tune %s: %.4f on the validation trials of %d split(s)",
            " + ".join(names),
            np.mean(accs),
            len(held),
        )
        return float(np.mean(accs))

    tuned, record = choose_recipe(config, usable, score)
    record.update(
        skipped=skipped,
        splits=[s.name for s in held],
        objective=f"{method}: mean balanced accuracy over every A->B on the validation trials "
        f"(heads chosen leave-one-trial-out on the training trials) of {len(held)} split(s)",
        applies_to="every pretraining method of the run (tuned on m2s)"
        + (
            "; an MLP head keeps its last epoch while tuning (the validation trials are being scored)"
            if config.head == "mlp"
            else ""
        ),
    )
    return tuned, record
