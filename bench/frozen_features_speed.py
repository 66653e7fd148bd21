"""The frozen base's features: TensorFlow against TFLite (XNNPACK), and the pipeline's two
featurizing paths as a share of the XNNPACK limit, measured side by side in one run.

    python bench/frozen_features_speed.py [--data-root DIR] [--images N] [--image-size S]

Prints, in images/s (one image = one forward pass of the base):
  TF           the base + pooling as a tf.function on decoded pixels (the path before
               models/tflite_base.py), at the Trainer's batch size
  XNNPACK      the same converted to float32 TFLite on every core, on decoded pixels
               fed in the Trainer's batches, invoked --invoke-batch images at a time
               (and, "whole batch", each batch in one invoke): the faster is the limit
  decode       the DataQuality reader alone (gzipped TFRecords -> decoded pixels), no model
  DataQuality  frozen_features.batches: TFRecords decoded by tf.data in the background,
               the base in TFLite (FROZEN_BASE_RUNTIME=tf: in TF), per invoke size too
  Trainer      frozen_training.view_features: 3 augmented views per photo, the
               augmentation in TF, the base in TFLite (or TF), per invoke size too
and each path's rate as a ratio of the XNNPACK limit. Invoke releases the GIL (the
decode rate while the interpreter runs in another thread is printed too), so decoding
overlaps the forward pass; when the decode rate is near the path's rate, decoding is the
limit. Also: what a second FrozenBase costs (the Trainer built two before part 2), and
frozen_features.Writer's time and disk for WRITER_ROWS rows against the two local
copies it made before part 2.
"""

import argparse
import glob
import os
import shutil
import sys
import tempfile
import threading
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

VIEWS = 3
# Feature rows the Writer comparison writes (a 20,000-photo data set: 98 MiB).
WRITER_ROWS = 20000


def _rate(step, images: int, repeats: int = 2) -> float:
    """images/s of step() (which handles `images` images), the best of `repeats` runs
    after one untimed (traces, the interpreter's tensors for each batch size)."""
    step()
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        best = max(best, images / (time.perf_counter() - start))
    return best


def _write_records(paths, folder: str) -> str:
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from models import features  # pylint: disable=import-outside-toplevel
    out = os.path.join(folder, 'train.gz')
    with tf.io.TFRecordWriter(out, options='GZIP') as writer:
        for path in paths:
            label = int(os.path.basename(os.path.dirname(path)) == 'dogs')
            writer.write(tf.train.Example(features=tf.train.Features(feature={
                features.IMAGE_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(
                    value=[open(path, 'rb').read()])),
                features.LABEL_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
                features.PATH_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(
                    value=[path.encode()])),
            })).SerializeToString())
    return out


