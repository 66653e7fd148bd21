"""In-process tests of the pieces with no server: parsing, labels, batching."""

import concurrent.futures
import threading
import time

import numpy as np
import pytest

from serving import batching
from serving import errors
from serving import json_tensor
from serving import model_store
from serving_formats import version_labels as labels

CONFIG = """
model_config_list {
  config {
    name: 'cats_dogs'
    base_path: '/models/cats_dogs'
    model_platform: 'tensorflow'
    model_version_policy { specific { versions: 1 } }
    version_labels { key: 'stable' value: 1 }
  }
}
"""


def test_batching_parameters_file_in_tf_serving_format():
    params = batching.parse_batching_parameters("""
        max_batch_size { value: 16 }
        batch_timeout_micros { value: 5000 }
        max_enqueued_batches { value: 7 }
        num_batch_threads { value: 3 }
        thread_pool_name { value: "batch_threads" }
        allowed_batch_sizes: 4
        allowed_batch_sizes: 16
    """)
    assert params == batching.BatchingParameters(
        max_batch_size=16, batch_timeout_micros=5000, max_enqueued_batches=7,
        num_batch_threads=3, allowed_batch_sizes=(4, 16))
    with pytest.raises(ValueError, match='must match max_batch_size; last '
                       'entry was 8; expected 16'):
        batching.parse_batching_parameters(
            'max_batch_size { value: 16 } allowed_batch_sizes: 8')
    with pytest.raises(ValueError, match='Invalid batching parameters'):
        batching.parse_batching_parameters('max_batch_size: 16')


def _double(inputs):
    return {'y': inputs['x'] * 2.0, 'n': np.full(len(inputs['x']),
                                                  len(inputs['x']))}


def test_batcher_splits_results_per_request_and_pads():
    batcher = batching.Batcher(batching.BatchingParameters(
        max_batch_size=8, batch_timeout_micros=200_000, num_batch_threads=1,
        allowed_batch_sizes=(4, 8)))
    barrier = threading.Barrier(6)

    def call(index):
        barrier.wait()
        x = np.arange(index + 1, dtype=np.float32) + 10 * index
        outputs, _ = batcher.run('key', {'x': x}, _double)
        return x, outputs

    try:
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            results = list(pool.map(call, range(6)))
    finally:
        batcher.shutdown()
    sizes = set()
    for x, outputs in results:
        np.testing.assert_array_equal(outputs['y'], x * 2.0)
        sizes.update(outputs['n'].tolist())
    # 21 examples in batches of at most 8, each padded to 4 or 8.
    assert sizes <= {4, 8}


def test_batcher_refuses_oversized_tasks_and_full_queues():
    batcher = batching.Batcher(batching.BatchingParameters(
        max_batch_size=2, max_enqueued_batches=1, num_batch_threads=1))
    started, release = threading.Event(), threading.Event()

    def slow(inputs):
        started.set()
        release.wait(30)
        return _double(inputs)

    try:
        with pytest.raises(errors.ServingError) as raised:
            batcher.run('key', {'x': np.zeros(3)}, slow)
        assert raised.value.code == errors.Code.INVALID_ARGUMENT
        assert raised.value.message.startswith(
            'Task size 3 is larger than maximum input batch size 2')
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            running = pool.submit(batcher.run, 'key', {'x': np.ones(2)}, slow)
            assert started.wait(30)
            queued = pool.submit(batcher.run, 'key', {'x': np.ones(2)}, slow)
            queue = batcher._queues['key']  # pylint: disable=protected-access
            deadline = time.monotonic() + 30
            while queue._queued_size < 2:  # pylint: disable=protected-access
                assert time.monotonic() < deadline
                time.sleep(0.01)
            with pytest.raises(errors.ServingError) as raised:
                batcher.run('key', {'x': np.ones(1)}, slow)
            assert raised.value.code == errors.Code.UNAVAILABLE
            assert raised.value.message == (
                'The batch scheduling queue to which this task was submitted '
                'is full')
            release.set()
            np.testing.assert_array_equal(running.result()[0]['y'], [2.0, 2.0])
            np.testing.assert_array_equal(queued.result()[0]['y'], [2.0, 2.0])
    finally:
        release.set()
        batcher.shutdown()


