"""One pass of a featurizer over a dataset: each batch decoded once, run `views` times.

The frozen base's features (models/tflite_base.py: FrozenBase) of the eval photos and of
the training photos' augmented copies (models/frozen_training.py), and a fine-tuned
model's answers (models/training.py). Decoding runs ahead in tf.data's own threads; the
augmentation and the forward pass take turns in this thread. Augmenting in a thread of
its own beside the forward pass was measured slower (docs/benchmarks.md: issue 40, part
3): with both cores busy, XNNPACK's threads wait for the augmentation's.
"""

from typing import Optional

import numpy as np
import tensorflow as tf

from models import tflite_base


def features_of(featurizer, dataset: tf.data.Dataset, views: int,
                count: Optional[int] = None, path: Optional[str] = None, *,
                augment: bool = False):
    """(features [photos, views, dimensions], labels [photos], paths [photos] or None):
    featurizer's output, `views` times per batch of dataset's (image, label) or
    ((image, path), label) elements, in one pass (each image decoded once).

    featurizer: a tflite_base.FrozenBase (augmented first with `augment`), or a Keras
    model (the whole model's logits after fine-tuning; run as a tf.function, 1.4-1.5x
    Keras' predict_on_batch at 224 on 2 cores). Each batch goes through it `views` times
    in a row (one batch's activations at a time). With the count, the features are
    written as they come, into memory or a memory-mapped .npy at `path`; without it,
    gathered in memory.

    Raises:
      ValueError: the dataset does not hold `count` photos.
    """
    if isinstance(featurizer, tflite_base.FrozenBase):
        shape = (count, views, featurizer.dimensions)

        def run(images):
            return featurizer(images, augment=augment)
    else:
        shape = (count, views, featurizer.output.shape[-1])
        # training=False: the base in inference mode; augmentation layers keep the
        # training=True they were built with (pooled_features).
        keras_run = tf.function(lambda images: featurizer(images, training=False),
                                reduce_retracing=True)

        def run(images):
            return keras_run(images).numpy()

    store = None
    if path:
        store = np.lib.format.open_memmap(path, mode='w+', dtype=np.float32, shape=shape)
    elif count is not None:
        store = np.empty(shape, np.float32)
    gathered, labels, paths = [], [], []
    row = 0
    for x, batch_labels in dataset:
        images = x[0] if isinstance(x, tuple) else x
        pooled = np.stack([run(images) for _ in range(views)], axis=1)
        size = len(pooled)
        if store is None:
            gathered.append(pooled)
        elif row + size > count:
            raise ValueError(f'the split holds more than the {count} photos counted')
        else:
            store[row:row + size] = pooled
        labels.append(batch_labels.numpy())
        if isinstance(x, tuple):
            paths.append(x[1].numpy())
        row += size
    if store is None:
        store = np.concatenate(gathered)
    elif row != count:
        raise ValueError(f'the split holds {row} photos, not the {count} counted')
    if path:
        store.flush()
    return store, np.concatenate(labels), np.concatenate(paths) if paths else None
