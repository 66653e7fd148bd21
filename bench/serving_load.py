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
import pathlib
import shutil
import statistics
import sys
import tempfile
import time

import serving_clients
from serving_clients import MODEL


def main(argv=None) -> int:
    """Runs the load; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--model_base_path', required=True)
    parser.add_argument('--images', default=str(serving_clients.DEFAULT_IMAGES))
    parser.add_argument('--max_images', type=int, default=64)
    parser.add_argument('--clients', type=int, default=32)
    parser.add_argument('--grpc_clients', type=int, default=8)
    parser.add_argument('--seconds', type=float, default=60)
    parser.add_argument('--swap_at', type=float, default=30)
    parser.add_argument('--enable_batching', action='store_true')
    args = parser.parse_args(argv)
    sys.path.insert(0, str(serving_clients.PROJECT_ROOT))
    from runlog import noise  # pylint: disable=import-outside-toplevel
    from tests.serving import server_process  # pylint: disable=import-outside-toplevel
    noise.quiet_tensorflow()
    images = serving_clients.load_images(pathlib.Path(args.images), args.max_images)
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
        clients = [serving_clients.Client(
            'grpc' if i >= args.clients - args.grpc_clients else 'rest', server, images, seed=i)
            for i in range(args.clients)]
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
        peak = serving_clients.status_mib(server.process.pid, 'VmHWM') / 1024
        log = server.log()
        server.stop()
    latencies = sorted(answered - sent for c in clients for sent, answered in c.answers)
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
