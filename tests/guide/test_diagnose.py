"""training.diagnose on synthetic learning curves whose verdict is known by construction."""

import numpy as np
import pytest

from ember.errors import EmberTypeError, EmberValueError
from ember.training.diagnose import diagnose


class FakeHistory:
    def __init__(self, history, epoch=None):
        self.history = history
        self.epoch = epoch if epoch is not None else list(range(len(history["loss"])))


def curves(n=30, turn=None, floor=0.1):
    """Training loss decaying to `floor`; validation equal plus a gap, rising after `turn`."""
    t = np.arange(n)
    train = floor + np.exp(-t / 4)
    val = train + 0.05
    if turn is not None:
        val = np.where(t > turn, val[turn] + 0.02 * (t - turn), val)
    return list(train), list(val)


def test_overfit_names_the_epoch_where_validation_turned():
    train, val = curves(turn=12)
    d = diagnose({"loss": train, "val_loss": val})
    assert d.kind == "overfit"
    assert d.turning_epoch == int(np.argmin(val)) == 12
    assert "epoch 12" in d.reason


def test_turning_epoch_is_absolute_after_a_resume():
    train, val = curves(turn=12)
    d = diagnose(FakeHistory({"loss": train, "val_loss": val}, epoch=list(range(100, 130))))
    assert d.turning_epoch == 112


def test_good_fit_when_both_curves_settle_together():
    train, val = curves()
    d = diagnose({"loss": train, "val_loss": val})
    assert d.kind == "good fit"
    assert d.turning_epoch is None


def test_small_noise_after_the_best_epoch_is_not_overfitting():
    train, val = curves()
    val[-1] = min(val) * 1.02  # a 2% wobble, below min_rise = 5%
    assert diagnose({"loss": train, "val_loss": val}).kind == "good fit"


def test_rising_validation_while_training_also_rises_is_not_overfitting():
    train, val = curves(turn=12)
    train = train[:13] + [train[12] + 0.03 * k for k in range(1, 18)]
    assert diagnose({"loss": train, "val_loss": val}).kind != "overfit"


def test_underfit_against_a_baseline():
    flat = [0.95, 0.9, 0.88, 0.87, 0.87, 0.87]
    d = diagnose({"loss": flat, "val_loss": [v + 0.01 for v in flat]}, baseline=1.0)
    assert d.kind == "underfit"
    good = diagnose({"loss": flat, "val_loss": flat}, baseline=3.0)  # 0.87 < 0.5 * 3
    assert good.kind == "good fit"


def test_underfit_when_the_loss_barely_moves_or_is_still_falling():
    assert diagnose({"loss": [2.30, 2.29, 2.28, 2.28]}).kind == "underfit"
    linear = list(np.linspace(2.0, 1.0, 20))  # still falling at the same pace at the end
    assert diagnose({"loss": linear, "val_loss": linear}).kind == "underfit"


def test_without_validation_a_settled_loss_is_unknown():
    train, _ = curves()
    d = diagnose({"loss": train})
    assert d.kind == "unknown" and "validation" in d.reason


def test_diverged_on_nan_or_a_tenfold_rise():
    assert diagnose({"loss": [1.0, 3.0, float("nan")]}).kind == "diverged"
    assert diagnose({"loss": [1.0, 5.0, 40.0]}).kind == "diverged"


def test_other_monitors_and_bad_inputs():
    train, val = curves(turn=10)
    d = diagnose({"loss": [1, 1, 1], "mae": train, "val_mae": val}, monitor="mae")
    assert d.kind == "overfit" and d.turning_epoch == 10
    with pytest.raises(EmberValueError, match="'loss'"):
        diagnose({"accuracy": [0.5]})
    with pytest.raises(EmberValueError, match="val_loss"):
        diagnose({"loss": [1.0, 0.5], "val_loss": [1.0]})
    with pytest.raises(EmberTypeError, match="History"):
        diagnose([1.0, 0.5])


def test_diagnose_reads_a_real_fit_history():
    import ember as em
    from ember import layers

    x = np.linspace(-1, 1, 64, dtype=np.float32)[:, None]
    model = em.Sequential([layers.Dense(1)])
    model.compile(optimizer=em.optimizers.SGD(0.1), loss="mse")
    history = model.fit(x, 3 * x, epochs=40, batch_size=16, verbose=0, validation_split=0.25)
    d = diagnose(history)
    assert d.kind == "good fit"  # a line fitted to a line: nothing to overfit
    assert d.values["epochs"] == 40
