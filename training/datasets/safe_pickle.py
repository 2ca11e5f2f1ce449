"""Reading pickles that hold only numpy arrays and builtin containers, without running their code.

Several datasets ship features as pickles (DEAP ``sXX.dat``, SEED_Multimodal eye features) or as
pickles stored inside ``.npz`` archives (SEED_Multimodal EEG, SEED-V). ``pickle.load`` and
``np.load(allow_pickle=True)`` call whatever function a pickle names, so a doctored file can run
arbitrary code. :func:`safe_load`, :func:`safe_loads` and :func:`safe_load_npz` use an unpickler whose
``find_class`` admits only what numpy arrays, numpy scalars and builtin containers, numbers and strings
need; any other global is refused with :class:`UnsafePickleError` before it is called.
"""

from __future__ import annotations

import codecs
import io
import logging
import pickle
import zipfile
from pathlib import Path

import numpy as np

from .base import DatasetError

logger = logging.getLogger(__name__)


class UnsafePickleError(DatasetError):
    """A pickle asked for a global outside the allow-list; nothing it names was called."""


_LATIN1_NAMES = {"latin1", "latin-1", "iso-8859-1", "iso8859-1", "l1"}


def _latin1_encode(text: str, encoding: str = "latin1", errors: str = "strict") -> bytes:
    """Stand-in for ``_codecs.encode``, which protocol-2 pickles of ``bytes`` call (latin-1 only)."""
    # compare names instead of codecs.lookup(), which could import an encodings module the pickle picks
    if not isinstance(text, str) or str(encoding).lower().replace("_", "-") not in _LATIN1_NAMES:
        raise pickle.UnpicklingError(
            f"_codecs.encode is only allowed with the latin-1 codec on str, got {encoding!r} "
            f"on {type(text).__name__}"
        )
    return text.encode("latin1", errors)


def _numpy_core_attr(submodule: str, name: str):
    """``numpy._core.<submodule>.<name>`` (numpy >= 2) or ``numpy.core.<submodule>.<name>`` (numpy 1)."""
    core = getattr(np, "_core", None)
    if core is None:  # pragma: no cover - numpy 1.x
        core = np.core
    return getattr(getattr(core, submodule), name)


def _allowed_globals() -> dict[tuple[str, str], object]:
    allowed: dict[tuple[str, str], object] = {}
    for package in ("numpy.core", "numpy._core"):
        allowed[(f"{package}.multiarray", "_reconstruct")] = _numpy_core_attr("multiarray", "_reconstruct")
        allowed[(f"{package}.multiarray", "scalar")] = _numpy_core_attr("multiarray", "scalar")
        # protocol-5 pickles of arrays rebuild them with frombuffer(buffer, dtype).reshape(shape)
        allowed[(f"{package}.numeric", "_frombuffer")] = _numpy_core_attr("numeric", "_frombuffer")
    allowed[("numpy", "ndarray")] = np.ndarray
    allowed[("numpy", "dtype")] = np.dtype
    for builtin in (dict, list, tuple, set, frozenset, int, float, complex, str, bytes, bytearray, bool):
        allowed[("builtins", builtin.__name__)] = builtin
    allowed[("_codecs", "encode")] = _latin1_encode
    return allowed


