"""ONNX Runtime inference engine: one session per (bundle, modality), warmed up, micro-batched.

Each session has a batcher thread. Callers of :meth:`InferenceEngine.predict` put their windows on
the session's queue and wait on a future; the batcher takes the first waiting request, gathers
more for up to ``max_wait_s`` (or until ``max_batch`` windows), runs them through ONE
``session.run`` and hands each caller back its own rows. With many live streams (and REST clients)
hitting the same model, this turns many tiny runs into a few larger ones.

**A caller that finds the session idle runs its windows itself** (only with ``max_wait_s == 0``,
the default, which promises no waiting for company anyway): no queue, no batcher wake-up, no
future. Handing one window to the batcher thread and back cost two thread switches, about 1 ms
at p50 on a busy 2-core machine, ten times the 0.1 ms ``session.run`` itself. Runs of one session
never overlap (a ``busy`` lock); while one runs, new callers queue and the batcher serves them
together as soon as it is free, so batching under load is unchanged.

Session options (see :func:`session_options`): full graph optimisation; ``intra_op_num_threads``
left at ONNX Runtime's default (0: one thread per physical core), unless the process may run on
fewer CPUs than the machine has (``taskset``, a container's cpuset, a worker pinned to a core):
then one thread per CPU it may use. ONNX Runtime counts the machine's cores, and a second
intra-op thread spinning on the one core the process has only takes turns with the first. Intra-op threads spin-wait
*during* a run (``allow_spinning=1``) but stop as soon as it returns
(``session.force_spinning_stop=1``): a run of the reference EEG graph is ~100 small parallel
kernels, and waking a sleeping thread for each one cost more than the kernels (batch 1 on
2 cores: 1.27 ms without spinning, 0.87 ms with; ``benchmarks/inference.py``), while threads
spinning *between* the sporadic runs of live streams would steal the cores that LSL acquisition
and feature extraction need.

The provider each session really uses is read back from ``session.get_providers()[0]``: ONNX
Runtime silently falls back to CPU when, e.g., the CUDA libraries do not match.

Never imports torch.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

from models.bundle import BundleError
from models.repository import Bundle, ModelRepository, parse_model_ref
from signals._checks import check_range, check_type, ensure_int

logger = logging.getLogger(__name__)

INPUT_NAME = "window"
OUTPUT_NAME = "probabilities"
_CPU = "CPUExecutionProvider"
_CUDA = "CUDAExecutionProvider"
_STOP = object()  # queue sentinel: finish what was queued before it, then exit


def default_providers() -> list[str]:
    """CUDA then CPU when this onnxruntime build offers CUDA, else CPU only."""
    return [_CUDA, _CPU] if _CUDA in ort.get_available_providers() else [_CPU]


def _resolve_providers(providers: Sequence[str] | None) -> list[str]:
    """Validate a preference list against this onnxruntime build; None = :func:`default_providers`."""
    if providers is None:
        return default_providers()
    if isinstance(providers, str) or not isinstance(providers, Sequence):
        raise TypeError(
            f"providers must be a list of provider names such as ['CUDAExecutionProvider', "
            f"'CPUExecutionProvider'] or None, got {type(providers).__name__} instead."
        )
    providers = list(providers)
    if not providers:
        raise ValueError(
            "providers is empty; pass None for the automatic choice (CUDA if available, else CPU)."
        )
    known = ort.get_all_providers()
    unknown = [p for p in providers if p not in known]
    if unknown:
        raise ValueError(f"unknown execution provider(s) {unknown}; onnxruntime knows {known}.")
    available = ort.get_available_providers()
    usable = [p for p in providers if p in available]
    if not usable:
        raise ValueError(
            f"none of the requested providers {providers} is available in this onnxruntime build "
            f"(available: {available}); install the matching build (e.g. onnxruntime-gpu for CUDA) "
            "or pass None for the automatic choice."
        )
    missing = [p for p in providers if p not in available]
    if missing:
        logger.warning(
            "execution provider(s) %s not available in this onnxruntime build; using %s", missing, usable
        )
    return usable


def usable_cpus() -> int:
    """How many CPUs this process may run on (its affinity: taskset, a container's cpuset), else the machine's."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def session_options(intra_op_threads: int | None = None) -> ort.SessionOptions:
    """The options of every session the engine creates (see the module docstring for why).

    Parameters
    ----------
    intra_op_threads : int or None
        ONNX Runtime intra-op threads per session (e.g. a worker process's share of the CPUs); None: ORT's
        default (one per physical core), or one per CPU this process may use when it may use fewer.
    """
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if intra_op_threads is not None:
        intra_op_threads = ensure_int(intra_op_threads, "intra_op_threads")
        if intra_op_threads < 1:
            raise ValueError(f"intra_op_threads must be >= 1 thread or None, got {intra_op_threads}.")
        options.intra_op_num_threads = intra_op_threads
    else:
        # intra_op_num_threads stays 0 (ORT default: physical cores) unless this process may use fewer CPUs.
        allowed = usable_cpus()
        if allowed < (os.cpu_count() or allowed):
            options.intra_op_num_threads = allowed
    # Spin within a run, never between runs.
    options.add_session_config_entry("session.intra_op.allow_spinning", "1")
    options.add_session_config_entry("session.force_spinning_stop", "1")
    return options


@dataclass(frozen=True)
class LoadedModel:
    """A bundle whose sessions are created and warmed up.

    Attributes
    ----------
    bundle : models.repository.Bundle
        The verified bundle (folder and manifest).
    providers : dict of str to str
        Modality -> execution provider actually in use by its session (e.g. ``"CPUExecutionProvider"``).
    """

    bundle: Bundle
    providers: dict[str, str]

    @property
    def ref(self) -> str:
        """``name:version``."""
        return self.bundle.ref


@dataclass(frozen=True)
class SessionStats:
    """Counters of one (bundle, modality) session since load (warm-up not included).

    Attributes
    ----------
    n_runs : int
        ``session.run`` calls made by the batcher.
    n_requests : int
        Requests served (one per :meth:`InferenceEngine.predict` chunk).
    n_windows : int
        Windows inferred.
    max_batch_seen : int
        Largest batch (windows) run so far.
    total_run_s : float
        Time spent in ``session.run``, in s.
    warmup_s : float
        Duration of the warm-up run at load, in s.
    """

    n_runs: int
    n_requests: int
    n_windows: int
    max_batch_seen: int
    total_run_s: float
    warmup_s: float


class _Request:
    __slots__ = ("future", "windows")

    def __init__(self, windows: np.ndarray):
        self.windows = windows
        self.future: Future[np.ndarray] = Future()


class _BatchedSession:
    """One ORT session with its request queue and batcher thread."""

    def __init__(
        self,
        bundle: Bundle,
        modality: str,
        providers: list[str],
        *,
        max_batch: int,
        max_wait_s: float,
        intra_op_threads: int | None = None,
    ):
        graph = bundle.manifest.graph(modality)
        self.label = f"{bundle.ref}/{modality}"
        self.shape = (graph.seq_len, graph.dim)
        self.n_classes = len(bundle.manifest.class_names)
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.session = ort.InferenceSession(
            str(bundle.graph_path(modality)),
            sess_options=session_options(intra_op_threads),
            providers=providers,
        )
        self.provider = self.session.get_providers()[0]
        self._check_signature()
        self.warmup_s = self._warm_up()
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self.stopped = False
        self._busy = threading.Lock()  # held while session.run executes: runs never overlap
        self._stats_lock = threading.Lock()
        self._n_runs = self._n_requests = self._n_windows = self._max_batch_seen = 0
        self._total_run_s = 0.0
        self._thread = threading.Thread(target=self._serve, name=f"m2s-batcher[{self.label}]", daemon=True)
        self._thread.start()

    def _check_signature(self) -> None:
        inputs = {i.name: i for i in self.session.get_inputs()}
        outputs = {o.name for o in self.session.get_outputs()}
        if INPUT_NAME not in inputs or OUTPUT_NAME not in outputs:
            raise BundleError(
                f"graph {self.label} has inputs {sorted(inputs)} and outputs {sorted(outputs)}; an m2s bundle "
                f"graph takes {INPUT_NAME!r} and returns {OUTPUT_NAME!r}. Re-export it with training.export."
            )
        dims = inputs[INPUT_NAME].shape[1:]
        fixed = tuple(d if isinstance(d, int) else None for d in dims)
        if len(fixed) != 2 or any(f is not None and f != s for f, s in zip(fixed, self.shape, strict=True)):
            raise BundleError(
                f"graph {self.label} expects windows of shape (batch, {', '.join(map(str, dims))}) but the "
                f"manifest says (batch, {self.shape[0]}, {self.shape[1]}); the bundle is inconsistent."
            )

    def _warm_up(self) -> float:
        """One zero-window run so the first real request does not pay for lazy initialisation."""
        start = time.perf_counter()
        (out,) = self.session.run([OUTPUT_NAME], {INPUT_NAME: np.zeros((1, *self.shape), np.float32)})
        elapsed = time.perf_counter() - start
        if out.shape != (1, self.n_classes):
            raise BundleError(
                f"graph {self.label} returned shape {out.shape} for one window, but the manifest has "
                f"{self.n_classes} classes; the bundle is inconsistent."
            )
        logger.info("session %s ready on %s (warm-up %.1f ms)", self.label, self.provider, 1e3 * elapsed)
        return elapsed

    def submit(self, windows: np.ndarray) -> Future[np.ndarray]:
        """Queue windows for the next batch (the caller holds the engine's state lock, as :meth:`stop`'s)."""
        if self.stopped:  # a request queued after _STOP would never be answered
            raise RuntimeError(f"{self.label} was unloaded; load the model again.")
        request = _Request(windows)
        self._queue.put(request)
        return request.future

    def claim(self) -> bool:
        """Take the session for an inline run when nothing is queued and no run is busy (never blocks)."""
        return self._queue.empty() and self._busy.acquire(blocking=False)

    def run_claimed(self, parts: list[np.ndarray]) -> list[np.ndarray]:
        """Run ``parts`` in the calling thread after a successful :meth:`claim`; releases the claim."""
        try:
            return [self._execute(windows, 1) for windows in parts]
        finally:
            self._busy.release()

    def stop(self) -> None:
        """Serve what is queued, then end the batcher thread (the caller holds the engine's state lock)."""
        self.stopped = True
        self._queue.put(_STOP)

    def join(self, timeout: float | None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def stats(self) -> SessionStats:
        with self._stats_lock:
            return SessionStats(
                n_runs=self._n_runs,
                n_requests=self._n_requests,
                n_windows=self._n_windows,
                max_batch_seen=self._max_batch_seen,
                total_run_s=self._total_run_s,
                warmup_s=self.warmup_s,
            )

    def _serve(self) -> None:
        carry: _Request | None = None  # a request that did not fit into the previous batch
        stopping = False
        while not stopping:
            first = carry if carry is not None else self._queue.get()
            carry = None
            if first is _STOP:
                break
            batch, rows = [first], len(first.windows)
            deadline = time.monotonic() + self.max_wait_s
            with self._busy:  # after an inline run ends; whatever queued meanwhile joins this batch
                while rows < self.max_batch:
                    remaining = deadline - time.monotonic()
                    try:
                        item = (
                            self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
                        )
                    except queue.Empty:
                        break
                    if item is _STOP:
                        stopping = True  # run what was queued before close(), then exit
                        break
                    if rows + len(item.windows) > self.max_batch:
                        carry = item
                        break
                    batch.append(item)
                    rows += len(item.windows)
                self._run(batch, rows)
        # Nothing can be queued after _STOP (the engine refuses new requests first); this is a safeguard.
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not _STOP:
                item.future.set_exception(
                    RuntimeError("the inference engine was closed before this request ran.")
                )

    def _execute(self, windows: np.ndarray, n_requests: int) -> np.ndarray:
        """One ``session.run`` (caller holds ``_busy``); counts it. ORT failures become RuntimeError."""
        start = time.perf_counter()
        try:
            (probs,) = self.session.run([OUTPUT_NAME], {INPUT_NAME: windows})
        except Exception as err:
            logger.exception("inference failed on %s for a batch of %d windows", self.label, len(windows))
            raise RuntimeError(f"inference failed on {self.label}: {err}") from err
        elapsed = time.perf_counter() - start
        with self._stats_lock:
            self._n_runs += 1
            self._n_requests += n_requests
            self._n_windows += len(windows)
            self._max_batch_seen = max(self._max_batch_seen, len(windows))
            self._total_run_s += elapsed
        return probs

    def _run(self, batch: list[_Request], rows: int) -> None:
        windows = batch[0].windows if len(batch) == 1 else np.concatenate([r.windows for r in batch])
        try:
            probs = self._execute(windows, len(batch))
        except RuntimeError as err:  # an ORT failure must reach every caller, not kill the batcher
            for r in batch:
                r.future.set_exception(RuntimeError(str(err)))
            return
        offset = 0
        for r in batch:
            n = len(r.windows)
            r.future.set_result(probs[offset : offset + n].copy())
            offset += n


class InferenceEngine:
    """ONNX Runtime sessions for the bundles of a model repository, with micro-batching.

    Parameters
    ----------
    repository : models.repository.ModelRepository
        Where bundles are loaded from (checksums are verified at load).
    providers : sequence of str or None
        Execution providers in order of preference; None = ``CUDAExecutionProvider`` then
        ``CPUExecutionProvider`` when this onnxruntime build offers CUDA, else CPU only. Names this
        build cannot use are dropped with a warning; if none is usable a ValueError says so.
    max_batch : int
        Most windows in one ``session.run``; a batch is flushed as soon as it is full.
    max_wait_s : float
        How long (s) a batch waits for more requests after its first one; 0 = take only what is
        already queued (the default: requests arriving while a run is busy still batch together;
        measured on 2 cores, 0 gave 6086 windows/s from 16 threads vs 3336 with 2 ms, and a lone
        caller 0.32 ms instead of 2.46 ms). This is the latency a lone caller pays for batching.
    intra_op_threads : int or None
        ONNX Runtime intra-op threads of each session (see :func:`session_options`); None: the default.
        Worker processes (``M2S_WORKERS=N``) pass their share of the CPUs, so N workers do not start
        N x cores spinning threads.

    Notes
    -----
    Thread-safe: :meth:`load` and :meth:`predict` may be called from any thread. :meth:`load` is
    idempotent (a loaded ``name:version`` is returned from the cache). Call :meth:`close` (or use
    the engine as a context manager) to stop the batcher threads.
    """

    def __init__(
        self,
        repository: ModelRepository,
        *,
        providers: Sequence[str] | None = None,
        max_batch: int = 256,
        max_wait_s: float = 0.0,
        intra_op_threads: int | None = None,
    ):
        check_type(repository, ModelRepository, "repository")
        session_options(intra_op_threads)  # validated now, not at the first load
        max_batch = ensure_int(max_batch, "max_batch")
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1 window, got {max_batch}.")
        max_wait_s = float(check_range(max_wait_s, "max_wait_s", low=0, unit="s"))
        self.repository = repository
        self.providers = _resolve_providers(providers)
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.intra_op_threads = intra_op_threads
        self._models: dict[str, LoadedModel] = {}
        self._sessions: dict[tuple[str, str], _BatchedSession] = {}
        # Embedding graphs, created on first use (calibration fits only): (session, lock) per (ref, modality).
        self._embedders: dict[tuple[str, str], tuple[ort.InferenceSession, threading.Lock]] = {}
        self._load_lock = threading.Lock()  # serialises loads: one set of sessions per name:version
        self._state_lock = threading.Lock()  # guards _closed against concurrent predict/close
        self._closed = False

    # -- loading -----------------------------------------------------------------------------------

    def load(self, ref: str) -> LoadedModel:
        """Load ``name[:version]`` (latest when no version): verify, create and warm up every session.

        Parameters
        ----------
        ref : str
            Model reference, e.g. ``"m2s-synthetic-demo"`` or ``"m2s-synthetic-demo:1"``.

        Returns
        -------
        LoadedModel
            The bundle and, per modality, the execution provider actually in use.

        Raises
        ------
        models.bundle.BundleError
            Unknown model or version, invalid manifest, checksum mismatch, or a graph that does not
            match its manifest (a ValueError subclass).
        RuntimeError
            The engine is closed.
        """
        check_type(ref, str, "ref")
        self._check_open("load()")
        with self._load_lock:
            self._check_open("load()")
            path = self.repository.resolve(ref)
            key = f"{path.parent.name}:{path.name}"
            if key in self._models:
                return self._models[key]
            bundle = self.repository.load(key)
            sessions: dict[str, _BatchedSession] = {}
            try:
                for modality, graph in bundle.manifest.graphs.items():
                    if not graph.reproducible_online:
                        logger.warning(
                            "%s/%s was trained on features the live path does not reproduce exactly (e.g. offline "
                            "smoothing or a trial-baseline subtraction: reproducible_online is false in its "
                            "manifest); live predictions will not match its reported accuracy.",
                            bundle.ref,
                            modality,
                        )
                    sessions[modality] = _BatchedSession(
                        bundle,
                        modality,
                        self.providers,
                        max_batch=self.max_batch,
                        max_wait_s=self.max_wait_s,
                        intra_op_threads=self.intra_op_threads,
                    )
            except BaseException:
                for s in sessions.values():
                    s.stop()
                raise
            loaded = LoadedModel(bundle=bundle, providers={m: s.provider for m, s in sessions.items()})
            for modality, s in sessions.items():
                self._sessions[(key, modality)] = s
                if s.provider != self.providers[0]:
                    logger.warning(
                        "%s/%s runs on %s although %s was requested first (ONNX Runtime fell back).",
                        key,
                        modality,
                        s.provider,
                        self.providers[0],
                    )
            self._models[key] = loaded  # published last: predict sees a model only when all sessions exist
            logger.info("loaded %s: %s", key, loaded.providers)
            return loaded

    def unload(self, ref: str) -> bool:
        """Forget the loaded ``name:version`` and end its sessions once they served what is queued.

        For versions nothing uses any more (the poller unloads the ones it replaced, so that a service
        taking new versions for days does not keep every one). A later :meth:`predict` on it raises
        ValueError; :meth:`load` loads it again. Returns whether it was loaded.
        """
        check_type(ref, str, "ref")
        with self._load_lock:
            loaded = self._models.pop(ref, None)
            if loaded is None:
                return False
            with self._state_lock:  # predict() submits under this lock: nothing is queued after the stop
                sessions = [self._sessions.pop(k) for k in list(self._sessions) if k[0] == ref]
                for session in sessions:
                    session.stop()
            for key in [k for k in self._embedders if k[0] == ref]:
                del self._embedders[key]
        logger.info("unloaded %s (%d session(s))", ref, len(sessions))
        return True

    @property
    def models(self) -> dict[str, LoadedModel]:
        """Loaded models by ``name:version`` (a copy)."""
        return dict(self._models)

    def get(self, ref: str) -> LoadedModel:
        """The loaded model ``name[:version]`` (highest loaded version when no version is given).

        Raises
        ------
        ValueError
            The reference is malformed or names no loaded model; the message lists the loaded ones.
        """
        check_type(ref, str, "ref")
        name, version = parse_model_ref(ref)
        models = self._models
        if version is None:
            versions = [m.bundle.manifest.version for m in models.values() if m.bundle.manifest.name == name]
            key = f"{name}:{max(versions)}" if versions else None
        else:
            key = f"{name}:{version}"
        if key is None or key not in models:
            loaded = ", ".join(sorted(models)) or "none"
            raise ValueError(
                f"model {ref!r} is not loaded; loaded models: {loaded}. Load it with load({ref!r}) first."
            )
        return models[key]

    # -- inference ---------------------------------------------------------------------------------

    def predict(self, ref: str, modality: str, windows: np.ndarray) -> np.ndarray:
        """Class probabilities for normalised windows, micro-batched with concurrent callers.

        Parameters
        ----------
        ref : str
            A loaded model, ``name[:version]`` (highest loaded version when no version is given).
        modality : str
            One of the bundle's modalities, e.g. ``"eeg"``.
        windows : array, shape (n, T, D)
            ``n`` windows of ``T`` feature vectors of length ``D`` (the manifest's ``seq_len`` and
            ``dim``), already normalised with the manifest statistics. Converted to float32; not modified.

        Returns
        -------
        probabilities : ndarray of float32, shape (n, n_classes)
            One row per window, in the manifest's ``class_names`` order; rows sum to 1.

        Raises
        ------
        TypeError
            ``windows`` is not numeric.
        ValueError
            Unknown model or modality, wrong shape, empty, or non-finite values; the message says what to fix.
        RuntimeError
            The engine is closed, or ONNX Runtime failed.
        """
        check_type(modality, str, "modality")
        loaded = self.get(ref)
        manifest = loaded.bundle.manifest
        if modality not in manifest.graphs:
            raise ValueError(
                f"model {loaded.ref} has no {modality!r} model; its modalities are {sorted(manifest.graphs)}."
            )
        session = self._sessions.get((loaded.ref, modality))
        if session is None:
            raise ValueError(f"model {loaded.ref} was unloaded (a newer version replaced it); load it again.")
        windows = self._check_windows(windows, session.shape, f"{loaded.ref}/{modality}")
        # A large request is split so that no run exceeds max_batch windows.
        parts = [windows[i : i + self.max_batch] for i in range(0, len(windows), self.max_batch)]
        with self._state_lock:
            self._check_open("predict()")
            if session.stopped:
                raise ValueError(
                    f"model {loaded.ref} was unloaded (a newer version replaced it); load it again."
                )
            inline = self.max_wait_s == 0 and session.claim()
            if not inline:
                futures = [session.submit(part) for part in parts]
        if inline:
            parts = session.run_claimed(parts)
        else:
            parts = [f.result() for f in futures]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def embed(self, ref: str, modality: str, windows: np.ndarray) -> np.ndarray:
        """Shared embeddings of normalised windows through the bundle's embedding graph.

        Not micro-batched (calibration fits call it with all their windows at once); the session
        is created on first use and kept.

        Parameters
        ----------
        ref : str
            A loaded model, ``name[:version]``.
        modality : str
        windows : array, shape (n, T, D)
            As for :meth:`predict`.

        Returns
        -------
        embeddings : ndarray of float32, shape (n, embedding_dim)
        """
        check_type(modality, str, "modality")
        loaded = self.get(ref)
        manifest = loaded.bundle.manifest
        graph = manifest.graph(modality)
        windows = self._check_windows(windows, (graph.seq_len, graph.dim), f"{loaded.ref}/{modality}")
        key = (loaded.ref, modality)
        with self._load_lock:
            self._check_open("embed()")
            if key not in self._embedders:
                options = session_options(1)  # calibration only: leave the other cores to the live streams
                session = ort.InferenceSession(
                    str(loaded.bundle.graph_path(modality, embedding=True)),
                    sess_options=options,
                    providers=self.providers,
                )
                self._embedders[key] = (session, threading.Lock())
            session, lock = self._embedders[key]
        out_name = session.get_outputs()[0].name
        parts = []
        with lock:
            for i in range(0, len(windows), self.max_batch):
                (z,) = session.run([out_name], {INPUT_NAME: windows[i : i + self.max_batch]})
                parts.append(z)
        z = parts[0] if len(parts) == 1 else np.concatenate(parts)
        if z.shape != (len(windows), manifest.embedding_dim):
            raise BundleError(
                f"the embedding graph of {loaded.ref}/{modality} returned shape {z.shape}; the manifest says "
                f"embedding_dim {manifest.embedding_dim}."
            )
        return z

    @staticmethod
    def _check_windows(windows: np.ndarray, shape: tuple[int, int], label: str) -> np.ndarray:
        t, d = shape
        layout = f"(n, {t}, {d})"
        if isinstance(windows, (str, bytes)) or windows is None:
            raise TypeError(
                f"windows must be an array of numbers of shape {layout}, got {type(windows).__name__}."
            )
        arr = np.asarray(windows)
        if arr.dtype.kind not in "biuf":
            raise TypeError(
                f"windows must be an array of real numbers of shape {layout}, got dtype {arr.dtype}; "
                "convert it to float32."
            )
        if arr.ndim != 3 or arr.shape[1:] != (t, d):
            hint = " For a single window, pass windows[np.newaxis]." if arr.shape == (t, d) else ""
            raise ValueError(
                f"{label} takes windows of shape {layout} (n windows of {t} feature vectors of {d} values), "
                f"got shape {arr.shape}.{hint}"
            )
        if arr.shape[0] == 0:
            raise ValueError(f"windows is empty (shape {arr.shape}); pass at least one window.")
        with np.errstate(over="ignore"):  # values beyond float32 range become inf: refused below
            arr = np.ascontiguousarray(arr, dtype=np.float32)
        finite = np.isfinite(arr)
        if not finite.all():
            bad = np.flatnonzero(~finite.all(axis=(1, 2)))
            raise ValueError(
                f"windows contain {int(arr.size - finite.sum())} NaN or infinite value(s) (windows "
                f"{bad[:5].tolist()}{'…' if len(bad) > 5 else ''}); features must be finite and fit in float32. "
                "Drop those windows or fix the feature extraction."
            )
        return arr

    # -- lifecycle ---------------------------------------------------------------------------------

    def stats(self) -> dict[tuple[str, str], SessionStats]:
        """Counters per (``name:version``, modality) session."""
        return {key: s.stats() for key, s in list(self._sessions.items())}

    def close(self, timeout: float = 5.0) -> None:
        """Serve what is already queued, then stop every batcher thread (idempotent).

        Parameters
        ----------
        timeout : float
            Seconds to wait for each batcher thread to finish.
        """
        with self._state_lock:
            if self._closed:
                return
            self._closed = True
        with self._load_lock:
            sessions = list(self._sessions.values())
        for s in sessions:
            s.stop()
        stuck = [s.label for s in sessions if not s.join(timeout)]
        if stuck:
            logger.warning("batcher thread(s) %s did not stop within %.1f s", stuck, timeout)
        logger.info("inference engine closed (%d sessions)", len(sessions))

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._closed

    def _check_open(self, what: str) -> None:
        if self._closed:
            raise RuntimeError(f"{what} called on a closed InferenceEngine; create a new engine.")

    def __enter__(self) -> InferenceEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = [
    "INPUT_NAME",
    "OUTPUT_NAME",
    "InferenceEngine",
    "LoadedModel",
    "SessionStats",
    "default_providers",
    "session_options",
    "usable_cpus",
]
