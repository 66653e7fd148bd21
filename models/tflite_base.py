"""The frozen base's pooled features at TFLite's speed: the base and its pooling converted
once to float32 TFLite (models/tflite_export.py: convert, Runner) and run with XNNPACK on
every core, checked against TensorFlow on the first photos (CHECK_PHOTOS).

Where: DataQuality's and the Tuner's features of every photo as it is
(models/frozen_features.py: featurizer, batches) and the Trainer's eval features and
augmented views (models/frozen_training.py: FrozenFeatureValidation, view_features; one
FrozenBase for both). Augmentation stays in TensorFlow (the model's own random layers,
drawn as before); only the base and its pooling run in TFLite, INVOKE_BATCH images per
invoke (measured: the bench command is at INVOKE_BATCH).

The check: on the first CHECK_PHOTOS photos a FrozenBase computes, TFLite's features must
equal TensorFlow's within MAX_ABS_DIFFERENCE (largest difference of one feature) and
MIN_COSINE (lowest cosine similarity of a photo's two feature vectors); a converted model
read from the cache that fails it is converted again, and a fresh one that fails it stops
the run (FeaturesMismatch).

The cache: one flatbuffer per key, on local disk, in cache_dir():
$FROZEN_BASE_CACHE if set, else $XDG_CACHE_HOME (default ~/.cache)/tfx-image-classification/
frozen-base. The key (cache_key) is the sha256 of the base's weights (their values, in
layer order: the same whatever file or download they came from), the input size, the
pooling and the TensorFlow version. Files are written atomically (a temporary file, then
a rename) beside a .sha256 of their bytes; a file whose bytes do not match it, or that
the interpreter cannot load, is converted again, never trusted.

Random weights (weights None) run in TensorFlow: each draw would be a new conversion
for features nobody compares across runs. FROZEN_BASE_RUNTIME=tf also keeps the
TensorFlow path (the one before this module).
"""

import hashlib
import json
import os
import tempfile
from typing import Optional, Sequence, Tuple

import numpy as np

from models import builders
from models import tflite_export
from runlog import progress

CACHE_ENV = 'FROZEN_BASE_CACHE'
RUNTIME_ENV = 'FROZEN_BASE_RUNTIME'
TFLITE = 'tflite'
TF = 'tf'
CACHE_SUBDIR = os.path.join('tfx-image-classification', 'frozen-base')
# Largest difference of one pooled feature (MobileNetV2's are ReLU6 outputs, in [0, 6])
# and lowest cosine similarity of one photo's features, TFLite float32 against TensorFlow:
# the two differ by float rounding only (docs/benchmarks.md, issue 40, has what is measured).
MAX_ABS_DIFFERENCE = 1e-3
MIN_COSINE = 0.99999
# Photos of the first call the check runs through TensorFlow too. A wrong conversion
# differs on every photo; TensorFlow's activations for a batch of 32 at 224 added 0.4 GiB
# to the process's peak (DataQuality: 1.56 against 1.16 GiB with 4), for 4 an eighth.
CHECK_PHOTOS = 4
# Images per interpreter invoke (None: each call's whole batch, the pipeline's 32, in
# one). Chosen by `python bench/forward_limit.py --xnnpack-only` (XNNPACK fed batches of
# 32, invoked 1, 4, 8, 16 or 32 at a time, side by side; docs/benchmarks.md, issue 40
# part 2): with the 2 cores shared (load 9-11) batch 1 ran at 0.25x, 4 at 0.44x and 16
# at 0.86x of batch 32; at load 0.8-2.7, 4-16 at 1.11-1.17x and 1 at 0.21x. Small
# invokes gain little when the cores are free and lose most when they are not (the
# pipeline's own tf.data threads share them), so the whole batch. The outputs are the
# same at any size (bitwise, measured).
INVOKE_BATCH = None


class FeaturesMismatch(RuntimeError):
    """TFLite's features are not TensorFlow's within the tolerance."""


def runtime_setting() -> str:
    """FROZEN_BASE_RUNTIME: TFLITE (the default) or TF.

    Raises:
      ValueError: another value.
    """
    value = os.environ.get(RUNTIME_ENV, TFLITE).strip().lower() or TFLITE
    if value not in (TFLITE, TF):
        raise ValueError(f'{RUNTIME_ENV} must be {TFLITE!r} or {TF!r}, got {value!r}')
    return value


