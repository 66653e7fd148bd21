"""Images for the monitoring tests: photos the shared pipeline run never saw, and images
shifted from them.

The shared run (`small_run`) learns from cats_vs_dogs (a subset of
cats_and_dogs_filtered/train); the held-out photos here are
cats_and_dogs_filtered/validation (cat.2000-2499, dog.2000-2499): the same
source, none of them in the reference profile.
"""

import base64
import hashlib
import io
import pathlib
from typing import Any, Dict, List, Tuple

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance

from serving_formats import request_log_format as fmt
from tests import data

HELD_OUT = data.SHARED / 'datasets' / 'cats_and_dogs_filtered' / 'validation'


def held_out_photos(label: str, count: int, offset: int = 0) -> List[pathlib.Path]:
    """`count` held-out photos of a class, by number."""
    files = sorted((HELD_OUT / label).glob('*.jpg'), key=lambda p: int(p.stem.split('.')[1]))
    chosen = files[offset:offset + count]
    if len(chosen) != count:
        raise ValueError(f'only {len(chosen)} photos in {HELD_OUT / label} after {offset}')
    return chosen


def jpeg(image: Image.Image, quality: int = 90) -> bytes:
    return data.encode(image.convert('RGB'), 'JPEG', quality=quality)


def darkened(payload: bytes) -> bytes:
    return jpeg(ImageEnhance.Brightness(Image.open(io.BytesIO(payload)).convert('RGB'))
                .enhance(0.35))


def greyscale(payload: bytes) -> bytes:
    """A one-channel JPEG of the photo."""
    return data.encode(Image.open(io.BytesIO(payload)).convert('L'), 'JPEG', quality=90)


def as_png(payload: bytes) -> bytes:
    return data.encode(Image.open(io.BytesIO(payload)).convert('RGB'), 'PNG')


def huge(payload: bytes, size=(4032, 3024)) -> bytes:
    """The photo blown up to a 12-megapixel phone photo's size."""
    return jpeg(Image.open(io.BytesIO(payload)).convert('RGB').resize(size))


def drawing(index: int, size: Tuple[int, int]) -> bytes:
    """A generated picture of another kind (coloured shapes on paper), JPEG, at a photo's size."""
    rng = np.random.default_rng(index)
    image = Image.new('RGB', size, tuple(int(v) for v in rng.integers(200, 256, 3)))
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x0, y0 = int(rng.integers(0, size[0] - 20)), int(rng.integers(0, size[1] - 20))
        x1 = int(rng.integers(x0 + 10, size[0]))
        y1 = int(rng.integers(y0 + 10, size[1]))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            draw.ellipse((x0, y0, x1, y1), fill=colour)
        else:
            draw.rectangle((x0, y0, x1, y1), fill=colour)
    return jpeg(image)


def log_entry(payload: bytes) -> Dict[str, Any]:
    """An image as the request log holds it with image bytes
    (serving_formats/request_log_format.py)."""
    with Image.open(io.BytesIO(payload)) as image:
        width, height = image.size
    return {fmt.IMAGE_BYTES: len(payload), fmt.IMAGE_SHA256: hashlib.sha256(payload).hexdigest(),
            fmt.IMAGE_WIDTH: width, fmt.IMAGE_HEIGHT: height,
            fmt.IMAGE_B64: base64.b64encode(payload).decode('ascii')}
