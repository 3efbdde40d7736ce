"""ember.layers: every layer, Keras-named. Each name loads its module on first use."""

from __future__ import annotations

from ember._lazy import lazy_exports
from ember.layers.base import Layer, register, training_mode

# public name -> module in ember.layers that defines it
_WHERE = {
    # core
    "Input": "core", "InputLayer": "core", "Dense": "core", "Flatten": "core",
    "Reshape": "core", "Activation": "core", "Dropout": "core", "Lambda": "core",
    "LeakyReLU": "activation", "PReLU": "activation", "ELU": "activation",
    "ReLU": "activation", "Softmax": "activation",
    # convolution and pooling
    "Conv2D": "conv", "Convolution2D": "conv",
    "MaxPool2D": "pooling", "MaxPooling2D": "pooling", "AveragePooling2D": "pooling",
    "AvgPool2D": "pooling", "GlobalAveragePooling2D": "pooling",
    "GlobalMaxPooling2D": "pooling", "GlobalAveragePooling1D": "pooling",
    "GlobalMaxPooling1D": "pooling",
    "UpSampling2D": "upsampling",
    # normalization
    "BatchNormalization": "normalization",
    # embeddings and recurrent
    "Embedding": "embedding",
    "SimpleRNN": "recurrent", "LSTM": "recurrent", "GRU": "recurrent",
    "Bidirectional": "recurrent",
    # merging
    "Add": "merge", "Concatenate": "merge",
    # preprocessing
    "Rescaling": "preprocessing", "Normalization": "preprocessing",
    "RandomFlip": "preprocessing", "RandomRotation": "preprocessing",
    "RandomZoom": "preprocessing", "RandomCrop": "preprocessing",
    "RandomBrightness": "preprocessing", "RandomContrast": "preprocessing",
    "RandomTranslation": "preprocessing",
}  # fmt: skip


__getattr__, __dir__ = lazy_exports(__name__, _WHERE)


__all__ = ["Layer", "register", "training_mode", *_WHERE]
