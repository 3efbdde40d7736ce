"""History: the per-epoch logs of a fit, and their plot."""

from __future__ import annotations

from ember.callbacks import Callback


class History(Callback):
    """Records every epoch's logs; ``fit`` returns it (also as ``model.history``).

    ``history.history`` maps each log key to its list of values, one per epoch run
    (``{"loss": [...], "val_loss": [...], "accuracy": [...]}``); ``history.epoch`` lists the
    epoch indices (0-based, absolute after a resume).
    """

    def __init__(self):
        super().__init__()
        self.history: dict[str, list] = {}
        self.epoch: list[int] = []

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)
        if self.model is not None:
            self.model.history = self

    def diagnose(self, **kwargs):
        """Read the learning curves: underfit, good fit or overfit, and the epoch where the
        validation loss turned (see ``ember.training.diagnose.diagnose`` for the options)."""
        from ember.training.diagnose import diagnose

        return diagnose(self, **kwargs)

    def plot(self, path, title: str | None = None) -> str:
        """Draw loss and every metric against the epoch, train and validation side by side,
        one panel per quantity, and save the figure to ``path`` (PNG, SVG, PDF by extension).

        Returns the path. Uses matplotlib's Agg canvas directly (no pyplot, no display).
        """
        from ember.errors import EmberValueError
        from ember.plotting import new_figure, save_figure

        names = [k for k in self.history if not k.startswith("val_") and "/" not in k]
        names += [k[4:] for k in self.history if k.startswith("val_") and k[4:] not in names]
        names = [k for k in names if k != "learning_rate"] + (
            ["learning_rate"] if "learning_rate" in names else []
        )
        if not names:
            raise EmberValueError("History.plot: nothing to plot; the history is empty")
        cols = min(len(names), 3)
        rows = -(-len(names) // cols)
        fig, axes = new_figure("History.plot", cols, rows, (4.2, 3.2), panels=len(names))
        epochs = [e + 1 for e in self.epoch] or None
        for i, name in enumerate(names):
            ax = axes[i]
            for key, label, style in ((name, "train", "-o"), (f"val_{name}", "validation", "-s")):
                values = self.history.get(key)
                if not values:
                    continue
                xs = epochs if epochs and len(epochs) == len(values) else range(1, len(values) + 1)
                ax.plot(list(xs), values, style, markersize=3, label=label)
            ax.set_title(name)
            ax.set_xlabel("epoch")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        if title:
            fig.suptitle(title)
        return save_figure(fig, path)
