"""TrainerSettings: the Trainer's settings, read from its custom_config."""

import dataclasses
from typing import Any, Dict, Optional, Sequence


@dataclasses.dataclass(frozen=True)
class TrainerSettings:
    """The knobs of PipelineConfig.trainer_config(), typed."""
    class_names: Sequence[str]
    image_size: Sequence[int]
    model_variant: str
    weights: Optional[str]
    epochs: int
    batch_size: int
    learning_rate: float
    dropout: float
    fine_tune_from_layer: int
    fine_tune_epochs: int
    fine_tune_learning_rate: float
    fine_tune_patience: int
    seed: int
    augmentation: str
    label_smoothing: float
    early_stopping_patience: int
    augmented_views: int

    @classmethod
    def from_custom_config(cls, custom_config: Dict[str, Any]) -> 'TrainerSettings':
        names = {f.name for f in dataclasses.fields(cls)}
        missing = names - set(custom_config)
        if missing:
            raise ValueError(f'Trainer custom_config misses {sorted(missing)}')
        return cls(**{k: custom_config[k] for k in names})
