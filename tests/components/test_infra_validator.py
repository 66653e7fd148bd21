"""InfraValidator: the candidate in our real server (a child process on 127.0.0.1).

A good model is blessed with its p50 latency; a model dir the server cannot load, a
serving signature that raises, and a load that takes longer than allowed are not
blessed, each with its reason in one line; the server is stopped every time, and
dies with the process that started it when that one is killed with SIGKILL. The Pusher refuses a
model without an InfraBlessing, or with one that is not blessed.
"""

import json
import os
import signal
import subprocess
import sys

import psutil
import pytest
import tensorflow as tf
from tfx.types import standard_artifacts
from tfx.utils import io_utils

from components import examples_io
from components.image_pusher import component as pusher_component
from components.infra_validator import checks
from components.infra_validator import component
from components.infra_validator import executor
from components.infra_validator import spec
from models import eval_answers
from models import features
from tests import data
from tests.components import test_image_pusher
from tests.serving import server_process
from tests.serving import standin_model

CLASS_NAMES = features.CLASS_NAMES
PHOTOS = [p for label in CLASS_NAMES for p in data.photos('validation', label, 3)]
SERVER_MODULE = 'serving.server'


def _relative(photo) -> str:
    return f'{photo.parent.name}/{photo.name}'


def write_inputs(folder: str, model_dir: str, answered_by: str = None) -> None:
    """The executor's input artifacts' files under `folder`: the model, the eval examples
    with labels.txt, and the Trainer's eval_answers.json for them, computed by running the
    model `answered_by` (default: the model itself) in this process."""
    io_utils.copy_dir(model_dir, os.path.join(folder, 'model', 'Format-Serving'))
    examples = os.path.join(folder, 'examples')
    os.makedirs(os.path.join(examples, 'Split-eval'))
    with open(os.path.join(examples, examples_io.CLASS_NAMES_FILE), 'w') as f:
        f.write('\n'.join(CLASS_NAMES) + '\n')
    with tf.io.TFRecordWriter(os.path.join(examples, 'Split-eval', 'data.gz'),
                              options='GZIP') as writer:
        for photo in PHOTOS:
            writer.write(tf.train.Example(features=tf.train.Features(feature={
                features.IMAGE_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(
                    value=[photo.read_bytes()])),
                features.PATH_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(
                    value=[_relative(photo).encode()])),
            })).SerializeToString())
    serve = tf.saved_model.load(answered_by or model_dir).signatures[features.SERVING_SIGNATURE]
    probabilities = serve(tf.constant([p.read_bytes() for p in PHOTOS]))[
        features.PROBABILITIES_OUTPUT].numpy()
    labels = [CLASS_NAMES.index(p.parent.name) for p in PHOTOS]
    paths = [_relative(p).encode() for p in PHOTOS]
    eval_answers.save(eval_answers.summarize(probabilities, labels, paths, CLASS_NAMES),
                      os.path.join(folder, 'model_run'))


def validate(folder: str, **properties):
    """Runs the executor on the inputs in `folder`; returns the InfraBlessing."""
    inputs = {}
    for key, artifact_type in ((spec.MODEL_KEY, standard_artifacts.Model),
                               (spec.MODEL_RUN_KEY, standard_artifacts.ModelRun),
                               (spec.EXAMPLES_KEY, standard_artifacts.Examples)):
        artifact = artifact_type()
        artifact.uri = os.path.join(folder, key)
        inputs[key] = [artifact]
    blessing = standard_artifacts.InfraBlessing()
    blessing.uri = os.path.join(folder, 'blessing')
    exec_properties = {spec.MODEL_NAME_KEY: 'cats_dogs', spec.WARMUP_IMAGES_KEY: 2,
                       spec.SAMPLE_IMAGES_KEY: len(PHOTOS),
                       spec.PROBABILITY_TOLERANCE_KEY: 1e-4, spec.LOAD_TIMEOUT_KEY: 300.0,
                       spec.REQUEST_TIMEOUT_KEY: 30.0, **properties}
    executor.Executor().Do(inputs, {spec.BLESSING_KEY: [blessing]}, exec_properties)
    return blessing


def _servers():
    """Model servers started by this process (its children), alive or zombie."""
    return [p for p in psutil.Process().children(recursive=True)
            if SERVER_MODULE in ' '.join(p.cmdline())]


def _result(blessing):
    return spec.read_result(blessing.uri)


@pytest.fixture(scope='module')
def model_dir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp('model') / 'export')
    standin_model.export_image_model(path, bias=(0.3, 0.0))
    return path


