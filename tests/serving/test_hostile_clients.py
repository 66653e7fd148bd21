"""A server no client can take down: hostile and careless requests, REST and gRPC.

One real server process (module fixture `hostile`) serves the model the
pipeline pushed (`cats_dogs`) and the half-plus-two stand-in (`half`) with the
default limits, except short header and idle timeouts so those cases run in
seconds. Every case asserts the status, that the message says what was wrong
(and names the flag of the limit crossed), that a good REST and a good gRPC
request are answered right afterwards, and that the server's peak RSS
(VmHWM, from /proc) stayed under the 2 GB budget. The cases do not change the
server, so they share it and run in any order. The deadline cases start a
server of their own with a short REST deadline and small chunks.
"""

import base64
import json
import pathlib
import socket
import time

import grpc
import numpy as np
import pytest
import requests
import tensorflow as tf
from tensorflow_serving.apis import classification_pb2
from tensorflow_serving.apis import model_management_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc
from prometheus_client import parser as prometheus_parser

from models import features
from serving import limits as limits_lib
from tests.serving import hostile_inputs
from tests.serving import server_process

MODEL = 'cats_dogs'
HALF = 'half'
RSS_BUDGET_BYTES = 2 * 10**9
HEADER_TIMEOUT = 2
IDLE_TIMEOUT = 3
LIMITS = limits_lib.Limits()
CONFIG = """model_config_list {{
  config {{ name: '{model}' base_path: '{image_base}' model_platform: 'tensorflow' }}
  config {{ name: '{half}' base_path: '{half_base}' model_platform: 'tensorflow' }}
}}
"""


def peak_rss(pid: int) -> int:
    """The process's peak resident set size in bytes (VmHWM)."""
    return _status_kb(pid, 'VmHWM') * 1024


def rss(pid: int) -> int:
    """The process's resident set size in bytes (VmRSS)."""
    return _status_kb(pid, 'VmRSS') * 1024


def _status_kb(pid: int, key: str) -> int:
    for line in pathlib.Path(f'/proc/{pid}/status').read_text().splitlines():
        if line.startswith(key + ':'):
            return int(line.split()[1])
    raise KeyError(key)


def b64(data: bytes) -> dict:
    return {'b64': base64.b64encode(data).decode('ascii')}


class Hostile:
    """The running server, its good request and its expected answer."""

    def __init__(self, server, image: bytes, expected: np.ndarray, root):
        self.server = server
        self.url = server.url
        self.image = image
        self.expected = expected
        self.root = root
        self.channel = grpc.insecure_channel(server.grpc_target)
        self.stub = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.model_stub = model_service_pb2_grpc.ModelServiceStub(self.channel)

    @property
    def pid(self) -> int:
        return self.server.process.pid

    def post(self, path: str, body, **kwargs):
        data = body if isinstance(body, (bytes, str)) or hasattr(
            body, 'read') or hasattr(body, '__next__') else json.dumps(body)
        return requests.post(self.url + path, data=data, timeout=120, **kwargs)

    def predict_request(self, values, *, model=MODEL, dtype=tf.string):
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model
        name = features.SERVING_INPUT if model == MODEL else 'x'
        request.inputs[name].CopyFrom(tf.make_tensor_proto(values, dtype=dtype))
        return request

    def grpc_error(self, call, request, timeout=60.0):
        with pytest.raises(grpc.RpcError) as raised:
            call(request, timeout)
        return raised.value

    def still_serves(self) -> None:
        """A good request over each API gets the model's answer; RSS in budget."""
        response = self.post(f'/v1/models/{MODEL}:predict',
                             {'instances': [b64(self.image)]})
        assert response.status_code == 200, response.text
        np.testing.assert_allclose(
            response.json()['predictions'][0][features.PROBABILITIES_OUTPUT],
            self.expected, rtol=1e-5, atol=1e-6)
        reply = self.stub.Predict(self.predict_request([self.image]), 60.0)
        np.testing.assert_allclose(
            tf.make_ndarray(reply.outputs[features.PROBABILITIES_OUTPUT])[0],
            self.expected, rtol=1e-5, atol=1e-6)
        assert self.server.process.poll() is None
        assert peak_rss(self.pid) < RSS_BUDGET_BYTES, peak_rss(self.pid)


