"""ops/conv.py's compiled path (Winograd F(2x2, 3x3) with the Numba transforms of
ops/kernels/conv.py) against the NumPy reference path: forward, input, kernel and bias gradients
in float32 over paddings, odd sizes, channel counts, bias / no bias, the fused ReLU and inputs
with and without a gradient; gradcheck in float64; when it is chosen; errors."""

import numpy as np
import pytest

pytest.importorskip("numba", reason="numba (optional accelerator) is not installed")

import ember as em  # noqa: E402
from ember.errors import EmberValueError  # noqa: E402
from ember.ops import _accel  # noqa: E402
from ember.ops import conv as conv_module  # noqa: E402
from ember.ops import workers as workers_module  # noqa: E402
from ember.ops.conv import Conv2D  # noqa: E402


@pytest.fixture(autouse=True)
def kernels_on():
    """The compiled path, whatever EMBER_ACCEL says (the reference runs under enabled(False))."""
    with _accel.enabled(True):
        yield


def run(x, w, b, g, *, needs_x=True, **kwargs):
    """(y, dx, dw, db) of one Conv2D forward + backward."""
    ex = em.tensor(x, requires_grad=needs_x)
    ew = em.tensor(w, requires_grad=True)
    eb = None if b is None else em.tensor(b, requires_grad=True)
    args = (ex, ew) if b is None else (ex, ew, eb)
    y = Conv2D.apply(*args, **kwargs)
    y.backward(g)
    grads = [ex.grad if needs_x else None, ew.grad, None if b is None else eb.grad]
    return [y.data] + [None if t is None else np.asarray(t) for t in grads]


def assert_same(ours, reference, what):
    """float32 agreement, relative to the reference's largest magnitude."""
    if reference is None:
        assert ours is None, what
        return
    assert ours.dtype == np.float32, what
    scale = float(np.abs(reference).max()) or 1.0
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=2e-6 * scale, err_msg=what)


CASES = [
    # (N, H, W, C), filters, padding, bias, fused relu, input needs a gradient
    ((2, 8, 8, 8), 8, "same", True, False, True),
    ((3, 7, 9, 9), 10, "same", True, True, True),  # odd sizes: half-empty tiles
    ((2, 5, 6, 16), 12, "valid", False, False, True),
    ((1, 3, 3, 8), 8, "valid", True, True, True),  # a single output pixel
    ((2, 11, 4, 12), 20, "same", True, True, False),
    ((4, 14, 14, 32), 64, "same", True, True, True),  # the cnn workload's second layer
    ((2, 6, 7, 3), 5, "same", True, False, True),  # few channels (explicit algorithm only)
]


@pytest.mark.parametrize("case", CASES)
def test_winograd_matches_the_numpy_path(case, rng):
    shape, o, padding, bias, relu, needs_x = case
    x = rng.standard_normal(shape).astype(np.float32)
    w = (rng.standard_normal((3, 3, shape[3], o)) / 3).astype(np.float32)
    b = rng.standard_normal(o).astype(np.float32) if bias else None
    with em.no_grad():
        y_shape = Conv2D.apply(em.tensor(x), em.tensor(w), padding=padding).shape
    g = rng.standard_normal(y_shape).astype(np.float32)
    kwargs = dict(padding=padding, relu=relu, needs_x=needs_x)
    with _accel.enabled(False):
        reference = run(x, w, b, g, algorithm="chunks", **kwargs)
    ours = run(x, w, b, g, algorithm="winograd", **kwargs)
    for name, a, r in zip(("y", "dx", "dw", "db"), ours, reference):
        assert_same(a, r, name)


def test_winograd_inference_matches_the_numpy_path(rng):
    x = rng.standard_normal((5, 9, 10, 16)).astype(np.float32)
    w = (rng.standard_normal((3, 3, 16, 24)) / 4).astype(np.float32)
    b = rng.standard_normal(24).astype(np.float32)
    with em.no_grad():
        ours = em.functional.conv2d(em.tensor(x), em.tensor(w), em.tensor(b), padding="same")
        with _accel.enabled(False):
            reference = em.functional.conv2d(
                em.tensor(x), em.tensor(w), em.tensor(b), padding="same"
            )
    assert_same(np.asarray(ours.data), np.asarray(reference.data), "y")


