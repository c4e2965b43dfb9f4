"""Argument checks shared by the public API: every failure is a ValueError naming the argument."""

from __future__ import annotations

import numbers
import zipfile

import numpy as np


# Largest |bias| or |weight| of a model: the samplers sum fields in float32 and log-weights in
# float64, which beyond this keep too few digits for the estimators (and float32 sums overflow).
MAX_PARAMETER = 1e6


def finite_array(value, name: str, *, ndim: int, shape: tuple | None = None, max_abs: float | None = None) -> np.ndarray:
    """A new C-contiguous float64 array of the given rank (and shape, None = any) of real numbers
    (not complex, not strings) with no NaN/inf, and none above max_abs in magnitude when given."""
    if value is None:
        raise ValueError(f"{name}: expected a number or an array of numbers, got None")
    try:
        raw = numbers_from_objects(np.asarray(value))
        if raw.dtype.kind not in "biuf":
            raise TypeError(f"dtype {raw.dtype}")  # complex, strings, dates: never silently converted
        arr = np.array(raw, dtype=np.float64, copy=True, order="C")
    except (TypeError, ValueError, RuntimeError) as exc:  # (RuntimeError: a torch tensor needing grad)
        raise ValueError(f"{name}: not a real numeric array ({exc})") from None
    if arr.ndim != ndim:
        raise ValueError(f"{name}: expected {ndim} dimension(s), got shape {arr.shape}")
    if shape is not None:
        for axis, (got, want) in enumerate(zip(arr.shape, shape)):
            if want is not None and got != want:
                raise ValueError(f"{name}: expected shape {_fmt(shape)}, got {arr.shape} (axis {axis})")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: contains NaN or infinite values")
    if max_abs is not None and arr.size and np.abs(arr).max() > max_abs:
        raise ValueError(f"{name}: magnitudes must be at most {max_abs:g}, got {np.abs(arr).max()!r}")
    arr.flags.writeable = False
    return arr


def numbers_from_objects(arr: np.ndarray) -> np.ndarray:
    """An object array whose elements are all real numbers (Python ints gathered with floats, say) as
    the numeric array numpy makes of them; any other array unchanged, strings included (never parsed)."""
    if arr.dtype.kind == "O" and all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in arr.flat):
        return np.array(arr.tolist())
    return arr


def binary_states(value, name: str, num_units: int, *, rows: int | None = None) -> np.ndarray:
    """States as a new (rows, num_units) uint8 array of 0/1; a single state may be 1-D."""
    arr = np.asarray(value)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != num_units:
        raise ValueError(f"{name}: expected shape (batch, {num_units}), got {np.shape(value)}")
    if rows is not None and arr.shape[0] != rows:
        raise ValueError(f"{name}: expected {rows} rows, got {arr.shape[0]}")
    if arr.dtype.kind not in "uif":  # (bool became uint8 above; timedeltas, complex, strings refused)
        raise ValueError(f"{name}: expected a numeric array of 0/1, got dtype {arr.dtype}")
    if arr.size and not np.all((arr == 0) | (arr == 1)):
        raise ValueError(f"{name}: entries must be 0 or 1")
    return np.ascontiguousarray(arr, dtype=np.uint8).copy()


def positive_float(value, name: str, *, allow_zero: bool = False) -> float:
    """A finite float > 0 (>= 0 with allow_zero)."""
    value = float(finite_array(value, name, ndim=0))
    if value < 0.0 or (value == 0.0 and not allow_zero):
        raise ValueError(f"{name}: must be {'>=' if allow_zero else '>'} 0, got {value}")
    return value


def checkpoint_parts(checkpoint, keys) -> list:
    """The values of `keys` in a sampler checkpoint (a mapping, e.g. a loaded .npz)."""
    if not hasattr(checkpoint, "keys") or not hasattr(checkpoint, "__getitem__"):
        raise ValueError(f"checkpoint: expected a mapping of arrays, got {type(checkpoint).__name__}")
    if isinstance(checkpoint, np.lib.npyio.NpzFile):  # (np.load(path) of a saved checkpoint)
        try:
            check_npz_members(checkpoint)
        except ValueError as exc:
            raise ValueError(f"checkpoint: {exc}") from None
    missing = [key for key in keys if key not in checkpoint.keys()]
    if missing:
        raise ValueError(f"checkpoint: missing {', '.join(missing)}")
    return [checkpoint[key] for key in keys]


def integer_array(value, name: str, dtype, shape) -> np.ndarray:
    """A new C-contiguous array of `dtype` from integers within its range; shape entries None are free."""
    arr = numbers_from_objects(np.asarray(value))
    if arr.size == 0 and arr.dtype.kind in "fO":  # np.asarray([]) is float64: an empty list is fine
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "ui":
        raise ValueError(f"{name}: expected integers, got dtype {arr.dtype}")
    if arr.ndim != len(shape) or any(s not in (None, a) for s, a in zip(shape, arr.shape)):
        raise ValueError(f"{name}: expected shape {tuple(shape)} (None: any), got {arr.shape}")
    info = np.iinfo(dtype)
    if arr.size and (int(arr.min()) < info.min or int(arr.max()) > info.max):
        raise ValueError(f"{name}: values outside the range of {np.dtype(dtype).name}")
    return np.ascontiguousarray(arr, dtype=dtype).copy()


