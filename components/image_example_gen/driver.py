"""Driver of ImageExampleGen: a fingerprint of every file under the data root.

TFX's FileBasedDriver fingerprints the files its split patterns match, one
level deep for ours; a photo changed two folders down would then leave a stale
cached ExampleGen. Ours stats every file at any depth, so any change (added,
removed, rewritten) re-runs the component and everything after it.
"""

import hashlib
import posixpath
from typing import Optional

import tensorflow as tf
from tfx.components.example_gen import driver
from tfx.components.example_gen import input_processor

from components.image_example_gen import layout


def tree_fingerprint(root: str) -> str:
    """Files, bytes and a digest of (path, size, mtime) of every file under root."""
    digest = hashlib.sha256()
    files = layout.list_files(root)
    total = 0
    for path in files:
        stat = tf.io.gfile.stat(posixpath.join(root, path))
        total += stat.length
        digest.update(f'{path}\0{stat.length}\0{stat.mtime_nsec}\n'.encode())
    return f'files:{len(files)},total_bytes:{total},sha256:{digest.hexdigest()}'


class TreeInputProcessor(input_processor.FileBasedInputProcessor):
    """FileBasedInputProcessor with `tree_fingerprint` as the input fingerprint."""

    def __init__(self, input_base_uri: str, splits, range_config=None):
        super().__init__(input_base_uri, splits, range_config)
        self.root = input_base_uri

    def get_input_fingerprint(self, span: int, version: Optional[int]) -> Optional[str]:
        return tree_fingerprint(self.root)


class Driver(driver.FileBasedDriver):
    """FileBasedDriver whose input fingerprint covers the whole data root."""

    def get_input_processor(self, splits, range_config=None, input_base_uri=None):
        return TreeInputProcessor(input_base_uri, splits, range_config)
