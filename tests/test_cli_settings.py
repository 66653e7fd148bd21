"""Each stage's settings in one place: each field of a stage's settings dataclass has its
flag, each flag its field, a bad value names its field, and the Trainer's custom_config
reads back as it was built."""

import argparse
import dataclasses
import subprocess
import sys

import pytest

from components.data_quality import settings as quality_settings
from components.image_example_gen import settings as ingest_settings
from models import hyperparameters
from models import trainer_settings
from pipeline import cli
from pipeline import configs
from pipeline import stage_settings
from tests import data

FIELDS = dataclasses.fields(trainer_settings.Training)
# (stage, field) of every stage's settings.
STAGE_FIELDS = [(stage, field) for stage, kind in stage_settings.STAGES.items()
                for field in dataclasses.fields(kind)]


def run_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    cli.add_run_flags(parser, weights_help='')
    return parser


def group_actions(parser: argparse.ArgumentParser, title: str):
    group = next(g for g in parser._action_groups  # pylint: disable=protected-access
                 if g.title == title)
    return group._group_actions  # pylint: disable=protected-access


def other_value(field: dataclasses.Field):
    """A valid value of the field other than its default."""
    if field.metadata['choices']:
        return next(c for c in field.metadata['choices'] if c != field.default)
    if field.type is bool:
        return not field.default
    return {int: field.default + 1, float: field.default / 2 or 0.25}[field.type]


def flag_argv(field: dataclasses.Field, value):
    """The command line that sets the field to value."""
    if field.type is bool:
        assert value != field.default
        return [cli.flag_name(field)]
    return [cli.flag_name(field), str(value)]


@pytest.mark.parametrize('stage', stage_settings.STAGES)
def test_every_setting_has_exactly_one_flag_and_every_flag_a_setting(stage):
    fields = dataclasses.fields(stage_settings.STAGES[stage])
    parser = run_parser()
    actions = group_actions(parser, stage)
    assert sorted(a.dest for a in actions) == sorted(f.name for f in fields)
    for field in fields:
        flags = [a.option_strings for a in actions if a.dest == field.name]
        assert flags == [[cli.flag_name(field)]]
    # None of the other flags sets one of this stage's settings.
    others = [a.dest for a in parser._actions  # pylint: disable=protected-access
              if a not in actions]
    assert not set(others) & {f.name for f in fields}


def test_a_bool_setting_flag_flips_its_default():
    assert [cli.flag_name(f) for _, f in STAGE_FIELDS if f.type is bool] == [
        '--stop-on-conflicting-labels', '--no-data-quality']


@pytest.mark.parametrize('stage', [s for s in stage_settings.STAGES if s != 'training'])
def test_every_stage_flag_reaches_its_settings_and_unset_flags_are_left_out(stage):
    fields = dataclasses.fields(stage_settings.STAGES[stage])
    parser = run_parser()
    assert not set(cli.run_overrides(parser.parse_args([]))) & {f.name for f in fields}
    argv, expected = [], {}
    for field in fields:
        value = other_value(field)
        argv += flag_argv(field, value)
        expected[field.name] = value
    overrides = cli.run_overrides(parser.parse_args(argv))
    assert overrides == expected
    config = configs.local('/tmp/w', '/tmp/d', presplit=False, **overrides)
    assert dataclasses.asdict(getattr(config, stage)) == expected
    # The rest of the config keeps its defaults.
    assert configs.replace(config, **{stage: stage_settings.STAGES[stage]()}) == configs.local(
        '/tmp/w', '/tmp/d', presplit=False)


def test_the_stage_flag_spellings_still_parse():
    args = run_parser().parse_args([
        '--eval-fraction', '0.3', '--test-fraction', '0.1', '--max-bad-fraction', '0.5',
        '--max-file-bytes', '1000', '--symlinks', 'none', '--stop-on-conflicting-labels',
        '--balance-tolerance', '0.3', '--label-false-alarm-rate', '0.01',
        '--max-leak-fraction', '1.0', '--max-label-issue-fraction', '0.5',
        '--near-duplicate-similarity', '0.5', '--no-data-quality'])
    config = configs.local('/tmp/w', '/tmp/d', presplit=False, **cli.run_overrides(args))
    assert config.ingest == ingest_settings.Ingest(
        eval_fraction=0.3, test_fraction=0.1, max_bad_fraction=0.5, max_file_bytes=1000,
        symlinks='none', stop_on_conflicting_labels=True)
    assert (config.data_checks.balance_tolerance, config.data_checks.label_false_alarm_rate) == (
        0.3, 0.01)
    assert config.quality == quality_settings.Quality(
        data_quality=False, near_duplicate_similarity=0.5, max_leak_fraction=1.0,
        max_label_issue_fraction=0.5)
    assert not config.runs_data_quality


