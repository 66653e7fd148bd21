"""Serving benchmark, run by hand (never a test): prints numbers, asserts nothing.

Measures, against the real `python -m serving.server` on 127.0.0.1:

1. latency (p50/p99) of single-image REST :predict, one request at a time;
2. throughput (images/s) of single-image REST :predict under concurrent load,
   without batching and with --enable_batching;
3. beside them, the limit: the SavedModel called in-process, at the batch
   size the batching server formed and at the best batch size;
4. where the time goes: the batched server's mean time per request in each
   stage (its own metrics: JSON and base64, checks and batching queue, the
   SavedModel call) and the CPU time per image of the server, of the load
   generator and of the in-process call;

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
import collections
import concurrent.futures
import dataclasses
import http.client
import os
import pathlib
import statistics
import sys
import tempfile
import threading
import time
from typing import Dict, List, Sequence, Tuple
import urllib.parse

from prometheus_client.parser import text_string_to_metric_families
import psutil
import requests

import serving_clients
from serving_clients import DEFAULT_IMAGES, MODEL, PROJECT_ROOT, load_images


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, int(round(q / 100 * (len(ordered) - 1)))))
    return ordered[index]


class _Connection:
    """One keep-alive HTTP/1.1 connection of the load generator.

    http.client, not requests: the load generator shares the two cores with
    the server, and requests spends about ten times more Python per call.
    """

    def __init__(self, url: str):
        parts = urllib.parse.urlsplit(url)
        self._http = http.client.HTTPConnection(parts.hostname, parts.port,
                                                timeout=120)

    def post(self, path: str, body: bytes) -> bytes:
        """The response body of a 200; raises on any other status."""
        self._http.request('POST', path, body,
                           {'Content-Type': 'application/json'})
        response = self._http.getresponse()
        data = response.read()
        if response.status != 200:
            raise RuntimeError(f'POST {path}: {response.status} {data[:200]!r}')
        return data

    def close(self) -> None:
        self._http.close()


class _RequestsConnection(_Connection):
    """The same through requests (what the benchmark used before): --client requests."""

    def __init__(self, url: str):  # pylint: disable=super-init-not-called
        self._url = url
        self._session = requests.Session()

    def post(self, path: str, body: bytes) -> bytes:
        response = self._session.post(self._url + path, data=body, timeout=120)
        response.raise_for_status()
        return response.content

    def close(self) -> None:
        self._session.close()


CLIENTS = {'http.client': _Connection, 'requests': _RequestsConnection}


def _cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def measure_latency(url: str, images: List[bytes], count: int,
                    client: type = _Connection) -> List[float]:
    """Seconds per request, one request at a time."""
    connection = client(url)
    bodies = [serving_clients.rest_body(image) for image in images]
    predict = f'/v1/models/{MODEL}:predict'
    for body in bodies[:5]:
        connection.post(predict, body)
    latencies = []
    for index in range(count):
        started = time.perf_counter()
        connection.post(predict, bodies[index % len(bodies)])
        latencies.append(time.perf_counter() - started)
    connection.close()
    return latencies


@dataclasses.dataclass
class Throughput:
    """Images per second under load, and the CPU each side spent per request."""
    images_per_second: float
    server_cpu_ms: float
    client_cpu_ms: float


def measure_throughput(url: str, images: List[bytes], count: int,
                       concurrency: int, server_pid: int,
                       client: type = _Connection) -> Throughput:
    """`concurrency` clients, each on its own connection, send `count` requests."""
    bodies = [serving_clients.rest_body(image) for image in images]
    predict = f'/v1/models/{MODEL}:predict'
    lock = threading.Lock()
    next_index = [0]
    connections = [client(url) for _ in range(concurrency)]

    def run(connection: _Connection) -> int:
        done = 0
        while True:
            with lock:
                index = next_index[0]
                next_index[0] += 1
            if index >= count:
                return done
            connection.post(predict, bodies[index % len(bodies)])
            done += 1

    server, me = psutil.Process(server_pid), psutil.Process()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(lambda c: c.post(predict, bodies[0]), connections))  # warm up
        server_cpu, client_cpu = _cpu_seconds(server), _cpu_seconds(me)
        started = time.perf_counter()
        done = sum(pool.map(run, connections))
        seconds = time.perf_counter() - started
        server_cpu, client_cpu = (_cpu_seconds(server) - server_cpu,
                                  _cpu_seconds(me) - client_cpu)
    for connection in connections:
        connection.close()
    return Throughput(done / seconds, server_cpu / done * 1e3,
                      client_cpu / done * 1e3)


def server_breakdown(url: str) -> Dict[str, float]:
    """Mean time per request in each stage, from the server's own metrics."""
    from serving import metrics  # pylint: disable=import-outside-toplevel
    text = requests.get(url + '/monitoring/prometheus/metrics', timeout=10).text
    sums: Dict[str, float] = collections.defaultdict(float)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.endswith(('_sum', '_count')):
                sums[sample.name] += sample.value

    def mean(name: str) -> float:
        count = sums.get(f'{name}_count', 0)
        return sums.get(f'{name}_sum', 0.0) / count if count else float('nan')
    return {
        'request_ms': mean(metrics.REQUEST_LATENCY) / 1e3,
        'decode_ms': mean(metrics.DECODE_SECONDS) * 1e3,
        'queue_ms': mean(metrics.PREPROCESS_SECONDS) * 1e3,
        'predict_ms': mean(metrics.PREDICT_SECONDS) * 1e3,
        'batch_size': mean(metrics.BATCH_SIZE),
    }


