"""The Tuner stage (the issue's done-when tests): it never reads the eval or test split, its
best_hyperparameters artifact is reproducible for a fixed seed, and the Trainer trains with
the artifact's settings; plus its wiring and flags.

One small root with train/, validation/ and test/ (real photos from ../shared):
ImageExampleGen (real Beam, in process), DataQuality (the frozen base at 160) and the
Transform graph run once for the module; the Tuner's and the Trainer's executors run as
the launcher runs them, with exec properties from their components.
"""

import dataclasses
import json
import os
import shutil

import pytest
from google.protobuf import message
from tfx.proto import trainer_pb2
from tfx.types import channel
from tfx.types import standard_artifacts
from tfx.utils import proto_utils

import local_runner
from components import artifacts
from components.image_trainer import component as image_trainer
from components.tuner import component
from components.tuner import executor
from components.tuner import spec
from models import features
from models import frozen_features
from models import history as training_history
from models import hyperparameters
from pipeline import configs
from pipeline import nodes
from pipeline import pipeline as pipeline_def
from tests import data
from tests import transform_graph
from tests.components.test_data_quality import run_stage
from tests.components.test_image_example_gen import run_executor

SIZE = (160, 160)
PER_CLASS = {'train': 12, 'validation': 4, 'test': 4}
TRIALS = 2
FOLDS = 2
# Settings a Tuner could return, each unlike the config's (epochs 1, views 3, ...).
TUNED = {'learning_rate': 0.003, 'dropout': 0.5, 'epochs': 2, 'augmented_views': 2,
         'label_smoothing': 0.1}


def build_root(root):
    """train/, validation/ and test/ of real photos (test: other train photos of ../shared)."""
    for label in ('cats', 'dogs'):
        sources = {'train': data.photos('train', label, PER_CLASS['train']),
                   'validation': data.photos('validation', label, PER_CLASS['validation']),
                   'test': data.photos('train', label, PER_CLASS['test'],
                                       offset=PER_CLASS['train'])}
        for split, photos in sources.items():
            (root / split / label).mkdir(parents=True, exist_ok=True)
            for photo in photos:
                shutil.copy(photo, root / split / label / photo.name)


def make_config(work) -> configs.PipelineConfig:
    return configs.local(str(work), str(work / 'root'), presplit=True, test_folder=True,
                         epochs=1, batch_size=8, image_size=SIZE, weights=str(data.WEIGHTS),
                         tuning=configs.Tuning(enabled=True, trials=TRIALS, folds=FOLDS))


@pytest.fixture(scope='module')
def world(tmp_path_factory):
    work = tmp_path_factory.mktemp('tuner')
    build_root(work / 'root')
    examples = run_executor(work / 'root', work / 'examples', presplit=True, test_folder=True)
    _, features_uri = run_stage(examples, work, image_size=SIZE)
    transform_graph.write_transform_graph(str(work / 'transform'), SIZE)
    return {'work': work, 'config': make_config(work), 'examples': examples,
            'features': features_uri, 'transform': str(work / 'transform')}


def _exec_properties(node) -> dict:
    return {k: proto_utils.proto_to_json(v) if isinstance(v, message.Message) else v
            for k, v in node.exec_properties.items() if v is not None}


def _artifact(kind, uri):
    artifact = kind()
    artifact.uri = str(uri)
    return artifact


def run_tuner(world, out_dir, examples=None, features_uri=None, *, with_features=True):
    """The Tuner's executor on the module's artifacts (or those given; with_features=False:
    without DataQuality's); returns the (best_hyperparameters, tuner_results) URIs."""
    node = component.ImageTuner(
        examples=channel.Channel(type=standard_artifacts.Examples),
        transform_graph=channel.Channel(type=standard_artifacts.TransformGraph),
        schema=channel.Channel(type=standard_artifacts.Schema), tuner_fn=configs.TUNER_FN,
        custom_config=world['config'].tuner_config(),
        frozen_features=channel.Channel(type=artifacts.FrozenFeatures))
    best = _artifact(standard_artifacts.HyperParameters, out_dir / 'best')
    results = _artifact(standard_artifacts.TunerResults, out_dir / 'results')
    inputs = {'examples': [examples or world['examples']],
              'transform_graph': [_artifact(standard_artifacts.TransformGraph,
                                            world['transform'])]}
    if with_features:
        inputs[spec.FROZEN_FEATURES_KEY] = [_artifact(artifacts.FrozenFeatures,
                                                      features_uri or world['features'])]
    executor.Executor().Do(
        inputs,
        {spec.BEST_HYPERPARAMETERS_KEY: [best], spec.TUNER_RESULTS_KEY: [results]},
        _exec_properties(node))
    return best.uri, results.uri


@pytest.fixture(scope='module')
def tuned(world):
    return run_tuner(world, world['work'] / 'tuned')


def _text(path):
    with open(path, encoding='utf-8') as f:
        return f.read()