def test_winograd_over_many_chunks_matches_one_chunk(monkeypatch, rng):
    x = rng.standard_normal((7, 6, 6, 8)).astype(np.float32)
    w = rng.standard_normal((3, 3, 8, 8)).astype(np.float32)
    b = rng.standard_normal(8).astype(np.float32)
    g = rng.standard_normal((7, 6, 6, 8)).astype(np.float32)
    one = run(x, w, b, g, padding="same", algorithm="winograd", relu=True)
    monkeypatch.setattr(conv_module, "_CHUNK_BYTES", 1)  # one image per chunk, 4 dW groups
    many = run(x, w, b, g, padding="same", algorithm="winograd", relu=True)
    for name, a, r in zip(("y", "dx", "dw", "db"), many, one):
        assert_same(a, r, name)


def test_winograd_gives_the_same_bits_on_one_or_two_threads(monkeypatch, rng):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    monkeypatch.setattr(conv_module, "_CHUNK_BYTES", 1)
    monkeypatch.setattr(workers_module, "OPENBLAS_SPINNING", [0.0])  # run on the workers
    x = rng.standard_normal((6, 8, 8, 8)).astype(np.float32)
    w = rng.standard_normal((3, 3, 8, 8)).astype(np.float32)
    g = rng.standard_normal((6, 8, 8, 8)).astype(np.float32)
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        two = run(x, w, None, g, padding="same", algorithm="winograd")
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        one = run(x, w, None, g, padding="same", algorithm="winograd")
    for a, b in zip(one, two):
        assert (a is None and b is None) or np.array_equal(a, b)


@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("relu", [False, True])
def test_winograd_gradcheck(padding, relu, float64, rng):
    x = em.tensor(rng.standard_normal((2, 5, 6, 3)), requires_grad=True)
    w = em.tensor(rng.standard_normal((3, 3, 3, 2)) / 3, requires_grad=True)
    b = em.tensor(rng.standard_normal(2), requires_grad=True)
    assert em.gradcheck(
        lambda x, w, b: Conv2D.apply(
            x, w, b, padding=padding, algorithm="winograd", dx_algorithm="winograd", relu=relu
        ),
        (x, w, b),
    )


def test_float32_3x3_stride_1_takes_winograd_when_the_kernels_are_on(rng):
    x = em.tensor(rng.standard_normal((2, 6, 6, 8)).astype(np.float32), requires_grad=True)
    w = em.tensor(rng.standard_normal((3, 3, 8, 8)).astype(np.float32), requires_grad=True)
    assert Conv2D.apply(x, w, padding="same")._ctx.algo == "winograd"
    with _accel.enabled(False):
        assert Conv2D.apply(x, w, padding="same")._ctx.algo == "chunks"
    # float64 (gradcheck) and strided convolutions stay on the reference path
    x64 = em.tensor(rng.standard_normal((2, 6, 6, 8)), requires_grad=True, dtype="float64")
    w64 = em.tensor(rng.standard_normal((3, 3, 8, 8)), requires_grad=True, dtype="float64")
    assert Conv2D.apply(x64, w64, padding="same")._ctx.algo == "chunks"
    assert Conv2D.apply(x, w, strides=(2, 2), padding="same")._ctx.algo == "chunks"


def test_winograd_rejects_shapes_it_does_not_fit(rng):
    x = rng.standard_normal((1, 8, 8, 8)).astype(np.float32)
    w3 = rng.standard_normal((3, 3, 8, 8)).astype(np.float32)
    w5 = rng.standard_normal((5, 5, 8, 8)).astype(np.float32)
    with pytest.raises(EmberValueError, match="algorithm='winograd' does not fit"):
        Conv2D.apply(x, w3, strides=(2, 2), algorithm="winograd")
    with pytest.raises(EmberValueError, match="algorithm='winograd' does not fit"):
        Conv2D.apply(x, w5, algorithm="winograd")
    with pytest.raises(EmberValueError, match="dx_algorithm='winograd' does not fit"):
        Conv2D.apply(x, w3, dilation=(2, 2), algorithm="chunks", dx_algorithm="winograd")
    with _accel.enabled(False), pytest.raises(EmberValueError, match="needs the compiled"):
        Conv2D.apply(x, w3, algorithm="winograd")


