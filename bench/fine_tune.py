"""Fine-tuning the top of the base after the head, off vs on: test accuracy and wall time.

    python bench/fine_tune.py [--data default tutorial] [--seeds 3] [--fine-tune-epochs 5]
                              [--fine-tune-from-layer 100] [--image-size 224]

Runs the Trainer's own functions in this process (models/model.py: train, then
fine_tune), not whole pipeline runs. Per data set, the photos are decoded once and
cached as the Trainer caches them (input_pipeline: uint8, shuffled every epoch);
per seed, train() trains the head as a default run does (frozen features of
augmented copies, 10 epochs), its model is scored on the test photos ('off'), then
fine_tune() continues the same model and the eval answers are computed again
through the whole model, as train() does with fine-tuning on, and the model is
scored again ('on'). So each seed's off and on share the head: their difference is
the fine-tuning alone. Wall time: 'off' is train()'s, 'on' adds fine_tune() and
the eval pass (JPEG decoding excluded: the caches are filled before the clock).

Data sets ('held-out test' never trained or validated on; photos whose bytes are
in the training data are left out, checked by sha256):
  default   ../shared/datasets/cats_vs_dogs (what `make run` trains on): train/ 800
            to train, validation/ 200 to validate; test: the 1,000 photos of
            cats_and_dogs_filtered/validation.
  tutorial  ../shared/datasets/cats_and_dogs_filtered: train/ 2,000 split per class,
            every 5th photo (sorted by name) to eval (400), the rest to train
            (1,600); test: its validation/ folder (1,000).
Prints per seed and per data set: test accuracy off / on (mean, min-max, the
paired difference with its 95% interval) and seconds. Asserts nothing.
"""

import argparse
import os
import pathlib
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# How many photos of the tutorial's train/ go to eval: every EVAL_EVERY-th (20%).
EVAL_EVERY = 5


def photos_of(root: pathlib.Path, class_names):
    """(path, class index) of root/<class>/*, sorted by name per class."""
    return [(path, index) for index, name in enumerate(class_names)
            for path in sorted((root / name).iterdir()) if path.is_file()]


def splits(name: str, shared: pathlib.Path, class_names):
    """(train, eval, test, left out) lists of (path, class index) of a data set."""
    from bench import accuracy  # pylint: disable=import-outside-toplevel
    filtered = shared / 'datasets' / 'cats_and_dogs_filtered'
    if name == 'default':
        root = shared / 'datasets' / 'cats_vs_dogs'
        train, evaluation = photos_of(root / 'train', class_names), photos_of(
            root / 'validation', class_names)
    else:
        root = filtered / 'train'
        every = photos_of(root, class_names)
        evaluation = [p for i, p in enumerate(every) if i % EVAL_EVERY == EVAL_EVERY - 1]
        train = [p for i, p in enumerate(every) if i % EVAL_EVERY != EVAL_EVERY - 1]
    test, skipped = accuracy.unseen_photos(filtered / 'validation', str(root), class_names)
    return train, evaluation, test, skipped


