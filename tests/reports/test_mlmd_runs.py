"""reports/mlmd_runs.py on a real store: the newest run only, and a node's state in it.

A two-node TFX pipeline runs twice with LocalDagRunner on SQLite MLMD, caching on: the
first run's executions are COMPLETE, the second's CACHED, so reading the wrong run shows.
"""

import os

import pytest
from tfx.dsl.component.experimental.annotations import InputArtifact
from tfx.dsl.component.experimental.annotations import OutputArtifact
from tfx.dsl.component.experimental.annotations import Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.orchestration import metadata
from tfx.orchestration import pipeline as tfx_pipeline
from tfx.types import standard_artifacts

from reports import mlmd_runs

PIPELINE = 'mlmd-runs-test'


@component
def Make(text: Parameter[str],  # pylint: disable=invalid-name
         model: OutputArtifact[standard_artifacts.Model]):
    with open(os.path.join(model.uri, 'model.txt'), 'w', encoding='utf-8') as f:
        f.write(text)


@component
def Check(model: InputArtifact[standard_artifacts.Model],  # pylint: disable=invalid-name
          blessing: OutputArtifact[standard_artifacts.ModelBlessing]):
    with open(os.path.join(model.uri, 'model.txt'), encoding='utf-8') as f:
        blessing.set_int_custom_property('blessed', int(f.read() == 'ok'))


@pytest.fixture(scope='module')
def store(tmp_path_factory):
    """The metadata file after two runs of the same pipeline (the second one cached)."""
    from tfx.orchestration.local import local_dag_runner  # pylint: disable=import-outside-toplevel
    work = tmp_path_factory.mktemp('mlmd_runs')
    path = str(work / 'metadata.sqlite')
    for _ in range(2):
        make = Make(text='ok').with_id('Make')
        check = Check(model=make.outputs['model']).with_id('Check.variant')
        local_dag_runner.LocalDagRunner().run(tfx_pipeline.Pipeline(
            pipeline_name=PIPELINE, pipeline_root=str(work / 'root'), components=[make, check],
            enable_cache=True,
            metadata_connection_config=metadata.sqlite_metadata_connection_config(path)))
    return path


def test_latest_run_is_the_newest_of_all_runs(store):
    runs = mlmd_runs.pipeline_runs(mlmd_runs.open_store(store), PIPELINE)
    assert len(runs) == 2 and runs[0].create_time_ms <= runs[1].create_time_ms
    assert [n.state for n in runs[0].nodes.values()] == ['COMPLETE', 'COMPLETE']
    latest = mlmd_runs.latest_run(store, PIPELINE)
    assert latest.run_id == runs[1].run_id
    assert {k: n.state for k, n in latest.nodes.items()} == {
        'Make': 'CACHED', 'Check.variant': 'CACHED'}
    assert latest.output('Check.variant', 'blessing') is not None


def test_node_state_is_the_state_in_the_newest_run(store):
    latest = mlmd_runs.latest_run(store, PIPELINE)
    for node_id, node in latest.nodes.items():   # a node id with a dot included
        assert mlmd_runs.node_state(store, PIPELINE, node_id) == node.state
    assert mlmd_runs.node_state(store, PIPELINE, 'NotANode') is None
    assert mlmd_runs.node_state(store, 'another-pipeline', 'Make') is None
    assert mlmd_runs.latest_run(store, 'another-pipeline') is None
