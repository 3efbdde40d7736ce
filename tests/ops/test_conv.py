"""ops/conv.py: geometry (output size and exact padding), the fused conv2d against a loop
transcription of its definition, gradcheck over every padding/stride/dilation combination and
every algorithm, dtypes and errors."""

import itertools
import os
import threading
import time

import numpy as np
import pytest

import ember as em
from ember.errors import EmberValueError, ShapeError
from ember.ops import conv as conv_module
from ember.ops import workers as workers_module
from ember.ops.conv import Conv2D, conv2d, conv_geometry, conv_output_length
from ember.ops.workers import sum_rows

ALGORITHMS = ["chunks", "im2col", "rows", "1x1"]  # forward; dx: "flip", "rows", "scatter", "1x1"


def reference_conv2d(x, w, b, strides, pads, dilation):
    """y[n, i, j, o] = b[o] + sum_{a, c, k} P[n, i*sh + a*dh, j*sw + c*dw, k] w[a, c, k, o],
    one output pixel at a time (the definition, with no patch matrix)."""
    top, bottom, left, right = pads
    p = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    kh, kw, _, o = w.shape
    (sh, sw), (dh, dw) = strides, dilation
    oh = (p.shape[1] - (kh - 1) * dh - 1) // sh + 1
    ow = (p.shape[2] - (kw - 1) * dw - 1) // sw + 1
    y = np.zeros((x.shape[0], oh, ow, o))
    for i in range(oh):
        for j in range(ow):
            for a in range(kh):
                for c in range(kw):
                    y[:, i, j] += p[:, i * sh + a * dh, j * sw + c * dw] @ w[a, c]
    return y if b is None else y + b


# ------------------------------------------------------------------------------ geometry


@pytest.mark.parametrize(
    "size, kernel, stride, dilation, padding, expected",
    [
        (7, 3, 1, 1, "valid", (5, 0, 0)),
        (7, 3, 2, 1, "valid", (3, 0, 0)),
        (8, 3, 2, 1, "valid", (3, 0, 0)),
        (7, 3, 1, 2, "valid", (3, 0, 0)),  # the kernel spans 5 positions
        (5, 3, 1, 1, "same", (5, 1, 1)),
        (5, 4, 1, 1, "same", (5, 1, 2)),  # odd total padding: the extra one goes after
        (8, 3, 2, 1, "same", (4, 0, 1)),  # (4-1)*2 + 3 - 8 = 1
        (7, 3, 2, 1, "same", (4, 1, 1)),  # (4-1)*2 + 3 - 7 = 2
        (7, 3, 1, 2, "same", (7, 2, 2)),
        (4, 1, 3, 1, "same", (2, 0, 0)),  # negative total padding is clamped to 0
        (2, 3, 1, 1, "valid", (0, 0, 0)),  # the window does not fit
    ],
)
def test_conv_output_length_follows_tensorflows_rule(
    size, kernel, stride, dilation, padding, expected
):
    assert conv_output_length(size, kernel, stride, dilation, padding) == expected


def test_conv_geometry_gives_exact_pads_per_side():
    assert conv_geometry((28, 28), (4, 3), 2, "same", 1) == ((14, 14), (1, 1, 0, 1))
    assert conv_geometry((28, 28), 3, 1, "valid", (2, 1)) == ((24, 26), (0, 0, 0, 0))


def test_conv_geometry_rejects_a_window_larger_than_the_input():
    with pytest.raises(ShapeError, match=r"\(2, 2\).*smaller than the window.*\(3, 3\)"):
        conv_geometry((2, 2), 3, 1, "valid", 1)


# ------------------------------------------------------------------------------ forward


