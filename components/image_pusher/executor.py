"""ImagePusher executor.

A version directory appears whole, and only as the last step of a push: the
model is first copied into the Pusher's own PushedModel output, then into a
hidden staging folder beside the versions (TF Serving only loads integer-named
folders; see staging.py), the warmup file is added, and the folder is renamed
to its integer version. If a step after that rename fails (the version labels),
the version is withdrawn again, so the serving folder holds a new version only
when ML Metadata records the push. The staging folder also gets the model as
float32 model.tflite (tflite_model.py, in a child process), for the server's
--prefer_tflite_model, unless it cannot be converted or does not answer as the
SavedModel (a console line says why; the push goes on). On object stores, where rename is a copy,
saved_model.pb is copied last instead, the marker TF Serving waits for. Older
versions are never touched.

A model is pushed only when both the Evaluator and the InfraValidator blessed it.
When the model config file holds a rollback's pin (serving_formats/rollback.py), the
new version is written but neither labelled nor served, and the console says so.
"""

import hashlib
import json
import os
import time
from typing import Any, Dict, List, Optional

import tensorflow as tf
import tensorflow_model_analysis as tfma
from absl import logging
from tfx.components.evaluator import constants as evaluator_constants
from tfx.components.pusher import executor as pusher_executor
from tfx.components.util import model_utils
from tfx.types import artifact_utils
from tfx.types import standard_component_specs
from tfx.utils import io_utils
from tfx.utils import proto_utils
from tfx.proto import pusher_pb2

from components import examples_io
from components.image_pusher import spec
from components.image_pusher import staging
from components.image_pusher import tflite_model
from components.image_pusher import validation_text
from components.infra_validator import spec as infra_spec
from models import features
from models import profile
from models import tflite_export
from runlog import progress
from serving_formats import rollback
from serving_formats import version_labels
from serving_formats import warmup_file

SAVED_MODEL_PB = 'saved_model.pb'
# The model as pushed, inside the PushedModel output.
PUSHED_MODEL_DIR = 'model'


def existing_versions(base_directory: str) -> List[int]:
    """Integer version folders under a model's base directory."""
    if not tf.io.gfile.isdir(base_directory):
        return []
    return sorted(int(name.rstrip('/')) for name in tf.io.gfile.listdir(base_directory)
                  if name.rstrip('/').isdigit())


def next_version(base_directory: str, now: Optional[float] = None) -> int:
    """The Unix time in seconds, or one more than the newest version if that is later."""
    versions = existing_versions(base_directory)
    now_version = int(time.time() if now is None else now)
    return max([now_version] + [v + 1 for v in versions])


def model_digest(model_dir: str) -> str:
    """sha256 of the graph and the variables index: equal for copies of one export."""
    digest = hashlib.sha256()
    for name in (SAVED_MODEL_PB, os.path.join('variables', 'variables.index')):
        path = os.path.join(model_dir, name)
        if tf.io.gfile.exists(path):
            with tf.io.gfile.GFile(path, 'rb') as f:
                digest.update(f.read())
    return digest.hexdigest()


def version_serving(model_dir: str, base_directory: str) -> Optional[int]:
    """The existing version that holds this very model, if any (a re-run pushes nothing)."""
    digest = model_digest(model_dir)
    for version in reversed(existing_versions(base_directory)):
        if model_digest(os.path.join(base_directory, str(version))) == digest:
            return version
    return None


def is_local(path: str) -> bool:
    """A path on this machine's file system (rename is atomic), not an object store."""
    return '://' not in path


def publish(model_path: str, base_directory: str, version: int, prepare=None) -> str:
    """Copies a SavedModel to `<base_directory>/<version>/` so it appears whole.

    Args:
      model_path: the SavedModel directory.
      base_directory: the model's folder in the serving directory.
      version: the integer version; its folder must not exist.
      prepare: optional callable(staging_dir) run before publishing (warmup).

    Returns:
      The version directory.

    Raises:
      FileExistsError: the version exists.
      Whatever the copy or `prepare` raise; nothing is then left behind.
    """
    target = os.path.join(base_directory, str(version))
    if tf.io.gfile.exists(target):
        raise FileExistsError(f'version directory {target} already exists')
    tf.io.gfile.makedirs(base_directory)
    if is_local(base_directory):
        staging.remove_abandoned(base_directory)
        staged = os.path.join(base_directory, staging.staging_name(version))
        try:
            io_utils.copy_dir(model_path, staged)
            if prepare:
                prepare(staged)
            os.rename(staged, target)  # atomic on one POSIX filesystem
        finally:
            if tf.io.gfile.exists(staged):
                tf.io.gfile.rmtree(staged)
        return target
    # Object stores: everything but saved_model.pb, then the marker file.
    try:
        io_utils.copy_dir(model_path, target, deny_regex_patterns=[r'saved_model\.pb'])
        if prepare:
            prepare(target)
        io_utils.copy_file(os.path.join(model_path, SAVED_MODEL_PB),
                           os.path.join(target, SAVED_MODEL_PB))
    except Exception:
        withdraw(base_directory, version)
        raise
    return target