def measure_in_process(version_dir: str, images: List[bytes],
                       batch_sizes: Sequence[int], count: int
                       ) -> Dict[int, Tuple[float, float]]:
    """{batch size: (images/s, CPU ms per image)} of the SavedModel called directly."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from models import features  # pylint: disable=import-outside-toplevel
    function = tf.saved_model.load(version_dir).signatures[
        features.SERVING_SIGNATURE]
    me = psutil.Process()
    results = {}
    for batch_size in batch_sizes:
        batches = [tf.constant([images[(start + i) % len(images)]
                                for i in range(batch_size)])
                   for start in range(0, max(count, batch_size), batch_size)]
        function(**{features.SERVING_INPUT: batches[0]})
        cpu = _cpu_seconds(me)
        started = time.perf_counter()
        for batch in batches:
            function(**{features.SERVING_INPUT: batch})
        seconds = time.perf_counter() - started
        done = len(batches) * batch_size
        results[batch_size] = (done / seconds, (_cpu_seconds(me) - cpu) / done * 1e3)
        print(f'  in-process batch {batch_size:4d}: {results[batch_size][0]:8.1f} images/s, '
              f'{results[batch_size][1]:.1f} CPU ms per image', flush=True)
    return results


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
    """The measurements and the report."""
    base_path = args.model_base_path
    if not base_path:
        from tests.serving import standin_model  # pylint: disable=import-outside-toplevel
        base_path = str(work / MODEL)
        standin_model.export_image_model(os.path.join(base_path, '1'))
        print(f'exported the stand-in model to {base_path}/1', flush=True)
    threads = f'--rest_api_num_threads={max(args.concurrency, 4)}'
    client = CLIENTS[args.client]

    print('server without batching ...', flush=True)
    server = _server(base_path, work / 'plain.log', [threads])
    try:
        latencies = measure_latency(server.url, images, args.requests, client)
        plain = measure_throughput(server.url, images, args.throughput_requests,
                                   args.concurrency, server.process.pid, client)
    finally:
        server.stop()
    p50, p99 = (_percentile(latencies, 50) * 1e3,
                _percentile(latencies, 99) * 1e3)
    print(f'  REST latency p50 {p50:.1f} ms, p99 {p99:.1f} ms, mean '
          f'{statistics.mean(latencies) * 1e3:.1f} ms ({len(latencies)} '
          'requests)', flush=True)
    print(f'  REST throughput, {args.concurrency} clients: '
          f'{plain.images_per_second:.1f} images/s', flush=True)

    print('server with batching ...', flush=True)
    server = _server(base_path, work / 'batched.log', [
        threads, '--enable_batching', f'--max_batch_size={args.max_batch_size}',
        f'--batch_timeout_micros={args.batch_timeout_micros}',
        f'--num_batch_threads={args.num_batch_threads}'])
    try:
        batched = measure_throughput(server.url, images, args.throughput_requests,
                                     args.concurrency, server.process.pid, client)
        stages = server_breakdown(server.url)
    finally:
        server.stop()
    print(f'  REST throughput, {args.concurrency} clients, batching: '
          f'{batched.images_per_second:.1f} images/s', flush=True)

    print('SavedModel in-process (the limit) ...', flush=True)
    formed = max(1, round(stages['batch_size']))
    full = args.concurrency   # the largest batch the clients can fill
    sizes = sorted({int(b) for b in args.batch_sizes.split(',')} | {1, formed, full})
    limits = measure_in_process(_latest_version_dir(base_path), images, sizes,
                                args.throughput_requests)
    best = max(limits, key=lambda size: limits[size][0])
    single_ms = 1e3 / limits[1][0]

    print('where the time goes, per request (batched server, means from its '
          'metrics; CPU from the processes):')
    print(f"  server wall {stages['request_ms']:.1f} ms = JSON and base64 "
          f"{stages['decode_ms']:.2f} ms + checks and batching queue "
          f"{stages['queue_ms']:.1f} ms + its batch's SavedModel call "
          f"{stages['predict_ms']:.1f} ms (batches of {stages['batch_size']:.1f} "
          f'images) + HTTP and threads')
    print(f'  CPU per image: server {batched.server_cpu_ms:.1f} ms, load generator '
          f'{batched.client_cpu_ms:.1f} ms; in-process at batch {formed} '
          f'{limits[formed][1]:.1f} ms (so the server adds '
          f'{batched.server_cpu_ms - limits[formed][1]:.1f} ms)')
    same = batched.images_per_second / limits[formed][0]
    print(f'ratios: batched / in-process at the batch size it formed ({formed}) '
          f'{same:.2f}, at the largest batch {full} clients can fill '
          f'{batched.images_per_second / limits[full][0]:.2f}, batched / best in-process (batch {best}) '
          f'{batched.images_per_second / limits[best][0]:.2f}, unbatched / best '
          f'{plain.images_per_second / limits[best][0]:.2f}; p50 / in-process single '
          f'{p50 / single_ms:.2f}')
    print(f'HEADLINE: REST p50 {p50:.1f} ms ({p50 / single_ms:.2f}x in-process '
          f'{single_ms:.1f} ms), p99 {p99:.1f} ms; batched '
          f'{batched.images_per_second:.0f} img/s = {same:.2f}x of in-process '
          f'{limits[formed][0]:.0f} img/s at the same batch size ({formed}), '
          f'{batched.images_per_second / limits[full][0]:.2f}x at batch {full}; '
          f'{batched.images_per_second / limits[best][0]:.2f}x of the best in-process '
          f'{limits[best][0]:.0f} img/s (batch {best}); unbatched '
          f'{plain.images_per_second:.0f} img/s')


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
    parser.add_argument('--client', choices=sorted(CLIENTS), default='http.client',
                        help='the load generator\'s HTTP client (it shares the CPUs '
                        'with the server)')
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