@pytest.mark.parametrize(
    "kernel, strides, padding, dilation",
    [(3, 1, "valid", 1), (3, 2, "same", 1), (4, 1, "same", 1), (3, 1, "same", 2),
     (2, (2, 1), "valid", 1), (1, 2, "same", 1), (5, 1, "same", 1)],
)  # fmt: skip
def test_conv2d_matches_the_definition(kernel, strides, padding, dilation, rng):
    x = rng.standard_normal((2, 7, 8, 3))
    w = rng.standard_normal((kernel, kernel, 3, 4))
    b = rng.standard_normal(4)
    s, d = strides if isinstance(strides, tuple) else (strides,) * 2, (dilation,) * 2
    _, pads = conv_geometry(x.shape[1:3], kernel, s, padding, d)
    y = conv2d(em.tensor(x, dtype=np.float64), w, b, strides, padding, dilation)
    np.testing.assert_allclose(y.data, reference_conv2d(x, w, b, s, pads, d), rtol=1e-10)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_every_algorithm_gives_the_same_convolution(algorithm, rng):
    k = 1 if algorithm == "1x1" else 3
    x = rng.standard_normal((2, 6, 5, 4))
    w = rng.standard_normal((k, k, 4, 3))
    y = Conv2D.apply(x, w, padding="same", algorithm=algorithm)
    _, pads = conv_geometry((6, 5), k, 1, "same", 1)
    ref = reference_conv2d(x, w, None, (1, 1), pads, (1, 1))
    np.testing.assert_allclose(y.data, ref, rtol=1e-10)


def test_conv2d_keeps_float32(rng):
    x = em.tensor(rng.standard_normal((2, 6, 6, 3)).astype(np.float32), requires_grad=True)
    w = em.tensor(rng.standard_normal((3, 3, 3, 40)).astype(np.float32), requires_grad=True)
    b = em.tensor(np.zeros(40, np.float32), requires_grad=True)
    for algorithm in ALGORITHMS[:2]:
        y = Conv2D.apply(x, w, b, padding="same", algorithm=algorithm)
        assert y.dtype == np.float32
        y.sum().backward()
        assert x.grad.dtype == w.grad.dtype == b.grad.dtype == np.float32


def test_conv2d_without_input_gradient_still_gives_weight_gradients(rng):
    x = em.tensor(rng.standard_normal((2, 5, 5, 2)), dtype=np.float64)
    w = em.tensor(rng.standard_normal((3, 3, 2, 2)), requires_grad=True, dtype=np.float64)
    conv2d(x, w, padding="same").sum().backward()
    assert x.grad is None
    # d sum(y) / d w[a, c, k, o] = sum of the inputs that tap (a, c) reads
    p = np.pad(x.data, ((0, 0), (1, 1), (1, 1), (0, 0)))
    expected = np.stack(
        [
            np.stack([p[:, a : a + 5, c : c + 5].sum(axis=(0, 1, 2)) for c in range(3)])
            for a in range(3)
        ]
    )
    np.testing.assert_allclose(w.grad, np.repeat(expected[..., None], 2, axis=-1), rtol=1e-10)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("dx_algorithm", ["flip", "rows", "scatter"])
def test_conv2d_backward_accepts_a_read_only_gradient(algorithm, dx_algorithm, rng):
    k = 1 if algorithm == "1x1" else 3
    x = em.tensor(rng.standard_normal((1, 4, 4, 2)), requires_grad=True)
    w = em.tensor(rng.standard_normal((k, k, 2, 3)), requires_grad=True)
    y = Conv2D.apply(x, w, padding="same", algorithm=algorithm, dx_algorithm=dx_algorithm)
    g = np.broadcast_to(np.ones((1, 1, 1, 3), np.float32), y.shape)  # read-only view
    y.backward(g)
    assert not g.flags.writeable and np.all(g == 1)
    assert x.grad.shape == x.shape and w.grad.shape == w.shape


# ------------------------------------------------------------------------------ gradients

COMBOS = list(itertools.product(["valid", "same"], [1, 2], [1, 2]))


@pytest.mark.parametrize("padding, stride, dilation", COMBOS)
def test_conv2d_gradcheck_every_padding_stride_dilation(padding, stride, dilation, float64, rng):
    x = em.tensor(rng.standard_normal((2, 6, 5, 2)), requires_grad=True)
    w = em.tensor(rng.standard_normal((3, 2, 2, 3)), requires_grad=True)
    b = em.tensor(rng.standard_normal(3), requires_grad=True)

    def f(x, w, b):
        return Conv2D.apply(
            x, w, b, strides=(stride, stride), padding=padding, dilation=(dilation, dilation)
        )

    assert em.gradcheck(f, [x, w, b])


