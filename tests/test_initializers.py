"""Initializers: statistics against their definitions (tolerances from sampling theory), Keras's
fans and truncation, orthogonality, reproducibility and the get/serialize round trip."""

import math

import numpy as np
import pytest
from scipy import stats

import ember as em
from ember import initializers as I
from ember.errors import EmberTypeError, EmberValueError

# variance of a unit normal truncated to [-2, 2] (independent of ember's constant)
TRUNC_VAR = stats.truncnorm(-2, 2).var()


def assert_variance(x: np.ndarray, expected: float, sigmas: float = 5.0) -> None:
    """Sample variance within `sigmas` standard errors of the expected one. The standard error
    of a sample variance is var * sqrt((kurtosis - 1) / n); kurtosis <= 3 for every
    distribution here, so sqrt(2 / n) bounds it."""
    n = x.size
    tol = sigmas * expected * math.sqrt(2.0 / n)
    assert abs(x.astype(np.float64).var() - expected) < tol, (x.var(), expected, tol)


def assert_mean_zero(x: np.ndarray, std: float, sigmas: float = 5.0) -> None:
    assert abs(x.astype(np.float64).mean()) < sigmas * std / math.sqrt(x.size)


@pytest.mark.parametrize(
    "shape, fans",
    [((), (1, 1)), ((7,), (7, 7)), ((5, 3), (5, 3)), ((3, 3, 16, 32), (144, 288))],
)
def test_compute_fans_follows_keras_for_vectors_matrices_and_conv_kernels(shape, fans):
    assert I.compute_fans(shape) == fans


def test_he_normal_has_variance_two_over_fan_in_on_a_conv_kernel():
    shape = (3, 3, 64, 64)  # fan_in = 576
    w = I.get("he_normal")(shape)
    assert_variance(w, 2.0 / 576)
    assert_mean_zero(w, math.sqrt(2.0 / 576))


def test_he_normal_is_truncated_at_two_untruncated_stddevs():
    w = I.HeNormal()((256, 128))
    stddev = math.sqrt(2.0 / 256) / math.sqrt(TRUNC_VAR)  # Keras's corrected stddev
    assert np.abs(w).max() <= 2 * stddev + 1e-7
    # a plain normal of this size would exceed 2 stddev ~1,500 times
    assert np.abs(w).max() > 1.9 * stddev


@pytest.mark.parametrize("name", ["glorot_normal", "glorot_uniform"])
def test_glorot_has_variance_two_over_fan_in_plus_fan_out(name):
    w = I.get(name)((300, 200))
    assert_variance(w, 2.0 / 500)


def test_glorot_uniform_stays_within_its_limit():
    w = I.GlorotUniform()((300, 200))
    limit = math.sqrt(6.0 / 500)
    assert np.abs(w).max() <= limit
    assert np.abs(w).max() > 0.99 * limit


@pytest.mark.parametrize(
    "name, scale",
    [("he_uniform", 2.0), ("lecun_normal", 1.0), ("lecun_uniform", 1.0)],
)
def test_fan_in_initializers_have_variance_scale_over_fan_in(name, scale):
    w = I.get(name)((400, 100))
    assert_variance(w, scale / 400)


def test_variance_scaling_untruncated_normal_and_fan_out():
    w = I.VarianceScaling(3.0, "fan_out", "untruncated_normal")((100, 250))
    assert_variance(w, 3.0 / 250)


def test_truncated_normal_is_bounded_by_two_stddev_and_has_truncated_variance():
    w = I.TruncatedNormal(mean=1.0, stddev=0.5)((200, 200))
    assert np.all(np.abs(w - 1.0) <= 1.0 + 1e-6)
    assert_variance(w - 1.0, 0.25 * TRUNC_VAR)
    assert abs(w.mean() - 1.0) < 5 * 0.5 / 200


def test_random_normal_and_uniform_match_their_parameters():
    n = I.RandomNormal(mean=2.0, stddev=3.0)((300, 300))
    assert_variance(n - 2.0, 9.0)
    assert abs(n.mean() - 2.0) < 5 * 3.0 / 300
    u = I.get("uniform")((300, 300))  # Keras's Embedding default: U(-0.05, 0.05)
    assert u.min() >= -0.05 and u.max() < 0.05
    assert_variance(u, 0.1**2 / 12)


@pytest.mark.parametrize("shape", [(64, 32), (32, 64), (3, 3, 8, 16), (20, 20)])
def test_orthogonal_gives_orthonormal_columns_or_rows(shape):
    w = I.Orthogonal(gain=1.0)(shape, dtype="float64")
    m = w.reshape(-1, shape[-1])
    if m.shape[0] >= m.shape[1]:
        np.testing.assert_allclose(m.T @ m, np.eye(m.shape[1]), atol=1e-12)
    else:
        np.testing.assert_allclose(m @ m.T, np.eye(m.shape[0]), atol=1e-12)