def withdraw(base_directory: str, version: int) -> None:
    """Takes a version out of the serving folder: servers stop seeing it at once.

    Locally the folder is first renamed to a staging name (one atomic step; a
    withdrawal cut short is then tidied like an interrupted push), on object
    stores the marker file goes first.
    """
    target = os.path.join(base_directory, str(version))
    if not tf.io.gfile.exists(target):
        return
    if is_local(base_directory):
        hidden = os.path.join(base_directory, staging.staging_name(version))
        os.rename(target, hidden)
        target = hidden
    else:
        marker = os.path.join(target, SAVED_MODEL_PB)
        if tf.io.gfile.exists(marker):
            tf.io.gfile.remove(marker)
    tf.io.gfile.rmtree(target)
    logging.warning('Version %d withdrawn from %s', version, base_directory)


def not_blessed_reason(evaluation_uri: Optional[str]) -> str:
    """Why TFMA did not bless the model, from its validation result."""
    if not evaluation_uri:
        return 'the model was not blessed by the Evaluator'
    result = tfma.load_validation_result(evaluation_uri)
    reasons = [validation_text.describe_failure(failure)
               for per_slice in result.metric_validations_per_slice
               for failure in per_slice.failures]
    if result.missing_thresholds:
        reasons.append('a thresholded metric has no value')
    if result.rubber_stamp:
        reasons.append('rubber stamp (no baseline)')
    return '; '.join(reasons) or 'TFMA validation failed (see the evaluation artifact)'


def not_pushed_reason(input_dict: Dict[str, List[Any]]) -> Optional[str]:
    """Why the model must not be pushed, or None: the Evaluator blessed it, and so did the
    InfraValidator, whose blessing is required."""
    model_blessing = input_dict.get(standard_component_specs.MODEL_BLESSING_KEY)
    if model_blessing and not model_utils.is_model_blessed(
            artifact_utils.get_single_instance(model_blessing)):
        evaluation = input_dict.get(spec.EVALUATION_KEY)
        return not_blessed_reason(artifact_utils.get_single_uri(evaluation)
                                  if evaluation else None)
    infra_blessing = input_dict.get(standard_component_specs.INFRA_BLESSING_KEY)
    if not infra_blessing:
        return ('no InfraBlessing: the model was never loaded in a server (the Pusher needs '
                "the InfraValidator's blessing)")
    infra_blessing = artifact_utils.get_single_instance(infra_blessing)
    if not model_utils.is_infra_validated(infra_blessing):
        return f'the InfraValidator did not bless it: {infra_spec.reason(infra_blessing)}'
    return None


