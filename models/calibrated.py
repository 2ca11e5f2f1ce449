"""Calibrated bundles: a base bundle's embedding graphs, a participant's linear head and normalisation.

A calibrated bundle is an ordinary bundle (``<base>-<participant>/<n>/``, loaded and verified by
:class:`~models.repository.ModelRepository` like any other) whose files are:

- ``<modality>.embedding.onnx``: the base bundle's embedding graph, byte for byte;
- ``head.<source>.onnx``: the head fitted on ``<source>``'s embeddings, ``(batch, E) -> (batch, C)``
  probabilities: ``softmax(embedding @ coef.T + intercept)``;
- ``<modality>.onnx``: the embedding graph followed by the head serving that modality (its own, or
  another modality's for cross-modal serving through the shared space), so the engine runs one
  graph per window as for every bundle;
- ``manifest.json``: the base's feature specs with the participant's normalisation, and a
  :class:`~models.bundle.CalibrationProvenance`.

Written into a temporary folder inside the repository and renamed into place only when complete:
a failed or cancelled write leaves nothing a repository would list.

Needs the ``onnx`` package (a base dependency: the service writes these without torch).
"""

from __future__ import annotations

import datetime as _dt
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .bundle import (
    BundleError,
    BundleManifest,
    CalibrationProvenance,
    Normalisation,
    file_sha256,
    load_manifest,
    write_manifest,
)
from .repository import Bundle, ModelRepository

_HEAD_PREFIX = "m2s_head_"  # names of the nodes and initialisers the head adds to an embedding graph


@dataclass(frozen=True)
class LinearHeadWeights:
    """A fitted linear head: ``softmax(z @ coef.T + intercept)``.

    Attributes
    ----------
    coef : array, shape (n_classes, E)
    intercept : array, shape (n_classes,)
    """

    coef: np.ndarray
    intercept: np.ndarray

    def __post_init__(self):
        coef, intercept = np.asarray(self.coef, np.float64), np.asarray(self.intercept, np.float64)
        if coef.ndim != 2 or intercept.shape != (coef.shape[0],):
            raise ValueError(
                f"a head needs coef (n_classes, E) and intercept (n_classes,), got {coef.shape} and {intercept.shape}."
            )
        if not (np.isfinite(coef).all() and np.isfinite(intercept).all()):
            raise ValueError("head weights must be finite.")

    def probabilities(self, z: np.ndarray) -> np.ndarray:
        """Softmax of the logits for embeddings ``z`` (N, E), in float64 (the graph does the same in float32)."""
        logits = np.asarray(z, np.float64) @ np.asarray(self.coef, np.float64).T + self.intercept
        logits -= logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        return e / e.sum(axis=1, keepdims=True)


def calibrated_name(base_name: str, participant: str) -> str:
    """``<base>-<participant>``; ValueError when it would not be a valid model name (over 64 characters)."""
    name = f"{base_name}-{participant}"
    if len(name) > 64:
        raise ValueError(
            f"the calibrated model name {name[:40]}… would have {len(name)} characters (at most 64): use a shorter "
            "participant id or base model name."
        )
    return name


def default_calibrated_repository(model_repository: Path | str) -> Path:
    """Where calibrated models go when nothing says otherwise: ``calibrated/`` beside the model repository.

    The live service's default for ``M2S_CALIBRATED_REPOSITORY`` (``service.config.Settings``) and
    ``m2s-train adapt``'s: ``<model repository, resolved>/../calibrated``.
    """
    return Path(model_repository).resolve().parent / "calibrated"


