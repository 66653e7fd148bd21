"""Compiles the pipeline for Kubeflow Pipelines v2 / Vertex AI Pipelines (a JSON spec).

    python kubeflow_v2_runner.py --project P --region us-central1 \\
        --image us-central1-docker.pkg.dev/P/tfx/image-classification:1 \\
        --data-root gs://B/cats_vs_dogs --pipeline-root gs://B/pipeline_root \\
        --serving-dir gs://B/serving --temp-location gs://B/tmp --output-dir build

The same create_pipeline() as local_runner.py, with the vertex preset: every
Beam-based component runs on Dataflow, every path is on Cloud Storage, and all
components run in the image built from the Dockerfile. Nothing is submitted;
docs/kubeflow.md tells how to build the image and submit the spec.
"""

import argparse
import os
import sys
from typing import NoReturn, Optional, Sequence

from pipeline import cli


class _ArgumentParser(argparse.ArgumentParser):
    """Usage mistakes print one line, as the runners' other errors do."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f'error: {message} (see --help)\n')


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Parses the command line (argparse only: nothing heavy is imported)."""
    parser = _ArgumentParser(description=__doc__.split('\n')[0])
    cloud = parser.add_argument_group('cloud (required)')
    cloud.add_argument('--project', required=True, help='Google Cloud project (Dataflow)')
    cloud.add_argument('--region', required=True, help='Google Cloud region (Dataflow)')
    cloud.add_argument('--image', required=True,
                       help='pipeline image built from the Dockerfile, pushed to a registry')
    cloud.add_argument('--data-root', required=True,
                       help='gs:// class folders, or train/ and validation/ of them')
    cloud.add_argument('--pipeline-root', required=True, help='gs:// home of the artifacts')
    cloud.add_argument('--serving-dir', required=True,
                       help='gs:// serving directory (models go to <dir>/<model name>/)')
    cloud.add_argument('--temp-location', required=True,
                       help="gs:// folder for Dataflow's temporary files")
    cloud.add_argument('--output-dir', required=True,
                       help='where to write the compiled spec (local folder or gs://)')
    parser.add_argument('--output-filename',
                        help='file name of the spec (default: <pipeline name>.json)')
    data = parser.add_argument_group('data layout (compiling reads nothing from the data root)')
    data.add_argument('--class-names', nargs='+', metavar='NAME',
                      help='class folder names (default: the tutorial\'s cats dogs)')
    data.add_argument('--presplit', action=argparse.BooleanOptionalAction, default=True,
                      help='the data root has train/ and validation/ (default: yes)')
    data.add_argument('--test-folder', action='store_true',
                      help='the pre-split data root also has test/, a held-out test split')
    data.add_argument('--snapshot-data-root', action='store_true',
                      help='the data root is a snapshot no one changes once written (e.g. '
                           'gs://bucket/photos/2026-11-30/; new photos go to a new snapshot): '
                           'Vertex may then reuse a cached ImageExampleGen, and with it every '
                           'step of a run on the same snapshot (default: ImageExampleGen '
                           'always runs)')
    data.add_argument('--inspect-data-root', action='store_true',
                      help='read class names and layout from the data root through tf.io.gfile '
                           '(needs Cloud Storage credentials here)')
    parser.add_argument('--pipeline-name')
    cli.add_run_flags(parser, weights_help="'imagenet' (default; downloaded by the Trainer "
                                           "container) or a weights file inside the image")
    parser.add_argument('--beam-arg', action='append', dest='beam_args', default=[],
                        help='a Beam argument appended to the Dataflow ones, repeatable '
                             '(e.g. --beam-arg=--max_num_workers=8)')
    parser.add_argument('--verbose', action='store_true', help='TFX compiler INFO logs')
    return parser.parse_args(argv)


