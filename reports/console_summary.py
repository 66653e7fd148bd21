"""What the runner's console says before and after a run: the header, the closing summary
and the one-line failure.

Read from ML Metadata and the artifacts of the latest run, through the readers each
component keeps beside its spec (`image_example_gen/spec.py: read_report`,
`data_report/spec.py: read_verdict`) and the run report's (evaluation, blessing, push).
"""

import collections
import logging
import os
from typing import Any, Callable, List, Optional

import tensorflow as tf
from tfx.types import standard_component_specs as keys

from components import artifacts
from components.data_report import spec as data_report_spec
from components.image_example_gen import layout
from components.image_example_gen import spec as example_gen_spec
from components.image_example_gen import summary as example_gen_summary
from pipeline import console
from pipeline import nodes
from reports import class_accuracy
from reports import mlmd_runs
from reports import run_report


def header(config) -> List[str]:
    """What is about to run: data, layout, classes, the model's input size and why."""
    if config.presplit:
        layout_text = ('train/, validation/ and test/ folders' if config.test_folder else
                       'train/ and validation/ folders') + ' (validation = eval split)'
    else:
        ingest = config.ingest
        layout_text = (f'one folder per class, {ingest.eval_fraction:.0%} of each class to eval'
                       + (f' and {ingest.test_fraction:.0%} to test' if ingest.test_fraction
                          else '') + ' by content hash')
    (height, width), reason = config.input_size()
    return [f'data root: {config.data_root}',
            f'layout: {layout_text}',
            f'classes ({len(config.class_names)}): {", ".join(config.class_names)}',
            f'input size: {height}x{width}, {reason}']


def summarize(config, metadata_path: str) -> List[str]:
    """Lines telling what the latest run produced: data, evaluation, push."""
    run_info = mlmd_runs.latest_run(metadata_path, config.pipeline_name)
    if run_info is None:
        return []
    lines = []
    examples = run_info.output(nodes.EXAMPLE_GEN, keys.EXAMPLES_KEY)
    files = _quietly(example_gen_spec.read_report, examples.uri) if examples else None
    if files:
        lines += example_gen_summary.console_lines(
            files, os.path.join(examples.uri, example_gen_spec.REPORT_FILE))
        unread = layout.unread_photos(collections.Counter(
            layout.extension(i['path']) for i in files['ignored_files']))
        if unread:
            lines.append(layout.unread_photos_sentence(
                [f'{count} {extension}' for extension, count
                 in sorted(unread.items(), key=lambda item: (-item[1], item[0]))]))
    report = run_info.output(nodes.DATA_REPORT, data_report_spec.REPORT_KEY)
    if report is not None:
        verdict = _quietly(data_report_spec.read_verdict, report.uri) or {}
        status = ('passed' if verdict.get('passed') else
                  f"FAILED ({len(verdict.get('problems', []))} problems)")
        lines.append(f'data validation {status}: '
                     f'{os.path.join(report.uri, artifacts.REPORT_HTML)}')
    evaluation = run_info.output(nodes.EVALUATOR, keys.EVALUATION_KEY)
    if evaluation is not None:
        result = run_report.load_evaluation(evaluation.uri)
        blessed = run_report.blessed(run_info)
        lines.append(f'eval accuracy {result.accuracy:.4f} on {int(result.example_count)} '
                     f"images: {'blessed' if blessed else 'NOT blessed'}")
        if result.confusion is not None:
            lines += class_accuracy.worse_sentences(
                class_accuracy.per_class(result.confusion, config.class_names))
    test = run_info.output(nodes.TEST_EVALUATOR, keys.EVALUATION_KEY)
    if test is not None:
        result = run_report.load_evaluation(test.uri)
        lines.append(f'held-out test accuracy {result.accuracy:.4f} on '
                     f'{int(result.example_count)} images (never trained, tuned or gated on)')
        if result.confusion is not None:
            lines += class_accuracy.worse_sentences(
                class_accuracy.per_class(result.confusion, config.class_names), 'test')
    pushed = run_report.push_result(run_info)
    if pushed is not None:
        if pushed['pushed']:
            lines.append(f"pushed version {pushed['version']}: {pushed['destination']}")
        else:
            lines.append(f"model NOT pushed: {pushed['reason']}")
    return lines


def failure_line(failure: BaseException, con: console.Console, config,
                 metadata_path: str) -> str:
    """The one-line reason of a failed run, and where to look.

    Args:
      failure: what the run raised.
      con: the run's Console (its log file, the component that failed).
      config: the PipelineConfig that ran.
      metadata_path: the SQLite MLMD file.

    Returns:
      'error: <component>: <reason>; see <data report when the data failed>, log <path>'.
    """
    message = str(failure).strip()
    reason = console.reason_line(message) if message else type(failure).__name__
    where = []
    run_info = mlmd_runs.latest_run(metadata_path, config.pipeline_name) if os.path.exists(
        metadata_path) else None
    report = run_info.output(nodes.DATA_REPORT, data_report_spec.REPORT_KEY) if run_info else None
    verdict = _quietly(data_report_spec.read_verdict, report.uri) if report else None
    if verdict is not None and not verdict.get('passed'):   # the data is the reason
        where.append(f'data report {os.path.join(report.uri, artifacts.REPORT_HTML)}')
    where.append(f'log {con.log_path}')
    node = f'{con.failed_node}: ' if con.failed_node else ''
    return f'error: {node}{reason}; see {", ".join(where)}'


def run_report_line(metadata_path: str, pipeline_name: str, out_path: str) -> str:
    """Writes the run report to out_path; returns what the console says: where it is, or
    why it is not there (the traceback goes to the log)."""
    try:
        return f'run report: {run_report.write_report(metadata_path, pipeline_name, out_path)}'
    except Exception as e:  # pylint: disable=broad-except
        logging.getLogger(__name__).error('run report not written', exc_info=e)
        return f'warning: run report not written: {e}'


def _quietly(reader: Callable[[str], Optional[Any]], uri: str) -> Optional[Any]:
    """reader(uri), or None when the file cannot be read: a run killed while writing it
    still gets the rest of its summary."""
    try:
        return reader(uri)
    except (OSError, ValueError, tf.errors.OpError):
        return None
