"""Experiments for part 4 of the guide (optimization and training, questions 53-75)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

import ember as em
from ember import layers
from ember.guide.experiments import common
from ember.guide.registry import Result, experiment, new_figure, save_figure


# ---------------------------------------------------------------------------------- Q54
@experiment(
    54,
    claim="A loss scores one example, the cost is what the optimizer minimises: ember's losses "
    "with reduction='none' give the per-example values of the published formulas (to 1e-6), "
    "the default is their mean over the batch (sample weights: sum(w * loss) / N), a kernel "
    "regularizer adds its penalty to make the model's cost, and the cost's gradient is the "
    "average of the per-example gradients.",
)
def loss_versus_cost(quick: bool, out_dir: Path) -> Result:
    em.set_floatx("float64")  # exact comparisons (Experiment.run restores float32)
    rng = np.random.default_rng(54)
    n = 8
    y = rng.integers(0, 2, (n, 1)).astype(np.float64)
    p = rng.uniform(0.05, 0.95, (n, 1))
    w = rng.uniform(0.5, 2.0, n)
    bce_each = em.losses.BinaryCrossentropy(reduction="none")(y, p).numpy()
    bce_formula = -(y * np.log(p) + (1 - y) * np.log(1 - p))[:, 0]
    bce_cost = float(em.losses.BinaryCrossentropy()(y, p).item())
    weighted = float(em.losses.BinaryCrossentropy()(y, p, sample_weight=w).item())
    target, pred = rng.normal(size=(n, 3)), rng.normal(size=(n, 3))
    mse_each = em.losses.MeanSquaredError(reduction="none")(target, pred).numpy()
    mse_formula = np.mean((target - pred) ** 2, axis=1)
    # the model's cost: the mean data loss plus the L2 penalty 0.01 * sum(W^2)
    x = rng.normal(size=(n, 3))
    model = em.Sequential([layers.Dense(1, kernel_regularizer=em.regularizers.L2(0.01))])
    model.compile(optimizer="sgd", loss="mse")
    yr = rng.normal(size=(n, 1))
    cost = model.compute_loss(yr, model(x))
    kernel, bias = model.layers[0].get_weights()
    by_hand = np.mean((x @ kernel + bias - yr) ** 2) + 0.01 * np.sum(kernel**2)
    cost.backward()
    grad_cost = model.layers[0].kernel.grad.copy()
    # the same gradient as the average of the n per-example gradients
    per_example = []
    for i in range(n):
        model.layers[0].kernel.grad = None
        model.compute_loss(yr[i : i + 1], model(x[i : i + 1])).backward()
        per_example.append(model.layers[0].kernel.grad.copy())
    grad_mean = np.mean(per_example, axis=0)
    rows = [
        {
            "example": i,
            "y": int(y[i, 0]),
            "p": float(p[i, 0]),
            "loss (ember)": float(bce_each[i]),
            "-[y ln p + (1-y) ln(1-p)]": float(bce_formula[i]),
            "sample weight": float(w[i]),
        }
        for i in range(n)
    ]
    fig, (ax,) = new_figure(size=(5, 3))
    ax.bar(range(n), bce_each, color="tab:blue", label="loss of each example")
    ax.axhline(bce_cost, color="k", ls="--", label=f"cost = mean = {bce_cost:.3f}")
    ax.set_xlabel("example")
    ax.set_ylabel("binary cross-entropy")
    ax.legend(fontsize=8)
    res = Result(table=rows, figures=[save_figure(fig, out_dir, "loss_and_cost")])
    res.values.update(cost=bce_cost, weighted_cost=weighted)
    err = max(np.abs(bce_each - bce_formula).max(), np.abs(mse_each - mse_formula).max())
    res.check("per-example losses follow the formulas", err < 1e-6, f"max diff {err:.1e}")
    res.check(
        "the default reduction is the batch mean",
        abs(bce_cost - bce_formula.mean()) < 1e-9,
        f"{bce_cost:.6f} vs mean {bce_formula.mean():.6f}",
    )
    res.check(
        "sample weights: sum(w * loss) / N",
        abs(weighted - np.sum(w * bce_formula) / n) < 1e-9,
        f"{weighted:.6f}",
    )
    res.check(
        "the model's cost = mean loss + L2 penalty",
        abs(float(cost.item()) - by_hand) < 1e-9,
        f"{float(cost.item()):.6f} vs {by_hand:.6f}",
    )
    gerr = float(np.abs(grad_cost - grad_mean).max())
    res.check("the cost's gradient is the mean per-example gradient", gerr < 1e-9, f"{gerr:.1e}")
    return res


# ---------------------------------------------------------------------------------- Q55
@experiment(
    55,
    claim="A convolution's weights are its filters: Conv2D(f, k) on c channels has a kernel of "
    "shape (k, k, c, f) and k*k*c*f + f parameters whatever the image size (18,496 for 3x3 "
    "from 32 to 64 channels on 8x8, 32x32 and 128x128 inputs), and every output position "
    "uses the same kernel, while a Dense layer joining the same maps would need over a "
    "million times more weights on 128x128 images.",
)
def convolution_weights(quick: bool, out_dir: Path) -> Result:
    rng = np.random.default_rng(55)
    rows = []
    for k, c, f in ((3, 32, 64), (5, 1, 6), (1, 64, 10)):
        for size in (8, 32, 128):
            conv = layers.Conv2D(f, k, padding="same")
            conv(rng.random((1, size, size, c), dtype=np.float32))
            kernel, bias = conv.get_weights()
            dense = (size * size * c) * (size * size * f) + size * size * f
            rows.append(
                {
                    "layer": f"Conv2D({f}, {k}) on {c} channels",
                    "image": f"{size}x{size}",
                    "kernel shape": str(kernel.shape),
                    "parameters": conv.count_params(),
                    "k*k*c*f + f": k * k * c * f + f,
                    "Dense with the same inputs and outputs": dense,
                }
            )
    # weight sharing: the output at two far-apart positions is the same dot product with the
    # one kernel (VALID: position (r, c) sees x[r:r+3, c:c+3, :])
    conv = layers.Conv2D(4, 3)
    x = rng.random((1, 16, 16, 2), dtype=np.float32)
    out = conv(x).numpy()[0]
    kernel, bias = conv.get_weights()
    shared = max(
        float(np.abs(out[r, c] - np.tensordot(x[0, r : r + 3, c : c + 3], kernel, 3) - bias).max())
        for r, c in ((0, 0), (5, 9), (13, 13))
    )
    fig, (ax,) = new_figure(size=(5, 3))
    first = [r for r in rows if r["layer"].startswith("Conv2D(64")]
    labels = [r["image"] for r in first]
    ax.bar(np.arange(len(first)) - 0.2, [r["parameters"] for r in first], 0.4, label="Conv2D")
    ax.bar(
        np.arange(len(first)) + 0.2,
        [r["Dense with the same inputs and outputs"] for r in first],
        0.4,
        label="Dense",
    )
    ax.set_xticks(range(len(first)), labels)
    ax.set_yscale("log")
    ax.set_ylabel("weights (32 -> 64 maps)")
    ax.legend(fontsize=8)
    res = Result(table=rows, figures=[save_figure(fig, out_dir, "weights")])
    res.check(
        "parameters = k*k*c*f + f for every layer and image size",
        all(r["parameters"] == r["k*k*c*f + f"] for r in rows),
    )
    counts = {r["parameters"] for r in rows if r["layer"].startswith("Conv2D(64")}
    res.check("3x3, 32 -> 64: 18,496 at every image size", counts == {18496}, str(counts))
    ratio = first[-1]["Dense with the same inputs and outputs"] / first[-1]["parameters"]
    res.check("a Dense layer would need > 1e6x more at 128x128", ratio > 1e6, f"{ratio:.2e}x")
    res.check("every position uses the same kernel", shared < 1e-5, f"max diff {shared:.1e}")
    return res


# ---------------------------------------------------------------------------------- Q62
@experiment(
    62,
    claim="The weights set a unit's orientation and the bias its offset: on points labelled by "
    "x1 + x2 > 3, a logistic unit with a bias learns a boundary parallel to the true one "
    "(cosine > 0.99) at distance 3/sqrt(2) from the origin (within 5%) and classifies > 97% "
    "right; without a bias its boundary must pass through the origin and it stays below 80%.",
)
def weights_and_bias(quick: bool, out_dir: Path) -> Result:
    rng = np.random.default_rng(62)
    x = rng.uniform(0, 3, (400, 2)).astype(np.float32)
    y = (x.sum(1) > 3).astype(np.float32)[:, None]
    rows, models = [], {}
    for name, use_bias in (("with bias", True), ("without bias", False)):
        model = em.Sequential([layers.Dense(1, use_bias=use_bias)])
        model.compile(
            optimizer=em.optimizers.Adam(0.1), loss=em.losses.BinaryCrossentropy(from_logits=True)
        )
        model.fit(x, y, batch_size=100, epochs=100 if quick else 250, verbose=0)
        w = model.layers[0].kernel.numpy()[:, 0]
        b = float(model.layers[0].bias.numpy()[0]) if use_bias else 0.0
        acc = common.accuracy(model, x, y[:, 0].astype(np.int64))
        rows.append(
            {
                "model": name,
                "w1": float(w[0]),
                "w2": float(w[1]),
                "b": b,
                "cosine(w, (1, 1))": float(w.sum() / (np.linalg.norm(w) * np.sqrt(2))),
                "boundary's distance from origin": abs(b) / float(np.linalg.norm(w)),
                "accuracy": acc,
            }
        )
        models[name] = model
    fig, axes = new_figure(ncols=2, size=(3.2, 3.0))
    for ax, (name, model) in zip(axes, models.items()):
        gx, gy, score = common.grid_predict(model, -0.5, 3.5, 100)
        ax.contourf(gx, gy, score > 0, levels=1, cmap="coolwarm", alpha=0.3)
        ax.scatter(x[:, 0], x[:, 1], c=y[:, 0], s=4, cmap="coolwarm")
        ax.plot([0, 3], [3, 0], "k:", lw=1)
        ax.plot(0, 0, "k+")
        ax.set_title(name, fontsize=9)
    res = Result(table=rows, figures=[save_figure(fig, out_dir, "boundaries")])
    bias, nobias = rows
    target = 3 / np.sqrt(2)
    dist = bias["boundary's distance from origin"]
    res.check(
        "bias: orientation parallel",
        bias["cosine(w, (1, 1))"] > 0.99,
        f"cosine {bias['cosine(w, (1, 1))']:.4f}",
    )
    res.check(
        "bias: offset 3/sqrt(2) (within 5%)",
        abs(dist / target - 1) < 0.05,
        f"{dist:.3f} vs {target:.3f}",
    )
    res.check("bias: > 97% right", bias["accuracy"] > 0.97, f"{bias['accuracy']:.1%}")
    res.check("no bias: < 80%", nobias["accuracy"] < 0.8, f"{nobias['accuracy']:.1%}")
    return res


# ---------------------------------------------------------------------------------- Q63
def _mlp_by_hand(x, y, w1, b1, w2, b2):
    """Forward and backward of tanh MLP + softmax cross-entropy in NumPy, by the chain rule."""
    z1 = x @ w1 + b1  # forward, keeping what backward needs
    h = np.tanh(z1)
    z2 = h @ w2 + b2
    e = np.exp(z2 - z2.max(1, keepdims=True))
    p = e / e.sum(1, keepdims=True)
    n = len(x)
    loss = -np.mean(np.log(p[np.arange(n), y]))
    dz2 = p.copy()  # backward: d loss / d z2 = (p - onehot(y)) / n
    dz2[np.arange(n), y] -= 1
    dz2 /= n
    dw2, db2 = h.T @ dz2, dz2.sum(0)
    dz1 = (dz2 @ w2.T) * (1 - h**2)  # through tanh: tanh' = 1 - tanh^2
    dw1, db1 = x.T @ dz1, dz1.sum(0)
    return loss, z2, (dw1, db1, dw2, db2)


@experiment(
    63,
    claim="Forward propagation computes the layers in turn and backpropagation applies the "
    "chain rule from the loss back: ember's forward output and loss equal a NumPy "
    "transcription (to 1e-12 in float64), its backward gradients equal the hand-derived "
    "ones (to 1e-12), and central finite differences agree with every weight's gradient "
    "(relative error < 1e-6).",
    helpers=(_mlp_by_hand,),
)
def forward_and_backward(quick: bool, out_dir: Path) -> Result:
    from ember.guide import model_gradcheck

    em.set_floatx("float64")
    rng = np.random.default_rng(63)
    x = rng.normal(size=(16, 5))
    y = rng.integers(0, 3, 16)
    model = em.Sequential([layers.Dense(8, activation="tanh"), layers.Dense(3)])
    logits = model(x)
    loss = common.classifier_loss()(y, logits)
    loss.backward()
    weights = [w.astype(np.float64) for w in model.get_weights()]
    hand_loss, hand_logits, hand_grads = _mlp_by_hand(x, y, *weights)
    names = ["layer 1 kernel", "layer 1 bias", "layer 2 kernel", "layer 2 bias"]
    ember_grads = [p.grad for p in model.trainable_weights]
    report = model_gradcheck(model, x, y, common.classifier_loss(), samples=None)
    rows = []
    for name, g, h, r in zip(names, ember_grads, hand_grads, report.rows):
        rows.append(
            {
                "weight": name,
                "shape": str(g.shape),
                "max |ember - by hand|": float(np.abs(g - h).max()),
                "relative error vs finite differences": r["relative error"],
            }
        )
    fwd = max(float(np.abs(logits.numpy() - hand_logits).max()), abs(loss.item() - hand_loss))
    fig, (ax,) = new_figure(size=(5, 3))
    ax.bar(range(4), [max(r["relative error vs finite differences"], 1e-18) for r in rows])
    ax.set_xticks(range(4), [n.replace("layer ", "L") for n in names], fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("relative error vs finite differences")
    res = Result(
        table=rows, figures=[save_figure(fig, out_dir, "gradcheck")], notes=report.format()
    )
    res.check("forward: output and loss match NumPy", fwd < 1e-12, f"{fwd:.1e}")
    bwd = max(r["max |ember - by hand|"] for r in rows)
    res.check("backward: gradients match the hand chain rule", bwd < 1e-12, f"{bwd:.1e}")
    res.check(
        "finite differences agree (relative error < 1e-6)",
        report.passed and report.worst < 1e-6,
        f"worst {report.worst:.1e}",
    )
    return res


# ---------------------------------------------------------------------------------- Q65
def _central_jacobian(f, x, h=1e-6):
    """J[i, j] = d f_i / d x_j by central differences (f: NumPy vector -> vector)."""
    cols = []
    for j in range(len(x)):
        e = np.zeros_like(x)
        e[j] = h
        cols.append((f(x + e) - f(x - e)) / (2 * h))
    return np.stack(cols, 1)


@experiment(
    65,
    claim="The chain rule, checked numerically in float64: for z = tanh(x^2) autograd gives "
    "(1 - tanh^2(x^2)) * 2x; where paths fork their contributions add (z = x*y + exp(x) gives "
    "dz/dx = y + exp(x)); for vector functions the gradient is the product of Jacobians "
    "J_g^T J_f^T v; and through 10 nested tanh layers it is the product of the 10 local "
    "derivatives. Each agrees with central differences to 1e-8.",
    helpers=(_central_jacobian,),
)
def chain_rule(quick: bool, out_dir: Path) -> Result:
    em.set_floatx("float64")
    rng = np.random.default_rng(65)
    h = 1e-6
    rows = []
    # 1) a composition: z = f(g(x)) with g = x^2, f = tanh
    xs = np.linspace(-2, 2, 41)
    x = em.tensor(xs, requires_grad=True)
    (x * x).tanh().sum().backward()
    chain = (1 - np.tanh(xs**2) ** 2) * 2 * xs  # f'(g(x)) * g'(x)
    numeric = (np.tanh((xs + h) ** 2) - np.tanh((xs - h) ** 2)) / (2 * h)
    rows.append(
        {
            "case": "tanh(x^2), 41 points",
            "max |autograd - chain rule|": float(np.abs(x.grad - chain).max()),
            "max |autograd - finite diff.|": float(np.abs(x.grad - numeric).max()),
        }
    )
    # 2) two paths from x to z: their derivatives add
    a, b = em.tensor(0.7, requires_grad=True), em.tensor(-1.3, requires_grad=True)
    (a * b + a.exp()).backward()

    def fork(u, v):
        return u * v + np.exp(u)

    num_a = (fork(0.7 + h, -1.3) - fork(0.7 - h, -1.3)) / (2 * h)
    num_b = (fork(0.7, -1.3 + h) - fork(0.7, -1.3 - h)) / (2 * h)
    rows.append(
        {
            "case": "x*y + exp(x): dz/dx, dz/dy",
            "max |autograd - chain rule|": max(
                abs(float(a.grad) - (-1.3 + np.exp(0.7))), abs(float(b.grad) - 0.7)
            ),
            "max |autograd - finite diff.|": max(
                abs(float(a.grad) - num_a), abs(float(b.grad) - num_b)
            ),
        }
    )
    # 3) vectors: L = v . f(g(x)), g(x) = W x, f = tanh elementwise
    w, v, x0 = rng.normal(size=(4, 3)), rng.normal(size=4), rng.normal(size=3)
    xv = em.tensor(x0, requires_grad=True)
    ((em.tensor(w) @ xv).tanh() * em.tensor(v)).sum().backward()
    j_g = _central_jacobian(lambda u: w @ u, x0)  # (4, 3)
    j_f = _central_jacobian(np.tanh, w @ x0)  # (4, 4), diagonal
    product = j_g.T @ j_f.T @ v
    exact = w.T @ ((1 - np.tanh(w @ x0) ** 2) * v)
    rows.append(
        {
            "case": "v . tanh(W x): J_g^T J_f^T v",
            "max |autograd - chain rule|": float(np.abs(xv.grad - exact).max()),
            "max |autograd - finite diff.|": float(np.abs(xv.grad - product).max()),
        }
    )
    # 4) a deep chain: z = tanh(a_10 tanh(... tanh(a_1 x)))
    coef = rng.uniform(0.8, 1.6, 10)
    t = em.tensor(0.3, requires_grad=True)
    z = t
    for c in coef:
        z = (z * float(c)).tanh()
    z.backward()
    u, local = 0.3, []
    for c in coef:  # the local derivative of each layer, forward along the chain
        u = np.tanh(c * u)
        local.append(c * (1 - u**2))

    def deep(s):
        for c in coef:
            s = np.tanh(c * s)
        return s

    rows.append(
        {
            "case": "10 nested tanh layers",
            "max |autograd - chain rule|": abs(float(t.grad) - float(np.prod(local))),
            "max |autograd - finite diff.|": abs(
                float(t.grad) - (deep(0.3 + h) - deep(0.3 - h)) / (2 * h)
            ),
        }
    )
    fig, axes = new_figure(ncols=2, size=(3.6, 3))
    axes[0].plot(xs, np.tanh(xs**2), label="z = tanh(x^2)")
    axes[0].plot(xs, x.grad, label="dz/dx (autograd)")
    axes[0].plot(xs[::3], numeric[::3], "k.", label="finite differences")
    axes[0].legend(fontsize=7)
    axes[1].semilogy(range(1, 11), np.abs(np.cumprod(local)), "o-", ms=3)
    axes[1].set_xlabel("layer")
    axes[1].set_title("|dz_l / dx|: product of local derivatives", fontsize=8)
    res = Result(table=rows, figures=[save_figure(fig, out_dir, "chain_rule")])
    for r in rows:
        worst = max(r["max |autograd - chain rule|"], r["max |autograd - finite diff.|"])
        res.check(f"{r['case']}: agrees to 1e-8", worst < 1e-8, f"{worst:.1e}")
    return res


# ---------------------------------------------------------------------------------- Q72
@experiment(
    72,
    claim="The update is w <- w - lr * dL/dw: one SGD step (optimizer or model.train_on_batch) "
    "moves every weight by exactly -lr times its gradient (to 1e-12 in float64), momentum "
    "follows m <- 0.9 m - lr g, w <- w + m, Nesterov w <- w + 0.9 m - lr g, and decoupled "
    "weight decay subtracts lr * lambda * w, each step after step as written.",
)
def update_formula(quick: bool, out_dir: Path) -> Result:
    em.set_floatx("float64")
    rng = np.random.default_rng(72)
    x, y = rng.normal(size=(32, 4)), rng.normal(size=(32, 1))
    lr, steps = 0.1, 5
    rows, paths = [], {}
    variants = {
        "plain SGD": dict(),
        "momentum 0.9": dict(momentum=0.9),
        "Nesterov 0.9": dict(momentum=0.9, nesterov=True),
        "weight decay 0.1": dict(weight_decay=0.1),
    }
    for name, kw in variants.items():
        em.set_seed(72)
        model = em.Sequential([layers.Dense(1)])
        model(x)
        opt = em.optimizers.SGD(lr, params=model.trainable_weights, **kw)
        w = [p.numpy().copy() for p in model.trainable_weights]  # the hand-kept copy
        m = [np.zeros_like(a) for a in w]
        worst, path = 0.0, [w[0][:2, 0].copy()]
        for _ in range(steps):
            em.losses.MeanSquaredError()(y, model(x)).backward()
            grads = [p.grad.copy() for p in model.trainable_weights]
            opt.step()
            opt.zero_grad()
            for i, g in enumerate(grads):  # the formula, in NumPy
                if "decay" in name:
                    w[i] = w[i] - lr * kw["weight_decay"] * w[i]
                if "momentum" in kw:
                    m[i] = 0.9 * m[i] - lr * g
                    w[i] = w[i] + (0.9 * m[i] - lr * g if kw.get("nesterov") else m[i])
                else:
                    w[i] = w[i] - lr * g
            now = [p.numpy() for p in model.trainable_weights]
            worst = max(worst, *(float(np.abs(a - b).max()) for a, b in zip(now, w)))
            path.append(now[0][:2, 0].copy())
        paths[name] = np.array(path)
        rows.append(
            {
                "update": name,
                "steps": steps,
                "max |ember - formula|": worst,
                "final loss": float(em.losses.MeanSquaredError()(y, model(x)).item()),
            }
        )
    # the same rule inside model.train_on_batch (what fit runs for every batch)
    em.set_seed(72)
    model = em.Sequential([layers.Dense(1)])
    model.compile(optimizer=em.optimizers.SGD(lr), loss="mse")
    model(x)
    before = [p.numpy().copy() for p in model.trainable_weights]
    em.losses.MeanSquaredError()(y, model(x)).backward()
    grads = [p.grad.copy() for p in model.trainable_weights]
    model.train_on_batch(x, y)
    fit_err = max(
        float(np.abs(p.numpy() - (b - lr * g)).max())
        for p, b, g in zip(model.trainable_weights, before, grads)
    )
    rows.append(
        {
            "update": "model.train_on_batch (SGD)",
            "steps": 1,
            "max |ember - formula|": fit_err,
            "final loss": float("nan"),
        }
    )
    fig, (ax,) = new_figure(size=(4.5, 3.5))
    for name, path in paths.items():
        ax.plot(path[:, 0], path[:, 1], "o-", ms=3, label=name)
    ax.set_xlabel("w1")
    ax.set_ylabel("w2")
    ax.set_title(f"the first two weights over {steps} steps", fontsize=9)
    ax.legend(fontsize=7)
    res = Result(table=rows, figures=[save_figure(fig, out_dir, "updates")])
    for r in rows:
        res.check(
            f"{r['update']}: every step as the formula",
            r["max |ember - formula|"] < 1e-12,
            f"max diff {r['max |ember - formula|']:.1e}",
        )
    return res


# ---------------------------------------------------------------------------------- Q73
@experiment(
    73,
    claim="The learning rate is the step size: on the loss a/2 (w - 3)^2 gradient descent "
    "converges for every lr < 2/a and diverges above it, lr = 1/a lands on the minimum in one "
    "step, and a tiny rate barely moves; schedules change it over training: ember's "
    "exponential, step and warm-up + cosine schedules give the rate of their formulas at every "
    "step, and the optimizer applies exactly that rate.",
)
def learning_rate(quick: bool, out_dir: Path) -> Result:
    em.set_floatx("float64")
    a = 4.0  # the curvature: the largest stable rate is 2 / a = 0.5
    rows, paths = [], {}
    for factor in (0.01, 0.5, 1.0, 1.5, 1.9, 2.1):
        lr = factor / a
        w = em.Parameter(np.zeros(1))
        opt = em.optimizers.SGD(lr, params=[w])
        path = [0.0]
        for _ in range(30):
            (0.5 * a * (w - 3.0) ** 2).sum().backward()
            opt.step()
            opt.zero_grad()
            path.append(float(w.numpy()[0]))
        paths[factor] = path
        # GD on this loss: w_t - 3 = (1 - lr a)^t (w_0 - 3), so |1 - lr a| < 1 decides
        rows.append(
            {
                "lr": lr,
                "lr * a": factor,
                "|1 - lr a|": abs(1 - factor),
                "distance to minimum after 1 step": abs(path[1] - 3),
                "after 30 steps": abs(path[-1] - 3),
                "formula 3|1 - lr a|^30": 3 * abs(1 - factor) ** 30,
            }
        )
    schedules = {
        "ExponentialDecay(0.1, 100, 0.5)": (
            em.schedules.ExponentialDecay(0.1, 100, 0.5),
            lambda s: 0.1 * 0.5 ** (s / 100),
        ),
        "StepDecay(0.1, 100, 0.1)": (
            em.schedules.StepDecay(0.1, 100, 0.1),
            lambda s: 0.1 * 0.1 ** (s // 100),
        ),
        "warm-up 50 steps to 0.1, cosine over 250": (
            em.schedules.CosineDecay(0.0, 250, warmup_target=0.1, warmup_steps=50),
            lambda s: (
                0.1 * s / 50
                if s < 50
                else 0.1 * 0.5 * (1 + math.cos(math.pi * min(s - 50, 250) / 250))
            ),
        ),
    }
    steps = np.arange(300)
    sched_err = {
        name: max(abs(sched(int(s)) - formula(int(s))) for s in steps)
        for name, (sched, formula) in schedules.items()
    }
    # the optimizer uses schedule(iterations): one weight with gradient 1 moves by lr(t) each step
    sched = schedules["warm-up 50 steps to 0.1, cosine over 250"][0]
    w = em.Parameter(np.zeros(1))
    opt = em.optimizers.SGD(sched, params=[w])
    moved = []
    for _ in range(60):
        before = float(w.numpy()[0])
        w.sum().backward()
        opt.step()
        opt.zero_grad()
        moved.append(before - float(w.numpy()[0]))
    applied = max(abs(m - sched(t)) for t, m in enumerate(moved))
    fig, axes = new_figure(ncols=2, size=(3.8, 3))
    for factor, path in paths.items():
        axes[0].plot(path, label=f"lr = {factor:g}/a")
    axes[0].axhline(3, color="k", ls=":")
    axes[0].set_ylim(-4, 10)
    axes[0].set_xlabel("step")
    axes[0].set_ylabel("w")
    axes[0].legend(fontsize=6)
    for name, (sched_, _) in schedules.items():
        axes[1].plot(steps, [sched_(int(s)) for s in steps], label=name)
    axes[1].set_xlabel("step")
    axes[1].set_ylabel("learning rate")
    axes[1].legend(fontsize=6)
    res = Result(table=rows, figures=[save_figure(fig, out_dir, "learning_rate")])
    for r in rows:
        res.values[f"lr*a={r['lr * a']:g}"] = r["after 30 steps"]
    res.check(
        "below 2/a converges, above diverges",
        all((r["after 30 steps"] < 3) == (r["lr * a"] < 2) for r in rows),
        ", ".join(f"{r['lr * a']:g}/a: {r['after 30 steps']:.2g}" for r in rows),
    )
    res.check(
        "every run follows |w_t - 3| = 3|1 - lr a|^t",
        all(
            abs(r["after 30 steps"] - r["formula 3|1 - lr a|^30"])
            < 1e-9 * max(1, r["formula 3|1 - lr a|^30"])
            for r in rows
        ),
    )
    res.check(
        "lr = 1/a: the minimum in one step", rows[2]["distance to minimum after 1 step"] < 1e-12
    )
    res.check(
        "lr = 0.01/a: moves < 1% of the way in one step",
        rows[0]["distance to minimum after 1 step"] > 0.99 * 3,
    )
    worst = max(sched_err.values())
    res.check("schedules follow their formulas", worst < 1e-12, f"max diff {worst:.1e}")
    res.check("the optimizer applies lr(iterations)", applied < 1e-12, f"max diff {applied:.1e}")
    return res


# ---------------------------------------------------------------------------------- Q69
def _on_canvas(images, row: int, col: int, size: int = 16):
    """The 8x8 images pasted with their top-left corner at (row, col) of a blank canvas."""
    out = np.zeros((len(images), size, size, 1), np.float32)
    out[:, row : row + 8, col : col + 8] = images
    return out


@experiment(
    69,
    claim="A CNN's structure matches images: trained only on digits at the centre of a 16x16 "
    "canvas, a small CNN (shared filters, 2x2 pooling, global max pooling) recognises the "
    "same test digits moved by 2 pixels in any direction within 3 points of its accuracy on "
    "centred ones, while a dense network, as good on centred digits, falls below 20% on the "
    "moved ones; shifts by an odd number of pixels cost the CNN more, as 2x2 pooling is "
    "invariant only to shifts by its stride.",
    helpers=(_on_canvas,),
)
def cnn_fits_images(quick: bool, out_dir: Path) -> Result:
    (x, y), (xt, yt) = common.digits()
    train = _on_canvas(x, 4, 4)
    places = {
        "centre (4, 4)": (4, 4),
        "up-left 2": (2, 2),
        "down-right 2": (6, 6),
        "right 2": (4, 6),
        "up 2, right 2": (2, 6),
        "odd: up 1, right 1": (3, 5),
    }
    tests = {name: _on_canvas(xt, r, c) for name, (r, c) in places.items()}
    models = {
        "CNN": em.Sequential(
            [
                layers.Conv2D(8, 3, padding="same", activation="relu"),
                layers.MaxPool2D(),
                layers.Conv2D(16, 3, padding="same", activation="relu"),
                layers.GlobalMaxPooling2D(),
                layers.Dense(10),
            ]
        ),
        "dense": em.Sequential(
            [layers.Flatten(), layers.Dense(32, activation="relu"), layers.Dense(10)]
        ),
    }
    rows = []
    for name, model in models.items():
        model.compile(optimizer=em.optimizers.Adam(0.01), loss=common.classifier_loss())
        model.fit(train, y, batch_size=64, epochs=4 if quick else 10, verbose=0)
        row = {"model": name, "parameters": model.count_params()}
        row.update({place: common.accuracy(model, t, yt) for place, t in tests.items()})
        rows.append(row)
    fig, axes = new_figure(ncols=2, size=(3.6, 3.1))
    axes[0].imshow(
        np.hstack([tests["centre (4, 4)"][0, :, :, 0], tests["up-left 2"][0, :, :, 0]]),
        cmap="gray_r",
    )
    axes[0].set_title("a test digit: centred / moved", fontsize=8)
    axes[0].set_xticks([])
    axes[0].set_yticks([])
    for i, r in enumerate(rows):
        axes[1].bar(
            np.arange(len(places)) + 0.4 * i - 0.2, [r[p] for p in places], 0.4, label=r["model"]
        )
    axes[1].set_xticks(
        range(len(places)), [p.split(" (")[0] for p in places], rotation=60, fontsize=6
    )
    axes[1].set_ylabel("test accuracy")
    axes[1].legend(fontsize=7)
    res = Result(table=rows, figures=[save_figure(fig, out_dir, "shifted_digits")])
    cnn, dense = rows
    even = [p for p in places if not p.startswith(("centre", "odd"))]
    drop = max(cnn["centre (4, 4)"] - cnn[p] for p in even)
    res.check("CNN: moved by 2, within 3 points", drop < 0.03, f"largest drop {drop:.1%}")
    res.check(
        "dense: as good on centred digits (> 85%)",
        dense["centre (4, 4)"] > 0.85,
        f"{dense['centre (4, 4)']:.1%} vs the CNN's {cnn['centre (4, 4)']:.1%}",
    )
    worst = max(dense[p] for p in even)
    res.check("dense: below 20% on every move", worst < 0.2, f"at most {worst:.1%}")
    return res


# ---------------------------------------------------------------------------------- Q61
def _dead_units(model, x) -> np.ndarray:
    """True for each unit of the first Dense layer whose pre-activation is <= 0 on every row
    of x: it outputs ReLU(z) = 0 everywhere, and its weights get zero gradient."""
    with em.no_grad():
        z = model.layers[0](x).numpy()
    return ~np.any(z > 0, axis=0)


@experiment(
    61,
    claim="One epoch of SGD at a too-large learning rate (2.0) kills most units of a digits "
    "MLP (> 70% never fire on any training image, as DeadNeuronMonitor reports), where lr = "
    "0.05 leaves < 10% dead; a dead ReLU gets exactly zero gradient, so 5 more epochs of Adam "
    "leave its weights bit-for-bit unchanged, while with the same weights under LeakyReLU(0.1) "
    "at least 25% of the dead units come back to life and test accuracy ends higher.",
    helpers=(_dead_units,),
)
def dead_relus(quick: bool, out_dir: Path) -> Result:
    (x, y), (xt, yt) = common.digits()
    x, xt = x.reshape(len(x), -1), xt.reshape(len(xt), -1)
    rows, dead = [], {}
    for lr in (0.05, 2.0):
        em.set_seed(61)
        model = em.Sequential([layers.Dense(64), layers.ReLU(), layers.Dense(10)])
        model.compile(optimizer=em.optimizers.SGD(lr), loss=common.classifier_loss())
        monitor = em.callbacks.DeadNeuronMonitor(x)
        with np.errstate(all="ignore"):  # the large rate overflows on purpose
            model.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[monitor])
        dead[lr] = _dead_units(model, x)
        (reported,) = [v[-1] for v in monitor.history.values()]
        rows.append(
            {
                "run": f"1 epoch of SGD, lr = {lr:g}",
                "dead units": float(dead[lr].mean()),
                "DeadNeuronMonitor": reported,
                "revived": "-",
                "dead weights unchanged": "-",
                "test accuracy": common.accuracy(model, xt, yt),
            }
        )
    killed, weights = dead[2.0], model.get_weights()
    for name, act in (("ReLU", layers.ReLU()), ("LeakyReLU(0.1)", layers.LeakyReLU(0.1))):
        em.set_seed(61)
        again = em.Sequential([layers.Dense(64), act, layers.Dense(10)])
        again(x[:1])
        again.set_weights(weights)  # the damaged network, with another activation
        again.compile(optimizer=em.optimizers.Adam(0.01), loss=common.classifier_loss())
        again.fit(x, y, batch_size=64, epochs=5, verbose=0)
        now = _dead_units(again, x)
        unchanged = np.array_equal(
            again.layers[0].kernel.numpy()[:, killed], weights[0][:, killed]
        )
        rows.append(
            {
                "run": f"then 5 epochs of Adam with {name}",
                "dead units": float(now.mean()),
                "DeadNeuronMonitor": "-",
                "revived": float(np.sum(killed & ~now) / np.sum(killed)),
                "dead weights unchanged": bool(unchanged),
                "test accuracy": common.accuracy(again, xt, yt),
            }
        )
    fig, (ax,) = new_figure(size=(5.5, 3))
    ax.barh(range(len(rows)), [r["dead units"] for r in rows], color="tab:gray")
    ax.set_yticks(range(len(rows)), [r["run"] for r in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("share of dead units (never > 0 on the training set)")
    res = Result(table=rows, figures=[save_figure(fig, out_dir, "dead_units")])
    low, high, relu, leaky = rows
    res.check("lr = 2 kills > 70%", high["dead units"] > 0.7, f"{high['dead units']:.0%}")
    res.check("lr = 0.05 leaves < 10% dead", low["dead units"] < 0.1, f"{low['dead units']:.0%}")
    res.check(
        "DeadNeuronMonitor counts the same",
        all(abs(r["dead units"] - r["DeadNeuronMonitor"]) < 1e-9 for r in (low, high)),
    )
    res.check(
        "ReLU: dead weights unchanged, none revived",
        relu["dead weights unchanged"] and relu["revived"] == 0,
    )
    res.check("LeakyReLU revives >= 25%", leaky["revived"] >= 0.25, f"{leaky['revived']:.0%}")
    res.check(
        "LeakyReLU ends more accurate",
        leaky["test accuracy"] > relu["test accuracy"],
        f"{leaky['test accuracy']:.1%} vs {relu['test accuracy']:.1%}",
    )
    return res


# ---------------------------------------------------------------------------------- Q68
def _deep_relu_net(batch_norm: bool, depth: int = 6, width: int = 64):
    """Dense -> [BatchNormalization] -> ReLU, ``depth`` times, then a 10-way output."""
    stack = []
    for _ in range(depth):
        stack.append(layers.Dense(width, use_bias=not batch_norm))  # BN's beta is the bias
        if batch_norm:
            stack.append(layers.BatchNormalization(momentum=0.9))
        stack.append(layers.Activation("relu"))
    return em.Sequential([*stack, layers.Dense(10)])


@experiment(
    68,
    claim="Batch normalization makes large learning rates usable: a 6-layer ReLU net on digits "
    "trained with plain SGD for 3 epochs gets its training loss below 0.5 at lr = 1 with "
    "batch norm, while without it neither that rate (loss above 2.0; chance is ln 10 = 2.3) nor "
    "lr = 3 (overflow, or loss above 2.0) makes progress; with batch norm even lr = 3 trains "
    "(loss < 1), and its best run beats the best run without it by a wide margin (loss less "
    "than half).",
    helpers=(_deep_relu_net,),
)
def batchnorm_allows_higher_rates(quick: bool, out_dir: Path) -> Result:
    (x, y), (xt, yt) = common.digits()
    x, xt = x.reshape(len(x), -1), xt.reshape(len(xt), -1)
    epochs = 3 if quick else 8
    rows, curves = [], {}
    for lr in (0.01, 0.1, 1.0, 3.0):
        for bn in (False, True):
            em.set_seed(68)
            model = _deep_relu_net(bn)
            model.compile(optimizer=em.optimizers.SGD(lr), loss=common.classifier_loss())
            with np.errstate(all="ignore"):  # lr = 3 without batch norm overflows on purpose
                history = model.fit(x, y, batch_size=64, epochs=epochs, verbose=0)
                acc = common.accuracy(model, xt, yt)
            # the loss after the first `epochs` = 3 epochs, so quick and full runs compare
            loss = history.history["loss"][2]
            curves[(lr, bn)] = history.history["loss"]
            rows.append(
                {
                    "learning rate": lr,
                    "batch norm": bn,
                    "training loss after 3 epochs": loss,
                    f"test accuracy after {epochs} epochs": acc,
                }
            )
    fig, axes = new_figure(ncols=2, size=(3.5, 3))
    for ax, bn in zip(axes, (False, True)):
        for lr in (0.01, 0.1, 1.0, 3.0):
            ax.plot(
                range(1, epochs + 1),
                np.nan_to_num(curves[(lr, bn)], nan=2.5),
                "o-",
                ms=3,
                label=f"lr = {lr:g}",
            )
        ax.set_ylim(0, 2.5)
        ax.set_title("with batch norm" if bn else "without (NaN drawn at 2.5)", fontsize=8)
        ax.set_xlabel("epoch")
        ax.legend(fontsize=7)
    axes[0].set_ylabel("training loss")
    res = Result(table=rows, figures=[save_figure(fig, out_dir, "batchnorm_rates")])
    loss = {(r["learning rate"], r["batch norm"]): r["training loss after 3 epochs"] for r in rows}
    res.check("BN, lr = 1: loss < 0.5", loss[(1.0, True)] < 0.5, f"{loss[(1.0, True)]:.3f}")
    res.check(
        "no BN, lr = 1: no progress (> 2.0)", loss[(1.0, False)] > 2.0, f"{loss[(1.0, False)]:.3f}"
    )
    res.check(
        "no BN, lr = 3: overflow or no progress",
        not np.isfinite(loss[(3.0, False)]) or loss[(3.0, False)] > 2.0,
        f"{loss[(3.0, False)]}",
    )
    res.check("BN, lr = 3: loss < 1", loss[(3.0, True)] < 1, f"{loss[(3.0, True)]:.3f}")
    best_bn = min(v for (lr, bn), v in loss.items() if bn)
    best_plain = min(v for (lr, bn), v in loss.items() if not bn and np.isfinite(v))
    res.check(
        "BN's best < half the plain best",
        best_bn < 0.5 * best_plain,
        f"{best_bn:.3f} vs {best_plain:.3f}",
    )
    return res


# ---------------------------------------------------------------------------------- Q56, Q57
def _conv_base():
    """Two 3x3 convolutions with 2x2 pooling between: 8x8x1 digits -> 4x4x64 feature maps."""
    return [
        layers.Conv2D(16, 3, padding="same", activation="relu"),
        layers.MaxPool2D(),
        layers.Conv2D(64, 3, padding="same", activation="relu"),
    ]


def _train_digits(model, quick: bool):
    (x, y), (xt, yt) = common.digits()
    model.compile(optimizer=em.optimizers.Adam(0.01), loss=common.classifier_loss())
    model.fit(x, y, batch_size=64, epochs=8 if quick else 15, verbose=0)
    return common.accuracy(model, xt, yt)


@experiment(
    56,
    claim="A dense layer is not strictly required: a CNN whose last layers are a 1x1 "
    "convolution to 10 maps and global average pooling, with no Dense layer at all, reads "
    "digits (> 85% on test). Something must still map features to one score per class: that "
    "1x1 convolution followed by pooling computes exactly a Dense layer applied after the "
    "pooling (same weights, outputs equal up to float32 rounding), while the convolutions "
    "alone output feature maps, not scores.",
    helpers=(_conv_base, _train_digits),
)
def dense_layer_in_a_cnn(quick: bool, out_dir: Path) -> Result:
    _, (xt, _) = common.digits()
    convolutions = _conv_base()
    model = em.Sequential([*convolutions, layers.Conv2D(10, 1), layers.GlobalAveragePooling2D()])
    acc = _train_digits(model, quick)
    with em.no_grad():
        features = em.Sequential(convolutions)(xt).numpy()  # (N, 4, 4, 64)
        logits = model(xt).numpy()
    # the same weights in a Dense layer, applied to the pooled features
    kernel, bias = model.layers[-2].get_weights()  # (1, 1, 64, 10), (10,)
    pooled = features.mean(axis=(1, 2))  # (N, 64)
    dense = layers.Dense(10)
    dense(pooled)
    dense.set_weights([kernel[0, 0], bias])
    with em.no_grad():
        same = float(np.abs(logits - dense(pooled).numpy()).max())
    kinds = [type(layer).__name__ for layer in model.layers]
    rows = [
        {
            "model": "the convolutions only",
            "output shape": str(features.shape[1:]),
            "parameters": sum(layer.count_params() for layer in convolutions),
            "test accuracy": "-",
        },
        {
            "model": "+ 1x1 conv to 10 maps + global average pooling",
            "output shape": str(logits.shape[1:]),
            "parameters": model.count_params(),
            "test accuracy": acc,
        },
    ]
    fig, axes = new_figure(ncols=2, size=(3.4, 3))
    with em.no_grad():
        maps = model.layers[-2](features[:1]).numpy()[0]  # (4, 4, 10)
    axes[0].imshow(np.hstack([maps[:, :, k] for k in range(10)]), cmap="viridis")
    axes[0].set_title("the 10 class maps (4x4) of one test digit", fontsize=8)
    axes[0].set_xticks(np.arange(10) * 4 + 1.5, [str(k) for k in range(10)])
    axes[0].set_yticks([])
    axes[1].bar(range(10), logits[0])
    axes[1].set_xlabel("class")
    axes[1].set_title("their averages: the class scores", fontsize=8)
    res = Result(
        table=rows,
        figures=[save_figure(fig, out_dir, "class_maps")],
        notes="layers: " + ", ".join(kinds),
    )
    res.check("no Dense layer in the model", "Dense" not in kinds, ", ".join(kinds))
    res.check("it reads digits (> 85%)", acc > 0.85, f"{acc:.1%}")
    res.check(
        "1x1 conv + pooling = Dense after pooling (to 1e-5 of the largest score)",
        same < 1e-5 * np.abs(logits).max(),
        f"max diff {same:.1e}, largest score {np.abs(logits).max():.1f}",
    )
    res.check(
        "the convolutions alone give feature maps, not scores",
        features.shape[1:] == (4, 4, 64),
        str(features.shape[1:]),
    )
    return res


@experiment(
    57,
    claim="Without the classic flatten + dense head, a CNN can end with global average "
    "pooling and one small Dense layer: that head has 100x fewer weights (650 vs "
    "66,250) yet the digits classifier's test accuracy stays within 8 points, and because "
    "pooling removes the spatial size the model also accepts 16x16 images, which the "
    "flatten head rejects.",
    helpers=(_conv_base, _train_digits),
)
def global_average_pooling_head(quick: bool, out_dir: Path) -> Result:
    (x, _), (xt, yt) = common.digits()
    heads = {
        "flatten + Dense(64) + Dense(10)": [
            layers.Flatten(),
            layers.Dense(64, activation="relu"),
            layers.Dense(10),
        ],
        "global average pooling + Dense(10)": [layers.GlobalAveragePooling2D(), layers.Dense(10)],
    }
    big = np.repeat(np.repeat(xt[:8], 2, axis=1), 2, axis=2)  # 16x16 versions of test digits
    rows = []
    for name, head in heads.items():
        em.set_seed(57)
        model = em.Sequential([*_conv_base(), *head])
        acc = _train_digits(model, quick)
        try:
            with em.no_grad():
                shape = str(model(big).shape)
        except em.errors.EmberError as exc:
            shape = f"error: {type(exc).__name__}"
        rows.append(
            {
                "head": name,
                "head parameters": sum(h.count_params() for h in head),
                "model parameters": model.count_params(),
                "test accuracy": acc,
                "on 16x16 input": shape,
            }
        )
    fig, (ax,) = new_figure(size=(5, 3))
    ax.barh([0, 1], [r["head parameters"] for r in rows])
    ax.set_xscale("log")
    ax.set_yticks([0, 1], [r["head"] for r in rows], fontsize=7)
    ax.set_xlabel("weights in the head")
    res = Result(table=rows, figures=[save_figure(fig, out_dir, "head_sizes")])
    flat, gap = rows
    ratio = flat["head parameters"] / gap["head parameters"]
    # by hand: flatten gives 4*4*64 = 1024 inputs; pooling gives 64
    expected = (1024 * 64 + 64 + 64 * 10 + 10, 64 * 10 + 10)
    res.check(
        "head sizes 66,250 vs 650 (counted by hand)",
        (flat["head parameters"], gap["head parameters"]) == expected,
        f"{ratio:.0f}x fewer",
    )
    diff = flat["test accuracy"] - gap["test accuracy"]
    res.check(
        "accuracy within 8 points",
        abs(diff) < 0.08,
        f"{flat['test accuracy']:.1%} vs {gap['test accuracy']:.1%}",
    )
    res.check("GAP accepts 16x16", gap["on 16x16 input"] == "(8, 10)", gap["on 16x16 input"])
    res.check(
        "flatten rejects it", flat["on 16x16 input"].startswith("error"), flat["on 16x16 input"]
    )
    return res


# ---------------------------------------------------------------------------------- Q58
class _Counter(em.callbacks.Callback):
    """A callback of our own: counts the hooks the fit loop calls."""

    def __init__(self):
        super().__init__()
        self.calls = {"train_begin": 0, "epoch_end": 0, "batch_end": 0, "train_end": 0}

    def on_train_begin(self, logs=None):
        self.calls["train_begin"] += 1

    def on_epoch_end(self, epoch, logs=None):
        self.calls["epoch_end"] += 1

    def on_batch_end(self, batch, logs=None):
        self.calls["batch_end"] += 1

    def on_train_end(self, logs=None):
        self.calls["train_end"] += 1


@experiment(
    58,
    claim="Callbacks act at fixed points of fit without changing the loop: on an overfitting "
    "digits model, EarlyStopping(patience=5) stops exactly 5 epochs after the best validation "
    "loss and restores those weights (evaluate gives the best loss back), ModelCheckpoint's "
    "saved best model scores the same, ReduceLROnPlateau halves the rate exactly when its "
    "rule says (replayed by hand on the logged losses), CSVLogger writes one row per epoch, "
    "and a hand-written callback's hooks are called once per epoch and per batch.",
    helpers=(_Counter,),
)
def callbacks_in_action(quick: bool, out_dir: Path) -> Result:
    import csv
    import tempfile

    (x, y), (xt, yt) = common.digits()
    x, y, xt = x.reshape(len(x), -1)[:150], y[:150], xt.reshape(len(xt), -1)
    model = common.mlp([256], "relu", out_units=10)
    model.compile(optimizer=em.optimizers.Adam(0.01), loss=common.classifier_loss())
    patience, lr_patience = 5, 2
    with tempfile.TemporaryDirectory() as tmp:
        best_file, log_file = Path(tmp) / "best.ember", Path(tmp) / "log.csv"
        counter = _Counter()
        history = model.fit(
            x,
            y,
            batch_size=50,
            epochs=60 if quick else 150,
            verbose=0,
            validation_data=(xt, yt),
            callbacks=[
                em.callbacks.EarlyStopping(patience=patience, restore_best_weights=True),
                em.callbacks.ModelCheckpoint(str(best_file), save_best_only=True),
                em.callbacks.ReduceLROnPlateau(factor=0.5, patience=lr_patience, min_delta=0),
                em.callbacks.CSVLogger(str(log_file)),
                counter,
            ],
        )
        with open(log_file, newline="") as f:
            csv_rows = list(csv.DictReader(f))
        checkpoint = float(em.load_model(str(best_file)).evaluate(xt, yt, verbose=0))
    val, lrs = history.history["val_loss"], history.history["learning_rate"]
    best = int(np.argmin(val))
    restored = float(model.evaluate(xt, yt, verbose=0))
    # ReduceLROnPlateau's rule replayed on the logged losses: after lr_patience epochs without
    # a new best, halve the rate and start counting again
    expected, lr, wait, low = [], 0.01, 0, np.inf
    for v in val:
        expected.append(lr)
        if v < low:
            low, wait = v, 0
        else:
            wait += 1
            if wait >= lr_patience:
                lr, wait = lr * 0.5, 0
    lr_err = max(abs(a - b) / b for a, b in zip(lrs, expected))
    rows = [
        {
            "epoch": i + 1,
            "loss": history.history["loss"][i],
            "val_loss": v,
            "learning_rate": lrs[i],
            "note": "best" if i == best else "",
        }
        for i, v in enumerate(val)
    ]
    fig, (ax,) = new_figure(size=(5.5, 3.2))
    ax.plot(range(1, len(val) + 1), history.history["loss"], label="training loss")
    ax.plot(range(1, len(val) + 1), val, label="validation loss")
    ax.axvline(best + 1, color="k", ls=":", label="best epoch (restored)")
    for i in range(1, len(lrs)):
        if lrs[i] < lrs[i - 1]:
            ax.axvline(i + 1, color="tab:red", lw=0.6, alpha=0.6)
    ax.set_yscale("log")
    ax.set_xlabel("epoch (red lines: learning rate halved)")
    ax.legend(fontsize=7)
    res = Result(table=rows, figures=[save_figure(fig, out_dir, "callbacks")])
    res.values.update(calls=counter.calls, best_epoch=best + 1, epochs_run=len(val))
    res.check(
        "EarlyStopping stopped 5 epochs after the best",
        len(val) == best + 1 + patience,
        f"best epoch {best + 1}, ran {len(val)}",
    )
    res.check(
        "restored weights give the best loss back",
        abs(restored - val[best]) < 1e-5,
        f"{restored:.5f} vs {val[best]:.5f}",
    )
    res.check(
        "the checkpoint holds the best model",
        abs(checkpoint - val[best]) < 1e-5,
        f"{checkpoint:.5f}",
    )
    res.check(
        "ReduceLROnPlateau follows its rule",
        lr_err < 1e-6 and min(lrs) < 0.01,
        f"rates {sorted(set(round(v, 6) for v in lrs), reverse=True)}",
    )
    res.check(
        "CSVLogger: one row per epoch, same numbers",
        len(csv_rows) == len(val)
        and all(abs(float(r["val_loss"]) - v) < 1e-6 for r, v in zip(csv_rows, val)),
    )
    batches = len(val) * -(-len(x) // 50)
    res.check(
        "our callback: once per epoch and per batch",
        counter.calls
        == {"train_begin": 1, "epoch_end": len(val), "batch_end": batches, "train_end": 1},
        str(counter.calls),
    )
    return res


# ---------------------------------------------------------------------------------- Q59
@experiment(
    59,
    claim="Evaluate training on data the model does not learn from: trained on 200 digits, a "
    "256-unit net scores 100% on its own training data, which overstates its test accuracy by "
    "more than 3 points, while held-out validation data estimates the test accuracy within "
    "3 points; history.diagnose() reads the curves as overfitting and names the epoch of the "
    "lowest validation loss; the test set, used once at the end, gives a confusion matrix "
    "whose rows (per-class recall) show which digits fail.",
)
def evaluate_training(quick: bool, out_dir: Path) -> Result:
    from ember.training.diagnose import diagnose

    (x, y), (xt, yt) = common.digits()
    x = x.reshape(len(x), -1)
    xt = xt.reshape(len(xt), -1)
    xtr, ytr, xv, yv = x[:200], y[:200], x[200:700], y[200:700]
    model = common.mlp([256], "relu", out_units=10)
    model.compile(
        optimizer=em.optimizers.Adam(0.01), loss=common.classifier_loss(), metrics=["accuracy"]
    )
    history = model.fit(
        xtr, ytr, batch_size=50, epochs=50 if quick else 100, verbose=0, validation_data=(xv, yv)
    )
    d = diagnose(history)
    val = history.history["val_loss"]
    accs = {
        "training": common.accuracy(model, xtr, ytr),
        "validation": common.accuracy(model, xv, yv),
        "test": common.accuracy(model, xt, yt),
    }
    cm_metric = em.metrics.ConfusionMatrix(10)
    with em.no_grad():
        cm_metric.update_state(yt, model(xt).numpy())
    cm = np.asarray(cm_metric.result())
    pred = model.predict(xt, verbose=0).argmax(1)
    by_hand = np.zeros((10, 10), np.int64)
    np.add.at(by_hand, (yt, pred), 1)
    recall = np.diag(cm) / cm.sum(1)
    rows = [{"data": k, "accuracy": v} for k, v in accs.items()]
    rows += [{"data": f"test, digit {c}", "accuracy": float(recall[c])} for c in range(10)]
    fig, axes = new_figure(ncols=2, size=(3.6, 3.2))
    axes[0].plot(history.history["loss"], label="training")
    axes[0].plot(val, label="validation")
    if d.turning_epoch is not None:
        axes[0].axvline(d.turning_epoch, color="k", ls=":", lw=1)
    axes[0].set_yscale("log")
    axes[0].set_xlabel("epoch")
    axes[0].set_title(f"loss: diagnosed '{d.kind}'", fontsize=8)
    axes[0].legend(fontsize=7)
    axes[1].imshow(np.log1p(cm), cmap="Blues")
    axes[1].set_xlabel("predicted")
    axes[1].set_ylabel("true digit")
    axes[1].set_title("test confusion matrix (log)", fontsize=8)
    res = Result(table=rows, figures=[save_figure(fig, out_dir, "evaluation")], notes=str(d))
    gap = accs["training"] - accs["test"]
    res.check("training accuracy 100%", accs["training"] == 1.0, f"{accs['training']:.1%}")
    res.check("it overstates test accuracy by > 3 points", gap > 0.03, f"{gap:.1%}")
    est = abs(accs["validation"] - accs["test"])
    res.check(
        "validation estimates test within 3 points",
        est < 0.03,
        f"{accs['validation']:.1%} vs {accs['test']:.1%}",
    )
    res.check(
        "diagnose: overfit, turning at the lowest validation loss",
        d.kind == "overfit" and d.turning_epoch == int(np.argmin(val)),
        f"{d.kind}, epoch {d.turning_epoch} (argmin {int(np.argmin(val))})",
    )
    res.check(
        "the confusion matrix counts every test digit once",
        np.array_equal(cm, by_hand) and cm.sum() == len(yt),
    )
    return res


# ---------------------------------------------------------------------------------- Q60
@experiment(
    60,
    claim="The output activation follows the task: for regression with targets in [-3, 3] a "
    "linear output fits (MSE < 5% of the targets' variance) while a sigmoid output cannot "
    "leave (0, 1) (MSE above half the variance); softmax gives one-of-K probabilities (rows "
    "sum to 1); for multi-label targets independent sigmoids get every label set right > 90% "
    "of the time, while softmax, whose probabilities compete, can mark at most one label and "
    "is right at most as often as examples have fewer than two labels.",
)
def output_activations(quick: bool, out_dir: Path) -> Result:
    rng = np.random.default_rng(60)
    epochs = 60 if quick else 150
    rows = []
    # regression: y = 3 sin(2x) on [-1.5, 1.5]
    x = np.linspace(-1.5, 1.5, 200, dtype=np.float32)[:, None]
    y = (3 * np.sin(2 * x)).astype(np.float32)
    fits = {}
    for act in ("linear", "sigmoid"):
        em.set_seed(60)
        model = em.Sequential(
            [layers.Dense(32, activation="tanh"), layers.Dense(1, activation=act)]
        )
        model.compile(optimizer=em.optimizers.Adam(0.02), loss="mse")
        model.fit(x, y, batch_size=100, epochs=epochs * 2, verbose=0)
        fits[act] = model.predict(x, verbose=0)
        mse = float(np.mean((fits[act] - y) ** 2))
        rows.append(
            {
                "task": "regression",
                "output": act,
                "measure": "MSE / var(y)",
                "value": mse / float(np.var(y)),
            }
        )
    # multi-label: label k is on when feature k > 0 (0 to 3 labels per example)
    xm = rng.normal(size=(600, 3)).astype(np.float32)
    ym = (xm > 0).astype(np.float32)
    setups = {
        "sigmoid": ("sigmoid", em.losses.BinaryCrossentropy()),
        "softmax": ("softmax", em.losses.CategoricalCrossentropy()),
    }
    for name, (act, loss) in setups.items():
        em.set_seed(60)
        model = em.Sequential(
            [layers.Dense(16, activation="relu"), layers.Dense(3, activation=act)]
        )
        model.compile(optimizer=em.optimizers.Adam(0.02), loss=loss)
        model.fit(xm, ym, batch_size=100, epochs=epochs, verbose=0)
        p = model.predict(xm, verbose=0)
        exact = float(np.mean(np.all((p > 0.5) == (ym > 0.5), axis=1)))
        rows.append(
            {
                "task": "multi-label (3 labels)",
                "output": name,
                "measure": "every label right",
                "value": exact,
            }
        )
        if name == "softmax":
            sums = p.sum(1)
    at_most_one = float(np.mean(ym.sum(1) <= 1))
    rows.append(
        {
            "task": "multi-label (3 labels)",
            "output": "-",
            "measure": "examples with < 2 labels",
            "value": at_most_one,
        }
    )
    fig, axes = new_figure(ncols=2, size=(3.6, 3))
    axes[0].plot(x, y, "k.", ms=2, label="target")
    for act, f in fits.items():
        axes[0].plot(x, f, label=f"{act} output")
    axes[0].legend(fontsize=7)
    axes[0].set_title("regression", fontsize=9)
    axes[1].bar(range(3), [r["value"] for r in rows[2:5]], color=["C0", "C1", "C7"])
    axes[1].set_xticks(range(3), ["sigmoid", "softmax", "< 2 labels"], fontsize=8)
    axes[1].set_title("multi-label: all labels right", fontsize=9)
    res = Result(table=rows, figures=[save_figure(fig, out_dir, "output_activations")])
    lin, sig, ml_sig, ml_soft = (r["value"] for r in rows[:4])
    res.check("regression, linear output: MSE < 5% of var", lin < 0.05, f"{lin:.3f}")
    res.check(
        "regression, sigmoid output: stuck in (0, 1), MSE > half the variance",
        sig > 0.5 and fits["sigmoid"].min() >= 0 and fits["sigmoid"].max() <= 1,
        f"{sig:.3f}; outputs in [{fits['sigmoid'].min():.3f}, {fits['sigmoid'].max():.3f}]",
    )
    res.check(
        "softmax rows sum to 1",
        np.abs(sums - 1).max() < 1e-5,
        f"max |sum - 1| {np.abs(sums - 1).max():.1e}",
    )
    res.check("multi-label, sigmoid: > 90% all right", ml_sig > 0.9, f"{ml_sig:.1%}")
    res.check(
        "multi-label, softmax: at most the share with < 2 labels",
        ml_soft <= at_most_one,
        f"{ml_soft:.1%} vs {at_most_one:.1%}",
    )
    return res


# ---------------------------------------------------------------------------------- Q70
def _but_sentences(n: int, seed: int):
    """Sentences 'the <thing> was <adj> but the <thing> was <adj>' with one positive and one
    negative adjective; the label is the sentiment of the clause after 'but' (1: positive).
    Every sentence's words appear in both orders, so word counts alone carry no label."""
    rng = np.random.default_rng(seed)
    things = ["food", "service", "staff", "music", "room", "price", "view", "coffee"]
    good = ["good", "great", "friendly", "tasty", "lovely"]
    bad = ["bad", "awful", "rude", "cold", "bland"]
    texts, labels = [], []
    for _ in range(n):
        a, b = rng.choice(things, 2, replace=False)
        pos, neg = rng.choice(good), rng.choice(bad)
        last_positive = int(rng.integers(0, 2))
        first, second = (neg, pos) if last_positive else (pos, neg)
        texts.append(f"the {a} was {first} but the {b} was {second}")
        labels.append(last_positive)
    return texts, np.array(labels, np.int64)


