"""PipelineConfig: every setting of a run, in one frozen dataclass, plus presets.

Nothing happens at import: runners build a config in main(); tests use
`dataclasses.replace(config, epochs=1)`.
"""

import dataclasses
import os
import pathlib
from typing import Optional, Tuple

from components.data_quality import near_duplicates
from models import eval_answers
from models import features
from models import hyperparameters
from models import profile
from models import tflite_check
from models import tflite_export
from models import weights as weights_lib

PIPELINE_NAME = 'image-classification'
MODEL_NAME = 'image_classifier'

# User code, named by dotted path (resolves wherever this package is installed).
PREPROCESSING_FN = 'models.preprocessing.preprocessing_fn'
RUN_FN = 'models.model.run_fn'
TUNER_FN = 'models.tuning.tuner_fn'

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[1]
CURATED_SCHEMA = str(PROJECT_ROOT / 'schema' / 'schema.pbtxt')
SHARED = PROJECT_ROOT.parent / 'shared'
SHARED_DATA_ROOT = str(SHARED / 'datasets' / 'cats_vs_dogs')
SHARED_WEIGHTS = str(SHARED / 'keras' / 'models' /
                     'mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5')
# Keras downloads the matching ImageNet file itself when online.
IMAGENET = weights_lib.IMAGENET

# Beam on one machine. Up to IN_MEMORY_MAX_IMAGES images the DirectRunner runs in
# the pipeline's own process: starting worker processes (each imports TF) costs
# more than a second core saves (1,000 photos: ExampleGen 3 s instead of 25 s,
# StatisticsGen 4 s instead of 21 s, Evaluator 7 s instead of 24 s). Above it, 2
# worker processes (0 = one per core can run out of memory with TF in every worker).
# In-process is the DirectRunner's default mode, so it takes no arguments, and TFX
# then skips building a package of itself for remote workers (it does so for every
# Beam component whenever Beam arguments are given: 1.3 s each, 6 s a run, and a
# folder left in /tmp each time).
IN_MEMORY_BEAM_ARGS = ()
MULTI_PROCESS_BEAM_ARGS = ('--direct_running_mode=multi_processing', '--direct_num_workers=2')
IN_MEMORY_MAX_IMAGES = 20_000

MODEL_VARIANTS = ('transfer', 'cnn', 'cnn_augment', 'cnn_preprocess_augment')


@dataclasses.dataclass(frozen=True)
class InfraValidation:
    """The InfraValidator's settings: the candidate in our server before it is pushed.

    The server must load the candidate within `load_timeout_seconds` (its start
    included), answer each request within `request_timeout_seconds`, and answer the
    first `sample_images` eval images as the Trainer did: the same class, every
    probability within `probability_tolerance` (docs/infra_validator.md).
    """
    sample_images: int = 16
    probability_tolerance: float = 1e-3
    load_timeout_seconds: float = 300.0
    request_timeout_seconds: float = 30.0

    def __post_init__(self):
        if not 1 <= self.sample_images <= eval_answers.SAMPLE_ANSWERS:
            raise ValueError(f'infra validation sample_images must be in [1, '
                             f'{eval_answers.SAMPLE_ANSWERS}] (the answers the Trainer '
                             f'records), got {self.sample_images}')
        if not 0.0 <= self.probability_tolerance < 1.0:
            raise ValueError('infra validation probability_tolerance must be in [0, 1), got '
                             f'{self.probability_tolerance}')
        if self.load_timeout_seconds <= 0 or self.request_timeout_seconds <= 0:
            raise ValueError('infra validation timeouts must be > 0, got '
                             f'{self.load_timeout_seconds}, {self.request_timeout_seconds}')


