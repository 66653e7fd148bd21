"""The Trainer's settings, in one place.

`Training` holds the knobs a user sets (PipelineConfig.training): each field's default,
its help (the runners' command-line flag, `--field-name`, is derived from it) and its
check. `TrainerSettings`, what run_fn reads from its custom_config, adds what the
pipeline derives (class names, input size, weights). A new setting is one field here
and its use in the code that reads it.
"""

import dataclasses
import numbers
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

from models import features

MODEL_VARIANTS = ('transfer', 'cnn', 'cnn_augment', 'cnn_preprocess_augment')


def _setting(default, help_: str, *, check: Optional[Tuple[Callable[[Any], bool], str]] = None,
             choices: Optional[Sequence[str]] = None):
    """A field of Training: its default, help text, and either a check (a predicate and
    how to say it, e.g. '>= 1') or the choices a string may take."""
    return dataclasses.field(default=default,
                             metadata={'help': help_, 'check': check, 'choices': choices})


_POSITIVE = (lambda v: v > 0, '> 0')
_AT_LEAST_1 = (lambda v: v >= 1, '>= 1')
_NOT_NEGATIVE = (lambda v: v >= 0, '>= 0')
_FRACTION = (lambda v: 0.0 <= v < 1.0, 'in [0, 1)')


@dataclasses.dataclass(frozen=True)
class Training:
    """The Trainer's user settings (README: the Trainer; docs/benchmarks.md for the defaults)."""
    model_variant: str = _setting(
        'transfer', "the model: transfer (MobileNetV2's base, frozen, and a new head) or one of "
        "the tutorial's CNNs", choices=MODEL_VARIANTS)
    epochs: int = _setting(10, 'epochs of the first phase (the head, or the whole CNN)',
                           check=_AT_LEAST_1)
    batch_size: int = _setting(32, 'photos per training step', check=_AT_LEAST_1)
    learning_rate: float = _setting(1e-3, "Adam's learning rate of the first phase",
                                    check=_POSITIVE)
    dropout: float = _setting(0.2, 'dropout before the logits', check=_FRACTION)
    # Transfer model: after the head, fine-tune the base from layer index
    # fine_tune_from_layer on with the whole model on augmented photos, BatchNorm in
    # inference mode, keeping the epoch with the lowest eval loss (the head's counts).
    fine_tune_from_layer: int = _setting(
        100, "index of the first base layer fine-tuning trains (100 of MobileNetV2's 154: "
        'its top 54)', check=_NOT_NEGATIVE)
    fine_tune_epochs: int = _setting(
        0, 'transfer model: after the head, fine-tune the top of the base for at most this '
        'many epochs (0: off)', check=_NOT_NEGATIVE)
    fine_tune_learning_rate: float = _setting(1e-5, 'learning rate of fine-tuning',
                                              check=_POSITIVE)
    fine_tune_patience: int = _setting(
        2, 'stop fine-tuning after this many epochs without a lower eval loss, keeping the '
        'best (the head counting as one; 0: run every epoch)', check=_NOT_NEGATIVE)
    seed: int = _setting(42, 'seed of the weights, augmentation and batch order')
    augmentation: str = _setting(
        'tutorial', 'augmentation strength of the transfer model (tutorial: flip + rotation)',
        choices=features.AUGMENTATIONS)
    label_smoothing: float = _setting(0.0, 'label smoothing of the cross-entropy',
                                      check=_FRACTION)
    early_stopping_patience: int = _setting(
        0, 'stop after this many epochs without a lower eval loss and keep the best epoch '
        '(0: off); --epochs is then the most it runs', check=_NOT_NEGATIVE)
    augmented_views: int = _setting(
        3, "transfer model: train the head on the frozen base's features of this many "
        'augmented copies of each training photo, computed once; 0: run the base on freshly '
        'augmented photos every epoch, as the tutorial (README: 3 by measurement)',
        check=_NOT_NEGATIVE)
    reduce_lr_patience: int = _setting(
        0, 'halve the learning rate of the first phase (the head, or the whole CNN) after '
        'this many epochs without a lower eval loss (0: off)', check=_NOT_NEGATIVE)

    def __post_init__(self):
        for field in dataclasses.fields(Training):
            object.__setattr__(self, field.name, typed(field, getattr(self, field.name)))
        if self.fine_tune_epochs and self.model_variant != 'transfer':
            raise ValueError('fine_tune_epochs needs the transfer model (a pretrained base), '
                             f'not {self.model_variant!r}')


def typed(field: dataclasses.Field, value: Any) -> Any:
    """A Training field's value, checked against the field (its type, then its check or
    choices) and as that type (an integral float for an int, an int for a float).

    Raises:
      ValueError: naming the field, the expected and the given value.
    """
    name, kind = field.name, field.type
    if kind is str:
        if not isinstance(value, str):
            raise ValueError(f'{name} must be a string, got {value!r}')
    elif isinstance(value, bool) or not isinstance(value, numbers.Real) or (
            kind is int and value != int(value)):
        raise ValueError(f'{name} must be {"an integer" if kind is int else "a number"}, '
                         f'got {value!r}')
    value = kind(value)
    choices, check = field.metadata['choices'], field.metadata['check']
    if choices is not None and value not in choices:
        raise ValueError(f'{name} must be one of {tuple(choices)}, got {value!r}')
    if check is not None and not check[0](value):
        raise ValueError(f'{name} must be {check[1]}, got {value!r}')
    return value


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
