"""ImageExampleGenSpec: the stock FileBasedExampleGen spec plus our settings, and the
reader of the report ImageExampleGen writes beside its splits."""

import json
import os
from typing import Any, Dict, Optional

import tensorflow as tf
from tfx.types import component_spec
from tfx.types import standard_component_specs

# Execution properties of ImageExampleGen beyond FileBasedExampleGen's.
CLASS_NAMES_KEY = 'class_names'                 # JSON list of class names; index = label
MAX_BAD_FRACTION_KEY = 'max_bad_fraction'  # share of unreadable files that fails the run
MAX_PIXELS_KEY = 'max_pixels'              # larger images are reported as bad, not decoded
MAX_FILE_BYTES_KEY = 'max_file_bytes'      # larger files are reported as bad, never read
SYMLINKS_KEY = 'symlinks'                  # which symbolic links are followed
STOP_ON_CONFLICTING_LABELS_KEY = 'stop_on_conflicting_labels'  # 1: same bytes in two classes fail

# Files written into the Examples artifact beside the Split-* folders.
# CLASS_NAMES_FILE (labels.txt: one class name per line, line number = label): examples_io's,
# which reads it without this module's TFX imports.
REPORT_FILE = 'image_report.json'          # counts, bad files, duplicates
MANIFEST_DIR = 'image_manifest'            # one JSON line per input file


class ImageExampleGenSpec(standard_component_specs.FileBasedExampleGenSpec):
    """FileBasedExampleGenSpec with the image settings as execution parameters."""

    PARAMETERS = {
        **standard_component_specs.FileBasedExampleGenSpec.PARAMETERS,
        CLASS_NAMES_KEY: component_spec.ExecutionParameter(type=str),
        MAX_BAD_FRACTION_KEY: component_spec.ExecutionParameter(type=float),
        MAX_PIXELS_KEY: component_spec.ExecutionParameter(type=int),
        MAX_FILE_BYTES_KEY: component_spec.ExecutionParameter(type=int),
        SYMLINKS_KEY: component_spec.ExecutionParameter(type=str),
        STOP_ON_CONFLICTING_LABELS_KEY: component_spec.ExecutionParameter(type=int),
    }


def read_report(examples_uri: str) -> Optional[Dict[str, Any]]:
    """REPORT_FILE of an Examples artifact (summary.summarize's dict: counts, bad and
    ignored files, duplicates), or None when it has none (another ExampleGen's).

    Raises:
      ValueError: the file is not JSON (e.g. cut short).
    """
    path = os.path.join(examples_uri, REPORT_FILE)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)
