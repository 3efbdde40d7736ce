"""Tiny data and models for the tuner tests: a trial takes milliseconds."""

import numpy as np
import pytest

import ember as em
from ember import layers


@pytest.fixture
def blobs():
    """Three well separated Gaussian blobs in 4-D: (x (150, 4) float32, y (150,) int64)."""
    rng = np.random.default_rng(1)
    centers = np.array([[2, 0, 0, 0], [0, 2, 0, 0], [0, 0, 2, 0]], dtype=np.float32)
    y = rng.integers(0, 3, 150)
    x = (centers[y] + rng.normal(0, 0.5, (150, 4))).astype(np.float32)
    return x, y.astype(np.int64)


def dense_model(units=8, learning_rate=0.05, optimizer="adam", momentum=0.0, loss=None):
    """Dense(units, relu) -> Dense(3, softmax), compiled with accuracy."""
    model = em.Sequential(
        [
            layers.Input((4,)),
            layers.Dense(units, activation="relu"),
            layers.Dense(3, activation="softmax"),
        ]
    )
    if optimizer == "sgd":
        opt = em.optimizers.SGD(learning_rate=learning_rate, momentum=momentum)
    else:
        opt = em.optimizers.Adam(learning_rate=learning_rate)
    model.compile(
        optimizer=opt, loss=loss or "sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    return model
