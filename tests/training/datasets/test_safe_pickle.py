"""Tests of the restricted unpickler (training.datasets.safe_pickle)."""

from __future__ import annotations

import builtins
import os
import pickle
import subprocess
import zipfile

import numpy as np
import pytest

from training.datasets.base import DatasetError
from training.datasets.safe_pickle import (
    UnsafePickleError,
    npz_keys,
    safe_load,
    safe_load_npz,
    safe_loads,
)


class _Reduce:
    """Pickles as ``func(*args)``: what a doctored dataset file would contain."""

    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _payload(marker):
    return {"train_data_eye": np.zeros((2, 33)), "evil": _Reduce(os.system, (f"touch {marker}",))}


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_round_trips_numpy_and_builtins(tmp_path, protocol):
    """Arrays, numpy scalars and builtin containers/numbers/strings come back equal."""
    rng = np.random.default_rng(0)
    obj = {
        "eeg": rng.normal(size=(3, 62)),
        "labels": np.array([0, 1, 2], dtype=np.int64),
        "f32": rng.normal(size=4).astype(np.float32),
        "scalar": np.float64(1.5),
        "misc": [1, 2.5, 3j, "s", b"b", (1, 2), {3}, frozenset({4}), True, None],
    }
    path = tmp_path / "obj.pkl"
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    out = safe_load(path)
    assert set(out) == set(obj)
    for key in ("eeg", "labels", "f32"):
        np.testing.assert_array_equal(out[key], obj[key])
        assert out[key].dtype == obj[key].dtype
    assert out["scalar"] == 1.5 and isinstance(out["scalar"], np.float64)
    assert out["misc"] == obj["misc"]


def test_python2_style_latin1_pickle(tmp_path):
    """A protocol-2 pickle read with encoding='latin1' (DEAP's case) returns the arrays."""
    data = np.arange(12.0).reshape(3, 4)
    path = tmp_path / "s01.dat"
    path.write_bytes(pickle.dumps({"data": data, "labels": np.ones((3, 4))}, protocol=2))
    out = safe_load(path, encoding="latin1")
    np.testing.assert_array_equal(out["data"], data)


def test_os_system_refused_and_not_run(tmp_path):
    """A pickle calling os.system is refused, names the global and the file, and runs nothing."""
    marker = tmp_path / "marker"
    path = tmp_path / "1_1"
    path.write_bytes(pickle.dumps(_payload(marker), protocol=2))
    with pytest.raises(UnsafePickleError, match=r"(posix|os|nt)\.system.*not allowed") as info:
        safe_load(path)
    assert str(path) in str(info.value)
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_eval_refused(tmp_path, protocol):
    """builtins.eval is not an allowed builtin, under every protocol."""
    marker = tmp_path / "marker"
    code = f"open({str(marker)!r}, 'w').close()"
    data = pickle.dumps(_Reduce(builtins.eval, (code,)), protocol=protocol)
    with pytest.raises(UnsafePickleError, match=r"(builtins|__builtin__)\.eval"):
        safe_loads(data, source="crafted")
    assert not marker.exists()


@pytest.mark.parametrize("func", [getattr, __import__, exec])
def test_other_dangerous_builtins_refused(func):
    """getattr, __import__ and exec are refused like eval."""
    data = pickle.dumps(_Reduce(func, ("x",)))
    with pytest.raises(UnsafePickleError, match=rf"(builtins|__builtin__)\.{func.__name__}"):
        safe_loads(data)


def test_subprocess_popen_refused(tmp_path):
    """A pickle referencing subprocess.Popen is refused and the command never runs."""
    marker = tmp_path / "marker"
    data = pickle.dumps(_Reduce(subprocess.Popen, (["touch", str(marker)],)))
    with pytest.raises(UnsafePickleError, match=r"subprocess\.Popen"):
        safe_loads(data, source="popen.pkl")
    assert not marker.exists()


