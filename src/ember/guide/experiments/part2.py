"""Experiments for part 2 of the guide (initialisation and CNNs, questions 18-41)."""

from __future__ import annotations

import tempfile
import tracemalloc
from pathlib import Path

import numpy as np

import ember as em
from ember import layers
from ember.guide.experiments import common
from ember.guide.registry import Result, experiment, new_figure, save_figure

INITS = {
    "zeros": "zeros",
    "N(0, 0.01)": em.initializers.RandomNormal(stddev=0.01),
    "Xavier (glorot_normal)": "glorot_normal",
    "He (he_normal)": "he_normal",
}


def _deep_net(activation: str, init, depth: int = 10, width: int = 256):
    """``depth`` Dense layers of ``width`` units with one initializer, and a linear 10-way head."""
    hidden = [
        layers.Dense(width, activation=activation, kernel_initializer=init) for _ in range(depth)
    ]
    return hidden, em.Sequential([*hidden, layers.Dense(10)])


def _layer_stats(activation: str, init, x, y):
    """Per hidden layer: the std of its activations and the norm of its kernel's gradient."""
    hidden, model = _deep_net(activation, init)
    out, outputs, _ = common.probe_forward(model.layers, x)
    common.classifier_loss()(y, out).backward()
    stds = [float(o.std()) for o in outputs[: len(hidden)]]
    return stds, common.kernel_grad_norms(hidden)


# ---------------------------------------------------------------------------------- Q18
@experiment(
    18,
    claim="In a 10-layer, 256-wide network, zero weights make every activation exactly 0 (all "
    "units identical); N(0, 0.01) weights shrink the activations below 1e-3 by layer 5; "
    "Xavier keeps tanh activations alive (std > 0.1 at layer 10); He keeps ReLU activations' "
    "std between half and twice layer 1's, while Xavier lets them shrink more than tenfold.",
    helpers=(_deep_net, _layer_stats, common.probe_forward),
)
def initialisation_and_activations(quick: bool, out_dir: Path) -> Result:
    rng = np.random.default_rng(18)
    x = rng.normal(size=(256 if quick else 1024, 256)).astype(np.float32)
    y = rng.integers(0, 10, len(x))
    fig, axes = new_figure(ncols=2, size=(4, 3.2))
    rows, stds = [], {}
    for ax, act in zip(axes, ("tanh", "relu")):
        for name, init in INITS.items():
            s, _ = _layer_stats(act, init, x, y)
            stds[act, name] = s
            rows.append(
                {
                    "activation": act,
                    "init": name,
                    "std layer 1": s[0],
                    "std layer 5": s[4],
                    "std layer 10": s[9],
                }
            )
            ax.semilogy(range(1, 11), np.maximum(s, 1e-12), "o-", ms=3, label=name)
        ax.set_title(f"{act}: activation std per layer", fontsize=9)
        ax.set_xlabel("layer")
        ax.set_ylim(1e-12, 3)
    axes[0].legend(fontsize=7)
    res = Result(table=rows, figures=[save_figure(fig, out_dir, "activation_std")])
    zero = max(max(stds[a, "zeros"]) for a in ("tanh", "relu"))
    res.check("zeros: every activation is exactly 0", zero == 0.0, f"max std {zero}")
    small = max(stds[a, "N(0, 0.01)"][4] for a in ("tanh", "relu"))
    res.check("N(0, 0.01): std below 1e-3 by layer 5", small < 1e-3, f"{small:.1e}")
    tanh10 = stds["tanh", "Xavier (glorot_normal)"][9]
    res.check("Xavier keeps tanh alive at layer 10", tanh10 > 0.1, f"std {tanh10:.3f}")
    he = stds["relu", "He (he_normal)"]
    res.check(
        "He keeps ReLU std within a factor of 2",
        0.5 < he[9] / he[0] < 2,
        f"layer 10 / layer 1 = {he[9] / he[0]:.2f}",
    )
    xa = stds["relu", "Xavier (glorot_normal)"]
    res.check(
        "Xavier on ReLU shrinks > 10x",
        xa[9] / xa[0] < 0.1,
        f"layer 10 / layer 1 = {xa[9] / xa[0]:.3f}",
    )
    return res


# ---------------------------------------------------------------------------------- Q19
@experiment(
    19,
    claim="Each initializer draws with the variance of its formula (Glorot 2/(fan_in+fan_out), "
    "He 2/fan_in, LeCun 1/fan_in, uniform and normal alike, within 3%) and orthogonal gives "
    "orthonormal columns; in a 10-layer ReLU net, zeros give every kernel exactly zero "
    "gradient, N(0, 0.01) gradients below 1e-8, and He gradients of similar size in every "
    "layer (within 10x).",
    helpers=(_deep_net, _layer_stats),
)
def initialisation_methods(quick: bool, out_dir: Path) -> Result:
    fan_in, fan_out = 256, 512
    formulas = {
        "glorot_normal": 2 / (fan_in + fan_out),
        "glorot_uniform": 2 / (fan_in + fan_out),
        "he_normal": 2 / fan_in,
        "he_uniform": 2 / fan_in,
        "lecun_normal": 1 / fan_in,
        "lecun_uniform": 1 / fan_in,
    }
    rows = []
    for name, var in formulas.items():
        w = em.initializers.get(name)((fan_in, fan_out), dtype=np.float32)
        rows.append(
            {
                "initializer": name,
                "formula variance": var,
                "sample variance": float(w.var()),
                "ratio": float(w.var() / var),
            }
        )
    q = em.initializers.get("orthogonal")((fan_out, fan_in), dtype=np.float64)
    ortho = float(np.abs(q.T @ q - np.eye(fan_in)).max())
    rng = np.random.default_rng(19)
    x = rng.normal(size=(256, 256)).astype(np.float32)
    y = rng.integers(0, 10, len(x))
    grads = {name: _layer_stats("relu", init, x, y)[1] for name, init in INITS.items()}
    fig, axes = new_figure(ncols=2, size=(4, 3.2))
    axes[0].bar(range(len(rows)), [r["ratio"] for r in rows])
    axes[0].axhline(1, color="k", lw=1)
    axes[0].set_xticks(
        range(len(rows)), [r["initializer"] for r in rows], rotation=45, fontsize=7, ha="right"
    )
    axes[0].set_title("sample / formula variance", fontsize=9)
    for name, g in grads.items():
        axes[1].semilogy(range(1, 11), np.maximum(g, 1e-20), "o-", ms=3, label=name)
    axes[1].set_title("ReLU net: |kernel gradient| per layer", fontsize=9)
    axes[1].set_xlabel("layer")
    axes[1].legend(fontsize=7)
    rows += [
        {
            "initializer": f"ReLU net, {k}: |grad| layer 1 .. 10",
            "sample variance": f"{g[0]:.2e} .. {g[-1]:.2e}",
        }
        for k, g in grads.items()
    ]
    res = Result(table=rows, figures=[save_figure(fig, out_dir, "initializers")])
    worst = max(abs(r["ratio"] - 1) for r in rows[: len(formulas)])
    res.check("sample variances match the formulas within 3%", worst < 0.03, f"worst {worst:.1%}")
    res.check("orthogonal: Q^T Q = I", ortho < 1e-10, f"max |Q^T Q - I| = {ortho:.1e}")
    res.check("zeros: every kernel gradient is 0", max(grads["zeros"]) == 0.0)
    res.check(
        "N(0, 0.01): gradients below 1e-8",
        max(grads["N(0, 0.01)"]) < 1e-8,
        f"max {max(grads['N(0, 0.01)']):.1e}",
    )
    he = grads["He (he_normal)"]
    res.check(
        "He: gradient norms within 10x across layers",
        max(he) / min(he) < 10,
        f"max/min = {max(he) / min(he):.1f}",
    )
    return res


