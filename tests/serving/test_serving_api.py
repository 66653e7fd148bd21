"""The REST and gRPC APIs of the real server process, endpoint by endpoint.

Each test stands alone: it passes run by itself or in any order with the others.

One server (module fixture `api`) serves a config file with two models:
`cats_dogs` (versions 1 and 2, labels stable -> 1, canary -> 2, and next -> 3
which is not loaded, allowed by --allow_version_labels_for_unavailable_models)
and `half` (half-plus-two, with a regress signature). Version 1 carries a
warmup file. The tests that only read share it; the tests that change the
config or stop the server start one of their own (fixture `own_api`), so what
they do is never seen by another test. Tests that count (metrics, request log)
count what their own requests add.
"""

import base64
import hashlib
import json
import pathlib
import subprocess
import sys

import grpc
import numpy as np
import pytest
import requests
import tensorflow as tf
from prometheus_client import parser as prometheus_parser
from tensorflow_serving.apis import classification_pb2
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_management_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_log_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc
from tensorflow_serving.apis import regression_pb2

from models import features
from serving import client as client_lib
from serving_formats import version_labels as labels_lib
from serving_formats import warmup_file
from tests.serving import server_process
from tests.serving import standin_model

MODEL = 'cats_dogs'
HALF = 'half'
MAX_BODY = 200_000
IMAGE_CONFIG = """
  config {{
    name: '{model}'
    base_path: '{base}'
    model_platform: 'tensorflow'
    model_version_policy {{ specific {{ versions: 1 versions: 2 }} }}
    version_labels {{ key: 'stable' value: {stable} }}
    version_labels {{ key: 'canary' value: {canary} }}
    version_labels {{ key: 'next' value: 3 }}
  }}"""
HALF_CONFIG = """
  config {{
    name: '{model}'
    base_path: '{base}'
    model_platform: 'tensorflow'
  }}"""


class Api:
    """The running server and its files."""

    def __init__(self, server, config_path, request_log, image_base):
        self.server = server
        self.config_path = config_path
        self.request_log = request_log
        self.image_base = image_base
        self.url = server.url
        self._channels = []

    def get(self, path):
        return requests.get(self.url + path, timeout=30)

    def post(self, path, body):
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        return requests.post(self.url + path, data=data, timeout=30)

    def _channel(self):
        self._channels.append(grpc.insecure_channel(self.server.grpc_target))
        return self._channels[-1]

    def stub(self):
        return prediction_service_pb2_grpc.PredictionServiceStub(
            self._channel())

    def model_stub(self):
        return model_service_pb2_grpc.ModelServiceStub(self._channel())

    def stop(self):
        """Closes our gRPC channels, stops the server, returns its exit code."""
        # An open channel holds a graceful stop up for seconds.
        for channel in self._channels:
            channel.close()
        return self.server.stop()

    def log_lines(self):
        if not self.request_log.exists():
            return []
        return [json.loads(line) for line in
                self.request_log.read_text().splitlines()]


def start_api(root, exported_models, image_paths, image_bytes, *,
              image=True, half=True, stable=1, canary=2) -> Api:
    """Publishes the models under `root`, writes the config, serves it.

    `image` and `half` choose the models (see the module docstring); `stable`
    and `canary` are the image model's labels. Returns once the server is
    ready; the caller stops it.
    """
    entries = []
    image_base = root / MODEL if image else None
    if image:
        image_base.mkdir()
        server_process.copy_version(exported_models.image_v1, image_base, 1)
        warmup_file.write_warmup_file(
            str(image_base / '1'), [image_bytes[p] for p in image_paths[:3]],
            model_name=MODEL)
        server_process.copy_version(exported_models.image_v2, image_base, 2)
        entries.append(IMAGE_CONFIG.format(model=MODEL, base=image_base,
                                           stable=stable, canary=canary))
    if half:
        half_base = root / HALF
        half_base.mkdir()
        server_process.copy_version(exported_models.regression, half_base, 1)
        entries.append(HALF_CONFIG.format(model=HALF, base=half_base))
    config_path = root / 'models.config'
    config_path.write_text('model_config_list {%s\n}\n' % ''.join(entries))
    request_log = root / 'requests.jsonl'
    server = server_process.ServerProcess([
        f'--model_config_file={config_path}',
        '--model_config_file_poll_wait_seconds=1',
        '--file_system_poll_wait_seconds=1',
        '--allow_version_labels_for_unavailable_models',
        f'--request_log_file={request_log}',
        '--request_log_sample_rate=1.0',
        f'--rest_api_max_body_bytes={MAX_BODY}',
    ], root / 'server.log').start_ready()
    return Api(server, config_path, request_log, image_base)


@pytest.fixture(scope='module')
def api(tmp_path_factory, exported_models, image_paths, image_bytes):
    """The shared server (both models): its users must leave it unchanged."""
    shared = start_api(tmp_path_factory.mktemp('api'), exported_models,
                       image_paths, image_bytes)
    try:
        yield shared
    finally:
        shared.stop()


@pytest.fixture
def own_api(tmp_path, exported_models, image_paths, image_bytes):
    """Starts a server of the test's own, for a test that changes or stops it.

    `own_api(**options)` takes start_api's options (serve only what the test
    needs: each image model version takes seconds to load). The server stops
    after the test.
    """
    started = []

    def start(**options) -> Api:
        root = tmp_path / f'server{len(started)}'
        root.mkdir()
        started.append(start_api(root, exported_models, image_paths,
                                 image_bytes, **options))
        return started[-1]

    yield start
    for own in started:
        own.stop()


