"""Driver of ImageExampleGen: a fingerprint of every file under the data root.

TFX's FileBasedDriver fingerprints the files its split patterns match, one
level deep for ours; a photo changed two folders down would then leave a stale
cached ExampleGen. Ours stats every file at any depth, so any change (added,
removed, rewritten) re-runs the component and everything after it. It lists and
stats through `files`, as the executor reads, with the same link policy: a name
that is not UTF-8, a path beyond PATH_MAX, a link loop or a FIFO is one more
entry of the fingerprint, never a failed run. TFX's own span resolution (a glob
through tf.io.gfile) is not used: this component has no spans.
"""

import concurrent.futures
import hashlib
import itertools
from typing import Any, Dict, Iterator, Optional, Tuple

from tfx.components.example_gen import driver
from tfx.components.example_gen import input_processor

from components.image_example_gen import files
from components.image_example_gen import spec
from models import features


# A stat on object storage is one request (~20-50 ms on GCS): this many at once,
# submitted a chunk at a time, so the pending requests stay bounded.
STAT_THREADS = 32
_STAT_CHUNK = 10_000


def _stats(root: str, paths: Iterator[str], *, follow: bool) -> Iterator[Tuple[str, int, int]]:
    """(path, size, mtime in ns) of each path, in order, STAT_THREADS requests at a time."""
    def stat(path: str) -> Tuple[str, int, int]:
        # Listed but gone or not stat-able (a link to nothing, a file removed meanwhile):
        # the executor reports it as bad with the reason; the fingerprint records it as such.
        size, mtime = files.stat_file(root, path, follow=follow) or (-1, 0)
        return path, size, mtime
    with concurrent.futures.ThreadPoolExecutor(STAT_THREADS) as pool:
        while chunk := list(itertools.islice(paths, _STAT_CHUNK)):
            yield from pool.map(stat, chunk)


def tree_fingerprint(root: str, symlinks: str = features.SYMLINKS) -> str:
    """Files, bytes and a digest of (path, size, mtime) of every entry under root."""
    digest = hashlib.sha256()
    count = total = 0
    paths = (listed.path for listed in files.list_files(root, symlinks))
    for path, size, mtime in _stats(root, paths, follow=symlinks != files.NONE):
        count += 1
        total += max(size, 0)
        digest.update(f'{path}\0{size}\0{mtime}\n'.encode('utf-8', 'surrogateescape'))
    return f'files:{count},total_bytes:{total},sha256:{digest.hexdigest()}'


class TreeInputProcessor(input_processor.FileBasedInputProcessor):
    """FileBasedInputProcessor with `tree_fingerprint` as the input fingerprint."""

    def __init__(self, input_base_uri: str, splits, range_config=None,
                 symlinks: str = features.SYMLINKS):
        super().__init__(input_base_uri, splits, range_config)
        self.root = input_base_uri
        self.symlinks = symlinks

    def resolve_span_and_version(self) -> Tuple[int, Optional[int]]:
        return 0, None      # no span or version in our patterns

    def get_input_fingerprint(self, span: int, version: Optional[int]) -> Optional[str]:
        return tree_fingerprint(self.root, self.symlinks)


class Driver(driver.FileBasedDriver):
    """FileBasedDriver whose input fingerprint covers the whole data root."""

    _symlinks = features.SYMLINKS

    def resolve_exec_properties(self, exec_properties: Dict[str, Any], pipeline_info,
                                component_info) -> Dict[str, Any]:
        self._symlinks = exec_properties.get(spec.SYMLINKS_KEY) or features.SYMLINKS
        return super().resolve_exec_properties(exec_properties, pipeline_info, component_info)

    def get_input_processor(self, splits, range_config=None, input_base_uri=None):
        return TreeInputProcessor(input_base_uri, splits, range_config, self._symlinks)
