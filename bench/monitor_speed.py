"""The monitor's speed on a window of logged traffic, against the forward-pass limit.

    python bench/monitor_speed.py [--model-dir work/serving/image_classifier/<version>]
                                  [--images 400] [--repeats 3]

Writes a request log of --images held-out photos with their bytes (the
validation/ photos of --data-root, default ../shared/datasets/cats_and_dogs_filtered:
photos `make run` never saw) with the server's own writer (serving/request_log.py),
then times, one after the other:

1. the command line, `python -m monitoring.monitor` in a fresh process (Python,
   TensorFlow and the model loaded from scratch): what a cron job pays;
2. the same window with the reference and the model already loaded (a
   Monitor reused), --repeats times: the monitor's own work, with its steps;
3. the forward-pass limit (bench/forward_limit.py): the frozen MobileNetV2 alone
   on decoded, resized images at the model's input size, at its best batch size.

and prints images/s of each with the ratio to the limit. --model-dir defaults to
the newest version `make run` pushed. Prints numbers; asserts nothing.
"""

import argparse
import os
import pathlib
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[1]
TARGET_SECONDS = 8.0     # issue 31: a 400-image window on this machine


def newest_version(serving_dir: pathlib.Path) -> str:
    versions = sorted((p for p in serving_dir.glob('*') if p.name.isdigit()),
                      key=lambda p: int(p.name))
    if not versions:
        raise SystemExit(f'no pushed version under {serving_dir}: run `make run` first or '
                         'pass --model-dir')
    return str(versions[-1])


def main() -> int:
    from pipeline import configs  # pylint: disable=import-outside-toplevel
    from models import trainer_settings  # pylint: disable=import-outside-toplevel
    parser = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
    parser.add_argument('--model-dir', help='a pushed version (default: the newest under '
                                            'work/serving/image_classifier)')
    parser.add_argument('--data-root', default=str(configs.SHARED / 'datasets' /
                                                   'cats_and_dogs_filtered'),
                        help='the window is photos of its validation/, the forward-pass limit '
                             'is measured on its train/')
    parser.add_argument('--images', type=int, default=400)
    parser.add_argument('--repeats', type=int, default=3)
    args = parser.parse_args()
    model_dir = args.model_dir or newest_version(
        PROJECT_ROOT / 'work' / 'serving' / configs.MODEL_NAME)

    from monitoring import monitor  # pylint: disable=import-outside-toplevel
    from runlog import noise  # pylint: disable=import-outside-toplevel
    from serving_formats import request_log_format as fmt  # pylint: disable=import-outside-toplevel
    noise.quiet_tensorflow()
    photos = sorted(pathlib.Path(args.data_root, 'validation').glob('*/*.jpg'))
    # The classes in turn.
    by_class = [sorted(p for p in photos if p.parent == d) for d in
                sorted({p.parent for p in photos})]
    photos = [p for group in zip(*by_class) for p in group][:args.images]
    checker = monitor.Monitor(model_dir)
    version = checker.version

    with tempfile.TemporaryDirectory() as tmp:
        log_path = os.path.join(tmp, 'requests.log')
        from serving import request_log  # pylint: disable=import-outside-toplevel
        log = request_log.RequestLog(log_path, include_image_bytes=True,
                                     max_bytes=2**40)
        for start in range(0, len(photos), 4):
            log.write({fmt.VERSION: int(version) if version else 0, fmt.API: 'predict',
                       fmt.ENTRYPOINT: 'REST', fmt.STATUS: fmt.OK,
                       fmt.IMAGES: [request_log.image_info(p.read_bytes(), include_bytes=True)
                                    for p in photos[start:start + 4]]})
        log.close()

        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, '-m', 'monitoring.monitor', '--request-log', log_path,
             '--model-dir', model_dir, '--out', os.path.join(tmp, 'cli')],
            cwd=str(PROJECT_ROOT), capture_output=True, text=True, check=False,
            env={**os.environ, 'PYTHONPATH': os.pathsep.join(
                [str(PROJECT_ROOT)] + [os.environ['PYTHONPATH']] * bool(
                    os.environ.get('PYTHONPATH')))})
        cold = time.perf_counter() - start
        if done.returncode not in (monitor.EXIT_OK, monitor.EXIT_DRIFT):
            raise SystemExit(f'the monitor failed ({done.returncode}): {done.stderr[-2000:]}')
        print(done.stdout.strip().splitlines()[-2])

        warm, steps = [], None
        for repeat in range(args.repeats + 1):      # the first loads the model
            start = time.perf_counter()
            verdict = monitor.monitor(log_path, model_dir, os.path.join(tmp, 'warm'),
                                      checker=checker, seed=repeat)
            if repeat:
                warm.append(time.perf_counter() - start)
                steps = verdict['seconds']
        images = verdict['images']

    from bench import forward_limit  # pylint: disable=import-outside-toplevel
    from models import features  # pylint: disable=import-outside-toplevel
    size = _input_size(model_dir, features)
    rates, _ = forward_limit.measure(args.data_root, len(photos),
                                     configs.SHARED_WEIGHTS, size,
                                     trainer_settings.Training.batch_size, repeats=2)
    limit = max(rates.values())
    best_warm = min(warm)
    print(f'model {model_dir} (input {size}x{size}), window of {images} logged images')
    print(f'steps of the reused monitor (s): ' + ', '.join(
        f'{k} {v:.2f}' for k, v in steps.items()))
    print(f'command line, fresh process: {cold:5.1f} s = {images / cold:6.1f} images/s '
          f'({images / cold / limit:.0%} of the forward-pass limit)')
    print(f'monitor reused (best of {len(warm)}): {best_warm:5.1f} s = '
          f'{images / best_warm:6.1f} images/s ({images / best_warm / limit:.0%} of the limit)')
    print(f'forward-pass limit: {limit:6.1f} images/s = {images / limit:.1f} s for the window')
    print(f'target: {images} images in {TARGET_SECONDS:g} s; command line '
          f'{cold / TARGET_SECONDS:.2f}x, reused {best_warm / TARGET_SECONDS:.2f}x of it')
    return 0


def _input_size(model_dir: str, features) -> int:
    """The square input size of a pushed model (its transform output's image shape)."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    signature = tf.saved_model.load(model_dir).signatures[features.TRANSFORM_SIGNATURE]
    shape = signature.structured_outputs[features.transformed_name(features.IMAGE_KEY)].shape
    return int(shape[1])


if __name__ == '__main__':
    sys.exit(main())
