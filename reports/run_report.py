"""The run report: one self-contained HTML page about a pipeline run.

    python -m reports.run_report --metadata-path work/metadata.sqlite \
        --pipeline-name image-classification --out work/run_report.html

Everything comes from ML Metadata (which executions ran, how long, their
settings) and the artifacts they wrote (image_report.json, verdict.json,
history.json and the eval answers, TFMA's evaluation, the push result). Pictures
are PNGs inlined as data URIs; the page fetches nothing and opens offline.

Sections: Summary, Data, Augmentation preview, Tuning (with the Tuner only), Training,
Comparison (several variants only), Evaluation, Errors, Runs (all runs of the pipeline, to compare),
Run facts. A run that stopped early (e.g. at DataGate) gets every section it has
artifacts for and says where and why it stopped.
"""

import argparse
import dataclasses
import datetime
import importlib.metadata
import json
import os
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_model_analysis as tfma
from absl import logging
from tensorflow_model_analysis.writers import eval_config_writer
from tfx.components.evaluator import constants as evaluator_constants
from tfx.orchestration.portable.mlmd import execution_lib
from tfx.types import standard_component_specs

from components import artifacts
from components import examples_io
from components.data_report import spec as data_report_spec
from components.image_example_gen import spec as example_gen_spec
from components.image_pusher import spec as pusher_spec
from components.image_pusher import validation_text
from components.infra_validator import spec as infra_spec
from components.tuner import spec as tuner_spec
from models import builders
from models import eval_answers
from models import features
from models import history as training_history
from models import hyperparameters
from models import profile
from models import preprocessing
from pipeline import configs
from pipeline import nodes
from pipeline import recovery
from reports import class_accuracy
from pages import html
from reports import mlmd_runs
from pages import plots

# Node ids of pipeline/pipeline.py (TFX's default id is the component's class name).
EXAMPLE_GEN_NODE = nodes.EXAMPLE_GEN
DATA_REPORT_NODE = nodes.DATA_REPORT
TRANSFORM_NODE = nodes.TRANSFORM
TUNER_NODE = nodes.TUNER
TRAINER_NODE = nodes.TRAINER
EVALUATOR_NODE = nodes.EVALUATOR
TEST_EVALUATOR_NODE = nodes.TEST_EVALUATOR
REFERENCE_PROFILE_NODE = nodes.REFERENCE_PROFILE
INFRA_VALIDATOR_NODE = nodes.INFRA_VALIDATOR
PUSHER_NODE = nodes.PUSHER

# Custom properties of the PushedModel artifact (set by TFX's Pusher and ours).
# Recorded by TFX on every artifact it publishes.
TFX_VERSION_PROPERTY = 'tfx_version'

# TFMA metric names (pipeline/pipeline.py's eval_config).
ACCURACY = nodes.ACCURACY_METRIC
EXAMPLE_COUNT = 'example_count'
PER_CLASS_METRICS = ('precision', 'recall', 'auc')
CONFUSION_PLOT = 'multi_class_confusion_matrix_plot'

# Distributions whose versions the report lists.
VERSIONED_PACKAGES = ('tfx', 'tensorflow', 'apache-beam', 'tensorflow-model-analysis',
                      'tensorflow-data-validation', 'tensorflow-transform', 'ml-metadata',
                      'tf-keras')

SAMPLES_PER_CLASS = 4
AUGMENTED_COPIES = 9
MAX_ERRORS_SHOWN = 24      # misclassified images pictured (the most confident first)
ERRORS_PER_ROW = 6
MAX_RUNS_LISTED = 30
MAX_BAD_FILES_LISTED = 100
_OK_STATES = ('COMPLETE', 'CACHED')


def fmt(value: Optional[float]) -> str:
    """A metric as the report prints it ('-' when missing)."""
    return '-' if value is None else validation_text.METRIC_FORMAT.format(value)


def _date(ms: int) -> str:
    return datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.timezone.utc).strftime(
        '%Y-%m-%d %H:%M:%S UTC')


def _exec_properties(execution) -> Dict[str, Any]:
    """Execution properties as TFX stores them (custom properties), without internals."""
    props = {}
    for name, value in sorted(execution.custom_properties.items()):
        if not name.startswith('__'):
            props[name] = getattr(value, value.WhichOneof('value'))
    return props


def _json_property(execution, name: str) -> Optional[Any]:
    raw = _exec_properties(execution).get(name)
    return json.loads(raw) if isinstance(raw, str) and raw else None


def _join(*parts: Any) -> Any:
    """Concatenates HTML parts; plain text among them is escaped."""
    return html.raw('').join(parts)


def _href(target: str, out_dir: str) -> str:
    """A link to an artifact file: relative to the report when both are local."""
    if '://' in target or '://' in out_dir:
        return target
    return os.path.relpath(target, out_dir)


# ---------------------------------------------------------------- reading the run


def failure(node: mlmd_runs.NodeRun) -> str:
    """Why a node failed.

    TFX records a message only when an executor returns one; an exception raised
    in process (as DataGate's) leaves none in MLMD. For a node whose input is a
    data-validation report, that report's failed verdict.json gives the message the
    run raised (`artifacts.failed_verdict_message`, what DataGate raises).

    Args:
      node: a failed node.

    Returns:
      The message.
    """
    result = execution_lib.get_execution_result(node.execution, ignore_parse_errors=True)
    if result and result.result_message:
        return result.result_message
    for inputs in node.inputs.values():
        for artifact in inputs:
            if artifact.type == artifacts.DataValidationReport.TYPE_NAME:
                verdict = data_report_spec.read_verdict(artifact.uri)
                if verdict and not verdict['passed']:
                    return artifacts.failed_verdict_message(verdict)
    return 'TFX recorded no error message for this execution; see the log of the run.'


