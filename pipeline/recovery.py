"""What a killed run leaves behind, found and tidied when the next run starts.

LocalDagRunner records an execution as RUNNING when a component starts and as
COMPLETE or FAILED when it ends. A run killed in between (kill -9, a crash, the
machine stopping) leaves the execution RUNNING for ever and its partial outputs
on disk: the output folders of that execution (Beam's `beam-temp-*` inside them,
an empty model folder) and TFX's `.system/executor_execution/<id>/` and stateful
working folders. A push cut short leaves a staging folder in the serving folder,
and one killed right after its rename a version that ML Metadata never recorded.

A run holds `RunLock` on the metadata store while it runs (an OS file lock, gone
with its process), so when the next run takes the lock every execution still
RUNNING belongs to a process that is gone. `recover` then marks those executions
CANCELED with the reason (the run report calls them abandoned), removes their
partial outputs, withdraws a version that only an unfinished push made, and
removes staging folders whose writer is gone.
"""

import contextlib
import dataclasses
import fcntl
import os
import time
from typing import Callable, Iterator, List, Optional, Tuple

import tensorflow as tf
from absl import logging
from google.rpc import code_pb2
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx.dsl.compiler import compiler
from tfx.dsl.compiler import constants
from tfx.orchestration import pipeline as tfx_pipeline
from tfx.orchestration.portable import outputs_utils
from tfx.orchestration.portable import runtime_parameter_utils
from tfx.orchestration.portable.mlmd import execution_lib
from tfx.proto.orchestration import execution_result_pb2
from tfx.types import standard_artifacts
from tfx.types import value_artifact

from components.image_pusher import executor as pusher_executor
from components.image_pusher import spec as pusher_spec
from components.image_pusher import staging
from pipeline import console

LOCK_SUFFIX = '.lock'   # <metadata file>.lock
# What an abandoned execution is marked as: TFX's own state for executions a run
# will never finish (it also uses it for cancelled ones).
ABANDONED = metadata_store_pb2.Execution.CANCELED
ABANDONED_PREFIX = 'abandoned: '   # how the recorded reason starts

_ACTIVE = (metadata_store_pb2.Execution.NEW, metadata_store_pb2.Execution.RUNNING)


class BusyError(RuntimeError):
    """Another live run uses the metadata store."""


class RunLock:
    """An exclusive OS lock on `<metadata_path>.lock` for the duration of a run.

    The file records the holder (PID, host, start time); `previous` is what it
    said when this run took the lock: the last run, which may have been killed.

    Raises (on enter):
      BusyError: another live process holds the lock.
    """

    def __init__(self, metadata_path: str):
        self.path = metadata_path + LOCK_SUFFIX
        self.previous: Optional[str] = None
        self._fd: Optional[int] = None

    def __enter__(self) -> 'RunLock':
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode(errors='replace').strip() or 'another process'
            os.close(fd)
            raise BusyError(f'another run ({holder}) is using {self.path[:-len(LOCK_SUFFIX)]}; '
                            'wait for it to end, or give this run another --work-dir') from None
        self.previous = os.pread(fd, 4096, 0).decode(errors='replace').strip() or None
        writer = staging.this_process()
        started = time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(writer.start))
        os.ftruncate(fd, 0)
        os.pwrite(fd, f'{writer}, started {started}\n'.encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc_info) -> None:
        if self._fd is not None:
            os.close(self._fd)   # releases the lock
            self._fd = None


