"""KServe-v2-style model metadata: ``GET /v2/models``, ``/v2/models/{name}``, ``/v2/models/{name}/versions/{v}``;
model readiness: ``GET /v2/models/{name}[/versions/{v}]/ready`` (what tritonclient's ``is_model_ready`` asks).

Read from the manifests of the repository (checksums are verified only when a model is loaded);
nothing is loaded by these routes.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, HTTPException, Request, Response, status

from models.bundle import BundleError, BundleManifest, load_manifest
from models.repository import parse_model_ref
from service.api.deps import Authenticated, EngineDep, error_responses, model_not_found
from service.engine import INPUT_NAME, OUTPUT_NAME, InferenceEngine
from service.schemas import (
    FeatureSpecSummary,
    ModalityMetadata,
    ModelMetadata,
    ModelReady,
    ModelsPublic,
    ModelSummary,
    TensorMetadata,
)

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/v2/models", tags=["models"], dependencies=[Authenticated])


@router.get("", response_model=ModelsPublic, responses=error_responses(401), summary="List the models")
def list_models(engine: EngineDep) -> ModelsPublic:
    """Every model name of the repository with its versions, loaded versions and modalities."""
    repository = engine.repository
    loaded = engine.models
    data = []
    for name in repository.names():
        versions = repository.versions(name)
        try:
            manifest = load_manifest(repository.path(name, versions[-1]), verify=False)
            modalities = sorted(manifest.graphs)
        except BundleError:  # a broken bundle is listed (so it can be found) but has no modalities
            logger.warning("model %s:%d has an invalid manifest", name, versions[-1], exc_info=True)
            modalities = []
        data.append(
            ModelSummary(
                name=name,
                versions=versions,
                loaded=[v for v in versions if f"{name}:{v}" in loaded],
                modalities=modalities,
            )
        )
    return ModelsPublic(data=data, count=len(data))


@router.get(
    "/{name}",
    response_model=ModelMetadata,
    responses=error_responses(401, 404, 500),
    summary="Metadata of the latest version of a model",
)
def model_metadata(name: str, engine: EngineDep) -> ModelMetadata:
    """Inputs, outputs, class names, feature spec and provider per modality of the latest version."""
    return _metadata(engine, name, None)


@router.get(
    "/{name}/versions/{version}",
    response_model=ModelMetadata,
    responses=error_responses(401, 404, 500),
    summary="Metadata of one version of a model",
)
def model_version_metadata(name: str, version: int, engine: EngineDep) -> ModelMetadata:
    """Like ``/v2/models/{name}`` for the given version."""
    return _metadata(engine, name, version)


_NOT_READY = {503: {"model": ModelReady, "description": "Not loaded (yet), or the service is shutting down."}}


@router.get(
    "/{name}/ready",
    response_model=ModelReady,
    responses={**error_responses(401, 404), **_NOT_READY},
    summary="Whether the latest version of a model is loaded",
)
def model_ready(name: str, request: Request, response: Response) -> ModelReady:
    """``ready``: the latest version is loaded and warmed up (200), or not (503, same body).

    Like ``/v2/health/ready``, it answers (503, ``ready: false``) while the service starts or shuts down.
    """
    return _ready(request, name, None, response)


@router.get(
    "/{name}/versions/{version}/ready",
    response_model=ModelReady,
    responses={**error_responses(401, 404), **_NOT_READY},
    summary="Whether one version of a model is loaded",
)
def model_version_ready(name: str, version: int, request: Request, response: Response) -> ModelReady:
    """Like ``/v2/models/{name}/ready`` for the given version."""
    return _ready(request, name, version, response)


def _ready(request: Request, name: str, version: int | None, response: Response) -> ModelReady:
    engine = getattr(request.app.state, "engine", None)
    ready = False
    if engine is not None and not engine.closed:
        version = _version(engine, name, version)
        ready = f"{name}:{version}" in engine.models
    if not ready:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return ModelReady(name=name, version=version, ready=ready)


def _version(engine: InferenceEngine, name: str, version: int | None) -> int:
    """``version``, or the latest of ``name``; 404 naming what the repository has."""
    try:
        parse_model_ref(name)
        versions = engine.repository.versions(name)
    except BundleError:
        versions = []  # not a valid name (e.g. '..'): never touch the file system with it
    if not versions or (version is not None and version not in versions):
        raise model_not_found(engine, name, version)
    return versions[-1] if version is None else version


def _metadata(engine: InferenceEngine, name: str, version: int | None) -> ModelMetadata:
    version = _version(engine, name, version)
    versions = engine.repository.versions(name)
    key = f"{name}:{version}"
    loaded = engine.models.get(key)
    try:
        manifest = (
            loaded.bundle.manifest
            if loaded is not None
            else load_manifest(engine.repository.path(name, version), verify=False)
        )
    except BundleError:
        logger.exception("model %s has an invalid manifest", key)
        raise HTTPException(
            status.HTTP_500_INTERNAL_SERVER_ERROR,
            f"Model {key} has an invalid manifest; see the service log.",
        ) from None
    providers = loaded.providers if loaded is not None else {}
    return ModelMetadata(
        name=name,
        version=version,
        versions=versions,
        ready=loaded is not None,
        class_names=list(manifest.class_names),
        modalities={m: _modality(manifest, m, providers.get(m)) for m in sorted(manifest.graphs)},
        training=manifest.training,
        metrics=manifest.metrics,
    )


def _modality(manifest: BundleManifest, modality: str, provider: str | None) -> ModalityMetadata:
    graph = manifest.graph(modality)
    spec = graph.feature_spec
    return ModalityMetadata(
        inputs=[TensorMetadata(name=INPUT_NAME, datatype="FP32", shape=[-1, graph.seq_len, graph.dim])],
        outputs=[TensorMetadata(name=OUTPUT_NAME, datatype="FP32", shape=[-1, len(manifest.class_names)])],
        seq_len=graph.seq_len,
        dim=graph.dim,
        spacing_s=graph.spacing_s,
        reproducible_online=graph.reproducible_online,
        feature_spec=FeatureSpecSummary(
            kind=spec.kind,
            sfreq=spec.sfreq,
            channels=list(spec.channels),
            unit=spec.unit,
            window_s=spec.window_s,
            hop_s=spec.hop_s,
            n_features=spec.n_features,
            min_signal_s=graph.feature_pipeline().seconds_needed,
        ),
        provider=provider,
    )
