"""Driver of ImageExampleGen: a fingerprint of every file under the data root.

TFX's FileBasedDriver fingerprints the files its split patterns match, one
level deep for ours; a photo changed two folders down would then leave a stale
cached ExampleGen. Ours stats every file at any depth, so any change (added,
removed, rewritten) re-runs the component and everything after it.
"""

import concurrent.futures
import hashlib
import itertools
import posixpath
from typing import Iterator, Optional, Tuple

import tensorflow as tf
from tfx.components.example_gen import driver
from tfx.components.example_gen import input_processor

from components.image_example_gen import layout


# A stat on object storage is one request (~20-50 ms on GCS): this many at once,
# submitted a chunk at a time, so the pending requests stay bounded.
STAT_THREADS = 32
_STAT_CHUNK = 10_000


def _stats(root: str, paths: Iterator[str]) -> Iterator[Tuple[str, int, int]]:
    """(path, size, mtime in ns) of each path, in order, STAT_THREADS requests at a time."""
    def stat(path: str) -> Tuple[str, int, int]:
        try:
            found = tf.io.gfile.stat(posixpath.join(root, path))
        except tf.errors.NotFoundError:
            # Listed but gone (a dangling symlink, a file removed meanwhile): the executor
            # reports it as bad with the reason; the fingerprint records it as such.
            return path, -1, 0
        return path, found.length, found.mtime_nsec
    with concurrent.futures.ThreadPoolExecutor(STAT_THREADS) as pool:
        while chunk := list(itertools.islice(paths, _STAT_CHUNK)):
            yield from pool.map(stat, chunk)


def tree_fingerprint(root: str) -> str:
    """Files, bytes and a digest of (path, size, mtime) of every file under root."""
    digest = hashlib.sha256()
    files = total = 0
    for path, size, mtime in _stats(root, iter(layout.list_files(root))):
        files += 1
        total += max(size, 0)
        digest.update(f'{path}\0{size}\0{mtime}\n'.encode())
    return f'files:{files},total_bytes:{total},sha256:{digest.hexdigest()}'


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
