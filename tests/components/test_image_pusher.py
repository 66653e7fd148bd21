"""ImagePusher: atomic versions, no duplicate push, warmup, labels, not-pushed reason;
publishing is the last step (a full disk or a later failure leaves nothing new served);
staging folders of pushes that died are removed at once."""

import json
import logging
import os
import subprocess
import sys
import time

import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2
from tfx.proto import pusher_pb2
from tfx.types import standard_artifacts
from tfx.utils import io_utils
from tfx.utils import proto_utils

from components import artifacts
from components.image_pusher import executor
from components.image_pusher import spec
from components.image_pusher import staging
from models import export
from models import features
from models import tflite_export
from runlog import progress
from serving_formats import version_labels as labels
from tests import data
from tests import small_disk
from tests.serving import server_process
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

    def prepare(staged):
        # While preparing, the version folder does not exist yet.
        seen.append((os.path.basename(staged), os.path.exists(os.path.join(base, '7'))))

    target = executor.publish(model_dir, base, 7, prepare=prepare)
    assert target == os.path.join(base, '7')
    assert staging.is_staging(seen[0][0]) and seen[0][1] is False
    # The staging folder's name says who wrote it: this process.
    writer, me = staging.writer_of(seen[0][0]), staging.this_process()
    assert (writer.pid, writer.host) == (me.pid, me.host) and staging.is_alive(writer)
    assert sorted(os.listdir(target)) == sorted(os.listdir(model_dir))
    assert os.listdir(base) == ['7']
    with pytest.raises(FileExistsError):
        executor.publish(model_dir, base, 7)

    def fail(staged):
        raise RuntimeError('disk full')

    with pytest.raises(RuntimeError, match='disk full'):
        executor.publish(model_dir, base, 8, prepare=fail)
    assert os.listdir(base) == ['7']  # no version 8, no staging left behind

    executor.withdraw(base, 7)
    assert os.listdir(base) == []


def _name_made_by_a_process_that_ended(version: int) -> str:
    """A staging name made by a real process, which has ended since."""
    result = subprocess.run(
        [sys.executable, '-c', 'import sys; from components.image_pusher import staging; '
                               'print(staging.staging_name(int(sys.argv[1])))', str(version)],
        capture_output=True, text=True, check=True, timeout=120, cwd=data.PROJECT_ROOT,
        env=server_process.subprocess_env())
    return result.stdout.strip().splitlines()[-1]


def test_staging_folders_of_writers_that_are_gone_are_removed_at_once(tmp_path):
    me = staging.this_process()
    gone = _name_made_by_a_process_that_ended(1)
    reused_pid = staging.staging_name(2, staging.Writer(me.pid, me.host, me.start - 60))
    mine = staging.staging_name(3)
    elsewhere = staging.staging_name(4, staging.Writer(1, 'another-host', 0.0))
    old_elsewhere = staging.staging_name(5, staging.Writer(1, 'another-host', 0.0))
    unnamed_old, unnamed_fresh = '.staging-6-aaaa', '.staging-7-bbbb'
    for name in (gone, reused_pid, mine, elsewhere, old_elsewhere, unnamed_old, unnamed_fresh):
        (tmp_path / name).mkdir()
    assert staging.is_alive(staging.writer_of(gone)) is False
    assert staging.is_alive(staging.writer_of(elsewhere)) is None
    long_ago = time.time() - 2 * staging.STALE_STAGING_SECONDS
    for name in (old_elsewhere, unnamed_old):
        os.utime(tmp_path / name, (long_ago, long_ago))
    removed = staging.remove_abandoned(str(tmp_path))
    assert sorted(removed) == sorted(str(tmp_path / n) for n in (
        gone, reused_pid, old_elsewhere, unnamed_old))
    assert sorted(os.listdir(tmp_path)) == sorted([mine, elsewhere, unnamed_fresh])


