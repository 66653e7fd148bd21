"""TFLite variants of a trained model: size, single-image latency, accuracy against the SavedModel.

    python bench/tflite_export.py --model work/serving/image_classifier [--threads 1 2]
    python bench/tflite_export.py --phases --model <Trainer's model> --examples <ExampleGen's>

--phases: the TFLiteExport stage's time by phase, before (main at c7f116f: each variant
lowered to its own SavedModel, the whole loaded SavedModel saved with it; the check at
batch 32) and now (components/tflite_export/executor.py: export_tflite, its report's
`seconds`), side by side in this process, alternating (before, now, now, before, ...
for --rounds), on the same model and examples; then whether both found the same numbers
(every field of every variant's check) and the same signatures. With --model-run (the
Trainer's ModelRun of that model) also "recorded": now with the Trainer's eval answers
standing for the SavedModel's (no SavedModel pass; the same figures, the largest
difference within 1e-3).

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


def _before(model_dir: str, examples_uri: str, out_uri: str, variants, eval_images: int):
    """main's export_tflite at c7f116f, its phases timed: (seconds by phase, report).
    Every call it makes still exists; only what it passes differs (the conversion's
    trackable, one lowering per variant)."""
    import json  # pylint: disable=import-outside-toplevel
    import numpy as np  # pylint: disable=import-outside-toplevel
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from components.tflite_export import executor  # pylint: disable=import-outside-toplevel
    from components.tflite_export import report  # pylint: disable=import-outside-toplevel
    from components import examples_io  # pylint: disable=import-outside-toplevel
    from models import features  # pylint: disable=import-outside-toplevel
    from models import tflite_check  # pylint: disable=import-outside-toplevel
    from models import tflite_export  # pylint: disable=import-outside-toplevel
    phases = {}
    start = time.perf_counter()
    function, loaded = tflite_export.saved_model_pixels_function(model_dir)
    transform = loaded.signatures[features.TRANSFORM_SIGNATURE]
    class_names = examples_io.read_class_names(examples_uri)
    phases['load'] = time.perf_counter() - start
    start = time.perf_counter()
    calibration = executor.to_pixels(transform, executor.balanced_records(
        executor.labelled_records(examples_uri, features.TRAIN_SPLIT),
        tflite_export.REPRESENTATIVE_IMAGES, len(class_names)))
    phases['calibration_pixels'] = time.perf_counter() - start
    contents = {}
    for variant in variants:
        start = time.perf_counter()
        contents[variant] = tflite_export.convert(
            function, variant, trackable=loaded,
            representative=lambda: (calibration[i:i + 1] for i in range(len(calibration))))
        phases[f'convert {variant}'] = time.perf_counter() - start
    runners = {variant: tflite_export.Runner(content) for variant, content in contents.items()}
    reference, answers, labels = [], {variant: [] for variant in runners}, []
    records = executor.batches(executor.labelled_records(examples_uri, features.EVAL_SPLIT),
                               eval_images, 32)
    names = ['eval_pixels', 'reference', *(f'check {variant}' for variant in variants)]
    phases.update({name: 0.0 for name in names})
    check_start = time.perf_counter()
    for serialized, batch_labels, _ in records:
        start = time.perf_counter()
        pixels = executor.to_pixels(transform, serialized)
        phases['eval_pixels'] += time.perf_counter() - start
        start = time.perf_counter()
        reference.append(function(tf.constant(pixels))[features.PROBABILITIES_OUTPUT].numpy())
        phases['reference'] += time.perf_counter() - start
        for variant, runner in runners.items():
            start = time.perf_counter()
            answers[variant].append(runner.run(pixels))
            phases[f'check {variant}'] += time.perf_counter() - start
        labels.append(batch_labels)
    phases['check_pass'] = time.perf_counter() - check_start
    start = time.perf_counter()
    reference, labels = np.concatenate(reference), np.concatenate(labels)
    found = {}
    for variant, content in contents.items():
        comparison = tflite_check.compare(reference, np.concatenate(answers[variant]), labels)
        reason = tflite_check.refusal(comparison)
        path = report.model_file(out_uri, variant, ready=reason is None)
        tf.io.gfile.makedirs(os.path.dirname(path))
        with tf.io.gfile.GFile(path, 'wb') as f:
            f.write(content)
        found[variant] = {'ready': reason is None, 'reason': reason, 'file':
                          os.path.relpath(path, out_uri), 'size_bytes': len(content),
                          'images': comparison.images,
                          'reference_accuracy': comparison.reference_accuracy,
                          'accuracy': comparison.accuracy,
                          'accuracy_drop': comparison.accuracy_drop,
                          'agreement': comparison.agreement,
                          'max_abs_difference': comparison.max_abs_difference}
    with tf.io.gfile.GFile(os.path.join(out_uri, report.REPORT_FILE), 'w') as f:
        json.dump({'variants': found}, f)
    phases['write'] = time.perf_counter() - start
    return phases, {'variants': found, 'representative_images': len(calibration)}


def _now_phases(result) -> dict:
    """The `seconds` of export_tflite's report, named as _before names them."""
    seconds = dict(result['seconds'])
    convert, check = seconds.pop('convert'), seconds.pop('check')
    return {**seconds, **{f'convert {v}': t for v, t in convert.items()},
            **{f'check {v}': t for v, t in check.items()}}


