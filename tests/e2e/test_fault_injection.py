"""Fault injection: a real `local_runner.py` run killed with SIGKILL inside each stage.

One chain of runs on one work dir (tiny data, 160x160, 2 epochs, neither DataQuality
nor TFLiteExport, which no kill lands in): each run is
killed inside the next stage (ImageExampleGen, StatisticsGen, the Trainer after
an epoch, the Evaluator, the Pusher's copy), and the run after it tidies what
the killed one left and goes on. After the killed push, a run whose serving
folder is a small tmpfs fails on the full disk in the Pusher's copy (where the OS
forbids mounting, that run is left out and its test skips, saying why); the last
run finishes.

How a test knows a run is inside a stage, without sleeping and hoping:
- Beam stages: a `beam-temp-*` folder appears in the stage's output; the run is
  stopped (SIGSTOP) at once and the folder checked to be still there.
- The Trainer: its console line `epoch 1/2`.
- The Pusher: the test holds a write lease (fcntl F_SETLEASE) on the reference
  profile the Pusher copies into its staging folder; the Pusher's open of it
  breaks the lease and blocks until the lease is released, so the run waits,
  inside the staging step, to be killed.
After each kill the node's execution must be RUNNING in ML Metadata: the kill
landed inside the stage.
"""

import dataclasses
import errno
import fcntl
import glob
import os
import pathlib
import re
import signal
import sqlite3
import subprocess
import sys
import time
from typing import Callable, Dict, Iterator, List, Optional

import pytest
from ml_metadata.proto import metadata_store_pb2

from components.image_pusher import executor as pusher
from components.image_pusher import staging
from models import cache_plan
from models import profile
from models import tflite_export
from pipeline import configs
from pipeline import nodes
from pipeline import recovery
from reports import mlmd_runs
from tests import data
from tests import small_disk
from tests.serving import server_process
from tests.serving import standin_model

pytestmark = pytest.mark.e2e

COUNTS = {'train': {'cats': 8, 'dogs': 8}, 'validation': {'cats': 6, 'dogs': 6}}
EPOCHS = 2
KILLED = (nodes.EXAMPLE_GEN, nodes.STATISTICS_GEN, nodes.TRAINER, nodes.EVALUATOR, nodes.PUSHER)
POLL_SECONDS = 0.005
WORK_AREA_BYTES = 2 << 30   # the chain's tmpfs: a limit, not memory taken
STAGE_TIMEOUT = 900


def integrity(metadata_path: str) -> str:
    """SQLite's own check of the MLMD file ('ok' when sound)."""
    with sqlite3.connect(f'file:{metadata_path}?mode=ro', uri=True) as db:
        return db.execute('PRAGMA integrity_check').fetchone()[0]


def served(base: pathlib.Path) -> Dict[str, List]:
    """What a server can load: each integer version's files and sizes."""
    return {name: sorted((os.path.relpath(os.path.join(root, f), base / name),
                          os.path.getsize(os.path.join(root, f)))
                         for root, _, files in os.walk(base / name) for f in files)
            for name in sorted(os.listdir(base)) if name.isdigit()}


class Run:
    """One local_runner.py process, its console in a file."""

    def __init__(self, args: List[str], log: pathlib.Path, env: dict):
        self.log = log
        with open(log, 'wb') as out:
            self.proc = subprocess.Popen(  # pylint: disable=consider-using-with
                [sys.executable, str(data.PROJECT_ROOT / 'local_runner.py'), *args],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                cwd=log.parent, env=env)

    def text(self) -> str:
        return self.log.read_text(errors='replace')

    def wait_for(self, check: Callable[[], object], what: str):
        """Polls `check` while the run goes on; its first truthy value."""
        deadline = time.monotonic() + STAGE_TIMEOUT
        while True:
            value = check()
            if value:
                return value
            assert self.proc.poll() is None, f'run ended before {what}:\n{self.text()[-3000:]}'
            assert time.monotonic() < deadline, f'timed out waiting for {what}'
            time.sleep(POLL_SECONDS)

    def stop(self) -> None:
        """SIGSTOP, and wait until the process is stopped."""
        os.killpg(self.proc.pid, signal.SIGSTOP)
        stat = pathlib.Path(f'/proc/{self.proc.pid}/stat')
        self.wait_for_state(lambda: stat.read_text().rsplit(')', 1)[1].split()[0] == 'T')

    def wait_for_state(self, check: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 60
        while not check():
            assert time.monotonic() < deadline, 'process did not stop'
            time.sleep(POLL_SECONDS)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=120)

    def finish(self) -> int:
        return self.proc.wait(timeout=STAGE_TIMEOUT)


