"""The label-efficiency benchmark: balanced accuracy against labelled trials per class k, per method.

Population regime (``docs/design/CALIBRATION.md`` §1-2), one :class:`~training.protocols.population.PopulationFold`
per target subject. Methods (:data:`CURVE_METHODS`):

============  =====================================================================================
m2s_pop       M2S pretrained on the pool (other subjects' paired windows, labels unused) → head
clip_pop      the same with the contrastive loss only
s_subject     supervised network from scratch on the target's k trials per class (k ≥ 1)
s_pop         supervised network on the pool's labels → head re-fitted on the target's k trials
lr            logistic regression on window means of the normalised features (in-modal anchor)
cca_lr        CCA on the pool's paired window means → logistic regression (cross-modal anchor)
m2s_subject   M2S pretrained on the target's k calibration trials per class only → head (k ≥ 1)
============  =====================================================================================

Heads are :class:`~training.heads.LinearHead` (logistic regression) on the method's features; A→B
fits the head on modality A's features of the calibration windows and scores modality B's test
windows. Every choice is made without the target's test trials:

- k = 0 (zero-shot): the head is fitted on the pool's labelled windows, ``C`` chosen by
  leave-one-subject-out over (up to four) pool subjects;
- k = 1: ``C`` is fixed on the pool (nested): for up to four pool subjects, a head fitted on their
  first trial per class is scored on their other trials; the best mean wins;
- k ≥ 2 and 'all': leave-one-trial-out inside the target's calibration trials.

The target's test windows enter only :func:`_score`, after everything is fitted.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pydantic as _pyd

from models.config import M2SConfig, ModalityConfig
from signals._checks import check_type
from training.anchors import CcaProjection, cca_partner
from training.evaluate import pair_key
from training.experiment import SyntheticBenchmarkData
from training.finetune import FinetuneConfig
from training.heads import C_GRID, CChoice, LinearHead, best_c, choose_c, fit_with, window_means
from training.metrics import classification_metrics
from training.pretrain import PretrainConfig
from training.protocols.population import PopulationFold, SubjectWindows, first_trials_per_class
from training.tuning import TUNE_CANDIDATES, apply_candidates, choose_recipe

logger = logging.getLogger(__name__)

CURVE_METHODS: tuple[str, ...] = ("m2s_pop", "clip_pop", "s_subject", "s_pop", "lr", "cca_lr", "m2s_subject")
#: Methods that need no labelled target trial (they have a k = 0 point).
ZERO_SHOT = {"m2s_pop", "clip_pop", "s_pop", "lr", "cca_lr"}
#: Methods that report A→B for A ≠ B (the others are single-modality networks or features).
CROSS_MODAL = {"m2s_pop", "clip_pop", "cca_lr", "m2s_subject"}
#: Loss weights of the pretraining methods (M2SConfig fields).
_LOSS_OVERRIDES = {
    "m2s_pop": {},
    "m2s_subject": {},
    "clip_pop": {"w_club": 0.0, "w_recon": 0.0, "w_cpc": 0.0},
}
_NESTED_SUBJECTS = 4
#: Leave-one-trial-out folds at most (evenly spaced calibration trials), for speed.
_MAX_LOTO_FOLDS = 6
#: Every how many pool windows a head reads (overlapping neighbours are near-duplicates; keeps fits fast).
POOL_HEAD_STRIDE = 4
HEAD_DATA = ("target", "pool+target")


def k_key(k: int | None) -> str:
    """'k=0', 'k=1', ..., 'k=all'."""
    return "k=all" if k is None else f"k={k}"


def parse_k(text: str | int | None) -> int | None:
    """Inverse of :func:`k_key` (also accepts '2', 2, 'all')."""
    if text is None or isinstance(text, int):
        return text
    t = str(text).removeprefix("k=")
    if t == "all":
        return None
    if not t.isdigit():
        raise ValueError(f"k must be a non-negative integer or 'all', got {text!r}.")
    return int(t)


@dataclass(frozen=True)
class PopulationConfig:
    """What the label-efficiency benchmark runs (the data and folds come separately).

    Attributes
    ----------
    seq_len, stride : int
        T and the step between window starts.
    model : dict
        :class:`M2SConfig` fields besides ``modalities``/``seq_len`` (network size, loss weights).
    pretrain : PretrainConfig
        Pretraining of M2S-pop, CLIP-pop and M2S-subject (set ``min_steps`` so small data still trains).
    supervised : FinetuneConfig
        S-pop and S-subject networks.
    methods : tuple of str
    ks : tuple of int | None
        Labelled trials per class (None = all calibration trials).
    c_grid : tuple of float
        Candidate ``C`` of the heads.
    val_subjects : int
        Pool subjects held out to choose S-pop's epoch.
    head_data : {'target', 'pool+target'}
        What a head at k >= 1 is fitted on: the target's k calibration trials plus the pool's labelled
        windows, the participant's windows weighing as much as the whole pool together (the default,
        chosen by ``--tune``: 97.7 % against 89.3 % on the development subjects), or the target's
        k calibration trials only.
    in_modal_features : {'projection', 'latent'}
        What an A→A head of a pretrained network reads: the shared 32-d projection (as A→B heads do),
        or the mean-pooled ER embedding before it.
    """

    seq_len: int = 5
    stride: int = 1
    model: Mapping[str, Any] = field(default_factory=dict)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    supervised: FinetuneConfig = field(default_factory=FinetuneConfig)
    methods: tuple[str, ...] = CURVE_METHODS
    ks: tuple[int | None, ...] = (0, 1, 2, None)
    c_grid: tuple[float, ...] = C_GRID
    val_subjects: int = 2
    head_data: str = "pool+target"
    in_modal_features: str = "projection"

    def __post_init__(self):
        if self.in_modal_features not in ("projection", "latent"):
            raise ValueError(
                f"in_modal_features must be 'projection' or 'latent', got {self.in_modal_features!r}."
            )
        if self.head_data not in HEAD_DATA:
            raise ValueError(f"head_data must be one of {HEAD_DATA}, got {self.head_data!r}.")
        object.__setattr__(self, "methods", tuple(self.methods))
        object.__setattr__(self, "ks", tuple(parse_k(k) for k in self.ks))
        bad = [m for m in self.methods if m not in CURVE_METHODS]
        if bad or not self.methods:
            raise ValueError(f"unknown method(s) {bad or '[]'}; choose among {', '.join(CURVE_METHODS)}.")
        if not self.ks:
            raise ValueError("ks is empty; give e.g. (0, 1, 2, None).")
        check_type(self.pretrain, PretrainConfig, "pretrain")
        check_type(self.supervised, FinetuneConfig, "supervised")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict."""
        out = dataclasses.asdict(self)
        out["model"] = dict(self.model)
        out["ks"] = [k_key(k) for k in self.ks]
        return out


