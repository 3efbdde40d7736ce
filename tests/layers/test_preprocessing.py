"""Preprocessing layers: Rescaling, Normalization (adapt), and the random augmentations, active
only in training. Oracles: NumPy's flips and rot90, hand-placed bright pixels, NumPy statistics,
and gradcheck."""

import numpy as np
import pytest

import ember as em
from ember import layers
from ember.data import DataLoader
from ember.errors import EmberTypeError, EmberValueError, ShapeError
from ember.layers import training_mode


def _images(rng, n=4, h=6, w=7, c=3, scale=255.0):
    return (rng.random((n, h, w, c)) * scale).astype(np.float32)


# ---------------------------------------------------------------------------------- Rescaling
def test_rescaling_multiplies_and_offsets_and_casts_uint8_to_float32():
    x = np.array([[0, 128, 255]], dtype=np.uint8)
    out = layers.Rescaling(1 / 127.5, offset=-1.0)(x)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.numpy(), [[-1.0, 128 / 127.5 - 1, 1.0]], atol=1e-6)


def test_rescaling_per_channel_scale_broadcasts_on_the_last_axis(rng):
    x = _images(rng)
    out = layers.Rescaling([1.0, 0.5, 0.25])(x).numpy()
    np.testing.assert_allclose(out, x * np.array([1.0, 0.5, 0.25], np.float32), rtol=1e-6)


def test_rescaling_passes_gradients(float64, rng):
    x = em.tensor(rng.normal(size=(2, 3)), requires_grad=True)
    assert em.gradcheck(lambda t: layers.Rescaling(0.3, offset=2.0)(t), [x])


def test_rescaling_rejects_a_string_scale():
    with pytest.raises(EmberValueError, match="scale"):
        layers.Rescaling("big")


