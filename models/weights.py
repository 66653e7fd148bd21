"""Which weights the frozen base starts from, and the input size they were trained at.

Pure (no TensorFlow): the runners decide the input size from it before anything runs.
"""

import os
import re
from typing import Optional, Tuple

from models import features

# Keras downloads its own ImageNet checkpoint for the input size asked for.
IMAGENET = 'imagenet'

# Keras' MobileNetV2 file names end in _<alpha>_<rows>_no_top.h5 (or .._<rows>.h5 with a top).
_KERAS_FILE = re.compile(r'mobilenet_v2_weights_tf_dim_ordering_tf_kernels_[\d.]+_(\d+)'
                         r'(_no_top)?\.h5$')


def native_size(weights: Optional[str]) -> Optional[int]:
    """The square input size a weights file was trained at, from Keras' file name; else None."""
    if not weights or weights == IMAGENET:
        return None
    match = _KERAS_FILE.search(os.path.basename(weights))
    return int(match.group(1)) if match else None


def input_size(weights: Optional[str], model_variant: str,
               image_size: Optional[Tuple[int, int]]) -> Tuple[Tuple[int, int], str]:
    """The model's input size and the reason, in words.

    An explicit size wins; a weights file runs at its native size; Keras'
    'imagenet' download, random weights and the models without a pretrained
    base run at the tutorial's size.
    """
    if image_size is not None:
        return tuple(image_size), 'set explicitly (--image-size)'
    tutorial = tuple(features.IMAGE_SIZE)
    if model_variant != 'transfer':
        return tutorial, f'the tutorial\'s size ({model_variant} has no pretrained base)'
    if weights == IMAGENET:
        return tutorial, ('the tutorial\'s size; Keras downloads its ImageNet checkpoint for '
                          'that size')
    native = native_size(weights)
    if native is not None:
        return (native, native), (f'the size the weights file {os.path.basename(weights)} '
                                  'was trained at')
    if not weights:
        return tutorial, 'the tutorial\'s size (random weights)'
    return tutorial, (f'the tutorial\'s size (the weights file {os.path.basename(weights)} '
                      'does not name its size)')
