"""A fixed-capacity ring buffer of multichannel samples whose latest samples are always one contiguous view."""

from __future__ import annotations

import numpy as np

from ._checks import check_array, ensure_int


class RingBuffer:
    """Keep the last ``capacity`` samples of a multichannel signal.

    Layout: ``(n_channels, 2 * capacity)`` float64, time last. Every sample is written twice,
    at ``i`` and ``i + capacity``, so the latest ``n <= capacity`` samples are always the
    contiguous slice ``[pos - n + capacity, pos + capacity)``: reads are views, never copies,
    and a write costs O(samples written).

    Parameters
    ----------
    n_channels : int
        Number of channels.
    capacity : int
        Number of samples kept.

    Attributes
    ----------
    n_filled : int
        Samples currently held (at most ``capacity``).
    """

    def __init__(self, n_channels: int, capacity: int):
        self.n_channels = ensure_int(n_channels, "n_channels")
        self.capacity = ensure_int(capacity, "capacity")
        if self.n_channels < 1 or self.capacity < 1:
            raise ValueError(
                f"n_channels and capacity must be >= 1, got n_channels={n_channels}, capacity={capacity}."
            )
        self._data = np.zeros((self.n_channels, 2 * self.capacity))
        self._pos = 0
        self.n_filled = 0

    def clear(self) -> None:
        """Forget every sample (the memory is reused)."""
        self._pos = 0
        self.n_filled = 0

    def append(self, data) -> None:
        """Append samples.

        Parameters
        ----------
        data : array, shape (n_channels, n_times)
            New samples, oldest first. Only the last ``capacity`` are kept.
        """
        data = check_array(data, "data", ndim=2, layout="(n_channels, n_times)", allow_nonfinite=True)
        if data.shape[0] != self.n_channels:
            raise ValueError(f"data must have {self.n_channels} channels (rows), got {data.shape[0]}.")
        self._append(data)

    def _append(self, data: np.ndarray) -> None:
        n = data.shape[1]
        cap = self.capacity
        if n >= cap:
            data = data[:, n - cap :]
            self._data[:, :cap] = data
            self._data[:, cap:] = data
            self._pos = 0
            self.n_filled = cap
            return
        first = min(n, cap - self._pos)  # samples before the write wraps
        for offset in (0, cap):
            self._data[:, offset + self._pos : offset + self._pos + first] = data[:, :first]
            self._data[:, offset : offset + n - first] = data[:, first:]
        self._pos = (self._pos + n) % cap
        self.n_filled = min(cap, self.n_filled + n)

    def latest(self, n: int) -> np.ndarray:
        """Return a read-only view of the latest ``n`` samples, shape ``(n_channels, n)``."""
        n = ensure_int(n, "n")
        if not 0 <= n <= self.n_filled:
            raise ValueError(f"Asked for the latest {n} samples, but the buffer holds {self.n_filled}.")
        stop = self._pos + self.capacity
        view = self._data[:, stop - n : stop]
        view.flags.writeable = False
        return view
