"""Runs the pipeline on this machine: LocalDagRunner, MLMD on SQLite, Beam DirectRunner.

    python local_runner.py [--data-root DIR] [--work-dir DIR] [--epochs N] ...

Without --data-root it uses ../shared/datasets/cats_vs_dogs when present, else
downloads and caches the tutorial's cats_and_dogs_filtered.zip.
Re-running reuses cached component outputs (same inputs, same settings). A run
first tidies what a killed run left behind (pipeline/recovery.py).
"""

import argparse
import collections
import contextlib
import gc
import logging as std_logging
import os
import sys
import time
from typing import List, Optional, Sequence

from pipeline import cli

TUTORIAL_DATA_URL = 'https://storage.googleapis.com/mledu-datasets/cats_and_dogs_filtered.zip'


def download_tutorial_data(cache_dir: Optional[str] = None) -> str:
    """Downloads (once) and extracts the tutorial's data set; returns its folder."""
    import tf_keras  # pylint: disable=import-outside-toplevel
    path = tf_keras.utils.get_file('cats_and_dogs.zip', origin=TUTORIAL_DATA_URL, extract=True,
                                   cache_dir=cache_dir)
    return os.path.join(os.path.dirname(path), 'cats_and_dogs_filtered')


def default_data_root() -> str:
    from pipeline import configs  # pylint: disable=import-outside-toplevel
    if os.path.isdir(configs.SHARED_DATA_ROOT):
        return configs.SHARED_DATA_ROOT
    return download_tutorial_data()


def default_weights() -> str:
    from pipeline import configs  # pylint: disable=import-outside-toplevel
    return configs.SHARED_WEIGHTS if os.path.isfile(configs.SHARED_WEIGHTS) else configs.IMAGENET


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data-root', help='class folders, or train/ and validation/ of them')
    parser.add_argument('--work-dir', default='work',
                        help='default home of pipeline root, metadata and serving dir')
    parser.add_argument('--pipeline-root')
    parser.add_argument('--metadata-path')
    parser.add_argument('--serving-dir')
    cli.add_run_flags(parser, weights_help="'imagenet' or a weights file (default: ../shared's)")
    parser.add_argument('--version-label', help="e.g. canary (needs --model-config-file)")
    parser.add_argument('--model-config-file')
    parser.add_argument('--beam-arg', action='append', dest='beam_args', default=None,
                        help='a Beam pipeline argument, repeatable (replaces the defaults)')
    parser.add_argument('--no-report', action='store_true', help='skip the HTML run report')
    parser.add_argument('--verbose', action='store_true', help='TFX and Beam INFO logs')
    return parser.parse_args(argv)


def build_config(args: argparse.Namespace):
    """PipelineConfig from the flags (the local preset plus overrides)."""
    from components.image_example_gen import layout  # pylint: disable=import-outside-toplevel
    from models import features  # pylint: disable=import-outside-toplevel
    from pipeline import configs  # pylint: disable=import-outside-toplevel

    data_root = os.path.abspath(args.data_root) if args.data_root else default_data_root()
    # Counted only as far as the choice of Beam's running mode needs.
    root = layout.inspect_data_root(data_root, count_up_to=configs.IN_MEMORY_MAX_IMAGES + 1,
                                    symlinks=args.symlinks or features.SYMLINKS)
    work_dir = os.path.abspath(args.work_dir)
    overrides = {
        **cli.run_overrides(args),
        'pipeline_root': args.pipeline_root, 'serving_dir': args.serving_dir,
        'weights': args.weights or default_weights(),
        'version_label': args.version_label, 'model_config_file': args.model_config_file,
        'beam_pipeline_args': tuple(args.beam_args) if args.beam_args else None,
    }
    overrides = {k: os.path.abspath(v) if k.endswith(('_root', '_dir')) and v else v
                 for k, v in overrides.items() if v is not None}
    return configs.local(work_dir, root.root, presplit=root.presplit, class_names=root.class_names,
                         images=root.images,
                         test_folder=root.test_folder, **overrides)


