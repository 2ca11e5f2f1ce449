"""Attached streams sharded across worker processes (``M2S_WORKERS >= 2``): :class:`ShardedStreamManager`.

One process holds every stream's LSL inlet, feature pipeline and inference under one GIL, so a second
core does not help it. With ``settings.workers = N >= 2`` the API process (REST, WebSocket clients, the
:class:`~service.hub.StateHub`, ``/predict``'s engine, the model poller) starts N ``spawn``-ed worker
processes (:mod:`service.worker_process`), each with its own :class:`~service.engine.InferenceEngine` on
the same repositories and providers and its own :class:`~service.streams.StreamManager`, and talks to
them over one pipe each. :class:`ShardedStreamManager` has the public interface of
:class:`~service.streams.StreamManager` that the routes, the poller and the metrics use.

Rules
-----
- **A stream goes to the worker with the fewest streams** (the lowest index on a tie). The total is
  limited by ``settings.max_streams``, checked here (:class:`~service.streams.StreamLimitError`).
- **Errors are the single process's.** A command's exception in a worker is raised here again as the
  same class (:class:`~models.bundle.BundleError`, ``ValueError``, ``KeyError``, ``TypeError``,
  :class:`~service.streams.StreamLimitError`, ``RuntimeError``) with the same message, so every route
  answers with the same status and text as with one process.
- **Every command has a timeout** (:data:`COMMAND_TIMEOUT_S`; :data:`LOAD_TIMEOUT_S` for those that may
  load a model). A worker that does not answer in time, or is restarting, raises
  :class:`WorkerUnavailable` (HTTP 503), never a hang.
- **States are serialised once, in the worker**, and sent in batches (as many as were queued since
  the last write); a reader thread per worker hands them to :meth:`StateHub.publish_text` and counts
  them (``m2s_states_emitted_total``) and the inference calls, as the in-process path does.
- **A dead worker is replaced and its streams re-attached.** A monitor thread waits on the workers'
  process sentinels. When one ends without being told to, it logs the exit code, counts it
  (``m2s_worker_restarts_total{worker=...}``), starts a new process and attaches that worker's
  streams to it again with their ids, requests, models (the version each served) and follow flags,
  so WebSocket clients get their states again without reconnecting. A worker that dies within
  :data:`STABLE_S` of its start again and again waits :data:`BACKOFF_S` × 2^k (at most
  :data:`BACKOFF_MAX_S`) before its next start instead of crash-looping. While a worker restarts,
  ``GET /streams`` shows its streams ``connecting`` with ``last_error`` saying why.
- **No orphans.** :meth:`ShardedStreamManager.close` asks each worker to stop, then joins, terminates
  and finally kills it; a worker whose API process dies (even by SIGKILL) sees its pipe close and exits.
- **Live calibration and recordings need the streams in the API process** (they tap a stream's
  features and raw chunks on its acquisition thread): :meth:`ShardedStreamManager.stream` raises, and
  the calibration and recording managers refuse with :func:`in_process_only`'s message (HTTP 409).
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import wait as wait_for_sentinels
from typing import Any

from models.bundle import ModalityGraph
from models.repository import parse_model_ref
from service.config import AttachRequest, Settings
from service.engine import LoadedModel
from service.hub import StateHub
from service.metrics import ServiceMetrics, check_metrics
from service.schemas import StreamPublic, WorkerPublic
from service.streams import StreamLimitError, follows_latest
from service.worker_process import rebuild_error, worker_main
from signals._checks import check_type

logger = logging.getLogger(__name__)

#: Longest wait for the answer to a command that loads no model (get, list, detach, followed), s.
COMMAND_TIMEOUT_S = 10.0
#: Longest wait for a command that may load a model (attach, swap, follow) and for a worker to start, s.
LOAD_TIMEOUT_S = 120.0
#: Longest :meth:`ShardedStreamManager.close` waits for a worker to stop before terminating it, s.
STOP_TIMEOUT_S = 10.0
#: A worker that dies sooner than this after its start counts as a quick death (back-off), s.
STABLE_S = 30.0
#: First back-off after the second quick death in a row; doubled for each further one, up to BACKOFF_MAX_S, s.
BACKOFF_S = 0.5
BACKOFF_MAX_S = 30.0


class WorkerUnavailable(RuntimeError):
    """A worker process did not answer in time, or is restarting (HTTP 503: retry later)."""


def in_process_only(streams: Any, feature: str, verb: str) -> str | None:
    """Why ``feature`` cannot run with ``streams`` in worker processes; None when they run in this process.

    Parameters
    ----------
    streams : StreamManager or ShardedStreamManager
    feature : str
        What needs the streams here, as the sentence's subject and verb, e.g. ``"Live calibration needs"``.
    verb : str
        What a service with one process lets one do, e.g. ``"calibrate"``.
    """
    if not isinstance(streams, ShardedStreamManager):
        return None
    return (
        f"{feature} the streams in the API process; this service runs M2S_WORKERS={streams.n_workers} worker "
        f"processes. Run a service with M2S_WORKERS=1 to {verb}."
    )


@dataclass
class _Pending:
    """One command waiting for its answer."""

    op: str
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None


@dataclass
class _Record:
    """What the API process knows of an attached stream: enough to attach it again to a new worker."""

    request: AttachRequest  # model: the 'name:version' it serves (as of the last attach, swap or follow)
    follow: bool
    worker: int
    last: StreamPublic


class _Worker:
    """The API process's side of one worker process: the process, its pipe, its reader thread."""

    def __init__(self, index: int, process, conn, on_message: Callable[[_Worker, tuple], None]):
        self.index = index
        self.process = process
        self.conn = conn
        self.pid: int | None = process.pid
        self.started_at = time.monotonic()
        self.ready = threading.Event()
        self.gone = threading.Event()  # the pipe closed: the process ended (or is ending)
        self.send_lock = threading.Lock()
        self.pending: dict[int, _Pending] = {}
        self.pending_lock = threading.Lock()
        self._on_message = on_message
        self.reader = threading.Thread(target=self._read, name=f"m2s-worker-{index}-reader", daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while True:
            try:
                kind, batch = self.conn.recv()
            except (EOFError, OSError):
                break
            except Exception:  # a message that cannot be unpickled must not end the reader
                logger.exception("worker %d: an unreadable message was dropped", self.index)
                continue
            for message in batch:
                if message[0] == "reply":
                    self._answer(message)
                elif message[0] == "ready":
                    self.pid = message[1]
                    self.ready.set()
                else:
                    try:
                        self._on_message(self, message)
                    except Exception:
                        logger.exception("worker %d: handling a %s message failed", self.index, message[0])
        self.gone.set()
        with self.pending_lock:
            pending, self.pending = self.pending, {}
        for p in pending.values():
            p.error = WorkerUnavailable(
                f"worker {self.index} (pid {self.pid}) ended while answering {p.op}; its streams are being attached "
                "to a new worker process, retry in a few seconds."
            )
            p.done.set()

    def _answer(self, message: tuple) -> None:
        _, request_id, ok, payload = message
        with self.pending_lock:
            p = self.pending.pop(request_id, None)
        if p is None:
            return  # its caller gave up waiting (timeout)
        if ok:
            p.result = payload
        else:
            p.error = rebuild_error(payload)
        p.done.set()

    def send(self, request_id: int, op: str, kwargs: dict[str, Any]) -> _Pending:
        """Send one command; the answer arrives in the returned :class:`_Pending`."""
        p = _Pending(op)
        with self.pending_lock:
            self.pending[request_id] = p
        try:
            if self.gone.is_set():
                raise OSError("pipe closed")
            with self.send_lock:
                self.conn.send((request_id, op, kwargs))
        except (OSError, ValueError):
            with self.pending_lock:
                self.pending.pop(request_id, None)
            raise WorkerUnavailable(
                f"worker {self.index} is restarting (its process ended); retry in a few seconds."
            ) from None
        return p

    def wait(self, request_id: int, p: _Pending, timeout: float) -> Any:
        """The answer to a command sent with :meth:`send`; its error raised again; WorkerUnavailable after ``timeout``."""
        if not p.done.wait(timeout):
            with self.pending_lock:
                self.pending.pop(request_id, None)
            raise WorkerUnavailable(
                f"worker {self.index} (pid {self.pid}) did not answer {p.op} within {timeout:g} s; retry later "
                "(its log says what it is doing)."
            )
        if p.error is not None:
            raise p.error
        return p.result


class ShardedStreamManager:
    """The attached LSL streams, sharded across ``settings.workers`` worker processes.

    Same public interface as :class:`~service.streams.StreamManager` (``attach``, ``detach``, ``swap``,
    ``get``, ``list``, ``followed``, ``follow``, ``in``, ``close``, context manager), plus
    :meth:`workers`. The constructor starts the workers and returns once each has loaded and warmed up
    the default model.

    Parameters
    ----------
    settings : Settings
        ``workers`` (>= 2), ``max_streams`` (in total), ``default_model``, and what the workers' engines
        and stream managers use (repositories, providers, batching, stale and resolve times).
    hub : StateHub
        Receives every EmotionState of every worker.
    metrics : ServiceMetrics or None
        States emitted, inference latency, per-stream gauges (refreshed at scrape from the workers'
        ``list`` answers), worker restarts.
    n_workers : int or None
        Worker processes; None: ``settings.workers``.

    Raises
    ------
    RuntimeError
        A worker did not start (its log says why); the others are stopped.

    Notes
    -----
    Thread-safe. Every method but :meth:`workers`, ``in`` and :meth:`stream` waits for workers'
    answers (blocking: call them from a plain ``def`` route or a thread).
    """

    def __init__(
        self,
        settings: Settings,
        hub: StateHub,
        *,
        metrics: ServiceMetrics | None = None,
        n_workers: int | None = None,
    ):
        check_type(settings, Settings, "settings")
        check_type(hub, StateHub, "hub")
        n_workers = settings.workers if n_workers is None else n_workers
        check_type(n_workers, int, "n_workers")
        if n_workers < 1:
            raise ValueError(f"n_workers must be at least 1 process, got {n_workers}.")
        self.settings = settings
        self.hub = hub
        self.metrics = check_metrics(metrics)
        self.n_workers = n_workers
        # What a worker gets: no streams to attach itself (they come from here), the streams in its own process.
        self._child_settings = settings.model_copy(update={"attach": [], "workers": 1})
        self._context = multiprocessing.get_context("spawn")
        self._lock = threading.Lock()
        self._records: dict[str, _Record] = {}  # attach order
        self._reserved: dict[str, int] = {}  # stream id -> worker, while its attach is under way
        self._ids = itertools.count(1)
        self._closed = False
        self._stop = threading.Event()
        self._restarting: set[int] = set()
        self._restarts = [0] * n_workers
        self._quick_deaths = [0] * n_workers
        self._last_exit: list[int | None] = [None] * n_workers
        starting: list[_Worker] = []
        try:
            for i in range(n_workers):  # all spawned first: they load and warm up in parallel
                starting.append(self._spawn(i))
            for w in starting:
                self._wait_ready(w)
        except BaseException:
            self._closed = True
            self._stop_all(starting)
            raise
        self._workers: list[_Worker] = starting
        self._monitor = threading.Thread(target=self._watch, name="m2s-worker-monitor", daemon=True)
        self._monitor.start()
        if self.metrics is not None:
            self.metrics.on_scrape(self._refresh_metrics)
        logger.info(
            "%d worker processes ready (pids %s)", n_workers, ", ".join(str(w.pid) for w in self._workers)
        )

    # -- worker processes --------------------------------------------------------------------------

    def _spawn(self, index: int) -> _Worker:
        parent_end, child_end = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=worker_main,
            args=(index, self._child_settings, child_end, logging.getLogger("service").getEffectiveLevel()),
            name=f"m2s-worker-{index}",
            daemon=True,
        )
        process.start()
        child_end.close()  # only the worker holds it now: its death closes the pipe here
        return _Worker(index, process, parent_end, self._on_message)

    def _wait_ready(self, worker: _Worker) -> None:
        """Block until ``worker`` has warmed up; RuntimeError if it ends or takes longer than LOAD_TIMEOUT_S."""
        deadline = time.monotonic() + LOAD_TIMEOUT_S
        while not worker.ready.wait(0.05):
            if not worker.process.is_alive() or worker.gone.is_set():
                worker.process.join(1.0)
                raise RuntimeError(
                    f"worker process {worker.index} ended while starting ({_exit_text(worker.process.exitcode)}); "
                    "its log above says why."
                )
            if time.monotonic() > deadline or self._stop.is_set():
                raise RuntimeError(
                    f"worker process {worker.index} did not load {self.settings.default_model} within "
                    f"{LOAD_TIMEOUT_S:g} s; its log above says what it is doing."
                )

    def _on_message(self, worker: _Worker, message: tuple) -> None:
        kind = message[0]
        if kind == "state":
            _, stream_id, state_json = message
            self.hub.publish_text(stream_id, state_json)
            # Not counted for a stream detached meanwhile (its series are gone).
            if self.metrics is not None and stream_id in self._records:
                self.metrics.state_emitted(stream_id)
        elif kind == "inference":
            if self.metrics is not None:
                self.metrics.observe_inference(message[1], message[2])

    def _call(self, worker: _Worker, op: str, timeout: float = COMMAND_TIMEOUT_S, **kwargs: Any) -> Any:
        if worker.index in self._restarting or not worker.ready.is_set():
            raise WorkerUnavailable(f"worker {worker.index} is restarting; retry in a few seconds.")
        request_id = next(self._ids)
        return worker.wait(request_id, worker.send(request_id, op, kwargs), timeout)

    def _call_all(self, op: str, timeout: float = COMMAND_TIMEOUT_S, **kwargs: Any) -> dict[int, Any]:
        """Send ``op`` to every running worker at once; their answers by index (those unavailable left out)."""
        sent = []
        for worker in list(self._workers):
            if worker.index in self._restarting or not worker.ready.is_set():
                continue
            request_id = next(self._ids)
            try:
                sent.append((worker, request_id, worker.send(request_id, op, kwargs)))
            except WorkerUnavailable:
                continue
        answers = {}
        deadline = time.monotonic() + timeout
        for worker, request_id, p in sent:
            try:
                answers[worker.index] = worker.wait(request_id, p, max(0.0, deadline - time.monotonic()))
            except WorkerUnavailable as err:
                if not worker.gone.is_set():
                    raise  # alive but silent: say so
                logger.debug("%s", err)
        return answers

    def _watch(self) -> None:
        """Monitor thread: restart a worker whose process ended without being told to."""
        while not self._stop.is_set():
            watched = {w.process.sentinel: w for w in list(self._workers) if w.index not in self._restarting}
            try:
                ended = wait_for_sentinels(list(watched), timeout=0.5) if watched else []
            except OSError:  # a sentinel closed by close(): the next round sees _stop
                ended = []
            if not watched:
                self._stop.wait(0.5)
            for sentinel in ended:
                worker = watched[sentinel]
                if self._stop.is_set():
                    return
                with self._lock:
                    if worker.index in self._restarting:
                        continue
                    self._restarting.add(worker.index)
                threading.Thread(
                    target=self._restart,
                    args=(worker,),
                    name=f"m2s-worker-{worker.index}-restart",
                    daemon=True,
                ).start()

    def _restart(self, dead: _Worker) -> None:
        index = dead.index
        dead.process.join(1.0)
        code = dead.process.exitcode
        self._last_exit[index] = code
        self._restarts[index] += 1
        if self.metrics is not None:
            self.metrics.worker_restarted(index)
        n_streams = sum(1 for r in list(self._records.values()) if r.worker == index)
        logger.error(
            "worker process %d (pid %s) ended (%s); starting a new one and attaching its %d stream(s) to it again",
            index,
            dead.pid,
            _exit_text(code),
            n_streams,
        )
        dead.gone.wait(2.0)  # the reader has seen the pipe close (it fails what was waiting for an answer)
        _close_quietly(dead)
        started_at = dead.started_at
        while not self._stop.is_set():
            quick = time.monotonic() - started_at < STABLE_S
            self._quick_deaths[index] = self._quick_deaths[index] + 1 if quick else 0
            delay = (
                0.0
                if self._quick_deaths[index] <= 1
                else min(BACKOFF_MAX_S, BACKOFF_S * 2 ** (self._quick_deaths[index] - 2))
            )
            if delay:
                logger.warning(
                    "worker process %d died %d times within %g s of its start; next start in %g s",
                    index,
                    self._quick_deaths[index],
                    STABLE_S,
                    delay,
                )
                if self._stop.wait(delay):
                    return
            try:
                worker = self._spawn(index)
            except Exception:  # e.g. no memory for another process: try again after the back-off
                logger.exception("worker process %d could not be started", index)
                started_at = time.monotonic()
                continue
            started_at = worker.started_at
            try:
                self._wait_ready(worker)
            except RuntimeError as err:
                logger.error("%s", err)
                self._stop_all([worker])
                continue
            with self._lock:
                if self._closed:
                    self._stop_all([worker])
                    return
                self._workers[index] = worker
            break
        else:
            return
        self._reattach(worker)
        with self._lock:
            self._restarting.discard(index)

    def _reattach(self, worker: _Worker) -> None:
        """Attach the streams of ``worker``'s index to it again, with their ids (called before it takes others)."""
        for stream_id, record in list(self._records.items()):
            if record.worker != worker.index:
                continue
            request_id = next(self._ids)
            try:
                public = worker.wait(
                    request_id,
                    worker.send(
                        request_id,
                        "attach",
                        {"request": record.request, "follow": record.follow, "stream_id": stream_id},
                    ),
                    LOAD_TIMEOUT_S,
                )
            except WorkerUnavailable as err:  # it died too: the monitor starts another, which tries again
                logger.error("re-attaching the streams of worker %d stopped: %s", worker.index, err)
                return
            except Exception as err:  # e.g. its model was removed from the repository meanwhile
                logger.error(
                    "stream %s could not be attached again after its worker process ended, so it is detached: %s",
                    stream_id,
                    err,
                )
                with self._lock:
                    self._records.pop(stream_id, None)
                if self.metrics is not None:
                    self.metrics.remove_stream(stream_id)
                continue
            with self._lock:
                if stream_id in self._records:
                    record.last = public
                    continue
            try:  # detached while it was being attached again
                self._call_unchecked(worker, "detach", stream_id=stream_id)
            except Exception:
                pass
        logger.info("worker process %d (pid %s) serves its streams again", worker.index, worker.pid)

    def _call_unchecked(
        self, worker: _Worker, op: str, timeout: float = COMMAND_TIMEOUT_S, **kwargs: Any
    ) -> Any:
        request_id = next(self._ids)
        return worker.wait(request_id, worker.send(request_id, op, kwargs), timeout)

    def _stop_all(self, workers: list[_Worker]) -> None:
        """Ask ``workers`` to stop, then join, terminate and kill what is left; close their pipes."""
        for w in workers:
            if w.process.is_alive() and not w.gone.is_set():
                try:
                    with w.send_lock:
                        w.conn.send((0, "stop", {}))
                except (OSError, ValueError):
                    pass
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for w in workers:
            w.process.join(max(0.0, deadline - time.monotonic()))
        for w in workers:
            if w.process.is_alive():
                logger.warning(
                    "worker process %d (pid %s) did not stop in time; terminating it", w.index, w.pid
                )
                w.process.terminate()
                w.process.join(2.0)
            if w.process.is_alive():
                w.process.kill()
                w.process.join(2.0)
            _close_quietly(w)

    # -- the StreamManager interface ---------------------------------------------------------------

    def attach(
        self, request: AttachRequest, *, follow: bool | None = None, stream_id: str | None = None
    ) -> StreamPublic:
        """Attach an LSL stream on the worker with the fewest streams (see :meth:`StreamManager.attach`).

        Raises
        ------
        TypeError
            ``request`` is not an AttachRequest.
        models.bundle.BundleError
            Unknown model or version, or the model has no such modality.
        ValueError
            The modality's features cannot be computed live; ``stream_id`` is attached already.
        StreamLimitError
            ``settings.max_streams`` streams are attached (all workers together).
        WorkerUnavailable
            Every worker is restarting, or the chosen one did not answer in time.
        RuntimeError
            The manager is closed.
        """
        check_type(request, AttachRequest, "request")
        ref = request.model or self.settings.default_model
        follow = follows_latest(ref) if follow is None else bool(follow)
        with self._lock:
            self._check_open("attach()")
            self._check_room()
            if stream_id is None:
                stream_id = f"{request.modality}-{uuid.uuid4().hex[:8]}"
            check_type(stream_id, str, "stream_id")
            if stream_id in self._records or stream_id in self._reserved:
                raise ValueError(f"a stream with id {stream_id!r} is attached already.")
            candidates = [w for w in self._workers if w.index not in self._restarting and w.ready.is_set()]
            if not candidates:
                raise WorkerUnavailable("every worker process is restarting; retry in a few seconds.")
            load = self._load()
            worker = min(candidates, key=lambda w: (load[w.index], w.index))
            self._reserved[stream_id] = worker.index
        try:
            public = self._call(
                worker, "attach", LOAD_TIMEOUT_S, request=request, follow=follow, stream_id=stream_id
            )
            with self._lock:
                served = request.model_copy(update={"model": f"{public.model.name}:{public.model.version}"})
                self._records[stream_id] = _Record(served, follow, worker.index, public)
        finally:
            with self._lock:
                self._reserved.pop(stream_id, None)
        logger.info("attached %s on worker process %d (pid %s)", stream_id, worker.index, worker.pid)
        return public

    def detach(self, stream_id: str) -> None:
        """Stop and forget a stream (see :meth:`StreamManager.detach`).

        Raises
        ------
        KeyError
            No attached stream has this id (the message lists the attached ones).
        WorkerUnavailable
            Its worker did not answer in time.
        """
        with self._lock:
            record = self._records[self._known(stream_id)]
            worker = self._workers[record.worker]
        try:
            self._call(worker, "detach", stream_id=stream_id)
        except KeyError:
            pass  # not on the worker (not attached again after a restart): forgetting it is all there is to do
        except WorkerUnavailable:
            if record.worker not in self._restarting and not worker.gone.is_set():
                raise
            # Restarting: forgotten here, so it is not attached again (or detached right after, see _reattach).
        with self._lock:
            self._records.pop(stream_id, None)
        if self.metrics is not None:
            self.metrics.remove_stream(stream_id)
        logger.info("detached %s", stream_id)

    def swap(self, stream_id: str, model: str, *, follow: bool | None = None) -> StreamPublic:
        """Switch an attached stream to another model without detaching it (see :meth:`StreamManager.swap`).

        Raises
        ------
        KeyError
            No attached stream has this id.
        models.bundle.BundleError
            Unknown model or version, or the model lacks the stream's modality.
        ValueError
            The stream cannot be fed to the new model.
        WorkerUnavailable
            Its worker is restarting or did not answer in time.
        """
        with self._lock:
            record = self._records[self._known(stream_id)]
            worker = self._workers[record.worker]
        follow = follows_latest(model) if follow is None else bool(follow)
        public = self._call(worker, "swap", LOAD_TIMEOUT_S, stream_id=stream_id, model=model, follow=follow)
        with self._lock:
            if self._records.get(stream_id) is record:
                ref = f"{public.model.name}:{public.model.version}"
                record.request = record.request.model_copy(update={"model": ref})
                record.follow, record.last = follow, public
        return public

    def followed(self) -> dict[str, set[int]]:
        """The model names that streams follow, each with the versions those streams serve now (all workers)."""
        names: dict[str, set[int]] = {}
        for answer in self._call_all("followed").values():
            for name, versions in answer.items():
                names.setdefault(name, set()).update(versions)
        return names

    def follow(
        self, loaded: LoadedModel, *, skip: Callable[[str, ModalityGraph], str | None] | None = None
    ) -> tuple[list[str], dict[str, str]]:
        """Switch every stream that follows ``loaded``'s name to it, in every worker (see :meth:`StreamManager.follow`).

        Each worker loads ``loaded.ref`` itself and switches its followers; ``skip`` is asked here, in the
        API process, for the streams that follow the name, and its reasons travel with the command.
        A worker that is restarting is left out: its streams come back on the version they served, and
        the next scan of the poller moves them.
        """
        manifest = loaded.bundle.manifest
        reasons: dict[str, str] = {}
        if skip is not None:
            for stream_id, record in list(self._records.items()):
                modality = record.request.modality
                if record.follow and parse_model_ref(record.request.model)[0] == manifest.name:
                    if modality in manifest.graphs:
                        reason = skip(stream_id, manifest.graphs[modality])
                        if reason is not None:
                            reasons[stream_id] = reason
        answers = self._call_all("follow", LOAD_TIMEOUT_S, ref=loaded.ref, skip=reasons)
        switched: list[str] = []
        not_switched: dict[str, str] = {}
        for ids, refused in answers.values():
            switched.extend(ids)
            not_switched.update(refused)
        with self._lock:
            for stream_id in switched:
                record = self._records.get(stream_id)
                if record is not None:
                    record.request = record.request.model_copy(update={"model": loaded.ref})
        order = list(self._records)
        switched.sort(key=lambda sid: order.index(sid) if sid in order else len(order))
        if switched and self.metrics is not None:
            self.metrics.set_providers(loaded)
        return switched, not_switched

    def stream(self, stream_id: str):
        """Not available: the stream objects live in the worker processes.

        Raises
        ------
        RuntimeError
            Always (live calibration and recordings need ``M2S_WORKERS=1``).
        """
        raise RuntimeError(
            in_process_only(self, "Live calibration and recordings need", "calibrate or record")
        )

    def get(self, stream_id: str) -> StreamPublic:
        """One attached stream and its health (while its worker restarts: as last seen, ``connecting``).

        Raises
        ------
        KeyError
            No attached stream has this id.
        WorkerUnavailable
            Its worker is running but did not answer in time.
        """
        with self._lock:
            record = self._records[self._known(stream_id)]
            worker = self._workers[record.worker]
        try:
            public = self._call(worker, "get", stream_id=stream_id)
        except WorkerUnavailable:
            if record.worker not in self._restarting and not worker.gone.is_set():
                raise
            return self._restarting_view(record)
        except KeyError:  # being attached again right now
            return self._restarting_view(record)
        record.last = public
        return public

    def list(self) -> list[StreamPublic]:
        """Every attached stream, in attach order (those of a restarting worker as last seen, ``connecting``)."""
        answers = self._call_all("list")
        by_id = {s.id: s for streams in answers.values() for s in streams}
        out = []
        for stream_id, record in list(self._records.items()):
            public = by_id.get(stream_id)
            if public is None:
                out.append(self._restarting_view(record))
            else:
                record.last = public
                out.append(public)
        return out

    def __contains__(self, stream_id: object) -> bool:
        return stream_id in self._records

    def workers(self) -> list[WorkerPublic]:
        """The worker processes: pid, whether they serve now, their streams, restarts and last exit code."""
        with self._lock:
            by_worker: dict[int, list[str]] = {}
            for stream_id, record in self._records.items():
                by_worker.setdefault(record.worker, []).append(stream_id)
            return [
                WorkerPublic(
                    index=w.index,
                    pid=w.pid,
                    alive=w.ready.is_set() and not w.gone.is_set() and w.index not in self._restarting,
                    streams=by_worker.get(w.index, []),
                    restarts=self._restarts[w.index],
                    last_exit_code=self._last_exit[w.index],
                )
                for w in self._workers
            ]

    def close(self) -> None:
        """Stop every worker process (idempotent): ``stop``, join, then terminate and kill; attaches then raise."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._stop.set()
            workers = list(self._workers)
            n_streams = len(self._records)
            self._records = {}
        self._monitor.join(5.0)
        self._stop_all(workers)
        logger.info("worker processes stopped (%d streams)", n_streams)

    def __enter__(self) -> ShardedStreamManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- helpers -----------------------------------------------------------------------------------

    def _load(self) -> dict[int, int]:
        load = dict.fromkeys(range(self.n_workers), 0)
        for record in self._records.values():
            load[record.worker] += 1
        for index in self._reserved.values():
            load[index] += 1
        return load

    def _restarting_view(self, record: _Record) -> StreamPublic:
        return record.last.model_copy(
            update={
                "health": "connecting",
                "connected": False,
                "stale": False,
                "data_age_s": None,
                "effective_srate": None,
                "last_error": f"its worker process ({record.worker}) ended and is being restarted; the stream is "
                "attached again once it runs",
            }
        )

    def _known(self, stream_id: str) -> str:
        check_type(stream_id, str, "stream_id")
        if stream_id not in self._records:
            attached = ", ".join(sorted(self._records)) or "none"
            raise KeyError(f"no attached stream {stream_id!r}; attached streams: {attached}.")
        return stream_id

    def _check_room(self) -> None:
        n = len(self._records) + len(self._reserved)
        if n >= self.settings.max_streams:
            if self.metrics is not None:
                self.metrics.refused("streams")
            raise StreamLimitError(
                f"The service already serves {n} streams, its limit (M2S_MAX_STREAMS); detach one "
                "(DELETE /streams/{id}) or raise the limit."
            )

    def _check_open(self, what: str) -> None:
        if self._closed:
            raise RuntimeError(f"{what} called on a closed StreamManager; the service is shutting down.")

    def _refresh_metrics(self) -> None:
        try:
            streams = self.list()
        except WorkerUnavailable as err:
            logger.warning("stream gauges not refreshed: %s", err)
            return
        self.metrics.streams_attached.set(len(streams))
        for s in streams:
            self.metrics.set_stream(s.id, s.effective_srate, s.data_age_s, s.stale, s.health == "unusable")


def _exit_text(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        return f"killed by signal {-code}"
    return f"exit code {code}"


def _close_quietly(worker: _Worker) -> None:
    try:
        worker.conn.close()
    except OSError:
        pass


__all__ = [
    "BACKOFF_MAX_S",
    "BACKOFF_S",
    "COMMAND_TIMEOUT_S",
    "LOAD_TIMEOUT_S",
    "STABLE_S",
    "STOP_TIMEOUT_S",
    "ShardedStreamManager",
    "WorkerUnavailable",
    "in_process_only",
]
