"""The main loop of one worker process (``M2S_WORKERS >= 2``): a :class:`~service.streams.StreamManager` of its own.

The API process (:class:`service.workers.ShardedStreamManager`) starts each worker with
:func:`worker_main` in a ``spawn``-ed process and talks to it over one duplex
:func:`multiprocessing.Pipe`. The worker owns an :class:`~service.engine.InferenceEngine` on the same
repositories and providers as the API process and a :class:`~service.streams.StreamManager` with its
own LSL inlets and feature pipelines; nothing but pickled messages crosses the pipe.

Protocol (every message is one pickled tuple)
---------------------------------------------
API → worker:
    ``(request_id, op, kwargs)``: ``op`` one of :data:`OPS`; ``"stop"`` closes the manager and the
    engine, answers and ends the process.
Worker → API, in batches ``("batch", [message, ...])`` (one ``send`` per batch, as many messages as
queued since the last send, so a busy worker pays one pipe write for many states):
    ``("ready", pid)`` once the default model is loaded and warmed up;
    ``("reply", request_id, True, result)`` or ``("reply", request_id, False, (error class, args))``:
    the answer to one command, ``error class`` the first of :data:`ERROR_NAMES` in the exception's
    MRO (the API process raises that class again with the same arguments, so routes answer exactly
    as in one process);
    ``("state", stream_id, state_json)``: an EmotionState, serialised once, here;
    ``("inference", seconds, n_windows)``: one ``engine.predict`` call of a stream (for the metrics);
    ``("dropped", n)``: n states and inference events dropped since the last batch (the API process read
    too slowly).

Rules
-----
- **The parent's end of the pipe is the lifeline.** EOF on it (the API process exited or was
  killed) stops the streams and ends the process: a killed API process leaves no worker behind.
- Reads (:data:`READ_OPS`) run on a small thread pool of their own and changes on one thread, so model
  loads queued behind each other never hold up ``list`` (metrics scrapes) or ``get``.
- One sender thread writes to the pipe (a :class:`multiprocessing.connection.Connection` is not safe
  for concurrent writers); publishing threads only append to its queues and never block. Replies go
  before states; states wait in a bounded queue (:data:`MAX_QUEUED_STATES`, the oldest dropped and
  counted in a ``("dropped", n)`` message) and go at most :data:`MAX_BATCH` a write. A sender that
  fails ends the process, which the API process then restarts.
- ONNX Runtime gets ``CPUs allowed // n_workers`` intra-op threads per worker (:func:`intra_op_threads`).
"""

from __future__ import annotations

import collections
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from typing import Any

from models.bundle import BundleError
from models.repository import ModelRepository
from service.config import Settings
from service.engine import InferenceEngine, usable_cpus
from service.hub import StateHub
from service.metrics import ServiceMetrics
from service.schemas import EmotionState
from service.streams import StreamLimitError, StreamManager

logger = logging.getLogger(__name__)

#: Commands a worker answers (see the module docstring).
OPS = ("attach", "detach", "swap", "get", "list", "follow", "followed", "stop")
#: Commands that change nothing: they run on a pool of their own, never behind a model load.
READ_OPS = ("get", "list", "followed")
#: Exception classes that cross the pipe as themselves (most specific first); others arrive as RuntimeError.
ERROR_NAMES = ("StreamLimitError", "BundleError", "KeyError", "TypeError", "ValueError", "RuntimeError")
_ERROR_CLASSES = {
    "StreamLimitError": StreamLimitError,
    "BundleError": BundleError,
    "KeyError": KeyError,
    "TypeError": TypeError,
    "ValueError": ValueError,
    "RuntimeError": RuntimeError,
}
#: Most states and inference events a worker keeps queued for a slow API process; older ones are dropped.
MAX_QUEUED_STATES = 5000
#: Most states and inference events in one pipe write.
MAX_BATCH = 500
#: Exit code of a worker whose sender thread failed (the API process restarts it).
SENDER_DIED_EXIT = 70
_EXIT_GRACE_S = 10.0  # after the parent is gone, the streams get this long to stop before the process ends


