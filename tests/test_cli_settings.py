"""The Trainer's settings in one place: each Training field has its flag, each flag its
field, a bad value names its field, and custom_config reads back as it was built."""

import argparse
import dataclasses

import pytest

from models import hyperparameters
from models import trainer_settings
from pipeline import cli
from pipeline import configs

FIELDS = dataclasses.fields(trainer_settings.Training)


def run_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    cli.add_run_flags(parser, weights_help='')
    return parser


def training_actions(parser: argparse.ArgumentParser):
    group = next(g for g in parser._action_groups  # pylint: disable=protected-access
                 if g.title == cli.TRAINING_GROUP)
    return group._group_actions  # pylint: disable=protected-access


def other_value(field: dataclasses.Field):
    """A valid value of the field other than its default."""
    if field.metadata['choices']:
        return next(c for c in field.metadata['choices'] if c != field.default)
    return {int: field.default + 1, float: field.default / 2 or 0.25}[field.type]


def test_every_training_field_has_exactly_one_flag_and_every_flag_a_field():
    parser = run_parser()
    actions = training_actions(parser)
    assert sorted(a.dest for a in actions) == sorted(f.name for f in FIELDS)
    for field in FIELDS:
        flags = [a.option_strings for a in actions if a.dest == field.name]
        assert flags == [['--' + field.name.replace('_', '-')]]
    # None of the other flags sets a Training field.
    others = [a.dest for a in parser._actions  # pylint: disable=protected-access
              if a not in actions]
    assert not set(others) & {f.name for f in FIELDS}


def test_every_flag_reaches_the_trainers_custom_config_and_unset_flags_are_left_out():
    parser = run_parser()
    assert not set(cli.run_overrides(parser.parse_args([]))) & {f.name for f in FIELDS}
    argv, expected = [], {}
    for field in FIELDS:
        if field.name in ('fine_tune_epochs', 'model_variant'):
            continue          # fine-tuning needs the transfer model: set together below
        value = other_value(field)
        argv += [cli.flag_name(field), str(value)]
        expected[field.name] = value
    argv += ['--fine-tune-epochs', '2']
    expected['fine_tune_epochs'] = 2
    overrides = cli.run_overrides(parser.parse_args(argv))
    assert {k: overrides[k] for k in expected} == expected
    trainer = configs.local('/tmp/w', '/tmp/d', **overrides).trainer_config()
    assert {k: trainer[k] for k in expected} == expected


def test_the_legacy_flag_spellings_still_parse():
    args = run_parser().parse_args([
        '--epochs', '3', '--batch-size', '8', '--learning-rate', '0.01', '--model-variant', 'cnn',
        '--augmentation', 'none', '--label-smoothing', '0.1', '--early-stopping-patience', '2',
        '--augmented-views', '0', '--fine-tune-from-layer', '90',
        '--fine-tune-learning-rate', '2e-5', '--fine-tune-patience', '1'])
    config = configs.local('/tmp/w', '/tmp/d', **cli.run_overrides(args))
    assert (config.training.epochs, config.training.batch_size, config.training.model_variant,
            config.training.augmented_views) == (3, 8, 'cnn', 0)


def test_a_bad_choice_is_refused_by_the_flag():
    with pytest.raises(SystemExit):
        run_parser().parse_args(['--augmentation', 'huge'])


@pytest.mark.parametrize('field', FIELDS, ids=lambda f: f.name)
def test_a_bad_value_names_the_field(field):
    bad = 'x' if field.type is not str else 7
    with pytest.raises(ValueError, match=f'^{field.name} must be'):
        trainer_settings.Training(**{field.name: bad})
    with pytest.raises(ValueError, match=field.name):
        configs.local('/tmp/w', '/tmp/d', **{field.name: bad})


@pytest.mark.parametrize('name, value', [
    ('epochs', 0), ('batch_size', 0), ('learning_rate', 0.0), ('dropout', 1.0),
    ('label_smoothing', -0.1), ('augmented_views', -1), ('early_stopping_patience', -1),
    ('model_variant', 'resnet'), ('augmentation', 'huge'), ('epochs', True),
])
def test_an_out_of_bounds_value_names_the_field(name, value):
    with pytest.raises(ValueError, match=f'^{name} must be'):
        trainer_settings.Training(**{name: value})


def test_custom_config_round_trips_through_trainer_settings():
    config = configs.local('/tmp/w', '/tmp/d', epochs=4, label_smoothing=0.1,
                           fine_tune_epochs=2)
    custom_config = config.trainer_config()
    settings = trainer_settings.TrainerSettings.from_custom_config(custom_config)
    assert dataclasses.asdict(settings) == {
        k: v for k, v in custom_config.items() if k != 'image_size_reason'}
    training = {f.name: getattr(settings, f.name) for f in FIELDS}
    assert trainer_settings.Training(**training) == config.training


def test_overrides_by_name_and_replace_keep_the_other_training_settings():
    config = configs.local('/tmp/w', '/tmp/d', epochs=4)
    again = configs.replace(config, batch_size=8, accuracy_threshold=0.5)
    assert (again.training.epochs, again.training.batch_size, again.accuracy_threshold) == (
        4, 8, 0.5)
    assert configs.replace(config, training=trainer_settings.Training(seed=3),
                           epochs=2).training == trainer_settings.Training(seed=3, epochs=2)


def test_a_settings_file_is_checked_by_the_training_dataclass():
    assert hyperparameters.values({'epochs': 20.0, 'learning_rate': 1}) == {
        'epochs': 20, 'learning_rate': 1.0}
    with pytest.raises(ValueError, match=r'best.txt: dropout must be in \[0, 1\), got 1.5'):
        hyperparameters.values({'dropout': 1.5}, 'best.txt')