@experiment(
    70,
    claim="Word order carries meaning and an RNN reads it: on sentences such as 'the food was "
    "good but the service was bad', whose sentiment is that of the clause after 'but', a "
    "bag-of-words model (the average of the word embeddings) cannot beat chance (< 60% on new "
    "sentences) because both orders hold the same words, while a SimpleRNN reading the same "
    "embeddings in order gets > 95% and flips its answer when the two adjectives swap places.",
    helpers=(_but_sentences,),
)
def rnns_read_order(quick: bool, out_dir: Path) -> Result:
    from ember.data import text

    texts, y = _but_sentences(3000 if quick else 6000, seed=70)
    test_texts, yt = _but_sentences(500, seed=71)
    vectorizer = text.TextVectorization()
    vectorizer.adapt(texts)
    x, xt = vectorizer(texts), vectorizer(test_texts)
    size = vectorizer.vocabulary_size()
    models = {
        "bag of words": em.Sequential(
            [
                layers.Embedding(size, 16),
                layers.GlobalAveragePooling1D(),
                layers.Dense(16, activation="relu"),
                layers.Dense(2),
            ]
        ),
        "SimpleRNN": em.Sequential(
            [layers.Embedding(size, 16), layers.SimpleRNN(16), layers.Dense(2)]
        ),
    }
    probe = [
        "the food was good but the service was bad",
        "the food was bad but the service was good",
    ]
    rows = []
    for name, model in models.items():
        model.compile(optimizer=em.optimizers.Adam(0.01), loss=common.classifier_loss())
        model.fit(x, y, batch_size=32, epochs=1 if quick else 2, verbose=0)
        with em.no_grad():
            p = model(vectorizer(probe)).softmax().numpy()[:, 1]
        rows.append(
            {
                "model": name,
                "parameters": model.count_params(),
                "test accuracy": common.accuracy(model, xt, yt),
                "p(positive): '...good but ... bad'": float(p[0]),
                "p(positive): '...bad but ... good'": float(p[1]),
            }
        )
    fig, (ax,) = new_figure(size=(5, 3))
    ax.bar([0, 1], [r["test accuracy"] for r in rows], color=["tab:gray", "tab:blue"])
    ax.axhline(0.5, color="k", ls=":", label="chance")
    ax.set_xticks([0, 1], [r["model"] for r in rows])
    ax.set_ylabel("test accuracy")
    ax.legend(fontsize=8)
    res = Result(
        table=rows,
        figures=[save_figure(fig, out_dir, "word_order")],
        notes="e.g. " + "; ".join(f"'{t}' -> {lab}" for t, lab in zip(texts[:3], y[:3])),
    )
    bow, rnn = rows
    res.check("bag of words: < 60%", bow["test accuracy"] < 0.6, f"{bow['test accuracy']:.1%}")
    res.check("SimpleRNN: > 95%", rnn["test accuracy"] > 0.95, f"{rnn['test accuracy']:.1%}")
    p_good, p_bad = (
        rnn["p(positive): '...good but ... bad'"],
        rnn["p(positive): '...bad but ... good'"],
    )
    res.check("the RNN flips with the order", p_good < 0.5 < p_bad, f"{p_good:.2f} -> {p_bad:.2f}")
    return res


