"""create_pipeline(config) -> tfx.dsl.Pipeline. Wiring only; no logic, no I/O.

The same function is compiled by local_runner.py (LocalDagRunner) and
kubeflow_v2_runner.py (Kubeflow Pipelines v2 / Vertex AI).
"""

import dataclasses
import json
import os
from typing import NamedTuple, Optional

import tensorflow_model_analysis as tfma
# The modules tfx.v1 re-exports, imported directly: `from tfx import v1` also
# loads the Google Cloud extensions (aiplatform): seconds of every run's start-up
# (docs/benchmarks.md).
from tfx.components.evaluator.component import Evaluator
from tfx.components.example_validator.component import ExampleValidator
from tfx.components.statistics_gen.component import StatisticsGen
from tfx.components.transform.component import Transform
from tfx.dsl.components.base import base_node
from tfx.dsl.components.base import executor_spec
from tfx.dsl.components.common.resolver import Resolver
from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import (
    LatestBlessedModelStrategy)
from tfx.orchestration import pipeline as tfx_pipeline
from tfx.proto import trainer_pb2
from tfx.types import channel
from tfx.types import standard_artifacts

from components import artifacts
from components.bulk_inferrer.component import BulkInferrer
from components.data_gate.component import DataGate
from components.data_quality.component import DataQuality
from components.data_report.component import DataReport
from components.image_example_gen.component import ImageExampleGen
from components.image_pusher.component import ImagePusher
from components.image_trainer.component import ImageTrainer
from components.image_schema_gen.component import ImageSchemaGen
from components.infra_validator.component import InfraValidator
from components.tuner.component import ImageTuner
from components.reference_profile.component import ReferenceProfile
from components.tflite_export.component import TFLiteExport
from models import features
from pipeline import configs
from pipeline import nodes


class DataStage(NamedTuple):
    """The components that read and validate the data, in run order."""
    example_gen: base_node.BaseNode
    schema_gen: base_node.BaseNode
    statistics_gen: base_node.BaseNode
    example_validator: base_node.BaseNode
    data_report: base_node.BaseNode
    data_gate: base_node.BaseNode
    data_quality: Optional[base_node.BaseNode] = None   # None: PipelineConfig.runs_data_quality


def data_components(config: configs.PipelineConfig) -> DataStage:
    """ImageExampleGen through DataGate: everything that validates the data."""
    class_names_json = json.dumps(list(config.class_names))
    # Image folders -> tf.train.Examples, with labels.txt and a report on every file.
    example_gen = ImageExampleGen(
        input_base=config.data_root, class_names=config.class_names, presplit=config.presplit,
        test_folder=config.test_folder,
        **dataclasses.asdict(config.ingest)).with_id(nodes.EXAMPLE_GEN)
    # The curated schema, its label domain set to this data set's classes.
    schema_gen = ImageSchemaGen(schema_file=config.schema_path,
                                class_names=class_names_json).with_id(nodes.SCHEMA_GEN)
    # Per-split feature statistics (TFDV); the schema tells TFDV the image is an image.
    statistics_gen = StatisticsGen(
        examples=example_gen.outputs['examples'],
        schema=schema_gen.outputs['schema']).with_id(nodes.STATISTICS_GEN)
    # Statistics against the schema, per split.
    example_validator = ExampleValidator(
        statistics=statistics_gen.outputs['statistics'],
        schema=schema_gen.outputs['schema']).with_id(nodes.EXAMPLE_VALIDATOR)
    # Label issues and near-duplicate leaks on the frozen base's features (kept for the Trainer).
    data_quality = DataQuality(
        examples=example_gen.outputs['examples'], weights=config.weights,
        image_size=config.input_size()[0],
        near_duplicate_similarity=config.quality.near_duplicate_similarity,
        max_leak_fraction=config.quality.max_leak_fraction,
        max_label_issue_fraction=config.quality.max_label_issue_fraction,
    ).with_id(nodes.DATA_QUALITY) if config.runs_data_quality else None
    # Label balance, train/eval label drift, leakage, anomalies -> verdict + HTML report.
    data_report = DataReport(
        examples=example_gen.outputs['examples'],
        statistics=statistics_gen.outputs['statistics'],
        schema=schema_gen.outputs['schema'],
        anomalies=example_validator.outputs['anomalies'],
        class_names_json=class_names_json,
        **dataclasses.asdict(config.data_checks),
        data_quality=data_quality.outputs['report'] if data_quality else None,
    ).with_id(nodes.DATA_REPORT)
    # Stops the run here when the verdict failed (the report above is kept).
    data_gate = DataGate(report=data_report.outputs['report']).with_id(nodes.DATA_GATE)
    return DataStage(example_gen, schema_gen, statistics_gen, example_validator, data_report,
                     data_gate, data_quality)


