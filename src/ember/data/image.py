"""Images from arrays and from folders on disk, with Keras's semantics and low memory.

``ImageDataGenerator(...).flow(x, y)`` and ``.flow_from_directory(dir)`` follow Keras's legacy
API; ``image_dataset_from_directory`` follows Keras's function of that name. A folder holds one
subfolder per class; class names are the subfolder names sorted alphanumerically (hidden folders
such as ``.ipynb_checkpoints`` are ignored); files are listed by a sorted walk of each class
folder. Only the file list lives in memory: a batch's images are decoded (with Pillow) when the
batch is asked for, and dropped when the caller lets go of it.

A file that cannot be decoded is skipped, with one warning that names it (its batch is one image
shorter), or, with ``strict=True``, raises a ``FileFormatError`` naming it.

Randomness is reproducible: with a ``seed``, batch ``i`` of epoch ``e`` is shuffled and augmented
from generators seeded by ``(seed, e)`` and ``(seed, e, i)``, so the result does not depend on
the order in which (or the thread on which) batches are produced. Without a seed one is drawn
from ``ember.backend.rng()``.
"""

from __future__ import annotations

import os
import threading
import warnings

import numpy as np

from ember import backend
from ember.data import augment
from ember.data.dataset import BatchSequence, Dataset, check_index
from ember.errors import EmberTypeError, EmberValueError, FileFormatError, ShapeError

# extensions (lower case) read by each API: Keras's lists, plus gif for flow_from_directory
DIRECTORY_FORMATS = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".tif", ".tiff", ".gif")
DATASET_FORMATS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
COLOR_MODES = {"grayscale": 1, "rgb": 3, "rgba": 4}
CLASS_MODES = ("categorical", "binary", "sparse", "input", None)
LABEL_MODES = ("int", "categorical", "binary", None)


class ImageDataWarning(UserWarning):
    """An image file was skipped because it could not be read."""


def _pil_image():
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow is an optional extra
        raise ImportError(
            "reading image files needs Pillow: pip install 'ember[images]' (or pillow)"
        ) from None
    return Image


def _new_seed() -> int:
    return int(backend.rng().integers(2**62))


def _check_seed(fn: str, seed):
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
        raise EmberTypeError(f"{fn}: seed must be an int or None, received seed={seed!r}")
    return _new_seed() if seed is None else int(seed)


def _check_size(fn: str, arg: str, size) -> tuple:
    ok = (
        isinstance(size, (tuple, list))
        and len(size) == 2
        and all(
            isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0 for s in size
        )
    )
    if not ok:
        raise EmberValueError(
            f"{fn}: {arg} must be a (height, width) pair of positive ints, received {size!r}"
        )
    return int(size[0]), int(size[1])


def _check_batch_size(fn: str, batch_size) -> int:
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, (int, np.integer))
        or (batch_size <= 0)
    ):
        raise EmberValueError(f"{fn}: batch_size must be a positive int, received {batch_size!r}")
    return int(batch_size)


# ------------------------------------------------------------------------------- decoding
_RESAMPLE = {
    "nearest": "NEAREST",
    "bilinear": "BILINEAR",
    "bicubic": "BICUBIC",
    "lanczos": "LANCZOS",
    "box": "BOX",
    "hamming": "HAMMING",
}


def load_image(
    path,
    color_mode: str = "rgb",
    target_size=None,
    interpolation: str = "nearest",
    keep_aspect_ratio: bool = False,
    dtype=None,
) -> np.ndarray:
    """Decode one image file into an (H, W, C) float array with values in [0, 255].

    Args:
        path: the file (png, jpg, bmp, gif (first frame), ... anything Pillow reads).
        color_mode: "rgb" (3 channels), "rgba" (4) or "grayscale" (1).
        target_size: (height, width) to resize to with Pillow, or None to keep the size.
        interpolation: Pillow's filter for the resize: "nearest" (Keras's default), "bilinear",
            "bicubic", "lanczos", "box" or "hamming".
        keep_aspect_ratio: crop the centre to the target's aspect ratio before resizing.
        dtype: the float dtype (default floatx).

    Raises ``FileFormatError`` naming the file when it cannot be decoded.
    """
    if color_mode not in COLOR_MODES:
        raise EmberValueError(
            f"load_image: color_mode must be one of {tuple(COLOR_MODES)}, received {color_mode!r}"
        )
    if interpolation not in _RESAMPLE:
        raise EmberValueError(
            f"load_image: interpolation must be one of {tuple(_RESAMPLE)}, "
            f"received {interpolation!r}"
        )
    Image = _pil_image()
    try:
        with Image.open(path) as img:
            img.load()  # decode now, so a truncated file fails here, naming its path
            if color_mode == "grayscale":
                if img.mode not in ("L", "I;16", "I"):
                    img = img.convert("L")
            elif color_mode == "rgba":
                if img.mode != "RGBA":
                    img = img.convert("RGBA")
            elif img.mode != "RGB":
                img = img.convert("RGB")
            if target_size is not None:
                th, tw = _check_size("load_image", "target_size", target_size)
                if img.size != (tw, th):
                    if keep_aspect_ratio:
                        top, left, ch, cw = augment.aspect_crop_box(img.height, img.width, th, tw)
                        img = img.crop((left, top, left + cw, top + ch))
                    resample = getattr(Image.Resampling, _RESAMPLE[interpolation])
                    img = img.resize((tw, th), resample)
            arr = np.asarray(img, dtype=dtype or backend.float_dtype())
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise FileFormatError(f"cannot read image file {os.fspath(path)!r}: {exc}") from None
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return arr


