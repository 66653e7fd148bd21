"""Accuracy of the pipeline's model, on its eval split and on photos it never saw.

    python bench/accuracy.py [--settings before default ...] [--data-root DIR]
                             [--unseen DIR] [--epochs N]

Runs the whole pipeline (LocalDagRunner, no cache) once per named setting on
--data-root (default ../shared/datasets/cats_vs_dogs: 800 train / 200 validation
photos, what `make run` trains on) and prints, per setting: TFMA's accuracy on
the eval split (what the gate and the setting choice see), the accuracy of the
trained model on the --unseen photos (default the 1,000 photos of
../shared/datasets/cats_and_dogs_filtered/validation) minus any whose bytes are
in the data root (checked by sha256), with its Wilson 95% interval and per class,
the epochs run and the wall time. The settings are PipelineConfig overrides
(SETTINGS below); 'default' is the pipeline's own default. The tutorial's
transfer model reached 97.9% on its test photos. Prints numbers; asserts nothing.
"""

import argparse
import hashlib
import os
import pathlib
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

TUTORIAL_TEST_ACCURACY = 0.979

# Name -> PipelineConfig overrides. 'before' is the default before the input size
# followed the weights (the tutorial's 160, 10 epochs).
SETTINGS = {
    'before': dict(image_size=(160, 160)),
    'default': {},
    '224': dict(image_size=(224, 224)),
    '224-early-stop': dict(image_size=(224, 224), epochs=20, early_stopping_patience=3),
    '224-fine-tune': dict(image_size=(224, 224), fine_tune_from_layer=124, fine_tune_epochs=3),
    '224-light-aug': dict(image_size=(224, 224), augmentation='light'),
    '224-strong-aug': dict(image_size=(224, 224), augmentation='strong'),
    '224-smoothing': dict(image_size=(224, 224), label_smoothing=0.1),
    # The head on the frozen features of K augmented copies per photo (default 3), or
    # the base on freshly augmented photos every epoch (0, the default until 2026-11-30).
    'fresh-aug': dict(augmented_views=0),
    'views-1': dict(augmented_views=1),
    'views-2': dict(augmented_views=2),
    'views-5': dict(augmented_views=5),
}


