"""``m2s-train adapt RECORDING --base NAME[:VERSION] --participant P``: adapt a bundle's encoders to one person.

The live service's calibration fits a head on the base bundle's frozen encoders (``method='head'``).
Adaptation goes one step further, offline, from a recording of the participant (the XDF file the
service records: one stream per modality as its LSL source sent it, plus the marker stream):

1. **Read** the recording through the one recording loader
   (:func:`training.datasets.recordings.load_recording`) with the base bundle's feature specs, so
   the features are exactly those the service computes. Each of the base's modalities is read from
   the one stream carrying its spec's channels (``picks`` overrides); a modality no stream carries is
   skipped with a note. Pretraining pairs modalities, so at least two are needed.
2. **Split by whole trial** (:func:`split_trials`): the held-out trials are those whose JSON onset
   says ``"phase": "test"``; without phases, the last trial of each class (:data:`HOLDOUT_RULE`).
   Nothing is fitted, chosen or normalised on held-out trials.
3. **Normalise** with the participant's statistics of the adaptation trials
   (:meth:`training.protocols.normaliser.Normaliser.fit`, the one statistics function); the
   exported bundle carries them.
4. **Pretrain** from the base bundle's weights (``m2s.pt``, :func:`training.export.load_bundle_model`)
   with the M2S losses on the adaptation trials' paired, unlabelled windows
   (:func:`training.pretrain.pretrain` with ``initial_state``; a small step budget: the data is a few
   minutes). With fewer modalities than the base, the network keeps the recorded ones (the CPC
   predictors keep the columns of their context).
5. **Heads**: logistic regression on the frozen embeddings of the adaptation trials, ``C`` and the
   validation by leave-one-trial-out: the live calibration's own procedure
   (:func:`service.calibration.fit.fit_heads`). ``train_modality`` fits one head serving every
   modality (cross-modal); by default each modality its own.
6. **Evaluate** on the held-out trials (balanced accuracy): the base bundle as it serves (its
   statistics and heads, ONNX Runtime), head-only calibration (base encoders, participant statistics,
   heads fitted the same way on the same trials) and the adapted model, each head on every modality.
7. **Export** the next version of ``<base>-<participant>`` (one version sequence with the service's
   head-only calibrations) through :func:`training.export.export_bundle` (ONNX parity checks), with
   the adapted weights and a ``calibration`` provenance with ``method='adapted'``; written in a
   temporary folder and renamed into place, so a polling service never sees half a version.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models.bundle import CalibrationProvenance
from models.calibrated import (
    LinearHeadWeights,
    calibrated_name,
    default_calibrated_repository,
    head_graph,
    publish_next_version,
)
from models.repository import DEFAULT_REPOSITORY, Bundle, ModelRepository
from signals._checks import check_range, ensure_int

logger = logging.getLogger(__name__)

#: How held-out trials are chosen when the markers carry no phase.
HOLDOUT_RULE = "the last trial of each class (the markers carry no phase)"
#: Participant ids: those the live service accepts (CalibrationProvenance.participant).
_PARTICIPANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
MODEL_REPOSITORY_ENV = "M2S_MODEL_REPOSITORY"
CALIBRATED_REPOSITORY_ENV = "M2S_CALIBRATED_REPOSITORY"


@dataclass(frozen=True)
class AdaptConfig:
    """Settings of the adaptation's pretraining (the rest follows the base bundle).

    Attributes
    ----------
    steps : int
        Optimiser steps of M2S pretraining on the participant's windows (at least this many).
    lr : float
        Adam learning rate of the encoders and of the CLUB estimators (constant after warm-up, cosine).
    batch_size : int
        Windows per step, capped at ``max_batch_fraction`` of the windows.
    max_batch_fraction : float
        In (0, 1]; see :class:`training.pretrain.PretrainConfig`.
    warmup_steps : int
        Linear warm-up steps (at most a tenth of ``steps`` is used).
    seed : int
        Seed of pretraining (batch order, dropout).
    device : str
        'auto' (CUDA when available), 'cpu', 'cuda' or 'cuda:N'.
    progress : bool | None
        Progress bars (None: on a terminal).
    """

    steps: int = 200
    lr: float = 1e-4
    batch_size: int = 64
    max_batch_fraction: float = 0.25
    warmup_steps: int = 20
    seed: int = 0
    device: str = "auto"
    progress: bool | None = False

    def __post_init__(self):
        for name in ("steps", "batch_size", "warmup_steps", "seed"):
            ensure_int(getattr(self, name), name)
        if self.steps < 1 or self.batch_size < 2 or self.warmup_steps < 0 or self.seed < 0:
            raise ValueError(
                f"steps must be >= 1, batch_size >= 2, warmup_steps and seed >= 0; got steps={self.steps}, "
                f"batch_size={self.batch_size}, warmup_steps={self.warmup_steps}, seed={self.seed}."
            )
        check_range(self.lr, "lr", low=0, low_inclusive=False)

    def pretrain_config(self):
        """The :class:`~training.pretrain.PretrainConfig` of the adaptation's pretraining."""
        from training.pretrain import PretrainConfig

        return PretrainConfig(
            epochs=1, batch_size=self.batch_size, lr=self.lr, estimator_lr=self.lr, seed=self.seed,
            device=self.device, progress=self.progress, min_steps=self.steps,
            warmup_steps=min(self.warmup_steps, self.steps // 10), max_batch_fraction=self.max_batch_fraction,
        )  # fmt: skip


@dataclass(frozen=True)
class TrialSplit:
    """Trials of a recording by role (``Trial.trial`` numbers, recording order).

    Attributes
    ----------
    adaptation : tuple of int
        Trials that adapt: normalisation, pretraining and heads.
    held_out : tuple of int
        Trials only ever scored.
    rule : str
        How ``held_out`` was chosen.
    """

    adaptation: tuple[int, ...]
    held_out: tuple[int, ...]
    rule: str


def split_trials(labels: Mapping[int, int], phases: Mapping[int, str | None]) -> TrialSplit:
    """Split labelled trials into adaptation and held-out trials, by whole trial.

    Parameters
    ----------
    labels : dict of int to int
        Trial number -> class index, in recording order.
    phases : dict of int to str | None
        Trial number -> the marker's ``"phase"`` (``"calibration"``, ``"test"`` or None).

    Returns
    -------
    TrialSplit
        When any trial has a phase: held out = phase ``"test"``, adaptation = every other trial.
        Otherwise :data:`HOLDOUT_RULE`: held out = the last trial of each class.
    """
    trials = list(labels)
    if any(phases.get(t) is not None for t in trials):
        held = tuple(t for t in trials if phases.get(t) == "test")
        rule = "the trials whose marker phase is 'test'"
    else:
        last = {labels[t]: t for t in trials}  # recording order: the last one of each class wins
        held = tuple(t for t in trials if last[labels[t]] == t)
        rule = HOLDOUT_RULE
    return TrialSplit(tuple(t for t in trials if t not in held), held, rule)


@dataclass
class AdaptResult:
    """What :func:`adapt` returns.

    Attributes
    ----------
    bundle : Bundle
        The exported, verified bundle.
    evaluation : dict
        Held-out balanced accuracy: ``base``, ``head_only`` and ``adapted`` (see :func:`adapt`).
    notes : list of str
        What was skipped and why.
    seconds : float
        Wall time of the whole adaptation.
    """

    bundle: Bundle
    evaluation: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


def check_participant(participant: str) -> str:
    """``participant`` if it is a valid id (the live service's rule), else ValueError saying the rule."""
    if not isinstance(participant, str) or not _PARTICIPANT.match(participant):
        raise ValueError(
            f"participant {participant!r} is not a valid id: 1 to 64 letters, digits, '_' or '-', starting "
            "with a letter or digit (e.g. 'p01')."
        )
    return participant


def default_repositories(repository: str | Path | None, into: str | Path | None) -> tuple[Path, Path]:
    """The base repository and the calibrated repository, resolved as the live service does.

    Base: ``repository``, else ``$M2S_MODEL_REPOSITORY``, else the project's ``models/repository``.
    Calibrated: ``into``, else ``$M2S_CALIBRATED_REPOSITORY``, else ``calibrated/`` beside the base
    repository (:func:`models.calibrated.default_calibrated_repository`).
    """
    base = Path(repository or os.environ.get(MODEL_REPOSITORY_ENV) or DEFAULT_REPOSITORY)
    target = into or os.environ.get(CALIBRATED_REPOSITORY_ENV)
    return base, Path(target) if target else default_calibrated_repository(base)


def _sub_state(model, keep: Sequence[str]):
    """The base network restricted to the modalities ``keep``: (M2SConfig, state dict).

    Modules of other modalities are dropped; each CPC predictor keeps the columns of the kept
    modalities' context (the context concatenates the modalities' LSTM outputs in config order).
    """
    config = model.config
    names = list(config.names)
    if list(keep) == names:
        return config, model.state_dict()
    sub = dataclasses.replace(config, modalities=tuple(m for m in config.modalities if m.name in keep))
    hidden = config.cpc_hidden
    cols = np.concatenate(
        [np.arange(names.index(m) * hidden, (names.index(m) + 1) * hidden) for m in sub.names]
    )
    state = {}
    for key, value in model.state_dict().items():
        parts = key.split(".")
        owner = next((p for p in parts if p in names), None)
        if owner is not None and owner not in keep:
            continue
        if key.startswith("cpc.predictors.") and key.endswith(".weight"):
            value = value[:, cols].clone()
        state[key] = value
    return sub, state


def _labelled(model, windows, modalities, trial_of):
    """Per modality the :class:`LabelledEmbeddings` of ``windows`` through ``model``'s embedders."""
    from service.calibration.fit import LabelledEmbeddings
    from training.finetune import embed

    trials = np.array([trial_of(k) for k in windows.trial_keys], dtype=np.int64)
    return {
        m: LabelledEmbeddings(
            embed(model.embedder(m), windows.x[m]).cpu().numpy().astype(np.float64), windows.y, trials
        )
        for m in modalities
    }


def _own_heads(data: Mapping[str, Any], n_classes: int) -> dict[str, LinearHeadWeights]:
    """Each modality's head as :func:`service.calibration.fit.fit_heads` fits it (:func:`~service.calibration.fit.
    fit_head`), without the nested validation."""
    from service.calibration.fit import fit_head

    return {m: fit_head(d, n_classes)[0] for m, d in data.items()}


def _bacc(y, pred, n_classes) -> float:
    from training.metrics import balanced_accuracy

    return float(balanced_accuracy(y, pred, n_classes))


def _matrix(heads: Mapping[str, LinearHeadWeights], held: Mapping[str, Any], n_classes: int) -> dict:
    """``"A->B"``: balanced accuracy of the head fitted on A on B's held-out embeddings."""
    return {
        f"{a}->{b}": _bacc(d.y, head.probabilities(d.z).argmax(axis=1), n_classes)
        for a, head in heads.items()
        for b, d in held.items()
    }


def _base_scores(base: Bundle, trials, task, modalities) -> dict[str, float]:
    """The base bundle as it serves (its statistics and heads, ONNX Runtime) on ``trials``, per modality."""
    import onnxruntime as ort

    from training.protocols.normaliser import Normaliser
    from training.protocols.windows import make_windows

    graphs = base.manifest.graphs
    norm = Normaliser(
        mean={m: graphs[m].normalisation.mean_array for m in modalities},
        std={m: graphs[m].normalisation.std_array for m in modalities},
        n_vectors=0,
    )
    w = make_windows(trials, task, graphs[modalities[0]].seq_len, normaliser=norm, modalities=modalities)
    out = {}
    for m in modalities:
        session = ort.InferenceSession(str(base.graph_path(m)), providers=["CPUExecutionProvider"])
        probs = session.run(None, {"window": w.x[m]})[0]
        out[m] = _bacc(w.y, probs.argmax(axis=1), len(base.manifest.class_names))
    return out


def _linear(head: LinearHeadWeights):
    import torch
    from torch import nn

    lin = nn.Linear(head.coef.shape[1], head.coef.shape[0])
    with torch.no_grad():
        lin.weight.copy_(torch.as_tensor(head.coef, dtype=torch.float32))
        lin.bias.copy_(torch.as_tensor(head.intercept, dtype=torch.float32))
    return lin.eval()


def adapt(
    recording: str | Path,
    base: Bundle,
    participant: str,
    into: str | Path,
    *,
    train_modality: str | None = None,
    picks: Mapping[str, str] | None = None,
    config: AdaptConfig | None = None,
) -> AdaptResult:
    """Adapt ``base`` to ``participant`` on ``recording`` and export the next ``<base>-<participant>`` version.

    Parameters
    ----------
    recording : path
        The participant's recording (XDF as the service records it; any format the recording
        loader reads works) with labelled trial markers.
    base : Bundle
        A bundle with network weights (``weights_file``).
    participant : str
        Participant id.
    into : path
        Repository receiving the adapted bundle (created when missing).
    train_modality : str | None
        Fit one head on this modality's embeddings and serve every modality with it; None: each
        modality its own head.
    picks : dict of str to str | None
        Modality -> stream name, overriding the stream found by the spec's channels.
    config : AdaptConfig | None

    Returns
    -------
    AdaptResult
        ``evaluation`` holds ``held_out_trials``, ``base`` (per modality), ``head_only`` and
        ``adapted`` (``served``: per modality with the head serving it; ``matrix``: every head on every
        modality, ``"A->B"``), all balanced accuracies on the held-out trials (empty without any).

    Raises
    ------
    ValueError
        Bad participant, a base without weights, a recording without labelled markers or with fewer
        than two modalities of the base, too few adaptation trials per class, an unknown pick or
        train modality (DatasetError and BundleError are ValueErrors).
    """
    from service.calibration.fit import MIN_TRIALS_PER_CLASS, fit_heads
    from training.datasets.recordings import load_recording
    from training.export import ModalityExport, load_bundle_model
    from training.pretrain import pretrain, resolve_device
    from training.protocols import make_task
    from training.protocols.normaliser import Normaliser
    from training.protocols.windows import make_windows

    t_start = time.perf_counter()
    config = config or AdaptConfig()
    check_participant(participant)
    manifest = base.manifest
    name = calibrated_name(manifest.name, participant)
    path = Path(recording)
    if not path.is_file():
        raise FileNotFoundError(
            f"recording {str(path)!r} does not exist; pass the XDF file the service recorded."
        )
    base_model = load_bundle_model(base)  # refuses a bundle without weights before reading the recording
    graphs = {m: g for m, g in manifest.graphs.items() if m in base_model.config.names}
    picks = dict(picks or {})
    unknown = sorted(set(picks) - set(graphs))
    if unknown:
        raise ValueError(f"--pick names modalities {unknown}; the base {base.ref} has {sorted(graphs)}.")
    loaded = load_recording(
        path, specs={m: g.feature_spec for m, g in graphs.items()}, picks=picks or None,
        class_names=list(manifest.class_names), subject=participant,
    )  # fmt: skip
    dataset = loaded.dataset
    notes = [f"skipped '{m}': {why}" for m, why in loaded.absent.items()]
    present = [m for m in graphs if m in dataset.modalities]
    if dataset.class_names is None:
        raise ValueError(
            f"{path}: the trial markers carry no labels; adaptation needs labelled trials "
            '(JSON onsets {"trial": k, "label": "<class>"} or trial_start:<label> ... trial_end).'
        )
    if len(present) < 2:
        raise ValueError(
            f"{path}: adaptation pretrains on paired modalities and needs at least 2 of the base's "
            f"{sorted(graphs)}; the recording gives only {present}"
            + (f" ({'; '.join(notes)})" if notes else "")
            + ". Record the other modalities' streams too, or name them with --pick MODALITY=STREAM."
        )
    if train_modality is not None and train_modality not in present:
        raise ValueError(
            f"--train-modality {train_modality!r} is not among the recorded modalities {present}."
        )
    for m in present:
        if abs(dataset.modalities[m].spacing_s - graphs[m].spacing_s) > 1e-9:
            raise ValueError(
                f"the base's '{m}' windows space their vectors {graphs[m].spacing_s:g} s apart but its features "
                f"come every {dataset.modalities[m].spacing_s:g} s; adaptation needs the spacing to be the hop."
            )
    class_names = tuple(manifest.class_names)
    n_classes = len(class_names)
    trials = {t.trial: t for t in dataset.trials}
    split = split_trials({k: t.label for k, t in trials.items()}, loaded.phases)
    adapt_trials = [trials[k] for k in split.adaptation]
    held_trials = [trials[k] for k in split.held_out]
    per_class = [sum(t.label == c for t in adapt_trials) for c in range(n_classes)]
    if min(per_class) < MIN_TRIALS_PER_CLASS:
        counts = ", ".join(f"{c} {n}" for c, n in zip(class_names, per_class, strict=True))
        raise ValueError(
            f"{path}: adaptation needs at least {MIN_TRIALS_PER_CLASS} labelled trials of each class outside "
            f"the held-out ones ({split.rule}); it has {counts}. Record more calibration trials."
        )
    task = make_task(dataset, "emotion")
    seq_len = graphs[present[0]].seq_len
    normaliser = Normaliser.fit(adapt_trials, modalities=present)  # the participant's own statistics
    train_w = make_windows(adapt_trials, task, seq_len, normaliser=normaliser, modalities=present)
    held_w = (
        make_windows(held_trials, task, seq_len, normaliser=normaliser, modalities=present)
        if held_trials
        else None
    )
    logger.info(
        "adapting %s to %s: %s; %d adaptation trials (%d windows), %d held out (%s)",
        base.ref, participant, "+".join(present), len(adapt_trials), len(train_w), len(held_trials), split.rule,
    )  # fmt: skip

    def trial_of(key):
        return key[2]

    sub_config, state = _sub_state(base_model, present)
    device = resolve_device(config.device)
    result = pretrain(sub_config, train_w.x, config.pretrain_config(), initial_state=state)
    adapted = result.model.to(device).eval()
    base_sub = load_bundle_model(base, device)

    data = _labelled(adapted, train_w, present, trial_of)
    fitted = fit_heads(data, n_classes, train_modality)  # the served heads and their nested validation
    serve = dict(fitted.serve)
    evaluation: dict[str, Any] = {"held_out_trials": len(held_trials)}
    if held_w is not None and len(held_w):
        evaluation["base"] = {"served": _base_scores(base, held_trials, task, present)}
        for label, model in (("head_only", base_sub), ("adapted", adapted)):
            fit_on = data if model is adapted else _labelled(model, train_w, present, trial_of)
            own = _own_heads(fit_on, n_classes)  # fitted as fit_heads fits them, for every modality
            held = _labelled(model, held_w, present, trial_of)
            evaluation[label] = {
                "served": {
                    m: _bacc(held[m].y, own[serve[m]].probabilities(held[m].z).argmax(1), n_classes)
                    for m in present
                },
                "heads": dict(serve),
                "matrix": _matrix(own, held, n_classes),
            }

    items = {
        m: ModalityExport(
            embedder=adapted.embedder(m).cpu(),
            classifier=_linear(fitted.heads[serve[m]]),
            feature_spec=graphs[m].feature_spec,
            normalisation=normaliser.normalisation(m),
            spacing_s=graphs[m].spacing_s,
            reproducible_online=graphs[m].reproducible_online,
            check_windows=train_w.x[m],
        )
        for m in present
    }
    adapted = adapted.cpu()
    trials_count = {class_names[c]: int(n) for c, n in enumerate(per_class)}
    adaptation = {
        "recording": path.name,
        "streams": {m: loaded.picks.get(m) for m in present},
        "skipped": {m: why for m, why in loaded.absent.items()},
        "adaptation_trials": list(split.adaptation),
        "held_out_trials": list(split.held_out),
        "held_out_rule": split.rule,
        "windows": len(train_w),
        "pretrain": {**config.pretrain_config().to_dict(), "steps": result.plan.total_steps if result.plan else None},
        "final_losses": {k: v for k, v in (result.history[-1] if result.history else {}).items() if k not in ("epoch", "seconds")},
        "evaluation": evaluation,
    }  # fmt: skip
    provenance = {
        "participant": participant,
        "base": base.ref,
        "train_modality": train_modality,
        "heads": serve,
        "normalisation": dict.fromkeys(present, "participant"),
        "windows": {
            m: {class_names[c]: int(np.sum(d.y == c)) for c in range(n_classes)} for m, d in data.items()
        },
        "trials": trials_count,
        "head": {
            "kind": "multinomial logistic regression (scikit-learn) on the shared embedding",
            "c": fitted.c,
            "selected_on": "leave-one-trial-out balanced accuracy on the adaptation trials",
            "scores": {m: {str(k): v for k, v in s.items()} for m, s in fitted.c_scores.items()},
        },
        "validation": {
            "balanced_accuracy": fitted.balanced_accuracy,
            "per_modality": fitted.per_modality,
            "n_trials": trials_count,
            "c": fitted.c,
            "skipped": {},
        },
        "method": "adapted",
        "adaptation": adaptation,
    }
    bundle = _export(
        Path(into), name, items, fitted.heads, provenance, manifest, adapted, seq_len,
        training={**manifest.training, "adapted_from": base.ref, "model_config": adapted.config.to_dict()},
    )  # fmt: skip
    return AdaptResult(bundle, evaluation, notes, time.perf_counter() - t_start)


def _export(into: Path, name, items, heads, provenance, manifest, model, seq_len, *, training) -> Bundle:
    """Export into a temporary repository inside ``into``, add the head graphs and the provenance, then
    rename the version folder into place under the next version number."""
    import datetime as _dt

    from models.bundle import file_sha256
    from training.export import export_bundle

    into.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=into))
    try:
        exported, _ = export_bundle(
            tmp, name, items, class_names=tuple(manifest.class_names), seq_len=seq_len, training=training,
            opset=manifest.opset, model=model,
        )  # fmt: skip
        folder = exported.path
        import onnx

        sha = dict(exported.manifest.sha256)
        head_files = {}
        for source, head in heads.items():
            file = f"head.{source}.onnx"
            onnx.save(head_graph(head, opset=manifest.opset), str(folder / file))
            head_files[source] = file
            sha[file] = file_sha256(folder / file)
        now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        calibration = CalibrationProvenance.model_validate(
            {**provenance, "created": now, "head_files": head_files}
        )
        target, checked = publish_next_version(
            folder,
            into / name,
            lambda version: exported.manifest.model_copy(
                update={"version": version, "sha256": sha, "calibration": calibration}
            ),
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return Bundle(path=target, manifest=checked)


# ---------------------------------------------------------------------------------------------- command


def register(subparsers) -> None:
    """Add ``m2s-train adapt``."""
    p = subparsers.add_parser(
        "adapt",
        help="adapt a bundle's encoders to one participant's recording and export <base>-<participant>",
        description="Pretrain from a bundle's network weights with the M2S losses on a participant's paired "
        "recording (the XDF the service records: one stream per modality and the trial markers), fit the heads "
        "on its labelled trials (leave-one-trial-out, as the live calibration), evaluate base vs head-only vs "
        "adapted on its held-out trials (marker phase 'test'; without phases the last trial of each class), and "
        "export the next version of <base>-<participant> with 'calibration' provenance (method 'adapted').",
    )
    p.add_argument("recording", help="the participant's recording (.xdf) with labelled trial markers")
    p.add_argument("--base", required=True, help="base bundle NAME[:VERSION] (it must carry network weights)")
    p.add_argument("--participant", required=True, help="participant id (letters, digits, '_' or '-')")
    p.add_argument(
        "--train-modality",
        default=None,
        help="fit one head on this modality's embeddings and serve every modality with it (cross-modal); "
        "default: each modality its own head",
    )
    p.add_argument(
        "--pick",
        action="append",
        default=[],
        metavar="MODALITY=STREAM",
        help="read MODALITY from the stream named STREAM (default: the one stream carrying the base spec's "
        "channels); repeatable",
    )
    p.add_argument(
        "--repository",
        default=None,
        help=f"model repository of the base (default: ${MODEL_REPOSITORY_ENV}, else the project's models/repository)",
    )
    p.add_argument(
        "--into",
        default=None,
        help=f"repository receiving the adapted bundle (default: ${CALIBRATED_REPOSITORY_ENV}, else calibrated/ "
        "beside the base repository, as the live service)",
    )
    defaults = AdaptConfig()
    p.add_argument(
        "--steps", type=int, default=defaults.steps, help=f"pretraining steps (default: {defaults.steps})"
    )
    p.add_argument(
        "--lr", type=float, default=defaults.lr, help=f"pretraining learning rate (default: {defaults.lr:g})"
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=defaults.batch_size,
        help=f"pretraining batch (default: {defaults.batch_size})",
    )
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default: auto)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.set_defaults(handler=_adapt)


