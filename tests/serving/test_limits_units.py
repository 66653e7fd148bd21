"""The limits (serving/limits.py) and the checks that apply them (serving/inputs.py,
serving/json_tensor.py's parser), as plain functions; no server."""

import argparse
import pathlib
import re
import threading
import time

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2

from serving import errors
from serving import inputs
from serving import json_tensor
from serving import limits as limits_lib
from tests.serving import hostile_inputs

DOCS = pathlib.Path(__file__).resolve().parents[2] / 'docs' / 'serving.md'
LIMITS = limits_lib.Limits()


def test_every_limit_is_a_flag_with_its_default_and_is_documented():
    parser = argparse.ArgumentParser()
    limits_lib.add_flags(parser)
    assert limits_lib.from_args(parser.parse_args([])) == LIMITS
    changed = limits_lib.from_args(parser.parse_args([
        '--max_image_pixels=5', '--max_request_pixels=10',
        '--model_base_path_roots=/a, /b']))
    assert (changed.max_image_pixels, changed.model_base_path_roots) == (
        5, ('/a', '/b'))
    docs = DOCS.read_text()
    for flag, default, _, _ in limits_lib.table_rows():
        row = next((line for line in docs.splitlines()
                    if line.startswith(f'| `{flag}` |')), None)
        assert row is not None, f'{flag} is not in the limits table of {DOCS}'
        assert f'| {default} |' in row, row


