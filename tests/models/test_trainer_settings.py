"""TrainerSettings: read from the custom_config the pipeline builds for the Trainer."""

import dataclasses

import pytest

from models import trainer_settings
from pipeline import configs


def test_settings_read_every_field_of_the_pipelines_trainer_config():
    custom_config = configs.local('/tmp/w', '/tmp/d').trainer_config()
    settings = trainer_settings.TrainerSettings.from_custom_config(custom_config)
    assert dataclasses.asdict(settings) == {
        field.name: custom_config[field.name]
        for field in dataclasses.fields(trainer_settings.TrainerSettings)}


def test_settings_name_missing_keys():
    custom_config = configs.local('/tmp/w', '/tmp/d').trainer_config()
    del custom_config['seed']
    with pytest.raises(ValueError, match=r"misses \['seed'\]"):
        trainer_settings.TrainerSettings.from_custom_config(custom_config)
