"""The compiled optimizer updates (``ember.ops.kernels.optim``) against the NumPy rules of
``ember.optimizers`` (the reference, run with the kernels switched off): same trajectories and
state in float32 for every optimizer and option the kernels cover, and the cases that must keep
the NumPy rule (float64, strided weights, subclasses with their own rule)."""

import numpy as np
import pytest

import ember as em
from ember import optimizers as O
from ember import schedules as S
from ember.ops import _accel

pytest.importorskip("numba", reason="numba (optional accelerator) is not installed")

SHAPES = {"dense/kernel": (37, 29), "dense/bias": (29,), "out/kernel": (29, 3)}

CASES = {
    "sgd": lambda: O.SGD(0.05),
    "sgd_momentum": lambda: O.SGD(0.05, momentum=0.9),
    "sgd_nesterov": lambda: O.SGD(0.05, momentum=0.8, nesterov=True),
    "sgd_weight_decay": lambda: O.SGD(0.05, momentum=0.5, weight_decay=0.1),
    "sgd_decay_no_momentum": lambda: O.SGD(0.05, weight_decay=0.2),
    "sgd_clipvalue": lambda: O.SGD(0.05, momentum=0.9, clipvalue=0.5),
    "sgd_global_clipnorm": lambda: O.SGD(0.05, momentum=0.9, nesterov=True, global_clipnorm=2.0),
    "sgd_schedule": lambda: O.SGD(S.ExponentialDecay(0.05, 3, 0.5), momentum=0.9),
    "adagrad": lambda: O.Adagrad(0.1),
    "adagrad_eps_decay": lambda: O.Adagrad(
        0.1, initial_accumulator_value=0.0, epsilon=0.5, weight_decay=0.05
    ),
    "rmsprop": lambda: O.RMSprop(0.01),
    "rmsprop_momentum": lambda: O.RMSprop(0.01, momentum=0.8, clipnorm=0.8),
    "rmsprop_centered": lambda: O.RMSprop(0.01, centered=True, epsilon=1e-3),
    "rmsprop_centered_momentum": lambda: O.RMSprop(
        0.01, centered=True, momentum=0.5, rho=0.8, weight_decay=0.01
    ),
    "adam": lambda: O.Adam(0.02),
    "adam_eps_betas": lambda: O.Adam(0.02, epsilon=0.3, beta_1=0.8, beta_2=0.9),
    "adam_amsgrad": lambda: O.Adam(0.02, amsgrad=True, beta_2=0.9),
    "adam_clipnorm": lambda: O.Adam(0.02, clipnorm=1.5),
    "adam_cosine_warmup": lambda: O.Adam(
        S.CosineDecay(0.001, 20, alpha=0.1, warmup_target=0.02, warmup_steps=5)
    ),
    "adamw": lambda: O.AdamW(0.02),
    "adamw_amsgrad_clipvalue": lambda: O.AdamW(0.05, weight_decay=0.5, amsgrad=True, clipvalue=1),
    "adamw_multipliers": lambda: O.AdamW(
        0.05, weight_decay=0.3, lr_multipliers={"dense/": 0.5, "dense/kernel": 2.0}
    ),
}


def _run(make, accel: bool, steps: int = 8, seed: int = 0, prepare=None):
    """Weights and optimizer state after ``steps`` float32 updates, kernels on or off."""
    r = np.random.default_rng(seed)
    params = {k: em.Parameter(r.standard_normal(s).astype(np.float32), name=k)
              for k, s in SHAPES.items()}  # fmt: skip
    grads = [{k: (3 * r.standard_normal(s)).astype(np.float32) for k, s in SHAPES.items()}
             for _ in range(steps)]  # fmt: skip
    opt = make()
    if prepare is not None:
        prepare(opt)
    with _accel.enabled(accel):
        for g in grads:
            opt.apply_gradients([(g[k], p) for k, p in params.items()])
    return {k: p.data for k, p in params.items()}, opt.get_state()


def _assert_same(a, b, rtol=1e-6):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=rtol, atol=1e-7, err_msg=k)


def test_the_kernels_load_when_numba_is_installed_and_not_when_switched_off():
    with _accel.enabled(True):
        assert _accel.load("optim") is not None
    with _accel.enabled(False):
        assert _accel.load("optim") is None


@pytest.mark.parametrize("name", sorted(CASES))
def test_compiled_update_matches_the_numpy_rule_in_float32(name):
    w_on, s_on = _run(CASES[name], True)
    w_off, s_off = _run(CASES[name], False)
    _assert_same(w_on, w_off)
    _assert_same(s_on, s_off)
    for k, w in w_on.items():
        assert w.dtype == np.float32
        # both really moved the weights (a kernel that did nothing would differ above, but make
        # sure the comparison is not between two untouched copies)
        assert not np.array_equal(w, _run(CASES[name], True, steps=0)[0][k])
    assert int(s_on["iterations"]) == 8