def run(config, metadata_path: str, con=None) -> None:
    """Runs the pipeline with LocalDagRunner and SQLite MLMD.

    Args:
      config: the PipelineConfig.
      metadata_path: the SQLite MLMD file.
      con: a pipeline.console.Console to number components and show their state.
    """
    # Not `from tfx import v1`: it loads the Google Cloud extensions too (pipeline.py).
    from tfx.orchestration import metadata  # pylint: disable=import-outside-toplevel
    from tfx.orchestration.local import local_dag_runner  # pylint: disable=import-outside-toplevel
    from pipeline import pipeline as pipeline_def  # pylint: disable=import-outside-toplevel
    from pipeline import recovery  # pylint: disable=import-outside-toplevel
    from reports import mlmd_runs  # pylint: disable=import-outside-toplevel
    os.makedirs(os.path.dirname(metadata_path) or '.', exist_ok=True)
    dsl_pipeline = pipeline_def.create_pipeline(
        config, metadata.sqlite_metadata_connection_config(metadata_path))
    if con is not None:
        con.node_ids = [component.id for component in dsl_pipeline.components]
        con.node_state = lambda node_id: _node_state(mlmd_runs, metadata_path,
                                                     config.pipeline_name, node_id)
    say = con.say if con is not None else std_logging.getLogger(__name__).warning
    with recovery.guard(metadata_path, dsl_pipeline, say=say,
                        serving_base=os.path.join(config.serving_dir, config.model_name)):
        with _executor_argv():
            local_dag_runner.LocalDagRunner().run(dsl_pipeline)


@contextlib.contextmanager
def _executor_argv():
    """sys.argv as TFX's executors should see it: the program name only.

    TFX passes the process's own arguments to every executor as extra flags
    (tfx/orchestration/portable/python_executor_operator.py) and to absl
    (tfx/dsl/components/base/base_beam_executor.py). Ours (or pytest's) are not
    theirs. This is the one place that touches process-wide state, for the
    duration of a run only.
    """
    argv, sys.argv = sys.argv, sys.argv[:1]
    try:
        yield
    finally:
        sys.argv = argv


def _node_state(mlmd_runs, metadata_path: str, pipeline_name: str, node_id: str):
    run_info = mlmd_runs.latest_run(metadata_path, pipeline_name)
    node = run_info.nodes.get(node_id) if run_info else None
    return node.state if node else None


def run_logged(config, metadata_path: str, log_path: str, *, verbose: bool = False) -> None:
    """`run` behind a Console: component lines on the console, the rest in log_path."""
    from pipeline import console  # pylint: disable=import-outside-toplevel
    with console.Console(log_path, verbose=verbose) as con:
        run(config, metadata_path, con)


def new_log_path(work_dir: str) -> str:
    """<work_dir>/logs/run-<local time>-<pid>.log"""
    return os.path.join(work_dir, 'logs', f'run-{time.strftime("%Y%m%d-%H%M%S")}-'
                                          f'{os.getpid()}.log')


def header(config) -> List[str]:
    """What is about to run: data, layout, classes, the model's input size and why."""
    if config.presplit:
        layout_text = ('train/, validation/ and test/ folders' if config.test_folder else
                       'train/ and validation/ folders') + ' (validation = eval split)'
    else:
        layout_text = (f'one folder per class, {config.eval_fraction:.0%} of each class to eval'
                       + (f' and {config.test_fraction:.0%} to test' if config.test_fraction
                          else '') + ' by content hash')
    (height, width), reason = config.input_size()
    return [f'data root: {config.data_root}',
            f'layout: {layout_text}',
            f'classes ({len(config.class_names)}): {", ".join(config.class_names)}',
            f'input size: {height}x{width}, {reason}']


def summarize(config, metadata_path: str) -> List[str]:
    """Lines telling what the latest run produced: data, evaluation, push."""
    from tfx.types import standard_component_specs as keys  # pylint: disable=import-outside-toplevel
    from components import artifacts  # pylint: disable=import-outside-toplevel
    from components.data_report import spec as data_report_spec  # pylint: disable=import-outside-toplevel
    from components.image_example_gen import layout  # pylint: disable=import-outside-toplevel
    from components.image_example_gen import spec  # pylint: disable=import-outside-toplevel
    from components.image_example_gen import summary as example_gen_summary  # pylint: disable=import-outside-toplevel
    from pipeline import nodes  # pylint: disable=import-outside-toplevel
    from reports import class_accuracy  # pylint: disable=import-outside-toplevel
    from reports import mlmd_runs  # pylint: disable=import-outside-toplevel
    from reports import run_report  # pylint: disable=import-outside-toplevel
    run_info = mlmd_runs.latest_run(metadata_path, config.pipeline_name)
    if run_info is None:
        return []
    lines = []
    examples = run_info.output(nodes.EXAMPLE_GEN, keys.EXAMPLES_KEY)
    files = _read_json(os.path.join(examples.uri, spec.REPORT_FILE)) if examples else None
    if files:
        lines += example_gen_summary.console_lines(
            files, os.path.join(examples.uri, spec.REPORT_FILE))
        unread = layout.unread_photos(collections.Counter(
            layout.extension(i['path']) for i in files['ignored_files']))
        if unread:
            lines.append(layout.unread_photos_sentence(
                [f'{count} {extension}' for extension, count
                 in sorted(unread.items(), key=lambda item: (-item[1], item[0]))]))
    report = run_info.output(nodes.DATA_REPORT, data_report_spec.REPORT_KEY)
    if report is not None:
        verdict = _read_json(os.path.join(report.uri, artifacts.VERDICT_JSON)) or {}
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


