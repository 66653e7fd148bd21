"""Readiness, warmup, batching and hot reload on real server processes.

Each test that changes what is served starts its own server on an empty base
path with batching on, then publishes the versions it needs while it runs
(saved_model.pb last, as the Pusher does); the tests that only send requests to
version 1 share one such server (`serving_v1`), which none of them changes: every
test passes alone and in any order. Readiness, warmup and batching are tested on the
exported models of the pipeline; the tests of versions coming, failing and going use two
stand-ins with the same serving contract (tests/serving/standin_model.py, as
test_rollback.py does), which load in a fraction of the time.
"""

import base64
import concurrent.futures
import json
import shutil
import threading
import time

import grpc
import numpy as np
import pytest
import requests
import tensorflow as tf
from prometheus_client import parser as prometheus_parser
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from models import features
from serving_formats import warmup_file
from tests.serving import conftest
from tests.serving import server_process
from tests.serving import standin_model

MODEL = 'cats_dogs'
WARMUP_RECORDS = 24
BATCHING = """
max_batch_size { value: 8 }
batch_timeout_micros { value: 100000 }
max_enqueued_batches { value: 100 }
num_batch_threads { value: 1 }
"""


class Reload:

    def __init__(self, server, root, base):
        self.server = server
        self.root = root
        self.base = base
        self.url = server.url

    def status(self):
        return requests.get(f'{self.url}/v1/models/{MODEL}', timeout=10)

    def states(self):
        response = self.status()
        if response.status_code != 200:
            return {}
        return {int(s['version']): s for s in
                response.json()['model_version_status']}

    def predict(self, data, route=''):
        return requests.post(
            f'{self.url}/v1/models/{MODEL}{route}:predict',
            json={'instances': [{'b64': base64.b64encode(data).decode()}]},
            timeout=60)

    def grpc_version(self, data):
        stub = prediction_service_pb2_grpc.PredictionServiceStub(
            grpc.insecure_channel(self.server.grpc_target))
        request = predict_pb2.PredictRequest()
        request.model_spec.name = MODEL
        request.inputs[features.SERVING_INPUT].CopyFrom(
            tf.make_tensor_proto([data], dtype=tf.string))
        return stub.Predict(request, 30.0).model_spec.version.value

    def metrics(self):
        text = requests.get(f'{self.url}/monitoring/prometheus/metrics',
                            timeout=10).text
        return {f.name: f for f in
                prometheus_parser.text_string_to_metric_families(text)}


def start_reload(root):
    """A server with batching on, on an empty base path under `root`; its Reload."""
    base = root / MODEL
    base.mkdir()
    batching = root / 'batching.config'
    batching.write_text(BATCHING)
    server = server_process.ServerProcess([
        f'--model_name={MODEL}', f'--model_base_path={base}',
        '--file_system_poll_wait_seconds=1', '--enable_batching',
        f'--batching_parameters_file={batching}', '--max_num_load_retries=0',
        '--rest_api_num_threads=16',
        f'--request_log_file={root / "requests.jsonl"}',
        '--request_log_sample_rate=0.0',
    ], root / 'server.log').start()
    try:
        server.wait_listening()
    except BaseException:
        server.stop()
        raise
    return Reload(server, root, base)


@pytest.fixture
def reload(tmp_path):
    """A server of the test's own, nothing served yet."""
    started = start_reload(tmp_path)
    try:
        yield started
    finally:
        started.server.stop()


@pytest.fixture(scope='module')
def serving_v1(tmp_path_factory, exported_models):
    """A server of the module's tests that only send requests: version 1 served."""
    started = start_reload(tmp_path_factory.mktemp('serving_v1'))
    try:
        serve(started, {1: exported_models.image_v1})
        yield started
    finally:
        started.server.stop()


@pytest.fixture(scope='module')
def standins(tmp_path_factory, image_bytes) -> conftest.ExportedModels:
    """Two stand-in image models that tell versions apart (version 1 a cat for nearly
    every photo, version 2 a dog), with the probabilities each gives; no regressor."""
    root = tmp_path_factory.mktemp('standins')
    exports = []
    for version, bias in ((1, (3.0, 0.0)), (2, (0.0, 3.0))):
        exports.append(str(root / f'image_v{version}'))
        standin_model.export_image_model(exports[-1], seed=version, bias=bias)
    return conftest.ExportedModels(
        exports[0], exports[1], '', conftest.expected_probabilities(exports[0], image_bytes),
        conftest.expected_probabilities(exports[1], image_bytes))


