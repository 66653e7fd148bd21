"""Serving benchmark, run by hand (never a test): prints numbers, asserts nothing.

Measures, against the real `python -m serving.server` on 127.0.0.1:

1. latency (p50/p99) of single-image REST :predict, one request at a time;
2. throughput (images/s) of single-image REST :predict under concurrent load,
   without batching and with --enable_batching;
3. beside them, the limit: the SavedModel called in-process with the best
   batch size;

and prints the ratios, with the headline figure last on one line.

    python bench/serving_bench.py                       # exports the stand-in
    python bench/serving_bench.py --model_base_path /pushed/cats_dogs \\
        --requests 200 --concurrency 8

Without --model_base_path it exports the serving stand-in of the tests (the
same contract as the trainer's export) into a temporary directory. Images
default to cats_and_dogs_filtered/validation in ../shared. On a 2-core
machine the load generator shares the CPUs with the server, so absolute
numbers are pessimistic; the ratios are the point.
"""

import argparse
import base64
import concurrent.futures
import os
import pathlib
import statistics
import sys
import tempfile
import threading
import time
from typing import List, Sequence

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_IMAGES = (PROJECT_ROOT.parent / 'shared' / 'datasets' /
                  'cats_and_dogs_filtered' / 'validation')
MODEL = 'bench'


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, int(round(q / 100 * (len(ordered) - 1)))))
    return ordered[index]


def load_images(folder: pathlib.Path, limit: int) -> List[bytes]:
    """Up to `limit` encoded images from folder/*/*.{jpg,jpeg,png}, sorted."""
    paths = sorted(p for p in folder.glob('*/*')
                   if p.suffix.lower() in ('.jpg', '.jpeg', '.png'))[:limit]
    if not paths:
        raise ValueError(f'No images under {folder}')
    return [p.read_bytes() for p in paths]


def _body(image: bytes) -> bytes:
    return (b'{"instances": [{"b64": "' + base64.b64encode(image) +
            b'"}]}')


def measure_latency(url: str, images: List[bytes], count: int) -> List[float]:
    """Seconds per request, one request at a time."""
    import requests  # pylint: disable=import-outside-toplevel
    session = requests.Session()
    bodies = [_body(image) for image in images]
    predict = f'{url}/v1/models/{MODEL}:predict'
    for body in bodies[:5]:
        session.post(predict, data=body, timeout=60).raise_for_status()
    latencies = []
    for index in range(count):
        started = time.perf_counter()
        response = session.post(predict, data=bodies[index % len(bodies)],
                                timeout=60)
        latencies.append(time.perf_counter() - started)
        response.raise_for_status()
    return latencies


def measure_throughput(url: str, images: List[bytes], count: int,
                       concurrency: int) -> float:
    """Images per second with `concurrency` clients sending `count` requests."""
    import requests  # pylint: disable=import-outside-toplevel
    bodies = [_body(image) for image in images]
    predict = f'{url}/v1/models/{MODEL}:predict'
    lock = threading.Lock()
    next_index = [0]

    def client() -> int:
        session = requests.Session()
        done = 0
        while True:
            with lock:
                index = next_index[0]
                next_index[0] += 1
            if index >= count:
                return done
            session.post(predict, data=bodies[index % len(bodies)],
                         timeout=120).raise_for_status()
            done += 1

    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        for _ in range(concurrency):   # warm every connection and thread
            pool.submit(lambda: requests.post(predict, data=bodies[0],
                                              timeout=60)).result()
        started = time.perf_counter()
        done = sum(pool.map(lambda _: client(), range(concurrency)))
        seconds = time.perf_counter() - started
    return done / seconds