def b64(data: bytes) -> dict:
    return {'b64': base64.b64encode(data).decode('ascii')}


def assert_prediction(row, expected_probabilities):
    probabilities = np.asarray(row[features.PROBABILITIES_OUTPUT], np.float32)
    np.testing.assert_allclose(probabilities, expected_probabilities, rtol=1e-5,
                               atol=1e-6)
    best = int(np.argmax(expected_probabilities))
    assert row[features.CLASS_INDEX_OUTPUT] == best
    assert row[features.CLASS_NAME_OUTPUT] == features.CLASS_NAMES[best]


# ------------------------------------------------------------------ status


def test_status_lists_every_version_newest_first(api):
    response = api.get(f'/v1/models/{MODEL}')
    assert response.status_code == 200
    assert response.headers['Content-Type'] == 'application/json'
    ok = {'error_code': 'OK', 'error_message': ''}
    assert response.json() == {'model_version_status': [
        {'version': '2', 'state': 'AVAILABLE', 'status': ok},
        {'version': '1', 'state': 'AVAILABLE', 'status': ok},
    ]}


def test_status_of_a_version_and_of_a_label(api):
    ok = {'error_code': 'OK', 'error_message': ''}
    assert api.get(f'/v1/models/{MODEL}/versions/1').json() == {
        'model_version_status': [
            {'version': '1', 'state': 'AVAILABLE', 'status': ok}]}
    assert api.get(f'/v1/models/{MODEL}/labels/canary').json() == {
        'model_version_status': [
            {'version': '2', 'state': 'AVAILABLE', 'status': ok}]}


@pytest.mark.parametrize('path,status,message', [
    ('/v1/models/nope', 404, 'Could not find any versions of model nope'),
    (f'/v1/models/{MODEL}/versions/9', 404,
     f'Could not find version 9 of model {MODEL}'),
    (f'/v1/models/{MODEL}/labels/nope', 400,
     'Unrecognized servable version label: nope'),
    ('/v1/models', 400, 'Missing model name in request.'),
])
def test_status_errors(api, path, status, message):
    response = api.get(path)
    assert response.status_code == status
    assert response.json()['error'].startswith(message)


# ---------------------------------------------------------------- metadata


def test_metadata_describes_the_signatures(api):
    response = api.get(f'/v1/models/{MODEL}/metadata')
    assert response.status_code == 200
    doc = response.json()
    assert doc['model_spec'] == {'name': MODEL, 'signature_name': '',
                                 'version': '2'}
    signatures = doc['metadata']['signature_def']['signature_def']
    assert {features.SERVING_SIGNATURE, features.EXAMPLES_SIGNATURE} <= set(
        signatures)
    serving = signatures[features.SERVING_SIGNATURE]
    assert serving['method_name'] == 'tensorflow/serving/predict'
    image_input = serving['inputs'][features.SERVING_INPUT]
    assert image_input['dtype'] == 'DT_STRING'
    assert image_input['tensor_shape'] == {
        'dim': [{'size': '-1', 'name': ''}], 'unknown_rank': False}
    assert set(serving['outputs']) == {features.PROBABILITIES_OUTPUT,
                                       features.CLASS_INDEX_OUTPUT,
                                       features.CLASS_NAME_OUTPUT}
    probabilities = serving['outputs'][features.PROBABILITIES_OUTPUT]
    assert probabilities['dtype'] == 'DT_FLOAT'
    assert [d['size'] for d in probabilities['tensor_shape']['dim']] == [
        '-1', str(len(features.CLASS_NAMES))]
    assert serving['outputs'][features.CLASS_INDEX_OUTPUT]['dtype'] == 'DT_INT64'
    classification = signatures[features.EXAMPLES_SIGNATURE]
    assert classification['method_name'] == standin_model.CLASSIFY_METHOD
    assert list(classification['inputs']) == [features.EXAMPLES_INPUT]
    assert set(classification['outputs']) == {features.CLASSES_OUTPUT,
                                              features.SCORES_OUTPUT}


def test_metadata_of_a_version_and_a_label(api):
    assert api.get(f'/v1/models/{MODEL}/versions/1/metadata').json()[
        'model_spec']['version'] == '1'
    assert api.get(f'/v1/models/{MODEL}/labels/stable/metadata').json()[
        'model_spec']['version'] == '1'
    response = api.get('/v1/models/nope/metadata')
    assert response.status_code == 404
    assert response.json()['error'].startswith(
        'Servable not found for request: Latest(nope)')


# ----------------------------------------------------------------- predict


def test_predict_row_format_with_b64(api, exported_models, image_paths,
                                     image_bytes):
    response = api.post(f'/v1/models/{MODEL}:predict', {
        'instances': [b64(image_bytes[p]) for p in image_paths]})
    assert response.status_code == 200
    predictions = response.json()['predictions']
    assert len(predictions) == len(image_paths)
    for path, row in zip(image_paths, predictions):
        assert set(row) == {features.PROBABILITIES_OUTPUT,
                            features.CLASS_INDEX_OUTPUT, features.CLASS_NAME_OUTPUT}
        assert_prediction(row, exported_models.expected_v2[path])


def test_predict_row_format_with_named_inputs(api, exported_models,
                                              image_paths, image_bytes):
    path = image_paths[0]
    response = api.post(f'/v1/models/{MODEL}:predict', {
        'signature_name': features.SERVING_SIGNATURE,
        'instances': [{features.SERVING_INPUT: b64(image_bytes[path])}]})
    assert response.status_code == 200
    [row] = response.json()['predictions']
    assert_prediction(row, exported_models.expected_v2[path])


