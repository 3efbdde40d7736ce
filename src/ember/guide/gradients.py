"""Gradient checking of a whole model: every trainable weight's analytic gradient (backward) vs
central finite differences of the loss, in float64, summarised per weight.

    report = ember.guide.model_gradcheck(model, x, y, "sparse_categorical_crossentropy")
    print(report.format())          # one row per weight: layer, weight, shape, errors, verdict
    assert report.passed

``ember gradcheck --model mlp|cnn|rnn|lstm|gru|embedding`` runs it on a small built-in model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

import ember as em
from ember.errors import EmberValueError


@dataclass
class GradcheckReport:
    """The outcome of ``model_gradcheck``: one row per trainable weight."""

    rows: list = field(default_factory=list)
    loss: float = float("nan")
    tol: float = 1e-6

    @property
    def passed(self) -> bool:
        return bool(self.rows) and all(r["passed"] for r in self.rows)

    @property
    def worst(self) -> float:
        return max((r["relative error"] for r in self.rows), default=float("nan"))

    def format(self) -> str:
        """The per-weight table as text."""
        cols = ["layer", "weight", "shape", "checked", "max abs error", "relative error", "ok"]
        cells = [
            [
                r["layer"], r["weight"], str(r["shape"]), f"{r['checked']}/{r['size']}",
                f"{r['max abs error']:.2e}", f"{r['relative error']:.2e}",
                "ok" if r["passed"] else "FAIL",
            ]
            for r in self.rows
        ]  # fmt: skip
        widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths))]
        lines.append("  ".join("-" * w for w in widths))
        lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
        verdict = "all gradients agree" if self.passed else "GRADIENT MISMATCH"
        lines.append(
            f"{verdict}: worst relative error {self.worst:.2e} (tolerance {self.tol:g}); "
            f"loss {self.loss:.6g}"
        )
        return "\n".join(lines)


def _loss_fn(loss):
    if isinstance(loss, str):
        return em.losses.get(loss)
    if not callable(loss):
        raise EmberValueError(
            f"model_gradcheck: loss must be a loss name or a callable loss(y_true, y_pred), "
            f"received {type(loss).__name__}"
        )
    return loss


def model_gradcheck(
    model,
    x,
    y,
    loss,
    eps: float = 1e-6,
    samples: int | None = 30,
    tol: float = 1e-6,
    atol: float = 1e-8,
    training: bool = False,
    seed: int = 0,
) -> GradcheckReport:
    """Check every trainable weight of ``model`` numerically in float64.

    The model's weights are viewed in float64 for the check (its own arrays are put back
    afterwards, unchanged). For each weight, up to ``samples`` elements (all when None) are
    perturbed by +-``eps`` and the central difference of the loss is compared with the
    gradient from one ``backward()``; the relative error of a weight is
    ``||analytic - numeric|| / max(||analytic||, ||numeric||)`` over the checked elements, which
    stays meaningful when single elements of the gradient are near zero.

    Args:
        model: a built model or layer (it is built on ``x`` when it is not).
        x, y: a small batch and its targets.
        loss: a loss name or callable ``loss(y_true, y_pred) -> scalar Tensor``.
        eps: the finite-difference step.
        samples: elements checked per weight (chosen at random with ``seed``); None for all.
        tol: the largest relative error that passes.
        atol: a weight whose every checked element agrees within ``atol`` passes too: when its
            gradient is tiny, the relative error only measures the finite differences' own
            rounding noise (about 1e-16 * |loss| / eps = 1e-10 here).
        training: run the model in training mode (Dropout must then be absent: the check needs
            a deterministic function).
        seed: seeds the choice of elements.
    """
    loss_fn = _loss_fn(loss)
    floatx = em.floatx()
    em.set_floatx("float64")
    x64 = np.asarray(x.data if isinstance(x, em.Tensor) else x)
    if x64.dtype.kind == "f":
        x64 = x64.astype(np.float64)
    y64 = np.asarray(y.data if isinstance(y, em.Tensor) else y)
    if y64.dtype.kind == "f":
        y64 = y64.astype(np.float64)
    originals = []
    try:
        with em.no_grad():
            model(x64[:1])  # build (a no-op when built)
        for w in model.weights:
            originals.append((w, w.data))
            # a C-ordered copy: the perturbation below writes through reshape(-1), which is a
            # view only of a C-contiguous array (an orthogonal kernel may be Fortran-ordered)
            w.data = np.array(w.data, dtype=np.float64, order="C")
            w.grad = None
        params = [w for w in model.trainable_weights]
        if not params:
            raise EmberValueError(f"model_gradcheck: {model.name} has no trainable weights")

        def value() -> float:
            with em.no_grad():
                return float(loss_fn(y64, model(x64, training=training)).item())

        out = loss_fn(y64, model(x64, training=training))
        out.backward()
        report = GradcheckReport(loss=float(out.item()), tol=tol)
        rng = np.random.default_rng(seed)
        for w in params:
            analytic = np.zeros_like(w.data) if w.grad is None else np.array(w.grad, np.float64)
            size = w.data.size
            if samples is None or samples >= size:
                picks = np.arange(size)
            else:
                picks = np.sort(rng.choice(size, size=samples, replace=False))
            flat = w.data.reshape(-1)  # a view: writing it perturbs the weight in place
            numeric = np.empty(len(picks))
            for j, k in enumerate(picks):
                old = flat[k]
                flat[k] = old + eps
                up = value()
                flat[k] = old - eps
                down = value()
                flat[k] = old
                numeric[j] = (up - down) / (2 * eps)
            a = analytic.reshape(-1)[picks]
            diff = np.abs(a - numeric)
            scale = max(np.linalg.norm(a), np.linalg.norm(numeric))
            rel = float(np.linalg.norm(a - numeric) / scale) if scale > 0 else 0.0
            layer, _, name = (w.name or "?/?").rpartition("/")
            report.rows.append({
                "layer": layer or "?", "weight": name, "shape": tuple(w.shape),
                "size": size, "checked": len(picks), "max abs error": float(diff.max()),
                "relative error": rel, "passed": rel <= tol or float(diff.max()) <= atol,
            })  # fmt: skip
        return report
    finally:
        for w, data in originals:
            w.data = data
            w.grad = None
        em.set_floatx(floatx)


# ---------------------------------------------------------------------------------- built-ins
def builtin_model(kind: str, seed: int = 0):
    """A small model of each family with a batch and a loss: (model, x, y, loss).

    kinds: "mlp" (Dense, tanh/ReLU, BatchNormalization), "cnn" (Conv2D same/valid, max and
    average pooling, Flatten, Dense), "rnn", "lstm", "gru" (two stacked recurrent layers and a
    Dense head), "embedding" (Embedding, GRU, GlobalAveragePooling1D-free head).
    """
    from ember import layers

    rng = np.random.default_rng(seed)
    em.set_seed(seed)
    ce = em.losses.SparseCategoricalCrossentropy(from_logits=True)
    if kind == "mlp":
        model = em.Sequential([
            layers.Dense(12, activation="tanh"), layers.Dense(8, activation="relu"),
            layers.BatchNormalization(), layers.Dense(3),
        ])  # fmt: skip
        x = rng.normal(size=(6, 10))
    elif kind == "cnn":
        model = em.Sequential([
            layers.Conv2D(4, 3, padding="same", activation="tanh"), layers.MaxPooling2D(2),
            layers.Conv2D(5, 2, padding="valid", activation="relu"),
            layers.AveragePooling2D(2, padding="same"), layers.Flatten(), layers.Dense(3),
        ])  # fmt: skip
        x = rng.normal(size=(3, 8, 8, 2))
    elif kind in ("rnn", "lstm", "gru"):
        cell = {"rnn": layers.SimpleRNN, "lstm": layers.LSTM, "gru": layers.GRU}[kind]
        model = em.Sequential([cell(5, return_sequences=True), cell(4), layers.Dense(3)])
        x = rng.normal(size=(3, 6, 4))
    elif kind == "embedding":
        model = em.Sequential([layers.Embedding(20, 6), layers.GRU(5), layers.Dense(3)])
        x = rng.integers(1, 20, size=(4, 7))
    else:
        raise EmberValueError(
            f"gradcheck: model must be one of {BUILTIN_MODELS}, received {kind!r}"
        )
    y = rng.integers(0, 3, size=len(x))
    return model, x, y, ce


BUILTIN_MODELS = ("mlp", "cnn", "rnn", "lstm", "gru", "embedding")