def serve(reload, versions):
    """Publishes {version: SavedModel dir}; waits until the newest serves."""
    for version, source in sorted(versions.items()):
        server_process.copy_version(source, reload.base, version)
    newest = max(versions)
    server_process.wait_for(
        lambda: reload.states().get(newest, {}).get('state') == 'AVAILABLE',
        timeout=60, what=f'version {newest} to serve')


def assert_probabilities(response, expected):
    assert response.status_code == 200, response.text
    [row] = response.json()['predictions']
    np.testing.assert_allclose(row[features.PROBABILITIES_OUTPUT], expected,
                               rtol=1e-5, atol=1e-6)


def test_not_ready_until_loaded_and_warmed(reload, exported_models,
                                           image_paths, image_bytes):
    assert requests.get(reload.url + '/healthz', timeout=10).status_code == 200
    # The initial (empty) load runs in the background once the ports are up.
    def initial_load_done():
        response = requests.get(reload.url + '/readyz', timeout=10)
        doc = response.json()
        return (response.status_code, doc) if doc['models'] != {
            MODEL: 'loading'} else None

    code, doc = server_process.wait_for(initial_load_done, timeout=30,
                                        what='the initial load')
    assert code == 503
    assert doc == {'ready': False, 'models': {MODEL: 'no AVAILABLE version'},
                   'ports': {'grpc': 'answering', 'rest': 'answering'}}
    status = reload.status()
    assert status.status_code == 404
    assert status.json()['error'].startswith(
        f'Could not find any versions of model {MODEL}')
    response = reload.predict(image_bytes[image_paths[0]])
    assert response.status_code == 404
    assert response.json()['error'].startswith(
        f'Servable not found for request: Latest({MODEL})')

    staged = reload.root / 'v1_with_warmup'
    shutil.copytree(exported_models.image_v1, staged)
    images = [image_bytes[p] for p in image_paths]
    warmup_file.write_warmup_file(str(staged), (images * 4)[:WARMUP_RECORDS],
                             model_name=MODEL)
    server_process.copy_version(str(staged), reload.base, 1)
    warmup_line = (f'Finished reading warmup data for model at '
                   f'{reload.base / "1" / "assets.extra"}/'
                   f'tf_serving_warmup_requests. Number of warmup records '
                   f'read: {WARMUP_RECORDS}.')
    seen = []
    deadline = time.monotonic() + 90
    while True:
        # Readiness first: once it says 200, the version must be AVAILABLE.
        code = requests.get(reload.url + '/readyz', timeout=10).status_code
        state = reload.states().get(1, {}).get('state')
        seen.append((code, state))
        if code == 200:
            break
        assert time.monotonic() < deadline, reload.server.log()[-3000:]
        time.sleep(0.05)
    # Ready only once the warmup replay had finished.
    assert warmup_line in reload.server.log()
    assert (503, 'LOADING') in seen
    assert all(state == 'AVAILABLE' for code, state in seen if code == 200)
    assert reload.states()[1]['state'] == 'AVAILABLE'
    assert_probabilities(reload.predict(image_bytes[image_paths[0]]),
                         exported_models.expected_v1[image_paths[0]])


def test_batching_gives_each_request_its_own_answer(serving_v1, exported_models,
                                                    image_paths, image_bytes):
    reload = serving_v1

    def batch_sizes():
        family = reload.metrics()['serving_batch_size']
        values = {s.name: s.value for s in family.samples
                  if s.name in ('serving_batch_size_count',
                                'serving_batch_size_sum')}
        return (values.get('serving_batch_size_count', 0),
                values.get('serving_batch_size_sum', 0))

    count_before, sum_before = batch_sizes()
    paths = image_paths * 2
    barrier = threading.Barrier(len(paths))

    def call(path):
        barrier.wait()
        return reload.predict(image_bytes[path])

    with concurrent.futures.ThreadPoolExecutor(len(paths)) as pool:
        responses = list(pool.map(call, paths))
    for path, response in zip(paths, responses):
        assert_probabilities(response, exported_models.expected_v1[path])
    count_after, sum_after = batch_sizes()
    assert sum_after - sum_before == len(paths)
    # Fewer model calls than requests: requests were batched together.
    assert count_after - count_before < len(paths)


def test_a_bad_request_in_a_batch_fails_alone(serving_v1, exported_models,
                                              image_paths, image_bytes):
    reload = serving_v1
    bodies = [image_bytes[p] for p in image_paths] + [b'not an image']
    barrier = threading.Barrier(len(bodies))

    def call(data):
        barrier.wait()
        return reload.predict(data)

    with concurrent.futures.ThreadPoolExecutor(len(bodies)) as pool:
        responses = list(pool.map(call, bodies))
    for path, response in zip(image_paths, responses):
        assert_probabilities(response, exported_models.expected_v1[path])
    assert responses[-1].status_code == 400
    assert responses[-1].json()['error'].startswith('Unknown image file format')