def _append_head(graph_model, head: LinearHeadWeights, input_name: str, output_name: str):
    """Add MatMul + Add + Softmax after ``input_name`` of an ONNX model (in place); returns the model."""
    from onnx import TensorProto, helper, numpy_helper

    g = graph_model.graph
    w = numpy_helper.from_array(np.asarray(head.coef, np.float32).T.copy(), f"{_HEAD_PREFIX}weight")
    b = numpy_helper.from_array(np.asarray(head.intercept, np.float32), f"{_HEAD_PREFIX}bias")
    g.initializer.extend([w, b])
    g.node.extend(
        [
            helper.make_node(
                "MatMul", [input_name, w.name], [f"{_HEAD_PREFIX}mm"], name=f"{_HEAD_PREFIX}matmul"
            ),
            helper.make_node(
                "Add", [f"{_HEAD_PREFIX}mm", b.name], [f"{_HEAD_PREFIX}logits"], name=f"{_HEAD_PREFIX}add"
            ),
            helper.make_node(
                "Softmax", [f"{_HEAD_PREFIX}logits"], [output_name], name=f"{_HEAD_PREFIX}softmax", axis=1
            ),
        ]
    )
    del g.output[:]
    g.output.append(
        helper.make_tensor_value_info(output_name, TensorProto.FLOAT, ["batch", head.coef.shape[0]])
    )
    return graph_model


def head_graph(head: LinearHeadWeights, *, opset: int):
    """The head alone as an ONNX model: ``embedding`` (batch, E) -> ``probabilities`` (batch, C)."""
    from onnx import TensorProto, helper

    inp = helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", head.coef.shape[1]])
    graph = helper.make_graph([], "m2s_linear_head", [inp], [])
    opsets = [helper.make_opsetid("", max(opset, 13))]
    # The oldest IR version the opset needs, not the onnx package's newest: a newer onnx than the runtime
    # (onnx 1.23 writes IR 14, onnxruntime 1.31 reads up to 13) would otherwise make heads nobody can load.
    model = helper.make_model(graph, opset_imports=opsets, ir_version=helper.find_min_ir_version_for(opsets))
    return _append_head(model, head, "embedding", "probabilities")


def composed_graph(embedding_path: Path, head: LinearHeadWeights):
    """The embedding graph at ``embedding_path`` followed by ``head``: window -> probabilities."""
    import onnx

    model = onnx.load(str(embedding_path))
    outputs = [o.name for o in model.graph.output]
    if len(outputs) != 1:
        raise BundleError(f"{embedding_path} has outputs {outputs}; an embedding graph has exactly one.")
    return _append_head(model, head, outputs[0], "probabilities")