def stopped_at(run: mlmd_runs.PipelineRun) -> Optional[mlmd_runs.NodeRun]:
    """The first node that did not finish (FAILED, RUNNING, ...), or None."""
    for node in run.nodes.values():
        if node.state not in _OK_STATES:
            return node
    return None


def outcome(run: mlmd_runs.PipelineRun) -> str:
    """'complete', 'stopped at <node>', 'abandoned at <node>' or '<node> <state>'."""
    node = stopped_at(run)
    if node is None:
        return 'complete'
    if node.state == 'FAILED':
        return f'stopped at {node.node_id}'
    if recovery.is_abandoned(node.execution):
        return f'abandoned at {node.node_id}'
    return f'{node.node_id} {node.state.lower()}'


def trainer_nodes(run: mlmd_runs.PipelineRun) -> List[mlmd_runs.NodeRun]:
    """The main Trainer first, then Trainer.<variant> nodes (compare_variants)."""
    nodes = [n for node_id, n in run.nodes.items()
             if node_id == TRAINER_NODE or node_id.startswith(TRAINER_NODE + '.')]
    return sorted(nodes, key=lambda n: (n.node_id != TRAINER_NODE, n.node_id))


def trainer_config(node: mlmd_runs.NodeRun) -> Dict[str, Any]:
    """The Trainer's custom_config (PipelineConfig.trainer_config())."""
    return _json_property(node.execution, standard_component_specs.CUSTOM_CONFIG_KEY) or {}


def read_history(node: mlmd_runs.NodeRun) -> Optional[Dict[str, Any]]:
    """history.json of a Trainer, or None."""
    model_run = node.outputs.get(standard_component_specs.MODEL_RUN_KEY)
    if not model_run:
        return None
    return training_history.read(model_run[-1].uri)


@dataclasses.dataclass
class Evaluation:
    """What the report shows of one TFMA evaluation (the candidate model, overall slice)."""
    metrics: Dict[Tuple[str, Optional[int]], float]       # (name, class id) -> value
    changes: Dict[Tuple[str, Optional[int]], float]       # vs the baseline, when there was one
    confusion: Optional[np.ndarray]                       # true x predicted, argmax
    validation: Any                                       # ValidationResult
    thresholds: List[str]

    @property
    def accuracy(self) -> Optional[float]:
        return self.metrics.get((ACCURACY, None))

    @property
    def example_count(self) -> Optional[float]:
        return self.metrics.get((EXAMPLE_COUNT, None))


def _failures(evaluation: Evaluation) -> List[str]:
    return [validation_text.describe_failure(f) for per_slice in evaluation.validation.metric_validations_per_slice
            for f in per_slice.failures]


def load_evaluation(evaluation_uri: str) -> Evaluation:
    """Metrics, confusion matrix and validation of an Evaluator's ModelEvaluation artifact."""
    eval_config = eval_config_writer.load_eval_run(evaluation_uri)[0]
    baselines = {spec.name for spec in eval_config.model_specs if spec.is_baseline}
    metrics, changes = {}, {}
    for per_slice in tfma.load_metrics(evaluation_uri):
        if per_slice.slice_key.single_slice_keys:
            continue
        for entry in per_slice.metric_keys_and_values:
            key = entry.key
            if key.model_name in baselines or not entry.value.HasField('double_value'):
                continue
            class_id = (key.sub_key.class_id.value
                        if key.sub_key.HasField('class_id') else None)
            target = changes if key.is_diff else metrics
            target[(key.name, class_id)] = entry.value.double_value.value
    confusion = None
    for per_slice in tfma.load_plots(evaluation_uri):
        if per_slice.slice_key.single_slice_keys:
            continue
        for entry in per_slice.plot_keys_and_values:
            if entry.key.name != CONFUSION_PLOT or entry.key.model_name in baselines:
                continue
            matrices = entry.value.multi_class_confusion_matrix_at_thresholds.matrices
            if matrices:
                # The first threshold (0.0): the predicted class is the argmax.
                entries = matrices[0].entries
                size = 1 + max([max(e.actual_class_id, e.predicted_class_id)
                                for e in entries] or [0])
                confusion = np.zeros((size, size))
                for e in entries:
                    confusion[e.actual_class_id, e.predicted_class_id] = e.num_weighted_examples
    return Evaluation(metrics=metrics, changes=changes, confusion=confusion,
                      validation=tfma.load_validation_result(evaluation_uri),
                      thresholds=validation_text.describe_thresholds(eval_config))


def push_result(run: mlmd_runs.PipelineRun) -> Optional[Dict[str, Any]]:
    """{'pushed': bool, 'version', 'destination', 'reason'} from the PushedModel, or None."""
    pushed = run.output(PUSHER_NODE, standard_component_specs.PUSHED_MODEL_KEY)
    if pushed is None:
        return None
    return {
        'pushed': bool(mlmd_runs.custom_property(pushed, pusher_spec.PUSHED_PROPERTY)),
        'version': mlmd_runs.custom_property(pushed, pusher_spec.PUSHED_VERSION_PROPERTY),
        'destination': mlmd_runs.custom_property(pushed, pusher_spec.PUSHED_DESTINATION_PROPERTY),
        'reason': mlmd_runs.custom_property(pushed, pusher_spec.NOT_PUSHED_REASON_PROPERTY),
        'uri': pushed.uri,
    }


def infra_validation(run: mlmd_runs.PipelineRun) -> Optional[str]:
    """The InfraValidator's verdict in one line (blessed with its p50 latency, or why
    not), or None when it did not run."""
    blessing = run.output(INFRA_VALIDATOR_NODE, infra_spec.BLESSING_KEY)
    result = infra_spec.read_result(blessing.uri) if blessing is not None else None
    return infra_spec.describe_result(result) if result is not None else None


