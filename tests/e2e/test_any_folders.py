"""A user's own folders end to end: three classes with their own names, nested folders,
odd extensions and bad files -> a served model that answers with those names."""

import base64
import json
import os

import pytest
import requests

from components import artifacts
from components.image_example_gen import layout
from components.image_example_gen import spec as example_gen_spec
from models import export
from models import features
from pipeline import configs
from reports import mlmd_runs
from tests import data
from tests.conftest import PipelineRun
from tests.serving.server_process import ServerProcess

pytestmark = pytest.mark.e2e


@pytest.fixture(scope='module')
def any_run(tmp_path_factory):
    """One pipeline run on a messy root without split folders (hash split)."""
    work = tmp_path_factory.mktemp('any_folders')
    expected = data.make_any_root(work / 'data', per_class=20)
    root = layout.inspect_data_root(str(work / 'data'))
    assert (root.presplit, root.labels) == (False, data.ANY_LABELS)
    # Small images and a low bar keep it quick; the three classes are what is tested.
    config = configs.local(str(work), root.root, presplit=root.presplit, labels=root.labels,
                           image_size=(96, 96), epochs=4, batch_size=8,
                           accuracy_threshold=0.5, weights=str(data.WEIGHTS), warmup_images=3)
    pipeline_run = PipelineRun(config, configs.metadata_path(str(work)), work)
    return pipeline_run, pipeline_run.run(), expected


def test_every_file_is_ingested_bad_or_ignored(any_run):
    pipeline_run, run, expected = any_run
    examples = run.output('ImageExampleGen', 'examples')
    with open(os.path.join(examples.uri, example_gen_spec.REPORT_FILE), encoding='utf-8') as f:
        report = json.load(f)
    on_disk = sum(len(files) for _, _, files in os.walk(pipeline_run.config.data_root))
    assert on_disk == sum(len(v) for v in expected.values())
    assert report['files'] == on_disk
    assert report['images'] + len(report['bad_files']) + len(report['ignored_files']) == on_disk
    assert {b['path'] for b in report['bad_files']} == set(expected['bad'])
    for bad in report['bad_files']:
        assert bad['reason'].startswith(expected['bad'][bad['path']]), bad
    assert {i['path']: i['reason'][:len(expected['ignored'][i['path']])]
            for i in report['ignored_files']} == expected['ignored']
    # Stratified: each class keeps its share in both splits.
    assert report['splits']['train']['by_label'] == {label: 16 for label in data.ANY_LABELS}
    assert report['splits']['eval']['by_label'] == {label: 4 for label in data.ANY_LABELS}

    ingested = {}
    from components import examples_io  # pylint: disable=import-outside-toplevel
    for split in (features.TRAIN_SPLIT, features.EVAL_SPLIT):
        for example in examples_io.iter_examples(examples.uri, split):
            path = examples_io.value(example, features.PATH_KEY).decode()
            label = data.ANY_LABELS[examples_io.value(example, features.LABEL_KEY)]
            ingested[path] = label
    assert ingested == expected['images']

    report_dir = run.output('DataReport', 'report').uri
    with open(os.path.join(report_dir, artifacts.VERDICT_JSON), encoding='utf-8') as f:
        verdict = json.load(f)
    assert verdict['passed'], verdict['problems']
    with open(os.path.join(report_dir, artifacts.REPORT_HTML), encoding='utf-8') as f:
        page = f.read()
    assert (f'{on_disk} files under the data root = {len(expected["images"])} images used + '
            f'{len(expected["bad"])} bad + {len(expected["ignored"])} ignored.') in page
    assert 'Été' in page and 'Chats domestiques' in page


def test_pushed_model_serves_the_class_names_over_rest(any_run, tmp_path):
    pipeline_run, run, _ = any_run
    assert [node.state for node in run.nodes.values()] == ['COMPLETE'] * len(run.nodes)
    pushed = run.output('ImagePusher', 'pushed_model')
    assert mlmd_runs.custom_property(pushed, 'pushed') == 1, mlmd_runs.custom_property(
        pushed, 'not_pushed_reason')
    version_dir = mlmd_runs.custom_property(pushed, 'pushed_destination')
    with open(os.path.join(version_dir, export.LABELS_FILE), encoding='utf-8') as f:
        assert f.read().splitlines() == list(data.ANY_LABELS)

    config = pipeline_run.config
    server = ServerProcess([f'--model_name={config.model_name}',
                            f'--model_base_path={os.path.dirname(version_dir)}'],
                           tmp_path / 'server.log').start()
    try:
        server.wait_ready()
        images = [data.photos('validation', 'cats', 1)[0].read_bytes(),
                  data.photos('validation', 'dogs', 1)[0].read_bytes(),
                  data.synthetic_image(99)]
        response = requests.post(
            f'{server.url}/v1/models/{config.model_name}:predict',
            json={'instances': [{'b64': base64.b64encode(b).decode()} for b in images]},
            timeout=60)
        response.raise_for_status()
        predictions = response.json()['predictions']
        for row in predictions:
            probabilities = row[features.PROBABILITIES_OUTPUT]
            assert len(probabilities) == 3
            best = max(range(3), key=probabilities.__getitem__)
            assert row[features.LABEL_OUTPUT] == data.ANY_LABELS[best]
        # The synthetic class is unlike any photo: the model must have learnt it.
        assert predictions[2][features.LABEL_OUTPUT] == 'Été'

        example = {features.IMAGE_KEY: {'b64': base64.b64encode(images[0]).decode()}}
        response = requests.post(f'{server.url}/v1/models/{config.model_name}:classify',
                                 json={'signature_name': features.EXAMPLES_SIGNATURE,
                                       'examples': [example]}, timeout=60)
        response.raise_for_status()
        [result] = response.json()['results']
        assert [name for name, _ in result] == list(data.ANY_LABELS)
    finally:
        server.stop()