# ---------------------------------------------------------------------------------- Q20
@experiment(
    20,
    claim="A small CNN is convolution + ReLU, pooling, another convolution, then a flatten and "
    "dense head: every layer's output shape and parameter count match the formulas (a k x k "
    "convolution from c to f channels has k*k*c*f + f weights; pooling and flatten have none), "
    "and trained for a few epochs it reads digits (test accuracy > 85%).",
)
def cnn_layers(quick: bool, out_dir: Path) -> Result:
    (x, y), (xt, yt) = common.digits()
    model = em.Sequential(
        [
            layers.Input((8, 8, 1)),
            layers.Conv2D(8, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(16, 3, padding="valid", activation="relu"),
            layers.Flatten(),
            layers.Dense(10),
        ]
    )
    model.compile(optimizer=em.optimizers.Adam(0.01), loss=common.classifier_loss())
    model.fit(x, y, batch_size=32, epochs=6 if quick else 15, verbose=0)
    acc = common.accuracy(model, xt, yt)
    # by hand: SAME keeps 8x8, pooling halves, a VALID 3x3 takes 2 off, flatten multiplies
    expected = [
        ((8, 8, 8), 3 * 3 * 1 * 8 + 8),
        ((4, 4, 8), 0),
        ((2, 2, 16), 3 * 3 * 8 * 16 + 16),
        ((64,), 0),
        ((10,), 64 * 10 + 10),
    ]
    rows, h = [], x[:1]
    maps = None
    for layer, (shape, params) in zip(model.layers, expected):
        with em.no_grad():
            h = layer(h)
        if maps is None:
            maps = h.numpy()[0]
        rows.append(
            {
                "layer": type(layer).__name__,
                "output shape": str(h.shape[1:]),
                "expected shape": str(shape),
                "parameters": layer.count_params(),
                "expected parameters": params,
            }
        )
    lines = []
    model.summary(print_fn=lines.append)
    fig, axes = new_figure(ncols=9, size=(1.1, 1.2))
    axes[0].imshow(x[0, :, :, 0], cmap="gray_r")
    axes[0].set_title("input", fontsize=7)
    for i, ax in enumerate(axes[1:]):
        ax.imshow(maps[:, :, i], cmap="viridis")
        ax.set_title(f"filter {i}", fontsize=7)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    res = Result(
        table=rows,
        figures=[save_figure(fig, out_dir, "feature_maps")],
        notes="\n".join(lines),
        values={"test_accuracy": acc},
    )
    res.check(
        "output shapes match the formulas",
        all(r["output shape"] == r["expected shape"] for r in rows),
    )
    res.check(
        "parameter counts match k*k*c*f + f",
        all(r["parameters"] == r["expected parameters"] for r in rows),
        f"total {model.count_params()}",
    )
    res.check("the CNN reads digits (> 85%)", acc > 0.85, f"test accuracy {acc:.1%}")
    return res


# ---------------------------------------------------------------------------------- Q21
@experiment(
    21,
    claim="2x2 pooling with stride 2 halves height and width; max pooling outputs each window's "
    "largest value and average pooling its mean (equal to a NumPy reshape oracle); max "
    "pooling's gradient goes only to each window's maximum (one 1 per window), average "
    "pooling's spreads 1/4 to every input.",
    helpers=(common.test_image,),
)
def pooling_mechanics(quick: bool, out_dir: Path) -> Result:
    img = common.test_image(32)[None, :, :, None]  # (1, 32, 32, 1)
    img = img + np.random.default_rng(21).uniform(0, 0.05, img.shape).astype(np.float32)
    x = em.tensor(img, requires_grad=True)
    mx = em.functional.max_pool2d(x, 2)
    mx.sum().backward()
    g_max = x.grad.copy()
    x.zero_grad()
    av = em.functional.avg_pool2d(x, 2)
    av.sum().backward()
    g_avg = x.grad
    windows = img.reshape(1, 16, 2, 16, 2, 1)  # oracle: split each axis into (blocks, 2)
    oracle_max, oracle_avg = windows.max(axis=(2, 4)), windows.mean(axis=(2, 4))
    per_window = g_max.reshape(1, 16, 2, 16, 2, 1).sum(axis=(2, 4))
    at_max = g_max[0, :, :, 0][
        img[0, :, :, 0] == np.repeat(np.repeat(oracle_max[0, :, :, 0], 2, 0), 2, 1)
    ]
    rows = [
        {"operation": "input", "shape": str(img.shape[1:3])},
        {
            "operation": "max pool 2x2 / 2",
            "shape": str(mx.shape[1:3]),
            "max |diff| vs oracle": float(np.abs(mx.numpy() - oracle_max).max()),
        },
        {
            "operation": "average pool 2x2 / 2",
            "shape": str(av.shape[1:3]),
            "max |diff| vs oracle": float(np.abs(av.numpy() - oracle_avg).max()),
        },
    ]
    for padding in ("valid", "same"):
        out = em.functional.max_pool2d(em.tensor(img[:, :31, :31]), 3, 2, padding)
        rows.append(
            {"operation": f"max pool 3x3 / 2 on 31x31, {padding}", "shape": str(out.shape[1:3])}
        )
    fig, axes = new_figure(ncols=4, size=(2.3, 2.4))
    for ax, (title, a) in zip(
        axes,
        [
            ("input 32x32", img[0, :, :, 0]),
            ("max pool 16x16", mx.numpy()[0, :, :, 0]),
            ("average pool 16x16", av.numpy()[0, :, :, 0]),
            ("max-pool gradient", g_max[0, :, :, 0]),
        ],
    ):
        ax.imshow(a, cmap="gray")
        ax.set_title(title, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    res = Result(table=rows, figures=[save_figure(fig, out_dir, "pooling")])
    res.check("2x2/2 halves height and width", mx.shape == av.shape == (1, 16, 16, 1))
    res.check(
        "max and average pooling equal the oracle",
        rows[1]["max |diff| vs oracle"] < 1e-6 and rows[2]["max |diff| vs oracle"] < 1e-6,
    )
    res.check(
        "max-pool gradient: exactly one 1 per window, at the maximum",
        np.array_equal(per_window, np.ones_like(per_window))
        and (at_max == 1).all()
        and set(np.unique(g_max)) <= {0.0, 1.0},
    )
    res.check("average-pool gradient: 1/4 everywhere", np.allclose(g_avg, 0.25))
    res.check(
        "3x3/2 on 31: VALID gives 15, SAME gives ceil(31/2) = 16",
        rows[3]["shape"] == "(15, 15)" and rows[4]["shape"] == "(16, 16)",
    )
    return res


# ---------------------------------------------------------------------------------- Q22
@experiment(
    22,
    claim="A convolution slides one small filter over the image: ember's conv2d equals the "
    "explicit loop sum_ij x[r+i, c+j] * k[i, j] (cross-correlation, max difference < 1e-5); a "
    "vertical-edge filter answers on vertical edges and gives exactly 0 on flat regions; and "
    "shifting the image shifts the output by the same amount (translation equivariance).",
    helpers=(common.test_image,),
)
def convolution_filters(quick: bool, out_dir: Path) -> Result:
    img = common.test_image(32)
    filters = {
        "vertical edges (Sobel x)": np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float32),
        "horizontal edges (Sobel y)": np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]], np.float32),
        "blur (3x3 mean)": np.full((3, 3), 1 / 9, np.float32),
    }
    kernel = np.stack(list(filters.values()), axis=-1)[:, :, None, :]  # (3, 3, 1, 3)
    out = em.functional.conv2d(em.tensor(img[None, :, :, None]), em.tensor(kernel)).numpy()[0]
    # the oracle: the definition, one output pixel at a time
    loop = np.zeros_like(out)
    for r in range(out.shape[0]):
        for c in range(out.shape[1]):
            patch = img[r : r + 3, c : c + 3]
            loop[r, c] = [(patch * k).sum() for k in filters.values()]
    shifted = np.roll(img, (2, 3), axis=(0, 1))
    out_s = em.functional.conv2d(em.tensor(shifted[None, :, :, None]), em.tensor(kernel)).numpy()[
        0
    ]
    equi = float(np.abs(out_s[5:-5, 5:-5] - np.roll(out, (2, 3), axis=(0, 1))[5:-5, 5:-5]).max())
    vert = out[:, :, 0]
    # positions whose whole 3x3 window is one constant value: the filter must answer 0 there
    windows = np.lib.stride_tricks.sliding_window_view(img, (3, 3))
    flat_region = windows.max(axis=(2, 3)) == windows.min(axis=(2, 3))
    square_left_edge = np.abs(vert[4:12, 2]).min()  # the square's left edge is at column 4
    rows = [
        {
            "filter": name,
            "max |ember - loop|": float(np.abs(out[:, :, i] - loop[:, :, i]).max()),
            "max response": float(np.abs(out[:, :, i]).max()),
            "max response on flat windows": float(np.abs(out[:, :, i][flat_region]).max()),
        }
        for i, name in enumerate(filters)
    ]
    fig, axes = new_figure(ncols=4, size=(2.3, 2.4))
    axes[0].imshow(img, cmap="gray")
    axes[0].set_title("image", fontsize=8)
    for i, (ax, name) in enumerate(zip(axes[1:], filters)):
        ax.imshow(out[:, :, i], cmap="RdBu_r" if i < 2 else "gray")
        ax.set_title(name, fontsize=8)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    res = Result(table=rows, figures=[save_figure(fig, out_dir, "filters")])
    worst = max(r["max |ember - loop|"] for r in rows)
    res.check("conv2d equals the explicit loop", worst < 1e-5, f"{worst:.1e}")
    res.check(
        "the vertical-edge filter is 0 on flat windows",
        rows[0]["max response on flat windows"] < 1e-6,
    )
    res.check(
        "and strong on the square's vertical edge",
        square_left_edge > 2.0,
        f"|response| >= {square_left_edge:.2f} along the edge",
    )
    res.check("shift in, shift out", equi < 1e-5, f"max diff {equi:.1e} (away from the border)")
    return res


# ---------------------------------------------------------------------------------- Q23
def _lstm_by_hand(x, kernel, recurrent_kernel, bias):
    """The LSTM equations in NumPy, one step at a time (Keras's gate order i, f, c, o)."""
    n, t_len, _ = x.shape
    u = recurrent_kernel.shape[0]
    h, c = np.zeros((n, u)), np.zeros((n, u))
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    hs, cs = [], []
    for t in range(t_len):
        z = x[:, t] @ kernel + h @ recurrent_kernel + bias
        i, f, g, o = (
            sig(z[:, :u]),
            sig(z[:, u : 2 * u]),
            np.tanh(z[:, 2 * u : 3 * u]),
            sig(z[:, 3 * u :]),
        )
        c = f * c + i * g
        h = o * np.tanh(c)
        hs.append(h)
        cs.append(c)
    return np.stack(hs, 1), np.stack(cs, 1)


