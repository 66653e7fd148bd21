"""TF Serving's warmup file, the reading side: replay it at load time.

The format and the writer are in serving_formats/warmup_file.py (the Pusher writes it).
"""

import logging
import time
from typing import Callable, List, Optional

from serving import errors
from serving_formats.warmup_file import MAX_RECORDS
from serving_formats.warmup_file import warmup_path


def read_warmup_file(saved_model_dir: str) -> Optional[List]:
    """The PredictionLogs of a warmup file, or None when there is none.

    Raises:
      ServingError: DATA_LOSS for a file that is not TFRecord, INVALID_ARGUMENT
        for a record that is not a PredictionLog or more than 1000 records.
    """
    logs = []
    if replay(saved_model_dir, logs.append, quiet=True) is None:
        return None
    return logs


def replay(saved_model_dir: str, execute: Callable[[object], None], *,
           iterations: int = 1, quiet: bool = False,
           on_done: Optional[Callable[[str, int], None]] = None
           ) -> Optional[int]:
    """Runs every warmup record through `execute`, as TF Serving does.

    Args:
      saved_model_dir: the version directory.
      execute: called with each PredictionLog (`iterations` times each); it
        raises to fail the warmup.
      iterations: times each record is replayed (TF Serving's
        --num_request_iterations_for_warmup; 1 by default).
      quiet: log nothing (for reading the file outside a server).
      on_done: called with (status, records read) when the file existed.

    Returns:
      The number of records read, or None if there is no warmup file.

    Raises:
      ServingError: the file is corrupt (DATA_LOSS), a record is not a
        PredictionLog or there are too many (INVALID_ARGUMENT), or `execute`
        failed.
    """
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from google.protobuf import message  # pylint: disable=import-outside-toplevel
    from tensorflow_serving.apis import prediction_log_pb2

    path = warmup_path(saved_model_dir)
    if not tf.io.gfile.exists(path):
        if not quiet:
            logging.info('No warmup data file found at %s', path)
        return None
    if not quiet:
        logging.info('Starting to read warmup data for model at %s', path)
    started = time.monotonic()
    count = 0
    status = 'OK'
    try:
        try:
            for record in tf.data.TFRecordDataset(path):
                log = prediction_log_pb2.PredictionLog()
                try:
                    log.ParseFromString(record.numpy())
                except message.DecodeError:
                    raise errors.invalid_argument(
                        f'Failed to parse warmup record {count} from {path}'
                    ) from None
                for _ in range(max(iterations, 1)):
                    execute(log)
                count += 1
                if count > MAX_RECORDS:
                    raise errors.invalid_argument(
                        'Number of warmup records exceeds the maximum '
                        f'({MAX_RECORDS}) at {path}')
        except tf.errors.DataLossError as error:
            raise errors.ServingError(
                errors.Code.DATA_LOSS,
                f'{errors.clean_tf_message(error.message)}. Please verify your '
                'warmup data is in TFRecord format.') from None
        except tf.errors.OpError as error:
            raise errors.from_tf_error(error) from None
    except errors.ServingError as error:
        status = error.status_string()
        raise
    finally:
        if on_done is not None:
            on_done(status, count)
    if not quiet:
        logging.info(
            'Finished reading warmup data for model at %s. Number of warmup '
            'records read: %d. Elapsed time (microseconds): %d.', path, count,
            int((time.monotonic() - started) * 1e6))
    return count