class Executor(pusher_executor.Executor):
    """Pushes blessed models; records a reason when it does not."""

    def Do(self, input_dict: Dict[str, List[Any]], output_dict: Dict[str, List[Any]],
           exec_properties: Dict[str, Any]) -> None:
        model_push = artifact_utils.get_single_instance(
            output_dict[standard_component_specs.PUSHED_MODEL_KEY])
        tf.io.gfile.makedirs(model_push.uri)
        result_path = os.path.join(model_push.uri, spec.PUSH_RESULT_FILE)
        pushed_blessing = artifact_utils.get_single_instance(
            output_dict[spec.PUSHED_BLESSING_KEY])

        reason = not_pushed_reason(input_dict)
        if reason:
            logging.warning('Model NOT pushed: %s', reason)
            model_push.set_string_custom_property(spec.NOT_PUSHED_REASON_PROPERTY, reason)
            io_utils.write_string_file(result_path, json.dumps(
                {'pushed': False, 'reason': reason}, indent=1))
            model_push.set_int_custom_property(spec.PUSHED_PROPERTY, 0)
            _bless(pushed_blessing, input_dict, pushed=False)
            return

        model_path = self.GetModelPath(input_dict)
        destination = pusher_pb2.PushDestination()
        proto_utils.json_to_proto(
            exec_properties[standard_component_specs.PUSH_DESTINATION_KEY], destination)
        base_directory = destination.filesystem.base_directory
        model_name = exec_properties[spec.MODEL_NAME_KEY]
        version_label = exec_properties.get(spec.VERSION_LABEL_KEY)
        warmup_images = self._warmup_images(input_dict, exec_properties[spec.WARMUP_IMAGES_KEY])

        profile_artifacts = input_dict.get(spec.REFERENCE_PROFILE_KEY)
        profile_uri = artifact_utils.get_single_uri(profile_artifacts) if profile_artifacts else None

        def prepare(staging_dir: str) -> None:
            written = tflite_model.write_in_child(staging_dir, warmup_images)
            if written.reason:
                progress.logger().warning(
                    '%s not written (--prefer_tflite_model will serve this version from '
                    'the SavedModel): %s', tflite_export.SERVING_FILE, written.reason)
            else:
                logging.info('%s written: %.1f MB in %.1f s, answers as the SavedModel on %d '
                             'images', tflite_export.SERVING_FILE, written.size_bytes / 1e6,
                             written.seconds, written.images)
            if warmup_images:
                warmup_file.write_warmup_file(staging_dir, warmup_images, model_name=model_name,
                                         signature_name=features.SERVING_SIGNATURE)
            if profile_uri:
                extra = os.path.join(staging_dir, features.ASSETS_EXTRA)
                tf.io.gfile.makedirs(extra)
                tf.io.gfile.copy(os.path.join(profile_uri, profile.PROFILE_FILE),
                                 os.path.join(extra, profile.PROFILE_FILE), overwrite=True)

        if is_local(base_directory):
            staging.remove_abandoned(base_directory)
        version = version_serving(model_path, base_directory)
        new_version = version is None
        # Everything that can fail comes before the version appears (the copy into our
        # own output first: a full disk stops the push here, with nothing served).
        io_utils.copy_dir(model_path, os.path.join(model_push.uri, PUSHED_MODEL_DIR))
        if new_version:
            version = next_version(base_directory)
        serving_path = os.path.join(base_directory, str(version))
        config_file = exec_properties.get(spec.MODEL_CONFIG_FILE_KEY)
        pinned = rollback.pinned_version(config_file, model_name) if config_file else None
        # Written before publishing: a run killed right after the rename tells the next
        # run's start-up which version it made (pipeline/recovery.py withdraws it).
        io_utils.write_string_file(result_path, json.dumps(
            {'pushed': True, 'version': version, 'path': serving_path,
             'version_label': version_label, spec.NEW_VERSION_FIELD: new_version,
             spec.PINNED_VERSION_FIELD: pinned}, indent=1))
        if new_version:
            publish(model_path, base_directory, version, prepare=prepare)
            logging.info('Model pushed as version %d: %s (%d warmup requests)', version,
                         serving_path, len(warmup_images))
        else:
            logging.info('Model already served as version %d (%s); nothing copied', version,
                         serving_path)
        try:
            # A rollback's pin stands: labelling the new version would serve it.
            if version_label and pinned is None:
                self._label(exec_properties, model_name, base_directory, version_label, version)
        except Exception:
            if new_version:   # the run fails: what serves must not change
                withdraw(base_directory, version)
            raise
        if pinned is not None and pinned != version:
            progress.logger().warning(
                'version %d written but not served: %s is pinned to version %d by a rollback '
                '(%s); to serve the newest version: %s', version, model_name, pinned,
                config_file, rollback.unpin_command(config_file, model_name))

        model_push.set_int_custom_property(spec.PUSHED_PROPERTY, 1)
        model_push.set_string_custom_property(spec.PUSHED_DESTINATION_PROPERTY, serving_path)
        model_push.set_string_custom_property(spec.PUSHED_VERSION_PROPERTY, str(version))
        _bless(pushed_blessing, input_dict, pushed=True)

    @staticmethod
    def _label(exec_properties: Dict[str, Any], model_name: str, base_directory: str,
               version_label: str, version: int) -> None:
        config_file = exec_properties[spec.MODEL_CONFIG_FILE_KEY]
        version_labels.ensure_model(config_file, model_name, base_directory)
        if version_label == version_labels.CANARY:
            version_labels.push_canary(config_file, model_name, version)
        else:
            version_labels.set_label(config_file, model_name, version_label, version)
        logging.info('Version %d labelled %r in %s', version, version_label, config_file)

    @staticmethod
    def _warmup_images(input_dict, count: int) -> List[bytes]:
        examples = input_dict.get(spec.EXAMPLES_KEY)
        if not count or not examples:
            return []
        uri = artifact_utils.get_single_uri(examples)
        images = []
        for example in examples_io.iter_examples(uri, features.EVAL_SPLIT):
            images.append(examples_io.value(example, features.IMAGE_KEY))
            if len(images) >= count:
                break
        return images


def _bless(pushed_blessing, input_dict: Dict[str, List[Any]], *, pushed: bool) -> None:
    """Fills the PushedModelBlessing as the Evaluator fills a ModelBlessing (the same
    custom properties and marker file), so LatestBlessedModelStrategy can read it."""
    model = artifact_utils.get_single_instance(input_dict[standard_component_specs.MODEL_KEY])
    value = (evaluator_constants.BLESSED_VALUE if pushed
             else evaluator_constants.NOT_BLESSED_VALUE)
    pushed_blessing.set_int_custom_property(evaluator_constants.ARTIFACT_PROPERTY_BLESSED_KEY,
                                            value)
    pushed_blessing.set_int_custom_property(
        evaluator_constants.ARTIFACT_PROPERTY_CURRENT_MODEL_ID_KEY, model.id)
    pushed_blessing.set_string_custom_property(
        evaluator_constants.ARTIFACT_PROPERTY_CURRENT_MODEL_URI_KEY, model.uri)
    io_utils.write_string_file(os.path.join(pushed_blessing.uri, (
        evaluator_constants.BLESSED_FILE_NAME if pushed
        else evaluator_constants.NOT_BLESSED_FILE_NAME)), '')
