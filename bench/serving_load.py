"""Sustained load with a hot version swap: requests, errors, p50/p99, peak RSS.

Run by hand (never a test): prints numbers, asserts nothing.

    python bench/serving_load.py --model_base_path /path/to/push/image_classifier

Serves the newest version of the pushed model (copied as version 1 into a
temporary base path), runs --clients clients for --seconds (the last
--grpc_clients of them over gRPC, the others REST; each sends one photo and
waits for the answer), publishes the same model as version 2 half-way with the
Pusher's own publish (saved_model.pb last) so the server loads, warms and swaps
it under load, and prints the requests, the failed ones (any error or non-200),
requests/s, latency p50/p99, the versions the gRPC clients saw and the server's
peak RSS (VmHWM).
"""

import argparse
import base64
import http.client
import pathlib
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from typing import List

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_IMAGES = (PROJECT_ROOT.parent / 'shared' / 'datasets' /
                  'cats_and_dogs_filtered' / 'validation')
MODEL = 'bench'


class Client(threading.Thread):
    """One client: requests until `stop`, recording latencies and failures."""

    def __init__(self, kind: str, server, images: List[bytes], seed: int):
        super().__init__(daemon=True)
        self.kind = kind
        self.server = server
        self.images = images
        self.random = random.Random(seed)
        self.latencies: List[float] = []
        self.failures: List[str] = []
        self.versions = {}
        self.stop = threading.Event()

    def run(self) -> None:
        if self.kind == 'rest':
            self._rest()
        else:
            self._grpc()

    def _rest(self) -> None:
        bodies = [b'{"instances": [{"b64": "' + base64.b64encode(image) + b'"}]}'
                  for image in self.images]
        connection = http.client.HTTPConnection('127.0.0.1', self.server.rest_port,
                                                timeout=120)
        while not self.stop.is_set():
            started = time.perf_counter()
            try:
                connection.request('POST', f'/v1/models/{MODEL}:predict',
                                   self.random.choice(bodies))
                response = connection.getresponse()
                data = response.read()
                if response.status != 200:
                    self.failures.append(f'{response.status} {data[:200]!r}')
                    continue
            except (OSError, http.client.HTTPException) as error:
                self.failures.append(repr(error))
                connection.close()
                connection = http.client.HTTPConnection(
                    '127.0.0.1', self.server.rest_port, timeout=120)
                continue
            self.latencies.append(time.perf_counter() - started)
        connection.close()

    def _grpc(self) -> None:
        import grpc  # pylint: disable=import-outside-toplevel
        import tensorflow as tf  # pylint: disable=import-outside-toplevel
        from tensorflow_serving.apis import predict_pb2  # pylint: disable=import-outside-toplevel
        from tensorflow_serving.apis import prediction_service_pb2_grpc  # pylint: disable=import-outside-toplevel
        channel = grpc.insecure_channel(self.server.grpc_target)
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        requests = []
        for image in self.images:
            request = predict_pb2.PredictRequest()
            request.model_spec.name = MODEL
            request.inputs['image_bytes'].CopyFrom(
                tf.make_tensor_proto([image], dtype=tf.string))
            requests.append(request)
        while not self.stop.is_set():
            started = time.perf_counter()
            try:
                reply = stub.Predict(self.random.choice(requests), 120.0)
            except grpc.RpcError as error:
                self.failures.append(f'{error.code()} {error.details()[:200]}')
                continue
            self.latencies.append(time.perf_counter() - started)
            version = reply.model_spec.version.value
            self.versions.setdefault(version, time.monotonic())
        channel.close()


def _peak_rss_gib(pid: int) -> float:
    for line in pathlib.Path(f'/proc/{pid}/status').read_text().splitlines():
        if line.startswith('VmHWM:'):
            return int(line.split()[1]) / 2**20
    return float('nan')


def main(argv=None) -> int:
    """Runs the load; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--model_base_path', required=True)
    parser.add_argument('--images', default=str(DEFAULT_IMAGES))
    parser.add_argument('--max_images', type=int, default=64)
    parser.add_argument('--clients', type=int, default=32)
    parser.add_argument('--grpc_clients', type=int, default=8)
    parser.add_argument('--seconds', type=float, default=60)
    parser.add_argument('--swap_at', type=float, default=30)
    parser.add_argument('--enable_batching', action='store_true')
    args = parser.parse_args(argv)
    sys.path.insert(0, str(PROJECT_ROOT))
    from runlog import noise  # pylint: disable=import-outside-toplevel
    from tests.serving import server_process  # pylint: disable=import-outside-toplevel
    noise.quiet_tensorflow()
    paths = sorted(p for p in pathlib.Path(args.images).glob('*/*')
                   if p.suffix.lower() in ('.jpg', '.jpeg', '.png'))[:args.max_images]
    images = [p.read_bytes() for p in paths]
    source = max((p for p in pathlib.Path(args.model_base_path).iterdir()
                  if p.name.isdigit()), key=lambda p: int(p.name))
    with tempfile.TemporaryDirectory(prefix='serving_load_') as work:
        work = pathlib.Path(work)
        base = work / MODEL
        base.mkdir()
        shutil.copytree(source, base / '1')
        extra = ['--enable_batching'] if args.enable_batching else []
        server = server_process.ServerProcess(
            [f'--model_name={MODEL}', f'--model_base_path={base}',
             '--file_system_poll_wait_seconds=1',
             f'--rest_api_num_threads={args.clients}',
             f'--grpc_max_threads={args.clients}'] + extra,
            work / 'server.log').start()
        server.wait_ready(timeout=300)
        clients = [Client('grpc' if i >= args.clients - args.grpc_clients else 'rest',
                          server, images, seed=i) for i in range(args.clients)]
        started = time.monotonic()
        for client in clients:
            client.start()
        time.sleep(args.swap_at)
        published = time.monotonic()
        server_process.copy_version(str(source), base, 2)
        time.sleep(max(0.0, args.seconds - args.swap_at))
        for client in clients:
            client.stop.set()
        for client in clients:
            client.join(timeout=180)
        elapsed = time.monotonic() - started
        peak = _peak_rss_gib(server.process.pid)
        log = server.log()
        server.stop()
    latencies = sorted(t for c in clients for t in c.latencies)
    failures = [f for c in clients for f in c.failures]
    first_v2 = min((c.versions[2] for c in clients if 2 in c.versions), default=None)
    print(f'{args.clients} clients ({args.grpc_clients} gRPC) for {elapsed:.0f} s, '
          f'version 2 published at {args.swap_at:g} s'
          + (f', first answered by it {first_v2 - published:.1f} s later'
             if first_v2 else ', never answered by it'))
    print(f'requests {len(latencies) + len(failures)}, failed {len(failures)}, '
          f'{len(latencies) / elapsed:.1f} requests/s, p50 '
          f'{statistics.median(latencies) * 1e3:.0f} ms, p99 '
          f'{latencies[int(0.99 * (len(latencies) - 1))] * 1e3:.0f} ms, '
          f'peak RSS {peak:.2f} GiB')
    print('swap in the server log:', [line.split('] ', 1)[-1] for line in log.splitlines()
                                      if 'version 2}' in line or 'version: 2}' in line][:4])
    for failure in failures[:5]:
        print('  failure:', failure)
    return 0


if __name__ == '__main__':
    sys.exit(main())