def blessed(run: mlmd_runs.PipelineRun) -> Optional[bool]:
    """Whether the Evaluator blessed the run's model (None: no Evaluator output)."""
    blessing = run.output(EVALUATOR_NODE, standard_component_specs.BLESSING_KEY)
    if blessing is None:
        return None
    return bool(mlmd_runs.custom_property(
        blessing, evaluator_constants.ARTIFACT_PROPERTY_BLESSED_KEY))


# ---------------------------------------------------------------- the sections


@dataclasses.dataclass
class _Context:
    run: mlmd_runs.PipelineRun
    runs: List[mlmd_runs.PipelineRun]
    out_dir: str
    class_names: List[str] = dataclasses.field(default_factory=list)
    samples: Dict[str, List[Tuple[bytes, str]]] = dataclasses.field(default_factory=dict)
    evaluation: Optional[Evaluation] = None
    test_evaluation: Optional[Evaluation] = None   # the held-out test split, when there is one

    def output(self, node_id: str, key: str):
        return self.run.output(node_id, key)

    def missing(self, node_id: str, what: str) -> Any:
        """A paragraph saying why an artifact is absent from this run."""
        node = self.run.nodes.get(node_id)
        if node is None:
            where = stopped_at(self.run)
            why = (f' (the run stopped at {where.node_id})' if where is not None
                   else ' (not part of this run)')
            return html.paragraph(f'{node_id} did not run{why}: no {what}.', 'muted')
        return html.paragraph(f'{node_id} is {node.state}: no {what}.', 'muted')


def _summary(ctx: _Context) -> List[Any]:
    run = ctx.run
    parts = []
    node = stopped_at(run)
    if node is None:
        parts.append(html.paragraph(html.status(True, yes='Run complete')))
    elif node.state == 'FAILED':
        parts.append(html.paragraph(_join(
            html.status(False, no=f'Run stopped at {node.node_id}'),
            ': the components after it did not run. The error:')))
        parts.append(html.preformatted(failure(node)))
    elif recovery.is_abandoned(node.execution):
        parts.append(html.paragraph(_join(
            html.status(False, no=f'Run abandoned at {node.node_id}'),
            ': its process ended before the component did (killed or crashed); the next run '
            'marked it abandoned and removed its partial outputs. Recorded:')))
        parts.append(html.preformatted(failure(node)))
    else:
        parts.append(html.paragraph(html.status(
            False, no=f'{node.node_id} is {node.state}: the run is unfinished or was killed')))
    rows = [['run id', run.run_id], ['started', _date(run.create_time_ms)],
            ['outcome', outcome(run)]]
    report = ctx.output(DATA_REPORT_NODE, data_report_spec.REPORT_KEY)
    verdict = data_report_spec.read_verdict(report.uri) if report else None
    if verdict is not None:
        rows.append(['data validation', html.status(verdict['passed'])])
    if ctx.evaluation is not None:
        rows.append(['accuracy (eval)', fmt(ctx.evaluation.accuracy)])
    if ctx.test_evaluation is not None:
        rows.append(['accuracy (held-out test)', fmt(ctx.test_evaluation.accuracy)])
    is_blessed = blessed(run)
    if is_blessed is not None:
        rows.append(['blessed', html.status(is_blessed, yes='yes', no='no')])
    served = infra_validation(run)
    if served is not None:
        rows.append(['served in our server (InfraValidator)', served])
    pushed = push_result(run)
    if pushed is not None:
        failures = _failures(ctx.evaluation) if ctx.evaluation else []
        rows.append(['pushed', (
            f"version {pushed['version']}: {pushed['destination']}" if pushed['pushed']
            else f"no: not blessed: {'; '.join(failures)}" if failures
            else f"no: {pushed['reason']}")])
    parts.append(html.table(rows))
    return parts


def _data(ctx: _Context) -> List[Any]:
    examples = ctx.output(EXAMPLE_GEN_NODE, standard_component_specs.EXAMPLES_KEY)
    if examples is None:
        return [ctx.missing(EXAMPLE_GEN_NODE, 'examples')]
    image_report = example_gen_spec.read_report(examples.uri)
    # The train split first, then the others as ExampleGen named them.
    splits = sorted(image_report['splits'], key=lambda split: split != features.TRAIN_SPLIT)
    counts = {split: dict(image_report['splits'][split]['by_label']) for split in splits}
    class_names = ctx.class_names
    parts = [
        html.paragraph(f'{image_report["images"]} images in {len(class_names)} classes; split: '
                       f'{image_report["split_method"]}.'),
        html.counts_table(counts, class_names),
        html.image(plots.label_counts(counts, 'Images per class and split'),
                   'images per class and split'),
    ]
    if ctx.samples:
        grid = [(label, [(plots.decode_thumbnail(data), f'{label}: {path.split("/")[-1]}')
                         for data, path in ctx.samples[label]]) for label in class_names]
        parts += [html.paragraph(f'Sample images per class ({features.TRAIN_SPLIT} split):'),
                  html.image(plots.image_grid(grid), 'sample images per class')]

    bad, dups = image_report['bad_files'], image_report['duplicates']
    parts.append(html.table([
        ['files under the data root', image_report.get('files', '')],
        ['images used', image_report['images']],
        ['bad files (not decodable)', len(bad)],
        ['ignored files', len(image_report['ignored_files'])],
        ['duplicate groups (same bytes)', len(dups)],
        ['duplicates across train and eval', image_report['cross_split_duplicates']],
    ], ['file check', 'count']))
    if bad:
        parts.append(html.details(f'{len(bad)} bad files', [
            html.table([[b['path'], b['reason']] for b in bad[:MAX_BAD_FILES_LISTED]],
                       ['path', 'reason'])]))

    report = ctx.output(DATA_REPORT_NODE, data_report_spec.REPORT_KEY)
    if report is None:
        parts.append(ctx.missing(DATA_REPORT_NODE, 'data-validation report'))
        return parts
    verdict = data_report_spec.read_verdict(report.uri)
    index = os.path.join(report.uri, artifacts.REPORT_HTML)
    parts.append(html.paragraph(_join(
        'Data validation (DataReport): ', html.status(verdict['passed']), '. Full TFDV report: ',
        html.link(_href(index, ctx.out_dir), index))))
    if verdict['problems']:
        parts.append(html.bullet_list(verdict['problems']))
    parts.append(html.table([[k, v] for k, v in sorted(verdict['settings'].items())],
                            ['validation setting', 'value']))
    return parts