@pytest.mark.parametrize('named', [False, True])
def test_predict_columnar_format(api, exported_models, image_paths,
                                 image_bytes, named):
    values = [b64(image_bytes[p]) for p in image_paths[2:4]]
    inputs = {features.SERVING_INPUT: values} if named else values
    response = api.post(f'/v1/models/{MODEL}:predict', {'inputs': inputs})
    assert response.status_code == 200
    outputs = response.json()['outputs']
    assert set(outputs) == {features.PROBABILITIES_OUTPUT,
                            features.CLASS_INDEX_OUTPUT, features.CLASS_NAME_OUTPUT}
    for index, path in enumerate(image_paths[2:4]):
        assert_prediction({name: outputs[name][index] for name in outputs},
                          exported_models.expected_v2[path])


@pytest.mark.parametrize('route,version', [
    ('/versions/1', 1), ('/versions/2', 2), ('/labels/stable', 1),
    ('/labels/canary', 2), ('', 2)])
def test_predict_version_and_label_routing(api, exported_models, image_paths,
                                           image_bytes, route, version):
    path = image_paths[4]
    response = api.post(f'/v1/models/{MODEL}{route}:predict',
                        {'instances': [b64(image_bytes[path])]})
    assert response.status_code == 200
    [row] = response.json()['predictions']
    assert_prediction(row, exported_models.expected(version)[path])


def test_label_on_a_version_that_is_not_loaded(api, image_paths, image_bytes):
    response = api.post(f'/v1/models/{MODEL}/labels/next:predict',
                        {'instances': [b64(image_bytes[image_paths[0]])]})
    assert response.status_code == 404
    assert response.json()['error'].startswith(
        f'Servable not found for request: Specific({MODEL}, 3) Hint: '
        f'available versions of {MODEL}: 1, 2.')


def test_predict_numbers_single_output_is_a_plain_list(api):
    response = api.post(f'/v1/models/{HALF}:predict',
                        {'instances': [1.0, 2.0, 5.0, 0.2]})
    assert response.status_code == 200
    # float32 results written with the fewest digits that read back (2.1).
    assert response.json() == {'predictions': [2.5, 3.0, 4.5, 2.1]}
    response = api.post(f'/v1/models/{HALF}:predict', {'inputs': [1, 2]})
    assert response.json() == {'outputs': [2.5, 3.0]}


def test_shapes_are_the_models_to_refuse(api):
    """As in TF Serving: the tensor is fed as sent; x is [-1] in the signature."""
    response = api.post(f'/v1/models/{HALF}:predict',
                        {'instances': [[1.0], [2.0]]})
    assert response.status_code == 200, response.text
    assert response.json() == {'predictions': [[2.5], [3.0]]}


def test_predict_several_inputs_and_bytes_outputs(api):
    signature = standin_model.MULTI_SIGNATURE
    response = api.post(f'/v1/models/{HALF}:predict', {
        'signature_name': signature,
        'instances': [{'x': 1.0, 'tag': 'ab'}, {'x': 3, 'tag': 'c'}]})
    assert response.status_code == 200
    assert response.json() == {'predictions': [
        {'length': 2, 'tag_bytes': {'b64': 'YWI='}, 'y': 2.5},
        {'length': 1, 'tag_bytes': {'b64': 'Yw=='}, 'y': 3.5}]}
    response = api.post(f'/v1/models/{HALF}:predict', {
        'signature_name': signature,
        'inputs': {'x': [1.0, 3], 'tag': ['ab', 'c']}})
    assert response.json() == {'outputs': {
        'length': [2, 1], 'tag_bytes': [{'b64': 'YWI='}, {'b64': 'Yw=='}],
        'y': [2.5, 3.5]}}


# -------------------------------------------------------- classify, regress


def test_classify_examples(api, exported_models, image_paths, image_bytes):
    paths = image_paths[:2]
    response = api.post(f'/v1/models/{MODEL}:classify', {
        'signature_name': features.EXAMPLES_SIGNATURE,
        'examples': [{features.IMAGE_KEY: b64(image_bytes[p])} for p in paths]})
    assert response.status_code == 200
    results = response.json()['results']
    assert len(results) == 2
    for path, classes in zip(paths, results):
        assert [label for label, _ in classes] == list(features.CLASS_NAMES)
        np.testing.assert_allclose([score for _, score in classes],
                                   exported_models.expected_v2[path],
                                   rtol=1e-5, atol=1e-6)


def test_classify_with_context(api, exported_models, image_paths, image_bytes):
    path = image_paths[5]
    response = api.post(f'/v1/models/{MODEL}/versions/1:classify', {
        'signature_name': features.EXAMPLES_SIGNATURE,
        'context': {features.IMAGE_KEY: b64(image_bytes[path])},
        'examples': [{}]})
    assert response.status_code == 200
    [classes] = response.json()['results']
    np.testing.assert_allclose([score for _, score in classes],
                               exported_models.expected_v1[path], rtol=1e-5,
                               atol=1e-6)


def test_regress(api):
    response = api.post(f'/v1/models/{HALF}:regress', {
        'signature_name': standin_model.REGRESS_SIGNATURE,
        'examples': [{'x': 1.0}, {'x': 2.0}, {'x': 0.2}]})
    assert response.status_code == 200
    assert response.json() == {'results': [2.5, 3.0, 2.1]}


# ------------------------------------------------------------------ errors

