"""2-D convolution on NHWC images as one fused op with a hand-written backward.

Shapes: input x (N, H, W, C), kernel w (KH, KW, C, O), bias b (O,), output (N, OH, OW, O).
The math (cross-correlation, as every framework computes it), with P the zero-padded input:

    y[n, oh, ow, o] = b[o] + sum_{i, j, c} P[n, oh*sh + i*dh, ow*sw + j*dw, c] * w[i, j, c, o]

Written as matrices, each output pixel is one row of a "patch matrix" X (N*OH*OW, KH*KW*C)
times the kernel reshaped to W (KH*KW*C, O): Y = X W + b. So the backward is that of a matmul:
dW = X^T G, db = sum of G over rows, and dX = G W^T, whose rows are patches that are added back
to the input positions they were read from (overlapping patches add up).

Forward algorithms (``_algorithm`` picks one; each was measured at the benchmark's shapes):

- "chunks" (the default for every kernel but 1x1, any stride): the patch matrix is built a few
  images at a time (about 1 MB, half a core's L2 cache) from a strided *view* of the zero-framed
  images, and each chunk is one GEMM into its rows of y, the bias added while they are in
  cache. Chunks run on every core the BLAS may use (``_Workers``: Python threads, one BLAS
  thread each; NumPy releases the GIL in copies and GEMMs). Nothing is kept: the backward
  rebuilds the patches from x, which the graph keeps alive anyway, so a training step holds
  its activations and no patch matrix (cnn_bn: 290 -> 130 MB of peak growth), and the rebuilt
  chunks stay in cache (1.4x faster than one large patch matrix on one core). With 1-3 input
  channels each chunk's patches are built channel-major, one contiguous copy per kernel offset
  and channel (NHWC copies of 1-3 values at a time are slow).
- "im2col": the whole patch matrix, kept for dW (channel-major with 1-3 channels).
- "rows" (stride 1): the padded batch is flattened to rows of pixels (one row per pixel, C
  values each). Shifting a pixel by (i, j) in the image is then shifting its row index by
  i*dh*Wp + j*dw, so the patches of one kernel row are a view with overlapping rows; copying it
  gives a (rows, KW*C) matrix KH times smaller than the full patch matrix, and the output is a
  sum of KH GEMMs on row-shifted slices of it. Positions that fall in the padding are computed
  and dropped. dW is KH GEMMs on the same slices.
- "1x1": a 1x1 kernel is a plain GEMM over the pixels (every s-th pixel with strides).
- "winograd" (3x3, stride 1, no dilation; needs the optional Numba kernels of
  ``ember.ops.kernels.conv``, and is the default there for float32 with 8+ input channels and
  filters): Winograd's F(2x2, 3x3), 2.25x fewer multiply-adds than the patch GEMM. A chunk of
  images at a time: input transform (compiled), 16 GEMMs (tiles, C) x (C, O) in BLAS, output
  transform with the bias and a fused ReLU (compiled). dW by the same identity read the other
  way (16 GEMMs V^T (A g A^T) per chunk), dX as the flipped "full" convolution through the same
  path; a fused ReLU's mask is applied, and db summed, inside the gradient's transforms. About
  2x the "chunks" speed at the benchmark's widths; float32 results agree with the NumPy path to
  ~1e-6 of the largest value.
- Without a graph to record (inference), every kernel but 1x1 takes the "chunks" path (or
  "winograd" where it is the default).
- With the kernels, a 3x3 float32 forward of a 1-3 channel input (a first layer) is computed
  directly (``direct_3x3``: 9 inputs per channel in registers, vectorised over the filters)
  instead of through a K = 9C patch GEMM; its backward is the "chunks" one.

Weight gradient: "chunks" rebuilds each chunk's patches and keeps one (KH*KW*C, O) product per
chunk, summed in chunk order (the same bits on any number of threads); the others use their
kept patches.

Input-gradient algorithms (``_dx_algorithm``):

- "flip" (stride 1, the default): dX is the forward's chunked path run on the output gradient
  with the kernel flipped in both axes and transposed, padded to a "full" convolution.
- "rows" (stride 1): the same convolution through the "rows" computation on the zero-framed
  output gradient.
- "scatter" (strides): G W^T, one kernel offset at a time, added back with a strided slice add
  of a whole (N, OH, OW, C) block per offset (the loop is over KH*KW offsets, never pixels).

Temporaries live in per-thread scratch buffers: multi-MB arrays allocated fresh on every step
cost a page fault per 4 KB. For the same reason this module asks glibc to keep freed memory
(``ember.backend.keep_freed_memory``).

``conv_geometry`` gives the output size and the exact padding for both padding modes.
"""

from __future__ import annotations

import time

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ember import backend
from ember.autograd import grad_mode
from ember.autograd.function import Function
from ember.errors import EmberTypeError, EmberValueError, ShapeError
from ember.ops import _accel
from ember.ops.workers import CONV_RECENT, _scratch, _workers, matmul_rows, sum_rows

# ------------------------------------------------------------------------------ memory


backend.keep_freed_memory()  # see there: no page faults every step

# ------------------------------------------------------------------------------ geometry