@dataclasses.dataclass
class Recovery:
    """What `recover` found and tidied."""
    abandoned: List[Tuple[str, int]] = dataclasses.field(default_factory=list)  # (node, id)
    removed: List[str] = dataclasses.field(default_factory=list)     # partial outputs
    withdrawn: List[str] = dataclasses.field(default_factory=list)   # unrecorded versions
    staging: List[str] = dataclasses.field(default_factory=list)     # staging folders

    def summary(self) -> Optional[str]:
        """One console line saying what was cleaned, or None when nothing was."""
        parts = []
        if self.abandoned:
            parts.append(f'marked {len(self.abandoned)} execution(s) left running as abandoned ('
                         + ', '.join(f'{node} #{execution_id}'
                                     for node, execution_id in self.abandoned) + ')')
        if self.removed:
            parts.append(f'removed {len(self.removed)} partial output folder(s)')
        if self.withdrawn:
            parts.append('withdrew version(s) pushed but never recorded: '
                         + ', '.join(self.withdrawn))
        if self.staging:
            parts.append(f'removed {len(self.staging)} staging folder(s) of interrupted pushes')
        return 'cleaned up after a stopped run: ' + '; '.join(parts) if parts else None


def _open_store(metadata_path: str) -> metadata_store.MetadataStore:
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE
    return metadata_store.MetadataStore(config)


def _node_of(store, execution) -> Tuple[Optional[str], Optional[str]]:
    """(pipeline name, node id) of an execution, from its contexts."""
    pipeline_name = node_id = None
    for context in store.get_contexts_by_execution(execution.id):
        context_type = store.get_context_types_by_id([context.type_id])[0].name
        if context_type == 'node':
            node_id = context.name.split('.', 1)[-1]
        elif context_type == 'pipeline':
            pipeline_name = context.name
    return pipeline_name, node_id


def _remove(path: str, store, recovery: Recovery) -> None:
    """Removes a folder an abandoned execution wrote, unless an artifact lives there."""
    path = path.rstrip('/')
    if not tf.io.gfile.exists(path) or store.get_artifacts_by_uri(path):
        return
    tf.io.gfile.rmtree(path)
    recovery.removed.append(path)


def _withdraw_unrecorded(pushed_uri: str, store, recovery: Recovery) -> None:
    """Withdraws the version an unfinished push made, unless a finished push recorded it."""
    try:
        result = pusher_spec.read_push_result(pushed_uri)
    except ValueError:  # cut short by the kill: it names no version to withdraw
        return
    if not (result and result.get('pushed') and result.get(pusher_spec.NEW_VERSION_FIELD)):
        return
    path = result['path']
    recorded = [a for a in store.get_artifacts_by_type(standard_artifacts.PushedModel.TYPE_NAME)
                if a.state == metadata_store_pb2.Artifact.LIVE
                and a.custom_properties.get(pusher_spec.PUSHED_DESTINATION_PROPERTY)
                and a.custom_properties[pusher_spec.PUSHED_DESTINATION_PROPERTY].string_value
                == path]
    if recorded or not tf.io.gfile.exists(path):
        return
    pusher_executor.withdraw(os.path.dirname(path), int(result['version']))
    recovery.withdrawn.append(path)


def _remove_leftovers(execution, node, ir, store, recovery: Recovery) -> None:
    """Removes the output folders of an execution that never finished, and TFX's own."""
    outputs = outputs_utils.OutputsResolver(node, ir.pipeline_info, ir.runtime_spec)
    for key, artifacts in outputs.generate_output_artifacts(execution.id).items():
        for artifact in artifacts:
            folder = (os.path.dirname(artifact.uri)
                      if isinstance(artifact, value_artifact.ValueArtifact) else artifact.uri)
            if node.outputs.outputs[key].artifact_spec.type.name == (
                    standard_artifacts.PushedModel.TYPE_NAME):
                _withdraw_unrecorded(folder, store, recovery)
            _remove(folder, store, recovery)
    # TFX's own folders for the execution. These calls name them (and make them if
    # missing). A stateful working folder's name is not recorded for LocalDagRunner's
    # executions: all of the node's go, as none is in use while the lock is held.
    _remove(os.path.dirname(outputs.get_executor_output_uri(execution.id)), store, recovery)
    made = outputs.get_stateful_working_directory(execution).rstrip('/')
    stateful = os.path.dirname(made)
    for name in tf.io.gfile.listdir(stateful):
        path = os.path.join(stateful, name.rstrip('/'))
        if path != made:
            _remove(path, store, recovery)
    tf.io.gfile.rmtree(made)