# ---------------------------------------------------------------------------------- Normalization
def test_normalization_adapt_learns_numpy_mean_and_population_variance(rng):
    x = rng.normal(3.0, 2.0, size=(200, 5)).astype(np.float32)
    norm = layers.Normalization()
    norm.adapt(x)
    mean, var = norm.get_weights()
    np.testing.assert_allclose(mean, x.astype(np.float64).mean(0), rtol=1e-5)
    np.testing.assert_allclose(var, x.astype(np.float64).var(0), rtol=1e-5)
    out = norm(x).numpy()
    np.testing.assert_allclose(out.mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(out.std(0), 1.0, rtol=1e-4)


def test_normalization_adapt_over_a_loader_equals_adapt_over_the_array(rng):
    x = rng.normal(size=(103, 4)).astype(np.float32) * 5 + 1
    whole, streamed = layers.Normalization(), layers.Normalization()
    whole.adapt(x)
    streamed.adapt(DataLoader(x, batch_size=10))
    for a, b in zip(whole.get_weights(), streamed.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5)


def test_normalization_of_images_keeps_per_channel_statistics(rng):
    x = _images(rng, n=5)
    norm = layers.Normalization(axis=-1)
    norm.adapt(x)
    assert norm.get_weights()[0].shape == (3,)
    np.testing.assert_allclose(norm.get_weights()[0], x.mean(axis=(0, 1, 2)), rtol=1e-5)


def test_normalization_axis_none_uses_one_scalar_mean_and_variance(rng):
    x = rng.normal(size=(10, 3)).astype(np.float32)
    norm = layers.Normalization(axis=None)
    norm.adapt(x)
    np.testing.assert_allclose(norm(x).numpy(), (x - x.mean()) / x.std(), rtol=1e-4, atol=1e-5)


def test_normalization_with_given_statistics_and_invert_round_trips(rng):
    x = rng.normal(size=(6, 2)).astype(np.float32)
    fwd = layers.Normalization(mean=[1.0, -2.0], variance=[4.0, 0.25])
    inv = layers.Normalization(mean=[1.0, -2.0], variance=[4.0, 0.25], invert=True)
    np.testing.assert_allclose(fwd(x).numpy(), (x - [1.0, -2.0]) / [2.0, 0.5], rtol=1e-6)
    np.testing.assert_allclose(inv(fwd(x)).numpy(), x, rtol=1e-5, atol=1e-6)
    assert fwd.weights == []


def test_normalization_divides_by_at_least_epsilon_for_a_constant_feature():
    norm = layers.Normalization()
    norm.adapt(np.array([[1.0, 5.0], [3.0, 5.0]], np.float32))
    out = norm(np.array([[2.0, 5.0]], np.float32)).numpy()
    np.testing.assert_allclose(out, [[0.0, 0.0]], atol=1e-6)


def test_normalization_rejects_a_changed_feature_count_after_adapt(rng):
    norm = layers.Normalization()
    norm.adapt(rng.normal(size=(10, 3)))
    with pytest.raises(ShapeError, match=norm.name):
        norm(rng.normal(size=(2, 4)).astype(np.float32))


def test_normalization_config_round_trip_keeps_given_statistics():
    norm = layers.Normalization(mean=[1.0], variance=[4.0], invert=True)
    clone = layers.Normalization.from_config(norm.get_config())
    x = np.array([[2.0]], np.float32)
    np.testing.assert_allclose(clone(x).numpy(), [[5.0]])


def test_normalization_passes_gradients(float64, rng):
    norm = layers.Normalization()
    norm.adapt(rng.normal(size=(20, 3)) * 3)
    x = em.tensor(rng.normal(size=(2, 3)), requires_grad=True)
    assert em.gradcheck(lambda t: norm(t), [x])


def test_normalization_requires_mean_and_variance_together():
    with pytest.raises(EmberValueError, match="both"):
        layers.Normalization(mean=[0.0])


# ---------------------------------------------------------------------------------- mode
RANDOM_LAYERS = [
    lambda: layers.RandomFlip(seed=1),
    lambda: layers.RandomRotation(0.2, seed=1),
    lambda: layers.RandomZoom(0.3, seed=1),
    lambda: layers.RandomTranslation(0.2, 0.3, seed=1),
    lambda: layers.RandomBrightness(0.3, seed=1),
    lambda: layers.RandomContrast(0.5, seed=1),
]


@pytest.mark.parametrize("make", RANDOM_LAYERS)
def test_random_layers_are_the_identity_at_inference(make, rng):
    x = _images(rng)
    np.testing.assert_array_equal(make()(x).numpy(), x)
    np.testing.assert_array_equal(make()(x, training=False).numpy(), x)


@pytest.mark.parametrize("make", RANDOM_LAYERS)
def test_random_layers_change_images_in_training_mode(make, rng):
    x = _images(rng, n=8)
    with training_mode(True):
        out = make()(x).numpy()
    assert out.shape == x.shape and out.dtype == np.float32
    assert not np.allclose(out, x)


@pytest.mark.parametrize("make", RANDOM_LAYERS + [lambda: layers.RandomCrop(4, 5, seed=1)])
def test_random_layers_with_the_same_seed_give_the_same_output(make, rng):
    x = _images(rng, n=8)
    a, b = make(), make()
    first = a(x, training=True).numpy()
    np.testing.assert_array_equal(first, b(x, training=True).numpy())
    # the layer's own generator moves on: the next call differs
    assert not np.array_equal(first, a(x, training=True).numpy())


def test_random_layers_without_seed_draw_from_ember_rng(rng):
    x = _images(rng, n=8)
    em.set_seed(5)
    a = layers.RandomRotation(0.3)(x, training=True).numpy()
    em.set_seed(5)
    b = layers.RandomRotation(0.3)(x, training=True).numpy()
    np.testing.assert_array_equal(a, b)


def test_random_layers_accept_one_unbatched_image(rng):
    x = _images(rng, n=1)[0]
    assert layers.RandomRotation(0.2, seed=0)(x, training=True).shape == x.shape
    assert layers.RandomCrop(3, 4, seed=0)(x, training=True).shape == (3, 4, 3)


# ---------------------------------------------------------------------------------- geometry
def test_random_flip_horizontal_mirrors_columns_of_the_flipped_images(rng):
    x = _images(rng, n=16)
    out = layers.RandomFlip("horizontal", seed=0)(x, training=True).numpy()
    flipped = [np.array_equal(o, xi[:, ::-1]) for o, xi in zip(out, x)]
    kept = [np.array_equal(o, xi) for o, xi in zip(out, x)]
    assert all(f or k for f, k in zip(flipped, kept))
    assert 0 < sum(flipped) < 16  # each image decided on its own


def test_random_flip_vertical_mirrors_rows(rng):
    x = _images(rng, n=16)
    out = layers.RandomFlip("vertical", seed=0)(x, training=True).numpy()
    assert all(np.array_equal(o, xi) or np.array_equal(o, xi[::-1]) for o, xi in zip(out, x))


def test_random_rotation_by_a_quarter_turn_matches_rot90_on_a_square_image(rng):
    x = _images(rng, n=3, h=5, w=5)
    out = layers.RandomRotation((0.25, 0.25), fill_mode="constant", seed=0)(x, training=True)
    np.testing.assert_allclose(out.numpy(), np.rot90(x, 1, axes=(1, 2)), atol=1e-4)
    back = layers.RandomRotation((-0.25, -0.25), seed=0)(x, training=True)
    np.testing.assert_allclose(back.numpy(), np.rot90(x, -1, axes=(1, 2)), atol=1e-4)


def test_random_translation_moves_a_bright_pixel_by_the_drawn_shift():
    x = np.zeros((1, 8, 8, 1), np.float32)
    x[0, 2, 3, 0] = 1.0
    # height factor 0.25 of 8 rows = 2 rows down; width factor -0.125 of 8 = 1 column left
    layer = layers.RandomTranslation((0.25, 0.25), (-0.125, -0.125), fill_mode="constant")
    out = layer(x, training=True).numpy()
    assert out[0, 4, 2, 0] == pytest.approx(1.0)
    assert out.sum() == pytest.approx(1.0)


def test_random_zoom_out_pulls_a_bright_pixel_towards_the_centre():
    x = np.zeros((1, 9, 9, 1), np.float32)
    x[0, 2, 6, 0] = 1.0  # offset (-2, +2) from the centre (4, 4)
    out = layers.RandomZoom((1.0, 1.0), fill_mode="constant")(x, training=True).numpy()
    # sampling twice the area: the offset halves
    assert out[0, 3, 5, 0] == pytest.approx(1.0)
    assert out.sum() == pytest.approx(1.0)


def test_random_zoom_in_pushes_a_bright_pixel_away_from_the_centre():
    x = np.zeros((1, 9, 9, 1), np.float32)
    x[0, 2, 6, 0] = 1.0
    out = layers.RandomZoom((-0.5, -0.5), fill_mode="constant")(x, training=True).numpy()
    assert np.unravel_index(out[0, :, :, 0].argmax(), (9, 9)) == (0, 8)
    assert out[0, 0, 8, 0] == pytest.approx(1.0)


def test_random_zoom_width_factor_zooms_the_axes_independently():
    x = np.zeros((1, 9, 9, 1), np.float32)
    x[0, 2, 6, 0] = 1.0
    layer = layers.RandomZoom((1.0, 1.0), width_factor=(0.0, 0.0), fill_mode="constant")
    out = layer(x, training=True).numpy()
    assert out[0, 3, 6, 0] == pytest.approx(1.0)  # rows halve their offset, columns stay


def test_random_crop_cuts_windows_of_the_input_at_their_own_places(rng):
    x = _images(rng, n=10, h=8, w=9)
    out = layers.RandomCrop(5, 4, seed=3)(x, training=True).numpy()
    assert out.shape == (10, 5, 4, 3)
    corners = set()
    for o, xi in zip(out, x):
        found = [
            (t, l)
            for t in range(4)
            for l in range(6)
            if np.array_equal(xi[t : t + 5, l : l + 4], o)
        ]
        assert found
        corners.add(found[0])
    assert len(corners) > 1


def test_random_crop_at_inference_center_crops_to_the_aspect_ratio_and_resizes(rng):
    x = _images(rng, n=2, h=6, w=10)
    out = layers.RandomCrop(3, 3)(x).numpy()
    # largest centred square: columns 2..7; resized 6 -> 3 by averaging pixel pairs
    window = x[:, :, 2:8]
    expected = window.reshape(2, 3, 2, 3, 2, 3).mean(axis=(2, 4))
    np.testing.assert_allclose(out, expected, rtol=1e-5)


def test_random_crop_is_the_identity_at_inference_when_sizes_match(rng):
    x = _images(rng, h=4, w=5)
    np.testing.assert_array_equal(layers.RandomCrop(4, 5)(x).numpy(), x)


# ---------------------------------------------------------------------------------- intensity
def test_random_brightness_adds_one_offset_per_image_within_the_factor(rng):
    x = _images(rng, n=10, scale=100.0) + 50.0  # in [50, 150]: no clipping at 0.2 * 255 = 51
    out = layers.RandomBrightness(0.2, seed=0)(x, training=True).numpy()
    delta = out - x
    per_image = delta.reshape(10, -1)
    np.testing.assert_allclose(
        per_image, np.repeat(per_image[:, :1], per_image.shape[1], 1), atol=1e-4
    )
    assert np.all(np.abs(per_image[:, 0]) <= 0.2 * 255 + 1e-3)
    assert len(np.unique(np.round(per_image[:, 0], 3))) > 1


def test_random_brightness_clips_to_the_value_range(rng):
    x = _images(rng, n=4, scale=1.0)
    out = layers.RandomBrightness((0.9, 0.9), value_range=(0, 1))(x, training=True).numpy()
    assert out.max() <= 1.0 and out.min() >= 0.9 * 1.0 - 1e-6


def test_random_contrast_scales_deviations_from_each_channel_mean(rng):
    x = _images(rng, n=6, scale=50.0) + 100.0  # far from the clip range at factor <= 1.5
    out = layers.RandomContrast(0.5, seed=2)(x, training=True).numpy()
    mean = x.mean(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(out.mean(axis=(1, 2), keepdims=True), mean, rtol=1e-5)
    factors = ((out - mean) / (x - mean)).reshape(6, -1)
    np.testing.assert_allclose(factors, factors[:, :1].repeat(factors.shape[1], 1), rtol=1e-3)
    assert np.all((factors[:, 0] >= 0.5 - 1e-4) & (factors[:, 0] <= 1.5 + 1e-4))


# ---------------------------------------------------------------------------------- gradients
@pytest.mark.parametrize(
    "make",
    [
        lambda: layers.RandomFlip(seed=4),
        lambda: layers.RandomRotation(0.1, fill_mode="reflect", seed=4),
        lambda: layers.RandomZoom(0.2, fill_mode="constant", fill_value=0.5, seed=4),
        lambda: layers.RandomTranslation(0.2, 0.2, fill_mode="wrap", seed=4),
        lambda: layers.RandomCrop(3, 3, seed=4),
        lambda: layers.RandomBrightness(0.1, value_range=(-100, 100), seed=4),
        lambda: layers.RandomContrast(0.3, value_range=(-100, 100), seed=4),
    ],
)
def test_random_layers_pass_gradients_in_training(make, float64, rng):
    x = em.tensor(rng.normal(size=(2, 4, 4, 2)), requires_grad=True)
    # a fresh layer per call: the same seed gives the same transform every time
    assert em.gradcheck(lambda t: make()(t, training=True), [x])


# ---------------------------------------------------------------------------------- config
@pytest.mark.parametrize(
    "layer",
    [
        layers.RandomFlip("vertical", seed=3),
        layers.RandomRotation((-0.1, 0.2), fill_mode="constant", fill_value=1.0, seed=3),
        layers.RandomZoom(0.2, width_factor=(-0.1, 0.1), seed=3),
        layers.RandomTranslation(0.1, (0.0, 0.2), interpolation="nearest", seed=3),
        layers.RandomCrop(3, 4, seed=3),
        layers.RandomBrightness(0.2, value_range=(0, 1), seed=3),
        layers.RandomContrast((0.2, 0.4), seed=3),
        layers.Rescaling(0.5, offset=1.0),
    ],
)
def test_preprocessing_config_round_trip_rebuilds_an_equal_layer(layer, rng):
    config = layer.get_config()
    config.pop("name")
    clone = type(layer).from_config(config)
    x = _images(rng, h=6, w=6)
    np.testing.assert_array_equal(layer(x, training=True).numpy(), clone(x, training=True).numpy())


# ---------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: layers.RandomFlip("diagonal"), "mode"),
        (lambda: layers.RandomRotation("big"), "factor"),
        (lambda: layers.RandomRotation((0.3, 0.1)), "lower <= upper"),
        (lambda: layers.RandomZoom(1.5), r"\[-1.0, 1.0\]"),
        (lambda: layers.RandomTranslation(0.1, 2.0), "width_factor"),
        (lambda: layers.RandomRotation(0.1, fill_mode="smear"), "fill_mode"),
        (lambda: layers.RandomBrightness(0.1, value_range=(1, 0)), "value_range"),
        (lambda: layers.RandomContrast(1.5), "lower in"),
        (lambda: layers.RandomCrop(0, 3), "height"),
    ],
)
def test_random_layers_reject_bad_configuration_naming_the_argument(make, match):
    with pytest.raises((EmberValueError, EmberTypeError), match=match):
        make()


def test_random_layers_reject_non_image_input_naming_the_layer():
    layer = layers.RandomFlip(seed=0)
    with pytest.raises(ShapeError, match=layer.name):
        layer(np.zeros((4, 5), np.float32), training=True)


def test_random_layer_seed_must_be_an_int():
    with pytest.raises(EmberTypeError, match="seed"):
        layers.RandomFlip(seed=1.5)


def test_a_model_with_preprocessing_layers_saves_and_loads_with_its_statistics(tmp_path, rng):
    x = _images(rng, n=6, h=6, w=6, scale=1.0)
    norm = layers.Normalization()
    norm.adapt(x)
    model = em.Sequential(
        [
            layers.Input((6, 6, 3)),
            layers.Rescaling(2.0),
            norm,
            layers.RandomFlip(seed=1),
            layers.RandomRotation(0.1, seed=2),
            layers.RandomCrop(4, 4, seed=3),
            layers.Flatten(),
            layers.Dense(2, activation="softmax"),
        ]
    )
    before = model.predict(x, verbose=0)
    model.save(tmp_path / "m.ember")
    loaded = em.load_model(tmp_path / "m.ember")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), before)
    np.testing.assert_array_equal(loaded.layers[1].get_weights()[0], norm.get_weights()[0])