def sha256_of(path: pathlib.Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def unseen_photos(unseen_dir: pathlib.Path, data_root: str, class_names):
    """(path, class index) of photos under unseen_dir/<class>/ whose bytes are not in data_root."""
    seen = {sha256_of(p) for p in pathlib.Path(data_root).rglob('*') if p.is_file()}
    photos, skipped = [], 0
    for index, label in enumerate(class_names):
        for path in sorted((unseen_dir / label).rglob('*')):
            if not path.is_file():
                continue
            if sha256_of(path) in seen:
                skipped += 1
                continue
            photos.append((path, index))
    return photos, skipped


def predict(model_dir: str, photos, batch_size: int = 64):
    """Predicted class index per photo, with the exported serving signature."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from models import features  # pylint: disable=import-outside-toplevel
    serve = tf.saved_model.load(model_dir).signatures[features.SERVING_SIGNATURE]
    predicted = []
    for start in range(0, len(photos), batch_size):
        batch = tf.constant([p.read_bytes() for p, _ in photos[start:start + batch_size]])
        out = serve(**{features.SERVING_INPUT: batch})
        predicted += [int(i) for i in out[features.CLASS_INDEX_OUTPUT].numpy()]
    return predicted


def run_once(name: str, args, work_dir: str, con) -> dict:
    """Runs the pipeline with one setting; returns its numbers."""
    import numpy as np  # pylint: disable=import-outside-toplevel
    import local_runner  # pylint: disable=import-outside-toplevel
    from components.image_example_gen import layout  # pylint: disable=import-outside-toplevel
    from pipeline import configs  # pylint: disable=import-outside-toplevel
    from pipeline import nodes  # pylint: disable=import-outside-toplevel
    from reports import class_accuracy  # pylint: disable=import-outside-toplevel
    from reports import mlmd_runs  # pylint: disable=import-outside-toplevel
    from reports import run_report  # pylint: disable=import-outside-toplevel
    from tfx.types import standard_component_specs as keys  # pylint: disable=import-outside-toplevel
    from tfx.utils import path_utils  # pylint: disable=import-outside-toplevel

    root = layout.inspect_data_root(args.data_root)
    overrides = dict(SETTINGS[name])
    if args.epochs:
        overrides.setdefault('epochs', args.epochs)
    config = configs.local(work_dir, root.root, presplit=root.presplit,
                           class_names=root.class_names,
                           test_folder=root.test_folder, images=root.images, accuracy_threshold=0.0,
                           enable_cache=False, **overrides)
    size, _ = config.input_size()
    con.say(f'--- {name}: input {size[0]}x{size[1]}, {overrides or "the defaults"}')
    metadata_path = configs.metadata_path(work_dir)
    start = time.perf_counter()
    local_runner.run(config, metadata_path, con)
    wall = time.perf_counter() - start

    run = mlmd_runs.latest_run(metadata_path, config.pipeline_name)
    evaluation = run_report.load_evaluation(run.output(nodes.EVALUATOR, keys.EVALUATION_KEY).uri)
    history = run_report.read_history(run.nodes[nodes.TRAINER])
    model_dir = path_utils.serving_model_path(run.output(nodes.TRAINER, keys.MODEL_KEY).uri)
    photos, skipped = unseen_photos(pathlib.Path(args.unseen), args.data_root, root.class_names)
    predicted = predict(model_dir, photos)
    confusion = np.zeros((len(root.class_names),) * 2)
    for (_, truth), guess in zip(photos, predicted):
        confusion[truth, guess] += 1
    per_class = class_accuracy.per_class(confusion, root.class_names)
    correct = int(np.trace(confusion))
    from scipy import stats  # pylint: disable=import-outside-toplevel
    interval = stats.binomtest(correct, len(photos)).proportion_ci(method='wilson')
    return dict(name=name, size=size, wall=wall, accuracy=evaluation.accuracy,
                examples=int(evaluation.example_count), epochs=len(history['epoch_seconds']),
                best_epoch=history.get('best_epoch'), unseen=correct / len(photos),
                unseen_n=len(photos), unseen_low=interval.low, unseen_high=interval.high,
                skipped=skipped, per_class=per_class, work_dir=work_dir)


def main() -> int:
    from pipeline import configs  # pylint: disable=import-outside-toplevel
    parser = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
    parser.add_argument('--settings', nargs='+', default=['before', 'default'],
                        choices=sorted(SETTINGS), help='one pipeline run each, in this order')
    parser.add_argument('--data-root', default=configs.SHARED_DATA_ROOT)
    parser.add_argument('--unseen', default=str(configs.SHARED / 'datasets' /
                                                'cats_and_dogs_filtered' / 'validation'),
                        help='<class>/ folders of photos to test on (those in the data root '
                             'are left out)')
    parser.add_argument('--epochs', type=int, help='override every setting\'s epochs')
    parser.add_argument('--work-dir', help='default: a new temporary folder')
    parser.add_argument('--verbose', action='store_true', help='TF, Beam and TFX logs too')
    args = parser.parse_args()

    from pipeline import console  # pylint: disable=import-outside-toplevel
    work_dir = args.work_dir or tempfile.mkdtemp(prefix='bench_accuracy_')
    with console.Console(os.path.join(work_dir, 'bench.log'), verbose=args.verbose) as con:
        results = [run_once(name, args, os.path.join(work_dir, name), con)
                   for name in args.settings]
    print(f'data: {args.data_root}; unseen photos: {args.unseen} ({results[0]["unseen_n"]} '
          f'used, {results[0]["skipped"]} left out as already in the data); log {con.log_path}')
    print(f'{"setting":16s} {"input":>7s} {"epochs":>6s} {"eval acc":>8s} '
          f'{"unseen acc (95% interval)":>27s} {"wall s":>7s}')
    for r in results:
        epochs = f"{r['epochs']}" + (f" (best {r['best_epoch']})" if r['best_epoch'] else '')
        print(f"{r['name']:16s} {r['size'][0]:>3d}x{r['size'][1]:<3d} {epochs:>6s} "
              f"{r['accuracy']:8.4f} {r['unseen']:8.4f} ({r['unseen_low']:.3f}-"
              f"{r['unseen_high']:.3f}) {r['wall']:7.0f}")
        print('    unseen by class: ' + ', '.join(
            f'{c.class_name} {c.accuracy:.3f} ({c.low:.3f}-{c.high:.3f})'
            + (' CLEARLY WORSE' if c.clearly_worse else '') for c in r['per_class']))
    base = results[0]
    print(' | '.join(f"{r['name']}: unseen {r['unseen']:.4f} (tutorial {TUTORIAL_TEST_ACCURACY}),"
                     f" wall {r['wall'] / base['wall']:.2f}x {base['name']}" for r in results))
    return 0


if __name__ == '__main__':
    sys.exit(main())