def measure(data_root: str, images: int, weights: str, size: int, batch_size: int,
            invoke: int):
    """{name: images/s, or seconds where the name says so}."""
    import numpy as np  # pylint: disable=import-outside-toplevel
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    import tf_keras as keras  # pylint: disable=import-outside-toplevel
    from models import builders  # pylint: disable=import-outside-toplevel
    from models import frozen_features  # pylint: disable=import-outside-toplevel
    from models import frozen_training  # pylint: disable=import-outside-toplevel
    from models import preprocessing  # pylint: disable=import-outside-toplevel
    from models import tflite_base  # pylint: disable=import-outside-toplevel

    paths = sorted(glob.glob(os.path.join(data_root, 'train', '*', '*.jpg')))[:images]
    pixels = preprocessing.preprocess_images(
        tf.constant([open(p, 'rb').read() for p in paths]), (size, size)).numpy()
    rates = {}
    start = time.perf_counter()
    tflite = frozen_features.featurizer(weights, (size, size), invoke_batch=invoke).load()
    rates['conversion or cache (s)'] = time.perf_counter() - start
    tflite(pixels[:batch_size])                      # the check
    # What a second FrozenBase cost the Trainer (one per run since part 2): the weights
    # hashed, the model read from the cache, the TF check on a first batch, beyond what
    # that batch costs once checked.
    model = builders.pooled_features(builders.build_transfer_model(
        (size, size), 2, weights=weights, augment='none'))
    start = time.perf_counter()
    tflite_base.FrozenBase(model, weights, (size, size))(pixels[:batch_size])
    first = time.perf_counter() - start
    start = time.perf_counter()
    tflite(pixels[:batch_size])
    rates['a second FrozenBase (s)'] = first - (time.perf_counter() - start)
    os.environ[tflite_base.RUNTIME_ENV] = tflite_base.TF
    reference = frozen_features.featurizer(weights, (size, size))
    reference(pixels[:batch_size])                   # trace

    def over(featurizer, batch):
        return lambda: [featurizer(pixels[i:i + batch]) for i in range(0, len(pixels), batch)]

    rates['TF'] = _rate(over(reference, batch_size), len(pixels))
    del os.environ[tflite_base.RUNTIME_ENV]
    # Batches of batch_size (the pipeline's), invoked whole (before part 2) or
    # `invoke` at a time; a featurizer each: resizing the input re-plans XNNPACK.
    whole = frozen_features.featurizer(weights, (size, size), invoke_batch=None)
    rates['XNNPACK, whole batch'] = _rate(over(whole, batch_size), len(pixels))
    rates['XNNPACK'] = _rate(over(tflite, batch_size), len(pixels))
    largest, cosine = tflite_base.difference(reference(pixels[:batch_size]),
                                             tflite(pixels[:batch_size]))
    rates['largest difference'], rates['lowest cosine'] = largest, cosine
    rates['whole batch vs invoke batch, largest difference'] = float(np.max(np.abs(
        whole(pixels[:batch_size]) - tflite(pixels[:batch_size]))))

    with tempfile.TemporaryDirectory() as folder:
        files = [_write_records(paths, folder)]

        def decode_only():
            for _ in frozen_features.batches(files, (size, size), _NoModel(), batch_size=32):
                pass

        rates['decode'] = _rate(decode_only, len(paths))
        # Decoding while the interpreter runs in another thread: invoke releases the GIL.
        busy = threading.Event()

        def forward():
            while not busy.is_set():
                tflite(pixels[:batch_size])

        thread = threading.Thread(target=forward)
        thread.start()
        rates['decode while invoking'] = _rate(decode_only, len(paths), repeats=1)
        busy.set()
        thread.join()
        for name, runtime, chunk in (
                ('DataQuality, whole batch', None, None),
                ('DataQuality', None, invoke),
                ('DataQuality (TF)', tflite_base.TF, None)):
            os.environ.pop(tflite_base.RUNTIME_ENV, None)
            if runtime:
                os.environ[tflite_base.RUNTIME_ENV] = runtime
            model = frozen_features.featurizer(weights, (size, size), invoke_batch=chunk)
            rates[name] = _rate(lambda: list(frozen_features.batches(  # pylint: disable=cell-var-from-loop
                files, (size, size), model)), len(paths))
        os.environ.pop(tflite_base.RUNTIME_ENV, None)

    dataset = (tf.data.Dataset.from_tensor_slices(
        (tf.constant([open(p, 'rb').read() for p in paths]), np.zeros(len(paths), np.int64)))
               .map(lambda b, y: (preprocessing.preprocess_images(b[None], (size, size))[0], y),
                    num_parallel_calls=tf.data.AUTOTUNE)
               .batch(batch_size).prefetch(2))
    for name, given, chunk in (('Trainer, whole batch', weights, None),
                                ('Trainer', weights, invoke),
                                ('Trainer (TF)', None, None)):
        keras.utils.set_random_seed(0)
        model = builders.build_transfer_model((size, size), 2, weights=weights, seed=0)
        base = tflite_base.FrozenBase(model, given, (size, size), invoke_batch=chunk)
        rates[name] = _rate(lambda: frozen_training.view_features(  # pylint: disable=cell-var-from-loop
            model, dataset, VIEWS, None, len(paths), base=base), len(paths) * VIEWS)  # pylint: disable=cell-var-from-loop
    rates.update(writer_seconds(builders.POOLED_FEATURES))
    return rates


