"""InfraValidatorSpec, the keys of its inputs, outputs and parameters, and the reader of
what it writes (the Pusher and the run report read the blessing through `read_result`).

Its output is TFX's standard InfraBlessing, marked as TFX's own InfraValidator marks
it: the custom property `blessed` (1 or 0, what TFX's Pusher and
`model_utils.is_infra_validated` read) and an empty INFRA_BLESSED or
INFRA_NOT_BLESSED file. Ours adds the reason, the p50 latency and RESULT_FILE.
"""

import json
import os
from typing import Any, Dict, Optional

from tfx.types import artifact as tfx_artifact
from tfx.types import component_spec
from tfx.types import standard_artifacts

MODEL_KEY = 'model'
MODEL_RUN_KEY = 'model_run'            # the Trainer's eval_answers.json
EXAMPLES_KEY = 'examples'              # the eval images sent to the server
BLESSING_KEY = 'blessing'              # output: InfraBlessing

MODEL_NAME_KEY = 'model_name'
WARMUP_IMAGES_KEY = 'warmup_images'    # as the Pusher writes them (its warmup_images)
SAMPLE_IMAGES_KEY = 'sample_images'
PROBABILITY_TOLERANCE_KEY = 'probability_tolerance'
LOAD_TIMEOUT_KEY = 'load_timeout_seconds'
REQUEST_TIMEOUT_KEY = 'request_timeout_seconds'

# TFX's InfraValidator's names for the blessing's marks.
BLESSED_PROPERTY = 'blessed'
BLESSED_FILE = 'INFRA_BLESSED'
NOT_BLESSED_FILE = 'INFRA_NOT_BLESSED'
# Ours.
REASON_PROPERTY = 'not_blessed_reason'
P50_LATENCY_PROPERTY = 'p50_latency_ms'   # one image per REST :predict, the sample's median
RESULT_FILE = 'infra_validation.json'     # everything: answers, latencies, the reason
SERVER_LOG_FILE = 'server.log'            # the server's own output


class InfraValidatorSpec(component_spec.ComponentSpec):
    PARAMETERS = {
        MODEL_NAME_KEY: component_spec.ExecutionParameter(type=str),
        WARMUP_IMAGES_KEY: component_spec.ExecutionParameter(type=int),
        SAMPLE_IMAGES_KEY: component_spec.ExecutionParameter(type=int),
        PROBABILITY_TOLERANCE_KEY: component_spec.ExecutionParameter(type=float),
        LOAD_TIMEOUT_KEY: component_spec.ExecutionParameter(type=float),
        REQUEST_TIMEOUT_KEY: component_spec.ExecutionParameter(type=float),
    }
    INPUTS = {
        MODEL_KEY: component_spec.ChannelParameter(type=standard_artifacts.Model),
        MODEL_RUN_KEY: component_spec.ChannelParameter(type=standard_artifacts.ModelRun),
        EXAMPLES_KEY: component_spec.ChannelParameter(type=standard_artifacts.Examples),
    }
    OUTPUTS = {
        BLESSING_KEY: component_spec.ChannelParameter(type=standard_artifacts.InfraBlessing),
    }


def is_blessed(blessing: tfx_artifact.Artifact) -> bool:
    """Whether an InfraBlessing says the model served correctly."""
    return blessing.get_int_custom_property(BLESSED_PROPERTY) == 1


def reason(blessing: tfx_artifact.Artifact) -> str:
    """Why an InfraBlessing is not blessed, in one line."""
    return (blessing.get_string_custom_property(REASON_PROPERTY)
            or 'the InfraValidator did not bless the model')


def read_result(blessing_uri: str) -> Optional[Dict[str, Any]]:
    """RESULT_FILE of a blessing: {'blessed', 'reason', 'p50_latency_ms', 'images', ...},
    or None when there is none (an InfraBlessing of another InfraValidator)."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    path = os.path.join(blessing_uri, RESULT_FILE)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def describe_result(result: Dict[str, Any]) -> str:
    """A result in one line: blessed and how fast, or why not (the console, the run report)."""
    if not result['blessed']:
        return f"NOT blessed, the model will not be pushed: {result['reason']}"
    return (f"blessed: our server loaded it in {result['load_seconds']:.1f} s and answered "
            f"{result['images']} eval images as the Trainer did (largest probability "
            f"difference {result['max_probability_difference']:.1g}, tolerance "
            f"{result['probability_tolerance']:g}); p50 {result['p50_latency_ms']:.1f} ms "
            'per image over REST')
