"""ember's optimizers, clipping and schedules against PyTorch, where the two define the same
update.

Where Keras 3 (ember's contract) and PyTorch differ, the test uses the mapped configuration that
makes them equal and says why:
- SGD momentum: Keras keeps ``m = momentum*m - lr*g`` and adds it, PyTorch keeps
  ``buf = momentum*buf + g`` and subtracts ``lr*buf``: for a constant rate ``m == -lr*buf``, and
  both Nesterov forms reduce to ``w -= lr*(g + momentum*buf)``. Equal (with a schedule they
  are not, since Keras folds the rate into the buffer).
- Adam / AdamW: Keras adds epsilon to ``sqrt(v)`` before the bias correction, PyTorch after
  (ember's epsilon equals PyTorch's times ``sqrt(1 - beta_2^t)``, a different value every step),
  so they are compared with epsilon = 0 in both; ``test_adam_epsilon_placement_differs_...``
  pins the difference down.
- RMSprop and Adagrad: Keras puts epsilon inside the square root, PyTorch outside: compared with
  epsilon = 0. Defaults differ too: PyTorch's ``alpha`` (Keras's ``rho``) is 0.99 against 0.9,
  Adagrad's ``initial_accumulator_value`` 0 against 0.1: the tests set them equal.
- SGD weight decay: Keras's is decoupled (``w -= w*wd*lr``), PyTorch's is L2 added to the
  gradient; without momentum the two updates are the same.
- Global norm clipping: PyTorch divides by ``norm + 1e-6``: equal to 1e-6 relative.
"""

import numpy as np
import pytest

import ember as em
from ember import optimizers as O
from ember import schedules as S
from ember.ops import _accel

torch = pytest.importorskip("torch", reason="PyTorch (test-only oracle) is not installed")

STEPS = 25
SHAPES = [(3, 4), (4,)]


def problem(seed=0, scale=1.0):
    r = np.random.default_rng(seed)
    init = [r.normal(size=s) for s in SHAPES]
    noise = [[scale * r.normal(size=s) for s in SHAPES] for _ in range(STEPS)]

    def grad(t, i, w):
        return 0.7 * w + np.sin(w) + noise[t][i]

    return init, grad


def run_ember(opt_factory, init, grad):
    params = [em.Parameter(w.copy(), name=f"w{i}") for i, w in enumerate(init)]
    opt = opt_factory(params)
    for t in range(STEPS):
        for i, p in enumerate(params):
            p.grad = grad(t, i, p.data)
        opt.step()
    return [p.data for p in params]


def run_torch(opt_factory, init, grad, clip=None):
    params = [torch.tensor(w.copy(), dtype=torch.float64, requires_grad=True) for w in init]
    opt = opt_factory(params)
    for t in range(STEPS):
        for i, p in enumerate(params):
            p.grad = torch.from_numpy(grad(t, i, p.detach().numpy().copy()))
        if clip is not None:
            clip(params)
        opt.step()
    return [p.detach().numpy() for p in params]


