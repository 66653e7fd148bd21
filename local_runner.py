"""Runs the pipeline on this machine: LocalDagRunner, MLMD on SQLite, Beam DirectRunner.

    python local_runner.py [--data-root DIR] [--work-dir DIR] [--epochs N] ...

Defaults: pipeline/local_defaults.py. A run first tidies what a killed run left
(pipeline/recovery.py). Console lines: reports/console_summary.py. Modules that load
TensorFlow are imported after main() opens the Console: their import-time logs go to its file.
"""

import argparse
import functools
import gc
import logging
import os
import sys
import time
from typing import Optional, Sequence

from models import features
from pipeline import cli
from pipeline import console
from reports import mlmd_runs

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
    from pipeline import configs  # pylint: disable=import-outside-toplevel
    from pipeline import local_defaults  # pylint: disable=import-outside-toplevel
    data_root = os.path.abspath(args.data_root) if args.data_root else local_defaults.data_root()
    # Counted only as far as the choice of Beam's running mode needs.
    root = layout.inspect_data_root(data_root, count_up_to=configs.IN_MEMORY_MAX_IMAGES + 1,
                                    symlinks=args.symlinks or features.SYMLINKS)
    overrides = {
        **cli.run_overrides(args), 'weights': args.weights or local_defaults.weights(),
        'pipeline_root': args.pipeline_root, 'serving_dir': args.serving_dir,
        'version_label': args.version_label, 'model_config_file': args.model_config_file,
        'beam_pipeline_args': tuple(args.beam_args) if args.beam_args else None,
    }
    overrides = {k: os.path.abspath(v) if k.endswith(('_root', '_dir')) and v else v
                 for k, v in overrides.items() if v is not None}
    return configs.local(os.path.abspath(args.work_dir), root.root, presplit=root.presplit,
                         class_names=root.class_names, images=root.images,
                         test_folder=root.test_folder, **overrides)


def run(config, metadata_path: str, con: Optional[console.Console] = None) -> None:
    """Runs the pipeline (a PipelineConfig) with LocalDagRunner and SQLite MLMD at
    metadata_path; con, a Console, numbers the components and shows their state."""
    # Not `from tfx import v1`: it loads the Google Cloud extensions too (pipeline.py).
    from tfx.orchestration import metadata  # pylint: disable=import-outside-toplevel
    from tfx.orchestration.local import local_dag_runner  # pylint: disable=import-outside-toplevel
    from pipeline import pipeline as pipeline_def  # pylint: disable=import-outside-toplevel
    from pipeline import recovery  # pylint: disable=import-outside-toplevel
    dsl_pipeline = pipeline_def.create_pipeline(
        config, metadata.sqlite_metadata_connection_config(metadata_path))
    if con is not None:
        con.node_ids = [component.id for component in dsl_pipeline.components]
        con.node_state = functools.partial(mlmd_runs.node_state, metadata_path,
                                           config.pipeline_name)
    say = con.say if con is not None else logging.getLogger(__name__).warning
    with recovery.guard(metadata_path, dsl_pipeline, say=say,
                        serving_base=os.path.join(config.serving_dir, config.model_name)):
        # TFX hands the process's argv to every executor and to absl as their flags.
        argv, sys.argv = sys.argv, sys.argv[:1]
        try:
            local_dag_runner.LocalDagRunner().run(dsl_pipeline)
        finally:
            sys.argv = argv


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The command line; returns the exit status (1: the run failed, 2: nothing ran)."""
    start = time.perf_counter()
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if not args.verbose:  # C++ INFO lines off, even in the log; --verbose: everything
        os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '1')
    work_dir = os.path.abspath(args.work_dir)
    log_name = f'run-{time.strftime("%Y%m%d-%H%M%S")}-{os.getpid()}.log'
    with console.Console(os.path.join(work_dir, 'logs', log_name), verbose=args.verbose) as con:
        code = _main(args, con, work_dir, start)
    if code == 2:
        con.discard()  # nothing ran, nothing is left behind
    return code


def _main(args: argparse.Namespace, con: console.Console, work_dir: str, start: float) -> int:
    from pipeline import configs  # pylint: disable=import-outside-toplevel
    from pipeline import recovery  # pylint: disable=import-outside-toplevel
    from reports import console_summary  # pylint: disable=import-outside-toplevel
    try:
        config = build_config(args)
    except ValueError as e:  # layout.DataRootError among them
        con.error(f'error: {e}')
        return 2
    metadata_path = os.path.abspath(args.metadata_path or configs.metadata_path(work_dir))
    from components import child_process  # pylint: disable=import-outside-toplevel
    child_process.start()  # its TensorFlow import beside ours (the TFLite stages' worker)
    for line in console_summary.header(config):
        con.say(line)
    from pipeline import pipeline  # pylint: disable=import-outside-toplevel,unused-import
    gc.freeze()  # all a run imports is loaded: no collection looks at it again
    gc.enable()
    failure = None
    try:
        run(config, metadata_path, con)
    except recovery.BusyError as e:
        con.error(f'error: {e}')
        return 2
    except Exception as e:  # pylint: disable=broad-except
        failure = e
        logging.getLogger(__name__).error('run failed', exc_info=e)  # the log has it all
        con.failed(str(e))
    for line in console_summary.summarize(config, metadata_path):
        con.say(line)
    if not args.no_report:
        con.say(console_summary.run_report_line(metadata_path, config.pipeline_name,
                                                os.path.join(work_dir, 'run_report.html')))
    con.say(f'log: {con.log_path}')
    if failure is not None:
        con.say(f'failed after {time.perf_counter() - start:.0f} s')
        con.error(console_summary.failure_line(failure, con, config, metadata_path))
        return 1
    con.say(f'pipeline finished in {time.perf_counter() - start:.0f} s')
    return 0


if __name__ == '__main__':
    gc.disable()  # imports: ~1M objects, no garbage; _main freezes them (docs/benchmarks.md)
    exit_code = main()
    # No last garbage collection over all TensorFlow, Beam and TFX left: exit frees it.
    gc.freeze()
    sys.exit(exit_code)
