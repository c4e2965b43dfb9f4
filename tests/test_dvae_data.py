"""Data loaders: the packaged subset, the npz layout of binarized_mnist.npz, .amat files, IDX files
with dynamic binarisation, $QVAE_DATA, and clear errors for missing or malformed files."""

import gzip
from pathlib import Path

import numpy as np
import pytest

from qvae_core.dvae.data import Dataset, load_dataset

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "binarized_mnist.npz"
needs_shared = pytest.mark.skipif(not SHARED_MNIST.exists(), reason="../shared/data/binarized_mnist.npz not present")


def test_packaged_subset_loads_without_data_at_hand(monkeypatch):
    monkeypatch.delenv("QVAE_DATA", raising=False)
    data = load_dataset()
    assert data.train.shape == (2000, 784) and data.valid.shape == (1000, 784)
    assert data.train.dtype == np.float32 and set(np.unique(data.train)) == {0.0, 1.0}
    assert data.image_shape == (28, 28) and not data.dynamic
    assert 0.12 < data.train.mean() < 0.14  # MNIST's ink fraction


@needs_shared
def test_packaged_subset_is_the_head_of_the_shared_file():
    full, subset = load_dataset(SHARED_MNIST), load_dataset()
    assert full.train.shape == (50000, 784) and full.valid.shape == (10000, 784)
    np.testing.assert_array_equal(subset.train, full.train[:2000])
    np.testing.assert_array_equal(subset.valid, full.valid[:1000])
    assert full.train.mean() == pytest.approx(0.1306, abs=5e-5)  # data/README.md
    assert full.valid.mean() == pytest.approx(0.1311, abs=5e-5)


def _bits(n, seed):
    return (np.random.default_rng(seed).random((n, 784)) < 0.2).astype(np.uint8)


def test_npz_packed_and_unpacked_and_environment(tmp_path, monkeypatch):
    train, valid = _bits(7, 0), _bits(3, 1)
    packed = tmp_path / "packed.npz"
    np.savez(packed, train=np.packbits(train, axis=1), valid=np.packbits(valid, axis=1))
    np.savez(tmp_path / "plain.npz", train=train, valid=valid)
    for path in (packed, tmp_path / "plain.npz"):
        data = load_dataset(path)
        np.testing.assert_array_equal(data.train, train)
        np.testing.assert_array_equal(data.valid, valid)
    monkeypatch.setenv("QVAE_DATA", str(packed))
    np.testing.assert_array_equal(load_dataset().train, train)


def test_amat_files_by_directory_or_file(tmp_path):
    train, valid = _bits(5, 2), _bits(4, 3)
    for name, bits in (("train", train), ("valid", valid)):
        lines = "\n".join(" ".join(str(v) for v in row) for row in bits)
        (tmp_path / f"binarized_mnist_{name}.amat").write_text(lines + "\n")
    for path in (tmp_path, tmp_path / "binarized_mnist_valid.amat"):
        data = load_dataset(path)
        np.testing.assert_array_equal(data.train, train)
        np.testing.assert_array_equal(data.valid, valid)


def _idx_bytes(images):
    count, rows, cols = images.shape
    return np.array([0x803, count, rows, cols], ">u4").tobytes() + images.astype(np.uint8).tobytes()


@pytest.mark.parametrize("compressed", [False, True])
def test_idx_images_are_dynamically_binarised(tmp_path, compressed):
    images = np.random.default_rng(4).integers(0, 256, (10_003, 2, 3))
    name = "train-images-idx3-ubyte" + (".gz" if compressed else "")
    (tmp_path / name).write_bytes(gzip.compress(_idx_bytes(images)) if compressed else _idx_bytes(images))
    data = load_dataset(tmp_path)
    assert data.dynamic and data.image_shape == (2, 3)
    np.testing.assert_allclose(data.train, images[:3].reshape(3, 6) / 255, rtol=1e-6)
    np.testing.assert_allclose(data.valid, images[3:].reshape(10_000, 6) / 255, rtol=1e-6)
    first, again = data.binary_valid(seed=1), data.binary_valid(seed=1)
    np.testing.assert_array_equal(first, again)
    assert set(np.unique(first)) == {0.0, 1.0}
    assert abs(first.mean() - data.valid.mean()) < 5 * np.sqrt(0.25 / first.size)


