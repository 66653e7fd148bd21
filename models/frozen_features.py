"""The frozen base's pooled features of every photo as it is (no augmentation), computed once.

DataQuality (components/data_quality) computes them for every split right after
ExampleGen (label issues and near-duplicates need them) as a FrozenFeatures artifact; the
Trainer reuses the eval split's for validation and its eval answers, ReferenceProfile the
sample's as embeddings. This module is their format and the featurizer all use: the
transfer model's base and pooling on the photo as the Transform graph decodes it.

Artifact layout:
  features.npy  float32 [photos, POOLED_FEATURES], rows grouped by split (np.load can
                memory-map it: readers never hold more than the rows they use)
  photos.jsonl  one line per row: {"split", "label", "path"}
  meta.json     what the features are (weights, image size, pooling) and where each
                split's rows are: {"splits": {name: [first row, rows]}, ...}
"""

import io
import json
import os
import shutil
import tempfile
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from models import builders
from models import features
from models import preprocessing
from models import tf_data
from models import tflite_base

FEATURES_FILE = 'features.npy'
PHOTOS_FILE = 'photos.jsonl'
META_FILE = 'meta.json'
# The Trainer's custom_config key for the FrozenFeatures artifact's URI (image_trainer).
CONFIG_KEY = 'frozen_features_uri'
# The transfer model's pooling (builders.POOL_LAYER), recorded to tell others apart.
POOLING = 'max'
BATCH_SIZE = 32
# A file's name prefix until Writer.close (a run that fails halfway leaves only those).
PARTIAL_PREFIX = '.partial-'


def featurizer(weights: Optional[str], image_size: Sequence[int], *,
               invoke_batch: Optional[int] = tflite_base.INVOKE_BATCH):
    """The transfer model's input -> its frozen base's pooled features, no augmentation:
    what the Trainer's model computes for an eval photo (a tflite_base.FrozenBase: in
    TFLite, checked against TensorFlow, unless the weights are random or
    FROZEN_BASE_RUNTIME=tf; invoke_batch: images per interpreter invoke)."""
    # Imported here: training pulls in the whole training loop (DataQuality needs none).
    from models import training  # pylint: disable=import-outside-toplevel
    training.keep_autograph_out_of_tf_keras()
    model = builders.build_transfer_model(tuple(image_size), 2, weights=weights, augment='none')
    return tflite_base.FrozenBase(builders.pooled_features(model), weights, image_size,
                                  invoke_batch=invoke_batch)


def meta(weights: Optional[str], image_size: Sequence[int]) -> Dict[str, Any]:
    """What features computed with these settings are (without the rows per split)."""
    return {'weights': weights, 'image_size': [int(s) for s in image_size],
            'pooling': POOLING, 'dimensions': builders.POOLED_FEATURES}


def mismatch(stored: Dict[str, Any], weights: Optional[str],
             image_size: Sequence[int]) -> Optional[str]:
    """Why stored features are not what a model with these settings computes, or None."""
    wanted = meta(weights, image_size)
    different = [f'{key} {stored.get(key)!r} instead of {value!r}'
                 for key, value in wanted.items() if stored.get(key) != value]
    return '; '.join(different) or None


def batches(files: Sequence[str], image_size: Sequence[int], model: tflite_base.FrozenBase, *,
            thumbnail_side: Optional[int] = None,
            batch_size: int = BATCH_SIZE) -> Iterator[Dict[str, np.ndarray]]:
    """The features of every example in a split's gzipped TFRecord files, in file order;
    each image decoded once (as the Transform graph does) gives the model's input and,
    with thumbnail_side, a grey thumbnail of that side (for perceptual hashes).

    Yields:
      Per batch: {'features': float32 [b, D], 'labels': int64 [b], 'paths': bytes [b],
      'thumbnails': float32 [b, side, side] in [0, 255] (with thumbnail_side)}.
    """
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    size = tuple(int(s) for s in image_size)
    spec = {features.IMAGE_KEY: tf.io.FixedLenFeature([], tf.string),
            features.LABEL_KEY: tf.io.FixedLenFeature([], tf.int64),
            features.PATH_KEY: tf.io.FixedLenFeature([], tf.string)}

    def decode(record):
        example = tf.io.parse_single_example(record, spec)
        pixels = preprocessing.decode_and_resize(example[features.IMAGE_KEY], size)
        out = {'images': preprocessing.scale_to_unit_range(pixels),
               'labels': example[features.LABEL_KEY], 'paths': example[features.PATH_KEY]}
        if thumbnail_side:
            grey = tf.image.resize(tf.image.rgb_to_grayscale(pixels),
                                   (thumbnail_side, thumbnail_side), antialias=True)
            out['thumbnails'] = grey[..., 0]
        return out

    dataset = (tf.data.TFRecordDataset(list(files), compression_type='GZIP')
               .map(decode, num_parallel_calls=tf.data.AUTOTUNE)
               .batch(batch_size).prefetch(2).with_options(tf_data.no_autotune_thread()))
    for batch in dataset:
        out = {'features': model(batch.pop('images'))}
        out.update({key: value.numpy() for key, value in batch.items()})
        yield out


