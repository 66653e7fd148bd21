"""models/image_header.py: one header reader for ingestion, BulkInferrer, the server and
its request log; nothing is decoded."""

import pytest
from PIL import Image

from models import image_header
from tests import data
from tests.serving import hostile_inputs


def test_checked_reads_only_the_header_and_applies_the_pixel_limit():
    png = data.encode(Image.new('RGB', (40, 30)), 'PNG')
    header = image_header.checked(png, max_pixels=1200)
    assert (header.format, header.width, header.height, header.mode) == ('PNG', 40, 30, 'RGB')
    with pytest.raises(image_header.BadImageError, match='40x30 = 1200 pixels > max_pixels 1199'):
        image_header.checked(png, max_pixels=1199)
    # A header claiming 30000 x 30000 pixels: refused before anything is decoded.
    with pytest.raises(image_header.BadImageError, match='too large'):
        image_header.checked(hostile_inputs.png_claiming(30000, 30000))


def test_checked_names_what_is_wrong():
    with pytest.raises(image_header.BadImageError, match=r'^empty file \(0 bytes\)$'):
        image_header.checked(b'')
    with pytest.raises(image_header.BadImageError, match='unsupported image format TIFF'):
        image_header.checked(data.encode(Image.new('RGB', (8, 8)), 'TIFF'))
    with pytest.raises(image_header.BadImageError,
                       match=r'not a readable image \(no known image format in its bytes\)'):
        image_header.checked(b'shot on a phone')


def test_read_gives_pillows_ceiling_and_counts_gif_frames_up_to_a_limit():
    with pytest.raises(image_header.TooLargeError) as raised:
        image_header.read(hostile_inputs.png_bomb(20000, 20000))
    assert raised.value.ceiling == 2 * Image.MAX_IMAGE_PIXELS
    gif = hostile_inputs.gif_bomb(30, 20, 7)
    assert image_header.read(gif).frames == 1        # not counted unless asked
    assert image_header.read(gif, max_frames=10).pixels == 30 * 20 * 7
    assert image_header.read(gif, max_frames=5).frames == 6   # stops past the limit
    assert image_header.sniff_format(gif) == 'GIF'
    assert image_header.sniff_format(b'plain text') is None


def test_checked_refuses_what_pillow_warns_about_whatever_max_pixels_says():
    warned = hostile_inputs.png_bomb(Image.MAX_IMAGE_PIXELS // 1000 + 1, 1000)
    assert image_header.read(warned).pixels > Image.MAX_IMAGE_PIXELS   # read: no refusal
    with pytest.raises(image_header.TooLargeError, match='image too large to decode safely'):
        image_header.checked(warned, max_pixels=10 * Image.MAX_IMAGE_PIXELS)


@pytest.mark.parametrize('orientation, upright', [(1, (40, 30)), (3, (40, 30)), (6, (30, 40)),
                                                  (8, (30, 40))])
def test_a_jpegs_exif_orientation_gives_its_upright_size(orientation, upright):
    exif = Image.Exif()
    exif[274] = orientation
    jpeg = data.encode(Image.new('RGB', (40, 30)), 'JPEG', exif=exif)
    header = image_header.read(jpeg)
    assert (header.width, header.height) == (40, 30)     # as stored
    assert (header.orientation, header.upright_size) == (orientation, upright)
    # Only JPEGs carry it as the decoder reads it; a PNG is shown as stored.
    png = data.encode(Image.new('RGB', (40, 30)), 'PNG', exif=exif)
    assert image_header.read(png).upright_size == (40, 30)
