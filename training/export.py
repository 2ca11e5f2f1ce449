"""ONNX export of trained M2S models into self-describing bundles in a model repository.

Per modality two graphs are written: the inference graph (ER encoder → mean over T → projection →
classifier → softmax; input ``window`` float32 ``(batch, T, D)``, output ``probabilities``) and the
embedding graph (the 32-d shared embedding; output ``embedding``). The batch axis is dynamic, T
and D are fixed by the manifest. Every graph is checked against torch with ONNX Runtime before the
manifest is written (max abs difference of probabilities and embeddings ≤ ``tolerance``).

Given the trained :class:`~models.m2s.M2S` network, the bundle also carries its weights
(:data:`WEIGHTS_FILE`: the state dict of every module the M2S losses need, with the network's
config), checksummed like the graphs and named by the manifest's ``weights_file``, so that
``m2s-train adapt`` can pretrain further from them (:func:`load_bundle_model`).
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
#: File name of the network weights in a bundle, and the format tag inside it.
WEIGHTS_FILE = "m2s.pt"
WEIGHTS_FORMAT = "m2s-bundle-weights"


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
    model: nn.Module | None = None,
) -> tuple[Bundle, dict[str, float]]:
    """Export one bundle (a new version of ``name``) and verify it.

    Parameters
    ----------
    repository : ModelRepository | path
        Where the bundle goes (``<repository>/<name>/<next version>/``).
    name : str
        Bundle name.
    modalities : dict of str to ModalityExport
        What to export per served modality.
    class_names : tuple of str
    seq_len : int
        T, feature vectors per window.
    training, metrics : dict | None
        Provenance and evaluation written into the manifest.
    opset : int
        ONNX opset.
    tolerance : float
        Largest accepted max abs difference torch vs ONNX Runtime.
    seed : int
        Seed of the random parity-check windows.
    model : M2S | None
        The trained network whose embedders are exported: its weights and config are written as
        :data:`WEIGHTS_FILE` (``m2s-train adapt`` starts from them). None: a bundle of graphs only.

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
        weights_file = None
        if model is not None:
            weights_file = WEIGHTS_FILE
            _save_weights(model, folder / weights_file)
            sha[weights_file] = file_sha256(folder / weights_file)
        manifest = BundleManifest(
            name=name,
            version=version,
            class_names=tuple(class_names),
            embedding_dim=embedding_dim,
            opset=opset,
            graphs=graphs,
            sha256=sha,
            weights_file=weights_file,
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


def _save_weights(model: nn.Module, path: Path) -> None:
    """Write the network's config and state dict (CPU tensors) for :func:`load_bundle_model`."""
    config = getattr(model, "config", None)
    if config is None or not hasattr(config, "to_dict"):
        raise TypeError(
            f"model must be the trained M2S network (with an M2SConfig .config), got {type(model).__name__}."
        )
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    torch.save(
        {"format": WEIGHTS_FORMAT, "version": 1, "model_config": config.to_dict(), "state_dict": state}, path
    )


def load_bundle_model(bundle: Bundle, device: str | torch.device = "cpu") -> nn.Module:
    """The :class:`~models.m2s.M2S` network a bundle's weights file holds (eval mode, on ``device``).

    Raises
    ------
    ValueError
        The bundle carries no weights file (exported before bundles carried them, or a head-only
        calibration), or the file is not a bundle weights file; the message says how to get one.
    """
    from models.config import M2SConfig
    from models.m2s import M2S

    manifest = bundle.manifest
    if manifest.weights_file is None:
        raise ValueError(
            f"bundle {bundle.ref} carries no network weights (its manifest has no weights_file: it was exported "
            "before bundles carried them, or it is a head-only calibration); re-export it with this m2s-live "
            "('m2s-train export RUN --name NAME', or 'm2s-train demo-bundle' for the demo) and adapt from the "
            "new version."
        )
    path = bundle.path / manifest.weights_file
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(obj, dict) or obj.get("format") != WEIGHTS_FORMAT:
        raise ValueError(f"{str(path)!r} is not an M2S bundle weights file (format {WEIGHTS_FORMAT!r}).")
    model = M2S(M2SConfig.from_dict(obj["model_config"]))
    model.load_state_dict(obj["state_dict"])
    return model.to(device).eval()
