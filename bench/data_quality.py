"""What the DataQuality stage costs: a default run with and without it, and its search at scale.

    python bench/data_quality.py [--data-root DIR] [--rounds 2] [--work-dir DIR]
    python bench/data_quality.py --search 20000 50000 100000 [--features-from URI]

Default: runs the pipeline as `make run` runs it (local_runner.py, the default settings,
no cache) on the same data, with the stage (the default) and with --no-data-quality,
alternately, --rounds times each (with first, then without, then with, ...), each run in
its own process. Prints the wall time (and the CPU time of the process tree, which other
processes on the cores move less) of every run, the mean ratios with / without, the
seconds of every component (DataQuality's own, and the Trainer's with and without its
eval features computed), and the stage's own split of its time (features, label issues,
near-duplicates) from its summary.json. Default data: the tutorial's own set.

--search N...: the stage's work after the features, on N photos: embed (whitening), the
nearest-neighbour search (exact up to near_duplicates.EXACT_SEARCH_MAX_PHOTOS, then the
inverted file), the hash bands, and the out-of-fold logistic regressions. The features
are real ones (a FrozenFeatures artifact: --features-from, default the first run's of
the default mode in --work-dir) repeated with noise up to N rows, written to a file in
the work dir and memory-mapped as the stage does; the hashes are random. Prints seconds
per step and per 1,000 photos, and the peak memory each step allocates (tracemalloc).
Asserts nothing.
"""

import argparse
import glob
import os
import statistics
import sys
import tempfile
import time

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, PROJECT)

from bench import tree_sampler  # pylint: disable=wrong-import-position


def pipeline_runs(data_root: str, rounds: int, work: str):
    """[(with the stage?, wall s, peak bytes, MLMD run, history)], alternating."""
    from runlog import noise  # pylint: disable=import-outside-toplevel
    from pipeline import configs  # pylint: disable=import-outside-toplevel
    from pipeline import nodes  # pylint: disable=import-outside-toplevel
    from reports import mlmd_runs  # pylint: disable=import-outside-toplevel
    from reports import run_report  # pylint: disable=import-outside-toplevel
    runs = []
    for i in range(rounds):
        for with_stage in (True, False):
            name = f"{'with' if with_stage else 'without'}-{i}"
            pipeline_work = os.path.join(work, name)
            cmd = [sys.executable, 'local_runner.py', '--data-root', data_root, '--work-dir',
                   pipeline_work, '--no-cache'] + ([] if with_stage else ['--no-data-quality'])
            wall, peak, cpu, _ = tree_sampler.run_measured(
                cmd, os.path.join(work, f'{name}.log'), PROJECT)
            noise.quiet_tensorflow()
            run = mlmd_runs.latest_run(configs.metadata_path(pipeline_work),
                                       configs.PIPELINE_NAME)
            history = run_report.read_history(run.nodes[nodes.TRAINER])
            runs.append((with_stage, wall, peak, run, history, cpu))
            print(f'{name}: {wall:.1f} s, CPU {cpu:.1f} s', flush=True)
    return runs


def report_runs(runs) -> None:
    from components.data_quality import outputs  # pylint: disable=import-outside-toplevel
    from components.data_quality import spec  # pylint: disable=import-outside-toplevel
    from pipeline import nodes  # pylint: disable=import-outside-toplevel
    with_walls = [wall for stage, wall, *_ in runs if stage]
    without_walls = [wall for stage, wall, *_ in runs if not stage]
    with_cpu = [cpu for stage, *_, cpu in runs if stage]
    without_cpu = [cpu for stage, *_, cpu in runs if not stage]
    for stage, wall, peak, run, history, cpu in runs:
        seconds = history['seconds']
        print(f"{'with   ' if stage else 'without'} the stage: wall {wall:.1f} s, CPU "
              f"{cpu:.1f} s, peak "
              f"{peak / 2**30:.2f} GiB; Trainer {run.nodes[nodes.TRAINER].seconds:.1f} s (eval "
              f"features {seconds.get('eval_features', 0):.1f} s, "
              f"{'reused' if history.get('eval_features_reused') else 'computed'}); "
              + ', '.join(f'{node} {n.seconds:.1f}' for node, n in run.nodes.items()))
        if stage:
            summary = outputs.read_summary(run.output(nodes.DATA_QUALITY, spec.REPORT_KEY).uri)
            print(f"    DataQuality {run.nodes[nodes.DATA_QUALITY].seconds:.1f} s: "
                  + ', '.join(f'{k} {v:.1f} s' for k, v in summary['seconds'].items())
                  + f"; {summary['label_issues']['flagged']} label issues, "
                  f"{summary['near_duplicates']['pairs']} near-duplicate pairs")
    ratio = statistics.mean(with_walls) / statistics.mean(without_walls)
    print(f'HEADLINE: with / without the stage, mean wall time {statistics.mean(with_walls):.1f}'
          f' / {statistics.mean(without_walls):.1f} s = {ratio:.3f}x ({(ratio - 1):+.1%}); runs '
          f"with: {', '.join(f'{w:.1f}' for w in with_walls)}; without: "
          f"{', '.join(f'{w:.1f}' for w in without_walls)}; CPU time of the process tree "
          f'{statistics.mean(with_cpu):.1f} / {statistics.mean(without_cpu):.1f} s = '
          f'{statistics.mean(with_cpu) / statistics.mean(without_cpu):.3f}x')


