"""The run report, built from real small pipeline runs and checked against their artifacts."""

import base64
import importlib.metadata
import io
import json
import os
import re
import shutil
import subprocess
from html import parser as html_parser
from typing import Dict, List, Optional

import numpy as np
import pytest
import tensorflow_model_analysis as tfma
from PIL import Image

from components import artifacts
from components.image_example_gen import spec as example_gen_spec
from models import history as training_history
from reports import mlmd_runs
from reports import run_report
from tests.conftest import SMALL

pytestmark = pytest.mark.e2e

SECTIONS = ('summary', 'data', 'augmentation-preview', 'training', 'evaluation', 'errors',
            'runs', 'run-facts')
DATA_URI = 'data:image/png;base64,'
CHROMIUM_NAMES = ('chromium', 'chromium-browser')


class ReportPage(html_parser.HTMLParser):
    """Sections of a report page: their text, tables (rows of cell texts), images and links."""

    def __init__(self):
        super().__init__()
        self.sections: Dict[str, Dict] = {}
        self._section: Optional[Dict] = None
        self._table: Optional[List] = None
        self._cell: Optional[List[str]] = None
        self._depth = 0  # nested tables: cells of inner tables belong to the outer cell

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == 'section':
            self._section = self.sections.setdefault(
                attrs['id'], {'text': [], 'tables': [], 'images': [], 'links': []})
        elif self._section is None:
            return
        elif tag == 'table':
            self._depth += 1
            if self._depth == 1:
                self._table = []
                self._section['tables'].append(self._table)
        elif tag == 'tr' and self._depth == 1:
            self._table.append([])
        elif tag in ('td', 'th') and self._depth == 1:
            self._cell = []
        elif tag == 'img':
            self._section['images'].append(attrs)
        elif tag == 'a':
            self._section['links'].append(attrs['href'])

    def handle_endtag(self, tag):
        if tag == 'section':
            self._section = None
        elif tag == 'table' and self._section is not None:
            self._depth -= 1
        elif tag in ('td', 'th') and self._depth == 1 and self._cell is not None:
            self._table[-1].append(' '.join(''.join(self._cell).split()))
            self._cell = None

    def handle_data(self, data):
        if self._section is not None:
            self._section['text'].append(data)
            if self._cell is not None:
                self._cell.append(data)

    def text(self, section: str) -> str:
        return ' '.join(''.join(self.sections[section]['text']).split())

    def table(self, section: str, first_header: str) -> List[List[str]]:
        """The rows (header first) of the section's table whose first header cell matches."""
        for table in self.sections[section]['tables']:
            if table and table[0] and table[0][0] == first_header:
                return table
        raise AssertionError(f'no table starting with {first_header!r} in {section}')

    def facts(self, section: str) -> Dict[str, str]:
        """Two-column tables without headers, as a dict (the first such table wins)."""
        found: Dict[str, str] = {}
        for table in self.sections[section]['tables']:
            for row in table:
                if len(row) == 2:
                    found.setdefault(row[0], row[1])
        return found


def parse(path: str) -> ReportPage:
    page = ReportPage()
    with open(path, encoding='utf-8') as f:
        page.feed(f.read())
    page.close()
    return page


def decode_images(page: ReportPage) -> Dict[str, Image.Image]:
    """alt -> decoded PNG, for every picture of the page; all must be data URIs."""
    images = {}
    for section in page.sections.values():
        for attrs in section['images']:
            assert attrs['src'].startswith(DATA_URI), attrs['src'][:40]
            image = Image.open(io.BytesIO(base64.b64decode(attrs['src'][len(DATA_URI):])))
            image.load()
            assert image.format == 'PNG' and image.width > 0 and image.height > 0
            images[attrs['alt']] = image
    return images


def candidate_metrics(evaluation_uri: str):
    """{(name, class id): value} of the evaluated (not baseline) model, overall slice."""
    values = {}
    for per_slice in tfma.load_metrics(evaluation_uri):
        if per_slice.slice_key.single_slice_keys:
            continue
        for entry in per_slice.metric_keys_and_values:
            key = entry.key
            if key.is_diff or key.model_name not in ('', 'candidate'):
                continue
            class_id = key.sub_key.class_id.value if key.sub_key.HasField('class_id') else None
            values[(key.name, class_id)] = entry.value.double_value.value
    return values


def tfma_confusion(evaluation_uri: str, classes: int) -> np.ndarray:
    matrix = np.zeros((classes, classes))
    for per_slice in tfma.load_plots(evaluation_uri):
        for entry in per_slice.plot_keys_and_values:
            if entry.key.model_name in ('', 'candidate'):
                plot = entry.value.multi_class_confusion_matrix_at_thresholds.matrices[0]
                for e in plot.entries:
                    matrix[e.actual_class_id, e.predicted_class_id] = e.num_weighted_examples
    return matrix


