"""Labelled trial segments from marker texts: the one parser of recordings and live calibration.

Two conventions, possibly in one stream:

- **strings** ``trial_start`` / ``trial_start:<label>`` … ``trial_end`` (the patterns are regular
  expressions, ``re.match``; a named group ``label`` in the start pattern gives the class);
- **JSON onsets** ``{"trial": k, "label": "<class>"}`` (``m2s simulate``; an optional ``"phase"`` is
  kept): a trial starts at its onset and ends at the next onset, at a ``trial_end``, at the end of the
  data, or ``onset_trial_s`` after the onset when that is given (the class's trial length).

Other marker texts are ignored. :class:`TrialMarkerParser` is incremental: a live marker stream
pushes markers one by one and gets each segment as soon as it is closed; a recording pushes all of
them and calls :meth:`~TrialMarkerParser.close` with the end of its data. Both get the same segments.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from ._checks import check_range, check_type

DEFAULT_START_PATTERN = r"^trial_start(?::(?P<label>.+))?$"
DEFAULT_END_PATTERN = r"^trial_end$"
#: Phases a JSON onset may name (``m2s simulate --calibration-trials``).
PHASES: tuple[str, ...] = ("calibration", "test")


class MarkerError(ValueError):
    """Markers that do not describe trials (a start without an end, an end without a start)."""


@dataclass(frozen=True)
class TrialSegment:
    """One labelled trial: marker times ``start <= t < end`` (s, the markers' clock).

    Attributes
    ----------
    start, end : float
    label : str | None
        Class name from the marker (None: the start marker carries no label).
    phase : str | None
        ``"phase"`` of a JSON onset (``m2s simulate --calibration-trials``), else None.
    """

    start: float
    end: float
    label: str | None
    phase: str | None = None


def parse_onset(text: str) -> tuple[int, str, str | None] | None:
    """``(trial, label, phase)`` of a JSON onset marker ``{"trial": k, "label": ..., "phase"?: ...}``.

    None for any other text: not JSON, not an object, ``trial`` not an int, ``label`` not a string,
    or a ``phase`` that is not one of :data:`PHASES`.
    """
    if not text.startswith("{"):
        return None
    try:
        obj = json.loads(text)
    except ValueError:
        return None
    if not isinstance(obj, dict):
        return None
    trial, label, phase = obj.get("trial"), obj.get("label"), obj.get("phase")
    if isinstance(trial, bool) or not isinstance(trial, int) or not isinstance(label, str):
        return None
    if phase is not None and phase not in PHASES:
        return None
    return trial, label, phase


class TrialMarkerParser:
    """Turn markers, oldest first, into :class:`TrialSegment` objects (see the module docstring).

    Parameters
    ----------
    start_pattern, end_pattern : str
        Regular expressions of the string convention.
    onset_trial_s : float | None
        Length of a JSON-onset trial when no later marker ends it sooner (None: until the next
        marker that ends it, or the end of the data).

    Raises
    ------
    MarkerError
        From :meth:`push` / :meth:`close`: a string start while a string trial is open, an end
        without a start, a string trial still open at the end of the data.
    """

    def __init__(
        self,
        start_pattern: str = DEFAULT_START_PATTERN,
        end_pattern: str = DEFAULT_END_PATTERN,
        *,
        onset_trial_s: float | None = None,
    ):
        check_type(start_pattern, str, "start_pattern")
        check_type(end_pattern, str, "end_pattern")
        try:
            self.start_re, self.end_re = re.compile(start_pattern), re.compile(end_pattern)
        except re.error as err:
            raise ValueError(
                f"invalid marker pattern: {err}; e.g. start_pattern=r'^go:(?P<label>.+)$'."
            ) from None
        if onset_trial_s is not None:
            check_range(onset_trial_s, "onset_trial_s", low=0, low_inclusive=False, unit="s")
        self.onset_trial_s = onset_trial_s
        self._open: tuple[float, str | None, str | None, bool] | None = None  # start, label, phase, onset?

    @property
    def open_segment(self) -> tuple[float, str | None] | None:
        """``(start, label)`` of the trial open now, or None."""
        return None if self._open is None else self._open[:2]

    @property
    def open_phase(self) -> str | None:
        """The ``"phase"`` of the JSON onset of the trial open now (None: none open, or no phase)."""
        return None if self._open is None else self._open[2]

    def push(self, time: float, text: str) -> list[TrialSegment]:
        """Feed one marker; return the segments it closes (oldest first; usually none or one)."""
        time = float(time)
        check_type(text, str, "text")
        closed = self._expire(time)
        onset = parse_onset(text)
        m_start = None if onset is not None else self.start_re.match(text)
        m_end = None if onset is not None or m_start else self.end_re.match(text)
        if onset is not None:
            if self._open is not None:  # the next onset ends the open trial, whichever convention
                closed.append(self._close_at(time))
            self._open = (time, onset[1], onset[2], True)
        elif m_start:
            if self._open is not None and not self._open[3]:
                raise MarkerError(
                    f"trial start {text!r} at {time:.3f} s comes before the trial started at "
                    f"{self._open[0]:.3f} s has ended; every start needs an end marker first."
                )
            if self._open is not None:
                closed.append(self._close_at(time))
            self._open = (time, m_start.groupdict().get("label"), None, False)
        elif m_end:
            if self._open is None:
                raise MarkerError(
                    f"trial end {text!r} at {time:.3f} s has no matching start marker before it."
                )
            closed.append(self._close_at(time))
        return closed

    def close(self, end_of_data: float | None = None) -> list[TrialSegment]:
        """The end of the markers: close an open JSON-onset trial at ``end_of_data`` (or its length).

        Raises
        ------
        MarkerError
            A string trial is still open (it needs its end marker).
        """
        if self._open is None:
            return []
        start, _, _, onset = self._open
        if not onset:
            raise MarkerError(f"the trial started at {start:.3f} s has no end marker.")
        limit = None if self.onset_trial_s is None else start + self.onset_trial_s
        ends = [t for t in (end_of_data, limit) if t is not None]
        if not ends:
            raise MarkerError(
                f"the trial whose onset marker is at {start:.3f} s has no end: give the end of the data or "
                "onset_trial_s (the trial length)."
            )
        return [self._close_at(min(ends))]

    def _expire(self, time: float) -> list[TrialSegment]:
        if self._open is None or not self._open[3] or self.onset_trial_s is None:
            return []
        end = self._open[0] + self.onset_trial_s
        return [self._close_at(end)] if time >= end else []

    def _close_at(self, end: float) -> TrialSegment:
        start, label, phase, _ = self._open
        self._open = None
        return TrialSegment(start, end, label, phase)


def trial_segments(
    markers, *, start_pattern: str = DEFAULT_START_PATTERN, end_pattern: str = DEFAULT_END_PATTERN,
    end_of_data: float | None = None, onset_trial_s: float | None = None,
) -> list[TrialSegment]:  # fmt: skip
    """Every trial of a finished marker list ``[(time, text), ...]`` (sorted by time), via :class:`TrialMarkerParser`."""
    parser = TrialMarkerParser(start_pattern, end_pattern, onset_trial_s=onset_trial_s)
    segments = [s for t, text in markers for s in parser.push(t, text)]
    return segments + parser.close(end_of_data)


__all__ = [
    "DEFAULT_END_PATTERN",
    "DEFAULT_START_PATTERN",
    "MarkerError",
    "PHASES",
    "TrialMarkerParser",
    "TrialSegment",
    "parse_onset",
    "trial_segments",
]
