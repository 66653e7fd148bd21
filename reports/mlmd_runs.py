"""Reads pipeline runs back from ML Metadata: executions, their timing and artifacts.

LocalDagRunner records one `pipeline_run` context per run; every node's
execution (also a cached one) is attributed to it and to a `node` context.
"""

import dataclasses
from typing import Dict, List, Optional

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

_OUTPUT_EVENTS = (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)
_INPUT_EVENTS = (metadata_store_pb2.Event.INPUT, metadata_store_pb2.Event.DECLARED_INPUT)


@dataclasses.dataclass
class NodeRun:
    """One component's execution in a pipeline run."""
    node_id: str
    state: str                    # COMPLETE, CACHED, FAILED, RUNNING, ...
    seconds: float
    outputs: Dict[str, List[metadata_store_pb2.Artifact]]
    inputs: Dict[str, List[metadata_store_pb2.Artifact]]
    execution: metadata_store_pb2.Execution


@dataclasses.dataclass
class PipelineRun:
    """A pipeline run: its id and its nodes by id, in start order."""
    run_id: str
    create_time_ms: int
    nodes: Dict[str, NodeRun]

    def output(self, node_id: str, key: str) -> Optional[metadata_store_pb2.Artifact]:
        node = self.nodes.get(node_id)
        artifacts = node.outputs.get(key) if node else None
        return artifacts[-1] if artifacts else None


def open_store(metadata_path: str) -> metadata_store.MetadataStore:
    """The SQLite MLMD store of a local run (read only by convention)."""
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return metadata_store.MetadataStore(config)


def _event_key(event: metadata_store_pb2.Event) -> str:
    return event.path.steps[0].key if event.path.steps else ''


def _run_contexts(store: metadata_store.MetadataStore,
                  pipeline_name: str) -> List[metadata_store_pb2.Context]:
    """The `pipeline_run` contexts of a pipeline, oldest first."""
    pipeline_ctx = store.get_context_by_type_and_name('pipeline', pipeline_name)
    if pipeline_ctx is None:
        return []
    run_type = store.get_context_type('pipeline_run')
    contexts = [ctx for ctx in store.get_children_contexts_by_context(pipeline_ctx.id) or []
                if ctx.type_id == run_type.id]
    if not contexts:  # older MLMD layouts: run contexts are not children of the pipeline
        contexts = list(store.get_contexts_by_type('pipeline_run'))
    return sorted(contexts, key=lambda ctx: ctx.create_time_since_epoch)


def pipeline_runs(store: metadata_store.MetadataStore, pipeline_name: str) -> List[PipelineRun]:
    """All runs of a pipeline, oldest first."""
    return [_load_run(store, ctx) for ctx in _run_contexts(store, pipeline_name)]


def _load_run(store, run_ctx) -> PipelineRun:
    executions = store.get_executions_by_context(run_ctx.id)
    node_type = store.get_context_type('node')
    events = store.get_events_by_execution_ids([e.id for e in executions]) if executions else []
    artifact_ids = sorted({e.artifact_id for e in events})
    artifacts = {a.id: a for a in store.get_artifacts_by_id(artifact_ids)} if artifact_ids else {}
    nodes = {}
    for execution in sorted(executions, key=lambda e: e.create_time_since_epoch):
        node_ctx = [c for c in store.get_contexts_by_execution(execution.id)
                    if c.type_id == node_type.id]
        node_id = node_ctx[0].name.split('.', 1)[-1] if node_ctx else str(execution.id)
        outputs: Dict[str, List] = {}
        inputs: Dict[str, List] = {}
        for event in events:
            if event.execution_id != execution.id or event.artifact_id not in artifacts:
                continue
            target = outputs if event.type in _OUTPUT_EVENTS else (
                inputs if event.type in _INPUT_EVENTS else None)
            if target is not None:
                target.setdefault(_event_key(event), []).append(artifacts[event.artifact_id])
        nodes[node_id] = NodeRun(
            node_id=node_id,
            state=metadata_store_pb2.Execution.State.Name(execution.last_known_state),
            seconds=(execution.last_update_time_since_epoch
                     - execution.create_time_since_epoch) / 1000.0,
            outputs=outputs, inputs=inputs, execution=execution)
    return PipelineRun(run_id=run_ctx.name, create_time_ms=run_ctx.create_time_since_epoch,
                       nodes=nodes)


def latest_run(metadata_path: str, pipeline_name: str) -> Optional[PipelineRun]:
    """The newest run of a pipeline, or None (only that run is read: the store's older runs
    cost nothing)."""
    store = open_store(metadata_path)
    contexts = _run_contexts(store, pipeline_name)
    return _load_run(store, contexts[-1]) if contexts else None


def node_state(metadata_path: str, pipeline_name: str, node_id: str) -> Optional[str]:
    """A node's state in the newest run ('COMPLETE', 'CACHED', 'FAILED', ...), or None.

    The console asks after every component: this reads the node's executions only, not
    the run's artifacts and events (latest_run's NodeRun.state is the same value).
    """
    store = open_store(metadata_path)
    contexts = _run_contexts(store, pipeline_name)
    node_ctx = store.get_context_by_type_and_name('node', f'{pipeline_name}.{node_id}')
    if not contexts or node_ctx is None:
        return None
    in_run = {e.id for e in store.get_executions_by_context(contexts[-1].id)}
    executions = [e for e in store.get_executions_by_context(node_ctx.id) if e.id in in_run]
    if not executions:
        return None
    newest = max(executions, key=lambda e: (e.create_time_since_epoch, e.id))
    return metadata_store_pb2.Execution.State.Name(newest.last_known_state)


def custom_property(artifact: metadata_store_pb2.Artifact, name: str):
    """A custom property's value (int, double or string), or None."""
    if name not in artifact.custom_properties:
        return None
    value = artifact.custom_properties[name]
    return getattr(value, value.WhichOneof('value'))
