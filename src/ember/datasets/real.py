"""Real data sets from local files: scikit-learn's digits, MNIST (IDX or .npz) and the sentiment
labelled sentences. Nothing is downloaded.
"""

from __future__ import annotations

import glob
import gzip
import os

import numpy as np

from ember import backend
from ember.errors import EmberValueError, FileFormatError


def stratified_split(y: np.ndarray, test_size: float, seed) -> tuple:
    """Shuffled (train, test) index arrays holding ``round(test_size * n_c)`` of every class c
    in the test part."""
    if not 0.0 < test_size < 1.0:
        raise EmberValueError(f"test_size must be in (0, 1), received {test_size!r}")
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(y))
    test = np.zeros(len(y), dtype=bool)
    for c in np.unique(y):
        members = perm[y[perm] == c]
        test[members[: int(round(test_size * len(members)))]] = True
    return perm[~test[perm]], perm[test[perm]]


# ------------------------------------------------------------------------------- digits
def digits(test_size: float = 0.2, seed: int = 0):
    """scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes).

    Returns ``(x_train, y_train), (x_test, y_test)``: x float32 (floatx) of shape (N, 8, 8, 1)
    with values in [0, 1] (the original 0..16 divided by 16), y int64 of shape (N,). The split is
    stratified and fixed by ``seed``: with the defaults 1,438 training and 359 test images.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError:  # pragma: no cover - optional extra
        raise ImportError("digits() needs scikit-learn: pip install 'ember[datasets]'") from None
    d = load_digits()
    x = (d.images / 16.0).astype(backend.float_dtype())[..., None]
    y = d.target.astype(np.int64)
    train, test = stratified_split(y, test_size, seed)
    return (x[train], y[train]), (x[test], y[test])


# ------------------------------------------------------------------------------- mnist
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzipped (``.gz``) or not.

    The header is two zero bytes, a type code, the number of dimensions, then each dimension as
    a big-endian uint32; the values follow. A damaged file raises ``FileFormatError``.
    """
    path = os.fspath(path)
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:
        raise FileFormatError(f"read_idx: cannot read {path!r}: {exc}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise FileFormatError(f"read_idx: {path!r} is not an IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise FileFormatError(f"read_idx: {path!r} is truncated inside its header")
    shape = tuple(int(v) for v in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise FileFormatError(
            f"read_idx: {path!r} should hold {expected} bytes of data for shape {shape}, "
            f"found {len(raw) - header}"
        )
    return (
        np.frombuffer(raw, dtype=dtype, offset=header)
        .reshape(shape)
        .astype(dtype.newbyteorder("="))
    )


def _find(folder: str, prefix: str, kind: str):
    hits = sorted(glob.glob(os.path.join(folder, f"{prefix}-{kind}*")))
    return hits[0] if hits else None


def mnist(path, test_size: float = 0.2, seed: int = 0, normalize: bool = True):
    """MNIST from local files.

    Args:
        path: a folder with the original IDX files (``train-images-idx3-ubyte[.gz]``,
            ``train-labels-idx1-ubyte[.gz]``, ``t10k-images-idx3-ubyte[.gz]``,
            ``t10k-labels-idx1-ubyte[.gz]``), or a ``.npz`` file with ``x_train, y_train,
            x_test, y_test`` (Keras's ``mnist.npz``; read without pickle).
        test_size, seed: when the folder holds only one of the two sets (e.g. only the 10,000
            test images), it is split into train and test (stratified, fixed by ``seed``;
            8,000 / 2,000 with the defaults).
        normalize: x as floatx in [0, 1]; False keeps the uint8 pixels.

    Returns ``(x_train, y_train), (x_test, y_test)``: x of shape (N, 28, 28, 1), y int64 (N,).
    """
    path = os.fspath(path)
    if os.path.isfile(path) and path.endswith(".npz"):
        try:
            with np.load(path, allow_pickle=False) as f:
                parts = [f[k] for k in ("x_train", "y_train", "x_test", "y_test")]
        except KeyError as exc:
            raise FileFormatError(f"mnist: {path!r} lacks the array {exc}") from None
        except (OSError, ValueError) as exc:
            raise FileFormatError(f"mnist: cannot read {path!r}: {exc}") from None
        (xtr, ytr), (xte, yte) = (parts[0], parts[1]), (parts[2], parts[3])
    elif os.path.isdir(path):
        sets = {}
        for prefix in ("train", "t10k"):
            img, lab = _find(path, prefix, "images"), _find(path, prefix, "labels")
            if img and lab:
                sets[prefix] = (read_idx(img), read_idx(lab))
        if not sets:
            raise EmberValueError(
                f"mnist: no IDX files (train-images-idx3-ubyte[.gz], t10k-images-idx3-ubyte[.gz] "
                f"and their labels) in {path!r}"
            )
        if len(sets) == 2:
            (xtr, ytr), (xte, yte) = sets["train"], sets["t10k"]
        else:
            x, y = next(iter(sets.values()))
            if len(x) != len(y):
                raise FileFormatError(f"mnist: {len(x)} images but {len(y)} labels in {path!r}")
            train, test = stratified_split(y, test_size, seed)
            (xtr, ytr), (xte, yte) = (x[train], y[train]), (x[test], y[test])
    else:
        raise EmberValueError(f"mnist: {path!r} is neither a folder of IDX files nor a .npz file")

    def prep(x, y):
        if len(x) != len(y):
            raise FileFormatError(f"mnist: {len(x)} images but {len(y)} labels")
        x = x.reshape(len(x), x.shape[1], x.shape[2], 1)
        if normalize:
            x = x.astype(backend.float_dtype()) / backend.float_dtype().type(255)
        return x, y.astype(np.int64)

    return prep(xtr, ytr), prep(xte, yte)


# ------------------------------------------------------------------------------- sentiment
def _read_labelled(path: str):
    texts, labels = [], []
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:  # a few lines of the imdb file are Latin-1
                line = raw.decode("latin-1")
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            text, sep, label = line.rpartition("\t")
            if not sep or label.strip() not in ("0", "1"):
                raise FileFormatError(
                    f"sentiment_sentences: {path!r} line {lineno} is not 'sentence<TAB>0|1'"
                )
            texts.append(text.strip())
            labels.append(int(label))
    return texts, labels


def sentiment_sentences(path, train_sources=("imdb", "amazon"), test_sources=("yelp",)):
    """The "Sentiment Labelled Sentences" (Kotzias et al., KDD 2015): one sentence, a tab, then
    0 (negative) or 1 (positive) per line, in ``<source>_labelled.txt`` files (imdb, amazon
    (``amazon_cells_labelled.txt``), yelp).

    Args:
        path: the folder holding the files.
        train_sources, test_sources: which sources form each split (default: train on imdb
            and amazon, test on yelp: a test of transfer to a new domain).

    Returns ``(x_train, y_train), (x_test, y_test)``: x a 1-D object array of Python strings,
    y int64 (N,), in file order.
    """
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise EmberValueError(f"sentiment_sentences: {path!r} is not a folder")
    files = sorted(f for f in os.listdir(path) if f.endswith("_labelled.txt"))

    def load(sources):
        texts, labels = [], []
        for src in sources:
            match = [f for f in files if f.startswith(src)]
            if not match:
                raise EmberValueError(
                    f"sentiment_sentences: no '{src}*_labelled.txt' file in {path!r} "
                    f"(found {files})"
                )
            t, lab = _read_labelled(os.path.join(path, match[0]))
            texts += t
            labels += lab
        x = np.empty(len(texts), dtype=object)
        x[:] = texts
        return x, np.asarray(labels, dtype=np.int64)

    return load(train_sources), load(test_sources)