def writer_seconds(dimensions: int, rows: int = WRITER_ROWS) -> dict:
    """Seconds to write `rows` feature rows (batches of 32) as a FrozenFeatures artifact
    on local disk, and the most bytes on disk meanwhile, by frozen_features.Writer (the
    rows streamed into the artifact's features.npy) and as before part 2 (rows to a
    local file, header + rows to a second one, that copied into the artifact)."""
    import numpy as np  # pylint: disable=import-outside-toplevel
    from models import frozen_features  # pylint: disable=import-outside-toplevel
    batch = np.random.default_rng(0).random((32, dimensions), np.float32)
    labels, names = [0] * 32, [b'cats/cat.0.jpg'] * 32
    out = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, write in (('two copies', _write_twice), ('streamed', _write_streamed)):
            uri = os.path.join(folder, name)
            start = time.perf_counter()
            peak = write(uri, batch, labels, names, rows // 32, dimensions)
            out[f'Writer {name} (s)'] = time.perf_counter() - start
            out[f'Writer {name}, most bytes on disk'] = peak
            shutil.rmtree(uri)
    return out


def _disk_bytes(*folders: str) -> int:
    return sum(os.path.getsize(os.path.join(root, f)) for folder in folders
               for root, _, names in os.walk(folder) for f in names)


def _write_streamed(uri, batch, labels, names, batches, dimensions) -> int:
    from models import frozen_features  # pylint: disable=import-outside-toplevel
    writer = frozen_features.Writer(uri, {'dimensions': dimensions})
    for _ in range(batches):
        writer.add('train', batch, labels, names)
    peak = _disk_bytes(uri)
    writer.close()
    return max(peak, _disk_bytes(uri))


def _write_twice(uri, batch, labels, names, batches, dimensions) -> int:
    """frozen_features.Writer before part 2, step by step (os.* for tf.io.gfile on local
    disk)."""
    import json  # pylint: disable=import-outside-toplevel
    import numpy as np  # pylint: disable=import-outside-toplevel
    local = tempfile.mkdtemp(prefix='frozen-features-')
    with open(os.path.join(local, 'rows.f32'), 'wb') as rows, \
            open(os.path.join(local, 'photos.jsonl'), 'w', encoding='utf-8') as photos:
        for _ in range(batches):
            rows.write(np.ascontiguousarray(batch, np.float32).tobytes())
            for label, path in zip(labels, names):
                photos.write(json.dumps({'split': 'train', 'label': label,
                                         'path': path.decode()}) + '\n')
    npy = os.path.join(local, 'features.npy')
    with open(npy, 'wb') as out, open(os.path.join(local, 'rows.f32'), 'rb') as rows:
        np.lib.format.write_array_header_1_0(out, {
            'descr': '<f4', 'fortran_order': False, 'shape': (batches * 32, dimensions)})
        shutil.copyfileobj(rows, out)
    os.makedirs(uri)
    for name in ('features.npy', 'photos.jsonl'):
        shutil.copyfile(os.path.join(local, name), os.path.join(uri, name))
    peak = _disk_bytes(local, uri)
    shutil.rmtree(local)
    return peak


class _NoModel:
    """A featurizer that computes nothing: the reader's own rate."""

    def __call__(self, pixels):
        import numpy as np  # pylint: disable=import-outside-toplevel
        return np.zeros((len(pixels), 1), np.float32)


def main() -> int:
    from pipeline import configs  # pylint: disable=import-outside-toplevel
    from bench import photos  # pylint: disable=import-outside-toplevel
    from models import trainer_settings  # pylint: disable=import-outside-toplevel
    parser = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
    parser.add_argument('--data-root',
                        default=str(configs.SHARED / 'datasets' / 'cats_and_dogs_filtered'))
    parser.add_argument('--images', type=int, default=256)
    parser.add_argument('--image-size', type=int, default=photos.pipeline_image_size())
    parser.add_argument('--weights', default=configs.SHARED_WEIGHTS)
    parser.add_argument('--invoke-batch', type=int, default=1,
                        help='images per invoke, against the whole batch')
    args = parser.parse_args()
    from runlog import noise  # pylint: disable=import-outside-toplevel
    noise.quiet_tensorflow()
    from models import tflite_base  # pylint: disable=import-outside-toplevel
    rates = measure(args.data_root, args.images, args.weights, args.image_size,
                    trainer_settings.Training.batch_size, args.invoke_batch)
    limit = max(rates['XNNPACK'], rates['XNNPACK, whole batch'])
    print(f'{args.images} photos at {args.image_size}, {os.cpu_count()} cores; converted '
          f'base ready in {rates["conversion or cache (s)"]:.1f} s; TFLite vs TF: largest '
          f'difference {rates["largest difference"]:.2g}, lowest cosine '
          f'{rates["lowest cosine"]:.7f}')
    print(f'invoke batch {args.invoke_batch} (tflite_base.INVOKE_BATCH: '
          f'{tflite_base.INVOKE_BATCH}) against the '
          f'whole batch of {trainer_settings.Training.batch_size}: largest difference '
          f'{rates["whole batch vs invoke batch, largest difference"]:.2g}; a second '
          f'FrozenBase (hash, cache, check) {rates["a second FrozenBase (s)"]:.2f} s')
    for name in ('TF', 'XNNPACK, whole batch', 'XNNPACK', 'decode', 'decode while invoking',
                 'DataQuality, whole batch', 'DataQuality', 'DataQuality (TF)',
                 'Trainer, whole batch', 'Trainer', 'Trainer (TF)'):
        print(f'{name:30s} {rates[name]:7.1f} images/s  {rates[name] / limit:5.2f}x the limit')
    for name in ('two copies', 'streamed'):
        print(f'Writer, {WRITER_ROWS} rows, {name:10s} {rates[f"Writer {name} (s)"]:6.2f} s, '
              f'at most {rates[f"Writer {name}, most bytes on disk"] / 2**20:6.1f} MiB on disk')
    return 0


if __name__ == '__main__':
    sys.exit(main())
