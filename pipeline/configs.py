"""PipelineConfig: every setting of a run, in one frozen dataclass, plus presets.

Nothing happens at import: runners build a config in main(); tests use
`dataclasses.replace(config, epochs=1)`.
"""

import dataclasses
import os
import pathlib
from typing import Mapping, Optional, Tuple

from models import features

PIPELINE_NAME = 'image-classification'
MODEL_NAME = 'image_classifier'

# User code, named by dotted path (resolves wherever this package is installed).
PREPROCESSING_FN = 'models.preprocessing.preprocessing_fn'
RUN_FN = 'models.model.run_fn'

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[1]
CURATED_SCHEMA = str(PROJECT_ROOT / 'schema' / 'schema.pbtxt')
SHARED = PROJECT_ROOT.parent / 'shared'
SHARED_DATA_ROOT = str(SHARED / 'datasets' / 'cats_vs_dogs')
SHARED_WEIGHTS = str(SHARED / 'keras' / 'models' /
                     'mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5')
# Keras downloads the matching ImageNet file itself when online.
IMAGENET = 'imagenet'

# Beam on one machine: DirectRunner in processes, 2 workers (0 = one per core
# can run out of memory with TF in every worker).
LOCAL_BEAM_ARGS = ('--direct_running_mode=multi_processing', '--direct_num_workers=2')

MODEL_VARIANTS = ('transfer', 'cnn', 'cnn_augment', 'cnn_preprocess_augment')


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """All knobs of one pipeline run.

    Paths may be local or any tf.io.gfile URL (gs://...).
    """
    pipeline_root: str
    data_root: str
    serving_dir: str
    labels: Tuple[str, ...] = features.LABELS
    presplit: bool = True
    pipeline_name: str = PIPELINE_NAME
    model_name: str = MODEL_NAME
    beam_pipeline_args: Tuple[str, ...] = LOCAL_BEAM_ARGS
    enable_cache: bool = True

    # ExampleGen
    hash_buckets: Optional[Mapping[str, int]] = None
    max_bad_fraction: float = 0.05
    max_pixels: int = 100_000_000

    # Data validation: None infers a schema with SchemaGen instead.
    schema_path: Optional[str] = CURATED_SCHEMA
    balance_tolerance: float = 0.1      # max |share - 1/K| of each class, per split
    label_drift_threshold: float = 0.1  # L-infinity distance, train vs eval label shares
    max_cross_split_duplicates: int = 0
    sample_images_per_class: int = 3

    # Transform and Trainer
    image_size: Tuple[int, int] = features.IMAGE_SIZE
    model_variant: str = 'transfer'
    compare_variants: Tuple[str, ...] = ()
    weights: str = SHARED_WEIGHTS
    epochs: int = 10
    batch_size: int = 32
    learning_rate: float = 1e-3
    dropout: float = 0.2
    fine_tune_layers: int = 0
    fine_tune_epochs: int = 0
    fine_tune_learning_rate: float = 1e-5
    seed: int = 42

    # Evaluator and Pusher
    accuracy_threshold: float = 0.9
    regression_tolerance: float = 0.01
    push_label: Optional[str] = None
    model_config_file: Optional[str] = None
    warmup_images: int = 5

    def __post_init__(self):
        if len(self.labels) < 2 or len(set(self.labels)) != len(self.labels):
            raise ValueError(f'labels must be at least two distinct names, got {self.labels}')
        for variant in (self.model_variant, *self.compare_variants):
            if variant not in MODEL_VARIANTS:
                raise ValueError(f'model variant {variant!r} is not one of {MODEL_VARIANTS}')
        if self.model_variant in self.compare_variants:
            raise ValueError(f'compare_variants repeats the main variant {self.model_variant!r}')
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f'epochs and batch_size must be >= 1, got {self.epochs}, '
                             f'{self.batch_size}')
        if len(self.image_size) != 2 or min(self.image_size) < 32:
            raise ValueError(f'image_size must be (height, width), each >= 32, '
                             f'got {self.image_size}')
        if not 0.0 <= self.accuracy_threshold <= 1.0:
            raise ValueError(f'accuracy_threshold must be in [0, 1], got {self.accuracy_threshold}')
        if self.fine_tune_epochs and not self.fine_tune_layers:
            raise ValueError('fine_tune_epochs needs fine_tune_layers > 0')

    def trainer_config(self, variant: Optional[str] = None) -> dict:
        """The run knobs handed to run_fn as custom_config (JSON-able)."""
        return {
            'labels': list(self.labels),
            'image_size': list(self.image_size),
            'model_variant': variant or self.model_variant,
            'weights': self.weights,
            'epochs': self.epochs,
            'batch_size': self.batch_size,
            'learning_rate': self.learning_rate,
            'dropout': self.dropout,
            'fine_tune_layers': self.fine_tune_layers,
            'fine_tune_epochs': self.fine_tune_epochs,
            'fine_tune_learning_rate': self.fine_tune_learning_rate,
            'seed': self.seed,
        }

    def transform_config(self) -> dict:
        """What preprocessing_fn reads from custom_config."""
        return {'image_size': list(self.image_size)}


def local(work_dir: str, data_root: str, *, presplit: bool = True,
          labels: Tuple[str, ...] = features.LABELS, **overrides) -> PipelineConfig:
    """Preset for one machine: everything under work_dir, DirectRunner, SQLite MLMD.

    Args:
      work_dir: holds pipeline root, metadata and serving directory.
      data_root: the image folders.
      presplit: data_root has train/ and validation/.
      labels: class folder names.
      **overrides: any PipelineConfig field.

    Returns:
      The config.
    """
    defaults = dict(
        pipeline_root=os.path.join(work_dir, 'pipeline_root'),
        serving_dir=os.path.join(work_dir, 'serving'),
        data_root=data_root, presplit=presplit, labels=tuple(labels),
    )
    defaults.update(overrides)
    return PipelineConfig(**defaults)


def metadata_path(work_dir: str) -> str:
    """SQLite MLMD file of the local preset."""
    return os.path.join(work_dir, 'metadata.sqlite')
