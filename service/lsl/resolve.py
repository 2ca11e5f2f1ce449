"""Finding LSL streams: selector → XPath predicate → exactly one outlet, and what that outlet says about itself.

:func:`resolve_stream` turns a :class:`~service.config.StreamSelector` into the one matching
outlet, :func:`read_stream_info` reads its name, type, source_id, channel labels/units and rate
into a :class:`StreamInfo`. The acquisition worker (:mod:`service.lsl.worker`) calls both at every
(re)connection; they hold no state and can be used (and tested) without a worker.

Rules
-----
- **Every pylsl call has a timeout.** Resolution runs in slices of ``_RESOLVE_SLICE_S`` and
  polls ``should_stop`` between them, so a caller's stop is honoured within about one slice.
- **Exactly one stream must match.** No match or several matches raise
  :class:`StreamResolutionError`; for several, the message lists every candidate's
  name/type/source_id and asks for a narrower selector. Candidates are gathered in two phases:
  wait up to ``timeout`` for a first match, then up to ``_AMBIGUITY_WINDOW_S`` more for a second
  one (a single ``minimum=1`` resolve can return before every outlet has answered).
- **Irregular-rate (marker) and string streams are refused** by :func:`read_stream_info` with a
  clear ValueError; they come with the marker-stream work.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pylsl

from service.config import StreamSelector
from signals._checks import check_range, check_type

logger = logging.getLogger(__name__)

_AMBIGUITY_WINDOW_S = 0.5  # extra wait for a second matching outlet once one has answered
_RESOLVE_SLICE_S = 0.25  # one resolve call; resolution loops over slices so stop() is prompt


@dataclass(frozen=True)
class StreamInfo:
    """What an LSL stream says about itself, read once at connection.

    Parameters
    ----------
    name, type, source_id : str
        The stream's LSL name, content type and source_id (``""`` when the outlet set none).
    channels : tuple of str, length n_channels
        Channel labels from ``desc/channels/channel/label``; ``"ch0"``, ``"ch1"``, ... when the
        description has none (or not one per channel).
    units : tuple of str, length n_channels
        Channel units from ``desc/channels/channel/unit``, else the stream-level ``desc/unit``,
        else ``"unknown"``.
    sfreq : float
        Nominal sampling rate in Hz (always > 0: irregular-rate streams are refused).
    n_channels : int
        Number of channels.
    """

    name: str
    type: str
    source_id: str
    channels: tuple[str, ...]
    units: tuple[str, ...]
    sfreq: float
    n_channels: int


class StreamResolutionError(RuntimeError):
    """No stream, or more than one stream, matches a selector.

    Attributes
    ----------
    candidates : tuple of (name, type, source_id)
        The matching streams (empty when none matched).
    """

    def __init__(self, message: str, candidates: tuple[tuple[str, str, str], ...] = ()):
        super().__init__(message)
        self.candidates = candidates


def selector_predicate(selector: StreamSelector, *, source_id: str | None = None) -> str:
    """Build the XPath predicate that pylsl's ``resolve_bypred`` matches a selector with.

    Parameters
    ----------
    selector : StreamSelector
        Which stream (at least one of type/name/source_id is set).
    source_id : str | None
        An extra source_id condition (used to re-resolve the very source seen before).

    Returns
    -------
    predicate : str
        E.g. ``"type='EEG' and source_id='amp-1'"``.
    """
    check_type(selector, StreamSelector, "selector")
    conditions = [(k, getattr(selector, k)) for k in ("type", "name", "source_id")]
    if source_id is not None:
        conditions.append(("source_id", source_id))
    parts = [f"{key}={_xpath_literal(value, key)}" for key, value in conditions if value is not None]
    if not parts:
        raise ValueError("The selector sets none of type, name, source_id; set at least one.")
    return " and ".join(dict.fromkeys(parts))  # a repeated source_id condition appears once


def _xpath_literal(value: str, key: str) -> str:
    # XPath 1.0 has no escapes: quote with whichever quote the value does not contain.
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    raise ValueError(f"The selector's {key} {value!r} contains both ' and \"; LSL cannot match it.")


def find_streams(predicate: str, *, timeout: float, should_stop: Callable[[], bool] | None = None) -> list:
    """Return every outlet matching an XPath predicate (pylsl StreamInfo objects, empty desc).

    Waits up to ``timeout`` seconds for a first match, then up to ``_AMBIGUITY_WINDOW_S`` more
    for a second one, so that an ambiguous selector is noticed. Duplicates (same uid) are merged.

    Parameters
    ----------
    predicate : str
        XPath predicate, e.g. from :func:`selector_predicate`.
    timeout : float
        Seconds to wait for the first match.
    should_stop : callable | None
        Polled between resolve slices; returning True abandons the search (returns ``[]``).
    """
    check_type(predicate, str, "predicate")
    check_range(timeout, "timeout", low=0, low_inclusive=False, unit="s")
    should_stop = should_stop or (lambda: False)
    found: dict[str, Any] = {}
    deadline = pylsl.local_clock() + timeout
    while not found and not should_stop():
        remaining = deadline - pylsl.local_clock()
        if remaining <= 0:
            return []
        for info in pylsl.resolve_bypred(predicate, 1, min(_RESOLVE_SLICE_S, remaining)):
            found[info.uid()] = info
    if should_stop():
        return []
    if len(found) == 1:
        window = min(_AMBIGUITY_WINDOW_S, timeout)
        for info in pylsl.resolve_bypred(predicate, 2, window):
            found[info.uid()] = info
    return list(found.values())


def resolve_stream(
    selector: StreamSelector,
    *,
    timeout: float,
    source_id: str | None = None,
    should_stop: Callable[[], bool] | None = None,
):
    """Return the one outlet matching ``selector`` (a pylsl StreamInfo with an empty desc).

    Parameters
    ----------
    selector : StreamSelector
        Which stream.
    timeout : float
        Seconds to wait for a first match.
    source_id : str | None
        Also require this source_id (re-resolution of a known source).
    should_stop : callable | None
        See :func:`find_streams`.

    Raises
    ------
    StreamResolutionError
        When no stream or several streams match; the message lists the candidates.
    """
    predicate = selector_predicate(selector, source_id=source_id)
    what = selector.describe()
    if source_id is not None and selector.source_id is None:
        what += f", source_id={source_id!r}"
    infos = find_streams(predicate, timeout=timeout, should_stop=should_stop)
    if not infos:
        raise StreamResolutionError(
            f"no stream matching {what} found within {timeout:g} s; check that the outlet is "
            "running and reachable (same subnet, multicast allowed), the worker keeps retrying."
        )
    if len(infos) > 1:
        candidates = tuple(sorted((i.name(), i.type(), i.source_id()) for i in infos))
        listing = "; ".join(f"name={n!r} type={t!r} source_id={s!r}" for n, t, s in candidates)
        raise StreamResolutionError(
            f"{len(infos)} streams match {what}: {listing}. Make the selector match exactly one, "
            "e.g. by adding name= or source_id=.",
            candidates,
        )
    return infos[0]


def read_stream_info(info) -> StreamInfo:
    """Read name, type, source_id, channel labels/units and rate from a pylsl StreamInfo.

    Parameters
    ----------
    info : pylsl.StreamInfo
        Preferably the full info from ``StreamInlet.info(timeout)``, which carries ``desc()``.

    Returns
    -------
    stream_info : StreamInfo

    Raises
    ------
    ValueError
        For an irregular-rate (marker) stream or a string-valued stream: not supported yet.
    """
    check_type(info, pylsl.StreamInfo, "info")
    name, stype, source_id = info.name(), info.type(), info.source_id()
    sfreq = float(info.nominal_srate())
    if sfreq == pylsl.IRREGULAR_RATE:
        raise ValueError(
            f"Stream name={name!r} type={stype!r} source_id={source_id!r} has an irregular rate "
            "(nominal_srate=0, e.g. a marker stream); only regular-rate signal streams can be "
            "attached for now. Select the signal stream instead."
        )
    if info.channel_format() == pylsl.cf_string:
        raise ValueError(
            f"Stream name={name!r} type={stype!r} source_id={source_id!r} carries strings; only "
            "numeric signal streams can be attached. Select the signal stream instead."
        )
    n_channels = int(info.channel_count())
    labels, units = _read_channels(info.desc(), n_channels, name)
    return StreamInfo(
        name=name,
        type=stype,
        source_id=source_id,
        channels=labels,
        units=units,
        sfreq=sfreq,
        n_channels=n_channels,
    )


def _read_channels(desc, n_channels: int, stream_name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    entries = []
    channel = desc.child("channels").child("channel")
    while not channel.empty():
        entries.append((channel.child_value("label").strip(), channel.child_value("unit").strip()))
        channel = channel.next_sibling("channel")
    if entries and len(entries) != n_channels:
        logger.warning(
            "Stream %r describes %d channels but has %d; ignoring its channel labels and units.",
            stream_name,
            len(entries),
            n_channels,
        )
        entries = []
    stream_unit = desc.child_value("unit").strip() or "unknown"
    labels = tuple(label or f"ch{i}" for i, (label, _) in enumerate(entries)) or tuple(
        f"ch{i}" for i in range(n_channels)
    )
    units = tuple(unit or stream_unit for _, unit in entries) or (stream_unit,) * n_channels
    if len(set(labels)) != len(labels):
        logger.warning("Stream %r has duplicate channel labels %s.", stream_name, labels)
    return labels, units