class _RaisingModel(tf.Module):
    """The serving contract's signature, which fails on every call."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string,
                                                name=features.SERVING_INPUT)])
    def serve(self, image_bytes):
        tf.debugging.assert_equal(tf.size(image_bytes), -1,
                                  message='this signature is broken on purpose')
        batch = tf.size(image_bytes)
        return {features.PROBABILITIES_OUTPUT: tf.fill([batch, 2], 0.5),
                features.CLASS_INDEX_OUTPUT: tf.zeros([batch], tf.int64),
                features.CLASS_NAME_OUTPUT: tf.fill([batch], 'cats')}


def test_a_model_the_server_answers_as_trained_is_blessed(tmp_path, model_dir):
    folder = str(tmp_path / 'run')
    write_inputs(folder, model_dir)
    blessing = validate(folder)
    result = _result(blessing)
    assert result['blessed'] is True and result['reason'] is None, result['reason']
    assert blessing.get_int_custom_property('blessed') == 1
    assert os.path.isfile(os.path.join(blessing.uri, spec.BLESSED_FILE))
    assert result['images'] == len(PHOTOS) and result['warmup_requests'] == 2
    assert [a['path'] for a in result['answers']] == [_relative(p) for p in PHOTOS]
    assert result['max_probability_difference'] <= 1e-4
    assert blessing.get_float_custom_property(spec.P50_LATENCY_PROPERTY) == pytest.approx(
        result['p50_latency_ms']) and result['p50_latency_ms'] > 0
    assert len(result['latencies_ms']) == len(PHOTOS)
    # The server replayed the warmup file the executor wrote into its copy, stopped on
    # SIGTERM (exit 0), and the copy is gone; its log is kept.
    log = open(os.path.join(blessing.uri, spec.SERVER_LOG_FILE)).read()
    assert 'warmup' in log.lower()
    assert result['server_exit_code'] == 0 and _servers() == []
    assert not os.path.exists(os.path.join(blessing.uri, 'scratch'))


def test_a_model_dir_the_server_cannot_load_is_not_blessed(tmp_path, model_dir):
    folder = str(tmp_path / 'run')
    write_inputs(folder, model_dir)
    # The candidate's graph overwritten with bytes that are no SavedModel.
    with open(os.path.join(folder, 'model', 'Format-Serving', 'saved_model.pb'), 'wb') as f:
        f.write(b'not a SavedModel')
    blessing = validate(folder)
    assert blessing.get_int_custom_property('blessed') == 0
    assert os.path.isfile(os.path.join(blessing.uri, spec.NOT_BLESSED_FILE))
    reason = spec.reason(blessing)
    assert reason.startswith('the server could not load the model: '), reason
    assert '\n' not in reason and spec.SERVER_LOG_FILE in reason
    assert _servers() == []


def test_a_serving_signature_that_raises_is_not_blessed(tmp_path, model_dir):
    broken = str(tmp_path / 'broken')
    module = _RaisingModel()
    tf.saved_model.save(module, broken, signatures={features.SERVING_SIGNATURE: module.serve})
    folder = str(tmp_path / 'run')
    write_inputs(folder, broken, answered_by=model_dir)
    # No warmup file: the server loads it, and the first request fails.
    blessing = validate(folder, **{spec.WARMUP_IMAGES_KEY: 0})
    reason = spec.reason(blessing)
    assert blessing.get_int_custom_property('blessed') == 0
    assert reason.startswith(':predict answered HTTP 400: '), reason
    assert 'this signature is broken on purpose' in reason and '\n' not in reason
    assert _servers() == []


def test_a_load_slower_than_allowed_is_not_blessed_and_the_server_is_stopped(tmp_path,
                                                                             model_dir):
    folder = str(tmp_path / 'run')
    write_inputs(folder, model_dir)
    blessing = validate(folder, **{spec.LOAD_TIMEOUT_KEY: 0.5})
    assert blessing.get_int_custom_property('blessed') == 0
    assert spec.reason(blessing).startswith('the model was not AVAILABLE within 0.5 s')
    assert _result(blessing)['server_exit_code'] is not None and _servers() == []


def test_the_server_dies_with_the_process_that_started_it(tmp_path, model_dir):
    # A process that starts the server as the executor does, then is killed with SIGKILL
    # (no finally block runs): the kernel kills the server too.
    base = tmp_path / 'cats_dogs'
    server_process.copy_version(model_dir, base, 1)
    code = ('import sys, time; from components.infra_validator import model_server; '
            'model_server.ModelServer("cats_dogs", sys.argv[1], sys.argv[2]).start(); '
            'time.sleep(600)')
    starter = subprocess.Popen(  # pylint: disable=consider-using-with
        [sys.executable, '-c', code, str(base), str(tmp_path / 'server.log')],
        cwd=data.PROJECT_ROOT, env=server_process.subprocess_env())
    server = None
    try:
        parent = psutil.Process(starter.pid)
        [server] = server_process.wait_for(
            lambda: [p for p in parent.children() if SERVER_MODULE in ' '.join(p.cmdline())],
            timeout=120, interval=0.05, what='the model server to start')
        # In a process group of its own: a signal to the starter's group misses it.
        assert os.getpgid(server.pid) != os.getpgid(starter.pid)
        starter.send_signal(signal.SIGKILL)
        starter.wait(timeout=30)
        psutil.wait_procs([server], timeout=30)
        assert not server.is_running(), 'the model server outlived the killed process'
    finally:
        if starter.poll() is None:
            starter.kill()
            starter.wait()
        if server is not None and server.is_running():
            server.kill()


def test_answers_are_compared_by_class_and_probability():
    trained = [checks.Answer('a.jpg', 'cats', [0.9, 0.1]), checks.Answer('b.jpg', 'dogs',
                                                                         [0.4, 0.6])]
    same = [checks.Answer('a.jpg', 'cats', [0.90004, 0.09996]),
            checks.Answer('b.jpg', 'dogs', [0.4, 0.6])]
    assert checks.compare(trained, same, 1e-4) == []
    drifted = [checks.Answer('a.jpg', 'cats', [0.8, 0.2]), checks.Answer('b.jpg', 'cats',
                                                                         [0.51, 0.49])]
    wrong = checks.compare(trained, drifted, 1e-4)
    assert [m.trained.path for m in wrong] == ['a.jpg', 'b.jpg']
    assert checks.mismatch_reason(wrong, 2, 1e-4) == (
        'the server answered 2 of 2 eval images otherwise than the Trainer (same class and '
        'probabilities within 0.0001 expected): a.jpg: served cats 0.8000, trained cats '
        '0.9000 (probabilities differ by up to 0.1) (and 1 more)')
    assert checks.p50_ms([0.010, 0.030, 0.020]) == pytest.approx(20.0)
    # The served row must hold the contract's outputs and agree with itself.
    row = {'probabilities': [0.2, 0.8], 'class_index': 1, 'label': 'dogs'}
    assert checks.served_answer('b.jpg', row, CLASS_NAMES).class_name == 'dogs'
    with pytest.raises(ValueError, match='contradicts itself'):
        checks.served_answer('b.jpg', dict(row, label='cats'), CLASS_NAMES)
    with pytest.raises(ValueError, match='has no class_index'):
        checks.served_answer('b.jpg', {'probabilities': [0.2, 0.8], 'label': 'dogs'},
                             CLASS_NAMES)


def test_the_pusher_refuses_a_model_without_an_infra_blessing(tmp_path, model_dir):
    # In the pipeline: the Pusher cannot be built without the InfraValidator's channel.
    with pytest.raises(TypeError, match='infra_blessing'):
        pusher_component.ImagePusher(  # pylint: disable=missing-kwoa
            model=None, model_blessing=None, base_directory=str(tmp_path), model_name='m')
    base = str(tmp_path / 'serving' / 'cats_dogs')
    for name, infra_blessed in (('none', None), ('not_blessed', False)):
        folder = str(tmp_path / name)
        test_image_pusher.write_inputs(folder, model_dir)
        pushed, pushed_blessing = test_image_pusher.push(folder, base, blessed=True,
                                                         infra_blessed=infra_blessed)
        assert pushed.get_int_custom_property('pushed') == 0
        assert pushed_blessing.get_int_custom_property('blessed') == 0
        with open(os.path.join(pushed.uri, 'push_result.json')) as f:
            reason = json.load(f)['reason']
        assert reason == ('no InfraBlessing: the model was never loaded in a server (the '
                          "Pusher needs the InfraValidator's blessing)" if infra_blessed is None
                          else 'the InfraValidator did not bless it: the server could not '
                          'load the model: broken')
    assert not os.path.exists(base)


def test_the_component_checks_its_settings():
    with pytest.raises(ValueError, match='sample_images'):
        component.InfraValidator(model=None, model_run=None, examples=None, model_name='m',
                                 warmup_images=1, sample_images=0, probability_tolerance=0.0,
                                 load_timeout_seconds=1.0, request_timeout_seconds=1.0)
