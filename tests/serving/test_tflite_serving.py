"""--prefer_tflite_model: predict from the version's model.tflite, everything else as before.

One server (`--prefer_tflite_model`, with batching) serves the pipeline's pushed model as
version 1 (with the model.tflite the Pusher wrote) and a second export without one as
version 2. Its answers are held to the SavedModel's own, computed in this process
(`exported_models`), on real photos; metadata and status to the SavedModel's. The
in-process tests load versions with the store's own loader.
"""

import base64
import concurrent.futures
import logging
import os
import shutil
import threading
import time

import grpc
import numpy as np
import pytest
import requests
import tensorflow as tf
from prometheus_client import parser as prometheus_parser
from tensorflow_serving.apis import classification_pb2
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from models import features
from models import tflite_check
from models import tflite_export
from serving import metrics
from serving import model_store
from serving import tflite_model
from tests.serving import server_process

MODEL = 'cats_dogs'
CONFIG = """model_config_list {{ config {{
  name: '{model}' base_path: '{base}' model_platform: 'tensorflow'
  model_version_policy {{ specific {{ versions: 1 versions: 2 }} }}
}} }}
"""


@pytest.fixture(scope='module')
def server(tmp_path_factory, exported_models):
    root = tmp_path_factory.mktemp('tflite_server')
    base = root / MODEL
    base.mkdir()
    server_process.copy_version(exported_models.image_v1, base, 1)
    server_process.copy_version(exported_models.image_v2, base, 2)
    config = root / 'models.config'
    config.write_text(CONFIG.format(model=MODEL, base=base))
    process = server_process.ServerProcess(
        [f'--model_config_file={config}', '--prefer_tflite_model', '--num_tflite_pools=2',
         '--enable_batching', '--max_batch_size=4', '--batch_timeout_micros=20000'],
        root / 'server.log').start()
    try:
        process.wait_ready(timeout=180)
        yield process
    finally:
        process.stop()


def _b64(data: bytes) -> dict:
    return {'b64': base64.b64encode(data).decode('ascii')}


def _assert_answers(probabilities, class_index, label, expected):
    """Probabilities within the tolerance, class index and label those of the expected."""
    np.testing.assert_allclose(np.asarray(probabilities, np.float32), expected, rtol=0,
                               atol=tflite_check.SERVING_TOLERANCE)
    best = np.argmax(expected, axis=-1)
    assert list(class_index) == best.tolist()
    assert [n.decode() if isinstance(n, bytes) else n for n in label] == [
        features.CLASS_NAMES[i] for i in best]


def test_the_pusher_wrote_model_tflite_beside_the_saved_model(exported_models):
    assert os.path.getsize(os.path.join(exported_models.image_v1,
                                        tflite_export.SERVING_FILE)) > 100_000
    assert not os.path.exists(os.path.join(exported_models.image_v2, tflite_export.SERVING_FILE))


def test_version_1_is_answered_from_tflite_version_2_from_the_saved_model(server):
    lines = [line for line in server.log().splitlines() if tflite_export.SERVING_FILE in line]
    assert any(f'{os.sep}1{os.sep}{tflite_export.SERVING_FILE} serves predict on '
               f'{features.SERVING_SIGNATURE} (2 interpreters' in line for line in lines), lines
    assert not any(f'{os.sep}2{os.sep}' in line for line in lines), lines


@pytest.mark.parametrize('version', [1, 2])
def test_rest_predict_answers_as_the_saved_model(server, exported_models, image_paths,
                                                 image_bytes, version):
    expected = np.stack([exported_models.expected(version)[p] for p in image_paths])
    url = f'{server.url}/v1/models/{MODEL}/versions/{version}:predict'
    # All photos in one request, then one photo per request, at once (batched together).
    rows = requests.post(url, json={'instances': [_b64(image_bytes[p]) for p in image_paths]},
                         timeout=60).json()['predictions']
    with concurrent.futures.ThreadPoolExecutor(len(image_paths)) as pool:
        replies = list(pool.map(lambda p: requests.post(
            url, json={'instances': [_b64(image_bytes[p])]}, timeout=60), image_paths))
    assert [reply.status_code for reply in replies] == [200] * len(image_paths)
    for answers in (rows, [reply.json()['predictions'][0] for reply in replies]):
        _assert_answers([r[features.PROBABILITIES_OUTPUT] for r in answers],
                        [r[features.CLASS_INDEX_OUTPUT] for r in answers],
                        [r[features.CLASS_NAME_OUTPUT] for r in answers], expected)