def read_json(path: str):
    with open(path, encoding='utf-8') as f:
        return json.load(f)


def chromium_screenshot(report: str, tmp_path) -> Image.Image:
    """Renders the report in headless Chromium (no network) and returns the screenshot."""
    binary = next(filter(None, map(shutil.which, CHROMIUM_NAMES)), None)
    if binary is None:
        missing = (f'no Chromium binary ({", ".join(CHROMIUM_NAMES)}) on PATH; '
                   'install it with .ci/install-chromium (Debian package chromium)')
        if os.environ.get('CI') == 'true':  # CI installs it: missing there is a failure
            pytest.fail(missing)
        pytest.skip(missing)
    shot = tmp_path / 'shot.png'
    command = [binary, '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
               '--no-first-run', '--disable-background-networking',
               '--disable-component-update', '--disable-sync',
               f'--user-data-dir={tmp_path / "chromium-profile"}', f'--screenshot={shot}',
               '--window-size=1200,3000', f'file://{report}']
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
    assert shot.is_file(), f'no screenshot; chromium exit {done.returncode}: {done.stderr[-2000:]}'
    image = Image.open(shot)
    image.load()
    assert image.format == 'PNG' and image.size == (1200, 3000)
    return image.convert('RGB')


def assert_not_blank(image: Image.Image) -> None:
    pixels = np.asarray(image, dtype=np.float32)
    assert pixels.std() > 20, pixels.std()
    # Text and pictures on a white page: many dark and many coloured pixels.
    assert (pixels.max(axis=-1) < 100).sum() > 5000
    assert (pixels.max(axis=-1) - pixels.min(axis=-1) > 60).sum() > 5000


@pytest.fixture(scope='module')
def first_report(small_run, tmp_path_factory):
    """The report of the small run's first (blessed and pushed) run, and the ids of the
    runs MLMD held when it was written (tests after it may add runs)."""
    pipeline_run, run = small_run
    out = tmp_path_factory.mktemp('report') / 'run_report.html'
    path = run_report.write_report(pipeline_run.metadata_path,
                                   pipeline_run.config.pipeline_name, str(out),
                                   run_id=run.run_id)
    runs = mlmd_runs.pipeline_runs(mlmd_runs.open_store(pipeline_run.metadata_path),
                                   pipeline_run.config.pipeline_name)
    return path, parse(path), [r.run_id for r in runs]


def test_every_section_is_there_and_every_picture_decodes(first_report):
    path, page, _ = first_report
    assert path.endswith('run_report.html') and os.path.isfile(path)
    assert set(SECTIONS) <= set(page.sections)
    assert 'comparison' not in page.sections  # one variant trained
    with open(path, encoding='utf-8') as f:
        content = f.read()
    assert 'could not be built' not in content
    # Self-contained: nothing is fetched when the page opens.
    assert not re.search(r'(src|href)="(https?:)?//', content)
    images = decode_images(page)
    for alt in ('images per class and split', 'sample images per class', 'augmentation preview',
                'transfer accuracy and loss per epoch', 'confusion matrix',
                'seconds per component'):
        assert alt in images, sorted(images)
    # The original plus nine augmented copies, three per row: taller than wide.
    preview = images['augmentation preview']
    assert preview.height > preview.width


def test_data_section_matches_the_example_gen_and_data_report(small_run, first_report):
    pipeline_run, run = small_run
    path, page, _ = first_report
    examples = run.output('ImageExampleGen', 'examples').uri
    image_report = read_json(os.path.join(examples, example_gen_spec.REPORT_FILE))
    class_names = list(pipeline_run.config.class_names)

    # Classes are rows (any number fits the page), splits columns, the train split first.
    rows = page.table('data', 'class')
    splits = rows[0][1:]
    assert splits[0] == 'train' and sorted(splits) == sorted(image_report['splits'])
    got = {row[0]: dict(zip(splits, map(int, row[1:]))) for row in rows[1:]}
    assert list(got) == class_names + ['all classes']
    assert got == {**{label: {split: image_report['splits'][split]['by_label'][label]
                              for split in splits} for label in class_names},
                   'all classes': {split: image_report['splits'][split]['images']
                                   for split in splits}}
    assert [got[label]['train'] for label in class_names] == [20, 20]

    checks = dict(row for row in page.table('data', 'file check')[1:])
    assert int(checks['bad files (not decodable)']) == len(image_report['bad_files'])
    assert int(checks['duplicate groups (same bytes)']) == len(image_report['duplicates'])
    assert int(checks['duplicates across train and eval']) == image_report[
        'cross_split_duplicates']

    report_dir = run.output('DataReport', 'report').uri
    verdict = read_json(os.path.join(report_dir, artifacts.VERDICT_JSON))
    assert verdict['passed']
    assert 'Data validation (DataReport): PASSED' in page.text('data')
    [link] = page.sections['data']['links']
    assert not os.path.isabs(link)
    assert os.path.samefile(os.path.join(os.path.dirname(path), link),
                            os.path.join(report_dir, artifacts.REPORT_HTML))


