"""models/profile.py: one row of image properties per encoded image, any mode Pillow reads."""

import io

import numpy as np
from PIL import Image
import pytest

from models import profile

ORANGE = (200, 100, 50)
ORANGE_LUMA = (0.299 * 200 + 0.587 * 100 + 0.114 * 50) / 255


def encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


@pytest.mark.parametrize('mode,fmt,channels', [
    ('RGB', 'PNG', 3), ('RGBA', 'PNG', 4), ('P', 'GIF', 3), ('RGB', 'BMP', 3)])
def test_solid_colour_in_any_mode(mode, fmt, channels):
    image = Image.new('RGB', (640, 480), ORANGE).convert(mode)
    row = profile.image_row(encode(image, fmt))
    assert (row['width'], row['height'], row['aspect']) == (640, 480, pytest.approx(4 / 3))
    assert row['format'] == fmt.lower()
    assert row['channels'] == channels
    assert row['brightness'] == pytest.approx(ORANGE_LUMA, abs=0.01)
    assert row['contrast'] == pytest.approx(0.0, abs=0.01)
    assert row['saturation'] == pytest.approx((200 - 50) / 200, abs=0.01)


def test_half_black_half_white_photo_is_mid_brightness_full_contrast():
    pixels = np.zeros((300, 400, 3), np.uint8)
    pixels[:, 200:] = 255
    row = profile.image_row(encode(Image.fromarray(pixels), 'JPEG'))
    assert row['format'] == 'jpeg'
    assert (row['width'], row['height']) == (400, 300)   # the file's size, not the shrunk one
    assert row['brightness'] == pytest.approx(0.5, abs=0.02)
    assert row['contrast'] == pytest.approx(0.5, abs=0.03)
    assert row['saturation'] == pytest.approx(0.0, abs=0.01)


def test_sixteen_bit_grey_png_is_brought_to_eight_bits():
    pixels = np.full((60, 80), 128 * 257, np.uint16)
    data = encode(Image.fromarray(pixels), 'PNG')
    assert Image.open(io.BytesIO(data)).mode.startswith('I')
    row = profile.image_row(data)
    assert row['channels'] == 1
    assert row['brightness'] == pytest.approx(128 / 255, abs=0.005)
    assert row['saturation'] == pytest.approx(0.0, abs=0.001)


def test_darker_photo_has_lower_brightness():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    bright = profile.image_row(encode(Image.fromarray(pixels), 'JPEG'))
    dark = profile.image_row(encode(Image.fromarray(pixels // 4), 'JPEG'))
    assert dark['brightness'] < bright['brightness'] / 3
    assert dark['contrast'] < bright['contrast'] / 3