def test_model_config_is_validated():
    config = model_store.parse_config_text(CONFIG)
    assert config.model_config_list.config[0].version_labels['stable'] == 1
    with pytest.raises(ValueError, match='multiple times'):
        model_store.parse_config_text(
            CONFIG.replace('model_config_list {\n',
                           "model_config_list {\n config { name: 'cats_dogs' "
                           "base_path: '/x' }\n"))
    with pytest.raises(ValueError, match="model_platform 'pytorch'"):
        model_store.parse_config_text(CONFIG.replace("'tensorflow'",
                                                     "'pytorch'"))
    with pytest.raises(ValueError, match='Error parsing text-format tensorflow.serving.ModelServerConfig'):
        model_store.parse_config_text('model_config_list { nonsense: 1 }')


def test_labels_push_promote_retire(tmp_path):
    path = tmp_path / 'models.config'
    path.write_text(CONFIG)
    labels.push_canary(str(path), 'cats_dogs', 5)
    config = model_store.read_config_file(str(path))
    model = config.model_config_list.config[0]
    assert dict(model.version_labels) == {'stable': 1, 'canary': 5}
    assert list(model.model_version_policy.specific.versions) == [1, 5]
    assert labels.promote_canary(str(path), 'cats_dogs',
                                 retire_previous=True) == 5
    model = model_store.read_config_file(str(path)).model_config_list.config[0]
    assert dict(model.version_labels) == {'stable': 5, 'canary': 5}
    assert list(model.model_version_policy.specific.versions) == [5]
    assert [p.name for p in tmp_path.iterdir()] == ['models.config']
    with pytest.raises(ValueError, match="No model 'dogs'"):
        labels.push_canary(str(path), 'dogs', 6)
    assert labels.main(['set', '--config', str(path), '--model', 'cats_dogs',
                        '--label', 'shadow', '--version', '6']) == 0
    assert labels.labels_of(str(path), 'cats_dogs') == {
        'stable': 5, 'canary': 5, 'shadow': 6}


def test_first_push_is_stable_too(tmp_path):
    path = tmp_path / 'models.config'
    path.write_text("model_config_list { config { name: 'm' base_path: '/m' } }")
    labels.push_canary(str(path), 'm', 3)
    assert labels.labels_of(str(path), 'm') == {'stable': 3, 'canary': 3}


def test_json_values_follow_tf_serving():
    array = json_tensor.json_to_array([[1, 2.5], [3, 4]], json_tensor.DT_FLOAT,
                                      'x')
    assert array.dtype == np.float32 and array.shape == (2, 2)
    strings = json_tensor.json_to_array([{'b64': 'aGk='}, 'plain'],
                                        json_tensor.DT_STRING, 's')
    assert strings.tolist() == [b'hi', b'plain']
    with pytest.raises(errors.ServingError) as raised:
        json_tensor.json_to_array([1.5], json_tensor.DT_INT64, 'n')
    assert raised.value.message == (
        'JSON Value: 1.5 Type: Number is not of expected type: int64 Hint: '
        "input 'n' is int64: send whole numbers without a decimal point.")
    with pytest.raises(errors.ServingError) as raised:
        json_tensor.json_to_array([300], json_tensor.DT_UINT8, 'p')
    assert 'values must be in [0, 255]' in raised.value.message
    assert json_tensor.encode_predict(
        {'y': np.array([0.1, float('nan')], np.float32)}, row_format=True) == {
            'predictions': [0.1, pytest.approx(float('nan'), nan_ok=True)]}


