"""InfraValidator executor: the candidate model in our real server, before it is pushed.

A copy of the candidate goes into a scratch model folder as version 1, with the
warmup file the Pusher would write (the same first eval images). Our server
(`python -m serving.server`, a child process, model_server.py) loads it, replaying
the warmup file as it will in production; once the version is AVAILABLE the warmup
requests and the first `sample_images` eval images are sent over REST, one image
per request. The model is blessed when every sampled image gets the Trainer's own
answer (eval_answers.json: the same class, every probability within
`probability_tolerance`). The server's failure to start or to load the model, an
error answer, a timeout or a wrong answer each mean not blessed, with that reason
in one line; the Pusher then pushes nothing. The server is stopped in every case,
and the scratch copy removed.
"""

import json
import os
import shutil
import tempfile
from typing import Any, Dict, List, Sequence, Tuple

import tensorflow as tf
from absl import logging
from tensorflow_serving.apis import prediction_log_pb2
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils
from tfx.utils import io_utils
from tfx.utils import path_utils

from components import examples_io
from components.infra_validator import checks
from components.infra_validator import model_server
from components.infra_validator import spec
from models import eval_answers
from models import features
from runlog import progress
from serving_formats import warmup_file

# The candidate's version number in the scratch model folder.
SCRATCH_VERSION = 1


def read_eval_images(examples_uri: str, paths: Sequence[str], first: int
                     ) -> Tuple[Dict[str, bytes], List[bytes]]:
    """({path: image bytes} of `paths`, the first `first` images) of the eval split, read
    once and no further than needed.

    Raises:
      ValueError: a path is not in the eval split (the answers are of other data).
    """
    wanted, found, leading = set(paths), {}, []
    for example in examples_io.iter_examples(examples_uri, features.EVAL_SPLIT):
        image = examples_io.value(example, features.IMAGE_KEY)
        if len(leading) < first:
            leading.append(image)
        path = examples_io.value(example, features.PATH_KEY).decode()
        if path in wanted:
            found[path] = image
        if len(found) == len(wanted) and len(leading) >= first:
            break
    missing = sorted(wanted - set(found))
    if missing:
        raise ValueError(f'{len(missing)} images the Trainer answered are not in the eval '
                         f'split of {examples_uri}, e.g. {missing[0]}')
    return found, leading


def warmup_images_of(saved_model_dir: str) -> List[bytes]:
    """The images of a warmup file's requests (one per record), in order."""
    images = []
    for record in tf.data.TFRecordDataset(warmup_file.warmup_path(saved_model_dir)):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        tensor = log.predict_log.request.inputs[features.SERVING_INPUT]
        images.extend(tf.make_ndarray(tensor).reshape(-1).tolist())
    return images


def validate(model_path: str, scratch_dir: str, *, model_name: str,
             trained: Sequence[checks.Answer], images: Dict[str, bytes],
             warmup: Sequence[bytes], class_names: Sequence[str], tolerance: float,
             load_timeout_seconds: float, request_timeout_seconds: float) -> Dict[str, Any]:
    """Serves a copy of the model from scratch_dir and checks its answers.

    Args:
      model_path: the candidate SavedModel.
      scratch_dir: an empty local folder for the copy and the server's log.
      model_name: the name it is served under.
      trained: the Trainer's answers to check, in the order they are sent.
      images: image bytes by path, for each answer.
      warmup: the images of the warmup file to write into the copy (may be empty).
      class_names: the class names (line = label index).
      tolerance: the largest allowed probability difference.
      load_timeout_seconds: the server's start and the model's load, at most.
      request_timeout_seconds: each request, at most.

    Returns:
      The result (RESULT_FILE's content): 'blessed', 'reason' (None when blessed),
      'p50_latency_ms', the answers and the timings.
    """
    base_path = os.path.join(scratch_dir, model_name)
    version_dir = os.path.join(base_path, str(SCRATCH_VERSION))
    io_utils.copy_dir(model_path, version_dir)
    if warmup:
        warmup_file.write_warmup_file(version_dir, warmup, model_name=model_name,
                                      signature_name=features.SERVING_SIGNATURE)
    result: Dict[str, Any] = {
        'blessed': False, 'reason': None, 'model_name': model_name, 'images': len(trained),
        'probability_tolerance': tolerance, 'p50_latency_ms': None}
    server = model_server.ModelServer(model_name, base_path,
                                      os.path.join(scratch_dir, spec.SERVER_LOG_FILE))
    try:
        server.start()
        result['load_seconds'] = server.wait_available(SCRATCH_VERSION, load_timeout_seconds)
        warmup_sent = warmup_images_of(version_dir) if warmup else []
        server.predict_all(warmup_sent, request_timeout_seconds)
        result['warmup_requests'] = len(warmup_sent)
        outputs, seconds = server.predict_all([images[a.path] for a in trained],
                                              request_timeout_seconds)
        served = [checks.served_answer(a.path, output, class_names)
                  for a, output in zip(trained, outputs)]
    except (model_server.ServerError, ValueError) as error:
        result['reason'] = str(error)
        return result
    finally:
        result['server_exit_code'] = server.stop()
    mismatches = checks.compare(trained, served, tolerance)
    result.update(
        p50_latency_ms=checks.p50_ms(seconds),
        latencies_ms=[s * 1000 for s in seconds],
        max_probability_difference=max(checks.max_difference(t, s)
                                       for t, s in zip(trained, served)),
        answers=[{'path': t.path, 'trained': t.class_name, 'served': s.class_name,
                  'difference': checks.max_difference(t, s)} for t, s in zip(trained, served)])
    if mismatches:
        result['reason'] = checks.mismatch_reason(mismatches, len(trained), tolerance)
    else:
        result['blessed'] = True
    return result


