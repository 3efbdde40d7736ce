"""Image folders and ImageDataGenerator, pinned to Keras's semantics on small hand-made folders
written with Pillow: class_indices order, file order, class modes, subsets, formats, unreadable
files, the Keras iterator protocol, and image_dataset_from_directory's shuffle and split."""

import os
import warnings

import numpy as np
import pytest

from ember.data import ImageDataGenerator, image_dataset_from_directory, load_image
from ember.data.image import ImageDataWarning
from ember.errors import EmberValueError, FileFormatError, ShapeError

Image = pytest.importorskip("PIL.Image", reason="Pillow is not installed")


def _save(path, value, size=(4, 6), mode="RGB"):
    """A solid image of ``value`` (an int, or a tuple per channel), size (height, width)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    h, w = size
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    arr = np.empty((h, w, channels), np.uint8)
    arr[...] = value
    img = Image.fromarray(arr[:, :, 0] if mode == "L" else arr, mode)
    img.save(path)
    return path


@pytest.fixture
def folder(tmp_path):
    """cat: 4 pngs, dog: 2 pngs + 1 jpg + a nested gif, bird: 1 bmp; plus noise files."""
    root = tmp_path / "pets"
    for i in range(4):
        _save(root / "cat" / f"c{i}.png", 10 * i)
    _save(root / "dog" / "d0.png", 100)
    _save(root / "dog" / "d1.png", 110)
    _save(root / "dog" / "a_first.jpg", 120)
    _save(root / "dog" / "nested" / "deep.gif", 130)
    _save(root / "bird" / "b0.bmp", 200)
    (root / "dog" / "notes.txt").write_text("not an image")
    (root / ".hidden").mkdir()
    _save(root / ".hidden" / "x.png", 1)
    return root


def _names(it):
    return [f.replace(os.sep, "/") for f in it.filenames]


# ---------------------------------------------------------------------------------- listing
def test_class_indices_are_the_subfolders_sorted_alphanumerically(tmp_path):
    for name in ["dog", "Cat", "bird", "10", "9"]:
        _save(tmp_path / name / "x.png", 0)
    it = ImageDataGenerator().flow_from_directory(tmp_path, target_size=(4, 6))
    assert it.class_indices == {"10": 0, "9": 1, "Cat": 2, "bird": 3, "dog": 4}


def test_files_are_listed_class_by_class_in_sorted_walk_order(folder):
    it = ImageDataGenerator().flow_from_directory(folder, target_size=(4, 6), shuffle=False)
    assert it.class_indices == {"bird": 0, "cat": 1, "dog": 2}
    assert _names(it) == [
        "bird/b0.bmp",
        "cat/c0.png",
        "cat/c1.png",
        "cat/c2.png",
        "cat/c3.png",
        "dog/a_first.jpg",
        "dog/d0.png",
        "dog/d1.png",
        "dog/nested/deep.gif",
    ]
    np.testing.assert_array_equal(it.classes, [0, 1, 1, 1, 1, 2, 2, 2, 2])
    assert it.samples == 9 and it.num_classes == 3


def test_classes_argument_picks_and_orders_the_classes(folder):
    it = ImageDataGenerator().flow_from_directory(
        folder, target_size=(4, 6), classes=["dog", "bird"]
    )
    assert it.class_indices == {"dog": 0, "bird": 1}
    assert it.samples == 5


# ---------------------------------------------------------------------------------- batches
def test_batches_hold_decoded_pixels_with_categorical_labels(folder):
    it = ImageDataGenerator().flow_from_directory(
        folder, target_size=(4, 6), batch_size=9, shuffle=False
    )
    x, y = it[0]
    assert x.shape == (9, 4, 6, 3) and x.dtype == np.float32
    expected = [200, 0, 10, 20, 30, 120, 100, 110, 130]
    np.testing.assert_allclose(x[:, 0, 0, 0], expected, atol=3)  # the jpg may be off by a bit
    assert x[np.arange(9) != 5].max() <= 200 and np.all(x[1:5] == x[1:5, :1, :1])
    np.testing.assert_array_equal(y, np.eye(3, dtype=np.float32)[it.classes])


@pytest.mark.parametrize(
    "mode, check",
    [
        ("sparse", lambda x, y, it: np.array_equal(y, it.classes[:4].astype(np.float32))),
        ("input", lambda x, y, it: np.array_equal(x, y)),
    ],
)
def test_class_modes_sparse_and_input(folder, mode, check):
    it = ImageDataGenerator().flow_from_directory(
        folder, target_size=(4, 6), class_mode=mode, batch_size=4, shuffle=False
    )
    x, y = it[0]
    assert check(x, y, it)


def test_class_mode_none_yields_images_only(folder):
    it = ImageDataGenerator().flow_from_directory(
        folder, target_size=(4, 6), class_mode=None, batch_size=4
    )
    assert isinstance(it[0], np.ndarray) and it[0].shape == (4, 4, 6, 3)


def test_class_mode_binary_gives_float_0_1_and_needs_two_classes(folder, tmp_path):
    it = ImageDataGenerator().flow_from_directory(
        folder,
        target_size=(4, 6),
        classes=["cat", "dog"],
        class_mode="binary",
        shuffle=False,
        batch_size=8,
    )
    _, y = it[0]
    np.testing.assert_array_equal(y, [0, 0, 0, 0, 1, 1, 1, 1])
    with pytest.raises(EmberValueError, match="exactly 2"):
        ImageDataGenerator().flow_from_directory(folder, class_mode="binary")


@pytest.mark.parametrize("color_mode, channels", [("grayscale", 1), ("rgb", 3), ("rgba", 4)])
def test_color_mode_and_target_size_set_the_image_shape(folder, color_mode, channels):
    it = ImageDataGenerator().flow_from_directory(
        folder, target_size=(5, 3), color_mode=color_mode, batch_size=2
    )
    x, _ = it[0]
    assert x.shape == (2, 5, 3, channels) and it.image_shape == (5, 3, channels)


def test_load_image_reads_rgba_and_grey_images(tmp_path):
    _save(tmp_path / "a.png", (10, 20, 30, 40), mode="RGBA")
    _save(tmp_path / "g.png", 77, mode="L")
    np.testing.assert_array_equal(load_image(tmp_path / "a.png", "rgba")[0, 0], [10, 20, 30, 40])
    np.testing.assert_array_equal(load_image(tmp_path / "a.png", "rgb")[0, 0], [10, 20, 30])
    np.testing.assert_array_equal(load_image(tmp_path / "g.png", "rgb")[0, 0], [77, 77, 77])
    assert load_image(tmp_path / "g.png", "grayscale").shape == (4, 6, 1)


# ---------------------------------------------------------------------------------- subsets
def test_validation_subset_is_the_first_fraction_of_each_class(tmp_path):
    for i in range(4):
        _save(tmp_path / "a" / f"{i}.png", i)
    for i in range(8):
        _save(tmp_path / "b" / f"{i}.png", i)
    gen = ImageDataGenerator(validation_split=0.25)
    val = gen.flow_from_directory(tmp_path, target_size=(4, 6), subset="validation")
    train = gen.flow_from_directory(tmp_path, target_size=(4, 6), subset="training")
    assert sorted(_names(val)) == ["a/0.png", "b/0.png", "b/1.png"]
    assert sorted(_names(train)) == (
        ["a/1.png", "a/2.png", "a/3.png"] + [f"b/{i}.png" for i in range(2, 8)]
    )


# ---------------------------------------------------------------------------------- errors
def test_an_unreadable_file_is_skipped_with_one_warning_naming_it(folder):
    bad = folder / "cat" / "c1.png"
    bad.write_bytes(b"\x89PNG this is not really a png")
    it = ImageDataGenerator().flow_from_directory(
        folder, target_size=(4, 6), batch_size=9, shuffle=False
    )
    with pytest.warns(ImageDataWarning, match="c1.png") as record:
        x, y = it[0]
    assert len(record) == 1
    assert x.shape[0] == 8 and y.shape[0] == 8
    assert str(bad) in it.skipped
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second pass warns no more
        assert it[0][0].shape[0] == 8


def test_strict_mode_raises_naming_the_unreadable_file(folder):
    (folder / "dog" / "d0.png").write_bytes(b"")
    it = ImageDataGenerator().flow_from_directory(
        folder, target_size=(4, 6), batch_size=9, strict=True
    )
    with pytest.raises(FileFormatError, match="d0.png"):
        it[0]


def test_images_are_decoded_only_when_their_batch_is_asked_for(folder):
    it = ImageDataGenerator().flow_from_directory(
        folder, target_size=(4, 6), batch_size=1, shuffle=False, strict=True
    )
    (folder / "dog" / "d1.png").write_bytes(b"broken after listing")
    assert it[0][0].shape == (1, 4, 6, 3)  # batch 0 (bird) never touches the broken file
    with pytest.raises(FileFormatError, match="d1.png"):
        it[7]


def test_an_empty_folder_raises_a_clear_error(tmp_path):
    with pytest.raises(EmberValueError, match="no class subfolders .*empty"):
        ImageDataGenerator().flow_from_directory(tmp_path)


def test_images_without_class_subfolders_raise_a_clear_error(tmp_path):
    _save(tmp_path / "x.png", 0)
    with pytest.raises(EmberValueError, match="1 image file.* directly"):
        ImageDataGenerator().flow_from_directory(tmp_path)
    with pytest.raises(EmberValueError, match="no class subfolders"):
        image_dataset_from_directory(tmp_path)


def test_class_subfolders_without_images_raise_a_clear_error(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "readme.txt").write_text("no images here")
    with pytest.raises(EmberValueError, match="no image files"):
        ImageDataGenerator().flow_from_directory(tmp_path)


def test_a_missing_folder_raises_a_clear_error(tmp_path):
    with pytest.raises(EmberValueError, match="does not exist"):
        ImageDataGenerator().flow_from_directory(tmp_path / "nope")


# ---------------------------------------------------------------------------------- protocol
def test_directory_iterator_is_a_keras_style_sequence(folder):
    it = ImageDataGenerator().flow_from_directory(folder, target_size=(4, 6), batch_size=4, seed=1)
    assert len(it) == 3  # ceil(9 / 4)
    sizes = [len(b[0]) for b in it]
    assert sizes == [4, 4, 1]
    with pytest.raises(IndexError):
        it[3]


def test_on_epoch_end_reshuffles_and_the_seed_fixes_every_epoch(folder):
    def orders(seed):
        it = ImageDataGenerator().flow_from_directory(
            folder, target_size=(4, 6), class_mode="sparse", batch_size=9, seed=seed
        )
        out = []
        for _ in range(3):
            out.append(it.index_array().copy())
            it.on_epoch_end()
        return out

    a, b = orders(5), orders(5)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], a[1])
    assert all(sorted(o) == list(range(9)) for o in a)


def test_next_cycles_through_epochs_like_keras(folder):
    it = ImageDataGenerator().flow_from_directory(folder, target_size=(4, 6), batch_size=4)
    sizes = [len(next(it)[0]) for _ in range(4)]
    assert sizes == [4, 4, 1, 4]


# ---------------------------------------------------------------------------------- flow
def test_flow_batches_arrays_in_order_without_shuffle(rng):
    x = rng.random((10, 4, 4, 1))
    y = np.arange(10)
    it = ImageDataGenerator(rescale=2.0).flow(x, y, batch_size=4, shuffle=False)
    bx, by = it[1]
    np.testing.assert_allclose(bx, (x[4:8] * 2).astype(np.float32))
    np.testing.assert_array_equal(by, y[4:8])
    assert len(it) == 3


def test_flow_validation_subset_is_the_first_part_of_the_arrays(rng):
    x, y = rng.random((10, 2, 2, 1)), np.tile([0, 1], 5)
    gen = ImageDataGenerator(validation_split=0.3)
    val = gen.flow(x, y, batch_size=10, shuffle=False, subset="validation")
    train = gen.flow(x, y, batch_size=10, shuffle=False, subset="training")
    np.testing.assert_array_equal(val[0][1], y[:3])
    np.testing.assert_array_equal(train[0][1], y[3:])
    with pytest.raises(EmberValueError, match="different classes"):
        gen.flow(x, np.repeat([0, 1], 5), subset="training")


def test_flow_with_a_seed_repeats_its_augmentations(rng):
    x = rng.random((6, 8, 8, 3)) * 255
    gen = ImageDataGenerator(rotation_range=30, zoom_range=0.2, horizontal_flip=True)
    a = gen.flow(x, batch_size=3, seed=2)[1]
    b = gen.flow(x, batch_size=3, seed=2)[1]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, gen.flow(x, batch_size=3, seed=3)[1])


def test_horizontal_flip_flips_some_images_and_keeps_others(rng):
    x = rng.random((20, 3, 5, 1))
    out = ImageDataGenerator(horizontal_flip=True).flow(x, batch_size=20, shuffle=False, seed=0)[0]
    flipped = [np.allclose(o, xi[:, ::-1]) for o, xi in zip(out, x)]
    kept = [np.allclose(o, xi) for o, xi in zip(out, x)]
    assert all(f or k for f, k in zip(flipped, kept)) and 0 < sum(flipped) < 20


def test_integer_shift_ranges_move_a_bright_pixel_by_whole_pixels():
    x = np.zeros((30, 9, 9, 1))
    x[:, 4, 4, 0] = 1.0
    gen = ImageDataGenerator(width_shift_range=3, fill_mode="constant")
    out = gen.flow(x, batch_size=30, shuffle=False, seed=0)[0]
    shifts = []
    for o in out:
        r, c = np.unravel_index(o[:, :, 0].argmax(), (9, 9))
        assert r == 4 and o[r, c, 0] == pytest.approx(1.0)
        shifts.append(c - 4)
    assert set(shifts) <= {-2, -1, 0, 1, 2} and len(set(shifts)) > 1


def test_fit_computes_featurewise_statistics_after_rescale(rng):
    x = rng.random((50, 4, 4, 3)) * 255
    gen = ImageDataGenerator(
        rescale=1 / 255, featurewise_center=True, featurewise_std_normalization=True
    )
    gen.fit(x)
    scaled = x / 255
    np.testing.assert_allclose(gen.mean.ravel(), scaled.mean(axis=(0, 1, 2)), rtol=1e-5)
    np.testing.assert_allclose(gen.std.ravel(), scaled.std(axis=(0, 1, 2)), rtol=1e-4)
    out = gen.flow(x, batch_size=50, shuffle=False)[0]
    np.testing.assert_allclose(out.mean(axis=(0, 1, 2)), 0.0, atol=1e-4)
    np.testing.assert_allclose(out.std(axis=(0, 1, 2)), 1.0, rtol=1e-3)


def test_samplewise_normalization_centres_each_image(rng):
    x = rng.random((3, 4, 4, 2)) * 10
    out = ImageDataGenerator(
        samplewise_center=True, samplewise_std_normalization=True
    ).standardize(x)
    np.testing.assert_allclose(out.mean(axis=(1, 2, 3)), 0.0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=(1, 2, 3)), 1.0, rtol=1e-4)


def test_flow_rejects_non_image_arrays():
    with pytest.raises(ShapeError, match=r"\(N, H, W, C\)"):
        ImageDataGenerator().flow(np.zeros((4, 5)))


def test_generator_rejects_bad_settings():
    with pytest.raises(EmberValueError, match="fill_mode"):
        ImageDataGenerator(fill_mode="smear")
    with pytest.raises(EmberValueError, match="validation_split"):
        ImageDataGenerator(validation_split=1.5)
    with pytest.raises(EmberValueError, match="brightness_range"):
        ImageDataGenerator(brightness_range=0.2)


# ---------------------------------------------------------------------------------- dataset API
def test_image_dataset_without_shuffle_lists_files_class_by_class(folder):
    ds = image_dataset_from_directory(folder, image_size=(4, 6), shuffle=False, batch_size=4)
    assert ds.class_names == ["bird", "cat", "dog"]
    x, y = next(iter(ds))
    assert x.shape == (4, 4, 6, 3) and x.dtype == np.float32
    assert y.dtype == np.int32
    np.testing.assert_array_equal(y, [0, 1, 1, 1])
    assert len(ds) == 3


def test_image_dataset_shuffles_and_splits_like_keras(folder):
    files = sorted(
        [os.path.join(folder, "bird", "b0.bmp")]
        + [os.path.join(folder, "cat", f"c{i}.png") for i in range(4)]
        + [os.path.join(folder, "dog", f) for f in ("a_first.jpg", "d0.png", "d1.png")]
        + [os.path.join(folder, "dog", "nested", "deep.gif")]
    )
    keras_order = list(files)
    np.random.RandomState(42).shuffle(keras_order)  # Keras: global shuffle, then split
    n_val = int(0.3 * len(files))
    train, val = image_dataset_from_directory(
        folder, image_size=(4, 6), validation_split=0.3, subset="both", seed=42
    )
    assert train.file_paths == keras_order[:-n_val]
    assert val.file_paths == keras_order[-n_val:]


def test_image_dataset_label_modes(folder):
    cat = image_dataset_from_directory(
        folder, image_size=(4, 6), label_mode="categorical", shuffle=False, batch_size=9
    )
    _, y = next(iter(cat))
    np.testing.assert_array_equal(y, np.eye(3, dtype=np.float32)[[0, 1, 1, 1, 1, 2, 2, 2, 2]])
    binary = image_dataset_from_directory(
        folder,
        image_size=(4, 6),
        label_mode="binary",
        class_names=["cat", "dog"],
        shuffle=False,
        batch_size=8,
    )
    _, yb = next(iter(binary))
    assert yb.shape == (8, 1) and yb.dtype == np.float32
    images_only = image_dataset_from_directory(
        folder, image_size=(4, 6), label_mode=None, batch_size=2
    )
    assert isinstance(next(iter(images_only)), np.ndarray)


def test_image_dataset_resizes_with_bilinear_half_pixel_rule(tmp_path):
    arr = np.zeros((2, 4, 3), np.uint8)
    arr[:, 2:] = 200  # left half dark, right half bright
    os.makedirs(tmp_path / "a")
    Image.fromarray(arr).save(tmp_path / "a" / "x.png")
    x, _ = next(iter(image_dataset_from_directory(tmp_path, image_size=(2, 2), shuffle=False)))
    np.testing.assert_allclose(x[0, :, :, 0], [[0, 200], [0, 200]])


def test_image_dataset_needs_a_seed_to_split_shuffled_files(folder):
    with pytest.raises(EmberValueError, match="seed"):
        image_dataset_from_directory(folder, validation_split=0.2, subset="training")
    with pytest.raises(EmberValueError, match="subset"):
        image_dataset_from_directory(folder, validation_split=0.2, seed=1)


# ---------------------------------------------------------------------------------- fit
def test_model_fit_consumes_a_directory_iterator_and_ends_its_epochs(folder):
    import ember as em
    from ember import layers

    it = ImageDataGenerator(rescale=1 / 255, horizontal_flip=True).flow_from_directory(
        folder, target_size=(4, 6), batch_size=4, seed=0
    )
    model = em.Sequential(
        [layers.Input((4, 6, 3)), layers.Flatten(), layers.Dense(3, activation="softmax")]
    )
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    history = model.fit(it, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2 and np.isfinite(history.history["loss"]).all()
    assert it.epoch == 2  # fit called on_epoch_end after each pass (a reshuffle)