@dataclasses.dataclass
class Killed:
    node: str
    execution_id: Optional[int]        # the node's execution, if RUNNING when killed
    states: Dict[str, str]             # the killed run's nodes, as ML Metadata has them
    served_unchanged: bool
    integrity: str
    console: str                       # the killed run's console
    next_console: str = ''             # the console of the run after it


@dataclasses.dataclass
class FullDisk:
    code: int
    console: str
    states: Dict[str, str]
    served_unchanged: bool             # the chain's serving folder
    left: List[str]                    # what is left in the small serving folder
    integrity: str


@dataclasses.dataclass
class Chain:
    work: pathlib.Path
    serving: pathlib.Path               # the model's serving folder
    killed: List[Killed]
    full_disk: Optional[FullDisk]
    no_full_disk: str                   # why there is no full-disk run
    final_code: int
    final_console: str
    final_run: mlmd_runs.PipelineRun   # as ML Metadata recorded the last run of the chain
    temp: pathlib.Path                  # TMPDIR of the runs (the Trainer's cache)
    seconds: float

    @property
    def metadata_path(self) -> str:
        return configs.metadata_path(str(self.work))

    @property
    def pipeline_root(self) -> pathlib.Path:
        return self.work / 'pipeline_root'


def _beam_temp(root: pathlib.Path, node: str) -> Callable[[], List[str]]:
    return lambda: glob.glob(str(root / node / '*' / '*' / '**' / 'beam-temp-*'), recursive=True)


def hold_inside_beam_stage(node: str):
    def hold(run: Run, chain_root: pathlib.Path) -> None:
        found = run.wait_for(_beam_temp(chain_root, node), f'a beam-temp folder of {node}')
        run.stop()
        assert any(os.path.exists(p) for p in found), f'{node} ended before it was stopped'
    return hold


def hold_trainer_after_an_epoch(run: Run, chain_root: pathlib.Path) -> None:
    del chain_root
    run.wait_for(lambda: f'epoch 1/{EPOCHS}' in run.text(), 'the first epoch')
    run.stop()
    assert not re.search(r'Trainer (\.\.\. )?done', run.text()), run.text()[-2000:]


def hold_pusher_in_its_copy(run: Run, chain_root: pathlib.Path, serving: pathlib.Path) -> None:
    """Blocks the Pusher where it copies the reference profile into its staging folder."""
    run.wait_for(lambda: re.search(r'ReferenceProfile (\.\.\. )?done', run.text()),
                 'ReferenceProfile to finish')
    run.stop()   # before the Pusher's copy: it starts well after the line above
    [profile_file] = glob.glob(str(chain_root / nodes.REFERENCE_PROFILE / '*' / '*' /
                                   profile.PROFILE_FILE))
    versions = served(serving)
    fd = os.open(profile_file, os.O_RDONLY)
    old_handler = signal.signal(signal.SIGIO, lambda *_: None)  # a lease break signals us
    try:
        try:
            fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_WRLCK)
        except OSError as e:
            if e.errno == errno.EAGAIN:
                raise AssertionError('the Pusher had opened the profile already') from e
            raise AssertionError(f'no file lease on {profile_file}: its file system does '
                                 f'not support them ({e})') from e
        os.killpg(run.proc.pid, signal.SIGCONT)
        # The Pusher's open of the file breaks the lease and waits for it.
        run.wait_for(lambda: fcntl.fcntl(fd, fcntl.F_GETLEASE) != fcntl.F_WRLCK,
                     "the Pusher's copy of the reference profile")
        assert [n for n in os.listdir(serving) if staging.is_staging(n)], os.listdir(serving)
        assert served(serving) == versions   # not published yet
        run.kill()
    finally:
        os.close(fd)
        signal.signal(signal.SIGIO, old_handler)


def _states(metadata_path: str) -> Dict[str, str]:
    run = mlmd_runs.latest_run(metadata_path, configs.PIPELINE_NAME)
    return {node: n.state for node, n in run.nodes.items()} if run else {}


def _execution(metadata_path: str, node: str) -> Optional[int]:
    found = mlmd_runs.latest_run(metadata_path, configs.PIPELINE_NAME).nodes.get(node)
    return found.execution.id if found else None


def _model_bytes(pipeline_root: pathlib.Path) -> int:
    """The size of the largest model the Trainer exported."""
    return max(sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(model)
                   for f in fs) for model in (pipeline_root / nodes.TRAINER / 'model').iterdir())