# ---------------------------------------------------------------------------------- Q74
def _digit_net(outputs: int):
    """A small MLP with batch norm: the 'pre-trained model' of the fine-tuning experiment."""
    return em.Sequential(
        [
            layers.Flatten(),
            layers.Dense(64, activation="relu"),
            layers.BatchNormalization(),
            layers.Dense(64, activation="relu"),
            layers.Dense(outputs),
        ]
    )


@experiment(
    74,
    claim="Fine-tuning reuses what a trained model learned: a digits classifier trained on 700 "
    "images gets a new head for a new task (odd or even) learned from just 10 labelled "
    "images (one per digit); with its base frozen, training the head leaves every base weight "
    "and batch-norm statistic bit-for-bit unchanged and, averaged over draws of the 10 "
    "images (3 quick, 5 full), beats the same network trained from scratch on them by more "
    "than 5 points; unfreezing it and fine-tuning at a 100x lower rate moves the base "
    "weights by under 5%.",
    helpers=(_digit_net,),
)
def fine_tuning(quick: bool, out_dir: Path) -> Result:
    from ember.models import transfer

    (x, y), (xt, yt) = common.digits()
    pretrained = _digit_net(10)
    pretrained.compile(optimizer=em.optimizers.Adam(0.01), loss=common.classifier_loss())
    pretrained.fit(x[:700], y[:700], batch_size=64, epochs=8, verbose=0)
    source_acc = common.accuracy(pretrained, xt, yt)
    saved = pretrained.get_weights()
    pool = np.arange(700, len(x))  # images the pre-trained model never saw
    rows, kept, moved, draws = [], [], [], 3 if quick else 5
    for draw in range(draws):
        rng = np.random.default_rng(draw)
        idx = np.array([rng.choice(pool[y[pool] == d]) for d in range(10)])
        xs, ys = x[idx], y[idx] % 2
        em.set_seed(74 + draw)
        scratch = _digit_net(2)
        scratch.compile(optimizer=em.optimizers.Adam(0.01), loss=common.classifier_loss())
        scratch.fit(xs, ys, batch_size=10, epochs=30, verbose=0)
        base = _digit_net(10)
        base(x[:1])
        base.set_weights(saved)  # "load" the pre-trained model
        transfer.freeze(base)
        model = transfer.replace_head(base, [layers.Dense(2)])
        model.compile(optimizer=em.optimizers.Adam(0.01), loss=common.classifier_loss())
        model.fit(xs, ys, batch_size=10, epochs=30, verbose=0)
        after = base.get_weights()
        kept.append(all(np.array_equal(a, b) for a, b in zip(saved[:-2], after[:-2])))
        head_acc = common.accuracy(model, xt, yt % 2)
        transfer.unfreeze(model)
        model.compile(optimizer=em.optimizers.Adam(1e-4), loss=common.classifier_loss())
        model.fit(xs, ys, batch_size=10, epochs=10 if quick else 30, verbose=0)
        change = max(
            float(np.linalg.norm(a - b) / np.linalg.norm(b))
            for a, b in zip(base.get_weights()[:-2], saved[:-2])
            if b.ndim == 2
        )
        moved.append(change)
        rows.append(
            {
                "draw of 10 images": draw,
                "from scratch": common.accuracy(scratch, xt, yt % 2),
                "frozen base + new head": head_acc,
                "then fine-tuned (lr / 100)": common.accuracy(model, xt, yt % 2),
                "largest relative change of a base kernel": change,
            }
        )
    cols = ["from scratch", "frozen base + new head", "then fine-tuned (lr / 100)"]
    mean = {c: float(np.mean([r[c] for r in rows])) for c in cols}
    rows.append(
        {
            "draw of 10 images": "mean",
            **mean,
            "largest relative change of a base kernel": float(np.max(moved)),
        }
    )
    fig, (ax,) = new_figure(size=(5, 3))
    for i, c in enumerate(cols):
        ax.bar(i, mean[c], color=["tab:gray", "tab:blue", "tab:green"][i])
        ax.plot([i] * draws, [r[c] for r in rows[:draws]], "k.", ms=4)
    ax.set_xticks(range(3), ["scratch", "frozen + head", "fine-tuned"])
    ax.set_ylim(0.5, 1)
    ax.set_ylabel("odd/even test accuracy")
    ax.set_title(f"10 labels; the base read digits at {source_acc:.0%}", fontsize=8)
    res = Result(table=rows, figures=[save_figure(fig, out_dir, "fine_tuning")])
    res.check("the frozen base (kernels, BN statistics) stays bit-for-bit", all(kept))
    gain = mean["frozen base + new head"] - mean["from scratch"]
    res.check(
        "the new head beats scratch by > 5 points on average",
        gain > 0.05,
        f"{mean['frozen base + new head']:.1%} vs {mean['from scratch']:.1%}",
    )
    res.check(
        "fine-tuning at lr / 100 moves the base < 5%",
        max(moved) < 0.05,
        f"largest change {max(moved):.2%}",
    )
    return res


