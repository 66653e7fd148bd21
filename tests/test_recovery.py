"""pipeline/recovery.py: a run killed inside a component is found, recorded and tidied.

A real two-node TFX pipeline runs under `recovery.guard` in a subprocess
(LocalDagRunner, SQLite MLMD); its second node writes partial outputs, publishes
a version the way the Pusher does, says so and waits; the test kills it with
SIGKILL and recovers.
"""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest
from ml_metadata.proto import metadata_store_pb2
from tfx.dsl.component.experimental.annotations import OutputArtifact
from tfx.dsl.component.experimental.annotations import Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.orchestration import metadata
from tfx.orchestration import pipeline as tfx_pipeline
from tfx.types import standard_artifacts

from components.image_pusher import spec as pusher_spec
from components.image_pusher import staging
from pipeline import configs
from pipeline import recovery
from reports import mlmd_runs
from reports import run_report
from tests import data
from tests.serving import server_process

PIPELINE = 'recovery-test'


@component
def Train(model: OutputArtifact[standard_artifacts.Model]):  # pylint: disable=invalid-name
    with open(os.path.join(model.uri, 'saved_model.pb'), 'w', encoding='utf-8') as f:
        f.write('a finished model')


@component
def Push(serving_base: Parameter[str], marker: Parameter[str],  # pylint: disable=invalid-name
         model: OutputArtifact[standard_artifacts.Model],
         pushed_model: OutputArtifact[standard_artifacts.PushedModel]):
    """Writes part of its outputs, a staging folder and a version as the Pusher does, then
    waits to be killed."""
    os.makedirs(os.path.join(model.uri, 'beam-temp-1234'))
    os.makedirs(serving_base, exist_ok=True)
    os.makedirs(os.path.join(serving_base, staging.staging_name(8)))
    version = os.path.join(serving_base, '9')
    with open(os.path.join(pushed_model.uri, pusher_spec.PUSH_RESULT_FILE), 'w',
              encoding='utf-8') as f:
        json.dump({'pushed': True, 'version': 9, 'path': version,
                   pusher_spec.NEW_VERSION_FIELD: True}, f)
    os.makedirs(version)
    pathlib.Path(marker).write_text('inside Push', encoding='utf-8')
    time.sleep(600)


def make_pipeline(work: pathlib.Path) -> tfx_pipeline.Pipeline:
    train = Train().with_id('Train')
    push = Push(serving_base=str(work / 'serving'), marker=str(work / 'inside')).with_id('Push')
    push.add_upstream_node(train)
    return tfx_pipeline.Pipeline(
        pipeline_name=PIPELINE, pipeline_root=str(work / 'root'), components=[train, push],
        enable_cache=False, metadata_connection_config=metadata.sqlite_metadata_connection_config(
            str(work / 'metadata.sqlite')))


def main(work: str) -> None:
    """The subprocess: the pipeline under recovery.guard, as local_runner runs ours."""
    from tfx.orchestration.local import local_dag_runner  # pylint: disable=import-outside-toplevel
    work_dir = pathlib.Path(work)
    dsl_pipeline = make_pipeline(work_dir)
    with recovery.guard(str(work_dir / 'metadata.sqlite'), dsl_pipeline, say=print,
                        serving_base=str(work_dir / 'serving')):
        local_dag_runner.LocalDagRunner().run(dsl_pipeline)


