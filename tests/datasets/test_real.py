"""Real-data loaders: digits against scikit-learn; IDX / npz parsing on hand-made files and on
the shared MNIST files; the sentiment sentences format."""

import gzip
import struct

import numpy as np
import pytest

from conftest import shared_data
from ember import datasets
from ember.errors import EmberValueError, FileFormatError


# ---------------------------------------------------------------------------------- digits
def test_digits_are_sklearn_images_scaled_to_unit_range_in_a_stratified_split():
    sk = pytest.importorskip("sklearn.datasets", reason="scikit-learn is absent")
    ref = sk.load_digits()
    (xtr, ytr), (xte, yte) = datasets.digits()
    assert xtr.shape[1:] == (8, 8, 1) and xtr.dtype == np.float32 and ytr.dtype == np.int64
    assert len(xtr) + len(xte) == len(ref.images) and len(xte) == 359
    assert xtr.min() == 0.0 and xtr.max() == 1.0
    # every image comes from scikit-learn's set, with its label
    lookup = {img.astype(np.float32).tobytes(): t for img, t in zip(ref.images / 16, ref.target)}
    for x, y in zip(np.concatenate([xtr, xte]), np.concatenate([ytr, yte])):
        assert lookup[x[:, :, 0].tobytes()] == y
    # stratified: each class keeps its share in the test set (within one sample)
    expected = np.round(np.bincount(ref.target) * 0.2)
    np.testing.assert_array_equal(np.bincount(yte), expected)
    (again, _), _ = datasets.digits()
    np.testing.assert_array_equal(xtr, again)


# ---------------------------------------------------------------------------------- IDX
def _write_idx(path, array, type_code=0x08):
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(">u1" if type_code == 0x08 else ">i4").tobytes()
    if str(path).endswith(".gz"):
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_read_idx_parses_hand_made_files(tmp_path, suffix):
    a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    _write_idx(tmp_path / f"a.idx{suffix}", a)
    np.testing.assert_array_equal(datasets.read_idx(tmp_path / f"a.idx{suffix}"), a)
    b = np.array([-5, 70000], dtype=np.int32)
    _write_idx(tmp_path / f"b.idx{suffix}", b, type_code=0x0C)
    np.testing.assert_array_equal(datasets.read_idx(tmp_path / f"b.idx{suffix}"), b)


def test_read_idx_rejects_damaged_files(tmp_path):
    (tmp_path / "x").write_bytes(b"\x01\x02\x03")
    with pytest.raises(FileFormatError, match="magic"):
        datasets.read_idx(tmp_path / "x")
    a = np.zeros((3, 2), np.uint8)
    _write_idx(tmp_path / "y", a)
    (tmp_path / "y").write_bytes((tmp_path / "y").read_bytes()[:-1])
    with pytest.raises(FileFormatError, match="should hold 6 bytes"):
        datasets.read_idx(tmp_path / "y")


def _fake_mnist(folder, n_train=20, n_test=10, rng=None):
    rng = rng or np.random.default_rng(0)
    parts = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        x = rng.integers(0, 256, (n, 28, 28)).astype(np.uint8)
        y = (np.arange(n) % 10).astype(np.uint8)
        _write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", x)
        _write_idx(folder / f"{prefix}-labels-idx1-ubyte", y)
        parts[prefix] = (x, y)
    return parts


def test_mnist_reads_train_and_test_idx_files(tmp_path):
    parts = _fake_mnist(tmp_path)
    (xtr, ytr), (xte, yte) = datasets.mnist(tmp_path)
    assert xtr.shape == (20, 28, 28, 1) and xtr.dtype == np.float32 and ytr.dtype == np.int64
    np.testing.assert_allclose(xtr[..., 0], parts["train"][0] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(yte, parts["t10k"][1])
    (raw, _), _ = datasets.mnist(tmp_path, normalize=False)
    assert raw.dtype == np.uint8


def test_mnist_reads_a_keras_style_npz(tmp_path):
    x = np.full((3, 28, 28), 255, np.uint8)
    np.savez(tmp_path / "mnist.npz", x_train=x, y_train=[1, 2, 3], x_test=x[:1], y_test=[7])
    (xtr, ytr), (xte, yte) = datasets.mnist(tmp_path / "mnist.npz")
    assert xtr.shape == (3, 28, 28, 1) and xtr.max() == 1.0
    assert yte.tolist() == [7]


def test_mnist_splits_a_lone_test_set_of_the_shared_data():
    folder = shared_data("mnist")
    (xtr, ytr), (xte, yte) = datasets.mnist(folder)
    assert xtr.shape == (8000, 28, 28, 1) and xte.shape == (2000, 28, 28, 1)
    assert 0.0 <= xtr.min() and xtr.max() <= 1.0
    labels = datasets.read_idx(folder / "t10k-labels-idx1-ubyte.gz")
    np.testing.assert_array_equal(
        np.bincount(np.concatenate([ytr, yte]), minlength=10), np.bincount(labels)
    )


def test_mnist_without_files_raises_a_clear_error(tmp_path):
    with pytest.raises(EmberValueError, match="no IDX files"):
        datasets.mnist(tmp_path)


# ---------------------------------------------------------------------------------- sentiment
def test_sentiment_sentences_reads_the_tab_separated_format(tmp_path):
    (tmp_path / "imdb_labelled.txt").write_bytes(b"Great film.  \t1\r\nCaf\xe9 bad\t0\r\n")
    (tmp_path / "amazon_cells_labelled.txt").write_text("Works fine\t1\n")
    (tmp_path / "yelp_labelled.txt").write_text("Awful\t0\n\n")
    (xtr, ytr), (xte, yte) = datasets.sentiment_sentences(tmp_path)
    assert xtr.tolist() == ["Great film.", "Café bad", "Works fine"]
    assert ytr.tolist() == [1, 0, 1] and ytr.dtype == np.int64
    assert xte.tolist() == ["Awful"] and yte.tolist() == [0]


def test_sentiment_sentences_rejects_a_malformed_line(tmp_path):
    (tmp_path / "imdb_labelled.txt").write_text("no label here\n")
    (tmp_path / "yelp_labelled.txt").write_text("x\t1\n")
    with pytest.raises(FileFormatError, match="line 1"):
        datasets.sentiment_sentences(tmp_path, train_sources=("imdb",))


def test_sentiment_sentences_of_the_shared_data():
    (xtr, ytr), (xte, yte) = datasets.sentiment_sentences(shared_data("sentiment"))
    assert len(xtr) == 1990 and len(xte) == 1000
    assert set(np.unique(ytr)) == {0, 1} and 0.4 < yte.mean() < 0.6
    assert all(isinstance(t, str) and t for t in xtr)
