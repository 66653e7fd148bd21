"""The Trainer's settings, in one place.

`Training` holds the knobs a user sets (PipelineConfig.training): each field's default,
its help (the runners' command-line flag, `--field-name`, is derived from it) and its
check (models/settings.py). `TrainerSettings`, what run_fn reads from its custom_config, adds what the
pipeline derives (class names, input size, weights). A new setting is one field here
and its use in the code that reads it.
"""

import dataclasses
from typing import Any, Dict, Optional, Sequence

from models import features
from models import settings

MODEL_VARIANTS = ('transfer', 'cnn', 'cnn_augment', 'cnn_preprocess_augment')


@dataclasses.dataclass(frozen=True)
class Training:
    """The Trainer's user settings (README: the Trainer; docs/benchmarks.md for the defaults)."""
    model_variant: str = settings.setting(
        'transfer', "the model: transfer (MobileNetV2's base, frozen, and a new head) or one of "
        "the tutorial's CNNs", choices=MODEL_VARIANTS)
    epochs: int = settings.setting(10, 'epochs of the first phase (the head, or the whole CNN)',
                                   check=settings.AT_LEAST_1)
    batch_size: int = settings.setting(32, 'photos per training step', check=settings.AT_LEAST_1)
    learning_rate: float = settings.setting(1e-3, "Adam's learning rate of the first phase",
                                            check=settings.POSITIVE)
    dropout: float = settings.setting(0.2, 'dropout before the logits', check=settings.FRACTION)
    # Transfer model: after the head, fine-tune the base from layer index
    # fine_tune_from_layer on with the whole model on augmented photos, BatchNorm in
    # inference mode, keeping the epoch with the lowest eval loss (the head's counts).
    fine_tune_from_layer: int = settings.setting(
        100, "index of the first base layer fine-tuning trains (100 of MobileNetV2's 154: "
        'its top 54)', check=settings.NOT_NEGATIVE)
    fine_tune_epochs: int = settings.setting(
        0, 'transfer model: after the head, fine-tune the top of the base for at most this '
        'many epochs (0: off)', check=settings.NOT_NEGATIVE)
    fine_tune_learning_rate: float = settings.setting(1e-5, 'learning rate of fine-tuning',
                                                      check=settings.POSITIVE)
    fine_tune_patience: int = settings.setting(
        2, 'stop fine-tuning after this many epochs without a lower eval loss, keeping the '
        'best (the head counting as one; 0: run every epoch)', check=settings.NOT_NEGATIVE)
    seed: int = settings.setting(42, 'seed of the weights, augmentation and batch order')
    augmentation: str = settings.setting(
        'tutorial', 'augmentation strength of the transfer model (tutorial: flip + rotation)',
        choices=features.AUGMENTATIONS)
    label_smoothing: float = settings.setting(0.0, 'label smoothing of the cross-entropy',
                                              check=settings.FRACTION)
    early_stopping_patience: int = settings.setting(
        0, 'stop after this many epochs without a lower eval loss and keep the best epoch '
        '(0: off); --epochs is then the most it runs', check=settings.NOT_NEGATIVE)
    augmented_views: int = settings.setting(
        3, "transfer model: train the head on the frozen base's features of this many "
        'augmented copies of each training photo, computed once; 0: run the base on freshly '
        'augmented photos every epoch, as the tutorial (README: 3 by measurement)',
        check=settings.NOT_NEGATIVE)
    reduce_lr_patience: int = settings.setting(
        0, 'halve the learning rate of the first phase (the head, or the whole CNN) after '
        'this many epochs without a lower eval loss (0: off)', check=settings.NOT_NEGATIVE)

    def __post_init__(self):
        settings.check_fields(self, Training)
        if self.fine_tune_epochs and self.model_variant != 'transfer':
            raise ValueError('fine_tune_epochs needs the transfer model (a pretrained base), '
                             f'not {self.model_variant!r}')


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainerSettings(Training):
    """What run_fn reads from custom_config (PipelineConfig.trainer_config()): the
    Training settings and what the pipeline derives for them."""
    class_names: Sequence[str]
    image_size: Sequence[int]
    weights: Optional[str]

    @classmethod
    def from_custom_config(cls, custom_config: Dict[str, Any]) -> 'TrainerSettings':
        """The settings in a Trainer's custom_config; every field must be there.

        Raises:
          ValueError: a missing key, or a bad value (naming its field).
        """
        names = {f.name for f in dataclasses.fields(cls)}
        missing = names - set(custom_config)
        if missing:
            raise ValueError(f'Trainer custom_config misses {sorted(missing)}')
        return cls(**{k: custom_config[k] for k in names})
