"""DataQuality: label issues and near-duplicate leaks, on the frozen base's features.

Runs after ImageExampleGen. Computes the frozen MobileNetV2's pooled features of every
photo once (models/frozen_features.py; the Trainer reuses the eval split's), then finds
photos that look like another class to models trained on the others (label_issues.py)
and pairs of near-copies within and across splits (near_duplicates.py). Like the
DataReport it never fails on bad data: the DataReport adds its problems (leaks above
max_leak_fraction; label issues above max_label_issue_fraction, by default never) to
the verdict the DataGate stops on, and shows its warnings and the top suspects.
"""

import json
from typing import Optional, Sequence

from tfx.dsl.components.base import base_component
from tfx.dsl.components.base import executor_spec
from tfx.types import channel

from components import artifacts
from components.data_quality import executor
from components.data_quality import settings
from components.data_quality.spec import DataQualitySpec


class DataQuality(base_component.BaseComponent):
    """Writes label_issues.csv, near_duplicates.csv, summary.json and the frozen features."""

    SPEC_CLASS = DataQualitySpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, examples: channel.BaseChannel, *, weights: Optional[str],
                 image_size: Sequence[int], near_duplicate_similarity: float,
                 max_leak_fraction: float, max_label_issue_fraction: float):
        """Args: ImageExampleGen's examples; the Trainer's weights and input size (so
        that it can reuse the features); the settings.Quality thresholds."""
        # Checked once, by the settings (the one whether-to-run stays the pipeline's).
        settings.Quality(near_duplicate_similarity=near_duplicate_similarity,
                         max_leak_fraction=max_leak_fraction,
                         max_label_issue_fraction=max_label_issue_fraction)
        if len(image_size) != 2:
            raise ValueError(f'image_size must be (height, width), got {image_size}')
        spec = DataQualitySpec(
            examples=examples, weights=weights,
            image_size=json.dumps([int(s) for s in image_size]),
            near_duplicate_similarity=float(near_duplicate_similarity),
            max_leak_fraction=float(max_leak_fraction),
            max_label_issue_fraction=float(max_label_issue_fraction),
            report=channel.Channel(type=artifacts.DataQualityReport),
            features=channel.Channel(type=artifacts.FrozenFeatures))
        super().__init__(spec=spec)
