"""Optimizers against a NumPy transcription of Keras 3's update rules (written here, from the
formulas in keras/src/optimizers/*.py), plus state, in-place and error behaviour."""

import math

import numpy as np
import pytest

import ember as em
from ember import optimizers as O
from ember import schedules as S
from ember.ops import _accel

STEPS = 25
SHAPES = {"dense/kernel": (3, 4), "dense/bias": (4,)}


# --------------------------------------------------------------------------- the oracle
def keras_reference(spec, init, grad_fn, steps=STEPS):
    """Keras 3's update, step by step in float64: clip -> weight decay -> rule -> count."""
    ws = {k: v.astype(np.float64).copy() for k, v in init.items()}
    st = {k: {} for k in ws}
    kind = spec["kind"]
    for t in range(steps):
        grads = grad_fn(t, ws)
        if spec.get("clipnorm"):
            c = spec["clipnorm"]
            grads = {k: g * c / max(np.sqrt(np.sum(g * g)), c) for k, g in grads.items()}
        if spec.get("global_clipnorm"):
            c = spec["global_clipnorm"]
            gn = np.sqrt(sum(np.sum(g * g) for g in grads.values()))
            grads = {k: g * (c * min(1.0 / gn, 1.0 / c)) for k, g in grads.items()}
        if spec.get("clipvalue"):
            c = spec["clipvalue"]
            grads = {k: np.clip(g, -c, c) for k, g in grads.items()}
        base_lr = spec["ref_schedule"](t) if "ref_schedule" in spec else spec["learning_rate"]
        for k, g in grads.items():
            w, s = ws[k], st[k]
            lr = base_lr * spec.get("ref_mult", {}).get(k, 1.0)
            if spec.get("weight_decay") is not None and k not in spec.get("no_decay", ()):
                w = w - w * spec["weight_decay"] * lr
            if kind == "sgd":
                mu = spec.get("momentum", 0.0)
                if mu == 0:
                    w = w - lr * g
                else:
                    m = mu * s.get("m", 0.0) - lr * g
                    s["m"] = m
                    w = w + (mu * m - lr * g if spec.get("nesterov") else m)
            elif kind == "adagrad":
                a = s.get("a", spec.get("initial_accumulator_value", 0.1)) + g * g
                s["a"] = a
                w = w - lr * g / np.sqrt(a + spec.get("epsilon", 1e-7))
            elif kind == "rmsprop":
                rho, eps, mu = (
                    spec.get("rho", 0.9),
                    spec.get("epsilon", 1e-7),
                    spec.get("momentum", 0.0),
                )
                v = rho * s.get("v", 0.0) + (1 - rho) * g * g
                s["v"] = v
                if spec.get("centered"):
                    a = rho * s.get("a", 0.0) + (1 - rho) * g
                    s["a"] = a
                    denom = v - a * a + eps
                else:
                    denom = v + eps
                inc = lr * g / np.sqrt(denom)
                if mu > 0:
                    s["m"] = mu * s.get("m", 0.0) + inc
                    w = w - s["m"]
                else:
                    w = w - inc
            elif kind in ("adam", "adamw"):
                b1, b2 = spec.get("beta_1", 0.9), spec.get("beta_2", 0.999)
                eps = spec.get("epsilon", 1e-7)
                step = t + 1
                alpha = lr * np.sqrt(1 - b2**step) / (1 - b1**step)
                m = s.get("m", 0.0) + (g - s.get("m", 0.0)) * (1 - b1)
                v = s.get("v", 0.0) + (g * g - s.get("v", 0.0)) * (1 - b2)
                s["m"], s["v"] = m, v
                if spec.get("amsgrad"):
                    s["vh"] = np.maximum(s.get("vh", 0.0), v)
                    v = s["vh"]
                w = w - (m * alpha) / (np.sqrt(v) + eps)
            ws[k] = w
    return ws


