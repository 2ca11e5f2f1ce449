"""Channel matching: which rows of a stream or file give a feature spec's channels, in the spec's order.

One rule for every input (live LSL streams, recordings read for training, ``POST /predict``
signals): names match case-insensitively but otherwise exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._checks import check_type


def map_channels(stream_channels: Sequence[str], spec_channels: Sequence[str]) -> np.ndarray:
    """Rows of a stream's chunk that give the spec's channels, in the spec's order.

    Names match case-insensitively but otherwise exactly (``'Fp1'`` is ``'FP1'``; ``'Fp1 '`` is
    not). Stream channels the spec does not use are ignored.

    Parameters
    ----------
    stream_channels : sequence of str
        The stream's channel labels, in its row order.
    spec_channels : sequence of str
        The channels the feature spec needs, in its row order.

    Returns
    -------
    rows : array of int64, shape (n_spec_channels,)
        ``chunk[rows]`` is the chunk in spec order.

    Raises
    ------
    TypeError
        A name list is a single string or holds a non-string.
    ValueError
        A spec channel is missing from the stream (all missing ones are listed, with what the
        stream has), or matches several stream channels.
    """
    stream_channels = _check_names(stream_channels, "stream_channels")
    spec_channels = _check_names(spec_channels, "spec_channels")
    positions: dict[str, list[int]] = {}
    for row, name in enumerate(stream_channels):
        positions.setdefault(name.casefold(), []).append(row)
    missing = [name for name in spec_channels if name.casefold() not in positions]
    if missing:
        raise ValueError(
            f"the stream lacks {len(missing)} channel(s) the model needs: {missing}. The stream has "
            f"{list(stream_channels)}. Attach a stream with these channel labels (case is ignored) or "
            "a model trained on the stream's channels."
        )
    ambiguous = {
        name: [stream_channels[r] for r in positions[name.casefold()]]
        for name in spec_channels
        if len(positions[name.casefold()]) > 1
    }
    if ambiguous:
        raise ValueError(
            f"channel labels are ambiguous (several stream channels match, ignoring case): {ambiguous}. "
            "Give the stream's channels unique labels."
        )
    return np.array([positions[name.casefold()][0] for name in spec_channels], dtype=np.int64)


def _check_names(names: Sequence[str], name: str) -> tuple[str, ...]:
    if isinstance(names, str):
        raise TypeError(f"{name} must be a sequence of channel names, got the single string {names!r}.")
    names = tuple(names)
    for item in names:
        check_type(item, str, f"every entry of {name}")
    return names


__all__ = ["map_channels"]