def _layer_setting(layer) -> str:
    """The defining setting of an augmentation layer, e.g. mode='horizontal', factor=0.2."""
    config = layer.get_config()
    return ', '.join(f'{k}={config[k]!r}' for k in ('mode', 'factor') if k in config)


def _augmentation(ctx: _Context) -> List[Any]:
    if not ctx.samples or not any(ctx.samples.values()):
        return [ctx.missing(EXAMPLE_GEN_NODE, 'training images')]
    trainers = trainer_nodes(ctx.run)
    settings = trainer_config(trainers[0]) if trainers else {}
    transform = ctx.run.nodes.get(TRANSFORM_NODE)
    transform_config = (_json_property(transform.execution,
                                       standard_component_specs.CUSTOM_CONFIG_KEY)
                        if transform else None) or {}
    image_size = settings.get('image_size') or transform_config.get(
        'image_size') or features.IMAGE_SIZE
    seed = settings.get('seed')
    label = next(lbl for lbl in ctx.class_names if ctx.samples.get(lbl))
    data, path = ctx.samples[label][0]
    # The Transform output the model sees: decoded, resized, scaled to [-1, 1].
    image = preprocessing.preprocess_images(tf.constant([data]), image_size)
    strength = settings.get('augmentation', 'tutorial')
    if strength == 'none':
        return [html.paragraph('No augmentation (augmentation: none).')]
    augment = builders.augmentation(seed, strength)
    copies = [plots.to_uint8(augment(image, training=True)[0].numpy())
              for _ in range(AUGMENTED_COPIES)]
    rows = [('original', [(plots.to_uint8(image[0].numpy()), f'original: {path.split("/")[-1]}')])]
    for start in range(0, AUGMENTED_COPIES, 3):
        rows.append(('augmented', [(c, f'augmented {start + i + 1}')
                                   for i, c in enumerate(copies[start:start + 3])]))
    layers = ', '.join(f"{type(layer).__name__}({_layer_setting(layer)})"
                       for layer in augment.layers)
    return [
        html.paragraph(f'One training image ({label}) after the Transform preprocessing '
                       f'({image_size[0]}x{image_size[1]}), and {AUGMENTED_COPIES} draws of the '
                       f'augmentation the model applies while training: {layers}.'),
        html.image(plots.image_grid(rows, tile_inches=2.0), 'augmentation preview'),
    ]


def _history_rows(history: Dict[str, Any]) -> List[List[Any]]:
    epochs = len(history.get('accuracy') or [])
    seconds = history.get('epoch_seconds') or []
    tuned = history.get('fine_tune_from_epoch')
    rows = []
    for i in range(epochs):
        row: List[Any] = [f'{i + 1} (fine-tuning {i + 1 - tuned})' if tuned and i >= tuned
                          else i + 1]
        for key in ('accuracy', 'val_accuracy', 'loss', 'val_loss'):
            values = history.get(key) or []
            row.append(fmt(values[i]) if i < len(values) else '-')
        row.append(f'{seconds[i]:.1f}' if i < len(seconds) else '-')
        rows.append(row)
    return rows


def _training(ctx: _Context) -> List[Any]:
    trainers = trainer_nodes(ctx.run)
    if not trainers:
        return [ctx.missing(TRAINER_NODE, 'model')]
    parts = []
    for node in trainers:
        settings = trainer_config(node)
        variant = settings.get('model_variant', node.node_id)
        history = read_history(node)
        heading = f'{node.node_id}: {variant}' + (' (the model evaluated for pushing)'
                                                   if node.node_id == TRAINER_NODE else '')
        parts.append(html.raw('<h3>{}</h3>').format(heading))
        if history is None:
            parts.append(html.paragraph(f'{node.node_id} is {node.state}: no history.json.',
                                        'muted'))
            continue
        tuned = history.get('fine_tune_from_epoch')
        views = history.get('views')
        # The settings it trained with: the Tuner's replace the pipeline's custom_config.
        used = history.get('settings') or settings
        from_tuner = history.get('tuned') or {}
        copies = (f"; the head trained on the frozen base's features of {views} augmented "
                  f"cop{'y' if views == 1 else 'ies'} of each training photo, computed once in "
                  f"{(history.get('seconds') or {}).get('train_features', 0.0):.1f} s (epoch e "
                  f'takes copy e mod {views})' if views else '')
        parts += [
            html.image(plots.history_curves(history, f'{variant}: training vs validation'),
                       f'{variant} accuracy and loss per epoch'),
            html.paragraph(
                f"{len(history.get('accuracy') or [])} epochs, batch size "
                f"{used.get('batch_size', '-')}, learning rate "
                f"{used.get('learning_rate', '-')}" + copies
                + (_fine_tuning(history, used) if tuned else '')
                + ('; from the Tuner: ' + ', '.join(f'{k} {v:g}' for k, v in
                                                    sorted(from_tuner.items()))
                   if from_tuner else '') + '.', 'muted'),
            html.table(_history_rows(history), ['epoch', 'accuracy', 'val_accuracy', 'loss',
                                                'val_loss', 'seconds']),
        ]
    return parts