@dataclasses.dataclass(frozen=True)
class Tuning:
    """The Tuner's settings (models/tuning.py, docs in README: The Tuner).

    With `enabled`, a Tuner between Transform and the Trainer searches the transfer
    model's head settings (hyperparameters.SPACE) in `trials` trials on the frozen
    features of at most `max_photos` training photos, each trial scored by `folds`-fold
    cross-validation on them (never on the eval or test split); the Trainer trains with
    the best. Off by default: it costs more than a fifth of a run (docs/benchmarks.md).
    """
    enabled: bool = False
    trials: int = hyperparameters.TRIALS
    folds: int = hyperparameters.FOLDS
    max_photos: int = hyperparameters.MAX_PHOTOS

    def __post_init__(self):
        self.search_settings()   # raises on a bad value

    def search_settings(self) -> hyperparameters.SearchSettings:
        """What tuner_fn reads from custom_config[hyperparameters.CONFIG_KEY]."""
        return hyperparameters.SearchSettings(trials=self.trials,
                                              folds=self.folds,
                                              max_photos=self.max_photos)


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """All knobs of one pipeline run.

    Paths may be local or any tf.io.gfile URL (gs://...).
    """
    pipeline_root: str
    data_root: str
    serving_dir: str
    class_names: Tuple[str, ...] = features.CLASS_NAMES
    presplit: bool = True
    pipeline_name: str = PIPELINE_NAME
    model_name: str = MODEL_NAME
    beam_pipeline_args: Tuple[str, ...] = MULTI_PROCESS_BEAM_ARGS
    enable_cache: bool = True

    # ExampleGen. A pre-split root may hold test/ (test_folder); a root without
    # split folders is split per class: eval_fraction to eval, test_fraction to test.
    test_folder: bool = False
    eval_fraction: float = features.EVAL_FRACTION
    test_fraction: float = 0.0
    max_bad_fraction: float = features.MAX_BAD_FRACTION
    max_pixels: int = features.MAX_PIXELS
    # A user's folder: files above max_file_bytes are bad, never read; which symbolic
    # links are followed ('follow', 'inside' the root, 'none'); whether the same image
    # filed under two classes stops the run (otherwise a warning).
    max_file_bytes: int = features.MAX_FILE_BYTES
    symlinks: str = features.SYMLINKS
    stop_on_conflicting_labels: bool = features.STOP_ON_CONFLICTING_LABELS

    # Data validation. The schema template: its label domain is set to `class_names`.
    schema_path: str = CURATED_SCHEMA
    # A class may be this far from 1/K of a split (or what chance gives, if more).
    balance_tolerance: float = 0.2   # of the fair share 1/K: 40-60% of 2 classes
    # Chance, per check, that a balanced, randomly split data set fails the balance
    # or the train-vs-eval label drift check; their thresholds follow from the counts.
    label_false_alarm_rate: float = 0.001
    max_cross_split_duplicates: int = 0
    sample_images_per_class: int = 3
    # Data quality (components/data_quality, docs/data_quality.md): possible label errors
    # and near-duplicates, on the frozen base's features (computed once: the Trainer
    # reuses the eval split's). A held-out split whose share of photos with a near-copy
    # in train is above max_leak_fraction stops the run at the DataGate; so does a share
    # of photos flagged as possibly mislabelled above max_label_issue_fraction (1.0:
    # they are listed and warned about, never stop).
    data_quality: bool = True
    near_duplicate_similarity: float = near_duplicates.SIMILARITY
    max_leak_fraction: float = 0.01
    max_label_issue_fraction: float = 1.0

    # Transform and Trainer. None: the weights' own size (see input_size()).
    image_size: Optional[Tuple[int, int]] = None
    model_variant: str = 'transfer'
    compare_variants: Tuple[str, ...] = ()
    weights: str = SHARED_WEIGHTS
    epochs: int = 10
    batch_size: int = 32
    learning_rate: float = 1e-3
    dropout: float = 0.2
    # Transfer model: after the head, fine-tune the base from layer index
    # fine_tune_from_layer on (MobileNetV2 has 154 layers; 100: its top 54, the last
    # blocks) with the whole model on augmented photos, BatchNorm in inference mode, at
    # fine_tune_learning_rate, for at most fine_tune_epochs (0: off), keeping the epoch
    # with the lowest eval loss (the head's counts) and stopping after
    # fine_tune_patience epochs without a lower one. Default off: docs/benchmarks.md.
    fine_tune_from_layer: int = 100
    fine_tune_epochs: int = 0
    fine_tune_learning_rate: float = 1e-5
    fine_tune_patience: int = 2
    seed: int = 42
    augmentation: str = 'tutorial'      # none, light, tutorial (flip + rotation), strong
    label_smoothing: float = 0.0
    early_stopping_patience: int = 0    # epochs without a lower eval loss; 0: off
    # Transfer model: its head trains on the frozen base's features of this many
    # augmented copies of each training photo, computed once; 0: the base runs on
    # freshly augmented photos every epoch (the tutorial's way). README: 3 by measurement.
    augmented_views: int = 3
    # The Tuner (off by default): the best head settings on folds of the train split.
    tuning: Tuning = Tuning()

    # Evaluator, ReferenceProfile and Pusher
    accuracy_threshold: float = 0.9
    profile_images: int = profile.REFERENCE_IMAGES  # train and eval images each in the reference profile
    regression_tolerance: float = 0.01
    version_label: Optional[str] = None
    model_config_file: Optional[str] = None
    warmup_images: int = 5
    # InfraValidator, between the Evaluator and the Pusher.
    infra_validation: InfraValidation = InfraValidation()

    # TFLiteExport (after the Trainer): these variants of the trained model, each checked
    # on the eval split against the SavedModel and refused when it loses more accuracy
    # than tflite_max_accuracy_drop; () skips the stage.
    tflite_variants: Tuple[str, ...] = (tflite_export.FLOAT16, tflite_export.INT8)
    tflite_max_accuracy_drop: float = tflite_check.MAX_ACCURACY_DROP
    # BulkInferrer (after the Evaluator): a local folder of unlabelled photos the blessed
    # model scores into a CSV; None skips the stage.
    bulk_inference_images: Optional[str] = None

    def __post_init__(self):
        features.class_names(self.class_names)
        for variant in (self.model_variant, *self.compare_variants):
            if variant not in MODEL_VARIANTS:
                raise ValueError(f'model variant {variant!r} is not one of {MODEL_VARIANTS}')
        if self.model_variant in self.compare_variants:
            raise ValueError(f'compare_variants repeats the main variant {self.model_variant!r}')
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f'epochs and batch_size must be >= 1, got {self.epochs}, '
                             f'{self.batch_size}')
        if self.image_size is not None and (len(self.image_size) != 2
                                            or min(self.image_size) < 32):
            raise ValueError(f'image_size must be (height, width), each >= 32, '
                             f'got {self.image_size}')
        if not 0.0 < self.label_false_alarm_rate < 1.0:
            raise ValueError('label_false_alarm_rate must be in (0, 1), got '
                             f'{self.label_false_alarm_rate}')
        if not 0.0 <= self.accuracy_threshold <= 1.0:
            raise ValueError(f'accuracy_threshold must be in [0, 1], got {self.accuracy_threshold}')
        if self.presplit and self.test_fraction:
            raise ValueError('test_fraction applies to a root without split folders; a '
                             'pre-split root holds its test split in test/')
        if not self.presplit and self.test_folder:
            raise ValueError('test_folder applies only to a pre-split root')
        if self.augmentation not in features.AUGMENTATIONS:
            raise ValueError(f'augmentation must be one of {features.AUGMENTATIONS}, got '
                             f'{self.augmentation!r}')
        if not 0.0 <= self.label_smoothing < 1.0 or self.early_stopping_patience < 0:
            raise ValueError('label_smoothing must be in [0, 1) and early_stopping_patience '
                             f'>= 0, got {self.label_smoothing}, {self.early_stopping_patience}')
        if self.symlinks not in features.SYMLINK_POLICIES or self.max_file_bytes <= 0:
            raise ValueError(f'symlinks must be one of {features.SYMLINK_POLICIES} and '
                             f'max_file_bytes > 0, got {self.symlinks!r}, {self.max_file_bytes}')
        if self.augmented_views < 0:
            raise ValueError(f'augmented_views must be >= 0, got {self.augmented_views}')
        if self.tuning.enabled and (self.model_variant != 'transfer'
                                    or self.augmented_views < 1):
            raise ValueError('the Tuner tunes the transfer model\'s head on cached features: '
                             'it needs model_variant transfer and augmented_views >= 1, got '
                             f'{self.model_variant!r}, {self.augmented_views}')
        if min(self.fine_tune_from_layer, self.fine_tune_epochs, self.fine_tune_patience) < 0:
            raise ValueError('fine_tune_from_layer, fine_tune_epochs and fine_tune_patience '
                             f'must be >= 0, got {self.fine_tune_from_layer}, '
                             f'{self.fine_tune_epochs}, {self.fine_tune_patience}')
        if self.fine_tune_epochs and self.model_variant != 'transfer':
            raise ValueError('fine_tune_epochs needs the transfer model (a pretrained base), '
                             f'not {self.model_variant!r}')
        if not self.fine_tune_learning_rate > 0:
            raise ValueError(f'fine_tune_learning_rate must be > 0, got '
                             f'{self.fine_tune_learning_rate}')
        if not (0.0 <= self.max_leak_fraction <= 1.0
                and 0.0 <= self.max_label_issue_fraction <= 1.0):
            raise ValueError('max_leak_fraction and max_label_issue_fraction must be in [0, 1], '
                             f'got {self.max_leak_fraction}, {self.max_label_issue_fraction}')
        unknown = [v for v in self.tflite_variants if v not in tflite_export.VARIANTS]
        if unknown or len(set(self.tflite_variants)) != len(self.tflite_variants):
            raise ValueError(f'tflite_variants must be distinct names of '
                             f'{tflite_export.VARIANTS}, got {self.tflite_variants}')
        if self.tflite_max_accuracy_drop < 0:
            raise ValueError('tflite_max_accuracy_drop must be >= 0, got '
                             f'{self.tflite_max_accuracy_drop}')

    @property
    def runs_data_quality(self) -> bool:
        """Whether the DataQuality stage runs: asked for, with pretrained weights for its
        features (random weights would tell nothing)."""
        return self.data_quality and bool(self.weights)

    @property
    def has_test_split(self) -> bool:
        """Whether a held-out test split is made (test/, or test_fraction > 0)."""
        return self.test_folder if self.presplit else self.test_fraction > 0

    @property
    def frozen_embedding(self) -> bool:
        """Whether the model's embedding (its last layer's input) is the same function before
        and after training: the transfer model's frozen base, not fine-tuned. Then the train
        images' embeddings are as good a reference for monitoring as the eval images'."""
        return self.model_variant == 'transfer' and not self.fine_tune_epochs

    def input_size(self) -> Tuple[Tuple[int, int], str]:
        """The model's input size and why: explicit, the weights' native size, or the tutorial's."""
        return weights_lib.input_size(self.weights, self.model_variant, self.image_size)

    def trainer_config(self, variant: Optional[str] = None) -> dict:
        """The run knobs handed to run_fn as custom_config (JSON-able). A compared
        variant without a pretrained base (compare_variants) is never fine-tuned."""
        size, reason = self.input_size()
        variant = variant or self.model_variant
        return {
            'class_names': list(self.class_names),
            'image_size': list(size),
            'image_size_reason': reason,
            'model_variant': variant,
            'weights': self.weights,
            'epochs': self.epochs,
            'batch_size': self.batch_size,
            'learning_rate': self.learning_rate,
            'dropout': self.dropout,
            'fine_tune_from_layer': self.fine_tune_from_layer,
            'fine_tune_epochs': self.fine_tune_epochs if variant == 'transfer' else 0,
            'fine_tune_learning_rate': self.fine_tune_learning_rate,
            'fine_tune_patience': self.fine_tune_patience,
            'seed': self.seed,
            'augmentation': self.augmentation,
            'label_smoothing': self.label_smoothing,
            'early_stopping_patience': self.early_stopping_patience,
            'augmented_views': self.augmented_views,
        }

    def tuner_config(self) -> dict:
        """What tuner_fn reads from custom_config: the main Trainer's settings (the
        Tuner trains heads as it does) and the search's."""
        return {**self.trainer_config(),
                hyperparameters.CONFIG_KEY: dataclasses.asdict(self.tuning.search_settings())}

    def transform_config(self) -> dict:
        """What preprocessing_fn reads from custom_config."""
        return {'image_size': list(self.input_size()[0])}