_URL_SAFE = {'b64': base64.urlsafe_b64encode(b'\xfb\xff\xbf' * 8).decode()}
ERROR_CASES = [
    # (id, method, path, body, status, message start, hint part or None)
    ('malformed_json', 'POST', f'/v1/models/{HALF}:predict',
     '{"instances": [1.0,', 400, 'JSON Parse error: ', None),
    ('empty_body', 'POST', f'/v1/models/{HALF}:predict', '', 400,
     'JSON Parse error: The document is empty', None),
    ('not_an_object', 'POST', f'/v1/models/{HALF}:predict', '[1, 2]', 400,
     'JSON Value: [1,2] Is not object', None),
    ('both_formats', 'POST', f'/v1/models/{HALF}:predict',
     {'instances': [1.0], 'inputs': [1.0]}, 400, 'JSON Value: ', None),
    ('no_inputs', 'POST', f'/v1/models/{HALF}:predict',
     {'signature_name': 'serving_default'}, 400,
     "Missing 'inputs' or 'instances' key", None),
    ('empty_instances', 'POST', f'/v1/models/{HALF}:predict',
     {'instances': []}, 400, 'JSON Value: ', None),
    ('signature_not_string', 'POST', f'/v1/models/{HALF}:predict',
     {'instances': [1.0], 'signature_name': 3}, 400, 'JSON Value: ', None),
    ('shape_the_model_refuses', 'POST', f'/v1/models/{MODEL}:predict',
     {'inputs': {'b64': 'aGVsbG8='}}, 400,
     "input 'image_bytes' of signature 'serving_default' expects shape [-1] of "
     'string, got shape []', 'send a list'),
    ('ragged', 'POST', f'/v1/models/{HALF}:predict',
     {'instances': [[1.0, 2.0], [3.0]]}, 400,
     "Failed to process element: 1 of 'instances' list. Error: "
     'INVALID_ARGUMENT: Expecting tensor size: 2 but got: 1', 'same shape'),
    ('string_for_float', 'POST', f'/v1/models/{HALF}:predict',
     {'instances': ['a']}, 400,
     "Failed to process element: 0 of 'instances' list. Error: "
     'INVALID_ARGUMENT: JSON Value: "a" Type: String is not of expected '
     'type: float', 'send JSON numbers'),
    ('b64_for_float', 'POST', f'/v1/models/{HALF}:predict',
     {'instances': [{'b64': 'AAAA'}]}, 400,
     "Failed to process element: 0 of 'instances' list. Error: "
     'INVALID_ARGUMENT: JSON Value: {"b64":"AAAA"} Type: Object is not of '
     'expected type: float', '{"b64": ...} is only for string'),
    ('pixels_for_image', 'POST', f'/v1/models/{MODEL}:predict',
     {'instances': [[[0, 0, 0]]]}, 400,
     "Failed to process element: 0 of 'instances' list. Error: "
     'INVALID_ARGUMENT: JSON Value: 0 Type: Number is not of expected type: '
     'string', 'send the encoded image file'),
    ('url_safe_base64', 'POST', f'/v1/models/{MODEL}:predict',
     {'instances': [_URL_SAFE]}, 400,
     "Failed to process element: 0 of 'instances' list. Error: "
     'INVALID_ARGUMENT: Unable to base64 decode', 'URL-safe base64'),
    ('not_an_image', 'POST', f'/v1/models/{MODEL}:predict',
     {'instances': [b64(b'plain text, not an image')]}, 400,
     'Unknown image file format', 'not a whole JPEG'),
    ('image_as_plain_string', 'POST', f'/v1/models/{MODEL}:predict',
     {'instances': ['aGVsbG8=']}, 400, 'Unknown image file format',
     'got a plain JSON string'),
    ('unknown_model', 'POST', '/v1/models/nope:predict', {'instances': [1.0]},
     404, 'Servable not found for request: Latest(nope)',
     f'served models: {MODEL}, {HALF}'),
    ('unknown_version', 'POST', f'/v1/models/{MODEL}/versions/9:predict',
     {'instances': [1.0]}, 404,
     f'Servable not found for request: Specific({MODEL}, 9)',
     'available versions'),
    ('unknown_label', 'POST', f'/v1/models/{MODEL}/labels/nope:predict',
     {'instances': [1.0]}, 400, 'Unrecognized servable version label: nope',
     'labels of model'),
    ('unknown_signature', 'POST', f'/v1/models/{MODEL}:predict',
     {'instances': [1.0], 'signature_name': 'nope'}, 400,
     'Serving signature name: "nope" not found in signature def',
     f'available signatures: {features.EXAMPLES_SIGNATURE}, '
     f'{features.EMBEDDING_SIGNATURE}, {features.SERVING_SIGNATURE}'),
    ('classify_default_signature', 'POST', f'/v1/models/{MODEL}:classify',
     {'examples': [{'image': 'x'}]}, 400,
     'Expected one or two output Tensors, found 3',
     f'take :classify: {features.EXAMPLES_SIGNATURE}'),
    ('classify_with_instances', 'POST', f'/v1/models/{MODEL}:classify',
     {'signature_name': features.EXAMPLES_SIGNATURE, 'instances': [1]}, 400,
     'JSON Value: ', '"instances"/"inputs" are for :predict'),
    ('regress_no_signature', 'POST', f'/v1/models/{HALF}:regress',
     {'examples': [{'x': 1.0}]}, 400, 'No regression inputs found',
     f'take :regress: {standin_model.REGRESS_SIGNATURE}'),
    ('get_predict', 'GET', f'/v1/models/{MODEL}:predict', None, 400,
     f'Malformed request: GET /v1/models/{MODEL}:predict', 'take POST'),
    ('post_without_method', 'POST', f'/v1/models/{MODEL}', {}, 400,
     f'Malformed request: POST /v1/models/{MODEL}', 'append :predict'),
    ('put', 'PUT', f'/v1/models/{MODEL}', {}, 400,
     f'Malformed request: PUT /v1/models/{MODEL}', 'takes GET (status'),
    ('too_large', 'POST', f'/v1/models/{MODEL}:predict',
     {'instances': [{'b64': 'A' * (MAX_BODY + 4)}]}, 413,
     'Request body of ', '--rest_api_max_body_bytes'),
    ('unknown_path', 'GET', '/v2/models/x', None, 404, 'Not found: /v2/models/x',
     None),
]