# ---------------------------------------------------------------------------------- Q66
def _memory_curve(states, inputs, lags):
    """R^2 of recovering the input `lag` steps back from the final hidden state with a linear
    readout (least squares fitted on one half of the sequences, scored on the other)."""
    h = np.concatenate([states, np.ones((len(states), 1))], 1).astype(np.float64)
    half, out = len(h) // 2, []
    for lag in lags:
        target = inputs[:, -1 - lag].astype(np.float64)
        coef = np.linalg.lstsq(h[:half], target[:half], rcond=None)[0]
        err = h[half:] @ coef - target[half:]
        out.append(1 - float(np.mean(err**2) / np.var(target[half:])))
    return out


@experiment(
    66,
    claim="The hidden state h_t is the RNN's whole memory: ember's SimpleRNN computes h_t = "
    "tanh(x_t W + h_{t-1} U + b) step by step (equal to a NumPy loop to 1e-5); running the "
    "first 20 steps, then the last 20 starting from the returned state, gives exactly the "
    "state of one 40-step run; and a linear readout of the final state of an untrained "
    "32-unit RNN recovers the last input (R^2 > 0.95) and the one 5 steps back (R^2 > 0.9), "
    "while inputs 35 steps back have faded (R^2 < 0.5).",
    helpers=(_memory_curve,),
)
def hidden_state(quick: bool, out_dir: Path) -> Result:
    rng = np.random.default_rng(66)
    x = rng.uniform(-1, 1, (2000, 40, 1)).astype(np.float32)
    rnn = layers.SimpleRNN(32, return_sequences=True, return_state=True)
    seq, last = (a.numpy() for a in rnn(x))
    kernel, recurrent, bias = rnn.get_weights()
    h = np.zeros((len(x), 32))
    for t in range(x.shape[1]):  # the recurrence, by hand
        h = np.tanh(x[:, t] @ kernel + h @ recurrent + bias)
    by_hand = float(np.abs(h - last).max())
    first, mid = (a.numpy() for a in rnn(x[:, :20]))
    _, resumed = (a.numpy() for a in rnn(x[:, 20:], initial_state=mid))
    carried = float(np.abs(resumed - last).max())
    lags = list(range(0, 40, 1 if not quick else 5))
    r2 = _memory_curve(last, x[:, :, 0], lags)
    rows = [{"steps back": k, "R^2 of a linear readout from h_T": v} for k, v in zip(lags, r2)]
    fig, axes = new_figure(ncols=2, size=(3.6, 3))
    axes[0].plot(lags, r2, "o-", ms=3)
    axes[0].axhline(0.5, color="k", ls=":")
    axes[0].set_xlabel("steps back")
    axes[0].set_ylabel("R^2 of recovering that input")
    axes[0].set_title("what h_T remembers", fontsize=9)
    axes[1].imshow(seq[0].T, aspect="auto", cmap="RdBu_r", vmin=-1, vmax=1)
    axes[1].set_xlabel("time step")
    axes[1].set_ylabel("unit")
    axes[1].set_title("h_t of one sequence", fontsize=9)
    res = Result(
        table=rows, figures=[save_figure(fig, out_dir, "hidden_state")], notes=rnn.explain()
    )
    score = dict(zip(lags, r2))
    res.check("h_t = tanh(x_t W + h_{t-1} U + b)", by_hand < 1e-5, f"max diff {by_hand:.1e}")
    res.check(
        "the state carries everything: 20 + 20 steps = 40 steps",
        carried < 1e-6,
        f"max diff {carried:.1e}",
    )
    res.check("the last input: R^2 > 0.95", score[0] > 0.95, f"{score[0]:.3f}")
    res.check("5 steps back: R^2 > 0.9", score[5] > 0.9, f"{score[5]:.3f}")
    res.check("35 steps back: faded (R^2 < 0.5)", score[35] < 0.5, f"{score[35]:.3f}")
    return res