def write_inputs(folder, model_dir):
    """The Pusher's input artifacts' files under `folder`: the model and eval examples."""
    io_utils.copy_dir(model_dir, os.path.join(folder, 'model_artifact', 'Format-Serving'))
    split = os.path.join(folder, 'examples', 'Split-eval')
    os.makedirs(split)
    with tf.io.TFRecordWriter(os.path.join(split, 'data.gz'), options='GZIP') as writer:
        for photo in data.photos('validation', 'cats', 2):
            writer.write(tf.train.Example(features=tf.train.Features(feature={
                features.IMAGE_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(
                    value=[photo.read_bytes()]))})).SerializeToString())


def _input_artifacts(folder, blessed, infra_blessed):
    model = standard_artifacts.Model()
    model.uri = os.path.join(folder, 'model_artifact')
    model.id = 42
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = os.path.join(folder, 'blessing')
    blessing.set_int_custom_property('blessed', int(blessed))
    examples = standard_artifacts.Examples()
    examples.uri = os.path.join(folder, 'examples')
    inputs = {'model': [model], 'model_blessing': [blessing], 'examples': [examples]}
    if infra_blessed is not None:
        infra_blessing = standard_artifacts.InfraBlessing()
        infra_blessing.set_int_custom_property('blessed', int(infra_blessed))
        if not infra_blessed:
            infra_blessing.set_string_custom_property(
                'not_blessed_reason', 'the server could not load the model: broken')
        inputs['infra_blessing'] = [infra_blessing]
    return inputs


def push(folder, base, *, blessed, pushed_uri=None, infra_blessed=True, **properties):
    """Runs the Pusher's executor on the inputs in `folder`; returns its two outputs.
    infra_blessed: the InfraValidator's blessing (None: no InfraBlessing).

    Writes nothing itself (a test may limit what this process can write)."""
    pushed = standard_artifacts.PushedModel()
    pushed.uri = pushed_uri or os.path.join(folder, 'pushed_model')
    pushed_blessing = artifacts.PushedModelBlessing()
    pushed_blessing.uri = os.path.join(folder, 'pushed_blessing')
    exec_properties = {
        'push_destination': proto_utils.proto_to_json(pusher_pb2.PushDestination(
            filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=base))),
        spec.MODEL_NAME_KEY: 'cats_dogs', spec.WARMUP_IMAGES_KEY: 2, **properties}
    executor.Executor().Do(_input_artifacts(folder, blessed, infra_blessed),
                           {'pushed_model': [pushed], 'pushed_blessing': [pushed_blessing]},
                           exec_properties)
    return pushed, pushed_blessing


def _run(tmp_path, model_dir, *, blessed, name, **properties):
    folder = str(tmp_path / name)
    write_inputs(folder, model_dir)
    base = str(tmp_path / 'serving' / 'cats_dogs')
    return push(folder, base, blessed=blessed, **properties) + (base,)


