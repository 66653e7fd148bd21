"""A user's own folders end to end: three classes with their own names, nested folders,
odd extensions and bad files -> a served model that answers with those names."""

import base64
import json
import os
import re
import subprocess
import sys

import pytest
import requests

from components import artifacts
from components.data_quality import outputs
from components.image_example_gen import spec as example_gen_spec
from models import export
from models import features
from pipeline import configs
from pipeline import nodes
from pipeline import pipeline as pipeline_def
from reports import mlmd_runs
from tests import data
from tests.serving.server_process import ServerProcess

pytestmark = pytest.mark.e2e


EPOCHS = 4
COMPONENT_LINE = re.compile(r'^\[(\d+)/(\d+)\] (\S+) \.\.\. (done \d+\.\d s|cached)$')
EPOCH_LINE = re.compile(rf'^ {{6}}epoch (\d+)/{EPOCHS}: loss \d+\.\d{{3}}, accuracy \d\.\d{{3}}, '
                        r'val_loss \d+\.\d{3}, val_accuracy \d\.\d{3} \(\d+\.\d s\)$')


@pytest.fixture(scope='module')
def any_run(tmp_path_factory):
    """`local_runner.py` on a messy root without split folders, as a user runs it, with a
    held-out test split."""
    work = tmp_path_factory.mktemp('any_folders')
    root = work / 'my photos'
    expected = data.make_any_root(root, per_class=20)
    # A temp folder of its own: the console is compared line by line, and a Trainer killed
    # elsewhere on this machine leaves a cache in the shared one that this run would remove
    # (and say so).
    temp = work / 'tmp'
    temp.mkdir()
    # Small images and a low bar keep it quick; the three classes are what is tested.
    # The synthetic class's images are a flat colour and a square, several of them the
    # same square a few pixels apart in another tint: near-copies that DataQuality finds
    # across the splits (test_data_quality_finds_the_synthetic_near_copies); the run goes
    # on so that the rest of the chain is tested on these folders.
    result = subprocess.run(
        [sys.executable, str(data.PROJECT_ROOT / 'local_runner.py'), '--data-root', str(root),
         '--work-dir', str(work / 'work'), '--epochs', str(EPOCHS), '--batch-size', '8',
         '--image-size', '96', '96', '--accuracy-threshold', '0.5', '--test-fraction', '0.2',
         '--max-leak-fraction', '1.0', '--weights', str(data.WEIGHTS)],
        capture_output=True, text=True, cwd=work, timeout=1200,
        env={**os.environ, 'TMPDIR': str(temp)})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # The config the runner built from these flags (paths, names, classes, splits).
    config = configs.local(str(work / 'work'), str(root), presplit=False,
                           class_names=data.ANY_CLASS_NAMES, test_fraction=0.2)
    run = mlmd_runs.latest_run(configs.metadata_path(str(work / 'work')), config.pipeline_name)
    return config, run, expected, result


def test_every_file_is_ingested_bad_or_ignored(any_run):
    config, run, expected, _ = any_run
    examples = run.output('ImageExampleGen', 'examples')
    with open(os.path.join(examples.uri, example_gen_spec.REPORT_FILE), encoding='utf-8') as f:
        report = json.load(f)
    on_disk = sum(len(files) for _, _, files in os.walk(config.data_root))
    assert on_disk == sum(len(v) for v in expected.values())
    assert report['files'] == on_disk
    assert report['images'] + len(report['bad_files']) + len(report['ignored_files']) == on_disk
    assert {b['path'] for b in report['bad_files']} == set(expected['bad'])
    for bad in report['bad_files']:
        assert bad['reason'].startswith(expected['bad'][bad['path']]), bad
    assert {i['path']: i['reason'][:len(expected['ignored'][i['path']])]
            for i in report['ignored_files']} == expected['ignored']
    # Stratified: each class keeps its share in every split.
    assert {split: counts['by_label'] for split, counts in report['splits'].items()} == {
        'train': {label: 12 for label in data.ANY_CLASS_NAMES},
        'eval': {label: 4 for label in data.ANY_CLASS_NAMES},
        'test': {label: 4 for label in data.ANY_CLASS_NAMES}}

    ingested = {}
    from components import examples_io  # pylint: disable=import-outside-toplevel
    for split in (features.TRAIN_SPLIT, features.EVAL_SPLIT, features.TEST_SPLIT):
        for example in examples_io.iter_examples(examples.uri, split):
            path = examples_io.value(example, features.PATH_KEY).decode()
            label = data.ANY_CLASS_NAMES[examples_io.value(example, features.LABEL_KEY)]
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


