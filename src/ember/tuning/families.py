"""Model families for ``ember tune CONFIG.toml``: small classifiers whose shape and training
are read from a trial's parameters, so a config file can search over them without code.

Each family is ``family(params, input_shape, classes) -> compiled Model`` and reads only the
names it lists (a name it does not know is an error, to catch typos in a config):

- both: ``optimizer`` ("adam"), ``learning_rate`` (1e-3), ``momentum`` (0.0, for sgd and
  rmsprop), ``dropout`` (0.0), ``activation`` ("relu").
- ``mlp``: ``hidden_layers`` (1), ``units`` (64).
- ``cnn``: ``conv_blocks`` (1; each Conv2D + MaxPool2D), ``filters`` (16, doubled per block),
  ``kernel_size`` (3), ``batch_norm`` (False), ``dense_units`` (32; 0 for none).
"""

from __future__ import annotations

from ember.errors import EmberValueError

_COMMON = {
    "optimizer": "adam",
    "learning_rate": 1e-3,
    "momentum": 0.0,
    "dropout": 0.0,
    "activation": "relu",
}
_MLP = {**_COMMON, "hidden_layers": 1, "units": 64}
_CNN = {
    **_COMMON,
    "conv_blocks": 1,
    "filters": 16,
    "kernel_size": 3,
    "batch_norm": False,
    "dense_units": 32,
}


def _read(family: str, params: dict, defaults: dict) -> dict:
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise EmberValueError(
            f"model family {family!r} does not use the parameter(s) {unknown}; it reads "
            f"{sorted(defaults)}"
        )
    return {**defaults, **params}


def make_optimizer(name: str, learning_rate: float, momentum: float = 0.0):
    """An ember optimizer by name with a learning rate (and momentum where it has one)."""
    from ember import optimizers

    name = str(name).lower()
    if name == "sgd":
        return optimizers.SGD(learning_rate=learning_rate, momentum=momentum)
    if name == "rmsprop":
        return optimizers.RMSprop(learning_rate=learning_rate, momentum=momentum)
    if name == "adam":
        return optimizers.Adam(learning_rate=learning_rate)
    if name == "adamw":
        return optimizers.AdamW(learning_rate=learning_rate)
    if name == "adagrad":
        return optimizers.Adagrad(learning_rate=learning_rate)
    raise EmberValueError(
        f"optimizer must be one of 'sgd', 'rmsprop', 'adam', 'adamw', 'adagrad', received {name!r}"
    )


def _compile(model, p: dict):
    model.compile(
        optimizer=make_optimizer(p["optimizer"], p["learning_rate"], p["momentum"]),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def mlp(params: dict, input_shape: tuple, classes: int):
    """Flatten, ``hidden_layers`` x (Dense(units) + Dropout), Dense(classes, softmax)."""
    import ember as em
    from ember import layers

    p = _read("mlp", params, _MLP)
    stack = [layers.Input(tuple(input_shape)), layers.Flatten()]
    for _ in range(int(p["hidden_layers"])):
        stack.append(layers.Dense(int(p["units"]), activation=p["activation"]))
        if p["dropout"]:
            stack.append(layers.Dropout(float(p["dropout"])))
    stack.append(layers.Dense(classes, activation="softmax"))
    return _compile(em.Sequential(stack), p)


def cnn(params: dict, input_shape: tuple, classes: int):
    """``conv_blocks`` x (Conv2D(filters * 2**i, same) [+ BN] + MaxPool2D), Flatten, Dropout,
    [Dense(dense_units)], Dense(classes, softmax)."""
    import ember as em
    from ember import layers

    p = _read("cnn", params, _CNN)
    stack = [layers.Input(tuple(input_shape))]
    size = min(input_shape[0], input_shape[1])
    for i in range(int(p["conv_blocks"])):
        stack.append(
            layers.Conv2D(
                int(p["filters"]) * 2**i,
                int(p["kernel_size"]),
                padding="same",
                activation=None if p["batch_norm"] else p["activation"],
            )
        )
        if p["batch_norm"]:
            stack += [layers.BatchNormalization(), layers.Activation(p["activation"])]
        if size >= 2:  # an 8x8 image takes three poolings at most
            stack.append(layers.MaxPool2D(2))
            size //= 2
    stack.append(layers.Flatten())
    if p["dropout"]:
        stack.append(layers.Dropout(float(p["dropout"])))
    if int(p["dense_units"]):
        stack.append(layers.Dense(int(p["dense_units"]), activation=p["activation"]))
    stack.append(layers.Dense(classes, activation="softmax"))
    return _compile(em.Sequential(stack), p)


FAMILIES = {"mlp": mlp, "cnn": cnn}
