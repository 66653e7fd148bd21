"""Reading tf.train.Examples back from an Examples artifact (reports, Pusher warmup)."""

import os
from typing import Collection, Dict, Iterator, List, Sequence, Tuple

import tensorflow as tf

from models import features
from models import tf_data


# Written by ImageExampleGen into the Examples artifact beside the Split-* folders: one class
# name per line, line number = label. Here, not in image_example_gen/spec.py (which ExampleGen
# also imports it from): reading it needs none of that module's TFX imports (2.5 s).
CLASS_NAMES_FILE = 'labels.txt'


def read_class_names(examples_uri: str) -> List[str]:
    """Class names from labels.txt in the Examples artifact (line number = label)."""
    with tf.io.gfile.GFile(os.path.join(examples_uri, CLASS_NAMES_FILE)) as f:
        return [line.rstrip('\n') for line in f if line.rstrip('\n')]


def split_dir(examples_uri: str, split: str) -> str:
    """The folder of one split in an Examples artifact (TFX's layout)."""
    return os.path.join(examples_uri, f'Split-{split}')


def split_pattern(examples_uri: str, split: str) -> str:
    """The file pattern of one split's TFRecord files."""
    return os.path.join(split_dir(examples_uri, split), '*')


def split_files(examples_uri: str, split: str) -> List[str]:
    """The TFRecord files of one split, sorted."""
    return sorted(tf.io.gfile.glob(split_pattern(examples_uri, split)))


def iter_records(examples_uri: str, split: str) -> Iterator[bytes]:
    """Every serialized Example of a split, in file order (files are gzipped TFRecords).

    Raises:
      FileNotFoundError: the split has no files.
    """
    files = split_files(examples_uri, split)
    if not files:
        raise FileNotFoundError(f'no files for split {split!r} under {examples_uri}')
    records = tf.data.TFRecordDataset(files, compression_type='GZIP').with_options(
        tf_data.no_autotune_thread())
    for record in records:
        yield record.numpy()


def iter_examples(examples_uri: str, split: str) -> Iterator[tf.train.Example]:
    """Every Example of a split, in file order (files are gzipped TFRecords)."""
    for record in iter_records(examples_uri, split):
        yield parse(record)


def parse(record: bytes) -> tf.train.Example:
    """One serialized Example."""
    return tf.train.Example.FromString(record)


def value(example: tf.train.Example, key: str):
    """The single value of a feature (bytes or int)."""
    feature = example.features.feature[key]
    if feature.HasField('bytes_list'):
        return feature.bytes_list.value[0]
    return feature.int64_list.value[0]


def value_or_none(example: tf.train.Example, key: str):
    """value(), or None when the example has no such feature (e.g. examples written
    without `path`)."""
    return value(example, key) if key in example.features.feature else None


def samples_per_label(examples_uri: str, split: str, class_names: Sequence[str],
                      count: int) -> Dict[str, List[Tuple[bytes, str]]]:
    """The first `count` (image bytes, path) of each class, in file order.

    Reads the split once and stops early when every class is full.
    """
    found: Dict[str, List[Tuple[bytes, str]]] = {label: [] for label in class_names}
    for example in iter_examples(examples_uri, split):
        label = class_names[value(example, features.LABEL_KEY)]
        if len(found[label]) < count:
            found[label].append((value(example, features.IMAGE_KEY),
                                 value(example, features.PATH_KEY).decode()))
        if all(len(v) >= count for v in found.values()):
            break
    return found


def images_by_path(examples_uri: str, split: str, paths: Collection[str]) -> Dict[str, bytes]:
    """The image bytes of the examples of a split whose path is in `paths`.

    Reads the split once, keeping only those images, and stops when all are found.
    """
    wanted, found = set(paths), {}
    if not wanted:
        return found
    for example in iter_examples(examples_uri, split):
        path = value(example, features.PATH_KEY).decode()
        if path in wanted:
            found[path] = value(example, features.IMAGE_KEY)
            if len(found) == len(wanted):
                break
    return found