@pytest.fixture(scope='module')
def chain(tmp_path_factory) -> Iterator[Chain]:
    """The chain's work area is a tmpfs where one can be mounted (as here and in CI): file
    leases work there whatever file system holds the test's temp folder."""
    folder = tmp_path_factory.mktemp('faults')
    try:
        with small_disk.tmpfs(folder / 'tmpfs', WORK_AREA_BYTES) as work:
            yield run_chain(work)
            return
    except small_disk.MountForbidden as e:
        print(f'the chain runs in {folder}, not on a tmpfs: {e}')
    yield run_chain(folder)


def run_chain(work: pathlib.Path) -> Chain:
    """Runs the chain in `work`; what each run did."""
    start = time.monotonic()
    root = data.make_root(work / 'data', COUNTS)
    temp = work / 'temp'
    temp.mkdir()
    env = {**server_process.subprocess_env(), 'TMPDIR': str(temp)}
    args = ['--data-root', str(root), '--work-dir', str(work / 'work'), '--epochs', str(EPOCHS),
            '--image-size', '160', '160', '--augmented-views', '0', '--batch-size', '8',
            '--accuracy-threshold', '0', '--weights', str(data.WEIGHTS),
            # No TFLiteExport (the stage after the Pusher) and no DataQuality (beside
            # StatisticsGen): no kill lands in them.
            '--tflite-variants', '--no-data-quality']
    serving = work / 'work' / 'serving' / configs.MODEL_NAME
    # A version that is served before any run: what the killed runs must not change.
    standin_model.export_image_model(str(work / 'standin'))
    pusher.publish(str(work / 'standin'), str(serving), 1)
    served_before = served(serving)
    pipeline_root = work / 'work' / 'pipeline_root'
    metadata_path = configs.metadata_path(str(work / 'work'))
    holds = [hold_inside_beam_stage(nodes.EXAMPLE_GEN), hold_inside_beam_stage(
        nodes.STATISTICS_GEN), hold_trainer_after_an_epoch, hold_inside_beam_stage(
            nodes.EVALUATOR), lambda run, r: hold_pusher_in_its_copy(run, r, serving)]
    killed = []
    for i, (node, hold) in enumerate(zip(KILLED, holds)):
        run = Run(args, work / f'run{i}.log', env)
        try:
            hold(run, pipeline_root)
        finally:
            run.kill()
        if killed:
            killed[-1].next_console = run.text()
        states = _states(metadata_path)
        killed.append(Killed(node, _execution(metadata_path, node), states,
                             served(serving) == served_before, integrity(metadata_path),
                             run.text()))

    # The next push runs out of disk: its serving folder is a tmpfs with room for half
    # the model.
    full_disk, no_full_disk = None, ''
    try:
        with small_disk.tmpfs(work / 'small', _model_bytes(pipeline_root) // 2) as small:
            run = Run([*args, '--serving-dir', str(small), '--no-report'], work / 'full.log',
                      env)
            code = run.finish()
            small_base = small / configs.MODEL_NAME
            full_disk = FullDisk(code, run.text(), _states(metadata_path),
                                 served(serving) == served_before,
                                 os.listdir(small_base) if small_base.exists() else [],
                                 integrity(metadata_path))
        killed[-1].next_console = run.text()
    except small_disk.MountForbidden as e:
        no_full_disk = f'the OS forbids mounting a small tmpfs here, so no disk can fill: {e}'

    final = Run(args, work / 'final.log', env)
    code = final.finish()
    if not killed[-1].next_console:
        killed[-1].next_console = final.text()
    return Chain(work / 'work', serving, killed, full_disk, no_full_disk, code, final.text(),
                 mlmd_runs.latest_run(metadata_path, configs.PIPELINE_NAME), temp,
                 time.monotonic() - start)


def test_each_kill_landed_inside_its_stage_and_changed_nothing_served(chain):
    print(f'{len(KILLED)} killed runs, a full disk and a rerun took {chain.seconds:.0f} s')
    for killed in chain.killed:
        assert killed.states.get(killed.node) == 'RUNNING', (
            f'{killed.node} was not running when killed: {killed.states}\n'
            f'{killed.console[-2000:]}')
        assert killed.served_unchanged, killed.node
        assert killed.integrity == 'ok', killed.node


def test_each_run_reused_what_the_killed_one_had_finished(chain):
    runs = [k.states for k in chain.killed] + (
        [chain.full_disk.states] if chain.full_disk else []) + [
            {node: n.state for node, n in chain.final_run.nodes.items()}]
    for before, after in zip(runs, runs[1:]):
        finished = {node for node, state in before.items()
                    if state in ('COMPLETE', 'CACHED') and node != nodes.BASELINE_RESOLVER}
        assert {node: after[node] for node in finished} == {node: 'CACHED' for node in finished}
    # The model blessed by the run whose push was killed never became the baseline, so
    # the run after it reused the Evaluator's outputs as they were.
    assert runs[len(chain.killed)][nodes.EVALUATOR] == 'CACHED'


def test_each_next_run_says_what_it_tidied(chain):
    for killed in chain.killed:
        [line] = [l for l in killed.next_console.splitlines()
                  if l.startswith('cleaned up after a stopped run: ')]
        assert f'({killed.node} #{killed.execution_id})' in line, line
        assert 'partial output folder(s)' in line, line
    # The killed push's staging folder goes with the next push to the same folder.
    assert 'removed 1 staging folder(s) of interrupted pushes' in chain.final_console


def test_rerun_after_the_kills_completes_and_leaves_nothing_behind(chain):
    assert chain.final_code == 0, chain.final_console[-3000:]
    assert 'pipeline finished' in chain.final_console
    assert integrity(chain.metadata_path) == 'ok'
    store = mlmd_runs.open_store(chain.metadata_path)
    executions = store.get_executions()
    assert not [e.id for e in executions if e.last_known_state in (
        metadata_store_pb2.Execution.NEW, metadata_store_pb2.Execution.RUNNING)]
    abandoned = {e.id for e in executions if recovery.is_abandoned(e)}
    assert abandoned == {k.execution_id for k in chain.killed}

    # No partial output: every output folder is an artifact ML Metadata knows ...
    uris = {a.uri.rstrip('/') for a in store.get_artifacts()}
    orphans = [path for path in glob.glob(str(chain.pipeline_root / '*' / '*' / '*'))
               if os.path.basename(os.path.dirname(path)) != '.system' and path not in uris]
    assert orphans == []
    # ... none holds Beam's temporary folders, no executor's temp folder is left, and no
    # staging folder is left in the serving folder.
    assert glob.glob(str(chain.pipeline_root / '**' / 'beam-temp-*'), recursive=True) == []
    assert glob.glob(str(chain.pipeline_root / '*' / '.system' / 'executor_execution' / '*' /
                         '.temp')) == []
    assert [n for n in os.listdir(chain.serving) if not n.isdigit()] == []
    # The killed Trainer's cache was removed by the next Trainer.
    assert 'removed the cache of a Trainer that was stopped' in (
        chain.killed[KILLED.index(nodes.TRAINER)].next_console)
    assert not list(chain.temp.glob(f'{cache_plan.CACHE_DIR_PREFIX}*'))

    # The pushed version is complete: the Trainer's export plus warmup, profile and the
    # TFLite model.
    run = chain.final_run
    assert run.nodes[nodes.PUSHER].state == 'COMPLETE'
    version = mlmd_runs.custom_property(run.output(nodes.PUSHER, 'pushed_model'),
                                        'pushed_version')
    assert sorted(served(chain.serving)) == sorted(['1', version])
    version_dir = chain.serving / version
    model_dir = pathlib.Path(run.output(nodes.TRAINER, 'model').uri) / 'Format-Serving'
    exported = {os.path.relpath(os.path.join(r, f), model_dir)
                for r, _, fs in os.walk(model_dir) for f in fs}
    in_version = {os.path.relpath(os.path.join(r, f), version_dir)
                  for r, _, fs in os.walk(version_dir) for f in fs}
    assert in_version == exported | {'assets.extra/tf_serving_warmup_requests',
                                     f'assets.extra/{profile.PROFILE_FILE}',
                                     tflite_export.SERVING_FILE}
    assert pusher.model_digest(str(version_dir)) == pusher.model_digest(str(model_dir))


def test_run_report_shows_the_abandoned_runs(chain):
    page = (chain.work / 'run_report.html').read_text()
    for node in KILLED:
        assert f'abandoned at {node}' in page


def test_full_disk_fails_the_push_and_serves_nothing_new(chain):
    """The push's copy into its serving folder hits a full disk: the run fails with one
    `error:` line about it, and nothing new is served."""
    if chain.full_disk is None:
        pytest.skip(chain.no_full_disk)
    full = chain.full_disk
    assert full.code == 1, full.console[-3000:]
    [error] = [l for l in full.console.splitlines() if l.startswith('error:')]
    assert error.startswith(f'error: {nodes.PUSHER}: ') and 'No space left on device' in error
    assert 'data report' not in error
    assert full.states[nodes.PUSHER] == 'FAILED'
    assert full.served_unchanged
    assert full.left == []   # no version, no staging folder
    assert full.integrity == 'ok'