@experiment(
    23,
    claim="ember's LSTM computes exactly the gate equations (i, f, o sigmoid gates, tanh "
    "candidate, c_t = f c_{t-1} + i g, h_t = o tanh(c_t); max difference from a NumPy "
    "transcription < 1e-5), and with its forget gate held open and its input gate shut after "
    "the first step, the cell keeps a written value for 100 steps (loss < 1%), where a "
    "SimpleRNN with recurrent weight 0.9 keeps less than 1% of it.",
    helpers=(_lstm_by_hand,),
)
def lstm_gates(quick: bool, out_dir: Path) -> Result:
    rng = np.random.default_rng(23)
    x = rng.normal(size=(3, 8, 4)).astype(np.float32)
    lstm = layers.LSTM(5, return_sequences=True)
    out = lstm(x).numpy()
    kernel, recurrent, bias = (w.astype(np.float64) for w in lstm.get_weights())
    by_hand, _ = _lstm_by_hand(x.astype(np.float64), kernel, recurrent, bias)
    diff = float(np.abs(out - by_hand).max())
    # a one-unit memory cell: x = 1 at step 0, then 0. Gate biases set by hand (order i, f, c, o)
    steps = 100
    seq = np.zeros((1, steps, 1), np.float32)
    seq[0, 0, 0] = 1.0
    memory = layers.LSTM(1, return_sequences=True)
    memory(seq)  # build, then overwrite the weights
    memory.set_weights(
        [
            np.array([[20.0, 0.0, 2.0, 0.0]], np.float32),  # i opens only when x = 1; g = tanh(2x)
            np.zeros((1, 4), np.float32),  # no recurrent input to the gates
            np.array([-10.0, 10.0, 0.0, 10.0], np.float32),  # i shut, f open, o open
        ]
    )
    _, cells = _lstm_by_hand(
        seq.astype(np.float64), *(w.astype(np.float64) for w in memory.get_weights())
    )
    h_lstm = memory(seq).numpy()[0, :, 0]
    rnn = layers.SimpleRNN(1, return_sequences=True)
    rnn(seq)
    rnn.set_weights(
        [np.array([[1.0]], np.float32), np.array([[0.9]], np.float32), np.zeros(1, np.float32)]
    )
    h_rnn = rnn(seq).numpy()[0, :, 0]
    lstm_kept, rnn_kept = h_lstm[-1] / h_lstm[0], h_rnn[-1] / h_rnn[0]
    rows = [
        {
            "step": t,
            "LSTM cell c_t": float(cells[0, t, 0]),
            "LSTM h_t": float(h_lstm[t]),
            "SimpleRNN h_t": float(h_rnn[t]),
        }
        for t in (0, 1, 10, 50, 99)
    ]
    fig, (ax,) = new_figure(size=(5.5, 3))
    ax.plot(cells[0, :, 0], label="LSTM cell state c_t")
    ax.plot(h_lstm, "--", label="LSTM output h_t")
    ax.plot(h_rnn, label="SimpleRNN h_t (U = 0.9)")
    ax.set_xlabel("time step")
    ax.legend(fontsize=8)
    res = Result(table=rows, figures=[save_figure(fig, out_dir, "memory")], notes=lstm.explain())
    res.check("the LSTM equals the equations", diff < 1e-5, f"max diff {diff:.1e}")
    res.check("the LSTM cell keeps > 99% for 100 steps", lstm_kept > 0.99, f"{lstm_kept:.2%}")
    res.check("the SimpleRNN keeps < 1%", abs(rnn_kept) < 0.01, f"{rnn_kept:.2e}")
    return res


# ---------------------------------------------------------------------------------- Q24
def _time_step_grads(layer, x):
    """|d loss / d x_t| for every time step t, for a loss on the last output only."""
    xt = em.tensor(x, requires_grad=True)
    layer(xt).sum().backward()
    return np.linalg.norm(xt.grad, axis=(0, 2))


@experiment(
    24,
    claim="Gradients vanish or explode as they travel back through layers: in a 10-layer "
    "sigmoid net the gradient of the loss reaching layer 1's output is < 1e-3 of the one at "
    "layer 10; ReLU with He initialisation keeps them within 10x; ReLU with weights twice too "
    "large makes layer 1's > 100x layer 10's. Through 50 time steps, a SimpleRNN's gradient "
    "reaching the first step is < 1e-3 of the last step's, an LSTM's (forget bias 1) > 100x "
    "larger.",
    helpers=(_deep_net, common.probe_forward, _time_step_grads),
)
def vanishing_and_exploding(quick: bool, out_dir: Path) -> Result:
    rng = np.random.default_rng(24)
    x = rng.normal(size=(256, 256)).astype(np.float32)
    y = rng.integers(0, 10, len(x))
    setups = {
        "sigmoid, Xavier": ("sigmoid", "glorot_normal"),
        "ReLU, He": ("relu", "he_normal"),
        "ReLU, 2x He": ("relu", em.initializers.RandomNormal(stddev=2 * np.sqrt(2 / 256))),
    }
    norms = {}
    for name, (act, init) in setups.items():
        hidden, model = _deep_net(act, init)
        out, _, probes = common.probe_forward(model.layers, x)
        common.classifier_loss()(y, out).backward()
        # the probes' gradients: d loss / d (output of layer l), what backprop carries down
        norms[name] = [float(np.linalg.norm(p.grad)) for p in probes[: len(hidden)]]
    seq = rng.normal(size=(16, 50, 8)).astype(np.float32)
    steps = {
        "SimpleRNN": _time_step_grads(layers.SimpleRNN(16), seq),
        "LSTM": _time_step_grads(layers.LSTM(16), seq),
    }
    rows = [
        {"network": k, "first / last": v[0] / v[-1], "|grad| first": v[0], "|grad| last": v[-1]}
        for k, v in norms.items()
    ]
    rows += [
        {
            "network": f"{k} (time steps 1 and 50)",
            "first / last": v[0] / v[-1],
            "|grad| first": v[0],
            "|grad| last": v[-1],
        }
        for k, v in steps.items()
    ]
    fig, axes = new_figure(ncols=2, size=(4, 3.2))
    for name, v in norms.items():
        axes[0].semilogy(range(1, 11), v, "o-", ms=3, label=name)
    axes[0].set_xlabel("layer")
    axes[0].set_title("|d loss / d output of layer l|", fontsize=9)
    axes[0].legend(fontsize=7)
    for name, v in steps.items():
        axes[1].semilogy(range(1, 51), v, label=name)
    axes[1].set_xlabel("time step")
    axes[1].set_title("|d loss / d x_t|, loss on the last step", fontsize=9)
    axes[1].legend(fontsize=7)
    res = Result(table=rows, figures=[save_figure(fig, out_dir, "gradient_norms")])
    ratio = {r["network"]: r["first / last"] for r in rows}
    res.check(
        "sigmoid: vanishing (< 1e-3)",
        ratio["sigmoid, Xavier"] < 1e-3,
        f"{ratio['sigmoid, Xavier']:.1e}",
    )
    he = norms["ReLU, He"]
    res.check("ReLU + He: within 10x", max(he) / min(he) < 10, f"max/min {max(he) / min(he):.1f}")
    res.check(
        "ReLU with 2x weights: exploding (> 100x)",
        ratio["ReLU, 2x He"] > 100,
        f"{ratio['ReLU, 2x He']:.0f}x",
    )
    rnn, lstm = steps["SimpleRNN"], steps["LSTM"]
    res.check(
        "SimpleRNN: step 1 gets < 1e-3 of step 50's gradient",
        rnn[0] / rnn[-1] < 1e-3,
        f"{rnn[0] / rnn[-1]:.1e}",
    )
    res.check(
        "LSTM: > 100x more reaches step 1",
        (lstm[0] / lstm[-1]) / (rnn[0] / rnn[-1]) > 100,
        f"{lstm[0] / lstm[-1]:.1e} vs {rnn[0] / rnn[-1]:.1e}",
    )
    return res


# ---------------------------------------------------------------------------------- Q25
class _Counter(em.callbacks.Callback):
    """Counts what fit does: epochs, and batches (iterations) per epoch."""

    def on_train_begin(self, logs=None):
        self.batches, self.epochs = [], 0

    def on_epoch_begin(self, epoch, logs=None):
        self.batches.append(0)

    def on_batch_end(self, batch, logs=None):
        self.batches[-1] += 1

    def on_epoch_end(self, epoch, logs=None):
        self.epochs += 1