def test_data_quality_finds_the_synthetic_near_copies(any_run):
    _, run, expected, _ = any_run
    report = run.output(nodes.DATA_QUALITY, 'report').uri
    pairs = outputs.read_near_duplicates(report)
    # Named as found under the root (accents, spaces, nested folders), all in the
    # synthetic class: no pair of the real cats and dogs.
    assert pairs
    assert {expected['images'][row[key]] for row in pairs for key in ('path_a', 'path_b')} == {
        'Été'}
    summary = outputs.read_summary(report)
    assert summary['photos'] == len(expected['images'])
    # Leaks found and shown, not a problem at --max-leak-fraction 1.0.
    assert summary['leaks']['eval']['photos'] > 0 and summary['problems'] == []


def test_pushed_model_serves_the_class_names_over_rest(any_run, tmp_path):
    config, run, _, _ = any_run
    assert [node.state for node in run.nodes.values()] == ['COMPLETE'] * len(run.nodes)
    pushed = run.output('ImagePusher', 'pushed_model')
    assert mlmd_runs.custom_property(pushed, 'pushed') == 1, mlmd_runs.custom_property(
        pushed, 'not_pushed_reason')
    version_dir = mlmd_runs.custom_property(pushed, 'pushed_destination')
    with open(os.path.join(version_dir, export.CLASS_NAMES_FILE), encoding='utf-8') as f:
        assert f.read().splitlines() == list(data.ANY_CLASS_NAMES)

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
            assert row[features.CLASS_NAME_OUTPUT] == data.ANY_CLASS_NAMES[best]
        # The synthetic class is unlike any photo: the model must have learnt it.
        assert predictions[2][features.CLASS_NAME_OUTPUT] == 'Été'

        example = {features.IMAGE_KEY: {'b64': base64.b64encode(images[0]).decode()}}
        response = requests.post(f'{server.url}/v1/models/{config.model_name}:classify',
                                 json={'signature_name': features.EXAMPLES_SIGNATURE,
                                       'examples': [example]}, timeout=60)
        response.raise_for_status()
        [result] = response.json()['results']
        assert [name for name, _ in result] == list(data.ANY_CLASS_NAMES)
    finally:
        server.stop()


def details(lines, node_ids, node, count):
    """The `count` lines a component that says more prints between its opening line
    ("[i/n] Node ...") and its closing one ("[i/n] Node done 1.2 s"), both checked."""
    number = f'[{node_ids.index(node) + 1}/{len(node_ids)}]'
    first = lines.index(f'{number} {node} ...')
    closing = lines[first + 1 + count]
    assert re.match(rf'^{re.escape(number)} {node} done \d+\.\d s$', closing), closing
    return lines[first + 1:first + 1 + count]