def start_server(root: pathlib.Path, exported_models, extra=()):
    image_base, half_base = root / MODEL, root / HALF
    image_base.mkdir()
    half_base.mkdir()
    server_process.copy_version(exported_models.image_v1, image_base, 1)
    server_process.copy_version(exported_models.regression, half_base, 1)
    config = root / 'models.config'
    config.write_text(CONFIG.format(model=MODEL, image_base=image_base, half=HALF,
                                    half_base=half_base))
    server = server_process.ServerProcess(
        [f'--model_config_file={config}', '--file_system_poll_wait_seconds=0']
        + list(extra), root / 'server.log').start_ready()
    return server


@pytest.fixture(scope='module')
def hostile(tmp_path_factory, exported_models, image_paths, image_bytes):
    root = tmp_path_factory.mktemp('hostile')
    server = start_server(root, exported_models, [
        f'--rest_api_header_timeout_seconds={HEADER_TIMEOUT}',
        f'--rest_api_idle_timeout_seconds={IDLE_TIMEOUT}'])
    path = image_paths[0]
    api = Hostile(server, image_bytes[path], exported_models.expected_v1[path],
                  root)
    try:
        api.still_serves()
        yield api
    finally:
        api.channel.close()
        server.stop()


@pytest.fixture(scope='module')
def bombs(image_bytes, image_paths):
    photo = image_bytes[image_paths[1]]
    return {
        'png_20000': hostile_inputs.png_bomb(20000, 20000),
        'gif_100_frames': hostile_inputs.gif_bomb(2000, 2000, 100),
        'jpeg_forged_15000': hostile_inputs.forged_jpeg(photo, 15000, 15000),
        'png_10000': hostile_inputs.png_bomb(10000, 10000),
    }


# ------------------------------------------------------- 1. TensorProto shapes


def _string_tensor(dims, values):
    proto = tf.make_tensor_proto([b''], dtype=tf.string)
    del proto.string_val[:]
    proto.string_val.extend(values)
    del proto.tensor_shape.dim[:]
    for size in dims:
        proto.tensor_shape.dim.add().size = size
    return proto