def recover(metadata_path: str, dsl_pipeline: tfx_pipeline.Pipeline, *, reason: str,
            serving_base: Optional[str] = None) -> Recovery:
    """Marks executions left RUNNING as abandoned and removes what they left.

    Call it only while holding RunLock: every RUNNING execution then belongs to
    a process that is gone.

    Args:
      metadata_path: the SQLite MLMD file (nothing is done when it does not exist).
      dsl_pipeline: the pipeline: where its nodes write (executions of other
        pipelines in the store are marked abandoned, their files left alone).
      reason: why they were abandoned, recorded as the executions' result message.
      serving_base: the model's local serving folder, for staging folders.

    Returns:
      What was found and tidied.
    """
    recovery = Recovery()
    if os.path.exists(metadata_path):
        store = _open_store(metadata_path)
        active = [e for e in store.get_executions() if e.last_known_state in _ACTIVE]
        # Compiled only when needed: where TFX puts each node's outputs (the pipeline
        # root is a runtime parameter until a runner fills it in, as here).
        ir = compiler.Compiler().compile(dsl_pipeline) if active else None
        if ir is not None:
            runtime_parameter_utils.substitute_runtime_parameter(
                ir, {constants.PIPELINE_RUN_ID_PARAMETER_NAME: 'recovery'})
        nodes = {node.pipeline_node.node_info.id: node.pipeline_node
                 for node in ir.nodes} if ir else {}
        for execution in active:
            pipeline_name, node_id = _node_of(store, execution)
            node = nodes.get(node_id) if pipeline_name == ir.pipeline_info.id else None
            if node is not None:
                _remove_leftovers(execution, node, ir, store, recovery)
            execution.last_known_state = ABANDONED
            execution_lib.set_execution_result(execution_result_pb2.ExecutionResult(
                code=code_pb2.ABORTED, result_message=ABANDONED_PREFIX + reason), execution)
            store.put_executions([execution])
            recovery.abandoned.append((node_id or '?', execution.id))
            logging.warning('Execution %d (%s) marked abandoned: %s', execution.id, node_id,
                            reason)
    if serving_base and pusher_executor.is_local(serving_base):
        recovery.staging = staging.remove_abandoned(serving_base)
    return recovery


def is_abandoned(execution: metadata_store_pb2.Execution) -> bool:
    """Whether `recover` marked this execution abandoned."""
    if execution.last_known_state != ABANDONED:
        return False
    result = execution_lib.get_execution_result(execution, ignore_parse_errors=True)
    return bool(result and result.result_message.startswith(ABANDONED_PREFIX))


@contextlib.contextmanager
def guard(metadata_path: str, dsl_pipeline: tfx_pipeline.Pipeline, *,
          say: Callable[[str], None], serving_base: Optional[str] = None) -> Iterator[None]:
    """Wraps a run: takes RunLock, tidies what a stopped run left, runs, and tidies again
    if the run fails (a component whose end could not be recorded, e.g. on a full disk,
    is tidied at once: a failed run leaves nothing new served).

    Args:
      metadata_path: the SQLite MLMD file.
      dsl_pipeline: the pipeline about to run.
      say: shows the one line saying what was cleaned (the console).
      serving_base: the model's local serving folder, for staging folders.

    Raises:
      BusyError: another live run holds the lock (nothing was touched).
    """
    def tidy(reason: str) -> None:
        cleaned = recover(metadata_path, dsl_pipeline, reason=reason,
                          serving_base=serving_base).summary()
        if cleaned:
            say(cleaned)

    with RunLock(metadata_path) as lock:
        tidy(f"its run ({lock.previous or 'unknown'}) ended without recording its end "
             '(killed or crashed)')
        try:
            yield
        except BaseException as error:   # Ctrl-C too
            try:
                tidy('the run failed before recording its end: '
                     + console.reason_line(str(error) or type(error).__name__))
            except Exception:  # pylint: disable=broad-except
                logging.exception('Tidying after the failed run failed')
            raise
