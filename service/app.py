"""The FastAPI application: :func:`create_app` and its lifespan.

The lifespan owns the heavy resources (habit 16): it loads and warms up the default model in the
inference engine, creates the WebSocket hub and the stream manager (with ``M2S_WORKERS >= 2`` a
:class:`~service.workers.ShardedStreamManager` and its worker processes), attaches the streams of
``settings.attach``, starts the model poller (hot reload, :mod:`service.reload`), and only then marks
the app ready. On shutdown it marks the app not ready, stops the poller and every stream worker,
closes the hub and finally the engine (which serves what is queued). A model or attach request
that fails at startup makes startup fail: the service refuses to run half-configured.

Routes, one router per topic (:mod:`service.api.routes`): ``/predict``, ``/v2/health``,
``/v2/models``, ``/v2/repository``, ``/streams``, ``/calibrations``, ``/recordings``, ``/metrics``,
``/ws``; the dashboard (``service/static``) is served at ``/``. Operation ids are
``<tag>-<function name>`` (stable, for generated clients).

Never imports torch.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles

from models.repository import ModelRepository
from service.api.deps import token_problem
from service.api.errors import install_error_handlers
from service.api.methods import MethodNotAllowedMiddleware
from service.api.middleware import BearerAuthMiddleware, RequestBodyLimits, RequestMetricsMiddleware
from service.api.openapi import install_openapi
from service.api.routes import calibrations as calibrations_routes
from service.api.routes import health, infer, metrics, models, predict, streams, ws
from service.api.routes import recordings as recordings_routes
from service.api.routes import repository as repository_routes
from service.calibration import CalibrationManager
from service.config import Settings
from service.engine import InferenceEngine
from service.hub import StateHub
from service.metrics import ServiceMetrics
from service.recordings import RecordingManager
from service.reload import ModelPoller, calibration_skip
from service.streams import StreamManager
from service.workers import ShardedStreamManager
from signals._checks import check_type

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"

try:
    __version__ = version("m2s-live")
except PackageNotFoundError:  # running from a source tree that was not pip-installed
    __version__ = "0.0.0"


def operation_id(route: APIRoute) -> str:
    """``<first tag>-<route function name>``, e.g. ``predict-predict``: stable names for generated clients."""
    return f"{route.tags[0]}-{route.name}" if route.tags else route.name


async def start_workers(settings: Settings, hub: StateHub, metrics: ServiceMetrics) -> ShardedStreamManager:
    """Start the worker processes in a thread; when startup is cancelled meanwhile (Ctrl-C), they are stopped.

    The constructor cannot be interrupted: a cancelled startup leaves its thread running, so the thread
    itself closes the manager it built when nobody waits for it any more.
    """
    lock = threading.Lock()
    cancelled = False
    built: list[ShardedStreamManager] = []

    def build() -> ShardedStreamManager:
        manager = ShardedStreamManager(settings, hub, metrics=metrics)
        with lock:
            if not cancelled:
                built.append(manager)
                return manager
        logger.info("startup was cancelled while the worker processes started; stopping them")
        manager.close()
        return manager

    try:
        return await run_in_threadpool(build)
    except BaseException:
        with lock:
            cancelled = True
            orphans = list(built)
        for manager in orphans:  # built just as the wait was cancelled
            manager.close()
        raise


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Load and warm the default model, start hub, manager and attached streams; undo in reverse."""
    settings: Settings = app.state.settings
    metrics: ServiceMetrics = app.state.metrics
    engine = InferenceEngine(
        # Calibrated models (written by the service) are found beside the read-only repository's.
        ModelRepository(settings.model_repository, settings.calibrated_repository),
        providers=settings.providers,
        max_batch=settings.batch_max_windows,
        max_wait_s=settings.batch_max_wait_s,
    )
    hub = StateHub(settings.ws_queue_size, on_dropped=metrics.dropped)
    if settings.workers == 1:
        manager = StreamManager(engine, hub, settings, metrics=metrics)
    else:  # the streams in N worker processes, which load and warm up the default model in parallel
        try:
            manager = await start_workers(settings, hub, metrics)
        except BaseException:
            hub.close()
            await run_in_threadpool(engine.close)
            raise
    recordings = RecordingManager(manager, settings)
    calibrations = CalibrationManager(engine, manager, settings, recordings=recordings)
    # Hot reload: streams following a model move to its new versions (every model_poll_interval_s, or on load).
    poller = ModelPoller(
        engine,
        manager,
        interval_s=settings.model_poll_interval_s,
        skip=calibration_skip(calibrations),
        in_use=calibrations.bases_in_use,
    )
    try:
        await run_in_threadpool(recordings.repair_interrupted)  # files a killed service left half-written
        loaded = await run_in_threadpool(engine.load, settings.default_model)  # warm-up run included
        metrics.set_providers(loaded)
        for request in settings.attach:
            await run_in_threadpool(manager.attach, request)
        app.state.engine, app.state.hub, app.state.manager = engine, hub, manager
        app.state.calibrations, app.state.recordings = calibrations, recordings
        app.state.poller = poller
        metrics.on_scrape(lambda: metrics.ws_clients.set(hub.n_subscribers))
        poller.start()
        app.state.ready = True
        logger.info(
            "ready: %s on %s, %d stream(s) attached", loaded.ref, loaded.providers, len(settings.attach)
        )
        yield
    finally:
        app.state.ready = False
        await run_in_threadpool(poller.close)  # before the engine: a load in progress ends first
        calibrations.close()
        await run_in_threadpool(recordings.close)  # footers written, files closed
        await run_in_threadpool(manager.close)  # worker processes (M2S_WORKERS >= 2) are joined
        hub.close()
        await run_in_threadpool(engine.close)
        logger.info("shut down")


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the service application (resources are created when the app starts, in its lifespan).

    Parameters
    ----------
    settings : Settings or None
        Validated settings; None reads them from the ``M2S_*`` environment.

    Returns
    -------
    FastAPI
        Run it with uvicorn (see :mod:`service.cli`); ``app.state`` holds ``settings`` and ``metrics``,
        and, while running, ``engine``, ``hub``, ``manager`` and ``ready``.
    """
    settings = Settings() if settings is None else check_type(settings, Settings, "settings")
    app = FastAPI(
        title="M2S-live",
        version=__version__,
        summary="Real-time emotion recognition from one physiological modality (Multi-to-Single model).",
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
    )
    app.state.settings = settings
    app.state.metrics = ServiceMetrics()
    app.state.ready = False
    install_error_handlers(app)
    install_openapi(app)  # error bodies, auth and 503s as the app answers them
    app.add_middleware(MethodNotAllowedMiddleware)  # innermost: 405 with every method of the path in Allow
    # Added last = outermost: metrics (count every answer) > auth (401 before any body byte is read) >
    # body limits (413 / 408 / 429) > the app.
    app.add_middleware(
        RequestBodyLimits,
        max_bytes=settings.max_body_bytes,
        read_timeout_s=settings.body_read_timeout_s,
        max_inflight_bytes=settings.max_inflight_body_bytes,
        metrics=app.state.metrics,
    )
    app.add_middleware(BearerAuthMiddleware, problem=lambda header: token_problem(settings, header))
    app.add_middleware(RequestMetricsMiddleware, metrics=app.state.metrics)
    routers = (
        predict,
        health,
        models,
        infer,
        repository_routes,
        streams,
        calibrations_routes,
        recordings_routes,
        metrics,
        ws,
    )
    for module in routers:
        app.include_router(module.router)
    if (STATIC_DIR / "index.html").is_file():
        app.mount("/", StaticFiles(directory=STATIC_DIR, html=True), name="dashboard")
    else:
        logger.warning("no dashboard: %s has no index.html", STATIC_DIR)
    return app


__all__ = ["STATIC_DIR", "create_app", "lifespan", "operation_id", "start_workers"]