def local(work_dir: str, data_root: str, *, presplit: bool = True,
          class_names: Tuple[str, ...] = features.CLASS_NAMES, test_folder: bool = False,
          images: Optional[int] = None, **overrides) -> PipelineConfig:
    """Preset for one machine: everything under work_dir, DirectRunner, SQLite MLMD.

    Args:
      work_dir: holds pipeline root, metadata and serving directory.
      data_root: the image folders.
      presplit: data_root has train/ and validation/.
      class_names: class folder names.
      test_folder: a pre-split data_root also holds test/.
      images: how many image files the data root holds (DataRoot.images): it picks
        the Beam running mode (local_beam_args); None when unknown.
      **overrides: any PipelineConfig field.

    Returns:
      The config.
    """
    defaults = dict(
        pipeline_root=os.path.join(work_dir, 'pipeline_root'),
        serving_dir=os.path.join(work_dir, 'serving'),
        data_root=data_root, presplit=presplit, class_names=tuple(class_names),
        test_folder=test_folder,
        beam_pipeline_args=local_beam_args(images),
    )
    defaults.update(overrides)
    return PipelineConfig(**defaults)


def local_beam_args(images: Optional[int]) -> Tuple[str, ...]:
    """DirectRunner arguments for a data set of this many images (None: unknown, so large)."""
    if images is not None and images <= IN_MEMORY_MAX_IMAGES:
        return IN_MEMORY_BEAM_ARGS
    return MULTI_PROCESS_BEAM_ARGS