def test_orthogonal_gain_scales_the_matrix():
    w = I.get({"class_name": "Orthogonal", "config": {"gain": 2.0}})((10, 10), dtype="float64")
    np.testing.assert_allclose(w.T @ w, 4 * np.eye(10), atol=1e-12)


def test_identity_and_constants():
    np.testing.assert_array_equal(I.Identity(gain=3.0)((2, 3)), [[3, 0, 0], [0, 3, 0]])
    np.testing.assert_array_equal(I.get("ones")((2,)), [1, 1])
    np.testing.assert_array_equal(I.get("zeros")((2, 2)), np.zeros((2, 2)))
    np.testing.assert_array_equal(I.Constant(0.5)((3,)), [0.5, 0.5, 0.5])


def test_constant_accepts_a_matrix_of_the_right_shape_and_copies_it():
    m = np.arange(6.0).reshape(2, 3)
    w = I.Constant(m)((2, 3))
    np.testing.assert_array_equal(w, m)
    w[0, 0] = 99
    assert m[0, 0] == 0
    with pytest.raises(EmberValueError, match=r"\(2, 3\).*\(3, 2\)"):
        I.Constant(m)((3, 2))


def test_identity_and_orthogonal_reject_the_wrong_rank():
    with pytest.raises(EmberValueError, match="2-D"):
        I.Identity()((3, 3, 3))
    with pytest.raises(EmberValueError, match="at least 2"):
        I.Orthogonal()((5,))


def test_weights_take_floatx_unless_a_dtype_is_given(float64):
    assert I.GlorotUniform()((3, 3)).dtype == np.float64
    assert I.GlorotUniform()((3, 3), dtype="float32").dtype == np.float32
    assert I.Orthogonal()((3, 3), dtype=np.float32).dtype == np.float32


def test_float32_is_the_default_dtype_for_every_name():
    for name in I._NAMES:
        shape = (4, 4)
        assert I.get(name)(shape).dtype == np.float32, name


def test_set_seed_makes_draws_reproducible_and_successive_calls_differ():
    init = I.HeNormal()
    em.set_seed(7)
    a, b = init((5, 5)), init((5, 5))
    em.set_seed(7)
    a2 = init((5, 5))
    np.testing.assert_array_equal(a, a2)
    assert not np.array_equal(a, b)


def test_an_explicit_seed_gives_the_same_values_whatever_the_global_seed():
    em.set_seed(1)
    a = I.GlorotNormal(seed=42)((4, 4))
    em.set_seed(2)
    b = I.GlorotNormal(seed=42)((4, 4))
    np.testing.assert_array_equal(a, b)


def test_get_accepts_names_dicts_instances_classes_and_callables():
    inst = I.RandomNormal(stddev=1.0)
    assert I.get(inst) is inst
    assert isinstance(I.get("GlorotUniform"), I.GlorotUniform)
    assert isinstance(I.get("xavier_uniform"), I.GlorotUniform)
    assert isinstance(I.get(I.HeNormal), I.HeNormal)

    def fn(shape, dtype=None):
        return np.full(shape, 7.0)

    assert I.get(fn) is fn


def test_get_rejects_unknown_names_and_wrong_types():
    with pytest.raises(EmberValueError, match="he_normall"):
        I.get("he_normall")
    with pytest.raises(EmberValueError, match="Nope"):
        I.get({"class_name": "Nope", "config": {}})
    with pytest.raises(EmberTypeError, match="initializer"):
        I.get(3)
    with pytest.raises(EmberValueError, match="mode"):
        I.VarianceScaling(mode="fan_sideways")


@pytest.mark.parametrize(
    "init",
    [
        I.RandomNormal(1.0, 2.0, seed=3),
        I.RandomUniform(-1.0, 2.0),
        I.TruncatedNormal(stddev=0.2),
        I.VarianceScaling(2.0, "fan_avg", "uniform", seed=1),
        I.HeUniform(seed=5),
        I.Orthogonal(gain=0.5),
        I.Constant(0.25),
        I.Identity(2.0),
        I.Zeros(),
    ],
)
def test_serialize_round_trips_through_get(init):
    config = I.serialize(init)
    again = I.get(config)
    assert type(again) is type(init)
    assert again.get_config() == init.get_config()


def test_serialize_of_a_name_is_the_class_form():
    assert I.serialize("he_normal") == {"class_name": "HeNormal", "config": {"seed": None}}
