"""The restart gap: kill -9 the server under load, restart it, see who waits for what.

Run by hand (never a test): prints numbers, asserts nothing.

    python bench/serving_restart.py --model_base_path /path/to/push/image_classifier

For each gRPC client setting (the library's defaults; short reconnect backoff;
short backoff and wait_for_ready) it starts the server, runs --clients clients
(half REST, half gRPC, each sending one photo at a time and retrying 50 ms after
an error), kills the server with SIGKILL, restarts it --restart_delay seconds
later on the same ports, and prints, in seconds after the restart: when each
port accepted a TCP connection, when /readyz first said 200, and when the REST
and the gRPC clients had their first success (the first and the last client of
each kind). The gap between /readyz and a client's first success is the
client's: its reconnect backoff.
"""

import argparse
import base64
import http.client
import os
import pathlib
import signal
import socket
import sys
import threading
import time
from typing import Dict, List, Optional

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_IMAGES = (PROJECT_ROOT.parent / 'shared' / 'datasets' /
                  'cats_and_dogs_filtered' / 'validation' / 'cats')
MODEL = 'bench'
# gRPC channel arguments (grpc/grpc include/grpc/impl/channel_arg_names.h).
SHORT_BACKOFF = [('grpc.initial_reconnect_backoff_ms', 100),
                 ('grpc.min_reconnect_backoff_ms', 100),
                 ('grpc.max_reconnect_backoff_ms', 1000)]
SETTINGS = {
    'grpc defaults': ([], False),
    'short backoff': (SHORT_BACKOFF, False),
    'short backoff + wait_for_ready': (SHORT_BACKOFF, True),
}