CASES = {
    "sgd": (lambda p: O.SGD(0.05, params=p), lambda p: torch.optim.SGD(p, lr=0.05)),
    "sgd_momentum": (
        lambda p: O.SGD(0.05, momentum=0.9, params=p),
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9),
    ),
    "sgd_nesterov": (
        lambda p: O.SGD(0.05, momentum=0.8, nesterov=True, params=p),
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.8, nesterov=True),
    ),
    "sgd_weight_decay_no_momentum": (
        lambda p: O.SGD(0.05, weight_decay=0.3, params=p),
        lambda p: torch.optim.SGD(p, lr=0.05, weight_decay=0.3),
    ),
    "adam_eps0": (
        lambda p: O.Adam(0.02, epsilon=0.0, params=p),
        lambda p: torch.optim.Adam(p, lr=0.02, eps=0.0),
    ),
    "adam_betas_eps0": (
        lambda p: O.Adam(0.05, beta_1=0.7, beta_2=0.95, epsilon=0.0, params=p),
        lambda p: torch.optim.Adam(p, lr=0.05, betas=(0.7, 0.95), eps=0.0),
    ),
    "adam_amsgrad_eps0": (
        lambda p: O.Adam(0.02, beta_2=0.9, epsilon=0.0, amsgrad=True, params=p),
        lambda p: torch.optim.Adam(p, lr=0.02, betas=(0.9, 0.9), eps=0.0, amsgrad=True),
    ),
    "adamw_eps0": (
        lambda p: O.AdamW(0.05, weight_decay=0.2, epsilon=0.0, params=p),
        lambda p: torch.optim.AdamW(p, lr=0.05, weight_decay=0.2, eps=0.0),
    ),
    "adamw_amsgrad_eps0": (
        lambda p: O.AdamW(0.05, weight_decay=0.2, epsilon=0.0, amsgrad=True, params=p),
        lambda p: torch.optim.AdamW(p, lr=0.05, weight_decay=0.2, eps=0.0, amsgrad=True),
    ),
    "rmsprop_eps0": (
        lambda p: O.RMSprop(0.01, rho=0.8, epsilon=0.0, params=p),
        lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=0.8, eps=0.0),
    ),
    "rmsprop_momentum_eps0": (
        lambda p: O.RMSprop(0.01, momentum=0.7, epsilon=0.0, params=p),
        lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=0.9, momentum=0.7, eps=0.0),
    ),
    "rmsprop_centered_momentum_eps0": (
        lambda p: O.RMSprop(0.01, momentum=0.5, centered=True, epsilon=0.0, params=p),
        lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=0.9, momentum=0.5, centered=True, eps=0.0),
    ),
    "adagrad_eps0": (
        lambda p: O.Adagrad(0.1, initial_accumulator_value=0.1, epsilon=0.0, params=p),
        lambda p: torch.optim.Adagrad(p, lr=0.1, initial_accumulator_value=0.1, eps=0.0),
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_trajectory_matches_torch_optim(name, float64):
    ours, theirs = CASES[name]
    init, grad = problem()
    a = run_ember(ours, init, grad)
    b = run_torch(theirs, init, grad)
    for x, y, w0 in zip(a, b, init):
        np.testing.assert_allclose(x, y, rtol=1e-9, atol=1e-9)
        assert np.abs(x - w0).max() > 1e-3


@pytest.mark.parametrize("accel", [True, False], ids=["kernels", "numpy"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_float32_trajectory_matches_torch_optim_with_and_without_kernels(name, accel):
    # float32 is where the compiled updates (ember.ops.kernels.optim) run when Numba is there
    ours, theirs = CASES[name]
    init, grad = problem()
    params = [em.Parameter(w.astype(np.float32), name=f"w{i}") for i, w in enumerate(init)]
    opt = ours(params)
    with _accel.enabled(accel):
        for t in range(STEPS):
            for i, p in enumerate(params):
                p.grad = grad(t, i, p.data.astype(np.float64)).astype(np.float32)
            opt.step()
    b = run_torch(theirs, init, grad)
    for p, y, w0 in zip(params, b, init):
        assert p.data.dtype == np.float32
        np.testing.assert_allclose(p.data, y, rtol=2e-4, atol=2e-4)
        assert np.abs(p.data - w0).max() > 1e-3


def test_sgd_clipvalue_matches_torch_clip_grad_value(float64):
    init, grad = problem(scale=3.0)
    a = run_ember(lambda p: O.SGD(0.05, momentum=0.9, clipvalue=0.5, params=p), init, grad)
    b = run_torch(
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9),
        init,
        grad,
        clip=lambda ps: torch.nn.utils.clip_grad_value_(ps, 0.5),
    )
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=1e-9, atol=1e-9)


def test_global_clipnorm_matches_torch_clip_grad_norm_to_its_epsilon(float64):
    init, grad = problem(scale=3.0)
    a = run_ember(lambda p: O.SGD(0.05, momentum=0.9, global_clipnorm=1.0, params=p), init, grad)
    b = run_torch(
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9),
        init,
        grad,
        clip=lambda ps: torch.nn.utils.clip_grad_norm_(ps, 1.0),
    )
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


def test_clipnorm_is_torch_clip_grad_norm_per_weight(float64):
    init, grad = problem(scale=3.0)
    a = run_ember(lambda p: O.Adam(0.02, epsilon=0.0, clipnorm=1.0, params=p), init, grad)

    def per_weight(ps):
        for p in ps:
            torch.nn.utils.clip_grad_norm_([p], 1.0)

    b = run_torch(lambda p: torch.optim.Adam(p, lr=0.02, eps=0.0), init, grad, clip=per_weight)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


