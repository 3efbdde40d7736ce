"""ember.data: datasets and loaders, image folders and augmentation, imbalance, text, scaling.

Every name loads its module on first use, so ``import ember.data`` does not import Pillow.

- ``Dataset``, ``ArrayDataset``, ``DataLoader`` (batches, seeded per-epoch shuffling, sharding,
  thread prefetch), ``BatchSequence`` (Keras-style batch provider).
- ``ImageDataGenerator`` (``flow``, ``flow_from_directory``), ``image_dataset_from_directory``,
  ``load_image``; ``augment`` holds the vectorised, seeded-by-the-caller image transforms.
- ``compute_class_weight``, ``oversample``, ``undersample``, ``smote``.
- ``rescale``, ``minmax_scale``, ``standardize``, ``normalize_images`` and friends.
- ``ember.data.text``: ``standardize``, ``tokenize``, ``TextVectorization``, ``pad_sequences``,
  ``load_word_vectors``, ``embedding_matrix``.
"""

from __future__ import annotations

from ember._lazy import lazy_exports

# public name -> module in ember.data that defines it
_WHERE = {
    "Dataset": "dataset",
    "ArrayDataset": "dataset",
    "BatchSequence": "dataset",
    "collate": "dataset",
    "DataLoader": "loader",
    "ImageDataGenerator": "image",
    "image_dataset_from_directory": "image",
    "load_image": "image",
    "list_image_files": "image",
    "DirectoryIterator": "image",
    "NumpyArrayIterator": "image",
    "ImageFolderDataset": "image",
    "compute_class_weight": "imbalance",
    "oversample": "imbalance",
    "undersample": "imbalance",
    "smote": "imbalance",
    "rescale": "normalization",
    "minmax_scale": "normalization",
    "standardize": "normalization",
    "normalize_images": "normalization",
    "channel_stats": "normalization",
    "MinMaxScaler": "normalization",
    "StandardScaler": "normalization",
}

_SUBMODULES = {"augment", "dataset", "loader", "image", "imbalance", "text", "normalization"}


__getattr__, __dir__ = lazy_exports(__name__, _WHERE, submodules=_SUBMODULES)


__all__ = sorted(_WHERE)
