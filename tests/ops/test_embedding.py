"""ops/embedding.py: gather forward, scatter-add backward, id validation."""

import numpy as np
import pytest

import ember as em
from ember.errors import EmberTypeError, EmberValueError
from ember.ops import embedding as emb_module
from ember.ops.embedding import embedding


def test_embedding_gathers_rows(rng):
    table = rng.standard_normal((10, 4)).astype(np.float32)
    ids = np.array([[1, 0, 9], [3, 3, 2]])
    out = embedding(ids, table)
    assert out.shape == (2, 3, 4) and out.dtype == np.float32
    np.testing.assert_array_equal(out.data, table[ids])


def test_embedding_backward_sums_gradients_of_repeated_ids(rng):
    table = em.tensor(rng.standard_normal((6, 3)), requires_grad=True)
    ids = np.array([[1, 1, 4], [1, 0, 4]])
    g = rng.standard_normal((2, 3, 3))
    embedding(ids, table).backward(g)
    expected = np.zeros((6, 3))
    for (i, j), k in np.ndenumerate(ids):  # the definition, one position at a time
        expected[k] += g[i, j]
    np.testing.assert_allclose(table.grad, expected, rtol=1e-6)


def test_embedding_backward_without_scipy_uses_add_at(rng, monkeypatch):
    monkeypatch.setattr(emb_module, "_sparse", None)
    table = em.tensor(rng.standard_normal((5, 2)), requires_grad=True)
    ids = np.array([0, 2, 2, 4])
    embedding(ids, table).sum().backward()
    np.testing.assert_array_equal(table.grad, [[1, 1], [0, 0], [2, 2], [0, 0], [1, 1]])


def test_embedding_gradcheck(float64, rng):
    table = em.tensor(rng.standard_normal((5, 3)), requires_grad=True)
    ids = np.array([[0, 4, 4], [2, 0, 1]])
    assert em.gradcheck(lambda t: embedding(ids, t), [table])


def test_embedding_accepts_integral_floats_and_rejects_other_ids():
    table = np.eye(3, dtype=np.float32)
    np.testing.assert_array_equal(
        embedding(np.array([2.0, 0.0]), table).data, [[0, 0, 1], [1, 0, 0]]
    )
    with pytest.raises(EmberValueError, match="1.5"):
        embedding(np.array([1.5]), table)
    with pytest.raises(EmberTypeError, match="integer"):
        embedding(np.array(["a"]), table)


@pytest.mark.parametrize("bad", [3, -1, 100])
def test_embedding_out_of_range_ids_name_the_caller_and_the_value(bad):
    table = np.zeros((3, 2), np.float32)
    with pytest.raises(EmberValueError, match=rf"words.*input_dim=3.*{bad}"):
        embedding(np.array([0, bad]), table, name="words")
