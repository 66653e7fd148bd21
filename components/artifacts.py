"""Artifact types of our own components."""

from tfx.types import artifact
from tfx.types import standard_artifacts


class DataValidationReport(artifact.Artifact):
    """index.html (for people) and verdict.json (for the gate) of one data set."""
    # '<module>.<Class>': the Kubeflow V2 compiler and its container launcher
    # import custom artifact classes by this name.
    TYPE_NAME = 'components.DataValidationReport'


# Files inside a DataValidationReport.
REPORT_HTML = 'index.html'
VERDICT_JSON = 'verdict.json'
LABEL_DRIFT_PBTXT = 'label_drift_anomalies.pbtxt'


def failed_verdict_message(verdict: dict) -> str:
    """What a run stopped by a failed verdict.json says: each problem and the report."""
    problems = '\n  - '.join(verdict['problems'])
    return (f"data validation failed, training stopped:\n  - {problems}\n"
            f"report: {verdict['report']}")


class ReferenceProfile(artifact.Artifact):
    """reference_profile.json: what the data a model was trained and evaluated on looks
    like (image properties, the model's answers, embeddings), for monitoring."""
    TYPE_NAME = 'components.ReferenceProfile'


class DataQualityReport(artifact.Artifact):
    """label_issues.csv, near_duplicates.csv and summary.json of one data set
    (components/data_quality/outputs.py reads them)."""
    TYPE_NAME = 'components.DataQualityReport'


class FrozenFeatures(artifact.Artifact):
    """The frozen base's pooled features of every photo, un-augmented, computed once by
    DataQuality and reused by the Trainer (models/frozen_features.py: the format)."""
    TYPE_NAME = 'components.FrozenFeatures'


class PushedModelBlessing(standard_artifacts.ModelBlessing):
    """The Pusher's word that a model was pushed (blessed = 1) or not (0), with the
    Evaluator's custom properties (`current_model_id`, ...): TFX's
    LatestBlessedModelStrategy on a channel of this type resolves the latest model that
    was pushed, never one that was blessed but never served."""
    TYPE_NAME = 'components.PushedModelBlessing'


class TFLiteModel(artifact.Artifact):
    """<variant>.tflite models converted from a trained model, each checked on the eval
    split against it; tflite_report.json says which are ready and why others were refused
    (components/tflite_export/report.py reads it)."""
    TYPE_NAME = 'components.TFLiteModel'
