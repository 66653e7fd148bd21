"""The DataQuality stage's settings (PipelineConfig.quality): default, help and check of each.

Possible label errors and near-duplicates, on the frozen base's features
(docs/data_quality.md). A held-out split whose share of photos with a near-copy in train
is above max_leak_fraction stops the run at the DataGate; so does a share of photos
flagged as possibly mislabelled above max_label_issue_fraction (1.0: they are listed
and warned about, never stop). Imports nothing of TFX (pipeline/cli.py derives the
runners' flags from these fields).
"""

import dataclasses

from models import settings

# Default near_duplicate_similarity: the whitened cosine from which two photos are a
# pair (measured on edited copies of real photos: docs/data_quality.md).
SIMILARITY = 0.45


@dataclasses.dataclass(frozen=True)
class Quality:
    """Whether DataQuality runs, and what it calls a near-copy and a problem."""
    data_quality: bool = settings.setting(
        True, 'run the DataQuality stage (label issues, near-duplicates)')
    near_duplicate_similarity: float = settings.setting(
        SIMILARITY, 'whitened cosine of the frozen features from which two photos are '
        'near-duplicates', check=(lambda v: -1.0 <= v <= 1.0, 'a cosine, in [-1, 1]'))
    max_leak_fraction: float = settings.setting(
        0.01, 'share of the eval (or test) photos with a near-copy in train above which the '
        'run stops', check=settings.SHARE)
    max_label_issue_fraction: float = settings.setting(
        1.0, 'share of photos flagged as possibly mislabelled above which the run stops '
        '(1.0: they are only listed and warned about)', check=settings.SHARE)

    def __post_init__(self):
        settings.check_fields(self, Quality)