@pytest.fixture(scope='module')
def killed(tmp_path_factory):
    """The work dir of a run killed inside Push, and the killed process."""
    work = tmp_path_factory.mktemp('recovery')
    proc = subprocess.Popen(  # pylint: disable=consider-using-with
        [sys.executable, '-c', 'import sys; from tests import test_recovery; '
                               'test_recovery.main(sys.argv[1])', str(work)],
        cwd=data.PROJECT_ROOT, env=server_process.subprocess_env(),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        server_process.wait_for(lambda: (work / 'inside').exists() or proc.poll() is not None,
                                timeout=300, what='the run to reach Push')
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
        # While it runs, no other run may use its metadata.
        with pytest.raises(recovery.BusyError, match=f'pid {proc.pid} on '):
            with recovery.RunLock(str(work / 'metadata.sqlite')):
                pass
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        proc.stderr.close()
    return work, proc.pid


def test_killed_execution_is_marked_abandoned_and_its_leftovers_removed(killed):
    work, pid = killed
    [running] = [n for n in mlmd_runs.latest_run(str(work / 'metadata.sqlite'), PIPELINE)
                 .nodes.values() if n.state == 'RUNNING']
    assert running.node_id == 'Push'
    push_dir = work / 'root' / 'Push'
    leftovers = [push_dir / 'model' / str(running.execution.id) / 'beam-temp-1234',
                 push_dir / 'pushed_model' / str(running.execution.id),
                 push_dir / '.system' / 'executor_execution' / str(running.execution.id)]
    assert all(path.exists() for path in leftovers)
    assert (work / 'serving' / '9').is_dir()

    with recovery.RunLock(str(work / 'metadata.sqlite')) as lock:
        assert lock.previous.startswith(f'pid {pid} on ')   # the killed run held it
        cleaned = recovery.recover(str(work / 'metadata.sqlite'), make_pipeline(work),
                                   reason='killed by the test', serving_base=str(work / 'serving'))
    assert cleaned.abandoned == [('Push', running.execution.id)]
    assert not any(path.exists() for path in leftovers)
    # The version the killed push made, never recorded as pushed, is withdrawn; and the
    # staging folder of the killed writer is gone.
    assert cleaned.withdrawn == [str(work / 'serving' / '9')]
    assert len(cleaned.staging) == 1 and os.listdir(work / 'serving') == []
    # The finished node's output stays.
    [train] = [n for n in mlmd_runs.latest_run(str(work / 'metadata.sqlite'), PIPELINE)
               .nodes.values() if n.node_id == 'Train']
    assert (pathlib.Path(train.outputs['model'][0].uri) / 'saved_model.pb').is_file()
    assert cleaned.summary() == (
        f'cleaned up after a stopped run: marked 1 execution(s) left running as abandoned '
        f'(Push #{running.execution.id}); removed {len(cleaned.removed)} partial output '
        f'folder(s); withdrew version(s) pushed but never recorded: {work / "serving" / "9"}; '
        f'removed 1 staging folder(s) of interrupted pushes')

    node = mlmd_runs.latest_run(str(work / 'metadata.sqlite'), PIPELINE).nodes['Push']
    assert node.execution.last_known_state == metadata_store_pb2.Execution.CANCELED
    assert recovery.is_abandoned(node.execution)
    # Nothing is left to do the second time.
    again = recovery.recover(str(work / 'metadata.sqlite'), make_pipeline(work), reason='again')
    assert again.summary() is None

    # The run report calls the run abandoned, with the recorded reason.
    path = run_report.write_report(str(work / 'metadata.sqlite'), PIPELINE,
                                   str(work / 'report.html'))
    page = pathlib.Path(path).read_text()
    assert 'Run abandoned at Push' in page and 'abandoned: killed by the test' in page


def test_a_second_run_on_a_busy_work_dir_stops_with_one_line(tmp_path):
    root = data.make_root(tmp_path / 'data', {'train': {'cats': 2, 'dogs': 2}}, presplit=False)
    work = tmp_path / 'work'
    with recovery.RunLock(configs.metadata_path(str(work))):   # a run is using it
        result = subprocess.run(
            [sys.executable, str(data.PROJECT_ROOT / 'local_runner.py'), '--data-root',
             str(root), '--work-dir', str(work)], capture_output=True, text=True,
            cwd=tmp_path, timeout=300, env=server_process.subprocess_env())
    assert result.returncode == 2, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith('error:')]
    assert len(errors) == 1 and f'error: another run (pid {os.getpid()} on ' in errors[0]
    assert 'Traceback' not in result.stderr
    assert not (work / 'logs').exists()   # nothing ran, nothing is left but the lock
