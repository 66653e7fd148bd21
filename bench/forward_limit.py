"""The forward-pass limit: frozen MobileNetV2 inference at the pipeline's input size, images/s.

    python bench/forward_limit.py [--data-root DIR] [--images N] [--xnnpack-only]

Decodes and resizes the images first, then times only the base model (plus
pooling) at several batch sizes; the best is the most training can reach with
a frozen base on this machine (every training image crosses it once an epoch).
Then the same with the tutorial's augmentation (random flip and rotation, in
training mode) before the base, at the Trainer's batch size: what a training
step must compute besides the small head, so the most an epoch can reach. Last, the
same base converted to float32 TFLite with XNNPACK on every core (models/tflite_base.py,
how the pipeline runs the frozen base): the fastest exact runtime, fed batches of 32 and
invoked on 1, 4, 8, 16 or 32 images at a time, side by side (what chose
tflite_base.INVOKE_BATCH).
"""

import argparse
import glob
import json
import os
import sys
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

BATCH_SIZES = (16, 32, 64, 128)
# XNNPACK: images per interpreter invoke, within the pipeline's batches of FEED_BATCH.
INVOKE_BATCHES = (1, 4, 8, 16, 32)
FEED_BATCH = 32


def _best_rate(step, pixels, batch_size: int, repeats: int) -> float:
    """images/s of step over all pixels in batches, the best of `repeats` passes."""
    step(pixels[:batch_size])  # trace + warm up
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(0, len(pixels), batch_size):
            step(pixels[i:i + batch_size])
        best = max(best, len(pixels) / (time.perf_counter() - start))
    return best


def _pixels(data_root: str, images: int, size: int):
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from models import preprocessing  # pylint: disable=import-outside-toplevel
    paths = sorted(glob.glob(os.path.join(data_root, 'train', '*', '*.jpg')))[:images]
    return preprocessing.preprocess_images(
        tf.constant([open(p, 'rb').read() for p in paths]), (size, size))


def measure(data_root: str, images: int, weights: str, size: int, train_batch_size: int,
            repeats: int = 2):
    """(images/s per batch size, images/s with the augmentation at the Trainer's batch size)."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    import tf_keras as keras  # pylint: disable=import-outside-toplevel
    from models import builders  # pylint: disable=import-outside-toplevel

    pixels = _pixels(data_root, images, size)
    base = keras.applications.MobileNetV2(input_shape=(size, size, 3), include_top=False,
                                          weights=weights)
    model = keras.Sequential([base, keras.layers.GlobalMaxPooling2D()])
    results = {batch_size: _best_rate(tf.function(lambda x: model(x, training=False)),
                                      pixels, batch_size, repeats)
               for batch_size in BATCH_SIZES}
    augmentation = builders.augmentation(seed=0)
    augmented = _best_rate(
        tf.function(lambda x: model(augmentation(x, training=True), training=False)),
        pixels, train_batch_size, repeats)
    return results, augmented, xnnpack_rates(pixels.numpy(), weights, size, repeats)


def xnnpack_rates(pixels, weights: str, size: int, repeats: int,
                  feed: int = FEED_BATCH) -> dict:
    """images/s of the same base + pooling converted to float32 TFLite, XNNPACK on every
    core (models/tflite_base.py, as the pipeline runs it), fed batches of `feed` photos
    (the pipeline's), per images per invoke (INVOKE_BATCHES; tflite_base.INVOKE_BATCH is
    the one chosen here): the fastest exact runtime, the limit issue 40 measures the
    pipeline against. The sizes take turns, one pass each per round, the best of
    `repeats` rounds: a change of the machine's load hits them all alike."""
    from models import frozen_features  # pylint: disable=import-outside-toplevel
    # A featurizer per invoke size: resizing the interpreter's input re-plans XNNPACK.
    featurizers = {invoke: frozen_features.featurizer(weights, (size, size), invoke_batch=invoke)
                   for invoke in INVOKE_BATCHES}
    for featurizer in featurizers.values():
        featurizer(pixels[:feed])                        # the check against TF, warm-up
    rates = {invoke: 0.0 for invoke in INVOKE_BATCHES}
    for _ in range(repeats):
        for invoke, featurizer in featurizers.items():
            rates[invoke] = max(rates[invoke], _best_rate(featurizer, pixels, feed, 1))
    return rates


def _print_xnnpack(xnnpack: dict) -> None:
    for invoke, rate in xnnpack.items():
        print(f'XNNPACK invoke batch {invoke:4d} (fed {FEED_BATCH}): {rate:6.1f} images/s  '
              f'{rate / xnnpack[FEED_BATCH]:5.2f}x invoke batch {FEED_BATCH}')


def main() -> int:
    from pipeline import configs  # pylint: disable=import-outside-toplevel
    from models import trainer_settings  # pylint: disable=import-outside-toplevel
    from bench import photos  # pylint: disable=import-outside-toplevel
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data-root',
                        default=str(configs.SHARED / 'datasets' / 'cats_and_dogs_filtered'))
    parser.add_argument('--images', type=int, default=512)
    parser.add_argument('--image-size', type=int, default=photos.pipeline_image_size(),
                        help='square input size')
    parser.add_argument('--weights', default=configs.SHARED_WEIGHTS)
    parser.add_argument('--json')
    parser.add_argument('--xnnpack-only', action='store_true',
                        help='only the XNNPACK rates per invoke batch (no TF, no --json)')
    parser.add_argument('--repeats', type=int, default=2, help='rounds; the best counts')
    args = parser.parse_args()
    from runlog import noise  # pylint: disable=import-outside-toplevel
    noise.quiet_tensorflow()
    if args.xnnpack_only:
        xnnpack = xnnpack_rates(_pixels(args.data_root, args.images, args.image_size).numpy(),
                                args.weights, args.image_size, args.repeats)
        _print_xnnpack(xnnpack)
        return 0
    results, augmented, xnnpack = measure(args.data_root, args.images, args.weights,
                                          args.image_size, trainer_settings.Training.batch_size,
                                          args.repeats)
    for batch_size, rate in results.items():
        print(f'batch {batch_size:4d}: {rate:6.1f} images/s')
    _print_xnnpack(xnnpack)
    best = max(results, key=results.get)
    fastest = max(xnnpack, key=xnnpack.get)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump({'images_per_second': results[best], 'batch_size': best,
                       'by_batch_size': results, 'augmented_images_per_second': augmented,
                       'xnnpack_images_per_second': xnnpack[fastest],
                       'xnnpack_batch_size': fastest}, f)
    print(f'forward-pass limit in TF: {results[best]:.1f} images/s at batch {best}; with the '
          f'augmentation: {augmented:.1f} images/s; XNNPACK float32: {xnnpack[fastest]:.1f} '
          f'images/s at invoke batch {fastest} ({xnnpack[fastest] / results[best]:.2f}x TF)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
