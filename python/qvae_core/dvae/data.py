"""Image data for the DVAE: statically binarised MNIST (npz or the original .amat files) and
MNIST / Fashion-MNIST IDX files with dynamic binarisation.

Accepted paths (`load_dataset(path)`; None means $QVAE_DATA, else the subset shipped in the package):

    *.npz             keys `train`, `valid` and optionally `test`: rows bit-packed by
                      numpy.packbits(bits, axis=1) (784 bits -> 98 bytes, the layout of
                      binarized_mnist.npz), or unpacked 0/1 rows
    *.amat            binarized_mnist_{train,valid[,test]}.amat of Larochelle & Murray (2011): one
                      image per line, 784 space-separated 0/1 values (the sibling files are read)
    *-idx3-ubyte[.gz] train-images file of MNIST or Fashion-MNIST: grey levels / 255, binarised
                      afresh each time they are used; the last 10,000 images are the validation set,
                      and t10k-images-idx3-ubyte[.gz] beside it, if there, is the test split
    a directory       holding one of the above (binarized_mnist.npz, the .amat files, the IDX files),
                      e.g. ../shared/data/mnist or ../shared/data/fashion-mnist

Declared sizes (IDX headers, the array headers inside an npz) are checked against the file's size
before anything is allocated: a damaged or hostile header gives a ValueError naming the file.

The packaged subset (qvae_core/data/binarized_mnist_subset.npz) is the first 2,000 training and
1,000 validation images of binarized_mnist.npz, in the same layout.
"""

from __future__ import annotations

import gzip
import importlib.resources
import os
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._validation import npz_archive
from ..seeds import RunStream, derived_seed

__all__ = ["Dataset", "load_dataset", "PACKAGED_SUBSET", "DATA_ENV", "SPLITS"]

DATA_ENV = "QVAE_DATA"
PACKAGED_SUBSET = "binarized_mnist_subset.npz"
MNIST_PIXELS = 784
MNIST_SHAPE = (28, 28)
_IDX_IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
_IDX_VALIDATION_IMAGES = 10_000
_AMAT_SPLITS = ("binarized_mnist_train.amat", "binarized_mnist_valid.amat")
_AMAT_TEST = "binarized_mnist_test.amat"
_IDX_NAMES = ("train-images-idx3-ubyte", "train-images-idx3-ubyte.gz")
_IDX_TEST_NAMES = ("t10k-images-idx3-ubyte", "t10k-images-idx3-ubyte.gz")
SPLITS = ("valid", "test")  # the splits a model is evaluated on


@dataclass(frozen=True)
class Dataset:
    """train, valid, test: (N, pixels) float32 in [0, 1] (0/1 when statically binarised; test is
    None when the data has no test split); `dynamic` means the values are grey levels to binarise
    afresh at each use (dynamic binarisation)."""

    train: np.ndarray
    valid: np.ndarray
    image_shape: tuple
    dynamic: bool
    source: str
    test: np.ndarray | None = None

    @property
    def num_pixels(self) -> int:
        return int(self.train.shape[1])

    @property
    def splits(self) -> tuple:
        """The evaluation splits this data has: ("valid",) or ("valid", "test")."""
        return SPLITS if self.test is not None else SPLITS[:1]

    def require_split(self, split: str) -> None:
        """ValueError naming `split` unless it is one of SPLITS that this data has."""
        if split not in SPLITS:
            raise ValueError(f"split: expected one of {list(SPLITS)}, got {split!r}")
        if split not in self.splits:
            raise ValueError(f"split: {self.source} has no {split} split (it has {', '.join(self.splits)})")

    def binary_split(self, split: str, seed: int = 0) -> np.ndarray:
        """The images of `split` ("valid" or "test") as 0/1: as stored, or binarised once if dynamic
        (valid from default_rng(seed), test from its own stream of `seed`, RunStream.TEST_BINARISATION).
        ValueError naming the split if the data lacks it (require_split)."""
        self.require_split(split)
        images = self.valid if split == "valid" else self.test
        if not self.dynamic:
            return images
        stream = seed if split == "valid" else derived_seed(seed, RunStream.TEST_BINARISATION)
        return (np.random.default_rng(stream).random(images.shape) < images).astype(np.float32)

    def binary_valid(self, seed: int = 0) -> np.ndarray:
        """The validation images as 0/1: binary_split("valid", seed)."""
        return self.binary_split("valid", seed)

    def subset(self, train_size: int = 0, valid_size: int = 0) -> "Dataset":
        """The first train_size / valid_size images (0 keeps all); the test split is kept whole."""
        train = self.train[:train_size] if train_size else self.train
        valid = self.valid[:valid_size] if valid_size else self.valid
        return Dataset(train, valid, self.image_shape, self.dynamic, self.source, self.test)