_ALLOWED = _allowed_globals()
# Python 2 pickles (protocol < 3) name the builtins module '__builtin__'.
_PY2_MODULES = {"__builtin__": "builtins"}


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that hands out only allow-listed globals."""

    def __init__(self, file, *, source: str, encoding: str):
        super().__init__(file, encoding=encoding)
        self._source = source

    def find_class(self, module: str, name: str):
        key = (_PY2_MODULES.get(module, module), name)
        if key in _ALLOWED:
            return _ALLOWED[key]
        raise UnsafePickleError(
            f"{self._source}: the pickle asks for '{module}.{name}', which is not allowed. Only numpy "
            "arrays/scalars and builtin containers, numbers and strings can be read; the file was refused "
            "before anything it names was called. If the file does not come from the dataset's official "
            "release, replace it with the original."
        )

    def persistent_load(self, pid):
        raise UnsafePickleError(
            f"{self._source}: the pickle uses persistent ids ({pid!r}), which are not allowed."
        )


def _unpickle(stream, *, source: str, encoding: str) -> object:
    try:
        return _RestrictedUnpickler(stream, source=source, encoding=encoding).load()
    except UnsafePickleError:
        raise
    except Exception as err:  # corrupted or truncated pickles raise many different types
        raise DatasetError(
            f"{source} is not a readable pickle ({type(err).__name__}: {err}); the file may be truncated "
            "or not the dataset's original."
        ) from err


def _check_encoding(encoding: str) -> str:
    if not isinstance(encoding, str):
        raise TypeError(f"encoding must be an instance of str, got {type(encoding).__name__} instead.")
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise ValueError(
            f"encoding {encoding!r} is not a known text codec (e.g. 'ASCII', 'latin1')."
        ) from None
    return encoding


def _existing_file(path) -> Path:
    if not isinstance(path, (str, Path)):
        raise TypeError(f"path must be an instance of str, Path, got {type(path).__name__} instead.")
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path} does not exist or is not a file.")
    return path


def safe_load(path: str | Path, *, encoding: str = "ASCII") -> object:
    """Read a pickle file holding only numpy arrays/scalars and builtin containers, numbers, strings.

    Parameters
    ----------
    path : str | Path
        The pickle file.
    encoding : str
        How Python-2 byte strings are decoded (``'latin1'`` for Python-2 pickles of numpy arrays such as
        DEAP's ``sXX.dat``); passed to :class:`pickle.Unpickler`.

    Returns
    -------
    obj : object
        The unpickled object.

    Raises
    ------
    UnsafePickleError
        The pickle names any other global (a function or class); it is refused before being called.
    DatasetError
        The file does not exist or is not a readable pickle.
    """
    encoding = _check_encoding(encoding)
    path = _existing_file(path)
    with path.open("rb") as f:
        return _unpickle(f, source=str(path), encoding=encoding)


def safe_loads(data: bytes, *, source: str = "<bytes>", encoding: str = "ASCII") -> object:
    """Unpickle ``data`` like :func:`safe_load`; ``source`` names where the bytes came from in errors."""
    if isinstance(data, (bytearray, memoryview)):
        data = bytes(data)
    if not isinstance(data, bytes):
        raise TypeError(f"data must be an instance of bytes, got {type(data).__name__} instead.")
    encoding = _check_encoding(encoding)
    return _unpickle(io.BytesIO(data), source=source, encoding=encoding)


def npz_keys(path: str | Path) -> list[str]:
    """Names of the arrays in an ``.npz`` archive, in stored order (without reading them)."""
    path = _existing_file(path)
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except zipfile.BadZipFile as err:
        raise DatasetError(f"{path} is not an .npz (zip) archive: {err}") from err
    return [n[: -len(".npy")] for n in names if n.endswith(".npy")]


def safe_load_npz(path: str | Path, key: str) -> np.ndarray:
    """One array of an ``.npz`` archive; object arrays are unpickled with the restricted unpickler.

    ``np.load(allow_pickle=True)`` would unpickle object arrays without restriction. Here the member
    ``{key}.npy`` is opened from the zip, its ``.npy`` header read, and then numeric payloads are read by
    ``np.lib.format.read_array(allow_pickle=False)`` and object payloads (a pickled array) by the
    restricted unpickler.

    Parameters
    ----------
    path : str | Path
        The ``.npz`` archive.
    key : str
        Array name, as in ``np.load(path)[key]``.

    Returns
    -------
    array : ndarray
        The stored array. A pickle saved with ``np.savez(p, key=pickle.dumps(obj))`` comes back as a
        0-d bytes array (dtype ``S<n>``); decode it with ``safe_loads(array.item())``.

    Raises
    ------
    DatasetError
        The archive or key does not exist, or the member is not a valid ``.npy``.
    UnsafePickleError
        An object array's pickle names a global outside the allow-list.
    """
    if not isinstance(key, str):
        raise TypeError(f"key must be an instance of str, got {type(key).__name__} instead.")
    path = _existing_file(path)
    source = f"{path}['{key}']"
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile as err:
        raise DatasetError(f"{path} is not an .npz (zip) archive: {err}") from err
    with zf:
        member = f"{key}.npy"
        if member not in zf.namelist():
            keys = [n[: -len(".npy")] for n in zf.namelist() if n.endswith(".npy")]
            raise DatasetError(f"{path} has no array '{key}'; it holds {keys}.")
        with zf.open(member) as f:
            try:
                version = np.lib.format.read_magic(f)
                header = (
                    np.lib.format.read_array_header_1_0
                    if version == (1, 0)
                    else np.lib.format.read_array_header_2_0
                )
                shape, fortran_order, dtype = header(f)
            except ValueError as err:
                raise DatasetError(f"{source} is not a valid .npy member: {err}") from err
            if not dtype.hasobject:
                # rewind: read_array parses the header itself
                f.seek(0)
                try:
                    return np.lib.format.read_array(f, allow_pickle=False)
                except ValueError as err:
                    raise DatasetError(f"{source} could not be read: {err}") from err
            logger.debug(
                "%s is an object array %s; unpickling it with the restricted unpickler", source, shape
            )
            array = _unpickle(f, source=source, encoding="ASCII")
    if not isinstance(array, np.ndarray):
        raise DatasetError(
            f"{source} has object dtype but its payload is a {type(array).__name__}, not an array."
        )
    return array