def cache_dir() -> str:
    """Where converted bases are kept (the module's docstring)."""
    if os.environ.get(CACHE_ENV):
        return os.environ[CACHE_ENV]
    root = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    return os.path.join(root, CACHE_SUBDIR)


def base_and_pooling(model):
    """The frozen base and its pooling of a transfer model (or of its pooled_features), no
    augmentation: pixels [N, H, W, 3] in [-1, 1] -> pooled features [N, D]."""
    import tf_keras as keras  # pylint: disable=import-outside-toplevel
    base = model.get_layer(builders.BASE_MODEL_NAME)
    images = keras.Input(shape=base.input_shape[1:])
    pooled = model.get_layer(builders.POOL_LAYER)(base(images, training=False))
    return keras.Model(images, pooled, name='frozen_base')


def cache_key(model, image_size: Sequence[int]) -> str:
    """sha256 of the base's weights, the input size, the pooling and TF's version."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    digest = hashlib.sha256()
    for weight in model.get_layer(builders.BASE_MODEL_NAME).weights:
        digest.update(np.ascontiguousarray(weight.numpy()).tobytes())
    digest.update(json.dumps({'image_size': [int(s) for s in image_size],
                              'pooling': type(model.get_layer(builders.POOL_LAYER)).__name__,
                              'tensorflow': tf.__version__}).encode())
    return digest.hexdigest()


def read_cached(path: str) -> Optional[bytes]:
    """The cached flatbuffer at path when its bytes match its .sha256, else None."""
    try:
        with open(path, 'rb') as f:
            content = f.read()
        with open(path + '.sha256', encoding='utf-8') as f:
            expected = f.read().strip()
    except OSError:
        return None
    return content if hashlib.sha256(content).hexdigest() == expected else None


def _write_atomically(path: str, content: bytes) -> None:
    """Caches content at path (with its .sha256). A cache that cannot be written (a
    read-only or foreign folder, a full disk) costs the next run a conversion, never this
    run: it is logged and left."""
    tmp = None
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        for target, data in ((path, content),
                             (path + '.sha256', hashlib.sha256(content).hexdigest().encode())):
            handle, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix='.tmp-')
            with os.fdopen(handle, 'wb') as f:
                f.write(data)
            os.replace(tmp, target)
            tmp = None
    except OSError as e:
        if tmp is not None:
            try:
                os.remove(tmp)
            except OSError:
                pass
        progress.logger().warning(
            'the converted frozen base is not cached (%s; set %s to a writable folder): %s',
            os.path.dirname(path), CACHE_ENV, e)


def flatbuffer(model, image_size: Sequence[int], *, fresh: bool = False) -> Tuple[bytes, bool]:
    """(the float32 TFLite model of base_and_pooling(model), whether it was converted now):
    from the cache when there and intact, else converted and cached. fresh: convert even
    when cached."""
    size = [int(s) for s in image_size]
    path = os.path.join(cache_dir(), f'{cache_key(model, size)}.tflite')
    content = None if fresh else read_cached(path)
    if content is not None:
        return content, False
    base = base_and_pooling(model)
    content = tflite_export.convert(tflite_export.keras_function(base, (*size, 3)),
                                    tflite_export.FLOAT32, trackable=base, signatures=False)
    _write_atomically(path, content)
    return content, True


def difference(reference: np.ndarray, features: np.ndarray) -> Tuple[float, float]:
    """(largest absolute difference, lowest cosine similarity of a row) of two feature
    arrays [N, D] of the same photos."""
    reference = np.asarray(reference, np.float64)
    features = np.asarray(features, np.float64)
    if reference.shape != features.shape:
        return float('inf'), -1.0
    largest = float(np.max(np.abs(reference - features), initial=0.0))
    norms = np.linalg.norm(reference, axis=1) * np.linalg.norm(features, axis=1)
    same = np.all(reference == features, axis=1)
    cosine = np.where(same, 1.0, np.sum(reference * features, axis=1) / np.maximum(norms, 1e-30))
    return largest, float(np.min(cosine, initial=1.0))


def mismatch(reference: np.ndarray, features: np.ndarray) -> Optional[str]:
    """Why features are not TensorFlow's (reference) within the tolerance, or None."""
    largest, cosine = difference(reference, features)
    if largest <= MAX_ABS_DIFFERENCE and cosine >= MIN_COSINE:    # False for NaN
        return None
    return (f'TFLite features of the frozen base differ from TensorFlow\'s on '
            f'{len(reference)} photos: largest difference {largest:.3g} (at most '
            f'{MAX_ABS_DIFFERENCE:g} allowed), lowest cosine {cosine:.6f} (at least '
            f'{MIN_COSINE:g} required)')


