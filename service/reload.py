"""Hot reload: streams that follow a model move to each new version of it, without a restart.

:class:`ModelPoller` is Triton's model-control-mode ``poll`` for the service's repositories (the
read-only one and the writable one of calibrated models). Every ``settings.model_poll_interval_s``
(0: never; ``POST /v2/repository/models/{name}/load`` still works) its thread looks at the names
that attached streams follow (:meth:`~service.streams.StreamManager.followed`) and, for each whose
latest version is not what all its followers serve:

1. loads that version (:meth:`~service.engine.InferenceEngine.load`: schema, checksums, sessions,
   warm-up), **before** any stream is touched, so no stream waits for a load;
2. switches every following stream to it (:meth:`~service.streams.StreamManager.follow`: between
   two chunks; with the same feature spec the next state comes one hop after the last, so no
   state is missed). Each switch is logged.
3. unloads the versions of that name it replaced once no stream serves them (nor a running
   calibration as its base), so memory and threads do not grow with every version.

Rules
-----
- **A version is a folder holding manifest.json** (:func:`models.repository._versions_in`); writers
  build it in a temporary folder and rename it into place, so a version is complete when it appears.
- **The latest version is the target**, as Triton's default version policy: a removed latest
  version moves followers back to the one before it.
- **A broken version is never served.** Its load failure (bad checksum, invalid manifest, a graph
  ONNX Runtime refuses) is logged once with its reason and remembered with the folder's
  fingerprint (its files' names, sizes and modification times); the poller retries it only when
  the folder changes. Followers stay on the version they serve. An explicit load retries it anyway.
- **A stream that cannot take the new version stays where it is** (a spec its stream cannot feed,
  a modality the version lacks, a calibration collecting other features on it); why is logged once
  per stream and version, and the load route answers it.
- **Nothing raises out of the poller's thread**; a scan that fails is logged and the next one runs.
- One refresh at a time: the thread and the load route take the same lock (with a timeout).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from models.bundle import BundleError, ModalityGraph
from models.repository import parse_model_ref
from service.engine import InferenceEngine, LoadedModel
from service.streams import StreamManager
from service.workers import ShardedStreamManager
from signals._checks import check_type

logger = logging.getLogger(__name__)

#: Longest a load route waits for a refresh already running (a load warms up every session), s.
REFRESH_LOCK_TIMEOUT_S = 60.0
#: Longest :meth:`ModelPoller.close` waits for the thread to finish its refresh, s.
STOP_TIMEOUT_S = 10.0

Fingerprint = tuple


class LoadFailed(RuntimeError):
    """The latest version of a model could not be loaded; ``reason`` says why (followers stay)."""

    def __init__(self, ref: str, reason: str):
        super().__init__(f"{ref} could not be loaded: {reason}")
        self.ref = ref
        self.reason = reason


class RefreshBusy(TimeoutError):
    """Another refresh held the lock for longer than :data:`REFRESH_LOCK_TIMEOUT_S`."""


@dataclass(frozen=True)
class Refresh:
    """What one refresh of a model name did.

    Attributes
    ----------
    loaded : LoadedModel or None
        The latest version, loaded; None when nothing needed loading (no follower elsewhere) or it failed.
    switched : list of str
        Streams switched to ``loaded``.
    not_switched : dict of str to str
        Following streams left on their version, with why.
    """

    loaded: LoadedModel | None = None
    switched: list[str] = field(default_factory=list)
    not_switched: dict[str, str] = field(default_factory=dict)


def fingerprint(folder: Path) -> Fingerprint:
    """What changes when a version folder's content changes: the folder's identity and, per file, size and mtime.

    An unreadable folder gives ``()`` (a folder that reappears gets another fingerprint).
    """
    try:
        stat = folder.stat()
        files = sorted(
            (entry.name, entry.stat().st_size, entry.stat().st_mtime_ns) for entry in os.scandir(folder)
        )
    except OSError:
        return ()
    return (stat.st_ino, stat.st_mtime_ns, tuple(files))


class ModelPoller:
    """Loads new versions of the models streams follow and switches those streams (see the module docstring).

    Parameters
    ----------
    engine : InferenceEngine
        Loads versions from its repository (every root of it).
    streams : StreamManager or ShardedStreamManager
        Knows which streams follow which name, and switches them (in worker processes with ``M2S_WORKERS >= 2``).
    interval_s : float
        Seconds between two scans of the thread; 0 = no thread (explicit loads only).
    skip : callable or None
        ``skip(stream_id, graph) -> reason or None``, asked before switching a stream (see
        :meth:`~service.streams.StreamManager.follow`).
    in_use : callable or None
        ``in_use() -> set of 'name:version'`` that must stay loaded besides what streams serve (the
        bases of running calibrations).

    Notes
    -----
    Thread-safe. :meth:`load` and :meth:`scan` block (a load creates and warms up sessions): call them
    from a thread or a plain ``def`` route.
    """

    def __init__(
        self,
        engine: InferenceEngine,
        streams: StreamManager | ShardedStreamManager,
        *,
        interval_s: float,
        skip: Callable[[str, ModalityGraph], str | None] | None = None,
        in_use: Callable[[], set[str]] | None = None,
    ):
        check_type(engine, InferenceEngine, "engine")
        check_type(streams, (StreamManager, ShardedStreamManager), "streams")
        interval_s = float(interval_s)
        if not math.isfinite(interval_s) or interval_s < 0:
            raise ValueError(
                f"interval_s must be a finite number of seconds >= 0 (0 = no polling), got {interval_s}."
            )
        if skip is not None and not callable(skip):
            raise TypeError(f"skip must be callable or None, got {type(skip).__name__} instead.")
        self.engine = engine
        self.streams = streams
        self.interval_s = interval_s
        self.skip = skip
        self.in_use = in_use
        self._refresh_lock = threading.Lock()
        self._failed: dict[str, tuple[Fingerprint, str]] = {}  # ref -> (fingerprint, reason)
        self._refused: set[tuple[str, str, str]] = set()  # (stream, ref, reason) already logged
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.n_scans = 0

    # -- refreshing --------------------------------------------------------------------------------

    def failures(self) -> dict[str, str]:
        """``name:version`` -> why its load failed, for versions whose folder has not changed since."""
        return {ref: reason for ref, (_, reason) in list(self._failed.items())}

    def scan(self) -> dict[str, Refresh]:
        """One poll: refresh every followed name whose followers do not all serve its latest version.

        Returns
        -------
        dict of str to Refresh
            Per name looked at. Failures are logged (once per version and folder state), never raised.
        """
        done = {}
        for name, serving in sorted(self.streams.followed().items()):
            versions = self.engine.repository.versions(name)
            if not versions:
                continue  # gone from the repository: followers keep theirs
            try:
                with self._locked():
                    if serving == {versions[-1]}:
                        # Up to date, maybe switched by someone else (a calibration's activate): what that
                        # replaced is unloaded as after a switch of the poller's own (the soak found every
                        # calibrated version kept loaded, +40 MB and 2 threads per fit).
                        self._unload_replaced(name, f"{name}:{versions[-1]}")
                        continue
                    done[name] = self._refresh(name, explicit=False)
            except RefreshBusy:
                logger.warning("model poller: a load of %s is still running; trying again next scan", name)
        self.n_scans += 1
        return done

    def load(self, name: str) -> Refresh:
        """Load the latest version of ``name`` now and switch the streams following ``name`` to it.

        Unlike :meth:`scan`, a version whose load failed before is tried again.

        Raises
        ------
        models.bundle.BundleError
            ``name`` is not a model name, or the repository has no version of it (a ValueError).
        LoadFailed
            The latest version cannot be loaded; nothing was switched.
        RefreshBusy
            Another refresh did not finish within :data:`REFRESH_LOCK_TIMEOUT_S`.
        RuntimeError
            The engine is closed.
        """
        check_type(name, str, "name")
        if parse_model_ref(name) != (name, None):  # BundleError for a malformed reference
            raise BundleError(
                f"load takes a model name without a version, got {name!r}; its latest version is loaded."
            )
        self.engine.repository.resolve(name)  # BundleError naming what exists
        with self._locked():
            return self._refresh(name, explicit=True)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the refresh lock; RefreshBusy if another refresh keeps it past the timeout."""
        if not self._refresh_lock.acquire(timeout=REFRESH_LOCK_TIMEOUT_S):
            raise RefreshBusy(
                f"another model load has been running for over {REFRESH_LOCK_TIMEOUT_S:g} s; retry later."
            )
        try:
            yield
        finally:
            self._refresh_lock.release()

    def _refresh(self, name: str, *, explicit: bool) -> Refresh:
        """Load ``name``'s latest version (unless known broken and unchanged) and switch its followers."""
        repository = self.engine.repository
        versions = repository.versions(name)
        if not versions:
            return Refresh()
        ref = f"{name}:{versions[-1]}"
        loaded = self.engine.models.get(ref)
        if loaded is None:
            folder = repository.path(name, versions[-1])
            mark = fingerprint(folder)
            known = self._failed.get(ref)
            if known is not None and known[0] == mark and not explicit:
                return Refresh()  # broken and unchanged: logged when it failed
            try:
                loaded = self.engine.load(ref)
            except Exception as err:  # a broken bundle must never stop the poller or reach a stream
                if self.engine.closed:
                    raise
                reason = f"{err}" if isinstance(err, ValueError) else f"{type(err).__name__}: {err}"
                if known is None or known != (mark, reason):
                    logger.error(
                        "model %s could not be loaded, streams following %s stay on their version: %s. Fix or "
                        "replace %s (it is tried again when the folder changes, or with POST "
                        "/v2/repository/models/%s/load).",
                        ref,
                        name,
                        reason,
                        folder,
                        name,
                    )
                self._failed[ref] = (mark, reason)
                if explicit:
                    raise LoadFailed(ref, reason) from err
                return Refresh()
            if self._failed.pop(ref, None) is not None:
                logger.info("model %s loads now", ref)
        self._failed = {k: v for k, v in self._failed.items() if k.partition(":")[0] != name}  # outdated
        switched, not_switched = self.streams.follow(loaded, skip=self.skip)
        for sid, reason in not_switched.items():
            key = (sid, ref, reason)
            if key not in self._refused:
                self._refused.add(key)
                logger.warning("%s follows %s but stays on its version, not %s: %s", sid, name, ref, reason)
        if switched:
            logger.info(
                "model %s: %d following stream(s) switched: %s", ref, len(switched), ", ".join(switched)
            )
        self._unload_replaced(name, ref)
        return Refresh(loaded=loaded, switched=switched, not_switched=not_switched)

    def _unload_replaced(self, name: str, latest: str) -> None:
        """Unload the other loaded versions of ``name`` that no stream serves and nothing else uses: a service
        taking new versions for days keeps only what it serves (a later request for one loads it again)."""
        others = [ref for ref in self.engine.models if ref.partition(":")[0] == name and ref != latest]
        if not others:
            return  # the usual case on every scan: nothing to look up (listing the streams is not free)
        served = {f"{s.model.name}:{s.model.version}" for s in self.streams.list()}
        kept = served | (self.in_use() if self.in_use is not None else set())
        for ref in others:
            if ref not in kept and self.engine.unload(ref):
                logger.info("model %s: unloaded, replaced by %s and served by no stream", ref, latest)

    # -- thread ------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start polling every ``interval_s`` (no thread when it is 0); idempotent."""
        if self.interval_s == 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="m2s-model-poller", daemon=True)
        self._thread.start()
        logger.info("model poller: looking for new versions every %g s", self.interval_s)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.scan()
            except Exception:  # the next scan may succeed (e.g. a repository folder that was briefly gone)
                if self.engine.closed:
                    return
                logger.exception("model poller: a scan failed; the next one runs in %g s", self.interval_s)

    def close(self, timeout: float = STOP_TIMEOUT_S) -> bool:
        """Stop the thread (after the refresh it may be running) and wait up to ``timeout`` s for it.

        Returns
        -------
        bool
            True when the thread has stopped (or never ran).
        """
        self._stop.set()
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        if thread.is_alive():
            logger.warning("model poller did not stop within %.1f s (a load still running)", timeout)
            return False
        return True

    @property
    def running(self) -> bool:
        """True while the polling thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> ModelPoller:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def calibration_skip(calibrations) -> Callable[[str, ModalityGraph], str | None]:
    """A ``skip`` for :class:`ModelPoller`: a stream whose calibration collects other features stays.

    Parameters
    ----------
    calibrations : service.calibration.CalibrationManager
        ``collecting_on(stream_id)`` gives the calibration collecting on a stream, if any.
    """

    def skip(stream_id: str, graph: ModalityGraph) -> str | None:
        calibration = calibrations.collecting_on(stream_id)
        if calibration is None or stream_id not in calibration.collectors:
            return None
        old = calibration.collectors[stream_id].graph
        if (graph.feature_spec, graph.seq_len, graph.spacing_s) == (
            old.feature_spec,
            old.seq_len,
            old.spacing_s,
        ):
            return None
        return (
            f"calibration {calibration.id} collects its '{graph.modality}' features as {calibration.base.ref} "
            "computes them and the new version computes others; it switches after the calibration is fitted or "
            "cancelled (next scan)"
        )

    return skip


__all__ = ["LoadFailed", "ModelPoller", "Refresh", "RefreshBusy", "calibration_skip", "fingerprint"]