@pytest.mark.parametrize(
    "padding, dilation, algorithm, dx_algorithm",
    list(
        itertools.product(
            ["valid", "same"], [1, 2], ["chunks", "im2col", "rows"], ["flip", "rows", "scatter"]
        )
    ),
)
def test_conv2d_gradcheck_stride_1_algorithms(
    padding, dilation, algorithm, dx_algorithm, float64, rng
):
    x = em.tensor(rng.standard_normal((2, 6, 5, 2)), requires_grad=True)
    w = em.tensor(rng.standard_normal((2, 3, 2, 3)), requires_grad=True)
    b = em.tensor(rng.standard_normal(3), requires_grad=True)

    def f(x, w, b):
        return Conv2D.apply(
            x, w, b, padding=padding, dilation=(dilation, dilation), algorithm=algorithm,
            dx_algorithm=dx_algorithm,
        )  # fmt: skip

    assert em.gradcheck(f, [x, w, b])


@pytest.mark.parametrize("stride", [1, 2])
def test_conv2d_gradcheck_1x1_kernel(stride, float64, rng):
    x = em.tensor(rng.standard_normal((2, 5, 4, 3)), requires_grad=True)
    w = em.tensor(rng.standard_normal((1, 1, 3, 2)), requires_grad=True)
    assert em.gradcheck(lambda x, w: conv2d(x, w, strides=stride, padding="same"), [x, w])


# ------------------------------------------------------------------------------ errors


def test_conv2d_rejects_a_3d_input(rng):
    with pytest.raises(
        ShapeError, match=r"4-D input \(batch, height, width, channels\).*\(5, 5, 3\)"
    ):
        conv2d(rng.standard_normal((5, 5, 3)), rng.standard_normal((3, 3, 3, 2)))


def test_conv2d_rejects_a_channel_mismatch(rng):
    with pytest.raises(ShapeError, match="input has 3 channels but the kernel expects 4"):
        conv2d(rng.standard_normal((1, 5, 5, 3)), rng.standard_normal((3, 3, 4, 2)))


def test_conv2d_rejects_a_wrong_bias(rng):
    with pytest.raises(ShapeError, match=r"bias of shape \(2,\), received \(3,\)"):
        conv2d(rng.standard_normal((1, 5, 5, 3)), rng.standard_normal((3, 3, 3, 2)), np.ones(3))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"strides": 0}, "strides must be a positive int or a pair.*strides=0"),
        ({"strides": (1, 2, 3)}, r"strides=\(1, 2, 3\)"),
        ({"dilation_rate": -1}, "dilation_rate must be a positive int.*dilation_rate=-1"),
        ({"padding": "full"}, "padding must be 'valid' or 'same', received padding='full'"),
    ],
)
def test_conv2d_rejects_bad_arguments(kwargs, message, rng):
    with pytest.raises(EmberValueError, match=message):
        conv2d(rng.standard_normal((1, 5, 5, 1)), rng.standard_normal((3, 3, 1, 1)), **kwargs)


def test_conv2d_rejects_an_input_smaller_than_the_kernel(rng):
    with pytest.raises(ShapeError, match="smaller than the window"):
        conv2d(rng.standard_normal((1, 2, 5, 1)), rng.standard_normal((3, 3, 1, 1)))


def test_conv2d_rejects_an_algorithm_that_does_not_fit(rng):
    x, w = rng.standard_normal((1, 5, 5, 1)), rng.standard_normal((3, 3, 1, 1))
    with pytest.raises(EmberValueError, match="algorithm='rows' does not fit"):
        Conv2D.apply(x, w, strides=(2, 2), algorithm="rows")
    with pytest.raises(EmberValueError, match="algorithm must be 'chunks', 'im2col', 'rows'"):
        Conv2D.apply(x, w, algorithm="fft")
    with pytest.raises(EmberValueError, match="dx_algorithm='flip' does not fit"):
        Conv2D.apply(x, w, strides=(2, 2), dx_algorithm="flip")
    with pytest.raises(EmberValueError, match="dx_algorithm must be 'flip', 'rows'"):
        Conv2D.apply(x, w, dx_algorithm="fft")


