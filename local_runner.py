"""Runs the pipeline on this machine: LocalDagRunner, MLMD on SQLite, Beam DirectRunner.

    python local_runner.py [--data-root DIR] [--work-dir DIR] [--epochs N] ...

Without --data-root it uses ../shared/datasets/cats_vs_dogs when present, else
downloads and caches the tutorial's cats_and_dogs_filtered.zip.
Re-running reuses cached component outputs (same inputs, same settings).
"""

import argparse
import logging as std_logging
import os
import sys
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
    parser.add_argument('--push-label', help="e.g. canary (needs --model-config-file)")
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

    data_root = os.path.abspath(args.data_root) if args.data_root else default_data_root()
    root = layout.inspect_data_root(data_root)
    work_dir = os.path.abspath(args.work_dir)
    overrides = {
        **cli.run_overrides(args),
        'pipeline_root': args.pipeline_root, 'serving_dir': args.serving_dir,
        'weights': args.weights or default_weights(),
        'push_label': args.push_label, 'model_config_file': args.model_config_file,
        'beam_pipeline_args': tuple(args.beam_args) if args.beam_args else None,
    }
    overrides = {k: os.path.abspath(v) if k.endswith(('_root', '_dir')) and v else v
                 for k, v in overrides.items() if v is not None}
    return configs.local(work_dir, root.root, presplit=root.presplit, labels=root.labels,
                         **overrides)


def run(config, metadata_path: str) -> None:
    """Runs the pipeline with LocalDagRunner and SQLite MLMD."""
    from tfx import v1 as tfx  # pylint: disable=import-outside-toplevel
    from pipeline import pipeline as pipeline_def  # pylint: disable=import-outside-toplevel
    os.makedirs(os.path.dirname(metadata_path) or '.', exist_ok=True)
    dsl_pipeline = pipeline_def.create_pipeline(
        config, tfx.orchestration.metadata.sqlite_metadata_connection_config(metadata_path))
    # TFX hands sys.argv to absl flags and to Beam's options in every executor:
    # our own flags (or pytest's -v) must not reach them.
    argv, sys.argv = sys.argv, sys.argv[:1]
    try:
        tfx.orchestration.LocalDagRunner().run(dsl_pipeline)
    finally:
        sys.argv = argv


def summarize(config, metadata_path: str) -> List[str]:
    """Lines telling what the latest run produced (data report, blessing, push)."""
    from components import artifacts  # pylint: disable=import-outside-toplevel
    from reports import mlmd_runs  # pylint: disable=import-outside-toplevel
    run_info = mlmd_runs.latest_run(metadata_path, config.pipeline_name)
    if run_info is None:
        return []
    lines = []
    report = run_info.output('DataReport', 'report')
    if report is not None:
        lines.append(f'data report: {os.path.join(report.uri, artifacts.REPORT_HTML)}')
    pushed = run_info.output('ImagePusher', 'pushed_model')
    if pushed is not None:
        if mlmd_runs.custom_property(pushed, 'pushed'):
            lines.append(f"pushed version {mlmd_runs.custom_property(pushed, 'pushed_version')}:"
                         f" {mlmd_runs.custom_property(pushed, 'pushed_destination')}")
        else:
            lines.append('model NOT pushed: '
                         f"{mlmd_runs.custom_property(pushed, 'not_pushed_reason')}")
    return lines


def quiet_logs(verbose: bool) -> None:
    """TF, absl and Beam logs at WARNING (INFO when verbose)."""
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '1' if verbose else '2')
    from absl import logging  # pylint: disable=import-outside-toplevel
    logging.set_verbosity(logging.INFO if verbose else logging.WARNING)
    std_logging.getLogger().setLevel(std_logging.INFO if verbose else std_logging.WARNING)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    quiet_logs(args.verbose)
    from components.image_example_gen import layout  # pylint: disable=import-outside-toplevel
    from pipeline import configs  # pylint: disable=import-outside-toplevel
    try:
        config = build_config(args)
    except (layout.DataRootError, ValueError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    metadata_path = (os.path.abspath(args.metadata_path) if args.metadata_path
                     else configs.metadata_path(os.path.abspath(args.work_dir)))
    print(f'data root: {config.data_root} ({"train/validation" if config.presplit else "hash split"},'
          f' labels {", ".join(config.labels)})')
    print(f'pipeline root: {config.pipeline_root}\nmetadata: {metadata_path}')
    failure = None
    try:
        run(config, metadata_path)
    except Exception as e:  # pylint: disable=broad-except
        failure = e
    for line in summarize(config, metadata_path):
        print(line)
    if not args.no_report:
        try:
            from reports import run_report  # pylint: disable=import-outside-toplevel
            path = run_report.write_report(metadata_path, config.pipeline_name,
                                           os.path.join(os.path.abspath(args.work_dir),
                                                        'run_report.html'))
            print(f'run report: {path}')
        except ImportError:
            pass
        except Exception as e:  # pylint: disable=broad-except
            print(f'warning: run report not written: {e}', file=sys.stderr)
    if failure is not None:
        print(f'error: {type(failure).__name__}: {failure}', file=sys.stderr)
        return 1
    print('pipeline finished')
    return 0


if __name__ == '__main__':
    sys.exit(main())