def test_tf_error_messages_lose_the_python_stack():
    message = ('Graph execution error:\n\nDetected at node DecodeImage defined '
               'at (most recent call last):\n  File "x.py", line 1, in f\n'
               '    decode(x)\nUnknown image file format.\n\t [[{{node '
               'DecodeImage}}]] [Op:__inference_serve_1]')
    assert errors.clean_tf_message(message) == (
        'Unknown image file format.\n\t [[{{node DecodeImage}}]]')


def test_readiness_needs_the_grpc_port_to_answer(tmp_path):
    from serving import core  # pylint: disable=import-outside-toplevel
    from serving import grpc_server  # pylint: disable=import-outside-toplevel
    from tests.serving import server_process  # pylint: disable=import-outside-toplevel
    from tests.serving import standin_model  # pylint: disable=import-outside-toplevel
    standin_model.export_regression_model(str(tmp_path / 'half' / '1'))
    store = model_store.ModelStore()
    serving_core = core.ServingCore(store)
    assert serving_core.readiness() == (False, {'': 'no config applied yet'}, {})
    store.apply_config(model_store.single_model_config('half', str(tmp_path / 'half')))
    assert serving_core.readiness() == (True, {'half': 'AVAILABLE: 1'}, {})
    server = grpc_server.GrpcServer(serving_core, port=server_process.free_port())
    serving_core.port_checks['grpc'] = server.problem
    assert server.problem() == 'not started'
    server.start()
    assert serving_core.readiness() == (True, {'half': 'AVAILABLE: 1'},
                                        {'grpc': 'answering'})
    server.stop(0)
    problem = server.problem()
    assert problem.startswith('no gRPC answer from 127.0.0.1:'), problem
    assert serving_core.readiness() == (False, {'half': 'AVAILABLE: 1'},
                                        {'grpc': problem})
    store.stop()


def test_stopping_right_after_readiness_probes_leaves_no_thread_failing(tmp_path, monkeypatch):
    # Two /readyz probes close together, then SIGTERM: the probe's channel was closed while
    # gRPC's connectivity-polling thread still had a connection attempt to make, which then
    # raised "Cannot invoke RPC: Channel closed!" in that thread, a traceback in the log.
    from serving import core  # pylint: disable=import-outside-toplevel
    from serving import grpc_server  # pylint: disable=import-outside-toplevel
    from tests.serving import server_process  # pylint: disable=import-outside-toplevel
    raised = []
    monkeypatch.setattr(threading, 'excepthook',
                        lambda args: raised.append(f'{args.thread.name}: {args.exc_value!r}'))
    serving_core = core.ServingCore(model_store.ModelStore())
    server = grpc_server.GrpcServer(serving_core, port=server_process.free_port())
    server.start()
    for _ in range(3):
        assert server.problem() is None
        assert server.problem() is None
        assert server.problem() is None
    server.stop(0)
    assert server.problem().startswith('no gRPC answer from 127.0.0.1:')
    time.sleep(0.5)   # gRPC's connectivity polling wakes every 0.2 s
    assert raised == []


def test_readiness_probe_fails_once_the_port_stops_answering():
    # The gRPC server gone without GrpcServer.stop (as if its threads died): the probe's
    # call finds nobody answering within its timeout.
    from serving import core  # pylint: disable=import-outside-toplevel
    from serving import grpc_server  # pylint: disable=import-outside-toplevel
    from tests.serving import server_process  # pylint: disable=import-outside-toplevel
    server = grpc_server.GrpcServer(core.ServingCore(model_store.ModelStore()),
                                    port=server_process.free_port())
    server.start()
    assert server.problem() is None
    server._server.stop(0).wait()  # pylint: disable=protected-access
    problem = server.problem(timeout=0.5)
    assert problem.startswith(f'no gRPC answer from 127.0.0.1:{server.port} within 0.5 s ('), problem
    server.stop(0)