def eval_config(config: configs.PipelineConfig, *, gate: bool = True) -> tfma.EvalConfig:
    """TFMA: accuracy, per-class metrics, confusion matrix; with gate=True the accuracy
    gate (absolute and against the last blessed model)."""
    class_ids = list(range(len(config.class_names)))
    threshold = tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(
            lower_bound={'value': config.accuracy_threshold}),
        change_threshold=tfma.GenericChangeThreshold(
            direction=tfma.MetricDirection.HIGHER_IS_BETTER,
            absolute={'value': -config.regression_tolerance})) if gate else None
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(
            signature_name=features.EXAMPLES_SIGNATURE, label_key=features.LABEL_KEY,
            prediction_key=features.SCORES_OUTPUT, model_type=tfma.TF_GENERIC)],
        slicing_specs=[tfma.SlicingSpec()],
        metrics_specs=[
            tfma.MetricsSpec(metrics=[
                tfma.MetricConfig(class_name='ExampleCount'),
                tfma.MetricConfig(class_name='SparseCategoricalAccuracy', threshold=threshold),
                tfma.MetricConfig(class_name='MultiClassConfusionMatrixPlot'),
            ]),
            tfma.MetricsSpec(
                metrics=[tfma.MetricConfig(class_name=name)
                         for name in ('AUC', 'Precision', 'Recall')],
                binarize=tfma.BinarizationOptions(class_ids={'values': class_ids})),
        ],
        options=tfma.Options(include_default_metrics={'value': False}))