class Client(threading.Thread):
    """One client in a loop; records the times of its successes."""

    def __init__(self, kind: str, server, image: bytes, options, wait_for_ready):
        super().__init__(daemon=True)
        self.kind = kind
        self.server = server
        self.image = image
        self.options = options
        self.wait_for_ready = wait_for_ready
        self.successes: List[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        if self.kind == 'rest':
            self._rest()
        else:
            self._grpc()

    def _rest(self) -> None:
        body = (b'{"instances": [{"b64": "' + base64.b64encode(self.image) +
                b'"}]}')
        connection = None
        while not self.stop.is_set():
            try:
                if connection is None:
                    connection = http.client.HTTPConnection(
                        '127.0.0.1', self.server.rest_port, timeout=10)
                connection.request('POST', f'/v1/models/{MODEL}:predict', body)
                response = connection.getresponse()
                response.read()
                if response.status == 200:
                    self.successes.append(time.monotonic())
                    continue
            except (OSError, http.client.HTTPException):
                if connection is not None:
                    connection.close()
                connection = None
            time.sleep(0.05)

    def _grpc(self) -> None:
        import grpc  # pylint: disable=import-outside-toplevel
        import tensorflow as tf  # pylint: disable=import-outside-toplevel
        from tensorflow_serving.apis import predict_pb2  # pylint: disable=import-outside-toplevel
        from tensorflow_serving.apis import prediction_service_pb2_grpc  # pylint: disable=import-outside-toplevel
        channel = grpc.insecure_channel(f'127.0.0.1:{self.server.grpc_port}',
                                        options=self.options)
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = MODEL
        request.inputs['image_bytes'].CopyFrom(
            tf.make_tensor_proto([self.image], dtype=tf.string))
        while not self.stop.is_set():
            try:
                stub.Predict(request, 10.0, wait_for_ready=self.wait_for_ready)
                self.successes.append(time.monotonic())
                continue
            except grpc.RpcError:
                pass
            time.sleep(0.05)
        channel.close()


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(('127.0.0.1', port), timeout=0.2):
            return True
    except OSError:
        return False


def _ready(port: int) -> bool:
    try:
        connection = http.client.HTTPConnection('127.0.0.1', port, timeout=1)
        connection.request('GET', '/readyz')
        return connection.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False


def one_restart(base_path: str, work: pathlib.Path, image: bytes, clients: int,
                restart_delay: float, options, wait_for_ready) -> Dict[str, Optional[float]]:
    """Times (s after the restart) of each event of one kill and restart."""
    from tests.serving import server_process  # pylint: disable=import-outside-toplevel
    args = [f'--model_name={MODEL}', f'--model_base_path={base_path}',
            '--file_system_poll_wait_seconds=0']
    server = server_process.ServerProcess(args, work / 'first.log').start()
    server.wait_ready(timeout=300)
    running = [Client('rest' if i % 2 == 0 else 'grpc', server, image, options,
                      wait_for_ready) for i in range(clients)]
    for client in running:
        client.start()
    time.sleep(5)
    server.process.send_signal(signal.SIGKILL)
    server.process.wait()
    time.sleep(restart_delay)
    second = server_process.ServerProcess(args, work / 'second.log')
    second.rest_port, second.grpc_port = server.rest_port, server.grpc_port
    second.args = [f'--port={server.grpc_port}',
                   f'--rest_api_port={server.rest_port}'] + args
    restarted = time.monotonic()
    second.start()
    events: Dict[str, Optional[float]] = {'rest port': None, 'grpc port': None,
                                          '/readyz': None}
    deadline = restarted + 120
    while time.monotonic() < deadline:
        now = time.monotonic() - restarted
        if events['rest port'] is None and _accepts(server.rest_port):
            events['rest port'] = now
        if events['grpc port'] is None and _accepts(server.grpc_port):
            events['grpc port'] = now
        if events['/readyz'] is None and _ready(server.rest_port):
            events['/readyz'] = now
        done = all(any(t > restarted for t in c.successes) for c in running)
        if done and events['/readyz'] is not None:
            break
        time.sleep(0.05)
    for client in running:
        client.stop.set()
    for kind in ('rest', 'grpc'):
        firsts = [min((t for t in c.successes if t > restarted), default=None)
                  for c in running if c.kind == kind]
        seen = [t - restarted for t in firsts if t is not None]
        events[f'{kind} clients, first'] = min(seen) if seen else None
        events[f'{kind} clients, last'] = (max(seen) if len(seen) == len(firsts)
                                            else None)
    for client in running:
        client.join(timeout=15)
    second.stop()
    return events


def main(argv=None) -> int:
    """Runs every client setting once; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--model_base_path', required=True)
    parser.add_argument('--clients', type=int, default=8)
    parser.add_argument('--restart_delay', type=float, default=1.0)
    parser.add_argument('--image', default='')
    args = parser.parse_args(argv)
    if str(PROJECT_ROOT) not in sys.path:
        sys.path.insert(0, str(PROJECT_ROOT))
    from runlog import noise  # pylint: disable=import-outside-toplevel
    noise.quiet_tensorflow()
    image_path = args.image or sorted(DEFAULT_IMAGES.glob('*.jpg'))[0]
    image = pathlib.Path(image_path).read_bytes()
    import tempfile  # pylint: disable=import-outside-toplevel
    rows = {}
    for name, (options, wait_for_ready) in SETTINGS.items():
        with tempfile.TemporaryDirectory(prefix='serving_restart_') as work:
            rows[name] = one_restart(args.model_base_path, pathlib.Path(work),
                                     image, args.clients, args.restart_delay,
                                     options, wait_for_ready)
        print(name, {k: None if v is None else round(v, 2)
                     for k, v in rows[name].items()}, flush=True)
    keys = list(next(iter(rows.values())))
    print('\nseconds after the restart (the kill was '
          f'{args.restart_delay:g} s before it), {args.clients} clients:')
    print('| event | ' + ' | '.join(rows) + ' |')
    print('| --- |' + ' --- |' * len(rows))
    for key in keys:
        cells = ['-' if rows[n][key] is None else f'{rows[n][key]:.1f}'
                 for n in rows]
        print(f'| {key} | ' + ' | '.join(cells) + ' |')
    return 0


if __name__ == '__main__':
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    sys.exit(main())
