"""DataGate: stops the run before Transform when the data report failed."""

import json
import os

import tensorflow as tf
from tfx.dsl.component.experimental.annotations import InputArtifact
from tfx.dsl.component.experimental.decorators import component

from components import artifacts


class DataValidationError(RuntimeError):
    """The data set failed validation; the message names each problem and the report."""


def check_verdict(report_uri: str) -> None:
    """Raises DataValidationError when the DataReport's verdict failed.

    Args:
      report_uri: URI of a DataValidationReport artifact.
    """
    with tf.io.gfile.GFile(os.path.join(report_uri, artifacts.VERDICT_JSON)) as f:
        verdict = json.load(f)
    if not verdict['passed']:
        raise DataValidationError(artifacts.failed_verdict_message(verdict))


@component
def DataGate(report: InputArtifact[artifacts.DataValidationReport]) -> None:  # pylint: disable=invalid-name
    """Fails (and so stops every later component) unless the data passed its checks."""
    check_verdict(report.uri)