def build_config(args: argparse.Namespace):
    """PipelineConfig from the flags: the vertex preset plus overrides.

    Raises:
      ValueError: a flag value the preset rejects (e.g. a local path).
      components.image_example_gen.layout.DataRootError: with --inspect-data-root,
        a data root that cannot be used.
    """
    from models import features  # pylint: disable=import-outside-toplevel
    from pipeline import configs  # pylint: disable=import-outside-toplevel

    class_names = tuple(args.class_names) if args.class_names else features.CLASS_NAMES
    presplit, test_folder = args.presplit, args.test_folder
    if args.inspect_data_root:
        # Lists every file under the root (no image is read), with the same checks
        # and messages as the local runner.
        from components.image_example_gen import layout  # pylint: disable=import-outside-toplevel
        root = layout.inspect_data_root(args.data_root)
        class_names, presplit, test_folder = root.class_names, root.presplit, root.test_folder
    overrides = cli.run_overrides(args)
    if args.pipeline_name:
        overrides['pipeline_name'] = args.pipeline_name
    return configs.vertex(
        project=args.project, region=args.region, image=args.image,
        data_root=args.data_root, pipeline_root=args.pipeline_root,
        serving_dir=args.serving_dir, temp_location=args.temp_location,
        class_names=class_names, presplit=presplit, test_folder=test_folder,
        extra_beam_args=tuple(args.beam_args), **overrides)


def compile_pipeline(config, *, image: str, output_dir: str,
                     output_filename: Optional[str] = None,
                     snapshot_data_root: bool = False) -> str:
    """Compiles create_pipeline(config) into a Kubeflow Pipelines v2 JSON spec.

    Args:
      config: a PipelineConfig (the vertex preset, or any other).
      image: the image every component runs in.
      output_dir: folder of the spec (local or gs://); created when missing.
      output_filename: the spec's file name (default: <pipeline name>.json).
      snapshot_data_root: the data root never changes once written, so Vertex's cache
        may serve ImageExampleGen too (its key holds the data root's path): else
        `never_cache_example_gen`.

    Returns:
      The path of the written spec.
    """
    from tfx import v1 as tfx  # pylint: disable=import-outside-toplevel
    from pipeline import pipeline as pipeline_def  # pylint: disable=import-outside-toplevel

    output_filename = output_filename or f'{config.pipeline_name}.json'
    # Vertex AI keeps ML Metadata itself: no metadata connection config.
    dsl_pipeline = pipeline_def.create_pipeline(config)
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image=image),
        output_dir=output_dir, output_filename=output_filename)
    runner.run(dsl_pipeline)
    path = os.path.join(output_dir, output_filename)
    if not snapshot_data_root:
        never_cache_example_gen(path)
    return path


def never_cache_example_gen(spec_path: str) -> None:
    """Turns Vertex AI's cache off for ImageExampleGen in a compiled spec.

    On Vertex, TFX runs its own ExampleGen driver before the cache check, and it
    fingerprints only what the split patterns match (`train/*`: the class folders),
    not the photos inside them; a cached ImageExampleGen would then hide photos
    added or changed since the last run. Locally our driver fingerprints every
    file (components/image_example_gen/driver.py). The steps after ImageExampleGen
    get its new Examples artifact each run, so their cache misses too. A data root
    that is a snapshot (a new folder for new photos) needs none of this:
    `compile_pipeline(snapshot_data_root=True)`.
    """
    import json  # pylint: disable=import-outside-toplevel
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from pipeline import nodes  # pylint: disable=import-outside-toplevel
    with tf.io.gfile.GFile(spec_path) as f:
        spec = json.load(f)
    spec['pipelineSpec']['root']['dag']['tasks'][nodes.EXAMPLE_GEN]['cachingOptions'] = {
        'enableCache': False}
    with tf.io.gfile.GFile(spec_path, 'w') as f:
        json.dump(spec, f, sort_keys=True)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Parses flags, compiles, prints the spec's path. Returns the exit status."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from runlog import noise  # pylint: disable=import-outside-toplevel
    noise.quiet_logs(args.verbose)
    from components.image_example_gen import layout  # pylint: disable=import-outside-toplevel
    try:
        config = build_config(args)
    except (layout.DataRootError, ValueError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    output_dir = args.output_dir if '://' in args.output_dir else os.path.abspath(args.output_dir)
    path = compile_pipeline(config, image=args.image, output_dir=output_dir,
                            output_filename=args.output_filename,
                            snapshot_data_root=args.snapshot_data_root)
    print(f'pipeline spec: {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