_LOCKS: dict[Path, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def _name_lock(folder: Path) -> threading.Lock:
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(folder.resolve(), threading.Lock())


def _next_version(folder: Path) -> int:
    """One above every numbered sub-folder, complete or not (a folder left by a crash is never reused)."""
    taken = [int(p.name) for p in folder.iterdir() if p.name.isdigit()] if folder.is_dir() else []
    return max(taken, default=0) + 1


def publish_next_version(
    folder: Path, home: Path, manifest_of: Callable[[int], BundleManifest], *, attempts: int = 20
) -> tuple[Path, BundleManifest]:
    """Rename a complete bundle folder into place as the next version of ``home`` (``<root>/<name>``).

    The manifest for the claimed version (``manifest_of(version)``) is written and loaded back with the
    ordinary loader (schema, checksums) before the rename makes it visible, so a polling service never
    sees half a version. Writers in this process take turns per name; a writer in another process (the
    service's live fit and ``m2s-train adapt`` in another container) may take the same number: the
    rename then fails on the existing folder and the next number is tried.

    Returns
    -------
    target : Path
        The version folder.
    manifest : BundleManifest
        Its verified manifest.
    """
    home.mkdir(parents=True, exist_ok=True)
    for _ in range(attempts):
        with _name_lock(home):
            version = _next_version(home)
            write_manifest(folder, manifest_of(version))
            checked = load_manifest(folder)
            target = home / str(version)
            try:
                folder.rename(target)  # atomic within one file system
            except OSError:
                if target.exists():  # another process took this version meanwhile
                    continue
                raise
            return target, checked
    raise RuntimeError(f"could not claim a version in {home}: {attempts} were taken while writing.")


def write_calibrated_bundle(
    repository: ModelRepository,
    base: Bundle,
    *,
    participant: str,
    heads: dict[str, LinearHeadWeights],
    serve: dict[str, str],
    normalisations: dict[str, Normalisation],
    provenance: dict,
) -> Bundle:
    """Write the next version of ``<base>-<participant>`` into ``repository`` and load it back.

    Parameters
    ----------
    repository : ModelRepository
        The writable repository (its ``root``).
    base : Bundle
        The bundle whose embedding graphs and feature specs are reused.
    participant : str
        Participant id (``^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$``).
    heads : dict of str to LinearHeadWeights
        Fitted heads by the modality whose embeddings fitted them.
    serve : dict of str to str
        Modality served by the bundle -> key of ``heads`` serving it.
    normalisations : dict of str to Normalisation
        The participant's statistics per modality; modalities without one keep the base's.
    provenance : dict
        The remaining :class:`~models.bundle.CalibrationProvenance` fields (``train_modality``,
        ``windows``, ``trials``, ``head``, ``validation``).

    Returns
    -------
    Bundle
        The new version, verified (schema and checksums) by the ordinary loader.
    """
    import onnx

    manifest = base.manifest
    name = calibrated_name(manifest.name, participant)
    unknown = sorted(set(serve) - set(manifest.graphs))
    if unknown:
        raise ValueError(f"{base.ref} has no modality {unknown}; it has {sorted(manifest.graphs)}.")
    missing = sorted(set(serve.values()) - set(heads))
    if missing:
        raise ValueError(f"no fitted head for {missing}.")
    repository.root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=repository.root))
    try:
        graphs, sha = {}, {}
        head_files = {}
        for source, head in heads.items():
            if head.coef.shape != (len(manifest.class_names), manifest.embedding_dim):
                raise ValueError(
                    f"the {source} head has weights {head.coef.shape}; {base.ref} needs "
                    f"({len(manifest.class_names)}, {manifest.embedding_dim})."
                )
            file = f"head.{source}.onnx"
            onnx.save(head_graph(head, opset=manifest.opset), str(tmp / file))
            head_files[source] = file
        for modality, source in serve.items():
            graph = manifest.graphs[modality]
            shutil.copyfile(base.path / graph.embedding_file, tmp / graph.embedding_file)
            model_file = f"{modality}.onnx"
            onnx.save(composed_graph(base.path / graph.embedding_file, heads[source]), str(tmp / model_file))
            graphs[modality] = graph.model_copy(
                update={
                    "model_file": model_file,
                    "normalisation": normalisations.get(modality, graph.normalisation),
                }
            )
        for file in {
            *head_files.values(),
            *(g.model_file for g in graphs.values()),
            *(g.embedding_file for g in graphs.values()),
        }:
            sha[file] = file_sha256(tmp / file)
        now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        calibration = CalibrationProvenance(
            participant=participant,
            base=base.ref,
            created=now,
            heads=dict(serve),
            head_files=head_files,
            normalisation={m: "participant" if m in normalisations else "base" for m in serve},
            **provenance,
        )
        excluded = {
            "graphs",
            "sha256",
            "name",
            "version",
            "created",
            "calibration",
            "metrics",
            "weights_file",
        }

        def manifest_of(version: int) -> BundleManifest:  # a head-only calibration carries no network weights
            return BundleManifest.model_validate(
                {
                    **manifest.model_dump(exclude=excluded),
                    "name": name,
                    "version": version,
                    "graphs": {m: g.model_dump() for m, g in graphs.items()},
                    "sha256": sha,
                    "created": now,
                    "metrics": {},
                    "calibration": calibration.model_dump(),
                }
            )

        target, checked = publish_next_version(tmp, repository.root / name, manifest_of)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Bundle(path=target, manifest=checked)  # verified above; the rename changed no byte


__all__ = [
    "LinearHeadWeights",
    "publish_next_version",
    "calibrated_name",
    "composed_graph",
    "default_calibrated_repository",
    "head_graph",
    "write_calibrated_bundle",
]