def _tuning(ctx: _Context) -> List[Any]:
    results = ctx.output(TUNER_NODE, tuner_spec.TUNER_RESULTS_KEY)
    if results is None:
        return [ctx.missing(TUNER_NODE, 'trials')]
    recorded = tuner_spec.read_trials(results.uri)
    if recorded is None or not recorded['trials']:
        return [html.paragraph(f'The Tuner recorded no trials ({tuner_spec.TRIALS_FILE}).',
                               'muted')]
    trials = recorded['trials']
    names = list(hyperparameters.SPACE)
    best = next(i for i, trial in enumerate(trials) if trial['best'])
    read, fold = recorded['read'], recorded['fold']
    parts = [html.paragraph(
        f"{len(trials)} trials of the transfer model's head on the frozen features of "
        f"{read['photos']} of the {read['split_photos']} photos of the "
        f"{' and '.join(read['splits'])} split only, each scored by {fold['folds']}-fold "
        'cross-validation on them (every photo validated once, by heads trained on the '
        f'other folds; the {features.EVAL_SPLIT} split the Evaluator gates on and the '
        f"{features.TEST_SPLIT} split are never read); the best has the lowest "
        f"{recorded['objective']}. Trial 1 is the pipeline's own settings. Photo features: "
        f"{read['frozen_features']}.")]
    parts.append(html.table(
        [[i + 1] + [f"{trial['values'][name]:g}" if name in trial['values'] else '-'
                    for name in names]
         + [fmt(trial['val_loss']), fmt(trial['val_accuracy']), f"{trial['seconds']:.1f}",
            ', '.join(['best'] * trial['best'] + ['the defaults'] * (i == 0))]
         for i, trial in enumerate(trials)],
        ['trial'] + names + ['val_loss', 'val_accuracy', 'seconds', '']))
    parts.append(html.image(plots.trials([t['val_loss'] for t in trials],
                                         [t['val_accuracy'] for t in trials], best),
                            'validation loss and accuracy per trial'))
    chosen = ctx.output(TUNER_NODE, tuner_spec.BEST_HYPERPARAMETERS_KEY)
    if chosen is not None:
        path = os.path.join(chosen.uri, hyperparameters.FILE_NAME)
        parts.append(html.paragraph(_join(
            'The Trainer trained with the best (', ', '.join(
                f'{name} {value:g}' for name, value in trials[best]['values'].items()),
            '). To train with them again without tuning: --hyperparameters ',
            html.link(_href(path, ctx.out_dir), path))))
    return parts


def _fine_tuning(history: Dict[str, Any], settings: Dict[str, Any]) -> str:
    """The fine-tuning phase in words: where it started, what trained, which epoch was kept."""
    tuned = history['fine_tune_from_epoch']
    ran = len(history.get('accuracy') or []) - tuned
    best = history.get('best_epoch')
    kept = ('' if best is None else f", the weights of epoch {best} kept (lowest eval loss"
            + ('; the head alone: fine-tuning did not lower it)' if best <= tuned else ')'))
    return (f"; then fine-tuning from epoch {tuned + 1}: the whole model on augmented photos, "
            f"the base from layer {settings.get('fine_tune_from_layer', '-')} on, BatchNorm in "
            f"inference mode, learning rate {settings.get('fine_tune_learning_rate', '-')}, "
            f"{ran} epoch{'s' if ran != 1 else ''} of at most "
            f"{settings.get('fine_tune_epochs', '-')}{kept}")


def comparison_rows(run: mlmd_runs.PipelineRun) -> List[List[Any]]:
    """One row per trained variant: the tutorial's model 1-4 comparison."""
    rows = []
    for node in trainer_nodes(run):
        history = read_history(node)
        if history is None:
            continue
        train = history.get('accuracy') or []
        val = history.get('val_accuracy') or []
        rows.append([trainer_config(node).get('model_variant', node.node_id), node.node_id,
                     fmt(train[-1] if train else None), fmt(val[-1] if val else None),
                     fmt(max(val) if val else None), len(train),
                     f"{sum(history.get('epoch_seconds') or []):.1f}",
                     f'{node.seconds:.1f}'])
    return rows


def _comparison(ctx: _Context) -> List[Any]:
    histories = {}
    for node in trainer_nodes(ctx.run):
        history = read_history(node)
        if history is not None:
            histories[trainer_config(node).get('model_variant', node.node_id)] = history
    return [
        html.table(comparison_rows(ctx.run),
                   ['variant', 'node', 'final train accuracy', 'final val accuracy',
                    'best val accuracy', 'epochs', 'fit seconds', 'component seconds']),
        html.image(plots.metric_by_variant(histories, title='Model variants per epoch'),
                   'accuracy per epoch, one line per variant'),
    ]


