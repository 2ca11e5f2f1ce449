"""Model bundles: ONNX graphs per modality plus a self-describing, checksummed ``manifest.json``.

A bundle is a folder ``<name>/<version>/`` holding, per modality, the inference graph
(``<modality>.onnx``: window ``(batch, T, D)`` → class probabilities) and the embedding graph
(``<modality>.embedding.onnx``: window → the 32-d shared embedding), and ``manifest.json``,
which carries everything the live service needs to compute exactly the training features:
the full :mod:`signals` FeatureSpec, the normalisation statistics fitted on the training split,
the spacing of the T vectors, the class names, plus provenance (training dataset, protocol,
evaluation matrix), the ONNX opset and the sha256 of every graph. A bundle exported from training
may also carry the full M2S network's weights (``weights_file``, e.g. ``m2s.pt``: encoders,
projections, CPC, CLUB..., read by ``m2s-train adapt`` with ``torch.load(weights_only=True)``);
to the service it is just another checksummed file.

This module never imports torch or onnxruntime: the service reads bundles without them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from signals.normalisation import Normalisation
from signals.pipeline import FeaturePipeline
from signals.spec import FeatureSpec

BUNDLE_SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class BundleError(ValueError):
    """A bundle is missing, malformed, tampered with, or of an unsupported schema; the message says which."""


class ModalityGraph(BaseModel):
    """One modality of a bundle: its graphs, input, features and normalisation."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    modality: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    model_file: str = Field(
        description="Inference graph: (batch, T, D) float32 -> (batch, n_classes) probabilities."
    )
    embedding_file: str = Field(
        description="Embedding graph: (batch, T, D) float32 -> (batch, embedding_dim)."
    )
    seq_len: int = Field(ge=1, description="T: feature vectors per model input.")
    dim: int = Field(ge=1, description="D: length of one feature vector.")
    spacing_s: float = Field(gt=0, description="Seconds between the T vectors, exactly as in training.")
    feature_spec: FeatureSpec
    normalisation: Normalisation
    reproducible_online: bool = Field(
        description="False when the training features cannot be computed live (e.g. offline-smoothed de_LDS)."
    )

    def feature_pipeline(self, *, live: bool = False) -> FeaturePipeline:
        """The pipeline that turns this modality's raw signal into the model's normalised windows.

        ``live=True`` refuses (ValueError) features that cannot be computed live. (Features the
        manifest marks not reproducible online are served; the engine warns once when it loads them.)
        """
        return FeaturePipeline(
            self.feature_spec,
            seq_len=self.seq_len,
            spacing_s=self.spacing_s,
            normalisation=self.normalisation,
            live=live,
        )

    @field_validator("model_file", "embedding_file")
    @classmethod
    def _plain_file_name(cls, name: str) -> str:
        if Path(name).name != name or name in {"", ".", ".."} or not name.endswith(".onnx"):
            raise ValueError(f"must be a plain '.onnx' file name inside the bundle folder, got {name!r}")
        return name

    @model_validator(mode="after")
    def _consistent(self) -> ModalityGraph:
        spec = self.feature_spec
        if spec.n_features != self.dim:
            raise ValueError(
                f"the feature spec gives {spec.n_features} features per vector but dim is {self.dim}."
            )
        if len(self.normalisation.mean) != self.dim:
            raise ValueError(
                f"normalisation has {len(self.normalisation.mean)} values but dim is {self.dim}."
            )
        if spec.modality != self.modality:
            raise ValueError(
                f"feature_spec.modality is {spec.modality!r} but the graph is for {self.modality!r}."
            )
        try:  # spacing a whole multiple of the hop: the pipeline's own rule
            self.feature_pipeline()
        except ValueError as err:
            raise ValueError(str(err)) from None
        if self.reproducible_online and not spec.reproducible_online:
            raise ValueError("reproducible_online is true but the feature spec uses offline-only smoothing.")
        return self


