"""The Trainer's input pipeline: raw examples -> decoded, cached, shuffled batches.

Raw examples -> Transform graph (decode, resize, scale) in parallel -> cached as
uint8 pixels (later epochs skip JPEG decoding): in memory up to CACHE_BUDGET_BYTES,
else in a local file, so memory stays flat -> shuffled -> batched -> scaled back ->
prefetched. models/cache_plan.py decides, per split, which of these caches run_fn uses.
"""

import os
from typing import Optional, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
from tfx_bsl.public import tfxio

from models import features
from models import preprocessing
from models import tf_data

# Decoded training images are kept in memory (as uint8 pixels) up to this size;
# a larger split is cached in a local file instead.
CACHE_BUDGET_BYTES = 1 << 30
# A split too large for memory is cached in a file only when it fits the local
# disk with this much to spare; else it is decoded again every epoch.
CACHE_DISK_HEADROOM_BYTES = 2 << 30
# Images in the shuffle buffer of a split too large for the memory cache.
SHUFFLE_BUFFER = 1024
_IMAGE_XF = features.transformed_name(features.IMAGE_KEY)
_LABEL_XF = features.transformed_name(features.LABEL_KEY)


def has_paths(eval_ds: tf.data.Dataset) -> bool:
    """Whether eval_ds's elements are ((image, path), label) rather than (image, label)."""
    return isinstance(eval_ds.element_spec[0], tuple)


def without_paths(eval_ds: tf.data.Dataset) -> tf.data.Dataset:
    """(image, label) elements, what fit() validates on."""
    return eval_ds.map(lambda x, label: (x[0], label)) if has_paths(eval_ds) else eval_ds


def count_records(files: Sequence[str]) -> int:
    """Records in a split's gzipped TFRecord files.

    The Trainer reads only its declared input (the split's files, as FnArgs
    names them): the count decides where the decoded split is cached and how
    many steps an epoch has.
    """
    paths = sorted(p for pattern in files for p in tf.io.gfile.glob(pattern))
    if not paths:
        raise FileNotFoundError(f'no files match {list(files)}')
    records = tf.data.TFRecordDataset(paths, compression_type='GZIP')
    return int(records.reduce(np.int64(0), lambda count, _: count + 1))


def image_bytes(tf_transform_output: tft.TFTransformOutput) -> int:
    """Bytes of one decoded image in the cache (uint8 pixels)."""
    height, width = tf_transform_output.transformed_feature_spec()[_IMAGE_XF].shape[-3:-1]
    return height * width * 3


def cache_limit(tf_transform_output: tft.TFTransformOutput) -> int:
    """How many decoded images (uint8) fit CACHE_BUDGET_BYTES, plus one."""
    return CACHE_BUDGET_BYTES // image_bytes(tf_transform_output) + 1


def file_cache_fits(count: int, bytes_per_image: int, free_bytes: int) -> bool:
    """Whether the decoded split fits the cache's disk, CACHE_DISK_HEADROOM_BYTES to spare."""
    return count * bytes_per_image + CACHE_DISK_HEADROOM_BYTES <= free_bytes


def features_in_file(count: Optional[int], bytes_per_photo: int,
                     free_bytes: Optional[int]) -> Optional[bool]:
    """Where frozen features of `count` photos are kept: False in memory (up to
    CACHE_BUDGET_BYTES), True in a file (when they fit free_bytes of local disk,
    file_cache_fits), None in neither (or the count is unknown)."""
    if count is None:
        return None
    if count * bytes_per_photo <= CACHE_BUDGET_BYTES:
        return False
    if free_bytes is not None and file_cache_fits(count, bytes_per_photo, free_bytes):
        return True
    return None


def _on_images(fn):
    """fn applied to the images of (images, labels) or ((images, paths), labels) elements."""
    def apply(x, labels):
        return ((fn(x[0]), x[1]) if isinstance(x, tuple) else fn(x)), labels
    return apply