def test_grpc_predict_answers_as_the_saved_model(server, exported_models, image_paths,
                                                 image_bytes):
    with grpc.insecure_channel(server.grpc_target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        for version in (1, 2):
            request = predict_pb2.PredictRequest()
            request.model_spec.name = MODEL
            request.model_spec.version.value = version
            request.inputs[features.SERVING_INPUT].CopyFrom(tf.make_tensor_proto(
                [image_bytes[p] for p in image_paths], dtype=tf.string))
            reply = stub.Predict(request, 60.0)
            assert reply.model_spec.version.value == version
            assert reply.model_spec.signature_name == features.SERVING_SIGNATURE
            outputs = {name: tf.make_ndarray(proto) for name, proto in reply.outputs.items()}
            assert sorted(outputs) == sorted([features.PROBABILITIES_OUTPUT,
                                              features.CLASS_INDEX_OUTPUT,
                                              features.CLASS_NAME_OUTPUT])
            assert outputs[features.CLASS_INDEX_OUTPUT].dtype == np.int64
            _assert_answers(outputs[features.PROBABILITIES_OUTPUT],
                            outputs[features.CLASS_INDEX_OUTPUT],
                            outputs[features.CLASS_NAME_OUTPUT],
                            np.stack([exported_models.expected(version)[p]
                                      for p in image_paths]))


def _model_calls(server):
    """{(signature, runtime): calls} from the server's metrics."""
    text = requests.get(f'{server.url}/monitoring/prometheus/metrics', timeout=30).text
    return {(s.labels['signature'], s.labels['runtime']): s.value
            for family in prometheus_parser.text_string_to_metric_families(text)
            for s in family.samples if s.name == f'{metrics.PREDICT_SECONDS}_count'}


def test_each_call_is_counted_under_the_runtime_that_answered(server, image_paths,
                                                             image_bytes):
    tflite = (features.SERVING_SIGNATURE, metrics.RUNTIME_TFLITE)
    saved_model = (features.SERVING_SIGNATURE, metrics.RUNTIME_TENSORFLOW)
    embedding = (features.EMBEDDING_SIGNATURE, metrics.RUNTIME_TENSORFLOW)
    body = {'instances': [_b64(image_bytes[image_paths[0]])]}
    for version, signature, counted in [(1, features.SERVING_SIGNATURE, tflite),
                                        (2, features.SERVING_SIGNATURE, saved_model),
                                        (1, features.EMBEDDING_SIGNATURE, embedding)]:
        before = _model_calls(server)
        reply = requests.post(f'{server.url}/v1/models/{MODEL}/versions/{version}:predict',
                              json=dict(body, signature_name=signature), timeout=60)
        assert reply.status_code == 200, reply.text
        after = _model_calls(server)
        added = {key: after[key] - before.get(key, 0) for key in after
                 if after[key] != before.get(key, 0)}
        assert added == {counted: 1}, (version, signature)


def test_metadata_and_status_are_the_saved_models(server, exported_models):
    with grpc.insecure_channel(server.grpc_target) as channel:
        request = get_model_metadata_pb2.GetModelMetadataRequest()
        request.model_spec.name = MODEL
        request.model_spec.version.value = 1
        request.metadata_field.append('signature_def')
        reply = prediction_service_pb2_grpc.PredictionServiceStub(channel).GetModelMetadata(
            request, 30.0)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        assert reply.metadata['signature_def'].Unpack(signature_map)
        assert dict(signature_map.signature_def) == model_store.read_signature_defs(
            exported_models.image_v1)
        status = get_model_status_pb2.GetModelStatusRequest()
        status.model_spec.name = MODEL
        reply = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(status, 30.0)
    assert [(s.version, s.state, s.status.error_code) for s in reply.model_version_status] == [
        (2, model_store.AVAILABLE, 0), (1, model_store.AVAILABLE, 0)]
    rest = requests.get(f'{server.url}/v1/models/{MODEL}/versions/1', timeout=30).json()
    assert rest == {'model_version_status': [{
        'version': '1', 'state': 'AVAILABLE', 'status': {'error_code': 'OK',
                                                         'error_message': ''}}]}


def test_classify_and_the_other_signatures_run_on_the_saved_model(server, exported_models,
                                                                  image_paths, image_bytes):
    path = image_paths[0]
    reply = requests.post(f'{server.url}/v1/models/{MODEL}/versions/1:classify', json={
        'signature_name': features.EXAMPLES_SIGNATURE,
        'examples': [{features.IMAGE_KEY: _b64(image_bytes[path])}]}, timeout=60)
    assert reply.status_code == 200, reply.text
    scores = [score for _, score in reply.json()['results'][0]]
    np.testing.assert_allclose(scores, exported_models.expected_v1[path], atol=1e-6)
    reply = requests.post(f'{server.url}/v1/models/{MODEL}/versions/1:predict', json={
        'signature_name': features.EMBEDDING_SIGNATURE,
        'instances': [_b64(image_bytes[path])]}, timeout=60)
    assert reply.status_code == 200, reply.text
    np.testing.assert_allclose(reply.json()['predictions'][0][features.PROBABILITIES_OUTPUT],
                               exported_models.expected_v1[path], atol=1e-6)
    with grpc.insecure_channel(server.grpc_target) as channel:
        request = classification_pb2.ClassificationRequest()
        request.model_spec.name = MODEL
        request.model_spec.signature_name = features.EXAMPLES_SIGNATURE
        example = request.input.example_list.examples.add()
        example.features.feature[features.IMAGE_KEY].bytes_list.value.append(image_bytes[path])
        reply = prediction_service_pb2_grpc.PredictionServiceStub(channel).Classify(
            request, 60.0)
    assert len(reply.result.classifications) == 1


def test_an_image_that_does_not_decode_gets_the_saved_models_answer(server, image_paths,
                                                                   image_bytes):
    broken = image_bytes[image_paths[0]][:2000]     # a JPEG cut short
    answers = [requests.post(f'{server.url}/v1/models/{MODEL}/versions/{version}:predict',
                             json={'instances': [_b64(broken)]}, timeout=60)
               for version in (1, 2)]
    assert [a.status_code for a in answers] == [400, 400], [a.text for a in answers]
    assert answers[0].json() == answers[1].json()
    # The server goes on answering from TFLite.
    good = requests.post(f'{server.url}/v1/models/{MODEL}/versions/1:predict',
                         json={'instances': [_b64(image_bytes[image_paths[1]])]}, timeout=60)
    assert good.status_code == 200


# ------------------------------------------------------------- in process


def test_many_threads_share_the_interpreters(exported_models, image_paths, image_bytes):
    servable = model_store.load_servable(MODEL, 1, exported_models.image_v1,
                                         prefer_tflite_model=True, num_tflite_pools=2)
    assert servable.tflite.signatures == [features.SERVING_SIGNATURE]
    assert servable.tflite.pool_size == 2

    def answer(path):
        outputs = servable.tflite.run(features.SERVING_SIGNATURE, {
            features.SERVING_INPUT: np.array([image_bytes[path]], object)})
        return outputs[features.PROBABILITIES_OUTPUT][0]

    paths = image_paths * 4
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(answer, paths))
    np.testing.assert_allclose(answers, [exported_models.expected_v1[p] for p in paths],
                               rtol=0, atol=tflite_check.SERVING_TOLERANCE)


