"""DataGate: stops the run before Transform when the data report failed."""

from tfx.dsl.component.experimental.annotations import InputArtifact
from tfx.dsl.component.experimental.decorators import component

from components import artifacts
from components.data_report import spec as data_report_spec


class DataValidationError(RuntimeError):
    """The data set failed validation; the message names each problem and the report."""


def check_verdict(report_uri: str) -> None:
    """Raises DataValidationError when the DataReport's verdict failed.

    Args:
      report_uri: URI of a DataValidationReport artifact.

    Raises:
      DataValidationError: the verdict failed.
      RuntimeError: the report holds no verdict.
    """
    verdict = data_report_spec.read_verdict(report_uri)
    if verdict is None:
        raise RuntimeError(f'the data report {report_uri} has no {artifacts.VERDICT_JSON}: '
                           'the DataReport did not finish')
    if not verdict['passed']:
        raise DataValidationError(artifacts.failed_verdict_message(verdict))


@component
def DataGate(report: InputArtifact[artifacts.DataValidationReport]) -> None:  # pylint: disable=invalid-name
    """Fails (and so stops every later component) unless the data passed its checks."""
    check_verdict(report.uri)