def edge_array(value, name: str, num_units: int) -> np.ndarray:
    """A new read-only (m, 2) int64 array of distinct unordered pairs of units in [0, num_units), no
    self-loops (an empty list is no edges)."""
    try:
        arr = np.asarray(value)
    except ValueError as exc:  # ragged
        raise ValueError(f"{name}: not an (m, 2) array ({exc})") from None
    if arr.size == 0 and arr.shape in ((0,), (0, 2)):
        arr = arr.reshape(0, 2)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"{name}: expected shape (m, 2), got {arr.shape}")
    arr = numbers_from_objects(arr)
    if arr.dtype.kind not in "iuf":
        raise ValueError(f"{name}: expected integers, got dtype {arr.dtype}")
    if arr.size and arr.dtype.kind == "f" and not np.all(np.equal(np.mod(arr, 1), 0)):
        raise ValueError(f"{name}: entries must be integers")
    arr = np.array(arr, dtype=np.int64, copy=True, order="C")
    if arr.size and (arr.min() < 0 or arr.max() >= num_units):
        raise ValueError(f"{name}: unit index out of range [0, {num_units})")
    if np.any(arr[:, 0] == arr[:, 1]):
        raise ValueError(f"{name}: self-loops are not allowed")
    canon = np.sort(arr, axis=1)
    if np.unique(canon, axis=0).shape[0] != canon.shape[0]:
        raise ValueError(f"{name}: duplicate edges")
    arr.flags.writeable = False
    return arr


_MAX_COUNT = 2**63 - 1  # counts travel to C++ as 64-bit sizes


def positive_int(value, name: str, *, minimum: int = 1) -> int:
    """An int in [minimum, 2**63) (bool and non-integral floats refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name}: expected an integer, got {value!r}")
    if not minimum <= value <= _MAX_COUNT:
        raise ValueError(f"{name}: must be in [{minimum}, 2**63), got {value}")
    return int(value)


MAX_STATE_BYTES = 2**40  # 1 TiB: more chains or replicas than any machine holds


def fits_in_memory(count: int, num_units: int, name: str) -> int:
    """`count` (chains, replicas) if their states alone, one byte per unit, stay below MAX_STATE_BYTES."""
    if count * num_units > MAX_STATE_BYTES:
        raise ValueError(f"{name}: {count} states of {num_units} units would need more than 1 TiB")
    return count


def seed_value(seed) -> int:
    """A uint64 seed; None draws one from the OS entropy pool."""
    if seed is None:
        return int(np.random.SeedSequence().generate_state(1, np.uint64)[0])
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise ValueError(f"seed: expected an integer or None, got {seed!r}")
    if not 0 <= seed < 2**64:
        raise ValueError(f"seed: must be in [0, 2**64), got {seed}")
    return int(seed)


def num_threads(value) -> int:
    """0 (all cores) for None, else a positive int."""
    return 0 if value is None else positive_int(value, "num_threads")


def _fmt(shape) -> str:
    return "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"


def npz_archive(file) -> np.lib.npyio.NpzFile:
    """np.load(file) (no pickles) as an .npz archive whose members are checked before any is read:
    ValueError if it is not one, or if a member's header declares more data than the member holds
    (a small file claiming a (10**12, 2) array would otherwise be allocated first)."""
    archive = np.load(file, allow_pickle=False)
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError("not an .npz archive")
    check_npz_members(archive)
    return archive


def check_npz_members(archive: np.lib.npyio.NpzFile) -> None:
    """ValueError if a member of `archive` declares more data (its .npy header's shape and dtype, or
    its zip entry's size) than the member holds; reads only the headers."""
    for info in archive.zip.infolist():
        if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
            raise ValueError(f"member {info.filename}: declares {info.file_size} bytes, stores {info.compress_size}")
        if info.file_size > 1100 * info.compress_size + 1024:  # deflate inflates 1032-fold at most
            raise ValueError(f"member {info.filename}: declares {info.file_size} bytes from {info.compress_size}")
        with archive.zip.open(info) as member:
            version = np.lib.format.read_magic(member)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(member)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(member)
            else:
                raise ValueError(f"member {info.filename}: .npy format version {version} is not read")
            held = info.file_size - member.tell()
        declared = int(np.prod(shape, dtype=object)) * dtype.itemsize
        if declared > held:
            raise ValueError(f"member {info.filename}: declares shape {shape} of {dtype} ({declared} bytes) "
                             f"but holds {held} bytes")
