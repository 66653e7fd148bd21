"""kubeflow_v2_runner: the compiled KFP v2 spec is the local pipeline, on Dataflow and gs://.

Only compilation runs here (no cloud, no Docker engine, no KFP cluster).
"""

import importlib
import json
import re
import subprocess
import sys

import pytest

import kubeflow_v2_runner
from pipeline import configs
from pipeline import pipeline as pipeline_def
from tests import data

IMAGE = 'europe-west4-docker.pkg.dev/test-project/tfx/image-classification:test'
CLOUD = dict(project='test-project', region='europe-west4', image=IMAGE,
             data_root='gs://test-bucket/cats_vs_dogs',
             pipeline_root='gs://test-bucket/pipeline_root',
             serving_dir='gs://test-bucket/serving',
             temp_location='gs://test-bucket/tmp')
DATAFLOW_ARGS = ['--runner=DataflowRunner', '--project=test-project', '--region=europe-west4',
                 '--temp_location=gs://test-bucket/tmp', f'--sdk_container_image={IMAGE}']
# The components whose executor is a BeamExecutorSpec.
BEAM_COMPONENTS = {'ImageExampleGen', 'StatisticsGen', 'Transform', 'Evaluator', 'ReferenceProfile'}
COMPARE = ('cnn',)
def _cli_flags(output_dir) -> list:
    return ['--project', CLOUD['project'], '--region', CLOUD['region'], '--image', IMAGE,
            '--data-root', CLOUD['data_root'], '--pipeline-root', CLOUD['pipeline_root'],
            '--serving-dir', CLOUD['serving_dir'], '--temp-location', CLOUD['temp_location'],
            '--output-dir', str(output_dir)]


@pytest.fixture(scope='module')
def local_pipeline(tmp_path_factory):
    root = tmp_path_factory.mktemp('local')
    return pipeline_def.create_pipeline(configs.local(
        str(root / 'work'), str(root / 'data'), compare_variants=COMPARE))


@pytest.fixture(scope='module')
def spec(tmp_path_factory):
    config = configs.vertex(**CLOUD, compare_variants=COMPARE)
    output_dir = tmp_path_factory.mktemp('spec')
    path = kubeflow_v2_runner.compile_pipeline(config, image=IMAGE,
                                               output_dir=str(output_dir),
                                               output_filename='spec.json')
    assert path == str(output_dir / 'spec.json')
    with open(path, encoding='utf-8') as f:
        return json.load(f)


def _tasks(spec) -> dict:
    return spec['pipelineSpec']['root']['dag']['tasks']


def _executor(spec, task_name: str) -> dict:
    component = spec['pipelineSpec']['components'][_tasks(spec)[task_name]['componentRef']['name']]
    return spec['pipelineSpec']['deploymentSpec']['executors'][component['executorLabel']]


def _parameter(spec, task_name: str, name: str):
    value = _tasks(spec)[task_name]['inputs']['parameters'][name]['runtimeValue']['constantValue']
    return next(iter(value.values()))


def _node_id(task_name: str, node_ids) -> str:
    """The local node a task comes from: KFP splits a Resolver into '<id>-...-resolver' tasks."""
    if task_name in node_ids:
        return task_name
    owners = [i for i in node_ids
              if task_name.startswith(f'{i}-') and task_name.endswith('-resolver')]
    assert len(owners) == 1, f'task {task_name} matches no local node ({sorted(node_ids)})'
    return owners[0]


def _beam_args(args: list) -> list:
    """Container arguments after the executor's own (`--json_serialized_invocation_args {{$}}`)."""
    return args[args.index('{{$}}') + 1:]


def test_custom_artifact_types_resolve_by_type_name(local_pipeline):
    # KFP v2 compiles a custom type only when TYPE_NAME looks like '<module>.<Class>', and the
    # container imports the class from that name (kubeflow_v2_entrypoint_utils._parse_raw_artifact).
    custom = {channel.type for node in local_pipeline.components
              for channel in node.outputs.values()
              if not channel.type.__module__.startswith('tfx.')}
    assert custom, 'expected our DataValidationReport among the output types'
    for artifact_type in custom:
        module, _, name = artifact_type.TYPE_NAME.rpartition('.')
        assert module and getattr(importlib.import_module(module), name, None) is artifact_type, (
            f'{artifact_type.__module__}.{artifact_type.__name__} has TYPE_NAME '
            f'{artifact_type.TYPE_NAME!r}; KFP v2 needs an import path with one dot, e.g. '
            f"'components.{artifact_type.__name__}' exported by components/__init__.py")


