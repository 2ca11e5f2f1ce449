"""Session recordings: attached streams and a marker stream written to one XDF file as they arrive.

``POST /recordings`` (or a calibration with ``"record": true``) starts a :class:`SessionRecording`:
a raw tap on each chosen stream's acquisition worker (:meth:`service.lsl.LslStream.add_raw_tap`:
the samples as received, in the outlet's format, before any processing), a marker worker of its
own when a marker stream is named (:class:`~service.lsl.markers.MarkerInlet`), and one writer
thread that owns the :class:`~signals.recording.XdfWriter`.

What the file holds (LabRecorder's layout)
------------------------------------------
- Each stream's StreamHeader is its outlet's full LSL info document (name, type, source_id, rate,
  channel format, ``desc`` with the channels' labels, units and types) plus
  ``desc/m2s_recording`` (the service's stream id and modality). A reconnection to an outlet that
  describes itself differently (another source, other channels) starts a new XDF stream.
- Samples carry the outlet's own timestamps and ClockOffset chunks carry liblsl's offset of that
  outlet (every 5 s and at the end), so a reader that synchronises clocks (pyxdf, the project's
  reader) puts every stream on the service's clock, where the live path had them.
- Markers carry this host's LSL times (their worker synchronises clocks; their offset is 0).

Safety
------
The acquisition worker only enqueues (a copy of the chunk); the writer thread does the I/O, so a
slow or failing disk never delays live predictions. Each chunk reaches the kernel whole before
the next (:class:`~signals.recording.XdfWriter`): a service killed mid-session leaves a file
readable up to its last written chunk, and :meth:`RecordingManager.repair_interrupted` cuts a
half-written tail at the next start. A write error (full disk, file too large, a removed folder)
stops that recording: its state becomes ``failed`` with the reason, the log says it once, and
the streams keep serving. Files are created ``0600`` in a ``0700`` folder; no signal value or
marker text is ever logged.
"""

from __future__ import annotations

import datetime as _dt
import errno
import logging
import queue
import re
import tempfile
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from service.config import Settings, StreamSelector
from service.lsl.markers import MarkerInlet
from service.schemas import RECORDING_NAME_PATTERN
from service.streams import StreamManager
from service.workers import in_process_only
from signals.recording import XdfWriter, repair_xdf, xdf_complete_length, xdf_stream_header

logger = logging.getLogger(__name__)

_NAME = re.compile(RECORDING_NAME_PATTERN)
#: Chunks waiting for the writer before a recording gives up (it cannot keep up with its streams).
MAX_QUEUED_CHUNKS = 20_000
_OFFSET_EVERY_S = 5.0  # ClockOffset chunks per stream, as LabRecorder writes them
MAX_FINISHED = 50  # closed or failed recordings remembered for GET


class RecordingNotFound(KeyError):
    """No recording has this id."""

    def __str__(self) -> str:
        return str(self.args[0])


class RecordingConflict(RuntimeError):
    """The request cannot be served now: folder not writable, name taken, stream already recorded."""


def _now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _disk_message(err: OSError, path: Path) -> str:
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return (
            f"the disk holding {path.parent} is full ({err.strerror}); free space, then start a new recording"
        )
    if err.errno == errno.EFBIG:
        return f"{path.name} reached the largest file size allowed ({err.strerror}); start a new recording"
    return f"writing {path.name} failed ({err.strerror or err}); check M2S_RECORDINGS_DIR, then start a new recording"


def _tagged_header(info_xml: str, stream_id: str, modality: str | None) -> str:
    """The outlet's LSL info with ``desc/m2s_recording`` added (which service stream and modality)."""
    root = ET.fromstring(info_xml.encode())
    desc = root.find("desc")
    if desc is None:
        desc = ET.SubElement(root, "desc")
    node = ET.SubElement(desc, "m2s_recording")
    ET.SubElement(node, "stream_id").text = stream_id
    if modality is not None:
        ET.SubElement(node, "modality").text = modality
    return '<?xml version="1.0"?>' + ET.tostring(root, encoding="unicode")