def load_dataset(path=None) -> Dataset:
    """The dataset at `path` (see the module docstring); FileNotFoundError / ValueError name the path."""
    if path is None:
        path = os.environ.get(DATA_ENV) or None
    if path is None:
        with importlib.resources.as_file(importlib.resources.files("qvae_core") / "data" / PACKAGED_SUBSET) as p:
            return _load_npz(Path(p))
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"data: {path} does not exist")
    if path.is_dir():
        return _load_directory(path)
    if path.suffix == ".npz":
        return _load_npz(path)
    if path.suffix == ".amat":
        return _load_amat(path.parent)
    if path.name in _IDX_NAMES:
        return _load_idx(path)
    raise ValueError(
        f"data: {path} is not a .npz, binarized_mnist_*.amat or train-images-idx3-ubyte[.gz] file"
    )


def _load_directory(directory: Path) -> Dataset:
    if (directory / "binarized_mnist.npz").is_file():
        return _load_npz(directory / "binarized_mnist.npz")
    if all((directory / name).is_file() for name in _AMAT_SPLITS):
        return _load_amat(directory)
    for name in _IDX_NAMES:
        if (directory / name).is_file():
            return _load_idx(directory / name)
    raise FileNotFoundError(
        f"data: {directory} holds neither binarized_mnist.npz, binarized_mnist_{{train,valid}}.amat "
        "nor train-images-idx3-ubyte[.gz]"
    )


def _load_npz(path: Path) -> Dataset:
    try:
        with open(path, "rb") as file:  # ours to close, also when numpy fails half-way through a bad zip
            archive = npz_archive(file)  # (member sizes checked before reading)
            splits = {key: archive[key] for key in ("train", "valid", "test") if key in archive.files}
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error) as exc:
        raise ValueError(f"data: {path} is not a readable .npz archive ({exc})") from None
    missing = {"train", "valid"} - set(splits)
    if missing:
        raise ValueError(f"data: {path} lacks the arrays {sorted(missing)} (needs 'train' and 'valid')")
    train, valid, test = (_binary_rows(splits[key], f"{path}['{key}']") if key in splits else None
                          for key in ("train", "valid", "test"))
    return Dataset(train, valid, MNIST_SHAPE, False, str(path), test)


def _binary_rows(array: np.ndarray, where: str) -> np.ndarray:
    """(N, 784) float32 0/1 from bit-packed (N, 98) uint8 rows or unpacked (N, 784) 0/1 rows."""
    packed_width = MNIST_PIXELS // 8 + (MNIST_PIXELS % 8 > 0)
    if array.ndim == 2 and array.shape[0] > 0:
        if array.shape[1] == packed_width and array.dtype == np.uint8:
            return np.unpackbits(array, axis=1)[:, :MNIST_PIXELS].astype(np.float32)
        if array.shape[1] == MNIST_PIXELS and np.isin(array, (0, 1)).all():
            return array.astype(np.float32)
    raise ValueError(
        f"data: {where} has shape {array.shape} and dtype {array.dtype}; expected bit-packed (N, "
        f"{packed_width}) uint8 rows or (N, {MNIST_PIXELS}) rows of 0/1, N >= 1"
    )