class Writer:
    """Writes a FrozenFeatures artifact row by row (memory holds one batch), each row once.

    features.npy is streamed: an .npy header of 0 rows, the rows, then at close the header
    again in place with the final count (numpy pads it for growth: checked). A local
    artifact URI is written directly, a remote one through one local folder copied once
    at close. Until close the files have PARTIAL_PREFIX names and meta.json comes last:
    a failed run leaves no complete-looking features.npy (`abort`, or an exception in a
    `with` block, removes the partial files)."""

    def __init__(self, uri: str, settings: Dict[str, Any]):
        self._uri, self._meta = uri, dict(settings, splits={})
        self._remote = '://' in uri
        if self._remote:
            self._folder = tempfile.mkdtemp(prefix='frozen-features-')
        else:
            self._folder = uri
            os.makedirs(uri, exist_ok=True)
            # What an earlier attempt into this folder left is not this run's.
            for name in (META_FILE, FEATURES_FILE, PHOTOS_FILE):
                if os.path.exists(os.path.join(uri, name)):
                    os.remove(os.path.join(uri, name))
        self._dimensions = int(self._meta['dimensions'])
        self._header = npy_header(0, self._dimensions)
        # Open until close(): the rows arrive batch by batch.
        self._rows = open(  # pylint: disable=consider-using-with
            self._partial(FEATURES_FILE), 'wb')
        self._rows.write(self._header)
        self._photos = open(  # pylint: disable=consider-using-with
            self._partial(PHOTOS_FILE), 'w', encoding='utf-8')
        self.count = 0
        self._open = True

    def _partial(self, name: str) -> str:
        return os.path.join(self._folder, PARTIAL_PREFIX + name)

    def __enter__(self) -> 'Writer':
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()

    def add(self, split: str, batch_features: np.ndarray, labels: Sequence[int],
            paths: Sequence[bytes]) -> None:
        """Appends rows of a split (the splits one after the other).

        Raises:
          ValueError: rows not of meta's dimensions, or not one per label.
        """
        batch_features = np.ascontiguousarray(batch_features, np.float32)
        if batch_features.shape != (len(labels), self._dimensions):
            raise ValueError(f'{self._uri}/{FEATURES_FILE}: rows of {self._dimensions} '
                             f'features, one per label ({len(labels)}) expected, got '
                             f'{batch_features.shape}')
        first, rows = self._meta['splits'].setdefault(split, [self.count, 0])
        self._meta['splits'][split] = [first, rows + len(labels)]
        self._rows.write(batch_features.tobytes())
        for label, path in zip(labels, paths):
            self._photos.write(json.dumps({'split': split, 'label': int(label),
                                           'path': path.decode()}) + '\n')
        self.count += len(labels)

    def close(self) -> None:
        """Completes the artifact (final header, the files' names, meta.json last); on
        any error, `abort`. Raises ValueError: the final header would not fit in place
        of the first (a numpy that does not pad .npy headers for growth)."""
        if not self._open:
            return
        try:
            self._complete()
        except BaseException:
            self.abort()
            raise
        self._open = False
        if self._remote:
            shutil.rmtree(self._folder, ignore_errors=True)

    def _complete(self) -> None:
        import tensorflow as tf  # pylint: disable=import-outside-toplevel
        self._photos.close()
        header = npy_header(self.count, self._dimensions)
        if len(header) != len(self._header):
            raise ValueError(
                f'{self._uri}/{FEATURES_FILE}: the .npy header of {self.count} rows takes '
                f'{len(header)} bytes, the one written before the rows {len(self._header)}: '
                f'this numpy ({np.__version__}) does not pad it for growth, so it cannot be '
                'rewritten in place')
        expected = len(header) + self.count * self._dimensions * 4
        if self._rows.tell() != expected:
            raise ValueError(f'{self._uri}/{FEATURES_FILE}: {self._rows.tell()} bytes '
                             f'written, {expected} expected')
        self._rows.seek(0)
        self._rows.write(header)
        self._rows.close()
        self._meta['count'] = self.count
        with open(self._partial(META_FILE), 'w', encoding='utf-8') as f:
            json.dump(self._meta, f, indent=1)
        for name in (FEATURES_FILE, PHOTOS_FILE, META_FILE):      # meta.json last
            if self._remote:
                tf.io.gfile.copy(self._partial(name), os.path.join(self._uri, name),
                                 overwrite=True)
            else:
                os.replace(self._partial(name), os.path.join(self._uri, name))

    def abort(self) -> None:
        """Drops what this writer wrote (locally, also the files already named)."""
        self._open = False
        for handle in (self._rows, self._photos):
            handle.close()
        if self._remote:
            shutil.rmtree(self._folder, ignore_errors=True)
            return
        for name in (FEATURES_FILE, PHOTOS_FILE, META_FILE):
            for path in (self._partial(name), os.path.join(self._uri, name)):
                try:
                    os.remove(path)
                except FileNotFoundError:
                    pass