@dataclass
class FoldOutcome:
    """Everything one target produced.

    Attributes
    ----------
    target : str
    scores : dict
        ``{method: {"k=K": {"A->B": metrics}}}`` on the target's test windows.
    choices : dict
        ``{method: {"k=K": {A: {"c", "selected_on", "scores"}}}}`` and network selection records.
    heads : dict
        ``{(method, "k=K", A): LinearHead}``: what was fitted before the test windows were read.
    pretrain_history : dict
        Method -> loss history of its pretraining (``m2s_subject``: per k).
    seconds : dict
        Method -> wall time.
    """

    target: str
    scores: dict[str, dict[str, dict[str, dict[str, float]]]] = field(default_factory=dict)
    choices: dict[str, Any] = field(default_factory=dict)
    heads: dict[tuple[str, str, str], LinearHead] = field(default_factory=dict)
    pretrain_history: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


Featuriser = Callable[[str, np.ndarray], np.ndarray]


class _FoldRunner:
    """Runs every method on one fold; test windows are read only by :meth:`_score`."""

    def __init__(
        self, fold: PopulationFold, config: PopulationConfig, modalities: Sequence[ModalityConfig],
        cache: dict | None = None,
    ):  # fmt: skip
        self.fold, self.config, self.modalities = fold, config, tuple(modalities)
        self.cache = {} if cache is None else cache
        self.names = [m.name for m in self.modalities]
        self.n_classes = fold.task.n_classes
        t = config.seq_len
        self.pool = fold.pool_windows(t, modalities=self.names, stride=config.stride)
        self.cal = {k: fold.target_windows("calibration", k, t, modalities=self.names, stride=config.stride)
                    for k in config.ks if k != 0}  # fmt: skip
        self.out = FoldOutcome(target=fold.target)
        self._head_pool = np.arange(len(self.pool)) % POOL_HEAD_STRIDE == 0
        self._nested_parts = self._nested_split()

    # ------------------------------------------------------------------ head fitting (no test data)

    def _nested_split(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per pool subject (up to four): (train mask = its first trial per class, test mask = the rest)."""
        parts = []
        subjects = self.fold.pool_subjects
        pick = [
            subjects[i]
            for i in np.linspace(0, len(subjects) - 1, min(_NESTED_SUBJECTS, len(subjects)))
            .round()
            .astype(int)
        ]
        ids = self.pool.trial_ids
        for s in dict.fromkeys(pick):
            trials = [t for t in self.fold.pool if t.subject == s]
            first = {
                "/".join(str(p) for p in t.key) for t in first_trials_per_class(trials, self.fold.task, 1)
            }
            own = self.pool.subjects == s
            train = own & np.isin(ids, list(first))
            test = own & ~train
            if train.any() and test.any() and np.unique(self.pool.y[train]).size >= 2:
                parts.append((train, test))
        return parts

    def _choose_nested(self, z_pool: np.ndarray) -> CChoice:
        """``C`` for k = 1 fixed on pool subjects: train on a subject's first trial per class (plus, with
        ``head_data='pool+target'``, the other pool subjects' windows), score its other trials."""
        from training.metrics import balanced_accuracy

        with_pool = self.config.head_data == "pool+target"
        scores: dict[float, float] = {}
        for c in self.config.c_grid:
            accs = []
            for train, test in self._nested_parts:
                head = LinearHead(self.n_classes, c)
                if with_pool:
                    own = self.pool.subjects == self.pool.subjects[np.flatnonzero(train)[0]]
                    rest = self._head_pool & ~own
                    w = rest.sum() / max(train.sum(), 1)
                    fit_with(
                        head,
                        z_pool[train],
                        self.pool.y[train],
                        w,
                        (z_pool[rest], self.pool.y[rest], np.ones(rest.sum())),
                    )
                else:
                    head.fit(z_pool[train], self.pool.y[train])
                accs.append(balanced_accuracy(self.pool.y[test], head.predict(z_pool[test]), self.n_classes))
            if accs:
                scores[float(c)] = float(np.mean(accs))
        if not scores:
            return CChoice(1.0, {}, "default (no pool subject to nest on)")
        return CChoice(best_c(scores), scores, "nested: first trial per class of pool subjects")

    def _fit_head(
        self, method: str, k: int | None, a: str, feat: Featuriser, nested: dict, pair: str | None = None
    ) -> LinearHead:
        """The head of ``method`` at ``k`` on modality A's features (see the module docstring)."""
        grid = self.config.c_grid
        pool = self._head_pool
        fixed, weight = None, 1.0
        if k == 0:
            z, y = feat(a, self.pool.x[a][pool]), self.pool.y[pool]
            choice = choose_c(z, y, self.pool.subjects[pool], self.n_classes, grid=grid,
                              selected_on="leave-one-subject-out on the pool", max_folds=_NESTED_SUBJECTS)  # fmt: skip
        else:
            cal = self.cal[k]
            z, y = feat(a, cal.x[a]), cal.y
            if self.config.head_data == "pool+target":
                zp = feat(a, self.pool.x[a][pool])
                fixed = (zp, self.pool.y[pool], np.ones(len(zp)))
                weight = len(zp) / len(z)  # the participant weighs as much as the whole pool
            if k == 1:
                if a not in nested:
                    nested[a] = self._choose_nested(feat(a, self.pool.x[a]))
                choice = nested[a]
            else:
                choice = choose_c(z, y, cal.trial_ids, self.n_classes, grid=grid,
                                  selected_on="leave-one-trial-out on the calibration trials",
                                  fixed=fixed, weight=weight, max_folds=_MAX_LOTO_FOLDS)  # fmt: skip
        head = fit_with(LinearHead(self.n_classes, choice.c), z, y, weight, fixed)
        pair = pair or pair_key(a, a)
        self.out.heads[(method, k_key(k), pair)] = head
        self.out.choices.setdefault(method, {}).setdefault(k_key(k), {})[pair] = {
            "c": choice.c, "selected_on": choice.selected_on, "scores": choice.scores,
        }  # fmt: skip
        return head

    # ------------------------------------------------------------------ scoring (the only test reader)

    def _score(
        self,
        method: str,
        k: int | None,
        pairs: Mapping[str, Callable[[Mapping[str, np.ndarray]], np.ndarray]],
    ):
        test = self.fold.target_windows("test", k, self.config.seq_len, modalities=self.names,
                                        stride=self.config.stride)  # fmt: skip
        cell = self.out.scores.setdefault(method, {}).setdefault(k_key(k), {})
        for pair, predict in pairs.items():
            metrics = classification_metrics(test.y, predict(test.x), self.n_classes)
            cell[pair] = {m: float(metrics[m]) for m in ("balanced_accuracy", "kappa", "f1")}

    def _head_curve(self, method: str, feat_for: Callable[[str, str], Featuriser], ks, cross: bool):
        """Fit heads per k and training modality A, then score every A→B (A→A only when not ``cross``).

        A→B pairs whose featuriser is the same object share A's head (e.g. one head on the shared
        embedding serves every B)."""
        nested: dict = {}
        for k in ks:
            pairs, heads = {}, {}
            for a in self.names:
                for b in self.names if cross else [a]:
                    feat = feat_for(a, b)
                    if (a, id(feat)) not in heads:
                        pair = pair_key(a, b)
                        heads[(a, id(feat))] = self._fit_head(
                            method, k, a, feat, nested.setdefault((a, id(feat)), {}), pair
                        )
                    head = heads[(a, id(feat))]
                    pairs[pair_key(a, b)] = lambda x, h=head, f=feat, b=b: h.predict(f(b, x[b]))
            self._score(method, k, pairs)

    # ------------------------------------------------------------------ methods

    def run(self) -> FoldOutcome:
        for method in self.config.methods:
            t0 = time.perf_counter()
            getattr(self, f"_run_{method}")()
            self.out.seconds[method] = time.perf_counter() - t0
            logger.info(
                "%s on %s: %s (%.1f s)", method, self.fold.name,
                "; ".join(f"{kk} " + ", ".join(f"{p} {v['balanced_accuracy']:.3f}" for p, v in cell.items())
                          for kk, cell in self.out.scores.get(method, {}).items()),
                self.out.seconds[method],
            )  # fmt: skip
        return self.out

    def _ks(self, method: str):
        """The k points ``method`` has for this target: no k = 0 without a zero-shot form, and no k whose
        calibration trials hold fewer than two classes (nothing to fit a head on; noted in the choices)."""
        out = []
        for k in self.config.ks:
            if k == 0:
                if method in ZERO_SHOT:
                    out.append(k)
                continue
            classes = np.unique(self.cal[k].y) if len(self.cal[k]) else []
            if len(classes) < 2:
                note = (
                    f"{k_key(k)}: the calibration trials hold {len(classes)} class(es); no head can be fitted"
                )
                notes = self.out.choices.setdefault("notes", [])
                if note not in notes:
                    notes.append(note)
                    logger.warning("%s: %s", self.fold.name, note)
                continue
            out.append(k)
        return out

    def _run_lr(self):
        self._head_curve("lr", lambda a, b: lambda m, x: window_means(x), self._ks("lr"), cross=False)

    def _run_cca_lr(self):
        means = {m: window_means(self.pool.x[m]) for m in self.names}

        feats: dict[tuple[str, str], Featuriser] = {}

        def feat_for(a, b):
            p = cca_partner(a, b, self.names)
            key = tuple(sorted((a, p)))
            if key not in feats:
                proj = CcaProjection.fit(key[0], key[1], means[key[0]], means[key[1]])
                feats[key] = lambda m, x, proj=proj: proj.transform(m, window_means(x))
            return feats[key]

        self._head_curve("cca_lr", feat_for, self._ks("cca_lr"), cross=True)

    def _model_config(self, method: str) -> M2SConfig:
        return M2SConfig(
            modalities=self.modalities, seq_len=self.config.seq_len,
            **{**self.config.model, **_LOSS_OVERRIDES[method]},
        )  # fmt: skip

    def _pretrain(self, x: Mapping[str, np.ndarray], method: str, key: tuple | None = None):
        """Pretrain (or take from the run's cache: the same data, network and settings give the same model)."""
        from training.pretrain import pretrain

        config = self._model_config(method)
        full_key = None if key is None else (*key, repr(config), repr(self.config.pretrain))
        if full_key is not None and full_key in self.cache:
            return self.cache[full_key]
        result = pretrain(config, x, self.config.pretrain)
        if full_key is not None:
            self.cache[full_key] = result
        return result

    def _featurisers(self, model) -> Callable[[str, str], Featuriser]:
        """A→B featuriser: the shared 32-d projection, or for A→A with ``in_modal_features='latent'`` the
        mean-pooled ER embedding before the projection (the part the contrastive loss does not constrain)."""
        from training.finetune import embed, embed_latent

        def projection(m, windows):
            return embed(model.embedder(m), windows).cpu().numpy().astype(np.float64)

        def latent(m, windows):
            return embed_latent(model.embedder(m), windows).cpu().numpy().astype(np.float64)

        use_latent = self.config.in_modal_features == "latent"
        return lambda a, b: latent if (use_latent and a == b) else projection

    def _run_pop(self, method: str):
        result = self._pretrain(self.pool.x, method, key=("pool", tuple(self.fold.pool_subjects)))
        self.out.pretrain_history[method] = result.history
        self._head_curve(method, self._featurisers(result.model), self._ks(method), cross=True)

    def _run_m2s_pop(self):
        self._run_pop("m2s_pop")

    def _run_clip_pop(self):
        self._run_pop("clip_pop")

    def _run_m2s_subject(self):
        hist = {}
        for k in self._ks("m2s_subject"):
            cal = self.cal[k]
            if len(cal) < 2:
                continue
            result = self._pretrain(cal.x, "m2s_subject")
            hist[k_key(k)] = result.history
            self._head_curve("m2s_subject", self._featurisers(result.model), [k], cross=True)
        self.out.pretrain_history["m2s_subject"] = hist

    def _supervised(self, a: str, train: SubjectWindows, val: SubjectWindows | None):
        from training.finetune import train_supervised

        single = M2SConfig(modalities=(next(m for m in self.modalities if m.name == a),),
                           seq_len=self.config.seq_len, **self.config.model)  # fmt: skip
        return train_supervised(
            single, a, (train.x[a], train.y), None if val is None or not len(val) else (val.x[a], val.y),
            self.n_classes, self.config.supervised,
        )  # fmt: skip

    def _run_s_pop(self):
        from training.evaluate import predict_direct
        from training.finetune import embed

        subjects = self.fold.pool_subjects
        n_val = min(self.config.val_subjects, max(len(subjects) - 1, 0))
        val_subjects = subjects[len(subjects) - n_val :] if n_val else []
        is_val = np.isin(self.pool.subjects, val_subjects)
        train = _subset(self.pool, ~is_val)
        val = _subset(self.pool, is_val) if n_val else None
        for a in self.names:
            fr = self._supervised(a, train, val)
            net = fr.classifier
            self.out.choices.setdefault("s_pop", {}).setdefault("network", {})[a] = {
                "best_epoch": fr.best_epoch, "selected_on": f"{fr.selected_on} (pool subjects {val_subjects})",
            }  # fmt: skip

            def feat(m, x, net=net):
                return embed(net.embedder, x).cpu().numpy().astype(np.float64)

            for k in self._ks("s_pop"):
                if k == 0:  # the network's own classifier, trained on the pool's labels
                    self._score(
                        "s_pop", 0, {pair_key(a, a): (lambda x, net=net, a=a: predict_direct(net, x[a]))}
                    )
                    continue
                nested: dict = {}
                head = self._fit_head("s_pop", k, a, feat, nested)
                self._score(
                    "s_pop", k, {pair_key(a, a): (lambda x, h=head, f=feat, a=a: h.predict(f(a, x[a])))}
                )

    def _run_s_subject(self):
        from training.evaluate import predict_direct

        for k in self._ks("s_subject"):
            cal = self.cal[k]
            for a in self.names:
                fr = self._supervised(a, cal, None)
                self.out.choices.setdefault("s_subject", {}).setdefault(k_key(k), {})[a] = {
                    "best_epoch": fr.best_epoch, "selected_on": fr.selected_on,
                }  # fmt: skip
                self._score(
                    "s_subject",
                    k,
                    {pair_key(a, a): (lambda x, net=fr.classifier, a=a: predict_direct(net, x[a]))},
                )


def _subset(w: SubjectWindows, mask: np.ndarray) -> SubjectWindows:
    from training.protocols.windows import Windows

    idx = np.flatnonzero(mask)
    inner = Windows(
        x={m: v[idx] for m, v in w.x.items()}, y=w.y[idx],
        trial_keys=[w.windows.trial_keys[i] for i in idx], starts=w.windows.starts[idx],
        seq_len=w.windows.seq_len,
    )  # fmt: skip
    return SubjectWindows(inner, w.subjects[idx])


def run_fold(
    fold: PopulationFold,
    config: PopulationConfig,
    modalities: Sequence[ModalityConfig],
    *,
    cache: dict | None = None,
) -> FoldOutcome:
    """Run every method of ``config`` on one target (see the module docstring).

    ``cache`` (a dict kept by the caller) shares pretrained pool models between folds with the same
    pool, network and settings (e.g. the development folds of :func:`tune_population`).
    """
    check_type(fold, PopulationFold, "fold")
    check_type(config, PopulationConfig, "config")
    return _FoldRunner(fold, config, modalities, cache).run()


def run_population(
    folds: Sequence[PopulationFold],
    config: PopulationConfig,
    modalities: Sequence[ModalityConfig],
    *,
    on_fold: Callable[[FoldOutcome], None] | None = None,
) -> tuple[list[FoldOutcome], dict[str, Any]]:
    """Run the benchmark on every fold.

    Returns
    -------
    outcomes : list of FoldOutcome
    per_subject : dict
        ``{method: {"k=K": {"A->B": {target: metrics}}}}``, ready for
        :func:`training.curve_report.summarise_curves`.
    """
    if not folds:
        raise ValueError("no folds to run; check the target subjects.")
    outcomes, per_subject = [], {}
    for fold in folds:
        out = run_fold(fold, config, modalities)
        outcomes.append(out)
        for method, by_k in out.scores.items():
            for kk, by_pair in by_k.items():
                for pair, metrics in by_pair.items():
                    per_subject.setdefault(method, {}).setdefault(kk, {}).setdefault(pair, {})[
                        fold.target
                    ] = metrics
        if on_fold is not None:
            on_fold(out)
    return outcomes, per_subject


# ---------------------------------------------------------------------------------------------- benchmark


def _population_model() -> dict[str, Any]:
    from training.experiment import _default_model

    return _default_model()


class PopulationBenchmarkConfig(SyntheticBenchmarkData):
    """The synthetic label-efficiency benchmark (``m2s-train benchmark --regime population``), JSON-loadable.

    Every field is optional. The defaults finish in about 6.5 minutes on 2 CPU cores: three target
    subjects (evenly spaced over the 15 of the default synthetic world) with the small network; the
    full run (``"n_targets": 15``) costs about five times as much (see docs/guides/reproduce-paper.md).
    """

    protocol: str = _pyd.Field(
        "fraction:0.6", description="Splits each target into calibration and test trials."
    )
    targets: tuple[str, ...] | None = _pyd.Field(
        None, description="Target subjects (None: n_targets evenly spaced)."
    )
    n_targets: int = _pyd.Field(3, ge=1)
    seq_len: int = _pyd.Field(5, ge=1)
    model: dict[str, Any] = _pyd.Field(default_factory=_population_model)
    pretrain_steps: int = _pyd.Field(400, ge=1, description="Minimum optimiser steps of every pretraining.")
    pretrain_batch_size: int = _pyd.Field(128, ge=2)
    pretrain_lr: float = _pyd.Field(1e-3, gt=0)
    pretrain_weight_decay: float = _pyd.Field(1e-4, ge=0)
    warmup_steps: int = _pyd.Field(40, ge=0)
    max_batch_fraction: float = _pyd.Field(0.25, gt=0, le=1)
    supervised_steps: int = _pyd.Field(200, ge=1, description="Minimum optimiser steps of the S networks.")
    supervised_epochs: int = _pyd.Field(30, ge=1)
    supervised_lr: float = _pyd.Field(1e-3, gt=0)
    patience: int = _pyd.Field(10, ge=0)
    methods: tuple[str, ...] = _pyd.Field(CURVE_METHODS, min_length=1)
    ks: tuple[str, ...] = _pyd.Field(("0", "1", "2", "all"), min_length=1)
    head_data: str = _pyd.Field(
        "pool+target", description="'pool+target' (chosen by --tune) or 'target' (see PopulationConfig)."
    )
    in_modal_features: str = _pyd.Field("projection", description="'projection' or 'latent'.")
    tune: bool = _pyd.Field(
        False, description="Choose among TUNE_CANDIDATES on 2 development subjects first."
    )
    seed: int = _pyd.Field(0, ge=0)
    device: str = "auto"

    @_pyd.field_validator("methods")
    @classmethod
    def _methods(cls, value):
        bad = [m for m in value if m not in CURVE_METHODS]
        if bad:
            raise ValueError(f"unknown method(s) {bad}; choose among {', '.join(CURVE_METHODS)}")
        return value

    @_pyd.field_validator("ks")
    @classmethod
    def _ks(cls, value):
        for k in value:
            parse_k(k)
        return value

    def population(self, progress: bool | None = None) -> PopulationConfig:
        """The :class:`PopulationConfig` this benchmark runs."""
        return population_config(
            model=self.model, seq_len=self.seq_len, steps=self.pretrain_steps,
            batch_size=self.pretrain_batch_size, lr=self.pretrain_lr, weight_decay=self.pretrain_weight_decay,
            warmup_steps=self.warmup_steps, max_batch_fraction=self.max_batch_fraction,
            supervised_steps=self.supervised_steps, supervised_epochs=self.supervised_epochs,
            supervised_lr=self.supervised_lr, patience=self.patience, methods=self.methods, ks=self.ks,
            seed=self.seed, device=self.device, progress=progress, head_data=self.head_data,
            in_modal_features=self.in_modal_features,
        )  # fmt: skip


def population_config(
    *, model: Mapping[str, Any], seq_len: int = 5, steps: int = 400, batch_size: int = 128, lr: float = 1e-3,
    weight_decay: float = 1e-4, warmup_steps: int = 40, max_batch_fraction: float = 0.25,
    supervised_steps: int = 200, supervised_epochs: int = 30, supervised_lr: float = 1e-3, patience: int = 10,
    methods: Sequence[str] = CURVE_METHODS, ks: Sequence[Any] = (0, 1, 2, None), seed: int = 0,
    device: str = "auto", progress: bool | None = None, head_data: str = "pool+target",
    in_modal_features: str = "projection",
) -> PopulationConfig:  # fmt: skip
    """A :class:`PopulationConfig` from the recipe's knobs (pretraining budgeted in steps, with warm-up)."""
    return PopulationConfig(
        seq_len=seq_len,
        model=dict(model),
        pretrain=PretrainConfig(
            epochs=1, min_steps=steps, batch_size=batch_size, max_batch_fraction=max_batch_fraction,
            warmup_steps=warmup_steps, lr=lr, estimator_lr=lr, weight_decay=weight_decay, seed=seed,
            device=device, progress=progress, checkpoint_every=1,
        ),
        supervised=FinetuneConfig(
            epochs=supervised_epochs, min_steps=supervised_steps, batch_size=64,
            max_batch_fraction=max_batch_fraction, lr=supervised_lr, patience=patience, seed=seed,
            device=device, progress=progress,
        ),
        methods=tuple(methods),
        ks=tuple(ks),
        head_data=head_data,
        in_modal_features=in_modal_features,
    )  # fmt: skip


def default_targets(subjects: Sequence[str], n: int) -> list[str]:
    """``n`` target subjects evenly spaced over ``subjects`` (first and last included)."""
    subjects = list(subjects)
    if n >= len(subjects):
        return subjects
    idx = np.linspace(0, len(subjects) - 1, n).round().astype(int)
    return [subjects[i] for i in dict.fromkeys(idx.tolist())]


def run_population_experiment(
    dataset,
    config: PopulationConfig,
    out_dir,
    *,
    task_name: str = "emotion",
    targets: Sequence[str] | None = None,
    protocol: str | None = None,
    tune: bool = False,
    n_dev: int = 2,
    title: str,
    meta: Mapping[str, Any] | None = None,
    config_record: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Folds, optional tuning on development subjects, every method, and the report (results.json ``curves``).

    Parameters
    ----------
    dataset : EmotionDataset
    config : PopulationConfig
    out_dir : path
    task_name : str
        'emotion' or a rating (see :func:`training.protocols.make_task`).
    targets : sequence of str | None
        Target subjects (None: every subject).
    protocol : str | None
        Splits each target's trials into calibration and test (None: the dataset's default).
    tune : bool
        Choose among :data:`TUNE_CANDIDATES` on ``n_dev`` development subjects first (see
        :func:`tune_population`); the choice goes to results.json under ``"tuning"``.
    title, meta, config_record
        Shown in / stored with the report.

    Returns
    -------
    dict of str to Path
        As :func:`training.curve_report.write_curve_report`.
    """
    from training.curve_report import summarise_curves, write_curve_report
    from training.experiment import modality_configs
    from training.protocols import make_task
    from training.protocols.population import population_folds
    from training.reports import write_json

    t0 = time.perf_counter()
    task = make_task(dataset, task_name)
    targets = list(targets) if targets else list(dataset.subjects)
    mods = modality_configs(dataset, list(dataset.modalities))
    tuning = None
    if tune:
        config, tuning = tune_population(dataset, task, targets, config, mods, protocol=protocol, n_dev=n_dev)
    folds = population_folds(dataset, task, targets=targets, protocol=protocol)
    outcomes, per_subject = run_population(folds, config, mods)
    curves, details = summarise_curves(per_subject)
    meta = {
        **dict(meta or {}),
        "regime": f"population, leave-one-subject-out; targets {', '.join(targets)}; {folds[0].protocol}",
        "task": f"{task.name} ({', '.join(task.class_names)})",
        "modalities": ", ".join(f"{m.name} (D={m.dim})" for m in mods),
        "heads": f"logistic regression on {config.head_data} windows, in-modal features: {config.in_modal_features}",
        "wall time of the benchmark (s)": f"{time.perf_counter() - t0:.1f}",
    }
    if tuning is not None:
        meta["tuning"] = (
            f"'{tuning['selected']}' chosen on development subjects {', '.join(tuning['dev_subjects'])} "
            "(never targets)"
        )
    choices: dict[str, Any] = {
        "heads": "C of every head, per target, k and pair, with the score of each candidate: details.json "
        "(population.extra_details.choices)",
    }
    if tuning is not None:
        choices["tuning (development subjects " + ", ".join(tuning["dev_subjects"]) + ")"] = (
            f"selected '{tuning['selected']}'; scores "
            + ", ".join(f"{n} {100 * v:.1f} %" for n, v in tuning["scores"].items())
        )
    extra = {
        "choices": {o.target: o.choices for o in outcomes},
        "tuning": tuning,
        "seconds": {o.target: o.seconds for o in outcomes},
        "pretrain_history": {o.target: o.pretrain_history for o in outcomes},
    }
    paths = write_curve_report(
        out_dir, curves, details, class_names=task.class_names, title=title, meta=meta,
        config={**dict(config_record or {}), "population": config.to_dict()}, choices=choices,
        extra_details=extra,
    )  # fmt: skip
    results = json.loads(paths["results"].read_text(encoding="utf-8"))
    results["population"] = {
        "targets": targets,
        "tuning": tuning,
        "config": {"head_data": config.head_data, "in_modal_features": config.in_modal_features,
                   "pretrain": config.pretrain.to_dict(), "model": dict(config.model)},
    }  # fmt: skip
    write_json(results, paths["results"])
    return paths


def run_population_benchmark(
    config: PopulationBenchmarkConfig | None = None, out_dir="benchmark", *, progress: bool | None = None
) -> dict[str, Any]:
    """Generate synthetic data, run the label-efficiency benchmark and write its report."""
    config = (
        PopulationBenchmarkConfig()
        if config is None
        else check_type(config, PopulationBenchmarkConfig, "config")
    )
    pop = config.population(progress)
    t0 = time.perf_counter()
    dataset = config.load_dataset()
    t_data = time.perf_counter() - t0
    targets = list(config.targets) if config.targets else default_targets(dataset.subjects, config.n_targets)
    syn = config.synthetic
    meta = {
        "dataset": f"synthetic ({syn.n_subjects} subjects × {syn.n_sessions} session(s) × {syn.n_trials} trials × "
        f"{syn.trial_duration_s:g} s, seed {syn.seed})",
        "windows": f"T={config.seq_len}",
        "pretraining": f"≥ {config.pretrain_steps} steps, batch ≤ {config.pretrain_batch_size} "
        f"(≤ {config.max_batch_fraction:g} of the windows), lr {config.pretrain_lr:g} with {config.warmup_steps} "
        "warm-up steps then cosine",
        "data generation + features (s)": f"{t_data:.1f}",
    }
    return run_population_experiment(
        dataset, pop, out_dir, targets=targets, protocol=config.protocol, tune=config.tune,
        title="Label efficiency (synthetic, population regime)", meta=meta,
        config_record={"benchmark": config.model_dump(mode="json")},
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------- tuning


def tune_population(
    dataset,
    task,
    targets: Sequence[str],
    config: PopulationConfig,
    modalities: Sequence[ModalityConfig],
    *,
    protocol: str | None = None,
    n_dev: int = 2,
    candidates: Mapping[str, Mapping[str, Any]] = TUNE_CANDIDATES,
    method: str = "m2s_pop",
) -> tuple[PopulationConfig, dict[str, Any]]:
    """Choose among ``candidates`` on development subjects that are never targets.

    The last ``n_dev`` subjects that are not targets are the development subjects; the tuning pool is
    every subject that is neither a target nor a development subject, so no target's trial (not
    even unlabelled) reaches any choice. Each candidate pretrains ``method`` on the tuning pool and
    is scored on the development subjects' test trials at k = 1 and k = all, mean balanced accuracy
    over every A→B and both k, searched by :func:`training.tuning.choose_recipe` (each change alone,
    then greedy combination).

    Returns
    -------
    config : PopulationConfig
        ``config`` with the chosen candidates applied.
    record : dict
        :func:`~training.tuning.choose_recipe`'s record plus ``"dev_subjects"``, ``"pool_subjects"``
        and ``"objective"``, for results.json.
    """
    from training.protocols.population import population_folds

    others = [s for s in dataset.subjects if s not in set(targets)]
    if len(others) < n_dev + 2:
        raise ValueError(
            f"tuning needs {n_dev} development subjects plus at least 2 pool subjects besides the targets; "
            f"the dataset has {len(others)} non-target subjects."
        )
    dev = others[-n_dev:]
    pool = [s for s in others if s not in dev]
    folds = [
        dataclasses.replace(f, pool=tuple(t for t in f.pool if t.subject in pool))
        for f in population_folds(dataset, task, targets=dev, protocol=protocol)
    ]
    cache: dict = {}

    def score(names: list[str]) -> float:
        cfg = dataclasses.replace(
            apply_candidates(config, candidates, names), methods=(method,), ks=(1, None)
        )
        accs = []
        for fold in folds:
            out = run_fold(fold, cfg, modalities, cache=cache)
            accs += [v["balanced_accuracy"] for cell in out.scores[method].values() for v in cell.values()]
        logger.info("tune %s: %.4f on development subjects %s", " + ".join(names), np.mean(accs), dev)
        return float(np.mean(accs))

    tuned, record = choose_recipe(config, candidates, score)
    record.update(
        dev_subjects=dev,
        pool_subjects=pool,
        objective=f"{method}: mean balanced accuracy over every A->B at k=1 and k=all on the development "
        "subjects' test trials",
    )
    return tuned, record