def _mark(blessing, result: Dict[str, Any]) -> None:
    """Writes RESULT_FILE and marks the InfraBlessing as TFX's InfraValidator does."""
    io_utils.write_string_file(os.path.join(blessing.uri, spec.RESULT_FILE),
                               json.dumps(result, indent=1))
    blessed = bool(result['blessed'])
    io_utils.write_string_file(os.path.join(
        blessing.uri, spec.BLESSED_FILE if blessed else spec.NOT_BLESSED_FILE), '')
    blessing.set_int_custom_property(spec.BLESSED_PROPERTY, int(blessed))
    if result.get('p50_latency_ms') is not None:
        blessing.set_float_custom_property(spec.P50_LATENCY_PROPERTY, result['p50_latency_ms'])
    if not blessed:
        blessing.set_string_custom_property(spec.REASON_PROPERTY, result['reason'])


class Executor(base_executor.BaseExecutor):
    """Blesses a model that our server loads and answers as the Trainer did."""

    def Do(self, input_dict: Dict[str, List[Any]], output_dict: Dict[str, List[Any]],
           exec_properties: Dict[str, Any]) -> None:
        blessing = artifact_utils.get_single_instance(output_dict[spec.BLESSING_KEY])
        tf.io.gfile.makedirs(blessing.uri)
        result = self._validate(input_dict, exec_properties, blessing.uri)
        _mark(blessing, result)
        line = spec.describe_result(result)
        progress.logger().info(line)
        (logging.info if result['blessed'] else logging.warning)('InfraValidator: %s', line)

    @staticmethod
    def _validate(input_dict: Dict[str, List[Any]], exec_properties: Dict[str, Any],
                  output_uri: str) -> Dict[str, Any]:
        model = artifact_utils.get_single_instance(input_dict[spec.MODEL_KEY])
        model_path = path_utils.serving_model_path(model.uri,
                                                   path_utils.is_old_model_artifact(model))
        examples_uri = artifact_utils.get_single_uri(input_dict[spec.EXAMPLES_KEY])
        model_run_uri = artifact_utils.get_single_uri(input_dict[spec.MODEL_RUN_KEY])
        sample = ((eval_answers.load(model_run_uri) or {}).get('sample') or [])[
            :exec_properties[spec.SAMPLE_IMAGES_KEY]]
        if not sample:
            return {'blessed': False, 'reason': (
                f'the Trainer recorded no answers to compare with ({eval_answers.ANSWERS_FILE} '
                f'in {model_run_uri} has no sample: a Trainer output older than the '
                'InfraValidator; run again with --no-cache)')}
        class_names = examples_io.read_class_names(examples_uri)
        trained = [checks.trained_answer(entry, class_names) for entry in sample]
        images, warmup = read_eval_images(examples_uri, [a.path for a in trained],
                                          exec_properties[spec.WARMUP_IMAGES_KEY])
        local = '://' not in output_uri
        scratch = (os.path.join(output_uri, 'scratch') if local
                   else tempfile.mkdtemp(prefix='infra-validator-'))
        os.makedirs(scratch, exist_ok=True)
        try:
            result = validate(
                model_path, scratch, model_name=exec_properties[spec.MODEL_NAME_KEY],
                trained=trained, images=images, warmup=warmup, class_names=class_names,
                tolerance=exec_properties[spec.PROBABILITY_TOLERANCE_KEY],
                load_timeout_seconds=exec_properties[spec.LOAD_TIMEOUT_KEY],
                request_timeout_seconds=exec_properties[spec.REQUEST_TIMEOUT_KEY])
            log = os.path.join(output_uri, spec.SERVER_LOG_FILE)
            if os.path.exists(os.path.join(scratch, spec.SERVER_LOG_FILE)):
                tf.io.gfile.copy(os.path.join(scratch, spec.SERVER_LOG_FILE), log,
                                 overwrite=True)
                result['server_log'] = log
                if not result['blessed']:
                    result['reason'] += f' (server log: {log})'
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return result