def test_spec_has_every_local_component_with_the_same_dependencies(spec, local_pipeline):
    nodes = {node.id: node for node in local_pipeline.components}
    tasks = _tasks(spec)
    assert {_node_id(name, nodes) for name in tasks} == set(nodes)
    assert f'Trainer.{COMPARE[0]}' in tasks
    for name, task in tasks.items():
        own = _node_id(name, nodes)
        depends_on = {_node_id(d, nodes) for d in task.get('dependentTasks', [])} - {own}
        assert depends_on == {n.id for n in nodes[own].upstream_nodes}, name
    # The one edge without a data channel (add_upstream_node): the gate before Transform.
    assert 'DataGate' in tasks['Transform'].get('dependentTasks', [])
    assert tasks['DataGate'].get('dependentTasks') == ['DataReport']


def test_dataflow_args_reach_every_beam_component(spec, local_pipeline):
    assert {node.id for node in local_pipeline.components
            if hasattr(node.executor_spec, 'beam_pipeline_args')} == BEAM_COMPONENTS
    for name in BEAM_COMPONENTS:
        container = _executor(spec, name)['container']
        assert _beam_args(container['args']) == DATAFLOW_ARGS, name
    # ImageExampleGen's driver (input fingerprinting on gs://) gets them too.
    driver = _executor(spec, 'ImageExampleGen')['container']['lifecycle']['preCacheCheck']
    assert driver['args'][-len(DATAFLOW_ARGS):] == DATAFLOW_ARGS


def test_dataflow_args_only_in_beam_components(spec):
    for name, task in _tasks(spec).items():
        container = _executor(spec, name).get('container')
        if container and name not in BEAM_COMPONENTS:
            assert _beam_args(container['args']) == [], name


def test_vertex_never_caches_example_gen_and_caches_the_rest(spec):
    # TFX's ExampleGen driver on Vertex fingerprints `train/*` (the class folders), not
    # the photos inside: a cache hit would hide changed photos.
    caching = {name: task.get('cachingOptions', {}).get('enableCache')
               for name, task in _tasks(spec).items() if 'cachingOptions' in task}
    assert caching.pop('ImageExampleGen') is False
    assert caching and all(caching.values()), caching


def test_spec_holds_the_configured_paths_and_image(spec):
    assert spec['runtimeConfig']['gcsOutputDirectory'] == 'gs://test-bucket/pipeline_root'
    assert _parameter(spec, 'ImageExampleGen', 'input_base') == 'gs://test-bucket/cats_vs_dogs'
    destination = json.loads(_parameter(spec, 'ImagePusher', 'push_destination'))
    assert destination == {
        'filesystem': {'base_directory': 'gs://test-bucket/serving/image_classifier'}}
    assert _parameter(spec, 'ImageSchemaGen', 'schema_file') == '/pipeline/schema/schema.pbtxt'
    assert json.loads(_parameter(spec, 'ImageSchemaGen', 'class_names')) == ['cats', 'dogs']
    assert json.loads(_parameter(spec, 'Trainer', 'custom_config'))['weights'] == 'imagenet'
    images = {name: _executor(spec, name).get('container', {}).get('image')
              for name in _tasks(spec)}
    resolvers = {name for name in images if name.endswith('-resolver')}
    assert len(resolvers) == 2 and all(images[name] is None for name in resolvers)
    assert {images[name] for name in set(images) - resolvers} == {IMAGE}
    # Nothing of the compiling machine leaks into the spec (e.g. the local schema path).
    assert str(data.PROJECT_ROOT) not in json.dumps(spec)


@pytest.mark.parametrize('field', ['data_root', 'pipeline_root', 'serving_dir',
                                   'temp_location'])
def test_vertex_preset_rejects_local_paths(field):
    with pytest.raises(ValueError, match=f'{field} must be a gs:// URL.*/tmp/local'):
        configs.vertex(**{**CLOUD, field: '/tmp/local'})


def test_vertex_preset_uses_the_curated_schema_for_any_labels():
    assert configs.vertex(**CLOUD).schema_path == configs.IMAGE_CURATED_SCHEMA
    assert configs.vertex(**CLOUD, class_names=('ant', 'bee', 'fly')).schema_path == (
        configs.IMAGE_CURATED_SCHEMA)


