"""EXIF orientation: real photos from ../shared saved with an Orientation tag are decoded
upright by the graph (training, eval, the exported signatures) and sized upright by the
profile and the request log."""

import io
import struct

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageOps

from models import builders
from models import export
from models import features
from models import orientation
from models import preprocessing
from models import profile
from serving import request_log
from tests import data
from tests import transform_graph

T = Image.Transpose
# What a camera does to the upright scene for each tag value: Pillow's exif_transpose undoes it.
STORED = {1: None, 2: T.FLIP_LEFT_RIGHT, 3: T.ROTATE_180, 4: T.FLIP_TOP_BOTTOM, 5: T.TRANSPOSE,
          6: T.ROTATE_90, 7: T.TRANSVERSE, 8: T.ROTATE_270}


def upright_photo() -> Image.Image:
    """A real photo, wider than high, so a quarter turn shows in its shape."""
    image = Image.open(data.photos('train', 'cats', 1)[0]).convert('RGB')
    assert image.width != image.height
    return image


def tagged_jpeg(upright: Image.Image, value: int, **other_tags) -> bytes:
    """The JPEG a camera would write: the pixels turned as `value` says, and the tag."""
    stored = upright.transpose(STORED[value]) if STORED[value] is not None else upright
    exif = Image.Exif()
    for tag, tag_value in other_tags.items():
        exif[{'make': 0x010F, 'model': 0x0110}[tag]] = tag_value
    exif[orientation.ORIENTATION_TAG] = value
    return data.encode(stored, 'JPEG', quality=95, exif=exif.tobytes())


def big_endian_tagged_jpeg(upright: Image.Image, value: int) -> bytes:
    """A Motorola-order ("MM") Exif segment, written by hand after the JFIF segment."""
    stored = upright.transpose(STORED[value])
    plain = data.encode(stored, 'JPEG', quality=95)
    assert plain[2:4] == b'\xff\xe0'                       # Pillow writes JFIF (APP0) first
    after_app0 = 4 + struct.unpack('>H', plain[4:6])[0]
    tiff = (b'MM\x00\x2a' + struct.pack('>I', 8) + struct.pack('>H', 1)
            + struct.pack('>HHIHH', orientation.ORIENTATION_TAG, 3, 1, value, 0)
            + struct.pack('>I', 0))
    payload = b'Exif\x00\x00' + tiff
    app1 = b'\xff\xe1' + struct.pack('>H', len(payload) + 2) + payload
    return plain[:after_app0] + app1 + plain[after_app0:]


def decoded(image_bytes: bytes) -> np.ndarray:
    return orientation.decode_upright(tf.constant(image_bytes)).numpy()


@pytest.mark.parametrize('value', range(1, 9))
def test_every_orientation_decodes_as_pillow_turns_it(value):
    upright = upright_photo()
    jpeg = tagged_jpeg(upright, value, make='Phone', model='X')   # the tag is IFD0's third entry
    assert int(orientation.exif_orientation(tf.constant(jpeg))) == value
    ours = decoded(jpeg)
    pillows = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(jpeg))).convert('RGB'))
    assert ours.shape == pillows.shape == (upright.height, upright.width, 3)
    # The same pixels (two JPEG decoders differ by a grey level here and there).
    assert np.abs(ours.astype(int) - pillows.astype(int)).mean() < 1.0


@pytest.mark.parametrize('value', [3, 6, 8])
def test_motorola_byte_order(value):
    upright = upright_photo()
    jpeg = big_endian_tagged_jpeg(upright, value)
    assert Image.open(io.BytesIO(jpeg)).getexif()[orientation.ORIENTATION_TAG] == value
    assert int(orientation.exif_orientation(tf.constant(jpeg))) == value
    assert decoded(jpeg).shape == (upright.height, upright.width, 3)


def test_files_without_a_tag_read_as_upright():
    photo = data.photos('train', 'dogs', 1)[0].read_bytes()
    tagged = tagged_jpeg(upright_photo(), 6)
    cases = {
        'photo without Exif': photo,
        'png': data.encode(Image.open(io.BytesIO(photo)), 'PNG'),
        'empty': b'',
        'text': b'this is not an image',
        'truncated inside the Exif segment': tagged[:40],
        'only the start of image marker': b'\xff\xd8',
    }
    for name, payload in cases.items():
        assert int(orientation.exif_orientation(tf.constant(payload))) == 1, name


def test_the_model_input_is_the_upright_photo_for_a_sideways_file():
    """What training, eval and serving feed the model (preprocess_images, the Transform
    graph's function): the turned file gives the upright photo's pixels."""
    upright = upright_photo()
    files = [data.encode(upright, 'JPEG', quality=95), tagged_jpeg(upright, 6),
             tagged_jpeg(upright, 8), data.encode(upright.transpose(T.ROTATE_90), 'JPEG',
                                                  quality=95)]
    images = preprocessing.preprocess_images(tf.constant(files), (96, 128)).numpy()
    reference, turned_right, turned_left, sideways_untagged = images
    assert np.abs(turned_right - reference).mean() < 0.02
    assert np.abs(turned_left - reference).mean() < 0.02
    # Without the tag the same pixels are a different picture for the model.
    assert np.abs(sideways_untagged - reference).mean() > 0.1


def test_the_exported_signatures_decode_upright_in_their_graph(tmp_path):
    """The SavedModel alone (what our server and TF Serving run) reads the tag."""
    size = (64, 64)
    tf_transform_output = transform_graph.write_transform_graph(str(tmp_path / 'tft'), size)
    model = builders.build('cnn', size, 2, weights=None, dropout=0.0, learning_rate=1e-3, seed=1)
    export_dir = str(tmp_path / 'export')
    export.export_model(model, tf_transform_output, ['cats', 'dogs'], export_dir)
    loaded = tf.saved_model.load(export_dir)
    upright = upright_photo()
    files = [data.encode(upright, 'JPEG', quality=95), tagged_jpeg(upright, 6),
             data.encode(upright.transpose(T.ROTATE_90), 'JPEG', quality=95)]
    examples = tf.constant([tf.train.Example(features=tf.train.Features(feature={
        features.IMAGE_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[f]))}))
        .SerializeToString() for f in files])
    pixels = loaded.signatures[features.TRANSFORM_SIGNATURE](examples=examples)[
        features.transformed_name(features.IMAGE_KEY)].numpy()
    assert np.abs(pixels[1] - pixels[0]).mean() < 0.02
    assert np.abs(pixels[2] - pixels[0]).mean() > 0.1
    served = loaded.signatures[features.SERVING_SIGNATURE](
        **{features.SERVING_INPUT: tf.constant(files)})[features.PROBABILITIES_OUTPUT].numpy()
    np.testing.assert_allclose(served[1], served[0], atol=0.02)


def test_profile_and_request_log_report_the_upright_size():
    upright = upright_photo()
    for value in (1, 3, 6, 8):
        jpeg = tagged_jpeg(upright, value)
        row = profile.image_row(jpeg)
        assert (row['width'], row['height']) == upright.size, value
        assert row['aspect'] == pytest.approx(upright.width / upright.height)
        info = request_log.image_info(jpeg)
        assert (info['width'], info['height']) == upright.size, value