def test_a_model_tflite_that_answers_otherwise_is_not_used(tmp_path, exported_models, caplog):
    """Version 1's model.tflite beside version 2's SavedModel (other weights): the version
    serves from the SavedModel, and the log says why."""
    stale = tmp_path / 'stale'
    shutil.copytree(exported_models.image_v2, stale)
    servable = model_store.load_servable(MODEL, 2, str(stale))    # without the flag
    assert servable.tflite is None
    shutil.copy(os.path.join(exported_models.image_v1, tflite_export.SERVING_FILE), stale)
    with caplog.at_level(logging.WARNING):
        assert tflite_model.load(str(stale), servable.signature_defs, servable.functions) is None
    assert 'does not answer as the SavedModel on a probe image' in caplog.text
    (stale / tflite_export.SERVING_FILE).write_bytes(b'not a flatbuffer')
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert tflite_model.load(str(stale), servable.signature_defs, servable.functions) is None
    assert 'it does not load' in caplog.text


def _delegated(content: bytes) -> bool:
    """Whether XNNPACK took the model's graph (only the interpreter's private op list
    says so: a delegated graph shows DELEGATE nodes)."""
    interpreter = tf.lite.Interpreter(model_content=content, num_threads=1)
    interpreter.allocate_tensors()
    ops = interpreter._get_ops_details()  # pylint: disable=protected-access
    return any(op['op_name'] == 'DELEGATE' for op in ops)


