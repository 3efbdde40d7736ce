"""Learning-rate schedules against their published formulas (Keras 3 docs; StepDecay: PyTorch's
StepLR), evaluated by hand here."""

import math

import pytest

from ember import optimizers as O
from ember import schedules as S


def test_exponential_decay_follows_the_formula():
    s = S.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)
    for step in (0, 1, 5, 10, 25, 1000):
        assert s(step) == pytest.approx(0.1 * 0.5 ** (step / 10), rel=1e-12)


def test_exponential_decay_staircase_floors_the_exponent():
    s = S.ExponentialDecay(1.0, decay_steps=4, decay_rate=0.1, staircase=True)
    assert [s(t) for t in (0, 3, 4, 7, 8)] == pytest.approx([1.0, 1.0, 0.1, 0.1, 0.01])


def test_step_decay_drops_every_step_size_steps():
    s = S.StepDecay(0.5, step_size=3, gamma=0.2)
    expected = [0.5, 0.5, 0.5, 0.1, 0.1, 0.1, 0.02]
    assert [s(t) for t in range(7)] == pytest.approx(expected)


def test_cosine_decay_without_warmup_reaches_alpha_and_stays():
    s = S.CosineDecay(0.2, decay_steps=10, alpha=0.25)
    for t in (0, 3, 5, 10):
        cos = 0.5 * (1 + math.cos(math.pi * t / 10))
        assert s(t) == pytest.approx(0.2 * ((1 - 0.25) * cos + 0.25), rel=1e-12)
    assert s(5) == pytest.approx(0.2 * (0.75 * 0.5 + 0.25))
    assert s(10) == pytest.approx(0.05) and s(500) == pytest.approx(0.05)


def test_cosine_decay_warmup_is_linear_then_decays_from_the_target():
    s = S.CosineDecay(0.0, decay_steps=8, warmup_target=1.0, warmup_steps=4)
    assert [s(t) for t in range(5)] == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])
    assert s(8) == pytest.approx(0.5)  # half way through the cosine
    assert s(12) == pytest.approx(0.0, abs=1e-12) and s(100) == pytest.approx(0.0, abs=1e-12)


def test_cosine_decay_ignores_warmup_steps_without_a_target():
    s = S.CosineDecay(1.0, decay_steps=4, warmup_steps=10)
    assert s(2) == pytest.approx(0.5)


def test_piecewise_constant_boundaries_belong_to_the_earlier_piece():
    s = S.PiecewiseConstantDecay([10, 20], [1.0, 0.5, 0.1])
    assert [s(t) for t in (0, 10, 11, 20, 21, 99)] == [1.0, 1.0, 0.5, 0.5, 0.1, 0.1]


@pytest.mark.parametrize(
    "schedule",
    [
        S.ExponentialDecay(0.1, 7, 0.9, staircase=True),
        S.StepDecay(0.1, 5, 0.5),
        S.CosineDecay(0.01, 30, alpha=0.1, warmup_target=0.1, warmup_steps=3),
        S.PiecewiseConstantDecay([3, 9], [0.3, 0.2, 0.1]),
    ],
)
def test_schedules_round_trip_through_their_config(schedule):
    again = S.deserialize(S.serialize(schedule))
    assert type(again) is type(schedule)
    assert again.get_config() == schedule.get_config()
    assert [again(t) for t in range(40)] == [schedule(t) for t in range(40)]
    assert S.get(schedule) is schedule


def test_custom_schedule_subclasses_are_loadable_by_name():
    class HalfEveryStep(S.LearningRateSchedule):
        def __init__(self, lr):
            self.lr = lr

        def __call__(self, step):
            return self.lr * 0.5**step

        def get_config(self):
            return {"lr": self.lr}

    again = S.deserialize({"class_name": "HalfEveryStep", "config": {"lr": 4.0}})
    assert again(3) == 0.5


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: S.ExponentialDecay(0.1, 0, 0.5), "decay_steps"),
        (lambda: S.StepDecay(0.1, -2), "step_size"),
        (lambda: S.CosineDecay(0.1, 0), "decay_steps"),
        (lambda: S.CosineDecay(0.1, 10, warmup_steps=-1), "warmup_steps"),
        (lambda: S.PiecewiseConstantDecay([1, 2], [0.1, 0.2]), "one more"),
        (lambda: S.PiecewiseConstantDecay([5, 2], [0.1, 0.2, 0.3]), "increasing"),
        (lambda: S.deserialize({"class_name": "Nope", "config": {}}), "unknown schedule"),
    ],
)
def test_bad_schedule_arguments_raise(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_get_rejects_non_schedules():
    with pytest.raises(TypeError):
        S.get("cosine")


def test_optimizer_asks_the_schedule_at_the_iteration_count():
    opt = O.Adam(learning_rate=S.PiecewiseConstantDecay([1], [0.5, 0.25]))
    assert opt.learning_rate == 0.5
    opt.iterations = 2
    assert opt.learning_rate == 0.25
