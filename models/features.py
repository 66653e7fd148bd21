"""The data's facts, in one place: feature keys, class names, image size, signatures.

Everything else (ExampleGen, schema test, preprocessing, trainer, TFMA config,
serving) imports these names instead of restating them.
"""

# Default class names: the tutorial's folder names, sorted. A folder per class;
# label index = position here (what `image_dataset_from_directory` does too).
CLASS_NAMES = ('cats', 'dogs')

# Default model input size (the tutorial's IMG_SIZE).
IMAGE_SIZE = (160, 160)

# Augmentation strengths of the transfer model; 'tutorial' is the tutorial's flip + rotation.
AUGMENTATIONS = ('none', 'light', 'tutorial', 'strong')

# Raw features written by ImageExampleGen (one tf.train.Example per image).
IMAGE_KEY = 'image'            # encoded bytes, exactly as read from the file
LABEL_KEY = 'label'            # int64 index into the class names (the training target)
LABEL_NAME_KEY = 'label_name'  # the class folder name
PATH_KEY = 'path'              # path relative to the data root, '/'-separated
HEIGHT_KEY = 'height'          # decoded height in pixels
WIDTH_KEY = 'width'            # decoded width in pixels
CHANNELS_KEY = 'channels'      # channels of the source image (1 grey, 3 RGB, 4 RGBA/CMYK)
FORMAT_KEY = 'format'          # 'jpeg', 'png', 'bmp' or 'gif'
SHA256_KEY = 'sha256'          # hex digest of the bytes: duplicate detection, hash split

RAW_FEATURE_KEYS = (IMAGE_KEY, LABEL_KEY, LABEL_NAME_KEY, PATH_KEY, HEIGHT_KEY,
                    WIDTH_KEY, CHANNELS_KEY, FORMAT_KEY, SHA256_KEY)

# Split names as TFX sees them; a `validation/` folder becomes EVAL_SPLIT. TEST_SPLIT,
# when there is one, is held out: never trained on, early-stopped on or gated on.
TRAIN_SPLIT = 'train'
EVAL_SPLIT = 'eval'
TEST_SPLIT = 'test'
# Folder names that mark a pre-split data root (test/ is optional).
TRAIN_DIR = 'train'
VALIDATION_DIR = 'validation'
TEST_DIR = 'test'

# File extensions ImageExampleGen reads (lower case, with the dot).
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.gif')
# Photo formats users have but TensorFlow's decoders (JPEG, PNG, GIF, BMP) do not read:
# reported as such, with the advice to convert them, instead of as "not an image".
UNREAD_IMAGE_EXTENSIONS = ('.webp', '.heic', '.heif', '.avif', '.tif', '.tiff', '.jxl',
                           '.dng', '.cr2', '.cr3', '.nef', '.arw', '.orf', '.rw2')
# Ingestion defaults (PipelineConfig and ImageExampleGen both start from these).
EVAL_FRACTION = 0.2          # of each class to eval, when the root has no split folders
MAX_BAD_FRACTION = 0.05      # more unreadable image files than this fail the run
MAX_PIXELS = 100_000_000     # larger images are reported as bad instead of decoded
MAX_FILE_BYTES = 50_000_000  # larger files are reported as bad, never read
# Symbolic links under the data root: 'follow' them all (a link to a folder that holds
# it is not followed), only those that stay 'inside' the root, or 'none'. The report
# names every link followed and its target.
SYMLINK_POLICIES = ('follow', 'inside', 'none')
SYMLINKS = 'follow'
STOP_ON_CONFLICTING_LABELS = False  # same bytes under two classes: a warning, or stop
# Pillow's format name -> the FORMAT_KEY value; other formats are refused.
PIL_FORMATS = {'JPEG': 'jpeg', 'MPO': 'jpeg', 'PNG': 'png', 'BMP': 'bmp', 'GIF': 'gif'}
# Pillow's colour mode -> channels of the source image (CHANNELS_KEY).
MODE_CHANNELS = {'1': 1, 'L': 1, 'I': 1, 'I;16': 1, 'F': 1, 'P': 3, 'LA': 2, 'PA': 4,
                 'RGB': 3, 'YCbCr': 3, 'RGBA': 4, 'CMYK': 4}

# Serving contract of the exported SavedModel.
SERVING_SIGNATURE = 'serving_default'        # encoded image bytes in
SERVING_INPUT = 'image_bytes'                 # ends in _bytes: REST clients send {"b64": ...}
EXAMPLES_SIGNATURE = 'classification'         # serialized tf.train.Example in (TFMA, :classify)
EXAMPLES_INPUT = 'inputs'                     # TF Serving's classify input key
PROBABILITIES_OUTPUT = 'probabilities'
CLASS_INDEX_OUTPUT = 'class_index'
CLASS_NAME_OUTPUT = 'label'                     # the class name (a contract: clients read "label")
CLASSES_OUTPUT = 'classes'                    # TF Serving's classify output keys
SCORES_OUTPUT = 'scores'
TRANSFORM_SIGNATURE = 'transform_features'    # raw serialized Example -> transformed features
EMBEDDING_SIGNATURE = 'embedding'             # encoded image bytes -> embedding, probabilities
# TF Serving's folder for files beside a SavedModel (warmup requests, labels.txt,
# the reference profile).
ASSETS_EXTRA = 'assets.extra'
EMBEDDING_OUTPUT = 'embedding'                # the input of the model's last layer (monitoring)


def class_names(names) -> list:
    """The class names as a list, checked: at least two, all distinct.

    Raises:
      ValueError: naming the names given.
    """
    names = list(names)
    if len(names) < 2 or len(set(names)) != len(names):
        raise ValueError(f'class names must be at least two distinct names, got {names}')
    return names


def transformed_name(key: str) -> str:
    """Name of a feature after Transform."""
    return key + '_xf'
