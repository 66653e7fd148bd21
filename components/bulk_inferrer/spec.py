"""BulkInferrerSpec, the names of what it writes, and the reader of them.

The InferenceResult artifact holds scores.csv (one row per entry under the folder:
components/bulk_inferrer/rows.py) and scores.summary.json (counts, reasons, accuracy
when folder names are classes, images/s). The command line writes the same two files
where --out says.
"""

import csv
import json
import os
from typing import Dict, Iterator

import tensorflow as tf
from tfx.types import component_spec
from tfx.types import standard_artifacts
from tfx.types import standard_component_specs

from components.bulk_inferrer import files
from models import export
from models import features

IMAGES_DIR_KEY = 'images_dir'            # the local folder of photos to score
BATCH_SIZE_KEY = 'batch_size'            # images per call of the serving signature
MAX_FILE_BYTES_KEY = 'max_file_bytes'    # larger files are bad, not read
MAX_PIXELS_KEY = 'max_pixels'            # larger images are bad, not decoded
# Set by the driver, not by the pipeline: (path, size, mtime) of every entry under the
# folder, so that changed photos re-run the component instead of hitting the cache.
FOLDER_FINGERPRINT_KEY = 'folder_fingerprint'

SCORES_FILE = 'scores.csv'
# Images per call of the serving signature: the chunk it runs the model on anyway (a
# larger batch runs as several chunks, and a bad image in it costs more calls to isolate).
BATCH_SIZE = export.CHUNK_IMAGES
# Custom properties of the InferenceResult artifact.
SCORED_PROPERTY = 'scored'               # files scored
BAD_PROPERTY = 'bad'                     # image files that could not be scored
NOT_SCORED_REASON_PROPERTY = 'not_scored_reason'   # e.g. the model was not blessed


def summary_path(scores_path: str) -> str:
    """scores.summary.json beside scores.csv (the same stem)."""
    return os.path.splitext(scores_path)[0] + '.summary.json'


def read_scores(scores_path: str) -> Iterator[Dict[str, str]]:
    """The rows of a scores CSV, as dicts keyed by its header."""
    with tf.io.gfile.GFile(scores_path) as f:
        yield from csv.DictReader(f)


def read_summary(scores_path: str) -> Dict:
    """The summary written beside a scores CSV."""
    with tf.io.gfile.GFile(summary_path(scores_path)) as f:
        return json.load(f)


class BulkInferrerSpec(component_spec.ComponentSpec):
    """Scores a folder of photos with a (blessed) model."""
    PARAMETERS = {
        IMAGES_DIR_KEY: component_spec.ExecutionParameter(type=str),
        BATCH_SIZE_KEY: component_spec.ExecutionParameter(type=int),
        MAX_FILE_BYTES_KEY: component_spec.ExecutionParameter(type=int),
        MAX_PIXELS_KEY: component_spec.ExecutionParameter(type=int),
        FOLDER_FINGERPRINT_KEY: component_spec.ExecutionParameter(type=str, optional=True),
    }
    INPUTS = {
        standard_component_specs.MODEL_KEY: component_spec.ChannelParameter(
            type=standard_artifacts.Model),
        standard_component_specs.MODEL_BLESSING_KEY: component_spec.ChannelParameter(
            type=standard_artifacts.ModelBlessing, optional=True),
    }
    OUTPUTS = {
        standard_component_specs.INFERENCE_RESULT_KEY: component_spec.ChannelParameter(
            type=standard_artifacts.InferenceResult),
    }


DEFAULTS = {BATCH_SIZE_KEY: BATCH_SIZE, MAX_FILE_BYTES_KEY: files.MAX_FILE_BYTES,
            MAX_PIXELS_KEY: features.MAX_PIXELS}
