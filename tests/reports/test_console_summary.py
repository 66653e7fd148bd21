"""reports/console_summary.py and the readers it goes through: each component's reader of
its own output file (None when absent, an error when cut short), the header, and the
failure line of a run that never reached ML Metadata."""

import json

import pytest

from components import artifacts
from components.data_report import spec as data_report_spec
from components.image_example_gen import spec as example_gen_spec
from components.image_pusher import spec as pusher_spec
from pipeline import configs
from pipeline import console
from reports import console_summary

READERS = [
    (example_gen_spec.read_report, example_gen_spec.REPORT_FILE),
    (data_report_spec.read_verdict, artifacts.VERDICT_JSON),
    (pusher_spec.read_push_result, pusher_spec.PUSH_RESULT_FILE),
]


@pytest.mark.parametrize('reader, name', READERS)
def test_a_component_reads_back_what_it_wrote(tmp_path, reader, name):
    assert reader(str(tmp_path)) is None
    content = {'passed': True, 'problems': [], 'images': 3, 'name': 'Été'}
    (tmp_path / name).write_text(json.dumps(content), encoding='utf-8')
    assert reader(str(tmp_path)) == content
    (tmp_path / name).write_text(json.dumps(content)[:10], encoding='utf-8')   # cut short
    with pytest.raises(ValueError):
        reader(str(tmp_path))


def test_the_header_says_data_layout_classes_and_input_size():
    config = configs.local('/w', '/photos', presplit=False, class_names=('a', 'b', 'c'),
                           eval_fraction=0.25, test_fraction=0.1, image_size=(96, 128))
    assert console_summary.header(config) == [
        'data root: /photos',
        'layout: one folder per class, 25% of each class to eval and 10% to test by content '
        'hash',
        'classes (3): a, b, c',
        'input size: 96x128, set explicitly (--image-size)']
    presplit = configs.local('/w', '/photos', presplit=True, test_folder=True,
                             image_size=(96, 96))
    assert console_summary.header(presplit)[1] == (
        'layout: train/, validation/ and test/ folders (validation = eval split)')


def test_a_run_that_recorded_nothing_fails_in_one_line_naming_the_log(tmp_path):
    config = configs.local(str(tmp_path), '/photos', image_size=(96, 96))
    con = console.Console(str(tmp_path / 'run.log'), verbose=False)
    failure = RuntimeError('data validation failed, training stopped:\n  - eval has 2 images\n'
                           '  - train has no dogs\nreport: /r/index.html')
    missing = str(tmp_path / 'metadata.sqlite')
    assert console_summary.failure_line(failure, con, config, missing) == (
        'error: data validation failed, training stopped: eval has 2 images (and 1 more); '
        f'see log {tmp_path / "run.log"}')
    assert console_summary.failure_line(KeyError(), con, config, missing) == (
        f'error: KeyError; see log {tmp_path / "run.log"}')