def phases_main(args) -> int:
    """--phases: before and now, side by side (module docstring)."""
    import tempfile  # pylint: disable=import-outside-toplevel
    from components.bulk_inferrer import scoring  # pylint: disable=import-outside-toplevel
    from components.tflite_export import executor  # pylint: disable=import-outside-toplevel
    from components.tflite_export import report  # pylint: disable=import-outside-toplevel
    from models import tflite_export  # pylint: disable=import-outside-toplevel
    model_dir = scoring.resolve_model_dir(os.path.abspath(args.model))
    print(f'model {model_dir}\nexamples {args.examples}\nvariants {args.variants}, '
          f'{args.eval} eval images, {tflite_export.REPRESENTATIVE_IMAGES} calibration images, '
          f'{tflite_export.DEFAULT_THREADS} interpreter threads', flush=True)
    # recorded: now, with the Trainer's answers as the SavedModel's (--model-run).
    names_of_sides = ('before', 'now', 'recorded') if args.model_run else ('before', 'now')
    sides, reports, outs = {side: [] for side in names_of_sides}, {}, {}
    order = [side for round_ in range(args.rounds)
             for side in (names_of_sides if round_ % 2 == 0 else names_of_sides[::-1])]
    for side in order:
        out = tempfile.mkdtemp(prefix=f'tflite-{side}-')
        load = os.getloadavg()[0]
        start = time.perf_counter()
        if side == 'before':
            phases, found = _before(model_dir, args.examples, out, args.variants, args.eval)
        else:
            found = executor.export_tflite(
                model_dir, args.examples, out, variants=args.variants, eval_images=args.eval,
                model_run_uri=args.model_run if side == 'recorded' else None)
            phases = _now_phases(found)
        phases['total'] = time.perf_counter() - start
        print(f'{side}: {phases["total"]:.1f} s (load average {load:.1f} at its start)',
              flush=True)
        sides[side].append(phases)
        reports[side], outs[side] = found, out
    names = list(dict.fromkeys(name for runs in sides.values() for phases in runs
                               for name in phases if name != 'total')) + ['total']
    print(f'\n| phase | {" | ".join(f"{side} (s)" for side in sides)} |\n'
          f'| --- |{" --- |" * len(sides)}')
    for name in names:
        cells = [' / '.join(f'{phases[name]:.1f}' if name in phases else '-'
                            for phases in sides[side]) for side in sides]
        print(f'| {name} | {" | ".join(cells)} |')
    same = True
    for variant in args.variants:
        keys = ('ready', 'images', 'reference_accuracy', 'accuracy', 'agreement',
                'max_abs_difference', 'size_bytes')
        before = {k: reports['before']['variants'][variant][k] for k in keys}
        now = {k: reports['now']['variants'][variant][k] for k in keys}
        with open(os.path.join(outs['before'], before_file := reports['before']['variants'][
                variant]['file']), 'rb') as f:
            signatures_before = tflite_export.Runner(f.read()).signatures()
        with open(report.model_file(outs['now'], variant, ready=now['ready']), 'rb') as f:
            signatures_now = tflite_export.Runner(f.read()).signatures()
        same &= before == now and signatures_before == signatures_now
        print(f'{variant}: before {before} {signatures_before} ({before_file})\n'
              f'{" " * len(variant)}  now    {now} {signatures_now}')
        if 'recorded' in reports:
            recorded = {k: reports['recorded']['variants'][variant][k] for k in keys}
            # The Trainer's answers are the exported model's within TFLite's rounding.
            same &= (abs(recorded.pop('max_abs_difference') - now['max_abs_difference']) < 1e-3
                     and recorded == {k: v for k, v in now.items() if k != 'max_abs_difference'})
            print(f'{" " * len(variant)}  recorded {reports["recorded"]["variants"][variant]} '
                  f'(reference: {reports["recorded"]["reference"]})')
    print(f'the same checks and signatures: {same}; load average {os.getloadavg()}')
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--model', required=True, help='pushed version, serving base folder '
                                                       'or SavedModel')
    parser.add_argument('--phases', action='store_true', help='the TFLiteExport stage by '
                        'phase, before and now (needs --examples)')
    parser.add_argument('--examples', help='--phases: an ExampleGen Examples artifact folder')
    parser.add_argument('--model-run', help='--phases: the Trainer\'s ModelRun folder: also '
                        'now with its eval answers as the SavedModel\'s ("recorded")')
    parser.add_argument('--variants', nargs='+', default=['float16', 'int8'])
    parser.add_argument('--rounds', type=int, default=1, help='--phases: before and now '
                        'this many times each, alternating which goes first')
    parser.add_argument('--threads', type=int, nargs='+', default=[2, 1])
    parser.add_argument('--calibration', type=int, default=100)
    parser.add_argument('--eval', type=int, default=1000, help='validation photos (all: 1000)')
    parser.add_argument('--repeats', type=int, default=100)
    args = parser.parse_args()
    from runlog import noise  # pylint: disable=import-outside-toplevel
    noise.quiet_tensorflow()
    if args.phases:
        if not args.examples:
            parser.error('--phases needs --examples')
        return phases_main(args)
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