@pytest.mark.parametrize('method,path,body,status,message,hint',
                         [case[1:] for case in ERROR_CASES],
                         ids=[case[0] for case in ERROR_CASES])
def test_errors_have_tf_serving_status_and_a_helpful_message(
        api, method, path, body, status, message, hint):
    data = None if body is None else (
        body if isinstance(body, str) else json.dumps(body))
    response = requests.request(method, api.url + path, data=data, timeout=30)
    assert response.status_code == status
    assert response.headers['Content-Type'] == 'application/json'
    doc = response.json()
    assert list(doc) == ['error']
    error = doc['error']
    assert error.startswith(message), error
    assert 'Traceback' not in error and 'File "' not in error
    if hint is None:
        assert 'Hint:' not in error
    else:
        assert 'Hint:' in error and hint in error.split('Hint:', 1)[1], error


def test_server_keeps_serving_after_bad_requests(api, exported_models,
                                                 image_paths, image_bytes):
    for case in ERROR_CASES:
        if case[2].endswith(':predict') and case[1] == 'POST':
            api.post(case[2], case[3] if isinstance(case[3], str)
                     else json.dumps(case[3]))
    path = image_paths[1]
    response = api.post(f'/v1/models/{MODEL}:predict',
                        {'instances': [b64(image_bytes[path])]})
    assert response.status_code == 200
    assert_prediction(response.json()['predictions'][0],
                      exported_models.expected_v2[path])
    assert api.get('/readyz').status_code == 200


# -------------------------------------------------------------------- gRPC


def _grpc_predict_request(data, *, version=None, label=None, signature=''):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL
    if version is not None:
        request.model_spec.version.value = version
    if label:
        request.model_spec.version_label = label
    request.model_spec.signature_name = signature
    request.inputs[features.SERVING_INPUT].CopyFrom(
        tf.make_tensor_proto(data, dtype=tf.string))
    return request


def test_grpc_predict_equals_rest_predict(api, image_paths, image_bytes):
    stub = api.stub()
    for path in image_paths:
        rest = api.post(f'/v1/models/{MODEL}/versions/2:predict',
                        {'instances': [b64(image_bytes[path])]})
        rest_probabilities = np.asarray(
            rest.json()['predictions'][0][features.PROBABILITIES_OUTPUT],
            np.float32)
        response = stub.Predict(_grpc_predict_request(
            [image_bytes[path]], version=2), 10.0)
        grpc_probabilities = tf.make_ndarray(
            response.outputs[features.PROBABILITIES_OUTPUT])[0]
        assert grpc_probabilities.dtype == np.float32
        np.testing.assert_array_equal(grpc_probabilities, rest_probabilities)
        assert tf.make_ndarray(response.outputs[features.CLASS_NAME_OUTPUT])[
            0].decode() == rest.json()['predictions'][0][features.CLASS_NAME_OUTPUT]


def test_grpc_routes_by_version_label(api, exported_models, image_paths,
                                      image_bytes):
    path = image_paths[3]
    stub = api.stub()
    response = stub.Predict(_grpc_predict_request([image_bytes[path]],
                                                  label='stable'), 10.0)
    assert response.model_spec.name == MODEL
    assert response.model_spec.version.value == 1
    assert response.model_spec.signature_name == features.SERVING_SIGNATURE
    np.testing.assert_allclose(
        tf.make_ndarray(response.outputs[features.PROBABILITIES_OUTPUT])[0],
        exported_models.expected_v1[path], rtol=1e-5, atol=1e-6)
    response = stub.Predict(_grpc_predict_request([image_bytes[path]]), 10.0)
    assert response.model_spec.version.value == 2


def test_grpc_output_filter(api, image_paths, image_bytes):
    request = _grpc_predict_request([image_bytes[image_paths[0]]])
    request.output_filter.append(features.CLASS_NAME_OUTPUT)
    response = api.stub().Predict(request, 10.0)
    assert list(response.outputs) == [features.CLASS_NAME_OUTPUT]


@pytest.mark.parametrize('change,code,message', [
    (lambda r: setattr(r.model_spec, 'name', 'nope'),
     grpc.StatusCode.NOT_FOUND, 'Servable not found for request: Latest(nope)'),
    (lambda r: r.model_spec.version.__setattr__('value', 9),
     grpc.StatusCode.NOT_FOUND,
     f'Servable not found for request: Specific({MODEL}, 9)'),
    (lambda r: setattr(r.model_spec, 'signature_name', 'nope'),
     grpc.StatusCode.FAILED_PRECONDITION,
     'Serving signature key "nope" not found.'),
    (lambda r: r.inputs[features.SERVING_INPUT].CopyFrom(
        tf.make_tensor_proto([1.0, 2.0], dtype=tf.float32)),
     grpc.StatusCode.INVALID_ARGUMENT,
     'Expects arg[0] to be string but float is provided'),
    (lambda r: r.inputs['extra'].CopyFrom(tf.make_tensor_proto([1.0])),
     grpc.StatusCode.INVALID_ARGUMENT,
     'input size does not match signature: 2!=1 len({extra,image_bytes}) != '
     'len({image_bytes}). Sent extra: {extra}. Missing but required: {}.'),
], ids=['unknown_model', 'unknown_version', 'unknown_signature', 'wrong_dtype',
        'extra_input'])