def npy_header(rows: int, dimensions: int) -> bytes:
    """The .npy (version 1.0) header of float32 [rows, dimensions], C order."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {
        'descr': np.lib.format.dtype_to_descr(np.dtype(np.float32)),
        'fortran_order': False, 'shape': (int(rows), int(dimensions))})
    return buffer.getvalue()


def read_meta(uri: str) -> Dict[str, Any]:
    """meta.json of a FrozenFeatures artifact."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    with tf.io.gfile.GFile(os.path.join(uri, META_FILE)) as f:
        return json.load(f)


def read_photos(uri: str, split: Optional[str] = None) -> List[Dict[str, Any]]:
    """The rows' photos ({split, label, path}) in row order, of one split or all."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    with tf.io.gfile.GFile(os.path.join(uri, PHOTOS_FILE)) as f:
        rows = (json.loads(line) for line in f)
        return [row for row in rows if split is None or row['split'] == split]


def read_features(uri: str, local_dir: Optional[str] = None) -> np.ndarray:
    """features.npy, memory-mapped (copied into local_dir first when not on this machine)."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    path = os.path.join(uri, FEATURES_FILE)
    if '://' in path:
        local = os.path.join(local_dir or tempfile.mkdtemp(), FEATURES_FILE)
        tf.io.gfile.copy(path, local, overwrite=True)
        path = local
    return np.load(path, mmap_mode='r')


def load_split(uri: str, split: str,
               local_dir: Optional[str] = None) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(features [rows, D] memory-mapped, labels [rows], paths [rows] as bytes) of a split."""
    first, rows = read_meta(uri)['splits'][split]
    photos = read_photos(uri, split)
    if len(photos) != rows:
        raise ValueError(f'{uri}: {len(photos)} photos of split {split!r} listed, '
                         f'meta.json says {rows}')
    return (read_features(uri, local_dir)[first:first + rows],
            np.asarray([p['label'] for p in photos], np.int64),
            np.asarray([p['path'].encode() for p in photos], dtype=object))


def reusable(uri: Optional[str], split: str, weights: Optional[str], image_size: Sequence[int],
             count: int, local_dir: Optional[str] = None):
    """A split's (features, labels, paths) when they are what a model with these weights
    and input size computes for that split's `count` photos.

    Returns:
      (the three arrays, None), or (None, why they cannot be reused).
    """
    if not uri:
        return None, 'no frozen features given'
    stored = read_meta(uri)
    reason = mismatch(stored, weights, image_size)
    if reason is None and split not in stored['splits']:
        reason = f'no split {split!r}'
    if reason is None and stored['splits'][split][1] != count:
        reason = f"{stored['splits'][split][1]} {split} photos instead of {count}"
    if reason is not None:
        return None, f'the frozen features in {uri} are for {reason}'
    return load_split(uri, split, local_dir), None