@dataclass
class _RecordedStream:
    """Writer-thread state of one recorded stream (counters read by snapshots)."""

    stream_id: str
    modality: str | None
    xdf_id: int | None = None
    info_xml: str | None = None
    name: str | None = None
    n_samples: int = 0
    n_chunks: int = 0
    offset: float = 0.0
    offset_at: float | None = None  # last sample time (this host's clock) whose offset was written
    layout: tuple | None = None  # what the current XDF stream's samples mean (SessionRecording._layout)
    xdf_ids: list[int] = field(default_factory=list)


class SessionRecording:
    """One recording in progress (or ended): taps in, a writer thread out. Built by :class:`RecordingManager`."""

    def __init__(
        self,
        recording_id: str,
        name: str,
        path: Path,
        streams: dict[str, str | None],
        markers: StreamSelector | None,
        *,
        calibration_id: str | None = None,
    ):
        self.id = recording_id
        self.name = name
        self.path = path
        self.markers_selector = markers
        self.calibration_id = calibration_id
        self.state = "recording"
        self.error: str | None = None
        self.started = _now_iso()
        self.ended: str | None = None
        self._t0 = time.monotonic()
        self._t1: float | None = None
        self._streams = {sid: _RecordedStream(sid, modality) for sid, modality in streams.items()}
        self._markers = _RecordedStream("markers", None)
        self.marker_inlet: MarkerInlet | None = None
        # on_failed(recording), called once from the writer thread after a failure (the manager detaches it).
        self.on_failed = None
        self._queue: queue.Queue = queue.Queue(maxsize=MAX_QUEUED_CHUNKS)
        self._lock = threading.Lock()
        self._finish_lock = threading.Lock()
        self._writer = XdfWriter(path)  # OSError / FileExistsError: the manager answers
        self._thread = threading.Thread(
            target=self._write_loop, name=f"m2s-recording-{recording_id}", daemon=True
        )
        self._thread.start()

    # -- producers (acquisition and marker threads) -------------------------------------------------

    def tap(self, stream_id: str):
        """The raw tap of one stream: queue the chunk for the writer (never blocks)."""

        def on_raw(info_xml: str | None, samples: np.ndarray, timestamps: np.ndarray, offset: float) -> None:
            self._put(("samples", stream_id, info_xml, samples, timestamps, offset))

        return on_raw

    def on_marker(self, lsl_time: float, text: str) -> None:
        self._put(("marker", lsl_time, text))

    def _put(self, item: tuple) -> None:
        if self.state != "recording":
            return
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self._fail(
                f"the writer fell {MAX_QUEUED_CHUNKS} chunks behind its streams (the disk is too slow); "
                "the file holds everything before that. Record fewer streams or use a faster disk."
            )

    # -- the writer thread ------------------------------------------------------------------------

    def _write_loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self.state == "failed":
                self._release()  # drain: nothing more is written
                continue
            try:
                if item[0] == "samples":
                    self._write_samples(*item[1:])
                else:
                    self._write_marker(*item[1:])
            except OSError as err:
                self._fail(_disk_message(err, self.path))
                self._release()
            except Exception as err:  # a malformed chunk must not end the thread silently
                if self._writer.closed:
                    continue  # finish() gave up waiting and closed the file: already reported
                logger.exception("recording %s: a chunk could not be written", self.id)
                self._fail(f"a chunk could not be written ({type(err).__name__}: {err})")
                self._release()

    @staticmethod
    def _layout(info_xml: str) -> tuple:
        """What a stream's samples mean: name, type, channel count, format, rate and labels (not uid or host)."""
        info = ET.fromstring(info_xml.encode())
        labels = tuple(c.findtext("label") or "" for c in info.iterfind("desc/channels/channel"))
        keys = ("name", "type", "channel_count", "channel_format", "nominal_srate")
        return (*((info.findtext(k) or "").strip() for k in keys), labels)

    def _write_samples(self, stream_id, info_xml, samples, timestamps, offset) -> None:
        rs = self._streams[stream_id]
        if info_xml is None:
            info_xml = xdf_stream_header(stream_id, "", samples.shape[1], 0.0, "double64")
        if info_xml != rs.info_xml:
            layout = self._layout(info_xml)
            # A restarted outlet (new uid) with the same layout continues its XDF stream (a gap in time); one
            # that describes its samples differently needs a stream of its own.
            if rs.xdf_id is None or layout != rs.layout:
                rs.xdf_id = self._writer.add_stream(_tagged_header(info_xml, stream_id, rs.modality))
                rs.xdf_ids.append(rs.xdf_id)
                rs.offset_at, rs.layout, rs.name = None, layout, layout[0]
            rs.info_xml = info_xml
        t_last = float(timestamps[-1])
        if rs.offset_at is None or offset != rs.offset or t_last - rs.offset_at >= _OFFSET_EVERY_S:
            # Collection time on the outlet's clock, as LabRecorder writes it: readers fit offset(time) and
            # evaluate it at the outlet's own timestamps.
            self._writer.write_clock_offset(rs.xdf_id, t_last - offset, offset)
            rs.offset, rs.offset_at = offset, t_last
        self._writer.write_samples(rs.xdf_id, timestamps - offset, samples)
        with self._lock:
            rs.n_samples += len(timestamps)
            rs.n_chunks += 1

    def _write_marker(self, lsl_time: float, text: str) -> None:
        rs = self._markers
        if rs.xdf_id is None:
            info_xml = (
                self.marker_inlet.info_xml if self.marker_inlet is not None else None
            ) or xdf_stream_header("Markers", "Markers", 1, 0.0, "string")
            rs.xdf_id = self._writer.add_stream(_tagged_header(info_xml, "markers", None))
            rs.xdf_ids.append(rs.xdf_id)
            rs.name = ET.fromstring(info_xml.encode()).findtext("name")
            self._writer.write_clock_offset(rs.xdf_id, lsl_time, 0.0)
        self._writer.write_samples(rs.xdf_id, [lsl_time], [text])
        with self._lock:
            rs.n_samples += 1
            rs.n_chunks += 1

    def _fail(self, reason: str) -> None:
        with self._lock:
            if self.state not in ("recording", "closing"):
                return
            self.state, self.error = "failed", reason
            self._t1 = time.monotonic()
            self.ended = _now_iso()
        logger.error("recording %s stopped: %s. The streams go on being served.", self.id, reason)

    def _release(self) -> None:
        """After a failure (writer thread): close the file and stop the taps and the marker worker, once."""
        try:
            self._writer.close()  # no footers after a write error (XdfWriter)
        except OSError:
            pass
        callback, self.on_failed = self.on_failed, None
        if callback is not None:
            try:
                callback(self)
            except Exception:
                logger.exception("recording %s: releasing its taps failed", self.id)

    # -- ending -----------------------------------------------------------------------------------

    def finish(self, timeout: float = 10.0) -> None:
        """Stop the writer after what is queued, write the footers and close the file (idempotent)."""
        with self._finish_lock:  # a DELETE, a calibration's end and the service's shutdown may all finish it
            self._finish(timeout)

    def _finish(self, timeout: float) -> None:
        with self._lock:
            if self._writer.closed:
                return
            if self.state == "recording":
                self.state = "closing"
        self._queue.put(None)  # after every queued chunk
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._fail(
                f"the disk did not take the last {self._queue.qsize()} queued chunks within {timeout:g} s of the "
                "recording's end; the file holds everything before them"
            )
        try:
            if self.state != "failed":
                for rs in (*self._streams.values(), self._markers):
                    if rs.xdf_id is not None and rs.offset_at is not None:
                        self._writer.write_clock_offset(rs.xdf_id, rs.offset_at - rs.offset, rs.offset)
            self._writer.close()
        except OSError as err:
            self._fail(_disk_message(err, self.path))
        with self._lock:
            if self.state == "closing":
                self.state = "closed"
                self._t1 = time.monotonic()
                self.ended = _now_iso()

    def snapshot(self) -> dict[str, Any]:
        """The recording's public view (``RecordingPublic``)."""
        with self._lock:
            streams = [
                {
                    "stream_id": rs.stream_id,
                    "modality": rs.modality,
                    "name": rs.name,
                    "n_samples": rs.n_samples,
                    "n_chunks": rs.n_chunks,
                    "xdf_stream_ids": list(rs.xdf_ids),
                }
                for rs in self._streams.values()
            ]
            markers = None
            if self.markers_selector is not None:
                inlet = self.marker_inlet
                markers = {
                    "selector": self.markers_selector.model_dump(exclude_none=True),
                    "name": self._markers.name,
                    "n_markers": self._markers.n_samples,
                    "connected": bool(inlet is not None and inlet.status()["connected"]),
                }
            end = self._t1 if self._t1 is not None else time.monotonic()
            return {
                "id": self.id,
                "name": self.name,
                "file": self.path.name,
                "state": self.state,
                "error": self.error,
                "started": self.started,
                "ended": self.ended,
                "duration_s": end - self._t0,
                "bytes": self._writer.bytes_written,
                "streams": streams,
                "markers": markers,
                "calibration_id": self.calibration_id,
            }


