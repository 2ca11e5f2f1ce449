"""KServe-v2 health: ``GET /v2/health/live`` and ``GET /v2/health/ready`` (no authentication: probes)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from service.schemas import HealthLive, HealthReady

router = APIRouter(prefix="/v2/health", tags=["health"])


@router.get("/live", response_model=HealthLive, summary="The process answers HTTP")
def live() -> HealthLive:
    """Always ``{"live": true}`` while the server runs (liveness probe)."""
    return HealthLive(live=True)


@router.get(
    "/ready",
    response_model=HealthReady,
    responses={503: {"model": HealthReady, "description": "Not ready (starting or shutting down)."}},
    summary="The default model is loaded and warmed up",
)
def ready(request: Request, response: Response) -> HealthReady:
    """``ready`` with the loaded models and the execution provider each modality really runs on, and the
    worker processes holding the streams (``M2S_WORKERS >= 2``: pid, streams, restarts).

    200 when ready, 503 (same body, ``ready: false``) before the warm-up finished or once shutdown began.
    A worker process that is being restarted (even every one of them) leaves the status at 200: REST and
    ``/predict`` run in the API process, and moving traffic away would not bring the worker back. ``degraded``
    says which workers do not serve their streams, as do ``workers[*].alive`` and ``m2s_workers_alive``.
    """
    state = request.app.state
    engine = getattr(state, "engine", None)
    is_ready = bool(getattr(state, "ready", False)) and engine is not None and not engine.closed
    models = engine.models if engine is not None else {}
    manager = getattr(state, "manager", None)
    workers = manager.workers() if hasattr(manager, "workers") else []  # M2S_WORKERS >= 2
    if not is_ready:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    down = [str(w.index) for w in workers if not w.alive]
    degraded = (
        f"{len(down)} of {len(workers)} worker processes ({', '.join(down)}) are being restarted; their streams "
        "show 'connecting' until they run again (GET /streams says why, the logs say why they ended)."
        if down
        else None
    )
    return HealthReady(
        ready=is_ready,
        models=sorted(models),
        providers={ref: dict(m.providers) for ref, m in sorted(models.items())},
        workers=workers,
        degraded=degraded,
    )