def _read_json(path: str):
    import json  # pylint: disable=import-outside-toplevel
    try:
        with open(path, encoding='utf-8') as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def failure_line(failure: BaseException, con, config, metadata_path: str) -> str:
    """The one-line reason of a failed run, and where to look."""
    from components import artifacts  # pylint: disable=import-outside-toplevel
    from components.data_report import spec as data_report_spec  # pylint: disable=import-outside-toplevel
    from pipeline import nodes  # pylint: disable=import-outside-toplevel
    from reports import mlmd_runs  # pylint: disable=import-outside-toplevel
    from pipeline import console  # pylint: disable=import-outside-toplevel
    message = str(failure).strip()
    reason = console.reason_line(message) if message else type(failure).__name__
    where = []
    run_info = mlmd_runs.latest_run(metadata_path, config.pipeline_name) if os.path.exists(
        metadata_path) else None
    report = run_info.output(nodes.DATA_REPORT, data_report_spec.REPORT_KEY) if run_info else None
    verdict = _read_json(os.path.join(report.uri, artifacts.VERDICT_JSON)) if report else None
    if verdict is not None and not verdict.get('passed'):   # the data is the reason
        where.append(f'data report {os.path.join(report.uri, artifacts.REPORT_HTML)}')
    where.append(f'log {con.log_path}')
    node = f'{con.failed_node}: ' if con.failed_node else ''
    return f'error: {node}{reason}; see {", ".join(where)}'


def main(argv: Optional[Sequence[str]] = None) -> int:
    start = time.perf_counter()
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from pipeline import console  # pylint: disable=import-outside-toplevel
    if not args.verbose:  # C++ INFO lines off, even in the log; --verbose: everything
        os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '1')
    work_dir = os.path.abspath(args.work_dir)
    con = console.Console(new_log_path(work_dir), verbose=args.verbose)
    with con:
        code = _main(args, con, work_dir, start)
    if code == 2:
        con.discard()  # a user error: nothing ran, nothing is left behind
    return code


def _main(args: argparse.Namespace, con, work_dir: str, start: float) -> int:
    from components.image_example_gen import layout  # pylint: disable=import-outside-toplevel
    from pipeline import configs  # pylint: disable=import-outside-toplevel
    try:
        config = build_config(args)
    except (layout.DataRootError, ValueError) as e:
        con.error(f'error: {e}')
        return 2
    metadata_path = (os.path.abspath(args.metadata_path) if args.metadata_path
                     else configs.metadata_path(work_dir))
    for line in header(config):
        con.say(line)
    failure = None
    from pipeline import recovery  # pylint: disable=import-outside-toplevel
    try:
        run(config, metadata_path, con)
    except recovery.BusyError as e:
        con.error(f'error: {e}')
        return 2
    except Exception as e:  # pylint: disable=broad-except
        failure = e
        logging_failure(e)
        con.failed(str(e))
    for line in summarize(config, metadata_path):
        con.say(line)
    if not args.no_report:
        try:
            from reports import run_report  # pylint: disable=import-outside-toplevel
            path = run_report.write_report(metadata_path, config.pipeline_name,
                                           os.path.join(work_dir, 'run_report.html'))
            con.say(f'run report: {path}')
        except Exception as e:  # pylint: disable=broad-except
            logging_failure(e)
            con.say(f'warning: run report not written: {e}')
    con.say(f'log: {con.log_path}')
    if failure is not None:
        con.say(f'failed after {time.perf_counter() - start:.0f} s')
        con.error(failure_line(failure, con, config, metadata_path))
        return 1
    con.say(f'pipeline finished in {time.perf_counter() - start:.0f} s')
    return 0


def logging_failure(error: BaseException) -> None:
    """The whole traceback goes to the log file."""
    std_logging.getLogger(__name__).error('run failed', exc_info=error)


if __name__ == '__main__':
    exit_code = main()
    # The interpreter's last garbage collection would walk everything TensorFlow, Beam and
    # TFX left behind, 2-3 s after the summary, to free memory the process returns anyway.
    gc.freeze()
    sys.exit(exit_code)
