"""ONNX export of trained M2S models into self-describing bundles in a model repository.

Per modality two graphs are written: the inference graph (ER encoder → mean over T → projection →
classifier → softmax; input ``window`` float32 ``(batch, T, D)``, output ``probabilities``) and the
embedding graph (the 32-d shared embedding; output ``embedding``). The batch axis is dynamic, T
and D are fixed by the manifest. Every graph is checked against torch with ONNX Runtime before the
manifest is written (max abs difference of probabilities and embeddings ≤ ``tolerance``).
"""

from __future__ import annotations

import datetime as _dt
import logging
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from models.bundle import BundleManifest, ModalityGraph, Normalisation, file_sha256, write_manifest
from models.repository import Bundle, ModelRepository

logger = logging.getLogger(__name__)

DEFAULT_OPSET = 17
PARITY_TOLERANCE = 1e-4


class InferenceGraph(nn.Module):
    """Embedder of one modality followed by a classifier and softmax: window → class probabilities."""

    def __init__(self, embedder: nn.Module, classifier: nn.Module):
        super().__init__()
        self.embedder = embedder
        self.classifier = classifier

    def forward(self, window: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.classifier(self.embedder(window)), dim=-1)


@dataclass(frozen=True)
class ModalityExport:
    """Everything exported for one modality.

    Attributes
    ----------
    embedder : nn.Module
        ``(batch, T, D) -> (batch, embedding_dim)``: the frozen ER encoder + projection.
    classifier : nn.Module
        ``(batch, embedding_dim) -> (batch, n_classes)`` logits (for cross-modal serving, the
        classifier trained on another modality).
    feature_spec : FeatureSpec
        How the live service computes the D features.
    normalisation : Normalisation
        The z-scoring fitted on the training split (``Normaliser.normalisation(modality)``).
    spacing_s : float
        Seconds between the T vectors in training.
    reproducible_online : bool | None
        None: taken from the feature spec.
    check_windows : array, shape (n, T, D) | None
        Real (normalised) windows for the parity check, in addition to random ones.
    """

    embedder: nn.Module
    classifier: nn.Module
    feature_spec: Any
    normalisation: Normalisation
    spacing_s: float
    reproducible_online: bool | None = None
    check_windows: np.ndarray | None = None


def _export_graph(module: nn.Module, example: torch.Tensor, path: Path, output_name: str, opset: int) -> None:
    module.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            module,
            (example,),
            str(path),
            input_names=["window"],
            output_names=[output_name],
            dynamic_axes={"window": {0: "batch"}, output_name: {0: "batch"}},
            opset_version=opset,
            dynamo=False,
        )


def _max_parity_error(module: nn.Module, path: Path, windows: np.ndarray) -> float:
    try:
        import onnxruntime as ort
    except ImportError:
        raise RuntimeError(
            "ONNX Runtime is not installed, and export checks every graph against torch with it: "
            "pip install 'm2s-live[train,cpu]' (or [train,gpu] on a CUDA machine)."
        ) from None

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected = module(torch.from_numpy(windows)).numpy()
    got = session.run(None, {"window": windows})[0]
    return float(np.max(np.abs(got - expected)))


def export_bundle(
    repository: ModelRepository | Path | str,
    name: str,
    modalities: Mapping[str, ModalityExport],
    *,
    class_names: tuple[str, ...],
    seq_len: int,
    training: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    opset: int = DEFAULT_OPSET,
    tolerance: float = PARITY_TOLERANCE,
    seed: int = 0,
) -> tuple[Bundle, dict[str, float]]:
    """Export one bundle (a new version of ``name``) and verify it.

    Returns
    -------
    bundle : Bundle
        The loaded, checksum-verified bundle.
    parity : dict of str to float
        Max abs difference torch vs ONNX Runtime per graph (``'eeg'``, ``'eeg.embedding'``, ...).

    Raises
    ------
    ValueError
        Inconsistent inputs, or a graph whose ONNX Runtime output differs from torch by more
        than ``tolerance`` (the version folder is removed then).
    """
    repo = repository if isinstance(repository, ModelRepository) else ModelRepository(repository)
    if not modalities:
        raise ValueError("modalities is empty; export at least one modality.")
    version, folder = repo.new_version_dir(name)
    rng = np.random.default_rng(seed)
    graphs, sha, parity = {}, {}, {}
    embedding_dim = None
    try:
        for modality, item in modalities.items():
            dim = int(item.feature_spec.n_features)
            if item.normalisation.dim != dim:
                raise ValueError(
                    f"{modality}: the normalisation has {item.normalisation.dim} values but the feature spec "
                    f"gives {dim} features per vector."
                )
            example = torch.zeros(1, seq_len, dim)
            checks = rng.standard_normal((16, seq_len, dim)).astype(np.float32)
            if item.check_windows is not None:
                checks = np.concatenate([checks, np.asarray(item.check_windows, np.float32)[:64]])
            item.embedder.eval()
            item.classifier.eval()
            with torch.no_grad():
                embedding_dim = int(item.embedder(example).shape[-1])
            files = {"model": f"{modality}.onnx", "embedding": f"{modality}.embedding.onnx"}
            for kind, module in (
                ("model", InferenceGraph(item.embedder, item.classifier)),
                ("embedding", item.embedder),
            ):
                path = folder / files[kind]
                _export_graph(
                    module, example, path, "probabilities" if kind == "model" else "embedding", opset
                )
                error = _max_parity_error(module, path, checks)
                key = modality if kind == "model" else f"{modality}.embedding"
                parity[key] = error
                if error > tolerance:
                    raise ValueError(
                        f"ONNX export of {key} differs from torch by {error:.2e} (> {tolerance:.0e}); "
                        "the graph uses an operation ONNX does not reproduce."
                    )
                sha[files[kind]] = file_sha256(path)
            online = (
                item.feature_spec.reproducible_online
                if item.reproducible_online is None
                else item.reproducible_online
            )
            graphs[modality] = ModalityGraph(
                modality=modality,
                model_file=files["model"],
                embedding_file=files["embedding"],
                seq_len=seq_len,
                dim=dim,
                spacing_s=item.spacing_s,
                feature_spec=item.feature_spec,
                normalisation=item.normalisation,
                reproducible_online=bool(online),
            )
        manifest = BundleManifest(
            name=name,
            version=version,
            class_names=tuple(class_names),
            embedding_dim=embedding_dim,
            opset=opset,
            graphs=graphs,
            sha256=sha,
            training=training or {},
            metrics=metrics or {},
            created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        )
        write_manifest(folder, manifest)
    except Exception:
        for f in folder.iterdir():
            f.unlink()
        folder.rmdir()
        raise
    logger.info("exported %s:%d (%s), parity %s", name, version, ", ".join(graphs), parity)
    return repo.load(f"{name}:{version}"), parity
