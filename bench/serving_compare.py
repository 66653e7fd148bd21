"""Serving before and after a change, side by side in one run: REST p50 and batched throughput.

Run by hand (never a test): prints numbers, asserts nothing.

    git archive <old commit> | tar -x -C /tmp/before
    python bench/serving_compare.py --before /tmp/before \\
        --model_base_path /path/to/push/image_classifier --rounds 3

Each round starts, for each variant in turn, the server of that source tree
(`python -m serving.server` with the tree first on PYTHONPATH) without batching
for single-image REST latency, then with --enable_batching for throughput
under --concurrency clients, with bench/serving_bench.py's load generator. The
variants alternate within a round, so a busy machine slows them alike; the
table gives every round and the median ratio to the first variant.
"""

import argparse
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
from typing import List

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path[:0] = [str(PROJECT_ROOT), str(PROJECT_ROOT / 'bench')]

import serving_bench  # pylint: disable=wrong-import-position


class TreeServer:
    """`python -m serving.server` of another source tree, on free ports."""

    def __init__(self, tree: str, args: List[str], log: pathlib.Path):
        from tests.serving import server_process  # pylint: disable=import-outside-toplevel
        self._helper = server_process.ServerProcess(args, log, grpc=False)
        self.url = self._helper.url
        self._tree = tree

    def start(self) -> 'TreeServer':
        env = dict(os.environ, PYTHONPATH=self._tree, TF_CPP_MIN_LOG_LEVEL='2')
        helper = self._helper
        helper._log_file = open(helper.log_path, 'wb')  # pylint: disable=protected-access,consider-using-with
        helper.process = subprocess.Popen(  # pylint: disable=consider-using-with
            [sys.executable, '-m', 'serving.server'] + helper.args, cwd=self._tree,
            env=env, stdout=helper._log_file, stderr=subprocess.STDOUT)  # pylint: disable=protected-access
        helper.wait_ready(timeout=300)
        return self

    @property
    def pid(self) -> int:
        return self._helper.process.pid

    def stop(self) -> None:
        self._helper.stop()


def measure(tree: str, extra: List[str], args, images, work: pathlib.Path):
    """(p50 ms, p99 ms, batched images/s) of one tree's server."""
    base = [f'--model_name={serving_bench.MODEL}',
            f'--model_base_path={args.model_base_path}',
            '--file_system_poll_wait_seconds=0',
            f'--rest_api_num_threads={max(args.concurrency, 4)}'] + extra
    server = TreeServer(tree, base, work / 'plain.log').start()
    try:
        latencies = serving_bench.measure_latency(server.url, images, args.requests)
    finally:
        server.stop()
    server = TreeServer(tree, base + [
        '--enable_batching', f'--max_batch_size={args.max_batch_size}',
        f'--batch_timeout_micros={args.batch_timeout_micros}',
        f'--num_batch_threads={args.num_batch_threads}'], work / 'batched.log').start()
    try:
        batched = serving_bench.measure_throughput(
            server.url, images, args.throughput_requests, args.concurrency, server.pid)
    finally:
        server.stop()
    ordered = sorted(latencies)
    return (statistics.median(ordered) * 1e3,
            ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1e3,
            batched.images_per_second)


def main(argv=None) -> int:
    """Runs the rounds; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--before', required=True, help='the old source tree')
    parser.add_argument('--after', default=str(PROJECT_ROOT), help='the new one')
    parser.add_argument('--model_base_path', required=True)
    parser.add_argument('--images', default=str(serving_bench.DEFAULT_IMAGES))
    parser.add_argument('--max_images', type=int, default=64)
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--requests', type=int, default=200)
    parser.add_argument('--throughput_requests', type=int, default=400)
    parser.add_argument('--concurrency', type=int, default=8)
    parser.add_argument('--max_batch_size', type=int, default=32)
    parser.add_argument('--batch_timeout_micros', type=int, default=2000)
    parser.add_argument('--num_batch_threads', type=int, default=os.cpu_count() or 1)
    parser.add_argument('--variant', action='append', default=[],
                        metavar='FLAG',
                        help='also run the new tree with this server flag (e.g. '
                        '--variant=--tensorflow_system_allocator); repeatable')
    args = parser.parse_args(argv)
    images = serving_bench.load_images(pathlib.Path(args.images), args.max_images)
    variants = {'before': (args.before, []), 'after': (args.after, [])}
    for flag in args.variant:
        variants[f'after {flag}'] = (args.after, [flag])
    results = {name: [] for name in variants}
    for round_index in range(args.rounds):
        for name, (tree, extra) in variants.items():
            with tempfile.TemporaryDirectory(prefix='serving_compare_') as work:
                results[name].append(measure(tree, extra, args, images,
                                             pathlib.Path(work)))
            p50, p99, rate = results[name][-1]
            print(f'round {round_index + 1} {name}: p50 {p50:.1f} ms, p99 '
                  f'{p99:.1f} ms, batched {rate:.1f} images/s', flush=True)
    first = next(iter(variants))
    print(f'\n| variant | REST p50 ms (rounds) | batched images/s (rounds) | '
          f'p50 / {first} | throughput / {first} |')
    print('| --- | --- | --- | --- | --- |')
    for name in variants:
        p50s = [r[0] for r in results[name]]
        rates = [r[2] for r in results[name]]
        p50_ratio = statistics.median(
            a[0] / b[0] for a, b in zip(results[name], results[first]))
        rate_ratio = statistics.median(
            a[2] / b[2] for a, b in zip(results[name], results[first]))
        print(f'| {name} | {", ".join(f"{v:.1f}" for v in p50s)} | '
              f'{", ".join(f"{v:.0f}" for v in rates)} | {p50_ratio:.2f} | '
              f'{rate_ratio:.2f} |')
    return 0


if __name__ == '__main__':
    sys.exit(main())
