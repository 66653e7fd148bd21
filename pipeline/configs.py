"""PipelineConfig: every setting of a run, in one frozen dataclass, plus presets.

Nothing happens at import but a check of the settings' names: runners build a config in
main(); tests use `configs.replace(config, epochs=1)` (a stage's setting goes into its
dataclass: `training`, `ingest`, ...; pipeline/stage_settings.py).
"""

import dataclasses
import os
import pathlib
from typing import Optional, Tuple

from components.data_quality import settings as quality_settings
from components.data_report import settings as data_checks_settings
from components.image_example_gen import settings as ingest_settings
from models import eval_answers
from models import features
from models import hyperparameters
from models import profile
from models import tflite_check
from models import tflite_export
from models import trainer_settings
from models import weights as weights_lib
from pipeline import stage_settings

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

    # The data root's layout, found by the runner (components/image_example_gen/layout.py):
    # presplit above; a pre-split root may also hold test/, the held-out test split.
    test_folder: bool = False
    # ImageExampleGen's settings: how the folders are read, and split without split folders.
    ingest: ingest_settings.Ingest = ingest_settings.Ingest()

    # Data validation. The schema template: its label domain is set to `class_names`.
    schema_path: str = CURATED_SCHEMA
    # The DataReport's checks, whose verdict the DataGate stops the run on.
    data_checks: data_checks_settings.DataChecks = data_checks_settings.DataChecks()
    # DataQuality (components/data_quality, docs/data_quality.md): label issues and
    # near-duplicates on the frozen base's features (computed once: the Trainer reuses
    # the eval split's); its problems join the DataGate's verdict.
    quality: quality_settings.Quality = quality_settings.Quality()

    # Transform and Trainer. None: the weights' own size (see input_size()).
    image_size: Optional[Tuple[int, int]] = None
    compare_variants: Tuple[str, ...] = ()
    weights: str = SHARED_WEIGHTS
    # The Trainer's settings (models/trainer_settings.py: defaults, help, checks).
    training: trainer_settings.Training = trainer_settings.Training()
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
        for variant in self.compare_variants:
            if variant not in trainer_settings.MODEL_VARIANTS:
                raise ValueError(f'model variant {variant!r} is not one of '
                                 f'{trainer_settings.MODEL_VARIANTS}')
        if self.training.model_variant in self.compare_variants:
            raise ValueError('compare_variants repeats the main variant '
                             f'{self.training.model_variant!r}')
        if self.image_size is not None and (len(self.image_size) != 2
                                            or min(self.image_size) < 32):
            raise ValueError(f'image_size must be (height, width), each >= 32, '
                             f'got {self.image_size}')
        if not 0.0 <= self.accuracy_threshold <= 1.0:
            raise ValueError(f'accuracy_threshold must be in [0, 1], got {self.accuracy_threshold}')
        self.ingest.check_layout(presplit=self.presplit, test_folder=self.test_folder)
        if self.tuning.enabled and (self.training.model_variant != 'transfer'
                                    or self.training.augmented_views < 1):
            raise ValueError('the Tuner tunes the transfer model\'s head on cached features: '
                             'it needs model_variant transfer and augmented_views >= 1, got '
                             f'{self.training.model_variant!r}, {self.training.augmented_views}')
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
        return self.quality.data_quality and bool(self.weights)

    @property
    def has_test_split(self) -> bool:
        """Whether a held-out test split is made (test/, or test_fraction > 0)."""
        return self.test_folder if self.presplit else self.ingest.test_fraction > 0

    @property
    def frozen_embedding(self) -> bool:
        """Whether the model's embedding (its last layer's input) is the same function before
        and after training: the transfer model's frozen base, not fine-tuned. Then the train
        images' embeddings are as good a reference for monitoring as the eval images'."""
        return self.training.model_variant == 'transfer' and not self.training.fine_tune_epochs

    def input_size(self) -> Tuple[Tuple[int, int], str]:
        """The model's input size and why: explicit, the weights' native size, or the tutorial's."""
        return weights_lib.input_size(self.weights, self.training.model_variant, self.image_size)

    def trainer_config(self, variant: Optional[str] = None) -> dict:
        """The run knobs handed to run_fn as custom_config (JSON-able). A compared
        variant without a pretrained base (compare_variants) is never fine-tuned."""
        size, reason = self.input_size()
        variant = variant or self.training.model_variant
        training = dataclasses.replace(
            self.training, model_variant=variant,
            fine_tune_epochs=self.training.fine_tune_epochs if variant == 'transfer' else 0)
        return {
            'class_names': list(self.class_names),
            'image_size': list(size),
            'image_size_reason': reason,
            'weights': self.weights,
            **dataclasses.asdict(training),
        }

    def tuner_config(self) -> dict:
        """What tuner_fn reads from custom_config: the main Trainer's settings (the
        Tuner trains heads as it does) and the search's."""
        return {**self.trainer_config(),
                hyperparameters.CONFIG_KEY: dataclasses.asdict(self.tuning.search_settings())}

    def transform_config(self) -> dict:
        """What preprocessing_fn reads from custom_config."""
        return {'image_size': list(self.input_size()[0])}


# A stage setting's name names one field (presets, replace(), flags): checked at import.
stage_settings.check_names(PipelineConfig)


def replace(config: PipelineConfig, **overrides) -> PipelineConfig:
    """dataclasses.replace that also takes a stage's settings by name (epochs=1: the
    config's training with epochs 1; stage_settings.nest)."""
    current = {stage: getattr(config, stage) for stage in stage_settings.STAGES}
    return dataclasses.replace(config, **stage_settings.nest(overrides, current))


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
      **overrides: any PipelineConfig field, or a stage's setting by name (replace()).

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
    return PipelineConfig(**stage_settings.nest(defaults, {}))


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
      **overrides: any PipelineConfig field or stage setting (beam_pipeline_args replaces the Dataflow
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
    return PipelineConfig(**stage_settings.nest(defaults, {}))
