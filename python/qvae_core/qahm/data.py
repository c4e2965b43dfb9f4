"""USPS digits for the quantum-assisted Helmholtz machine (paper 004 Sec. IV): 16 × 16 grey levels in
[−1, 1] and a class label 0–9.

`load_usps(path)` accepts (None: the subset shipped in the package):

    a directory        holding zip.train.gz and zip.test.gz (or zip.train / zip.test), the files of
                       "The Elements of Statistical Learning" (../shared/data/usps): one image per
                       line, the label (a float) then 256 values, row-major 16 × 16
    zip.train[.gz]     that file, with zip.test[.gz] beside it
    *.npz              arrays train_pixels, test_pixels (thousandths, int16) and train_labels,
                       test_labels (uint8), the layout of the packaged subset

The packaged subset (qvae_core/data/usps_subset.npz) is the first 1,000 training and 500 test
images of the ESL files, values stored exactly (the files give three decimals).
"""

from __future__ import annotations

import gzip
import importlib.resources
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._validation import npz_archive

__all__ = ["USPS", "load_usps", "PACKAGED_SUBSET", "IMAGE_SHAPE", "NUM_CLASSES"]

PACKAGED_SUBSET = "usps_subset.npz"
IMAGE_SHAPE = (16, 16)
NUM_PIXELS = 256
NUM_CLASSES = 10
_SPLITS = ("train", "test")


@dataclass(frozen=True)
class USPS:
    """Pixels (N, 256) float32 in [−1, 1] and labels (N,) int64 of the training and test splits."""

    train_pixels: np.ndarray
    train_labels: np.ndarray
    test_pixels: np.ndarray
    test_labels: np.ndarray
    source: str

    def subset(self, train_size: int = 0, test_size: int = 0) -> "USPS":
        """The first train_size / test_size images (0 keeps all)."""
        tr = slice(None, train_size or None)
        te = slice(None, test_size or None)
        return USPS(self.train_pixels[tr], self.train_labels[tr], self.test_pixels[te], self.test_labels[te],
                    self.source)


def one_hot(labels: np.ndarray) -> np.ndarray:
    """Class labels as one-hot ±1 rows (N, 10) float32 (paper 004 Sec. IV: c_j = +1 for the class, −1 else)."""
    return np.where(np.arange(NUM_CLASSES) == np.asarray(labels)[:, None], 1.0, -1.0).astype(np.float32)


def load_usps(path=None) -> USPS:
    """The USPS data at `path` (module docstring); FileNotFoundError / ValueError name the path."""
    if path is None:
        with importlib.resources.as_file(importlib.resources.files("qvae_core") / "data" / PACKAGED_SUBSET) as p:
            return _load_npz(Path(p))
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"data: {path} does not exist")
    if path.suffix == ".npz":
        return _load_npz(path)
    directory = path if path.is_dir() else path.parent
    if not path.is_dir() and path.name not in ("zip.train", "zip.train.gz"):
        raise ValueError(f"data: {path} is neither a directory, zip.train[.gz] nor an .npz file")
    files = []
    for split in _SPLITS:
        found = [directory / f"zip.{split}{ext}" for ext in (".gz", "") if (directory / f"zip.{split}{ext}").is_file()]
        if not found:
            raise FileNotFoundError(f"data: {directory} holds no zip.{split}.gz or zip.{split}")
        files.append(found[0])
    (train_labels, train_pixels), (test_labels, test_pixels) = (_read_text(f) for f in files)
    return USPS(train_pixels, train_labels, test_pixels, test_labels, str(directory))


def _read_text(path: Path) -> tuple[np.ndarray, np.ndarray]:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt") as f:
            lines = [line.split() for line in f if line.strip()]
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as exc:
        raise ValueError(f"data: {path} could not be read ({exc})") from None
    bad = next((k for k, tokens in enumerate(lines) if len(tokens) != NUM_PIXELS + 1), None)
    if not lines or bad is not None:
        raise ValueError(f"data: {path} line {1 if bad is None else bad + 1}: expected a label and "
                         f"{NUM_PIXELS} values")
    try:
        values = np.array(lines, dtype=np.float64)
    except ValueError as exc:
        raise ValueError(f"data: {path} holds a value that is not a number ({exc})") from None
    return _checked(values[:, 0], values[:, 1:], str(path))


def _checked(labels, pixels, where: str) -> tuple[np.ndarray, np.ndarray]:
    if not np.all(np.isfinite(pixels)) or np.abs(pixels).max(initial=0) > 1:
        raise ValueError(f"data: {where} has pixel values outside [-1, 1]")
    if np.any(labels != np.round(labels)) or labels.min() < 0 or labels.max() >= NUM_CLASSES:
        raise ValueError(f"data: {where} has labels that are not digits 0-9")
    return labels.astype(np.int64), pixels.astype(np.float32)


def _load_npz(path: Path) -> USPS:
    keys = [f"{split}_{kind}" for split in _SPLITS for kind in ("pixels", "labels")]
    try:
        with open(path, "rb") as file:
            archive = npz_archive(file)  # (member sizes checked before reading)
            arrays = {key: np.asarray(archive[key]) for key in keys}
    except (OSError, EOFError, KeyError, ValueError, zipfile.BadZipFile, zlib.error) as exc:
        raise ValueError(f"data: {path} is not a USPS .npz archive with {', '.join(keys)} ({exc})") from None
    splits = []
    for split in _SPLITS:
        pixels, labels = arrays[f"{split}_pixels"], arrays[f"{split}_labels"]
        if pixels.ndim != 2 or pixels.shape[1] != NUM_PIXELS or labels.shape != (pixels.shape[0],) or not len(labels):
            raise ValueError(f"data: {path}['{split}_pixels'] must be (N >= 1, {NUM_PIXELS}) with N labels")
        if pixels.dtype.kind not in "iu":
            raise ValueError(f"data: {path}['{split}_pixels'] must hold integer thousandths")
        splits.append(_checked(labels.astype(np.float64), pixels / 1000.0, f"{path}['{split}_pixels']"))
    (train_labels, train_pixels), (test_labels, test_pixels) = splits
    return USPS(train_pixels, train_labels, test_pixels, test_labels, str(path))
