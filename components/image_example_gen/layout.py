"""Reads the shape of a data root: pre-split or not, and its class folders.

Accepted layouts (class folders hold the images directly):
  <root>/<class>/*.jpg                                -> hash split into train/eval
  <root>/train/<class>/*.jpg, <root>/validation/<class>/*.jpg   -> train/eval as given
"""

import dataclasses
import os
from typing import Tuple

import tensorflow as tf

from models import features


class DataRootError(ValueError):
    """The data root cannot be used; the message says what to fix."""


@dataclasses.dataclass(frozen=True)
class DataRoot:
    """A checked data root."""
    root: str
    presplit: bool
    labels: Tuple[str, ...]


def _subdirs(path: str):
    return sorted(name.rstrip('/') for name in tf.io.gfile.listdir(path)
                  if not name.startswith('.') and tf.io.gfile.isdir(os.path.join(path, name)))


def _image_count(folder: str) -> int:
    return sum(1 for name in tf.io.gfile.listdir(folder)
               if os.path.splitext(name)[1].lower() in features.IMAGE_EXTENSIONS)


def inspect_data_root(root: str) -> DataRoot:
    """Checks a data root and returns its layout and class names.

    Args:
      root: local path or any tf.io.gfile URL (gs://, ram://).

    Returns:
      DataRoot with sorted class folder names.

    Raises:
      DataRootError: missing, not a folder, empty, a single class, a class
        folder without image files, or train/ without validation/.
    """
    if not tf.io.gfile.exists(root):
        raise DataRootError(f'data root {root} does not exist')
    if not tf.io.gfile.isdir(root):
        raise DataRootError(f'data root {root} is not a folder')
    top = _subdirs(root)
    split_dirs = [d for d in (features.TRAIN_DIR, features.VALIDATION_DIR) if d in top]
    if len(split_dirs) == 1:
        missing = ({features.TRAIN_DIR, features.VALIDATION_DIR} - set(split_dirs)).pop()
        raise DataRootError(
            f'data root {root} has {split_dirs[0]}/ but no {missing}/: add {missing}/ '
            'with the same class folders, or put the class folders at the top level')
    presplit = bool(split_dirs)
    class_parents = [os.path.join(root, d) for d in split_dirs] if presplit else [root]
    labels = sorted({c for parent in class_parents for c in _subdirs(parent)})
    expected = ('one sub-folder per class, or train/ and validation/ each holding '
                'class folders')
    if not labels:
        raise DataRootError(f'data root {root} has no class folders (expected {expected})')
    if len(labels) == 1:
        raise DataRootError(
            f'data root {root} has only one class folder ({labels[0]}); '
            'a classifier needs at least two')
    for parent in class_parents:
        for label in labels:
            folder = os.path.join(parent, label)
            if not tf.io.gfile.isdir(folder) or _image_count(folder) == 0:
                raise DataRootError(
                    f'class folder {folder} is missing or has no image files '
                    f'({", ".join(features.IMAGE_EXTENSIONS)})')
    return DataRoot(root=root, presplit=presplit, labels=tuple(labels))