# ---------------------------------------------------------------------------------- Q67
def _lstm_gates(x, kernel, recurrent, bias):
    """The LSTM's gates at every step, from its weights (Keras order i, f, c, o), in NumPy:
    a dict of (N, T, units) arrays i, f, g (the candidate), o, c and h."""
    n, steps, _ = x.shape
    u = recurrent.shape[0]
    h, c = np.zeros((n, u)), np.zeros((n, u))
    out = {k: [] for k in "ifgoch"}
    for t in range(steps):
        z = x[:, t] @ kernel + h @ recurrent + bias
        i, f = 1 / (1 + np.exp(-z[:, :u])), 1 / (1 + np.exp(-z[:, u : 2 * u]))
        g, o = np.tanh(z[:, 2 * u : 3 * u]), 1 / (1 + np.exp(-z[:, 3 * u :]))
        c = f * c + i * g  # forget some of the old cell, write some of the candidate
        h = o * np.tanh(c)  # read some of the cell out
        for k, v in zip("ifgoch", (i, f, g, o, c, h)):
            out[k].append(v)
    return {k: np.stack(v, 1) for k, v in out.items()}


@experiment(
    67,
    claim="An LSTM has three sigmoid gates around its cell. Read off ember's layer (the "
    "equations reproduce its h and c to 1e-5), each gate's job shows when it is forced: with "
    "the forget gate shut the last output no longer depends on the first input (change < 1e-6); "
    "held open, the cell is the running sum of i_t g_t; with the input gate shut nothing is "
    "written (c stays 0); with the output gate shut h is 0 while the cell still holds values. "
    "At initialisation the forget gate averages about sigmoid(1) = 0.73 (the unit forget bias), "
    "the input and output gates about 0.5.",
    helpers=(_lstm_gates,),
)
def lstm_gate_values(quick: bool, out_dir: Path) -> Result:
    em.set_floatx("float64")
    rng = np.random.default_rng(67)
    units, x = 8, rng.normal(size=(64, 20, 3))
    lstm = layers.LSTM(units, return_state=True)
    _, h_last, c_last = (a.numpy() for a in lstm(x))
    weights = lstm.get_weights()
    gates = _lstm_gates(x, *weights)
    match = max(
        float(np.abs(gates["h"][:, -1] - h_last).max()),
        float(np.abs(gates["c"][:, -1] - c_last).max()),
    )

    def forced(block: int, value: float, data):
        """The layer's final (h, c) with one gate's bias block set to value (+-20: 1 or 0)."""
        kernel, recurrent, bias = (w.copy() for w in weights)
        bias[block * units : (block + 1) * units] = value
        if block != 2:  # make the gate ignore its inputs too
            kernel[:, block * units : (block + 1) * units] = 0
            recurrent[:, block * units : (block + 1) * units] = 0
        lstm.set_weights([kernel, recurrent, bias])
        _, h, c = (a.numpy() for a in lstm(data))
        lstm.set_weights(weights)
        return h, c, _lstm_gates(data, kernel, recurrent, bias)

    x2 = x.copy()
    x2[:, 0] += 3.0  # change only the first input
    h_shut, _, _ = forced(1, -20.0, x)
    h_shut2, _, _ = forced(1, -20.0, x2)
    no_memory = float(np.abs(h_shut - h_shut2).max())
    _, c_open, g_open = forced(1, 20.0, x)
    running_sum = float(np.abs(c_open - (g_open["i"] * g_open["g"]).sum(1)).max())
    _, c_in, _ = forced(0, -20.0, x)
    h_out, c_out, _ = forced(3, -20.0, x)
    mean = {k: float(gates[k].mean()) for k in "ifo"}
    rows = [
        {
            "setting": "as initialised",
            "what to look at": "mean i / f / o",
            "measured": f"{mean['i']:.3f} / {mean['f']:.3f} / {mean['o']:.3f}",
        },
        {
            "setting": "forget gate shut (f = 0)",
            "what to look at": "max |change of h_T| when x_1 changes",
            "measured": f"{no_memory:.1e}",
        },
        {
            "setting": "forget gate open (f = 1)",
            "what to look at": "max |c_T - sum_t i_t g_t|",
            "measured": f"{running_sum:.1e}",
        },
        {
            "setting": "input gate shut (i = 0)",
            "what to look at": "max |c_T|",
            "measured": f"{np.abs(c_in).max():.1e}",
        },
        {
            "setting": "output gate shut (o = 0)",
            "what to look at": "max |h_T|, max |c_T|",
            "measured": f"{np.abs(h_out).max():.1e}, {np.abs(c_out).max():.2f}",
        },
    ]
    fig, axes = new_figure(ncols=2, size=(3.6, 3))
    for k, name in (("i", "input"), ("f", "forget"), ("o", "output")):
        axes[0].hist(gates[k].ravel(), bins=40, range=(0, 1), histtype="step", label=name)
    axes[0].legend(fontsize=7)
    axes[0].set_title("gate values at initialisation", fontsize=9)
    axes[1].plot(gates["c"][0, :, 0], label="c_t (cell)")
    axes[1].plot(gates["h"][0, :, 0], label="h_t (output)")
    axes[1].plot(gates["f"][0, :, 0], ":", label="f_t")
    axes[1].set_xlabel("time step")
    axes[1].legend(fontsize=7)
    res = Result(
        table=rows, figures=[save_figure(fig, out_dir, "lstm_gates")], notes=lstm.explain()
    )
    res.check("the equations reproduce the layer's h and c", match < 1e-5, f"{match:.1e}")
    res.check("forget shut: no memory of x_1", no_memory < 1e-6, f"{no_memory:.1e}")
    res.check("forget open: c = running sum of i g", running_sum < 1e-6, f"{running_sum:.1e}")
    res.check("input shut: nothing written", np.abs(c_in).max() < 1e-6)
    res.check(
        "output shut: h = 0, the cell still holds values",
        np.abs(h_out).max() < 1e-6 and np.abs(c_out).max() > 0.1,
    )
    res.check(
        "initial gates: f about 0.73, i and o about 0.5",
        abs(mean["f"] - 0.73) < 0.05
        and abs(mean["i"] - 0.5) < 0.05
        and abs(mean["o"] - 0.5) < 0.05,
        f"i {mean['i']:.3f}, f {mean['f']:.3f}, o {mean['o']:.3f}",
    )
    return res