def test_blessed_model_is_pushed_with_warmup_and_canary_label(tmp_path, model_dir):
    config_file = str(tmp_path / 'models.config')
    pushed, blessing, base = _run(tmp_path, model_dir, blessed=True, name='push1',
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
        result = json.load(f)
    assert result['version'] == version and result[spec.NEW_VERSION_FIELD] is True
    # The blessing the next run's baseline resolver reads: this model, pushed.
    assert blessing.get_int_custom_property('blessed') == 1
    assert blessing.get_int_custom_property('current_model_id') == 42
    assert os.path.isfile(os.path.join(blessing.uri, 'BLESSED'))

    # The same model again (a re-run): no second copy.
    again, _, _ = _run(tmp_path, model_dir, blessed=True, name='push2')
    assert again.get_string_custom_property('pushed_version') == str(version)
    assert executor.existing_versions(base) == [version]
    with open(os.path.join(again.uri, spec.PUSH_RESULT_FILE)) as f:
        assert json.load(f)[spec.NEW_VERSION_FIELD] is False


def test_a_model_that_cannot_be_converted_is_pushed_without_model_tflite(tmp_path, model_dir,
                                                                        caplog):
    """The stand-in export has no pixels function to convert: the push goes on, served
    from the SavedModel, and a console line says why. (The pipeline's pushed model has its
    model.tflite: tests/serving/test_tflite_serving.py.)"""
    with caplog.at_level(logging.WARNING, logger=progress.LOGGER_NAME):
        pushed, _, base = _run(tmp_path, model_dir, blessed=True, name='push')
    version = pushed.get_string_custom_property('pushed_version')
    assert pushed.get_int_custom_property('pushed') == 1
    assert os.path.isfile(os.path.join(base, version, 'saved_model.pb'))
    assert not os.path.exists(os.path.join(base, version, tflite_export.SERVING_FILE))
    [line] = [r.getMessage() for r in caplog.records if r.name == progress.LOGGER_NAME]
    assert line.startswith(f'{tflite_export.SERVING_FILE} not written (--prefer_tflite_model '
                           'will serve this version from the SavedModel): ValueError: '), line
    assert f'has no {export.PIXELS_FUNCTION} function' in line, line


def test_unblessed_model_is_not_pushed_and_says_why(tmp_path, model_dir):
    pushed, blessing, base = _run(tmp_path, model_dir, blessed=False, name='push')
    assert pushed.get_int_custom_property('pushed') == 0
    assert blessing.get_int_custom_property('blessed') == 0
    assert not os.path.exists(base)
    with open(os.path.join(pushed.uri, spec.PUSH_RESULT_FILE)) as f:
        assert json.load(f) == {'pushed': False,
                                'reason': 'the model was not blessed by the Evaluator'}


def _served(base):
    """What a server sees: each version folder's files and their sizes; and hidden folders."""
    return {name: sorted((os.path.relpath(os.path.join(root, f), base),
                          os.path.getsize(os.path.join(root, f)))
                         for root, _, files in os.walk(os.path.join(base, name)) for f in files)
            for name in os.listdir(base)}


def test_a_full_disk_stops_the_push_before_anything_is_served(tmp_path, model_dir):
    base = str(tmp_path / 'serving' / 'cats_dogs')
    older = str(tmp_path / 'older')
    standin_model.export_image_model(older, seed=1)
    executor.publish(older, base, 1)
    before = _served(base)
    folder = str(tmp_path / 'push')
    write_inputs(folder, model_dir)
    model_bytes = sum(os.path.getsize(os.path.join(root, f))
                      for root, _, files in os.walk(model_dir) for f in files)
    code = ('import sys; from tests.components import test_image_pusher as t; '
            't.push(sys.argv[1], sys.argv[2], blessed=True, pushed_uri=sys.argv[3])')

    def push_in_subprocess(pushed_uri, **popen):
        return subprocess.run([sys.executable, '-c', code, folder, base, pushed_uri],
                              capture_output=True, text=True, timeout=300,
                              cwd=data.PROJECT_ROOT, env=server_process.subprocess_env(),
                              **popen)

    try:
        # The Pusher's own output on a file system with room for half the model.
        with small_disk.tmpfs(tmp_path / 'small', model_bytes // 2) as small:
            result = push_in_subprocess(str(small / 'pushed_model'))
        expected = 'No space left on device'
    except small_disk.MountForbidden as e:
        # Mounting is forbidden here: the same push with every file capped below the
        # model's graph (RLIMIT_FSIZE), so its first copy fails.
        print(f'no tmpfs ({e}); writes capped with RLIMIT_FSIZE instead')
        result = push_in_subprocess(str(tmp_path / 'pushed_model'),
                                    preexec_fn=small_disk.limit_file_size(model_bytes // 4))
        expected = 'File too large'
    assert result.returncode != 0
    assert expected in result.stderr, result.stderr[-3000:]
    assert _served(base) == before   # no new version, no staging folder


def test_a_failure_after_publishing_withdraws_the_version(tmp_path, model_dir):
    blocker = tmp_path / 'not_a_folder'
    blocker.write_text('a file where the folder of the model config file should be')
    with pytest.raises(OSError):
        _run(tmp_path, model_dir, blessed=True, name='push', version_label='canary',
             model_config_file=str(blocker / 'models.config'))
    base = str(tmp_path / 'serving' / 'cats_dogs')
    # The version was published, then the label failed: it is gone again, whole.
    assert os.listdir(base) == []