@pytest.mark.parametrize("rows", [256, 48, 12, 7])  # each way of folding rows, and none
def test_sum_rows_matches_a_float64_column_sum(rows, rng):
    a = rng.standard_normal((rows, 5)).astype(np.float32)
    out = sum_rows(a)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, a.astype(np.float64).sum(axis=0), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "strides, padding, dilation", [(1, "same", 1), (2, "same", 1), (1, "valid", 2)]
)
def test_inference_forward_in_chunks_matches_the_definition(
    strides, padding, dilation, monkeypatch, rng
):
    monkeypatch.setattr(conv_module, "_CHUNK_BYTES", 1)  # one image per chunk
    x = rng.standard_normal((3, 7, 6, 4))
    w = rng.standard_normal((3, 3, 4, 2))
    b = rng.standard_normal(2)
    s, d = (strides, strides), (dilation, dilation)
    _, pads = conv_geometry(x.shape[1:3], 3, s, padding, d)
    with em.no_grad():
        y = conv2d(em.tensor(x, dtype=np.float64), w, b, strides, padding, dilation)
    assert not y.requires_grad
    np.testing.assert_allclose(y.data, reference_conv2d(x, w, b, s, pads, d), rtol=1e-10)


@pytest.mark.parametrize("strides, padding, dilation", [(1, "same", 1), (2, "valid", 2)])
def test_chunked_training_matches_im2col_over_many_chunks(
    strides, padding, dilation, monkeypatch, rng
):
    monkeypatch.setattr(conv_module, "_CHUNK_BYTES", 1)  # one image per chunk, 5 chunks
    x = rng.standard_normal((5, 9, 8, 4))
    w = rng.standard_normal((3, 3, 4, 6))
    b = rng.standard_normal(6)
    g = rng.standard_normal(conv2d(x, w, None, strides, padding, dilation).shape)
    grads = []
    for algorithm in ("chunks", "im2col"):
        ex, ew, eb = (em.tensor(a, requires_grad=True, dtype=np.float64) for a in (x, w, b))
        dx = "flip" if strides == 1 else "scatter"
        y = Conv2D.apply(
            ex, ew, eb, strides=(strides,) * 2, padding=padding, dilation=(dilation,) * 2,
            algorithm=algorithm, dx_algorithm=dx if algorithm == "chunks" else "scatter",
        )  # fmt: skip
        y.backward(g)
        grads.append((y.data, ex.grad, ew.grad, eb.grad))
    for new, old in zip(*grads):
        np.testing.assert_allclose(new, old, rtol=1e-10, atol=1e-12)


def test_chunked_conv_gives_the_same_bits_on_one_or_two_threads(monkeypatch, rng):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    monkeypatch.setattr(conv_module, "_CHUNK_BYTES", 1)
    monkeypatch.setattr(workers_module, "OPENBLAS_SPINNING", [0.0])  # run on the workers
    x = rng.standard_normal((6, 8, 8, 5)).astype(np.float32)
    w = rng.standard_normal((3, 3, 5, 4)).astype(np.float32)
    g = rng.standard_normal((6, 8, 8, 4)).astype(np.float32)

    def run():
        ex, ew = em.tensor(x, requires_grad=True), em.tensor(w, requires_grad=True)
        y = Conv2D.apply(ex, ew, padding="same", algorithm="chunks", dx_algorithm="flip")
        y.backward(g)
        return y.data, ex.grad, ew.grad

    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        two = run()
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        one = run()
    for a, b in zip(one, two):
        assert np.array_equal(a, b)


def test_reused_work_buffers_leave_no_stale_values(float64, rng):
    # a large call fills the scratch buffers with nonzero values; a smaller one must not see them
    def grads(shape):
        x = em.tensor(rng.standard_normal(shape), requires_grad=True)
        w = em.tensor(rng.standard_normal((3, 3, shape[3], 2)), requires_grad=True)
        y = Conv2D.apply(x, w, padding="same", algorithm="rows", dx_algorithm="rows")
        y.backward(np.ones(y.shape))
        return x, w

    grads((2, 9, 9, 3))
    x, w = grads((1, 4, 5, 3))
    p = np.pad(x.data, ((0, 0), (1, 1), (1, 1), (0, 0)))
    taps = [[p[:, a : a + 4, c : c + 5].sum(axis=(0, 1, 2)) for c in range(3)] for a in range(3)]
    np.testing.assert_allclose(w.grad, np.repeat(np.array(taps)[..., None], 2, axis=-1))
    # d sum(y) / dx at (h, w) = sum of the kernel taps whose window covers (h, w)
    ones = np.pad(np.ones((1, 4, 5, 1)), ((0, 0), (1, 1), (1, 1), (0, 0)))
    cover = np.zeros((1, 4, 5, 3))
    for a in range(3):
        for c in range(3):
            # output (i, j) reads input (i + a - 1, j + c - 1) with tap (a, c)
            hit = ones[:, 2 - a : 6 - a, 2 - c : 7 - c]
            cover += hit * w.data[a, c].sum(axis=-1)
    np.testing.assert_allclose(x.grad, cover, rtol=1e-10)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_fused_relu_matches_relu_of_the_convolution(algorithm, rng):
    k = 1 if algorithm == "1x1" else 3
    x = rng.standard_normal((3, 6, 5, 4))
    w = rng.standard_normal((k, k, 4, 5))
    b = rng.standard_normal(5)
    g = rng.standard_normal((3, 6, 5, 5))
    results = []
    for fused in (True, False):
        ex, ew, eb = (em.tensor(a, requires_grad=True, dtype=np.float64) for a in (x, w, b))
        y = Conv2D.apply(ex, ew, eb, padding="same", algorithm=algorithm, relu=fused)
        if not fused:
            y = y.relu()
        y.backward(g)
        results.append((y.data, ex.grad, ew.grad, eb.grad))
    _, pads = conv_geometry((6, 5), k, 1, "same", 1)
    np.testing.assert_allclose(
        results[0][0], np.maximum(reference_conv2d(x, w, b, (1, 1), pads, (1, 1)), 0), rtol=1e-10
    )
    for a, b_ in zip(*results):
        np.testing.assert_allclose(a, b_, rtol=1e-12, atol=1e-12)