def test_adam_epsilon_placement_differs_from_torch(float64):
    # tiny gradients make sqrt(v) comparable to epsilon, where the two placements part ways
    init = [np.zeros(5)]
    g = np.full(5, 1e-3)
    a = run_ember(lambda p: O.Adam(0.1, epsilon=1e-3, params=p), init, lambda t, i, w: g)
    b = run_torch(lambda p: torch.optim.Adam(p, lr=0.1, eps=1e-3), init, lambda t, i, w: g)
    # Keras: step 1 moves by lr * sqrt(1-b2) / (1-b1) * m1 / (sqrt(v1) + eps) with m1 = 0.1 g
    # and v1 = 0.001 g^2, i.e. lr * g*sqrt(0.001) / (g*sqrt(0.001) + eps)
    assert abs(a[0][0] - b[0][0]) > 1e-3


# --------------------------------------------------------------------------- schedules
def torch_lrs(make_sched, lr, steps=40):
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=lr)
    sched = make_sched(opt)
    out = []
    for _ in range(steps):
        out.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    return out


def test_step_decay_is_torch_step_lr():
    ours = S.StepDecay(0.3, step_size=7, gamma=0.5)
    theirs = torch_lrs(lambda o: torch.optim.lr_scheduler.StepLR(o, 7, gamma=0.5), 0.3)
    np.testing.assert_allclose([ours(t) for t in range(40)], theirs, rtol=1e-12)


def test_exponential_decay_with_one_step_period_is_torch_exponential_lr():
    ours = S.ExponentialDecay(0.3, decay_steps=1, decay_rate=0.9)
    theirs = torch_lrs(lambda o: torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.9), 0.3)
    np.testing.assert_allclose([ours(t) for t in range(40)], theirs, rtol=1e-12)


def test_cosine_decay_is_torch_cosine_annealing_until_decay_steps():
    ours = S.CosineDecay(0.3, decay_steps=30, alpha=0.1)
    theirs = torch_lrs(
        lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=30, eta_min=0.03), 0.3, 31
    )
    np.testing.assert_allclose([ours(t) for t in range(31)], theirs, rtol=1e-9)


def test_cosine_warmup_is_torch_linear_lr():
    ours = S.CosineDecay(0.01, decay_steps=10, warmup_target=0.2, warmup_steps=8)
    theirs = torch_lrs(
        lambda o: torch.optim.lr_scheduler.LinearLR(o, start_factor=0.05, total_iters=8), 0.2, 9
    )
    np.testing.assert_allclose([ours(t) for t in range(9)], theirs, rtol=1e-9)


def test_piecewise_constant_is_torch_multistep_shifted_by_one():
    # Keras keeps values[i] up to and including boundaries[i]; MultiStepLR drops at the milestone
    ours = S.PiecewiseConstantDecay([4, 11], [0.2, 0.02, 0.002])
    theirs = torch_lrs(
        lambda o: torch.optim.lr_scheduler.MultiStepLR(o, milestones=[5, 12], gamma=0.1), 0.2
    )
    np.testing.assert_allclose([ours(t) for t in range(40)], theirs, rtol=1e-12)


def test_sgd_momentum_with_schedule_differs_from_torch_as_documented(float64):
    # Keras folds lr into the momentum buffer, PyTorch applies today's lr to the whole buffer
    init, grad = problem()
    a = run_ember(lambda p: O.SGD(S.StepDecay(0.05, 5, 0.1), momentum=0.9, params=p), init, grad)
    lrs = [0.05 * 0.1 ** (t // 5) for t in range(STEPS)]
    ref = [w.copy() for w in init]
    m = [np.zeros_like(w) for w in init]
    buf = [np.zeros_like(w) for w in init]
    torch_like = [w.copy() for w in init]
    for t in range(STEPS):
        for i in range(len(ref)):
            m[i] = 0.9 * m[i] - lrs[t] * grad(t, i, ref[i])
            ref[i] = ref[i] + m[i]
            buf[i] = 0.9 * buf[i] + grad(t, i, torch_like[i])
            torch_like[i] = torch_like[i] - lrs[t] * buf[i]
    for x, y, z in zip(a, ref, torch_like):
        np.testing.assert_allclose(x, y, rtol=1e-9, atol=1e-9)
        assert np.abs(x - z).max() > 1e-3