def measure_in_process(version_dir: str, images: List[bytes],
                       batch_sizes: Sequence[int], count: int):
    """(best batch size, images/s) of the SavedModel called directly."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from models import features  # pylint: disable=import-outside-toplevel
    function = tf.saved_model.load(version_dir).signatures[
        features.SERVING_SIGNATURE]
    results = {}
    for batch_size in batch_sizes:
        batches = [tf.constant([images[(start + i) % len(images)]
                                for i in range(batch_size)])
                   for start in range(0, max(count, batch_size), batch_size)]
        function(**{features.SERVING_INPUT: batches[0]})
        started = time.perf_counter()
        for batch in batches:
            function(**{features.SERVING_INPUT: batch})
        seconds = time.perf_counter() - started
        results[batch_size] = len(batches) * batch_size / seconds
        print(f'  in-process batch {batch_size:4d}: '
              f'{results[batch_size]:8.1f} images/s', flush=True)
    best = max(results, key=results.get)
    return best, results[best]


def _server(base_path: str, log: pathlib.Path, extra: List[str]):
    from tests.serving import server_process  # pylint: disable=import-outside-toplevel
    server = server_process.ServerProcess(
        [f'--model_name={MODEL}', f'--model_base_path={base_path}',
         '--file_system_poll_wait_seconds=0'] + extra, log, grpc=False)
    server.start()
    server.wait_ready(timeout=300)
    return server


def _latest_version_dir(base_path: str) -> str:
    versions = [p for p in pathlib.Path(base_path).iterdir()
                if p.name.isdigit() and (p / 'saved_model.pb').exists()]
    if not versions:
        raise ValueError(f'No version directory with saved_model.pb under '
                         f'{base_path}')
    return str(max(versions, key=lambda p: int(p.name)))


def _run(args, images: List[bytes], work: pathlib.Path) -> None:
    """The three measurements and the report."""
    base_path = args.model_base_path
    if not base_path:
        from tests.serving import standin_model  # pylint: disable=import-outside-toplevel
        base_path = str(work / MODEL)
        standin_model.export_image_model(os.path.join(base_path, '1'))
        print(f'exported the stand-in model to {base_path}/1', flush=True)

    print('server without batching ...', flush=True)
    server = _server(base_path, work / 'plain.log',
                     [f'--rest_api_num_threads={max(args.concurrency, 4)}'])
    try:
        latencies = measure_latency(server.url, images, args.requests)
        plain = measure_throughput(server.url, images,
                                   args.throughput_requests, args.concurrency)
    finally:
        server.stop()
    p50, p99 = (_percentile(latencies, 50) * 1e3,
                _percentile(latencies, 99) * 1e3)
    print(f'  REST latency p50 {p50:.1f} ms, p99 {p99:.1f} ms, mean '
          f'{statistics.mean(latencies) * 1e3:.1f} ms ({len(latencies)} '
          'requests)', flush=True)
    print(f'  REST throughput, {args.concurrency} clients: {plain:.1f} '
          'images/s', flush=True)

    print('server with batching ...', flush=True)
    server = _server(base_path, work / 'batched.log', [
        f'--rest_api_num_threads={max(args.concurrency, 4)}',
        '--enable_batching', f'--max_batch_size={args.max_batch_size}',
        f'--batch_timeout_micros={args.batch_timeout_micros}',
        f'--num_batch_threads={args.num_batch_threads}'])
    try:
        batched = measure_throughput(server.url, images,
                                     args.throughput_requests, args.concurrency)
    finally:
        server.stop()
    print(f'  REST throughput, {args.concurrency} clients, batching: '
          f'{batched:.1f} images/s', flush=True)

    print('SavedModel in-process (the limit) ...', flush=True)
    best_batch, limit = measure_in_process(
        _latest_version_dir(base_path), images,
        [int(b) for b in args.batch_sizes.split(',')], args.throughput_requests)

    print(f'ratios: unbatched/limit {plain / limit:.2f}, batched/limit '
          f'{batched / limit:.2f}, batched/unbatched {batched / plain:.2f}')
    print(f'HEADLINE: REST p50 {p50:.1f} ms p99 {p99:.1f} ms; '
          f'{plain:.0f} img/s unbatched, {batched:.0f} img/s batched = '
          f'{batched / limit:.2f}x of in-process {limit:.0f} img/s '
          f'(batch {best_batch})')


def main(argv=None) -> int:
    """Runs the benchmark; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--model_base_path', default='',
                        help='A pushed model (numeric version dirs); default: '
                        'export the stand-in.')
    parser.add_argument('--images', default=str(DEFAULT_IMAGES))
    parser.add_argument('--max_images', type=int, default=64)
    parser.add_argument('--requests', type=int, default=200,
                        help='Sequential requests for latency.')
    parser.add_argument('--throughput_requests', type=int, default=400)
    parser.add_argument('--concurrency', type=int, default=8)
    parser.add_argument('--batch_sizes', default='1,8,32,64',
                        help='In-process batch sizes to try.')
    parser.add_argument('--max_batch_size', type=int, default=32)
    parser.add_argument('--batch_timeout_micros', type=int, default=2000)
    parser.add_argument('--num_batch_threads', type=int,
                        default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    if str(PROJECT_ROOT) not in sys.path:
        sys.path.insert(0, str(PROJECT_ROOT))

    from runlog import noise  # pylint: disable=import-outside-toplevel
    noise.quiet_tensorflow()
    images = load_images(pathlib.Path(args.images), args.max_images)
    print(f'{len(images)} images from {args.images}', flush=True)
    with tempfile.TemporaryDirectory(prefix='serving_bench_') as work_dir:
        _run(args, images, pathlib.Path(work_dir))
    return 0


if __name__ == '__main__':
    sys.exit(main())
