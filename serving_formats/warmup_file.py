"""TF Serving's warmup file, the writing side (the Pusher): records and where they go.

TF Serving replays `<version>/assets.extra/tf_serving_warmup_requests`, a
TFRecord file of `tensorflow_serving.apis.prediction_log_pb2.PredictionLog`
(at most 1000 records), before a version becomes AVAILABLE
(`tensorflow_serving/servables/tensorflow/saved_model_warmup_util.cc`). The
Pusher writes that file with `write_warmup_file`, so the real TF Serving warms
the model too; our server replays it (serving/warmup.py).
"""

import logging
import os
from typing import Iterable, List

from models import features

WARMUP_FILENAME = 'tf_serving_warmup_requests'
MAX_RECORDS = 1000


def warmup_path(saved_model_dir: str) -> str:
    """`<saved_model_dir>/assets.extra/tf_serving_warmup_requests`."""
    return os.path.join(saved_model_dir, features.ASSETS_EXTRA, WARMUP_FILENAME)


def build_predict_logs(image_bytes_list: Iterable[bytes], *, model_name: str,
                       signature_name: str = features.SERVING_SIGNATURE,
                       input_name: str = features.SERVING_INPUT) -> List:
    """One PredictionLog (a one-image PredictRequest) per encoded image.

    Raises:
      ValueError: if there are no images, more than 1000, or an empty one.
    """
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from tensorflow_serving.apis import prediction_log_pb2

    images = list(image_bytes_list)
    if not images:
        raise ValueError('image_bytes_list is empty: warmup needs at least '
                         'one image')
    if len(images) > MAX_RECORDS:
        raise ValueError(f'{len(images)} warmup images: TF Serving reads at '
                         f'most {MAX_RECORDS} warmup records')
    if not model_name:
        raise ValueError(f'model_name must be set, got {model_name!r}')
    logs = []
    for index, image in enumerate(images):
        if not isinstance(image, bytes) or not image:
            raise ValueError(f'warmup image {index} must be non-empty bytes, '
                             f'got {type(image).__name__} of length '
                             f'{len(image) if image is not None else None}')
        log = prediction_log_pb2.PredictionLog()
        request = log.predict_log.request
        request.model_spec.name = model_name
        request.model_spec.signature_name = signature_name
        request.inputs[input_name].CopyFrom(
            tf.make_tensor_proto([image], dtype=tf.string))
        logs.append(log)
    return logs


def write_warmup_file(saved_model_dir: str, image_bytes_list: Iterable[bytes],
                      *, model_name: str,
                      signature_name: str = features.SERVING_SIGNATURE) -> str:
    """Writes TF Serving's warmup file into an exported SavedModel directory.

    Works on a directory that is not published yet (e.g. the Trainer's export
    before the Pusher copies it), local or gs://.

    Args:
      saved_model_dir: the SavedModel directory (holding saved_model.pb).
      image_bytes_list: encoded images (JPEG/PNG/BMP/GIF bytes), e.g. a few
        eval images; one warmup record each, at most 1000.
      model_name: the model name the server serves it under.
      signature_name: the signature the records call.

    Returns:
      The path of the written file.

    Raises:
      ValueError: if the directory is not a SavedModel or the images are bad.
    """
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    if not (tf.io.gfile.exists(os.path.join(saved_model_dir, 'saved_model.pb'))
            or tf.io.gfile.exists(
                os.path.join(saved_model_dir, 'saved_model.pbtxt'))):
        raise ValueError(f'{saved_model_dir!r} holds no saved_model.pb')
    logs = build_predict_logs(image_bytes_list, model_name=model_name,
                              signature_name=signature_name)
    path = warmup_path(saved_model_dir)
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.TFRecordWriter(path) as writer:
        for log in logs:
            writer.write(log.SerializeToString())
    logging.info('Wrote %d warmup records to %s', len(logs), path)
    return path