def test_grpc_errors(api, image_paths, image_bytes, change, code, message):
    request = _grpc_predict_request([image_bytes[image_paths[0]]])
    change(request)
    with pytest.raises(grpc.RpcError) as raised:
        api.stub().Predict(request, 10.0)
    assert raised.value.code() == code
    assert raised.value.details().startswith(message)


def test_grpc_metadata_status_classify_regress(api, exported_models,
                                               image_paths, image_bytes):
    stub = api.stub()
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = MODEL
    request.model_spec.version_label = 'stable'
    request.metadata_field.append('signature_def')
    response = stub.GetModelMetadata(request, 10.0)
    assert response.model_spec.version.value == 1
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata['signature_def'].Unpack(signature_map)
    assert signature_map.signature_def[
        features.EXAMPLES_SIGNATURE].method_name == standin_model.CLASSIFY_METHOD

    status_request = get_model_status_pb2.GetModelStatusRequest()
    status_request.model_spec.name = MODEL
    status = api.model_stub().GetModelStatus(status_request, 10.0)
    assert [(s.version, s.state, s.status.error_code)
            for s in status.model_version_status] == [
                (2, get_model_status_pb2.ModelVersionStatus.AVAILABLE, 0),
                (1, get_model_status_pb2.ModelVersionStatus.AVAILABLE, 0)]

    path = image_paths[0]
    classify = classification_pb2.ClassificationRequest()
    classify.model_spec.name = MODEL
    classify.model_spec.signature_name = features.EXAMPLES_SIGNATURE
    example = classify.input.example_list.examples.add()
    example.features.feature[features.IMAGE_KEY].bytes_list.value.append(
        image_bytes[path])
    result = stub.Classify(classify, 10.0)
    assert result.model_spec.version.value == 2
    [classes] = result.result.classifications
    assert [c.label for c in classes.classes] == list(features.CLASS_NAMES)
    np.testing.assert_allclose([c.score for c in classes.classes],
                               exported_models.expected_v2[path], rtol=1e-5,
                               atol=1e-6)

    regress = regression_pb2.RegressionRequest()
    regress.model_spec.name = HALF
    regress.model_spec.signature_name = standin_model.REGRESS_SIGNATURE
    for x in (1.0, 4.0):
        example = regress.input.example_list.examples.add()
        example.features.feature['x'].float_list.value.append(x)
    values = [r.value for r in stub.Regress(regress, 10.0).result.regressions]
    assert values == [2.5, 4.0]


# ------------------------------------------------------------------ client


def test_client_cli_over_rest(api, exported_models, image_paths):
    paths = image_paths[2:5]
    result = subprocess.run(
        [sys.executable, '-m', 'serving.client', '--url', api.url, '--model',
         MODEL, '--version_label', 'stable'] + paths,
        cwd=str(server_process.PROJECT_ROOT), capture_output=True, text=True,
        timeout=120, check=False,
        env=server_process.subprocess_env())
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == len(paths)
    for path, line in zip(paths, lines):
        shown_path, label, probability = line.split('\t')
        expected = exported_models.expected_v1[path]
        assert shown_path == path
        assert label == features.CLASS_NAMES[int(np.argmax(expected))]
        assert abs(float(probability) - float(np.max(expected))) <= 2e-6


def test_client_cli_reports_server_errors(api, image_paths):
    result = subprocess.run(
        [sys.executable, '-m', 'serving.client', '--url', api.url, '--model',
         'nope', image_paths[0]],
        cwd=str(server_process.PROJECT_ROOT), capture_output=True, text=True,
        timeout=120, check=False,
        env=server_process.subprocess_env())
    assert result.returncode == 1
    assert result.stdout == ''
    assert result.stderr.startswith(
        'error: 404: Servable not found for request: Latest(nope)')