def test_missing_and_malformed_files_name_the_path(tmp_path):
    missing = tmp_path / "nowhere.npz"
    with pytest.raises(FileNotFoundError, match="nowhere.npz"):
        load_dataset(missing)
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        load_dataset(tmp_path)  # an empty directory

    np.savez(tmp_path / "nokey.npz", train=np.zeros((2, 98), np.uint8))
    with pytest.raises(ValueError, match=r"nokey.npz lacks the arrays \['valid'\]"):
        load_dataset(tmp_path / "nokey.npz")
    np.savez(tmp_path / "wide.npz", train=np.zeros((2, 99), np.uint8), valid=np.zeros((2, 98), np.uint8))
    with pytest.raises(ValueError, match=r"wide.npz\['train'\] has shape \(2, 99\)"):
        load_dataset(tmp_path / "wide.npz")
    np.savez(tmp_path / "empty.npz", train=np.zeros((2, 98), np.uint8), valid=np.zeros((0, 98), np.uint8))
    with pytest.raises(ValueError, match=r"empty.npz\['valid'\] has shape \(0, 98\)"):  # not after an epoch
        load_dataset(tmp_path / "empty.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip archive")
    (tmp_path / "cut.npz").write_bytes((tmp_path / "wide.npz").read_bytes()[:200])
    np.save(tmp_path / "array.npy", np.zeros(3))
    (tmp_path / "array.npz").write_bytes((tmp_path / "array.npy").read_bytes())
    for name in ("junk.npz", "cut.npz", "array.npz"):
        with pytest.raises(ValueError, match=f"{name} is not a readable .npz"):
            load_dataset(tmp_path / name)

    amat = tmp_path / "amat"
    amat.mkdir()
    (amat / "binarized_mnist_train.amat").write_text(" ".join("0" * 783) + "\n")  # one value short
    (amat / "binarized_mnist_valid.amat").write_text(" ".join("1" * 784) + "\n")
    with pytest.raises(ValueError, match="binarized_mnist_train.amat is not an .amat file"):
        load_dataset(amat)
    (amat / "binarized_mnist_train.amat").write_text(" ".join("0" * 783 + "2") + "\n")
    with pytest.raises(ValueError, match="binarized_mnist_train.amat"):
        load_dataset(amat)
    # lines of 785 and 783 values: the right total, rows shifted
    (amat / "binarized_mnist_train.amat").write_text(" ".join("1" * 785) + "\n" + " ".join("0" * 783) + "\n")
    with pytest.raises(ValueError, match="binarized_mnist_train.amat"):
        load_dataset(amat)
    (amat / "binarized_mnist_train.amat").write_text(" ".join(["10"] + ["0"] * 783) + "\n")  # one token, 2 digits
    with pytest.raises(ValueError, match="binarized_mnist_train.amat"):
        load_dataset(amat)

    idx = tmp_path / "train-images-idx3-ubyte"
    idx.write_bytes(np.array([0x801, 1, 1, 1], ">u4").tobytes())
    with pytest.raises(ValueError, match="train-images-idx3-ubyte is not an IDX file of images"):
        load_dataset(idx)
    idx.write_bytes(_idx_bytes(np.zeros((10_001, 2, 2)))[:-1])
    with pytest.raises(ValueError, match="train-images-idx3-ubyte holds 40003 pixel bytes"):
        load_dataset(idx)
    idx.write_bytes(_idx_bytes(np.zeros((10_001, 0, 0))))  # images without pixels
    with pytest.raises(ValueError, match="train-images-idx3-ubyte holds 0 pixel bytes"):
        load_dataset(idx)
    gz = tmp_path / "train-images-idx3-ubyte.gz"
    with gzip.open(gz, "wb") as f:
        f.write(_idx_bytes(np.zeros((10_001, 2, 2))))
    whole = gz.read_bytes()
    gz.write_bytes(whole[:-30])  # truncated stream: its last bytes are no longer the length
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.gz declares 10001 images of 2x2 but its gzip"):
        load_dataset(gz)
    gz.write_bytes(whole[:-8] + b"\0\0\0\0" + whole[-4:])  # the length right, the checksum wrong
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.gz could not be read"):
        load_dataset(gz)

    other = tmp_path / "images.csv"
    other.write_text("0,1\n")
    with pytest.raises(ValueError, match="images.csv is not a"):
        load_dataset(other)


