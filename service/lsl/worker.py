"""LSL acquisition: one background worker per attached stream, with reconnection and health.

:class:`LslStream` owns one pylsl inlet. Its worker thread finds the stream named by a
:class:`~service.config.StreamSelector` (:mod:`service.lsl.resolve`), opens an inlet with clock
synchronisation and monotonic timestamps, pulls chunks without blocking, regularises the
timestamps within each continuous segment (:class:`~signals.timing.SegmentDejitter`, with the gap
rule of the feature spec the stream feeds: a step above ``gap_factor / sfreq`` is a gap) and hands
each chunk to ``on_chunk`` as ``(n_channels, n)`` float64 data plus ``(n,)`` LSL timestamps (local
clock domain).

Rules
-----
- **Every pylsl call has a timeout** (resolve, ``info``, ``open_stream``, ``time_correction``,
  ``pull_chunk``). Resolution runs in short slices so :meth:`LslStream.stop` is honoured within
  about one resolve slice plus one pylsl timeout.
- **Wake on data, never poll; sleep until a window can complete.** ``k`` is 1 unless the
  consumer says, through :attr:`LslStream.samples_wanted`, that it can do nothing with fewer
  samples (a feature extractor needs ``k`` more samples to complete its next window). Then the
  worker sleeps (on its stop event: :meth:`LslStream.stop` wakes it at once) until the moment
  those ``k`` samples should have arrived: the newest timestamp plus ``k / sfreq`` plus the
  stream's arrival lag (how long after its timestamp a sample reaches this host), never longer
  than the source takes to send ``k`` samples at the rate they arrive (a replay faster than real time;
  timestamps far ahead of this host's clock) nor past the stale moment; then
  it pulls them with ``pull_chunk(min_samples=k)``, which returns at once when they are there and
  otherwise waits for the rest. One wake-up per window: liblsl's own wait for ``k`` samples wakes
  the waiting thread for every sample that arrives (200 a second at 200 Hz), which cost more CPU
  than everything else a stream does (``benchmarks/capacity.py``).
- **The arrival lag is learnt per stream.** A wake-up that finds the samples missing measures it
  when they arrive (plus a 1-ms margin), but raises the estimate by at most ``_LAG_RISE_S``
  (2 ms): one late reading (the thread waiting for the GIL, a pause) must not delay the windows
  after it, and waking early costs only a few wake-ups inside liblsl. A wake-up that finds them
  all there lowers it by ``_LAG_STEP_S`` (0.1 ms). So the worker wakes within about a
  millisecond after a window's last sample arrives.
- With ``k`` = 1 the worker blocks in ``pull_chunk(min_samples=1)`` (liblsl waits with the GIL
  released) for at most ``wait_s`` and takes whatever else is already buffered. The liveness
  check reacts within ``wait_s``; a pull never waits past the moment the data turns stale, so
  the ``stale`` flip is reported within ~2 ms.
- **Exactly one stream must match** (:func:`~service.lsl.resolve.resolve_stream`). No match:
  keep retrying, ``last_error`` says ``"no stream matching ..."``. Several matches:
  ``last_error`` lists every candidate and asks for a narrower selector; the worker keeps
  retrying in case the extra stream goes away. Irregular-rate (marker) and string streams are
  refused with a clear ``last_error``.
- **Re-resolution policy.** The inlet is created with ``recover=False`` so that a lost outlet
  surfaces as pylsl's ``LostError`` here instead of being recovered silently inside liblsl.
  Then the inlet is dropped and the stream re-resolved. Once connected, a stream *with* a
  source_id is re-resolved by the original selector **and** that source_id, so only the same
  source coming back (e.g. a restarted amplifier driver, a new outlet instance) is picked up.
  A stream *without* a source_id is re-resolved by the original selector alone and must again
  match exactly one stream (a warning says so at connection). No sample for
  ``reresolve_after_s`` triggers a liveness check: when the current outlet (same uid) still
  answers, the inlet is kept (the source is merely paused, and the inlet buffers whatever it
  sends meanwhile); otherwise the inlet is dropped and re-resolved. ``n_reconnects`` counts
  successful connections after the first one.
- **Health.** ``data_age_s = clock() - last timestamp`` (None before any sample);
  ``stale`` is true when not connected, before the first sample, or when ``data_age_s`` exceeds
  ``stale_after_s``. ``effective_srate`` is the rate of the samples received over the last
  ``_SRATE_WINDOW_S`` seconds of ``clock``, measured on the timestamps the outlet sent (a
  reconnection's backlog, received in a burst, does not inflate it); 0 once the source was
  silent for that long.
- **Callbacks never kill the worker.** An exception from ``on_chunk`` or ``on_status`` is logged
  with ``logger.exception`` (at most once per ``_CALLBACK_LOG_EVERY_S`` per callback, with a
  count of the ones not logged) and counted in ``n_callback_errors``.
- **Time comes from one clock.** Data age, ``stale``, the stale-capped pull, the liveness check,
  ``effective_srate`` and the callback log rate limit all read ``clock`` (default
  ``pylsl.local_clock``, the domain of the LSL timestamps). A test passes a clock it moves by hand
  to make data old or silence long without waiting; the worker still wakes every ``wait_s`` of
  real time (liblsl's pull timeout), so it notices a moved clock within ``wait_s``.
- Timestamps jump forward across a reconnection (the new outlet stamps with the current
  clock): consumers see that as a gap, exactly as they should.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import numpy as np
import pylsl
from pylsl.util import LostError
from pylsl.util import TimeoutError as LslTimeoutError

from service.config import StreamSelector
from service.lsl.resolve import (
    StreamInfo,
    StreamResolutionError,
    find_streams,
    read_stream_info,
    resolve_stream,
    selector_predicate,
)
from signals._checks import check_range, check_type
from signals.timing import DEFAULT_GAP_FACTOR, DEFAULT_JITTER_S, SegmentDejitter

logger = logging.getLogger(__name__)

# No proc_dejitter: liblsl's regression spreads the timestamp jump of a paused outlet over the following
# samples (a 1 s pause became 6.7 ms steps), hiding the gap from the extractor so windows spanned it.
# signals.timing.SegmentDejitter smooths jitter only inside continuous segments and keeps gaps as gaps.
_PROCESSING_FLAGS = pylsl.proc_clocksync | pylsl.proc_monotonize
_CLOCK_OFFSET_EVERY_S = 5.0  # how often raw taps get a fresh clock offset (LabRecorder's interval)
_RETRY_INTERVAL_S = 0.5  # pause between failed connection attempts
_SRATE_WINDOW_S = 5.0  # sliding window of effective_srate
_CALLBACK_LOG_EVERY_S = 5.0  # rate limit for tracebacks of a callback that keeps raising
_STALE_MARGIN_S = 0.002  # a pull capped at the stale moment returns this much after it, so it sees the flip
_LAG_MARGIN_S = 0.001  # added to a measured arrival lag: wake just after the samples arrived, not before
_LAG_STEP_S = 0.0001  # a wake-up that found every sample there lowers the lag estimate by this much (slowly:
# an early wake-up costs liblsl a wake-up per sample still to come)
_LAG_RISE_S = 0.002  # one early wake-up raises the lag estimate by at most this much
_LONGEST_SLEEP_S = 1.0  # one sleep until a window (a test's hand-moved clock is noticed within this)
_LAG_BOUND_S = (
    1.0  # the arrival lag estimate stays within +-this (a source stamping far off is its own problem)
)


class LslStream:
    """One acquisition worker for one LSL stream: resolve, pull, reconnect, report health.

    Parameters
    ----------
    selector : StreamSelector
        Which stream; it must match exactly one outlet.
    on_chunk : callable
        ``on_chunk(data, timestamps)`` with ``data`` float64 array, shape (n_channels, n), in the
        stream's own unit, and ``timestamps`` float64 array, shape (n,), seconds on this host's
        LSL clock (clock-corrected, monotonic, regular within each continuous segment). Called from the worker thread, once
        per pulled chunk (n >= 1); the arrays are fresh copies the callee may keep.
    resolve_timeout_s : float
        Timeout of every blocking pylsl call (resolve, info, open_stream, time_correction), s.
    stale_after_s : float
        ``stale`` turns true when the newest sample is older than this, s.
    wait_s : float
        Longest wait of one pull for new data, s: the worker wakes as soon as a sample arrives;
        this only bounds how late :meth:`stop`, the stale flag and the liveness check react.
    max_buffer_s : float
        Inlet buffer (liblsl ``max_buflen``), s, rounded up to whole seconds; older data is
        dropped at the source if the worker falls behind.
    reresolve_after_s : float | None
        Silence after which the worker checks that the outlet still exists and re-resolves it
        if not, s. None: ``max(5, 2 * stale_after_s)``.
    gap_factor, jitter_s : float
        The consumer's gap rule (its feature spec's ``gap_factor`` and ``jitter_s``): a timestamp
        step above ``gap_factor / sfreq`` that is also more than ``jitter_s`` off the regular line
        is a gap the consumer sees; smaller deviations are jitter and smoothed
        (:class:`~signals.timing.SegmentDejitter`).
    clock : callable
        ``clock() -> float``, the current time in seconds in the domain of the LSL timestamps
        (default ``pylsl.local_clock``). Every health decision reads it (module docstring, "Time
        comes from one clock"); tests pass a clock they move by hand. Blocking waits (pylsl
        timeouts, the retry pause) stay in real time.

    Attributes
    ----------
    on_status : callable | None
        ``on_status(status)`` with the dict of :meth:`status`, called from the worker thread on
        connection, disconnection, a ``stale`` flip or a new ``last_error``.
    samples_wanted : callable | None
        ``samples_wanted() -> int``, called from the worker thread before each pull: how many new
        samples the consumer needs before ``on_chunk`` can produce anything. A pull then waits
        (up to ``wait_s``) for that many instead of one. None, an error or a value < 1 means 1.
    """

    def __init__(
        self,
        selector: StreamSelector,
        on_chunk: Callable[[np.ndarray, np.ndarray], None],
        *,
        resolve_timeout_s: float = 2.0,
        stale_after_s: float = 2.0,
        wait_s: float = 0.1,
        max_buffer_s: float = 30,
        reresolve_after_s: float | None = None,
        gap_factor: float = DEFAULT_GAP_FACTOR,
        jitter_s: float = DEFAULT_JITTER_S,
        clock: Callable[[], float] = pylsl.local_clock,
    ) -> None:
        check_type(selector, StreamSelector, "selector")
        if not callable(on_chunk):
            raise TypeError(f"on_chunk must be callable, got {type(on_chunk).__name__} instead.")
        if not callable(clock):
            raise TypeError(f"clock must be callable, got {type(clock).__name__} instead.")
        check_range(resolve_timeout_s, "resolve_timeout_s", low=0, low_inclusive=False, unit="s")
        check_range(stale_after_s, "stale_after_s", low=0, low_inclusive=False, unit="s")
        check_range(wait_s, "wait_s", low=0, high=1, low_inclusive=False, unit="s")
        check_range(max_buffer_s, "max_buffer_s", low=1, high=3600, unit="s")
        if reresolve_after_s is None:
            reresolve_after_s = max(5.0, 2.0 * stale_after_s)
        check_range(reresolve_after_s, "reresolve_after_s", low=0, low_inclusive=False, unit="s")
        self.selector = selector
        self.on_chunk = on_chunk
        self.on_status: Callable[[dict[str, Any]], None] | None = None
        self.samples_wanted: Callable[[], int] | None = None
        self.resolve_timeout_s = float(resolve_timeout_s)
        self.stale_after_s = float(stale_after_s)
        self.wait_s = float(wait_s)
        self.max_buffer_s = int(math.ceil(max_buffer_s))
        self.reresolve_after_s = float(reresolve_after_s)
        self.gap_factor = float(check_range(gap_factor, "gap_factor", low=1, low_inclusive=False))
        self.jitter_s = float(check_range(jitter_s, "jitter_s", low=0, unit="s"))
        self._dejitter: SegmentDejitter | None = None
        self._clock = clock

        self._lock = threading.Lock()
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        # Connection state: all set by _connect, all cleared by _disconnect (worker thread only).
        self._inlet: pylsl.StreamInlet | None = None
        self._uid: str | None = None
        self._buffer: np.ndarray | None = None
        self._connected_at: float | None = None
        self._last_receive: float | None = None  # clock() at the last non-empty pull
        # Health, read by other threads under the lock.
        self._info: StreamInfo | None = None
        self._last_timestamp: float | None = None
        # (clock() at pull, first and last timestamp as sent, n samples) of the chunks of the last few seconds.
        self._recent: deque[tuple[float, float, float, int]] = deque()
        self._n_connections = 0
        self._last_error: str | None = None
        self._reported_stale: bool | None = None
        self._callback_errors = {"on_chunk": 0, "on_status": 0, "raw tap": 0}
        self._callback_logged_at = dict.fromkeys(self._callback_errors, -math.inf)
        self._callback_unlogged = dict.fromkeys(self._callback_errors, 0)
        # Observers of the samples as received (recordings): replaced whole, read without a lock.
        self._raw_taps: tuple[Callable[..., None], ...] = ()
        self._raw_tap_keys: dict[str, Callable[..., None]] = {}
        self._info_xml: str | None = None  # the connected stream's full LSL info document
        self._clock_offset: tuple[float, float] | None = None  # (clock() when measured, time_correction s)
        # Seconds between a sample's timestamp and its arrival here, learnt per connection (worker thread only).
        self._arrival_lag_s = 0.0

    def __repr__(self) -> str:
        state = "connected" if self.connected else "not connected"
        return f"<LslStream {self.selector.describe()} | {state}, stale={self.stale}>"

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start the acquisition worker (returns at once; connection happens in the background).

        Raises
        ------
        RuntimeError
            If the stream was already started; create a new LslStream to attach again.
        """
        if self._thread is not None:
            raise RuntimeError(
                "This LslStream was already started; stop() it and create a new LslStream to "
                "attach the stream again."
            )
        self._thread = threading.Thread(
            target=self._run, name=f"lsl[{self.selector.describe()}]", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the worker and drop the inlet; safe to call repeatedly or before start().

        Parameters
        ----------
        timeout : float
            Seconds to wait for the worker to finish; a warning is logged if it does not (it is
            a daemon thread, so it never blocks interpreter exit).
        """
        check_range(timeout, "timeout", low=0, unit="s")
        thread = self._thread
        if thread is None:
            return  # never started: nothing to stop
        self._stop_event.set()
        if thread is threading.current_thread():
            return  # called from a callback: the worker ends after it returns
        thread.join(timeout)
        if thread.is_alive():
            logger.warning(
                "LSL worker for %s did not stop within %g s; it will exit after its current pylsl call.",
                self.selector.describe(),
                timeout,
            )

    # ------------------------------------------------------------------ health
    @property
    def clock(self) -> Callable[[], float]:
        """The clock every health decision reads (the LSL timestamp clock unless a test injected one)."""
        return self._clock

    @property
    def info(self) -> StreamInfo | None:
        """The connected (or last connected) stream's description, None before the first connection."""
        with self._lock:
            return self._info

    @property
    def connected(self) -> bool:
        """Whether an inlet is open right now."""
        with self._lock:
            return self._connected_at is not None

    @property
    def data_age_s(self) -> float | None:
        """``clock()`` minus the newest sample's timestamp, s; None before any sample."""
        with self._lock:
            last = self._last_timestamp
        return None if last is None else self._clock() - last

    @property
    def stale(self) -> bool:
        """True when not connected, before the first sample, or when data_age_s > stale_after_s."""
        with self._lock:
            connected, last = self._connected_at is not None, self._last_timestamp
        return not connected or last is None or self._clock() - last > self.stale_after_s

    @property
    def effective_srate(self) -> float | None:
        """The source's measured rate over the chunks of the last few seconds, Hz; None when not connected.

        Samples per second of the timestamps the outlet sent (before the dejitter, which would give back
        the nominal rate), not per second of arrival: right after a (re)connection the inlet receives the
        outlet's backlog in a burst, which counted by arrival read as twice the rate or more. 0 when
        nothing came for that long; None while a single sample came.
        """
        now = self._clock()
        with self._lock:
            if self._connected_at is None:
                return None
            recent = [c for c in self._recent if c[0] > now - _SRATE_WINDOW_S]
        if not recent:
            return 0.0  # connected, silent for the whole window
        n = sum(c[3] for c in recent)
        span = recent[-1][2] - recent[0][1]
        return (n - 1) / span if n > 1 and span > 0 else None

    @property
    def n_reconnects(self) -> int:
        """Successful connections after the first one."""
        with self._lock:
            return max(0, self._n_connections - 1)

    @property
    def n_callback_errors(self) -> int:
        """Exceptions raised by on_chunk and on_status so far."""
        with self._lock:
            return sum(self._callback_errors.values())

    @property
    def last_error(self) -> str | None:
        """The latest connection problem (None once connected and flowing)."""
        with self._lock:
            return self._last_error

    def status(self) -> dict[str, Any]:
        """Return a JSON-ready snapshot: selector, info, connected, stale, data age, rate, counters."""
        info = self.info
        return {
            "selector": self.selector.model_dump(),
            "info": None if info is None else asdict(info),
            "connected": self.connected,
            "stale": self.stale,
            "data_age_s": self.data_age_s,
            "effective_srate": self.effective_srate,
            "n_reconnects": self.n_reconnects,
            "n_callback_errors": self.n_callback_errors,
            "last_error": self.last_error,
        }

    # ------------------------------------------------------------------ worker
    def _run(self) -> None:
        try:
            while not self._stop_event.is_set():
                try:
                    self._step()
                except LostError:
                    self._disconnect("the stream was lost (outlet closed or unreachable); re-resolving")
                except Exception as err:  # nothing may kill the worker: log, drop the inlet, retry
                    logger.exception("LSL worker for %s failed.", self.selector.describe())
                    self._disconnect(None)
                    self._set_error(f"acquisition failed ({type(err).__name__}: {err}); retrying")
                    self._stop_event.wait(_RETRY_INTERVAL_S)
        finally:
            self._disconnect(None, report=False)

    def _step(self) -> None:
        """One pass of the worker: connect if needed, else pull once and check health."""
        if self._inlet is None:
            if not self._try_connect():
                self._stop_event.wait(_RETRY_INTERVAL_S)
            return
        n = self._pull()
        self._report_if_stale_flipped()
        if n == 0 and self._clock() - self._last_receive > self.reresolve_after_s:
            self._check_alive()

    def _should_stop(self) -> bool:
        return self._stop_event.is_set()

    def _try_connect(self) -> bool:
        selector_text = self.selector.describe()
        with self._lock:
            known = self._info
        source_id = known.source_id if known is not None and known.source_id else None
        try:
            resolved = resolve_stream(
                self.selector,
                timeout=self.resolve_timeout_s,
                source_id=source_id,
                should_stop=self._should_stop,
            )
            if self._stop_event.is_set():
                return True  # the loop ends; nothing was opened
            read_stream_info(resolved)  # refuse markers/strings before opening anything
            inlet, info = self._open_inlet(resolved)
        except (StreamResolutionError, ValueError) as err:
            self._set_error(str(err))
            return False
        except (LostError, LslTimeoutError) as err:
            self._set_error(f"connecting to {selector_text} failed ({type(err).__name__}: {err}); retrying")
            return False
        except Exception as err:
            logger.exception("Connecting to %s failed.", selector_text)
            self._set_error(f"connecting to {selector_text} failed ({type(err).__name__}: {err}); retrying")
            return False

        now = self._clock()
        self._inlet = inlet
        self._uid = resolved.uid()
        self._dejitter = SegmentDejitter(info.sfreq, gap_factor=self.gap_factor, jitter_s=self.jitter_s)
        self._arrival_lag_s = 0.0
        self._buffer = np.empty(
            (max(1, int(math.ceil(info.sfreq * self.max_buffer_s))), info.n_channels), dtype=inlet.np_dtype
        )
        self._last_receive = now
        with self._lock:
            self._info = info
            self._connected_at = now
            self._recent.clear()
            self._n_connections += 1
            self._last_error = None
            n_connections = self._n_connections
        if not info.source_id and n_connections == 1:
            logger.warning(
                "Stream %r has no source_id: after a loss it can only be found again by %s, which "
                "must then match exactly one stream. Give the outlet a source_id.",
                info.name,
                selector_text,
            )
        logger.info(
            "%s %s: name=%r type=%r source_id=%r, %d channels at %g Hz.",
            "Reconnected to" if n_connections > 1 else "Connected to",
            selector_text,
            info.name,
            info.type,
            info.source_id,
            info.n_channels,
            info.sfreq,
        )
        self._reported_stale = None
        self._notify_status()
        return True

    def _open_inlet(self, resolved) -> tuple[pylsl.StreamInlet, StreamInfo]:
        inlet = pylsl.StreamInlet(
            resolved,
            max_buflen=self.max_buffer_s,
            recover=False,  # a lost outlet must raise here so that we re-resolve and count it
            processing_flags=_PROCESSING_FLAGS,
        )
        try:
            full = inlet.info(timeout=self.resolve_timeout_s)  # with desc()
            info = read_stream_info(full)
            self._info_xml = full.as_xml()
            inlet.open_stream(timeout=self.resolve_timeout_s)
            inlet.time_correction(timeout=self.resolve_timeout_s)  # the first estimate takes a few ms
        except BaseException:
            inlet.close_stream()
            raise
        return inlet, info

    def _min_samples(self, most: int) -> int:
        """Samples the next pull waits for: the consumer's :attr:`samples_wanted`, within [1, most]."""
        if self.samples_wanted is None:
            return 1
        try:
            wanted = int(self.samples_wanted())
        except Exception:  # a broken hint must not stop acquisition: fall back to waking per sample
            logger.exception("samples_wanted of %s failed; waking on every sample.", self.selector.describe())
            self.samples_wanted = None
            return 1
        return min(max(wanted, 1), most)

    def _wait_s(self) -> float:
        """How long the next pull may wait: ``wait_s``, but no later than the moment data turns stale.

        Without the cap a pull could sleep through the whole of a short pause, and the stale flip
        (``on_status``) would never be reported.
        """
        last = self._last_timestamp  # written by this thread only
        if last is None:
            return self.wait_s
        until_stale = last + self.stale_after_s - self._clock()
        if until_stale < 0:
            return self.wait_s  # already stale: reported after this pull
        return min(self.wait_s, until_stale + _STALE_MARGIN_S)

    def _sleep_until_due(self, wanted: int) -> bool:
        """Sleep until ``wanted`` samples should be in the inlet (module docstring); False if stopped meanwhile.

        Returns True at once when there is nothing to predict from (no sample yet, ``wanted`` 1).
        """
        last = self._last_timestamp  # written by this thread only
        if wanted <= 1 or last is None:
            return True
        now = self._clock()
        due = last + wanted / self._info.sfreq + self._arrival_lag_s
        # Never longer than the source takes to send them at the rate it sends now (a replay faster than real
        # time sends its samples several times faster than their timestamps say), nor past their arrival with
        # timestamps far ahead of this host's clock (an unsynchronised device clock).
        sent_in = wanted / max(self._info.sfreq, self._arrival_rate(now))
        until_stale = last + self.stale_after_s - now + _STALE_MARGIN_S  # report the stale flip in time
        sleep = min(due - now, sent_in + _LAG_MARGIN_S, max(until_stale, 0.0), _LONGEST_SLEEP_S)
        return sleep <= 0 or not self._stop_event.wait(sleep)

    def _arrival_rate(self, now: float) -> float:
        """Samples received per second of ``clock`` over the last few seconds' pulls (0 with fewer than two)."""
        recent = self._recent  # appended by this thread only; read without the lock here
        if len(recent) < 2:
            return 0.0
        span = now - recent[0][0]
        return sum(c[3] for c in list(recent)[1:]) / span if span > 0 else 0.0

    def _learn_arrival_lag(self, wanted: int, was_there: bool, last_timestamp: float, now: float) -> None:
        """Move the arrival-lag estimate after a pull that waited for ``wanted`` samples (module docstring)."""
        if wanted <= 1:
            return
        if was_there:  # woke after the samples arrived: try a little earlier next time
            lag = self._arrival_lag_s - _LAG_STEP_S
        else:  # woke too early: the pull returned when they arrived, which measures the lag
            # Rise by a bounded step: one late reading (this thread waiting for the GIL, a pause) must not add
            # its delay to the following windows; waking early only costs liblsl a few wake-ups.
            lag = min(now - last_timestamp + _LAG_MARGIN_S, self._arrival_lag_s + _LAG_RISE_S)
        self._arrival_lag_s = min(max(lag, -_LAG_BOUND_S), _LAG_BOUND_S)

    def _pull(self) -> int:
        buffer = self._buffer
        wanted = self._min_samples(buffer.shape[0])
        if not self._sleep_until_due(wanted):
            return 0  # stopped
        inlet = self._inlet
        was_there = wanted > 1 and inlet.samples_available() >= wanted
        _, timestamps = inlet.pull_chunk(
            timeout=self._wait_s(),
            max_samples=buffer.shape[0],
            min_samples=wanted,
            dest_obj=buffer,
            as_numpy=True,
        )
        n = len(timestamps)
        if n == 0:
            return 0
        now = self._clock()
        first_sent, last_sent = float(timestamps[0]), float(timestamps[n - 1])
        raw_taps = self._raw_taps
        if raw_taps:  # as received: before the dejitter, in the outlet's format
            samples, received = buffer[:n].copy(), np.array(timestamps, dtype=np.float64)
            offset = self._time_correction(now)
            for tap in raw_taps:
                self._call("raw tap", tap, self._info_xml, samples, received, offset)
        timestamps = self._dejitter(np.array(timestamps, dtype=np.float64))
        data = np.array(buffer[:n].T, dtype=np.float64, order="C")  # (n_channels, n), a copy
        self._last_receive = now
        if n >= wanted:
            self._learn_arrival_lag(wanted, was_there, float(timestamps[-1]), now)
        with self._lock:
            self._last_timestamp = float(timestamps[-1])
            self._recent.append((now, first_sent, last_sent, n))
            while self._recent and self._recent[0][0] <= now - _SRATE_WINDOW_S:
                self._recent.popleft()
        self._call("on_chunk", self.on_chunk, data, timestamps)
        return n

    def _time_correction(self, now: float) -> float:
        """liblsl's current clock offset of the outlet (s, added to its timestamps), re-read every 5 s."""
        known = self._clock_offset
        if known is None or now - known[0] >= _CLOCK_OFFSET_EVERY_S:
            try:
                value = float(self._inlet.time_correction(timeout=self.resolve_timeout_s))
            except (LslTimeoutError, LostError):
                value = 0.0 if known is None else known[1]
            known = self._clock_offset = (now, value)
        return known[1]

    def add_raw_tap(self, key: str, tap: Callable[..., None]) -> None:
        """Call ``tap(info_xml, samples, timestamps, clock_offset)`` on the worker thread for every chunk.

        ``samples`` (shape (n, n_channels), the outlet's channel format) and ``timestamps`` (shape
        (n,), s) are the chunk as received, before the dejitter: on this host's LSL clock, since
        the inlet synchronises clocks. ``clock_offset`` is the outlet's offset liblsl added (its
        ``time_correction``, re-read every 5 s), so ``timestamps - clock_offset`` is the outlet's
        own clock, as LabRecorder writes it. ``info_xml`` is the connected stream's full LSL info
        (``StreamInfo.as_xml()``); it changes only on a reconnection. The tap must be quick (queue
        the chunk); its exceptions are counted and logged like ``on_chunk``'s.
        """
        if not callable(tap):
            raise TypeError(f"tap must be callable, got {type(tap).__name__} instead.")
        with self._lock:
            self._raw_tap_keys[key] = tap
            self._raw_taps = tuple(self._raw_tap_keys.values())

    def remove_raw_tap(self, key: str) -> None:
        """Forget a raw tap (no error if it is not there); the worker stops calling it within one chunk."""
        with self._lock:
            self._raw_tap_keys.pop(key, None)
            self._raw_taps = tuple(self._raw_tap_keys.values())

    def _check_alive(self) -> None:
        """After long silence: keep the inlet if its outlet still answers, else drop it."""
        predicate = selector_predicate(self.selector, source_id=self._info.source_id or None)
        infos = find_streams(predicate, timeout=self.resolve_timeout_s, should_stop=self._should_stop)
        if self._stop_event.is_set():
            return
        if any(info.uid() == self._uid for info in infos):
            logger.info(
                "No data from %s for %.1f s but its outlet is still there; keeping the inlet.",
                self.selector.describe(),
                self._clock() - self._last_receive,
            )
            self._last_receive = self._clock()  # check again after another reresolve_after_s
            return
        self._disconnect(
            f"no data for {self.reresolve_after_s:g} s and the outlet no longer answers; re-resolving"
        )

    def _disconnect(self, reason: str | None, *, report: bool = True) -> None:
        inlet, self._inlet, self._buffer, self._uid = self._inlet, None, None, None
        self._dejitter = self._clock_offset = None
        if inlet is not None:
            try:
                inlet.close_stream()
            except Exception:
                logger.exception("Closing the inlet of %s failed.", self.selector.describe())
        with self._lock:
            was_connected = self._connected_at is not None
            self._connected_at = None
            self._recent.clear()
        if reason is not None and was_connected:
            self._set_error(reason)  # logs it
        elif report and was_connected:
            self._notify_status()

    def _set_error(self, message: str) -> None:
        with self._lock:
            changed, self._last_error = message != self._last_error, message
        if changed:
            logger.warning("LSL stream %s: %s", self.selector.describe(), message)
            self._notify_status()

    def _report_if_stale_flipped(self) -> None:
        stale = self.stale
        if stale != self._reported_stale:
            self._reported_stale = stale
            self._notify_status()

    def _notify_status(self) -> None:
        callback = self.on_status
        if callback is not None:
            self._call("on_status", callback, self.status())

    def _call(self, which: str, callback: Callable[..., Any], *args: Any) -> None:
        try:
            callback(*args)
        except Exception:
            now = self._clock()
            with self._lock:
                self._callback_errors[which] += 1
                due = now - self._callback_logged_at[which] >= _CALLBACK_LOG_EVERY_S
                if due:
                    self._callback_logged_at[which] = now
                    unlogged, self._callback_unlogged[which] = self._callback_unlogged[which], 0
                else:
                    self._callback_unlogged[which] += 1
            if due:
                logger.exception(
                    "%s of LSL stream %s raised (%d more since the last report); the worker goes on.",
                    which,
                    self.selector.describe(),
                    unlogged,
                )
