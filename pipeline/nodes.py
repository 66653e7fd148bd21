"""Node ids of the pipeline, in one place: pipeline.py sets them, the runner's summary,
the run report and the benchmarks look nodes up by them. Also the name of the metric the
Evaluator gates on, which they read from its output."""

ACCURACY_METRIC = 'sparse_categorical_accuracy'   # TFMA's key of SparseCategoricalAccuracy

EXAMPLE_GEN = 'ImageExampleGen'
STATISTICS_GEN = 'StatisticsGen'
SCHEMA_GEN = 'ImageSchemaGen'
EXAMPLE_VALIDATOR = 'ExampleValidator'
DATA_QUALITY = 'DataQuality'
DATA_REPORT = 'DataReport'
DATA_GATE = 'DataGate'
TRANSFORM = 'Transform'
TUNER = 'Tuner'                        # only with PipelineConfig.tuning.enabled
TRAINER = 'Trainer'                    # compared variants: 'Trainer.<variant>'
BASELINE_RESOLVER = 'latest_pushed_model_resolver'
EVALUATOR = 'Evaluator'
TEST_EVALUATOR = 'Evaluator.test'      # only with a held-out test split
REFERENCE_PROFILE = 'ReferenceProfile'
INFRA_VALIDATOR = 'InfraValidator'
PUSHER = 'ImagePusher'
TFLITE_EXPORT = 'TFLiteExport'         # unless PipelineConfig.tflite_variants is empty
BULK_INFERRER = 'BulkInferrer'         # only with PipelineConfig.bulk_inference_images


def compared_trainer(variant: str) -> str:
    """The node id of the Trainer of a compared model variant."""
    return f'{TRAINER}.{variant}'
