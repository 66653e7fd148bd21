"""DataReportSpec and the keys of its inputs, outputs and parameters."""

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
