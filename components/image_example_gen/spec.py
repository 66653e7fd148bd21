"""ImageExampleGenSpec: the stock FileBasedExampleGen spec plus our settings."""

from tfx.types import component_spec
from tfx.types import standard_component_specs

# Execution properties of ImageExampleGen beyond FileBasedExampleGen's.
CLASS_NAMES_KEY = 'class_names'                 # JSON list of class names; index = label
MAX_BAD_FRACTION_KEY = 'max_bad_fraction'  # share of unreadable files that fails the run
MAX_PIXELS_KEY = 'max_pixels'              # larger images are reported as bad, not decoded
MAX_FILE_BYTES_KEY = 'max_file_bytes'      # larger files are reported as bad, never read
SYMLINKS_KEY = 'symlinks'                  # which symbolic links are followed
STOP_ON_CONFLICTING_LABELS_KEY = 'stop_on_conflicting_labels'  # 1: same bytes in two classes fail

# Files written into the Examples artifact beside the Split-* folders.
CLASS_NAMES_FILE = 'labels.txt'                 # one class name per line, line number = label
REPORT_FILE = 'image_report.json'          # counts, bad files, duplicates
MANIFEST_DIR = 'image_manifest'            # one JSON line per input file


class ImageExampleGenSpec(standard_component_specs.FileBasedExampleGenSpec):
    """FileBasedExampleGenSpec with the image settings as execution parameters."""

    PARAMETERS = {
        **standard_component_specs.FileBasedExampleGenSpec.PARAMETERS,
        CLASS_NAMES_KEY: component_spec.ExecutionParameter(type=str),
        MAX_BAD_FRACTION_KEY: component_spec.ExecutionParameter(type=float),
        MAX_PIXELS_KEY: component_spec.ExecutionParameter(type=int),
        MAX_FILE_BYTES_KEY: component_spec.ExecutionParameter(type=int),
        SYMLINKS_KEY: component_spec.ExecutionParameter(type=str),
        STOP_ON_CONFLICTING_LABELS_KEY: component_spec.ExecutionParameter(type=int),
    }
