"""Rollback (serving_formats/rollback.py): the previous or a named version serves again while
the server runs, recorded in the model config file so that the next push keeps it.

A real server with --model_config_file and a 1 s config poll serves two clients while
`python -m serving_formats.rollback` moves it back, the Pusher pushes a newer version, and
`--unpin` serves the newest again: no request fails, and the answers follow.
"""

import json
import os
import subprocess
import sys
import time

import pytest

from components.image_pusher import executor as pusher
from components.image_pusher import spec as pusher_spec
from serving_formats import rollback
from serving_formats import version_labels
from tests import data
from tests.components import test_image_pusher
from tests.serving import server_process
from tests.serving import standin_model

MODEL = 'cats_dogs'
# The stand-in models' logit biases: every photo a cat, or every photo a dog.
CAT, DOG = (3.0, 0.0), (0.0, 3.0)


def _export(folder, bias, seed=0) -> str:
    standin_model.export_image_model(str(folder), bias=bias, seed=seed)
    return str(folder)


def _base_with_versions(tmp_path, *versions):
    base = tmp_path / 'serving' / MODEL
    for version in versions:
        pusher.publish(_export(tmp_path / f'export{version}', CAT), str(base), version)
    return base


def _config(tmp_path, base, **model_fields) -> str:
    path = str(tmp_path / 'models.config')
    version_labels.ensure_model(path, MODEL, str(base))
    config = version_labels.read_config(path)
    model = config.model_config_list.config[0]
    for label, version in model_fields.get('labels', {}).items():
        model.version_labels[label] = version
    if 'specific' in model_fields:
        model.model_version_policy.specific.versions.extend(model_fields['specific'])
    version_labels.write_config(path, config)
    return path


def _model(path):
    return version_labels.read_config(path).model_config_list.config[0]


def test_rollback_pins_the_previous_or_a_named_version(tmp_path):
    base = _base_with_versions(tmp_path, 1, 2, 3)
    path = _config(tmp_path, base)
    done = rollback.rollback(path, MODEL)
    assert (done.served_before, done.pinned, done.moved_labels) == (3, 2, {})
    model = _model(path)
    assert list(model.model_version_policy.specific.versions) == [2]
    assert dict(model.version_labels) == {rollback.PIN_LABEL: 2}
    assert rollback.pinned_version(path, MODEL) == 2
    # Again: one further back, from the pinned version.
    assert rollback.rollback(path, MODEL).pinned == 1
    with pytest.raises(ValueError, match='no version older than 1'):
        rollback.rollback(path, MODEL)
    assert rollback.rollback(path, MODEL, 3).pinned == 3
    with pytest.raises(ValueError, match=r'no complete version 9 .*\[1, 2, 3\]'):
        rollback.rollback(path, MODEL, 9)
    # Nothing was deleted.
    assert pusher.existing_versions(str(base)) == [1, 2, 3]
    assert rollback.describe(path, MODEL) == (
        f'{MODEL}: serving [3]; pinned to version 3 (undo: python -m serving_formats.rollback '
        f'--config {path} --model {MODEL} --unpin); versions on disk: [1, 2, 3]')
    assert rollback.unpin(path, MODEL) == 3
    model = _model(path)
    assert not model.HasField('model_version_policy') and not model.version_labels
    assert rollback.pinned_version(path, MODEL) is None


def test_rollback_moves_version_labels_with_it(tmp_path):
    base = _base_with_versions(tmp_path, 1, 2, 3)
    path = _config(tmp_path, base, labels={'stable': 2, 'canary': 3}, specific=[2, 3])
    done = rollback.rollback(path, MODEL)
    # The served version was 3 (the newest the policy serves); every label follows the
    # pin, because TF Serving refuses a label on a version it does not serve.
    assert (done.served_before, done.pinned, done.moved_labels) == (3, 2, {'canary': 3})
    assert dict(_model(path).version_labels) == {'stable': 2, 'canary': 2, 'pinned': 2}
    rollback.unpin(path, MODEL)
    model = _model(path)
    assert dict(model.version_labels) == {'stable': 2, 'canary': 2}
    assert sorted(model.model_version_policy.specific.versions) == [2, 3]


