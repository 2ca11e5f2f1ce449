"""Test helpers for time: a clock tests move by hand, and waiting for something to happen without sleeping.

- :class:`FakeClock` goes into the ``clock=`` argument of :class:`~service.lsl.LslStream` and the
  ``clock=`` / ``sleep=`` arguments of :class:`~clients.simulator.Simulator` and
  :class:`~clients.replay.Replayer`, so that "stale after N s", due times or a late wake-up are
  driven explicitly instead of waited for.
- :class:`Recorder` is a callback (``on_chunk``, ``on_status``...) that keeps what it is called with
  and lets a test block on a condition variable until that satisfies a predicate.
- :func:`wait_until` polls a predicate; use it only where nothing calls back when the state changes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any


class FakeClock:
    """A clock that jumps only when told: ``clock()`` reads it, ``advance(dt)`` moves it forward.

    Parameters
    ----------
    start : float
        The first reading, s (frozen clock only).
    base : callable | None
        None: the clock is frozen between :meth:`advance` calls. A real clock (e.g.
        ``pylsl.local_clock``): the clock runs with it, and :meth:`advance` adds a jump; use this
        with real LSL outlets, whose timestamps are on that clock.

    Attributes
    ----------
    sleeps : list of float
        Every delay :meth:`sleep` was asked for, s, in order.
    late_s : list of float
        Oversleep of the next :meth:`sleep` calls, s, consumed one per call (a late wake-up).
    stop_at : float | None
        :meth:`sleep` returns True (stop) once the clock reaches this reading.
    """

    def __init__(self, start: float = 1000.0, *, base: Callable[[], float] | None = None):
        self._lock = threading.Lock()
        self._base = base
        self._offset = float(start) if base is None else 0.0
        self.sleeps: list[float] = []
        self.late_s: list[float] = []
        self.stop_at: float | None = None

    def __call__(self) -> float:
        with self._lock:
            return self._offset + (0.0 if self._base is None else self._base())

    def advance(self, seconds: float) -> None:
        """Move the clock ``seconds`` forward at once."""
        if seconds < 0:
            raise ValueError(f"a clock only moves forward, got {seconds} s.")
        with self._lock:
            self._offset += seconds

    def sleep(self, seconds: float) -> bool:
        """Pass ``seconds`` (plus the next ``late_s``) of clock time instantly; True once ``stop_at`` is reached."""
        with self._lock:
            self.sleeps.append(seconds)
            self._offset += seconds + (self.late_s.pop(0) if self.late_s else 0.0)
        now = self()
        return self.stop_at is not None and now >= self.stop_at


class Recorder:
    """A callback that keeps its calls (one argument: the argument; several: the tuple), thread-safe.

    A test waits for what it expects with :meth:`wait_for`, which sleeps on a condition variable
    that every call notifies: it returns as soon as the callback has seen enough, no polling.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.calls: list[Any] = []

    def __call__(self, *args: Any) -> None:
        with self._cond:
            self.calls.append(args[0] if len(args) == 1 else args)
            self._cond.notify_all()

    def snapshot(self) -> list[Any]:
        """A copy of the calls so far."""
        with self._cond:
            return list(self.calls)

    def wait_for(self, predicate: Callable[[list[Any]], bool], timeout: float, what: str) -> list[Any]:
        """Block until ``predicate(calls)`` is true and return a copy of the calls; AssertionError after ``timeout`` s."""
        with self._cond:
            if not self._cond.wait_for(lambda: predicate(self.calls), timeout):
                raise AssertionError(f"timed out after {timeout} s waiting for {what}")
            return list(self.calls)


def wait_until(condition: Callable[[], bool], timeout: float, what: str, *, interval: float = 0.01) -> None:
    """Poll ``condition()`` every ``interval`` s; AssertionError after ``timeout`` s.

    For state nothing calls back about (a thread ending, a log record); prefer :class:`Recorder`.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)
