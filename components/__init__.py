"""Our TFX components (a spec + executor class, or one @component function: README, Layout)
and their artifact types."""

from components.artifacts import DataValidationReport  # pylint: disable=unused-import
from components.artifacts import PushedModelBlessing  # pylint: disable=unused-import
from components.artifacts import ReferenceProfile  # pylint: disable=unused-import
from components.artifacts import DataQualityReport  # pylint: disable=unused-import
from components.artifacts import FrozenFeatures  # pylint: disable=unused-import
from components.artifacts import TFLiteModel  # pylint: disable=unused-import