@pytest.mark.parametrize('dims,message', [
    ([2**31], "input 'image_bytes': tensor_shape [2147483648] declares "
     '2147483648 elements, more than the limit of 8388608 '
     '(--max_tensor_elements)'),
    ([2**26], "input 'image_bytes': tensor_shape [67108864] declares 67108864 "
     'elements'),
    ([2**16, 2**16], "input 'image_bytes': tensor_shape [65536,65536]"),
    ([-3], "input 'image_bytes': tensor_shape [-3] has a negative dimension"),
    ([1] * 40, "input 'image_bytes': tensor_shape has 40 dimensions; at most 32"),
], ids=['2^31', '2^26', '2^16x2^16', 'negative', '40_dimensions'])
def test_declared_shape_is_checked_before_anything_is_built(hostile, dims,
                                                            message):
    request = hostile.predict_request([hostile.image])
    request.inputs[features.SERVING_INPUT].CopyFrom(
        _string_tensor(dims, [hostile.image]))
    error = hostile.grpc_error(hostile.stub.Predict, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith(message), error.details()
    hostile.still_serves()


def test_values_that_do_not_fit_the_shape(hostile):
    request = hostile.predict_request([1.0], model=HALF, dtype=tf.float32)
    tensor = request.inputs['x']
    del tensor.float_val[:]
    tensor.tensor_content = np.zeros(3, np.float32).tobytes()   # 12 bytes for [1]
    error = hostile.grpc_error(hostile.stub.Predict, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == ("input 'x': tensor_content holds 12 bytes, but "
                               'shape [1] of float needs 4')
    request = hostile.predict_request([1.0], model=HALF, dtype=tf.float32)
    request.inputs['x'].ClearField('tensor_content')
    del request.inputs['x'].float_val[:]
    request.inputs['x'].float_val.extend([1.0, 2.0, 3.0])
    error = hostile.grpc_error(hostile.stub.Predict, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith(
        "input 'x': 3 values sent for shape [1], which holds 1")
    # TensorFlow's own padding of a short typed field still works.
    request = hostile.predict_request([0.0], model=HALF, dtype=tf.float32)
    request.inputs['x'].ClearField('tensor_content')
    del request.inputs['x'].float_val[:]
    request.inputs['x'].float_val.append(2.0)
    request.inputs['x'].tensor_shape.dim[0].size = 3
    reply = hostile.stub.Predict(request, 60.0)
    assert tf.make_ndarray(reply.outputs['y']).tolist() == [3.0, 3.0, 3.0]
    hostile.still_serves()


# ----------------------------------------------------- 2. decompression bombs


BOMB_CASES = [
    ('png_20000', 1, 'PNG of more than'),
    ('gif_100_frames', 1, 'GIF of 2000x2000 x 100 frames = 400000000 pixels, '
     'more than the limit of 100000000 pixels per image (--max_image_pixels)'),
    ('jpeg_forged_15000', 1, 'JPEG of more than'),
    ('png_10000', 30, 'the images of this request hold 300000000 pixels, more '
     'than the limit of 200000000 pixels per request (--max_request_pixels)'),
]


@pytest.mark.parametrize('bomb,copies,message', BOMB_CASES,
                         ids=[case[0] for case in BOMB_CASES])
def test_bombs_are_refused_from_the_header_over_rest(hostile, bombs, bomb,
                                                     copies, message):
    response = hostile.post(f'/v1/models/{MODEL}:predict',
                            {'instances': [b64(bombs[bomb])] * copies})
    assert response.status_code == 400
    error = response.json()['error']
    assert message in error, error
    if copies == 1:
        assert error.startswith("input 'image_bytes' value 0: "), error
        assert '--max_image_pixels' in error
    hostile.still_serves()


@pytest.mark.parametrize('bomb,copies,message', BOMB_CASES,
                         ids=[case[0] for case in BOMB_CASES])
def test_bombs_are_refused_from_the_header_over_grpc(hostile, bombs, bomb,
                                                     copies, message):
    error = hostile.grpc_error(hostile.stub.Predict, hostile.predict_request(
        [bombs[bomb]] * copies))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in error.details(), error.details()
    hostile.still_serves()


def test_bombs_inside_examples_are_refused(hostile, bombs):
    response = hostile.post(f'/v1/models/{MODEL}:classify', {
        'signature_name': features.EXAMPLES_SIGNATURE,
        'examples': [{features.IMAGE_KEY: b64(hostile.image)},
                     {features.IMAGE_KEY: b64(bombs['gif_100_frames'])}]})
    assert response.status_code == 400
    assert response.json()['error'].startswith(
        "example 1 feature 'image': GIF of 2000x2000 x 100 frames"), response.text
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = MODEL
    request.model_spec.signature_name = features.EXAMPLES_SIGNATURE
    example = request.input.example_list.examples.add()
    example.features.feature[features.IMAGE_KEY].bytes_list.value.append(
        bombs['png_20000'])
    error = hostile.grpc_error(hostile.stub.Classify, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith(
        "example 0 feature 'image': PNG of more than"), error.details()
    hostile.still_serves()


def test_gif_frames_and_unreadable_headers(hostile):
    many = hostile_inputs.gif_bomb(4, 4, LIMITS.max_image_frames + 1)
    response = hostile.post(f'/v1/models/{MODEL}:predict',
                            {'instances': [b64(many)]})
    assert response.status_code == 400
    assert response.json()['error'].startswith(
        "input 'image_bytes' value 0: GIF with more than 1000 frames "
        '(--max_image_frames)')
    broken = b'\x89PNG\r\n\x1a\n' + b'\x00' * 40
    error = hostile.grpc_error(hostile.stub.Predict,
                               hostile.predict_request([hostile.image, broken]))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith(
        "input 'image_bytes' value 1: not a readable PNG image")
    hostile.still_serves()


def _burst(url: str, big: bytes, times: int) -> None:
    """Requests of two images of the largest allowed size each."""
    for _ in range(times):
        response = requests.post(f'{url}/v1/models/{MODEL}:predict',
                                 json={'instances': [b64(big), b64(big)]},
                                 timeout=300)
        assert response.status_code == 200, response.text
        assert len(response.json()['predictions']) == 2


def test_memory_after_bursts_of_large_images_is_bounded(hostile, bombs):
    """TensorFlow's oneDNN pool keeps its peak, but bursts never add to it."""
    _burst(hostile.url, bombs['png_10000'], 1)
    after_one = rss(hostile.pid)
    _burst(hostile.url, bombs['png_10000'], 3)
    hostile.still_serves()
    assert rss(hostile.pid) - after_one < 100 * 10**6, (after_one, rss(hostile.pid))


def test_memory_comes_back_with_the_system_allocator(tmp_path, exported_models,
                                                     image_paths, image_bytes,
                                                     bombs):
    """--tensorflow_system_allocator: the RSS returns near where it was."""
    server = start_server(tmp_path, exported_models,
                          ['--tensorflow_system_allocator'])
    try:
        path = image_paths[0]
        api = Hostile(server, image_bytes[path], exported_models.expected_v1[path],
                      tmp_path)
        api.still_serves()
        before = rss(server.process.pid)
        _burst(server.url, bombs['png_10000'], 3)
        api.still_serves()
        # Decoding held about 0.6 GB; what stays is far below that.
        assert rss(server.process.pid) - before < 200 * 10**6, (
            before, rss(server.process.pid))
        api.channel.close()
    finally:
        server.stop()


# ------------------------------------------------ 3. instances and deadlines


def test_too_many_instances(hostile):
    tiny = hostile_inputs.small_png()
    count = LIMITS.max_instances_per_request + 1
    response = hostile.post(f'/v1/models/{MODEL}:predict',
                            {'instances': [b64(tiny)] * count})
    assert response.status_code == 400
    assert response.json()['error'].startswith(
        f'{count} instances in one request, more than the limit of '
        f'{LIMITS.max_instances_per_request} (--max_instances_per_request)')
    error = hostile.grpc_error(hostile.stub.Predict,
                               hostile.predict_request([tiny] * count))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert '(--max_instances_per_request)' in error.details()
    response = hostile.post(f'/v1/models/{HALF}:regress', {
        'signature_name': 'regress_x_to_y',
        'examples': [{'x': 1.0}] * count})
    assert response.status_code == 400
    assert '(--max_instances_per_request)' in response.json()['error']
    hostile.still_serves()


def _model_calls(url: str) -> float:
    text = requests.get(url + '/monitoring/prometheus/metrics', timeout=30).text
    for family in prometheus_parser.text_string_to_metric_families(text):
        for sample in family.samples:
            if (sample.name == 'serving_predict_seconds_count'
                    and sample.labels.get('model_name') == MODEL):
                return sample.value
    return 0.0


def _calls_once_settled(url: str) -> float:
    """The model call count once it has stopped moving (the work has ended)."""
    previous = -1.0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        current = _model_calls(url)
        if current == previous:
            return current
        previous = current
        time.sleep(1.0)
    return previous


def test_work_stops_at_the_deadline(tmp_path, exported_models, image_paths,
                                    image_bytes):
    """A request past its deadline is answered and its remaining chunks never run."""
    chunk, count = 4, 400
    server = start_server(tmp_path, exported_models, [
        '--rest_api_timeout_in_ms=1000', f'--max_instances_per_call={chunk}'])
    try:
        tiny = hostile_inputs.small_png()
        chunks = count // chunk
        before = _model_calls(server.url)
        response = requests.post(f'{server.url}/v1/models/{MODEL}:predict',
                                 json={'instances': [b64(tiny)] * count},
                                 timeout=120)
        assert response.status_code == 504
        # Where the deadline caught the work decides the rest of the sentence ("after 120
        # of 400 instances" once the chunks run).
        assert response.json()['error'].startswith('Deadline Exceeded'), response.json()
        ran = _calls_once_settled(server.url) - before
        assert 0 < ran < chunks, ran

        channel = grpc.insecure_channel(server.grpc_target)
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = MODEL
        request.inputs[features.SERVING_INPUT].CopyFrom(
            tf.make_tensor_proto([tiny] * count, dtype=tf.string))
        before = _calls_once_settled(server.url)
        with pytest.raises(grpc.RpcError) as raised:
            stub.Predict(request, 1.0)
        assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        ran = _calls_once_settled(server.url) - before
        assert 0 < ran < chunks, ran
        path = image_paths[0]
        reply = stub.Predict(hostile_request(path, image_bytes), 60.0)
        np.testing.assert_allclose(
            tf.make_ndarray(reply.outputs[features.PROBABILITIES_OUTPUT])[0],
            exported_models.expected_v1[path], rtol=1e-5, atol=1e-6)
        channel.close()
        assert peak_rss(server.process.pid) < RSS_BUDGET_BYTES
    finally:
        server.stop()


def hostile_request(path, image_bytes):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL
    request.inputs[features.SERVING_INPUT].CopyFrom(
        tf.make_tensor_proto([image_bytes[path]], dtype=tf.string))
    return request


# ------------------------------------------------------ 4. 400, never 500


def test_deep_nesting_and_huge_version_numbers_are_client_errors(hostile):
    deep = '{"instances": ' + '[' * 5000 + ']' * 5000 + '}'
    response = hostile.post(f'/v1/models/{MODEL}:predict', deep)
    assert response.status_code == 400
    assert response.json()['error'] == (
        "JSON Value of 'instances' is nested deeper than this server parses; "
        'tensors have at most 32 dimensions')
    nested = {'instances': [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1.0]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}
    response = hostile.post(f'/v1/models/{HALF}:predict', nested)
    assert response.status_code == 400
    assert 'is nested more than 32 lists deep' in response.json()['error']
    # Members no request reads may be nested at will (TF Serving ignores them).
    response = hostile.post(f'/v1/models/{HALF}:predict',
                            '{"instances": [1.0], "x": ' + '[' * 5000 + ']' * 5000 + '}')
    assert response.status_code == 200
    assert response.json() == {'predictions': [2.5]}
    version = '9' * 5000
    response = hostile.post(f'/v1/models/{MODEL}/versions/{version}:predict',
                            {'instances': [b64(hostile.image)]})
    assert response.status_code == 400
    assert response.json()['error'].startswith(
        f'Failed to convert version: {"9" * 20}...(5000 digits) to numeric.')
    hostile.still_serves()


# ------------------------------------------ 5. metric labels stay bounded


def test_made_up_model_names_do_not_grow_the_metrics(hostile):
    def page():
        return requests.get(hostile.url + '/monitoring/prometheus/metrics',
                            timeout=30).text

    before = len(page())
    for index in range(20):
        name = f'm{index}' + 'x' * 4000
        response = hostile.post(f'/v1/models/{name}:predict', {'instances': [1]})
        assert response.status_code == 404
        assert response.json()['error'].startswith('Servable not found')
        request = hostile.predict_request([hostile.image])
        request.model_spec.name = f'g{index}' + 'y' * 60000
        error = hostile.grpc_error(hostile.stub.Predict, request)
        assert error.code() == grpc.StatusCode.NOT_FOUND
    text = page()
    assert 'xxxx' not in text and 'yyyy' not in text
    assert len(text) - before < 2000
    counts = {}
    for family in prometheus_parser.text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == ':tensorflow:serving:request_count':
                counts[sample.labels['model_name']] = counts.get(
                    sample.labels['model_name'], 0) + sample.value
    assert set(counts) <= {MODEL, HALF, '', '(unknown)'}
    assert counts['(unknown)'] >= 40
    hostile.still_serves()


# ----------------------------------------------------------- 6. HTTP limits


def test_url_headers_and_body_over_the_limits_get_an_answer(hostile):
    url = f'/v1/models/{MODEL}' + '/x' * 5000
    response = requests.get(hostile.url + url, timeout=60)
    assert response.status_code == 414
    assert response.json()['error'].startswith(
        f'URL of {len(url)} bytes is longer than the limit of 8192 bytes '
        '(--rest_api_max_url_bytes)')
    response = requests.get(f'{hostile.url}/v1/models/{MODEL}', timeout=60,
                            headers={'X-Padding': 'p' * 100_000})
    assert response.status_code == 431
    assert 'larger than the limit of 65536 bytes (--rest_api_max_header_bytes)' in (
        response.json()['error'])
    size = 200 * 2**20
    response = hostile.post(f'/v1/models/{MODEL}:predict',
                            hostile_inputs.Zeros(size))
    assert response.status_code == 413
    assert response.json()['error'].startswith(
        f'Request body of {size} bytes is larger than the limit of '
        f'{LIMITS.rest_api_max_body_bytes} bytes (--rest_api_max_body_bytes)')

    def chunks():
        for _ in range(40):
            yield b' ' * 2**20

    response = hostile.post(f'/v1/models/{MODEL}:predict', chunks())
    assert response.status_code == 413
    assert response.json()['error'].startswith('Request body of at least ')
    hostile.still_serves()


def _read_all(sock: socket.socket) -> bytes:
    data = b''
    sock.settimeout(60)
    while True:
        piece = sock.recv(65536)
        if not piece:
            return data
        data += piece


def test_slow_headers_get_408_and_idle_connections_are_closed(hostile):
    host, port = '127.0.0.1', hostile.server.rest_port
    with socket.create_connection((host, port)) as slow:
        slow.sendall(b'GET /v1/models/' + MODEL.encode() + b' HTTP/1.1\r\nHost: x')
        answer = _read_all(slow)   # returns once the server closes
    assert answer.startswith(b'HTTP/1.1 408 Request Timeout'), answer
    assert json.loads(answer.split(b'\r\n\r\n', 1)[1]) == {'error': (
        f'Request headers not received within {HEADER_TIMEOUT} s '
        '(--rest_api_header_timeout_seconds)')}
    with socket.create_connection((host, port)) as idle:
        assert _read_all(idle) == b''   # closed, nothing asked, nothing said
    with socket.create_connection((host, port)) as kept:
        kept.sendall(f'GET /v1/models/{MODEL} HTTP/1.1\r\nHost: x\r\n\r\n'.encode())
        answer = _read_all(kept)   # the answer, then closed once idle
    assert answer.startswith(b'HTTP/1.1 200 OK'), answer[:200]
    hostile.still_serves()


# --------------------------------------------- 7. reload under allowed roots


def test_reload_may_only_point_models_under_the_allowed_roots(hostile):
    request = model_management_pb2.ReloadConfigRequest()
    model = request.config.model_config_list.config.add()
    model.name = 'etc'
    model.base_path = '/etc'
    model.model_platform = 'tensorflow'
    error = hostile.grpc_error(hostile.model_stub.HandleReloadConfigRequest,
                               request)
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error.details().startswith(
        f"base_path '/etc' of model 'etc' is outside the allowed model roots: "
        f'{hostile.root.resolve()}')
    model.base_path = str(hostile.root / MODEL / '..' / '..' / 'elsewhere')
    error = hostile.grpc_error(hostile.model_stub.HandleReloadConfigRequest,
                               request)
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    model.base_path = 'relative/models'
    error = hostile.grpc_error(hostile.model_stub.HandleReloadConfigRequest,
                               request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert 'is not an absolute path' in error.details()
    response = requests.get(f'{hostile.url}/v1/models/etc', timeout=30)
    assert response.status_code == 404
    hostile.still_serves()