def _evaluation(ctx: _Context) -> List[Any]:
    evaluation = ctx.evaluation
    if evaluation is None:
        return [ctx.missing(EVALUATOR_NODE, 'evaluation')]
    parts = []
    rows = [[ACCURACY, fmt(evaluation.accuracy),
             fmt(evaluation.changes.get((ACCURACY, None)))],
            [EXAMPLE_COUNT, f'{evaluation.example_count:g}'
             if evaluation.example_count is not None else '-', '-']]
    parts.append(html.table(rows, ['metric', 'value', 'change vs baseline']))
    class_rows = []
    for class_id, label in enumerate(ctx.class_names):
        class_rows.append([class_id, label] + [fmt(evaluation.metrics.get((name, class_id)))
                                               for name in PER_CLASS_METRICS])
    parts += [html.paragraph('Per class (one class vs the rest):'),
              html.table(class_rows, ['class id', 'class'] + list(PER_CLASS_METRICS))]
    if evaluation.confusion is not None:
        names = [ctx.class_names[i] if i < len(ctx.class_names) else str(i)
                 for i in range(len(evaluation.confusion))]
        parts += _accuracy_by_class(evaluation.confusion, names)
        # Many or long names: the columns by class id, so the table fits the page.
        by_id = plots.crowded(names)
        parts += [
            html.paragraph('Confusion matrix (TFMA MultiClassConfusionMatrixPlot; rows: true '
                           'class, columns: predicted class'
                           + (', by class id' if by_id else '') + '):'),
            html.table([[f'{i}: {name}' if by_id else name] + [f'{v:g}' for v in row]
                        for i, (name, row) in enumerate(zip(names, evaluation.confusion))],
                       ['true \\ predicted'] + ([str(i) for i in range(len(names))]
                                                 if by_id else names)),
            html.image(plots.confusion_matrix(evaluation.confusion, names), 'confusion matrix'),
        ]
    validation = evaluation.validation
    failures = _failures(evaluation)
    is_blessed = blessed(ctx.run)
    verdict_rows = [
        ['threshold', html.bullet_list(evaluation.thresholds) if evaluation.thresholds
         else 'none'],
        ['TFMA validation', html.status(validation.validation_ok)],
        ['blessed', '-' if is_blessed is None else html.status(is_blessed, yes='yes', no='no')],
    ]
    if failures:
        verdict_rows.append(['failures', html.bullet_list(failures)])
    pushed = push_result(ctx.run)
    if pushed is None:
        verdict_rows.append(['pushed', 'ImagePusher did not run'])
    elif pushed['pushed']:
        verdict_rows += [['pushed', html.status(True, yes='yes')],
                         ['pushed version', pushed['version']],
                         ['pushed path', pushed['destination']]]
    else:
        verdict_rows += [['pushed', html.status(False, no='no')],
                         ['not pushed because', pushed['reason']]]
    parts.append(html.table(verdict_rows, ['gate', 'result']))
    reference = ctx.output(REFERENCE_PROFILE_NODE, 'reference_profile')
    if reference is not None:
        path = os.path.join(reference.uri, profile.PROFILE_FILE)
        parts.append(html.paragraph(_join(
            'Reference profile for monitoring the served model (image properties, the '
            "model's answers on the eval images, embeddings; pushed beside the model in "
            f'{features.ASSETS_EXTRA}/, read by python -m monitoring.monitor): ',
            html.link(_href(path, ctx.out_dir), path))))
    test = ctx.test_evaluation
    if test is not None:
        parts += [html.heading(f'Held-out {features.TEST_SPLIT} split'),
                  html.paragraph(
                      f'Accuracy {fmt(test.accuracy)} on {test.example_count:g} images that '
                      'were never trained on, early-stopped on or gated on: the number to '
                      'quote.')]
        if test.confusion is not None:
            names = [ctx.class_names[i] if i < len(ctx.class_names) else str(i)
                     for i in range(len(test.confusion))]
            parts += _accuracy_by_class(test.confusion, names, features.TEST_SPLIT)
    return parts


def _accuracy_by_class(confusion: np.ndarray, names: Sequence[str],
                       split: str = features.EVAL_SPLIT) -> List[Any]:
    """Accuracy per class with its 95% interval, and which classes are clearly worse."""
    rows = class_accuracy.per_class(confusion, names)
    table = html.table(
        [[r.class_name, r.total, fmt(r.accuracy), f'{fmt(r.low)} to {fmt(r.high)}',
          fmt(r.others), '-' if r.worse_p is None else f'{r.worse_p:.2g}',
          'yes' if r.clearly_worse else 'no'] for r in rows],
        ['class', f'{split} images', 'accuracy', f'{class_accuracy.CONFIDENCE:.0%} interval '
         '(Wilson)', 'accuracy on the other classes', "p (Fisher's exact, worse)",
         'clearly worse'])
    worse = class_accuracy.worse_sentences(rows, split)
    return [html.paragraph(f'Accuracy by class on the {split} split (the share of each '
                           "class's images predicted as that class):"), table,
            html.bullet_list(worse) if worse else html.paragraph(
                f'No class is clearly worse than the others (one-sided p < '
                f'{class_accuracy.WORSE_ALPHA:g} / {len(rows)} classes).', 'ok')]