def test_hot_reload_switches_to_a_new_version(reload, standins,
                                              image_paths, image_bytes):
    serve(reload, {1: standins.image_v1})
    assert reload.grpc_version(image_bytes[image_paths[0]]) == 1
    server_process.copy_version(standins.image_v2, reload.base, 2)
    server_process.wait_for(
        lambda: {v: s['state'] for v, s in reload.states().items()} == {
            2: 'AVAILABLE', 1: 'END'}, timeout=60, what='version 2 to serve')
    for path in image_paths[:2]:
        assert_probabilities(reload.predict(image_bytes[path]),
                             standins.expected_v2[path])
    assert reload.grpc_version(image_bytes[image_paths[0]]) == 2
    assert requests.get(reload.url + '/readyz', timeout=10).status_code == 200


def test_a_corrupt_version_is_reported_and_the_old_one_keeps_serving(
        reload, standins, image_paths, image_bytes):
    serve(reload, {2: standins.image_v2})
    staged = reload.root / 'corrupt'
    shutil.copytree(standins.image_v1, staged)
    (staged / 'saved_model.pb').write_bytes(b'this is not a SavedModel')
    server_process.copy_version(str(staged), reload.base, 3)
    state = server_process.wait_for(
        lambda: reload.states().get(3, {}).get('state') == 'END'
        and reload.states()[3], timeout=60, what='version 3 to fail')
    assert state['status']['error_code'] != 'OK'
    assert state['status']['error_message']
    assert reload.states()[2]['state'] == 'AVAILABLE'
    path = image_paths[3]
    assert_probabilities(reload.predict(image_bytes[path]),
                         standins.expected_v2[path])
    assert reload.grpc_version(image_bytes[path]) == 2
    assert requests.get(reload.url + '/readyz', timeout=10).status_code == 200
    assert (f'Loading servable version {{name: {MODEL} version: 3}} from '
            f'{reload.base / "3"} failed') in reload.server.log()


def test_a_corrupt_warmup_file_keeps_the_version_out(reload, standins,
                                                     image_paths, image_bytes):
    serve(reload, {2: standins.image_v2})
    staged = reload.root / 'bad_warmup'
    shutil.copytree(standins.image_v1, staged)
    bad = staged / 'assets.extra' / 'tf_serving_warmup_requests'
    bad.parent.mkdir(exist_ok=True)
    bad.write_bytes(b'\x00garbage that is not a TFRecord file' * 8)
    server_process.copy_version(str(staged), reload.base, 4)
    state = server_process.wait_for(
        lambda: reload.states().get(4, {}).get('state') == 'END'
        and reload.states()[4], timeout=60, what='version 4 to fail warmup')
    assert state['status']['error_code'] == 'DATA_LOSS'
    assert state['status']['error_message'].endswith(
        'Please verify your warmup data is in TFRecord format.')
    path = image_paths[4]
    assert_probabilities(reload.predict(image_bytes[path]),
                         standins.expected_v2[path])
    assert reload.grpc_version(image_bytes[path]) == 2
    families = reload.metrics()
    loads = ':tensorflow:cc:saved_model:load_attempt_count'
    attempts = {(s.labels['model_path'], s.labels['status']): s.value
                for s in families[loads].samples}
    # Version 4 loaded (its warmup, not its SavedModel, failed).
    assert attempts == {
        (str(reload.base / '2'), 'success'): 1,
        (str(reload.base / '4'), 'success'): 1,
    }


def test_removing_the_newest_version_rolls_back(reload, standins,
                                                image_paths, image_bytes):
    serve(reload, {1: standins.image_v1})
    serve(reload, {2: standins.image_v2})
    server_process.wait_for(
        lambda: reload.states().get(1, {}).get('state') == 'END', timeout=60,
        what='version 1 to be unloaded')
    shutil.rmtree(reload.base / '2')
    server_process.wait_for(
        lambda: reload.states().get(1, {}).get('state') == 'AVAILABLE'
        and reload.states()[2]['state'] == 'END', timeout=60,
        what='version 1 to serve again')
    path = image_paths[5]
    assert_probabilities(reload.predict(image_bytes[path]),
                         standins.expected_v1[path])


def test_request_log_at_rate_zero_writes_nothing(serving_v1, image_paths, image_bytes):
    reload = serving_v1
    assert reload.predict(image_bytes[image_paths[0]]).status_code == 200
    log = reload.root / 'requests.jsonl'
    assert not log.exists() or log.read_text() == ''
    assert 'Request log: ' in reload.server.log()
