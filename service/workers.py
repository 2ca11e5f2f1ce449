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
- **A command that timed out is reconciled when it completes late**: a late attach (no record) is
  detached again, a late swap or follow updates the record. A stream deleted while its worker restarts
  is detached from the new worker before that one takes commands again. A re-attach that times out
  leaves that stream ``connecting`` with why (its late answer attaches it) and goes on with the others.
  After :data:`QUARANTINE_AFTER` quick deaths in a row, the stream attached last to that worker is
  quarantined (not attached again; ``failing`` with why in ``last_error``) until it is detached.
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
from service.streams import check_open, check_room, follows_latest, known_stream
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
#: After this many quick deaths in a row, the stream attached last to the dying worker is quarantined.
QUARANTINE_AFTER = 3


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
    #: Called as ``late(ok, result_or_error)`` (on the reader thread) when the answer comes after its caller
    #: gave up waiting: a command that timed out still ran in the worker (an attach, a swap).
    late: Callable[[bool, Any], None] | None = None
    abandoned: bool = False


@dataclass
class _Record:
    """What the API process knows of an attached stream: enough to attach it again to a new worker."""

    request: AttachRequest  # model: the 'name:version' it serves (as of the last attach, swap or follow)
    follow: bool
    worker: int
    last: StreamPublic
    attached_at: float = field(default_factory=time.monotonic)  # its last (re)attach was sent
    note: str | None = None  # why it is not on its worker although that one runs (shown as last_error)
    quarantined: str | None = None  # why it is not attached again (its worker kept dying with it)


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
            if p.abandoned:
                continue  # the worker is gone, and with it what the late command did
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
            return  # its caller gave up waiting (timeout) and nothing is to be done with a late answer
        if p.abandoned:
            try:
                p.late(ok, payload if ok else rebuild_error(payload))
            except Exception:
                logger.exception("worker %d: handling the late answer to %s failed", self.index, p.op)
            return
        if ok:
            p.result = payload
        else:
            p.error = rebuild_error(payload)
        p.done.set()

    def send(
        self,
        request_id: int,
        op: str,
        kwargs: dict[str, Any],
        late: Callable[[bool, Any], None] | None = None,
    ) -> _Pending:
        """Send one command; the answer arrives in the returned :class:`_Pending`.

        ``late(ok, result_or_error)`` is called with an answer that arrives after :meth:`wait` gave up.
        """
        p = _Pending(op, late=late)
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
                if not p.done.is_set():  # (the answer may have come just now)
                    p.abandoned = True
                    if p.late is None:
                        self.pending.pop(request_id, None)
                    raise WorkerUnavailable(
                        f"worker {self.index} (pid {self.pid}) did not answer {p.op} within {timeout:g} s; retry "
                        "later (its log says what it is doing)."
                    )
        if p.error is not None:
            raise p.error
        return p.result

    def close_pipe(self, timeout: float = 30.0) -> None:
        """Close the pipe once the reader has stopped (the process ended: EOF), never under a busy reader.

        A closed descriptor's number is reused by the next pipe; a reader still reading the old one could
        swallow the new worker's messages. A reader that does not stop within ``timeout`` keeps its pipe open
        (a descriptor leaked, logged) rather than risk that.
        """
        if self.reader is not threading.current_thread():
            self.reader.join(timeout)
        if self.reader.is_alive():
            logger.warning(
                "worker %d: the reader of its ended process is still busy; its pipe is left open", self.index
            )
            return
        try:
            self.conn.close()
        except OSError:
            pass


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
        self._detach_later: dict[int, set[str]] = {}  # worker -> ids detached while it restarted
        self._dropped_logged = [0.0] * n_workers  # when a drop of states was last logged, per worker
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
            self.metrics.set_workers_alive(n_workers)
            self.metrics.on_scrape(self._refresh_metrics)
        logger.info(
            "%d worker processes ready (pids %s)", n_workers, ", ".join(str(w.pid) for w in self._workers)
        )

    # -- worker processes --------------------------------------------------------------------------

    def _spawn(self, index: int) -> _Worker:
        parent_end, child_end = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=worker_main,
            args=(
                index,
                self._child_settings,
                child_end,
                logging.getLogger("service").getEffectiveLevel(),
                self.n_workers,
            ),
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
        elif kind == "dropped":  # the worker's queue of states overflowed: this process reads too slowly
            n = message[1]
            if self.metrics is not None:
                self.metrics.worker_states_dropped(n)
            now = time.monotonic()
            if now - self._dropped_logged[worker.index] > 10.0:
                self._dropped_logged[worker.index] = now
                logger.warning(
                    "worker %d dropped %d states: the API process did not read them fast enough (CPU-starved?); "
                    "m2s_worker_states_dropped_total counts them all",
                    worker.index,
                    n,
                )

    def _call(
        self,
        worker: _Worker,
        op: str,
        timeout: float = COMMAND_TIMEOUT_S,
        late: Callable[[bool, Any], None] | None = None,
        **kwargs: Any,
    ) -> Any:
        if worker.index in self._restarting or not worker.ready.is_set():
            raise WorkerUnavailable(f"worker {worker.index} is restarting; retry in a few seconds.")
        request_id = next(self._ids)
        return worker.wait(request_id, worker.send(request_id, op, kwargs, late), timeout)

    def _call_each(
        self,
        op: str,
        timeout: float = COMMAND_TIMEOUT_S,
        late: Callable[[_Worker], Callable[[bool, Any], None]] | None = None,
        **kwargs: Any,
    ) -> dict[int, Any]:
        """Send ``op`` to every running worker at once; by index, each one's answer or the exception it raised.

        Workers restarting (or whose pipe closed before the send) are left out. ``late(worker)`` makes the
        handler of an answer that comes after the timeout.
        """
        sent = []
        for worker in list(self._workers):
            if worker.index in self._restarting or not worker.ready.is_set():
                continue
            request_id = next(self._ids)
            try:
                sent.append(
                    (
                        worker,
                        request_id,
                        worker.send(request_id, op, kwargs, None if late is None else late(worker)),
                    )
                )
            except WorkerUnavailable:
                continue
        answers: dict[int, Any] = {}
        deadline = time.monotonic() + timeout
        for worker, request_id, p in sent:
            try:
                answers[worker.index] = worker.wait(request_id, p, max(0.0, deadline - time.monotonic()))
            except Exception as err:
                answers[worker.index] = err
        return answers

    def _call_all(self, op: str, timeout: float = COMMAND_TIMEOUT_S, **kwargs: Any) -> dict[int, Any]:
        """Send ``op`` to every running worker at once; their answers by index (those unavailable left out).

        A worker's error is raised (a running worker that did not answer in time: WorkerUnavailable).
        """
        answers = {}
        for index, answer in self._call_each(op, timeout, **kwargs).items():
            if isinstance(answer, WorkerUnavailable) and self._workers[index].gone.is_set():
                logger.debug("%s", answer)  # ended meanwhile: its streams show as restarting
            elif isinstance(answer, Exception):
                raise answer
            else:
                answers[index] = answer
        return answers

    def _detach_orphan(self, worker: _Worker, stream_id: str, why: str) -> None:
        """Detach ``stream_id`` from ``worker`` in a thread of its own (called from a reader thread)."""

        def run() -> None:
            logger.warning("%s; detaching it from worker %d", why, worker.index)
            try:
                self._call_unchecked(worker, "detach", stream_id=stream_id)
            except KeyError:
                pass
            except Exception as err:
                logger.error("%s could not be detached from worker %d: %s", stream_id, worker.index, err)

        threading.Thread(target=run, name=f"m2s-worker-{worker.index}-orphan", daemon=True).start()

    def _late_attach(self, worker: _Worker, stream_id: str) -> Callable[[bool, Any], None]:
        """Handler of an attach answered after its timeout (503): the stream runs, but no record has it."""

        def late(ok: bool, result: Any) -> None:
            if not ok:
                return
            with self._lock:
                record = self._records.get(stream_id)
                ours = record is not None and record.worker == worker.index
            if not ours:
                self._detach_orphan(
                    worker, stream_id, f"{stream_id} was attached after its attach timed out (HTTP 503)"
                )

        return late

    def _late_swap(self, worker: _Worker, stream_id: str, follow: bool) -> Callable[[bool, Any], None]:
        """Handler of a swap answered after its timeout: the worker switched, so the record follows."""

        def late(ok: bool, public: Any) -> None:
            if not ok:
                return
            with self._lock:
                record = self._records.get(stream_id)
                if record is None or record.worker != worker.index:
                    return
                ref = f"{public.model.name}:{public.model.version}"
                record.request = record.request.model_copy(update={"model": ref})
                record.follow, record.last = follow, public
            logger.warning("%s was switched to %s after its swap timed out (HTTP 503)", stream_id, ref)

        return late

    def _late_follow(self, ref: str) -> Callable[[_Worker], Callable[[bool, Any], None]]:
        """Handlers of follow answers that came after the timeout: the records of the switched streams follow."""

        def for_worker(worker: _Worker) -> Callable[[bool, Any], None]:
            def late(ok: bool, result: Any) -> None:
                if ok:
                    self._set_models(result[0], ref, worker.index)
                    logger.warning(
                        "worker %d switched %s to %s after the load timed out", worker.index, result[0], ref
                    )

            return late

        return for_worker

    def _set_models(self, stream_ids, ref: str, index: int | None = None) -> None:
        with self._lock:
            for stream_id in stream_ids:
                record = self._records.get(stream_id)
                if record is not None and (index is None or record.worker == index):
                    record.request = record.request.model_copy(update={"model": ref})

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
        # The reader has seen the pipe close (it fails what was waiting for an answer) before the pipe is closed:
        # the next pipe may get the same descriptor number.
        dead.close_pipe()
        started_at = dead.started_at
        while not self._stop.is_set():
            quick = time.monotonic() - started_at < STABLE_S
            self._quick_deaths[index] = self._quick_deaths[index] + 1 if quick else 0
            if self._quick_deaths[index] >= QUARANTINE_AFTER:
                self._quarantine(index, started_at)
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
        while True:  # streams detached while it restarted may have been attached again: detach them there
            with self._lock:
                later = self._detach_later.pop(index, set())
                if not later:
                    self._restarting.discard(index)  # with the lock: a detach sees either mark or new worker
                    break
            for stream_id in sorted(later):
                try:
                    self._call_unchecked(worker, "detach", stream_id=stream_id)
                except KeyError:
                    pass  # never attached again
                except Exception as err:
                    logger.error("%s could not be detached from worker %d: %s", stream_id, index, err)

    def _quarantine(self, index: int, since: float) -> None:
        """Stop attaching again the stream attached last to worker ``index`` (since ``since``): it may kill it."""
        with self._lock:
            candidates = [
                (r.attached_at, sid)
                for sid, r in self._records.items()
                if r.worker == index and r.quarantined is None and r.attached_at >= since
            ]
            if not candidates:
                return
            stream_id = max(candidates)[1]
            record = self._records[stream_id]
            record.quarantined = (
                f"quarantined: its worker process ({index}) ended {self._quick_deaths[index]} times in a row within "
                f"{STABLE_S:g} s of its start, the last time soon after this stream was attached to it, so it is not "
                "attached again. Check its source and model, then detach it (DELETE /streams/{id}) and attach it again"
            )
        logger.error(
            "%s is quarantined (not attached again): worker process %d ended %d times in a row soon after it was "
            "attached; detach it and check its source",
            stream_id,
            index,
            self._quick_deaths[index],
        )

    def _reattach(self, worker: _Worker) -> None:
        """Attach the streams of ``worker``'s index to it again, with their ids (called before it takes others).

        A stream whose attach times out is left to its late answer (attached then, or detached if forgotten
        meanwhile) and shows ``connecting`` with why; the others are attached meanwhile.
        """
        for stream_id, record in list(self._records.items()):
            if record.worker != worker.index or record.quarantined is not None:
                continue
            request_id = next(self._ids)
            record.attached_at = time.monotonic()
            try:
                public = worker.wait(
                    request_id,
                    worker.send(
                        request_id,
                        "attach",
                        {"request": record.request, "follow": record.follow, "stream_id": stream_id},
                        self._late_reattach(worker, stream_id, record),
                    ),
                    LOAD_TIMEOUT_S,
                )
            except WorkerUnavailable as err:
                if worker.gone.is_set():  # it died too: the monitor starts another, which tries again
                    logger.error("re-attaching the streams of worker %d stopped: %s", worker.index, err)
                    return
                record.note = (
                    f"being attached again to worker process {worker.index} (pid {worker.pid}), which has not "
                    f"answered within {LOAD_TIMEOUT_S:g} s; it runs once it does (its log says what it is doing)"
                )
                logger.error("%s is not attached again yet: %s", stream_id, err)
                continue
            except Exception as err:  # e.g. its model was removed from the repository meanwhile
                self._forget_unattachable(stream_id, err)
                continue
            with self._lock:
                if self._records.get(stream_id) is record:
                    record.last, record.note = public, None
                    continue
            try:  # detached while it was being attached again
                self._call_unchecked(worker, "detach", stream_id=stream_id)
            except Exception:
                pass
        logger.info("worker process %d (pid %s) serves its streams again", worker.index, worker.pid)

    def _late_reattach(self, worker: _Worker, stream_id: str, record: _Record) -> Callable[[bool, Any], None]:
        def late(ok: bool, result: Any) -> None:
            if not ok:
                self._forget_unattachable(stream_id, result)
                return
            with self._lock:
                ours = self._records.get(stream_id) is record
                if ours:
                    record.last, record.note = result, None
            if ours:
                logger.info("%s is attached again to worker %d (late)", stream_id, worker.index)
            else:
                self._detach_orphan(
                    worker, stream_id, f"{stream_id} was attached again after it was detached"
                )

        return late

    def _forget_unattachable(self, stream_id: str, err: BaseException) -> None:
        logger.error(
            "stream %s could not be attached again after its worker process ended, so it is detached: %s",
            stream_id,
            err,
        )
        with self._lock:
            self._records.pop(stream_id, None)
        if self.metrics is not None:
            self.metrics.remove_stream(stream_id)

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
            w.close_pipe(5.0)

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
            check_open(self._closed, "attach()")
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
            attached_at = time.monotonic()
            public = self._call(
                worker,
                "attach",
                LOAD_TIMEOUT_S,
                self._late_attach(worker, stream_id),
                request=request,
                follow=follow,
                stream_id=stream_id,
            )
            with self._lock:
                served = request.model_copy(update={"model": f"{public.model.name}:{public.model.version}"})
                self._records[stream_id] = _Record(served, follow, worker.index, public, attached_at)
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
        while True:
            record, worker = self._locate(stream_id)
            try:
                self._call(worker, "detach", stream_id=stream_id)
            except KeyError:
                pass  # not on the worker (quarantined, or not attached again yet): forgetting it is all there is
            except WorkerUnavailable:
                with self._lock:
                    if record.worker in self._restarting:
                        # Forgotten here, so it is not attached again; if it was already, the restart detaches it
                        # before its worker takes commands again.
                        self._detach_later.setdefault(record.worker, set()).add(stream_id)
                    elif self._workers[record.worker] is not worker:
                        continue  # restarted meanwhile (and maybe attached there again): detach it there
                    elif not worker.gone.is_set():
                        raise
            break
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
        record, worker = self._locate(stream_id)
        if record.quarantined is not None:
            raise ValueError(f"{stream_id} is {record.quarantined}.")
        follow = follows_latest(model) if follow is None else bool(follow)
        public = self._call(
            worker,
            "swap",
            LOAD_TIMEOUT_S,
            self._late_swap(worker, stream_id, follow),
            stream_id=stream_id,
            model=model,
            follow=follow,
        )
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
        Every worker's answer is collected: the records of the streams a worker switched are updated even
        when another worker fails, and the following streams of a worker that failed, did not answer in
        time or is restarting are in ``not_switched`` with the reason (they stay on, or come back on, the
        version they served; the next scan of the poller, or another load, moves them).
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
        answers = self._call_each(
            "follow", LOAD_TIMEOUT_S, self._late_follow(loaded.ref), ref=loaded.ref, skip=reasons
        )
        switched: list[str] = []
        not_switched: dict[str, str] = {}
        failed: dict[int, str] = {}
        for index, answer in answers.items():
            if isinstance(answer, Exception):
                failed[index] = f"its worker process ({index}) could not switch it: {answer}"
                logger.error("worker %d could not switch its followers to %s: %s", index, loaded.ref, answer)
                continue
            ids, refused = answer
            switched.extend(ids)
            not_switched.update(refused)
        self._set_models(switched, loaded.ref)
        with self._lock:
            for stream_id, record in self._records.items():
                if not (record.follow and parse_model_ref(record.request.model)[0] == manifest.name):
                    continue
                if record.quarantined is not None or stream_id in switched or stream_id in not_switched:
                    continue
                if parse_model_ref(record.request.model)[1] == manifest.version:
                    continue  # on it already
                if record.worker in failed:
                    not_switched[stream_id] = reasons.get(stream_id, failed[record.worker])
                elif (
                    record.worker not in answers
                    and parse_model_ref(record.request.model)[1] != manifest.version
                ):
                    not_switched[stream_id] = (
                        f"its worker process ({record.worker}) is being restarted; it comes back on "
                        f"{record.request.model}, load again once it runs"
                    )
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
        record, worker = self._locate(stream_id)
        if record.quarantined is not None:
            return self._restarting_view(record)
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
            if public is None or record.quarantined is not None:
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
        """A stream not on its worker now: as last seen, no data (stale), and why in ``last_error``."""
        if record.quarantined is not None:
            health, why = "failing", record.quarantined
        elif record.note is not None:
            health, why = "connecting", record.note
        else:
            health, why = (
                "connecting",
                f"its worker process ({record.worker}) ended and is being restarted; the stream is attached again "
                "once it runs",
            )
        return record.last.model_copy(
            update={
                "health": health,
                "connected": False,
                "stale": True,  # no data reaches it: m2s_stream_stale says so
                "data_age_s": None,
                "effective_srate": None,
                "last_error": why,
            }
        )

    def _locate(self, stream_id: str) -> tuple[_Record, _Worker]:
        """A stream's record and the worker that holds it (KeyError listing the attached ids if unknown)."""
        with self._lock:
            record = self._records[known_stream(stream_id, self._records)]
            return record, self._workers[record.worker]

    def _check_room(self) -> None:
        check_room(len(self._records) + len(self._reserved), self.settings, self.metrics)

    def _refresh_metrics(self) -> None:
        self.metrics.set_workers_alive(sum(w.alive for w in self.workers()))
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


__all__ = [
    "BACKOFF_MAX_S",
    "BACKOFF_S",
    "COMMAND_TIMEOUT_S",
    "LOAD_TIMEOUT_S",
    "QUARANTINE_AFTER",
    "STABLE_S",
    "STOP_TIMEOUT_S",
    "ShardedStreamManager",
    "WorkerUnavailable",
    "in_process_only",
]
