"""The service's calibrations: create on attached streams, label, fit a personal head, save, hot swap.

:class:`CalibrationManager` holds every :class:`~service.calibration.session.Calibration` of the
running service. A fit (:meth:`CalibrationManager.fit`) runs in the caller's thread (the route
runs it in the threadpool, off the event loop and off the acquisition threads):

1. the participant's normalisation per modality from the session's statistics (the one
   :class:`~signals.normalisation.FeatureStatistics`, as training computes it);
2. the labelled windows normalised with it and embedded by the base bundle's embedding graph
   (:meth:`~service.engine.InferenceEngine.embed`);
3. heads and their leave-one-trial-out validation (:func:`~service.calibration.fit.fit_heads`);
4. the calibrated bundle ``<base>-<participant>/<n>/`` written into the writable repository
   (:func:`~models.calibrated.write_calibrated_bundle`: complete or absent, never half-written),
   loaded by the engine like any bundle;
5. with ``activate``, each of the calibration's streams swapped to it between two states
   (:meth:`~service.streams.StreamManager.swap`), following ``<base>-<participant>`` from then on:
   a newer version of it (e.g. written by ``m2s-train adapt``) reaches the streams by hot reload
   (:mod:`service.reload`).

Errors: :class:`CalibrationNotFound` (404), :class:`CalibrationConflict` (409: a state or
resource that forbids the action now), ValueError (422: the request itself is wrong).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import tempfile
import threading
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from models.calibrated import calibrated_name, write_calibrated_bundle
from models.repository import ModelRepository
from service.calibration.fit import MIN_TRIALS_PER_CLASS, LabelledEmbeddings, fit_heads, trials_per_class
from service.calibration.session import Calibration
from service.config import Settings
from service.engine import InferenceEngine, LoadedModel
from service.lsl.markers import MarkerInlet
from service.recordings import RecordingConflict, RecordingManager, RecordingNotFound
from service.schemas import CalibrationCreate
from service.streams import StreamManager
from service.workers import in_process_only

logger = logging.getLogger(__name__)

#: Finished calibrations (done, failed, cancelled) kept for GET before the oldest is forgotten.
MAX_FINISHED = 100
#: Longest a head fit may take in the fitter process, s.
FIT_TIMEOUT_S = 300.0
#: Niceness of the fitter process: the live streams come first on a busy machine.
FITTER_NICENESS = 10


def _fitter_init() -> None:
    """Runs once in the fitter process: lower its priority and import the fitting code."""
    try:
        os.nice(FITTER_NICENESS)
    except OSError:  # not permitted on some systems: the fit still runs
        pass
    import service.calibration.fit  # noqa: F401 (scikit-learn's import cost paid before the first fit)


class CalibrationNotFound(KeyError):
    """No calibration has this id."""

    def __str__(self) -> str:
        return str(self.args[0])


class NotEnoughTrials(ValueError):
    """Too few labelled trials of some class to fit (the calibration keeps collecting)."""


class CalibrationFailed(RuntimeError):
    """The fit itself failed (not the request): the calibration is now 'failed'."""


class CalibrationConflict(RuntimeError):
    """The calibration (or a resource it needs) is in a state that forbids the request now."""


def check_writable(folder: Path) -> None:
    """Raise CalibrationConflict unless ``folder`` can be created and written (a probe file, removed)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".m2s-write-probe-"):
            pass
    except OSError as err:
        raise CalibrationConflict(
            f"calibrated models cannot be saved: M2S_CALIBRATED_REPOSITORY {str(folder)!r} is not a writable folder "
            f"({err.strerror or err}); point it at a writable folder (compose mounts a volume for it)."
        ) from None


