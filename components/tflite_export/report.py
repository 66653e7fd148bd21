"""What TFLiteExport writes into its TFLiteModel artifact, and the reader of it.

  <variant>.tflite          a converted model that passed its check: ready to use
  refused/<variant>.tflite  one that lost too much accuracy: kept to inspect, never ready
  labels.txt                class names, line = class index (the model's output order)
  tflite_report.json        per variant: size, the check's numbers, ready or the reason
"""

import json
import os
from typing import Dict

import tensorflow as tf

REPORT_FILE = 'tflite_report.json'
REFUSED_DIR = 'refused'
CLASS_NAMES_FILE = 'labels.txt'
# Custom property of the artifact: the ready variants, comma-separated ('' when none).
READY_PROPERTY = 'ready_variants'


def model_file(uri: str, variant: str, *, ready: bool) -> str:
    """Where a variant's .tflite file is written: at the top when ready, else in refused/."""
    return os.path.join(uri, f'{variant}.tflite') if ready else os.path.join(
        uri, REFUSED_DIR, f'{variant}.tflite')


def read_report(uri: str) -> Dict:
    """tflite_report.json of a TFLiteModel artifact."""
    with tf.io.gfile.GFile(os.path.join(uri, REPORT_FILE)) as f:
        return json.load(f)


def ready_models(uri: str) -> Dict[str, str]:
    """{variant: path of its .tflite file} of the variants that passed their check."""
    return {variant: model_file(uri, variant, ready=True)
            for variant, result in read_report(uri)['variants'].items() if result['ready']}
