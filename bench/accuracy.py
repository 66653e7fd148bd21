"""Accuracy of the pipeline's model: train on train/, evaluate on validation/.

    python bench/accuracy.py [--data-root DIR] [--epochs N] [--image-sizes 160 224]

Runs the whole pipeline (LocalDagRunner) with the default settings on the full
../shared/datasets/cats_vs_dogs (800 train / 200 validation photos), once per input
size, and prints TFMA's eval accuracy and the time per epoch of each. 160 is the
tutorial's (and the pipeline's default) size; 224 is the native size of the offline
ImageNet checkpoint in ../shared/keras. The tutorial's transfer model reached 97.9%
test accuracy on cats_and_dogs_filtered. Prints numbers; asserts nothing.
"""

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

TUTORIAL_TEST_ACCURACY = 0.979


def run_once(args, size: int, work_dir: str, con) -> dict:
    """Runs the pipeline at one input size (progress on the console); returns its numbers."""
    import local_runner  # pylint: disable=import-outside-toplevel
    from components.image_example_gen import layout  # pylint: disable=import-outside-toplevel
    from pipeline import configs  # pylint: disable=import-outside-toplevel
    from reports import mlmd_runs  # pylint: disable=import-outside-toplevel
    from reports import run_report  # pylint: disable=import-outside-toplevel

    root = layout.inspect_data_root(args.data_root)
    config = configs.local(work_dir, root.root, presplit=root.presplit, labels=root.labels,
                           epochs=args.epochs, image_size=(size, size),
                           fine_tune_layers=args.fine_tune_layers,
                           fine_tune_epochs=args.fine_tune_epochs, accuracy_threshold=0.0,
                           enable_cache=False)
    metadata_path = configs.metadata_path(work_dir)
    con.say(f'--- input {size}x{size}')
    start = time.perf_counter()
    local_runner.run(config, metadata_path, con)
    wall = time.perf_counter() - start

    run = mlmd_runs.latest_run(metadata_path, config.pipeline_name)
    evaluation = run_report.load_evaluation(run.output('Evaluator', 'evaluation').uri)
    return dict(size=size, work_dir=work_dir, history=run_report.read_history(run.nodes['Trainer']),
                wall=wall, accuracy=evaluation.accuracy, examples=int(evaluation.example_count),
                components=', '.join(f'{n} {r.seconds:.0f}s' for n, r in run.nodes.items()))


def report(result: dict) -> None:
    history = result['history']
    seconds = history['epoch_seconds']
    print(f"--- input {result['size']}x{result['size']} (work dir {result['work_dir']})")
    for epoch, (acc, val, sec) in enumerate(zip(history['accuracy'], history['val_accuracy'],
                                                 seconds), 1):
        print(f'epoch {epoch:2d}: train acc {acc:.4f}  val acc {val:.4f}  {sec:6.1f} s')
    print(f"eval examples: {result['examples']}")
    print(f'time per epoch: first {seconds[0]:.1f} s, then mean '
          f'{sum(seconds[1:]) / max(len(seconds) - 1, 1):.1f} s')
    print(f"components: {result['components']}")
    print(f"pipeline wall time: {result['wall']:.0f} s")


def main() -> int:
    from pipeline import configs  # pylint: disable=import-outside-toplevel
    parser = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
    parser.add_argument('--data-root', default=configs.SHARED_DATA_ROOT)
    parser.add_argument('--epochs', type=int, default=10)
    parser.add_argument('--image-sizes', type=int, nargs='+', default=[160, 224],
                        help='square input sizes, one pipeline run each')
    parser.add_argument('--fine-tune-layers', type=int, default=0)
    parser.add_argument('--fine-tune-epochs', type=int, default=0)
    parser.add_argument('--work-dir', help='default: a new temporary folder')
    parser.add_argument('--verbose', action='store_true', help='TF, Beam and TFX logs too')
    args = parser.parse_args()

    from pipeline import console  # pylint: disable=import-outside-toplevel
    work_dir = args.work_dir or tempfile.mkdtemp(prefix='bench_accuracy_')
    with console.Console(os.path.join(work_dir, 'bench.log'), verbose=args.verbose) as con:
        results = [run_once(args, size, os.path.join(work_dir, f'size{size}'), con)
                   for size in args.image_sizes]
    print(f'log: {con.log_path}')
    print(f'data: {args.data_root}')
    for result in results:
        report(result)
    print('--- summary')
    for result in results:
        print(f"input {result['size']}: eval accuracy {result['accuracy']:.4f} "
              f"on {result['examples']} photos, wall {result['wall']:.0f} s")
    print(' | '.join(f"input {r['size']}: eval accuracy {r['accuracy']:.4f} "
                     f"(ratio to tutorial's {TUTORIAL_TEST_ACCURACY:.3f}: "
                     f"{r['accuracy'] / TUTORIAL_TEST_ACCURACY:.3f})" for r in results))
    return 0


if __name__ == '__main__':
    sys.exit(main())