def input_pipeline(decoded: tf.data.Dataset, batch_size: int, *, training: bool, seed: int,
                   count: Optional[int], limit: int,
                   cache_dir: Optional[str] = None, repeat: bool = False) -> tf.data.Dataset:
    """(image, label) pairs, decoded and scaled -> batches, cached after the first epoch.

    Decoded pixels are kept as uint8 (a quarter of float32) and scaled back per batch:
    in memory when the split has fewer than `limit` images (shuffled whole), else in
    a file under cache_dir (memory stays flat however large the split is; the
    shuffle buffer is bounded; the examples' order is already random, ImageExampleGen
    reshuffles). Without a count or cache_dir nothing is cached.

    Args:
      decoded: unbatched (float image in [-1, 1], label) pairs, or ((image, path), label).
      batch_size: examples per batch.
      training: shuffle every epoch.
      seed: shuffle seed.
      count: examples in the split; None: unknown.
      limit: the split is cached in memory below this count.
      cache_dir: where a larger split is cached (removed by the caller).
      repeat: repeat the epochs forever (reshuffled each time), for fit() with
        steps_per_epoch(count): one iterator for the whole fit instead of one
        per epoch. Autotuning is off (tf_data.no_autotune_thread): with it, each
        iterator's end paused up to a minute.

    Returns:
      One epoch per iteration, or endless epochs with `repeat`.
    """
    in_memory = count is not None and count < limit
    cached = in_memory or (count is not None and cache_dir is not None)
    dataset = decoded
    if cached:
        dataset = dataset.map(_on_images(preprocessing.to_uint8),
                              num_parallel_calls=tf.data.AUTOTUNE)
        dataset = dataset.cache() if in_memory else dataset.cache(
            os.path.join(cache_dir, 'pixels'))
    if training:
        dataset = dataset.shuffle(max(count, 1) if in_memory else SHUFFLE_BUFFER, seed=seed,
                                  reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size)
    if repeat:
        dataset = dataset.repeat()
    if cached:
        dataset = dataset.map(_on_images(preprocessing.from_uint8),
                              num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE).with_options(tf_data.no_autotune_thread())


def steps_per_epoch(count: int, batch_size: int) -> int:
    """Batches in one epoch of `count` examples (the last one may be short)."""
    return max(1, -(-count // batch_size))


def make_dataset(files: Sequence[str], data_accessor, tf_transform_output: tft.TFTransformOutput,
                 batch_size: int, *, training: bool, seed: int, limit: int,
                 count: Optional[int] = None, cache_dir: Optional[str] = None,
                 repeat: bool = False, with_paths: bool = False) -> tf.data.Dataset:
    """(image_xf, label) batches of one split, decoded by the Transform graph;
    ((image_xf, path), label) with_paths (the examples' path, for the eval answers).

    Args:
      files: the split's file patterns (FnArgs.train_files / eval_files).
      data_accessor: FnArgs.data_accessor.
      tf_transform_output: the Transform graph.
      batch_size: examples per batch.
      training: shuffle every epoch.
      seed: shuffle seed.
      limit: cache_limit(): the split is cached in memory below this count.
      count: examples in the split; None: no cache.
      cache_dir: a local folder for the cache of a split too large for memory.
      repeat: endless epochs (input_pipeline).
      with_paths: carry each example's path beside its image.

    Returns:
      One epoch per iteration, or endless epochs with `repeat`.
    """
    raw = data_accessor.tf_dataset_factory(
        files, tfxio.TensorFlowDatasetOptions(batch_size=batch_size, num_epochs=1,
                                              shuffle=False),
        tf_transform_output.raw_metadata.schema)
    tft_layer = tf_transform_output.transform_features_layer()

    def transform(raw_features):
        transformed = tft_layer({features.IMAGE_KEY: raw_features[features.IMAGE_KEY],
                                 features.LABEL_KEY: raw_features[features.LABEL_KEY]})
        images = transformed[_IMAGE_XF]
        if with_paths:
            images = (images, tf.reshape(raw_features[features.PATH_KEY], [-1]))
        return images, transformed[_LABEL_XF]

    decoded = raw.map(transform, num_parallel_calls=tf.data.AUTOTUNE).unbatch()
    return input_pipeline(decoded, batch_size, training=training, seed=seed, count=count,
                          limit=limit, cache_dir=cache_dir, repeat=repeat)
