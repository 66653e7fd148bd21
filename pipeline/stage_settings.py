"""The stages' settings dataclasses nested in PipelineConfig, and their fields by name.

Each stage owns its settings next to its code (a frozen dataclass of models.settings
fields: default, help, check). PipelineConfig holds one of each under the name below;
the runners' flags are derived from their fields (pipeline/cli.py); presets and
configs.replace() take any of their fields by its own name (nest). Light: imports
nothing of TFX, so the runners build their flags before TensorFlow loads.
"""

import dataclasses
from typing import Any, Dict, Mapping

from components.data_quality import settings as quality_settings
from components.data_report import settings as data_checks_settings
from components.image_example_gen import settings as ingest_settings
from models import trainer_settings

# PipelineConfig field -> its settings dataclass, in run order (the flags' groups too).
STAGES = {
    'ingest': ingest_settings.Ingest,
    'data_checks': data_checks_settings.DataChecks,
    'quality': quality_settings.Quality,
    'training': trainer_settings.Training,
}


def owners(stages: Mapping[str, type] = STAGES) -> Dict[str, str]:
    """Setting name -> the PipelineConfig field holding it.

    Raises:
      ValueError: a name in two stages' settings (a flag and an override must name one).
    """
    found = {}
    for stage, kind in stages.items():
        for field in dataclasses.fields(kind):
            if field.name in found:
                raise ValueError(f'setting {field.name!r} is in both {found[field.name]} and '
                                 f'{stage}: a setting has one name')
            found[field.name] = stage
    return found


OWNERS = owners()


def nest(overrides: Mapping[str, Any], current: Mapping[str, Any]) -> Dict[str, Any]:
    """PipelineConfig overrides with the stages' settings among them (epochs=1,
    max_bad_fraction=0.5) moved into their stage's dataclass: that of the overrides if
    given (training=...), else current[stage] (the config's), else the defaults."""
    nested = {k: v for k, v in overrides.items() if k not in OWNERS}
    for stage, kind in STAGES.items():
        given = {k: v for k, v in overrides.items() if OWNERS.get(k) == stage}
        if given:
            start = nested.get(stage) or current.get(stage) or kind()
            nested[stage] = dataclasses.replace(start, **given)
    return nested


def check_names(config_class: type) -> None:
    """Raises ValueError unless config_class (PipelineConfig) holds each stage under its
    STAGES name and none of its own fields has a stage setting's name."""
    own = {field.name for field in dataclasses.fields(config_class)}
    missing = sorted(set(STAGES) - own)
    clash = sorted(own & set(OWNERS))
    if missing or clash:
        raise ValueError(f'{config_class.__name__} misses the stages {missing} or has fields '
                         f'named like a stage setting {clash}')
