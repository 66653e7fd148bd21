"""Command-line flags shared by the runners: the run knobs of PipelineConfig.

Each stage's flags are derived from its settings dataclass (pipeline/stage_settings.py;
settings_flags), in an argument group named as its PipelineConfig field: `--field-name`,
the field's type, help and choices; a bool field's flag flips its default (`--name` sets
True, `--no-name` False). A new setting gets its flag.
"""

import argparse
import dataclasses
from typing import Any, Dict, Type

from models import hyperparameters
from pipeline import stage_settings


def flag_name(field: dataclasses.Field) -> str:
    """A setting's command-line flag: --learning-rate for learning_rate; for a bool, the
    flag that flips its default: --stop-on-conflicting-labels (default False),
    --no-data-quality (default True)."""
    name = field.name.replace('_', '-')
    return f'--no-{name}' if field.type is bool and field.default else f'--{name}'


def settings_flags(parser: argparse.ArgumentParser, settings: Type, title: str) -> None:
    """One flag per field of a settings dataclass, in an argument group named title:
    flag_name, the field's type, its metadata's help and choices, its default in the help.
    An unset flag is None (settings_overrides leaves it out)."""
    group = parser.add_argument_group(title)
    for field in dataclasses.fields(settings):
        if field.type is bool:
            help_ = (f'{"do not " if field.default else ""}{field.metadata["help"]}'
                     f'{"" if field.default else " (default: off)"}')
            group.add_argument(flag_name(field), dest=field.name, action='store_const',
                               const=not field.default, default=None,
                               help=help_.replace('%', '%%'))
            continue
        help_ = f'{field.metadata["help"]} (default {field.default})'.replace('%', '%%')
        group.add_argument(flag_name(field), dest=field.name, type=field.type,
                           choices=field.metadata.get('choices'), help=help_)


def settings_overrides(args: argparse.Namespace, settings: Type) -> Dict[str, Any]:
    """The fields of a settings dataclass whose flags (settings_flags) were given."""
    return {field.name: getattr(args, field.name) for field in dataclasses.fields(settings)
            if getattr(args, field.name) is not None}


def add_run_flags(parser: argparse.ArgumentParser, *, weights_help: str) -> None:
    """Flags for model, training and gate settings (each overrides the preset)."""
    for stage, settings in stage_settings.STAGES.items():
        settings_flags(parser, settings, stage)
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
    parser.add_argument('--bulk-inference-images', metavar='DIR',
                        help='a local folder of unlabelled photos (any depth) for the blessed '
                             'model to score into a CSV (the BulkInferrer stage; default: none)')
    parser.add_argument('--tflite-variants', nargs='*', default=None,
                        help='TFLite models to write and check (float32, float16, int8; '
                             'default float16 int8; none given: no TFLite stage)')
    parser.add_argument('--no-cache', action='store_true', help='re-run every component')


def run_overrides(args: argparse.Namespace) -> Dict[str, Any]:
    """PipelineConfig fields (and the stages' settings, by name: stage_settings.nest) set
    by add_run_flags' flags (unset flags left out)."""
    overrides = {
        **{name: value for settings in stage_settings.STAGES.values()
           for name, value in settings_overrides(args, settings).items()},
        'model_name': args.model_name,
        'image_size': tuple(args.image_size) if args.image_size else None,
        'compare_variants': tuple(args.compare_variants) if args.compare_variants else None,
        'weights': args.weights, 'accuracy_threshold': args.accuracy_threshold,
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