def test_training_section_matches_history_json(small_run, first_report):
    _, run = small_run
    _, page, _ = first_report
    history = read_json(os.path.join(run.output('Trainer', 'model_run').uri,
                                     training_history.HISTORY_FILE))
    rows = page.table('training', 'epoch')
    assert rows[0] == ['epoch', 'accuracy', 'val_accuracy', 'loss', 'val_loss', 'seconds']
    assert len(rows) - 1 == len(history['accuracy']) == 3
    for i, row in enumerate(rows[1:]):
        assert row[1:5] == [f'{history[k][i]:.4f}'
                            for k in ('accuracy', 'val_accuracy', 'loss', 'val_loss')]
        assert row[5] == f"{history['epoch_seconds'][i]:.1f}"
    assert (f"features of {history['views']} augmented copies of each training photo, computed "
            f"once in {history['seconds']['train_features']:.1f} s") in page.text('training')


def test_evaluation_section_matches_tfma_blessing_and_push(small_run, first_report):
    pipeline_run, run = small_run
    _, page, _ = first_report
    evaluation = run.output('Evaluator', 'evaluation').uri
    metrics = candidate_metrics(evaluation)
    accuracy = metrics[('sparse_categorical_accuracy', None)]

    rows = {row[0]: row[1:] for row in page.table('evaluation', 'metric')[1:]}
    assert rows['sparse_categorical_accuracy'][0] == f'{accuracy:.4f}'
    eval_images = sum(SMALL['validation'].values())
    assert rows['example_count'][0] == f"{metrics[('example_count', None)]:g}" == str(eval_images)
    assert page.facts('summary')['accuracy (eval)'] == f'{accuracy:.4f}'

    per_class = page.table('evaluation', 'class id')
    assert per_class[0] == ['class id', 'class', 'precision', 'recall', 'auc']
    for class_id, label in enumerate(pipeline_run.config.class_names):
        assert per_class[1 + class_id] == [str(class_id), label] + [
            f'{metrics[(name, class_id)]:.4f}' for name in ('precision', 'recall', 'auc')]

    matrix = tfma_confusion(evaluation, len(pipeline_run.config.class_names))
    shown = page.table('evaluation', 'true \\ predicted')
    names = list(pipeline_run.config.class_names)
    # Few short names head the columns (many or long ones: class ids, pages.plots.crowded).
    assert shown[0][1:] == names and [row[0] for row in shown[1:]] == names
    assert [[float(v) for v in row[1:]] for row in shown[1:]] == matrix.tolist()
    assert matrix.sum() == eval_images

    gate = dict((row[0], row[1]) for row in page.table('evaluation', 'gate')[1:])
    threshold = pipeline_run.config.accuracy_threshold
    assert gate['threshold'] == f'SparseCategoricalAccuracy >= {threshold:g}'
    assert gate['TFMA validation'] == 'PASSED'
    assert mlmd_runs.custom_property(run.output('Evaluator', 'blessing'), 'blessed') == 1
    assert gate['blessed'] == 'yes'
    pushed = run.output('ImagePusher', 'pushed_model')
    assert mlmd_runs.custom_property(pushed, 'pushed') == 1
    assert gate['pushed version'] == mlmd_runs.custom_property(pushed, 'pushed_version')
    assert gate['pushed path'] == mlmd_runs.custom_property(pushed, 'pushed_destination')
    assert os.path.isdir(gate['pushed path'])
    reference = run.output('ReferenceProfile', 'reference_profile')
    assert os.path.join(reference.uri, 'reference_profile.json') in page.text('evaluation')
    assert os.path.isfile(os.path.join(gate['pushed path'], 'assets.extra',
                                       'reference_profile.json'))


