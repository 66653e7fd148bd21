"""Fine-tuning's settings: one place (PipelineConfig), flags derived, checked when built."""

import argparse

import pytest

from pipeline import cli
from pipeline import configs


def test_fine_tuning_flags_reach_the_trainer_and_a_compared_cnn_is_never_fine_tuned():
    parser = argparse.ArgumentParser()
    cli.add_run_flags(parser, weights_help='')
    args = parser.parse_args(['--fine-tune-epochs', '3', '--fine-tune-from-layer', '120',
                              '--fine-tune-learning-rate', '2e-5', '--fine-tune-patience', '0',
                              '--compare-variants', 'cnn'])
    config = configs.local('/tmp/w', '/tmp/d', **cli.run_overrides(args))
    trainer = config.trainer_config()
    assert {k: trainer[k] for k in ('fine_tune_epochs', 'fine_tune_from_layer',
                                    'fine_tune_learning_rate', 'fine_tune_patience')} == {
        'fine_tune_epochs': 3, 'fine_tune_from_layer': 120, 'fine_tune_learning_rate': 2e-5,
        'fine_tune_patience': 0}
    assert config.trainer_config('cnn')['fine_tune_epochs'] == 0
    assert not config.frozen_embedding      # the reference profile embeds eval images only
    default = configs.local('/tmp/w', '/tmp/d')
    assert default.trainer_config()['fine_tune_epochs'] == 0 and default.frozen_embedding


@pytest.mark.parametrize('overrides, message', [
    (dict(fine_tune_epochs=2, model_variant='cnn'), 'needs the transfer model'),
    (dict(fine_tune_from_layer=-1), 'fine_tune_from_layer'),
    (dict(fine_tune_patience=-1), 'fine_tune_patience'),
    (dict(fine_tune_learning_rate=0.0), 'fine_tune_learning_rate'),
])
def test_bad_fine_tuning_settings_stop_the_config(overrides, message):
    with pytest.raises(ValueError, match=message):
        configs.local('/tmp/w', '/tmp/d', **overrides)