def test_image_holds_the_curated_schema_where_the_spec_says():
    dockerfile = (data.PROJECT_ROOT / 'Dockerfile').read_text()
    assert re.search(r'^FROM tensorflow/tfx:1\.16\.0\s*$', dockerfile, re.M)
    assert re.search(rf'^WORKDIR {configs.IMAGE_PROJECT_DIR}\s*$', dockerfile, re.M)
    assert re.search(rf'^COPY \. {configs.IMAGE_PROJECT_DIR}/?\s*$', dockerfile, re.M)
    # Editable: schema/ is no package, so a normal install would leave CURATED_SCHEMA
    # pointing into site-packages, where no schema is.
    assert re.search(rf'pip install .*-e {configs.IMAGE_PROJECT_DIR}\b', dockerfile)
    relative = configs.IMAGE_CURATED_SCHEMA[len(configs.IMAGE_PROJECT_DIR) + 1:]
    assert (data.PROJECT_ROOT / relative).is_file()
    ignored = [line.strip() for line in
               (data.PROJECT_ROOT / '.dockerignore').read_text().splitlines()
               if line.strip() and not line.startswith('#')]
    assert {'tests', '.venv', '.git'} <= set(ignored)
    assert not any(pattern.strip('/*') in ('schema', 'pipeline', 'components', 'models')
                   for pattern in ignored)


def test_cli_writes_the_spec_and_prints_its_path(tmp_path):
    output_dir = tmp_path / 'out'
    result = subprocess.run(
        [sys.executable, str(data.PROJECT_ROOT / 'kubeflow_v2_runner.py'),
         *_cli_flags(output_dir), '--output-filename', 'cli.json',
         '--class-names', 'ant', 'bee', 'fly', '--no-presplit', '--epochs', '3',
         '--beam-arg=--max_num_workers=4', '--snapshot-data-root'],
        capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    path = output_dir / 'cli.json'
    assert f'pipeline spec: {path}' in result.stdout.splitlines()
    assert sorted(p.name for p in tmp_path.iterdir()) == ['out']  # nothing in the cwd
    spec = json.loads(path.read_text())
    assert json.loads(_parameter(spec, 'ImageExampleGen', 'class_names')) == ['ant', 'bee', 'fly']
    assert json.loads(_parameter(spec, 'ImageExampleGen', 'input_config')) == {
        'splits': [{'name': 'single_split', 'pattern': '*'}]}
    assert json.loads(_parameter(spec, 'Trainer', 'custom_config'))['epochs'] == 3
    # A snapshot data root: every step may come from Vertex's cache, ImageExampleGen too.
    caching = {name: task['cachingOptions'].get('enableCache')
               for name, task in _tasks(spec).items() if 'cachingOptions' in task}
    assert caching['ImageExampleGen'] is True and all(caching.values()), caching
    # Other class names: the curated schema with their domain.
    assert json.loads(_parameter(spec, 'ImageSchemaGen', 'class_names')) == ['ant', 'bee', 'fly']
    assert 'SchemaGen' not in _tasks(spec)
    for name in BEAM_COMPONENTS:
        args = _beam_args(_executor(spec, name)['container']['args'])
        assert args == DATAFLOW_ARGS + ['--max_num_workers=4'], name


def test_missing_required_flags_give_one_line_error(tmp_path):
    result = subprocess.run(
        [sys.executable, str(data.PROJECT_ROOT / 'kubeflow_v2_runner.py'),
         '--project', 'test-project', '--data-root', CLOUD['data_root']],
        capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: ')
    for flag in ('--region', '--image', '--pipeline-root', '--serving-dir',
                 '--temp-location', '--output-dir'):
        assert flag in lines[0]
    assert '--project' not in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_local_path_gives_one_line_error(tmp_path, capsys):
    flags = _cli_flags(tmp_path / 'out')
    flags[flags.index('--serving-dir') + 1] = str(tmp_path / 'serving')
    assert kubeflow_v2_runner.main(flags) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith('error: serving_dir must be a gs:// URL')
    assert str(tmp_path / 'serving') in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_inspect_data_root_takes_labels_and_layout_from_the_root(monkeypatch):
    from components.image_example_gen import layout  # pylint: disable=import-outside-toplevel
    seen = []

    def inspect(root):
        seen.append(root)
        return layout.DataRoot(root=root, presplit=False, class_names=('ant', 'bee', 'fly'))

    monkeypatch.setattr(layout, 'inspect_data_root', inspect)
    args = kubeflow_v2_runner.parse_args(_cli_flags('out') + ['--inspect-data-root'])
    config = kubeflow_v2_runner.build_config(args)
    assert seen == [CLOUD['data_root']]
    assert (config.class_names, config.presplit, config.schema_path) == (
        ('ant', 'bee', 'fly'), False, configs.IMAGE_CURATED_SCHEMA)
    assert config.beam_pipeline_args == tuple(DATAFLOW_ARGS)