def _errors(ctx: _Context) -> List[Any]:
    model_run = ctx.output(TRAINER_NODE, standard_component_specs.MODEL_RUN_KEY)
    examples = ctx.output(EXAMPLE_GEN_NODE, standard_component_specs.EXAMPLES_KEY)
    if model_run is None or examples is None:
        return [ctx.missing(TRAINER_NODE, 'model')]
    answers = eval_answers.load(model_run.uri)
    if answers is None:
        return [html.paragraph(f'The Trainer recorded no answers on the {features.EVAL_SPLIT} '
                               f'split ({eval_answers.ANSWERS_FILE}; runs before they were '
                               'recorded).', 'muted')]
    seen = answers['images']
    errors = sorted(answers['misclassified'], key=lambda e: -e['probability'])
    parts = [html.paragraph(
        f'{len(errors)} misclassified of all {seen} {features.EVAL_SPLIT} images (the '
        'final weights, the ones exported, answering on the split as the Trainer '
        f'validated on it; accuracy on them {fmt(1 - len(errors) / seen) if seen else "-"}).')]
    if not errors:
        parts.append(html.paragraph('No misclassified image.', 'ok'))
        return parts
    shown = errors[:MAX_ERRORS_SHOWN]
    images = examples_io.images_by_path(examples.uri, features.EVAL_SPLIT,
                                        [e['path'] for e in shown if e['path']])
    tiles = [(plots.decode_thumbnail(images[e['path']]),
              f"true {e['true_label']}\npredicted {e['predicted_label']} ({e['probability']:.1%})")
             for e in shown if e['path'] in images]
    if len(errors) > len(shown):
        parts.append(html.paragraph(f'The {len(shown)} most confident mistakes are shown.',
                                    'muted'))
    if tiles:
        rows = [('', tiles[i:i + ERRORS_PER_ROW]) for i in range(0, len(tiles), ERRORS_PER_ROW)]
        parts.append(html.image(plots.image_grid(rows), 'misclassified eval images'))
    parts.append(html.table(
        [[e['path'], e['true_label'], e['predicted_label'], f"{e['probability']:.4f}"]
         for e in shown], ['path', 'true label', 'predicted label', 'probability']))
    return parts


def run_accuracy(run: mlmd_runs.PipelineRun) -> Optional[float]:
    """The candidate's eval accuracy from a run's Evaluator output, or None."""
    evaluation = run.output(EVALUATOR_NODE, standard_component_specs.EVALUATION_KEY)
    if evaluation is None:
        return None
    try:
        return load_evaluation(evaluation.uri).accuracy
    except (OSError, tf.errors.OpError, ValueError) as e:
        logging.warning('No metrics in %s: %s', evaluation.uri, e)
        return None


def _runs(ctx: _Context) -> List[Any]:
    rows = []
    for run in reversed(ctx.runs[-MAX_RUNS_LISTED:]):
        is_blessed = blessed(run)
        pushed = push_result(run)
        variants = [trainer_config(n).get('model_variant', n.node_id) for n in trainer_nodes(run)]
        executed = sum(n.state == 'COMPLETE' for n in run.nodes.values())
        cached = sum(n.state == 'CACHED' for n in run.nodes.values())
        rows.append([
            run.run_id + (' (this report)' if run.run_id == ctx.run.run_id else ''),
            _date(run.create_time_ms), outcome(run), ', '.join(variants) or '-',
            fmt(ctx.evaluation.accuracy if run is ctx.run and ctx.evaluation
                else run_accuracy(run)),
            '-' if is_blessed is None else ('yes' if is_blessed else 'no'),
            '-' if pushed is None else (pushed['version'] if pushed['pushed'] else 'not pushed'),
            f'{executed} / {cached}'])
    return [
        html.paragraph(f'All runs of this pipeline in ML Metadata, newest first '
                       f'({len(ctx.runs)} in all; at most {MAX_RUNS_LISTED} listed).'),
        html.table(rows, ['run id', 'started', 'outcome', 'variants', 'accuracy', 'blessed',
                          'pushed version', 'executed / cached']),
    ]


def versions(run: mlmd_runs.PipelineRun) -> List[List[str]]:
    """(what, version) rows: TFX as recorded on the artifacts, packages as installed."""
    recorded = sorted({str(mlmd_runs.custom_property(a, TFX_VERSION_PROPERTY))
                       for node in run.nodes.values() for outs in node.outputs.values()
                       for a in outs if mlmd_runs.custom_property(a, TFX_VERSION_PROPERTY)})
    rows = [['tfx (recorded on this run\'s artifacts)', ', '.join(recorded) or '-']]
    for name in VERSIONED_PACKAGES:
        try:
            rows.append([f'{name} (installed)', importlib.metadata.version(name)])
        except importlib.metadata.PackageNotFoundError:
            rows.append([f'{name} (installed)', 'not installed'])
    rows.append(['python', sys.version.split()[0]])
    return rows


def _facts(ctx: _Context) -> List[Any]:
    run = ctx.run
    example_gen = run.nodes.get(EXAMPLE_GEN_NODE)
    data_root = (_exec_properties(example_gen.execution).get(
        standard_component_specs.INPUT_BASE_KEY, '-') if example_gen else '-')
    end_ms = max((n.execution.last_update_time_since_epoch for n in run.nodes.values()),
                 default=run.create_time_ms)
    executed = [n.node_id for n in run.nodes.values() if n.state == 'COMPLETE']
    cached = [n.node_id for n in run.nodes.values() if n.state == 'CACHED']
    parts = [html.table([
        ['run id', run.run_id],
        ['started', _date(run.create_time_ms)],
        ['wall time', f'{(end_ms - run.create_time_ms) / 1000:.1f} s'],
        ['data root', data_root],
        ['executed', ', '.join(executed) or '-'],
        ['cached (outputs reused)', ', '.join(cached) or '-'],
    ])]

    timing = [[n.node_id, n.state, f'{n.seconds:.1f}'] for n in run.nodes.values()]
    parts += [html.paragraph('Time per component:'),
              html.table(timing, ['component', 'state', 'seconds']),
              html.image(plots.bars({f'{n.node_id}' + (' (cached)' if n.state == 'CACHED'
                                                       else ''): n.seconds
                                     for n in run.nodes.values()},
                                    'Seconds per component', 'seconds'),
                         'seconds per component')]

    for node in trainer_nodes(run):
        settings = trainer_config(node)
        parts += [html.paragraph(f'{node.node_id} custom_config (the run knobs):'),
                  html.table([[k, v if isinstance(v, str) else json.dumps(v)]
                              for k, v in sorted(settings.items())],
                             ['setting', 'value'])]

    details = []
    for node in run.nodes.values():
        props = _exec_properties(node.execution)
        if props:
            details.append(html.details(f'{node.node_id} execution properties', [html.table(
                [[k, html.preformatted(v) if isinstance(v, str) and '\n' in v else v]
                 for k, v in props.items()], ['property', 'value'])]))
    parts += [html.paragraph('Component settings (execution properties, as recorded in ML '
                             'Metadata):')] + details
    parts += [html.paragraph('Versions:'), html.table(versions(run), ['package', 'version'])]
    return parts