def _load_amat(directory: Path) -> Dataset:
    train, valid = (_read_amat(directory / name) for name in _AMAT_SPLITS)
    test = _read_amat(directory / _AMAT_TEST) if (directory / _AMAT_TEST).is_file() else None
    return Dataset(train, valid, MNIST_SHAPE, False, str(directory), test)


def _read_amat(path: Path) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"data: {path} does not exist")
    text = path.read_bytes()
    lines = [line for line in text.splitlines() if line.strip()]
    chars = np.frombuffer(text, np.uint8)
    digits = chars[(chars == ord("0")) | (chars == ord("1"))]
    other = np.isin(chars, np.frombuffer(b"01 \t\r\n", np.uint8), invert=True)
    # 784 tokens on every line and 784 digits per line in all: each token is one digit, rows aligned
    if (not lines or other.any() or digits.size != len(lines) * MNIST_PIXELS
            or any(len(line.split()) != MNIST_PIXELS for line in lines)):
        raise ValueError(
            f"data: {path} is not an .amat file of 0/1 images with {MNIST_PIXELS} values per line"
        )
    return (digits - ord("0")).reshape(len(lines), MNIST_PIXELS).astype(np.float32)


def _load_idx(path: Path) -> Dataset:
    """The train-images file at `path` (last 10,000 images: validation) and the t10k-images file
    beside it, if any (test)."""
    images, shape = _read_idx_images(path)
    if images.shape[0] <= _IDX_VALIDATION_IMAGES:
        raise ValueError(f"data: {path} holds {images.shape[0]} images; more than {_IDX_VALIDATION_IMAGES} "
                         "are needed (the last 10,000 are the validation split)")
    test = None
    for name in _IDX_TEST_NAMES:
        if (path.parent / name).is_file():
            test, test_shape = _read_idx_images(path.parent / name)
            if test_shape != shape:
                raise ValueError(f"data: {path.parent / name} has images of {test_shape[0]}x{test_shape[1]}, "
                                 f"{path.name} of {shape[0]}x{shape[1]}")
            break
    split = images.shape[0] - _IDX_VALIDATION_IMAGES
    return Dataset(images[:split], images[split:], shape, True, str(path), test)


def _read_idx_images(path: Path) -> tuple[np.ndarray, tuple]:
    """((count, rows·cols) float32 grey levels / 255, (rows, cols)) from an IDX image file, gzipped
    or not; its header's sizes are checked against the file's (gzip: the trailer's length) first."""
    compressed = path.suffix == ".gz"
    try:
        with (gzip.open if compressed else open)(path, "rb") as f:
            head = f.read(16)
            header = np.frombuffer(head, ">u4") if len(head) == 16 else np.zeros(0)
            if header.size != 4 or header[0] != _IDX_IMAGES_MAGIC:
                raise ValueError(f"data: {path} is not an IDX file of images (magic number 0x803)")
            count, rows, cols = (int(v) for v in header[1:])
            pixels = count * rows * cols
            if compressed:  # ISIZE: the uncompressed length modulo 2**32
                with open(path, "rb") as raw:
                    raw.seek(-4, os.SEEK_END)
                    size_ok = int.from_bytes(raw.read(4), "little") == (16 + pixels) % 2**32
            else:
                size_ok = path.stat().st_size == 16 + pixels
            data = f.read(pixels + 1) if size_ok else b""
    except (OSError, EOFError, zlib.error) as exc:  # gzip: truncated or corrupt streams
        raise ValueError(f"data: {path} could not be read ({exc})") from None
    if compressed and not size_ok:
        raise ValueError(f"data: {path} declares {count} images of {rows}x{cols} but its gzip trailer gives "
                         "another length (truncated, or not the file the header describes)")
    if not size_ok or len(data) != pixels or rows * cols == 0 or count == 0:
        raise ValueError(f"data: {path} holds {path.stat().st_size - 16 if not compressed else len(data)} pixel "
                         f"bytes for a header of {count} images of {rows}x{cols}")
    images = np.frombuffer(data, np.uint8).reshape(count, rows * cols).astype(np.float32) / 255
    return images, (rows, cols)