def test_errors_section_agrees_with_tfma_accuracy(small_run, first_report):
    _, run = small_run
    _, page, _ = first_report
    accuracy = candidate_metrics(run.output('Evaluator', 'evaluation').uri)[
        ('sparse_categorical_accuracy', None)]
    match = re.search(r'(\d+) misclassified of all (\d+) eval images', page.text('errors'))
    assert match, page.text('errors')
    wrong, seen = int(match.group(1)), int(match.group(2))
    assert seen == sum(SMALL['validation'].values())
    # The serving signature and TFMA's classification signature share one model.
    assert 1 - wrong / seen == pytest.approx(accuracy, abs=1e-6)
    if wrong:
        rows = page.table('errors', 'path')
        assert len(rows) - 1 == wrong
        for path, true_label, predicted, probability in rows[1:]:
            assert path.startswith('validation/') and f'/{true_label}/' in path
            assert predicted != true_label and 0.5 <= float(probability) <= 1.0
        assert 'misclassified eval images' in decode_images(page)


def test_runs_and_run_facts(small_run, first_report):
    pipeline_run, run = small_run
    _, page, listed = first_report
    rows = page.table('runs', 'run id')
    assert [row[0].replace(' (this report)', '') for row in rows[1:]] == listed[::-1]
    [mine] = [row for row in rows[1:] if row[0] == f'{run.run_id} (this report)']
    pushed = run.output('ImagePusher', 'pushed_model')
    accuracy = candidate_metrics(run.output('Evaluator', 'evaluation').uri)[
        ('sparse_categorical_accuracy', None)]
    assert mine[2:] == ['complete', 'transfer', f'{accuracy:.4f}', 'yes',
                        mlmd_runs.custom_property(pushed, 'pushed_version'),
                        f'{len(run.nodes)} / 0']

    facts = page.facts('run-facts')
    assert facts['run id'] == run.run_id
    assert facts['data root'] == pipeline_run.config.data_root
    timing = page.table('run-facts', 'component')
    assert {row[0] for row in timing[1:]} == set(run.nodes)
    assert all(row[1] == 'COMPLETE' and float(row[2]) >= 0 for row in timing[1:])
    config = json.loads(mlmd_runs.custom_property(run.nodes['Trainer'].execution,
                                                  'custom_config'))
    settings = dict((row[0], row[1]) for row in page.table('run-facts', 'setting')[1:])
    assert settings['epochs'] == str(config['epochs']) == '3'
    assert settings['model_variant'] == 'transfer'
    # The input size and why it was chosen (here: given explicitly).
    assert settings['image_size_reason'] == config['image_size_reason'] == \
        'set explicitly (--image-size)'
    versions = dict((row[0], row[1]) for row in page.table('run-facts', 'package')[1:])
    assert versions["tfx (recorded on this run's artifacts)"] == importlib.metadata.version('tfx')
    assert versions['tensorflow (installed)'] == importlib.metadata.version('tensorflow')
    assert versions['apache-beam (installed)'] == importlib.metadata.version('apache-beam')


def test_first_report_renders_in_headless_chromium(first_report, tmp_path):
    path, _, _ = first_report
    shot = chromium_screenshot(path, tmp_path)
    assert_not_blank(shot)


def test_cli_writes_the_latest_run_report(small_run, tmp_path, capsys):
    pipeline_run, _ = small_run
    out = tmp_path / 'latest.html'
    assert run_report.main(['--metadata-path', pipeline_run.metadata_path, '--pipeline-name',
                            pipeline_run.config.pipeline_name, '--out', str(out)]) == 0
    assert f'run report: {out}' in capsys.readouterr().out
    page = parse(str(out))
    assert set(SECTIONS) <= set(page.sections)
    decode_images(page)
    latest = mlmd_runs.latest_run(pipeline_run.metadata_path, pipeline_run.config.pipeline_name)
    assert page.facts('run-facts')['run id'] == latest.run_id
    accuracy = candidate_metrics(latest.output('Evaluator', 'evaluation').uri)[
        ('sparse_categorical_accuracy', None)]
    assert page.facts('summary')['accuracy (eval)'] == f'{accuracy:.4f}'
    pushed = latest.output('ImagePusher', 'pushed_model')
    gate = dict((row[0], row[1]) for row in page.table('evaluation', 'gate')[1:])
    if mlmd_runs.custom_property(pushed, 'pushed'):
        assert gate['pushed version'] == mlmd_runs.custom_property(pushed, 'pushed_version')
    else:
        reason = mlmd_runs.custom_property(pushed, 'not_pushed_reason')
        assert gate['not pushed because'] == ' '.join(reason.split())
        assert gate['blessed'] == 'no' and gate['TFMA validation'] == 'FAILED'
        result = tfma.load_validation_result(latest.output('Evaluator', 'evaluation').uri)
        failures = [f for per_slice in result.metric_validations_per_slice
                    for f in per_slice.failures]
        assert failures
        for failure in failures:
            assert (f'{failure.metric_key.name}' + (
                ' change vs the last pushed model' if failure.metric_key.is_diff else '') +
                    f' is {failure.metric_value.double_value.value:.4f}, not ') in gate['failures']

    assert run_report.main(['--metadata-path', str(tmp_path / 'none.sqlite'),
                            '--out', str(tmp_path / 'x.html')]) == 2
    assert run_report.main(['--metadata-path', pipeline_run.metadata_path, '--pipeline-name',
                            'no-such-pipeline', '--out', str(tmp_path / 'x.html')]) == 2
    assert not (tmp_path / 'x.html').exists()