def _section(heading: str, build, ctx: _Context, anchor: Optional[str] = None) -> html.Section:
    """A section; an unreadable artifact yields a note in it rather than no report."""
    try:
        parts = build(ctx)
    except Exception as e:  # pylint: disable=broad-except
        logging.exception('Run report: section %s failed', heading)
        parts = [html.paragraph(f'This section could not be built: {type(e).__name__}: {e}',
                                'fail')]
    return html.Section(heading, parts, anchor=anchor)


def build_report(metadata_path: str, pipeline_name: str, out_dir: str, *,
                 run_id: Optional[str] = None) -> str:
    """The HTML of a run's report.

    Args:
      metadata_path: the SQLite MLMD file.
      pipeline_name: the pipeline's name in MLMD.
      out_dir: where the page will be written (links to artifacts are relative to it).
      run_id: the run to report (default: the latest).

    Returns:
      The page.

    Raises:
      ValueError: the store has no run of this pipeline, or none with this id.
    """
    runs = mlmd_runs.pipeline_runs(mlmd_runs.open_store(metadata_path), pipeline_name)
    if not runs:
        raise ValueError(f'no run of pipeline {pipeline_name!r} in {metadata_path}')
    chosen = [r for r in runs if r.run_id == run_id] if run_id else runs[-1:]
    if not chosen:
        raise ValueError(f'no run {run_id!r} of pipeline {pipeline_name!r} in {metadata_path}; '
                         f'runs: {", ".join(r.run_id for r in runs)}')
    ctx = _Context(run=chosen[0], runs=runs, out_dir=out_dir)
    examples = ctx.output(EXAMPLE_GEN_NODE, standard_component_specs.EXAMPLES_KEY)
    if examples is not None:
        ctx.class_names = examples_io.read_class_names(examples.uri)
        try:
            ctx.samples = examples_io.samples_per_label(
                examples.uri, features.TRAIN_SPLIT, ctx.class_names, SAMPLES_PER_CLASS)
        except FileNotFoundError as e:
            logging.warning('No sample images: %s', e)
    evaluation = ctx.output(EVALUATOR_NODE, standard_component_specs.EVALUATION_KEY)
    if evaluation is not None:
        ctx.evaluation = load_evaluation(evaluation.uri)
    test_evaluation = ctx.output(TEST_EVALUATOR_NODE, standard_component_specs.EVALUATION_KEY)
    if test_evaluation is not None:
        ctx.test_evaluation = load_evaluation(test_evaluation.uri)

    sections = [_section('Summary', _summary, ctx),
                _section('Data', _data, ctx),
                _section('Augmentation preview', _augmentation, ctx)]
    if TUNER_NODE in ctx.run.nodes:
        sections.append(_section('Tuning', _tuning, ctx))
    sections.append(_section('Training', _training, ctx))
    if len(trainer_nodes(ctx.run)) > 1:
        sections.append(_section('Comparison', _comparison, ctx))
    sections += [_section('Evaluation', _evaluation, ctx),
                 _section('Errors', _errors, ctx),
                 _section('Runs', _runs, ctx),
                 _section('Run facts', _facts, ctx)]
    return html.page(f'Run report: {pipeline_name}', sections,
                     subtitle=f'run {ctx.run.run_id}, {_date(ctx.run.create_time_ms)}: '
                              f'{outcome(ctx.run)}')


def write_report(metadata_path: str, pipeline_name: str, out_path: str, *,
                 run_id: Optional[str] = None) -> str:
    """Writes a run's report (by default the latest run's).

    Args:
      metadata_path: the SQLite MLMD file.
      pipeline_name: the pipeline's name in MLMD.
      out_path: the HTML file to write (local or any tf.io.gfile URL).
      run_id: the run to report (default: the latest).

    Returns:
      out_path.
    """
    page = build_report(metadata_path, pipeline_name, os.path.dirname(out_path) or '.',
                        run_id=run_id)
    if os.path.dirname(out_path):
        tf.io.gfile.makedirs(os.path.dirname(out_path))
    with tf.io.gfile.GFile(out_path, 'w') as f:
        f.write(page)
    logging.info('Run report written to %s', out_path)
    return out_path


def main(argv: Optional[Sequence[str]] = None) -> int:
    """CLI: writes a run's report; exit status 2 when there is nothing to report."""
    default_work = 'work'
    parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    parser.add_argument('--metadata-path', default=configs.metadata_path(default_work),
                        help='SQLite ML Metadata file (default: %(default)s)')
    parser.add_argument('--pipeline-name', default=configs.PIPELINE_NAME,
                        help='pipeline name (default: %(default)s)')
    parser.add_argument('--out', default=os.path.join(default_work, 'run_report.html'),
                        help='HTML file to write (default: %(default)s)')
    parser.add_argument('--run-id', help='the run to report (default: the latest)')
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if '://' not in args.metadata_path and not os.path.isfile(args.metadata_path):
        print(f'error: no metadata file {args.metadata_path}', file=sys.stderr)
        return 2
    try:
        path = write_report(args.metadata_path, args.pipeline_name, args.out,
                            run_id=args.run_id)
    except ValueError as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    print(f'run report: {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