class _Reader:
    """Decodes files for one iterator: warns once per unreadable file and skips it afterwards,
    or raises in strict mode. Safe to call from several loader threads."""

    def __init__(self, strict: bool, **load_kwargs):
        self.strict = bool(strict)
        self.load_kwargs = load_kwargs
        self.skipped: set = set()
        self._lock = threading.Lock()

    def __call__(self, path: str):
        if path in self.skipped:
            return None
        try:
            return load_image(path, **self.load_kwargs)
        except FileFormatError as exc:
            if self.strict:
                raise
            with self._lock:
                first = path not in self.skipped
                self.skipped.add(path)
            if first:
                warnings.warn(f"{exc}; skipping it", ImageDataWarning, stacklevel=3)
            return None


# ------------------------------------------------------------------------------- listing
def _class_folders(fn: str, directory: str, classes) -> list:
    if not os.path.isdir(directory):
        raise EmberValueError(f"{fn}: directory {directory!r} does not exist or is not a folder")
    subdirs = [
        d
        for d in sorted(os.listdir(directory))
        if not d.startswith(".") and os.path.isdir(os.path.join(directory, d))
    ]
    if classes:
        classes = list(classes)
        missing = [c for c in classes if c not in subdirs]
        if missing:
            raise EmberValueError(
                f"{fn}: classes {missing} have no subfolder in {directory!r} "
                f"(subfolders found: {subdirs})"
            )
        return classes
    if not subdirs:
        loose = [f for f in sorted(os.listdir(directory)) if f.lower().endswith(DATASET_FORMATS)]
        hint = f"it holds {len(loose)} image file(s) directly; " if loose else "it is empty; "
        raise EmberValueError(
            f"{fn}: {directory!r} has no class subfolders ({hint}put each class's images in "
            f"a subfolder of its own: {directory}/<class_name>/<image>)"
        )
    return subdirs


def _walk_images(folder: str, formats: tuple, follow_links: bool) -> list:
    """Image files under ``folder``: a walk sorted by directory, each directory's files sorted."""
    out = []
    for root, _, files in sorted(os.walk(folder, followlinks=follow_links), key=lambda t: t[0]):
        for name in sorted(files):
            if name.lower().endswith(formats):
                out.append(os.path.join(root, name))
    return out


def list_image_files(
    directory,
    classes=None,
    formats: tuple = DIRECTORY_FORMATS,
    follow_links: bool = False,
    split=None,
    fn: str = "list_image_files",
):
    """List a class-per-subfolder image folder as Keras does.

    Returns ``(class_names, filepaths, labels)``: the class names in index order, the files
    class by class (sorted walk), and their int32 class indices. ``split=(start, stop)`` keeps
    that fraction of each class's files (Keras's ``validation_split`` subsets).
    Raises an ``EmberValueError`` when the folder is missing, has no class subfolders, or has
    no image files.
    """
    directory = os.fspath(directory)
    class_names = _class_folders(fn, directory, classes)
    paths, labels = [], []
    total = 0
    for k, name in enumerate(class_names):
        files = _walk_images(os.path.join(directory, name), formats, follow_links)
        total += len(files)
        if split is not None:
            n = len(files)
            files = files[int(split[0] * n) : int(split[1] * n)]
        paths += files
        labels += [k] * len(files)
    if total == 0:
        raise EmberValueError(
            f"{fn}: no image files ({', '.join(f.lstrip('.') for f in formats)}) found in the "
            f"class subfolders {class_names} of {directory!r}"
        )
    return class_names, paths, np.asarray(labels, dtype=np.int32)