class RecordingManager:
    """Every recording of the service (thread-safe).

    Parameters
    ----------
    streams : StreamManager
        The attached streams recordings tap.
    settings : Settings
        ``recordings_dir``, ``resolve_timeout_s``.
    """

    def __init__(self, streams: StreamManager, settings: Settings):
        self.streams = streams
        self.settings = settings
        self.folder = Path(settings.recordings_dir)
        self._lock = threading.Lock()
        self._recordings: dict[str, SessionRecording] = {}
        self._complete: dict[tuple, bool] = {}  # (file, size, mtime) -> ends with a complete chunk
        self._closed = False

    def repair_interrupted(self) -> list[tuple[str, int]]:
        """Cut the half-written last chunk off recordings a killed service left (run at start).

        Returns ``(file name, bytes cut)`` for each file repaired; unreadable files are left as they
        are and logged.
        """
        repaired = []
        if not self.folder.is_dir():
            return repaired
        for path in sorted(self.folder.glob("*.xdf")):
            try:
                cut = repair_xdf(path)
            except (OSError, ValueError) as err:
                logger.warning("recording %s could not be checked (%s); left as it is.", path.name, err)
                continue
            if cut:
                logger.warning(
                    "recording %s was cut while written (service stopped mid-session): %d bytes of a half-written "
                    "chunk removed; everything before them is intact.",
                    path.name,
                    cut,
                )
                repaired.append((path.name, cut))
        return repaired

    def _check_folder(self) -> None:
        try:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.folder, prefix=".m2s-write-probe-"):
                pass
        except OSError as err:
            raise RecordingConflict(
                f"recordings cannot be written: M2S_RECORDINGS_DIR {str(self.folder)!r} is not a writable folder "
                f"({err.strerror or err}); point it at a writable folder (compose mounts a volume for it)."
            ) from None

    def start(
        self,
        stream_ids: list[str],
        markers: StreamSelector | None = None,
        name: str | None = None,
        *,
        calibration_id: str | None = None,
    ) -> SessionRecording:
        """Start recording attached streams (and a marker stream) to ``<recordings_dir>/<name>.xdf``.

        Raises
        ------
        KeyError
            A stream id is not attached (the message lists the attached ones).
        ValueError
            A stream id given twice, or an invalid name.
        RecordingConflict
            The folder is not writable, the file exists, a stream is already being recorded, or the streams
            run in worker processes (``M2S_WORKERS >= 2``).
        """
        # The raw taps run on the streams' acquisition threads: in worker processes with M2S_WORKERS >= 2.
        refusal = in_process_only(self.streams, "Recordings need", "record")
        if refusal is not None:
            raise RecordingConflict(refusal)
        if len(set(stream_ids)) != len(stream_ids):
            raise ValueError(f"streams lists a stream more than once ({stream_ids}); give each once.")
        if name is not None and not _NAME.match(name):
            raise ValueError(
                f"name {name!r} is not a valid recording name; use letters, digits, '_', '.' and '-' "
                "(at most 64, starting with a letter or digit)."
            )
        attached = {sid: self.streams.stream(sid) for sid in stream_ids}  # KeyError lists the attached ones
        recording_id = f"rec-{uuid.uuid4().hex[:8]}"
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        name = name or f"session-{stamp}-{recording_id[4:]}"
        path = self.folder / f"{name}.xdf"
        with self._lock:
            if self._closed:
                raise RuntimeError("the recording manager is closed; the service is shutting down.")
            busy = sorted(
                sid
                for r in self._recordings.values()
                if r.state == "recording"
                for sid in r._streams
                if sid in attached
            )
            if busy:
                raise RecordingConflict(
                    f"stream(s) {busy} are already being recorded; close that recording (DELETE /recordings/<id>) "
                    "or record them together in one."
                )
            self._check_folder()
            try:
                recording = SessionRecording(
                    recording_id,
                    name,
                    path,
                    {sid: s.modality for sid, s in attached.items()},
                    markers,
                    calibration_id=calibration_id,
                )
            except FileExistsError:
                raise RecordingConflict(
                    f"a recording named {name!r} already exists in M2S_RECORDINGS_DIR; choose another name."
                ) from None
            except OSError as err:
                raise RecordingConflict(
                    f"recordings cannot be written: {_disk_message(err, path)}."
                ) from None
            self._recordings[recording_id] = recording
        recording.on_failed = self._detach
        for sid, stream in attached.items():
            stream.lsl.add_raw_tap(recording_id, recording.tap(sid))
        if markers is not None:
            recording.marker_inlet = MarkerInlet(
                markers, recording.on_marker, resolve_timeout_s=self.settings.resolve_timeout_s
            ).start()
        logger.info(
            "recording %s started: %s (%d stream(s)%s)",
            recording_id,
            path.name,
            len(attached),
            ", markers" if markers is not None else "",
        )
        return recording

    def get(self, recording_id: str) -> SessionRecording:
        """The recording ``recording_id``; RecordingNotFound lists the known ones."""
        with self._lock:
            if recording_id not in self._recordings:
                known = ", ".join(self._recordings) or "none"
                raise RecordingNotFound(f"no recording {recording_id!r}; recordings: {known}.")
            return self._recordings[recording_id]

    def list(self) -> list[SessionRecording]:
        """Every recording of this run, oldest first."""
        with self._lock:
            return list(self._recordings.values())

    def stored(self) -> list[dict[str, Any]]:
        """XDF files in the folder that no recording of this run writes: name, bytes, complete?"""
        with self._lock:
            mine = {r.path.name for r in self._recordings.values()}
        out = []
        if self.folder.is_dir():
            for path in sorted(self.folder.glob("*.xdf")):
                if path.name in mine:
                    continue
                try:
                    stat = path.stat()
                    key = (path.name, stat.st_size, stat.st_mtime_ns)
                    if key not in self._complete:  # chunk headers are read once per version of a file
                        self._complete[key] = xdf_complete_length(path)[0] == stat.st_size
                    out.append({"file": path.name, "bytes": stat.st_size, "complete": self._complete[key]})
                except (OSError, ValueError):
                    continue  # vanished meanwhile, or not XDF: not a recording
        return out

    def stop(self, recording_id: str) -> SessionRecording:
        """Close a recording (footers written, file closed); a closed one is returned as it is."""
        recording = self.get(recording_id)
        self._detach(recording)
        recording.finish()
        logger.info(
            "recording %s %s (%d bytes)", recording_id, recording.state, recording.snapshot()["bytes"]
        )
        self._forget_old()
        return recording

    def _detach(self, recording: SessionRecording) -> None:
        for sid in recording._streams:
            try:
                self.streams.stream(sid).lsl.remove_raw_tap(recording.id)
            except KeyError:
                pass  # detached meanwhile
        if recording.marker_inlet is not None:
            recording.marker_inlet.stop()

    def _forget_old(self) -> None:
        with self._lock:
            # Only recordings whose file is closed: a failed one not yet released must stay reachable.
            ended = [
                r.id
                for r in self._recordings.values()
                if r.state in ("closed", "failed") and r._writer.closed
            ]
            for rid in ended[: max(0, len(ended) - MAX_FINISHED)]:
                self._recordings.pop(rid, None)

    def close(self) -> None:
        """Close every recording (idempotent): their files are complete, footers included."""
        with self._lock:
            self._closed = True
            recordings = [r for r in self._recordings.values() if r.state in ("recording", "failed")]
        for r in recordings:
            self._detach(r)
            r.finish()


__all__ = [
    "RecordingConflict",
    "RecordingManager",
    "RecordingNotFound",
    "SessionRecording",
]
