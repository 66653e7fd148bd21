"""TFLiteExport: the trained model as TFLite models (float16, full-integer int8), each
checked on the eval split against the SavedModel; a variant that loses more than
`max_accuracy_drop` accuracy is refused (kept under refused/, never marked ready).

Runs after the Trainer, beside the Evaluator: it reads the Trainer's model (and its
ModelRun: the Trainer's answers on every eval photo are the SavedModel's in the check,
so the SavedModel does not run over the eval split again) and ExampleGen's examples
only. The served model (the SavedModel) is unchanged; a TFLite model takes the decoded
pixels (models/tflite_export.py says why and how to feed it).

The conversions and their checks run in a child process (components/child_process.py):
the pipeline's process never holds what they allocate (it rose by 0.12-0.23 GiB here).
"""

from tfx.dsl.component.experimental.annotations import InputArtifact
from tfx.dsl.component.experimental.annotations import OutputArtifact
from tfx.dsl.component.experimental.annotations import Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import standard_artifacts

from components import artifacts
from components.tflite_export import report
from models import tflite_check
from models import tflite_export


@component
def TFLiteExport(  # pylint: disable=invalid-name
        model: InputArtifact[standard_artifacts.Model],
        examples: InputArtifact[standard_artifacts.Examples],
        tflite: OutputArtifact[artifacts.TFLiteModel],
        model_run: InputArtifact[standard_artifacts.ModelRun] = None,
        variants: Parameter[str] = f'{tflite_export.FLOAT16},{tflite_export.INT8}',
        max_accuracy_drop: Parameter[float] = tflite_check.MAX_ACCURACY_DROP,
        representative_images: Parameter[int] = tflite_export.REPRESENTATIVE_IMAGES,
        eval_images: Parameter[int] = tflite_export.EVAL_IMAGES) -> None:
    """Writes <variant>.tflite (or refused/<variant>.tflite) and tflite_report.json.

    Args:
      model: the Trainer's model.
      examples: ExampleGen's examples: train images calibrate int8, eval images check.
      tflite: the output folder (components/tflite_export/report.py).
      model_run: the Trainer's (its answers on every eval photo); None: the SavedModel
        runs on the eval images for the check.
      variants: comma-separated, of models/tflite_export.py's VARIANTS.
      max_accuracy_drop: accuracy a variant may lose against the SavedModel (0.01: 1 point).
      representative_images: train images the int8 calibration runs.
      eval_images: eval images each variant is checked on (the first of the split).
    """
    from tfx.utils import path_utils  # pylint: disable=import-outside-toplevel
    from components import child_process  # pylint: disable=import-outside-toplevel
    from components.tflite_export import executor  # pylint: disable=import-outside-toplevel
    result = child_process.call(
        executor.export_tflite, path_utils.serving_model_path(model.uri), examples.uri,
        tflite.uri,
        variants=executor.parse_variants(variants), max_accuracy_drop=max_accuracy_drop,
        representative_images=representative_images, eval_images=eval_images,
        model_run_uri=model_run.uri if model_run else None)
    tflite.set_string_custom_property(report.READY_PROPERTY, ','.join(
        variant for variant, found in result['variants'].items() if found['ready']))