@pytest.mark.parametrize("compiled", [True, False])
def test_fused_relu_without_an_input_gradient_masks_per_chunk(compiled, monkeypatch, rng):
    # the chunked path's dW and db read g * (y > 0) a chunk at a time (a one-channel input),
    # with the compiled mask-and-sum kernel or with NumPy
    monkeypatch.setattr(conv_module, "_CHUNK_BYTES", 1)
    monkeypatch.setattr(_accel, "_STATE", {"on": compiled})
    x = rng.standard_normal((3, 7, 7, 1)).astype(np.float32)
    w = rng.standard_normal((3, 3, 1, 6)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    g = rng.standard_normal((3, 7, 7, 6)).astype(np.float32)
    fused = run(x, w, b, g, padding="same", algorithm="chunks", relu=True, needs_x=False)
    with em.no_grad():
        y = np.asarray(Conv2D.apply(em.tensor(x), em.tensor(w), em.tensor(b), padding="same"))
    masked = (g * (y > 0)).astype(np.float32)
    with _accel.enabled(False):
        plain = run(x, w, b, masked, padding="same", algorithm="im2col", needs_x=False)
    assert_same(fused[0], np.maximum(plain[0], 0), "y")
    assert_same(fused[2], plain[2], "dw")
    assert_same(fused[3], plain[3], "db")


# ------------------------------------------------------------------------------ direct 3x3


@pytest.mark.parametrize("channels", [1, 2, 3])
@pytest.mark.parametrize("strides, dilation", [(1, 1), (2, 1), (1, 2), (2, 2)])
@pytest.mark.parametrize("padding", ["same", "valid"])
def test_direct_3x3_matches_the_numpy_path(channels, strides, dilation, padding, rng):
    # few-channel inputs: the forward is the compiled direct convolution, the backward the
    # NumPy chunks (so the gradients are compared too)
    x = rng.standard_normal((3, 9 + strides, 8 + dilation, channels)).astype(np.float32)
    for filters, bias, relu in ((5, True, True), (64, False, False), (32, True, False)):
        w = rng.standard_normal((3, 3, channels, filters)).astype(np.float32)
        b = rng.standard_normal(filters).astype(np.float32) if bias else None
        kwargs = dict(
            strides=(strides, strides), dilation=(dilation, dilation), padding=padding, relu=relu
        )
        with em.no_grad():
            y_shape = Conv2D.apply(em.tensor(x), em.tensor(w), **kwargs).shape
        g = rng.standard_normal(y_shape).astype(np.float32)
        with _accel.enabled(False):
            reference = run(x, w, b, g, **kwargs)
        ours = run(x, w, b, g, **kwargs)
        for name, a, r in zip(("y", "dx", "dw", "db"), ours, reference):
            assert_same(a, r, f"{name} filters={filters}")


def test_direct_3x3_inference_matches_the_numpy_path(rng):
    x = rng.standard_normal((5, 28, 28, 1)).astype(np.float32)
    w = rng.standard_normal((3, 3, 1, 32)).astype(np.float32)
    b = rng.standard_normal(32).astype(np.float32)
    with em.no_grad():
        ours = conv_module.conv2d(
            em.tensor(x), em.tensor(w), em.tensor(b), padding="same", _relu=True
        )
        with _accel.enabled(False):
            reference = conv_module.conv2d(
                em.tensor(x), em.tensor(w), em.tensor(b), padding="same", _relu=True
            )
    assert_same(np.asarray(ours.data), np.asarray(reference.data), "y")


def test_direct_3x3_applies_to_few_channel_float32_3x3_kernels_only(rng):
    x1 = np.zeros((1, 5, 5, 1), np.float32)
    assert conv_module._small_kernels(x1, np.zeros((3, 3, 1, 64), np.float32), None)
    assert conv_module._small_kernels(x1, np.zeros((3, 3, 1, 65), np.float32), None) is None
    assert conv_module._small_kernels(x1, np.zeros((5, 5, 1, 8), np.float32), None) is None
    x4 = np.zeros((1, 5, 5, 4), np.float32)
    assert conv_module._small_kernels(x4, np.zeros((3, 3, 4, 8), np.float32), None) is None
    x64 = np.zeros((1, 5, 5, 1))
    assert conv_module._small_kernels(x64, np.zeros((3, 3, 1, 8)), None) is None