SHARED = SHARED_MNIST.parent
# Mean grey level / 255 of the official files (train: all 60,000 images), as commonly quoted.
GREY_MEANS = {"mnist": (0.1307, 0.1325), "fashion-mnist": (0.2860, 0.2868)}


@pytest.mark.parametrize("name", sorted(GREY_MEANS))
def test_original_idx_directories_give_train_valid_and_test(name):
    directory = SHARED / name
    if not directory.is_dir():
        pytest.skip(f"../shared/data/{name} not present")
    data = load_dataset(directory)
    assert data.dynamic and data.image_shape == (28, 28) and data.splits == ("valid", "test")
    assert data.train.shape == (50_000, 784) and data.valid.shape == (10_000, 784) and data.test.shape == (10_000, 784)
    with gzip.open(directory / "t10k-images-idx3-ubyte.gz") as f:  # read apart: the bytes after the 16-byte header
        raw = np.frombuffer(f.read(), np.uint8, offset=16).reshape(10_000, 784)
    np.testing.assert_array_equal(data.test, raw.astype(np.float32) / 255)
    train_mean, test_mean = GREY_MEANS[name]
    assert np.concatenate([data.train, data.valid]).mean() == pytest.approx(train_mean, abs=1e-4)
    assert data.test.mean() == pytest.approx(test_mean, abs=1e-4)
    by_file = load_dataset(directory / "train-images-idx3-ubyte.gz")  # the train file itself: t10k found beside it
    np.testing.assert_array_equal(by_file.test, data.test)
    np.testing.assert_array_equal(by_file.valid, data.valid)


@pytest.mark.parametrize("compressed", [False, True])
def test_idx_test_split_and_its_binarisation(tmp_path, compressed):
    train, test = (np.random.default_rng(s).integers(0, 256, (n, 2, 3)) for s, n in ((5, 10_004), (6, 7)))
    suffix = ".gz" if compressed else ""
    for name, images in (("train", train), ("t10k", test)):
        raw = _idx_bytes(images)
        (tmp_path / f"{name}-images-idx3-ubyte{suffix}").write_bytes(gzip.compress(raw) if compressed else raw)
    data = load_dataset(tmp_path)
    np.testing.assert_allclose(data.test, test.reshape(7, 6) / 255, rtol=1e-6)
    assert data.subset(2, 3).test is data.test  # a subset keeps the whole test split
    binary = data.binary_split("test", seed=1)
    np.testing.assert_array_equal(binary, data.binary_split("test", seed=1))
    assert set(np.unique(binary)) <= {0.0, 1.0} and binary.shape == (7, 6)
    assert not np.array_equal(binary, data.binary_split("test", seed=2))
    np.testing.assert_array_equal(data.binary_split("valid", seed=1), data.binary_valid(seed=1))
    # the test split has its own stream: not the uniforms that binarise the validation images
    uniforms = np.random.default_rng(1).random(data.test.shape)
    assert not np.array_equal(binary, (uniforms < data.test).astype(np.float32))


def test_dynamic_test_binarisation_matches_the_grey_levels():
    grey = np.full((10_001, 1, 4), 51)  # 0.2 everywhere

    images = grey.reshape(-1, 4).astype(np.float32) / 255
    data = Dataset(images[:1], images[1:], (1, 4), True, "memory", test=images[1:])
    bits = data.binary_split("test", seed=3)
    assert abs(bits.mean() - 0.2) < 5 * np.sqrt(0.2 * 0.8 / bits.size)