@pytest.mark.parametrize('values,message', [
    ({'max_image_pixels': 0}, '--max_image_pixels must be > 0, got 0'),
    ({'max_request_pixels': 10}, '--max_request_pixels (10) must be at least '
     '--max_image_pixels'),
    ({'max_pixels_in_flight': 2}, '--max_pixels_in_flight (2) must be at least'),
])
def test_limits_out_of_range_are_refused_by_flag(values, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        limits_lib.Limits(**values)


def test_allowed_roots(tmp_path):
    from tensorflow_serving.config import model_server_config_pb2
    config = model_server_config_pb2.ModelServerConfig()
    for name in ('a', 'b'):
        model = config.model_config_list.config.add()
        model.name, model.base_path = name, str(tmp_path / 'models' / name)
    roots = LIMITS.allowed_roots(config)
    assert roots == (str((tmp_path / 'models').resolve()),)
    assert not limits_lib.outside_roots(str(tmp_path / 'models' / 'c'), roots)
    assert limits_lib.outside_roots(str(tmp_path / 'models' / '..' / 'x'), roots)
    assert limits_lib.outside_roots(str(tmp_path / 'models2'), roots)
    (tmp_path / 'link').symlink_to('/etc')
    assert limits_lib.outside_roots(str(tmp_path / 'models' / '..' / 'link'),
                                    roots)
    gcs = ('gs://bucket/models',)
    assert not limits_lib.outside_roots('gs://bucket/models/a', gcs)
    assert limits_lib.outside_roots('gs://bucket/models/../secrets', gcs)


# ----------------------------------------------------------- TensorProtos


def _proto(values, dims, dtype=tf.float32):
    proto = tensor_pb2.TensorProto(dtype=dtype.as_datatype_enum)
    for size in dims:
        proto.tensor_shape.dim.add().size = size
    field = 'string_val' if dtype == tf.string else 'float_val'
    getattr(proto, field).extend(values)
    return proto


def test_tensor_protos_are_padded_as_tensorflow_does_but_only_so_far():
    array = inputs.array_from_tensor_proto('x', _proto([2.0], [3]), LIMITS)
    assert array.tolist() == [2.0, 2.0, 2.0]
    small = limits_lib.Limits(max_tensor_elements=4)
    with pytest.raises(errors.ServingError, match=re.escape(
            "input 'x': tensor_shape [5] declares 5 elements, more than the "
            'limit of 4 (--max_tensor_elements)')):
        inputs.array_from_tensor_proto('x', _proto([2.0], [5]), small)
    with pytest.raises(errors.ServingError, match='3 values sent for shape '):
        inputs.array_from_tensor_proto('x', _proto([1.0, 2.0, 3.0], [2]),
                                       LIMITS)
    with pytest.raises(errors.ServingError, match='negative dimension'):
        inputs.array_from_tensor_proto('x', _proto([1.0], [-3]), LIMITS)
    proto = _proto([], [2])
    proto.tensor_content = np.zeros(3, np.float32).tobytes()
    with pytest.raises(errors.ServingError, match=re.escape(
            "input 'x': tensor_content holds 12 bytes, but shape [2] of float "
            'needs 8')):
        inputs.array_from_tensor_proto('x', proto, LIMITS)
    huge = _proto([b'a'], [2**31], tf.string)
    started = time.monotonic()
    with pytest.raises(errors.ServingError) as raised:
        inputs.array_from_tensor_proto('x', huge, LIMITS)
    assert raised.value.code == errors.Code.INVALID_ARGUMENT
    assert time.monotonic() - started < 60   # nothing was padded


# ------------------------------------------------------------------ images


def test_image_headers_are_read_without_decoding():
    header = inputs.image_header(hostile_inputs.png_bomb(20000, 3000), LIMITS)
    assert header == inputs.ImageHeader('PNG', 20000, 3000, 1)
    gif = inputs.image_header(hostile_inputs.gif_bomb(300, 200, 7), LIMITS)
    assert (gif.width, gif.height, gif.frames, gif.pixels) == (
        300, 200, 7, 420000)
    assert inputs.image_header(b'BM is not always a bitmap', LIMITS) is None
    assert inputs.image_header(b'plain text', LIMITS) is None
    with pytest.raises(errors.ServingError, match='not a readable JPEG image'):
        inputs.image_header(b'\xff\xd8\xff' + b'\x00' * 20, LIMITS)
    with pytest.raises(errors.ServingError, match=re.escape(
            'GIF with more than 5 frames (--max_image_frames)')):
        inputs.image_header(hostile_inputs.gif_bomb(2, 2, 6),
                            limits_lib.Limits(max_image_frames=5))


def test_a_requests_images_are_counted_and_capped():
    small = hostile_inputs.small_png(10, 10)
    big = hostile_inputs.png_bomb(100, 100)
    array = np.empty(3, dtype=object)
    array[:] = [small, big, b'not an image']
    assert inputs.images_in_arrays({'image': array}, LIMITS) == 10100
    tight = limits_lib.Limits(max_image_pixels=5000, max_request_pixels=10000,
                              max_pixels_in_flight=10000)
    with pytest.raises(errors.ServingError, match=re.escape(
            "input 'image' value 1: PNG of 100x100 = 10000 pixels, more than the "
            'limit of 5000 pixels per image (--max_image_pixels)')):
        inputs.images_in_arrays({'image': array}, tight)
    example = tf.train.Example(features=tf.train.Features(feature={
        'image': tf.train.Feature(bytes_list=tf.train.BytesList(value=[big]))}))
    serialized = [example.SerializeToString()] * 2
    tight = limits_lib.Limits(max_image_pixels=10000, max_request_pixels=15000,
                              max_pixels_in_flight=15000)
    with pytest.raises(errors.ServingError, match=re.escape(
            'the images of this request hold 20000 pixels, more than the limit '
            'of 15000 pixels per request (--max_request_pixels)')):
        inputs.images_in_examples(serialized, tight)


def test_pixel_budget_waits_for_others_or_the_deadline():
    budget = inputs.PixelBudget(100)
    budget.acquire(80, None)
    with pytest.raises(errors.ServingError) as raised:
        budget.acquire(30, time.monotonic() + 0.2)
    assert raised.value.code == errors.Code.DEADLINE_EXCEEDED
    done = threading.Event()

    def second():
        budget.acquire(30, None)
        done.set()

    thread = threading.Thread(target=second)
    thread.start()
    assert not done.wait(0.3)
    budget.release(80)
    thread.join(10)
    assert done.is_set() and budget.in_use == 30
    budget.release(30)
    budget.acquire(500, None)   # larger than the budget: runs alone
    assert budget.in_use == 500


# -------------------------------------------------------------------- JSON


@pytest.mark.parametrize('body,message', [
    (b'instances = [1, 2]', 'JSON Parse error: Invalid value. at offset: 0'),
    (b'{"instances": [1, 2 3]}',
     "JSON Parse error: Missing a comma or ']' after an array element."),
    (b'{"a": 1 "b": 2}',
     "JSON Parse error: Missing a comma or '}' after an object member."),
    (b'{"a": 1} x', 'JSON Parse error: The document root must not be followed'),
    (b'{"signature_name": ' + b'[' * 100000 + b']' * 100000 + b'}',
     "JSON Value: 'signature_name' key must be a string value."),
    (b'{"instances": ' + b'[' * 100000 + b']' * 100000 + b'}',
     "JSON Value of 'instances' is nested deeper than this server parses"),
])
def test_json_errors_read_as_tf_servings(body, message):
    with pytest.raises(errors.ServingError) as raised:
        json_tensor.parse_json(body)
    assert raised.value.code == errors.Code.INVALID_ARGUMENT
    assert raised.value.message.startswith(message), raised.value.message


def test_deep_members_nobody_reads_are_skipped():
    body = (b'{"instances": [1, 2], "nested": ' + b'[' * 500000 + b']' * 500000
            + b', "signature_name": "s"}')
    assert json_tensor.parse_json(body) == {'instances': [1, 2],
                                            'signature_name': 's'}


def test_long_echoes_are_shortened_for_the_client():
    error = errors.not_found('Servable not found for request: Latest('
                             + 'x' * 60000 + ')')
    assert len(error.client_message) < 300
    assert error.client_message.endswith('...(60008 characters)')
    assert errors.invalid_argument('short message').client_message == (
        'short message')