def as_pair(value, name: str, where: str = "conv2d") -> tuple[int, int]:
    """An int or a pair of ints (each >= 1) as a pair; a clear error otherwise."""
    pair = (value, value) if isinstance(value, (int, np.integer)) else value
    try:
        ok = len(pair) == 2 and all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1 for v in pair
        )
    except TypeError:
        ok = False
    if not ok or isinstance(value, bool):
        raise EmberValueError(
            f"{where}: {name} must be a positive int or a pair of positive ints, "
            f"received {name}={value!r}"
        )
    return int(pair[0]), int(pair[1])


def check_padding(padding, where: str = "conv2d") -> str:
    """'valid' or 'same' (any case); a clear error otherwise."""
    if not isinstance(padding, str) or padding.lower() not in ("valid", "same"):
        raise EmberValueError(
            f"{where}: padding must be 'valid' or 'same', received padding={padding!r}"
        )
    return padding.lower()


def conv_output_length(size: int, kernel: int, stride: int, dilation: int, padding: str):
    """(output length, padding before, padding after) along one spatial axis.

    The kernel covers ``(kernel - 1) * dilation + 1`` input positions. VALID: no padding,
    ``out = floor((size - span) / stride) + 1``. SAME (TensorFlow's rule): ``out = ceil(size /
    stride)`` and the total padding ``max((out - 1) * stride + span - size, 0)`` is split with
    the smaller half before and the extra one after.
    """
    span = (kernel - 1) * dilation + 1
    if padding == "same":
        out = -(-size // stride)
        total = max((out - 1) * stride + span - size, 0)
        return out, total // 2, total - total // 2
    return (size - span) // stride + 1 if size >= span else 0, 0, 0


def conv_geometry(
    input_hw, kernel_hw, strides=1, padding="valid", dilation_rate=1, where: str = "conv2d"
):
    """Output (height, width) and the exact (top, bottom, left, right) padding of a 2-D
    convolution or pooling window; raises a ShapeError if the window does not fit."""
    kh, kw = as_pair(kernel_hw, "kernel_size", where)
    sh, sw = as_pair(strides, "strides", where)
    dh, dw = as_pair(dilation_rate, "dilation_rate", where)
    padding = check_padding(padding, where)
    h, w = (int(v) for v in input_hw)
    oh, top, bottom = conv_output_length(h, kh, sh, dh, padding)
    ow, left, right = conv_output_length(w, kw, sw, dw, padding)
    if oh <= 0 or ow <= 0:
        raise ShapeError(
            f"{where}: the input's spatial size {(h, w)} is smaller than the window it slides "
            f"({(kh - 1) * dh + 1}, {(kw - 1) * dw + 1}) (kernel {(kh, kw)}, dilation "
            f"{(dh, dw)}) with padding='valid'; use a larger input or padding='same'"
        )
    return (oh, ow), (top, bottom, left, right)


# ------------------------------------------------------------------------------ helpers


def pad_nhwc(x: np.ndarray, pads, value=0) -> np.ndarray:
    """x surrounded by ``value``: pads = (top, bottom, left, right); no copy when all are 0."""
    top, bottom, left, right = pads
    if not (top or bottom or left or right):
        return x
    n, h, w, c = x.shape
    if value == 0:
        out = np.zeros((n, h + top + bottom, w + left + right, c), dtype=x.dtype)
    else:
        out = np.full((n, h + top + bottom, w + left + right, c), value, dtype=x.dtype)
    out[:, top : top + h, left : left + w] = x
    return out


def windows(xp: np.ndarray, out_hw, window, strides, dilation=(1, 1)) -> np.ndarray:
    """Read-only view (N, OH, OW, KH, KW, C) of every window of a padded NHWC array (no copy)."""
    n, _, _, c = xp.shape
    s0, s1, s2, s3 = xp.strides
    return as_strided(
        xp,
        (n, out_hw[0], out_hw[1], window[0], window[1], c),
        (s0, s1 * strides[0], s2 * strides[1], s1 * dilation[0], s2 * dilation[1], s3),
        writeable=False,
    )


def offset_slice(offset: int, stride: int, count: int) -> slice:
    """The input positions that kernel offset ``offset`` reads for ``count`` outputs."""
    return slice(offset, offset + stride * (count - 1) + 1, stride)


def _row_conv(src, pitch: int, w, dh: int, dw: int, out, keep: bool = True):
    """Stride-1 convolution over rows of pixels: ``out[p] = sum_ij src[p + i*dh*pitch + j*dw]
    @ w[i, j]`` for every row p of ``out`` (rows, O). ``src`` (R, C) is a C-contiguous flattened
    padded batch whose images are ``pitch`` pixels wide. Returns the (rows + (KH-1)*dh*pitch,
    KW*C) partial patch matrix (one kernel row wide) it built, for the weight gradient, or None
    when not ``keep`` (then it lives in a scratch buffer)."""
    kh, kw, c, o = w.shape
    rows = out.shape[0]
    need = rows + (kh - 1) * dh * pitch
    if src.shape[0] < need + (kw - 1) * dw or not src.flags.c_contiguous:
        # as_strided does no bounds checking: never let it read past the array
        raise ShapeError(f"conv2d: {src.shape} rows cannot feed {rows} output rows")
    flat = src.reshape(-1)
    item = flat.strides[0]
    # (need, KW, C) view: pixel p's taps j*dw along the row are j*dw*C values further on
    view = as_strided(flat, (need, kw, c), (c * item, dw * c * item, item), writeable=False)
    if keep:
        cols = np.ascontiguousarray(view).reshape(need, kw * c)
    else:
        cols = _scratch("cols", (need, kw * c), src.dtype)
        np.copyto(cols.reshape(need, kw, c), view)
    wr = w.reshape(kh, kw * c, o)
    np.matmul(cols[:rows], wr[0], out=out)
    if kh > 1:
        tmp = _scratch("tmp", out.shape, out.dtype)
        for i in range(1, kh):
            shift = i * dh * pitch
            np.matmul(cols[shift : shift + rows], wr[i], out=tmp)
            out += tmp
    return cols if keep else None


def _patches_channel_major(xp, out_hw, window, strides, dilation) -> np.ndarray:
    """The (N*OH*OW, KH*KW*C) patch matrix for few channels (e.g. an RGB or grey input):
    stored transposed, (KH, KW, C, N, OH, OW), so that each kernel offset and channel is one
    copy into a contiguous block (NHWC copies of 1-3 values at a time are slow). Returned as
    the transposed (Fortran-ordered) view, which BLAS takes as it is."""
    n, _, _, c = xp.shape
    (oh, ow), (kh, kw) = out_hw, window
    xt = xp.transpose(3, 0, 1, 2)  # (C, N, Hp, Wp) view
    cols = np.empty((kh, kw, c, n, oh, ow), dtype=xp.dtype)
    for i in range(kh):
        rows = offset_slice(i * dilation[0], strides[0], oh)
        for j in range(kw):
            cols[i, j] = xt[:, :, rows, offset_slice(j * dilation[1], strides[1], ow)]
    return cols.reshape(kh * kw * c, n * oh * ow).T


_CHUNK_BYTES = 1 << 20  # one chunk's patch matrix: half a core's L2 cache (measured best)


def _images_per_chunk(n: int, out_hw, k: int, itemsize: int) -> int:
    # a one-channel input's patches (K = KH*KW) are small next to the chunk's output rows:
    # an eighth of the budget (measured, 28x28x1 -> 32: forward 0.9 -> 0.7 ms, dW 2.3 -> 1.9
    # ms on 2 cores; three channels gained nothing)
    budget = _CHUNK_BYTES // 8 if k <= 25 else _CHUNK_BYTES
    return max(1, min(n, budget // (out_hw[0] * out_hw[1] * k * itemsize)))


def _padded_chunk(x, start: int, stop: int, pads) -> np.ndarray:
    """Images start:stop of x inside a zero frame, in this thread's scratch buffer."""
    top, bottom, left, right = pads
    _, h, w, c = x.shape
    buf = _scratch("padded", (stop - start, h + top + bottom, w + left + right, c), x.dtype)
    # the buffer is shared with other shapes: write the frame every time
    if top:
        buf[:, :top] = 0
    if bottom:
        buf[:, top + h :] = 0
    if left:
        buf[:, top : top + h, :left] = 0
    if right:
        buf[:, top : top + h, left + w :] = 0
    buf[:, top : top + h, left : left + w] = x[start:stop]
    return buf


def _chunk_patches(x, start, stop, pads, out_hw, window, strides, dilation) -> np.ndarray:
    """The (images * OH * OW, KH*KW*C) patch matrix of images start:stop, in scratch. With 1-3
    channels it is built channel-major (one copy per kernel offset and channel, as
    ``_patches_channel_major``) and returned as the transposed view, which BLAS takes as is."""
    c = x.shape[3]
    xp = _padded_chunk(x, start, stop, pads) if any(pads) else x[start:stop]
    if c < 4:
        (oh, ow), (kh, kw) = out_hw, window
        xt = xp.transpose(3, 0, 1, 2)  # (C, images, Hp, Wp) view
        cols = _scratch("patches", (kh, kw, c, stop - start, oh, ow), x.dtype)
        for i in range(kh):
            rows = offset_slice(i * dilation[0], strides[0], oh)
            for j in range(kw):
                cols[i, j] = xt[:, :, rows, offset_slice(j * dilation[1], strides[1], ow)]
        return cols.reshape(kh * kw * c, -1).T
    p = _scratch("patches", (stop - start, *out_hw, *window, c), x.dtype)
    np.copyto(p, windows(xp, out_hw, window, strides, dilation))
    return p.reshape(-1, window[0] * window[1] * c)


def _conv_chunks(x, w, b, pads, out_hw, strides, dilation, relu=False) -> np.ndarray:
    """y = patches @ W (+ b) (then max(y, 0) with relu), a chunk of images at a time through
    cache-sized buffers."""
    n = x.shape[0]
    kh, kw, c, o = w.shape
    k = kh * kw * c
    dtype = np.result_type(x, w)
    x = x.astype(dtype, copy=False)
    w2 = w.reshape(k, o).astype(dtype, copy=False)
    y = np.empty((n, *out_hw, o), dtype=dtype)
    y2 = y.reshape(n, -1, o)
    per = _images_per_chunk(n, out_hw, k, dtype.itemsize)

    def work(i):
        start, stop = i * per, min(n, i * per + per)
        patches = _chunk_patches(x, start, stop, pads, out_hw, (kh, kw), strides, dilation)
        out = y2[start:stop].reshape(-1, o)
        np.matmul(patches, w2, out=out)
        if b is not None:
            out += b  # while the chunk is in cache
        if relu:
            np.maximum(out, 0, out=out)

    _workers.run(work, -(-n // per))
    return y


def _dw_chunks(x, g, w_shape, pads, strides, dilation, mask=None, sum_db=True):
    """(dW, db): dW = patches^T @ g, the patches rebuilt a chunk at a time (nothing kept from
    the forward), and db the sum of g. Each chunk's products are summed in chunk order: the
    same bits on any thread count. With ``mask``, g is read as g * (mask > 0) (a fused ReLU),
    a chunk at a time in cache (no masked copy of the whole gradient)."""
    n = x.shape[0]
    kh, kw, c, o = w_shape
    k = kh * kw * c
    out_hw = g.shape[1:3]
    per = _images_per_chunk(n, out_hw, k, g.dtype.itemsize)
    count = -(-n // per)
    parts = np.empty((count, k, o), dtype=g.dtype)
    db = np.empty((count, o), dtype=g.dtype)
    g3 = np.ascontiguousarray(g).reshape(n, -1, o)
    m3 = None if mask is None else np.ascontiguousarray(mask).reshape(n, -1, o)
    kernels = _accel.load("conv") if m3 is not None and sum_db else None

    def work(i):
        start, stop = i * per, min(n, i * per + per)
        patches = _chunk_patches(x, start, stop, pads, out_hw, (kh, kw), strides, dilation)
        gi = g3[start:stop].reshape(-1, o)
        if kernels is not None:  # mask and bias gradient in one compiled pass
            masked = _scratch("masked", gi.shape, g.dtype)
            db[i] = 0
            kernels.relu_grad_rows(gi, m3[start:stop].reshape(-1, o), masked, db[i])
            gi = masked
        elif m3 is not None:
            keep = _scratch("keep", gi.shape, np.bool_)
            np.greater(m3[start:stop].reshape(-1, o), 0, out=keep)
            gi = np.multiply(gi, keep, out=_scratch("masked", gi.shape, g.dtype))
        np.matmul(patches.T, gi, out=parts[i])
        if sum_db and kernels is None:
            db[i] = sum_rows(gi)

    _workers.run(work, count)
    gw = (parts[0] if count == 1 else parts.sum(axis=0)).reshape(w_shape)
    return gw, (db[0] if count == 1 else db.sum(axis=0)) if sum_db else None


def _kernels(x, w, strides, dilation):
    """The compiled Winograd kernels when they apply (a 3x3 float32 kernel at stride 1 without
    dilation, 8+ input channels and filters), else None."""
    kh, kw, c, o = w.shape
    if (kh, kw) != (3, 3) or strides != (1, 1) or dilation != (1, 1) or min(c, o) < 8:
        return None
    if x.dtype != np.float32 or w.dtype != np.float32:
        return None  # float64 (gradcheck) stays on the reference path
    return _accel.load("conv")


def _winograd_weights(w, dtype) -> np.ndarray:
    """U = G w G^T of a (3, 3, C, O) kernel as (16, C, O), in ``dtype`` (G's entries, 0, 1/2
    and 1, are exact in float32: sums of 9 such terms lose ~1e-7; float32 GEMMs are 1-4x
    faster here than converting to float64)."""
    from ember.ops.kernels.conv import WINOGRAD_G

    _, _, c, o = w.shape
    g = WINOGRAD_G.astype(dtype)
    # (G (G w)^T)^T over the two kernel axes; tensordot is one GEMM each (einsum: 3x slower)
    u = np.tensordot(g, np.tensordot(g, w.astype(dtype, copy=False), (1, 1)), (1, 1))
    return np.ascontiguousarray(u.reshape(16, c, o))


def _winograd_per_chunk(n: int, tiles: int, c: int, o: int, itemsize: int) -> int:
    """Images per chunk: the chunk's transformed input and products (16 x tiles x (C + O)
    values) fill about _CHUNK_BYTES."""
    return max(1, min(n, _CHUNK_BYTES // (16 * tiles * (c + o) * itemsize)))


def _winograd_buffers(tiles: int, c: int, o: int, dtype):
    """This thread's (16, tiles + 1, C) and (16, tiles + 1, O) buffers of transformed tiles
    (C-contiguous, as the kernels take them; their first ``tiles`` rows are the GEMM operands):
    one contiguous (tiles, C) matrix per transform entry (BLAS's fastest operand: 1.3-1.5x the
    dW GEMM's speed with tile-major rows), one row further apart than their size, so that the
    16 rows the transforms write per tile do not all map to the same L1 cache sets (exactly
    32 KB apart they did: 8x slower transforms)."""
    return (
        _scratch("wino_v", (16, tiles + 1, c), dtype),
        _scratch("wino_m", (16, tiles + 1, o), dtype),
    )


def _conv_winograd(k, x, w, b, top: int, left: int, out_hw, relu=False, mask=None) -> np.ndarray:
    """The stride-1 3x3 convolution by Winograd F(2x2, 3x3) (see ember.ops.kernels.conv), a
    chunk of images at a time on the workers: input transform, 16 GEMMs, output transform
    (+ bias, relu) while the chunk is in cache. ``top``/``left``: the padding before; the
    padding after is implied by the output size. With ``mask``, the input is x * (mask > 0)
    (a fused ReLU's gradient), never formed."""
    x = np.ascontiguousarray(x, dtype=np.result_type(x, w))
    masked = mask is not None
    mask = np.ascontiguousarray(mask) if masked else x
    n, _, _, c = x.shape
    o = w.shape[3]
    oh, ow = out_hw
    th, tw = -(-oh // 2), -(-ow // 2)
    u = _winograd_weights(w, x.dtype)
    y = np.empty((n, oh, ow, o), dtype=x.dtype)
    bias = np.zeros(1, dtype=x.dtype) if b is None else np.ascontiguousarray(b, dtype=x.dtype)
    per = _winograd_per_chunk(n, th * tw, c, o, x.dtype.itemsize)

    def work(i):
        start, stop = i * per, min(n, i * per + per)
        tiles = (stop - start) * th * tw
        v, m = _winograd_buffers(tiles, c, o, x.dtype)
        k.winograd_input(x, mask, masked, start, stop, top, left, th, tw, v)
        np.matmul(v[:, :tiles], u, out=m[:, :tiles])  # 16 GEMMs (tiles, C) @ (C, O)
        k.winograd_output(m, start, stop, th, tw, bias, b is not None, relu, y)

    _workers.run(work, -(-n // per))
    return y


def _small_kernels(x, w, b):
    """The compiled direct 3x3 convolution when it applies (float32, 1-3 input channels, at
    most DIRECT_PITCH filters), else None."""
    kh, kw, c, o = w.shape
    if (kh, kw) != (3, 3) or c > 3 or o > 64 or x.dtype != np.float32:
        return None
    if w.dtype != np.float32 or (b is not None and b.dtype != np.float32):
        return None
    return _accel.load("conv")


def _conv_direct(k, x, w, b, pads, out_hw, strides, dilation, relu=False) -> np.ndarray:
    """A 3x3 convolution of a few-channel input computed directly (ember.ops.kernels.conv's
    direct_3x3), a few images at a time on the workers."""
    from ember.ops.kernels.conv import DIRECT_PITCH

    x = np.ascontiguousarray(x)
    n, _, _, c = x.shape
    o = w.shape[3]
    wp = np.zeros((9 * c + 1, DIRECT_PITCH), dtype=x.dtype)
    wp[: 9 * c, :o] = w.transpose(2, 0, 1, 3).reshape(9 * c, o)
    if b is not None:
        wp[9 * c, :o] = b
    wp = wp.reshape(-1)
    y = np.empty((n, *out_hw, o), dtype=x.dtype)
    # 8 chunks: enough to balance 2-4 workers; smaller ones (one image, 100 KB of output)
    # were measured slower (each chunk's framing and dispatch hold the GIL)
    per = -(-n // 8)

    def work(i):
        start, stop = i * per, min(n, i * per + per)
        xp = _padded_chunk(x, start, stop, pads) if any(pads) else x[start:stop]
        k.direct_3x3(xp, wp, o, relu, *strides, *dilation, y, start)

    _workers.run(work, -(-n // per))
    return y


_DW_GROUPS = 4  # fixed groups of chunks for dW (the same bits on any number of threads)


def _dw_winograd(k, x, g, w_shape, top: int, left: int, mask=None):
    """(dW, db): dW = G^T [sum over tiles of (A g A^T) * (B^T d B)] G, per chunk 16 GEMMs
    V[k]^T @ E[k], and db the sum of g, both summed in a fixed order (groups of chunks, each
    in chunk order: the same bits on any number of threads). With ``mask``, g is read as
    g * (mask > 0) (a fused ReLU), never formed."""
    dtype = np.result_type(x, g)
    x, g = np.ascontiguousarray(x, dtype=dtype), np.ascontiguousarray(g, dtype=dtype)
    masked = mask is not None
    mask = np.ascontiguousarray(mask) if masked else g
    n, _, _, c = x.shape
    o = w_shape[3]
    oh, ow = g.shape[1:3]
    th, tw = -(-oh // 2), -(-ow // 2)
    per = _winograd_per_chunk(n, th * tw, c, o, x.dtype.itemsize)
    count = -(-n // per)
    groups = min(count, _DW_GROUPS)
    parts = np.zeros((groups, 16, c, o), dtype=x.dtype)
    db = np.zeros((groups, o), dtype=x.dtype)

    def work(gi):
        tmp = _scratch("wino_s", (16, c, o), x.dtype)
        for i in range(gi * count // groups, (gi + 1) * count // groups):
            start, stop = i * per, min(n, i * per + per)
            tiles = (stop - start) * th * tw
            v, e = _winograd_buffers(tiles, c, o, x.dtype)
            k.winograd_input(x, x, False, start, stop, top, left, th, tw, v)
            k.winograd_grad(g, mask, masked, start, stop, th, tw, e, db[gi])
            np.matmul(v[:, :tiles].transpose(0, 2, 1), e[:, :tiles], out=tmp)
            parts[gi] += tmp

    _workers.run(work, groups)
    from ember.ops.kernels.conv import WINOGRAD_G as G

    s = parts.sum(axis=0, dtype=np.float64).reshape(4, 4, c, o)
    gw = np.tensordot(G.T, np.tensordot(G.T, s, (1, 1)), (1, 1)).astype(x.dtype)
    return gw, db.sum(axis=0)


def _algorithm(w_shape) -> str:
    """The faster forward for these shapes (measured on 2 cores at the benchmark's shapes):
    "chunks" (the patches of a few images at a time, in cache, on every core; channel-major
    with 1-3 channels: as fast as "im2col" there, without keeping its patch matrix)."""
    kh, kw = w_shape[:2]
    if kh == 1 and kw == 1:
        return "1x1"
    return "chunks"


def _dx_algorithm(w_shape, strides) -> str:
    """The input gradient: "flip" (at stride 1, the gradient convolved with the flipped kernel
    through the same chunked path as the forward: no patch-sized G W^T matrix, no scatter),
    else "scatter"."""
    kh, kw = w_shape[:2]
    if kh == 1 and kw == 1:
        return "1x1"
    if strides == (1, 1):
        return "flip"
    return "scatter"


# ------------------------------------------------------------------------------ the op


class Conv2D(Function):
    """y = X W + b with X the (N*OH*OW, KH*KW*C) patch matrix of the padded input;
    dW = X^T g, db = sum(g), dx = g W^T scattered back to the patches' positions"""

    def forward(
        self,
        x,
        w,
        b=None,
        strides=(1, 1),
        padding="valid",
        dilation=(1, 1),
        algorithm=None,
        dx_algorithm=None,
        inference=False,
        relu=False,
    ):
        _check_shapes(x, w, b)
        CONV_RECENT[0] = time.monotonic() + 1.0  # Dense products then leave the cores to us
        self.relu, self.relu_done = relu, False
        y = self._forward(x, w, b, strides, padding, dilation, algorithm, dx_algorithm, inference)
        if relu:
            if not self.relu_done:
                np.maximum(y, 0, out=y)  # y is ours (every path makes a new array)
            self.y = y  # the mask of the backward; alive anyway as the next op's input
        return y

    def _forward(self, x, w, b, strides, padding, dilation, algorithm, dx_algorithm, inference):
        n, h, wd, c = x.shape
        kh, kw, _, o = w.shape
        (oh, ow), pads = conv_geometry((h, wd), (kh, kw), strides, padding, dilation)
        top, bottom, left, right = pads
        hp, wp = h + top + bottom, wd + left + right
        algo = algorithm or _algorithm(w.shape)
        if algo not in ("chunks", "im2col", "rows", "1x1", "winograd"):
            raise EmberValueError(
                f"conv2d: algorithm must be 'chunks', 'im2col', 'rows', '1x1' or 'winograd', "
                f"received {algo!r}"
            )
        winograd_fits = (kh, kw) == (3, 3) and strides == (1, 1) and dilation == (1, 1)
        if (
            algo == "rows"
            and strides != (1, 1)
            or algo == "1x1"
            and (kh, kw) != (1, 1)
            or algo == "winograd"
            and not winograd_fits
        ):
            raise EmberValueError(f"conv2d: algorithm={algo!r} does not fit these shapes")
        # the compiled Winograd path: by default for the shapes where it was measured to win
        wanted = algorithm in (None, "winograd") or dx_algorithm == "winograd"
        kernels = _accel.load("conv") if winograd_fits and wanted else None
        if algorithm is None and algo == "chunks" and _kernels(x, w, strides, dilation):
            algo = "winograd"
        dx_algo = dx_algorithm or _dx_algorithm(w.shape, strides)
        if dx_algorithm is None and algo == "winograd":
            dx_algo = "winograd"
        if dx_algo not in ("flip", "rows", "scatter", "1x1", "winograd"):
            raise EmberValueError(
                f"conv2d: dx_algorithm must be 'flip', 'rows', 'scatter', '1x1' or 'winograd', "
                f"received {dx_algo!r}"
            )
        if (
            dx_algo in ("flip", "rows")
            and strides != (1, 1)
            or (dx_algo == "1x1" and (kh, kw) != (1, 1))
            or (dx_algo == "winograd" and not winograd_fits)
        ):
            raise EmberValueError(f"conv2d: dx_algorithm={dx_algo!r} does not fit these shapes")
        if kernels is None and "winograd" in (algo, dx_algo):
            raise EmberValueError(
                "conv2d: the 'winograd' algorithm needs the compiled kernels (numba installed, "
                "ember.ops._accel enabled)"
            )
        self.kernels = kernels
        self.dx_algo = dx_algo
        self.algo, self.pads, self.strides, self.dilation = algo, pads, strides, dilation
        self.x_shape, self.w, self.hp_wp = x.shape, w, (hp, wp)
        sh, sw = strides
        if algo == "winograd":
            self.x = x
            self.relu_done = self.relu
            return _conv_winograd(kernels, x, w, b, top, left, (oh, ow), self.relu)
        if algo == "chunks" or (inference and algo != "1x1"):
            # the patches of a few images at a time in a cache-sized buffer: no patch matrix
            # is allocated, and none is kept (the backward rebuilds it from x, which the graph
            # keeps alive anyway): the memory of a training step is that of its activations
            self.x = x
            self.relu_done = self.relu
            small = _small_kernels(x, w, b) if algorithm is None else None
            if small is not None:
                return _conv_direct(small, x, w, b, pads, (oh, ow), strides, dilation, self.relu)
            return _conv_chunks(x, w, b, pads, (oh, ow), strides, dilation, self.relu)
        if algo == "1x1":
            # no padding can reach a 1x1 window's output; strides pick every s-th pixel
            xs = x[:, : sh * (oh - 1) + 1 : sh, : sw * (ow - 1) + 1 : sw]
            self.cols = xs.reshape(-1, c)  # a view when the stride is 1
            y = matmul_rows(self.cols, w.reshape(c, o))
        elif algo == "im2col" and c < 4:
            self.cols = _patches_channel_major(
                pad_nhwc(x, pads), (oh, ow), (kh, kw), strides, dilation
            )
            y = matmul_rows(self.cols, w.reshape(kh * kw * c, o))
        elif algo == "im2col":
            xp = pad_nhwc(x, pads)
            # (N, OH, OW, KH, KW, C) view, then one copy into the patch matrix
            patches = windows(xp, (oh, ow), (kh, kw), strides, dilation)
            self.cols = np.ascontiguousarray(patches).reshape(n * oh * ow, kh * kw * c)
            y = matmul_rows(self.cols, w.reshape(kh * kw * c, o))
        else:  # rows
            xp = np.ascontiguousarray(pad_nhwc(x, pads))
            full = _scratch("out", (n * hp * wp, o), np.result_type(x, w))
            # output pixel (n, oh, ow) is row n*Hp*Wp + oh*Wp + ow and reads rows up to
            # max_shift further: the last max_shift rows start no kept output
            self.rows = n * hp * wp - self._max_shift()
            self.cols = _row_conv(xp.reshape(-1, c), wp, w, *dilation, full[: self.rows])
            y = full.reshape(n, hp, wp, o)[:, :oh, :ow]
            if b is None:
                return np.ascontiguousarray(y)
            return y + b  # crops and adds the bias in one pass
        y = y.reshape(n, oh, ow, o)
        if b is not None:
            y += b
        return y

    def _max_shift(self) -> int:
        kh, kw = self.w.shape[:2]
        return (kh - 1) * self.dilation[0] * self.hp_wp[1] + (kw - 1) * self.dilation[1]

    def backward(self, g):
        n, h, wd, c = self.x_shape
        kh, kw, _, o = self.w.shape
        need_x, need_w = self.needs_input_grad[0], self.needs_input_grad[1]
        need_b = len(self.needs_input_grad) > 2 and self.needs_input_grad[2]
        # the Winograd kernels read g * (y > 0) of a fused ReLU as they go, and sum db
        fused = need_w and (
            self.algo == "winograd"
            and (not need_x or self.dx_algo == "winograd")
            or self.algo == "chunks"
            and not need_x
        )
        mask = self.y if self.relu and fused else None
        if self.relu and not fused:  # the fused max(y, 0): gradient where the output is > 0
            g = g * (self.y > 0)
        g2 = g.reshape(-1, o)
        gb = sum_rows(g2) if need_b and not fused else None
        gs = None
        if (need_w and self.algo == "rows") or (need_x and self.dx_algo == "rows"):
            gs = self._framed_gradient(g)
        gw = None
        if need_w and self.algo == "winograd":
            top, _, left, _ = self.pads
            gw, db = _dw_winograd(self.kernels, self.x, g, self.w.shape, top, left, mask)
            gb = db if fused and need_b else gb
        elif need_w and self.algo == "chunks":
            args = (self.x, g, self.w.shape, self.pads, self.strides, self.dilation, mask, fused)
            gw, db = _dw_chunks(*args)
            gb = db if fused and need_b else gb
        elif need_w and self.algo == "rows":
            gw = self._dw_rows(gs)
        elif need_w:
            gw = matmul_rows(self.cols.T, g2).reshape(self.w.shape)
        gx = None
        if need_x and self.dx_algo == "winograd":
            # the input gradient is the "full" convolution of g with the flipped kernel
            top, _, left, _ = self.pads
            wf = self.w[::-1, ::-1].transpose(0, 1, 3, 2)
            gx = _conv_winograd(self.kernels, g, wf, None, 2 - top, 2 - left, (h, wd), mask=mask)
        elif need_x and self.dx_algo == "flip":
            gx = self._dx_flip(g)
        elif need_x and self.dx_algo == "rows":
            gx = self._dx_rows(gs)
        elif need_x and self.dx_algo == "scatter":
            gx = self._dx_scatter(g2, g.shape[1:3])
        elif need_x:  # 1x1
            gx = matmul_rows(g2, self.w.reshape(c, o).T)
            if self.strides == (1, 1):
                gx = gx.reshape(self.x_shape)
            else:  # the skipped pixels get no gradient
                oh, ow = g.shape[1:3]
                full = np.zeros(self.x_shape, dtype=g.dtype)
                sel = (slice(None), offset_slice(0, self.strides[0], oh))
                full[(*sel, offset_slice(0, self.strides[1], ow))] = gx.reshape(n, oh, ow, c)
                gx = full
        return gx, gw, gb

    def _framed_gradient(self, g):
        """The gradient laid out on the padded grid's rows (zero where no output was kept),
        after a frame of max_shift zero rows: the flipped convolution of _dx_rows then never
        reads before the first row. (max_shift + N*Hp*Wp, O)"""
        n = self.x_shape[0]
        hp, wp = self.hp_wp
        o = self.w.shape[3]
        oh, ow = g.shape[1:3]
        shift = self._max_shift()
        gs = _scratch("grad", (shift + n * hp * wp, o), g.dtype)
        grid = gs[shift:].reshape(n, hp, wp, o)
        # zeros everywhere but the kept outputs, which g overwrites
        gs[:shift] = 0
        grid[:, oh:] = 0
        grid[:, :oh, ow:] = 0
        grid[:, :oh, :ow] = g
        return gs

    def _dw_rows(self, gs):
        """dW[i] = (partial patches shifted by kernel row i)^T @ g, one GEMM per kernel row."""
        kh, kw, c, o = self.w.shape
        shift, pitch = self._max_shift(), self.dilation[0] * self.hp_wp[1]
        gq = gs[shift : shift + self.rows]
        gw = np.empty((kh, kw * c, o), dtype=gs.dtype)
        for i in range(kh):
            np.matmul(self.cols[i * pitch : i * pitch + self.rows].T, gq, out=gw[i])
        return gw.reshape(kh, kw, c, o)

    def _dx_flip(self, g):
        """dx = the stride-1 convolution of g with the kernel flipped in both axes and
        transposed to (KH, KW, O, C), padded so that it is "full": a padding p before becomes
        (KH-1)*dh - p. It runs through the forward's chunked path."""
        kh, kw = self.w.shape[:2]
        (dh, dw), (top, bottom, left, right) = self.dilation, self.pads
        full = ((kh - 1) * dh - top, (kh - 1) * dh - bottom, (kw - 1) * dw - left,
                (kw - 1) * dw - right)  # fmt: skip
        wf = np.ascontiguousarray(self.w[::-1, ::-1].transpose(0, 1, 3, 2))
        return _conv_chunks(g, wf, None, full, self.x_shape[1:3], (1, 1), self.dilation)

    def _dx_rows(self, gs):
        """dxp[p] = sum_ij g[p - shift_ij] w[i, j]^T: a stride-1 convolution of the framed
        gradient with the kernel flipped in both axes and transposed to (KH, KW, O, C)."""
        n, h, wd, c = self.x_shape
        hp, wp = self.hp_wp
        wf = np.ascontiguousarray(self.w[::-1, ::-1].transpose(0, 1, 3, 2))
        gxp = _scratch("out", (n * hp * wp, c), gs.dtype)
        _row_conv(gs, wp, wf, *self.dilation, gxp, keep=False)
        top, _, left, _ = self.pads
        return np.ascontiguousarray(gxp.reshape(n, hp, wp, c)[:, top : top + h, left : left + wd])

    def _dx_scatter(self, g2, out_hw):
        """dx = g W^T added back to every patch position, one kernel offset at a time."""
        n, h, wd, c = self.x_shape
        kh, kw, _, o = self.w.shape
        top, bottom, left, right = self.pads
        (sh, sw), (dh, dw) = self.strides, self.dilation
        oh, ow = out_hw
        gxp = np.zeros((n, *self.hp_wp, c), dtype=g2.dtype)
        part = np.empty((n, oh, ow, c), dtype=g2.dtype)
        for i in range(kh):
            rows = offset_slice(i * dh, sh, oh)
            for j in range(kw):
                # the patch entries of offset (i, j) for every output pixel: (N*OH*OW, C)
                np.matmul(g2, self.w[i, j].T, out=part.reshape(-1, c))
                gxp[:, rows, offset_slice(j * dw, sw, ow)] += part
        return gxp[:, top : top + h, left : left + wd] if (top or bottom or left or right) else gxp


def _check_shapes(x, w, b) -> None:
    if np.ndim(x) != 4:
        raise ShapeError(
            f"conv2d: expected a 4-D input (batch, height, width, channels), received an input "
            f"of shape {np.shape(x)}"
        )
    if np.ndim(w) != 4:
        raise ShapeError(
            f"conv2d: expected a 4-D kernel (kernel_h, kernel_w, in_channels, filters), "
            f"received a kernel of shape {np.shape(w)}"
        )
    if x.shape[3] != w.shape[2]:
        raise ShapeError(
            f"conv2d: the input has {x.shape[3]} channels but the kernel expects {w.shape[2]} "
            f"(input shape {x.shape}, kernel shape {w.shape})"
        )
    if b is not None and np.shape(b) != (w.shape[3],):
        raise ShapeError(
            f"conv2d: expected a bias of shape ({w.shape[3]},), received {np.shape(b)}"
        )


def conv2d(x, w, b=None, strides=1, padding="valid", dilation_rate=1, *, _relu=False):
    """2-D convolution of NHWC ``x`` with a (KH, KW, C, O) kernel ``w`` (and bias ``b``).

    ``strides`` and ``dilation_rate`` are ints or (height, width) pairs; ``padding`` is "valid"
    or "same" (TensorFlow's rule: the odd extra padding goes after). ``_relu`` (for the Conv2D
    layer) fuses max(y, 0) into the op: applied while each chunk is in cache, and no separate
    pre-activation output is kept.
    """
    strides = as_pair(strides, "strides")
    dilation = as_pair(dilation_rate, "dilation_rate")
    padding = check_padding(padding)
    for name, t in (("input", x), ("kernel", w), ("bias", b)):
        if t is not None and not hasattr(t, "shape"):
            raise EmberTypeError(
                f"conv2d: the {name} must be a Tensor or an array, received {type(t).__name__}"
            )
    args = (x, w) if b is None else (x, w, b)
    # without a graph to record, the forward need not keep its patches for a backward
    inference = not (
        grad_mode.is_grad_enabled() and any(getattr(t, "requires_grad", False) for t in args)
    )
    return Conv2D.apply(
        *args, strides=strides, padding=padding, dilation=dilation, inference=inference,
        relu=_relu,
    )  # fmt: skip