def test_the_console_shows_components_epochs_and_a_summary(any_run):
    config, run, expected, result = any_run
    assert result.stderr == ''
    lines = result.stdout.splitlines()
    # 44 lines: one per component, DataQuality's counts, the Trainer's epochs, the
    # InfraValidator's and TFLiteExport's verdicts and the summary; nothing floods it.
    assert len(lines) <= 45, result.stdout
    assert not [line for line in lines if re.search(r'warn|error|traceback', line, re.I)]
    assert lines[:4] == [f'data root: {config.data_root}',
                         'layout: one folder per class, 20% of each class to eval and 20% to test '
                         'by content hash',
                         f'classes (3): {", ".join(data.ANY_CLASS_NAMES)}',
                         'input size: 96x96, set explicitly (--image-size)']
    node_ids = [c.id for c in pipeline_def.create_pipeline(config).components]
    assert set(node_ids) == set(run.nodes)
    # Every component but those that say more (DataQuality, the Trainer, the
    # InfraValidator, TFLiteExport) on one line, in the pipeline's order.
    verbose = ('DataQuality', 'Trainer', 'InfraValidator', 'TFLiteExport')
    others = [line for line in lines if line.startswith('[')
              and not re.search(rf'\] ({"|".join(verbose)}) ', line)]
    components = [COMPONENT_LINE.match(line) for line in others]
    assert all(components), others
    assert [(int(m.group(1)), int(m.group(2)), m.group(3)) for m in components] == [
        (i + 1, len(node_ids), n) for i, n in enumerate(node_ids) if n not in verbose]
    [quality] = details(lines, node_ids, 'DataQuality', 1)
    assert re.match(r'^ {6}60 photos: \d+ possibly mislabelled, \d+ near-duplicate pairs, '
                    r'\d+ held-out photos with a near-copy in train \(.*/DataQuality/report/'
                    r'\d+\)$', quality), quality
    for line, variant in zip(details(lines, node_ids, 'TFLiteExport', 2), ('float16', 'int8')):
        assert re.match(rf'^ {{6}}TFLite {variant}: \d+\.\d MB, accuracy \d\.\d{{4}} vs '
                        r'\d\.\d{4} \(SavedModel\) on 12 eval images, agreement \d+\.\d%, '
                        r'largest probability difference \d\.\d{4}: (ready|refused.*)$',
                        line), line
    [infra] = details(lines, node_ids, 'InfraValidator', 1)
    assert re.match(r'^ {6}blessed: our server loaded it in \d+\.\d s and answered 12 eval '
                    r'images as the Trainer did .*; p50 \d+\.\d ms per image over REST$',
                    infra), infra
    # The Trainer: the features of the 36 train photos' augmented copies, the epochs.
    trainer = details(lines, node_ids, 'Trainer', 1 + EPOCHS)
    assert re.match(r'^ {6}frozen features of 2 augmented copies of each of 36 training '
                    r"photos and the photo itself \(DataQuality's\): \d+\.\d s$",
                    trainer[0]), trainer[0]
    assert [EPOCH_LINE.match(line).group(1) for line in trainer[1:]] == [
        str(i) for i in range(1, EPOCHS + 1)], trainer[1:]

    summary = lines[-11:]
    images, bad, ignored = (len(expected[k]) for k in ('images', 'bad', 'ignored'))
    work = os.path.dirname(config.pipeline_root)
    assert summary[0] == (f'data: {images + bad + ignored} files = {images} images used + '
                          f'{bad} bad + {ignored} ignored; eval 12, test 12, train 36')
    # The bad files, by name, with the reason (issue 42).
    assert [summary.pop(1), summary.pop(1)] == [
        'bad: Hunde/broken.jpg: not a readable image (no known image format in its bytes)',
        'bad: Été/empty.GIF: empty file (0 bytes)']
    # Photos in formats TensorFlow does not decode are named with the way out.
    assert summary.pop(1) == ('1 .heic, 1 .webp photos are not read (TensorFlow decodes .jpg, '
                              '.jpeg, .png, .bmp, .gif): convert them, e.g. to .jpg')
    assert re.match(r'^data validation passed: .*/DataReport/report/\d+/index\.html$',
                    summary[1])
    assert re.match(r'^eval accuracy \d\.\d{4} on 12 images: blessed$', summary[2])
    assert re.match(r'^held-out test accuracy \d\.\d{4} on 12 images \(never trained, tuned '
                    r'or gated on\)$', summary[3])
    assert re.match(rf'^pushed version \d+: {work}/serving/image_classifier/\d+$', summary[4])
    assert summary[5] == f'run report: {work}/run_report.html'
    log_path = summary[6][len('log: '):]
    assert summary[6].startswith(f'log: {work}/logs/run-') and os.path.isfile(log_path)
    assert re.match(r'^pipeline finished in \d+ s$', summary[7])
    with open(log_path, encoding='utf-8') as f:
        log = f.read()
    # Nothing is lost by being quiet: TFX, Beam and TensorFlow wrote to the log.
    assert 'Component Trainer is running.' in log
    assert 'apache_beam' in log
    assert '[console] ' + summary[7] in log


def test_the_test_split_is_measured_apart_from_the_gate(any_run):
    config, run, _, _ = any_run
    assert run.nodes['Evaluator.test'].state == 'COMPLETE'
    from reports import run_report  # pylint: disable=import-outside-toplevel
    test = run_report.load_evaluation(run.output('Evaluator.test', 'evaluation').uri)
    assert test.example_count == 12 and test.thresholds == []
    gate = run_report.load_evaluation(run.output('Evaluator', 'evaluation').uri)
    assert gate.example_count == 12 and gate.thresholds
    # The Trainer never read the test split.
    trainer = run.nodes['Trainer'].execution
    assert 'test' not in json.loads(trainer.custom_properties['train_args'].string_value)[
        'splits']
    with open(os.path.join(os.path.dirname(config.pipeline_root), 'run_report.html'),
              encoding='utf-8') as f:
        page = f.read()
    assert 'Held-out test split' in page and 'Accuracy by class on the test split' in page
    assert run_report.fmt(test.accuracy) in page