def error_payload(err: BaseException) -> tuple[str, tuple]:
    """``(class name, args)`` of ``err`` as it crosses the pipe: its nearest class of :data:`ERROR_NAMES`."""
    names = [cls.__name__ for cls in type(err).__mro__]
    name = next((n for n in ERROR_NAMES if n in names), None)
    args = err.args if all(isinstance(a, (str, int, float)) for a in err.args) else (str(err),)
    if name is None:
        return "RuntimeError", (f"{type(err).__name__}: {err}",)
    return name, args


def rebuild_error(payload: tuple[str, tuple]) -> Exception:
    """The exception :func:`error_payload` describes, raised again in the API process."""
    name, args = payload
    return _ERROR_CLASSES.get(name, RuntimeError)(*args)


class _Outbox:
    """Everything the worker sends, written to the pipe by one thread in batches.

    Replies and ``ready`` go first, in order, never dropped. States and inference events wait in a
    queue of at most ``max_states`` messages: when the API process reads too slowly, the oldest are
    dropped and the next batch says how many (``("dropped", n)``). A batch holds at most ``max_batch``
    states and events. A message that cannot be pickled is dropped with a log line (a reply: sent as
    an error answer instead); anything else that stops the sender ends the process (exit code
    :data:`SENDER_DIED_EXIT`) so the API process restarts the worker instead of waiting on a silent one.
    """

    def __init__(
        self,
        conn: Connection,
        *,
        max_states: int = MAX_QUEUED_STATES,
        max_batch: int = MAX_BATCH,
        start: bool = True,
    ):
        self.conn = conn
        self.max_batch = max_batch
        self._urgent: collections.deque = collections.deque()
        self._states: collections.deque = collections.deque(maxlen=max_states)
        self._dropped = 0
        self._closing = False
        self._cond = threading.Condition()
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self._run, name="m2s-worker-sender", daemon=True)
        if start:
            self.thread.start()

    def put(self, message: tuple) -> None:
        """Queue ``message``; a state or inference event may push out the oldest one (counted)."""
        with self._cond:
            if message[0] in ("state", "inference"):
                if len(self._states) == self._states.maxlen:
                    self._dropped += 1  # the deque drops its oldest
                self._states.append(message)
            else:
                self._urgent.append(message)
            self._cond.notify()

    def _take(self) -> list | None:
        """The next batch (urgent first, then states up to max_batch, then the drop count); None: stop."""
        with self._cond:
            while not (self._urgent or self._states or self._dropped or self._closing):
                self._cond.wait()
            batch = list(self._urgent)
            self._urgent.clear()
            for _ in range(min(self.max_batch, len(self._states))):
                batch.append(self._states.popleft())
            if self._dropped:
                batch.append(("dropped", self._dropped))
                self._dropped = 0
            if not batch and self._closing:
                return None
            return batch

    def _run(self) -> None:
        try:
            while True:
                batch = self._take()
                if batch is None or not self._send(batch):
                    return
        except BaseException:  # never a silent worker: the API process sees the exit and restarts it
            logger.critical("the sender thread failed; ending the worker process", exc_info=True)
            logging.shutdown()
            os._exit(SENDER_DIED_EXIT)

    def _send(self, batch: list) -> bool:
        try:
            self.conn.send(("batch", batch))
            return True
        except (OSError, EOFError):  # the parent is gone; the main loop sees EOF and exits
            self.closed.set()
            return False
        except Exception:  # pickling failed before a byte was written: send what can be, one by one
            if self.conn.closed:
                self.closed.set()
                return False
        for message in batch:
            try:
                self.conn.send(("batch", [message]))
            except (OSError, EOFError):
                self.closed.set()
                return False
            except Exception as err:
                logger.error("a %s message could not be sent and was dropped: %s", message[0], err)
                if message[0] == "reply":
                    answer = (
                        "reply",
                        message[1],
                        False,
                        ("RuntimeError", (f"the answer could not be sent: {err}",)),
                    )
                    self.conn.send(("batch", [answer]))
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Send what is queued, then stop the thread."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        if self.thread.is_alive():
            self.thread.join(timeout)