def synthetic_features(real, labels_real, size: int, path: str, rng):
    """`size` rows of real features (rows drawn at random, each feature times a uniform
    0.8-1.2), written by blocks to a .npy at path and memory-mapped, as the stage reads
    its FrozenFeatures; with their labels."""
    import numpy as np  # pylint: disable=import-outside-toplevel
    rows = rng.integers(0, len(real), size)
    out = np.lib.format.open_memmap(path, mode='w+', dtype=np.float32,
                                    shape=(size, real.shape[1]))
    for start in range(0, size, 65536):
        chunk = rows[start:start + 65536]
        noise = rng.uniform(0.8, 1.2, (len(chunk), real.shape[1])).astype(np.float32)
        out[start:start + len(chunk)] = np.maximum(real[chunk] * noise, 0)
    out.flush()
    del out
    return np.load(path, mmap_mode='r'), labels_real[rows]


def search_costs(sizes, features_uri: str, work: str) -> None:
    import tracemalloc  # pylint: disable=import-outside-toplevel
    import numpy as np  # pylint: disable=import-outside-toplevel
    from components.data_quality import label_issues  # pylint: disable=import-outside-toplevel
    from components.data_quality import near_duplicates  # pylint: disable=import-outside-toplevel
    from models import frozen_features  # pylint: disable=import-outside-toplevel
    real = np.asarray(frozen_features.read_features(features_uri))
    labels_real = np.asarray([p['label'] for p in frozen_features.read_photos(features_uri)])
    rng = np.random.default_rng(0)
    print(f'features: {len(real)} real photos from {features_uri}; memory: the peak of what '
          'each step allocates (tracemalloc, numpy included) above what it was given, the '
          'features memory-mapped from a file as in the stage')
    tracemalloc.start()
    for size in sizes:
        path = os.path.join(work, f'features-{size}.npy')
        pooled, labels = synthetic_features(real, labels_real, size, path, rng)
        hashes = rng.integers(0, 2**63, size, dtype=np.int64).astype(np.uint64)
        mirrored = rng.integers(0, 2**63, size, dtype=np.int64).astype(np.uint64)
        costs = {}

        def measured(name, step):
            tracemalloc.reset_peak()
            held = tracemalloc.get_traced_memory()[0]
            start = time.perf_counter()
            result = step()
            costs[name] = (time.perf_counter() - start,
                           tracemalloc.get_traced_memory()[1] - held)
            return result

        embedded = measured('embed', lambda: near_duplicates.embed(pooled))
        method = measured('nearest', lambda: near_duplicates.nearest(embedded))[2]
        costs[f'nearest ({method})'] = costs.pop('nearest')
        del embedded
        measured('hash bands', lambda: near_duplicates.hash_candidates(hashes, mirrored))
        measured('label issues', lambda: label_issues.find(
            label_issues.out_of_fold_probabilities(pooled, labels, 2), labels))
        print(f'{size} photos: ' + ', '.join(
            f'{k} {t:.1f} s ({t / size * 1000:.2f} s per 1,000), {m / 2**20:.0f} MiB'
            for k, (t, m) in costs.items()), flush=True)
        del pooled
        os.remove(path)


def main() -> int:
    from pipeline import configs  # pylint: disable=import-outside-toplevel
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data-root',
                        default=str(configs.SHARED / 'datasets' / 'cats_and_dogs_filtered'))
    parser.add_argument('--rounds', type=int, default=2)
    parser.add_argument('--work-dir', help='default: a new temporary folder')
    parser.add_argument('--search', type=int, nargs='*',
                        help='photo counts: time the search instead of whole runs')
    parser.add_argument('--features-from', help='a FrozenFeatures artifact (with --search)')
    args = parser.parse_args()
    work = args.work_dir or tempfile.mkdtemp(prefix='bench_data_quality_')
    os.makedirs(work, exist_ok=True)
    print(f'data: {args.data_root}\nwork dir: {work}', flush=True)
    if args.search:
        uri = args.features_from or next(iter(sorted(glob.glob(os.path.join(
            work, '*', 'pipeline_root', 'DataQuality', 'features', '*')))), None)
        if uri is None:
            raise SystemExit('--search needs --features-from (a FrozenFeatures artifact) '
                             'or a --work-dir with a run of this script')
        search_costs(args.search, uri, work)
        return 0
    report_runs(pipeline_runs(args.data_root, args.rounds, work))
    return 0


if __name__ == '__main__':
    sys.exit(main())
