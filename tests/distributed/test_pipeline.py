"""PipelineParallel: 2 stages with micro-batches give exactly one process's training (float64,
1e-10), on one process the micro-batches add up to the whole batch, and bad splits are named."""

import numpy as np
import pytest

import ember as em
from ember.distributed import PipelineParallel, split_stages

from . import mpi_scenarios as S
from .conftest import run_ranks


def _compiled(seed, regularize=True):
    model = S.make_mlp(seed=seed, regularize=regularize)
    model.compile(
        optimizer=em.optimizers.SGD(0.1, momentum=0.9),
        loss=em.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


@pytest.mark.mpi
def test_two_stages_equal_one_process(tmp_path, float64):
    run_ranks("pipeline", tmp_path).check()
    model = _compiled(seed=0)
    x, y = S.make_data()
    losses = [model.train_on_batch(xb, yb) for xb, yb in S.global_batches(x, y)]
    pred = model.predict(x, verbose=0)
    for r in (0, 1):
        got = np.load(tmp_path / f"rank{r}.npz")
        for i, w in enumerate(model.get_weights()):  # after synchronize(): every stage's
            np.testing.assert_allclose(got[f"w{i}"], w, rtol=0, atol=1e-10)
        np.testing.assert_allclose(got["losses"], losses, rtol=0, atol=1e-10)
        np.testing.assert_allclose(got["pred"], pred, rtol=0, atol=1e-10)


def test_micro_batches_on_one_process_add_up_to_the_whole_batch(float64):
    model = _compiled(seed=3)
    ref = _compiled(seed=3)
    pipe = PipelineParallel(model, micro_batches=4)  # 10 -> 3, 3, 2, 2
    x, y = S.make_data()
    for xb, yb in S.global_batches(x, y):
        got = pipe.train_on_batch(xb, yb)
        want = ref.train_on_batch(xb, yb)
        assert got == pytest.approx(want, abs=1e-12)
    for a, b in zip(model.get_weights(), ref.get_weights()):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    np.testing.assert_allclose(pipe.predict(x, batch_size=7), ref.predict(x, verbose=0),
                               rtol=0, atol=1e-12)  # fmt: skip


def test_fit_on_one_process_lowers_the_loss():
    model = _compiled(seed=1, regularize=False)
    x, y = S.make_data(256)
    history = PipelineParallel(model, micro_batches=2).fit(x, y, batch_size=32, epochs=8,
                                                          verbose=0)  # fmt: skip
    assert len(history["loss"]) == 8
    assert history["loss"][-1] < 0.7 * history["loss"][0]


def test_split_stages_keeps_order_and_is_as_even_as_possible():
    layers = list(range(7))
    assert split_stages(layers, 3) == [[0, 1], [2, 3], [4, 5, 6]]
    assert split_stages(layers, 1) == [layers]
    with pytest.raises(ValueError, match=r"stages must be between 1 and the number of layers"):
        split_stages(layers, 8)


def test_pipeline_errors_name_the_argument():
    model = _compiled(seed=0)
    with pytest.raises(ValueError, match=r"stages \(2\) must equal the number of MPI ranks \(1\)"):
        PipelineParallel(model, stages=2)
    with pytest.raises(ValueError, match="boundaries must be 0 increasing layer indices"):
        PipelineParallel(model, boundaries=[2])
    with pytest.raises(ValueError, match="micro_batches must be >= 1"):
        PipelineParallel(model, micro_batches=0)
    with pytest.raises(TypeError, match="model must be a Sequential"):
        PipelineParallel(em.layers.Dense(3))
    bare = S.make_mlp(seed=0)
    with pytest.raises(ValueError, match="no optimizer or loss"):
        PipelineParallel(bare).train_on_batch(np.zeros((2, 6)), np.zeros(2, dtype=int))


def test_float64_inputs_train_a_float32_model_in_float32():
    model = _compiled(seed=0, regularize=False)
    pipe = PipelineParallel(model, micro_batches=2)
    x, y = S.make_data(8)
    pipe.train_on_batch(x.astype(np.float64), y)
    assert all(w.dtype == np.float32 for w in model.get_weights())
    assert pipe.predict(x.astype(np.float64)).dtype == np.float32
    with pytest.raises(ValueError, match="the input is empty"):
        pipe.predict(x[:0])
