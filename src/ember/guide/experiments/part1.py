"""Experiments for part 1 of the guide (foundations, questions 1-17)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import ember as em
from ember import layers
from ember.guide.experiments import common
from ember.guide.registry import Result, experiment, new_figure, save_figure


# ---------------------------------------------------------------------------------- Q1
@experiment(
    1,
    claim="A network with two hidden ReLU layers learns its own features and fits two "
    "interleaved spirals (training accuracy > 90%), while a linear model of the raw "
    "coordinates stays below 70%.",
    helpers=(common.grid_predict,),
)
def deep_vs_linear_on_spirals(quick: bool, out_dir: Path) -> Result:
    (x, y), _ = em.datasets.spirals(n_samples=400 if quick else 1000, noise=0.2, seed=1)
    epochs = 120 if quick else 300
    models = {
        "linear model": em.Sequential([layers.Dense(2)]),
        "2 hidden layers": common.mlp([32, 32], "relu", out_units=2),
    }
    fig, axes = new_figure(ncols=2, size=(3.4, 3.2))
    rows = []
    for ax, (name, model) in zip(axes, models.items()):
        model.compile(optimizer=em.optimizers.Adam(0.01), loss=common.classifier_loss())
        model.fit(x, y, batch_size=64, epochs=epochs, verbose=0)
        acc = common.accuracy(model, x, y)
        rows.append({"model": name, "parameters": model.count_params(), "train accuracy": acc})
        gx, gy, score = common.grid_predict(model)
        ax.contourf(gx, gy, score > 0, levels=1, cmap="coolwarm", alpha=0.3)
        ax.scatter(x[:, 0], x[:, 1], c=y, s=4, cmap="coolwarm")
        ax.set_title(f"{name}: {acc:.0%}")
        ax.set_xticks([])
        ax.set_yticks([])
    res = Result(table=rows, figures=[save_figure(fig, out_dir, "spirals")])
    lin, deep = rows[0]["train accuracy"], rows[1]["train accuracy"]
    res.values.update(linear=lin, deep=deep)
    res.check("the network with hidden layers fits the spirals (> 90%)", deep > 0.9, f"{deep:.1%}")
    res.check("the linear model stays below 70%", lin < 0.7, f"{lin:.1%}")
    return res


# ---------------------------------------------------------------------------------- Q2
@experiment(
    2,
    claim="One hidden layer of 8 tanh units computes XOR (all four points on the right side, "
    "loss < 0.05), which no single linear unit can: trained logistic regression gets at most "
    "3 of the 4 points.",
)
def xor_needs_a_hidden_layer(quick: bool, out_dir: Path) -> Result:
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
    y = np.array([[0], [1], [1], [0]], np.float32)
    loss_fn = em.losses.BinaryCrossentropy(from_logits=True)
    models = {
        "logistic regression": em.Sequential([layers.Dense(1)]),
        "8 tanh hidden units": em.Sequential(
            [layers.Dense(8, activation="tanh"), layers.Dense(1)]
        ),
    }
    outputs, losses = {}, {}
    for name, model in models.items():
        model(x)  # build the weights, so the optimizer can be handed them
        opt = em.optimizers.Adam(0.05, params=model.trainable_weights)
        for _ in range(300 if quick else 1000):
            loss = loss_fn(y, model(x, training=True))
            loss.backward()
            opt.step()
            opt.zero_grad()
        with em.no_grad():
            outputs[name] = np.asarray(model(x).sigmoid().data)[:, 0]
            losses[name] = float(loss_fn(y, model(x)).item())
    rows = [
        {
            "x1": int(a),
            "x2": int(b),
            "target": int(t),
            **{f"p({k})": float(outputs[k][i]) for k in outputs},
        }
        for i, ((a, b), t) in enumerate(zip(x, y[:, 0]))
    ]
    right = {k: int(np.sum((v > 0.5) == (y[:, 0] > 0.5))) for k, v in outputs.items()}
    fig, axes = new_figure(ncols=2, size=(3.2, 3.0))
    grid = np.linspace(-0.25, 1.25, 80, dtype=np.float32)
    gx, gy = np.meshgrid(grid, grid)
    for ax, (name, model) in zip(axes, models.items()):
        with em.no_grad():
            p = np.asarray(model(np.stack([gx.ravel(), gy.ravel()], 1)).sigmoid().data)
        ax.contourf(gx, gy, p.reshape(gx.shape), levels=[0, 0.5, 1], cmap="coolwarm", alpha=0.35)
        ax.scatter(x[:, 0], x[:, 1], c=y[:, 0], cmap="coolwarm", s=80, edgecolors="k")
        ax.set_title(f"{name}: {right[name]}/4 right")
    res = Result(table=rows, values={"correct": right, "loss": losses})
    res.figures.append(save_figure(fig, out_dir, "xor"))
    deep = "8 tanh hidden units"
    res.check(
        "the hidden layer gets all 4 points with loss < 0.05",
        right[deep] == 4 and losses[deep] < 0.05,
        f"{right[deep]}/4, loss {losses[deep]:.4f}",
    )
    res.check(
        "logistic regression gets at most 3 of 4",
        right["logistic regression"] <= 3,
        f"{right['logistic regression']}/4",
    )
    return res


# ---------------------------------------------------------------------------------- Q3
@experiment(
    3,
    claim="Three Dense layers with no activation compute exactly one linear map (the product "
    "of their kernels, max difference < 1e-5) and, like a single linear layer, cannot separate "
    "two concentric rings (accuracy < 70%); with ReLU between them the same MLP exceeds 95%.",
    helpers=(common.circles,),
)
def mlp_needs_nonlinearity(quick: bool, out_dir: Path) -> Result:
    x, y = common.circles(300 if quick else 800, seed=3)
    epochs = 100 if quick else 250
    rows, fig_models = [], {}
    for name, act in (("no activation", None), ("ReLU", "relu")):
        model = common.mlp([16, 16], act, out_units=2)
        model.compile(optimizer=em.optimizers.Adam(0.02), loss=common.classifier_loss())
        model.fit(x, y, batch_size=64, epochs=epochs, verbose=0)
        rows.append({"hidden activation": name, "accuracy": common.accuracy(model, x, y)})
        fig_models[name] = model
    # collapse the linear stack by hand: x W1 W2 W3 + (b1 W2 W3 + b2 W3 + b3)
    d1, d2, d3 = fig_models["no activation"].layers
    w = d1.kernel.numpy() @ d2.kernel.numpy() @ d3.kernel.numpy()
    b = (d1.bias.numpy() @ d2.kernel.numpy() + d2.bias.numpy()) @ d3.kernel.numpy()
    b = b + d3.bias.numpy()
    with em.no_grad():
        stacked = fig_models["no activation"](x).numpy()
    collapse = float(np.max(np.abs(stacked - (x @ w + b))))
    fig, axes = new_figure(ncols=2, size=(3.2, 3.0))
    for ax, (name, model) in zip(axes, fig_models.items()):
        gx, gy, score = common.grid_predict(model)
        ax.contourf(gx, gy, score > 0, levels=1, cmap="coolwarm", alpha=0.3)
        ax.scatter(x[:, 0], x[:, 1], c=y, s=4, cmap="coolwarm")
        ax.set_title(f"{name}: {common.accuracy(model, x, y):.0%}")
    res = Result(table=rows, figures=[save_figure(fig, out_dir, "rings")])
    res.values.update(collapse_error=collapse)
    lin, relu = rows[0]["accuracy"], rows[1]["accuracy"]
    res.check("the linear stack equals one matrix product", collapse < 1e-5, f"{collapse:.2e}")
    res.check("without activations it stays below 70%", lin < 0.7, f"{lin:.1%}")
    res.check("with ReLU it exceeds 95%", relu > 0.95, f"{relu:.1%}")
    return res


# ---------------------------------------------------------------------------------- Q4
@experiment(
    4,
    claim="On two features whose scales differ 100-fold, gradient descent at the largest safe "
    "learning rate (1/largest Hessian eigenvalue) is still > 10x above the optimal loss after "
    "200 steps, while on standardised features it gets within 1% of the optimum.",
)
def normalization_conditions_the_problem(quick: bool, out_dir: Path) -> Result:
    rng = np.random.default_rng(4)
    n = 500
    raw = np.stack([rng.normal(1.0, 0.5, n), rng.normal(100.0, 50.0, n)], 1).astype(np.float32)
    y = (2.0 * raw[:, :1] - 0.03 * raw[:, 1:] + rng.normal(0, 0.1, (n, 1))).astype(np.float32)
    scaled = em.data.StandardScaler().fit(raw).transform(raw).astype(np.float32)
    steps = 200
    rows, curves = [], {}
    for name, x in (("raw", raw), ("standardised", scaled)):
        # the loss is mean((x w + b - y)^2): its Hessian is 2/N [x 1]^T [x 1]
        xb = np.concatenate([x, np.ones((n, 1), np.float32)], 1).astype(np.float64)
        eig = np.linalg.eigvalsh(2 / n * xb.T @ xb)
        sol = np.linalg.lstsq(xb, y.astype(np.float64), rcond=None)[0]
        best = float(np.mean((xb @ sol - y) ** 2))
        model = em.Sequential([layers.Dense(1, kernel_initializer="zeros")])
        model(x[:1])
        opt = em.optimizers.SGD(1.0 / eig[-1], params=model.trainable_weights)
        losses = []
        for _ in range(steps):
            loss = em.losses.MeanSquaredError()(y, model(x))
            loss.backward()
            opt.step()
            opt.zero_grad()
            losses.append(float(loss.item()))
        curves[name] = losses
        rows.append(
            {
                "features": name,
                "condition number": float(eig[-1] / eig[0]),
                "learning rate": float(1.0 / eig[-1]),
                "optimal loss": best,
                "loss after 200 steps": losses[-1],
                "ratio to optimum": losses[-1] / best,
            }
        )
    fig, (ax,) = new_figure(size=(5, 3.2))
    for name, losses in curves.items():
        ax.semilogy(losses, label=name)
    ax.axhline(rows[0]["optimal loss"], color="k", ls=":", label="optimum")
    ax.set_xlabel("gradient-descent step")
    ax.set_ylabel("training MSE")
    ax.legend()
    res = Result(table=rows, figures=[save_figure(fig, out_dir, "loss_curves")])
    raw_ratio, std_ratio = rows[0]["ratio to optimum"], rows[1]["ratio to optimum"]
    res.check("raw features: still > 10x the optimum", raw_ratio > 10, f"{raw_ratio:.1f}x")
    res.check("standardised: within 1% of the optimum", std_ratio < 1.01, f"{std_ratio:.4f}x")
    return res


# ---------------------------------------------------------------------------------- Q5
@experiment(
    5,
    claim="A restricted Boltzmann machine trained by contrastive divergence on binarised digits "
    "halves its reconstruction error and gives real digits a lower free energy (higher "
    "probability) than 95% of random images with the same ink density; the figure shows "
    "where its Gibbs chains wander from real digits.",
)
def rbm_learns_digits(quick: bool, out_dir: Path) -> Result:
    (x, _), (xt, _) = common.digits()
    v = (x.reshape(len(x), -1) > 0.5).astype(np.float32)
    vt = (xt.reshape(len(xt), -1) > 0.5).astype(np.float32)
    rbm = em.models.RBM(64, k=1, learning_rate=0.05, momentum=0.5, batch_size=20, seed=5)
    rbm.build(v.shape)
    before = rbm.reconstruction_error(vt)
    history = rbm.fit(v, epochs=8 if quick else 30, verbose=0)
    after = rbm.reconstruction_error(vt)
    noise = (np.random.default_rng(5).random(vt.shape) < vt.mean()).astype(np.float32)
    f_real, f_noise = rbm.free_energy(vt), rbm.free_energy(noise)
    share = float(np.mean(f_real[:, None] < f_noise[None, :]))
    samples = rbm.gibbs(vt[:8], steps=200 if quick else 1000, mean=True)
    fig, axes = new_figure(ncols=8, nrows=2, size=(0.9, 1.0))
    for i in range(8):
        axes[i].imshow(vt[i].reshape(8, 8), cmap="gray_r")
        axes[8 + i].imshow(samples[i].reshape(8, 8), cmap="gray_r")
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0].set_ylabel("start")
    axes[8].set_ylabel("Gibbs")
    errors = history.history["reconstruction_error"]
    res = Result(
        table=[{"epoch": i + 1, "reconstruction error": e} for i, e in enumerate(errors)][-10:],
        figures=[save_figure(fig, out_dir, "gibbs_samples")],
        values={"before": before, "after": after, "free_energy_share": share},
    )
    res.table.insert(0, {"epoch": 0, "reconstruction error": before})
    res.check(
        "reconstruction error at least halves",
        after < 0.5 * before,
        f"{before:.4f} -> {after:.4f}",
    )
    res.check(
        "real digits have lower free energy than >= 95% of noise images",
        share >= 0.95,
        f"{share:.1%} of (digit, noise) pairs",
    )
    return res


# ---------------------------------------------------------------------------------- Q6
@experiment(
    6,
    claim="Without activation functions a three-layer network fitting sin(3x) does no better "
    "than the least-squares straight line (MSE within 2% of it); with tanh the same network's "
    "MSE is below 10% of the line's.",
)
def activations_make_it_nonlinear(quick: bool, out_dir: Path) -> Result:
    x = np.linspace(-1, 1, 200, dtype=np.float32)[:, None]
    y = np.sin(3 * x).astype(np.float32)
    slope, intercept = np.polyfit(x[:, 0], y[:, 0], 1)
    line_mse = float(np.mean((slope * x + intercept - y) ** 2))
    rows, fits = [{"model": "least-squares line", "MSE": line_mse, "vs line": 1.0}], {}
    for name, act in (("3 layers, no activation", None), ("3 layers, tanh", "tanh")):
        model = common.mlp([32, 32], act, out_units=1)
        model.compile(optimizer=em.optimizers.Adam(0.01), loss="mean_squared_error")
        model.fit(x, y, batch_size=50, epochs=150 if quick else 400, verbose=0)
        with em.no_grad():
            fits[name] = model(x).numpy()
        mse = float(np.mean((fits[name] - y) ** 2))
        rows.append({"model": name, "MSE": mse, "vs line": mse / line_mse})
    fig, (ax,) = new_figure(size=(5, 3.2))
    ax.plot(x, y, "k.", ms=3, label="sin(3x)")
    ax.plot(x, slope * x + intercept, "k:", label="least-squares line")
    for name, f in fits.items():
        ax.plot(x, f, label=name)
    ax.legend(fontsize=8)
    res = Result(table=rows, figures=[save_figure(fig, out_dir, "fits")])
    lin, tanh = rows[1]["vs line"], rows[2]["vs line"]
    res.check("no activation: MSE within 2% of the line's", abs(lin - 1) < 0.02, f"{lin:.3f}x")
    res.check("tanh: MSE below 10% of the line's", tanh < 0.1, f"{tanh:.3f}x")
    return res


# ---------------------------------------------------------------------------------- Q7
@experiment(
    7,
    claim="For a sigmoid output that is confidently wrong (logit -7 for target 1), the "
    "cross-entropy's gradient with respect to the logit is p - y (about -1), while mean squared "
    "error's is 2(p - y)p(1 - p), over 100x smaller: cross-entropy keeps learning where MSE "
    "stalls. Both are minimal where p = y.",
)
def cost_functions_compared(quick: bool, out_dir: Path) -> Result:
    logits = np.array([-7.0, -3.0, -1.0, 0.0, 1.0, 3.0, 7.0], np.float32)
    rows = []
    for z in logits:
        t = em.tensor([[z]], requires_grad=True)
        ce = em.losses.BinaryCrossentropy(from_logits=True)(np.ones((1, 1), np.float32), t)
        ce.backward()
        g_ce = float(t.grad[0, 0])
        t2 = em.tensor([[z]], requires_grad=True)
        mse = em.losses.MeanSquaredError()(np.ones((1, 1), np.float32), t2.sigmoid())
        mse.backward()
        p = 1 / (1 + np.exp(-float(z)))
        rows.append(
            {
                "logit": float(z),
                "p": p,
                "cross-entropy": float(ce.item()),
                "MSE": float(mse.item()),
                "dCE/dlogit": g_ce,
                "dMSE/dlogit": float(t2.grad[0, 0]),
                "formula p-y": p - 1,
                "formula 2(p-y)p(1-p)": 2 * (p - 1) * p * (1 - p),
            }
        )
    ps = np.linspace(0.001, 0.999, 200)
    fig, axes = new_figure(ncols=2, size=(3.6, 3.0))
    axes[0].plot(ps, -np.log(ps), label="cross-entropy")
    axes[0].plot(ps, (1 - ps) ** 2, label="squared error")
    axes[0].set_xlabel("predicted p (target 1)")
    axes[0].legend()
    zs = np.linspace(-8, 8, 200)
    sig = 1 / (1 + np.exp(-zs))
    axes[1].plot(zs, np.abs(sig - 1), label="|dCE/dlogit|")
    axes[1].plot(zs, np.abs(2 * (sig - 1) * sig * (1 - sig)), label="|dMSE/dlogit|")
    axes[1].set_xlabel("logit (target 1)")
    axes[1].legend()
    res = Result(table=rows, figures=[save_figure(fig, out_dir, "costs")])
    worst = rows[0]
    formulas = max(
        max(
            abs(r["dCE/dlogit"] - r["formula p-y"]),
            abs(r["dMSE/dlogit"] - r["formula 2(p-y)p(1-p)"]),
        )
        for r in rows
    )
    ratio = worst["dCE/dlogit"] / worst["dMSE/dlogit"]
    res.check("ember's gradients match the formulas", formulas < 1e-5, f"max diff {formulas:.1e}")
    res.check("at logit -7 the CE gradient is > 100x MSE's", ratio > 100, f"ratio {ratio:.0f}")
    res.check(
        "CE is about -1 there", abs(worst["dCE/dlogit"] + 1) < 0.01, f"{worst['dCE/dlogit']:.4f}"
    )
    res.check(
        "both losses are smallest at the most confident right answer",
        rows[-1]["cross-entropy"] == min(r["cross-entropy"] for r in rows)
        and rows[-1]["MSE"] == min(r["MSE"] for r in rows),
        "logit 7",
    )
    return res


# ---------------------------------------------------------------------------------- Q8
def _descend(optimizer_factory, start, scales, steps):
    """Minimise 0.5 * sum(scales * w^2) from ``start`` with an ember optimizer; return the path."""
    w = em.Parameter(np.array(start, np.float64), name="w")
    opt = optimizer_factory([w])
    path = [w.numpy().copy()]
    for _ in range(steps):
        loss = 0.5 * (em.tensor(scales) * w * w).sum()
        loss.backward()
        opt.step()
        opt.zero_grad()
        path.append(w.numpy().copy())
    return np.array(path)


@experiment(
    8,
    claim="On the elongated bowl f(w) = (w1^2 + 10 w2^2) / 2, each plain gradient-descent step "
    "is exactly w - lr * grad (grad = (w1, 10 w2)), the loss falls at every step and the path "
    "reaches the minimum (|w| < 1e-3); with momentum 0.5 it gets there in fewer steps.",
    helpers=(_descend,),
)
def gradient_descent_path(quick: bool, out_dir: Path) -> Result:
    em.set_floatx("float64")  # exact arithmetic for the step-by-step comparison below
    scales = np.array([1.0, 10.0])
    start, lr, steps = (-2.0, 1.5), 0.15, 120
    paths = {
        "plain": _descend(lambda p: em.optimizers.SGD(lr, params=p), start, scales, steps),
        "momentum 0.5": _descend(
            lambda p: em.optimizers.SGD(lr, momentum=0.5, params=p), start, scales, steps
        ),
    }
    plain = paths["plain"]
    by_hand = plain[:-1] - lr * scales * plain[:-1]  # w - lr * grad, the update rule itself
    rule_error = float(np.max(np.abs(plain[1:] - by_hand)))
    losses = 0.5 * (scales * plain**2).sum(1)

    def steps_to(path, tol=1e-3):
        return int(np.argmax(np.linalg.norm(path, axis=1) < tol))

    rows = [
        {
            "method": k,
            "steps to |w| < 1e-3": steps_to(p),
            "final |w|": float(np.linalg.norm(p[-1])),
        }
        for k, p in paths.items()
    ]
    g1, g2 = np.meshgrid(np.linspace(-2.3, 2.3, 120), np.linspace(-1.8, 1.8, 120))
    fig, (ax,) = new_figure(size=(5.5, 4))
    ax.contour(g1, g2, 0.5 * (g1**2 + 10 * g2**2), levels=np.geomspace(0.01, 20, 12), cmap="Greys")
    for name, p in paths.items():
        ax.plot(p[:40, 0], p[:40, 1], "o-", ms=2.5, lw=1, label=name)
    ax.plot(0, 0, "k*", ms=10)
    ax.set_xlabel("w1")
    ax.set_ylabel("w2")
    ax.legend()
    res = Result(table=rows, figures=[save_figure(fig, out_dir, "descent_path")])
    res.values.update(rule_error=rule_error)
    res.check("each step equals w - lr * grad", rule_error < 1e-12, f"max diff {rule_error:.1e}")
    res.check("the loss falls at every step", bool(np.all(np.diff(losses) < 0)))
    res.check(
        "plain descent reaches the minimum",
        rows[0]["final |w|"] < 1e-3,
        f"|w| = {rows[0]['final |w|']:.1e}",
    )
    res.check(
        "momentum needs fewer steps",
        0 < rows[1]["steps to |w| < 1e-3"] < rows[0]["steps to |w| < 1e-3"],
        f"{rows[1]['steps to |w| < 1e-3']} vs {rows[0]['steps to |w| < 1e-3']}",
    )
    return res


# ---------------------------------------------------------------------------------- Q9
@experiment(
    9,
    claim="Backpropagation is the chain rule run backwards: ember's backward() on a two-layer "
    "tanh network gives the same gradients as the chain rule written out by hand in NumPy and "
    "as central finite differences (max relative difference < 1e-6, float64).",
)
def backprop_by_hand(quick: bool, out_dir: Path) -> Result:
    rng = np.random.default_rng(9)
    x, y = rng.normal(size=(16, 3)), rng.normal(size=(16, 2))
    w1, b1, w2, b2 = (
        rng.normal(size=(3, 5)),
        rng.normal(size=5),
        rng.normal(size=(5, 2)),
        rng.normal(size=2),
    )

    def loss_of(params):
        a1, c1, a2, c2 = params
        h = (em.tensor(x) @ a1 + c1).tanh()
        return (((h @ a2 + c2) - em.tensor(y)) ** 2).mean()

    em.set_floatx("float64")
    params = [
        em.Parameter(p.copy(), name=n) for p, n in zip((w1, b1, w2, b2), ("W1", "b1", "W2", "b2"))
    ]
    loss = loss_of(params)
    loss.backward()
    # the chain rule by hand: forward, then each local derivative times the gradient from above
    z1 = x @ w1 + b1
    h = np.tanh(z1)
    out = h @ w2 + b2
    d_out = 2 * (out - y) / out.size  # d mean((out - y)^2) / d out
    d_w2, d_b2 = h.T @ d_out, d_out.sum(0)  # out = h W2 + b2
    d_h = d_out @ w2.T
    d_z1 = d_h * (1 - h**2)  # tanh' = 1 - tanh^2
    d_w1, d_b1 = x.T @ d_z1, d_z1.sum(0)
    by_hand = [d_w1, d_b1, d_w2, d_b2]
    rows, eps = [], 1e-6
    for p, g_hand in zip(params, by_hand):
        numeric = np.zeros_like(p.data)
        for i in np.ndindex(p.shape):
            old = p.data[i]
            p.data[i] = old + eps
            up = float(loss_of(params).item())
            p.data[i] = old - eps
            down = float(loss_of(params).item())
            p.data[i] = old
            numeric[i] = (up - down) / (2 * eps)

        def rel(a, b):
            return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-12))

        rows.append(
            {
                "parameter": p.name,
                "shape": str(p.shape),
                "|grad|": float(np.linalg.norm(p.grad)),
                "ember vs hand": rel(p.grad, g_hand),
                "ember vs numeric": rel(p.grad, numeric),
            }
        )
    res = Result(table=rows)
    worst_hand = max(r["ember vs hand"] for r in rows)
    worst_num = max(r["ember vs numeric"] for r in rows)
    res.check("ember equals the hand-written chain rule", worst_hand < 1e-6, f"{worst_hand:.1e}")
    res.check("ember equals central differences", worst_num < 1e-6, f"{worst_num:.1e}")
    return res


# ---------------------------------------------------------------------------------- Q10
@experiment(
    10,
    claim="A feed-forward layer applied to the last token gives the same output whatever came "
    "before it; a SimpleRNN's output for the same last token changes with the history "
    "(by > 0.01), and the same RNN weights (same parameter count) read sequences of length 5 "
    "and 50.",
)
def feedforward_vs_recurrent(quick: bool, out_dir: Path) -> Result:
    rng = np.random.default_rng(10)
    last = rng.normal(size=(1, 1, 4)).astype(np.float32)
    histories = [rng.normal(size=(1, 6, 4)).astype(np.float32) for _ in range(4)]
    dense = layers.Dense(8, activation="tanh")
    rnn = layers.SimpleRNN(8)
    rows = []
    with em.no_grad():
        for i, h in enumerate(histories):
            seq = np.concatenate([h, last], axis=1)  # (1, 7, 4): six history steps, then `last`
            rows.append(
                {
                    "history": f"random #{i + 1}",
                    "dense(last)[0]": float(dense(seq[:, -1]).numpy()[0, 0]),
                    "rnn(sequence)[0]": float(rnn(seq).numpy()[0, 0]),
                }
            )
        params = rnn.count_params()
        short = rnn(rng.normal(size=(2, 5, 4)).astype(np.float32)).shape
        long = rnn(rng.normal(size=(2, 50, 4)).astype(np.float32)).shape
    dense_spread = float(np.ptp([r["dense(last)[0]"] for r in rows]))
    rnn_spread = float(np.ptp([r["rnn(sequence)[0]"] for r in rows]))
    res = Result(table=rows, notes=rnn.explain())
    res.values.update(dense_spread=dense_spread, rnn_spread=rnn_spread)
    res.check("the dense output ignores the history", dense_spread == 0.0, f"{dense_spread:g}")
    res.check("the RNN output depends on it", rnn_spread > 0.01, f"spread {rnn_spread:.3f}")
    res.check(
        "one set of weights reads lengths 5 and 50",
        short == long == (2, 8) and params == rnn.count_params() == 4 * 8 + 8 * 8 + 8,
        f"{params} parameters = 4*8 + 8*8 + 8; outputs {short} and {long}",
    )
    return res


# ---------------------------------------------------------------------------------- Q11
@experiment(
    11,
    claim="Forecasting is a typical RNN application: a SimpleRNN trained on windows of a noisy "
    "sine wave predicts the next value with less than half the error of the naive forecast "
    "'tomorrow equals today'.",
)
def rnn_forecasts_a_series(quick: bool, out_dir: Path) -> Result:
    rng = np.random.default_rng(11)
    t = np.arange(1600 if quick else 4000)
    series = (np.sin(2 * np.pi * t / 25) + rng.normal(0, 0.1, len(t))).astype(np.float32)
    window = 20
    idx = np.arange(len(series) - window)
    x = np.stack([series[i : i + window] for i in idx])[..., None]  # (N, 20, 1)
    y = series[idx + window][:, None]
    split = int(0.8 * len(x))
    model = em.Sequential([layers.SimpleRNN(16), layers.Dense(1)])
    model.compile(optimizer=em.optimizers.Adam(0.01), loss="mse")
    model.fit(x[:split], y[:split], batch_size=64, epochs=6 if quick else 15, verbose=0)
    pred = model.predict(x[split:], verbose=0)
    rnn_mse = float(np.mean((pred - y[split:]) ** 2))
    naive_mse = float(np.mean((x[split:, -1] - y[split:]) ** 2))
    rows = [
        {"forecast": "tomorrow = today", "test MSE": naive_mse},
        {"forecast": "SimpleRNN(16)", "test MSE": rnn_mse},
        {"forecast": "(noise floor: variance of the noise)", "test MSE": 0.01},
    ]
    fig, (ax,) = new_figure(size=(6, 3))
    ax.plot(y[split : split + 100], "k.-", lw=0.8, ms=3, label="series")
    ax.plot(pred[:100], label="RNN forecast")
    ax.plot(x[split : split + 100, -1], ":", label="tomorrow = today")
    ax.legend(fontsize=8)
    ax.set_xlabel("time step (test part)")
    res = Result(table=rows, figures=[save_figure(fig, out_dir, "forecast")])
    res.check(
        "the RNN halves the naive error",
        rnn_mse < 0.5 * naive_mse,
        f"{rnn_mse:.4f} vs {naive_mse:.4f}",
    )
    return res


# ---------------------------------------------------------------------------------- Q12
@experiment(
    12,
    claim="Softmax turns scores into probabilities that sum to 1, is unchanged by adding a "
    "constant to every score, and stays finite for scores of 1000 (ember subtracts the max); "
    "ReLU's gradient is 0 for negative inputs and 1 for positive ones.",
)
def softmax_and_relu(quick: bool, out_dir: Path) -> Result:
    rng = np.random.default_rng(12)
    z = rng.normal(0, 3, size=(5, 4)).astype(np.float32)
    p = em.activations.softmax(em.tensor(z)).numpy()
    shifted = em.activations.softmax(em.tensor(z + 50.0)).numpy()
    big = em.activations.softmax(em.tensor([[1000.0, 0.0, -1000.0]])).numpy()
    oracle = np.exp(z - z.max(1, keepdims=True))
    oracle /= oracle.sum(1, keepdims=True)
    x = em.tensor(np.linspace(-3, 3, 13), requires_grad=True)
    em.activations.relu(x).sum().backward()
    xs = x.numpy()
    rows = [
        {
            "scores": np.array2string(z[0], precision=2),
            "softmax": np.array2string(p[0], precision=3),
            "sum": float(p[0].sum()),
        },
        {
            "scores": "same + 50",
            "softmax": np.array2string(shifted[0], precision=3),
            "sum": float(shifted[0].sum()),
        },
        {
            "scores": "[1000, 0, -1000]",
            "softmax": np.array2string(big[0], precision=3),
            "sum": float(big[0].sum()),
        },
    ]
    fig, axes = new_figure(ncols=2, size=(3.5, 3))
    grid = np.linspace(-3, 3, 200)
    axes[0].plot(grid, np.maximum(grid, 0), label="relu(x)")
    axes[0].step(xs, x.grad, where="mid", label="autograd d/dx")
    axes[0].legend()
    for temp in (0.5, 1.0, 3.0):
        axes[1].plot(
            em.activations.softmax(em.tensor(z[:1] / temp)).numpy()[0],
            "o-",
            label=f"softmax(z / {temp})",
        )
    axes[1].set_xlabel("class")
    axes[1].legend(fontsize=8)
    res = Result(table=rows, figures=[save_figure(fig, out_dir, "softmax_relu")])
    res.check(
        "rows sum to 1", np.abs(p.sum(1) - 1).max() < 1e-6, f"{np.abs(p.sum(1) - 1).max():.1e}"
    )
    res.check("matches exp(z - max) / sum", np.abs(p - oracle).max() < 1e-6)
    res.check(
        "shift invariant", np.abs(p - shifted).max() < 1e-6, f"{np.abs(p - shifted).max():.1e}"
    )
    res.check(
        "finite at 1000",
        bool(np.isfinite(big).all()) and abs(big[0, 0] - 1) < 1e-6,
        np.array2string(big[0]),
    )
    neg, pos = x.grad[xs < 0], x.grad[xs > 0]
    res.check("ReLU gradient: 0 left of 0, 1 right of 0", (neg == 0).all() and (pos == 1).all())
    return res


# ---------------------------------------------------------------------------------- Q13
@experiment(
    13,
    claim="Hyperparameters are chosen, not learned: across a 3x3 grid of learning rate and hidden "
    "width the same network's validation accuracy on digits spans more than 20 points, and the "
    "configuration picked on validation data scores within 5 points of that on the test set.",
)
def hyperparameter_grid(quick: bool, out_dir: Path) -> Result:
    (x, y), (xt, yt) = common.digits()
    x, xt = x.reshape(len(x), -1), xt.reshape(len(xt), -1)
    xv, yv, x, y = x[:300], y[:300], x[300:], y[300:]
    rows = []
    for lr in (1e-4, 1e-2, 1.0):
        for width in (4, 32, 128):
            em.set_seed(13)
            model = common.mlp([width], "relu", out_units=10)
            model.compile(optimizer=em.optimizers.SGD(lr), loss=common.classifier_loss())
            model.fit(x, y, batch_size=32, epochs=3 if quick else 8, verbose=0)
            rows.append(
                {
                    "learning rate": lr,
                    "width": width,
                    "validation accuracy": common.accuracy(model, xv, yv),
                    "test accuracy": common.accuracy(model, xt, yt),
                }
            )
    best = max(rows, key=lambda r: r["validation accuracy"])
    accs = [r["validation accuracy"] for r in rows]
    fig, (ax,) = new_figure(size=(4, 3.2))
    grid = np.array(accs).reshape(3, 3)
    im = ax.imshow(grid, cmap="viridis", vmin=0, vmax=1)
    ax.set_xticks(range(3), ["4", "32", "128"])
    ax.set_yticks(range(3), ["1e-4", "1e-2", "1"])
    ax.set_xlabel("hidden width")
    ax.set_ylabel("learning rate")
    for (i, j), v in np.ndenumerate(grid):
        ax.text(j, i, f"{v:.2f}", ha="center", va="center", color="w" if v < 0.6 else "k")
    fig.colorbar(im, ax=ax)
    res = Result(table=rows, figures=[save_figure(fig, out_dir, "grid")])
    spread = max(accs) - min(accs)
    gap = abs(best["validation accuracy"] - best["test accuracy"])
    res.check("validation accuracy spans > 20 points", spread > 0.2, f"{spread:.1%}")
    res.check(
        "the chosen configuration holds up on test data",
        gap < 0.05,
        f"lr={best['learning rate']}, width={best['width']}: val "
        f"{best['validation accuracy']:.1%}, test {best['test accuracy']:.1%}",
    )
    return res


# ---------------------------------------------------------------------------------- Q14
@experiment(
    14,
    claim="Training the same digits classifier with plain SGD: at lr = 1e-5 the loss moves less "
    "than 1%, at lr = 0.5 it falls by more than 70%, and at lr = 50 it diverges (non-finite, "
    "or ends above where it started).",
    helpers=(common.train_steps,),
)
def learning_rate_too_low_or_high(quick: bool, out_dir: Path) -> Result:
    (x, y), _ = common.digits()
    x = x.reshape(len(x), -1)
    steps = 60 if quick else 200
    curves, rows = {}, []
    for lr in (1e-5, 0.5, 50.0):
        em.set_seed(14)  # the same initial weights for every rate
        model = common.mlp([64], "relu", out_units=10)
        model(x[:1])
        opt = em.optimizers.SGD(lr, params=model.trainable_weights)
        with np.errstate(all="ignore"):  # the diverging run overflows on purpose
            losses = common.train_steps(model, x, y, common.classifier_loss(), opt, steps, 64)
        curves[lr] = losses
        first, last = losses[0], losses[-1]
        rows.append(
            {
                "learning rate": lr,
                "first loss": first,
                "last loss": last,
                "change": (last - first) / first if np.isfinite(last) else float("nan"),
            }
        )
    fig, (ax,) = new_figure(size=(5.5, 3.3))
    for lr, losses in curves.items():
        ax.plot(np.where(np.isfinite(losses), losses, np.nan), label=f"lr = {lr:g}")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.legend()
    res = Result(table=rows, figures=[save_figure(fig, out_dir, "learning_rates")])
    low, good, high = rows
    res.check("lr = 1e-5 moves the loss < 1%", abs(low["change"]) < 0.01, f"{low['change']:+.2%}")
    res.check("lr = 0.5 lowers it by > 70%", good["change"] < -0.7, f"{good['change']:+.1%}")
    diverged = not np.isfinite(high["last loss"]) or high["last loss"] > high["first loss"]
    res.check("lr = 50 diverges", diverged, f"last loss {high['last loss']:.3g}")
    return res


# ---------------------------------------------------------------------------------- Q15
@experiment(
    15,
    claim="Dropout(0.5) zeroes about half the activations in training and doubles the rest (the "
    "mean is kept), and is the identity at inference; BatchNormalization makes each channel's "
    "batch mean 0 and variance 1 in training, and at inference uses moving statistics that "
    "converge to the data's.",
)
def dropout_and_batchnorm(quick: bool, out_dir: Path) -> Result:
    rng = np.random.default_rng(15)
    ones = np.ones((200, 50), np.float32)
    drop = layers.Dropout(0.5)
    trained, inferred = drop(ones, training=True).numpy(), drop(ones).numpy()
    zero_share = float(np.mean(trained == 0))
    x = rng.normal(loc=[5.0, -3.0, 0.5], scale=[3.0, 0.2, 1.0], size=(256, 3)).astype(np.float32)
    bn = layers.BatchNormalization(momentum=0.9)
    out = bn(x, training=True).numpy()
    for _ in range(60 if quick else 200):
        bn(x[rng.integers(0, len(x), 64)], training=True)
    moving_mean, moving_var = bn.get_weights()[2:]
    # (x - mean) / sqrt(var + epsilon): the std is 1 up to Keras's epsilon = 1e-3
    expected_std = np.sqrt(x.var(0) / (x.var(0) + bn.epsilon))
    rows = [
        {"what": "dropout: share of zeros (training)", "measured": zero_share, "expected": 0.5},
        {"what": "dropout: surviving value", "measured": float(trained.max()), "expected": 2.0},
        {"what": "dropout: mean (training)", "measured": float(trained.mean()), "expected": 1.0},
        {
            "what": "dropout: max |change| (inference)",
            "measured": float(np.abs(inferred - 1).max()),
            "expected": 0.0,
        },
    ]
    for c in range(3):
        rows.append(
            {
                "what": f"batch norm channel {c}: output mean",
                "measured": float(out[:, c].mean()),
                "expected": 0.0,
            }
        )
        rows.append(
            {
                "what": f"batch norm channel {c}: output std",
                "measured": float(out[:, c].std()),
                "expected": float(expected_std[c]),
            }
        )
        rows.append(
            {
                "what": f"channel {c}: moving mean vs data mean",
                "measured": float(moving_mean[c]),
                "expected": float(x[:, c].mean()),
            }
        )
    fig, axes = new_figure(ncols=2, size=(3.6, 3))
    axes[0].hist(x, bins=30, histtype="step", label=["ch 0", "ch 1", "ch 2"])
    axes[0].set_title("input channels")
    axes[1].hist(out, bins=30, histtype="step")
    axes[1].set_title("after batch norm (training)")
    axes[0].legend(fontsize=8)
    res = Result(table=rows, figures=[save_figure(fig, out_dir, "batchnorm")])
    res.check("about half zeroed", abs(zero_share - 0.5) < 0.02, f"{zero_share:.3f}")
    res.check("survivors scaled by 1/(1 - 0.5)", set(np.unique(trained)) <= {0.0, 2.0})
    res.check("identity at inference", np.array_equal(inferred, ones))
    dev = max(np.abs(out.mean(0)).max(), np.abs(out.std(0) - expected_std).max())
    res.check(
        "batch norm output: mean 0, std sqrt(var / (var + eps)) ~ 1 per channel",
        dev < 1e-3,
        f"max deviation {dev:.1e}",
    )
    err = float(np.max(np.abs(moving_mean - x.mean(0)) / x.std(0)))
    res.check("moving mean converges to the data mean (within 0.1 std)", err < 0.1, f"{err:.3f}")
    verr = float(np.max(np.abs(moving_var / x.var(0) - 1)))
    res.check("moving variance within 20% of the data variance", verr < 0.2, f"{verr:.3f}")
    return res


# ---------------------------------------------------------------------------------- Q16
@experiment(
    16,
    claim="With the same 5 epochs and learning rate, full-batch descent makes 5 updates, "
    "mini-batch (32) makes 5 x ceil(N/32) and stochastic descent 5 x N; the mini-batch and "
    "stochastic runs end with a lower training loss than full-batch, and the stochastic run's "
    "loss path is the noisiest.",
)
def batch_minibatch_stochastic(quick: bool, out_dir: Path) -> Result:
    rng = np.random.default_rng(16)
    n = 200 if quick else 600
    x = rng.normal(size=(n, 5)).astype(np.float32)
    y = (x @ rng.normal(size=(5, 1)) + 0.1 * rng.normal(size=(n, 1))).astype(np.float32)
    loss_fn = em.losses.MeanSquaredError()
    rows, paths = [], {}
    for name, batch in (("batch", n), ("mini-batch 32", 32), ("stochastic", 1)):
        model = em.Sequential([layers.Dense(1, kernel_initializer="zeros")])
        model(x[:1])
        opt = em.optimizers.SGD(0.02, params=model.trainable_weights)
        path, updates = [], 0
        for _ in range(5):
            order = rng.permutation(n)
            for start in range(0, n, batch):
                idx = order[start : start + batch]
                loss = loss_fn(y[idx], model(x[idx]))
                loss.backward()
                opt.step()
                opt.zero_grad()
                updates += 1
                with em.no_grad():
                    path.append(float(loss_fn(y, model(x)).item()))
        paths[name] = path
        noise = float(np.std(np.diff(np.log(path))))
        rows.append(
            {
                "method": name,
                "batch size": batch,
                "updates": updates,
                "expected updates": 5 * -(-n // batch),
                "final loss": path[-1],
                "step-to-step noise": noise,
            }
        )
    fig, (ax,) = new_figure(size=(5.5, 3.3))
    for name, path in paths.items():
        ax.plot(np.linspace(0, 5, len(path)), path, label=name, lw=1)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("full training loss")
    ax.legend()
    res = Result(table=rows, figures=[save_figure(fig, out_dir, "descent_kinds")])
    full, mini, sgd = rows
    res.check(
        "update counts match the formula", all(r["updates"] == r["expected updates"] for r in rows)
    )
    res.check(
        "mini-batch and SGD end lower than full batch",
        mini["final loss"] < full["final loss"] and sgd["final loss"] < full["final loss"],
        f"{full['final loss']:.3g} / {mini['final loss']:.3g} / {sgd['final loss']:.3g}",
    )
    res.check(
        "SGD's path is the noisiest",
        sgd["step-to-step noise"] > mini["step-to-step noise"],
        f"{sgd['step-to-step noise']:.3g} vs {mini['step-to-step noise']:.3g}",
    )
    return res


# ---------------------------------------------------------------------------------- Q17
@experiment(
    17,
    claim="On 30 noisy samples of cos(3x), a linear model underfits (training loss stays near "
    "the variance of the targets), a net with 8 tanh units fits well, and a 256x256 ReLU net "
    "overfits: its validation loss turns up after its best epoch while training loss keeps "
    "falling; ember's diagnose(history) names all three.",
)
def underfit_goodfit_overfit(quick: bool, out_dir: Path) -> Result:
    from ember.training.diagnose import diagnose

    rng = np.random.default_rng(17)

    def sample(n):
        x = rng.uniform(-1, 1, (n, 1)).astype(np.float32)
        return x, (np.cos(3 * x) + rng.normal(0, 0.3, (n, 1))).astype(np.float32)

    (x, y), (xv, yv) = sample(30), sample(150)
    baseline = float(np.var(y))  # the loss of always predicting the mean
    long = 200 if quick else 300
    cases = {
        "underfit": (em.Sequential([layers.Dense(1)]), 100 if quick else 150),
        "good fit": (common.mlp([8], "tanh", out_units=1), long),
        "overfit": (common.mlp([256, 256], "relu", out_units=1), long),
    }
    fig, axes = new_figure(ncols=3, size=(3.3, 3))
    rows = []
    for ax, (expected, (model, epochs)) in zip(axes, cases.items()):
        em.set_seed(17)
        model.compile(optimizer=em.optimizers.Adam(0.01), loss="mse")
        history = model.fit(
            x,
            y,
            batch_size=len(x),
            epochs=epochs,
            verbose=0,
            validation_data=(xv, yv),
            validation_batch_size=len(xv),
        )
        d = diagnose(history, baseline=baseline)
        loss, val = history.history["loss"], history.history["val_loss"]
        rows.append(
            {
                "model": expected,
                "parameters": model.count_params(),
                "final train loss": loss[-1],
                "best val loss": min(val),
                "final val loss": val[-1],
                "diagnosis": d.kind,
                "validation turned at epoch": "-" if d.turning_epoch is None else d.turning_epoch,
            }
        )
        ax.plot(loss, label="train")
        ax.plot(val, label="validation")
        if d.turning_epoch is not None:
            ax.axvline(d.turning_epoch, color="k", ls=":", lw=1)
        ax.set_yscale("log")
        ax.set_title(f"{expected}: diagnosed '{d.kind}'", fontsize=9)
        ax.set_xlabel("epoch")
        ax.legend(fontsize=8)
    res = Result(table=rows, figures=[save_figure(fig, out_dir, "learning_curves")])
    for r in rows:
        res.check(
            f"diagnose names the {r['model']} case",
            r["diagnosis"] == r["model"],
            f"diagnosed {r['diagnosis']!r}",
        )
    over = rows[2]
    rise = over["final val loss"] / over["best val loss"] - 1
    res.check(
        "the overfit net's validation loss rose > 5% after its best epoch",
        rise > 0.05,
        f"+{rise:.0%} after epoch {over['validation turned at epoch']}",
    )
    res.check(
        "the underfit model's training loss stays above half the target variance",
        rows[0]["final train loss"] > 0.5 * baseline,
        f"{rows[0]['final train loss']:.3f} vs variance {baseline:.3f}",
    )
    return res
