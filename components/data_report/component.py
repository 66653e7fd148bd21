"""DataReport: turns statistics, schema, anomalies and the ExampleGen report into
a verdict (for DataGate) and an HTML report (for people). It never fails on bad
data, so its report survives a run that the gate stops."""

from typing import Optional

from tfx.dsl.components.base import base_component
from tfx.dsl.components.base import executor_spec
from tfx.types import channel

from components import artifacts
from components.data_report import executor
from components.data_report import settings
from components.data_report.spec import DataReportSpec


class DataReport(base_component.BaseComponent):
    """Checks label balance, label drift, anomalies and leakage; writes the report."""

    SPEC_CLASS = DataReportSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, examples: channel.Channel, statistics: channel.Channel,
                 schema: channel.Channel, anomalies: channel.Channel, *, class_names_json: str,
                 balance_tolerance: float, label_false_alarm_rate: float,
                 max_cross_split_duplicates: int,
                 sample_images_per_class: int = settings.DataChecks.sample_images_per_class,
                 report: Optional[channel.Channel] = None,
                 data_quality: Optional[channel.Channel] = None):
        """Args: the channels of ExampleGen, StatisticsGen, the schema and
        ExampleValidator, and the checks' settings (settings.DataChecks); optionally
        DataQuality's report (its problems join the verdict, its suspects the page)."""
        settings.DataChecks(balance_tolerance=balance_tolerance,     # checked there, once
                            label_false_alarm_rate=label_false_alarm_rate,
                            max_cross_split_duplicates=max_cross_split_duplicates,
                            sample_images_per_class=sample_images_per_class)
        spec = DataReportSpec(
            examples=examples, statistics=statistics, schema=schema, anomalies=anomalies,
            data_quality=data_quality,
            class_names=class_names_json, balance_tolerance=float(balance_tolerance),
            label_false_alarm_rate=float(label_false_alarm_rate),
            max_cross_split_duplicates=int(max_cross_split_duplicates),
            sample_images_per_class=int(sample_images_per_class),
            report=report or channel.Channel(type=artifacts.DataValidationReport))
        super().__init__(spec=spec)
