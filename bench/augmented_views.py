"""How many augmented copies per photo the head needs: accuracy by copy count, several seeds.

    python bench/augmented_views.py [--data-root DIR] [--copies 1 2 3 5] [--seeds 20]
                                 [--image-size 160]

With the base frozen, one epoch of the tutorial's training is: every training
photo through a fresh draw of the augmentation and the base, then the head. The
Trainer instead computes the base's features of K augmented copies once and
trains the head on them, epoch e taking copy e mod K (`--augmented-views K`).
This script computes, with the Trainer's own functions, the features of
`epochs` copies of every photo of <data-root>/train (as many draws as the
tutorial's epochs make) and of <data-root>/validation without augmentation, then
trains the head `--seeds` times per schedule on them: 'fresh' (a new copy every
epoch: exactly the tutorial's fresh augmentation), 'none' (no augmentation) and
each K of --copies, and 'photo + K-1' (the un-augmented photo as one of K views, then
K-1 copies: what the Trainer trains on when DataQuality computed the photos' features). Prints the validation accuracy per seed, its mean and range,
each schedule's difference from 'fresh' paired by seed (a seed fixes the head's
initial weights and the order of the photos, so the pairs differ only by the
features) with its 95% interval, and what the copies cost through the base. The
headline is the default copy count against 'fresh'. Default data: the tutorial's
own set.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def split_dataset(root: str, split: str, class_names, size, batch_size: int):
    """(decoded [-1, 1] image, label) batches of <root>/<split>/<class>/*, and the count."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from models import preprocessing  # pylint: disable=import-outside-toplevel
    paths, labels = [], []
    for index, name in enumerate(class_names):
        found = sorted(tf.io.gfile.glob(os.path.join(root, split, name, '*')))
        paths += found
        labels += [index] * len(found)
    dataset = tf.data.Dataset.from_tensor_slices((paths, tf.constant(labels, tf.int64)))
    dataset = dataset.map(lambda p, y: (preprocessing.decode_and_resize(tf.io.read_file(p), size),
                                        y), num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.batch(batch_size).map(
        lambda x, y: (preprocessing.scale_to_unit_range(x), y)).cache(), len(paths)


def paired(accuracies, reference) -> str:
    """Mean difference of two runs paired by seed, with its 95% t interval."""
    import numpy as np  # pylint: disable=import-outside-toplevel
    from scipy import stats  # pylint: disable=import-outside-toplevel
    differences = np.asarray(accuracies) - np.asarray(reference)
    if len(differences) < 2:
        return f'{differences.mean():+.4f}'
    half = stats.t.ppf(0.975, len(differences) - 1) * stats.sem(differences)
    return (f'{differences.mean():+.4f} ({differences.mean() - half:+.4f} to '
            f'{differences.mean() + half:+.4f})')


def main() -> int:
    from pipeline import configs  # pylint: disable=import-outside-toplevel
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data-root',
                        default=str(configs.SHARED / 'datasets' / 'cats_and_dogs_filtered'))
    parser.add_argument('--copies', type=int, nargs='+', default=[1, 2, 3, 5])
    parser.add_argument('--seeds', type=int, default=20)
    parser.add_argument('--image-size', type=int,
                        help="square input size; default: the pipeline's (the weights' own)")
    args = parser.parse_args()

    from runlog import noise  # pylint: disable=import-outside-toplevel
    noise.quiet_tensorflow()
    import numpy as np  # pylint: disable=import-outside-toplevel
    import tf_keras as keras  # pylint: disable=import-outside-toplevel
    from models import builders  # pylint: disable=import-outside-toplevel
    from models import frozen_training  # pylint: disable=import-outside-toplevel
    from models import inputs  # pylint: disable=import-outside-toplevel

    class_names = sorted(os.listdir(os.path.join(args.data_root, 'train')))
    defaults = configs.PipelineConfig(data_root=args.data_root, pipeline_root='', serving_dir='',
                                      class_names=tuple(class_names),
                                      image_size=((args.image_size,) * 2 if args.image_size
                                                  else None))
    size = tuple(defaults.input_size()[0])
    training = defaults.training
    epochs, batch_size = training.epochs, training.batch_size
    train_ds, train_count = split_dataset(args.data_root, 'train', class_names, size, batch_size)
    eval_ds, eval_count = split_dataset(args.data_root, 'validation', class_names, size,
                                        batch_size)
    model = builders.build_transfer_model(size, len(class_names), weights=defaults.weights,
                                          dropout=training.dropout, seed=training.seed,
                                          augment=training.augmentation)
    plain = builders.build_transfer_model(size, len(class_names), weights=defaults.weights,
                                          augment='none')
    start = time.perf_counter()
    copies, labels = frozen_training.view_features(model, train_ds, epochs, None, train_count)
    copies_seconds = time.perf_counter() - start
    unaugmented, _ = frozen_training.view_features(plain, train_ds, 1, None, train_count)
    eval_features, eval_labels = frozen_training.view_features(plain, eval_ds, 1, None, eval_count)
    eval_features = eval_features[:, 0]
    rate = copies.shape[0] * copies.shape[1] / copies_seconds
    print(f'data: {args.data_root}: {train_count} train, {eval_count} validation photos; '
          f'{size[0]}x{size[1]}; {epochs} epochs, batch {batch_size}, learning rate '
          f'{training.learning_rate}, dropout {training.dropout}, augmentation '
          f'{training.augmentation}')
    print(f'{epochs} augmented copies of every train photo through the base: '
          f'{copies_seconds:.0f} s ({rate:.0f} images/s); K copies cost K/{epochs} of the '
          "tutorial's fresh augmentation through the base")

    def accuracy(features, seed: int) -> float:
        # A new transfer model as the Trainer builds it (its base is not used): its head.
        keras.utils.set_random_seed(seed)
        head_model = builders.head(
            builders.build_transfer_model(size, len(class_names), weights=None,
                                          dropout=training.dropout, augment='none'),
            training.learning_rate, training.label_smoothing)
        head_model.fit(frozen_training.view_batches(features, labels, batch_size, seed),
                       epochs=epochs,
                       steps_per_epoch=inputs.steps_per_epoch(len(labels), batch_size), verbose=0)
        predicted = np.argmax(head_model.predict(eval_features, verbose=0), axis=-1)
        return float(np.mean(predicted == eval_labels))

    # 'photo + K-1 copies': the photo itself (the un-augmented features DataQuality
    # computes) as one of K views, what the Trainer trains on when the stage ran.
    schedules = [('fresh', copies), ('none', unaugmented)] + [
        (f'{k} copies', copies[:, :k]) for k in args.copies] + [
        (f'photo + {k - 1}', np.concatenate([unaugmented, copies[:, :k - 1]], axis=1))
        for k in args.copies if k > 1]
    print(f'\n{"schedule":10s} {"mean":>6s} {"min-max":>13s}  {"- fresh, paired (95%)":>27s}'
          f'  accuracy per seed ({eval_count} validation photos)')
    results = {}
    for name, features in schedules:
        results[name] = np.array([accuracy(features, seed) for seed in range(args.seeds)])
        print(f'{name:10s} {results[name].mean():6.4f} {results[name].min():.3f}-'
              f'{results[name].max():.3f}  {paired(results[name], results["fresh"]):>27s}  '
              + ' '.join(f'{a:.3f}' for a in results[name]), flush=True)
    print('all schedules: ' + ', '.join(f'{name} {a.mean():.4f}' for name, a in results.items()))
    default = f'{min(training.augmented_views, epochs)} copies'
    if default in results:
        print(f'HEADLINE: {default} (the default) {results[default].mean():.4f} against fresh '
              f"augmentation every epoch {results['fresh'].mean():.4f} over {args.seeds} "
              f"seeds: difference {paired(results[default], results['fresh'])}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