# ------------------------------------------------------------------------------- iterators
class _ImageIterator(BatchSequence):
    """Shared by NumpyArrayIterator and DirectoryIterator: epochs, shuffling, seeds."""

    def __init__(self, n: int, batch_size: int, shuffle: bool, seed):
        self.n = int(n)
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.seed = seed
        self.epoch = 0
        self._order = None
        self._order_epoch = None
        self._order_lock = threading.Lock()

    def __len__(self) -> int:
        return -(-self.n // self.batch_size)

    def index_array(self) -> np.ndarray:
        """This epoch's sample order."""
        with self._order_lock:
            if self._order_epoch != self.epoch:
                if self.shuffle:
                    self._order = np.random.default_rng([self.seed, 0, self.epoch]).permutation(
                        self.n
                    )
                else:
                    self._order = np.arange(self.n)
                self._order_epoch = self.epoch
            return self._order

    def on_epoch_end(self) -> None:
        self.epoch += 1

    def _batch_indices(self, index: int):
        index = check_index(type(self).__name__, index, len(self))
        order = self.index_array()
        rng = np.random.default_rng([self.seed, 1, self.epoch, index])
        return order[index * self.batch_size : (index + 1) * self.batch_size], rng


class NumpyArrayIterator(_ImageIterator):
    """Batches of augmented images from arrays (made by ``ImageDataGenerator.flow``)."""

    def __init__(
        self,
        x,
        y,
        generator,
        batch_size=32,
        shuffle=True,
        sample_weight=None,
        seed=None,
        subset=None,
        ignore_class_split=False,
    ):
        x = np.asarray(x.data if hasattr(x, "data") and not isinstance(x, np.ndarray) else x)
        if x.ndim != 4:
            raise ShapeError(
                f"ImageDataGenerator.flow: x must be images of shape (N, H, W, C), received "
                f"shape {x.shape}"
            )
        y = None if y is None else np.asarray(y)
        sw = None if sample_weight is None else np.asarray(sample_weight)
        for name, a in (("y", y), ("sample_weight", sw)):
            if a is not None and len(a) != len(x):
                raise ShapeError(
                    f"ImageDataGenerator.flow: x has {len(x)} images but {name} has {len(a)}"
                )
        if subset is not None:
            if subset not in ("training", "validation"):
                raise EmberValueError(
                    f"ImageDataGenerator.flow: subset must be 'training' or 'validation', "
                    f"received {subset!r}"
                )
            cut = int(len(x) * generator.validation_split)
            if (
                y is not None
                and not ignore_class_split
                and not np.array_equal(np.unique(y[:cut]), np.unique(y[cut:]))
            ):
                raise EmberValueError(
                    "ImageDataGenerator.flow: the training and validation subsets hold "
                    "different classes after the split; if the arrays are sorted by label, "
                    "shuffle them first (or pass ignore_class_split=True)"
                )
            part = slice(None, cut) if subset == "validation" else slice(cut, None)
            x = x[part]
            y = None if y is None else y[part]
            sw = None if sw is None else sw[part]
        self.x, self.y, self.sample_weight = x, y, sw
        self.generator = generator
        super().__init__(
            len(x), _check_batch_size("flow", batch_size), shuffle, _check_seed("flow", seed)
        )

    def __getitem__(self, index):
        idx, rng = self._batch_indices(index)
        batch = self.x[idx].astype(self.generator.dtype)
        batch = self.generator.standardize(self.generator.augment_batch(batch, rng))
        if self.y is None:
            return batch
        if self.sample_weight is None:
            return batch, self.y[idx]
        return batch, self.y[idx], self.sample_weight[idx]


class DirectoryIterator(_ImageIterator):
    """Batches of images read from a class-per-subfolder folder (``flow_from_directory``).

    Attributes (Keras's): ``class_indices`` (name -> index), ``classes`` (int32 index of every
    file), ``filenames`` (paths relative to the folder), ``filepaths``, ``samples``,
    ``num_classes``, ``image_shape``; plus ``skipped``, the set of unreadable files met so far.
    """

    def __init__(
        self,
        directory,
        generator=None,
        target_size=(256, 256),
        color_mode="rgb",
        classes=None,
        class_mode="categorical",
        batch_size=32,
        shuffle=True,
        seed=None,
        follow_links=False,
        subset=None,
        interpolation="nearest",
        keep_aspect_ratio=False,
        strict=False,
    ):
        fn = "flow_from_directory"
        self.target_size = _check_size(fn, "target_size", target_size)
        if color_mode not in COLOR_MODES:
            raise EmberValueError(
                f"{fn}: color_mode must be one of {tuple(COLOR_MODES)}, received {color_mode!r}"
            )
        if class_mode not in CLASS_MODES:
            raise EmberValueError(
                f"{fn}: class_mode must be one of {CLASS_MODES}, received {class_mode!r}"
            )
        split = None
        if subset is not None:
            vs = generator.validation_split if generator is not None else 0.0
            if subset == "validation":
                split = (0.0, vs)
            elif subset == "training":
                split = (vs, 1.0)
            else:
                raise EmberValueError(
                    f"{fn}: subset must be 'training' or 'validation', received {subset!r}"
                )
        self.directory = os.fspath(directory)
        class_names, paths, labels = list_image_files(
            self.directory, classes, DIRECTORY_FORMATS, follow_links, split, fn
        )
        if class_mode == "binary" and len(class_names) != 2:
            raise EmberValueError(
                f"{fn}: class_mode='binary' needs exactly 2 class subfolders, found "
                f"{len(class_names)}: {class_names}"
            )
        self.class_indices = {name: i for i, name in enumerate(class_names)}
        self.num_classes = len(class_names)
        self.classes = labels
        # only the relative names are kept (the full paths are joined on demand): the file
        # list is the one thing that grows with the folder
        self.filenames = [os.path.relpath(p, self.directory) for p in paths]
        del paths
        self.samples = len(self.filenames)
        self.class_mode = class_mode
        self.color_mode = color_mode
        self.image_shape = self.target_size + (COLOR_MODES[color_mode],)
        self.generator = generator
        self.dtype = generator.dtype if generator is not None else backend.float_dtype()
        self._read = _Reader(
            strict,
            color_mode=color_mode,
            target_size=self.target_size,
            interpolation=interpolation,
            keep_aspect_ratio=keep_aspect_ratio,
            dtype=self.dtype,
        )
        super().__init__(
            self.samples, _check_batch_size(fn, batch_size), shuffle, _check_seed(fn, seed)
        )

    @property
    def labels(self) -> np.ndarray:
        return self.classes

    @property
    def filepaths(self) -> list:
        """Absolute paths of every file, in ``filenames`` order."""
        return [os.path.join(self.directory, f) for f in self.filenames]

    @property
    def skipped(self) -> set:
        return set(self._read.skipped)

    def __getitem__(self, index):
        idx, rng = self._batch_indices(index)
        images, kept = [], []
        for j in idx:
            img = self._read(os.path.join(self.directory, self.filenames[j]))
            if img is not None:
                images.append(img)
                kept.append(j)
        kept = np.asarray(kept, dtype=np.int64)
        if images:
            x = np.stack(images)
        else:
            x = np.zeros((0,) + self.image_shape, dtype=self.dtype)
        if self.generator is not None:
            x = self.generator.standardize(self.generator.augment_batch(x, rng))
        mode = self.class_mode
        if mode is None:
            return x
        if mode == "input":
            return x, x.copy()
        labels = self.classes[kept]
        if mode == "categorical":
            y = np.zeros((len(kept), self.num_classes), dtype=self.dtype)
            y[np.arange(len(kept)), labels] = 1.0
        else:  # binary, sparse: float class indices, as Keras gives
            y = labels.astype(self.dtype)
        return x, y


# ------------------------------------------------------------------------------- generator
def _range_pair(name: str, value, around_one: bool = False) -> tuple:
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        v = float(value)
        if v < 0:
            raise EmberValueError(f"ImageDataGenerator: {name} must be >= 0, received {value!r}")
        return (1.0 - v, 1.0 + v) if around_one else (-v, v)
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return float(value[0]), float(value[1])
    raise EmberValueError(
        f"ImageDataGenerator: {name} must be a float or a [lower, upper] pair, received {value!r}"
    )


class ImageDataGenerator:
    """Keras's image augmentation and normalization, for arrays and folders.

    Args:
        rescale: multiply pixels by this (e.g. 1/255), before the other normalizations.
        rotation_range: degrees; each image is rotated by an angle drawn from [-r, r].
        width_shift_range, height_shift_range: a float < 1 is a fraction of the width / height,
            >= 1 a number of pixels, shifts drawn from [-r, r]; an int r draws whole pixels in
            (-r, r); a list draws one of its values with a random sign (Keras's rules).
        zoom_range: z for zooms drawn from [1 - z, 1 + z] (or a [lower, upper] pair),
            independently for width and height; above 1 zooms out.
        shear_range: shear angle in degrees, drawn from [-s, s].
        horizontal_flip, vertical_flip: flip each image with probability 1/2.
        brightness_range: (low, high): multiply each image by a factor drawn from it (clipped
            to [0, 255], as Keras's 8-bit path does).
        channel_shift_range: add a value from [-c, c] to every channel, within the image's range.
        fill_mode: "nearest" (default), "reflect", "mirror", "wrap" or "constant" (with cval).
        featurewise_center, featurewise_std_normalization: subtract the per-channel mean /
            divide by the per-channel std computed by ``fit(x)``.
        samplewise_center, samplewise_std_normalization: the same per image.
        preprocessing_function: a function of one image (H, W, C), run after augmentation.
        validation_split: fraction held out for ``subset="validation"`` (in a folder: the first
            part of each class's sorted files; in ``flow``: the first part of the arrays).
        interpolation_order: 1 (bilinear, default) or 0 (nearest) for the geometric transforms.
        dtype: the output float dtype (default floatx).
    """

    def __init__(
        self,
        featurewise_center=False,
        samplewise_center=False,
        featurewise_std_normalization=False,
        samplewise_std_normalization=False,
        rotation_range=0,
        width_shift_range=0.0,
        height_shift_range=0.0,
        brightness_range=None,
        shear_range=0.0,
        zoom_range=0.0,
        channel_shift_range=0.0,
        fill_mode="nearest",
        cval=0.0,
        horizontal_flip=False,
        vertical_flip=False,
        rescale=None,
        preprocessing_function=None,
        validation_split=0.0,
        interpolation_order=1,
        dtype=None,
    ):
        self.featurewise_center = bool(featurewise_center)
        self.samplewise_center = bool(samplewise_center)
        self.featurewise_std_normalization = bool(featurewise_std_normalization)
        self.samplewise_std_normalization = bool(samplewise_std_normalization)
        self.rotation_range = float(rotation_range)
        self.width_shift_range = width_shift_range
        self.height_shift_range = height_shift_range
        for name in ("width_shift_range", "height_shift_range"):
            v = getattr(self, name)
            ok = isinstance(v, (int, float, np.integer, np.floating, list, tuple)) and (
                not isinstance(v, bool)
            )
            if not ok or (np.ndim(v) == 0 and v < 0):
                raise EmberValueError(
                    f"ImageDataGenerator: {name} must be a float, an int or a list of values, "
                    f"received {v!r}"
                )
        if brightness_range is not None:
            if not (
                isinstance(brightness_range, (tuple, list))
                and len(brightness_range) == 2
                and 0 <= brightness_range[0] <= brightness_range[1]
            ):
                raise EmberValueError(
                    "ImageDataGenerator: brightness_range must be a (low, high) pair with "
                    f"0 <= low <= high, received {brightness_range!r}"
                )
            brightness_range = (float(brightness_range[0]), float(brightness_range[1]))
        self.brightness_range = brightness_range
        self.shear_range = float(shear_range)
        self.zoom_range = _range_pair("zoom_range", zoom_range, around_one=True)
        self.channel_shift_range = float(channel_shift_range)
        if fill_mode not in augment.FILL_MODES:
            raise EmberValueError(
                f"ImageDataGenerator: fill_mode must be one of {augment.FILL_MODES}, "
                f"received {fill_mode!r}"
            )
        self.fill_mode = fill_mode
        self.cval = float(cval)
        self.horizontal_flip = bool(horizontal_flip)
        self.vertical_flip = bool(vertical_flip)
        self.rescale = rescale
        if preprocessing_function is not None and not callable(preprocessing_function):
            raise EmberTypeError("ImageDataGenerator: preprocessing_function must be callable")
        self.preprocessing_function = preprocessing_function
        if not 0.0 <= float(validation_split) < 1.0:
            raise EmberValueError(
                f"ImageDataGenerator: validation_split must be in [0, 1), received "
                f"{validation_split!r}"
            )
        self.validation_split = float(validation_split)
        if interpolation_order not in (0, 1):
            raise EmberValueError(
                "ImageDataGenerator: interpolation_order must be 0 (nearest) or 1 (bilinear), "
                f"received {interpolation_order!r}"
            )
        self.interpolation_order = int(interpolation_order)
        self.dtype = np.dtype(dtype) if dtype is not None else backend.float_dtype()
        self.mean = None
        self.std = None

    # ------------------------------------------------------------------ statistics
    def fit(self, x, augment: bool = False, rounds: int = 1, seed=None) -> None:
        """Compute the per-channel mean and std used by the featurewise options (after
        ``rescale``, as Keras does); with ``augment``, over ``rounds`` augmented copies."""
        x = np.array(x, dtype=self.dtype)  # a copy: rescale works in place
        if x.ndim != 4:
            raise ShapeError(
                f"ImageDataGenerator.fit: x must be images (N, H, W, C), received shape {x.shape}"
            )
        if self.rescale:
            x *= self.dtype.type(self.rescale)
        if augment:
            rng = np.random.default_rng(seed if seed is not None else _new_seed())
            x = np.concatenate([self.augment_batch(x, rng) for _ in range(int(rounds))])
        if self.featurewise_center:
            self.mean = x.mean(axis=(0, 1, 2), keepdims=True)[0].astype(self.dtype)
            x = x - self.mean
        if self.featurewise_std_normalization:
            self.std = x.std(axis=(0, 1, 2), keepdims=True)[0].astype(self.dtype)

    def standardize(self, x: np.ndarray) -> np.ndarray:
        """Apply the normalization options to an image (H, W, C) or a batch (N, H, W, C), in
        Keras's order: preprocessing_function, rescale, samplewise, featurewise."""
        x = np.asarray(x)
        if x.dtype != self.dtype:
            x = x.astype(self.dtype)
        single = x.ndim == 3
        if single:
            x = x[None]
        if self.preprocessing_function is not None:
            x = np.stack([np.asarray(self.preprocessing_function(img), self.dtype) for img in x])
        if self.rescale:
            x = x * self.dtype.type(self.rescale)
        eps = self.dtype.type(1e-6)
        if self.samplewise_center:
            x = x - x.mean(axis=(1, 2, 3), keepdims=True)
        if self.samplewise_std_normalization:
            x = x / (x.std(axis=(1, 2, 3), keepdims=True) + eps)
        if self.featurewise_center:
            if self.mean is None:
                warnings.warn(
                    "ImageDataGenerator: featurewise_center is set but fit(x) was never called",
                    stacklevel=2,
                )
            else:
                x = x - self.mean
        if self.featurewise_std_normalization:
            if self.std is None:
                warnings.warn(
                    "ImageDataGenerator: featurewise_std_normalization is set but fit(x) was "
                    "never called",
                    stacklevel=2,
                )
            else:
                x = x / (self.std + eps)
        return x[0] if single else x

    # ------------------------------------------------------------------ augmentation
    def _shift(self, value, size: int, rng, n: int) -> np.ndarray:
        if isinstance(value, (list, tuple)):
            out = rng.choice(np.asarray(value, dtype=np.float64), n) * rng.choice([-1.0, 1.0], n)
        elif isinstance(value, (int, np.integer)) and value >= 1:  # whole pixels in (-r, r)
            out = rng.integers(0, int(value), n).astype(np.float64) * rng.choice([-1.0, 1.0], n)
        else:
            out = rng.uniform(-float(value), float(value), n)
        if np.max(np.abs(value)) < 1:
            out = out * size
        return out

    def augment_batch(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Apply random transforms to a batch (N, H, W, C), parameters drawn from ``rng``: one
        vectorised resampling for rotation, shift, shear and zoom together, then channel shift,
        flips and brightness."""
        x = np.asarray(x, dtype=self.dtype)
        n, h, w, _ = x.shape
        if n == 0:
            return x
        mats = []
        if self.rotation_range:
            angles = rng.uniform(-self.rotation_range, self.rotation_range, n)
            mats.append(augment.rotation_matrix(np.deg2rad(angles), h, w))
        if np.max(np.abs(self.height_shift_range)) or np.max(np.abs(self.width_shift_range)):
            dy = (
                self._shift(self.height_shift_range, h, rng, n)
                if np.max(np.abs(self.height_shift_range))
                else np.zeros(n)
            )
            dx = (
                self._shift(self.width_shift_range, w, rng, n)
                if np.max(np.abs(self.width_shift_range))
                else np.zeros(n)
            )
            mats.append(augment.translation_matrix(dx, dy))
        if self.shear_range:
            shear = rng.uniform(-self.shear_range, self.shear_range, n)
            mats.append(augment.shear_matrix(np.deg2rad(shear), h, w))
        if self.zoom_range != (1.0, 1.0):
            zx = rng.uniform(self.zoom_range[0], self.zoom_range[1], n)
            zy = rng.uniform(self.zoom_range[0], self.zoom_range[1], n)
            mats.append(augment.zoom_matrix(zx, zy, h, w))
        if mats:
            interp = "bilinear" if self.interpolation_order == 1 else "nearest"
            x = augment.affine_transform(
                x, augment.compose(*mats), interp, self.fill_mode, self.cval
            )
        if self.channel_shift_range:
            shift = rng.uniform(-self.channel_shift_range, self.channel_shift_range, n)
            x = augment.channel_shift(x, shift)
        if self.horizontal_flip or self.vertical_flip:
            hf = rng.random(n) < 0.5 if self.horizontal_flip else None
            vf = rng.random(n) < 0.5 if self.vertical_flip else None
            x = augment.flip(x, hf, vf)
        if self.brightness_range is not None:
            factors = rng.uniform(self.brightness_range[0], self.brightness_range[1], n)
            x = augment.scale_brightness(x, factors, (0.0, 255.0))
        return x

    def random_transform(self, x: np.ndarray, seed=None) -> np.ndarray:
        """One image (H, W, C), randomly transformed (seeded when ``seed`` is given)."""
        x = np.asarray(x)
        if x.ndim != 3:
            raise ShapeError(
                f"ImageDataGenerator.random_transform: expected one image (H, W, C), received "
                f"shape {x.shape}"
            )
        rng = np.random.default_rng(seed if seed is not None else _new_seed())
        return self.augment_batch(x[None], rng)[0]

    # ------------------------------------------------------------------ sources
    def flow(
        self,
        x,
        y=None,
        batch_size: int = 32,
        shuffle: bool = True,
        sample_weight=None,
        seed=None,
        subset=None,
        ignore_class_split: bool = False,
    ) -> NumpyArrayIterator:
        """Batches of augmented, normalized images from arrays: ``(x, y)`` (or ``x`` alone,
        or ``(x, y, sample_weight)``). Usable directly in ``model.fit``."""
        return NumpyArrayIterator(
            x, y, self, batch_size, shuffle, sample_weight, seed, subset, ignore_class_split
        )

    def flow_from_directory(
        self,
        directory,
        target_size=(256, 256),
        color_mode="rgb",
        classes=None,
        class_mode="categorical",
        batch_size=32,
        shuffle=True,
        seed=None,
        follow_links=False,
        subset=None,
        interpolation="nearest",
        keep_aspect_ratio=False,
        strict=False,
    ) -> DirectoryIterator:
        """Batches read from ``directory/<class>/<image>`` files, decoded a batch at a time.

        ``class_mode``: "categorical" (one-hot float labels), "binary" (float 0/1, exactly two
        classes), "sparse" (float class index), "input" (the images themselves, for
        autoencoders) or None (images only). ``strict=True`` raises on an unreadable file
        instead of skipping it with a warning.
        """
        return DirectoryIterator(
            directory,
            self,
            target_size,
            color_mode,
            classes,
            class_mode,
            batch_size,
            shuffle,
            seed,
            follow_links,
            subset,
            interpolation,
            keep_aspect_ratio,
            strict,
        )


# ------------------------------------------------------------------------------- dataset API
class ImageFolderDataset(Dataset):
    """One image per item, decoded on demand and resized to ``image_size`` (bilinear, with
    TensorFlow's half-pixel rule): ``(image, label)``, or the image alone when label_mode is
    None; None for an unreadable file (skipped by the loader)."""

    def __init__(
        self,
        filepaths,
        labels,
        num_classes: int,
        image_size,
        color_mode="rgb",
        label_mode="int",
        interpolation="bilinear",
        crop_to_aspect_ratio=False,
        strict=False,
    ):
        self.filepaths = list(filepaths)
        self.labels = None if labels is None else np.asarray(labels, dtype=np.int32)
        self.num_classes = int(num_classes)
        self.image_size = tuple(image_size)
        self.label_mode = label_mode
        self.interpolation = interpolation
        self.crop_to_aspect_ratio = bool(crop_to_aspect_ratio)
        self._read = _Reader(strict, color_mode=color_mode)

    def __len__(self) -> int:
        return len(self.filepaths)

    @property
    def skipped(self) -> set:
        return set(self._read.skipped)

    def __getitem__(self, index):
        img = self._read(self.filepaths[index])
        if img is None:
            return None
        th, tw = self.image_size
        if img.shape[:2] != (th, tw):
            batch = img[None]
            if self.crop_to_aspect_ratio:
                top, left, ch, cw = augment.aspect_crop_box(img.shape[0], img.shape[1], th, tw)
                batch = batch[:, top : top + ch, left : left + cw]
            img = augment.resize(batch, (th, tw), self.interpolation)[0]
        if self.label_mode is None:
            return img
        k = int(self.labels[index])
        if self.label_mode == "int":
            return img, np.int32(k)
        if self.label_mode == "binary":
            return img, np.asarray([k], dtype=backend.float_dtype())
        y = np.zeros(self.num_classes, dtype=backend.float_dtype())
        y[k] = 1.0
        return img, y


def image_dataset_from_directory(
    directory,
    labels="inferred",
    label_mode="int",
    class_names=None,
    color_mode: str = "rgb",
    batch_size: int | None = 32,
    image_size=(256, 256),
    shuffle: bool = True,
    seed=None,
    validation_split=None,
    subset=None,
    interpolation: str = "bilinear",
    follow_links: bool = False,
    crop_to_aspect_ratio: bool = False,
    strict: bool = False,
    num_workers: int = 0,
):
    """A DataLoader of ``(images, labels)`` batches from ``directory/<class>/<image>`` files,
    with Keras's semantics.

    Files are listed class by class (sorted); with ``shuffle`` the whole list is then shuffled
    by ``numpy.random.RandomState(seed)`` exactly as Keras does, and with ``validation_split``
    the LAST ``int(split * n)`` files of that order form the validation subset (``subset``:
    "training", "validation", or "both" for a pair of loaders). Images are float32 in [0, 255],
    resized to ``image_size``; labels are int32 ("int"), one-hot float32 ("categorical"), float32
    of shape (1,) ("binary", two classes only), or absent (None). The loader reshuffles every
    epoch (seeded). It has ``class_names`` and ``file_paths`` attributes.
    """
    from ember.data.loader import DataLoader

    fn = "image_dataset_from_directory"
    if labels not in ("inferred", None):
        raise EmberValueError(
            f"{fn}: labels must be 'inferred' (from the class subfolders) or None, "
            f"received {labels!r}"
        )
    if label_mode not in LABEL_MODES:
        raise EmberValueError(
            f"{fn}: label_mode must be one of {LABEL_MODES}, received {label_mode!r}"
        )
    if labels is None:
        label_mode = None
    if color_mode not in COLOR_MODES:
        raise EmberValueError(
            f"{fn}: color_mode must be one of {tuple(COLOR_MODES)}, received {color_mode!r}"
        )
    if interpolation not in ("bilinear", "nearest"):
        raise EmberValueError(
            f"{fn}: interpolation must be 'bilinear' or 'nearest', received {interpolation!r}"
        )
    image_size = _check_size(fn, "image_size", image_size)
    if batch_size is not None:
        batch_size = _check_batch_size(fn, batch_size)
    if validation_split is not None and validation_split != 0 and not 0 < validation_split < 1:
        raise EmberValueError(
            f"{fn}: validation_split must be between 0 and 1, received {validation_split!r}"
        )
    if bool(validation_split) != bool(subset):
        raise EmberValueError(
            f"{fn}: subset and validation_split go together; received "
            f"validation_split={validation_split!r}, subset={subset!r}"
        )
    if subset not in (None, "training", "validation", "both"):
        raise EmberValueError(
            f"{fn}: subset must be 'training', 'validation' or 'both', received {subset!r}"
        )
    if validation_split and shuffle and seed is None:
        raise EmberValueError(
            f"{fn}: with validation_split and shuffle, give a seed so that the training and "
            f"validation subsets do not overlap"
        )
    directory = os.fspath(directory)
    if labels == "inferred":
        names, paths, label_arr = list_image_files(
            directory, class_names, DATASET_FORMATS, follow_links, None, fn
        )
    else:
        if not os.path.isdir(directory):
            raise EmberValueError(f"{fn}: directory {directory!r} does not exist")
        names, paths = None, _walk_images(directory, DATASET_FORMATS, follow_links)
        label_arr = None
        if not paths:
            raise EmberValueError(f"{fn}: no image files found under {directory!r}")
    if label_mode == "binary" and len(names) != 2:
        raise EmberValueError(
            f"{fn}: label_mode='binary' needs exactly 2 classes, found {len(names)}: {names}"
        )
    if shuffle:
        if seed is None:
            seed = int(backend.rng().integers(1_000_000))
        perm = np.random.RandomState(seed).permutation(len(paths))  # Keras's global shuffle
        paths = [paths[i] for i in perm]
        label_arr = None if label_arr is None else label_arr[perm]
    num_classes = 0 if names is None else len(names)

    def make(part: slice):
        ds = ImageFolderDataset(
            paths[part],
            None if label_arr is None else label_arr[part],
            num_classes,
            image_size,
            color_mode,
            label_mode,
            interpolation,
            crop_to_aspect_ratio,
            strict,
        )
        loader = DataLoader(
            ds, batch_size=batch_size, shuffle=shuffle, seed=seed, num_workers=num_workers
        )
        loader.class_names = names
        loader.file_paths = ds.filepaths
        return loader

    if not validation_split:
        return make(slice(None))
    n_val = int(validation_split * len(paths))
    train, val = slice(None, len(paths) - n_val), slice(len(paths) - n_val, None)
    if subset == "training":
        return make(train)
    if subset == "validation":
        return make(val)
    return make(train), make(val)