def test_a_server_without_a_config_file_needs_one_first(tmp_path, capsys):
    base = _base_with_versions(tmp_path, 1, 2)
    path = str(tmp_path / 'models.config')
    assert rollback.main(['--config', path, '--model', MODEL]) == 1
    assert '--base_path' in capsys.readouterr().err and not os.path.exists(path)
    assert rollback.main(['--config', path, '--model', MODEL, '--base_path', str(base)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f'{MODEL}: rolled back to version 1 (was 2); pinned: ')
    assert _model(path).base_path == str(base)


def test_a_push_keeps_the_pin(tmp_path):
    base = _base_with_versions(tmp_path, 1, 2)
    path = _config(tmp_path, base, labels={'stable': 2, 'canary': 2}, specific=[2])
    rollback.rollback(path, MODEL)
    before = open(path).read()
    folder = str(tmp_path / 'push')
    test_image_pusher.write_inputs(folder, _export(tmp_path / 'new', DOG, seed=3))
    pushed, _ = test_image_pusher.push(folder, str(base), blessed=True, version_label='canary',
                                       model_config_file=path)
    version = int(pushed.get_string_custom_property('pushed_version'))
    # Written, not labelled, not served: the config file is untouched.
    assert pusher.existing_versions(str(base)) == [1, 2, version]
    assert open(path).read() == before and rollback.pinned_version(path, MODEL) == 1
    with open(os.path.join(pushed.uri, pusher_spec.PUSH_RESULT_FILE)) as f:
        assert json.load(f)[pusher_spec.PINNED_VERSION_FIELD] == 1


def test_no_request_fails_during_a_rollback_a_push_and_an_unpin(tmp_path):
    base = tmp_path / 'serving' / MODEL
    pusher.publish(_export(tmp_path / 'v1', CAT), str(base), 1)
    pusher.publish(_export(tmp_path / 'v2', DOG), str(base), 2)
    path = _config(tmp_path, base)
    server = server_process.ServerProcess([
        f'--model_config_file={path}', '--model_config_file_poll_wait_seconds=1',
        '--file_system_poll_wait_seconds=1'], tmp_path / 'server.log', grpc=False).start()
    photo = data.photos('validation', 'cats', 1)[0].read_bytes()
    clients = server_process.PredictLoop(server.url, MODEL, photo)

    def available():
        return server_process.available_versions(server.url, MODEL)

    def answered_only(label):
        return set(clients.next_answers(20)) == {label}

    try:
        server.wait_ready()
        server_process.wait_for(lambda: available() == {2}, what='version 2 serving')
        clients.start()
        assert answered_only('dogs')

        result = subprocess.run(
            [sys.executable, '-m', 'serving_formats.rollback', '--config', path, '--model', MODEL,
             '--server_url', server.url], capture_output=True, text=True, timeout=300,
            cwd=data.PROJECT_ROOT, env=server_process.subprocess_env())
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(f'{MODEL}: rolled back to version 1 (was 2)')
        server_process.wait_for(lambda: available() == {1}, what='version 1 alone serving')
        assert answered_only('cats')

        # The next push writes a newer version and keeps the pin.
        folder = str(tmp_path / 'push')
        test_image_pusher.write_inputs(folder, _export(tmp_path / 'v3', DOG, seed=5))
        pushed, _ = test_image_pusher.push(folder, str(base), blessed=True,
                                           model_config_file=path)
        newest = int(pushed.get_string_custom_property('pushed_version'))
        assert pusher.existing_versions(str(base)) == [1, 2, newest]
        assert rollback.pinned_version(path, MODEL) == 1
        time.sleep(3)   # three polls of the folder and of the config file
        assert available() == {1} and answered_only('cats')

        assert rollback.main(['--config', path, '--model', MODEL, '--unpin']) == 0
        server_process.wait_for(lambda: available() == {newest}, what='the newest serving')
        assert answered_only('dogs')
    finally:
        clients.stop()
        server.stop()
    assert clients.failures == []
