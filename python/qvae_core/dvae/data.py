"""Image data for the DVAE: statically binarised MNIST (npz or the original .amat files) and
MNIST / Fashion-MNIST IDX files with dynamic binarisation.

Accepted paths (`load_dataset(path)`; None means $QVAE_DATA, else the subset shipped in the package):

    *.npz             keys `train` and `valid`: rows bit-packed by numpy.packbits(bits, axis=1)
                      (784 bits -> 98 bytes, the layout of binarized_mnist.npz), or unpacked 0/1 rows
    *.amat            binarized_mnist_{train,valid}.amat of Larochelle & Murray (2011): one image
                      per line, 784 space-separated 0/1 values (the sibling files are read)
    *-idx3-ubyte[.gz] train-images file of MNIST or Fashion-MNIST: grey levels / 255, binarised
                      afresh each time they are used; the last 10,000 images are the validation set
    a directory       holding one of the above (binarized_mnist.npz, the .amat files, the IDX file)

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

__all__ = ["Dataset", "load_dataset", "PACKAGED_SUBSET", "DATA_ENV"]

DATA_ENV = "QVAE_DATA"
PACKAGED_SUBSET = "binarized_mnist_subset.npz"
MNIST_PIXELS = 784
MNIST_SHAPE = (28, 28)
_IDX_IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
_IDX_VALIDATION_IMAGES = 10_000
_AMAT_SPLITS = ("binarized_mnist_train.amat", "binarized_mnist_valid.amat")
_IDX_NAMES = ("train-images-idx3-ubyte", "train-images-idx3-ubyte.gz")


@dataclass(frozen=True)
class Dataset:
    """train, valid: (N, pixels) float32 in [0, 1] (0/1 when statically binarised); `dynamic` means
    the values are grey levels to binarise afresh at each use (dynamic binarisation)."""

    train: np.ndarray
    valid: np.ndarray
    image_shape: tuple
    dynamic: bool
    source: str

    @property
    def num_pixels(self) -> int:
        return int(self.train.shape[1])

    def binary_valid(self, seed: int = 0) -> np.ndarray:
        """The validation images as 0/1: as stored, or binarised once with `seed` if dynamic."""
        if not self.dynamic:
            return self.valid
        return (np.random.default_rng(seed).random(self.valid.shape) < self.valid).astype(np.float32)

    def subset(self, train_size: int = 0, valid_size: int = 0) -> "Dataset":
        """The first train_size / valid_size images (0 keeps all)."""
        train = self.train[:train_size] if train_size else self.train
        valid = self.valid[:valid_size] if valid_size else self.valid
        return Dataset(train, valid, self.image_shape, self.dynamic, self.source)


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
            splits = {key: archive[key] for key in ("train", "valid") if key in archive.files}
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error) as exc:
        raise ValueError(f"data: {path} is not a readable .npz archive ({exc})") from None
    missing = {"train", "valid"} - set(splits)
    if missing:
        raise ValueError(f"data: {path} lacks the arrays {sorted(missing)} (needs 'train' and 'valid')")
    train, valid = (_binary_rows(splits[key], f"{path}['{key}']") for key in ("train", "valid"))
    return Dataset(train, valid, MNIST_SHAPE, False, str(path))


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
    return Dataset(train, valid, MNIST_SHAPE, False, str(directory))


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
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as exc:  # gzip: truncated or corrupt streams
        raise ValueError(f"data: {path} could not be read ({exc})") from None
    header = np.frombuffer(raw[:16], ">u4") if len(raw) >= 16 else np.zeros(0)
    if header.size != 4 or header[0] != _IDX_IMAGES_MAGIC:
        raise ValueError(f"data: {path} is not an IDX file of images (magic number 0x803)")
    count, rows, cols = (int(v) for v in header[1:])
    if len(raw) != 16 + count * rows * cols or count <= _IDX_VALIDATION_IMAGES or rows * cols == 0:
        raise ValueError(
            f"data: {path} holds {len(raw) - 16} pixel bytes for a header of {count} images of "
            f"{rows}x{cols} (more than {_IDX_VALIDATION_IMAGES} images needed)"
        )
    images = np.frombuffer(raw, np.uint8, offset=16).reshape(count, rows * cols).astype(np.float32) / 255
    split = count - _IDX_VALIDATION_IMAGES
    return Dataset(images[:split], images[split:], (rows, cols), True, str(path))