# ---------------------------------------------------------------------------------- Q71
def _bptt_by_hand(x, w, u, b, v):
    """Backpropagation through time for h_t = tanh(x_t W + h_{t-1} U + b), loss = h_T . v,
    written out in NumPy: forward keeping every h_t, then backward from the last step to the
    first, carrying dL/dh back one step at a time. Returns (dW, dU, db, dx, the per-step
    terms h_{t-1}^T dz_t that add up to dU)."""
    n, steps, _ = x.shape
    hs = [np.zeros((n, u.shape[0]))]
    for t in range(steps):
        hs.append(np.tanh(x[:, t] @ w + hs[-1] @ u + b))
    dw, du, db, dx = np.zeros_like(w), np.zeros_like(u), np.zeros_like(b), np.zeros_like(x)
    terms = []
    dh = np.broadcast_to(v, hs[-1].shape)  # dL/dh_T
    for t in reversed(range(steps)):
        dz = dh * (1 - hs[t + 1] ** 2)  # through tanh
        dw += x[:, t].T @ dz
        terms.append(hs[t].T @ dz)  # this step's share of the shared U's gradient
        du += terms[-1]
        db += dz.sum(0)
        dx[:, t] = dz @ w.T
        dh = dz @ u.T  # dL/dh_{t-1}: one step further back
    return dw, du, db, dx, terms[::-1]


