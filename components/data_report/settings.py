"""The DataReport's checks (PipelineConfig.data_checks): default, help and check of each.

The DataReport turns them into the verdict the DataGate stops the run on. Imports nothing
of TFX (pipeline/cli.py derives the runners' flags from these fields).
"""

import dataclasses

from models import settings


@dataclasses.dataclass(frozen=True)
class DataChecks:
    """The thresholds of the label balance, label drift and cross-split duplicate checks."""
    balance_tolerance: float = settings.setting(
        0.2, 'accepted distance of a class share from its fair share 1/K, as a fraction of '
        '1/K (0.2: 40-60% of 2 classes, 8-12% of 10; or what chance gives, if more)',
        check=settings.SHARE)
    label_false_alarm_rate: float = settings.setting(
        0.001, 'chance, per check, that a balanced, randomly split data set fails the label '
        'balance or drift check; the thresholds follow from the counts',
        check=settings.OPEN_FRACTION)
    max_cross_split_duplicates: int = settings.setting(
        0, 'identical images found in two splits above which the run stops',
        check=settings.NOT_NEGATIVE)
    sample_images_per_class: int = settings.setting(
        3, 'sample photos of each class the data report shows', check=settings.NOT_NEGATIVE)

    def __post_init__(self):
        settings.check_fields(self, DataChecks)