def check(reason: Optional[str]) -> None:
    """Stops with mismatch's reason, if any.

    Raises:
      FeaturesMismatch: naming the tolerance, the difference and the way back to TF.
    """
    if reason:
        raise FeaturesMismatch(f'{reason}; set {RUNTIME_ENV}={TF} to compute them in '
                               'TensorFlow')


class FrozenBase:
    """Pixels [N, H, W, 3] in [-1, 1] -> the frozen base's pooled features [N, D] as numpy,
    optionally of the pixels augmented first by the model's own layers (in TensorFlow, in
    training mode: a new draw every call). In TFLite (XNNPACK, `threads`, default every
    core, `invoke_batch` images per invoke) when `runtime` is TFLITE, checked against
    TensorFlow on the first call; else in TensorFlow.

    One per model and run: the Trainer's eval features and augmented copies share it, so
    the weights are hashed, the model read (or converted) and checked once. That happens
    on the first call (or `load()`): a run that needs no features costs nothing.
    Not thread-safe."""

    def __init__(self, model, weights: Optional[str], image_size: Sequence[int], *,
                 threads: int = tflite_export.DEFAULT_THREADS,
                 invoke_batch: Optional[int] = INVOKE_BATCH):
        """Args: model: a transfer model or its pooled_features (builders); weights: what the
        base was built from (None: random, so TensorFlow); invoke_batch: images per
        interpreter invoke (None: each call's whole batch in one)."""
        import tensorflow as tf  # pylint: disable=import-outside-toplevel
        # Imported here: training imports the modules that use this one.
        from models import training  # pylint: disable=import-outside-toplevel
        training.keep_autograph_out_of_tf_keras()
        self._size = tuple(int(s) for s in image_size)
        self._model, self._threads, self._invoke_batch = model, threads, invoke_batch
        self.dimensions = int(model.get_layer(builders.POOL_LAYER).output.shape[-1])
        spec = [tf.TensorSpec([None, *self._size, 3], tf.float32)]
        frozen = base_and_pooling(model)
        self._tf = tf.function(lambda x: frozen(x, training=False), input_signature=spec)
        self._augment = None
        if builders.AUGMENTATION_LAYER in {layer.name for layer in model.layers}:
            layer = model.get_layer(builders.AUGMENTATION_LAYER)
            self._augment = tf.function(lambda x: layer(x, training=True), input_signature=spec)
        self.runtime = TF if weights is None else runtime_setting()
        # Whether the TFLite model was converted by this run (not read from the cache):
        # known once loaded.
        self.converted = False
        self._runner, self._checked = None, False

    def load(self) -> 'FrozenBase':
        """Reads the TFLite model from the cache, or converts it, now instead of on the
        first call (nothing for TF). Returns self."""
        if self.runtime == TFLITE and self._runner is None:
            self._load(fresh=False)
        return self

    def _load(self, fresh: bool) -> None:
        content, self.converted = flatbuffer(self._model, self._size, fresh=fresh)
        try:
            self._runner = tflite_export.Runner(content, threads=self._threads)
        except (ValueError, RuntimeError):
            if self.converted:
                raise
            self._load(fresh=True)     # a cached file the interpreter cannot load

    def augmented(self, pixels):
        """pixels augmented by the model's own layers (a new draw every call), or as they
        are when it has none."""
        return pixels if self._augment is None else self._augment(pixels)

    def __call__(self, pixels, *, augment: bool = False) -> np.ndarray:
        """The features of pixels, augmented first when `augment` (augmented())."""
        if augment:
            pixels = self.augmented(pixels)
        if self.runtime == TF:
            return self._tf(pixels).numpy()
        self.load()
        pixels = np.asarray(pixels, np.float32)
        features = self._runner.run(pixels, self._invoke_batch)
        if not self._checked:
            sample = pixels[:CHECK_PHOTOS]
            reference = self._tf(sample).numpy()
            reason = mismatch(reference, features[:CHECK_PHOTOS])
            if reason and not self.converted:
                progress.logger().info('%s with the cached model: converting it again', reason)
                self._load(fresh=True)
                features = self._runner.run(pixels, self._invoke_batch)
                reason = mismatch(reference, features[:CHECK_PHOTOS])
            check(reason)
            self._checked = True
        return features