@experiment(
    71,
    claim="Backpropagation through time is the chain rule on the network unrolled over the "
    "steps, whose layers share one set of weights: ember's fused SimpleRNN and LSTM ops give "
    "the same gradients (inputs, kernels, biases) as the same recurrences unrolled step by "
    "step from primitive ops, and as a hand-written BPTT loop in NumPy (to 1e-10 in float64); "
    "the shared recurrent kernel's gradient is the sum over steps of h_{t-1}^T dz_t, and the "
    "terms of the earliest steps are the smallest (by > 10x).",
    helpers=(_bptt_by_hand,),
)
def bptt(quick: bool, out_dir: Path) -> Result:
    F = em.functional
    em.set_floatx("float64")
    rng = np.random.default_rng(71)
    n, steps, d, u = 4, 30, 3, 5
    x = rng.normal(size=(n, steps, d))
    v = rng.normal(size=u)
    rows = []
    for cell in ("SimpleRNN", "LSTM"):
        k = 1 if cell == "SimpleRNN" else 4
        params = [
            rng.normal(0, 0.5, (d, k * u)),
            rng.normal(0, 0.5, (u, k * u)),
            rng.normal(0, 0.1, k * u),
        ]
        fused = [em.tensor(a, requires_grad=True) for a in (x, *params)]
        op = F.simple_rnn if cell == "SimpleRNN" else F.lstm
        out = op(*fused, return_sequences=False)[0]
        (out * em.tensor(v)).sum().backward()
        # the same recurrence, one step at a time, from matmul, add, tanh, sigmoid, slicing
        unrolled = [em.tensor(a, requires_grad=True) for a in (x, *params)]
        xs, w, rec, b = unrolled
        h = c = em.tensor(np.zeros((n, u)))
        for t in range(steps):
            z = xs[:, t] @ w + h @ rec + b
            if cell == "SimpleRNN":
                h = z.tanh()
            else:  # gates i, f, c, o
                i, f = z[:, :u].sigmoid(), z[:, u : 2 * u].sigmoid()
                g, o = z[:, 2 * u : 3 * u].tanh(), z[:, 3 * u :].sigmoid()
                c = f * c + i * g
                h = o * c.tanh()
        (h * em.tensor(v)).sum().backward()
        for name, a, bb in zip(
            ("input x", "kernel W", "recurrent kernel U", "bias b"), fused, unrolled
        ):
            rows.append(
                {
                    "cell": cell,
                    "gradient of": name,
                    "max |fused - unrolled|": float(np.abs(a.grad - bb.grad).max()),
                }
            )
        if cell == "SimpleRNN":
            dw, du, db, dx, terms = _bptt_by_hand(x, *params, v)
            hand = {"input x": dx, "kernel W": dw, "recurrent kernel U": du, "bias b": db}
            for r, a in zip(rows[-4:], fused):
                r["max |fused - NumPy BPTT|"] = float(
                    np.abs(a.grad - hand[r["gradient of"]]).max()
                )
            term_sum = float(np.abs(sum(terms) - fused[2].grad).max())
            term_norms = [float(np.linalg.norm(t)) for t in terms]
    fig, (ax,) = new_figure(size=(5.5, 3.2))
    ax.semilogy(range(1, steps + 1), term_norms, "o-", ms=3)
    ax.set_xlabel("time step t")
    ax.set_ylabel("|h_{t-1}^T dz_t|")
    ax.set_title("each step's share of dL/dU (loss on the last step)", fontsize=9)
    res = Result(
        table=rows,
        figures=[save_figure(fig, out_dir, "bptt_terms")],
        values={"term_norms": term_norms},
    )
    worst = max(r["max |fused - unrolled|"] for r in rows)
    res.check("fused = unrolled, SimpleRNN and LSTM", worst < 1e-10, f"max diff {worst:.1e}")
    hand_worst = max(
        r["max |fused - NumPy BPTT|"] for r in rows if "max |fused - NumPy BPTT|" in r
    )
    res.check("fused = the NumPy BPTT loop", hand_worst < 1e-10, f"max diff {hand_worst:.1e}")
    res.check("dU = sum over steps of h_{t-1}^T dz_t", term_sum < 1e-10, f"{term_sum:.1e}")
    early, late = np.mean(term_norms[:5]), np.mean(term_norms[-5:])
    res.check(
        "the earliest steps' terms are > 10x smaller",
        early * 10 < late,
        f"first 5: {early:.2e}, last 5: {late:.2e}",
    )
    return res


# ---------------------------------------------------------------------------------- Q64
@experiment(
    64,
    claim="Initialise for the activation: through 20 Dense layers of 256 units, He (variance "
    "2/fan_in) keeps ReLU activations' scale (layer 20's std within 2x of layer 1's) where "
    "Glorot lets them shrink more than 100x; Glorot keeps tanh units out of saturation (< 5% "
    "beyond |0.99|) where unscaled N(0, 1) weights push over 75% of them there; LeCun with "
    "SELU self-normalises (mean within 0.1 of 0, std within 0.15 of 1 at layer 20); an "
    "orthogonal recurrent kernel keeps every state's norm (|h U| = |h|) and an LSTM's "
    "forget-gate bias starts at 1.",
)
def initialisation_schemes(quick: bool, out_dir: Path) -> Result:
    rng = np.random.default_rng(64)
    x = rng.normal(size=(512, 256)).astype(np.float32)
    combos = [
        ("relu", "he_normal"),
        ("relu", "glorot_normal"),
        ("tanh", "glorot_normal"),
        ("tanh", "N(0, 1)"),
        ("selu", "lecun_normal"),
    ]
    rows, stds = [], {}
    for act, init in combos:
        h, per_layer = x, []
        with em.no_grad():
            for _ in range(20):
                scheme = em.initializers.RandomNormal(stddev=1.0) if init == "N(0, 1)" else init
                h = layers.Dense(256, activation=act, kernel_initializer=scheme)(h)
                per_layer.append(h.numpy())
        stds[(act, init)] = [float(a.std()) for a in per_layer]
        last = per_layer[-1]
        rows.append(
            {
                "activation": act,
                "initializer": init,
                "std layer 1": float(per_layer[0].std()),
                "std layer 20": float(last.std()),
                "mean layer 20": float(last.mean()),
                "layer 20 / layer 1": float(last.std() / per_layer[0].std()),
                "share |a| > 0.99": float(np.mean(np.abs(last) > 0.99)),
            }
        )
    ortho = layers.SimpleRNN(64)
    ortho(x[:2, None, :8])
    recurrent = ortho.get_weights()[1]
    hs = rng.normal(size=(100, 64)).astype(np.float32)
    norm_err = float(
        np.max(np.abs(np.linalg.norm(hs @ recurrent, axis=1) / np.linalg.norm(hs, axis=1) - 1))
    )
    lstm = layers.LSTM(16)
    lstm(x[:2, None, :8])
    bias = lstm.get_weights()[2]
    fig, (ax,) = new_figure(size=(5.5, 3.3))
    for (act, init), s in stds.items():
        ax.semilogy(range(1, 21), s, "o-", ms=3, label=f"{act} + {init}")
    ax.set_xlabel("layer")
    ax.set_ylabel("std of the activations")
    ax.legend(fontsize=7)
    res = Result(
        table=rows,
        figures=[save_figure(fig, out_dir, "init_schemes")],
        values={"orthogonal_norm_error": norm_err},
    )
    r = {(row["activation"], row["initializer"]): row for row in rows}
    he, gl = r[("relu", "he_normal")], r[("relu", "glorot_normal")]
    res.check(
        "ReLU + He: within 2x",
        0.5 < he["layer 20 / layer 1"] < 2,
        f"{he['layer 20 / layer 1']:.2f}",
    )
    res.check(
        "ReLU + Glorot: shrinks > 100x",
        gl["layer 20 / layer 1"] < 0.01,
        f"{gl['layer 20 / layer 1']:.1e}",
    )
    tg, th = r[("tanh", "glorot_normal")], r[("tanh", "N(0, 1)")]
    res.check(
        "tanh + Glorot: < 5% saturated",
        tg["share |a| > 0.99"] < 0.05,
        f"{tg['share |a| > 0.99']:.1%}",
    )
    res.check(
        "tanh + N(0, 1): > 75% saturated",
        th["share |a| > 0.99"] > 0.75,
        f"{th['share |a| > 0.99']:.1%}",
    )
    se = r[("selu", "lecun_normal")]
    res.check(
        "SELU + LeCun: mean ~ 0, std ~ 1",
        abs(se["mean layer 20"]) < 0.1 and abs(se["std layer 20"] - 1) < 0.15,
        f"mean {se['mean layer 20']:.3f}, std {se['std layer 20']:.3f}",
    )
    res.check("orthogonal recurrent kernel keeps norms", norm_err < 1e-5, f"{norm_err:.1e}")
    res.check(
        "LSTM biases: forget block 1, the rest 0",
        np.all(bias[16:32] == 1) and np.all(bias[:16] == 0) and np.all(bias[32:] == 0),
    )
    return res


