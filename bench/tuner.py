"""Tuned against default head settings, on a held-out test split, over several seeds.

    python bench/tuner.py [--data-root DIR] [--seeds 5] [--trials 12] [--image-size 160]
                          [--cache FILE.npz]

The Tuner (models/tuning.py) searches the transfer model's head settings (learning rate,
dropout, epochs, augmented views, label smoothing) on the frozen features of the train
split only, scored by k-fold cross-validation on it. This script runs that search
in process, with the Tuner's own functions, on <data-root>/train (the photo's features, as
DataQuality computes them, and augmented copies, as the Trainer does, computed once), then
trains a head on the whole train split with the default settings and one with the best
settings, as the Trainer would (the same schedule of views), and measures both on
<data-root>/validation, used here as the held-out test split: neither the search nor the
defaults' training sees it. Per seed (the seed fixes the folds, the search's draws, the
head's initial weights and the order of the photos, for both heads): the best settings,
the cross-validated loss of the defaults and of the best, the test accuracy and loss of both.
Then the mean, the spread (min-max, standard deviation) and the tuned - default
difference paired by seed, with its 95% interval, and what the search cost. Default data:
the tutorial's own set.
"""

import argparse
import dataclasses
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from augmented_views import paired, split_dataset  # pylint: disable=wrong-import-position


