"""TFLite variants of a trained model: size, single-image latency, accuracy against the SavedModel.

    python bench/tflite_export.py --model work/serving/image_classifier [--threads 1 2]

Converts the model's pixels function (models/tflite_export.py) to float32, float16 and
int8 (calibrated on the first --calibration photos of ../shared's
cats_and_dogs_filtered/train, half per class), then, side by side in this process:
  - size: the SavedModel folder and each .tflite file;
  - single-image latency: one image at a time (decoded pixels in, probabilities out),
    median and 90th percentile of --repeats calls after a warm-up: the SavedModel's
    pixels function (TensorFlow, its own thread pools) and each variant in
    tf.lite.Interpreter with each of --threads (XNNPACK, TFLite's default);
  - accuracy on the --eval photos of cats_and_dogs_filtered/validation (label = folder),
    the SavedModel's and each variant's, the drop, the agreement rate, and whether the
    pipeline's rule (at most tflite_check.MAX_ACCURACY_DROP lost) would mark it ready.
The photos are decoded as the SavedModel decodes them (models/preprocessing.py).
"""

import argparse
import os
import pathlib
import statistics
import sys
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[1]
DATA_ROOT = PROJECT_ROOT.parent / 'shared' / 'datasets' / 'cats_and_dogs_filtered'
BATCH = 32


def _photos(folder: pathlib.Path, per_class: int):
    """(path, label) of the first per_class photos of each class folder, sorted by name."""
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    return [(path, label) for label, name in enumerate(classes)
            for path in sorted((folder / name).glob('*.jpg'))[:per_class]]


def _latency(call, pixels, repeats: int):
    """(median, 90th percentile) ms of call on one image, after 5 warm-up calls."""
    for _ in range(5):
        call(pixels)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call(pixels)
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return statistics.median(times), times[int(0.9 * (len(times) - 1))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--model', required=True, help='pushed version, serving base folder '
                                                       'or SavedModel')
    parser.add_argument('--threads', type=int, nargs='+', default=[2, 1])
    parser.add_argument('--calibration', type=int, default=100)
    parser.add_argument('--eval', type=int, default=1000, help='validation photos (all: 1000)')
    parser.add_argument('--repeats', type=int, default=100)
    args = parser.parse_args()
    from runlog import noise  # pylint: disable=import-outside-toplevel
    noise.quiet_tensorflow()
    import numpy as np  # pylint: disable=import-outside-toplevel
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from components.bulk_inferrer import scoring  # pylint: disable=import-outside-toplevel
    from models import features  # pylint: disable=import-outside-toplevel
    from models import preprocessing  # pylint: disable=import-outside-toplevel
    from models import tflite_check  # pylint: disable=import-outside-toplevel
    from models import tflite_export  # pylint: disable=import-outside-toplevel

    model_dir = scoring.resolve_model_dir(os.path.abspath(args.model))
    function, loaded = tflite_export.saved_model_pixels_function(model_dir)
    size = tuple(function.structured_input_signature[0][0].shape[1:3])

    def decode(paths):
        return preprocessing.preprocess_images(
            tf.constant([p.read_bytes() for p in paths]), size).numpy()

    calibration = decode([p for p, _ in _photos(DATA_ROOT / 'train', args.calibration // 2)])
    models = {}
    for variant in tflite_export.VARIANTS:
        start = time.perf_counter()
        models[variant] = tflite_export.convert(
            function, variant, trackable=loaded,
            representative=lambda: (calibration[i:i + 1] for i in range(len(calibration))))
        print(f'converted {variant} in {time.perf_counter() - start:.1f} s', flush=True)
    runners = {v: tflite_export.Runner(content, args.threads[0])
               for v, content in models.items()}

    eval_photos = _photos(DATA_ROOT / 'validation', args.eval // 2)
    labels = np.array([label for _, label in eval_photos])
    reference, answers = [], {v: [] for v in runners}
    for start in range(0, len(eval_photos), BATCH):
        pixels = decode([p for p, _ in eval_photos[start:start + BATCH]])
        reference.append(function(tf.constant(pixels))[features.PROBABILITIES_OUTPUT].numpy())
        for variant, runner in runners.items():
            answers[variant].append(runner.run(pixels))
    reference = np.concatenate(reference)

    one = calibration[:1]
    saved_size = sum(f.stat().st_size for f in pathlib.Path(model_dir).rglob('*') if f.is_file())
    tf_median, tf_p90 = _latency(lambda x: function(tf.constant(x)), one, args.repeats)
    print(f'\nmodel {model_dir}, input {size[0]}x{size[1]}, {len(labels)} validation photos, '
          f'calibration on {len(calibration)} train photos; load average '
          f'{os.getloadavg()[0]:.1f} (other processes on this machine)')
    threads = ' | '.join(f'{n} thread{"s" if n > 1 else ""}: ms, median (p90)'
                         for n in args.threads)
    print(f'| model | size | {threads} | accuracy | drop | agreement | largest prob. difference '
          '| 1-point rule |')
    print('| --- ' * (7 + len(args.threads)) + '|')
    reference_accuracy = float(np.mean(reference.argmax(axis=1) == labels))
    # TensorFlow runs on its own thread pools whatever the interpreter's thread count.
    tf_cells = ' | '.join([f'{tf_median:.1f} ({tf_p90:.1f})'] * len(args.threads))
    print(f'| SavedModel (TF, pixels function) | {saved_size / 1e6:.1f} MB | {tf_cells} | '
          f'{reference_accuracy:.4f} | - | - | - | - |')
    for variant, content in models.items():
        cells = []
        for count in args.threads:
            median, p90 = _latency(tflite_export.Runner(content, count).run, one, args.repeats)
            cells.append(f'{median:.1f} ({p90:.1f}), {tf_median / median:.2f}x TF')
        found = tflite_check.compare(reference, np.concatenate(answers[variant]), labels)
        reason = tflite_check.refusal(found)
        print(f'| TFLite {variant} | {len(content) / 1e6:.1f} MB | {" | ".join(cells)} | '
              f'{found.accuracy:.4f} | {found.accuracy_drop * 100:+.1f} pt | '
              f'{found.agreement * 100:.1f}% | {found.max_abs_difference:.4f} | '
              f'{"refused" if reason else "ready"} |')
    return 0


if __name__ == '__main__':
    sys.exit(main())
