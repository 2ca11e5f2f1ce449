"""Experiments: methods (M2S, baselines, ablations), the per-split pipeline and the T × N sweep.

Per split (one subject, or one subject's session or fold; whole trials, see
:mod:`training.protocols`) a pretraining method runs:

1. windows of T vectors from the split's train / val / test trials, z-scored with statistics of the
   training trials only;
2. pretraining on the **training** windows of all modalities (validation and test trials are never
   seen, not even without labels);
3. per training modality A, a classifier on A's frozen embedding (``ExperimentConfig.head``): 'mlp'
   fine-tunes the paper's classifier with epoch selection on the **validation** windows; 'linear'
   fits a :class:`~training.heads.LinearHead` (logistic regression) whose ``C`` is chosen on the
   **validation** windows (:func:`fit_linear_head`);
4. the A→B matrix on the test windows (B's embedder, A's classifier).

The supervised baseline S trains one end-to-end network per modality and reports A→A only.

The classical anchors (kind 'classical', no network; :mod:`training.anchors`) read the window means
of the normalised features (:func:`~training.heads.window_means`) with the same linear head, ``C``
chosen on the validation windows: ``lr`` (logistic regression on A's features, A→A only) and
``cca_lr`` (CCA fitted on the paired training windows of A and its partner
:func:`~training.anchors.cca_partner`, the head on A's projection applied to B's projection; every
A→B).

Methods (:data:`METHODS`): ``m2s`` (all four losses, STS attention), ``clip`` (contrastive only, same
encoders), ``supervised``, the loss ablations ``m2s_no_recon``, ``m2s_no_cpc``, ``m2s_no_club``,
``m2s_no_contra`` (one weight set to 0), the attention variants ``m2s_attention_mha`` and
``m2s_attention_none`` (``m2s`` itself is the STS variant) and the classical anchors ``lr`` and
``cca_lr``.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pydantic as _pyd

from models.config import M2SConfig, ModalityConfig
from signals._checks import check_type, ensure_int
from signals.spec import FeatureSpec as _FeatureSpec
from training.anchors import CcaProjection, cca_partner
from training.datasets.base import EmotionDataset, ModalityInfo
from training.evaluate import _pair_result, evaluate_direct, evaluate_matrix, pair_key, summarise_matrices
from training.finetune import (
    SELECTED_ON_TEST,
    SELECTED_ON_VALIDATION,
    FinetuneConfig,
    embed,
    embed_latent,
    finetune,
    train_supervised,
)
from training.heads import C_GRID, CChoice, LinearHead, best_c, choose_c, window_means
from training.metrics import balanced_accuracy
from training.pretrain import PretrainConfig, pretrain
from training.protocols import Split

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Method:
    """One row of the paper's tables.

    Attributes
    ----------
    name : str
        Key in results (e.g. 'm2s_no_cpc').
    label : str
        Display name, as in the paper ('M2S', 'CLIP', 'S', 'w/o CPC', ...).
    kind : str
        'pretrain' (pretrain → fine-tune → A→B matrix), 'supervised' (end to end, A→A only) or
        'classical' (a linear head on window means of the features, no network).
    overrides : dict
        :class:`M2SConfig` fields this method changes.
    """

    name: str
    label: str
    kind: str
    overrides: Mapping[str, Any] = field(default_factory=dict)


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("m2s", "M2S", "pretrain"),
        Method("clip", "CLIP", "pretrain", {"w_club": 0.0, "w_recon": 0.0, "w_cpc": 0.0}),
        Method("supervised", "S", "supervised"),
        Method("m2s_no_recon", "w/o Recon", "pretrain", {"w_recon": 0.0}),
        Method("m2s_no_cpc", "w/o CPC", "pretrain", {"w_cpc": 0.0}),
        Method("m2s_no_club", "w/o CLUB", "pretrain", {"w_club": 0.0}),
        Method("m2s_no_contra", "w/o Contra", "pretrain", {"w_contra": 0.0}),
        Method("m2s_attention_mha", "MHA attention", "pretrain", {"attention": "mha"}),
        Method("m2s_attention_none", "no attention", "pretrain", {"attention": "none"}),
        Method("lr", "LR", "classical"),
        Method("cca_lr", "CCA-LR", "classical"),
    )
}

#: The classical anchors every benchmark table carries (``m2s-train benchmark`` and ``reproduce``).
CLASSICAL_ANCHORS: tuple[str, ...] = ("lr", "cca_lr")

#: The benchmark's methods: M2S, the two baselines, the four loss ablations and the classical anchors.
BENCHMARK_METHODS: tuple[str, ...] = (
    "m2s",
    "clip",
    "supervised",
    "m2s_no_recon",
    "m2s_no_cpc",
    "m2s_no_club",
    "m2s_no_contra",
    *CLASSICAL_ANCHORS,
)

#: Classifiers a pretraining method can put on the frozen embedding (``ExperimentConfig.head``).
HEADS: tuple[str, ...] = ("mlp", "linear")

_MODEL_FIELDS = {f.name for f in dataclasses.fields(M2SConfig)} - {"modalities", "seq_len"}


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything that defines a run of methods over splits (the data and splits come separately).

    Attributes
    ----------
    seq_len : int
        T, vectors per window (paper: 5).
    stride : int
        Step between window starts (1 = every position, as the paper).
    model : dict
        :class:`M2SConfig` fields other than ``modalities`` and ``seq_len`` (e.g. ``{"d_model": 32,
        "n_blocks": 1, "d_ff": 64}``); unspecified fields keep the reference defaults.
    pretrain : PretrainConfig
    finetune : FinetuneConfig
        Classifier on the frozen embedding (``head='mlp'``); its ``optimistic_test_selection`` also
        moves every linear head's choice of ``C`` onto the test windows.
    supervised : FinetuneConfig
        The supervised baseline S (whole network trained from labels).
    methods : tuple of str
        Keys of :data:`METHODS`.
    train_modalities : tuple of str | None
        Modalities A to fine-tune on (None = all); every modality is always a test modality B.
    n_channels : dict of str to int
        Electrode count per modality where the dataset's feature spec does not tell (see
        :func:`modality_configs`).
    head : str
        Classifier of the pretraining methods on the frozen embedding of A: 'mlp' (the paper's
        EmotionClassifier, fine-tuned with epoch selection on validation) or 'linear' (a
        :class:`~training.heads.LinearHead`, ``C`` chosen on validation; :func:`fit_linear_head`).
    in_modal_features : str
        With ``head='linear'``: features of the A→A head, 'projection' (the shared embedding, as
        A→B) or 'latent' (the mean-pooled ER embedding before the projection, which the contrastive
        loss does not constrain).
    """

    seq_len: int = 5
    stride: int = 1
    model: Mapping[str, Any] = field(default_factory=dict)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    supervised: FinetuneConfig = field(default_factory=lambda: FinetuneConfig(lr=1e-4))
    methods: tuple[str, ...] = ("m2s",)
    train_modalities: tuple[str, ...] | None = None
    n_channels: Mapping[str, int] = field(default_factory=dict)
    head: str = "mlp"
    in_modal_features: str = "projection"

    def __post_init__(self):
        ensure_int(self.seq_len, "seq_len")
        ensure_int(self.stride, "stride")
        if self.seq_len < 1 or self.stride < 1:
            raise ValueError(f"seq_len and stride must be >= 1, got {self.seq_len} and {self.stride}.")
        check_type(self.model, Mapping, "model")
        unknown = sorted(set(self.model) - _MODEL_FIELDS)
        if unknown:
            raise ValueError(
                f"unknown model field(s) {unknown}; allowed: {sorted(_MODEL_FIELDS)} (modalities and "
                "seq_len come from the data and ExperimentConfig.seq_len)."
            )
        check_type(self.pretrain, PretrainConfig, "pretrain")
        check_type(self.finetune, FinetuneConfig, "finetune")
        check_type(self.supervised, FinetuneConfig, "supervised")
        object.__setattr__(self, "methods", tuple(self.methods))
        if not self.methods:
            raise ValueError(f"methods is empty; choose among {', '.join(METHODS)}.")
        bad = [m for m in self.methods if m not in METHODS]
        if bad:
            raise ValueError(f"unknown method(s) {bad}; choose among {', '.join(METHODS)}.")
        if len(set(self.methods)) != len(self.methods):
            raise ValueError(f"methods lists a method twice: {list(self.methods)}.")
        if self.train_modalities is not None:
            object.__setattr__(self, "train_modalities", tuple(self.train_modalities))
        if self.head not in HEADS:
            raise ValueError(f"head must be one of {', '.join(HEADS)}, got {self.head!r}.")
        if self.in_modal_features not in ("projection", "latent"):
            raise ValueError(
                f"in_modal_features must be 'projection' or 'latent', got {self.in_modal_features!r}."
            )
        if self.in_modal_features == "latent" and self.head != "linear":
            raise ValueError(
                "in_modal_features='latent' needs head='linear' (the MLP head reads the projection)."
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict."""
        out = dataclasses.asdict(self)
        out["model"] = dict(self.model)
        out["n_channels"] = dict(self.n_channels)
        return out


# ---------------------------------------------------------------------------------------------- models


def infer_n_channels(name: str, info: ModalityInfo, override: Mapping[str, int] | None = None) -> int | None:
    """Electrode count of a modality, or None for a sequence modality (attended over time).

    Order of evidence: ``override[name]``; the feature spec (DE and PPS specs: one token per input
    channel; eye and HRV specs: sequence); without a spec, 'eye' is a sequence modality and the
    others are electrode modalities: 'pps' when D splits into 6 statistics per channel (DEAP PPS),
    any other when D splits into 5 bands (SEED/DREAMER DE), else 4 bands (DEAP DE).
    """
    override = override or {}
    if name in override:
        return ensure_int(override[name], f"n_channels[{name!r}]")
    spec = info.spec
    if spec is not None:
        kind = getattr(spec, "kind", None)
        if kind in ("de", "pps") and info.dim % len(spec.channels) == 0:
            return len(spec.channels)
        return None
    if name == "eye":
        return None
    for per_channel in (6,) if name == "pps" else (5, 4):
        if info.dim % per_channel == 0 and info.dim > per_channel:
            return info.dim // per_channel
    return None


def modality_configs(
    dataset: EmotionDataset, modalities: Sequence[str], n_channels: Mapping[str, int] | None = None
) -> tuple[ModalityConfig, ...]:
    """:class:`ModalityConfig` of each modality of ``dataset`` (see :func:`infer_n_channels`)."""
    missing = [m for m in modalities if m not in dataset.modalities]
    if missing:
        raise ValueError(f"modalities {missing} are not in the dataset; it has {sorted(dataset.modalities)}.")
    return tuple(
        ModalityConfig(
            name=m,
            dim=dataset.modalities[m].dim,
            n_channels=infer_n_channels(m, dataset.modalities[m], n_channels),
        )
        for m in modalities
    )


def method_model_config(
    method: str, modalities: Sequence[ModalityConfig], config: ExperimentConfig
) -> M2SConfig:
    """The :class:`M2SConfig` a method trains: the experiment's model fields plus the method's overrides."""
    spec = METHODS[method]
    return M2SConfig(
        modalities=tuple(modalities), seq_len=config.seq_len, **{**config.model, **spec.overrides}
    )


# ---------------------------------------------------------------------------------------------- per split


@dataclass
class SplitResult:
    """One method on one split.

    Attributes
    ----------
    split, subject : str
    matrix : dict
        :func:`~training.evaluate.evaluate_matrix` output ("A->B" -> metrics and confusion).
    pretrain_history : list of dict
        Per-epoch losses (empty for the supervised baseline).
    selection : dict
        Training modality -> ``{"best_epoch", "selected_on", "history"}`` (fine-tuned classifiers),
        or for linear heads (classical anchors, ``head='linear'``) ``{"best_epoch": None,
        "selected_on", "c", "scores"}`` (:func:`fit_linear_head`; ``cca_lr`` adds ``"partners"``:
        the record of every CCA partner's head).
    embeddings : dict | None
        When asked for: test-window embeddings per modality (N, proj_dim) plus ``"y"`` (N,).
    seconds : float
    model, classifiers : M2S, dict of str to nn.Module | None
        When asked for (``keep_models``): the pretrained network and the classifier per training
        modality (an EmotionClassifier, or with ``head='linear'`` the head as an ``nn.Linear``), e.g.
        to export a bundle. Classical anchors: ``classifiers`` maps each reported pair "A->B" to the
        :class:`~training.heads.LinearHead` that scored it and, for ``cca_lr``, ``model`` maps it to
        the :class:`~training.anchors.CcaProjection` whose projections the head reads.
    """

    split: str
    subject: str
    matrix: dict[str, dict[str, Any]]
    pretrain_history: list[dict[str, float]] = field(default_factory=list)
    selection: dict[str, dict[str, Any]] = field(default_factory=dict)
    embeddings: dict[str, np.ndarray] | None = None
    seconds: float = 0.0
    model: Any = None
    classifiers: dict[str, Any] | None = None


def _pair(windows, modality):
    return (windows.x[modality], windows.y) if len(windows) else None


#: ``selected_on`` of a linear head whose ``C`` was chosen leave-one-trial-out (no validation trials).
SELECTED_ON_TRAINING_TRIALS = "leave-one-trial-out on the training trials (no validation trials)"


def fit_linear_head(
    z_train: np.ndarray,
    y_train: np.ndarray,
    groups: Sequence[str],
    n_classes: int,
    *,
    val: tuple[np.ndarray, np.ndarray] | None = None,
    test: tuple[np.ndarray, np.ndarray] | None = None,
    optimistic: bool = False,
    grid: Sequence[float] = C_GRID,
) -> tuple[LinearHead, dict[str, Any]]:
    """A :class:`~training.heads.LinearHead` on fixed training features, its ``C`` chosen without test data.

    With validation windows, each ``C`` of ``grid`` is fitted on the training windows and scored by
    balanced accuracy on the validation windows; the best wins (ties: the smaller ``C``, the stronger
    regularisation). Without them, :func:`~training.heads.choose_c` leave-one-trial-out over the
    training windows (``groups``: each window's trial). Only ``optimistic`` (the reference protocol,
    ``FinetuneConfig.optimistic_test_selection``) scores the candidates on ``test`` instead, labelled
    :data:`~training.finetune.SELECTED_ON_TEST`.

    Parameters
    ----------
    z_train : array, shape (N, F)
    y_train : array of int, shape (N,)
    groups : sequence of str, length N
        Trial of each training window.
    n_classes : int
    val, test : (features (M, F), labels (M,)) | None
    optimistic : bool
    grid : sequence of float

    Returns
    -------
    head : LinearHead
        Fitted on all training windows with the chosen ``C``.
    record : dict
        ``{"best_epoch": None, "selected_on": str, "c": float, "scores": {C: score}}`` (no epochs:
        the fit is convex; ``scores`` empty when nothing could be scored).
    """
    if optimistic:
        if test is None:
            raise ValueError("optimistic selection needs the test windows.")
        held, selected_on = test, SELECTED_ON_TEST
    else:
        held, selected_on = val, SELECTED_ON_VALIDATION
    if held is None:
        choice = choose_c(
            z_train, y_train, groups, n_classes, grid=grid, selected_on=SELECTED_ON_TRAINING_TRIALS
        )
        head = LinearHead(n_classes, choice.c).fit(z_train, y_train)
    else:
        z_held, y_held = held
        heads, scores = {}, {}
        for c in grid:
            heads[float(c)] = LinearHead(n_classes, float(c)).fit(z_train, y_train)
            scores[float(c)] = balanced_accuracy(y_held, heads[float(c)].predict(z_held), n_classes)
        chosen = best_c(scores)
        choice, head = CChoice(chosen, scores, selected_on), heads[chosen]
    record = {
        "best_epoch": None,
        "selected_on": choice.selected_on,
        "c": float(choice.c),
        "scores": {float(c): float(v) for c, v in choice.scores.items()},
    }
    return head, record


def _trial_ids(windows) -> list[str]:
    return ["/".join(str(p) for p in key) for key in windows.trial_keys]


def _run_classical(method, wins, train_mods, names, n_classes, optimistic, result, keep_models) -> None:
    """``lr`` / ``cca_lr`` on one split's windows (see the module docstring); fills ``result``."""
    heads: dict[str, LinearHead] = {}
    projections: dict[str, CcaProjection] = {}
    means = {p: {m: window_means(w.x[m]) for m in names} if len(w) else None for p, w in wins.items()}
    y = {p: w.y for p, w in wins.items()}
    groups = _trial_ids(wins["train"])

    def fit(a, feature):  # feature(m, window means of m) -> the head's input
        tr = feature(a, means["train"][a])
        va = None if means["val"] is None else (feature(a, means["val"][a]), y["val"])
        te = (feature(a, means["test"][a]), y["test"])
        return fit_linear_head(tr, y["train"], groups, n_classes, val=va, test=te, optimistic=optimistic)

    for a in train_mods:
        if method == "lr":
            head, record = fit(a, lambda m, z: z)
            y_pred = head.predict(means["test"][a])
            result.matrix[pair_key(a, a)] = _pair_result(y["test"], y_pred, n_classes)
            result.selection[a] = record
            heads[pair_key(a, a)] = head
            continue
        # cca_lr: one CCA (and head) per partner of A; A->A uses the partner cca_partner names.
        fitted: dict[str, tuple[CcaProjection, LinearHead, dict[str, Any]]] = {}
        for b in names:
            partner = cca_partner(a, b, names)
            if partner not in fitted:
                cca = CcaProjection.fit(a, partner, means["train"][a], means["train"][partner])
                head, record = fit(a, cca.transform)
                fitted[partner] = (cca, head, {**record, "n_components": cca.n_components})
            cca, head, _ = fitted[partner]
            y_pred = head.predict(cca.transform(b, means["test"][b]))
            result.matrix[pair_key(a, b)] = _pair_result(y["test"], y_pred, n_classes)
            heads[pair_key(a, b)], projections[pair_key(a, b)] = head, cca
        own = fitted[cca_partner(a, a, names)][2]
        result.selection[a] = {
            **{k: own[k] for k in ("best_epoch", "selected_on", "c", "scores")},
            "partner": cca_partner(a, a, names),
            "partners": {p: rec for p, (_, _, rec) in fitted.items()},
        }
    if keep_models:
        result.classifiers, result.model = heads, projections or None


def run_split(
    split: Split,
    method: str,
    config: ExperimentConfig,
    modalities: Sequence[ModalityConfig],
    *,
    out_dir: str | Path | None = None,
    keep_embeddings: bool = False,
    keep_models: bool = False,
) -> SplitResult:
    """Run one method on one split (see the module docstring for the steps).

    Parameters
    ----------
    split : Split
    method : str
        Key of :data:`METHODS`.
    config : ExperimentConfig
    modalities : sequence of ModalityConfig
        The paired modalities (all are test modalities; fine-tuned are
        ``config.train_modalities`` or all).
    out_dir : path | None
        Where the pretraining checkpoint goes (None: no checkpoint; unused by the supervised and
        classical methods).
    keep_embeddings : bool
        Also return the test windows' embeddings (for the embedding plot; pretraining methods).
    keep_models : bool
        Also return the pretrained model and the classifiers (pretraining methods; for the classical
        anchors the heads and CCA projections, see :class:`SplitResult`).

    Returns
    -------
    SplitResult
    """
    check_type(split, Split, "split")
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose among {', '.join(METHODS)}.")
    t0 = time.perf_counter()
    names = [m.name for m in modalities]
    train_mods = list(config.train_modalities or names)
    unknown = [a for a in train_mods if a not in names]
    if unknown:
        raise ValueError(f"train_modalities {unknown} are not among the modalities {names}.")
    wins = {
        p: split.windows(p, config.seq_len, modalities=names, stride=config.stride)
        for p in ("train", "val", "test")
    }
    if len(wins["train"]) < 2 or len(wins["test"]) == 0:
        raise ValueError(
            f"split {split.name!r} has {len(wins['train'])} training and {len(wins['test'])} test windows of "
            f"T={config.seq_len}; the trials are too short for this seq_len."
        )
    n_classes = split.task.n_classes
    spec = METHODS[method]
    result = SplitResult(split=split.name, subject=split.subject, matrix={})
    optimistic = config.finetune.optimistic_test_selection
    if spec.kind == "classical":
        _run_classical(method, wins, train_mods, names, n_classes, optimistic, result, keep_models)
        result.seconds = time.perf_counter() - t0
        _log_result(method, split, result)
        return result
    model_config = method_model_config(method, modalities, config)
    if spec.kind == "supervised":
        nets = {}
        for a in train_mods:
            single = dataclasses.replace(model_config, modalities=(model_config.modality(a),))
            fr = train_supervised(
                single, a, _pair(wins["train"], a), _pair(wins["val"], a), n_classes, config.supervised,
                test=_pair(wins["test"], a),
            )  # fmt: skip
            nets[a] = fr.classifier
            result.selection[a] = {
                "best_epoch": fr.best_epoch,
                "selected_on": fr.selected_on,
                "history": fr.history,
            }
        result.matrix = evaluate_direct(nets, wins["test"].x, wins["test"].y, n_classes)
    else:
        pr = pretrain(
            model_config,
            wins["train"].x,
            config.pretrain,
            out_dir=None if out_dir is None else Path(out_dir),
            extra={
                "split": split.name,
                "normaliser": split.normaliser.to_dict(),
                "task": split.task.to_dict(),
            },
        )
        result.pretrain_history = pr.history
        classifiers = {}
        if config.head == "linear":
            _linear_heads(
                pr.model, wins, train_mods, names, n_classes, optimistic, result, classifiers,
                config.in_modal_features,
            )  # fmt: skip
        else:
            for a in train_mods:
                fr = finetune(
                    pr.model, a, _pair(wins["train"], a), _pair(wins["val"], a), n_classes, config.finetune,
                    test=_pair(wins["test"], a),
                )  # fmt: skip
                classifiers[a] = fr.classifier
                result.selection[a] = {
                    "best_epoch": fr.best_epoch,
                    "selected_on": fr.selected_on,
                    "history": fr.history,
                }
            result.matrix = evaluate_matrix(pr.model, classifiers, wins["test"].x, wins["test"].y, n_classes)
        if keep_models:
            result.model, result.classifiers = pr.model, classifiers
        if keep_embeddings:
            result.embeddings = {
                b: embed(pr.model.embedder(b), wins["test"].x[b]).cpu().numpy() for b in names
            }
            result.embeddings["y"] = wins["test"].y.copy()
    result.seconds = time.perf_counter() - t0
    _log_result(method, split, result)
    return result


def _log_result(method: str, split: Split, result: SplitResult) -> None:
    logger.info(
        "%s on %s: %s (%.1f s)",
        method,
        split.name,
        ", ".join(f"{k} {v['balanced_accuracy']:.3f}" for k, v in result.matrix.items()),
        result.seconds,
    )


def _linear_heads(
    model, wins, train_mods, names, n_classes, optimistic, result, classifiers, in_modal_features="projection"
) -> None:
    """``head='linear'``: a LinearHead per training modality A on A's frozen embedding, A→B on B's embedding.

    With ``in_modal_features='latent'`` the A→A cell comes from a second head on A's mean-pooled ER
    embedding before the projection (:func:`~training.finetune.embed_latent`; its choice under
    ``selection[A]["in_modal"]``, its ``nn.Linear`` under ``classifiers["A->A"]``).
    Fills ``result.selection``, ``result.matrix`` and ``classifiers`` (each head as an ``nn.Linear``
    on its features, on the model's device).
    """

    def z(m, part, featurise=embed):
        if not len(wins[part]):
            return None
        return featurise(model.embedder(m), wins[part].x[m]).cpu().numpy().astype(np.float64)

    groups = _trial_ids(wins["train"])
    device = next(model.parameters()).device

    def fit(a, featurise, z_test_a):
        z_val = z(a, "val", featurise)
        return fit_linear_head(
            z(a, "train", featurise), wins["train"].y, groups, n_classes,
            val=None if z_val is None else (z_val, wins["val"].y), test=(z_test_a, wins["test"].y),
            optimistic=optimistic,
        )  # fmt: skip

    z_test = {b: z(b, "test") for b in names}
    for a in train_mods:
        head, result.selection[a] = fit(a, embed, z_test[a])
        classifiers[a] = head.to_torch().to(device)
        for b in names:
            result.matrix[pair_key(a, b)] = _pair_result(wins["test"].y, head.predict(z_test[b]), n_classes)
        if in_modal_features == "latent":
            z_own = z(a, "test", embed_latent)
            own, record = fit(a, embed_latent, z_own)
            result.selection[a]["in_modal"] = {**record, "features": "latent"}
            classifiers[pair_key(a, a)] = own.to_torch().to(device)
            result.matrix[pair_key(a, a)] = _pair_result(wins["test"].y, own.predict(z_own), n_classes)


# ---------------------------------------------------------------------------------------------- experiments


@dataclass
class MethodResult:
    """One method over all splits: per-split results and the mean/std summary."""

    method: str
    splits: list[SplitResult]
    summary: dict[str, dict[str, Any]]

    @property
    def label(self) -> str:
        """Display name."""
        return METHODS[self.method].label


def run_methods(
    splits: Sequence[Split],
    config: ExperimentConfig,
    modalities: Sequence[ModalityConfig],
    *,
    out_dir: str | Path | None = None,
    embeddings_for: str | None = "m2s",
    on_result: Callable[[str, SplitResult], None] | None = None,
) -> dict[str, MethodResult]:
    """Run every method of ``config.methods`` on every split.

    Parameters
    ----------
    splits : sequence of Split
    config : ExperimentConfig
    modalities : sequence of ModalityConfig
    out_dir : path | None
        Checkpoints go to ``out_dir/checkpoints/<method>/<split>/``.
    embeddings_for : str | None
        Keep the test embeddings of the FIRST split for this method (embedding plot).
    on_result : callable | None
        Called with (method, SplitResult) after each split (progress reporting).

    Returns
    -------
    dict of str to MethodResult, in ``config.methods`` order
    """
    if not splits:
        raise ValueError("no splits to run; check the subjects and the protocol.")
    results = {}
    for method in config.methods:
        per_split = []
        for i, split in enumerate(splits):
            ckpt_dir = None
            if out_dir is not None and METHODS[method].kind == "pretrain":
                ckpt_dir = (
                    Path(out_dir) / "checkpoints" / method / split.name.replace("/", "_").replace("=", "-")
                )
            r = run_split(
                split,
                method,
                config,
                modalities,
                out_dir=ckpt_dir,
                keep_embeddings=(i == 0 and method == embeddings_for),
            )
            per_split.append(r)
            if on_result is not None:
                on_result(method, r)
        results[method] = MethodResult(method, per_split, summarise_matrices([r.matrix for r in per_split]))
    return results


def run_tn_sweep(
    splits: Sequence[Split],
    config: ExperimentConfig,
    modalities: Sequence[ModalityConfig],
    *,
    seq_lens: Sequence[int] = (3, 4, 5, 6, 7),
    cpc_steps: Sequence[int] = (1, 2, 3, 4, 5),
    method: str = "m2s",
) -> dict[str, Any]:
    """The T × N sweep of the paper's Fig. 5: ``method`` for every window length T and CPC step N.

    Combinations with ``T < N + 2`` (M2M CPC needs at least two context steps) are skipped.

    Returns
    -------
    sweep : dict
        ``{"seq_lens": [...], "cpc_steps": [...], "cells": {"T=5,N=1": summary}}`` where each summary
        is :func:`~training.evaluate.summarise_matrices` output.
    """
    cells: dict[str, Any] = {}
    for t in seq_lens:
        for n in cpc_steps:
            if t < n + 2:
                continue
            cfg = dataclasses.replace(
                config, seq_len=int(t), model={**config.model, "cpc_steps": int(n)}, methods=(method,)
            )
            res = run_methods(splits, cfg, modalities, embeddings_for=None)[method]
            cells[f"T={t},N={n}"] = res.summary
    return {"seq_lens": [int(t) for t in seq_lens], "cpc_steps": [int(n) for n in cpc_steps], "cells": cells}


# ---------------------------------------------------------------------------------------------- benchmark


def _default_synthetic():
    from synthetic import SyntheticConfig

    # The issue asks for the default synthetic config itself (15 subjects x 15 trials x 60 s).
    return SyntheticConfig()


def _default_model() -> dict[str, Any]:
    return {
        "d_model": 32,
        "n_blocks": 1,
        "d_ff": 64,
        "head_dim": 16,
        "d_ei": 32,
        "cpc_hidden": 32,
        "club_hidden": 32,
    }


class SyntheticBenchmarkData(_pyd.BaseModel):
    """The generated data of a synthetic benchmark, shared by both regimes' configs (JSON-loadable)."""

    model_config = _pyd.ConfigDict(frozen=True, extra="forbid")

    synthetic: Any = _pyd.Field(
        default_factory=_default_synthetic,
        description="synthetic.SyntheticConfig of the generated data (JSON object of its fields).",
    )
    modalities: tuple[str, ...] = _pyd.Field(("eeg", "eye"), min_length=2, description="Paired modalities.")
    hop_s: float = _pyd.Field(2.0, gt=0, description="Seconds between feature vectors (all modalities).")
    specs: dict[str, _FeatureSpec] = _pyd.Field(
        default_factory=dict,
        description="Whole FeatureSpec per modality, replacing the synthetic loader's default (its hop too).",
    )
    spec_overrides: dict[str, dict[str, float]] = _pyd.Field(
        default_factory=dict,
        description="Per modality, spec fields replaced, e.g. {'eeg': {'window_s': 4.0}} (after hop_s and specs).",
    )
    n_jobs: int = _pyd.Field(2, ge=1, description="Processes for data generation and features.")

    @_pyd.field_validator("synthetic", mode="before")
    @classmethod
    def _synthetic(cls, value):
        from synthetic import SyntheticConfig

        if isinstance(value, SyntheticConfig):
            return value
        if isinstance(value, Mapping):
            return SyntheticConfig.model_validate(dict(value))
        raise ValueError("synthetic must be an object of SyntheticConfig fields")

    @_pyd.field_serializer("synthetic")
    def _dump_synthetic(self, value):
        return value.model_dump(mode="json")

    @classmethod
    def from_json(cls, path: str | Path):
        """Load a benchmark config file; errors name the file and the field."""
        path = Path(check_type(path, (str, Path), "path"))
        if not path.is_file():
            raise FileNotFoundError(f"benchmark config {str(path)!r} does not exist.")
        try:
            return cls.model_validate_json(path.read_text(encoding="utf-8"))
        except _pyd.ValidationError as err:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors())
            raise ValueError(f"benchmark config {str(path)!r} is invalid: {problems}.") from None

    def load_dataset(self):
        """Generate the synthetic subjects and featurise them with ``signals`` (an EmotionDataset)."""
        from training.datasets import synthetic

        return synthetic.load(
            self.synthetic, modalities=list(self.modalities), hop_s=self.hop_s, n_jobs=self.n_jobs,
            specs=self.specs, spec_overrides=self.spec_overrides,
        )  # fmt: skip


def _subject_default_model() -> dict[str, Any]:
    # w_contra 0.3: chosen by `--tune` on validation trials (see SUBJECT_RECIPE).
    return {**_default_model(), "w_contra": 0.3}


#: How the subject benchmark's defaults were chosen: ``m2s-train benchmark --tune`` (greedy search on
#: the validation trials of 5 splits, never the test trials) from the step-budgeted recipe (≥ 400 steps,
#: batch ≤ 128 and ≤ 0.25 of the windows, 40 warm-up steps) picked these two changes.
SUBJECT_RECIPE = "w_contra=0.3 + in-modal head on the latent"


class BenchmarkConfig(SyntheticBenchmarkData):
    """The synthetic benchmark, JSON-loadable (``m2s-train benchmark --config FILE``).

    Every field is optional; missing ones take these defaults: the step-budgeted recipe with the
    choices of ``--tune`` (:data:`SUBJECT_RECIPE`), a small network chosen for time (the default run
    took 26.5 minutes on 2 CPU cores; see docs/guides/reproduce-paper.md). ``head='mlp'`` (whose in-modal
    features are then the projection), ``model.w_contra=1`` and ``pretrain_min_steps=0`` give the
    paper's protocol.
    """

    seq_len: int = _pyd.Field(5, ge=1, description="T, feature vectors per window.")
    cpc_steps: int = _pyd.Field(1, ge=1, description="N, M2M CPC prediction steps.")
    model: dict[str, Any] = _pyd.Field(
        default_factory=_subject_default_model, description="M2SConfig fields (network size, loss weights)."
    )
    pretrain_epochs: int = _pyd.Field(40, ge=1)
    pretrain_batch_size: int = _pyd.Field(128, ge=2)
    pretrain_lr: float = _pyd.Field(1e-3, gt=0)
    pretrain_min_steps: int = _pyd.Field(
        400, ge=0, description="Pretraining makes at least this many optimiser steps (0: epochs only)."
    )
    warmup_steps: int = _pyd.Field(40, ge=0, description="Linear learning-rate warm-up steps of pretraining.")
    max_batch_fraction: float = _pyd.Field(
        0.25,
        gt=0,
        le=1,
        description="A pretraining batch holds at most this fraction of the training windows.",
    )
    finetune_epochs: int = _pyd.Field(60, ge=1)
    finetune_batch_size: int = _pyd.Field(64, ge=2)
    finetune_lr: float = _pyd.Field(1e-3, gt=0)
    supervised_epochs: int = _pyd.Field(60, ge=1)
    supervised_lr: float = _pyd.Field(1e-3, gt=0)
    patience: int = _pyd.Field(15, ge=0, description="Early-stopping patience on the validation split.")
    head: Literal["mlp", "linear"] = _pyd.Field(
        "linear",
        description="Classifier of the pretraining methods on the frozen embedding: 'mlp' (fine-tuned "
        "EmotionClassifier) or 'linear' (logistic regression, C chosen on the validation trials).",
    )
    in_modal_features: Literal["projection", "latent"] = _pyd.Field(
        "latent",
        description="With head='linear': features of the A->A head, the shared projection or the "
        "mean-pooled encoder output before it ('latent').",
    )
    tune: bool = _pyd.Field(
        False, description="Choose M2S's recipe among training.tuning.SUBJECT_TUNE_CANDIDATES first."
    )
    tune_splits: int = _pyd.Field(
        5, ge=1, description="Splits whose validation trials score each tuning candidate."
    )
    methods: tuple[str, ...] = _pyd.Field(BENCHMARK_METHODS, min_length=1)
    protocol: str = _pyd.Field("fraction:0.6", description="Split protocol (training.protocols).")
    val_per_class: int = _pyd.Field(
        1, ge=0, description="Whole training trials per class held out for validation."
    )
    seed: int = _pyd.Field(0, ge=0)
    device: str = "auto"

    def experiment(self, progress: bool | None = None) -> ExperimentConfig:
        """The :class:`ExperimentConfig` this benchmark runs."""
        return ExperimentConfig(
            seq_len=self.seq_len,
            model={**self.model, "cpc_steps": self.cpc_steps},
            pretrain=PretrainConfig(
                epochs=self.pretrain_epochs, batch_size=self.pretrain_batch_size, lr=self.pretrain_lr,
                estimator_lr=self.pretrain_lr, seed=self.seed, device=self.device, progress=progress,
                min_steps=self.pretrain_min_steps, warmup_steps=self.warmup_steps,
                max_batch_fraction=self.max_batch_fraction,
            ),
            finetune=FinetuneConfig(
                epochs=self.finetune_epochs, batch_size=self.finetune_batch_size, lr=self.finetune_lr,
                patience=self.patience, seed=self.seed, device=self.device, progress=progress,
            ),
            supervised=FinetuneConfig(
                epochs=self.supervised_epochs, batch_size=self.finetune_batch_size, lr=self.supervised_lr,
                patience=self.patience, seed=self.seed, device=self.device, progress=progress,
            ),
            methods=self.methods,
            head=self.head,
            # the latent default belongs to the linear head; a config asking for 'mlp' means projection
            in_modal_features=self.in_modal_features
            if self.head == "linear" or "in_modal_features" in self.model_fields_set
            else "projection",
        )  # fmt: skip


def run_benchmark(
    config: BenchmarkConfig | None = None, out_dir: str | Path = "benchmark", *, progress: bool | None = None
) -> dict[str, Path]:
    """Generate synthetic data, featurise it with ``signals``, run every method and write the report.

    Parameters
    ----------
    config : BenchmarkConfig | None
        None = the defaults.
    out_dir : path
        Receives results.json, details.json, report.md and the figures.
    progress : bool | None
        Progress bars (None: when stderr is a terminal).

    Returns
    -------
    dict of str to Path
        As :func:`training.reports.write_report`.
    """
    from training.protocols import make_task, subject_dependent_splits
    from training.reports import write_report

    config = BenchmarkConfig() if config is None else check_type(config, BenchmarkConfig, "config")
    exp = config.experiment(progress)  # validates the model fields before the slow part
    t0 = time.perf_counter()
    dataset = config.load_dataset()
    t_data = time.perf_counter() - t0
    task = make_task(dataset, "emotion")
    splits = subject_dependent_splits(
        dataset, task, protocol=config.protocol, val_per_class=config.val_per_class, seed=config.seed
    )
    mods = modality_configs(dataset, config.modalities, exp.n_channels)
    tuning = None
    if config.tune:
        from training.tuning import tune_subject

        exp, tuning = tune_subject(splits, exp, mods, n_splits=config.tune_splits)
    results = run_methods(splits, exp, mods)
    seconds = time.perf_counter() - t0
    meta = {
        "dataset": f"synthetic ({config.synthetic.n_subjects} subjects × {config.synthetic.n_sessions} session(s) × "
        f"{config.synthetic.n_trials} trials × {config.synthetic.trial_duration_s:g} s, seed {config.synthetic.seed})",
        "modalities": ", ".join(
            f"{m.name} (D={m.dim}, {'C=' + str(m.n_channels) if m.n_channels else 'sequence'})" for m in mods
        ),
        "protocol": f"{config.protocol}, {config.val_per_class} validation trial(s) per class, {len(splits)} splits",
        "windows": f"T={config.seq_len}, N={config.cpc_steps}; features "
        + ", ".join(
            f"{m} {info.spec.window_s:g}-s windows every {info.spacing_s:g} s"
            for m, info in dataset.modalities.items()
        ),
        "data generation + features (s)": f"{t_data:.1f}",
        "wall time (s)": f"{seconds:.1f}",
    }
    logger.info("benchmark finished in %.1f s (data %.1f s)", seconds, t_data)
    return write_report(
        out_dir,
        results,
        class_names=task.class_names,
        config={"benchmark": config.model_dump(mode="json"), "experiment": exp.to_dict()},
        meta=meta,
        title="M2S synthetic benchmark",
        tuning=tuning,
    )