class CalibrationManager:
    """Every calibration of the service (thread-safe).

    Parameters
    ----------
    engine : InferenceEngine
        Loads base and calibrated models and runs the embedding graphs; its repository must
        search ``settings.calibrated_repository`` (see :mod:`service.app`).
    streams : StreamManager
        The attached streams calibrations observe and activate.
    settings : Settings
        ``calibrated_repository``, ``resolve_timeout_s``.
    recordings : RecordingManager | None
        Records sessions created with ``"record": true`` (None: such requests are refused).
    """

    def __init__(
        self,
        engine: InferenceEngine,
        streams: StreamManager,
        settings: Settings,
        *,
        recordings: RecordingManager | None = None,
    ):
        self.engine = engine
        self.recordings = recordings
        self.streams = streams
        self.settings = settings
        self.writer = ModelRepository(settings.calibrated_repository)
        self._lock = threading.Lock()
        self._calibrations: dict[str, Calibration] = {}
        self._marker_inlets: dict = {}  # StreamSelector -> (MarkerInlet, {calibration id: Calibration})
        self._pool: ProcessPoolExecutor | None = (
            None  # the fitter process, started with the first calibration
        )
        self._closed = False

    # -- lifecycle of one calibration -------------------------------------------------------------

    def create(self, request: CalibrationCreate, base: LoadedModel) -> Calibration:
        """Start collecting on ``request.streams`` for ``base`` (already loaded by the caller).

        Raises
        ------
        CalibrationNotFound
            A stream id is not attached (the message lists the attached ones).
        CalibrationConflict
            A stream is in another collecting or fitting calibration; the repository is not writable; the
            streams run in worker processes (``M2S_WORKERS >= 2``).
        ValueError
            Recording requested from a service that cannot record; two streams of one modality; a stream's modality missing from
            the base or computed with other features; the calibrated name would be too long or
            clashes with a read-only model.
        """
        # Its taps run on the streams' acquisition threads: in worker processes with M2S_WORKERS >= 2.
        refusal = in_process_only(self.streams, "Live calibration needs", "calibrate")
        if refusal is not None:
            raise CalibrationConflict(refusal)
        if request.record and self.recordings is None:
            raise ValueError('this service cannot record; send "record": false (or leave it out).')
        if len(set(request.streams)) != len(request.streams):
            raise ValueError("streams lists a stream twice; give each stream id once.")
        name = calibrated_name(base.bundle.manifest.name, request.participant)
        if ModelRepository(self.settings.model_repository).versions(name):
            raise ValueError(
                f"the read-only repository already has a model named {name!r}; calibrated models are named "
                "<base>-<participant>: use another participant id."
            )
        graphs, attached = {}, {}
        for sid in request.streams:
            try:
                stream = self.streams.stream(sid)
            except KeyError as err:
                raise CalibrationNotFound(str(err.args[0])) from None
            modality = stream.modality
            if modality in {g.modality for g in graphs.values()}:
                raise ValueError(
                    f"two streams of modality '{modality}'; a calibration takes one stream per modality."
                )
            manifest = base.bundle.manifest
            if modality not in manifest.graphs:
                raise ValueError(
                    f"stream {sid} is '{modality}' but {base.ref} has no '{modality}' model; its modalities: "
                    f"{', '.join(sorted(manifest.graphs))}."
                )
            graph, running = manifest.graphs[modality], stream.graph
            if (graph.feature_spec, graph.seq_len, graph.spacing_s) != (
                running.feature_spec,
                running.seq_len,
                running.spacing_s,
            ):
                raise ValueError(
                    f"stream {sid} runs {stream.loaded.ref}, whose '{modality}' features differ from {base.ref}'s; "
                    f"switch it to {base.ref} first (PATCH /streams/{sid}) or calibrate {stream.loaded.ref}."
                )
            graphs[sid], attached[sid] = graph, stream
        check_writable(self.settings.calibrated_repository)
        self._fitter()  # started now (spawning and importing scikit-learn take a second), used at the fit
        calibration = Calibration(
            f"cal-{uuid.uuid4().hex[:10]}",
            request.participant,
            base,
            graphs,
            "markers" if request.labels.markers is not None else "rest",
            trial_s=request.labels.trial_s,
        )
        with self._lock:
            self._check_open()
            busy = {
                sid: c
                for c in self._calibrations.values()
                if c.state in ("collecting", "fitting")
                for sid in c.collectors
            }
            taken = [sid for sid in request.streams if sid in busy]
            if taken:
                other = busy[taken[0]]
                raise CalibrationConflict(
                    f"stream {taken[0]} is already in calibration {other.id} (participant {other.participant}, "
                    f"{other.state}); cancel it (DELETE /calibrations/{other.id}) or fit it first."
                )
            self._calibrations[calibration.id] = calibration
        if request.record:
            try:  # the file name keeps to 64 characters whatever the participant id's length
                recording = self.recordings.start(
                    list(attached),
                    request.labels.markers,
                    f"calibration-{request.participant[:41]}-{calibration.id[4:]}",
                    calibration_id=calibration.id,
                )
            except BaseException as err:  # no calibration without the recording it was asked for
                with self._lock:
                    self._calibrations.pop(calibration.id, None)
                if isinstance(err, RecordingConflict):
                    raise CalibrationConflict(str(err)) from None
                if isinstance(err, KeyError):
                    raise CalibrationNotFound(str(err.args[0])) from None
                raise
            calibration.recording_id = recording.id
            if (
                request.labels.markers is None
            ):  # REST labels go into the file as trial_start/trial_end markers
                calibration.on_rest_marker = recording.on_marker
        if request.labels.markers is not None:
            calibration.marker_inlet = self._subscribe(request.labels.markers, calibration)
        for stream in attached.values():
            stream.add_tap(calibration.id, calibration.tap)
        logger.info(
            "calibration %s started: participant %s, base %s, streams %s, labels from %s",
            calibration.id,
            request.participant,
            base.ref,
            list(attached),
            calibration.labels,
        )
        return calibration

    def get(self, calibration_id: str) -> Calibration:
        """The calibration ``calibration_id``; CalibrationNotFound lists the known ids."""
        with self._lock:
            if calibration_id not in self._calibrations:
                ids = list(self._calibrations)
                known = ", ".join(ids[-5:]) or "none"
                if len(ids) > 5:
                    known = f"{len(ids)}, the latest {known} (GET /calibrations lists them all)"
                raise CalibrationNotFound(f"no calibration {calibration_id!r}; calibrations: {known}.")
            return self._calibrations[calibration_id]

    def collecting_on(self, stream_id: str) -> Calibration | None:
        """The collecting or fitting calibration observing ``stream_id``, if any."""
        with self._lock:
            for c in self._calibrations.values():
                if c.state in ("collecting", "fitting") and stream_id in c.collectors:
                    return c
        return None

    def bases_in_use(self) -> set[str]:
        """``name:version`` of the base models of the calibrations collecting or fitting (they must stay loaded)."""
        with self._lock:
            return {c.base.ref for c in self._calibrations.values() if c.state in ("collecting", "fitting")}

    def list(self) -> list[Calibration]:
        """Every calibration, oldest first."""
        with self._lock:
            return list(self._calibrations.values())

    def cancel(self, calibration_id: str) -> Calibration:
        """Cancel a collecting calibration (nothing is written), or forget a finished one.

        Raises
        ------
        CalibrationNotFound
        CalibrationConflict
            A fit is running.
        """
        calibration = self.get(calibration_id)
        with calibration._lock:
            if calibration.state == "fitting":
                raise CalibrationConflict(
                    f"calibration {calibration_id} is fitting; wait for the fit to finish, then delete it."
                )
            finished = calibration.state != "collecting"
            if not finished:
                calibration.state = "cancelled"
                calibration.drop_data()  # its data goes; nothing was written
        self._detach(calibration)
        if finished:
            with self._lock:
                self._calibrations.pop(calibration_id, None)
        else:
            self._forget_old()
        logger.info("calibration %s %s", calibration_id, "forgotten" if finished else "cancelled")
        return calibration

    def fit(self, calibration_id: str, train_modality: str | None = None, activate: bool = False) -> dict:
        """Fit, save and (optionally) activate the participant's model; see the module docstring.

        Returns
        -------
        dict
            The :class:`~service.schemas.CalibrationResult` fields.

        Raises
        ------
        CalibrationNotFound
        CalibrationConflict
            Not collecting (a fit is running, or it is done, failed or cancelled); the
            repository is not writable.
        ValueError
            Too few trials of some class, or ``train_modality`` has no labelled windows; the
            calibration keeps collecting.
        """
        calibration = self.get(calibration_id)
        start = time.perf_counter()
        with calibration._lock:
            if calibration.state != "collecting":
                what = (
                    "a fit is already running"
                    if calibration.state == "fitting"
                    else f"it is {calibration.state}"
                )
                raise CalibrationConflict(f"calibration {calibration_id} cannot be fitted: {what}.")
            data = calibration.labelled_data()
            try:
                self._check_enough(calibration, data, train_modality)
            except NotEnoughTrials as err:
                if calibration.rest_trial_open:
                    raise ValueError(f"{err} (The open trial counts once it ends: label null.)") from None
                raise
            if calibration.close_open_rest_trial():  # enough without it; with it, more
                data = calibration.labelled_data()
            check_writable(self.settings.calibrated_repository)
            calibration.state = "fitting"
        try:
            result = self._fit(calibration, data, train_modality, activate, start)
        except OSError as err:  # saving failed (disk full, permissions): keep the data, let the user retry
            with calibration._lock:
                calibration.state = "collecting"
            logger.error(
                "calibration %s: the model could not be saved (%s)", calibration_id, err.strerror or err
            )
            raise CalibrationConflict(
                f"the fitted model could not be saved in {str(self.settings.calibrated_repository)!r} "
                f"({err.strerror or err}); the calibration keeps collecting: free space or fix the folder, then fit again."
            ) from None
        except Exception as err:
            with calibration._lock:
                calibration.state = "failed"
                calibration.error = f"the fit failed ({type(err).__name__}: {err}); start a new calibration"
            calibration.release()
            self._detach(calibration)
            self._forget_old()
            logger.exception("calibration %s: the fit failed", calibration_id)
            raise CalibrationFailed(calibration.error) from err
        with calibration._lock:
            calibration.state, calibration.result = "done", result
        calibration.release()
        self._detach(calibration)
        self._forget_old()
        return result

    # -- the fit ----------------------------------------------------------------------------------

    def _check_enough(self, calibration: Calibration, data: dict, train_modality: str | None) -> None:
        names = calibration.class_names
        modalities = (
            [train_modality] if train_modality is not None else [m for m, d in data.items() if len(d[2])]
        )
        if train_modality is not None and train_modality not in data:
            raise ValueError(
                f"the train modality {train_modality!r} is not a modality of this calibration; its modalities: "
                f"{', '.join(sorted(data))}."
            )
        if not modalities:
            raise NotEnoughTrials(
                f"no labelled window yet; label at least {MIN_TRIALS_PER_CLASS} trials of each class "
                f"({', '.join(names)}) first."
            )
        shortages = {}
        for m in modalities:
            _, x, y, trials = data[m]
            per_class = (
                trials_per_class(LabelledEmbeddings(x, y, trials), len(names)) if len(y) else [0] * len(names)
            )
            short = [f"{names[i]} {n}" for i, n in enumerate(per_class) if n < MIN_TRIALS_PER_CLASS]
            if short:
                shortages[m] = ", ".join(short)
        # Own heads: a modality short of trials is left out (its stream keeps its model) while another has
        # enough; a cross-modal head needs its train modality.
        if len(shortages) == len(modalities):
            m = modalities[0]
            raise NotEnoughTrials(
                f"too few labelled trials of '{m}' to fit: {shortages[m]} (each class needs "
                f"{MIN_TRIALS_PER_CLASS}, so that one trial can be held out for validation); keep labelling."
            )

    def _fit(
        self, calibration: Calibration, data: dict, train_modality, activate: bool, start: float
    ) -> dict:
        base = calibration.base
        normalisations, labelled = {}, {}
        for modality, (stats, x, y, trials) in data.items():
            if stats.n_vectors == 0:
                continue  # nothing seen on this stream: it keeps the base's normalisation
            normalisations[modality] = stats.normalisation()
            if len(y):
                z = self.engine.embed(base.ref, modality, normalisations[modality].apply(x))
                labelled[modality] = LabelledEmbeddings(z, y, trials)
        skipped = {}
        if train_modality is None:  # own heads: only modalities that have enough trials of each class
            n = len(calibration.class_names)
            for m, d in list(labelled.items()):
                if min(trials_per_class(d, n)) < MIN_TRIALS_PER_CLASS:
                    counts = dict(zip(calibration.class_names, trials_per_class(d, n), strict=True))
                    skipped[m] = f"too few labelled trials per class ({counts}); its stream keeps its model"
                    del labelled[m]
        # In the fitter process: its CPU-bound Python (hundreds of small scikit-learn fits) never holds this
        # process's GIL, which the acquisition threads need every hop.
        fitted = self._fitter().submit(fit_heads, labelled, len(calibration.class_names), train_modality)
        fitted = fitted.result(timeout=FIT_TIMEOUT_S)
        serve = dict(fitted.serve)
        if train_modality is not None:  # the cross-modal head also serves calibrated streams without labels
            serve.update({m: train_modality for m in normalisations if m not in serve})
        trials = calibration.trials()
        per_modality = {
            m: fitted.per_modality.get(m, {"balanced_accuracy": None, "head": serve[m], "n_windows": 0})
            for m in serve
        }
        validation = {
            "balanced_accuracy": fitted.balanced_accuracy,
            "per_modality": per_modality,
            "n_trials": trials,
            "c": fitted.c,
            "skipped": skipped,
        }
        bundle = write_calibrated_bundle(
            self.writer,
            base.bundle,
            participant=calibration.participant,
            heads=fitted.heads,
            serve=serve,
            normalisations={m: normalisations[m] for m in serve if m in normalisations},
            provenance={
                "train_modality": train_modality,
                "windows": {
                    m: {
                        calibration.class_names[i]: int(np.sum(d.y == i))
                        for i in range(len(calibration.class_names))
                    }
                    for m, d in labelled.items()
                },
                "trials": trials,
                "head": {
                    "kind": "multinomial logistic regression (scikit-learn) on the shared embedding",
                    "c": fitted.c,
                    "selected_on": "leave-one-trial-out balanced accuracy on the calibration trials",
                    "scores": {m: {str(k): v for k, v in s.items()} for m, s in fitted.c_scores.items()},
                },
                "validation": validation,
            },
        )
        loaded = self.engine.load(bundle.ref)
        activated = []
        if activate:
            for sid, collector in calibration.collectors.items():
                if collector.modality not in serve:
                    continue
                try:
                    # Following the calibrated name: a later adaptation (its next version) reaches the stream.
                    self.streams.swap(sid, loaded.ref, follow=True)
                    activated.append(sid)
                except (KeyError, ValueError) as err:
                    logger.warning(
                        "calibration %s: stream %s not switched to %s: %s",
                        calibration.id,
                        sid,
                        loaded.ref,
                        err,
                    )
        elapsed = time.perf_counter() - start
        logger.info(
            "calibration %s: %s saved (validation balanced accuracy %.3f, fit %.2f s), activated on %s",
            calibration.id,
            loaded.ref,
            fitted.balanced_accuracy,
            elapsed,
            activated or "no stream",
        )
        return {
            "model": {"name": bundle.manifest.name, "version": bundle.manifest.version},
            "validation": validation,
            "activated": activated,
            "fit_s": elapsed,
        }

    # -- housekeeping -----------------------------------------------------------------------------

    def _detach(self, calibration: Calibration) -> None:
        """Stop observing: remove the taps and stop the marker worker (never under the calibration's lock)."""
        for sid in calibration.collectors:
            try:
                self.streams.stream(sid).remove_tap(calibration.id)
            except KeyError:
                pass  # detached meanwhile
        if calibration.marker_inlet is not None:
            self._unsubscribe(calibration)
        if calibration.recording_id is not None and self.recordings is not None:
            try:  # the session's recording ends with it
                self.recordings.stop(calibration.recording_id)
            except RecordingNotFound:
                pass  # closed and forgotten meanwhile

    def _subscribe(self, selector, calibration: Calibration) -> MarkerInlet:
        """The marker worker of ``selector``, shared by every calibration listening to that stream (one
        inlet per marker stream: calibrations started together see the same markers, from the first)."""
        with self._lock:
            entry = self._marker_inlets.get(selector)
            if entry is None:
                subscribers: dict[str, Calibration] = {}

                def dispatch(lsl_time: float, text: str, subscribers=subscribers) -> None:
                    for c in list(subscribers.values()):
                        try:  # one calibration's failure must not cost the others this marker
                            c.on_marker(lsl_time, text)
                        except Exception:
                            logger.exception("calibration %s could not take a marker", c.id)

                def reconnected(n: int, subscribers=subscribers) -> None:
                    if n > 1:  # onsets sent while the marker stream was away are lost
                        for c in list(subscribers.values()):
                            c.markers_lost()

                inlet = MarkerInlet(
                    selector,
                    dispatch,
                    resolve_timeout_s=self.settings.resolve_timeout_s,
                    on_connect=reconnected,
                )
                entry = self._marker_inlets[selector] = (inlet.start(), subscribers)
            entry[1][calibration.id] = calibration
            return entry[0]

    def _unsubscribe(self, calibration: Calibration) -> None:
        with self._lock:
            for selector, (inlet, subscribers) in list(self._marker_inlets.items()):
                if subscribers.pop(calibration.id, None) is not None and not subscribers:
                    del self._marker_inlets[selector]
                    stop = inlet
                    break
            else:
                return
        stop.stop()  # outside the lock: it joins the worker thread

    def _fitter(self) -> ProcessPoolExecutor:
        """The fitter process (one, spawned on first use, at lower priority), restarted if it died."""
        with self._lock:
            if self._pool is not None and getattr(self._pool, "_broken", False):
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    max_workers=1, mp_context=multiprocessing.get_context("spawn"), initializer=_fitter_init
                )
            return self._pool

    def _forget_old(self) -> None:
        with self._lock:
            finished = [
                c.id for c in self._calibrations.values() if c.state in ("done", "failed", "cancelled")
            ]
            for cid in finished[: max(0, len(finished) - MAX_FINISHED)]:
                self._calibrations.pop(cid, None)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the calibration manager is closed; the service is shutting down.")

    def close(self) -> None:
        """Stop every calibration's observers (idempotent)."""
        with self._lock:
            self._closed = True
            calibrations = list(self._calibrations.values())
            pool, self._pool = self._pool, None
        for c in calibrations:
            self._detach(c)
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


__all__ = [
    "MAX_FINISHED",
    "CalibrationConflict",
    "CalibrationFailed",
    "CalibrationManager",
    "CalibrationNotFound",
    "check_writable",
]