def _parse_picks(items: Sequence[str]) -> dict[str, str]:
    picks = {}
    for item in items:
        modality, sep, stream = item.partition("=")
        if not sep or not modality.strip() or not stream.strip():
            raise ValueError(f"--pick {item!r} is not MODALITY=STREAM, e.g. --pick eye=Tobii-Gaze.")
        picks[modality.strip()] = stream.strip()
    return picks


def format_table(evaluation: Mapping[str, Any]) -> str:
    """The held-out evaluation as a text table: per modality base, head-only and adapted, then A->B."""
    if not evaluation.get("held_out_trials"):
        return "no held-out trials: nothing evaluated."
    mods = list(evaluation["adapted"]["served"])
    lines = [f"held-out trials: {evaluation['held_out_trials']} (balanced accuracy)"]
    lines.append(f"{'modality':<10}{'base':>8}{'head-only':>11}{'adapted':>9}  head")
    for m in mods:
        lines.append(
            f"{m:<10}{evaluation['base']['served'][m]:>8.3f}{evaluation['head_only']['served'][m]:>11.3f}"
            f"{evaluation['adapted']['served'][m]:>9.3f}  {evaluation['adapted']['heads'][m]}"
        )
    lines.append(f"{'A->B':<10}{'':>8}{'head-only':>11}{'adapted':>9}")
    for pair, v in evaluation["adapted"]["matrix"].items():
        lines.append(f"{pair:<10}{'':>8}{evaluation['head_only']['matrix'][pair]:>11.3f}{v:>9.3f}")
    return "\n".join(lines)


def _adapt(args) -> int:
    import sys

    check_participant(args.participant)
    repository, into = default_repositories(args.repository, args.into)
    base = ModelRepository(repository).load(args.base)
    config = AdaptConfig(
        steps=args.steps, lr=args.lr, batch_size=args.batch_size, seed=args.seed, device=args.device
    )
    result = adapt(
        args.recording, base, args.participant, into, train_modality=args.train_modality,
        picks=_parse_picks(args.pick), config=config,
    )  # fmt: skip
    out = sys.stdout
    for note in result.notes:
        out.write(f"note: {note}\n")
    out.write(format_table(result.evaluation) + "\n")
    out.write(f"exported {result.bundle.ref} to {result.bundle.path} in {result.seconds:.0f} s\n")
    return 0
