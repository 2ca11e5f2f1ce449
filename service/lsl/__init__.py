"""LSL ingestion, in two parts: finding streams (:mod:`.resolve`) and acquiring them (:mod:`.worker`).

- :mod:`service.lsl.resolve`: a :class:`~service.config.StreamSelector` → the one matching outlet
  (:func:`resolve_stream`, :func:`find_streams`, :func:`selector_predicate`) → what it says about
  itself (:func:`read_stream_info`, :class:`StreamInfo`); stateless, no thread.
- :mod:`service.lsl.worker`: :class:`LslStream`, the one background worker per attached stream
  (pull, dejitter, reconnect, health), which uses the resolve functions at every connection.

The public names of both are importable from here (``from service.lsl import LslStream``).
"""

from service.lsl.resolve import (
    StreamInfo,
    StreamResolutionError,
    find_streams,
    read_stream_info,
    resolve_stream,
    selector_predicate,
)
from service.lsl.worker import LslStream

__all__ = [
    "LslStream",
    "StreamInfo",
    "StreamResolutionError",
    "find_streams",
    "read_stream_info",
    "resolve_stream",
    "selector_predicate",
]