def main() -> int:
    from pipeline import configs  # pylint: disable=import-outside-toplevel
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data-root',
                        default=str(configs.SHARED / 'datasets' / 'cats_and_dogs_filtered'))
    parser.add_argument('--seeds', type=int, default=5)
    parser.add_argument('--trials', type=int, help='trials per search (default: the Tuner\'s)')
    parser.add_argument('--image-size', type=int,
                        help="square input size; default: the pipeline's (the weights' own)")
    parser.add_argument('--cache', help='an .npz file for the features: read when it exists, '
                                        'else written (a later run skips the base)')
    args = parser.parse_args()

    from runlog import noise  # pylint: disable=import-outside-toplevel
    noise.quiet_tensorflow()
    import keras_tuner  # pylint: disable=import-outside-toplevel
    import numpy as np  # pylint: disable=import-outside-toplevel
    from models import builders  # pylint: disable=import-outside-toplevel
    from models import frozen_training  # pylint: disable=import-outside-toplevel
    from models import hyperparameters  # pylint: disable=import-outside-toplevel
    from models import trainer_settings  # pylint: disable=import-outside-toplevel
    from models import training  # pylint: disable=import-outside-toplevel
    from models import tuning  # pylint: disable=import-outside-toplevel
    training.keep_autograph_out_of_tf_keras()

    class_names = sorted(os.listdir(os.path.join(args.data_root, 'train')))
    defaults = configs.PipelineConfig(data_root=args.data_root, pipeline_root='', serving_dir='',
                                      class_names=tuple(class_names),
                                      image_size=((args.image_size,) * 2 if args.image_size
                                                  else None))
    settings = trainer_settings.TrainerSettings.from_custom_config(defaults.trainer_config())
    search = hyperparameters.SearchSettings(
        **({'trials': args.trials} if args.trials else {}))
    size = tuple(settings.image_size)
    train_ds, train_count = split_dataset(args.data_root, 'train', class_names, size,
                                          settings.batch_size)
    test_ds, test_count = split_dataset(args.data_root, 'validation', class_names, size,
                                        settings.batch_size)
    # The photo's own features (DataQuality's) and the augmented copies the largest view
    # count of the search trains on (the Trainer's), in the same order.
    copies = tuning.copies_needed(settings, tuning.candidates(settings, 'augmented_views'),
                                  True)
    start = time.perf_counter()
    if args.cache and os.path.exists(args.cache):
        cached = np.load(args.cache)
        augmented, labels, photo = cached['augmented'], cached['labels'], cached['photo']
        test_features, test_labels = cached['test_features'], cached['test_labels']
        if augmented.shape[1] < copies or len(labels) != train_count:
            raise ValueError(f'{args.cache} holds other features; remove it')
    else:
        augmenting = builders.build_transfer_model(size, len(class_names),
                                                   weights=settings.weights, seed=settings.seed,
                                                   augment=settings.augmentation)
        plain = builders.build_transfer_model(size, len(class_names), weights=settings.weights,
                                              augment='none')
        augmented, labels = frozen_training.view_features(augmenting, train_ds, copies, None,
                                                          train_count)
        photo, _ = frozen_training.view_features(plain, train_ds, 1, None, train_count)
        test_features, test_labels = frozen_training.view_features(plain, test_ds, 1, None,
                                                                   test_count)
        if args.cache:
            np.savez(args.cache, augmented=augmented, labels=labels, photo=photo,
                     test_features=test_features, test_labels=test_labels)
    features_seconds = time.perf_counter() - start
    data = tuning.TrainFeatures(photo[:, 0], augmented, labels, True, {})
    every_row = np.arange(len(labels))
    print(f'data: {args.data_root}: {train_count} train photos ({search.folds}-fold '
          f'cross-validation in the search), {test_count} held-out test photos; '
          f'{size[0]}x{size[1]}; {copies} augmented copies + the photo; features '
          f'{features_seconds:.0f} s')
    print(f'search: {search.trials} trials, KerasTuner random search, the first the defaults; '
          f'space {hyperparameters.SPACE}')
    default_values = {name: getattr(settings, name) for name in hyperparameters.SPACE}
    print(f'defaults: {default_values}\n')

    results = {'default': [], 'tuned': [], 'default_loss': [], 'tuned_loss': []}
    search_seconds = []
    for seed in range(args.seeds):
        seeded = dataclasses.replace(settings, seed=seed)
        tuner = tuning.HeadTuner(
            data, seeded, search,
            oracle=tuning.DefaultsFirstOracle(
                objective=keras_tuner.Objective(hyperparameters.OBJECTIVE, 'min'),
                max_trials=search.trials, seed=seed, hyperparameters=tuning.space(seeded)),
            directory=tempfile.mkdtemp(prefix='bench-tuner-'), project_name='head',
            overwrite=True)
        start = time.perf_counter()
        tuner.search(verbose=0)
        search_seconds.append(time.perf_counter() - start)
        rows = tuning.trial_rows(tuner)
        best = next(r for r in rows if r['best'])
        default_trial = rows[0]
        tuned = dataclasses.replace(seeded, **best['values'])
        for name, chosen in (('default', seeded), ('tuned', tuned)):
            scores = tuning.evaluate(tuning.fit(data, every_row, chosen), test_features[:, 0],
                                     test_labels)
            results[name].append(scores['val_accuracy'])
            results[f'{name}_loss'].append(scores['val_loss'])
        print(f"seed {seed}: best {best['values']}; cross-validated loss default "
              f"{default_trial['val_loss']:.4f} best {best['val_loss']:.4f}; test accuracy "
              f"default {results['default'][-1]:.4f} tuned {results['tuned'][-1]:.4f}, loss "
              f"{results['default_loss'][-1]:.4f} / {results['tuned_loss'][-1]:.4f} "
              f'(search {search_seconds[-1]:.0f} s)', flush=True)

    print()
    for name in ('default', 'tuned', 'default_loss', 'tuned_loss'):
        values = np.asarray(results[name])
        print(f'{name:12s} mean {values.mean():.4f}  min-max {values.min():.4f}-'
              f'{values.max():.4f}  std {values.std(ddof=1) if len(values) > 1 else 0:.4f}  '
              + ' '.join(f'{v:.4f}' for v in values))
    print(f"tuned - default, test accuracy, paired by seed (95%): "
          f"{paired(results['tuned'], results['default'])}")
    print(f"tuned - default, test loss, paired by seed (95%): "
          f"{paired(results['tuned_loss'], results['default_loss'])}")
    print(f'search: {np.mean(search_seconds):.1f} s per seed on average ({search.trials} '
          f'trials on {len(labels)} photos); features {features_seconds:.0f} s')
    print(f"HEADLINE: over {args.seeds} seeds, tuned {np.mean(results['tuned']):.4f} against "
          f"default {np.mean(results['default']):.4f} on {test_count} held-out photos: "
          f"difference {paired(results['tuned'], results['default'])}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