@experiment(
    25,
    claim="With 1,050 examples, batch size 100 and 3 epochs, fit makes ceil(1050/100) = 11 "
    "iterations per epoch (the last batch holds 50 examples) and 33 weight updates in all: an "
    "epoch is one pass over the data, a batch the examples of one update, an iteration one "
    "update.",
    helpers=(_Counter,),
)
def epochs_batches_iterations(quick: bool, out_dir: Path) -> Result:
    rng = np.random.default_rng(25)
    n, batch_size, epochs = 1050, 100, 3
    x = rng.normal(size=(n, 4)).astype(np.float32)
    y = (x.sum(1, keepdims=True) > 0).astype(np.float32)
    loader = em.data.DataLoader(em.data.ArrayDataset(x, y), batch_size=batch_size)
    sizes = [len(xb) for xb, _ in loader]
    model = em.Sequential([layers.Dense(1)])
    model.compile(optimizer="sgd", loss=em.losses.BinaryCrossentropy(from_logits=True))
    counter = _Counter()
    model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0, callbacks=[counter])
    per_epoch = -(-n // batch_size)  # ceil
    rows = [{"epoch": e, "iterations (batches)": b} for e, b in enumerate(counter.batches)]
    rows.append({"epoch": "all", "iterations (batches)": sum(counter.batches)})
    res = Result(table=rows, notes=f"batch sizes in one epoch: {sizes}")
    res.values.update(updates=model.optimizer.iterations, sizes=sizes)
    res.check("3 epochs were run", counter.epochs == epochs)
    res.check(
        "ceil(N / batch) iterations per epoch",
        counter.batches == [per_epoch] * epochs,
        f"{counter.batches}",
    )
    res.check(
        "one update per iteration",
        model.optimizer.iterations == epochs * per_epoch,
        f"optimizer.iterations = {model.optimizer.iterations}",
    )
    res.check("10 full batches and a last one of 50", sizes == [100] * 10 + [50])
    return res


# ---------------------------------------------------------------------------------- Q27
@experiment(
    27,
    claim="A tensor is an n-dimensional array with a shape and a dtype (a scalar has rank 0, a "
    "batch of RGB images rank 4, ember's floats are float32 by default) that also records the "
    "operations that made it, so backward() of sum(x^2) gives exactly 2x.",
)
def tensors(quick: bool, out_dir: Path) -> Result:
    examples = {
        "scalar (a loss)": em.tensor(3.0),
        "vector (a bias)": em.tensor(np.zeros(10)),
        "matrix (a Dense kernel)": em.tensor(np.zeros((784, 128))),
        "sequence batch (N, T, features)": em.tensor(np.zeros((32, 50, 300))),
        "image batch (N, H, W, C)": em.tensor(np.zeros((4, 32, 32, 3))),
        "token ids": em.tensor(np.array([[5, 9, 2]])),
    }
    rows = [
        {
            "tensor": k,
            "rank": t.ndim,
            "shape": str(t.shape),
            "dtype": str(t.dtype),
            "elements": t.size,
        }
        for k, t in examples.items()
    ]
    x = em.tensor(np.arange(-3.0, 3.0, 0.5), requires_grad=True)
    y = (x * x).sum()
    y.backward()
    res = Result(table=rows, notes=f"x = {x.numpy()}\nd sum(x^2) / dx = {x.grad}")
    res.check("ranks 0..4 as stated", [r["rank"] for r in rows] == [0, 1, 2, 3, 4, 2])
    res.check(
        "elements = product of the shape",
        all(t.size == int(np.prod(t.shape)) for t in examples.values()),
    )
    res.check(
        "floats default to float32, ints stay ints",
        rows[4]["dtype"] == "float32" and rows[5]["dtype"].startswith("int"),
    )
    res.check("the result remembers its op (not a leaf)", not y.is_leaf and x.is_leaf)
    res.check("backward gives 2x exactly", np.array_equal(x.grad, 2 * x.numpy()))
    return res


# ---------------------------------------------------------------------------------- Q28
@experiment(
    28,
    claim="VALID gives ceil((n - k + 1) / s) outputs and SAME gives ceil(n / s), for every n, k "
    "and s tried; SAME's zero padding totals max((out - 1) s + k - n, 0) with the odd pixel at "
    "the bottom/right, so a SAME convolution equals a VALID one on the input padded that way "
    "(Conv2D.explain prints the pads).",
)
def same_vs_valid(quick: bool, out_dir: Path) -> Result:
    rng = np.random.default_rng(28)
    rows, ok_shapes, pad_diffs = [], True, []
    for n in (5, 6, 7, 8) if quick else (5, 6, 7, 8, 9, 10, 11):
        for k in (1, 2, 3, 4):
            for s in (1, 2, 3):
                if k > n:
                    continue
                x = rng.normal(size=(1, n, n, 1)).astype(np.float32)
                w = rng.normal(size=(k, k, 1, 1)).astype(np.float32)
                valid = em.functional.conv2d(
                    em.tensor(x), em.tensor(w), strides=s, padding="valid"
                )
                same = em.functional.conv2d(em.tensor(x), em.tensor(w), strides=s, padding="same")
                out_v, out_s = -(-(n - k + 1) // s), -(-n // s)
                total = max((out_s - 1) * s + k - n, 0)
                before, after = total // 2, total - total // 2  # the extra one goes after
                padded = np.pad(x, ((0, 0), (before, after), (before, after), (0, 0)))
                by_hand = em.functional.conv2d(em.tensor(padded), em.tensor(w), strides=s)
                pad_diffs.append(float(np.abs(by_hand.numpy() - same.numpy()).max()))
                ok_shapes &= valid.shape[1] == out_v and same.shape[1] == out_s
                if n == 7 or (n == 6 and s == 2):
                    rows.append(
                        {
                            "n": n,
                            "k": k,
                            "s": s,
                            "VALID": valid.shape[1],
                            "ceil((n-k+1)/s)": out_v,
                            "SAME": same.shape[1],
                            "ceil(n/s)": out_s,
                            "pad top/bottom": f"{before}/{after}",
                        }
                    )
    conv = layers.Conv2D(8, 3, strides=2, padding="same")
    explain = conv.explain((6, 6, 3))
    res = Result(table=rows, notes=explain)
    res.check("output sizes follow the formulas for every n, k, s", ok_shapes)
    res.check(
        "SAME = VALID on the input padded with the extra row/column after",
        max(pad_diffs) < 1e-5,
        f"max diff {max(pad_diffs):.1e} over {len(pad_diffs)} cases",
    )
    res.check(
        "explain names the pads (n 6, k 3, s 2: total 1 -> 0 before, 1 after)",
        "top 0, bottom 1" in explain and "left 0, right 1" in explain,
    )
    return res


# ---------------------------------------------------------------------------------- Q29
@experiment(
    29,
    claim="swish(x) = x sigmoid(beta x): at beta = 0 it is x/2, at beta = 10 it is within 0.03 "
    "of ReLU, at beta = 1 it dips to its minimum of about -0.278 near x = -1.278 (it is not "
    "monotonic), and ember's autograd derivative matches sigmoid(bx) + bx sigmoid(bx)(1 - "
    "sigmoid(bx)).",
)
def swish(quick: bool, out_dir: Path) -> Result:
    grid = np.linspace(-5, 5, 2001)
    rows, curves = [], {}
    fig, axes = new_figure(ncols=2, size=(4, 3.2))
    worst_grad = 0.0
    for beta in (0.0, 0.5, 1.0, 2.0, 10.0):
        x = em.tensor(grid, requires_grad=True)
        y = em.activations.swish(x, beta=beta)
        y.sum().backward()
        sig = 1 / (1 + np.exp(-beta * grid))
        formula = sig + beta * grid * sig * (1 - sig)
        worst_grad = max(worst_grad, float(np.abs(x.grad - formula).max()))
        v = y.numpy()
        curves[beta] = v
        i = int(np.argmin(v))
        rows.append(
            {
                "beta": beta,
                "minimum": float(v[i]),
                "at x": float(grid[i]),
                "max |swish - relu|": float(np.abs(v - np.maximum(grid, 0)).max()),
                "max |swish - x/2|": float(np.abs(v - grid / 2).max()),
            }
        )
        axes[0].plot(grid, v, label=f"beta = {beta:g}")
        axes[1].plot(grid, x.grad, label=f"beta = {beta:g}")
    axes[0].plot(grid, np.maximum(grid, 0), "k:", lw=1, label="ReLU")
    axes[0].set_title("swish(x, beta)", fontsize=9)
    axes[1].set_title("derivative (autograd)", fontsize=9)
    axes[0].legend(fontsize=7)
    res = Result(table=rows, figures=[save_figure(fig, out_dir, "swish")])
    b0, b1, b10 = rows[0], rows[2], rows[4]
    res.check("beta = 0 gives x/2", b0["max |swish - x/2|"] < 1e-6)
    res.check(
        "beta = 10 is within 0.03 of ReLU",
        b10["max |swish - relu|"] < 0.03,
        f"{b10['max |swish - relu|']:.4f}",
    )
    res.check(
        "beta = 1: minimum -0.278 near x = -1.278",
        abs(b1["minimum"] + 0.2785) < 1e-3 and abs(b1["at x"] + 1.278) < 0.01,
        f"{b1['minimum']:.4f} at {b1['at x']:.3f}",
    )
    res.check("autograd derivative matches the formula", worst_grad < 1e-5, f"{worst_grad:.1e}")
    return res


# ---------------------------------------------------------------------------------- Q30
def _gradient(model, x, y) -> np.ndarray:
    """The loss gradient of every weight of ``model`` on (x, y), flattened into one vector."""
    loss = em.losses.BinaryCrossentropy(from_logits=True)(y, model(x))
    loss.backward()
    g = np.concatenate([w.grad.ravel() for w in model.trainable_weights])
    for w in model.trainable_weights:
        w.grad = None
    return g


@experiment(
    30,
    claim="A mini-batch gradient is a noisy estimate of the full gradient whose error falls as "
    "1/sqrt(batch size): measured over batch sizes 1 to 256, the log-log slope of the error "
    "is -0.5 (within 0.1), so a batch of 64 is about 8x less noisy than one example (and, as "
    "the table's timings show, costs about as much as one vectorised step).",
    helpers=(_gradient,),
)
def minibatch_noise(quick: bool, out_dir: Path) -> Result:
    import time

    rng = np.random.default_rng(30)
    n, d = 20000, 20
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = (x @ rng.normal(size=(d, 1)) + rng.normal(size=(n, 1)) > 0).astype(np.float32)
    model = em.Sequential([layers.Dense(1)])
    model(x[:1])
    full = _gradient(model, x, y)
    draws = 40 if quick else 200
    rows = []
    for b in (1, 4, 16, 64, 256):
        errors, start = [], time.perf_counter()
        for _ in range(draws):
            idx = rng.integers(0, n, b)
            errors.append(np.sum((_gradient(model, x[idx], y[idx]) - full) ** 2))
        seconds = (time.perf_counter() - start) / draws
        rows.append(
            {
                "batch size": b,
                "gradient error (RMS)": float(np.sqrt(np.mean(errors))),
                "time per step (ms)": 1e3 * seconds,
                "examples per ms": b / (1e3 * seconds),
            }
        )
    bs = np.array([r["batch size"] for r in rows], float)
    err = np.array([r["gradient error (RMS)"] for r in rows])
    slope = float(np.polyfit(np.log(bs), np.log(err), 1)[0])
    fig, (ax,) = new_figure(size=(4.5, 3.2))
    ax.loglog(bs, err, "o-", label="measured")
    ax.loglog(bs, err[0] / np.sqrt(bs), "k:", label="1 / sqrt(B)")
    ax.set_xlabel("batch size B")
    ax.set_ylabel("|g_B - g|, RMS")
    ax.legend()
    res = Result(
        table=rows, figures=[save_figure(fig, out_dir, "gradient_noise")], values={"slope": slope}
    )
    res.check("error falls as B^-0.5", abs(slope + 0.5) < 0.1, f"slope {slope:.3f}")
    ratio = err[0] / err[3]
    res.check("batch 64 is about 8x less noisy than batch 1", 5 < ratio < 12, f"{ratio:.1f}x")
    return res


# ---------------------------------------------------------------------------------- Q31
@experiment(
    31,
    claim="leaky_relu(x) = x for x > 0 and 0.01 x otherwise: hidden units whose bias starts at "
    "-5 (negative on every input) get exactly zero gradient under ReLU and stay dead through "
    "400 Adam steps, while under LeakyReLU(0.01) they get a small non-zero gradient and at "
    "least 2 of the 8 come back to life.",
)
def leaky_relu_revives(quick: bool, out_dir: Path) -> Result:
    rng = np.random.default_rng(31)
    x = rng.normal(size=(512, 4)).astype(np.float32)
    y = (np.abs(x) @ rng.normal(size=(4, 1))).astype(np.float32)
    rows, fig_data = [], {}
    for name, act in (("ReLU", layers.ReLU()), ("LeakyReLU(0.01)", layers.LeakyReLU(0.01))):
        em.set_seed(31)
        dense = layers.Dense(16)
        model = em.Sequential([dense, act, layers.Dense(1)])
        model(x[:1])
        kernel, bias = dense.get_weights()
        bias[:8] = -5.0  # units 0-7 start dead: x W + b < 0 for every input
        dense.set_weights([kernel, bias])
        opt = em.optimizers.Adam(0.02, params=model.trainable_weights)
        for step in range(400):
            loss = em.losses.MeanSquaredError()(y, model(x, training=True))
            loss.backward()
            if step == 0:
                first_grad = float(np.abs(dense.kernel.grad[:, :8]).max())
            opt.step()
            opt.zero_grad()
        with em.no_grad():
            pre = dense(x).numpy()
        alive = int((pre[:, :8] > 0).any(axis=0).sum())
        moved = float(np.abs(dense.get_weights()[0][:, :8] - kernel[:, :8]).max())
        rows.append(
            {
                "activation": name,
                "first-step |grad| of dead units": first_grad,
                "their weights moved by": moved,
                "revived (of 8)": alive,
                "final loss": float(loss.item()),
            }
        )
        fig_data[name] = act
    grid = np.linspace(-3, 3, 301).astype(np.float32)
    fig, axes = new_figure(ncols=2, size=(3.5, 3))
    for name, act in fig_data.items():
        t = em.tensor(grid, requires_grad=True)
        out = act(t)
        out.sum().backward()
        axes[0].plot(grid, out.numpy(), label=name)
        axes[1].plot(grid, t.grad, label=name)
    axes[0].set_title("activation", fontsize=9)
    axes[1].set_title("derivative", fontsize=9)
    axes[1].legend(fontsize=8)
    res = Result(table=rows, figures=[save_figure(fig, out_dir, "leaky_relu")])
    relu, leaky = rows
    res.check(
        "ReLU: dead units get exactly zero gradient", relu["first-step |grad| of dead units"] == 0
    )
    res.check(
        "ReLU: their weights never move and none revives",
        relu["their weights moved by"] == 0 and relu["revived (of 8)"] == 0,
    )
    res.check(
        "LeakyReLU: non-zero gradient",
        leaky["first-step |grad| of dead units"] > 0,
        f"{leaky['first-step |grad| of dead units']:.1e}",
    )
    res.check(
        "LeakyReLU: at least 2 of 8 revive",
        leaky["revived (of 8)"] >= 2,
        f"{leaky['revived (of 8)']} revived",
    )
    return res


# ---------------------------------------------------------------------------------- Q32
@experiment(
    32,
    claim="ImageDataGenerator makes a new, label-preserving variant of each image every time "
    "(rotations, shifts, zooms; reproducible from a seed, pixels kept in range), and a network "
    "trained on such batches recognises rotated and shifted test digits at least 15 points "
    "more often than the same network trained on the originals.",
)
def augmentation(quick: bool, out_dir: Path) -> Result:
    (x, y), (xt, yt) = common.digits()
    gen = em.data.ImageDataGenerator(
        rotation_range=15, width_shift_range=0.15, height_shift_range=0.15, zoom_range=0.1
    )
    one = np.repeat(x[:1], 15, axis=0)
    batch, labels = gen.flow(one, np.repeat(y[:1], 15), batch_size=15, shuffle=False, seed=7)[0]
    again, _ = gen.flow(one, np.repeat(y[:1], 15), batch_size=15, shuffle=False, seed=7)[0]
    xt_moved = gen.flow(xt, batch_size=len(xt), shuffle=False, seed=1)[0]  # a transformed test set
    epochs = 8 if quick else 15
    rows = []
    for name in ("original images", "augmented batches"):
        em.set_seed(32)
        model = em.Sequential(
            [layers.Flatten(), layers.Dense(64, activation="relu"), layers.Dense(10)]
        )
        model.compile(optimizer=em.optimizers.Adam(0.005), loss=common.classifier_loss())
        if name == "original images":
            model.fit(x, y, batch_size=32, epochs=epochs, verbose=0)
        else:  # a fresh random variant of every image in every epoch
            model.fit(gen.flow(x, y, batch_size=32, seed=2), epochs=epochs, verbose=0)
        rows.append(
            {
                "trained on": name,
                "test accuracy": common.accuracy(model, xt, yt),
                "accuracy on rotated/shifted test digits": common.accuracy(model, xt_moved, yt),
            }
        )
    fig, axes = new_figure(ncols=8, nrows=2, size=(0.9, 1.0))
    axes[0].imshow(x[0, :, :, 0], cmap="gray_r")
    axes[0].set_title("original", fontsize=7)
    for ax, img in zip(axes[1:], batch):
        ax.imshow(img[:, :, 0], cmap="gray_r", vmin=0, vmax=1)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    res = Result(table=rows, figures=[save_figure(fig, out_dir, "augmented_samples")])
    diffs = np.abs(batch - one).mean(axis=(1, 2, 3))
    res.check(
        "every variant differs from the original",
        diffs.min() > 0.01,
        f"min mean |diff| {diffs.min():.3f}",
    )
    res.check("labels are kept", np.array_equal(labels, np.repeat(y[:1], 15)))
    res.check("the same seed gives the same batch", np.array_equal(batch, again))
    res.check("pixels stay in [0, 1]", batch.min() >= 0 and batch.max() <= 1 + 1e-5)
    gain = (
        rows[1]["accuracy on rotated/shifted test digits"]
        - rows[0]["accuracy on rotated/shifted test digits"]
    )
    res.check(
        "augmentation wins on transformed digits by >= 15 points", gain >= 0.15, f"+{gain:.1%}"
    )
    return res


# ---------------------------------------------------------------------------------- Q33
@experiment(
    33,
    claim="On data with 5% positives, always predicting the majority scores 95% accuracy but "
    "0 recall and 0 F1; plain training misses most of the minority, while class weights, "
    "oversampling and SMOTE each raise minority recall by at least 0.3 over plain training "
    "(undersampling, left with a tenth of the data, by at least 0.2); the ranking quality "
    "(AUC) stays within 0.05, since these mostly move the decision threshold.",
)
def imbalanced_strategies(quick: bool, out_dir: Path) -> Result:
    (x, y), (xt, yt) = em.datasets.imbalanced(
        n_samples=2000 if quick else 6000, weights=(0.95, 0.05), class_sep=2.0, seed=33
    )
    strategies = {
        "plain": lambda: (x, y, None),
        "class_weight='balanced'": lambda: (x, y, "balanced"),
        "oversample": lambda: (*em.data.oversample(x, y, seed=0), None),
        "SMOTE": lambda: (*em.data.smote(x, y, seed=0), None),
        "undersample": lambda: (*em.data.undersample(x, y, seed=0), None),
    }

    def scores(name, rows_used, p):
        metrics = {
            "recall": em.metrics.Recall(),
            "precision": em.metrics.Precision(),
            "F1": em.metrics.F1Score(threshold=0.5),
            "AUC": em.metrics.AUC(),
        }
        row = {
            "strategy": name,
            "training rows": rows_used,
            "accuracy": float(np.mean((p > 0.5) == yt)),
        }
        for key, m in metrics.items():
            m.update_state(yt[:, None].astype(np.float32), p[:, None])
            row[key] = float(np.asarray(m.result()).ravel()[0])
        return row

    rows = [scores("always majority", len(x), np.zeros(len(yt), np.float32))]
    for name, make in strategies.items():
        xs, ys, weights = make()
        em.set_seed(33)
        model = em.Sequential([layers.Dense(16, activation="relu"), layers.Dense(1)])
        model.compile(
            optimizer=em.optimizers.Adam(0.01), loss=em.losses.BinaryCrossentropy(from_logits=True)
        )
        model.fit(
            xs,
            ys.astype(np.float32)[:, None],
            batch_size=64,
            epochs=10 if quick else 20,
            verbose=0,
            class_weight=weights,
        )
        with em.no_grad():
            rows.append(scores(name, len(xs), model(xt).sigmoid().numpy()[:, 0]))
    fig, (ax,) = new_figure(size=(6, 3.2))
    names = [r["strategy"] for r in rows[1:]]
    for i, key in enumerate(("recall", "precision", "F1", "AUC")):
        ax.bar(np.arange(len(names)) + 0.2 * i - 0.3, [r[key] for r in rows[1:]], 0.2, label=key)
    ax.set_xticks(range(len(names)), names, rotation=20, fontsize=7, ha="right")
    ax.legend(fontsize=7, ncol=4)
    res = Result(table=rows, figures=[save_figure(fig, out_dir, "imbalance")])
    by = {r["strategy"]: r for r in rows}
    major = by["always majority"]
    res.check(
        "always-majority: accuracy >= 0.9 but recall and F1 are 0",
        major["accuracy"] >= 0.9 and major["recall"] == 0 and major["F1"] == 0,
        f"accuracy {major['accuracy']:.1%}",
    )
    plain = by["plain"]["recall"]
    for name, gain in (
        ("class_weight='balanced'", 0.3),
        ("oversample", 0.3),
        ("SMOTE", 0.3),
        ("undersample", 0.2),
    ):
        res.check(
            f"{name} raises recall by >= {gain}",
            by[name]["recall"] >= plain + gain,
            f"{plain:.2f} -> {by[name]['recall']:.2f}",
        )
    aucs = [r["AUC"] for r in rows[1:]]
    res.check(
        "AUC stays within 0.05",
        max(aucs) - min(aucs) < 0.05,
        f"{min(aucs):.3f} .. {max(aucs):.3f}",
    )
    return res


# ---------------------------------------------------------------------------------- Q34, Q35
def _write_image_folder(root: Path, counts: dict, size=(24, 20), seed: int = 0) -> None:
    """``root/<class>/<i>.png`` RGB files; each class is bright in its own channel (so a label
    can be read off the pixels)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for k, (name, n) in enumerate(sorted(counts.items())):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            img = rng.integers(0, 60, (*size, 3), dtype=np.uint8)
            img[:, :, k % 3] += 180
            Image.fromarray(img).save(root / name / f"{i:04d}.png")


def _peak_mib(fn):
    """Run ``fn()`` and return (its result, the peak of memory traced while it ran, MiB)."""
    tracemalloc.start()
    try:
        out = fn()
        return out, tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


@experiment(
    34,
    claim="Streaming a folder of images in batches of 16 with flow_from_directory needs less "
    "than a fifth of the peak memory of loading every image into one array first, and "
    "computes the same per-pixel mean (to 1e-5).",
    helpers=(_write_image_folder, _peak_mib),
)
def streaming_from_disk(quick: bool, out_dir: Path) -> Result:
    n = 200 if quick else 800
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _write_image_folder(root, {"a": n // 2, "b": n - n // 2}, size=(64, 64), seed=34)
        gen = em.data.ImageDataGenerator(rescale=1 / 255)

        def load_all():
            files = sorted(root.glob("*/*.png"))
            images = np.stack([em.data.load_image(str(f), target_size=(64, 64)) for f in files])
            return (images / 255.0).astype(np.float32).mean(axis=0)

        def stream():
            it = gen.flow_from_directory(root, target_size=(64, 64), batch_size=16, shuffle=False)
            total, seen = np.zeros((64, 64, 3)), 0
            for i in range(len(it)):
                xb, _ = it[i]
                total += xb.sum(axis=0)
                seen += len(xb)
            return total / seen

        mean_all, peak_all = _peak_mib(load_all)
        mean_stream, peak_stream = _peak_mib(stream)
    rows = [
        {"method": f"load all {n} images, then compute", "peak traced memory (MiB)": peak_all},
        {
            "method": "stream batches of 16 (flow_from_directory)",
            "peak traced memory (MiB)": peak_stream,
        },
        {"method": "(one float32 image)", "peak traced memory (MiB)": 64 * 64 * 3 * 4 / 2**20},
    ]
    res = Result(table=rows, values={"ratio": peak_stream / peak_all})
    diff = float(np.abs(mean_all - mean_stream).max())
    res.check(
        "streaming peaks below a fifth of loading all",
        peak_stream < peak_all / 5,
        f"{peak_stream:.1f} vs {peak_all:.1f} MiB",
    )
    res.check("both compute the same mean image", diff < 1e-5, f"max diff {diff:.1e}")
    return res


@experiment(
    35,
    claim="flow_from_directory lists the class folders in alphanumeric order to build "
    "class_indices, reads and resizes one batch of files at a time to target_size, labels each "
    "image one-hot by its folder, and with validation_split gives each class the same split.",
    helpers=(_write_image_folder,),
)
def flow_from_directory(quick: bool, out_dir: Path) -> Result:
    counts = {"dog": 12, "bird": 8, "cat": 16}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _write_image_folder(root, counts, size=(24, 20), seed=35)
        gen = em.data.ImageDataGenerator(rescale=1 / 255, validation_split=0.25)
        train = gen.flow_from_directory(
            root, target_size=(16, 16), batch_size=8, subset="training", seed=0
        )
        val = gen.flow_from_directory(
            root, target_size=(16, 16), batch_size=8, subset="validation", seed=0
        )
        batches = [train[i] for i in range(len(train))]
        first = batches[0]
    rows = [
        {
            "class folder": name,
            "index": train.class_indices[name],
            "files": counts[name],
            "training": int(np.sum(train.classes == train.class_indices[name])),
            "validation": int(np.sum(val.classes == val.class_indices[name])),
        }
        for name in sorted(counts)
    ]
    # _write_image_folder made class k (in sorted order) bright in channel k: read labels off it
    agree = all(
        np.array_equal(np.argmax(xb.mean(axis=(1, 2)), axis=1), np.argmax(yb, axis=1))
        for xb, yb in batches
    )
    fig, axes = new_figure(ncols=8, size=(0.9, 1.1))
    for ax, img, label in zip(axes, first[0], first[1]):
        ax.imshow(img)
        ax.set_title(sorted(counts)[int(np.argmax(label))], fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
    res = Result(
        table=rows,
        figures=[save_figure(fig, out_dir, "batch")],
        notes=f"class_indices = {train.class_indices}; first batch x {first[0].shape}, "
        f"y {first[1].shape}",
    )
    res.check(
        "class_indices follow alphanumeric order",
        train.class_indices == {"bird": 0, "cat": 1, "dog": 2},
    )
    res.check(
        "batches are resized to target_size, 8 at a time",
        first[0].shape == (8, 16, 16, 3) and first[1].shape == (8, 3),
    )
    res.check(
        "labels are one-hot and match each image's folder",
        agree and all(np.array_equal(yb.sum(1), np.ones(len(yb))) for _, yb in batches),
    )
    res.check(
        "validation_split splits every class 75/25",
        all(
            r["validation"] == round(0.25 * r["files"])
            and r["training"] + r["validation"] == r["files"]
            for r in rows
        ),
    )
    return res


# ---------------------------------------------------------------------------------- Q36
@experiment(
    36,
    claim="Feeding raw 0-255 pixels makes the first layer's outputs 255x larger than with "
    "pixels scaled to [0, 1]; with the same network and SGD settings the raw run blows up in "
    "its first updates and ends at chance (test accuracy < 20%), while the scaled run reaches "
    "> 85% in 5 epochs.",
)
def image_normalization(quick: bool, out_dir: Path) -> Result:
    (x, y), (xt, yt) = common.digits()
    x, xt = x.reshape(len(x), -1), xt.reshape(len(xt), -1)
    rows, curves, pre = [], {}, {}
    for name, scale in (("raw pixels 0-255", 255.0), ("scaled to [0, 1]", 1.0)):
        em.set_seed(36)  # the same initial weights for both
        model = common.mlp([64], "relu", out_units=10)
        model.compile(optimizer=em.optimizers.SGD(0.05), loss=common.classifier_loss())
        with em.no_grad():
            pre[name] = float(
                model.layers[0](x * scale).numpy().std()
            )  # after ReLU, before training
        with np.errstate(all="ignore"):  # the raw run overflows on purpose
            history = model.fit(x * scale, y, batch_size=32, epochs=5, verbose=0)
        curves[name] = history.history["loss"]
        rows.append(
            {
                "input": name,
                "first-layer output std": pre[name],
                "loss after epoch 1": curves[name][0],
                "loss after epoch 5": curves[name][-1],
                "test accuracy": common.accuracy(model, xt * scale, yt),
            }
        )
    fig, (ax,) = new_figure(size=(4.5, 3.2))
    for name, c in curves.items():
        ax.semilogy(range(1, 6), c, "o-", label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss")
    ax.legend()
    res = Result(table=rows, figures=[save_figure(fig, out_dir, "normalization")])
    raw, unit = rows
    ratio = raw["first-layer output std"] / unit["first-layer output std"]
    res.check(
        "raw first-layer outputs are 255x larger", abs(ratio / 255 - 1) < 1e-3, f"{ratio:.1f}x"
    )
    res.check(
        "the raw run ends at chance (< 20%)",
        raw["test accuracy"] < 0.2,
        f"{raw['test accuracy']:.1%}",
    )
    res.check(
        "the scaled run reaches > 85%",
        unit["test accuracy"] > 0.85,
        f"{unit['test accuracy']:.1%}",
    )
    return res


# ---------------------------------------------------------------------------------- Q37
def _knn_accuracy(z_train, y_train, z_test, y_test, k: int = 5) -> float:
    """Accuracy of a k-nearest-neighbour vote in the code space: do codes keep classes apart?"""
    d = ((z_test[:, None, :] - z_train[None]) ** 2).sum(-1)
    votes = y_train[np.argsort(d, axis=1)[:, :k]]
    pred = np.array([np.bincount(v, minlength=10).argmax() for v in votes])
    return float(np.mean(pred == y_test))


@experiment(
    37,
    claim="An encoder squeezes each 64-pixel digit into 2 numbers: trained as an autoencoder, "
    "its codes let the decoder rebuild test digits with lower error than PCA's best 2-number "
    "linear code, and they keep the classes apart (5-nearest-neighbour accuracy in the 2-D "
    "code space > 55%, chance is 10%), without ever seeing a label.",
    helpers=(_knn_accuracy,),
)
def encoder_latent_space(quick: bool, out_dir: Path) -> Result:
    (x, y), (xt, yt) = common.digits()
    x, xt = x.reshape(len(x), -1), xt.reshape(len(xt), -1)
    encoder = em.Sequential([layers.Dense(32, activation="relu"), layers.Dense(2)])
    decoder = em.Sequential(
        [layers.Dense(32, activation="relu"), layers.Dense(64, activation="sigmoid")]
    )
    ae = em.models.Autoencoder(encoder, decoder)
    ae.compile(optimizer=em.optimizers.Adam(0.005), loss="mse")
    ae.fit(x, epochs=25 if quick else 60, batch_size=32, verbose=0)  # the target is x itself
    z, zt = ae.encode(x), ae.encode(xt)
    ae_error = float(np.mean((ae.predict(xt, verbose=0) - xt) ** 2))
    mean = x.mean(0)  # PCA: the best linear 2-number code, from the SVD
    basis = np.linalg.svd(x - mean, full_matrices=False)[2][:2]
    pca_error = float(np.mean(((xt - mean) @ basis.T @ basis + mean - xt) ** 2))
    rows = [
        {
            "code (2 numbers)": "mean image (no code)",
            "test reconstruction MSE": float(np.mean((xt - mean) ** 2)),
        },
        {
            "code (2 numbers)": "PCA",
            "test reconstruction MSE": pca_error,
            "5-NN accuracy": _knn_accuracy((x - mean) @ basis.T, y, (xt - mean) @ basis.T, yt),
        },
        {
            "code (2 numbers)": "autoencoder",
            "test reconstruction MSE": ae_error,
            "5-NN accuracy": _knn_accuracy(z, y, zt, yt),
        },
    ]
    fig, axes = new_figure(ncols=2, size=(4, 3.6))
    sc = axes[0].scatter(zt[:, 0], zt[:, 1], c=yt, cmap="tab10", s=8)
    axes[0].set_title("test digits in the encoder's 2-D code", fontsize=9)
    fig.colorbar(sc, ax=axes[0])
    recon = ae.predict(xt[:6], verbose=0)
    tiles = np.concatenate(
        [np.concatenate([a.reshape(8, 8), b.reshape(8, 8)], 0) for a, b in zip(xt[:6], recon)], 1
    )
    axes[1].imshow(tiles, cmap="gray_r")
    axes[1].set_title("top: input, bottom: decoded from 2 numbers", fontsize=9)
    axes[1].set_xticks([])
    axes[1].set_yticks([])
    res = Result(table=rows, figures=[save_figure(fig, out_dir, "latent_space")])
    res.check("the encoder alone maps inputs to 2 numbers", z.shape == (len(x), 2))
    res.check(
        "beats PCA's 2-number code", ae_error < pca_error, f"{ae_error:.4f} vs {pca_error:.4f}"
    )
    knn = rows[2]["5-NN accuracy"]
    res.check("codes keep classes apart (5-NN > 55%)", knn > 0.55, f"{knn:.1%}")
    return res


# ---------------------------------------------------------------------------------- Q38
def _bench(model, head, units, xt, yt) -> float:
    """Test accuracy with the hidden ``units`` benched (their outgoing weights zeroed)."""
    kernel, bias = head.get_weights()
    benched = kernel.copy()
    benched[list(units)] = 0.0
    head.set_weights([benched, bias])
    acc = common.accuracy(model, xt, yt)
    head.set_weights([kernel, bias])
    return acc


@experiment(
    38,
    claim="Like a team that trains with random players benched, a network trained with "
    "Dropout(0.5) does not depend on any one of its 16 hidden units: benching one unit at "
    "test time costs it on average less than half the accuracy it costs the same network "
    "trained without dropout, and benching a random half of the team costs it at least 10 "
    "points less.",
    helpers=(_bench,),
)
def dropout_team(quick: bool, out_dir: Path) -> Result:
    (x, y), (xt, yt) = common.digits()
    x, xt = x.reshape(len(x), -1), xt.reshape(len(xt), -1)
    rng = np.random.default_rng(38)
    halves = [rng.choice(16, 8, replace=False) for _ in range(20 if quick else 50)]
    rows, drops = [], {}
    for name, rate in (("no dropout", 0.0), ("Dropout(0.5)", 0.5)):
        em.set_seed(38)
        head = layers.Dense(10)
        model = em.Sequential([layers.Dense(16, activation="relu"), layers.Dropout(rate), head])
        model.compile(optimizer=em.optimizers.Adam(0.01), loss=common.classifier_loss())
        model.fit(x, y, batch_size=32, epochs=20 if quick else 30, verbose=0)
        full = common.accuracy(model, xt, yt)
        one = [full - _bench(model, head, [i], xt, yt) for i in range(16)]
        half = [full - _bench(model, head, h, xt, yt) for h in halves]
        drops[name] = one
        rows.append(
            {
                "trained with": name,
                "test accuracy (all play)": full,
                "mean drop, one benched": float(np.mean(one)),
                "worst drop, one benched": float(max(one)),
                "mean drop, half benched": float(np.mean(half)),
            }
        )
    fig, (ax,) = new_figure(size=(5.5, 3))
    for i, (name, one) in enumerate(drops.items()):
        ax.bar(np.arange(16) + 0.4 * i - 0.2, one, 0.4, label=name)
    ax.set_xlabel("hidden unit benched at test time")
    ax.set_ylabel("accuracy lost")
    ax.legend()
    res = Result(table=rows, figures=[save_figure(fig, out_dir, "benched_units")])
    plain, drop = rows
    res.check(
        "one benched unit: less than half the loss",
        drop["mean drop, one benched"] < 0.5 * plain["mean drop, one benched"],
        f"{drop['mean drop, one benched']:.3f} vs {plain['mean drop, one benched']:.3f}",
    )
    res.check(
        "half benched: at least 10 points less loss",
        drop["mean drop, half benched"] <= plain["mean drop, half benched"] - 0.10,
        f"{drop['mean drop, half benched']:.2f} vs {plain['mean drop, half benched']:.2f}",
    )
    return res


# ---------------------------------------------------------------------------------- Q39
def _compose_kernels(k1, k2):
    """The one kernel equal to k1 followed by k2 (valid cross-correlations, no activation):
    K[a + b, :, :] += k1[a] @ k2[b], a 'full' convolution of the two kernels."""
    h1, w1, cin, _ = k1.shape
    h2, w2, _, cout = k2.shape
    out = np.zeros((h1 + h2 - 1, w1 + w2 - 1, cin, cout))
    for i in range(h1):
        for j in range(w1):
            for p in range(h2):
                for q in range(w2):
                    out[i + p, j + q] += k1[i, j] @ k2[p, q]
    return out


@experiment(
    39,
    claim="Two stacked 3x3 convolutions with nothing between them are one 5x5 convolution (the "
    "composed kernel reproduces them to 1e-5, so depth adds nothing); with a ReLU between them "
    "the best single 5x5 filter, fitted by least squares, still leaves > 10% of the output "
    "unexplained, and the ReLU zeroes about half of the feature map.",
    helpers=(_compose_kernels,),
)
def relu_after_convolution(quick: bool, out_dir: Path) -> Result:
    rng = np.random.default_rng(39)
    x = rng.normal(size=(8 if quick else 32, 20, 20, 1)).astype(np.float32)
    k1 = rng.normal(0, 0.5, (3, 3, 1, 4)).astype(np.float32)
    k2 = rng.normal(0, 0.5, (3, 3, 4, 1)).astype(np.float32)
    conv = em.functional.conv2d
    mid = conv(em.tensor(x), em.tensor(k1))
    linear = conv(mid, em.tensor(k2)).numpy()
    relu_map = mid.relu()
    nonlinear = conv(relu_map, em.tensor(k2)).numpy()
    composed = conv(em.tensor(x), em.tensor(_compose_kernels(k1, k2).astype(np.float32))).numpy()
    collapse = float(np.abs(linear - composed).max())
    # the best 5x5 linear filter (plus bias) for each target, by least squares over all patches
    patches = np.lib.stride_tricks.sliding_window_view(x[..., 0], (5, 5), axis=(1, 2))
    a = np.concatenate([patches.reshape(-1, 25), np.ones((patches[..., 0, 0].size, 1))], 1)

    def unexplained(target):
        t = target.reshape(-1)
        fit = a @ np.linalg.lstsq(a, t, rcond=None)[0]
        return float(np.sum((t - fit) ** 2) / np.sum((t - t.mean()) ** 2))

    rows = [
        {
            "stack": "conv 3x3 -> conv 3x3",
            "unexplained by one 5x5 filter": unexplained(linear),
            "max |stack - composed kernel|": collapse,
        },
        {
            "stack": "conv 3x3 -> ReLU -> conv 3x3",
            "unexplained by one 5x5 filter": unexplained(nonlinear),
        },
    ]
    zeros = float(np.mean(relu_map.numpy() == 0))
    fig, axes = new_figure(ncols=3, size=(2.4, 2.5))
    for ax, (title, a_) in zip(
        axes,
        [
            ("input", x[0, :, :, 0]),
            ("after conv + ReLU (map 0)", relu_map.numpy()[0, :, :, 0]),
            ("output with ReLU", nonlinear[0, :, :, 0]),
        ],
    ):
        ax.imshow(a_, cmap="gray")
        ax.set_title(title, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    res = Result(
        table=rows,
        figures=[save_figure(fig, out_dir, "relu_after_conv")],
        values={"zero_fraction": zeros},
    )
    res.check(
        "without ReLU: one composed 5x5 kernel reproduces the stack",
        collapse < 1e-5,
        f"{collapse:.1e}",
    )
    res.check(
        "... and least squares finds it (unexplained < 1e-6)",
        rows[0]["unexplained by one 5x5 filter"] < 1e-6,
    )
    res.check(
        "with ReLU: > 10% unexplained by any 5x5 filter",
        rows[1]["unexplained by one 5x5 filter"] > 0.1,
        f"{rows[1]['unexplained by one 5x5 filter']:.1%}",
    )
    res.check("ReLU zeroes about half the map (35-65%)", 0.35 < zeros < 0.65, f"{zeros:.1%}")
    return res


# ---------------------------------------------------------------------------------- Q40
def _receptive_field(stack, size: int = 24):
    """Width of the input region that one central output unit depends on (found by autograd),
    and the map of |d unit / d input|."""
    x = em.tensor(np.random.default_rng(0).normal(size=(1, size, size, 1)), requires_grad=True)
    out = stack(x)
    c = out.shape[1] // 2
    out[0, c, c, 0].backward()
    influence = np.abs(x.grad[0, :, :, 0])
    cols = np.nonzero(influence.sum(axis=0))[0]
    return int(cols.max() - cols.min() + 1), influence


@experiment(
    40,
    claim="Max pooling 2x2 after a 3x3 convolution lets the next 3x3 convolution see an 8x8 "
    "input region instead of 5x5 (measured by autograd), gives it 4x fewer positions to "
    "compute, has no weights, and makes the features of an image shifted by one pixel more "
    "alike than the raw pixels are.",
    helpers=(_receptive_field,),
)
def max_pooling_uses(quick: bool, out_dir: Path) -> Result:
    rng = np.random.default_rng(40)
    k1 = em.tensor(rng.normal(size=(3, 3, 1, 4)))
    k2 = em.tensor(rng.normal(size=(3, 3, 4, 1)))
    conv = em.functional.conv2d
    pool = layers.MaxPooling2D(2)

    def plain(x):
        return conv(conv(x, k1).relu(), k2)

    def pooled(x):
        return conv(pool(conv(x, k1).relu()), k2)

    (rf_plain, map_a), (rf_pooled, map_b) = _receptive_field(plain), _receptive_field(pooled)
    fig, axes = new_figure(ncols=2, size=(2.6, 2.7))
    for ax, (title, m) in zip(
        axes, [("conv3 -> conv3", map_a), ("conv3 -> maxpool2 -> conv3", map_b)]
    ):
        ax.imshow(m > 0, cmap="Greys")
        ax.set_title(f"{title}\ninput pixels one unit sees", fontsize=8)
    n = 28
    img = common.test_image(n)
    first = conv(em.tensor(img[None, :, :, None]), k1).relu()
    map_plain, map_pooled = (
        first.shape[1] * first.shape[2],
        pool(first).shape[1] * pool(first).shape[2],
    )
    macs_plain = (first.shape[1] - 2) ** 2 * 9 * 4  # the second conv's multiply-adds per image
    macs_pooled = (pool(first).shape[1] - 2) ** 2 * 9 * 4
    shifted = np.roll(img, 1, axis=1)
    feats = [pool(conv(em.tensor(a[None, :, :, None]), k1).relu()).numpy() for a in (img, shifted)]
    raw_corr = float(np.corrcoef(img.ravel(), shifted.ravel())[0, 1])
    pool_corr = float(np.corrcoef(feats[0].ravel(), feats[1].ravel())[0, 1])
    rows = [
        {
            "stack": "conv3 -> conv3",
            "input seen by one unit": f"{rf_plain}x{rf_plain}",
            "second conv input positions": map_plain,
            "second conv multiply-adds": macs_plain,
            "weights added": 0,
        },
        {
            "stack": "conv3 -> maxpool2 -> conv3",
            "input seen by one unit": f"{rf_pooled}x{rf_pooled}",
            "second conv input positions": map_pooled,
            "second conv multiply-adds": macs_pooled,
            "weights added": pool.count_params(),
        },
    ]
    res = Result(
        table=rows,
        figures=[save_figure(fig, out_dir, "receptive_field")],
        values={"raw_correlation": raw_corr, "pooled_correlation": pool_corr},
        notes=f"correlation with the image shifted right by one pixel: raw pixels {raw_corr:.3f}, "
        f"max-pooled features {pool_corr:.3f}",
    )
    res.check(
        "receptive field grows from 5 to 8",
        (rf_plain, rf_pooled) == (5, 8),
        f"{rf_plain} -> {rf_pooled}",
    )
    res.check(
        "4x fewer positions for the next layer",
        map_plain == 4 * map_pooled,
        f"{map_plain} -> {map_pooled}; multiply-adds {macs_plain / macs_pooled:.1f}x fewer",
    )
    res.check("pooling has no weights", rows[1]["weights added"] == 0)
    res.check(
        "pooled features of a 1-pixel shift are more alike than raw pixels",
        pool_corr > raw_corr,
        f"{pool_corr:.3f} vs {raw_corr:.3f}",
    )
    return res


# ---------------------------------------------------------------------------------- Q41
def _place(images, rng, max_shift: int):
    """8x8 digits pasted into a 12x12 canvas, centred, or moved by up to ``max_shift`` pixels."""
    out = np.zeros((len(images), 12, 12, 1), np.float32)
    shifts = rng.integers(-max_shift, max_shift + 1, (len(images), 2))
    for img, (dy, dx), canvas in zip(images, shifts, out):
        canvas[2 + dy : 10 + dy, 2 + dx : 10 + dx] = img
    return out


@experiment(
    41,
    claim="At the same parameter budget (about 1,400 weights) and trained on centred digits "
    "only, a CNN (shared 3x3 filters, pooling) and a dense net both read centred test digits "
    "(> 85%), but on test digits shifted by up to 2 pixels the CNN scores at least 20 points "
    "higher: the dense net learned one weight per pixel position, the CNN one filter for all.",
    helpers=(_place,),
)
def cnn_vs_dense(quick: bool, out_dir: Path) -> Result:
    (x, y), (xt, yt) = common.digits(n_train=800 if quick else None)
    rng = np.random.default_rng(41)
    x_centred, xt_centred, xt_shifted = _place(x, rng, 0), _place(xt, rng, 0), _place(xt, rng, 2)
    models = {
        "CNN": em.Sequential(
            [
                layers.Conv2D(8, 3, padding="same", activation="relu"),
                layers.MaxPooling2D(2),
                layers.Conv2D(16, 3, padding="same", activation="relu"),
                layers.GlobalMaxPooling2D(),
                layers.Dense(10),
            ]
        ),
        "dense net": em.Sequential(
            [layers.Flatten(), layers.Dense(9, activation="relu"), layers.Dense(10)]
        ),
    }
    rows = []
    for name, model in models.items():
        em.set_seed(41)
        model.compile(optimizer=em.optimizers.Adam(0.01), loss=common.classifier_loss())
        model.fit(x_centred, y, batch_size=64, epochs=8 if quick else 12, verbose=0)
        rows.append(
            {
                "model": name,
                "parameters": model.count_params(),
                "centred test digits": common.accuracy(model, xt_centred, yt),
                "shifted test digits": common.accuracy(model, xt_shifted, yt),
            }
        )
    fig, axes = new_figure(ncols=6, size=(1.0, 1.1))
    for ax, img, title in zip(
        axes, [*xt_centred[:3], *xt_shifted[:3]], ["centred"] * 3 + ["shifted"] * 3
    ):
        ax.imshow(img[:, :, 0], cmap="gray_r")
        ax.set_title(title, fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
    res = Result(table=rows, figures=[save_figure(fig, out_dir, "test_digits")])
    cnn, dense = rows
    res.check(
        "equal budgets (within 10%)",
        abs(cnn["parameters"] / dense["parameters"] - 1) < 0.1,
        f"{cnn['parameters']} vs {dense['parameters']}",
    )
    res.check(
        "both read centred digits (> 85%)",
        min(cnn["centred test digits"], dense["centred test digits"]) > 0.85,
    )
    gain = cnn["shifted test digits"] - dense["shifted test digits"]
    res.check("on shifted digits the CNN wins by >= 20 points", gain >= 0.2, f"+{gain:.1%}")
    return res
