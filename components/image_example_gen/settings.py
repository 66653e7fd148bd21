"""ImageExampleGen's settings (PipelineConfig.ingest): default, help and check of each.

The layout (a pre-split root, its test/ folder) is not a setting: the runners find it
in the data root (layout.py) and PipelineConfig holds it beside data_root; check_layout
says which settings a layout takes. Imports nothing of TFX (pipeline/cli.py derives the
runners' flags from these fields before TensorFlow loads).
"""

import dataclasses

from models import features
from models import settings


@dataclasses.dataclass(frozen=True)
class Ingest:
    """How ImageExampleGen reads the image folders and splits a root without split folders."""
    eval_fraction: float = settings.setting(
        features.EVAL_FRACTION, 'share of each class for eval, without split folders',
        check=settings.OPEN_FRACTION)
    test_fraction: float = settings.setting(
        0.0, 'share of each class held out as the test split, without split folders (0: '
        'none; a pre-split root uses test/)', check=settings.FRACTION)
    max_bad_fraction: float = settings.setting(
        features.MAX_BAD_FRACTION, 'fail the run when more image files than this share '
        'cannot be read', check=settings.SHARE)
    max_pixels: int = settings.setting(
        features.MAX_PIXELS, 'larger images are reported as bad, never decoded',
        check=settings.POSITIVE)
    max_file_bytes: int = settings.setting(
        features.MAX_FILE_BYTES, 'larger files are reported as bad, never read',
        check=settings.POSITIVE)
    symlinks: str = settings.setting(
        features.SYMLINKS, 'symbolic links under the data root to follow: all (follow; a '
        'link to a folder that holds it is not), those staying inside the root, or none',
        choices=features.SYMLINK_POLICIES)
    stop_on_conflicting_labels: bool = settings.setting(
        features.STOP_ON_CONFLICTING_LABELS, 'stop the run when the same image is filed '
        'under two classes (otherwise a warning; trained under each)')

    def __post_init__(self):
        settings.check_fields(self, Ingest)
        if self.eval_fraction + self.test_fraction >= 1.0:
            raise ValueError(
                'eval_fraction must be in (0, 1), test_fraction in [0, 1) and their sum '
                f'below 1, got {self.eval_fraction} and {self.test_fraction}')

    def check_layout(self, *, presplit: bool, test_folder: bool) -> None:
        """Raises ValueError when a setting does not apply to the data root's layout: a
        pre-split root (train/, validation/) holds its test split in test/, a root of
        class folders is split by eval_fraction and test_fraction."""
        if presplit and self.test_fraction:
            raise ValueError('test_fraction applies only when the data is not pre-split '
                             '(a pre-split root holds its test split in test/)')
        if not presplit and test_folder:
            raise ValueError('test_folder applies only to a pre-split root')