def test_excluded_weights_are_not_decayed_by_the_kernels():
    def prepare(opt):
        opt.exclude_from_weight_decay(["bias"])

    make = CASES["adamw"]
    w_on, s_on = _run(make, True, prepare=prepare)
    w_off, _ = _run(make, False, prepare=prepare)
    _assert_same(w_on, w_off)
    w_decayed, _ = _run(make, True)
    assert not np.allclose(w_on["dense/bias"], w_decayed["dense/bias"], rtol=0, atol=1e-7)


def test_compiled_update_is_in_place():
    p = em.Parameter(np.ones((6, 5), np.float32), name="w")
    before = p.data
    opt = O.Adam(0.1, params=[p])
    with _accel.enabled(True):
        p.grad = np.full((6, 5), 0.5, np.float32)
        opt.step()
    assert p.data is before
    # Adam's first step moves every weight by about lr (m / sqrt(v) = 1)
    np.testing.assert_allclose(p.data, 1.0 - 0.1, rtol=1e-5)


def test_state_saved_with_kernels_resumes_without_them_and_back():
    make = CASES["adamw_amsgrad_clipvalue"]
    w_ref, s_ref = _run(make, False, steps=6)
    # 3 steps with the kernels, save, restore into a fresh optimizer, 3 more without them
    r = np.random.default_rng(0)
    params = {k: em.Parameter(r.standard_normal(s).astype(np.float32), name=k)
              for k, s in SHAPES.items()}  # fmt: skip
    grads = [{k: (3 * r.standard_normal(s)).astype(np.float32) for k, s in SHAPES.items()}
             for _ in range(6)]  # fmt: skip
    opt = make()
    with _accel.enabled(True):
        for g in grads[:3]:
            opt.apply_gradients([(g[k], p) for k, p in params.items()])
    again = make()
    again.set_state(opt.get_state())
    with _accel.enabled(False):
        for g in grads[3:]:
            again.apply_gradients([(g[k], p) for k, p in params.items()])
    _assert_same({k: p.data for k, p in params.items()}, w_ref)
    _assert_same(again.get_state(), s_ref)


@pytest.mark.parametrize("name", ["adam_amsgrad", "rmsprop_centered_momentum", "sgd_nesterov"])
def test_updates_split_over_the_workers_give_the_same_bits(name, monkeypatch):
    whole, s_whole = _run(CASES[name], True)
    monkeypatch.setattr(O, "_FUSED_CHUNK", 100)  # dense/kernel: 1073 elements, 11 chunks
    split, s_split = _run(CASES[name], True)
    for k in whole:
        np.testing.assert_array_equal(whole[k], split[k])
    for k in s_whole:
        np.testing.assert_array_equal(s_whole[k], s_split[k])


def test_amsgrad_keeps_a_nan_like_np_maximum():
    def once(accel):
        p = em.Parameter(np.zeros(4, np.float32), name="w")
        opt = O.Adam(0.1, amsgrad=True)
        g = np.array([1.0, np.nan, 2.0, 0.5], np.float32)
        with _accel.enabled(accel):
            opt.apply_gradients([(g, p)])
            opt.apply_gradients([(np.ones(4, np.float32), p)])
        return p.data, opt.get_state()["w/velocity_hat"]

    (w_on, h_on), (w_off, h_off) = once(True), once(False)
    np.testing.assert_array_equal(np.isnan(h_on), [False, True, False, False])
    np.testing.assert_array_equal(w_on, w_off)  # NaN positions compare equal here
    np.testing.assert_array_equal(h_on, h_off)


class _Spy:
    """Stands for the kernel module: records any kernel the optimizer asks for."""

    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        self.calls.append(name)
        raise AssertionError(f"the kernel {name} was called")


def test_strided_weights_take_the_numpy_rule():
    spy, opt = _Spy(), O.Adam(0.1)
    opt._kernels = lambda: spy
    strided = em.Parameter(np.ones((4, 6), np.float32)[:, ::2], name="b")
    before = strided.data
    opt.apply_gradients([(np.ones((4, 3), np.float32), strided)])
    assert spy.calls == []
    assert strided.data is before
    np.testing.assert_allclose(strided.data, 0.9, rtol=1e-5)


def test_float64_weights_take_the_numpy_rule(float64):
    spy, opt = _Spy(), O.SGD(0.1, momentum=0.5)
    opt._kernels = lambda: spy
    p = em.Parameter(np.ones((3, 4)), name="a")
    assert p.data.dtype == np.float64
    opt.apply_gradients([(np.ones((3, 4)), p)])
    assert spy.calls == []
    np.testing.assert_allclose(p.data, 0.9, rtol=1e-12)


