"""The shared validation helpers and their message formats."""

import numpy as np
import pytest

from signals._checks import check_option, check_range, ensure_int


def test_ensure_int_rejects_bool():
    """ensure_int refuses booleans (True is not a window length) and accepts numpy integers."""
    with pytest.raises(TypeError, match="n_fft must be an int, got bool"):
        ensure_int(True, "n_fft")
    with pytest.raises(TypeError, match="n must be an int, got float"):
        ensure_int(2.5, "n")
    assert ensure_int(np.int64(5), "n") == 5


def test_messages_name_parameter_allowed_and_received():
    """check_option and check_range say which parameter, what is allowed and what came in."""
    with pytest.raises(ValueError, match=r"'mode' parameter. Allowed values are 'a', 'b', but got 'c'"):
        check_option("mode", "c", ("a", "b"))
    with pytest.raises(ValueError, match=r"hop must be > 0 s, got 0 s"):
        check_range(0, "hop", low=0, low_inclusive=False, unit="s")
    with pytest.raises(ValueError, match="must be finite"):
        check_range(float("nan"), "x")