def test_py2_builtin_module_name_is_mapped():
    """'__builtin__.eval' (a Python 2 name) is refused too, while '__builtin__.set' is allowed."""
    ok = b"c__builtin__\nset\n(]I1\natR."
    assert safe_loads(ok) == {1}
    bad = b"c__builtin__\neval\n(S'1'\ntR."
    with pytest.raises(UnsafePickleError, match=r"__builtin__\.eval"):
        safe_loads(bad)


def test_codecs_encode_only_latin1():
    """The _codecs.encode stand-in refuses codecs other than latin-1."""
    good = b"c_codecs\nencode\n(Vab\nVlatin1\ntR."
    assert safe_loads(good) == b"ab"
    bad = b"c_codecs\nencode\n(Vab\nVrot13\ntR."
    with pytest.raises(DatasetError, match="latin-1"):
        safe_loads(bad)


def test_missing_and_corrupt_files(tmp_path):
    """A missing file and a truncated pickle raise DatasetError naming the file."""
    with pytest.raises(DatasetError, match="does not exist"):
        safe_load(tmp_path / "nope")
    path = tmp_path / "cut"
    path.write_bytes(pickle.dumps({"a": np.ones(10)})[:20])
    with pytest.raises(DatasetError, match="not a readable pickle"):
        safe_load(path)


def test_bad_arguments():
    """Wrong argument types and unknown codecs are rejected."""
    with pytest.raises(TypeError, match="data must be"):
        safe_loads("not bytes")
    with pytest.raises(ValueError, match="not a known text codec"):
        safe_loads(b".", encoding="no-such-codec")
    with pytest.raises(TypeError, match="path must be"):
        safe_load(3)


def test_npz_numeric_and_pickled_bytes(tmp_path):
    """Numeric members load as arrays; a pickle stored as bytes decodes with safe_loads."""
    rng = np.random.default_rng(0)
    bands = {"delta": rng.normal(size=(4, 62)), "theta": rng.normal(size=(4, 62))}
    labels = np.array([0, 1, 2, 2])
    path = tmp_path / "1_1.npz"
    np.savez(path, train_data=pickle.dumps(bands), train_label=labels)
    assert npz_keys(path) == ["train_data", "train_label"]
    np.testing.assert_array_equal(safe_load_npz(path, "train_label"), labels)
    raw = safe_load_npz(path, "train_data")
    assert raw.dtype.kind == "S" and raw.shape == ()
    out = safe_loads(raw.item())
    assert list(out) == ["delta", "theta"]
    np.testing.assert_array_equal(out["theta"], bands["theta"])


def test_npz_object_array_uses_restricted_unpickler(tmp_path):
    """Object arrays in an npz are unpickled; a malicious one is refused and runs nothing."""
    good = np.empty(2, dtype=object)
    good[0], good[1] = {"a": np.arange(3)}, "text"
    marker = tmp_path / "marker"
    bad = np.empty(1, dtype=object)
    bad[0] = _Reduce(os.system, (f"touch {marker}",))
    path = tmp_path / "obj.npz"
    np.savez(path, good=good, bad=bad)
    out = safe_load_npz(path, "good")
    np.testing.assert_array_equal(out[0]["a"], np.arange(3))
    assert out[1] == "text"
    with pytest.raises(UnsafePickleError, match=r"obj\.npz\['bad'\].*system"):
        safe_load_npz(path, "bad")
    assert not marker.exists()


def test_npz_errors(tmp_path):
    """A missing key lists the stored keys; a non-zip file is reported."""
    path = tmp_path / "a.npz"
    np.savez(path, data=np.ones(2))
    with pytest.raises(DatasetError, match=r"no array 'label'.*\['data'\]"):
        safe_load_npz(path, "label")
    not_zip = tmp_path / "b.npz"
    not_zip.write_bytes(b"plain text")
    with pytest.raises(DatasetError, match="not an .npz"):
        safe_load_npz(not_zip, "data")
    with pytest.raises(DatasetError, match="not an .npz"):
        npz_keys(not_zip)
    assert zipfile.is_zipfile(path)
