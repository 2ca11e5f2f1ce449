"""Prometheus metrics of one app instance, in their own registry (never the process-global one).

A per-app :class:`prometheus_client.CollectorRegistry` keeps two apps in one process (tests)
from sharing or double-registering series. Metric names:

=====================================  =========  ==================================================
``m2s_http_requests_total``            counter    by ``route`` (template), ``method``, ``status``
``m2s_http_request_duration_seconds``  histogram  by ``route``, ``method``
``m2s_inference_duration_seconds``     histogram  one ``engine.predict`` call (a stream's chunk or a
                                                  REST request), s
``m2s_inference_windows``              histogram  windows per ``engine.predict`` call
``m2s_states_emitted_total``           counter    by ``stream``
``m2s_stream_effective_srate_hz``      gauge      by ``stream``: samples/s received recently
``m2s_stream_data_age_seconds``        gauge      by ``stream``: local_clock() - newest sample time
``m2s_stream_stale``                   gauge      by ``stream``: 1 when stale
``m2s_ws_dropped_messages_total``      counter    WebSocket messages dropped from slow clients' queues
``m2s_execution_provider_info``        gauge = 1  by ``model``, ``modality``, ``provider`` in use
``m2s_worker_restarts_total``          counter    by ``worker``: worker processes (``M2S_WORKERS`` >= 2)
                                                  restarted after their process ended unexpectedly
``m2s_workers_alive``                  gauge      worker processes serving their streams now (only with
                                                  ``M2S_WORKERS`` >= 2; absent with one process)
``m2s_worker_states_dropped_total``    counter    states a worker dropped because the API process read
                                                  them too slowly (its queue holds at most 5000)
=====================================  =========  ==================================================

Per-stream gauges are refreshed at scrape time by the callbacks given to
:meth:`ServiceMetrics.on_scrape` (the stream manager registers one), so they are current
whenever Prometheus reads them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from signals._checks import check_type

logger = logging.getLogger(__name__)

#: The configured limits whose refusals are counted (``m2s_limit_refusals_total{limit=...}``).
LIMITS = ("body_size", "body_timeout", "inflight_bytes", "streams", "ws_clients")
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_WINDOW_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class ServiceMetrics:
    """The service's Prometheus metrics; all methods are thread-safe and cheap.

    Attributes
    ----------
    registry : prometheus_client.CollectorRegistry
        The registry :meth:`metrics_response` renders.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "m2s_http_requests", "HTTP requests handled.", ["route", "method", "status"], registry=r
        )
        self.request_seconds = Histogram(
            "m2s_http_request_duration_seconds",
            "HTTP request latency (s).",
            ["route", "method"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.inference_seconds = Histogram(
            "m2s_inference_duration_seconds",
            "Latency of one engine.predict call (s), batching wait included.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.inference_windows = Histogram(
            "m2s_inference_windows", "Windows per engine.predict call.", buckets=_WINDOW_BUCKETS, registry=r
        )
        self.states = Counter(
            "m2s_states_emitted", "EmotionStates published, per stream.", ["stream"], registry=r
        )
        self.stream_srate = Gauge(
            "m2s_stream_effective_srate_hz", "Samples per second received recently.", ["stream"], registry=r
        )
        self.stream_data_age = Gauge(
            "m2s_stream_data_age_seconds", "Age of the newest sample (s).", ["stream"], registry=r
        )
        self.stream_stale = Gauge("m2s_stream_stale", "1 when the stream is stale.", ["stream"], registry=r)
        self.stream_unusable = Gauge(
            "m2s_stream_unusable",
            "1 when the connected source cannot feed the model (rate, channels, units): it produces no states.",
            ["stream"],
            registry=r,
        )
        self.ws_dropped = Counter(
            "m2s_ws_dropped_messages", "WebSocket messages dropped from slow clients' queues.", registry=r
        )
        self.provider_info = Gauge(
            "m2s_execution_provider_info",
            "Execution provider in use per model and modality (value 1).",
            ["model", "modality", "provider"],
            registry=r,
        )
        self.limit_refusals = Counter(
            "m2s_limit_refusals",
            "Requests and connections refused by a configured limit: body_size (413), body_timeout (408), "
            "inflight_bytes (429), streams (409), ws_clients (WebSocket close 1013).",
            ["limit"],
            registry=r,
        )
        for limit in LIMITS:  # every series exists from the start, at 0
            self.limit_refusals.labels(limit=limit)
        self.inflight_body_bytes = Gauge(
            "m2s_inflight_body_bytes", "Request-body bytes being read or handled now.", registry=r
        )
        self.ws_clients = Gauge("m2s_ws_clients", "WebSocket clients connected now.", registry=r)
        self.streams_attached = Gauge("m2s_streams_attached", "LSL streams attached now.", registry=r)
        self.worker_restarts = Counter(
            "m2s_worker_restarts",
            "Worker processes (M2S_WORKERS >= 2) restarted after their process ended unexpectedly.",
            ["worker"],
            registry=r,
        )
        self.worker_states_dropped_total = Counter(
            "m2s_worker_states_dropped",
            "States (and inference events) worker processes dropped because the API process read them too slowly.",
            registry=r,
        )
        self._lazy_lock = threading.Lock()
        self.workers_alive: Gauge | None = (
            None  # registered by the first set_workers_alive (M2S_WORKERS >= 2)
        )
        self._scrape_callbacks: list[Callable[[], None]] = []

    # -- recorders -------------------------------------------------------------------------------

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one HTTP request; ``route`` should be the route template (``/streams/{id}``), not the raw path."""
        self.requests.labels(route=route, method=method, status=str(status)).inc()
        self.request_seconds.labels(route=route, method=method).observe(seconds)

    def observe_inference(self, seconds: float, n_windows: int) -> None:
        """Record one ``engine.predict`` call of ``n_windows`` windows that took ``seconds``."""
        self.inference_seconds.observe(seconds)
        self.inference_windows.observe(n_windows)

    def state_emitted(self, stream_id: str) -> None:
        """Count one published EmotionState of ``stream_id``."""
        self.states.labels(stream=stream_id).inc()

    def set_stream(
        self,
        stream_id: str,
        srate: float | None,
        data_age: float | None,
        stale: bool | None = None,
        unusable: bool | None = None,
    ) -> None:
        """Set a stream's health gauges; None leaves the gauge as NaN (unknown)."""
        nan = float("nan")
        self.stream_srate.labels(stream=stream_id).set(nan if srate is None else srate)
        self.stream_data_age.labels(stream=stream_id).set(nan if data_age is None else data_age)
        if stale is not None:
            self.stream_stale.labels(stream=stream_id).set(1.0 if stale else 0.0)
        if unusable is not None:
            self.stream_unusable.labels(stream=stream_id).set(1.0 if unusable else 0.0)

    def remove_stream(self, stream_id: str) -> None:
        """Drop every series of a detached stream."""
        for metric in (
            self.states,
            self.stream_srate,
            self.stream_data_age,
            self.stream_stale,
            self.stream_unusable,
        ):
            try:
                metric.remove(stream_id)
            except KeyError:
                pass

    def refused(self, limit: str) -> None:
        """Count one request or connection refused by ``limit`` (one of :data:`LIMITS`)."""
        if limit not in LIMITS:
            raise ValueError(f"unknown limit {limit!r}; one of {', '.join(LIMITS)}.")
        self.limit_refusals.labels(limit=limit).inc()

    def dropped(self, n: int) -> None:
        """Count ``n`` WebSocket messages dropped (use as ``StateHub(on_dropped=metrics.dropped)``)."""
        self.ws_dropped.inc(n)

    def worker_restarted(self, index: int) -> None:
        """Count one restart of worker process ``index``."""
        self.worker_restarts.labels(worker=str(index)).inc()

    def worker_states_dropped(self, n: int) -> None:
        """Count ``n`` states or inference events a worker process dropped (its queue for this process was full)."""
        self.worker_states_dropped_total.inc(n)

    def set_workers_alive(self, n: int) -> None:
        """Set ``m2s_workers_alive`` (registered on the first call, so a service of one process has no such series)."""
        with self._lazy_lock:
            if self.workers_alive is None:
                self.workers_alive = Gauge(
                    "m2s_workers_alive",
                    "Worker processes serving their streams now (M2S_WORKERS >= 2).",
                    registry=self.registry,
                )
        self.workers_alive.set(n)

    def set_provider(self, model: str, modality: str, provider: str) -> None:
        """Record the execution provider a (model, modality) session really uses."""
        self.provider_info.labels(model=model, modality=modality, provider=provider).set(1)

    def set_providers(self, loaded) -> None:
        """Record every session of a :class:`service.engine.LoadedModel`."""
        for modality, provider in loaded.providers.items():
            self.set_provider(loaded.ref, modality, provider)

    # -- rendering -------------------------------------------------------------------------------

    def on_scrape(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` before every render (to refresh gauges); its exceptions are logged."""
        if not callable(callback):
            raise TypeError(f"callback must be callable, got {type(callback).__name__} instead.")
        self._scrape_callbacks.append(callback)

    def metrics_response(self) -> tuple[bytes, str]:
        """The Prometheus text exposition of this registry and its content type, for ``GET /metrics``."""
        for callback in list(self._scrape_callbacks):
            try:
                callback()
            except Exception:
                logger.exception("metrics refresh callback failed")
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def check_metrics(metrics: ServiceMetrics | None) -> ServiceMetrics | None:
    """Validate an optional ``metrics`` argument."""
    if metrics is not None:
        check_type(metrics, ServiceMetrics, "metrics")
    return metrics


__all__ = ["LIMITS", "ServiceMetrics", "check_metrics"]
