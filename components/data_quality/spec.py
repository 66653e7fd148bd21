"""DataQualitySpec and the keys of its input, outputs and parameters."""

from tfx.types import component_spec
from tfx.types import standard_artifacts

from components import artifacts

EXAMPLES_KEY = 'examples'
REPORT_KEY = 'report'                      # DataQualityReport: CSVs and summary.json
FEATURES_KEY = 'features'                  # FrozenFeatures, reused by the Trainer
WEIGHTS_KEY = 'weights'                    # the frozen base's weights (as the Trainer's)
IMAGE_SIZE_KEY = 'image_size'              # JSON [height, width], the Trainer's input size
SIMILARITY_KEY = 'near_duplicate_similarity'
MAX_LEAK_FRACTION_KEY = 'max_leak_fraction'
MAX_LABEL_ISSUE_FRACTION_KEY = 'max_label_issue_fraction'


class DataQualitySpec(component_spec.ComponentSpec):
    PARAMETERS = {
        WEIGHTS_KEY: component_spec.ExecutionParameter(type=str, optional=True),
        IMAGE_SIZE_KEY: component_spec.ExecutionParameter(type=str),
        SIMILARITY_KEY: component_spec.ExecutionParameter(type=float),
        MAX_LEAK_FRACTION_KEY: component_spec.ExecutionParameter(type=float),
        MAX_LABEL_ISSUE_FRACTION_KEY: component_spec.ExecutionParameter(type=float),
    }
    INPUTS = {
        EXAMPLES_KEY: component_spec.ChannelParameter(type=standard_artifacts.Examples),
    }
    OUTPUTS = {
        REPORT_KEY: component_spec.ChannelParameter(type=artifacts.DataQualityReport),
        FEATURES_KEY: component_spec.ChannelParameter(type=artifacts.FrozenFeatures),
    }
