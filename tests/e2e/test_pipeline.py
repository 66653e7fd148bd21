"""The whole pipeline with LocalDagRunner on a small real subset."""

import json
import os
import re

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_data_validation as tfdv
import tensorflow_model_analysis as tfma
from tfx.types import artifact_utils

from components import artifacts
from components import examples_io
from components.image_example_gen import spec as example_gen_spec
from components.image_pusher import spec as pusher_spec
from models import features
from reports import mlmd_runs
from tests import data
from tests.conftest import SMALL

pytestmark = pytest.mark.e2e

NODES = ['ImageExampleGen', 'DataQuality', 'StatisticsGen', 'ImageSchemaGen', 'ExampleValidator',
         'DataReport', 'DataGate', 'Transform', 'Trainer', 'latest_pushed_model_resolver',
         'Evaluator', 'ReferenceProfile', 'InfraValidator', 'ImagePusher', 'TFLiteExport']


def pushed_versions(config):
    base = os.path.join(config.serving_dir, config.model_name)
    return sorted(int(v) for v in os.listdir(base) if v.isdigit()) if os.path.isdir(base) else []


def test_every_component_ran_and_wrote_its_artifacts(small_run):
    pipeline_run, run = small_run
    assert set(run.nodes) == set(NODES)
    assert {n.state for n in run.nodes.values()} == {'COMPLETE'}

    examples = run.output('ImageExampleGen', 'examples')
    assert artifact_utils.decode_split_names(
        mlmd_runs.custom_property(examples, 'split_names') or
        examples.properties['split_names'].string_value) == ['train', 'eval']
    with open(os.path.join(examples.uri, example_gen_spec.REPORT_FILE)) as f:
        report = json.load(f)
    assert report['splits']['train']['by_label'] == SMALL['train']
    assert report['splits']['eval']['by_label'] == SMALL['validation']

    verdict_path = os.path.join(run.output('DataReport', 'report').uri, artifacts.VERDICT_JSON)
    with open(verdict_path) as f:
        verdict = json.load(f)
    assert verdict['passed'] and verdict['problems'] == []
    assert verdict['label_counts'] == {'train': SMALL['train'], 'eval': SMALL['validation']}
    # StatisticsGen read the schema: the encoded images are sized, not counted as strings.
    train_stats = tfdv.load_stats_binary(os.path.join(examples_io.split_dir(
        run.output('StatisticsGen', 'statistics').uri, 'train'), 'FeatureStats.pb'))
    [image] = [f for f in train_stats.datasets[0].features
               if f.path.step == [features.IMAGE_KEY]]
    assert image.HasField('bytes_stats') and not image.HasField('string_stats')
    photo_sizes = [p.stat().st_size for name, count in SMALL['train'].items()
                   for p in data.photos('train', name, count)]
    assert image.bytes_stats.max_num_bytes == max(photo_sizes)
    with open(os.path.join(os.path.dirname(verdict_path), artifacts.REPORT_HTML)) as f:
        page = f.read()
    assert 'encoded size: avg' in page
    # The label rules in words, with this data set's numbers, also when they pass.
    assert 'Balance, train split (40 images): each class should have 50.0% ± ' in page
    assert 'Balance, eval split (60 images): each class should have 50.0% ± ' in page

    transform_graph = run.output('Transform', 'transform_graph').uri
    assert os.path.isfile(os.path.join(transform_graph, 'transform_fn', 'saved_model.pb'))

    history_path = os.path.join(run.output('Trainer', 'model_run').uri, 'history.json')
    with open(history_path) as f:
        history = json.load(f)
    assert len(history['accuracy']) == len(history['val_accuracy']) == 3
    assert len(history['epoch_seconds']) == 3
    # By default the head trained on the frozen features of 3 augmented copies per photo.
    assert history['views'] == history['settings']['augmented_views'] == 3

    blessing = run.output('Evaluator', 'blessing')
    assert mlmd_runs.custom_property(blessing, 'blessed') == 1
    evaluation = run.output('Evaluator', 'evaluation').uri
    metrics = tfma.load_metrics(evaluation)
    [overall] = [m for m in metrics if not m.slice_key.single_slice_keys]
    names = {k.key.name for k in overall.metric_keys_and_values}
    assert {'example_count', 'sparse_categorical_accuracy', 'auc', 'precision',
            'recall'} <= names


