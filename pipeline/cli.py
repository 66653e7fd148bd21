"""Command-line flags shared by the runners: the run knobs of PipelineConfig.

The Trainer's flags are derived from trainer_settings.Training's fields (settings_flags):
`--field-name`, the field's type, help and choices; a new Training field gets its flag.
"""

import argparse
import dataclasses
from typing import Any, Dict, Type

from models import features
from models import hyperparameters
from models import trainer_settings

# The argument group of the Trainer's flags (settings_flags).
TRAINING_GROUP = 'training'


def flag_name(field: dataclasses.Field) -> str:
    """A setting's command-line flag: --learning-rate for learning_rate."""
    return '--' + field.name.replace('_', '-')


def settings_flags(parser: argparse.ArgumentParser, settings: Type, title: str) -> None:
    """One flag per field of a settings dataclass, in an argument group named title:
    flag_name, the field's type, its metadata's help and choices, its default in the help.
    An unset flag is None (settings_overrides leaves it out)."""
    group = parser.add_argument_group(title)
    for field in dataclasses.fields(settings):
        help_ = f'{field.metadata["help"]} (default {field.default})'.replace('%', '%%')
        group.add_argument(flag_name(field), dest=field.name, type=field.type,
                           choices=field.metadata.get('choices'), help=help_)


def settings_overrides(args: argparse.Namespace, settings: Type) -> Dict[str, Any]:
    """The fields of a settings dataclass whose flags (settings_flags) were given."""
    return {field.name: getattr(args, field.name) for field in dataclasses.fields(settings)
            if getattr(args, field.name) is not None}


def add_run_flags(parser: argparse.ArgumentParser, *, weights_help: str) -> None:
    """Flags for model, training and gate settings (each overrides the preset)."""
    settings_flags(parser, trainer_settings.Training, TRAINING_GROUP)
    parser.add_argument('--model-name')
    parser.add_argument('--image-size', type=int, nargs=2, metavar=('HEIGHT', 'WIDTH'))
    parser.add_argument('--compare-variants', nargs='*', default=None,
                        help='extra tutorial models to train for the comparison table')
    parser.add_argument('--weights', help=weights_help)
    parser.add_argument('--tune', action='store_true',
                        help='run the Tuner before the Trainer: it searches the head\'s '
                             'learning rate, dropout, epochs, augmented views and label '
                             'smoothing by cross-validation on the train split; the Trainer trains with '
                             'the best (README: The Tuner)')
    parser.add_argument('--tuner-trials', type=int,
                        help=f'settings the Tuner tries (default {hyperparameters.TRIALS}, '
                             'the first the defaults)')
    parser.add_argument('--hyperparameters', metavar='FILE',
                        help='train with the settings of an earlier Tuner run: its '
                             f'{hyperparameters.FILE_NAME} (or the best_hyperparameters '
                             'folder holding it); a setting\'s own flag wins over the file')
    parser.add_argument('--accuracy-threshold', type=float)
    parser.add_argument('--balance-tolerance', type=float,
                        help='accepted distance of a class share from its fair share 1/K, '
                             'as a fraction of 1/K (default 0.2: 40-60%% of 2 classes, 8-12%% '
                             'of 10)')
    parser.add_argument('--label-false-alarm-rate', type=float,
                        help='chance, per check, that a balanced, randomly split data set fails '
                             'the label balance or drift check (default 0.001); the thresholds '
                             'follow from the counts')
    parser.add_argument('--max-bad-fraction', type=float)
    parser.add_argument('--max-leak-fraction', type=float,
                        help='share of the eval (or test) photos with a near-copy in train '
                             'above which the run stops (default 0.01)')
    parser.add_argument('--max-label-issue-fraction', type=float,
                        help='share of photos flagged as possibly mislabelled above which the '
                             'run stops (default 1.0: they are only listed and warned about)')
    parser.add_argument('--near-duplicate-similarity', type=float,
                        help='whitened cosine of the frozen features from which two photos '
                             'are near-duplicates (default 0.45)')
    parser.add_argument('--no-data-quality', action='store_true',
                        help='skip the DataQuality stage (label issues, near-duplicates)')
    parser.add_argument('--max-file-bytes', type=int,
                        help='larger files are reported as bad, never read (default 50000000)')
    parser.add_argument('--symlinks', choices=features.SYMLINK_POLICIES,
                        help='symbolic links under the data root to follow: all (follow, '
                             'default), those staying inside the root, or none')
    parser.add_argument('--stop-on-conflicting-labels', action='store_true', default=None,
                        help='stop the run when the same image is filed under two classes '
                             '(default: a warning, trained under each)')
    parser.add_argument('--eval-fraction', type=float,
                        help='share of each class for eval, without split folders (0.2)')
    parser.add_argument('--test-fraction', type=float,
                        help='share of each class held out as the test split, without split '
                             'folders (default 0: none; a pre-split root uses test/)')
    parser.add_argument('--bulk-inference-images', metavar='DIR',
                        help='a local folder of unlabelled photos (any depth) for the blessed '
                             'model to score into a CSV (the BulkInferrer stage; default: none)')
    parser.add_argument('--tflite-variants', nargs='*', default=None,
                        help='TFLite models to write and check (float32, float16, int8; '
                             'default float16 int8; none given: no TFLite stage)')
    parser.add_argument('--no-cache', action='store_true', help='re-run every component')


def run_overrides(args: argparse.Namespace) -> Dict[str, Any]:
    """PipelineConfig fields (and Training fields, by name: configs.nest_training) set by
    add_run_flags' flags (unset flags left out)."""
    overrides = {
        **settings_overrides(args, trainer_settings.Training),
        'model_name': args.model_name,
        'image_size': tuple(args.image_size) if args.image_size else None,
        'compare_variants': tuple(args.compare_variants) if args.compare_variants else None,
        'weights': args.weights, 'accuracy_threshold': args.accuracy_threshold,
        'balance_tolerance': args.balance_tolerance,
        'label_false_alarm_rate': args.label_false_alarm_rate,
        'max_bad_fraction': args.max_bad_fraction,
        'max_leak_fraction': args.max_leak_fraction,
        'max_label_issue_fraction': args.max_label_issue_fraction,
        'near_duplicate_similarity': args.near_duplicate_similarity,
        'data_quality': False if args.no_data_quality else None,
        'max_file_bytes': args.max_file_bytes, 'symlinks': args.symlinks,
        'stop_on_conflicting_labels': args.stop_on_conflicting_labels,
        'eval_fraction': args.eval_fraction, 'test_fraction': args.test_fraction,
        'enable_cache': False if args.no_cache else None,
        'bulk_inference_images': args.bulk_inference_images,
        'tflite_variants': (tuple(args.tflite_variants) if args.tflite_variants is not None
                            else None),
    }
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if args.tune or args.tuner_trials is not None:
        from pipeline import configs  # pylint: disable=import-outside-toplevel
        overrides['tuning'] = configs.Tuning(enabled=True, **(
            {'trials': args.tuner_trials} if args.tuner_trials is not None else {}))
    if args.hyperparameters:
        if 'tuning' in overrides:
            raise ValueError('--hyperparameters trains with the settings of an earlier Tuner '
                             'run; --tune searches new ones: give one of them')
        try:
            tuned = hyperparameters.read(args.hyperparameters)
        except OSError as e:
            raise ValueError(f'--hyperparameters: {e}') from e
        # A setting given by its own flag wins over the file.
        overrides = {**tuned, **overrides}
    return overrides