def metadata_path(work_dir: str) -> str:
    """SQLite MLMD file of the local preset."""
    return os.path.join(work_dir, 'metadata.sqlite')


# Vertex AI Pipelines / Kubeflow Pipelines v2 (kubeflow_v2_runner.py).

# Where the Dockerfile puts (and installs, editable) this project in the pipeline image.
IMAGE_PROJECT_DIR = '/pipeline'
# The curated schema as the containers see it. The compiled spec carries the path as a
# string, so it must name the image's copy, not the compiling machine's CURATED_SCHEMA.
IMAGE_CURATED_SCHEMA = (
    f'{IMAGE_PROJECT_DIR}/{pathlib.Path(CURATED_SCHEMA).relative_to(PROJECT_ROOT).as_posix()}')
_CLOUD_SCHEME = 'gs://'


def dataflow_beam_args(*, project: str, region: str, temp_location: str, image: str,
                       extra: Tuple[str, ...] = ()) -> Tuple[str, ...]:
    """Beam arguments that run every Beam-based component on Dataflow.

    Args:
      project: Google Cloud project of the Dataflow jobs.
      region: Dataflow region, e.g. us-central1.
      temp_location: gs:// folder for Dataflow's temporary and staging files.
      image: the pipeline image. Its base (tensorflow/tfx) is a Beam SDK container,
        so Dataflow workers run it and import this package (our ExampleGen's
        ptransform, preprocessing_fn) exactly as the component containers do.
      extra: more Beam arguments, appended (a later flag overrides an earlier one).

    Returns:
      The arguments, in order.
    """
    return ('--runner=DataflowRunner', f'--project={project}', f'--region={region}',
            f'--temp_location={temp_location}', f'--sdk_container_image={image}', *extra)


