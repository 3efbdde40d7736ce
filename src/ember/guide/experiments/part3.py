"""Experiments for part 3 of the guide (RNNs, LSTMs and the questions around them, 42-52)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import ember as em
from ember import layers
from ember.guide.experiments import common
from ember.guide.registry import Result, experiment, new_figure, save_figure


# ---------------------------------------------------------------------------------- Q46
def _scatter_digits(images, size: int, seed: int):
    """Paste each 8x8 digit at a random place on a blank size x size canvas: (N, size, size, 1)."""
    rng = np.random.default_rng(seed)
    out = np.zeros((len(images), size, size, 1), np.float32)
    corners = rng.integers(0, size - 8 + 1, (len(images), 2))
    for img, canvas, (r, c) in zip(images, out, corners):
        canvas[r : r + 8, c : c + 8] = img
    return out


@experiment(
    46,
    claim="At an equal parameter budget (about 1,400 weights) on digits placed anywhere on a "
    "12x12 canvas, a small CNN (shared 3x3 filters, pooling) reaches > 70% test accuracy "
    "while a dense network reaches < 55%, at least 25 points below it: local, shared filters "
    "spend the weights on what images need.",
    helpers=(_scatter_digits,),
)
def cnn_versus_dense(quick: bool, out_dir: Path) -> Result:
    (x, y), (xt, yt) = common.digits()
    x, xt = _scatter_digits(x, 12, seed=1), _scatter_digits(xt, 12, seed=2)
    epochs = 5 if quick else 15
    cnn = em.Sequential(
        [
            layers.Conv2D(8, 3, activation="relu"),
            layers.MaxPool2D(),
            layers.Conv2D(16, 3, activation="relu"),
            layers.GlobalMaxPooling2D(),
            layers.Dense(10),
        ]
    )
    cnn(x[:1])
    # a dense net with one hidden layer of h units has 144 h + h + 10 h + 10 weights
    hidden = round((cnn.count_params() - 10) / (144 + 1 + 10))
    dense = em.Sequential(
        [layers.Flatten(), layers.Dense(hidden, activation="relu"), layers.Dense(10)]
    )
    rows, curves = [], {}
    for name, model in (("CNN", cnn), (f"dense ({hidden} hidden units)", dense)):
        model.compile(
            optimizer=em.optimizers.Adam(0.01),
            loss=common.classifier_loss(),
            metrics=["accuracy"],
        )
        history = model.fit(
            x, y, batch_size=64, epochs=epochs, verbose=0, validation_data=(xt, yt)
        )
        curves[name] = history.history["val_accuracy"]
        rows.append(
            {
                "model": name,
                "parameters": model.count_params(),
                "train accuracy": common.accuracy(model, x, y),
                "test accuracy": common.accuracy(model, xt, yt),
            }
        )
    fig, axes = new_figure(ncols=2, size=(3.4, 3))
    axes[0].imshow(
        np.block([[x[k * 4 + j, :, :, 0] for j in range(4)] for k in range(2)]), cmap="gray_r"
    )
    axes[0].set_title("training images", fontsize=9)
    axes[0].set_xticks([])
    axes[0].set_yticks([])
    for name, acc in curves.items():
        axes[1].plot(range(1, epochs + 1), acc, "o-", ms=3, label=name)
    axes[1].set_xlabel("epoch")
    axes[1].set_ylabel("test accuracy")
    axes[1].legend(fontsize=7)
    res = Result(table=rows, figures=[save_figure(fig, out_dir, "cnn_vs_dense")])
    c, d = rows
    res.check(
        "equal budgets (within 2%)",
        abs(c["parameters"] / d["parameters"] - 1) < 0.02,
        f"{c['parameters']} vs {d['parameters']}",
    )
    res.check("the CNN: > 70% on test", c["test accuracy"] > 0.7, f"{c['test accuracy']:.1%}")
    res.check("the dense net: < 55%", d["test accuracy"] < 0.55, f"{d['test accuracy']:.1%}")
    gap = c["test accuracy"] - d["test accuracy"]
    res.check("a gap of at least 25 points", gap >= 0.25, f"{gap:.1%}")
    return res


# ---------------------------------------------------------------------------------- Q48
@experiment(
    48,
    claim="At an equal parameter budget (626 vs 627 weights) and the same 100 epochs of Adam on "
    "two spirals of 2.5 turns, a network of three hidden layers of 16 units reaches > 95% "
    "test accuracy while one hidden layer of 125 units stays below 80%: depth composes simple "
    "pieces into the winding boundary.",
    helpers=(common.grid_predict,),
)
def deep_versus_shallow(quick: bool, out_dir: Path) -> Result:
    seeds = (0,) if quick else (0, 1, 2)
    rows, models = [], {}
    for seed in seeds:
        (x, y), (xt, yt) = em.datasets.spirals(n_samples=600, noise=0.2, turns=2.5, seed=seed)
        for name, widths in (("deep: 16-16-16", [16, 16, 16]), ("shallow: 125", [125])):
            em.set_seed(48 + seed)
            model = common.mlp(widths, "relu", out_units=2)
            model.compile(optimizer=em.optimizers.Adam(0.01), loss=common.classifier_loss())
            model.fit(x, y, batch_size=64, epochs=100, verbose=0)
            rows.append(
                {
                    "data seed": seed,
                    "network": name,
                    "parameters": model.count_params(),
                    "train accuracy": common.accuracy(model, x, y),
                    "test accuracy": common.accuracy(model, xt, yt),
                }
            )
            models[name] = (model, x, y)
    fig, axes = new_figure(ncols=2, size=(3.2, 3.1))
    for ax, (name, (model, x, y)) in zip(axes, models.items()):
        gx, gy, score = common.grid_predict(model, -1.2, 1.2)
        ax.contourf(gx, gy, score > 0, levels=1, cmap="coolwarm", alpha=0.3)
        ax.scatter(x[:, 0], x[:, 1], c=y, s=3, cmap="coolwarm")
        ax.set_title(f"{name} ({model.count_params()} weights)", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    res = Result(table=rows, figures=[save_figure(fig, out_dir, "deep_vs_shallow")])
    deep = [r["test accuracy"] for r in rows if r["network"].startswith("deep")]
    shallow = [r["test accuracy"] for r in rows if r["network"].startswith("shallow")]
    res.check(
        "equal budgets",
        abs(rows[0]["parameters"] - rows[1]["parameters"]) <= 1,
        f"{rows[0]['parameters']} vs {rows[1]['parameters']}",
    )
    res.check("deep: > 95% on test", min(deep) > 0.95, ", ".join(f"{a:.1%}" for a in deep))
    res.check("shallow: < 80%", max(shallow) < 0.8, ", ".join(f"{a:.1%}" for a in shallow))
    return res


# ---------------------------------------------------------------------------------- Q47
@experiment(
    47,
    claim="Training longer does not prevent overfitting, it causes it: a 256-unit net on 150 "
    "digits reaches its lowest validation loss in the first third of training, then "
    "validation loss rises by more than 10% while the training loss keeps falling below 0.01; "
    "what does help, at the same number of epochs: weight decay (AdamW) ends with a lower "
    "validation loss, and four times the data with less than half of it.",
)
def more_epochs_overfit(quick: bool, out_dir: Path) -> Result:
    (x, y), (xt, yt) = common.digits()
    x, xt = x.reshape(len(x), -1), xt.reshape(len(xt), -1)
    n, epochs = 150, 60 if quick else 150
    runs = {
        "plain, 150 examples": (em.optimizers.Adam(0.01), n),
        "weight decay (AdamW 0.5)": (em.optimizers.AdamW(0.01, weight_decay=0.5), n),
        "4x the data (600 examples)": (em.optimizers.Adam(0.01), 4 * n),
    }
    rows, curves = [], {}
    for name, (opt, m) in runs.items():
        em.set_seed(47)
        model = common.mlp([256], "relu", out_units=10)
        model.compile(optimizer=opt, loss=common.classifier_loss())
        # the same number of updates per epoch for every run: 3 batches
        history = model.fit(
            x[:m], y[:m], batch_size=m // 3, epochs=epochs, verbose=0, validation_data=(xt, yt)
        )
        loss, val = history.history["loss"], history.history["val_loss"]
        curves[name] = (loss, val)
        best = int(np.argmin(val))
        rows.append(
            {
                "run": name,
                "best epoch": best + 1,
                "best val loss": val[best],
                "final val loss": val[-1],
                "rise after best": val[-1] / val[best] - 1,
                "final train loss": loss[-1],
                "test accuracy": common.accuracy(model, xt, yt),
            }
        )
    fig, axes = new_figure(ncols=2, size=(3.6, 3))
    for name, (loss, val) in curves.items():
        (line,) = axes[0].plot(val, label=name)
        axes[1].plot(loss, color=line.get_color())
    axes[0].set_title("validation loss", fontsize=9)
    axes[1].set_title("training loss", fontsize=9)
    axes[1].set_yscale("log")
    axes[0].legend(fontsize=6)
    for ax in axes:
        ax.set_xlabel("epoch")
    res = Result(table=rows, figures=[save_figure(fig, out_dir, "longer_training")])
    plain, decay, data = rows
    res.check(
        "plain: best in the first third",
        plain["best epoch"] <= epochs / 3,
        f"epoch {plain['best epoch']} of {epochs}",
    )
    res.check(
        "plain: then validation loss rises > 10%",
        plain["rise after best"] > 0.1,
        f"+{plain['rise after best']:.0%}",
    )
    res.check(
        "while training loss falls below 0.01",
        plain["final train loss"] < 0.01,
        f"{plain['final train loss']:.4f}",
    )
    res.check(
        "weight decay ends lower",
        decay["final val loss"] < plain["final val loss"],
        f"{decay['final val loss']:.3f} vs {plain['final val loss']:.3f}",
    )
    res.check(
        "4x the data ends below half",
        data["final val loss"] < 0.5 * plain["final val loss"],
        f"{data['final val loss']:.3f} vs {plain['final val loss']:.3f}",
    )
    return res


# ---------------------------------------------------------------------------------- Q50
def _best_straight_cut(x, y, angles: int = 360) -> float:
    """The best accuracy of any half-plane classifier (a threshold on x . (cos a, sin a)),
    by trying every direction and every threshold."""
    best = 0.0
    for a in np.linspace(0, 2 * np.pi, angles, endpoint=False):
        order = np.argsort(x @ np.array([np.cos(a), np.sin(a)]))
        ones = np.concatenate([[0], np.cumsum(y[order])])  # class-1 points below each cut
        k = np.arange(len(y) + 1)
        # below the cut say 0, above say 1: right = zeros below + ones above
        right = (k - ones) + (ones[-1] - ones)
        best = max(best, float(right.max()) / len(y))
    return best


@experiment(
    50,
    claim="Random initialisation breaks symmetry: when every weight of a 16-unit hidden layer "
    "starts at the same value, all 16 units get the same gradient and stay identical "
    "through training (the spread across units stays below 1e-6), so the layer acts like one "
    "unit: on two rings it does no better than the best single straight cut (found by brute "
    "force); started at random, the units differ and the same net exceeds 95%.",
    helpers=(common.circles, _best_straight_cut),
)
def symmetry_breaking(quick: bool, out_dir: Path) -> Result:
    x, y = common.circles(300 if quick else 800, seed=50)
    inits = {
        "constant 0.3": em.initializers.Constant(0.3),
        "random (Glorot)": "glorot_uniform",
    }
    rows, models = [], {}
    for name, init in inits.items():
        em.set_seed(50)
        model = em.Sequential(
            [
                layers.Dense(16, activation="tanh", kernel_initializer=init),
                layers.Dense(2, kernel_initializer=init),
            ]
        )
        model.compile(optimizer=em.optimizers.Adam(0.02), loss=common.classifier_loss())
        model.fit(x, y, batch_size=64, epochs=100 if quick else 250, verbose=0)
        kernel, bias = model.layers[0].get_weights()
        # how different the hidden units are: the largest spread of a weight across units
        spread = float(max(np.ptp(kernel, axis=1).max(), np.ptp(bias)))
        rows.append(
            {
                "initial weights": name,
                "spread across hidden units": spread,
                "distinct units": len(np.unique(kernel.round(5), axis=1).T),
                "accuracy": common.accuracy(model, x, y),
            }
        )
        models[name] = model
    fig, axes = new_figure(ncols=2, size=(3.2, 3.0))
    for ax, (name, model) in zip(axes, models.items()):
        gx, gy, score = common.grid_predict(model)
        ax.contourf(gx, gy, score > 0, levels=1, cmap="coolwarm", alpha=0.3)
        ax.scatter(x[:, 0], x[:, 1], c=y, s=4, cmap="coolwarm")
        ax.set_title(f"{name}: {common.accuracy(model, x, y):.0%}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    res = Result(table=rows, figures=[save_figure(fig, out_dir, "symmetry")])
    same, rand = rows
    res.check(
        "constant: units stay identical",
        same["spread across hidden units"] < 1e-6,
        f"spread {same['spread across hidden units']:.1e}",
    )
    cut = _best_straight_cut(x, y)
    res.values["best_straight_cut"] = cut
    res.check(
        "constant: no better than one straight cut",
        same["accuracy"] <= cut,
        f"{same['accuracy']:.1%} vs the best cut's {cut:.1%}",
    )
    res.check(
        "random: units differ",
        rand["spread across hidden units"] > 0.1,
        f"spread {rand['spread across hidden units']:.2f}",
    )
    res.check("random: > 95%", rand["accuracy"] > 0.95, f"{rand['accuracy']:.1%}")
    return res


# ---------------------------------------------------------------------------------- Q44
# A tiny built-in corpus (written for ember) used when ../shared/data/sentiment is absent.
_REVIEWS = (
    ("Loved it! The staff were friendly, and the food arrived hot.", 1),
    ("Terrible service; we waited an hour for cold soup.", 0),
    ("Great value for money - I'd come back tomorrow.", 1),
    ("The battery died after two days. Very disappointing.", 0),
    ("Best pizza in town, crisp crust and fresh basil.", 1),
    ("Rude waiter, dirty tables, never again!", 0),
    ("Works exactly as described; setup took five minutes.", 1),
    ("The screen cracked the first week. Avoid.", 0),
    ("A wonderful, moving film with a brilliant cast and a score that stays with you.", 1),
    ("Boring plot and wooden acting: I fell asleep.", 0),
    ("Fast delivery and the case fits perfectly.", 1),
    ("The sound is tinny and the volume too low.", 0),
    ("Cosy room, great view, and a quiet street.", 1),
    ("Overpriced and bland. The dessert was stale.", 0),
    ("Excellent headset: clear calls, comfortable all day.", 1),
    ("It stopped charging after a month, and support never replied to my three emails.", 0),
    ("Friendly people, tasty coffee, lovely music.", 1),
    ("The worst movie I have seen this year.", 0),
    ("Sturdy, light and cheap. Highly recommended!", 1),
    ("Too loud, too crowded, and the fries were soggy.", 0),
)


def _sentences():
    """(texts, labels, source): the sentiment sentences of ../shared/data when that folder
    exists (imdb + amazon + yelp), else the built-in reviews above."""
    folder = Path(__file__).resolve().parents[5] / "shared" / "data" / "sentiment"
    if folder.is_dir():
        (x, y), (xt, yt) = em.datasets.sentiment_sentences(folder)
        return list(x) + list(xt), np.concatenate([y, yt]), f"{folder} ({len(y) + len(yt)})"
    texts, labels = zip(*_REVIEWS)
    return list(texts), np.array(labels, np.int64), f"built-in corpus ({len(texts)})"


@experiment(
    44,
    claim="Text is prepared for an RNN in steps, each checked on real sentences: standardize "
    "(lowercase, ASCII punctuation removed: equal to a plain Python transcription), build a "
    "vocabulary from the training texts (index 0 = padding '', 1 = '[UNK]', then words by "
    "descending count, every kept word at least as frequent as every dropped one), map words "
    "to ids (an unseen word gets 1; ids map back to the words), pad/truncate every sequence "
    "to one length (zeros in front, the end kept), and feed the ids to Embedding(mask_zero) + "
    "LSTM, which fits the training sentences (> 90% accuracy).",
    helpers=(_sentences,),
)
def prepare_text(quick: bool, out_dir: Path) -> Result:
    import collections
    import re
    import string

    from ember.data import text

    texts, labels, source = _sentences()
    if quick:
        texts, labels = texts[:600], labels[:600]
    # 1) standardize, checked against a transcription of the rule
    clean = text.standardize(texts)
    punct = re.compile("[" + re.escape(string.punctuation) + "]")
    std_ok = all(c == punct.sub("", t.lower()) for c, t in zip(clean, texts))
    # 2) the vocabulary
    vectorizer = text.TextVectorization(max_tokens=1000)
    vectorizer.adapt(texts)
    vocab = vectorizer.get_vocabulary()
    counts = collections.Counter(w for c in clean for w in c.split())
    kept = [counts[w] for w in vocab[2:]]
    dropped = [n for w, n in counts.items() if w not in set(vocab)]
    order_ok = all(a >= b for a, b in zip(kept, kept[1:])) and (
        not dropped or min(kept) >= max(dropped)
    )
    # 3) ids, and back
    ids = [vectorizer(t) for t in texts]
    back_ok = all(
        [vocab[i] if i > 1 else w for i, w in zip(seq, c.split())] == c.split()
        for seq, c in zip(ids, clean)
    )
    unseen = vectorizer("zyxwvut qwertyuiop").tolist()
    # 4) one length: pre-padding with 0, truncation keeps the end
    maxlen = 12
    padded = text.pad_sequences(ids, maxlen=maxlen)
    pad_ok = all(
        list(row) == ([0] * (maxlen - len(seq)) + list(seq))[-maxlen:]
        for row, seq in zip(padded, ids)
    )
    # 5) a model consumes the ids
    model = em.Sequential(
        [
            layers.Embedding(len(vocab), 16, mask_zero=True),
            layers.LSTM(16),
            layers.Dense(2),
        ]
    )
    model.compile(optimizer=em.optimizers.Adam(0.01), loss=common.classifier_loss())
    model.fit(padded, labels, batch_size=32, epochs=8 if quick else 15, verbose=0)
    acc = common.accuracy(model, padded, labels)
    rows = []
    for t, c, seq, row in list(zip(texts, clean, ids, padded))[:6]:
        rows.append(
            {
                "sentence": t[:60],
                "standardized": c[:60],
                "ids": " ".join(map(str, seq[:8])) + (" ..." if len(seq) > 8 else ""),
                "padded to 12": " ".join(map(str, row)),
            }
        )
    lengths = [len(s) for s in ids]
    fig, axes = new_figure(ncols=2, size=(3.6, 3))
    axes[0].hist(lengths, bins=range(0, max(lengths) + 2), color="tab:blue")
    axes[0].axvline(maxlen, color="k", ls=":", label=f"maxlen = {maxlen}")
    axes[0].set_xlabel("words per sentence")
    axes[0].legend(fontsize=7)
    top = vocab[2:12]
    axes[1].barh(range(len(top)), [counts[w] for w in top])
    axes[1].set_yticks(range(len(top)), top, fontsize=7)
    axes[1].invert_yaxis()
    axes[1].set_title("ids 2-11: the most frequent words", fontsize=8)
    res = Result(
        table=rows,
        figures=[save_figure(fig, out_dir, "text_preparation")],
        notes=f"source: {source}; vocabulary {len(vocab)} (of {len(counts)} words); "
        f"{np.mean(np.array(lengths) > maxlen):.0%} of sentences truncated",
    )
    res.values.update(vocabulary=len(vocab), train_accuracy=acc)
    res.check("standardize = lower() + strip ASCII punctuation", std_ok)
    res.check("vocabulary: '' and '[UNK]' first", vocab[:2] == ["", "[UNK]"], str(vocab[:4]))
    res.check(
        "then by descending count", order_ok, f"{len(vocab) - 2} kept, {len(dropped)} dropped"
    )
    res.check("ids map back to the words", back_ok)
    res.check("an unseen word gets id 1", unseen == [1, 1], str(unseen))
    res.check("padding in front, the end kept", pad_ok and padded.shape == (len(texts), maxlen))
    res.check("Embedding + LSTM fits the training sentences (> 90%)", acc > 0.9, f"{acc:.1%}")
    return res


# ---------------------------------------------------------------------------------- Q52
def _recall_task(n: int, steps: int, seed: int):
    """Sequences of random values in [-1, 1] with a marker channel that is 1 at one of the
    first 3 steps; the target is the marked value: it must be carried over the whole sequence.
    Predicting the mean (0) gives an MSE of 1/3, the variance of the targets."""
    rng = np.random.default_rng(seed)
    values = rng.uniform(-1, 1, (n, steps)).astype(np.float32)
    marker = np.zeros((n, steps), np.float32)
    where = rng.integers(0, 3, n)
    marker[np.arange(n), where] = 1
    return np.stack([values, marker], -1), values[np.arange(n), where][:, None]


@experiment(
    52,
    claim="On a 50-step memory task (report the value marked in the first 3 steps while 47 "
    "more random values stream in), an LSTM of 16 units, whose cell starts by remembering "
    "(forget-gate bias 5), learns to recall it (test MSE < 15% of the targets' variance) in 200 "
    "Adam steps, while a SimpleRNN of 16 units trained the same way stays near predicting the "
    "mean (MSE > 60% of the variance; at least 5x the LSTM's); the LSTM pays 4x the recurrent "
    "weights for its gates.",
    helpers=(_recall_task,),
)
def rnn_versus_lstm(quick: bool, out_dir: Path) -> Result:
    # the same budget in full mode: given many more steps, the SimpleRNN sometimes gets there
    steps, batch = 200, 64
    x, y = _recall_task(steps * batch, 50, seed=1)
    xt, yt = _recall_task(500, 50, seed=2)
    var = float(np.var(yt))
    rows, curves, units = [], {}, 16
    for name, cell in (("SimpleRNN", layers.SimpleRNN(units)), ("LSTM", layers.LSTM(units))):
        em.set_seed(52)
        model = em.Sequential([cell, layers.Dense(1)])
        model(x[:2])
        if name == "LSTM":  # open the forget gate: bias block f (order i, f, c, o) at 5
            kernel, recurrent, bias = cell.get_weights()
            bias[units : 2 * units] = 5.0
            cell.set_weights([kernel, recurrent, bias])
        model.compile(optimizer=em.optimizers.Adam(0.01), loss="mse")
        monitor = _BatchLosses()
        model.fit(x, y, batch_size=batch, epochs=1, verbose=0, callbacks=[monitor])
        curves[name] = monitor.losses
        mse = float(model.evaluate(xt, yt, verbose=0))
        rows.append(
            {
                "model": name,
                "recurrent weights": cell.count_params(),
                "test MSE": mse,
                "MSE / variance": mse / var,
            }
        )
    fig, (ax,) = new_figure(size=(5.5, 3.2))
    for name, losses in curves.items():
        smooth = np.convolve(losses, np.ones(10) / 10, mode="valid")
        ax.plot(smooth, label=name)
    ax.axhline(var, color="k", ls=":", label="predicting the mean")
    ax.set_yscale("log")
    ax.set_xlabel("Adam step")
    ax.set_ylabel("training MSE (10-step average)")
    ax.legend(fontsize=8)
    res = Result(
        table=rows,
        figures=[save_figure(fig, out_dir, "recall_task")],
        notes=layers.LSTM(units).explain(),
    )
    rnn, lstm = rows
    res.check(
        "LSTM recalls (< 15% of the variance)",
        lstm["MSE / variance"] < 0.15,
        f"{lstm['MSE / variance']:.3f}",
    )
    res.check(
        "SimpleRNN stays near the mean (> 60%)",
        rnn["MSE / variance"] > 0.6,
        f"{rnn['MSE / variance']:.3f}",
    )
    res.check(
        "at least 5x the LSTM's error",
        rnn["test MSE"] > 5 * lstm["test MSE"],
        f"{rnn['test MSE'] / lstm['test MSE']:.0f}x",
    )
    ratio = lstm["recurrent weights"] / rnn["recurrent weights"]
    res.check("4x the weights", abs(ratio - 4) < 1e-9, f"{ratio:g}x")
    return res


class _BatchLosses(em.callbacks.Callback):
    """Keeps the loss of every training batch. fit's batch logs hold the running mean over the
    epoch so far (as Keras's), so batch k's own loss is k * mean_k - (k - 1) * mean_{k-1}
    (exact for batches of equal size)."""

    def __init__(self):
        super().__init__()
        self.losses, self._mean = [], 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._mean = 0.0

    def on_batch_end(self, batch, logs=None):
        mean = float(logs["loss"])
        self.losses.append((batch + 1) * mean - batch * self._mean)
        self._mean = mean


# ---------------------------------------------------------------------------------- Q42
def _first_step_gradient(cell, x) -> float:
    """|d loss / d x_1|: how much the first input still matters to a loss on the last output."""
    xt = em.tensor(x, requires_grad=True)
    cell(xt).sum().backward()
    return float(np.linalg.norm(xt.grad[:, 0]))


@experiment(
    42,
    claim="Backpropagation through time multiplies one Jacobian per step, so an RNN's gradients "
    "vanish or explode with the sequence length: for a tanh SimpleRNN the gradient reaching "
    "the first input falls more than a millionfold from 10 to 100 steps, and for a linear RNN "
    "whose recurrent matrix has spectral radius 1.1 the recurrent kernel's gradient grows more "
    "than a thousandfold. The fixes work: an LSTM whose forget gate is open keeps the first "
    "input's gradient (at 100 steps at least a tenth of its size at 10), and clipnorm=1 caps "
    "the exploding update at lr x 1.",
    helpers=(_first_step_gradient,),
)
def rnn_problems(quick: bool, out_dir: Path) -> Result:
    rng = np.random.default_rng(42)
    lengths = (10, 25, 50, 100)
    x = rng.normal(size=(16, max(lengths), 4)).astype(np.float32)
    units = 16
    tanh_rnn = layers.SimpleRNN(units)
    linear_rnn = layers.SimpleRNN(units, activation="linear")
    lstm = layers.LSTM(units)
    for cell in (tanh_rnn, linear_rnn, lstm):
        cell(x[:, :2])
    q, _ = np.linalg.qr(rng.normal(size=(units, units)))  # orthogonal: all |eigenvalues| 1
    kernel, _, bias = linear_rnn.get_weights()
    linear_rnn.set_weights([kernel, (1.1 * q).astype(np.float32), bias])
    kernel, recurrent, bias = lstm.get_weights()
    bias[units : 2 * units] = 5.0  # forget gate f = sigmoid(5) = 0.993: the cell keeps
    lstm.set_weights([kernel, recurrent, bias])
    rows = []
    for t in lengths:
        linear_rnn.recurrent_kernel.grad = None
        linear_rnn(x[:, :t]).sum().backward()
        rows.append(
            {
                "steps": t,
                "tanh RNN |dL/dx_1|": _first_step_gradient(tanh_rnn, x[:, :t]),
                "LSTM, open forget gate |dL/dx_1|": _first_step_gradient(lstm, x[:, :t]),
                "linear RNN (radius 1.1) |dL/dU|": float(
                    np.linalg.norm(linear_rnn.recurrent_kernel.grad)
                ),
            }
        )
    # the fix for exploding gradients: one clipped SGD step on the 100-step linear RNN
    lr = 0.01
    before = linear_rnn.recurrent_kernel.numpy().copy()
    opt = em.optimizers.SGD(lr, clipnorm=1.0, params=[linear_rnn.recurrent_kernel])
    opt.step()  # its .grad still holds the 100-step gradient
    step = float(np.linalg.norm(linear_rnn.recurrent_kernel.numpy() - before))
    unclipped = lr * rows[-1]["linear RNN (radius 1.1) |dL/dU|"]
    fig, (ax,) = new_figure(size=(5.5, 3.3))
    for key in rows[0]:
        if key != "steps":
            ax.semilogy(lengths, [r[key] for r in rows], "o-", ms=4, label=key)
    ax.set_xlabel("sequence length (steps)")
    ax.set_ylabel("gradient norm")
    ax.legend(fontsize=7)
    res = Result(
        table=rows,
        figures=[save_figure(fig, out_dir, "gradients_vs_length")],
        values={"clipped_step": step, "unclipped_step": unclipped},
    )
    first, last = rows[0], rows[-1]
    vanish = last["tanh RNN |dL/dx_1|"] / first["tanh RNN |dL/dx_1|"]
    explode = last["linear RNN (radius 1.1) |dL/dU|"] / first["linear RNN (radius 1.1) |dL/dU|"]
    kept = last["LSTM, open forget gate |dL/dx_1|"] / first["LSTM, open forget gate |dL/dx_1|"]
    res.check("tanh RNN: vanishes (> 1e6x smaller at 100 steps)", vanish < 1e-6, f"{vanish:.1e}")
    res.check("radius 1.1: explodes (> 1e3x larger)", explode > 1e3, f"{explode:.1e}")
    res.check("LSTM with an open forget gate: kept (>= 1/10)", kept >= 0.1, f"{kept:.2g}x")
    res.check(
        "clipnorm = 1 caps the step at lr",
        step <= lr * (1 + 1e-5),
        f"{step:.3g} instead of {unclipped:.3g}",
    )
    return res


# ---------------------------------------------------------------------------------- Q43
def _exploding_rnn(x, seed: int = 43):
    """A linear SimpleRNN(8) + Dense(1) whose recurrent matrix is orthogonal (radius 1): over
    50 steps its gradients are large enough to throw plain SGD off."""
    em.set_seed(seed)
    cell = layers.SimpleRNN(8, activation="linear")
    model = em.Sequential([cell, layers.Dense(1)])
    model(x[:2])
    kernel, _, bias = cell.get_weights()
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(8, 8)))
    cell.set_weights([kernel, q.astype(np.float32), bias])
    return model


@experiment(
    43,
    claim="Gradient clipping limits the gradient before the update: clipnorm rescales each "
    "weight's gradient to norm c keeping its direction (cosine 1), global_clipnorm rescales all "
    "of them by one factor so their joint norm is c, clipvalue caps every element at c (and "
    "turns the direction). On a 50-step linear RNN plain SGD (lr 0.02) overflows to NaN, while "
    "the same run with any of the three clippings trains (loss falls below its first "
    "epoch's; with clipnorm=1 below half the targets' variance).",
    helpers=(_exploding_rnn,),
)
def gradient_clipping(quick: bool, out_dir: Path) -> Result:
    rng = np.random.default_rng(43)
    x = rng.normal(size=(256, 50, 1)).astype(np.float32)
    y = x.sum(axis=1) / np.sqrt(50)  # the scaled running sum: variance 1
    # 1) what each clipping does to one exploding gradient (SGD with lr = 1: step = -g)
    model = _exploding_rnn(x)
    em.losses.MeanSquaredError()(y[:32], model(x[:32])).backward()
    weights = model.trainable_weights
    grads = [w.grad.copy() for w in weights]
    norms = [float(np.linalg.norm(g)) for g in grads]
    total = float(np.sqrt(sum(n**2 for n in norms)))
    steps = {}
    for kind in ("clipnorm", "global_clipnorm", "clipvalue"):
        saved = [w.numpy().copy() for w in weights]
        opt = em.optimizers.SGD(1.0, params=weights, **{kind: 1.0})
        opt.step()
        steps[kind] = [s - w.numpy() for s, w in zip(saved, weights)]
        for w, s, g in zip(weights, saved, grads):  # undo, keep the gradient
            w.data[...] = s
            w.grad = g.copy()

    def cosine(a, b):
        return float(np.vdot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))

    by_norm, by_global, by_value = steps["clipnorm"], steps["global_clipnorm"], steps["clipvalue"]
    rows = [
        {
            "weight": w.name,
            "|g|": n,
            "clipnorm |step|": float(np.linalg.norm(a)),
            "clipnorm cosine": cosine(a, g),
            "global_clipnorm |step|": float(np.linalg.norm(b)),
            "clipvalue max |step|": float(np.abs(c).max()),
            "clipvalue cosine": cosine(c, g),
        }
        for w, n, g, a, b, c in zip(weights, norms, grads, by_norm, by_global, by_value)
    ]
    # 2) training with and without clipping
    epochs = 10 if quick else 20
    curves = {}
    for name, kw in (
        ("no clipping", {}),
        ("clipnorm=1", {"clipnorm": 1.0}),
        ("global_clipnorm=1", {"global_clipnorm": 1.0}),
        ("clipvalue=0.1", {"clipvalue": 0.1}),
    ):
        model = _exploding_rnn(x)
        model.compile(optimizer=em.optimizers.SGD(0.02, **kw), loss="mse")
        with np.errstate(all="ignore"):  # the unclipped run overflows on purpose
            history = model.fit(x, y, batch_size=32, epochs=epochs, verbose=0)
        curves[name] = history.history["loss"]
    fig, (ax,) = new_figure(size=(5.5, 3.2))
    for name, losses in curves.items():
        ax.plot(
            range(1, epochs + 1),
            np.where(np.isfinite(losses), losses, np.nan),
            "o-",
            ms=3,
            label=name + (" (NaN)" if not np.isfinite(losses[-1]) else ""),
        )
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training MSE")
    ax.legend(fontsize=7)
    res = Result(
        table=rows,
        figures=[save_figure(fig, out_dir, "clipping")],
        values={"global_norm": total, "final_loss": {k: v[-1] for k, v in curves.items()}},
    )
    res.check(
        "clipnorm: every step has norm min(|g|, 1) and the gradient's direction",
        all(
            abs(r["clipnorm |step|"] - min(r["|g|"], 1)) < 1e-5 and r["clipnorm cosine"] > 0.99999
            for r in rows
        ),
    )
    joint = float(np.sqrt(sum(r["global_clipnorm |step|"] ** 2 for r in rows)))
    ratios = [float(np.linalg.norm(b) / n) for b, n in zip(by_global, norms)]
    res.check(
        "global_clipnorm: joint norm 1, one factor for all",
        abs(joint - 1) < 1e-5 and max(ratios) - min(ratios) < 1e-6,
        f"joint {joint:.6f}, factor 1/{total:.3g}",
    )
    res.check(
        "clipvalue: every element capped at 1, the direction turned",
        all(r["clipvalue max |step|"] <= 1 + 1e-6 for r in rows)
        and min(r["clipvalue cosine"] for r in rows) < 0.999,
        f"lowest cosine {min(r['clipvalue cosine'] for r in rows):.3f}",
    )
    res.check(
        "plain SGD overflows",
        not np.isfinite(curves["no clipping"][-1]),
        str(curves["no clipping"][-1]),
    )
    res.check(
        "every clipped run trains",
        all(np.isfinite(v[-1]) and v[-1] < v[0] for k, v in curves.items() if k != "no clipping"),
    )
    res.check(
        "clipnorm=1 ends below half the variance",
        curves["clipnorm=1"][-1] < 0.5,
        f"{curves['clipnorm=1'][-1]:.3f} (variance {np.var(y):.2f})",
    )
    return res


# ---------------------------------------------------------------------------------- Q45
def _adam_by_hand(w, grads, lr=0.01, b1=0.9, b2=0.999, eps=1e-7):
    """Adam as published: running averages m and v, bias-corrected, then
    w -= lr m_hat / (sqrt(v_hat) + eps_t). Keras (and ember) add eps to sqrt(v) before the
    correction, which is the same as eps_t = eps / sqrt(1 - b2^t) here.
    Returns the weights after each step."""
    m, v, out = np.zeros_like(w), np.zeros_like(w), []
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        w = w - lr * m_hat / (np.sqrt(v_hat) + eps / np.sqrt(1 - b2**t))
        out.append(w)
    return out


@experiment(
    45,
    claim="Adam keeps a running mean m and mean square v of each weight's gradient, corrects "
    "their start at zero, and steps by lr m_hat / (sqrt(v_hat) + eps): ember's Adam follows "
    "the published update for 20 steps (to 1e-12 in float64); its first step moves every "
    "weight by lr (within 0.2%) whatever its gradient's scale, from 1e-3 to 1e3; and "
    "on a badly scaled regression (features 100x apart) it reaches the optimal loss (within "
    "1%) in 200 steps, where SGD at its largest stable rate is still 10x above it.",
    helpers=(_adam_by_hand,),
)
def adam_explained(quick: bool, out_dir: Path) -> Result:
    em.set_floatx("float64")
    rng = np.random.default_rng(45)
    # 1) the update rule, against a transcription fed the same gradients
    w0 = rng.normal(size=6)
    w = em.Parameter(w0.copy())
    opt = em.optimizers.Adam(0.01, params=[w])
    scales = np.array([1e-3, 1e-2, 1e-1, 1e1, 1e2, 1e3])
    grads, ember_path = [], []
    for _ in range(20):
        ((w - 1.0) ** 2 * em.tensor(scales)).sum().backward()
        grads.append(w.grad.copy())
        opt.step()
        opt.zero_grad()
        ember_path.append(w.numpy().copy())
    hand = _adam_by_hand(w0, grads)
    rule_err = max(float(np.abs(a - b).max()) for a, b in zip(ember_path, hand))
    first = np.abs(ember_path[0] - w0)
    # 2) a race on a badly scaled least-squares problem
    n = 500
    raw = np.stack([rng.normal(0, 1, n), rng.normal(0, 100, n)], 1)
    y = 2.0 * raw[:, :1] - 0.03 * raw[:, 1:] + rng.normal(0, 0.1, (n, 1))
    xb = np.concatenate([raw, np.ones((n, 1))], 1)
    best = float(np.mean((xb @ np.linalg.lstsq(xb, y, rcond=None)[0] - y) ** 2))
    top = np.linalg.eigvalsh(2 / n * xb.T @ xb)[-1]  # SGD diverges above lr = 2 / top
    curves = {}
    for name, make in (
        ("SGD, lr = 1/L", lambda p: em.optimizers.SGD(1 / top, params=p)),
        ("Adam, lr = 0.05", lambda p: em.optimizers.Adam(0.05, params=p)),
    ):
        model = em.Sequential([layers.Dense(1, kernel_initializer="zeros")])
        model(raw[:1])
        race = make(model.trainable_weights)
        losses = []
        for _ in range(200):
            loss = em.losses.MeanSquaredError()(y, model(raw))
            loss.backward()
            race.step()
            race.zero_grad()
            losses.append(float(loss.item()))
        curves[name] = losses
    rows = [
        {"gradient scale": float(s), "first step |dw|": float(f), "first step / lr": f / 0.01}
        for s, f in zip(scales, first)
    ]
    rows += [
        {
            "gradient scale": name,
            "first step |dw|": "-",
            "first step / lr": "-",
            "loss / optimum after 200 steps": c[-1] / best,
        }
        for name, c in curves.items()
    ]
    fig, axes = new_figure(ncols=2, size=(3.6, 3))
    for name, losses in curves.items():
        axes[0].semilogy(np.array(losses) / best, label=name)
    axes[0].set_xlabel("step")
    axes[0].set_ylabel("loss / optimal loss")
    axes[0].legend(fontsize=7)
    axes[1].semilogx(scales, first / 0.01, "o")
    axes[1].set_ylim(0, 1.5)
    axes[1].set_xlabel("gradient scale")
    axes[1].set_title("first step / lr", fontsize=9)
    res = Result(
        table=rows,
        figures=[save_figure(fig, out_dir, "adam")],
        notes=em.optimizers.Adam(0.01).explain(),
    )
    res.check("ember's Adam = the published update", rule_err < 1e-12, f"max diff {rule_err:.1e}")
    res.check(
        "first step = lr for every gradient scale",
        np.abs(first / 0.01 - 1).max() < 2e-3,
        f"{first.min() / 0.01:.5f} .. {first.max() / 0.01:.5f} x lr",
    )
    adam, sgd = curves["Adam, lr = 0.05"][-1] / best, curves["SGD, lr = 1/L"][-1] / best
    res.check("Adam: within 1% of the optimum", adam < 1.01, f"{adam:.4f}x")
    res.check("SGD: still > 10x above", sgd > 10, f"{sgd:.0f}x")
    return res


# ---------------------------------------------------------------------------------- Q49
class _ResidualMLP(em.Model):
    """x -> Dense -> [h + Dense(sigmoid)(h)] x depth -> Dense(10): sigmoid layers with skips."""

    def __init__(self, depth: int, width: int):
        super().__init__()
        self.stem = layers.Dense(width)
        self.blocks = [layers.Dense(width, activation="sigmoid") for _ in range(depth)]
        self.head = layers.Dense(10)

    def call(self, x, training=None):
        h = self.stem(x)
        for block in self.blocks:
            h = h + block(h)  # the skip: dh_out / dh_in = 1 + the block's own derivative
        return self.head(h)


@experiment(
    49,
    claim="Two ways past vanishing gradients in a 20-layer network on digits: with sigmoid "
    "layers the gradient reaching the first layer is < 1e-8 of the last layer's and 200 Adam "
    "steps leave the loss at chance (> 2.2; ln 10 = 2.30); (1) ReLU with He initialisation "
    "keeps the first layer's gradient within 10x of the last's and trains (loss < 1), and (2) "
    "residual connections h + sigmoid(W h + b), keeping the sigmoid, give the gradient a short "
    "path (ratio > 1e-2) and train too (loss < 1).",
    helpers=(_ResidualMLP, common.train_steps),
)
def vanishing_gradient_fixes(quick: bool, out_dir: Path) -> Result:
    (x, y), _ = common.digits()
    x = x.reshape(len(x), -1)
    depth, width = 20, 32
    nets = {
        "sigmoid (Xavier)": lambda: common.mlp([width] * depth, "sigmoid", 10, "glorot_normal"),
        "ReLU (He)": lambda: common.mlp([width] * depth, "relu", 10, "he_normal"),
        "sigmoid + residual": lambda: _ResidualMLP(depth, width),
    }
    rows, curves = [], {}
    for name, make in nets.items():
        em.set_seed(49)
        model = make()
        hidden = model.blocks if isinstance(model, _ResidualMLP) else model.layers[:-1]
        common.classifier_loss()(y[:256], model(x[:256])).backward()
        grads = common.kernel_grad_norms(hidden)
        for p in model.trainable_weights:
            p.grad = None
        opt = em.optimizers.Adam(0.001, params=model.trainable_weights)
        losses = common.train_steps(
            model, x, y, common.classifier_loss(), opt, 200 if quick else 500, 64
        )
        curves[name] = losses
        rows.append(
            {
                "network": name,
                "|grad| layer 1": grads[0],
                "|grad| layer 20": grads[-1],
                "layer 1 / layer 20": grads[0] / grads[-1],
                "loss, last 10 steps": float(np.mean(losses[-10:])),
                "train accuracy": common.accuracy(model, x, y),
            }
        )
    fig, (ax,) = new_figure(size=(5.5, 3.2))
    for name, losses in curves.items():
        ax.plot(np.convolve(losses, np.ones(10) / 10, mode="valid"), label=name)
    ax.set_yscale("log")
    ax.set_xlabel("Adam step")
    ax.set_ylabel("training loss (10-step mean)")
    ax.legend(fontsize=8)
    res = Result(table=rows, figures=[save_figure(fig, out_dir, "deep_nets")])
    sig, relu, resid = rows
    res.check(
        "sigmoid: first layer's gradient < 1e-8 of the last's",
        sig["layer 1 / layer 20"] < 1e-8,
        f"{sig['layer 1 / layer 20']:.1e}",
    )
    res.check(
        "sigmoid: stuck at chance (> 2.2)",
        sig["loss, last 10 steps"] > 2.2,
        f"{sig['loss, last 10 steps']:.3f}",
    )
    res.check(
        "ReLU + He: within 10x",
        0.1 < relu["layer 1 / layer 20"] < 10,
        f"{relu['layer 1 / layer 20']:.2f}",
    )
    res.check(
        "ReLU + He: trains (< 1)",
        relu["loss, last 10 steps"] < 1,
        f"{relu['loss, last 10 steps']:.3f}",
    )
    res.check(
        "residual: ratio > 1e-2",
        resid["layer 1 / layer 20"] > 1e-2,
        f"{resid['layer 1 / layer 20']:.2f}",
    )
    res.check(
        "residual: trains (< 1)",
        resid["loss, last 10 steps"] < 1,
        f"{resid['loss, last 10 steps']:.3f}",
    )
    return res


# ---------------------------------------------------------------------------------- Q51
def _build_digits_mlp(params: dict):
    """What a tuner calls for each trial: a compiled model built from the trial's values."""
    model = common.mlp([params["units"]], "relu", out_units=10)
    model.compile(
        optimizer=em.optimizers.SGD(params["learning_rate"]),
        loss=common.classifier_loss(),
        metrics=["accuracy"],
    )
    return model


@experiment(
    51,
    claim="Hyperparameters are tuned by search, not trained: a grid search with ember.tuning "
    "over learning rate {1e-4, 1e-2, 1} x hidden units {4, 64} runs each of the 6 "
    "combinations exactly once, its validation accuracies span more than 20 points, and it "
    "reports as best the trial with the highest validation accuracy, whose kept model scores "
    "that accuracy again; a random search with the same budget tries 6 different learning "
    "rates (the grid only 3), all inside the log-uniform range it was given.",
    helpers=(_build_digits_mlp,),
)
def tuning_run(quick: bool, out_dir: Path) -> Result:
    from ember import tuning

    (x, y), _ = common.digits()
    x = x.reshape(len(x), -1)
    xv, yv, x, y = x[:300], y[:300], x[300:], y[300:]
    fit = dict(validation_data=(xv, yv), epochs=2 if quick else 5, batch_size=32)
    grid = tuning.GridSearch(
        _build_digits_mlp,
        {"learning_rate": tuning.Choice([1e-4, 1e-2, 1.0]), "units": tuning.Choice([4, 64])},
        objective="val_accuracy",
        seed=51,
        pruner=None,
        verbose=0,
    )
    grid.search(x, y, **fit)
    found = grid.results
    random = tuning.RandomSearch(
        _build_digits_mlp,
        {"learning_rate": tuning.Float(1e-4, 1.0, log=True), "units": tuning.Int(4, 64)},
        objective="val_accuracy",
        max_trials=6,
        seed=51,
        pruner=None,
        verbose=0,
    )
    random.search(x, y, **fit)
    rows = [
        {"search": "grid", "trial": r["trial"], **r["params"], "val_accuracy": r["objective"]}
        for r in found
    ]
    rows += [
        {"search": "random", "trial": r["trial"], **r["params"], "val_accuracy": r["objective"]}
        for r in random.results
    ]
    combos = sorted((r["params"]["learning_rate"], r["params"]["units"]) for r in found)
    expected = sorted((lr, u) for lr in (1e-4, 1e-2, 1.0) for u in (4, 64))
    accs = [r["objective"] for r in found]
    top = max(found, key=lambda r: r["objective"])
    kept = grid.best_model()
    kept_acc = common.accuracy(kept, xv, yv)
    rates = [r["params"]["learning_rate"] for r in random.results]
    fig, axes = new_figure(ncols=2, size=(3.6, 3))
    for ax, (name, rs) in zip(axes, (("grid", found), ("random", random.results))):
        lr = [r["params"]["learning_rate"] for r in rs]
        sc = ax.scatter(
            lr,
            [r["params"]["units"] for r in rs],
            c=[r["objective"] for r in rs],
            vmin=0,
            vmax=1,
            cmap="viridis",
            s=60,
        )
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_title(f"{name} search", fontsize=9)
    axes[0].set_ylabel("hidden units")
    fig.colorbar(sc, ax=axes[1], label="validation accuracy")
    res = Result(
        table=rows, figures=[save_figure(fig, out_dir, "searches")], notes=grid.results_table()
    )
    res.check("the grid runs each combination once", combos == expected, f"{len(combos)} trials")
    res.check(
        "validation accuracy spans > 20 points",
        max(accs) - min(accs) > 0.2,
        f"{min(accs):.1%} .. {max(accs):.1%}",
    )
    res.check(
        "best = the trial with the highest validation accuracy",
        grid.best_params == top["params"],
        str(grid.best_params),
    )
    res.check(
        "its kept model scores it again",
        abs(kept_acc - grid.best_value) < 1e-9,
        f"{kept_acc:.4f} vs {grid.best_value:.4f}",
    )
    res.check(
        "random search: 6 different rates inside [1e-4, 1]",
        len(set(rates)) == 6 and all(1e-4 <= r <= 1.0 for r in rates),
        ", ".join(f"{r:.2g}" for r in rates),
    )
    return res
