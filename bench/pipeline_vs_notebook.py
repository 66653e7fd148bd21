"""The pipeline beside the plain notebook, in one run, on the same photos.

    python bench/pipeline_vs_notebook.py [--data-root DIR] [--epochs N] [--image-size 224]

Runs, one after the other on the same machine:
  1. the forward-pass limit of the frozen base (bench/forward_limit.py),
  2. the peer: the tutorial notebook as a plain Keras script (bench/notebook_peer.py),
  3. the whole pipeline (local_runner.py as `make run` runs it, run report included;
     no cache),
each in its own process, sampling the memory of its whole process tree. Prints
accuracy of both on the same validation photos, wall times, the pipeline's
overhead, time per component, training throughput beside the limit and peak
memory; the headline ratio last. Default data: the tutorial's own set.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import psutil

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, PROJECT)

from bench import tree_sampler  # pylint: disable=wrong-import-position


def run_measured(cmd, log_path):
    """Runs cmd; returns (wall seconds, peak RSS of the process tree in bytes)."""
    start = time.perf_counter()
    with open(log_path, 'w') as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=PROJECT)
        sampler = tree_sampler.TreeSampler(0.25, psutil.Process(proc.pid))
        sampler.start()
        proc.wait()
        sampler.stop()
    wall = time.perf_counter() - start
    if proc.returncode:
        raise RuntimeError(f'{" ".join(cmd[:3])} failed ({proc.returncode}); see {log_path}')
    return wall, sampler.peak_rss()


def pipeline_results(work_dir):
    """The latest run, its Trainer history, its TFMA evaluation and its train image count."""
    from components.image_example_gen import spec as example_gen_spec  # pylint: disable=import-outside-toplevel
    from pipeline import configs  # pylint: disable=import-outside-toplevel
    from pipeline import nodes  # pylint: disable=import-outside-toplevel
    from reports import mlmd_runs  # pylint: disable=import-outside-toplevel
    from reports import run_report  # pylint: disable=import-outside-toplevel
    run = mlmd_runs.latest_run(configs.metadata_path(work_dir), configs.PIPELINE_NAME)
    history = run_report.read_history(run.nodes[nodes.TRAINER])
    evaluation = run_report.load_evaluation(run.output(nodes.EVALUATOR, 'evaluation').uri)
    with open(os.path.join(run.output(nodes.EXAMPLE_GEN, 'examples').uri,
                           example_gen_spec.REPORT_FILE)) as f:
        train_images = json.load(f)['splits']['train']['images']
    return run, history, evaluation, train_images


def main() -> int:
    from pipeline import configs  # pylint: disable=import-outside-toplevel
    from pipeline import nodes  # pylint: disable=import-outside-toplevel
    from bench import photos  # pylint: disable=import-outside-toplevel
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data-root',
                        default=str(configs.SHARED / 'datasets' / 'cats_and_dogs_filtered'))
    parser.add_argument('--epochs', type=int, default=10)
    parser.add_argument('--image-size', type=int, default=photos.pipeline_image_size(),
                        help='square input size, the same for all three; default: what the '
                        'pipeline picks for the shared weights (224)')
    parser.add_argument('--work-dir', help='default: a new temporary folder')
    args = parser.parse_args()
    work = args.work_dir or tempfile.mkdtemp(prefix='bench_vs_notebook_')
    os.makedirs(work, exist_ok=True)
    py = sys.executable
    print(f'data: {args.data_root}\nepochs: {args.epochs}\nimage size: {args.image_size}\n'
          f'work dir: {work}', flush=True)
    size = str(args.image_size)

    limit_json = os.path.join(work, 'forward_limit.json')
    run_measured([py, 'bench/forward_limit.py', '--data-root', args.data_root,
                  '--image-size', size, '--json', limit_json], os.path.join(work, 'forward_limit.log'))
    with open(limit_json) as f:
        limit = json.load(f)

    peer_json = os.path.join(work, 'peer.json')
    peer_wall, peer_peak = run_measured(
        [py, 'bench/notebook_peer.py', '--data-root', args.data_root, '--epochs',
         str(args.epochs), '--image-size', size, '--json', peer_json], os.path.join(work, 'peer.log'))
    with open(peer_json) as f:
        peer = json.load(f)

    pipeline_work = os.path.join(work, 'pipeline')
    pipe_wall, pipe_peak = run_measured(
        [py, 'local_runner.py', '--data-root', args.data_root, '--work-dir', pipeline_work,
         '--epochs', str(args.epochs), '--image-size', size, size, '--accuracy-threshold', '0',
         '--no-cache'], os.path.join(work, 'pipeline.log'))
    from runlog import noise  # pylint: disable=import-outside-toplevel
    noise.quiet_tensorflow()
    run, history, evaluation, train_images = pipeline_results(pipeline_work)
    trainer_seconds = run.nodes[nodes.TRAINER].seconds
    fit_seconds = history['seconds']['fit']
    pipe_rate = train_images * args.epochs / fit_seconds
    steady = history['epoch_seconds'][1:] or history['epoch_seconds']
    steady_rate = train_images / (sum(steady) / len(steady))

    print(f"\nforward-pass limit: {limit['images_per_second']:.1f} images/s "
          f"(batch {limit['batch_size']}); with the tutorial's augmentation before the base: "
          f"{limit['augmented_images_per_second']:.1f} images/s")
    print('\n                         notebook   pipeline')
    print(f"accuracy (validation)    {peer['accuracy']:8.4f}   "
          f"{evaluation.accuracy:8.4f}   ({int(evaluation.example_count)} photos)")
    print(f'wall time (s)            {peer_wall:8.1f}   {pipe_wall:8.1f}')
    print(f"training fit (s)         {peer['fit_seconds']:8.1f}   {fit_seconds:8.1f}")
    print(f"train images/s (fit)     {peer['train_images_per_second']:8.1f}   {pipe_rate:8.1f}")
    print(f'peak memory (GiB)        {peer_peak / 2**30:8.2f}   {pipe_peak / 2**30:8.2f}')
    print(f"\npipeline train throughput after epoch 1: {steady_rate:.1f} images/s = "
          f"{steady_rate / limit['images_per_second']:.2f} x the forward-pass limit, "
          f"{steady_rate / limit['augmented_images_per_second']:.2f} x the limit with the "
          f"augmentation (notebook: {peer['train_images_per_second'] / limit['images_per_second']:.2f}"
          f" x, {peer['train_images_per_second'] / limit['augmented_images_per_second']:.2f} x)")
    print('time per component (s): ' + ', '.join(
        f'{node} {n.seconds:.0f}' for node, n in run.nodes.items()))
    print(f'Trainer component {trainer_seconds:.0f} s, of which fit {fit_seconds:.0f} s '
          f"(epochs {sum(history['epoch_seconds']):.0f} s)")
    # Keras makes new dataset iterators every epoch (train and validation); with tf.data's
    # autotuning on, as in the notebook, freeing one can wait for that thread's sleep (README).
    peer_pause = peer['fit_seconds'] - sum(peer['epoch_seconds'])
    print(f"notebook fit {peer['fit_seconds']:.0f} s, of which epochs "
          f"{sum(peer['epoch_seconds']):.0f} s and {peer_pause:.0f} s between them (freeing "
          "tf.data iterators); without that wait the notebook would take "
          f'{peer_wall - peer_pause:.0f} s: pipeline/notebook {pipe_wall / (peer_wall - peer_pause):.2f}x')
    print(f'pipeline peak memory: {pipe_peak / 2**30:.2f} GiB (process tree, sampled 4/s)')
    print(f'HEADLINE: pipeline/notebook wall time {pipe_wall / peer_wall:.2f}x '
          f'({pipe_wall - peer_wall:+.0f} s; {pipe_wall / (peer_wall - peer_pause):.2f}x of the '
          f'notebook without its waits between epochs), peak memory {pipe_peak / peer_peak:.2f}x, '
          f"accuracy {evaluation.accuracy:.4f} vs {peer['accuracy']:.4f}, training after epoch 1 "
          f"{steady_rate / limit['augmented_images_per_second']:.2f}x of the augmented limit")
    return 0


if __name__ == '__main__':
    sys.exit(main())