def make_problem(seed=0, scale=3.0):
    """Initial weights and a gradient that depends on the weights and on the step."""
    r = np.random.default_rng(seed)
    init = {k: r.normal(size=s) for k, s in SHAPES.items()}
    noise = [{k: scale * r.normal(size=s) for k, s in SHAPES.items()} for _ in range(STEPS)]

    def grad_fn(t, ws):
        return {k: 0.7 * ws[k] + np.sin(ws[k]) + noise[t][k] for k in ws}

    return init, grad_fn


_OPT_KEYS = {"learning_rate", "momentum", "nesterov", "initial_accumulator_value", "epsilon",
             "rho", "centered", "beta_1", "beta_2", "amsgrad", "weight_decay", "clipnorm",
             "clipvalue", "global_clipnorm", "lr_multipliers"}  # fmt: skip
_CLASSES = {"sgd": O.SGD, "adagrad": O.Adagrad, "rmsprop": O.RMSprop, "adam": O.Adam,
            "adamw": O.AdamW}  # fmt: skip


def build(spec, params=None):
    kwargs = {k: v for k, v in spec.items() if k in _OPT_KEYS}
    if "schedule" in spec:
        kwargs["learning_rate"] = spec["schedule"]()
    opt = _CLASSES[spec["kind"]](params=params, **kwargs)
    if spec.get("no_decay"):
        opt.exclude_from_weight_decay(["bias"])
    return opt


def run_ember(spec, init, grad_fn, dtype, steps=STEPS, use_step=True):
    params = {k: em.Parameter(v.astype(dtype), name=k) for k, v in init.items()}
    opt = build(spec, list(params.values()))
    for t in range(steps):
        grads = grad_fn(t, {k: p.data.astype(np.float64) for k, p in params.items()})
        if use_step:
            for k, p in params.items():
                p.grad = grads[k].astype(dtype)
            opt.step()
            opt.zero_grad()
        else:
            opt.apply_gradients([(grads[k].astype(dtype), p) for k, p in params.items()])
    return params, opt


def _exp(t):
    return 0.05 * 0.5 ** (t / 10)


def _cos_warm(t):
    t = min(t, 20 + 5)
    if t < 5:
        return (0.02 - 0.001) * t / 5 + 0.001
    return 0.02 * ((1 - 0.1) * 0.5 * (1 + math.cos(math.pi * (t - 5) / 20)) + 0.1)


def _piece(t):
    return 0.01 if t <= 8 else (0.003 if t <= 16 else 0.001)