def decoded(photos, size):
    """Unbatched (image in [-1, 1], label) pairs, decoded as the Transform graph does."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from models import preprocessing  # pylint: disable=import-outside-toplevel
    paths = tf.constant([str(p) for p, _ in photos])
    labels = tf.constant([label for _, label in photos], tf.int64)
    return tf.data.Dataset.from_tensor_slices((paths, labels)).map(
        lambda p, y: (preprocessing.scale_to_unit_range(
            preprocessing.decode_and_resize(tf.io.read_file(p), size)), y),
        num_parallel_calls=tf.data.AUTOTUNE)


def accuracy_of(probabilities, labels) -> float:
    import numpy as np  # pylint: disable=import-outside-toplevel
    return float(np.mean(np.argmax(probabilities, axis=-1) == labels))


def paired(on, off) -> str:
    """Mean of on - off paired by seed, with its 95% t interval."""
    import numpy as np  # pylint: disable=import-outside-toplevel
    from scipy import stats  # pylint: disable=import-outside-toplevel
    differences = np.asarray(on) - np.asarray(off)
    if len(differences) < 2:
        return f'{differences.mean():+.4f}'
    half = stats.t.ppf(0.975, len(differences) - 1) * stats.sem(differences)
    return (f'{differences.mean():+.4f} ({differences.mean() - half:+.4f} to '
            f'{differences.mean() + half:+.4f})')


def run_data_set(name: str, args, defaults, size, con=print) -> dict:
    """Off and on for every seed on one data set; prints as it goes, returns the numbers."""
    import dataclasses  # pylint: disable=import-outside-toplevel
    import numpy as np  # pylint: disable=import-outside-toplevel
    import tf_keras as keras  # pylint: disable=import-outside-toplevel
    from models import builders  # pylint: disable=import-outside-toplevel
    from models import feature_pass  # pylint: disable=import-outside-toplevel
    from models import inputs  # pylint: disable=import-outside-toplevel
    from models import trainer_settings  # pylint: disable=import-outside-toplevel
    from models import training  # pylint: disable=import-outside-toplevel
    from pipeline import configs  # pylint: disable=import-outside-toplevel

    class_names = list(defaults.class_names)
    train, evaluation, test, skipped = splits(name, configs.SHARED, class_names)
    batch = defaults.training.batch_size
    big = len(train) + len(evaluation) + len(test) + 1       # every split cached in memory
    train_ds = inputs.input_pipeline(decoded(train, size), batch, training=True, seed=0,
                                     count=len(train), limit=big, repeat=True)
    eval_ds = inputs.input_pipeline(decoded(evaluation, size), batch, training=False, seed=0,
                                    count=len(evaluation), limit=big)
    test_ds = inputs.input_pipeline(decoded(test, size), batch, training=False, seed=0,
                                    count=len(test), limit=big)
    steps = inputs.steps_per_epoch(len(train), batch)
    start = time.perf_counter()
    for _ in train_ds.take(steps):      # fills the caches: no JPEG decoding on the clock
        pass
    for _ in eval_ds:
        pass
    test_labels = np.concatenate([y.numpy() for _, y in test_ds])
    # The base before fine-tuning is the same for every seed: the test photos' frozen
    # features once; each head-only model is scored on them (what its predict gives).
    plain = builders.build_transfer_model(size, len(class_names), weights=defaults.weights,
                                          augment='none')
    test_features, _, _ = feature_pass.features_of(builders.pooled_features(plain), test_ds, 1)
    test_features = test_features[:, 0]
    con(f'--- {name}: {len(train)} train, {len(evaluation)} eval, {len(test)} test photos '
        f'({skipped} test photos left out as in the training data); decoded and test '
        f'features in {time.perf_counter() - start:.0f} s')
    custom = dict(defaults.trainer_config(), fine_tune_epochs=0)
    off_settings = trainer_settings.TrainerSettings.from_custom_config(custom)
    on_settings = dataclasses.replace(off_settings, fine_tune_epochs=args.fine_tune_epochs,
                                      fine_tune_from_layer=args.fine_tune_from_layer,
                                      fine_tune_learning_rate=args.fine_tune_learning_rate,
                                      fine_tune_patience=args.fine_tune_patience)
    rows = []
    for seed in range(args.seeds):
        keras.backend.clear_session()
        start = time.perf_counter()
        model, history, _ = training.train(dataclasses.replace(off_settings, seed=seed),
                                           train_ds, eval_ds, train_steps=steps,
                                           train_count=len(train), eval_count=len(evaluation))
        off_seconds = time.perf_counter() - start
        head = model.get_layer(builders.HEAD_LAYER)
        off = accuracy_of(head(test_features).numpy(), test_labels)
        start = time.perf_counter()
        training.fine_tune(model, dataclasses.replace(on_settings, seed=seed), train_ds, eval_ds,
                           history, train_steps=steps)
        feature_pass.features_of(model, eval_ds, 1)  # train()'s eval answers after fine-tuning
        tune_seconds = time.perf_counter() - start
        logits, _, _ = feature_pass.features_of(model, test_ds, 1)
        on = accuracy_of(logits[:, 0], test_labels)
        tuned = len(history['loss']) - history['fine_tune_from_epoch']
        rows.append(dict(seed=seed, off=off, on=on, off_seconds=off_seconds,
                         on_seconds=off_seconds + tune_seconds, tuned=tuned,
                         best=history['best_epoch'] - history['fine_tune_from_epoch'],
                         head_val=history['val_accuracy'][history['fine_tune_from_epoch'] - 1],
                         tuned_val=history['val_accuracy'][history['best_epoch'] - 1]))
        r = rows[-1]
        con(f'{name} seed {seed}: test off {off:.4f} on {on:.4f}; eval off {r["head_val"]:.4f} '
            f'on {r["tuned_val"]:.4f}; fine-tuning ran {tuned} epochs, kept epoch {r["best"]} '
            f'(0: the head); {off_seconds:.0f} s off, {r["on_seconds"]:.0f} s on '
            f'({r["on_seconds"] / off_seconds:.2f}x)')
    return dict(name=name, rows=rows, test=len(test))


def main() -> int:
    from models import trainer_settings  # pylint: disable=import-outside-toplevel
    from pipeline import configs  # pylint: disable=import-outside-toplevel
    parser = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
    parser.add_argument('--data', nargs='+', default=['default', 'tutorial'],
                        choices=['default', 'tutorial'])
    parser.add_argument('--seeds', type=int, default=3)
    parser.add_argument('--fine-tune-epochs', type=int, default=5)
    parser.add_argument('--fine-tune-from-layer', type=int,
                        default=trainer_settings.Training.fine_tune_from_layer)
    parser.add_argument('--fine-tune-learning-rate', type=float,
                        default=trainer_settings.Training.fine_tune_learning_rate)
    parser.add_argument('--fine-tune-patience', type=int,
                        default=trainer_settings.Training.fine_tune_patience)
    parser.add_argument('--image-size', type=int,
                        help="square input size; default: the pipeline's (the weights' own)")
    args = parser.parse_args()

    from runlog import noise  # pylint: disable=import-outside-toplevel
    noise.quiet_tensorflow()
    import numpy as np  # pylint: disable=import-outside-toplevel
    from models import training  # pylint: disable=import-outside-toplevel
    training.keep_autograph_out_of_tf_keras()
    defaults = configs.PipelineConfig(
        data_root=configs.SHARED_DATA_ROOT, pipeline_root='', serving_dir='',
        image_size=(args.image_size,) * 2 if args.image_size else None)
    size = tuple(defaults.input_size()[0])
    head = defaults.training
    print(f'input {size[0]}x{size[1]}; head: {head.epochs} epochs on the features of '
          f'{head.augmented_views} augmented copies, learning rate {head.learning_rate}; '
          f'fine-tuning: at most {args.fine_tune_epochs} epochs from base layer '
          f'{args.fine_tune_from_layer}, learning rate {args.fine_tune_learning_rate}, patience '
          f'{args.fine_tune_patience}; {args.seeds} seeds', flush=True)
    results = [run_data_set(name, args, defaults, size,
                            con=lambda line: print(line, flush=True)) for name in args.data]
    print(f'\n{"data":9s} {"test":>5s} {"off: mean (min-max)":>22s} {"on: mean (min-max)":>22s} '
          f'{"on - off, paired (95%)":>28s} {"wall off s":>10s} {"on s":>6s} {"ratio":>6s}')
    for result in results:
        rows = result['rows']
        off, on = [r['off'] for r in rows], [r['on'] for r in rows]
        off_s = np.mean([r['off_seconds'] for r in rows])
        on_s = np.mean([r['on_seconds'] for r in rows])
        print(f'{result["name"]:9s} {result["test"]:5d} {np.mean(off):.4f} ({min(off):.3f}-'
              f'{max(off):.3f}) {np.mean(on):.4f} ({min(on):.3f}-{max(on):.3f}) '
              f'{paired(on, off):>28s} {off_s:10.0f} {on_s:6.0f} {on_s / off_s:6.2f}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
