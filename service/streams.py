"""Attached live streams: LSL chunks → online pipeline → inference engine → EmotionState → hub.

:class:`StreamManager` owns one :class:`_AttachedStream` per attached LSL stream. Each runs
entirely on its :class:`~service.lsl.LslStream` worker thread: a chunk is reordered and scaled
to the model's channels and unit, pushed through the stream's
:class:`~signals.pipeline.FeaturePipeline` (built from the bundle manifest), every window it
completes is inferred (one ``engine.predict`` call per chunk; the engine micro-batches calls
from concurrent streams), and one :class:`~service.schemas.EmotionState` per window is published.

Rules
-----
- **Model and modality are checked at attach** (unknown model: BundleError; a bundle without
  the modality: BundleError listing its modalities; offline-only features: ValueError).
- **Channels, units and rate are checked when the stream's info arrives** (at every
  (re)connection, on the worker thread): the stream's nominal rate must equal the spec's
  ``sfreq`` (no resampling), every spec channel must be found by label (:func:`map_channels`)
  and every used channel's unit must convert to the spec's (:func:`signals.units.channel_factors`). A mismatch
  sets ``last_error`` and no prediction is made from that connection's data; nothing is guessed.
- **A (re)connection resets the pipeline**: the new outlet's data is a new segment anyway (its
  timestamps jump), and its channel layout may have changed.
- **Gaps** (timestamp jumps, a reconnection) are handled by the extractor: no window spans one. The
  stream's :class:`~service.lsl.LslStream` dejitters with the same rule (the spec's ``gap_factor``,
  :mod:`signals.timing`), so jitter it smooths is never a gap and a gap is never smoothed away.
- **Nothing raises into the LSL worker.** Failures are logged (at most once per
  ``_LOG_EVERY_S`` per stream, with a count) and shown in ``last_error``.
- **The worker sleeps until a window can complete.** The stream tells its
  :class:`~service.lsl.LslStream` (``samples_wanted``) how many samples the extractor still needs
  for its next vector, so the worker wakes once per hop, right when the window's last sample
  arrives, instead of for every chunk (``benchmarks/live_latency.py``).
- ``latency_ms`` of a state is measured from the moment its chunk was handed to ``on_chunk``
  (just after ``pull_chunk`` returned it) to the moment the state is published.
- **A stream follows the latest version or is pinned.** Attached (or switched) with ``name`` or
  ``name:latest`` (or with no model, when ``settings.default_model`` names no version) it follows
  ``name``: :meth:`StreamManager.follow` moves it to each newer version the model poller
  (:mod:`service.reload`) loads. With ``name:3`` it stays on version 3.

Units
-----
Per channel, the stream's declared unit must match the spec's meaning for that channel: the rules
of :func:`signals.units.channel_factors`, which the recording loader and ``POST /predict`` follow
too.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Collection
from typing import Any

import numpy as np

from models.bundle import ModalityGraph
from models.repository import parse_model_ref
from service.config import AttachRequest, Settings
from service.engine import InferenceEngine, LoadedModel
from service.hub import StateHub
from service.lsl import LslStream, StreamInfo
from service.metrics import ServiceMetrics, check_metrics
from service.schemas import EmotionState, ModelRef, StreamPublic, Timing
from signals._checks import check_type
from signals.channels import map_channels
from signals.units import channel_factors

logger = logging.getLogger(__name__)

_LOG_EVERY_S = 5.0  # rate limit of tracebacks from one stream's chunk handler


def follows_latest(ref: str) -> bool:
    """Whether a stream attached with model ``ref`` follows its latest version (``name``, ``name:latest``).

    Raises
    ------
    models.bundle.BundleError
        ``ref`` is not a model reference.
    """
    return parse_model_ref(ref)[1] is None


class _AttachedStream:
    """One attached stream; every method but :meth:`public` and :meth:`stop` runs on the LSL worker thread."""

    def __init__(
        self,
        stream_id: str,
        request: AttachRequest,
        loaded: LoadedModel,
        graph: ModalityGraph,
        *,
        engine: InferenceEngine,
        hub: StateHub,
        settings: Settings,
        metrics: ServiceMetrics | None,
        stream_factory: Callable[..., LslStream],
        follows: bool = False,
    ):
        self.id = stream_id
        self.request = request
        # Moved to each newer version of its model by StreamManager.follow; changed under _serving only.
        self.follows_latest = follows
        self.modality = graph.modality
        self._serve(loaded, graph)
        self.engine = engine
        self.hub = hub
        self.metrics = metrics
        self.pipeline = graph.feature_pipeline(live=True)
        self.lsl = stream_factory(
            request.selector,
            self._on_chunk,
            resolve_timeout_s=settings.resolve_timeout_s,
            stale_after_s=settings.stale_after_s,
            # The worker's dejitter follows the spec's gap rule: the extractor sees the gaps training saw.
            gap_factor=graph.feature_spec.gap_factor,
            jitter_s=graph.feature_spec.jitter_s,
        )
        self.lsl.on_status = self._on_status
        # Held by the worker while it handles a status or a chunk or computes its wake-up hint, and by
        # swap(): a model swap falls between two chunks, never inside one. Reentrant: the hint may be
        # asked from inside a chunk handler.
        self._serving = threading.RLock()
        # Nothing can come out before the extractor's next vector: let the worker sleep until then.
        self.lsl.samples_wanted = self._samples_wanted
        self._lock = threading.Lock()
        self._n_states = 0
        self._config_error: str | None = None  # channel/unit/rate mismatch of the current connection
        self._runtime_error: str | None = None  # the last failure of the chunk handler
        self._info: StreamInfo | None = None  # the info _rows/_factors were computed for
        self._rows: np.ndarray | None = None
        self._factors: np.ndarray | None = None
        self._logged_at = -float("inf")
        self._unlogged = 0
        self._incomplete_logged_at = -float("inf")
        # Observers of the raw features (live calibration): tap(stream, windows, vectors) after each push.
        self._taps: dict[str, Callable[..., None]] = {}

    # -- worker thread -----------------------------------------------------------------------------

    def _on_status(self, status: dict[str, Any]) -> None:
        info = self.lsl.info
        if info is not None and info is not self._info:
            with self._serving:
                self._configure(info)

    def _input_map(self, info: StreamInfo, spec) -> tuple[np.ndarray, np.ndarray]:
        """Rows of ``info``'s channels in ``spec``'s order and their unit factors; ValueError if it cannot feed it."""
        if abs(info.sfreq - spec.sfreq) > 1e-6 * spec.sfreq:
            raise ValueError(
                f"the stream runs at {info.sfreq:g} Hz but the '{self.modality}' model needs {spec.sfreq:g} Hz; "
                f"send the signal at {spec.sfreq:g} Hz (the service does not resample) or attach a model "
                f"trained at {info.sfreq:g} Hz."
            )
        rows = map_channels(info.channels, spec.channels)
        return rows, channel_factors([info.units[r] for r in rows], spec)

    def _configure(self, info: StreamInfo) -> None:
        """Map the stream's channels and units to the spec's for a new connection; reset the pipeline."""
        self._info = info
        self._rows = self._factors = None
        self.pipeline.reset()
        try:
            rows, factors = self._input_map(info, self.graph.feature_spec)
        except ValueError as err:
            message = f"stream name={info.name!r} source_id={info.source_id!r} cannot feed {self.loaded.ref}/{self.modality}: {err}"
            with self._lock:
                changed, self._config_error = message != self._config_error, message
            if changed:
                logger.error("%s: %s", self.id, message)
            return
        self._rows = rows
        self._factors = None if np.all(factors == 1.0) else factors[:, np.newaxis]
        with self._lock:
            self._config_error = None
        logger.info(
            "%s: %s/%s on stream name=%r (%d of %d channels used, unit factors %s)",
            self.id,
            self.loaded.ref,
            self.modality,
            info.name,
            len(rows),
            info.n_channels,
            "1" if self._factors is None else np.unique(factors).tolist(),
        )

    def _samples_wanted(self) -> int:
        with self._serving:  # swap() may replace the pipeline from another thread
            if self._rows is None:
                return 1  # not feeding the pipeline: keep draining the inlet chunk by chunk
            return self.pipeline.samples_until_next_vector

    def _on_chunk(self, data: np.ndarray, timestamps: np.ndarray) -> None:
        received = time.perf_counter()
        try:
            with self._serving:
                self._process(data, timestamps, received)
        except Exception as err:  # never into the LSL worker
            self._note_failure(err)

    def _process(self, data: np.ndarray, timestamps: np.ndarray, received: float) -> None:
        info = self.lsl.info
        if info is not None and info is not self._info:
            self._configure(info)
        if self._rows is None:
            return  # this connection cannot feed the model; last_error says why
        x = data[self._rows]
        if self._factors is not None:
            x = x * self._factors
        incomplete = self.pipeline.n_incomplete_segments_
        ready = self.pipeline.push(x, timestamps)
        if self.pipeline.n_incomplete_segments_ > incomplete:
            self._note_incomplete()
        for tap in list(self._taps.values()):
            try:
                tap(self, ready, self.pipeline.last_vectors_)
            except Exception as err:  # a calibration's failure must not cost the stream its states
                self._note_failure(err)
        if not ready:
            return
        t_features = time.perf_counter()
        windows = np.stack([w.window for w in ready])  # (n, T, D)
        probabilities = self.engine.predict(self.loaded.ref, self.modality, windows)
        t_inference = time.perf_counter()
        if self.metrics is not None:
            self.metrics.observe_inference(t_inference - t_features, len(ready))
        stale = self.lsl.stale
        for window, probs in zip(ready, probabilities, strict=True):
            now = time.perf_counter()
            state = EmotionState(
                label=self.class_names[int(np.argmax(probs))],
                probabilities={name: float(p) for name, p in zip(self.class_names, probs, strict=True)},
                modality=self.modality,
                model=self.model_ref,
                stream_id=self.id,
                lsl_time=window.lsl_time,
                wall_time=time.time(),
                data_age_s=self.lsl.clock() - window.lsl_time,  # the worker's clock, as its stale flag
                stale=stale,
                latency_ms=1e3 * (now - received),
                timing=Timing(
                    features_ms=1e3 * (t_features - received),
                    inference_ms=1e3 * (t_inference - t_features),
                    total_ms=1e3 * (now - received),
                ),
            )
            self.hub.publish(state)
            with self._lock:
                self._n_states += 1
                self._runtime_error = None
            if self.metrics is not None:
                self.metrics.state_emitted(self.id)

    def _note_incomplete(self) -> None:
        """Warn (at most once per ``_LOG_EVERY_S``) that gaps keep windows from completing."""
        now = time.monotonic()
        if now - self._incomplete_logged_at < _LOG_EVERY_S:
            return
        self._incomplete_logged_at = now
        spec = self.graph.feature_spec
        logger.warning(
            "%s: %d gap-free stretch(es) ended before a window completed (%d gap(s) since connecting); a window "
            "needs %.3g s without a gap. If the source's timestamps jitter more than the model's jitter_s "
            "(%.3g s), it gets no states: fix the source's timestamps or use a model whose spec tolerates it.",
            self.id,
            self.pipeline.n_incomplete_segments_,
            self.pipeline.n_gaps_,
            self.pipeline.seconds_needed,
            spec.jitter_s,
        )

    def _note_failure(self, err: Exception) -> None:
        message = f"processing a chunk failed ({type(err).__name__}: {err})"
        now = time.monotonic()
        with self._lock:
            self._runtime_error = message
            due = now - self._logged_at >= _LOG_EVERY_S
            if due:
                self._logged_at, unlogged, self._unlogged = now, self._unlogged, 0
            else:
                self._unlogged += 1
        if due:
            logger.error(
                "%s: %s (%d more since the last report); the stream goes on.",
                self.id,
                message,
                unlogged,
                exc_info=err,
            )

    def _serve(self, loaded: LoadedModel, graph: ModalityGraph) -> None:
        """Name ``loaded``'s ``graph`` as this stream's model (at attach, and by :meth:`swap`)."""
        self.loaded, self.graph = loaded, graph
        self.model_ref = ModelRef(name=loaded.bundle.manifest.name, version=loaded.bundle.manifest.version)
        self.class_names = tuple(loaded.bundle.manifest.class_names)

    # -- any thread --------------------------------------------------------------------------------

    def swap(self, loaded: LoadedModel, graph: ModalityGraph) -> bool:
        """Serve this stream with another model from the next chunk on, without reconnecting.

        With the same feature spec, ``T`` and spacing the live state is kept (only the normalisation
        changes, see :meth:`~signals.pipeline.FeaturePipeline.set_normalisation`), so the next
        window comes one hop after the last one; otherwise the pipeline starts afresh for the new
        spec. Returns whether the feature state was kept.

        Raises
        ------
        ValueError
            The new model's spec needs another gap rule than the running acquisition worker's, or
            the connected stream cannot feed it (rate, channels, units); nothing changes.
        """
        spec = graph.feature_spec
        with self._serving:  # concurrent swaps and the worker see one model at a time
            old = self.graph
            if (spec.gap_factor, spec.jitter_s) != (old.feature_spec.gap_factor, old.feature_spec.jitter_s):
                raise ValueError(
                    f"{loaded.ref}/{graph.modality} treats timestamp gaps differently (gap_factor "
                    f"{spec.gap_factor:g}, jitter_s {spec.jitter_s:g}) from the running stream's model (gap_factor "
                    f"{old.feature_spec.gap_factor:g}, jitter_s {old.feature_spec.jitter_s:g}); detach the stream "
                    "and attach it again with the new model."
                )
            keep = (spec, graph.seq_len, graph.spacing_s) == (old.feature_spec, old.seq_len, old.spacing_s)
            if keep:
                self.pipeline.set_normalisation(graph.normalisation)
            else:
                pipeline = graph.feature_pipeline(live=True)  # ValueError: not computable live
                if self._info is not None:
                    self._input_map(self._info, spec)  # ValueError before anything changes
            self._serve(loaded, graph)
            if not keep:
                self.pipeline = pipeline
                if self._info is not None:
                    self._configure(self._info)
        return keep

    def add_tap(self, key: str, tap: Callable[..., None]) -> None:
        """Call ``tap(stream, windows, vectors)`` on the worker thread after every chunk's push.

        ``windows`` are the :class:`~signals.pipeline.WindowReady` the chunk completed (raw features
        in ``.features``), ``vectors`` the raw extractor vectors it produced
        (:attr:`~signals.pipeline.FeaturePipeline.last_vectors_`). A tap must be quick; its
        exceptions count as a failed chunk.
        """
        with self._serving:
            self._taps[key] = tap

    def remove_tap(self, key: str) -> None:
        """Forget a tap (no error if it is not there)."""
        with self._serving:
            self._taps.pop(key, None)

    @property
    def unusable(self) -> bool:
        """True while the connected source cannot feed the model (rate, channels, units): no states will come."""
        with self._lock:
            return self._config_error is not None

    def public(self) -> StreamPublic:
        status = self.lsl.status()
        info = status["info"]
        with self._lock:
            n_states = self._n_states
            unusable = self._config_error is not None
            failing = self._runtime_error is not None  # cleared by the next state
            error = self._config_error or status["last_error"] or self._runtime_error
        return StreamPublic(
            id=self.id,
            modality=self.modality,
            model=self.model_ref,
            follows_latest=self.follows_latest,
            selector=self.request.selector.model_dump(exclude_none=True),
            health=_health(status["connected"], status["stale"], unusable, failing),
            connected=status["connected"],
            stale=status["stale"],
            data_age_s=status["data_age_s"],
            effective_srate=status["effective_srate"],
            n_reconnects=status["n_reconnects"],
            n_gaps=self.pipeline.n_gaps_,
            n_incomplete_segments=self.pipeline.n_incomplete_segments_,
            n_states=n_states,
            last_error=error,
            channels=None if info is None else list(info["channels"]),
            sfreq=None if info is None else info["sfreq"],
        )

    def start(self) -> None:
        self.lsl.start()

    def stop(self) -> None:
        self.lsl.stop()


class StreamManager:
    """The attached LSL streams of the service and their online inference.

    Parameters
    ----------
    engine : InferenceEngine
        Loads the models streams name and runs their windows.
    hub : StateHub
        Receives every EmotionState.
    settings : Settings
        ``default_model`` (streams that name no model), ``stale_after_s``, ``resolve_timeout_s``.
    metrics : ServiceMetrics or None
        Inference latency, states emitted and per-stream health gauges (refreshed at scrape).
    stream_factory : callable
        Builds the acquisition worker, ``stream_factory(selector, on_chunk, resolve_timeout_s=,
        stale_after_s=, gap_factor=, jitter_s=)`` (the modality's feature spec's gap rule); :class:`~service.lsl.LslStream` (tests wrap it to observe chunks).

    Notes
    -----
    Thread-safe. :meth:`attach` loads the model (blocking: call it from a plain ``def`` route or
    a thread, not from ``async def``).
    """

    def __init__(
        self,
        engine: InferenceEngine,
        hub: StateHub,
        settings: Settings,
        *,
        metrics: ServiceMetrics | None = None,
        stream_factory: Callable[..., LslStream] = LslStream,
    ):
        check_type(engine, InferenceEngine, "engine")
        check_type(hub, StateHub, "hub")
        check_type(settings, Settings, "settings")
        if not callable(stream_factory):
            raise TypeError(f"stream_factory must be callable, got {type(stream_factory).__name__} instead.")
        self.engine = engine
        self.hub = hub
        self.settings = settings
        self.metrics = check_metrics(metrics)
        self.stream_factory = stream_factory
        self._lock = threading.Lock()
        self._streams: dict[str, _AttachedStream] = {}
        self._closed = False
        if self.metrics is not None:
            self.metrics.on_scrape(self._refresh_metrics)

    def attach(
        self, request: AttachRequest, *, follow: bool | None = None, stream_id: str | None = None
    ) -> StreamPublic:
        """Attach an LSL stream and start its worker (connection happens in the background).

        Parameters
        ----------
        request : AttachRequest
            Modality, stream selector and optional model (``settings.default_model`` when None).
        follow : bool or None
            Whether the stream follows the latest version of its model (:meth:`follow`); None: when
            the model reference names no version (``name``, ``name:latest``). A caller that resolved
            ``name`` to ``name:<n>`` itself passes what the client asked for.
        stream_id : str or None
            The new stream's id; None: ``<modality>-<8 hex digits>``. A worker process given back
            a stream after a restart (:mod:`service.workers`) keeps the id its clients know.

        Returns
        -------
        StreamPublic
            The new stream (usually not yet connected).

        Raises
        ------
        TypeError
            ``request`` is not an AttachRequest.
        models.bundle.BundleError
            Unknown model or version, or the model has no such modality (a ValueError subclass).
        ValueError
            The modality's features cannot be computed live.
        RuntimeError
            The manager is closed.
        """
        check_type(request, AttachRequest, "request")
        self._check_open("attach()")
        self._check_room()  # before loading a model for nothing
        ref = request.model or self.settings.default_model
        follow = follows_latest(ref) if follow is None else bool(follow)
        loaded = self.engine.load(ref)
        graph = loaded.bundle.manifest.graph(request.modality)  # BundleError lists the bundle's modalities
        if stream_id is None:
            stream_id = f"{request.modality}-{uuid.uuid4().hex[:8]}"
        check_type(stream_id, str, "stream_id")
        stream = _AttachedStream(
            stream_id,
            request,
            loaded,
            graph,
            engine=self.engine,
            hub=self.hub,
            settings=self.settings,
            metrics=self.metrics,
            stream_factory=self.stream_factory,
            follows=follow,
        )
        with self._lock:
            self._check_open("attach()")
            self._check_room()  # again, under the lock: two attaches may race for the last place
            if stream_id in self._streams:
                raise ValueError(f"a stream with id {stream_id!r} is attached already.")
            self._streams[stream_id] = stream
        if self.metrics is not None:
            self.metrics.set_providers(loaded)
        stream.start()
        logger.info(
            "attached %s: %s, model %s%s",
            stream_id,
            request.selector.describe(),
            loaded.ref,
            " (follows the latest version)" if follow else "",
        )
        return stream.public()

    def detach(self, stream_id: str) -> None:
        """Stop and forget a stream.

        Raises
        ------
        KeyError
            No attached stream has this id (the message lists the attached ones).
        """
        with self._lock:
            stream = self._streams.pop(self._known(stream_id), None)
        stream.stop()
        if self.metrics is not None:
            self.metrics.remove_stream(stream_id)
        logger.info("detached %s", stream_id)

    def swap(self, stream_id: str, model: str, *, follow: bool | None = None) -> StreamPublic:
        """Switch an attached stream to another model without detaching it (hot swap).

        Parameters
        ----------
        stream_id : str
        model : str
            ``name[:version]`` of a model with the stream's modality.
        follow : bool or None
            Whether the stream then follows the latest version of ``model``'s name (see
            :meth:`attach`); None: when ``model`` names no version.

        Returns
        -------
        StreamPublic
            The stream, now naming the new model.

        Raises
        ------
        KeyError
            No attached stream has this id.
        models.bundle.BundleError
            Unknown model or version, or the model lacks the stream's modality (a ValueError subclass).
        ValueError
            The stream cannot be fed to the new model (see :meth:`_AttachedStream.swap`).
        """
        with self._lock:
            stream = self._streams[self._known(stream_id)]
        follow = follows_latest(model) if follow is None else bool(follow)
        loaded = self.engine.load(model)
        graph = loaded.bundle.manifest.graph(stream.modality)
        with stream._serving:  # the model and whether it follows change together (see follow())
            before = stream.model_ref
            kept = stream.swap(loaded, graph)
            stream.follows_latest = follow
        with self._lock:  # detached while it swapped: say so instead of answering for a gone stream
            if self._streams.get(stream_id) is not stream:
                raise KeyError(f"no attached stream {stream_id!r}; it was detached during the swap.")
        if self.metrics is not None:
            self.metrics.set_providers(loaded)
        logger.info(
            "%s: model %s:%d -> %s (%s%s)",
            stream_id,
            before.name,
            before.version,
            loaded.ref,
            "feature state kept" if kept else "feature state reset for the new spec",
            ", follows the latest version" if follow else "",
        )
        return stream.public()

    def followed(self) -> dict[str, set[int]]:
        """The model names that streams follow, each with the versions those streams serve now."""
        with self._lock:
            streams = list(self._streams.values())
        names: dict[str, set[int]] = {}
        for s in streams:
            ref = s.model_ref  # one attribute read: name and version of one model
            if s.follows_latest:
                names.setdefault(ref.name, set()).add(ref.version)
        return names

    def follow(
        self, loaded: LoadedModel, *, skip: Callable[[str, ModalityGraph], str | None] | None = None
    ) -> tuple[list[str], dict[str, str]]:
        """Switch every stream that follows ``loaded``'s name and serves another version to ``loaded``.

        Each switch is :meth:`_AttachedStream.swap` (between two chunks; with the same feature spec
        the next state comes one hop after the last). A stream pinned or switched to another model
        meanwhile is left alone: whether it follows is checked again under its swap lock.

        Parameters
        ----------
        loaded : LoadedModel
            The version to serve (already loaded: no stream waits for a load).
        skip : callable or None
            ``skip(stream_id, graph) -> reason or None``, asked before each switch; a reason leaves
            the stream where it is (e.g. a calibration collecting other features on it).

        Returns
        -------
        switched : list of str
            Ids of the streams now served by ``loaded``.
        not_switched : dict of str to str
            Stream id -> why it stays on its model (no such modality, a spec it cannot feed, ``skip``'s reason).
        """
        name, version = loaded.bundle.manifest.name, loaded.bundle.manifest.version
        with self._lock:
            streams = list(self._streams.values())
        switched: list[str] = []
        not_switched: dict[str, str] = {}
        for stream in streams:
            ref = stream.model_ref
            if not stream.follows_latest or ref.name != name or ref.version == version:
                continue
            try:
                graph = loaded.bundle.manifest.graph(stream.modality)
                reason = None if skip is None else skip(stream.id, graph)  # not under the swap lock
                if reason is None:
                    with stream._serving:
                        before = stream.model_ref
                        if not stream.follows_latest or before.name != name:
                            continue  # pinned or switched by PATCH meanwhile: its client decided
                        kept = stream.swap(loaded, graph)
            except ValueError as err:  # BundleError: no such modality; ValueError: cannot feed it
                reason = str(err)
            if reason is not None:
                not_switched[stream.id] = reason
                continue
            switched.append(stream.id)
            logger.info(
                "%s: model %s:%d -> %s, its latest version (%s)",
                stream.id,
                before.name,
                before.version,
                loaded.ref,
                "feature state kept" if kept else "feature state reset for the new spec",
            )
        if switched and self.metrics is not None:
            self.metrics.set_providers(loaded)
        return switched, not_switched

    def stream(self, stream_id: str) -> _AttachedStream:
        """The attached stream object itself (for live calibration's taps); KeyError if unknown."""
        with self._lock:
            return self._streams[self._known(stream_id)]

    def get(self, stream_id: str) -> StreamPublic:
        """One attached stream and its health.

        Raises
        ------
        KeyError
            No attached stream has this id.
        """
        with self._lock:
            stream = self._streams[self._known(stream_id)]
        return stream.public()

    def list(self) -> list[StreamPublic]:
        """Every attached stream, in attach order."""
        with self._lock:
            streams = list(self._streams.values())
        return [s.public() for s in streams]

    def __contains__(self, stream_id: object) -> bool:
        return stream_id in self._streams

    def close(self) -> None:
        """Stop every stream worker (idempotent); later attaches raise RuntimeError."""
        with self._lock:
            self._closed = True
            streams, self._streams = list(self._streams.values()), {}
        for stream in streams:
            stream.stop()
        if streams:
            logger.info("stream manager closed (%d streams stopped)", len(streams))

    def _known(self, stream_id: str) -> str:
        return known_stream(stream_id, self._streams)

    def _check_room(self) -> None:
        check_room(len(self._streams), self.settings, self.metrics)

    def _check_open(self, what: str) -> None:
        check_open(self._closed, what)

    def _refresh_metrics(self) -> None:
        with self._lock:
            streams = list(self._streams.values())
        self.metrics.streams_attached.set(len(streams))
        for s in streams:
            lsl = s.lsl
            self.metrics.set_stream(s.id, lsl.effective_srate, lsl.data_age_s, lsl.stale, s.unusable)

    def __enter__(self) -> StreamManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class StreamLimitError(Exception):
    """``attach()`` refused: ``settings.max_streams`` streams are attached already (HTTP 409)."""


# The refusals of a stream manager, shared with the sharded one (service.workers): a client gets the same words
# from one process and from N workers.


def known_stream(stream_id: str, attached: Collection[str]) -> str:
    """``stream_id`` if it is among ``attached``; KeyError listing the attached ids if not (TypeError if not a str)."""
    check_type(stream_id, str, "stream_id")
    if stream_id not in attached:
        listed = ", ".join(sorted(attached)) or "none"
        raise KeyError(f"no attached stream {stream_id!r}; attached streams: {listed}.")
    return stream_id


def check_room(n_attached: int, settings: Settings, metrics: ServiceMetrics | None) -> None:
    """StreamLimitError (counted as a ``streams`` refusal) when ``n_attached`` reached ``settings.max_streams``."""
    if n_attached >= settings.max_streams:
        if metrics is not None:
            metrics.refused("streams")
        raise StreamLimitError(
            f"The service already serves {n_attached} streams, its limit (M2S_MAX_STREAMS); detach one "
            "(DELETE /streams/{id}) or raise the limit."
        )


def check_open(closed: bool, what: str) -> None:
    """RuntimeError naming ``what`` when the manager is ``closed`` (the service is shutting down)."""
    if closed:
        raise RuntimeError(f"{what} called on a closed StreamManager; the service is shutting down.")


def _health(connected: bool, stale: bool, unusable: bool, failing: bool) -> str:
    """``StreamPublic.health`` from the worker's flags (an unusable or failing stream is connected and may look
    fresh)."""
    if not connected:
        return "connecting"
    if unusable:
        return "unusable"
    if stale:
        return "stale"
    return "failing" if failing else "ok"


__all__ = ["StreamLimitError", "StreamManager", "check_open", "check_room", "follows_latest", "known_stream"]
