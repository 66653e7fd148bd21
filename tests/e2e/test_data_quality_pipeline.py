"""DataQuality in the pipeline: the Trainer reuses its features, the data report shows its
suspects, and a near-duplicate leak stops the run at the DataGate with one clear line."""

import json
import os

import pytest
from PIL import Image

from components import artifacts
from components.data_gate.component import DataValidationError
from components.data_quality import outputs
from pipeline import nodes
from reports import mlmd_runs
from reports import run_report
from tests import data
from tests.conftest import make_run

pytestmark = pytest.mark.e2e


def test_stage_ran_and_the_trainer_reused_its_eval_features(small_run):
    _, run = small_run
    assert run.nodes[nodes.DATA_QUALITY].state == 'COMPLETE'
    summary = outputs.read_summary(run.output(nodes.DATA_QUALITY, 'report').uri)
    assert summary['splits'] == {'train': 40, 'eval': 60}
    assert summary['problems'] == []
    history = run_report.read_history(run.nodes[nodes.TRAINER])
    assert history['eval_features_reused'] is True
    report = run.output(nodes.DATA_REPORT, 'report').uri
    with open(os.path.join(report, artifacts.VERDICT_JSON)) as f:
        verdict = json.load(f)
    assert verdict['passed'] and verdict['settings']['max_leak_fraction'] == 0.01
    with open(os.path.join(report, artifacts.REPORT_HTML)) as f:
        page = f.read()
    assert 'Possible label errors' in page and 'Near-duplicates and leaks' in page


def test_a_near_copy_of_a_training_photo_in_eval_stops_the_run(tmp_path):
    pipeline_run = make_run(tmp_path, {'train': {'cats': 12, 'dogs': 12},
                                       'validation': {'cats': 6, 'dogs': 6}})
    root = tmp_path / 'data'
    copied = []
    for label in ('cats', 'dogs'):
        original = data.photos('train', label, 1)[0]
        image = Image.open(original)
        small = image.resize((image.width * 2 // 3, image.height * 2 // 3))
        copy = root / 'validation' / label / f'small-{original.name}'
        copy.write_bytes(data.encode(small, 'JPEG', quality=80))
        copied.append((f'validation/{label}/{copy.name}', f'train/{label}/{original.name}'))
    with pytest.raises(DataValidationError) as err:
        pipeline_run.run()
    message = str(err.value)
    assert ('near-duplicate leak: 2 of 14 eval photos (14.3%) have a near-copy in the train '
            'split, above max_leak_fraction 1.0%') in message, message
    for copy, original in copied:
        assert f'{copy} ~ {original}' in message
    run = mlmd_runs.latest_run(pipeline_run.metadata_path, pipeline_run.config.pipeline_name)
    assert run.nodes[nodes.DATA_GATE].state == 'FAILED' and nodes.TRAINER not in run.nodes
    with open(os.path.join(run.output(nodes.DATA_REPORT, 'report').uri,
                           artifacts.REPORT_HTML)) as f:
        page = f.read()
    assert 'near-duplicate leak' in page and 'alt="near-duplicate pairs"' in page