SPECS = {
    "sgd": dict(kind="sgd", learning_rate=0.01),
    "sgd_momentum": dict(kind="sgd", learning_rate=0.01, momentum=0.9),
    "sgd_nesterov": dict(kind="sgd", learning_rate=0.01, momentum=0.9, nesterov=True),
    "sgd_weight_decay": dict(kind="sgd", learning_rate=0.05, momentum=0.5, weight_decay=0.1),
    "adagrad": dict(kind="adagrad", learning_rate=0.1),
    "adagrad_eps": dict(kind="adagrad", learning_rate=0.1, initial_accumulator_value=0.0,
                        epsilon=0.5),  # fmt: skip
    "rmsprop": dict(kind="rmsprop", learning_rate=0.01),
    "rmsprop_momentum": dict(kind="rmsprop", learning_rate=0.01, momentum=0.8),
    "rmsprop_centered": dict(kind="rmsprop", learning_rate=0.01, centered=True, epsilon=1e-3),
    "rmsprop_centered_momentum": dict(kind="rmsprop", learning_rate=0.01, centered=True,
                                      momentum=0.5, rho=0.8),  # fmt: skip
    "adam": dict(kind="adam", learning_rate=0.02),
    "adam_eps": dict(kind="adam", learning_rate=0.02, epsilon=0.3, beta_1=0.8, beta_2=0.9),
    "adam_amsgrad": dict(kind="adam", learning_rate=0.02, amsgrad=True, beta_2=0.9),
    "adamw": dict(kind="adamw", learning_rate=0.02, weight_decay=0.004),
    "adamw_strong_amsgrad": dict(kind="adamw", learning_rate=0.05, weight_decay=0.5, amsgrad=True),
    "adamw_exclude_bias": dict(kind="adamw", learning_rate=0.05, weight_decay=0.5,
                               no_decay=("dense/bias",)),  # fmt: skip
    "sgd_clipnorm": dict(kind="sgd", learning_rate=0.05, momentum=0.9, clipnorm=1.0),
    "sgd_clipvalue": dict(kind="sgd", learning_rate=0.05, momentum=0.9, clipvalue=0.5),
    "sgd_global_clipnorm": dict(kind="sgd", learning_rate=0.05, momentum=0.9, global_clipnorm=2.0),
    "adam_clipnorm": dict(kind="adam", learning_rate=0.02, clipnorm=1.5),
    "adam_clipvalue": dict(kind="adam", learning_rate=0.02, clipvalue=0.4),
    "adam_global_clipnorm": dict(kind="adam", learning_rate=0.02, global_clipnorm=1.0),
    "rmsprop_clipnorm": dict(kind="rmsprop", learning_rate=0.01, clipnorm=0.8),
    "adagrad_global_clipnorm": dict(kind="adagrad", learning_rate=0.1, global_clipnorm=0.5),
    "sgd_exponential_decay": dict(kind="sgd", momentum=0.9, ref_schedule=_exp,
                                  schedule=lambda: S.ExponentialDecay(0.05, 10, 0.5)),
    "adam_cosine_warmup": dict(kind="adam", ref_schedule=_cos_warm,
                               schedule=lambda: S.CosineDecay(0.001, 20, alpha=0.1,
                                                              warmup_target=0.02,
                                                              warmup_steps=5)),
    "rmsprop_piecewise": dict(kind="rmsprop", momentum=0.5, ref_schedule=_piece,
                              schedule=lambda: S.PiecewiseConstantDecay([8, 16],
                                                                        [0.01, 0.003, 0.001])),
    "adam_step_decay_clipnorm": dict(kind="adam", clipnorm=2.0,
                                     ref_schedule=lambda t: 0.03 * 0.5 ** (t // 7),
                                     schedule=lambda: S.StepDecay(0.03, 7, gamma=0.5)),
    "sgd_lr_multiplier": dict(kind="sgd", learning_rate=0.05, momentum=0.9,
                              lr_multipliers={"dense/b": 0.1},
                              ref_mult={"dense/bias": 0.1}),
    "adamw_lr_multiplier": dict(kind="adamw", learning_rate=0.05, weight_decay=0.3,
                                lr_multipliers={"dense/": 0.5, "dense/kernel": 2.0},
                                ref_mult={"dense/bias": 0.5, "dense/kernel": 2.0}),
}  # fmt: skip


# --------------------------------------------------------------------------- trajectories
@pytest.mark.parametrize("name", sorted(SPECS))
def test_trajectory_matches_keras_formulas_float64(name, float64):
    spec = SPECS[name]
    init, grad_fn = make_problem()
    expected = keras_reference(spec, init, grad_fn)
    params, opt = run_ember(spec, init, grad_fn, np.float64)
    assert opt.iterations == STEPS
    for k, p in params.items():
        np.testing.assert_allclose(p.data, expected[k], rtol=0, atol=1e-6)
        # and the weights really moved (a no-op optimizer would fail above only by luck)
        assert np.abs(p.data - init[k]).max() > 1e-3


@pytest.mark.parametrize("name", ["sgd_nesterov", "rmsprop_centered_momentum",
                                  "adam_amsgrad", "adamw", "adam_global_clipnorm"])  # fmt: skip
def test_float32_trajectory_stays_float32_and_close_to_float64(name):
    spec = SPECS[name]
    init, grad_fn = make_problem()
    expected = keras_reference(spec, init, grad_fn)
    params, opt = run_ember(spec, init, grad_fn, np.float32)
    for k, p in params.items():
        assert p.data.dtype == np.float32
        np.testing.assert_allclose(p.data, expected[k], rtol=1e-4, atol=1e-4)
    for key, arr in opt.get_state().items():
        if key not in ("iterations", "learning_rate"):
            assert arr.dtype == np.float32, key


def test_apply_gradients_gives_the_same_trajectory_as_step(float64):
    spec = SPECS["adam_clipnorm"]
    init, grad_fn = make_problem(seed=3)
    a, _ = run_ember(spec, init, grad_fn, np.float64, use_step=True)
    b, opt = run_ember(spec, init, grad_fn, np.float64, use_step=False)
    for k in a:
        np.testing.assert_array_equal(a[k].data, b[k].data)
    assert opt.iterations == STEPS


# --------------------------------------------------------------------------- in place, skips
@pytest.mark.parametrize("kind", sorted(_CLASSES))
def test_update_is_in_place_and_keeps_float32(kind):
    p = em.Parameter(np.ones((4, 5), np.float32), name="w")
    before = p.data
    opt = _CLASSES[kind](learning_rate=0.1, params=[p])
    for _ in range(3):
        p.grad = np.full((4, 5), 0.5, np.float32)
        opt.step()
    assert p.data is before
    assert p.data.dtype == np.float32
    assert np.all(p.data < 1.0)


def test_step_skips_weights_whose_grad_is_none():
    a = em.Parameter(np.ones(3, np.float32), name="a")
    b = em.Parameter(np.ones(3, np.float32), name="b")
    opt = O.Adam(learning_rate=0.1, params=[a, b])
    a.grad = np.ones(3, np.float32)
    opt.step()
    np.testing.assert_array_equal(b.data, np.ones(3))
    assert not np.allclose(a.data, 1.0)
    assert set(opt.get_state()) == {"iterations", "learning_rate", "a/momentum", "a/velocity"}


def test_step_with_no_gradients_at_all_does_nothing():
    a = em.Parameter(np.ones(3, np.float32), name="a")
    opt = O.SGD(params=[a])
    opt.step()
    assert opt.iterations == 0
    np.testing.assert_array_equal(a.data, 1.0)


def test_apply_gradients_skips_none_and_rejects_all_none():
    a = em.Parameter(np.ones(2), name="a")
    b = em.Parameter(np.ones(2), name="b")
    opt = O.SGD(learning_rate=0.5)
    opt.apply_gradients([(np.ones(2), a), (None, b)])
    np.testing.assert_allclose(a.data, 0.5)
    np.testing.assert_allclose(b.data, 1.0)
    with pytest.raises(ValueError, match="no gradient"):
        opt.apply_gradients([(None, a), (None, b)])


def test_zero_grad_clears_every_param_grad():
    a = em.Parameter(np.ones(2), name="a")
    a.grad = np.ones(2)
    opt = O.SGD(params=[a])
    opt.zero_grad()
    assert a.grad is None


def test_low_level_loop_with_autograd_matches_the_formula_and_lowers_the_loss():
    rng = np.random.default_rng(1)
    x = em.tensor(rng.normal(size=(16, 3)).astype(np.float32))
    y = em.tensor(rng.normal(size=(16, 1)).astype(np.float32))
    w = em.Parameter(rng.normal(size=(3, 1)).astype(np.float32), name="w")
    opt = O.SGD(learning_rate=0.1, momentum=0.9, params=[w])

    def loss_fn():
        return ((x @ w - y) ** 2).mean()

    first = loss_fn().item()
    w0 = w.data.copy()
    loss = loss_fn()
    loss.backward()
    grad = 2 * x.data.T @ (x.data @ w0 - y.data) / 16
    opt.step()
    opt.zero_grad()
    # first momentum step: m = -lr * g, w = w + m
    np.testing.assert_allclose(w.data, w0 - 0.1 * grad, rtol=1e-5, atol=1e-6)
    for _ in range(20):
        loss_fn().backward()
        opt.step()
        opt.zero_grad()
    assert loss_fn().item() < 0.5 * first


def test_constraint_is_applied_after_the_update():
    p = em.Parameter(np.zeros(3), name="w")
    p.constraint = lambda w: np.clip(w, -0.05, 0.05)
    opt = O.SGD(learning_rate=1.0, params=[p])
    p.grad = np.array([1.0, -0.01, -1.0])
    opt.step()
    np.testing.assert_allclose(p.data, [-0.05, 0.01, 0.05])


# --------------------------------------------------------------------------- state
@pytest.mark.parametrize("name", ["sgd_nesterov", "adagrad", "rmsprop_centered_momentum",
                                  "adam_amsgrad", "adamw", "adam_cosine_warmup"])  # fmt: skip
def test_state_round_trip_resumes_bit_identically(name):
    spec = SPECS[name]
    init, grad_fn = make_problem(seed=5)
    full, _ = run_ember(spec, init, grad_fn, np.float32)

    params = {k: em.Parameter(v.astype(np.float32), name=k) for k, v in init.items()}
    opt = build(spec, list(params.values()))
    for t in range(10):
        for k, p in params.items():
            p.grad = grad_fn(t, {q: r.data.astype(np.float64) for q, r in params.items()})[
                k
            ].astype(np.float32)
        opt.step()
    saved_state = {k: v.copy() for k, v in opt.get_state().items()}
    saved_weights = {k: p.data.copy() for k, p in params.items()}

    # a fresh optimizer and fresh weights, as after loading from a file
    params2 = {k: em.Parameter(v, name=k) for k, v in saved_weights.items()}
    opt2 = build(spec, list(params2.values()))
    opt2.set_state(saved_state)
    assert opt2.iterations == 10
    for t in range(10, STEPS):
        grads = grad_fn(t, {q: r.data.astype(np.float64) for q, r in params2.items()})
        for k, p in params2.items():
            p.grad = grads[k].astype(np.float32)
        opt2.step()
    for k in params2:
        np.testing.assert_array_equal(params2[k].data, full[k].data)


def test_state_is_keyed_by_weight_name_with_position_fallback():
    named = em.Parameter(np.ones(2), name="dense_3/kernel")
    unnamed = em.Parameter(np.ones(2))
    opt = O.RMSprop(momentum=0.5, centered=True, params=[named, unnamed])
    named.grad = unnamed.grad = np.ones(2)
    opt.step()
    assert set(opt.get_state()) == {
        "iterations", "learning_rate",
        "dense_3/kernel/velocity", "dense_3/kernel/momentum", "dense_3/kernel/average_gradient",
        "param_1/velocity", "param_1/momentum", "param_1/average_gradient",
    }  # fmt: skip


def test_get_state_returns_copies_and_restores_learning_rate():
    p = em.Parameter(np.ones(2), name="w")
    opt = O.SGD(learning_rate=0.1, momentum=0.5, params=[p])
    p.grad = np.ones(2)
    opt.step()
    opt.learning_rate = 0.025
    state = opt.get_state()
    state["w/momentum"][...] = 123.0
    assert not np.any(opt.get_state()["w/momentum"] == 123.0)
    opt2 = O.SGD(learning_rate=0.1, momentum=0.5)
    opt2.set_state(opt.get_state())
    assert opt2.learning_rate == 0.025


def test_set_state_rejects_foreign_entries_and_wrong_shapes():
    opt = O.Adam()
    with pytest.raises(ValueError, match="unexpected entry"):
        opt.set_state({"iterations": np.asarray(1), "w/accumulator": np.zeros(2)})
    with pytest.raises(ValueError, match="get_state"):
        opt.set_state({"w/momentum": np.zeros(2)})
    opt.set_state({"iterations": np.asarray(1), "w/momentum": np.zeros(3),
                   "w/velocity": np.zeros(3)})  # fmt: skip
    p = em.Parameter(np.ones(2), name="w")
    with pytest.raises(ValueError, match="shape"):
        opt.apply_gradients([(np.ones(2), p)])


def test_two_different_weights_with_one_name_are_rejected():
    a, b = em.Parameter(np.ones(2), name="w"), em.Parameter(np.ones(2), name="w")
    opt = O.SGD(params=[a, b])
    a.grad = b.grad = np.ones(2)
    with pytest.raises(ValueError, match="both named 'w'"):
        opt.step()


# --------------------------------------------------------------------------- learning rate
def test_learning_rate_is_settable_and_follows_a_schedule():
    opt = O.SGD(learning_rate=0.1)
    opt.learning_rate = 0.01
    assert opt.learning_rate == 0.01
    sched = S.ExponentialDecay(1.0, decay_steps=2, decay_rate=0.5)
    p = em.Parameter(np.zeros(1), name="w")
    opt = O.SGD(learning_rate=sched, params=[p])
    assert opt.learning_rate == 1.0
    for _ in range(4):
        p.grad = np.ones(1)
        opt.step()
    assert opt.learning_rate == pytest.approx(0.25)
    # lr at steps 0..3: 1, 2**-0.5, 0.5, 2**-1.5
    np.testing.assert_allclose(p.data, -(1 + 2**-0.5 + 0.5 + 2**-1.5))
    with pytest.raises(TypeError, match="schedule"):
        opt.learning_rate = 0.1


def test_setting_learning_rate_changes_the_next_update():
    p = em.Parameter(np.zeros(1), name="w")
    opt = O.SGD(learning_rate=1.0, params=[p])
    p.grad = np.ones(1)
    opt.step()
    opt.learning_rate = 0.25
    opt.step()
    np.testing.assert_allclose(p.data, [-1.25])


# --------------------------------------------------------------------------- clipping functions
def test_clip_by_norm_scales_each_gradient_by_its_own_norm():
    a, b = np.array([3.0, 4.0]), np.array([0.3, 0.4])
    out = O.clip_by_norm([a, b, None], 1.0)
    np.testing.assert_allclose(out[0], [0.6, 0.8])
    np.testing.assert_allclose(out[1], [0.3, 0.4])
    assert out[2] is None
    np.testing.assert_array_equal(a, [3.0, 4.0])  # input untouched
    np.testing.assert_allclose(O.clip_by_norm(np.zeros(3), 1.0), 0.0)
    np.testing.assert_allclose(O.clip_by_norm(em.tensor([6.0, 8.0]), 5.0), [3.0, 4.0])


def test_clip_by_global_norm_uses_one_factor():
    out = O.clip_by_global_norm([np.array([3.0]), np.array([4.0]), None], 1.0)
    np.testing.assert_allclose(out[0], [0.6])
    np.testing.assert_allclose(out[1], [0.8])
    assert out[2] is None
    assert O.global_norm([np.array([3.0]), np.array([[4.0]])]) == pytest.approx(5.0)
    kept = O.clip_by_global_norm([np.array([0.1, 0.2])], 1.0)
    np.testing.assert_allclose(kept[0], [0.1, 0.2])
    nan = O.clip_by_global_norm([np.array([np.inf, 1.0])], 1.0)
    assert np.all(np.isnan(nan[0]))


def test_clip_by_value_clips_elements():
    np.testing.assert_allclose(O.clip_by_value(np.array([-2.0, 0.1, 3.0]), 0.5), [-0.5, 0.1, 0.5])
    out = O.clip_by_value([np.array([9.0]), None], 1.0)
    assert out[1] is None and out[0][0] == 1.0


def test_clip_functions_reject_non_positive_limits():
    with pytest.raises(ValueError, match="max_norm"):
        O.clip_by_norm([np.ones(2)], 0.0)
    with pytest.raises(ValueError, match="max_norm"):
        O.clip_by_global_norm([np.ones(2)], -1)
    with pytest.raises(ValueError, match="clip_value"):
        O.clip_by_value([np.ones(2)], 0)


# --------------------------------------------------------------------------- errors, lookup
@pytest.mark.parametrize("clips", [dict(clipnorm=1.0, clipvalue=1.0),
                                   dict(clipnorm=1.0, global_clipnorm=1.0),
                                   dict(clipvalue=1.0, global_clipnorm=1.0)])  # fmt: skip
def test_more_than_one_clipping_option_raises(clips):
    with pytest.raises(ValueError, match="only one of"):
        O.Adam(**clips)


@pytest.mark.parametrize("bad", [dict(learning_rate=-0.1), dict(momentum=1.5),
                                 dict(momentum=-0.1), dict(clipnorm=0.0),
                                 dict(weight_decay=-1.0), dict(learning_rate="fast")])  # fmt: skip
def test_bad_hyperparameters_raise_value_errors_naming_the_argument(bad):
    arg = next(iter(bad))
    with pytest.raises(ValueError, match=arg):
        O.SGD(**bad)


def test_adam_betas_must_be_below_one_and_adamw_needs_weight_decay():
    with pytest.raises(ValueError, match="beta_2"):
        O.Adam(beta_2=1.0)
    with pytest.raises(ValueError, match="weight_decay"):
        O.AdamW(weight_decay=None)


def test_gradient_of_wrong_shape_raises():
    p = em.Parameter(np.ones(3), name="w")
    with pytest.raises(ValueError, match="'w'.*shape"):
        O.SGD().apply_gradients([(np.ones(4), p)])


def test_step_without_params_explains_what_to_do():
    with pytest.raises(ValueError, match="params="):
        O.SGD().step()


@pytest.mark.parametrize("name,cls", [("sgd", O.SGD), ("Adam", O.Adam), ("adamw", O.AdamW),
                                      ("RMSprop", O.RMSprop), ("adagrad", O.Adagrad)])  # fmt: skip
def test_get_resolves_names(name, cls):
    assert type(O.get(name)) is cls


def test_get_passes_instances_and_rebuilds_configs():
    opt = O.RMSprop(learning_rate=S.CosineDecay(0.1, 50), momentum=0.3, clipvalue=2.0)
    assert O.get(opt) is opt
    rebuilt = O.get(O.serialize(opt))
    assert type(rebuilt) is O.RMSprop
    assert rebuilt.get_config() == opt.get_config()
    assert isinstance(rebuilt.schedule, S.CosineDecay)
    adamw = O.AdamW(weight_decay=0.1, lr_multipliers={"head/": 10.0})
    adamw.exclude_from_weight_decay(["bias"])
    again = O.AdamW.from_config(adamw.get_config())
    assert again.get_config() == adamw.get_config()


def test_get_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown optimizer 'adamax'"):
        O.get("adamax")
    with pytest.raises(TypeError):
        O.get(3.0)


def test_explain_shows_each_rule_with_its_epsilon_placement():
    assert "sqrt(v) + epsilon" in O.Adam().explain()
    assert "sqrt(v + epsilon)" in O.RMSprop().explain()
    assert "sqrt(v - a^2 + epsilon)" in O.RMSprop(centered=True).explain()
    assert "sqrt(a + epsilon)" in O.Adagrad().explain()
    assert "Nesterov" in O.SGD(momentum=0.9, nesterov=True).explain()
    text = O.AdamW(global_clipnorm=1.0).explain()
    assert "weight decay" in text and "max(sqrt(sum_j" in text


@pytest.mark.parametrize(
    "make",
    [
        lambda: O.Adam(0.01),
        lambda: O.AdamW(0.01, amsgrad=True),
        lambda: O.SGD(0.1, momentum=0.9, nesterov=True),
        lambda: O.RMSprop(0.01, momentum=0.5, centered=True),
        lambda: O.Adagrad(0.1),
    ],
)
def test_updates_in_chunks_give_the_same_bits_as_whole_array_updates(make, monkeypatch):
    rng = np.random.default_rng(3)
    w0 = rng.standard_normal((37, 29)).astype(np.float32)
    grads = [rng.standard_normal(w0.shape).astype(np.float32) for _ in range(3)]
    results = []
    for chunk in (1 << 40, 100):  # whole arrays, then 11 chunks of 100 elements
        monkeypatch.setattr(O, "_CHUNK", chunk)
        w, opt = em.Parameter(w0.copy(), name="w"), make()
        with _accel.enabled(False):  # the NumPy rule (the compiled one: test_optimizers_kernels)
            for g in grads:
                opt.apply_gradients([(g, w)])
        results.append(w.data)
    assert np.array_equal(results[0], results[1])
    assert not np.array_equal(results[0], w0)