def test_fused_relu_gradcheck(float64, rng):
    x = em.tensor(rng.standard_normal((2, 5, 5, 4)), requires_grad=True)
    w = em.tensor(rng.standard_normal((3, 3, 4, 3)), requires_grad=True)
    b = em.tensor(rng.standard_normal(3), requires_grad=True)
    assert em.gradcheck(lambda x, w, b: conv2d(x, w, b, padding="same", _relu=True), [x, w, b])


def test_chunk_runner_spreads_threads_and_restores_the_callers_cores(monkeypatch):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs a Linux machine with at least two cores to spread threads over")
    monkeypatch.setattr(workers_module, "OPENBLAS_SPINNING", [0.0])  # run on the workers
    monkeypatch.setattr(workers_module, "_others_running", lambda: 0)  # as on a quiet machine
    before = os.sched_getaffinity(0)
    seen = {}

    def work(i):
        seen.setdefault(threading.get_ident(), os.sched_getaffinity(0))
        time.sleep(0.01)  # long enough for the helper to take a chunk

    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        workers_module._workers.run(work, 8)
    assert os.sched_getaffinity(0) == before  # the caller's cores are given back
    caller = seen.pop(threading.get_ident())
    assert len(caller) == 1  # held on one core during the run
    for cores in seen.values():  # helpers, if any ran, stayed off the caller's core
        assert not (cores & caller)


def test_chunk_runner_finds_numpys_blas_among_several():
    class Lib:
        def __init__(self, path):
            self.filepath = path

    numpy_lib = Lib("/site-packages/numpy.libs/libscipy_openblas64_-1.so")
    scipy_lib = Lib("/site-packages/scipy.libs/libscipy_openblas-2.so")
    system_lib = Lib("/usr/lib/libopenblas.so.0")
    assert workers_module._numpys_blas([numpy_lib, scipy_lib]) is numpy_lib
    assert workers_module._numpys_blas([scipy_lib, numpy_lib]) is numpy_lib
    assert workers_module._numpys_blas([system_lib, scipy_lib]) is system_lib
    assert workers_module._numpys_blas([system_lib]) is system_lib
    assert workers_module._numpys_blas([Lib("/a/libopenblas.so"), Lib("/b/libmkl.so")]) is False


def test_chunk_runner_leaves_threads_free_on_a_busy_machine(monkeypatch):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs a Linux machine with at least two cores to spread threads over")
    monkeypatch.setattr(workers_module, "OPENBLAS_SPINNING", [0.0])
    before = os.sched_getaffinity(0)
    during = []

    def work(i):
        during.append(os.sched_getaffinity(0))
        time.sleep(0.01)  # long enough for the helper to take a chunk

    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        monkeypatch.setattr(workers_module, "_others_running", lambda: 0)
        workers_module._workers.run(lambda i: time.sleep(0.01), 4)  # helpers pinned once
        monkeypatch.setattr(workers_module, "_others_running", lambda: 1 << 30)
        workers_module._workers.run(work, 4)
    assert during and all(cores == before for cores in during)
