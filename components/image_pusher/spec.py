"""ImagePusherSpec: the stock PusherSpec, with the InfraValidator's blessing required,
plus evaluation (to say why a model was not pushed), eval examples (for the warmup
file), the reference profile (for the monitor), serving settings, and a
PushedModelBlessing output (the Evaluator's baseline is the latest model that was
pushed); and the reader of the push result it writes."""

import json
import os
from typing import Any, Dict, Optional

import tensorflow as tf
from tfx.types import component_spec
from tfx.types import standard_artifacts
from tfx.types import standard_component_specs

from components import artifacts

EVALUATION_KEY = 'evaluation'
EXAMPLES_KEY = 'examples'
REFERENCE_PROFILE_KEY = 'reference_profile'  # copied into the version's assets.extra/
MODEL_NAME_KEY = 'model_name'
WARMUP_IMAGES_KEY = 'warmup_images'          # eval images replayed as warmup (0: none)
VERSION_LABEL_KEY = 'version_label'                # e.g. 'canary': label the new version
MODEL_CONFIG_FILE_KEY = 'model_config_file'  # TF Serving model config to update

# Written into the PushedModel artifact, pushed or not.
PUSH_RESULT_FILE = 'push_result.json'
# In it: whether this push made the version (False: the model was served already).
NEW_VERSION_FIELD = 'new_version'
# In it: the version a rollback pinned the model to (the new version is not served).
PINNED_VERSION_FIELD = 'pinned_version'
# Custom properties of the PushedModel artifact: the stock Pusher's names (which TFX's
# own readers, e.g. InfraValidator's and Vertex's, know) and our reason.
PUSHED_PROPERTY = 'pushed'                          # 1 or 0
PUSHED_DESTINATION_PROPERTY = 'pushed_destination'  # the version's folder
PUSHED_VERSION_PROPERTY = 'pushed_version'
NOT_PUSHED_REASON_PROPERTY = 'not_pushed_reason'

PUSHED_BLESSING_KEY = 'pushed_blessing'     # output: blessed = 1 when the model was pushed


class ImagePusherSpec(standard_component_specs.PusherSpec):
    PARAMETERS = {
        **standard_component_specs.PusherSpec.PARAMETERS,
        MODEL_NAME_KEY: component_spec.ExecutionParameter(type=str),
        WARMUP_IMAGES_KEY: component_spec.ExecutionParameter(type=int),
        VERSION_LABEL_KEY: component_spec.ExecutionParameter(type=str, optional=True),
        MODEL_CONFIG_FILE_KEY: component_spec.ExecutionParameter(type=str, optional=True),
    }
    INPUTS = {
        **standard_component_specs.PusherSpec.INPUTS,
        # Required: a model is pushed only once our server has loaded and run it.
        standard_component_specs.INFRA_BLESSING_KEY: component_spec.ChannelParameter(
            type=standard_artifacts.InfraBlessing),
        EVALUATION_KEY: component_spec.ChannelParameter(
            type=standard_artifacts.ModelEvaluation, optional=True),
        EXAMPLES_KEY: component_spec.ChannelParameter(
            type=standard_artifacts.Examples, optional=True),
        REFERENCE_PROFILE_KEY: component_spec.ChannelParameter(
            type=artifacts.ReferenceProfile, optional=True),
    }
    OUTPUTS = {
        **standard_component_specs.PusherSpec.OUTPUTS,
        PUSHED_BLESSING_KEY: component_spec.ChannelParameter(type=artifacts.PushedModelBlessing),
    }


def read_push_result(pushed_uri: str) -> Optional[Dict[str, Any]]:
    """PUSH_RESULT_FILE of a PushedModel artifact ({'pushed', 'reason'} or {'pushed',
    'version', 'path', NEW_VERSION_FIELD, ...}), or None when it has none (a push
    stopped before writing it).

    Raises:
      ValueError: the file is not JSON (e.g. cut short by a killed push).
    """
    path = os.path.join(pushed_uri, PUSH_RESULT_FILE)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)