def create_pipeline(config: configs.PipelineConfig,
                    metadata_connection_config: Optional[object] = None) -> tfx_pipeline.Pipeline:
    """The whole pipeline: data validation, Transform, Trainer(s), Evaluator, Pusher.

    Args:
      config: the run's settings.
      metadata_connection_config: MLMD connection (the runner picks it).

    Returns:
      The pipeline, for any TFX orchestrator.
    """
    data = data_components(config)
    examples = data.example_gen.outputs['examples']
    schema_gen, data_gate = data.schema_gen, data.data_gate

    # Decode, resize and scale images; the same graph runs inside the served model.
    # Not materialized: Trainer reads the raw examples and applies this graph itself.
    transform = Transform(
        examples=examples, schema=schema_gen.outputs['schema'],
        preprocessing_fn=configs.PREPROCESSING_FN, custom_config=config.transform_config(),
        materialize=False, disable_statistics=True).with_id(nodes.TRANSFORM)
    transform.add_upstream_node(data_gate)
    quality_features = data.data_quality.outputs['features'] if data.data_quality else None

    # The head's settings searched on the train split's frozen features, each trial
    # cross-validated on folds of the train split (never the eval or test split); the
    # best are the main Trainer's hyperparameters.
    tuner = ImageTuner(
        examples=examples, transform_graph=transform.outputs['transform_graph'],
        schema=schema_gen.outputs['schema'], tuner_fn=configs.TUNER_FN,
        custom_config=config.tuner_config(), frozen_features=quality_features,
    ).with_id(nodes.TUNER) if config.tuning.enabled else None

    def trainer(variant: str) -> ImageTrainer:
        # The transfer model validates on DataQuality's features of the eval split.
        reused = quality_features if variant == 'transfer' else None
        return ImageTrainer(
            run_fn=configs.RUN_FN, examples=examples,
            transform_graph=transform.outputs['transform_graph'],
            schema=schema_gen.outputs['schema'],
            train_args=trainer_pb2.TrainArgs(splits=[features.TRAIN_SPLIT]),
            eval_args=trainer_pb2.EvalArgs(splits=[features.EVAL_SPLIT]),
            custom_config=config.trainer_config(variant), frozen_features=reused,
            hyperparameters=(tuner.outputs['best_hyperparameters']
                             if tuner and variant == config.training.model_variant else None))

    # The model that is evaluated and pushed.
    main_trainer = trainer(config.training.model_variant).with_id(nodes.TRAINER)
    # The tutorial's other models, trained on the same data for the comparison table.
    compare_trainers = [trainer(v).with_id(nodes.compared_trainer(v))
                        for v in config.compare_variants]

    # The last model that was pushed, the baseline for the no-regression check: the
    # Pusher's blessings, so a model blessed but never served (a push that failed or
    # was killed) is never the baseline.
    baseline_resolver = Resolver(
        strategy_class=LatestBlessedModelStrategy,
        model=channel.Channel(type=standard_artifacts.Model),
        model_blessing=channel.Channel(type=artifacts.PushedModelBlessing),
    ).with_id(nodes.BASELINE_RESOLVER)

    # TFMA metrics on the eval split; blesses the model or not.
    evaluator = Evaluator(
        examples=examples, model=main_trainer.outputs['model'],
        baseline_model=baseline_resolver.outputs['model'],
        example_splits=[features.EVAL_SPLIT],
        eval_config=eval_config(config)).with_id(nodes.EVALUATOR)

    # The held-out test split: measured once, never gated, tuned or early-stopped on.
    test_evaluators = [Evaluator(
        examples=examples, model=main_trainer.outputs['model'],
        example_splits=[features.TEST_SPLIT], eval_config=eval_config(config, gate=False),
    ).with_id(nodes.TEST_EVALUATOR)] if config.has_test_split else []

    # What the training and eval images and the model's answers look like: pushed with
    # the model, the reference that monitoring.monitor compares traffic with. The
    # transfer model's embeddings and answers are DataQuality's features and the
    # Trainer's eval answers: then they are taken from there, not computed again.
    reference_profile = ReferenceProfile(
        examples=examples, model=main_trainer.outputs['model'],
        model_run=main_trainer.outputs['model_run'], frozen_features=quality_features,
        max_images=config.profile_images,
        embed_train_images=config.frozen_embedding).with_id(nodes.REFERENCE_PROFILE)

    # A copy of the model in our real server: it loads and answers a sample of eval images
    # as the Trainer did; p50 latency. The Pusher pushes only what it and the Evaluator
    # bless. After the Evaluator (no data edge: its result is cached with the model's).
    infra = config.infra_validation
    infra_validator = InfraValidator(
        model=main_trainer.outputs['model'], model_run=main_trainer.outputs['model_run'],
        examples=examples, model_name=config.model_name, warmup_images=config.warmup_images,
        sample_images=infra.sample_images, probability_tolerance=infra.probability_tolerance,
        load_timeout_seconds=infra.load_timeout_seconds,
        request_timeout_seconds=infra.request_timeout_seconds).with_id(nodes.INFRA_VALIDATOR)
    infra_validator.add_upstream_node(evaluator)

    # A blessed model -> <serving_dir>/<model_name>/<version>/, atomically, with warmup.
    pusher = ImagePusher(
        model=main_trainer.outputs['model'], model_blessing=evaluator.outputs['blessing'],
        infra_blessing=infra_validator.outputs['blessing'],
        evaluation=evaluator.outputs['evaluation'], examples=examples,
        reference_profile=reference_profile.outputs['reference_profile'],
        base_directory=os.path.join(config.serving_dir, config.model_name),
        model_name=config.model_name, warmup_images=config.warmup_images,
        version_label=config.version_label,
        model_config_file=config.model_config_file).with_id(nodes.PUSHER)

    # The trained model as TFLite (float16, int8 ...), each checked on the eval split
    # against the SavedModel; one that loses too much accuracy is refused, not ready.
    tflite = [TFLiteExport(
        model=main_trainer.outputs['model'], model_run=main_trainer.outputs['model_run'],
        examples=examples,
        variants=','.join(config.tflite_variants),
        max_accuracy_drop=config.tflite_max_accuracy_drop,
    ).with_id(nodes.TFLITE_EXPORT)] if config.tflite_variants else []
    # A folder of unlabelled photos scored by the blessed model (only when one is named),
    # read with ExampleGen's limits and link policy.
    bulk_inferrer = [BulkInferrer(
        model=main_trainer.outputs['model'], model_blessing=evaluator.outputs['blessing'],
        images_dir=config.bulk_inference_images, max_file_bytes=config.ingest.max_file_bytes,
        max_pixels=config.ingest.max_pixels, symlinks=config.ingest.symlinks).with_id(nodes.BULK_INFERRER)
    ] if config.bulk_inference_images else []
    # After the Pusher: neither holds back the served model.
    for stage in tflite + bulk_inferrer:
        stage.add_upstream_node(pusher)

    components = [*filter(None, data), transform, *filter(None, [tuner]), main_trainer,
                  *compare_trainers,
                  baseline_resolver, evaluator, *test_evaluators, reference_profile, infra_validator, pusher,
                  *tflite, *bulk_inferrer]
    # Beam settings go to the components that run Beam (ours included), and
    # only to them: a Kubeflow spec would pass pipeline-level ones to every step.
    for component in components:
        if isinstance(getattr(component, 'executor_spec', None), executor_spec.BeamExecutorSpec):
            component.with_beam_pipeline_args(list(config.beam_pipeline_args))
    return tfx_pipeline.Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=config.pipeline_root,
        components=components,
        enable_cache=config.enable_cache,
        metadata_connection_config=metadata_connection_config)
