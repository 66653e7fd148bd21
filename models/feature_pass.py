"""One pass of a featurizer over a dataset: each batch decoded once, run `views` times.

The frozen base's features (models/tflite_base.py: FrozenBase) of the eval photos and of
the training photos' augmented copies (models/frozen_training.py), and a fine-tuned
model's answers (models/training.py). The input side (reading, decoding, TensorFlow's
augmentation) runs in a thread of its own a few views ahead (models/read_ahead.py) while
the featurizer computes the current one: TFLite's invoke releases the GIL, so the two
overlap on the cores (docs/benchmarks.md: issue 40, the input beside the forward pass).
"""

from typing import Optional

import numpy as np
import tensorflow as tf

from models import read_ahead
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
    prepare = lambda images: images  # pylint: disable=unnecessary-lambda-assignment
    if isinstance(featurizer, tflite_base.FrozenBase):
        shape, run = (count, views, featurizer.dimensions), featurizer
        if augment:
            prepare = featurizer.augmented
    else:
        shape = (count, views, featurizer.output.shape[-1])
        # training=False: the base in inference mode; augmentation layers keep the
        # training=True they were built with (pooled_features).
        keras_run = tf.function(lambda images: featurizer(images, training=False),
                                reduce_retracing=True)

        def run(images):
            return keras_run(images).numpy()

    def views_of_batches():
        """(view, its images, labels, paths or None) of each batch, view by view."""
        for x, batch_labels in dataset:
            images = x[0] if isinstance(x, tuple) else x
            for view in range(views):
                yield (view, prepare(images), batch_labels.numpy(),
                       x[1].numpy() if isinstance(x, tuple) else None)

    store = None
    if path:
        store = np.lib.format.open_memmap(path, mode='w+', dtype=np.float32, shape=shape)
    elif count is not None:
        store = np.empty(shape, np.float32)
    gathered, labels, paths, pooled = [], [], [], []
    row = 0
    # The next views are read, decoded and augmented (TensorFlow) in a thread of their own
    # while `run` computes these (TFLite's invoke lets it): the same images in the same
    # order, so the same random draws.
    for view, images, batch_labels, batch_paths in read_ahead.read_ahead(
            views_of_batches(), name='frozen-features-input'):
        pooled.append(run(images))
        if view < views - 1:
            continue
        pooled, size = np.stack(pooled, axis=1), len(batch_labels)
        if store is None:
            gathered.append(pooled)
        elif row + size > count:
            raise ValueError(f'the split holds more than the {count} photos counted')
        else:
            store[row:row + size] = pooled
        pooled = []
        labels.append(batch_labels)
        if batch_paths is not None:
            paths.append(batch_paths)
        row += size
    if store is None:
        store = np.concatenate(gathered)
    elif row != count:
        raise ValueError(f'the split holds {row} photos, not the {count} counted')
    if path:
        store.flush()
    return store, np.concatenate(labels), np.concatenate(paths) if paths else None
