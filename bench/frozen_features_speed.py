"""The frozen base's features: TensorFlow against TFLite (XNNPACK), and the pipeline's two
featurizing paths as a share of the XNNPACK limit, measured side by side in one run.

    python bench/frozen_features_speed.py [--data-root DIR] [--images N] [--image-size S]

Prints, in images/s (one image = one forward pass of the base):
  TF           the base + pooling as a tf.function on decoded pixels (the path before
               models/tflite_base.py), at the Trainer's batch size
  XNNPACK      the same converted to float32 TFLite on every core, on decoded pixels:
               the limit
  decode       the DataQuality reader alone (gzipped TFRecords -> decoded pixels), no model
  DataQuality  frozen_features.batches: TFRecords decoded by tf.data in the background,
               the base in TFLite (FROZEN_BASE_RUNTIME=tf: in TF)
  Trainer      frozen_training.view_features: 3 augmented views per photo, the
               augmentation in TF, the base in TFLite (or TF)
and each path's rate as a ratio of the XNNPACK limit. Invoke releases the GIL (the
decode rate while the interpreter runs in another thread is printed too), so decoding
overlaps the forward pass; when the decode rate is near the path's rate, decoding is the
limit.
"""

import argparse
import glob
import os
import sys
import tempfile
import threading
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

VIEWS = 3


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


def measure(data_root: str, images: int, weights: str, size: int, batch_size: int):
    """{name: images/s}."""
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
    tflite = frozen_features.featurizer(weights, (size, size))
    rates['conversion or cache (s)'] = time.perf_counter() - start
    tflite(pixels[:batch_size])                      # the check
    os.environ[tflite_base.RUNTIME_ENV] = tflite_base.TF
    reference = frozen_features.featurizer(weights, (size, size))
    reference(pixels[:batch_size])                   # trace

    def over(featurizer, batch):
        return lambda: [featurizer(pixels[i:i + batch]) for i in range(0, len(pixels), batch)]

    rates['TF'] = _rate(over(reference, batch_size), len(pixels))
    del os.environ[tflite_base.RUNTIME_ENV]
    # A runner per batch size: resizing the interpreter's input re-plans XNNPACK.
    rates['XNNPACK'] = max(_rate(over(frozen_features.featurizer(weights, (size, size)), batch),
                                 len(pixels)) for batch in (1, batch_size))
    largest, cosine = tflite_base.difference(reference(pixels[:batch_size]),
                                             tflite(pixels[:batch_size]))
    rates['largest difference'], rates['lowest cosine'] = largest, cosine

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
        for name, runtime in (('DataQuality', None), ('DataQuality (TF)', tflite_base.TF)):
            os.environ.pop(tflite_base.RUNTIME_ENV, None)
            if runtime:
                os.environ[tflite_base.RUNTIME_ENV] = runtime
            model = frozen_features.featurizer(weights, (size, size))
            rates[name] = _rate(lambda: list(frozen_features.batches(  # pylint: disable=cell-var-from-loop
                files, (size, size), model)), len(paths))
        os.environ.pop(tflite_base.RUNTIME_ENV, None)

    dataset = (tf.data.Dataset.from_tensor_slices(
        (tf.constant([open(p, 'rb').read() for p in paths]), np.zeros(len(paths), np.int64)))
               .map(lambda b, y: (preprocessing.preprocess_images(b[None], (size, size))[0], y),
                    num_parallel_calls=tf.data.AUTOTUNE)
               .batch(batch_size).prefetch(2))
    for name, given in (('Trainer', weights), ('Trainer (TF)', None)):
        keras.utils.set_random_seed(0)
        model = builders.build_transfer_model((size, size), 2, weights=weights, seed=0)
        rates[name] = _rate(lambda: frozen_training.view_features(  # pylint: disable=cell-var-from-loop
            model, dataset, VIEWS, None, len(paths), weights=given), len(paths) * VIEWS)  # pylint: disable=cell-var-from-loop
    return rates


class _NoModel:
    """A featurizer that computes nothing: the reader's own rate."""

    def __call__(self, pixels):
        import numpy as np  # pylint: disable=import-outside-toplevel
        return np.zeros((len(pixels), 1), np.float32)


def main() -> int:
    from pipeline import configs  # pylint: disable=import-outside-toplevel
    from bench import photos  # pylint: disable=import-outside-toplevel
    parser = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
    parser.add_argument('--data-root',
                        default=str(configs.SHARED / 'datasets' / 'cats_and_dogs_filtered'))
    parser.add_argument('--images', type=int, default=256)
    parser.add_argument('--image-size', type=int, default=photos.pipeline_image_size())
    parser.add_argument('--weights', default=configs.SHARED_WEIGHTS)
    args = parser.parse_args()
    from runlog import noise  # pylint: disable=import-outside-toplevel
    noise.quiet_tensorflow()
    rates = measure(args.data_root, args.images, args.weights, args.image_size,
                    trainer_settings.Training.batch_size)
    limit = rates['XNNPACK']
    print(f'{args.images} photos at {args.image_size}, {os.cpu_count()} cores; converted '
          f'base ready in {rates["conversion or cache (s)"]:.1f} s; TFLite vs TF: largest '
          f'difference {rates["largest difference"]:.2g}, lowest cosine '
          f'{rates["lowest cosine"]:.7f}')
    for name in ('TF', 'XNNPACK', 'decode', 'decode while invoking', 'DataQuality',
                 'DataQuality (TF)', 'Trainer', 'Trainer (TF)'):
        print(f'{name:22s} {rates[name]:7.1f} images/s  {rates[name] / limit:5.2f}x the limit')
    return 0


if __name__ == '__main__':
    sys.exit(main())