def _trials(results_uri):
    """trials.json without the timings."""
    recorded = spec.read_trials(results_uri)
    for trial in recorded['trials']:
        trial.pop('seconds')
    return recorded


def train_only_copy(world, dest):
    """The module's Examples and FrozenFeatures with nothing of the eval and test splits:
    their folders and rows are gone; the artifacts' properties are unchanged."""
    examples = world['examples']
    shutil.copytree(examples.uri, dest / 'examples', ignore=lambda folder, names: [
        n for n in names if n.startswith('Split-') and n != f'Split-{features.TRAIN_SPLIT}'])
    stripped = _artifact(standard_artifacts.Examples, dest / 'examples')
    stripped.split_names = examples.split_names
    rows, labels, paths = frozen_features.load_split(world['features'], features.TRAIN_SPLIT)
    meta = frozen_features.read_meta(world['features'])
    writer = frozen_features.Writer(str(dest / 'features'), {
        k: v for k, v in meta.items() if k not in ('splits', 'count')})
    writer.add(features.TRAIN_SPLIT, rows, labels, paths)
    writer.close()
    return stripped, str(dest / 'features')


def test_the_tuner_reads_the_train_split_only(world, tuned, tmp_path):
    best_uri, results_uri = tuned
    recorded = _trials(results_uri)
    train_photos = 2 * PER_CLASS['train']
    assert recorded['read']['splits'] == [features.TRAIN_SPLIT]
    assert recorded['read']['files'] and all(
        f'Split-{features.TRAIN_SPLIT}' in f for f in recorded['read']['files'])
    assert f'({features.TRAIN_SPLIT} rows)' in recorded['read']['frozen_features']
    assert recorded['read']['photos'] == train_photos
    assert recorded['fold'] == {'folds': FOLDS, 'photos': train_photos}
    # Without any eval or test file or feature row, the same search, the same result.
    examples, features_uri = train_only_copy(world, tmp_path)
    alone_best, alone_results = run_tuner(world, tmp_path / 'out', examples, features_uri)
    assert _text(os.path.join(alone_best, hyperparameters.FILE_NAME)) == _text(
        os.path.join(best_uri, hyperparameters.FILE_NAME))
    alone = _trials(alone_results)
    assert alone['trials'] == recorded['trials']
    assert alone['fold'] == recorded['fold']


def test_the_best_hyperparameters_are_reproducible_for_a_fixed_seed(world, tuned, tmp_path):
    best_uri, results_uri = tuned
    again_best, again_results = run_tuner(world, tmp_path)
    best_file = os.path.join(best_uri, hyperparameters.FILE_NAME)
    assert _text(os.path.join(again_best, hyperparameters.FILE_NAME)) == _text(best_file)
    assert _trials(again_results)['trials'] == _trials(results_uri)['trials']
    # KerasTuner's format, the first trial the config's own settings, TRIALS in all.
    config = json.loads(_text(best_file))
    assert {hp['config']['name'] for hp in config['space']} == set(hyperparameters.SPACE)
    trials = _trials(results_uri)['trials']
    assert len(trials) == TRIALS
    assert trials[0]['values'] == {name: world['config'].trainer_config()[name]
                                   for name in hyperparameters.SPACE}
    assert hyperparameters.values(config) == next(t for t in trials if t['best'])['values']


def test_without_dataquality_the_tuner_computes_the_photos_features_itself(world, tmp_path):
    _, results_uri = run_tuner(world, tmp_path, with_features=False)
    recorded = _trials(results_uri)
    assert recorded['read']['frozen_features'].startswith('computed here')
    assert recorded['read']['photos'] == 2 * PER_CLASS['train']
    assert len(recorded['trials']) == TRIALS


def test_the_trainer_trains_with_the_artifacts_settings(world, tuned, tmp_path):
    # The Tuner's file, its values made unlike the config's, so that each one shows.
    config = json.loads(_text(os.path.join(tuned[0], hyperparameters.FILE_NAME)))
    config['values'] = TUNED
    (tmp_path / 'best').mkdir()
    (tmp_path / 'best' / hyperparameters.FILE_NAME).write_text(json.dumps(config))
    settings = world['config'].trainer_config()
    assert all(settings[name] != value for name, value in TUNED.items())
    node = image_trainer.ImageTrainer(
        examples=channel.Channel(type=standard_artifacts.Examples),
        transform_graph=channel.Channel(type=standard_artifacts.TransformGraph),
        schema=channel.Channel(type=standard_artifacts.Schema), run_fn=configs.RUN_FN,
        train_args=trainer_pb2.TrainArgs(splits=[features.TRAIN_SPLIT]),
        eval_args=trainer_pb2.EvalArgs(splits=[features.EVAL_SPLIT]),
        custom_config=settings,
        frozen_features=channel.Channel(type=artifacts.FrozenFeatures),
        hyperparameters=channel.Channel(type=standard_artifacts.HyperParameters))
    model_run = _artifact(standard_artifacts.ModelRun, tmp_path / 'model_run')
    image_trainer.Executor().Do(
        {'examples': [world['examples']],
         'transform_graph': [_artifact(standard_artifacts.TransformGraph, world['transform'])],
         image_trainer.FROZEN_FEATURES_KEY: [_artifact(artifacts.FrozenFeatures,
                                                       world['features'])],
         'hyperparameters': [_artifact(standard_artifacts.HyperParameters, tmp_path / 'best')]},
        {'model': [_artifact(standard_artifacts.Model, tmp_path / 'model')],
         'model_run': [model_run]}, _exec_properties(node))
    history = json.loads(_text(os.path.join(model_run.uri, training_history.HISTORY_FILE)))
    assert history['tuned'] == TUNED
    assert {name: history['settings'][name] for name in TUNED} == TUNED
    assert len(history['loss']) == TUNED['epochs']
    assert history['views'] == TUNED['augmented_views']