def vertex(*, project: str, region: str, image: str, data_root: str, pipeline_root: str,
           serving_dir: str, temp_location: str,
           class_names: Tuple[str, ...] = features.CLASS_NAMES,
           presplit: bool = True, test_folder: bool = False,
           extra_beam_args: Tuple[str, ...] = (),
           **overrides) -> PipelineConfig:
    """Preset for Vertex AI Pipelines (or any Kubeflow Pipelines v2 backend) with Dataflow.

    Every path is a gs:// URL, because the component containers and the Dataflow
    workers cannot see the compiling machine's disk. The weights are Keras'
    'imagenet' download (the shared weights file is not in the cloud). Labels and
    layout are passed in: compiling reads nothing from the data root. The schema
    is the image's copy of the curated template, with these class names as the label's domain.

    Args:
      project: Google Cloud project (Dataflow jobs).
      region: Google Cloud region (Dataflow jobs).
      image: the pipeline image built from the Dockerfile (also the Dataflow worker image).
      data_root: gs:// image folders, laid out as for the local preset.
      pipeline_root: gs:// home of the pipeline's artifacts.
      serving_dir: gs:// serving directory; models go to <serving_dir>/<model_name>/.
      temp_location: gs:// folder for Dataflow's temporary files.
      class_names: class folder names, sorted.
      presplit: data_root has train/ and validation/.
      test_folder: a pre-split data_root also has test/.
      extra_beam_args: Beam arguments appended to the Dataflow ones.
      **overrides: any PipelineConfig field (beam_pipeline_args replaces the Dataflow
        arguments, e.g. for Flink or Spark).

    Returns:
      The config.

    Raises:
      ValueError: an empty project, region or image, or a path that is not gs://.
    """
    for name, value in (('project', project), ('region', region), ('image', image)):
        if not value or not value.strip():
            raise ValueError(f'{name} must not be empty, got {value!r}')
    for name, url in (('data_root', data_root), ('pipeline_root', pipeline_root),
                      ('serving_dir', serving_dir), ('temp_location', temp_location)):
        if not url.startswith(_CLOUD_SCHEME) or len(url) <= len(_CLOUD_SCHEME):
            raise ValueError(f'{name} must be a gs:// URL (containers and Dataflow workers '
                             f'cannot read a local path), got {url!r}')
    class_names = tuple(class_names)
    defaults = dict(
        data_root=data_root, pipeline_root=pipeline_root, serving_dir=serving_dir,
        class_names=class_names, presplit=presplit, test_folder=test_folder, weights=IMAGENET,
        beam_pipeline_args=dataflow_beam_args(project=project, region=region,
                                              temp_location=temp_location, image=image,
                                              extra=tuple(extra_beam_args)),
        schema_path=IMAGE_CURATED_SCHEMA,
    )
    defaults.update(overrides)
    return PipelineConfig(**defaults)