def test_the_label_lookup_leaves_the_graph_so_that_xnnpack_takes_it(exported_models):
    with open(os.path.join(exported_models.image_v1, tflite_export.SERVING_FILE), 'rb') as f:
        content = f.read()
    split, lookups = tflite_model.split_string_lookups(content)
    (name, lookup), = lookups[features.SERVING_SIGNATURE].items()
    assert name == features.CLASS_NAME_OUTPUT
    assert lookup.index_output == features.CLASS_INDEX_OUTPUT
    assert [bytes(value).decode() for value in lookup.table] == list(features.CLASS_NAMES)
    assert lookup(np.array([1, 0])).tolist() == [n.encode() for n in features.CLASS_NAMES[::-1]]
    assert not _delegated(content)        # the string output keeps XNNPACK off
    assert _delegated(split)
    assert tflite_model.split_string_lookups(split) == (split, {})
    assert tflite_model.split_string_lookups(b'not a flatbuffer') == (b'not a flatbuffer', {})


def test_the_direct_invoke_gives_the_signature_runners_numbers(exported_models, image_paths,
                                                              image_bytes):
    """The server's interpreters skip the SignatureRunner where the model allows (the
    Pusher's file once its label lookup is out); the numbers are the same to the bit, for
    one image and for several; the file as it is (a string output) takes the runner."""
    servable = model_store.load_servable(MODEL, 1, exported_models.image_v1)
    with open(os.path.join(exported_models.image_v1, tflite_export.SERVING_FILE), 'rb') as f:
        content = f.read()
    split, _ = tflite_model.split_string_lookups(content)
    key = features.SERVING_SIGNATURE
    for model, direct in ((split, True), (content, False)):
        interpreter = tflite_model.ServedInterpreter(model)
        assert interpreter.direct(key) is direct
        (input_name,) = interpreter.signature_details(key)[0]
        pixels = tflite_export.transformed_images(
            servable.functions[features.TRANSFORM_SIGNATURE],
            [image_bytes[p] for p in image_paths])[input_name]
        expected = tflite_export.run_one_by_one(interpreter, key, input_name, pixels)
        for batch in (pixels[:1], pixels):
            answers = interpreter.run_images(key, input_name, batch)
            assert set(answers) == set(expected)
            for name, value in answers.items():
                assert value.dtype == expected[name].dtype
                np.testing.assert_array_equal(value, expected[name][:len(batch)])


def test_a_shared_decode_gives_each_call_its_own_pixels_or_error(exported_models, image_paths,
                                                                 image_bytes):
    """Calls that wait together share one transform_features call; its pixels are those of
    one call each, and a bad image fails only its own call."""
    servable = model_store.load_servable(MODEL, 1, exported_models.image_v1)
    transform = servable.functions[features.TRANSFORM_SIGNATURE]
    alone = {p: tflite_export.transformed_images(transform, [image_bytes[p]]) for p in image_paths}
    sizes, release = [], threading.Event()

    def decode(images):   # the real decode, held on its first call until the others wait
        sizes.append(len(images))
        if len(sizes) == 1:
            release.wait(120)
        return tflite_export.transformed_images(transform, images)

    broken = image_bytes[image_paths[0]][:2000]     # a JPEG cut short
    for others in ([image_bytes[p] for p in image_paths[1:]],
                   [image_bytes[p] for p in image_paths[1:]] + [broken]):
        sizes.clear()
        release.clear()
        decoder = tflite_model.SharedDecoder(decode, ahead=100)
        with concurrent.futures.ThreadPoolExecutor(len(others) + 1) as pool:
            first = pool.submit(decoder.outputs, [image_bytes[image_paths[0]]])
            while not sizes:
                time.sleep(0.01)
            rest = [pool.submit(decoder.outputs, [image]) for image in others]
            while decoder.waiting < len(others):
                time.sleep(0.01)
            release.set()
            answers = [first] + rest
            results = [a.exception(120) or a.result() for a in answers]
        assert sizes[:2] == [1, len(others)]
        for path, result in zip(image_paths, results):
            for output, value in alone[path].items():
                np.testing.assert_array_equal(result[output], value)
        if others[-1] is broken:
            assert isinstance(results[-1], tf.errors.OpError)
            assert sizes[2:] == [1] * len(others)     # then each call's images on their own
