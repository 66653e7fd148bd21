"""components/child_process.py: a function run in a child process answers as it does here,
its errors and log lines reach this process, a child that dies is reported, and the
TFLite stages' calls through it fail as they do in-process."""

import logging
import os
import signal

import numpy as np
import pytest

from components import child_process
from components.image_pusher import tflite_model
from components.tflite_export import executor
from runlog import progress


class _Unpicklable(Exception):
    def __init__(self, code, detail):  # two arguments: pickle cannot rebuild it from args
        super().__init__(f'code {code}: {detail}')


def work(values, *, scale=1.0, fail=None):
    """What the tests run in the child: a progress line, then an answer or a failure."""
    progress.logger().info('child %d working on %d values', os.getpid(), len(values))
    if fail == 'value':
        raise ValueError(f'cannot scale by {scale}')
    if fail == 'unpicklable':
        raise _Unpicklable(7, 'broken')
    if fail == 'killed':
        os.kill(os.getpid(), signal.SIGKILL)
    return {'pid': os.getpid(), 'scaled': np.asarray(values, np.float32) * scale}


def test_the_answer_is_the_functions_own_and_comes_from_another_process(caplog):
    with caplog.at_level(logging.INFO, logger=progress.LOGGER_NAME):
        here = work([1, 2, 3], scale=0.5)
        first = child_process.call(work, [1, 2, 3], scale=0.5)
        second = child_process.call(work, [1, 2, 3], scale=0.5)
    np.testing.assert_array_equal(first['scaled'], here['scaled'])
    assert first['scaled'].dtype == np.float32
    # Each call in a child of its own, none of them this process.
    assert len({os.getpid(), first['pid'], second['pid']}) == 3
    # The child's progress line reaches this process's logging as if logged here.
    lines = [r.getMessage() for r in caplog.records if r.name == progress.LOGGER_NAME]
    assert f"child {first['pid']} working on 3 values" in lines


def test_an_error_in_the_child_is_raised_here_as_it_was():
    with pytest.raises(ValueError, match=r'^cannot scale by 2$'):
        child_process.call(work, [1], scale=2, fail='value')
    # An exception pickle cannot rebuild: its type's name and message.
    with pytest.raises(ChildProcessError, match=r'^_Unpicklable: code 7: broken$'):
        child_process.call(work, [1], fail='unpicklable')
    # A child that dies answers nothing: how it ended, and the next call works.
    with pytest.raises(ChildProcessError, match=r'ended without an answer \(killed by signal 9\)'):
        child_process.call(work, [1], fail='killed')
    assert child_process.call(work, [4])['scaled'].tolist() == [4.0]


def test_the_worker_is_started_again_after_stop():
    first = child_process.call(work, [1])['pid']
    child_process.stop()
    assert child_process.call(work, [1])['pid'] != first


def test_tflite_export_fails_in_the_child_as_in_this_process(tmp_path):
    """The component's call: the same error, type and message, as the executor raises
    here (the console's failure line is made from it)."""
    arguments = (str(tmp_path / 'model'), str(tmp_path / 'examples'), str(tmp_path / 'out'))
    with pytest.raises(ValueError) as here:
        executor.export_tflite(*arguments, variants=['float64'])
    with pytest.raises(ValueError) as there:
        child_process.call(executor.export_tflite, *arguments, variants=['float64'])
    assert str(there.value) == str(here.value)
    assert 'float64' in str(there.value)


def test_the_pushers_model_tflite_reports_a_child_that_dies(tmp_path, monkeypatch):
    """model.tflite stays best-effort: a conversion whose child is killed is a reason, not
    a failed push."""
    monkeypatch.setattr(tflite_model, 'write', _killed_write)
    written = tflite_model.write_in_child(str(tmp_path), [b'image'])
    assert written.size_bytes == 0
    assert written.reason.startswith('ChildProcessError: the child process running '), written
    assert written.reason.endswith('ended without an answer (killed by signal 9)'), written
    assert not os.listdir(tmp_path)


def _killed_write(version_dir, images):   # what an out-of-memory kill looks like
    del version_dir, images
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_started_worker_serves_the_first_call_and_reports_its_imports(caplog):
    child_process.stop()
    child_process.start()
    worker = child_process._worker  # pylint: disable=protected-access
    assert worker is not None and worker.process.poll() is None   # running before any call
    child_process.start()                                          # a second start: no new one
    assert child_process._worker is worker  # pylint: disable=protected-access
    with caplog.at_level(logging.INFO, logger=child_process.__name__):
        answer = child_process.call(work, [4.0], scale=2.0)
    assert child_process._worker is worker  # pylint: disable=protected-access
    np.testing.assert_array_equal(answer['scaled'], [8.0])
    ready = [r.getMessage() for r in caplog.records if 'its imports took' in r.getMessage()]
    assert len(ready) == 1 and 'was started' in ready[0], ready


def test_a_process_that_ends_while_its_worker_imports_ends_cleanly(tmp_path):
    # A run that fails in its first stage exits while the worker it started is still
    # importing TensorFlow: nothing of the worker's may reach its stderr.
    import subprocess  # pylint: disable=import-outside-toplevel
    import sys  # pylint: disable=import-outside-toplevel
    project = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    script = ('from components import child_process\n'
              'child_process.start()\n'
              'worker = child_process._worker.process\n'
              'print(worker.pid)\n')
    result = subprocess.run([sys.executable, '-c', script], cwd=project, capture_output=True,
                            text=True, timeout=120, env=dict(os.environ, PYTHONPATH=project))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ''
    worker = int(result.stdout.split()[-1])
    with pytest.raises(ProcessLookupError):   # gone with its caller
        os.kill(worker, 0)
