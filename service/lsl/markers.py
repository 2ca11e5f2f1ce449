"""A worker for one LSL marker stream: strings with timestamps, handed on one by one.

Marker streams (irregular rate, one string channel: an experiment's ``trial_start:<label>`` or the
simulator's JSON onsets) are refused by the signal worker (:class:`~service.lsl.LslStream`); this
worker reads them. It resolves the selector (exactly one match, :func:`resolve_stream`), opens an
inlet with clock synchronisation (the timestamps land on this host's LSL clock, as the signal
streams' do), pulls with a timeout and calls ``on_marker(lsl_time, text)`` for each marker, oldest
first. A lost outlet is re-resolved; nothing raises into the thread; every pylsl call has a timeout.

Marker texts are never logged (they may name a participant's condition); only counts are.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import pylsl
from pylsl.util import LostError

from service.config import StreamSelector
from service.lsl.resolve import StreamResolutionError, resolve_stream
from signals._checks import check_range, check_type

logger = logging.getLogger(__name__)

_FLAGS = pylsl.proc_clocksync | pylsl.proc_monotonize
_RETRY_S = 0.5


class MarkerInlet:
    """Background reader of one LSL marker stream.

    Parameters
    ----------
    selector : StreamSelector
        Which marker stream (type / name / source_id; exactly one outlet must match).
    on_marker : callable
        ``on_marker(lsl_time, text)``, called from the worker thread for every marker; its
        exceptions are logged (without the text) and counted, never raised.
    resolve_timeout_s : float
        Timeout of each resolve / open / time-correction call, s.
    wait_s : float
        Longest wait of one pull, s (bounds how late :meth:`stop` reacts).
    on_connect : callable | None
        ``on_connect(n_connections)``, called from the worker thread after every successful
        connection (1 for the first): from the second on, markers sent while disconnected are lost
        (LSL keeps no history), which a consumer of trials must know.
    """

    def __init__(
        self,
        selector: StreamSelector,
        on_marker: Callable[[float, str], None],
        *,
        resolve_timeout_s: float = 2.0,
        wait_s: float = 0.1,
        on_connect: Callable[[int], None] | None = None,
    ):
        check_type(selector, StreamSelector, "selector")
        if not callable(on_marker):
            raise TypeError(f"on_marker must be callable, got {type(on_marker).__name__} instead.")
        self.selector = selector
        self.on_marker = on_marker
        self.resolve_timeout_s = float(
            check_range(resolve_timeout_s, "resolve_timeout_s", low=0, low_inclusive=False)
        )
        self.wait_s = float(check_range(wait_s, "wait_s", low=0, high=1, low_inclusive=False))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._connected = False
        self._n_markers = 0
        self._n_connections = 0
        self._last_error: str | None = None
        self.on_connect = on_connect
        #: The connected marker stream's full LSL info (``StreamInfo.as_xml()``); None before the first.
        self.info_xml: str | None = None

    def start(self) -> MarkerInlet:
        """Start the worker thread (connection happens in the background); returns self."""
        if self._thread is not None:
            raise RuntimeError("this MarkerInlet was already started.")
        self._thread = threading.Thread(
            target=self._run, name=f"m2s-markers[{self.selector.describe()}]", daemon=True
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the worker and close the inlet (idempotent)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def status(self) -> dict:
        """``connected``, ``n_connections``, ``n_markers`` received, ``last_error``."""
        with self._lock:
            return {
                "connected": self._connected,
                "n_connections": self._n_connections,
                "n_markers": self._n_markers,
                "last_error": self._last_error,
            }

    def _set(self, **values) -> None:
        with self._lock:
            for key, value in values.items():
                setattr(self, f"_{key}", value)

    def _run(self) -> None:
        while not self._stop.is_set():
            inlet = self._connect()
            if inlet is None:
                self._stop.wait(_RETRY_S)
                continue
            try:
                self._pull_until_lost(inlet)
            finally:
                inlet.close_stream()
                self._set(connected=False)

    def _connect(self) -> pylsl.StreamInlet | None:
        try:
            info = resolve_stream(
                self.selector, timeout=self.resolve_timeout_s, should_stop=self._stop.is_set
            )
        except StreamResolutionError as err:
            self._set(last_error=str(err))
            return None
        if self._stop.is_set():
            return None
        if info.channel_format() != pylsl.cf_string or info.channel_count() < 1:
            self._set(
                last_error=f"the stream matching {self.selector.describe()} is not a marker stream (it must carry "
                "strings, e.g. type='Markers'); pick the experiment's marker outlet."
            )
            return None
        inlet = pylsl.StreamInlet(info, max_buflen=360, recover=False, processing_flags=_FLAGS)
        try:
            inlet.open_stream(timeout=self.resolve_timeout_s)
            inlet.time_correction(timeout=self.resolve_timeout_s)
            self.info_xml = inlet.info(timeout=self.resolve_timeout_s).as_xml()  # with desc(), for recordings
        except Exception as err:
            inlet.close_stream()
            self._set(last_error=f"opening the marker stream failed ({type(err).__name__}: {err}); retrying")
            return None
        with self._lock:
            self._connected, self._last_error = True, None
            self._n_connections += 1
            n = self._n_connections
        logger.info("marker stream %s connected (name=%r)", self.selector.describe(), info.name())
        if self.on_connect is not None:
            try:
                self.on_connect(n)
            except Exception:  # never into the worker
                logger.exception("on_connect of the marker stream %s failed", self.selector.describe())
        return inlet

    def _pull_until_lost(self, inlet: pylsl.StreamInlet) -> None:
        while not self._stop.is_set():
            try:
                samples, stamps = inlet.pull_chunk(timeout=self.wait_s)
            except LostError:
                self._set(last_error="the marker stream was lost; re-resolving")
                logger.warning("marker stream %s lost; re-resolving", self.selector.describe())
                return
            for sample, stamp in zip(samples, stamps, strict=True):
                text = sample[0] if sample else ""
                with self._lock:
                    self._n_markers += 1
                try:
                    self.on_marker(float(stamp), str(text))
                except Exception as err:  # never into the thread; the text stays out of the log
                    logger.error(
                        "handling a marker from %s failed (%s)",
                        self.selector.describe(),
                        type(err).__name__,
                        exc_info=err,
                    )
                    self._set(last_error=f"a marker could not be handled ({type(err).__name__}: {err})")


__all__ = ["MarkerInlet"]