def test_npz_and_amat_test_splits(tmp_path):
    train, valid, test = _bits(4, 7), _bits(3, 8), _bits(2, 9)
    np.savez(tmp_path / "with_test.npz", train=np.packbits(train, axis=1), valid=valid, test=np.packbits(test, axis=1))
    data = load_dataset(tmp_path / "with_test.npz")
    assert data.splits == ("valid", "test")
    np.testing.assert_array_equal(data.binary_split("test"), test)  # static: as stored, whatever the seed
    np.testing.assert_array_equal(data.binary_split("test", seed=5), test)
    np.savez(tmp_path / "without.npz", train=train, valid=valid)
    data = load_dataset(tmp_path / "without.npz")
    assert data.splits == ("valid",) and data.test is None
    with pytest.raises(ValueError, match=r"split: .*without.npz has no test split \(it has valid\)"):
        data.binary_split("test")
    with pytest.raises(ValueError, match="split: expected one of"):
        data.binary_split("train")
    np.savez(tmp_path / "bad_test.npz", train=train, valid=valid, test=np.zeros((2, 5), np.uint8))
    with pytest.raises(ValueError, match=r"bad_test.npz\['test'\] has shape \(2, 5\)"):
        load_dataset(tmp_path / "bad_test.npz")

    for name, bits in (("train", train), ("valid", valid), ("test", test)):
        lines = "\n".join(" ".join(str(v) for v in row) for row in bits)
        (tmp_path / f"binarized_mnist_{name}.amat").write_text(lines + "\n")
    np.testing.assert_array_equal(load_dataset(tmp_path / "binarized_mnist_train.amat").test, test)


def _npz_with_header(path, shape):
    """An npz whose 'train' array declares `shape` but stores 2 rows of 98 bytes."""
    import io
    import zipfile

    member = io.BytesIO()
    np.lib.format.write_array_header_1_0(member, {"descr": "|u1", "fortran_order": False, "shape": shape})
    member.write(bytes(2 * 98))
    valid = io.BytesIO()
    np.save(valid, np.zeros((2, 98), np.uint8))
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("train.npy", member.getvalue())
        archive.writestr("valid.npy", valid.getvalue())


def test_declared_sizes_are_checked_before_anything_is_allocated(tmp_path):
    """Headers that declare terabytes give a ValueError naming the file, not a MemoryError."""
    _npz_with_header(tmp_path / "huge.npz", (10**12, 98))
    with pytest.raises(ValueError, match=r"huge.npz .*train.npy: declares shape \(1000000000000, 98\)"):
        load_dataset(tmp_path / "huge.npz")
    _npz_with_header(tmp_path / "fits.npz", (2, 98))  # the same writer with the true shape loads
    assert load_dataset(tmp_path / "fits.npz").train.shape == (2, 784)

    huge = np.array([0x803, 2**32 - 1, 2**16 - 1, 2**16 - 1], ">u4").tobytes() + bytes(64)
    train = _idx_bytes(np.zeros((10_001, 2, 2)))
    for suffix, pack in (("", bytes), (".gz", gzip.compress)):
        directory = tmp_path / f"idx{suffix}"
        directory.mkdir()
        (directory / f"train-images-idx3-ubyte{suffix}").write_bytes(pack(train))
        (directory / f"t10k-images-idx3-ubyte{suffix}").write_bytes(pack(huge))
        with pytest.raises(ValueError, match=f"t10k-images-idx3-ubyte{suffix}"):
            load_dataset(directory)
    shapes = tmp_path / "shapes"
    shapes.mkdir()
    (shapes / "train-images-idx3-ubyte").write_bytes(_idx_bytes(np.zeros((10_001, 2, 2))))
    (shapes / "t10k-images-idx3-ubyte").write_bytes(_idx_bytes(np.zeros((3, 2, 3))))
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte has images of 2x3, train-images-idx3-ubyte of 2x2"):
        load_dataset(shapes)
