"""ImagePusher: atomic versions, no duplicate push, warmup, labels, not-pushed reason."""

import json
import os
import time

import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2
from tfx.proto import pusher_pb2
from tfx.types import standard_artifacts
from tfx.utils import io_utils
from tfx.utils import proto_utils

from components.image_pusher import executor
from components.image_pusher import spec
from models import features
from tfserving import version_labels as labels
from tests import data
from tests.serving import standin_model


@pytest.fixture(scope='module')
def model_dir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp('model') / 'export')
    standin_model.export_image_model(path)
    return path


def test_next_version_is_now_or_after_the_newest(tmp_path):
    assert executor.next_version(str(tmp_path / 'none'), now=1000.7) == 1000
    for name in ('5', '2000', 'not_a_version', '.staging-3000-x'):
        (tmp_path / name).mkdir()
    assert executor.existing_versions(str(tmp_path)) == [5, 2000]
    assert executor.next_version(str(tmp_path), now=1000) == 2001
    assert executor.next_version(str(tmp_path), now=3000) == 3000


def test_publish_appears_whole_or_not_at_all(tmp_path, model_dir):
    base = str(tmp_path / 'serving' / 'm')
    seen = []

    def prepare(staging):
        # While preparing, the version folder does not exist yet.
        seen.append((os.path.basename(staging), os.path.exists(os.path.join(base, '7'))))

    target = executor.publish(model_dir, base, 7, prepare=prepare)
    assert target == os.path.join(base, '7')
    assert seen[0][0].startswith(executor.STAGING_PREFIX) and seen[0][1] is False
    assert sorted(os.listdir(target)) == sorted(os.listdir(model_dir))
    assert os.listdir(base) == ['7']
    with pytest.raises(FileExistsError):
        executor.publish(model_dir, base, 7)

    def fail(staging):
        raise RuntimeError('disk full')

    with pytest.raises(RuntimeError, match='disk full'):
        executor.publish(model_dir, base, 8, prepare=fail)
    assert os.listdir(base) == ['7']  # no version 8, no staging left behind


def test_stale_staging_is_removed(tmp_path):
    old, fresh = tmp_path / '.staging-1-aaaa', tmp_path / '.staging-2-bbbb'
    old.mkdir()
    fresh.mkdir()
    hour_ago = time.time() - 2 * executor.STALE_STAGING_SECONDS
    os.utime(old, (hour_ago, hour_ago))
    assert executor.remove_stale_staging(str(tmp_path)) == [str(old)]
    assert sorted(os.listdir(tmp_path)) == [fresh.name]


def _artifacts(tmp_path, model_dir, blessed):
    model = standard_artifacts.Model()
    model.uri = str(tmp_path / 'model_artifact')
    io_utils.copy_dir(model_dir, os.path.join(model.uri, 'Format-Serving'))
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = str(tmp_path / 'blessing')
    blessing.set_int_custom_property('blessed', int(blessed))
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / 'examples')
    split = os.path.join(examples.uri, 'Split-eval')
    os.makedirs(split)
    with tf.io.TFRecordWriter(os.path.join(split, 'data.gz'), options='GZIP') as writer:
        for photo in data.photos('validation', 'cats', 2):
            writer.write(tf.train.Example(features=tf.train.Features(feature={
                features.IMAGE_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(
                    value=[photo.read_bytes()]))})).SerializeToString())
    return {'model': [model], 'model_blessing': [blessing], 'examples': [examples]}


def _run(tmp_path, model_dir, *, blessed, name, **properties):
    pushed = standard_artifacts.PushedModel()
    pushed.uri = str(tmp_path / name)
    base = str(tmp_path / 'serving' / 'cats_dogs')
    exec_properties = {
        'push_destination': proto_utils.proto_to_json(pusher_pb2.PushDestination(
            filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=base))),
        spec.MODEL_NAME_KEY: 'cats_dogs', spec.WARMUP_IMAGES_KEY: 2, **properties}
    executor.Executor().Do(_artifacts(tmp_path / name, model_dir, blessed),
                           {'pushed_model': [pushed]}, exec_properties)
    return pushed, base


def test_blessed_model_is_pushed_with_warmup_and_canary_label(tmp_path, model_dir):
    config_file = str(tmp_path / 'models.config')
    pushed, base = _run(tmp_path, model_dir, blessed=True, name='push1',
                        version_label='canary', model_config_file=config_file)
    version = int(pushed.get_string_custom_property('pushed_version'))
    assert pushed.get_int_custom_property('pushed') == 1
    assert executor.existing_versions(base) == [version]
    warmup = os.path.join(base, str(version), 'assets.extra', 'tf_serving_warmup_requests')
    records = [prediction_log_pb2.PredictionLog.FromString(r.numpy())
               for r in tf.data.TFRecordDataset(warmup)]
    assert len(records) == 2
    assert records[0].predict_log.request.model_spec.name == 'cats_dogs'
    assert labels.labels_of(config_file, 'cats_dogs') == {'canary': version, 'stable': version}
    with open(os.path.join(pushed.uri, spec.PUSH_RESULT_FILE)) as f:
        assert json.load(f)['version'] == version

    # The same model again (a re-run): no second copy.
    again, _ = _run(tmp_path, model_dir, blessed=True, name='push2')
    assert again.get_string_custom_property('pushed_version') == str(version)
    assert executor.existing_versions(base) == [version]


def test_unblessed_model_is_not_pushed_and_says_why(tmp_path, model_dir):
    pushed, base = _run(tmp_path, model_dir, blessed=False, name='push')
    assert pushed.get_int_custom_property('pushed') == 0
    assert not os.path.exists(base)
    with open(os.path.join(pushed.uri, spec.PUSH_RESULT_FILE)) as f:
        assert json.load(f) == {'pushed': False,
                                'reason': 'the model was not blessed by the Evaluator'}
