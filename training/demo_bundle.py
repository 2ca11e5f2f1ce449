"""The default demo bundle: M2S trained on one synthetic subject with EEG, EYE and ECG, exported to ONNX.

It lets the service and the README demo run with no dataset. It is committed under
``models/repository/m2s-synthetic-demo/1/`` (about 1 MB) so that images without torch can serve
it, and it is rebuilt deterministically (same seed, CPU) by ``m2s-train demo-bundle --out REPO``
in about 20 s on 2 cores.

Recipe: the default :class:`~synthetic.SyntheticConfig` (seed 0), subject 0, its 15
trials featurised by the synthetic loader (EEG DE 2-s windows, eye 10-s buffer, ECG DE 4-s windows,
one 2-s hop); the synthetic protocol (first 60 % of trials train, last 40 % test, one validation
trial per class carved from training); M2S pretraining (the benchmark's small network, 200
epochs as in the paper) on the training trials, then one classifier
per modality on its own frozen embedding (A→A), epochs selected on validation. The manifest
carries the test A→B matrix measured on the held-out trials; the simulator can play further,
never-seen trials of the same subject (trial indices beyond the config's).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from models.repository import DEFAULT_REPOSITORY, DEMO_BUNDLE, Bundle, ModelRepository
from synthetic import SyntheticConfig

from .datasets.synthetic import load as load_synthetic
from .experiment import BenchmarkConfig, modality_configs, run_split
from .export import ModalityExport, export_bundle
from .protocols import make_task, subject_dependent_splits

logger = logging.getLogger(__name__)

DEMO_NAME = DEMO_BUNDLE
DEMO_MODALITIES = ("eeg", "eye", "ecg")
DEMO_REPOSITORY = DEFAULT_REPOSITORY


def build_demo_bundle(
    repository: ModelRepository | Path | str = DEMO_REPOSITORY,
    *,
    seed: int = 0,
    subject: int = 0,
    epochs: int = 200,
) -> tuple[Bundle, dict[str, Any]]:
    """Train and export the demo bundle as a new version in ``repository``.

    Parameters
    ----------
    repository : ModelRepository | path
        Where the bundle goes (``<repository>/m2s-synthetic-demo/<next version>/``).
    seed : int
        Seed of the synthetic data and of training.
    subject : int
        Synthetic subject to train on.
    epochs : int
        Pretraining epochs (default 200, the paper's number; the data are small).

    Returns
    -------
    bundle : Bundle
    parity : dict of str to float
        Max abs difference torch vs ONNX Runtime per graph.
    """
    synthetic = SyntheticConfig(seed=seed)
    bench = BenchmarkConfig(synthetic=synthetic.model_dump(), modalities=list(DEMO_MODALITIES), seed=seed)
    bench = bench.model_copy(update={"pretrain_epochs": epochs})
    dataset = load_synthetic(synthetic, modalities=list(DEMO_MODALITIES), subjects=[subject], n_jobs=1)
    task = make_task(dataset, "emotion")
    (split,) = subject_dependent_splits(dataset, task)
    experiment = bench.experiment(progress=False)
    mods = modality_configs(dataset, DEMO_MODALITIES)
    result = run_split(split, "m2s", experiment, mods, keep_models=True)
    model = result.model.cpu().eval()
    items = {}
    for m in DEMO_MODALITIES:
        info = dataset.modalities[m]
        norm = split.normaliser
        test = split.windows("test", experiment.seq_len, modalities=[m])
        items[m] = ModalityExport(
            embedder=model.embedder(m),
            classifier=result.classifiers[m].cpu().eval(),
            feature_spec=info.spec,
            normalisation=norm.normalisation(m),
            spacing_s=info.spacing_s,
            check_windows=test.x[m],
        )
    matrix = {
        pair: {k: float(v[k]) for k in ("balanced_accuracy", "kappa", "f1")}
        for pair, v in result.matrix.items()
    }
    training = {
        "dataset": "synthetic",
        "synthetic_config": synthetic.model_dump(mode="json"),
        "subject": str(subject),
        "protocol": split.protocol,
        "split": split.name,
        "task": task.to_dict(),
        "method": "m2s",
        "classifier": "per modality, trained on its own frozen embedding (A->A)",
        "model_config": result.model.config.to_dict(),
        "seed": seed,
        "pretrain_epochs": experiment.pretrain.epochs,
        "recipe": "training.demo_bundle.build_demo_bundle",
    }
    bundle, parity = export_bundle(
        repository,
        DEMO_NAME,
        items,
        class_names=tuple(task.class_names),
        seq_len=experiment.seq_len,
        training=training,
        metrics={"matrix": matrix, "evaluated_on": "held-out test trials of the training subject"},
        seed=seed,
    )
    logger.info(
        "demo bundle %s: %s", bundle.ref, {k: round(v["balanced_accuracy"], 3) for k, v in matrix.items()}
    )
    return bundle, parity