@pytest.fixture(scope='module')
def stopped_report(stopped_run, tmp_path_factory):
    """The report of the run the DataGate stopped (tests/conftest.py, imbalanced train split)."""
    pipeline_run, _, run = stopped_run
    path = run_report.write_report(pipeline_run.metadata_path,
                                   pipeline_run.config.pipeline_name,
                                   str(tmp_path_factory.mktemp('stopped_report') /
                                       'run_report.html'))
    return pipeline_run, run, path, parse(path)


def test_report_of_a_run_stopped_by_the_data_gate(stopped_report):
    _, run, path, page = stopped_report
    assert run.nodes['DataGate'].state == 'FAILED' and 'Trainer' not in run.nodes
    assert set(SECTIONS) <= set(page.sections)
    summary = page.text('summary')
    assert 'Run stopped at DataGate: the components after it did not run.' in summary
    assert "label balance: class 'cats' is 88.9% of the train split (40 of 45)" in summary
    assert page.facts('summary')['outcome'] == 'stopped at DataGate'
    assert page.facts('summary')['data validation'] == 'FAILED'

    report_dir = run.output('DataReport', 'report').uri
    verdict = read_json(os.path.join(report_dir, artifacts.VERDICT_JSON))
    data = page.text('data')
    assert 'Data validation (DataReport): FAILED' in data
    for problem in verdict['problems']:
        assert ' '.join(problem.split()) in data
    [link] = page.sections['data']['links']
    assert os.path.samefile(os.path.join(os.path.dirname(path), link),
                            os.path.join(report_dir, artifacts.REPORT_HTML))
    rows = page.table('data', 'class')
    train = {row[0]: row[rows[0].index('train')] for row in rows[1:]}
    assert train == {'cats': '40', 'dogs': '5', 'all classes': '45'}

    for section, what in (('training', 'model'), ('evaluation', 'evaluation')):
        assert f'did not run (the run stopped at DataGate): no {what}.' in page.text(section)
    assert 'augmentation preview' in decode_images(page)
    with open(path, encoding='utf-8') as f:
        assert 'could not be built' not in f.read()
    [row] = page.table('runs', 'run id')[1:]
    assert row[2] == 'stopped at DataGate'


def test_stopped_report_renders_in_headless_chromium(stopped_report, tmp_path):
    shot = chromium_screenshot(stopped_report[2], tmp_path)
    assert_not_blank(shot)


def test_comparison_table_when_several_variants_were_trained(small_run, tmp_path):
    # Last in this module: it adds a run (data stages and main Trainer cached) to the
    # shared store.
    pipeline_run, _ = small_run
    run = pipeline_run.run(compare_variants=('cnn',))
    assert run.nodes['Trainer.cnn'].state == 'COMPLETE'
    path = run_report.write_report(pipeline_run.metadata_path,
                                   pipeline_run.config.pipeline_name,
                                   str(tmp_path / 'compare.html'))
    page = parse(path)
    assert 'comparison' in page.sections
    rows = page.table('comparison', 'variant')
    assert rows[0] == ['variant', 'node', 'final train accuracy', 'final val accuracy',
                       'best val accuracy', 'epochs', 'fit seconds', 'component seconds']
    by_variant = {row[0]: row for row in rows[1:]}
    assert set(by_variant) == {'transfer', 'cnn'}
    for variant, node in (('transfer', 'Trainer'), ('cnn', 'Trainer.cnn')):
        history = read_json(os.path.join(run.output(node, 'model_run').uri,
                                         training_history.HISTORY_FILE))
        assert by_variant[variant][1:6] == [
            node, f"{history['accuracy'][-1]:.4f}", f"{history['val_accuracy'][-1]:.4f}",
            f"{max(history['val_accuracy']):.4f}", str(len(history['accuracy']))]
    images = decode_images(page)
    assert 'accuracy per epoch, one line per variant' in images
    assert 'cnn accuracy and loss per epoch' in images