def test_a_subclass_with_its_own_rule_does_not_use_the_kernels():
    class HalfSGD(O.SGD):
        def _update(self, w, g, lr, slots, s):
            w -= 0.5 * lr * g

    p = em.Parameter(np.ones(3, np.float32), name="w")
    opt = HalfSGD(0.1)
    assert opt._kernels() is None
    with _accel.enabled(True):
        opt.apply_gradients([(np.ones(3, np.float32), p)])
    np.testing.assert_allclose(p.data, 1.0 - 0.05, rtol=1e-6)


@pytest.mark.parametrize("name", ["adam_amsgrad", "rmsprop_centered_momentum", "sgd_nesterov"])
def test_fortran_ordered_weights_match_the_numpy_rule_and_keep_their_layout(name):
    # an Orthogonal initializer gives a transposed (Fortran-ordered) weight; the gradient an op
    # returns for it is usually C-ordered
    r = np.random.default_rng(5)
    w0 = np.asfortranarray(r.standard_normal((13, 21)).astype(np.float32))
    grads = [(3 * r.standard_normal((13, 21))).astype(np.float32) for _ in range(5)]
    results = []
    for accel in (True, False):
        p, opt = em.Parameter(w0.copy(order="F"), name="w"), CASES[name]()
        assert p.data.flags.f_contiguous and not p.data.flags.c_contiguous
        before = p.data
        with _accel.enabled(accel):
            for g in grads:
                opt.apply_gradients([(g, p)])
        assert p.data is before
        results.append((p.data, opt.get_state()))
    (w_on, s_on), (w_off, s_off) = results
    np.testing.assert_allclose(w_on, w_off, rtol=1e-6, atol=1e-7)
    _assert_same(s_on, s_off)
    assert not np.allclose(w_on, w0)
    # and the same trajectory as a C-ordered copy of the weight
    p, opt = em.Parameter(np.ascontiguousarray(w0), name="w"), CASES[name]()
    with _accel.enabled(False):
        for g in grads:
            opt.apply_gradients([(g, p)])
    np.testing.assert_allclose(w_on, p.data, rtol=1e-6, atol=1e-7)


def test_state_restored_in_c_order_into_a_fortran_weight_resumes_identically():
    r = np.random.default_rng(6)
    w0 = np.asfortranarray(r.standard_normal((6, 5)).astype(np.float32))
    grads = [r.standard_normal((6, 5)).astype(np.float32) for _ in range(4)]
    p, opt = em.Parameter(w0.copy(order="F"), name="w"), O.Adam(0.05)
    for g in grads:
        opt.apply_gradients([(g, p)])
    q, first = em.Parameter(w0.copy(order="F"), name="w"), O.Adam(0.05)
    for g in grads[:2]:
        first.apply_gradients([(g, q)])
    resumed = O.Adam(0.05)
    state = first.get_state()
    assert state["w/momentum"].flags.c_contiguous  # get_state's copies are C-ordered
    resumed.set_state(state)
    for g in grads[2:]:
        resumed.apply_gradients([(g, q)])
    np.testing.assert_array_equal(p.data, q.data)


def test_views_kept_between_steps_follow_set_state_new_arrays_and_new_slots():
    r = np.random.default_rng(7)
    grads = [r.standard_normal((40, 30)).astype(np.float32) for _ in range(6)]

    def trajectory(accel):
        p = em.Parameter(np.ones((40, 30), np.float32), name="w")
        opt = O.SGD(0.05, momentum=0.5)
        with _accel.enabled(accel):
            opt.apply_gradients([(grads[0], p)])
            saved = opt.get_state()
            opt.apply_gradients([(grads[1], p)])
            opt.set_state(saved)  # the momentum of step 1 again, in new arrays
            opt.apply_gradients([(grads[2], p)])
            p.data = p.data.copy()  # a new weight array (as a model reload may do)
            opt.apply_gradients([(grads[3], p)])
            opt.momentum = 0.0  # the rule drops its slot...
            opt.apply_gradients([(grads[4], p)])
            opt.momentum = 0.9  # ...and takes it up again
            opt.apply_gradients([(grads[5], p)])
        return p.data, opt.get_state()

    (w_on, s_on), (w_off, s_off) = trajectory(True), trajectory(False)
    np.testing.assert_allclose(w_on, w_off, rtol=1e-6, atol=1e-7)
    _assert_same(s_on, s_off)
    # by hand (set_state restores the optimizer, not the weight)
    lr = np.float32(0.05)
    w = np.ones((40, 30), np.float32)
    m1 = -(grads[0] * lr)
    w = w + m1
    w = w + (m1 * np.float32(0.5) - grads[1] * lr)
    m = m1 * np.float32(0.5) - grads[2] * lr
    w = w + m
    m = m * np.float32(0.5) - grads[3] * lr
    w = w + m
    w = w - grads[4] * lr
    m = m * np.float32(0.9) - grads[5] * lr
    w = w + m
    np.testing.assert_allclose(w_on, w, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(s_on["w/momentum"], m, rtol=1e-6, atol=1e-7)