def test_pushed_model_classifies_raw_jpeg_bytes(small_run):
    pipeline_run, run = small_run
    pushed = run.output('ImagePusher', 'pushed_model')
    assert mlmd_runs.custom_property(pushed, 'pushed') == 1
    version = int(mlmd_runs.custom_property(pushed, 'pushed_version'))
    assert pushed_versions(pipeline_run.config) == [version]
    version_dir = os.path.join(pipeline_run.config.serving_dir, pipeline_run.config.model_name,
                               str(version))
    assert os.path.isfile(os.path.join(version_dir, 'assets.extra',
                                       'tf_serving_warmup_requests'))
    assert not [n for n in os.listdir(os.path.dirname(version_dir)) if n.startswith('.')]

    model = tf.saved_model.load(version_dir)
    photos = data.photos('validation', 'cats', 2) + data.photos('validation', 'dogs', 2)
    images = tf.constant([p.read_bytes() for p in photos])
    out = model.signatures[features.SERVING_SIGNATURE](**{features.SERVING_INPUT: images})
    probs = out[features.PROBABILITIES_OUTPUT].numpy()
    assert probs.shape == (4, 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    index = out[features.CLASS_INDEX_OUTPUT].numpy()
    np.testing.assert_array_equal(index, probs.argmax(axis=1))
    assert [l.decode() for l in out[features.CLASS_NAME_OUTPUT].numpy()] == [
        pipeline_run.config.class_names[i] for i in index]

    examples = tf.constant([tf.train.Example(features=tf.train.Features(feature={
        features.IMAGE_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[p.read_bytes()]))
    })).SerializeToString() for p in photos])
    classified = model.signatures[features.EXAMPLES_SIGNATURE](
        **{features.EXAMPLES_INPUT: examples})
    np.testing.assert_allclose(classified[features.SCORES_OUTPUT].numpy(), probs, rtol=1e-5)
    assert classified[features.CLASSES_OUTPUT].numpy()[0].tolist() == [b'cats', b'dogs']


def test_rerun_reuses_cached_outputs(small_run):
    pipeline_run, first = small_run
    versions_before = pushed_versions(pipeline_run.config)
    runs_before = mlmd_runs.pipeline_runs(mlmd_runs.open_store(pipeline_run.metadata_path),
                                          pipeline_run.config.pipeline_name)
    again = pipeline_run.run()
    assert again.run_id != first.run_id
    states = {node: n.state for node, n in again.nodes.items()}
    # The first pushed model is now the baseline, a new input of the Evaluator: it and
    # the Pusher may run again (as in TFX's penguin e2e test); nothing else does.
    rerun = {'latest_pushed_model_resolver', 'Evaluator', 'ImagePusher'}
    assert {node: s for node, s in states.items() if node not in rerun} == {
        node: 'CACHED' for node in NODES if node not in rerun}
    if len(runs_before) == 1:   # the first rerun: the baseline is new to the Evaluator
        assert states['Evaluator'] == 'COMPLETE'
    assert mlmd_runs.custom_property(again.output('Evaluator', 'blessing'), 'blessed') == 1
    # The same model is not pushed twice.
    pushed = again.output('ImagePusher', 'pushed_model')
    assert mlmd_runs.custom_property(pushed, 'pushed_version') == str(versions_before[-1])
    assert pushed_versions(pipeline_run.config) == versions_before
    # Once more, with nothing new: every component is a cache hit.
    third = pipeline_run.run()
    assert {node: n.state for node, n in third.nodes.items()
            if node != 'latest_pushed_model_resolver'} == {
        node: 'CACHED' for node in NODES if node != 'latest_pushed_model_resolver'}
    assert pushed_versions(pipeline_run.config) == versions_before


def test_model_below_threshold_is_not_pushed(small_run):
    pipeline_run, _ = small_run
    versions_before = pushed_versions(pipeline_run.config)
    # Random (not ImageNet) weights in the frozen base: chance-level accuracy. No
    # TFLiteExport: its models of this unpushed one are not what is tested.
    run = pipeline_run.run(weights=None, epochs=1, accuracy_threshold=0.9, tflite_variants=())
    assert run.nodes['Trainer'].state == 'COMPLETE'
    assert mlmd_runs.custom_property(run.output('Evaluator', 'blessing'), 'blessed') == 0
    pushed = run.output('ImagePusher', 'pushed_model')
    assert mlmd_runs.custom_property(pushed, 'pushed') == 0
    reason = mlmd_runs.custom_property(pushed, 'not_pushed_reason')
    assert re.search(r'sparse_categorical_accuracy is 0\.\d{4}, not >= 0\.9', reason), reason
    with open(os.path.join(pushed.uri, pusher_spec.PUSH_RESULT_FILE)) as f:
        assert json.load(f) == {'pushed': False, 'reason': reason}
    assert pushed_versions(pipeline_run.config) == versions_before


def test_imbalanced_data_is_stopped_before_training(stopped_run):
    _, message, run = stopped_run
    assert "label balance: class 'cats' is 88.9% of the train split (40 of 45); expected " \
        "50.0% ± 25.9%, the larger of balance_tolerance 20% of that share (10.0%) and the " \
        "25.9% a balanced set " \
        "of 45 images shows by chance" in message
    assert 'Transform' not in run.nodes and 'Trainer' not in run.nodes
    assert run.nodes['DataGate'].state == 'FAILED'
    report_html = os.path.join(run.output('DataReport', 'report').uri, artifacts.REPORT_HTML)
    assert f'report: {report_html}' in message
    with open(report_html) as f:
        page = f.read()
    assert 'FAILED' in page and 'label balance' in page and 'data:image/png;base64,' in page