class CalibrationProvenance(BaseModel):
    """Where a calibrated bundle (``<base>-<participant>/<n>/``) comes from.

    ``method='head'`` (the live service's calibration): the base bundle's embedding graphs followed
    by a linear head fitted on the participant's labelled calibration windows. ``method='adapted'``
    (``m2s-train adapt``): encoders pretrained further from the base's weights with the M2S losses
    on the participant's paired recording, then the same kind of head; ``adaptation`` says what was
    done and how it scored on the recording's held-out trials. Either way the normalisation is the
    participant's own.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    participant: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
    base: str = Field(description="The base bundle, 'name:version'.")
    created: str = Field(description="ISO 8601 time of the fit.")
    train_modality: str | None = Field(
        description="The modality whose embeddings the head was fitted on; None: each modality its own."
    )
    heads: dict[str, str] = Field(
        description="Per served modality, the modality whose labelled windows fitted its head "
        "(another one = cross-modal through the shared embedding space)."
    )
    head_files: dict[str, str] = Field(
        description="Per head (by the modality it was fitted on): its ONNX graph, embedding -> probabilities."
    )
    normalisation: dict[str, str] = Field(
        description="Per modality: 'participant' (statistics of the calibration session) or 'base'."
    )
    windows: dict[str, dict[str, int]] = Field(description="Labelled windows per modality and class.")
    trials: dict[str, int] = Field(description="Labelled trials per class.")
    head: dict[str, Any] = Field(description="The head: kind, C, how C was chosen, the scores of each C.")
    validation: dict[str, Any] = Field(
        description="Leave-one-trial-out balanced accuracy: overall and per modality."
    )
    method: Literal["head", "adapted"] = Field(
        default="head",
        description="'head': a head on the base's frozen encoders (live calibration); 'adapted': encoders "
        "adapted to the participant with the M2S losses, then a head (m2s-train adapt).",
    )
    adaptation: dict[str, Any] | None = Field(
        default=None,
        description="method 'adapted': the recording, the trials used and held out, the pretraining "
        "settings and the held-out evaluation (base vs head-only vs adapted).",
    )


class BundleManifest(BaseModel):
    """``manifest.json``: what a bundle is and how its inputs must be computed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: int = BUNDLE_SCHEMA_VERSION
    name: str = Field(pattern=_NAME_PATTERN)
    version: int = Field(ge=1, description="Positive integer, as in Triton model repositories.")
    class_names: tuple[str, ...] = Field(min_length=2)
    embedding_dim: int = Field(ge=1)
    opset: int = Field(ge=7)
    graphs: dict[str, ModalityGraph] = Field(min_length=1, description="Per modality name.")
    sha256: dict[str, str] = Field(
        description="sha256 hex digest of every file of the bundle (ONNX graphs, weights), by file name."
    )
    weights_file: str | None = Field(
        default=None,
        description="Optional: the full M2S network's state dict and config (torch, e.g. 'm2s.pt'), from "
        "which 'm2s-train adapt' starts; None in bundles exported without it and in head-only calibrations.",
    )
    training: dict[str, Any] = Field(
        default_factory=dict, description="Provenance: dataset, protocol, task, seed, configs."
    )
    metrics: dict[str, Any] = Field(default_factory=dict, description="Evaluation, e.g. the A->B matrix.")
    created: str = Field(default="", description="ISO 8601 time of export.")
    calibration: CalibrationProvenance | None = Field(
        default=None,
        description="Set on bundles calibrated to one participant (live service, or m2s-train adapt).",
    )

    @field_validator("weights_file")
    @classmethod
    def _plain_weights_name(cls, name: str | None) -> str | None:
        if name is not None and (
            Path(name).name != name or name in {"", ".", ".."} or not name.endswith(".pt")
        ):
            raise ValueError(f"must be a plain '.pt' file name inside the bundle folder, got {name!r}")
        return name

    @field_validator("schema_version")
    @classmethod
    def _supported(cls, version: int) -> int:
        if version != BUNDLE_SCHEMA_VERSION:
            raise ValueError(
                f"bundle schema_version {version} is not supported (this m2s-live reads version "
                f"{BUNDLE_SCHEMA_VERSION}); re-export the bundle with this version or upgrade m2s-live."
            )
        return version

    @model_validator(mode="after")
    def _consistent(self) -> BundleManifest:
        for key, graph in self.graphs.items():
            if key != graph.modality:
                raise ValueError(f"graphs[{key!r}] describes modality {graph.modality!r}.")
            for f in (graph.model_file, graph.embedding_file):
                if f not in self.sha256:
                    raise ValueError(f"sha256 has no entry for {f!r}.")
        if self.weights_file is not None and self.weights_file not in self.sha256:
            raise ValueError(f"sha256 has no entry for the weights file {self.weights_file!r}.")
        for name, digest in self.sha256.items():
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise ValueError(f"sha256[{name!r}] must be 64 lowercase hex characters.")
        return self

    def graph(self, modality: str) -> ModalityGraph:
        """The graph of one modality; KeyError-free: a BundleError lists what the bundle has."""
        if modality not in self.graphs:
            raise BundleError(
                f"bundle {self.name}:{self.version} has no '{modality}' model; it has {sorted(self.graphs)}."
            )
        return self.graphs[modality]


def file_sha256(path: Path) -> str:
    """sha256 hex digest of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def manifest_json_schema() -> dict:
    """The published JSON schema of ``manifest.json``."""
    return BundleManifest.model_json_schema()


def write_manifest(folder: Path, manifest: BundleManifest) -> Path:
    """Write ``manifest.json`` into ``folder`` (pretty-printed, stable key order)."""
    path = Path(folder) / MANIFEST_NAME
    path.write_text(manifest.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return path


def load_manifest(folder: Path | str, *, verify: bool = True) -> BundleManifest:
    """Read and validate a bundle's manifest; with ``verify``, check every listed file's sha256.

    Raises
    ------
    BundleError
        The folder or manifest is missing, the JSON is invalid, the schema version is not
        supported, a listed file (graph, weights) is missing, or a checksum does not match (tampered or corrupt).
    """
    folder = Path(folder)
    path = folder / MANIFEST_NAME
    if not folder.is_dir():
        raise BundleError(f"bundle folder {str(folder)!r} does not exist.")
    if not path.is_file():
        raise BundleError(
            f"{str(path)!r} is missing; a bundle folder holds manifest.json beside its .onnx files."
        )
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BundleError(f"{str(path)!r} is not valid JSON: {err}.") from None
    try:
        manifest = BundleManifest.model_validate(raw)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(root)'}: {e['msg']}" for e in err.errors())
        raise BundleError(f"{str(path)!r} is not a valid bundle manifest: {problems}") from None
    if verify:
        for name, expected in manifest.sha256.items():
            file = folder / name
            if not file.is_file():
                raise BundleError(
                    f"bundle {manifest.name}:{manifest.version} lists {name!r}, which is missing from {str(folder)!r}."
                )
            actual = file_sha256(file)
            if actual != expected:
                raise BundleError(
                    f"checksum mismatch for {str(file)!r}: manifest says {expected[:12]}…, file is "
                    f"{actual[:12]}…. The file was modified or corrupted; re-export or re-copy the bundle."
                )
    return manifest


__all__ = [
    "BUNDLE_SCHEMA_VERSION",
    "MANIFEST_NAME",
    "BundleError",
    "BundleManifest",
    "CalibrationProvenance",
    "ModalityGraph",
    "Normalisation",
    "file_sha256",
    "load_manifest",
    "manifest_json_schema",
    "write_manifest",
]