# ---------------------------------------------------------------------------------- Q53
def _rules(name, w, g, state, lr):
    """One update of each optimizer in NumPy, as its explain() states it (Keras 3 forms)."""
    if name == "Adagrad":
        state["a"] = state.get("a", np.full_like(w, 0.1)) + g**2
        return w - lr * g / np.sqrt(state["a"] + 1e-7)
    if name == "RMSprop":
        state["v"] = 0.9 * state.get("v", np.zeros_like(w)) + 0.1 * g**2
        return w - lr * g / np.sqrt(state["v"] + 1e-7)
    if name == "AdamW":  # decoupled decay first, then Adam
        w = w - w * 0.004 * lr
        t = state["t"] = state.get("t", 0) + 1
        state["m"] = state.get("m", np.zeros_like(w)) + 0.1 * (g - state.get("m", 0))
        state["v"] = state.get("v", np.zeros_like(w)) + 0.001 * (g**2 - state.get("v", 0))
        alpha = lr * np.sqrt(1 - 0.999**t) / (1 - 0.9**t)
        return w - alpha * state["m"] / (np.sqrt(state["v"]) + 1e-7)
    raise ValueError(name)


@experiment(
    53,
    claim="The optimizers differ in what they subtract: Adagrad, RMSprop and AdamW take exactly "
    "the steps of their published rules (to 1e-12 in float64; SGD, momentum and Adam are "
    "checked in questions 72 and 45). Raced for 150 steps on the same digits network from the "
    "same start, every one of SGD, momentum, Nesterov, Adagrad, RMSprop, Adam and AdamW "
    "lowers the loss by more than half, and each with momentum or per-weight step sizes ends "
    "below plain SGD at the same learning rate.",
    helpers=(_rules,),
)
def optimizers_raced(quick: bool, out_dir: Path) -> Result:
    (x, y), (xt, yt) = common.digits()
    x, xt = x.reshape(len(x), -1), xt.reshape(len(xt), -1)
    makers = {
        "SGD": lambda p: em.optimizers.SGD(0.05, params=p),
        "momentum": lambda p: em.optimizers.SGD(0.05, momentum=0.9, params=p),
        "Nesterov": lambda p: em.optimizers.SGD(0.05, momentum=0.9, nesterov=True, params=p),
        "Adagrad": lambda p: em.optimizers.Adagrad(0.05, params=p),
        "RMSprop": lambda p: em.optimizers.RMSprop(0.002, params=p),
        "Adam": lambda p: em.optimizers.Adam(0.002, params=p),
        "AdamW": lambda p: em.optimizers.AdamW(0.002, params=p),
    }
    rows, curves, notes = [], {}, []
    for name, make in makers.items():
        em.set_seed(53)  # the same initial weights for every optimizer
        model = common.mlp([64], "relu", out_units=10)
        model(x[:1])
        opt = make(model.trainable_weights)
        notes.append(opt.explain())
        losses = common.train_steps(model, x, y, common.classifier_loss(), opt, 150, 32, seed=53)
        curves[name] = losses
        rows.append(
            {
                "optimizer": name,
                "learning rate": opt.learning_rate,
                "loss, first 5 steps": float(np.mean(losses[:5])),
                "loss, last 10 steps": float(np.mean(losses[-10:])),
                "test accuracy": common.accuracy(model, xt, yt),
            }
        )
    # the rules, step by step, in float64
    em.set_floatx("float64")
    rng = np.random.default_rng(53)
    rule_err = {}
    for name, cls in (
        ("Adagrad", em.optimizers.Adagrad),
        ("RMSprop", em.optimizers.RMSprop),
        ("AdamW", em.optimizers.AdamW),
    ):
        w0 = rng.normal(size=5)
        w, state, hand, worst = em.Parameter(w0.copy()), {}, w0.copy(), 0.0
        opt = cls(0.01, params=[w])
        for _ in range(5):
            ((w - 2.0) ** 2 * em.tensor(np.arange(1.0, 6.0))).sum().backward()
            g = w.grad.copy()
            opt.step()
            opt.zero_grad()
            hand = _rules(name, hand, g, state, 0.01)
            worst = max(worst, float(np.abs(w.numpy() - hand).max()))
        rule_err[name] = worst
    for r in rows:
        r["max |step - rule|"] = rule_err.get(r["optimizer"], "-")
    fig, (ax,) = new_figure(size=(5.5, 3.3))
    for name, losses in curves.items():
        ax.plot(np.convolve(losses, np.ones(10) / 10, mode="valid"), label=name)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (10-step mean)")
    ax.legend(fontsize=7, ncol=2)
    res = Result(
        table=rows, figures=[save_figure(fig, out_dir, "optimizers")], notes="\n\n".join(notes)
    )
    worst = max(rule_err.values())
    res.check("Adagrad, RMSprop, AdamW follow their rules", worst < 1e-12, f"max diff {worst:.1e}")
    res.check(
        "every optimizer halves the loss",
        all(r["loss, last 10 steps"] < 0.5 * r["loss, first 5 steps"] for r in rows),
        ", ".join(f"{r['optimizer']} {r['loss, last 10 steps']:.2f}" for r in rows),
    )
    sgd = rows[0]["loss, last 10 steps"]
    res.check(
        "momentum and adaptive methods end below plain SGD",
        all(r["loss, last 10 steps"] < sgd for r in rows[1:]),
        f"SGD {sgd:.3f}",
    )
    return res


# ---------------------------------------------------------------------------------- Q75
_RANK_SCRIPT = '''\
"""One rank of a data-parallel run (started by mpiexec): train on this rank's half of every
global batch; DataParallel averages the gradients over the ranks before each update."""
import sys

import numpy as np

import ember as em
from ember import layers
from ember.distributed import DataParallel

out, steps = sys.argv[1], int(sys.argv[2])
dp = DataParallel()
em.set_seed(75 + dp.rank)  # different starting weights on purpose: the broadcast fixes that
rng = np.random.default_rng(75)
x = rng.normal(size=(64, 8)).astype(np.float32)
y = (np.tanh(x @ rng.normal(size=(8, 1)))).astype(np.float32)
model = em.Sequential([layers.Dense(16, activation="tanh"), layers.Dense(1)])
model(x[:1])
dp.broadcast_weights(model)  # every replica starts from rank 0's weights
opt = dp.wrap_optimizer(em.optimizers.SGD(0.1, params=model.trainable_weights))
x_local, y_local = dp.split_batch(x, y)  # this rank's 32 of the 64 examples
for _ in range(steps):
    em.losses.MeanSquaredError()(y_local, model(x_local)).backward()
    opt.step()  # allreduce-mean of the gradients, then SGD
    opt.zero_grad()
np.save(f"{out}/rank{dp.rank}.npy", np.concatenate([w.ravel() for w in model.get_weights()]))
'''


def _data_parallel_problem():
    """The rank script's data and model: 64 examples, rank 0's starting weights."""
    rng = np.random.default_rng(75)
    x = rng.normal(size=(64, 8)).astype(np.float32)
    y = (np.tanh(x @ rng.normal(size=(8, 1)))).astype(np.float32)
    em.set_seed(75)
    model = em.Sequential([layers.Dense(16, activation="tanh"), layers.Dense(1)])
    model(x[:1])
    return x, y, model


def _flat(model) -> np.ndarray:
    return np.concatenate([w.ravel() for w in model.get_weights()])


@experiment(
    75,
    claim="Data parallelism: each replica holds the whole model, computes the gradient of its "
    "share of every batch, and the gradients are averaged before each update, so the replicas "
    "stay identical and train exactly like one model on the whole batch. Two replicas (two MPI "
    "processes under mpiexec when mpi4py is available, else simulated in one process) end 5 "
    "SGD steps with identical weights, equal to single-process training on the full batch "
    "(to 1e-6); the average of the two half-batch gradients is the full-batch gradient.",
    helpers=(_data_parallel_problem,),
)
def data_parallel(quick: bool, out_dir: Path) -> Result:
    import importlib.util
    import subprocess
    import sys
    import tempfile

    from ember.distributed.launch import find_mpiexec, rank_environment

    steps = 5
    mse = em.losses.MeanSquaredError()
    # the reference: one model, the whole batch of 64
    x, y, single = _data_parallel_problem()
    opt = em.optimizers.SGD(0.1, params=single.trainable_weights)
    for _ in range(steps):
        mse(y, single(x)).backward()
        opt.step()
        opt.zero_grad()
    # two replicas in this process: each its half, gradients averaged by hand
    _, _, a = _data_parallel_problem()
    _, _, b = _data_parallel_problem()
    halves = ((a, x[:32], y[:32]), (b, x[32:], y[32:]))
    opts = [em.optimizers.SGD(0.1, params=m.trainable_weights) for m, _, _ in halves]
    grad_err = None
    for _ in range(steps):
        for m, xs, ys in halves:
            mse(ys, m(xs)).backward()
        for pa, pb in zip(a.trainable_weights, b.trainable_weights):
            mean = (pa.grad + pb.grad) / 2  # the allreduce-mean
            pa.grad, pb.grad = mean, mean.copy()
        if grad_err is None:  # compare with the full-batch gradient at the same weights
            _, _, full = _data_parallel_problem()
            mse(y, full(x)).backward()
            grad_err = max(
                float(np.abs(p.grad - q.grad).max())
                for p, q in zip(full.trainable_weights, a.trainable_weights)
            )
        for o in opts:
            o.step()
            o.zero_grad()
    simulated = [_flat(a), _flat(b)]
    # two MPI processes, when mpi4py and mpiexec are there
    mpiexec = find_mpiexec()
    mode, ranks, why = "simulated in one process", simulated, ""
    if importlib.util.find_spec("mpi4py") is None or mpiexec is None:
        why = "mpi4py or mpiexec is not installed"
    else:
        with tempfile.TemporaryDirectory() as tmp:
            script = Path(tmp) / "rank.py"
            script.write_text(_RANK_SCRIPT)
            cmd = [mpiexec, "-n", "2", sys.executable, str(script), tmp, str(steps)]
            try:
                proc = subprocess.run(
                    cmd, capture_output=True, text=True, timeout=120, env=rank_environment(1)
                )
                if proc.returncode == 0:
                    ranks = [np.load(Path(tmp) / f"rank{r}.npy") for r in (0, 1)]
                    mode = "2 MPI processes (mpiexec -n 2)"
                else:
                    why = f"mpiexec failed: {proc.stderr.strip()[-300:]}"
            except subprocess.TimeoutExpired:
                why = "mpiexec did not finish in 120 s"
    reference = _flat(single)
    rows = [
        {
            "replica": f"{mode}: replica {r}",
            "max |weights - single-process run|": float(np.abs(w - reference).max()),
        }
        for r, w in enumerate(ranks)
    ]
    if ranks is not simulated:
        rows += [
            {
                "replica": f"simulated: replica {r}",
                "max |weights - single-process run|": float(np.abs(w - reference).max()),
            }
            for r, w in enumerate(simulated)
        ]
    fig, (ax,) = new_figure(size=(5, 3))
    ax.plot(reference, "k.", ms=6, label="single process, batch 64")
    ax.plot(ranks[0], "o", mfc="none", ms=8, label=f"replica 0 ({mode})")
    ax.plot(ranks[1], "x", ms=5, label="replica 1")
    ax.set_xlabel("weight index")
    ax.set_ylabel(f"value after {steps} steps")
    ax.legend(fontsize=7)
    res = Result(
        table=rows,
        figures=[save_figure(fig, out_dir, "replicas")],
        notes=f"ran as: {mode}"
        + (f" ({why})" if why else "")
        + "\n\nThe script each MPI rank runs:\n"
        + _RANK_SCRIPT,
        values={"mode": mode},
    )
    same = float(np.abs(ranks[0] - ranks[1]).max())
    res.check(f"replicas identical ({mode})", same < 1e-6, f"max diff {same:.1e}")
    worst = max(r["max |weights - single-process run|"] for r in rows)
    res.check(
        "equal to single-process training on the full batch", worst < 1e-6, f"max diff {worst:.1e}"
    )
    res.check(
        "mean of the half-batch gradients = the full-batch gradient",
        grad_err < 1e-6,
        f"{grad_err:.1e}",
    )
    return res