class PipeHub(StateHub):
    """A :class:`StateHub` that sends each state to the API process instead of to WebSocket clients."""

    def __init__(self, outbox: _Outbox):
        super().__init__(1)
        self._outbox = outbox

    def publish(self, state: EmotionState) -> None:
        """Serialise ``state`` once and queue it for the API process, whose hub fans it out."""
        self._outbox.put(("state", state.stream_id, state.model_dump_json()))

    def publish_text(self, stream_id: str, state_json: str) -> None:
        self._outbox.put(("state", stream_id, state_json))


class PipeMetrics(ServiceMetrics):
    """The stream manager's metrics events, forwarded to the API process's :class:`ServiceMetrics`.

    Only what :class:`~service.streams.StreamManager` records per chunk crosses the pipe (inference
    duration and windows; a state counts as emitted when the API process receives it). Per-stream
    gauges are refreshed by the API process from ``list`` answers; providers from its own engine.
    """

    def __init__(self, outbox: _Outbox):
        super().__init__()
        self._outbox = outbox

    def observe_inference(self, seconds: float, n_windows: int) -> None:
        self._outbox.put(("inference", seconds, n_windows))

    def state_emitted(self, stream_id: str) -> None:
        pass  # counted by the API process as the state arrives

    def on_scrape(self, callback) -> None:
        pass  # nothing is scraped here

    def set_providers(self, loaded) -> None:
        pass

    def remove_stream(self, stream_id: str) -> None:
        pass

    def refused(self, limit: str) -> None:
        pass  # the API process counts refusals (it checks the total first)


class _Worker:
    """One worker's resources and command handlers."""

    def __init__(self, index: int, settings: Settings, outbox: _Outbox, intra_op_threads: int | None = None):
        self.index = index
        self.settings = settings
        self.outbox = outbox
        self.engine = InferenceEngine(
            ModelRepository(settings.model_repository, settings.calibrated_repository),
            providers=settings.providers,
            max_batch=settings.batch_max_windows,
            max_wait_s=settings.batch_max_wait_s,
            intra_op_threads=intra_op_threads,
        )
        self.manager = StreamManager(self.engine, PipeHub(outbox), settings, metrics=PipeMetrics(outbox))
        self.default_ref = self.engine.load(settings.default_model).ref  # warm-up: the first attach is quick

    def handle(self, op: str, kwargs: dict[str, Any]) -> Any:
        """Run one command (reads and changes are called from their own executors, see :func:`worker_main`)."""
        if op in READ_OPS:
            return self._read(op, kwargs)
        return self._change(op, kwargs)

    def _read(self, op: str, kwargs: dict[str, Any]) -> Any:
        if op == "get":
            return self.manager.get(kwargs["stream_id"])
        if op == "list":
            return self.manager.list()
        return self.manager.followed()

    def _change(self, op: str, kwargs: dict[str, Any]) -> Any:
        manager = self.manager
        if op == "attach":
            return manager.attach(kwargs["request"], follow=kwargs["follow"], stream_id=kwargs["stream_id"])
        if op == "detach":
            manager.detach(kwargs["stream_id"])
            self._unload_unserved()
            return None
        if op == "swap":
            public = manager.swap(kwargs["stream_id"], kwargs["model"], follow=kwargs["follow"])
            self._unload_unserved()
            return public
        if op == "follow":
            loaded = self.engine.load(kwargs["ref"])
            reasons: dict[str, str] = kwargs["skip"]
            result = manager.follow(loaded, skip=lambda sid, graph: reasons.get(sid))
            self._unload_unserved()
            return result
        raise ValueError(f"unknown worker command {op!r}; one of {', '.join(OPS)}.")

    def _unload_unserved(self) -> None:
        """Unload what no stream of this worker serves (the default model stays: the next attach wants it)."""
        served = {f"{s.model.name}:{s.model.version}" for s in self.manager.list()}
        for ref in list(self.engine.models):
            if ref not in served and ref != self.default_ref and self.engine.unload(ref):
                logger.info("worker %d: model %s unloaded, served by no stream here", self.index, ref)

    def close(self) -> None:
        self.manager.close()
        self.engine.close()


