"""DataReportSpec, the keys of its inputs, outputs and parameters, and the reader of
the verdict it writes."""

import json
import os
from typing import Any, Dict, Optional

import tensorflow as tf
from tfx.types import component_spec
from tfx.types import standard_artifacts

from components import artifacts

EXAMPLES_KEY = 'examples'
STATISTICS_KEY = 'statistics'
SCHEMA_KEY = 'schema'
ANOMALIES_KEY = 'anomalies'
DATA_QUALITY_KEY = 'data_quality'                   # optional: DataQuality's report
REPORT_KEY = 'report'
CLASS_NAMES_KEY = 'class_names'                     # JSON list of class names
BALANCE_TOLERANCE_KEY = 'balance_tolerance'
LABEL_FALSE_ALARM_RATE_KEY = 'label_false_alarm_rate'  # of the balance and drift checks
MAX_CROSS_SPLIT_DUPLICATES_KEY = 'max_cross_split_duplicates'
SAMPLES_PER_CLASS_KEY = 'sample_images_per_class'


class DataReportSpec(component_spec.ComponentSpec):
    PARAMETERS = {
        CLASS_NAMES_KEY: component_spec.ExecutionParameter(type=str),
        BALANCE_TOLERANCE_KEY: component_spec.ExecutionParameter(type=float),
        LABEL_FALSE_ALARM_RATE_KEY: component_spec.ExecutionParameter(type=float),
        MAX_CROSS_SPLIT_DUPLICATES_KEY: component_spec.ExecutionParameter(type=int),
        SAMPLES_PER_CLASS_KEY: component_spec.ExecutionParameter(type=int),
    }
    INPUTS = {
        EXAMPLES_KEY: component_spec.ChannelParameter(type=standard_artifacts.Examples),
        STATISTICS_KEY: component_spec.ChannelParameter(
            type=standard_artifacts.ExampleStatistics),
        SCHEMA_KEY: component_spec.ChannelParameter(type=standard_artifacts.Schema),
        ANOMALIES_KEY: component_spec.ChannelParameter(type=standard_artifacts.ExampleAnomalies),
        DATA_QUALITY_KEY: component_spec.ChannelParameter(type=artifacts.DataQualityReport,
                                                          optional=True),
    }
    OUTPUTS = {
        REPORT_KEY: component_spec.ChannelParameter(type=artifacts.DataValidationReport),
    }


def read_verdict(report_uri: str) -> Optional[Dict[str, Any]]:
    """artifacts.VERDICT_JSON of a DataValidationReport ({'passed', 'problems', 'report',
    ...}), or None when it has none (a run stopped before the DataReport wrote it).

    Raises:
      ValueError: the file is not JSON (e.g. cut short).
    """
    path = os.path.join(report_uri, artifacts.VERDICT_JSON)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)