def test_grpc_client(api, exported_models, image_paths):
    client = client_lib.GrpcClient(api.server.grpc_target, MODEL, version=1)
    try:
        results = client_lib.predict_files(client, image_paths[:4],
                                           batch_size=2)
    finally:
        client.close()
    assert len(results) == 4
    for path, prediction in zip(image_paths, results):
        expected = exported_models.expected_v1[path]
        assert prediction.label == features.CLASS_NAMES[int(np.argmax(expected))]
        np.testing.assert_allclose(prediction.probabilities, expected,
                                   rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ warmup


def test_warmup_file_parses_with_tf_serving_protos(api, image_paths,
                                                   image_bytes):
    path = api.image_base / '1' / 'assets.extra' / 'tf_serving_warmup_requests'
    records = [prediction_log_pb2.PredictionLog.FromString(r.numpy())
               for r in tf.data.TFRecordDataset(str(path))]
    assert len(records) == 3
    for record, image_path in zip(records, image_paths[:3]):
        assert record.WhichOneof('log_type') == 'predict_log'
        request = record.predict_log.request
        assert request.model_spec.name == MODEL
        assert request.model_spec.signature_name == features.SERVING_SIGNATURE
        tensor = request.inputs[features.SERVING_INPUT]
        assert tensor.dtype == tf.string.as_datatype_enum
        assert [d.size for d in tensor.tensor_shape.dim] == [1]
        assert list(tensor.string_val) == [image_bytes[image_path]]


def test_server_replayed_the_warmup_file(api):
    log = api.server.log()
    path = api.image_base / '1' / 'assets.extra' / 'tf_serving_warmup_requests'
    assert (f'Finished reading warmup data for model at {path}. Number '
            'of warmup records read: 3.') in log
    assert ('No warmup data file found at '
            f'{api.image_base / "2" / "assets.extra"}') in log


def test_write_warmup_file_refuses_bad_input(tmp_path, exported_models):
    with pytest.raises(ValueError, match='holds no saved_model.pb'):
        warmup_file.write_warmup_file(str(tmp_path), [b'x'], model_name=MODEL)
    with pytest.raises(ValueError, match='1001 warmup images'):
        warmup_file.build_predict_logs([b'x'] * 1001, model_name=MODEL)
    with pytest.raises(ValueError, match='is empty'):
        warmup_file.build_predict_logs([], model_name=MODEL)
    with pytest.raises(ValueError, match='warmup image 1 must be non-empty'):
        warmup_file.build_predict_logs([b'x', b''], model_name=MODEL)


# ----------------------------------------------------------------- metrics


def _scrape(api):
    response = api.get('/monitoring/prometheus/metrics')
    assert response.status_code == 200
    assert response.headers['Content-Type'].startswith('text/plain')
    families = {family.name: family for family in
                prometheus_parser.text_string_to_metric_families(response.text)}
    return families


def _sample(families, family, sample, **labels):
    for item in families[family].samples:
        if item.name == sample and all(item.labels.get(k) == v
                                       for k, v in labels.items()):
            return item.value
    return 0.0


def test_metrics_count_the_requests_sent(api, image_paths, image_bytes):
    count = ':tensorflow:serving:request_count'
    latency = ':tensorflow:serving:request_latency'
    before = _scrape(api)
    body = {'instances': [b64(image_bytes[image_paths[0]])]}
    for _ in range(3):
        assert api.post(f'/v1/models/{MODEL}:predict', body).status_code == 200
    assert api.post(f'/v1/models/{MODEL}/versions/9:predict',
                    body).status_code == 404
    assert api.post(f'/v1/models/{MODEL}:predict', '{').status_code == 400
    assert api.post(f'/v1/models/{MODEL}:predict',
                    {'instances': [[1]]}).status_code == 400
    api.stub().Predict(_grpc_predict_request([image_bytes[image_paths[0]]]),
                       10.0)
    after = _scrape(api)

    assert after[count].type == 'unknown'
    assert after[latency].type == 'histogram'

    def delta(family, sample, **labels):
        return (_sample(after, family, sample, **labels) -
                _sample(before, family, sample, **labels))

    assert delta(count, count, model_name=MODEL, status='OK') == 4
    assert delta(count, count, model_name=MODEL, status='NOT_FOUND') == 1
    assert delta(count, count, model_name=MODEL,
                 status='INVALID_ARGUMENT') == 2
    assert delta(latency, latency + '_count', model_name=MODEL, API='predict',
                 entrypoint='REST') == 3
    assert delta(latency, latency + '_count', model_name=MODEL, API='Predict',
                 entrypoint='GRPC') == 1
    buckets = [s.labels['le'] for s in after[latency].samples
               if s.name == latency + '_bucket'
               and s.labels['API'] == 'predict' and s.labels['model_name'] == MODEL]
    assert buckets[:3] == ['10.0', '18.0', '32.4'] and buckets[-1] == '+Inf'
    assert len(buckets) == 34
    assert delta('serving_batch_size', 'serving_batch_size_count') == 0

    loads = ':tensorflow:cc:saved_model:load_attempt_count'
    for version in (1, 2):
        assert _sample(after, loads, loads, status='success',
                       model_path=str(api.image_base / str(version))) == 1
    warmups = ':tensorflow:serving:model_warmup_records_read'
    assert _sample(after, warmups, warmups, status='OK',
                   model_path=str(api.image_base / '1')) == 3
    assert _sample(after, 'serving_predict_seconds',
                   'serving_predict_seconds_count', model_name=MODEL,
                   signature=features.SERVING_SIGNATURE) > 0


# ------------------------------------------------------------- request log


def test_request_log_records_each_request(api, exported_models, image_paths,
                                          image_bytes):
    already = len(api.log_lines())
    path = image_paths[1]
    data = image_bytes[path]
    ok = api.post(f'/v1/models/{MODEL}/versions/1:predict',
                  {'instances': [b64(data)]})
    bad_image = b'not an image at all'
    assert api.post(f'/v1/models/{MODEL}:predict',
                    {'instances': [b64(bad_image)]}).status_code == 400
    assert api.post('/v1/models/nope:predict',
                    {'instances': [b64(data)]}).status_code == 404
    api.get(f'/v1/models/{MODEL}')            # status calls are not logged
    classify = api.post(f'/v1/models/{MODEL}:classify', {
        'signature_name': features.EXAMPLES_SIGNATURE,
        'examples': [{features.IMAGE_KEY: b64(data)}]})
    api.stub().Predict(_grpc_predict_request([data], version=1), 10.0)
    lines = api.log_lines()[already:]
    assert [(l['api'], l['entrypoint'], l['status'], l.get('http_status'))
            for l in lines] == [
                ('predict', 'REST', 'OK', 200),
                ('predict', 'REST', 'INVALID_ARGUMENT', 400),
                ('predict', 'REST', 'NOT_FOUND', 404),
                ('classify', 'REST', 'OK', 200),
                ('predict', 'GRPC', 'OK', None)]
    shape = tf.io.extract_jpeg_shape(data).numpy()
    [row] = ok.json()['predictions']
    image = {'bytes': len(data), 'sha256': hashlib.sha256(data).hexdigest(),
             'height': int(shape[0]), 'width': int(shape[1]),
             'label': row[features.CLASS_NAME_OUTPUT],
             'score': max(row[features.PROBABILITIES_OUTPUT])}
    first = lines[0]
    assert first['model'] == MODEL and first['version'] == 1
    assert first['signature'] == features.SERVING_SIGNATURE
    assert first['images'] == [image]
    assert 'error' not in first and 'b64' not in json.dumps(first)
    assert first['latency_ms'] > 0
    assert first['time'].endswith('Z')
    assert lines[1]['images'] == [{
        'bytes': len(bad_image),
        'sha256': hashlib.sha256(bad_image).hexdigest(), 'height': None,
        'width': None, 'label': None, 'score': None}]
    assert lines[1]['error'].startswith('Unknown image file format')
    assert lines[2]['version'] is None and lines[2]['images'] == []
    [classes] = classify.json()['results']
    assert lines[3]['signature'] == features.EXAMPLES_SIGNATURE
    assert lines[3]['images'][0]['sha256'] == image['sha256']
    assert lines[3]['images'][0]['score'] == max(s for _, s in classes)
    assert lines[4]['version'] == 1 and lines[4]['images'] == [image]


# ----------------------------------------------------- labels, live config


def test_promote_canary_moves_stable_without_restart(own_api, exported_models,
                                                     image_paths, image_bytes):
    api = own_api(half=False)
    assert labels_lib.promote_canary(str(api.config_path), MODEL) == 2
    assert labels_lib.labels_of(str(api.config_path), MODEL) == {
        'stable': 2, 'canary': 2, 'next': 3}

    def stable_version():
        doc = api.get(f'/v1/models/{MODEL}/labels/stable').json()
        return doc['model_version_status'][0]['version'] == '2'
    server_process.wait_for(stable_version, timeout=30,
                            what='stable to move to version 2')
    path = image_paths[0]
    response = api.post(f'/v1/models/{MODEL}/labels/stable:predict',
                        {'instances': [b64(image_bytes[path])]})
    assert_prediction(response.json()['predictions'][0],
                      exported_models.expected_v2[path])


def test_push_canary_waits_for_the_version_then_labels_it(
        own_api, exported_models, image_paths, image_bytes):
    # As after a promotion: stable and canary both on version 2.
    api = own_api(half=False, stable=2)
    server_process.copy_version(exported_models.image_v1, api.image_base, 3)
    labels_lib.push_canary(str(api.config_path), MODEL, 3,
                           server_url=api.url, timeout_seconds=60)
    assert labels_lib.labels_of(str(api.config_path), MODEL) == {
        'stable': 2, 'canary': 3, 'next': 3}

    def canary_is_3():
        doc = api.get(f'/v1/models/{MODEL}/labels/canary').json()
        return doc.get('model_version_status', [{}])[0].get('version') == '3'
    server_process.wait_for(canary_is_3, timeout=30, what='canary -> 3')
    path = image_paths[2]
    for label, expected in (('canary', exported_models.expected_v1),
                            ('next', exported_models.expected_v1),
                            ('stable', exported_models.expected_v2)):
        response = api.post(f'/v1/models/{MODEL}/labels/{label}:predict',
                            {'instances': [b64(image_bytes[path])]})
        assert response.status_code == 200, response.text
        assert_prediction(response.json()['predictions'][0], expected[path])
    # Version 1 left the policy (no label points at it): unloaded.
    states = {s['version']: s['state'] for s in
              api.get(f'/v1/models/{MODEL}').json()['model_version_status']}
    assert states == {'3': 'AVAILABLE', '2': 'AVAILABLE', '1': 'END'}


def test_grpc_reload_config_request(own_api):
    api = own_api(image=False)
    request = model_management_pb2.ReloadConfigRequest()
    request.config.CopyFrom(labels_lib.read_config(str(api.config_path)))
    [config] = request.config.model_config_list.config
    config.version_labels['stable'] = 1
    assert api.get(f'/v1/models/{HALF}/labels/stable').status_code == 400
    response = api.model_stub().HandleReloadConfigRequest(request, 60.0)
    assert response.status.error_code == 0
    ok = {'error_code': 'OK', 'error_message': ''}
    stable = {'model_version_status': [
        {'version': '1', 'state': 'AVAILABLE', 'status': ok}]}
    assert api.get(f'/v1/models/{HALF}/labels/stable').json() == stable
    request.config.model_config_list.config.add().CopyFrom(config)
    with pytest.raises(grpc.RpcError) as raised:
        api.model_stub().HandleReloadConfigRequest(request, 60.0)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.details() == (
        f'Illegal to list model {HALF} multiple times in config list')
    # The refused config changed nothing: the label the reload added stays.
    assert api.get(f'/v1/models/{HALF}/labels/stable').json() == stable


def test_sigterm_stops_the_server_gracefully(own_api):
    api = own_api(image=False)
    assert api.server.stop() == 0
    assert 'Server stopped' in api.server.log()