def test_the_pipeline_runs_the_tuner_only_when_asked(world):
    config = dataclasses.replace(world['config'], compare_variants=('cnn',))
    dsl = pipeline_def.create_pipeline(config)
    by_id = {node.id: node for node in dsl.components}
    tuner, trainer = by_id[nodes.TUNER], by_id[nodes.TRAINER]
    assert trainer.inputs['hyperparameters'] is tuner.outputs['best_hyperparameters']
    assert 'hyperparameters' not in by_id[nodes.compared_trainer('cnn')].inputs
    assert tuner.inputs[spec.FROZEN_FEATURES_KEY] is by_id[nodes.DATA_QUALITY].outputs['features']
    names = [node.id for node in dsl.components]
    assert names.index(nodes.TRANSFORM) < names.index(nodes.TUNER) < names.index(nodes.TRAINER)
    off = pipeline_def.create_pipeline(dataclasses.replace(config, tuning=configs.Tuning()))
    assert nodes.TUNER not in {node.id for node in off.components}
    with pytest.raises(ValueError, match='model_variant transfer and augmented_views >= 1'):
        configs.replace(config, augmented_views=0)


def test_flags_turn_the_tuner_on_or_train_with_an_earlier_runs_settings(world, tmp_path):
    root = str(world['work'] / 'root')
    base = ['--data-root', root, '--work-dir', str(tmp_path / 'work')]
    config = local_runner.build_config(local_runner.parse_args(base))
    assert not config.tuning.enabled
    config = local_runner.build_config(local_runner.parse_args(
        base + ['--tune', '--tuner-trials', '5']))
    assert config.tuning.enabled and config.tuning.trials == 5
    (tmp_path / hyperparameters.FILE_NAME).write_text(json.dumps({'values': TUNED}))
    config = local_runner.build_config(local_runner.parse_args(
        base + ['--hyperparameters', str(tmp_path), '--epochs', '7']))
    assert not config.tuning.enabled
    # The file's settings, but a setting's own flag wins.
    assert {name: getattr(config.training, name) for name in TUNED} == {**TUNED, 'epochs': 7}
    with pytest.raises(ValueError, match='give one of them'):
        local_runner.build_config(local_runner.parse_args(
            base + ['--tune', '--hyperparameters', str(tmp_path)]))
    with pytest.raises(ValueError, match='--hyperparameters: no hyperparameters file'):
        local_runner.build_config(local_runner.parse_args(
            base + ['--hyperparameters', str(tmp_path / 'missing.txt')]))


def test_the_run_report_shows_the_trials_as_a_table_and_a_chart(world, tuned):
    from ml_metadata.proto import metadata_store_pb2  # pylint: disable=import-outside-toplevel
    from pages import html  # pylint: disable=import-outside-toplevel
    from reports import mlmd_runs  # pylint: disable=import-outside-toplevel
    from reports import run_report  # pylint: disable=import-outside-toplevel
    best_uri, results_uri = tuned
    node = mlmd_runs.NodeRun(
        node_id=nodes.TUNER, state='COMPLETE', seconds=1.0, inputs={},
        outputs={spec.TUNER_RESULTS_KEY: [metadata_store_pb2.Artifact(uri=results_uri)],
                 spec.BEST_HYPERPARAMETERS_KEY: [metadata_store_pb2.Artifact(uri=best_uri)]},
        execution=metadata_store_pb2.Execution())
    run = mlmd_runs.PipelineRun('run-1', 0, {nodes.TUNER: node})
    ctx = run_report._Context(run=run, runs=[run], out_dir=str(world['work']))  # pylint: disable=protected-access
    page = html.page('report', [run_report._section(  # pylint: disable=protected-access
        'Tuning', run_report._tuning, ctx)])  # pylint: disable=protected-access
    assert 'could not be built' not in page
    for trial in spec.read_trials(results_uri)['trials']:
        assert run_report.fmt(trial['val_loss']) in page
        assert run_report.fmt(trial['val_accuracy']) in page
    assert page.count('data:image/png') == 1
    assert os.path.relpath(os.path.join(best_uri, hyperparameters.FILE_NAME),
                           str(world['work'])) in page
    assert f'{FOLDS}-fold cross-validation' in page