def intra_op_threads(n_workers: int) -> int:
    """ONNX Runtime intra-op threads of one of ``n_workers`` workers: its share of the CPUs the process may use."""
    return max(1, usable_cpus() // n_workers)


def worker_main(
    index: int, settings: Settings, conn: Connection, log_level: int = logging.INFO, n_workers: int = 1
) -> None:
    """Run worker ``index`` until the API process says ``stop`` or goes away (see the module docstring).

    Parameters
    ----------
    index : int
        The worker's number in the API process (for logs).
    settings : Settings
        The service's settings (``attach`` empty: the API process attaches the streams).
    conn : multiprocessing.connection.Connection
        The worker's end of the duplex pipe to the API process.
    log_level : int
        Level of the ``service`` loggers here (the API process's).
    n_workers : int
        Worker processes of the service: each gets ``max(1, CPUs allowed // n_workers)`` ONNX Runtime
        intra-op threads (:func:`intra_op_threads`), not one per core each.
    """
    logging.basicConfig(
        level=logging.WARNING, format=f"%(asctime)s m2s-worker-{index} %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("service").setLevel(log_level)
    outbox = _Outbox(conn)
    try:
        worker = _Worker(index, settings, outbox, intra_op_threads(n_workers))
    except Exception as err:  # the API process sees the exit code and says so; the reason is logged here
        logger.exception("worker %d could not start: %s", index, err)
        outbox.close()
        raise SystemExit(3) from None
    outbox.put(("ready", os.getpid()))
    # Reads on a pool of their own; changes one at a time on one thread (unloading what no stream serves must
    # not race a load), so a queue of model loads never holds up get/list (GET /streams, metrics scrapes).
    reads = ThreadPoolExecutor(max_workers=2, thread_name_prefix=f"m2s-worker-{index}-read")
    changes = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"m2s-worker-{index}-change")

    def run(request_id: int, op: str, kwargs: dict[str, Any]) -> None:
        try:
            outbox.put(("reply", request_id, True, worker.handle(op, kwargs)))
        except Exception as err:
            outbox.put(("reply", request_id, False, error_payload(err)))

    stop_id = None
    while True:
        try:
            request_id, op, kwargs = conn.recv()
        except (EOFError, OSError):
            logger.warning("worker %d: the API process is gone; stopping its streams", index)
            break
        if op == "stop":
            stop_id = request_id
            break
        (reads if op in READ_OPS else changes).submit(run, request_id, op, kwargs)
    # Whatever happens below, the process ends: a stream that does not stop must not keep it alive.
    watchdog = threading.Timer(_EXIT_GRACE_S, os._exit, args=(1,))
    watchdog.daemon = True
    watchdog.start()
    reads.shutdown(wait=True, cancel_futures=True)
    changes.shutdown(wait=True, cancel_futures=True)
    worker.close()
    if stop_id is not None:
        outbox.put(("reply", stop_id, True, None))
    outbox.close()
    logging.shutdown()


__all__ = [
    "ERROR_NAMES",
    "MAX_BATCH",
    "MAX_QUEUED_STATES",
    "OPS",
    "READ_OPS",
    "SENDER_DIED_EXIT",
    "intra_op_threads",
    "PipeHub",
    "PipeMetrics",
    "error_payload",
    "rebuild_error",
    "worker_main",
]