def test_every_training_flag_reaches_the_trainers_custom_config_and_unset_ones_are_left_out():
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


@pytest.mark.parametrize('stage, field', STAGE_FIELDS, ids=lambda f: getattr(f, 'name', f))
def test_a_bad_value_names_the_field(stage, field):
    bad = 'x' if field.type is not str else 7
    with pytest.raises(ValueError, match=f'^{field.name} must be'):
        stage_settings.STAGES[stage](**{field.name: bad})
    with pytest.raises(ValueError, match=field.name):
        configs.local('/tmp/w', '/tmp/d', **{field.name: bad})


@pytest.mark.parametrize('name, value', [
    ('eval_fraction', 0.0), ('eval_fraction', 1.0), ('test_fraction', 1.0),
    ('max_bad_fraction', 1.5), ('max_pixels', 0), ('max_file_bytes', 0), ('symlinks', 'always'),
    ('stop_on_conflicting_labels', 1), ('balance_tolerance', -0.1),
    ('label_false_alarm_rate', 0.0), ('max_cross_split_duplicates', -1),
    ('sample_images_per_class', -1), ('near_duplicate_similarity', 1.5),
    ('max_leak_fraction', 1.5), ('max_label_issue_fraction', -0.1), ('data_quality', 'no'),
])
def test_an_out_of_bounds_stage_setting_names_the_field(name, value):
    stage = stage_settings.OWNERS[name]
    with pytest.raises(ValueError, match=f'^{name} must be'):
        stage_settings.STAGES[stage](**{name: value})
    with pytest.raises(ValueError, match=f'^{name} must be'):
        configs.local('/tmp/w', '/tmp/d', presplit=False, **{name: value})


def test_the_split_settings_are_checked_against_each_other_and_the_layout():
    with pytest.raises(ValueError, match='their sum below 1'):
        configs.local('/tmp/w', '/tmp/d', presplit=False, eval_fraction=0.5, test_fraction=0.5)
    with pytest.raises(ValueError, match='test_fraction applies only'):
        configs.local('/tmp/w', '/tmp/d', presplit=True, test_fraction=0.1)
    with pytest.raises(ValueError, match='test_folder applies only to a pre-split root'):
        configs.local('/tmp/w', '/tmp/d', presplit=False, test_folder=True)
    assert configs.local('/tmp/w', '/tmp/d', presplit=False, test_fraction=0.1).has_test_split


def test_a_setting_name_names_one_field():
    with pytest.raises(ValueError, match="'eval_fraction' is in both ingest and again"):
        stage_settings.owners({'ingest': ingest_settings.Ingest,
                               'again': ingest_settings.Ingest})

    @dataclasses.dataclass(frozen=True)
    class Flat:
        training: trainer_settings.Training = trainer_settings.Training()
        epochs: int = 3
    with pytest.raises(ValueError, match=r"misses the stages \['data_checks'.*\['epochs'\]"):
        stage_settings.check_names(Flat)


def test_the_flags_are_built_without_loading_tensorflow():
    # The runners parse their flags before the Console takes TensorFlow's import-time logs.
    code = ('import sys, argparse; from pipeline import cli; '
            'cli.add_run_flags(argparse.ArgumentParser(), weights_help=""); '
            'print(sorted(m for m in ("tensorflow", "tfx") if m in sys.modules))')
    out = subprocess.run([sys.executable, '-c', code], cwd=data.PROJECT_ROOT, check=True,
                         capture_output=True, text=True, env={'PYTHONPATH': str(data.PROJECT_ROOT)})
    assert out.stdout.strip() == '[]'


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


def test_overrides_by_name_and_replace_keep_the_other_settings_of_each_stage():
    config = configs.local('/tmp/w', '/tmp/d', epochs=4, max_bad_fraction=0.5,
                           max_leak_fraction=0.5)
    again = configs.replace(config, batch_size=8, accuracy_threshold=0.5, symlinks='none',
                            max_label_issue_fraction=0.5)
    assert (again.training.epochs, again.training.batch_size, again.accuracy_threshold) == (
        4, 8, 0.5)
    assert (again.ingest.max_bad_fraction, again.ingest.symlinks) == (0.5, 'none')
    assert (again.quality.max_leak_fraction, again.quality.max_label_issue_fraction) == (0.5, 0.5)
    assert configs.replace(config, training=trainer_settings.Training(seed=3),
                           epochs=2).training == trainer_settings.Training(seed=3, epochs=2)


def test_a_settings_file_is_checked_by_the_training_dataclass():
    assert hyperparameters.values({'epochs': 20.0, 'learning_rate': 1}) == {
        'epochs': 20, 'learning_rate': 1.0}
    with pytest.raises(ValueError, match=r'best.txt: dropout must be in \[0, 1\), got 1.5'):
        hyperparameters.values({'dropout': 1.5}, 'best.txt')
