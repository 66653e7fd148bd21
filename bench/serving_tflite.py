"""Serving from TFLite: the server under 32 REST clients with and without
--prefer_tflite_model, beside the XNNPACK float32 forward-rate limit measured on the spot.

Run by hand (never a test): prints numbers and ratios, asserts nothing.

    python bench/serving_tflite.py                                 # exports a 224 model
    python bench/serving_tflite.py --model_base_path /path/to/push/image_classifier
    python bench/serving_tflite.py --rounds 3 --seconds 30 --enable_batching
    python bench/serving_tflite.py --model_base_path ... --other_root /work/main

Each round measures, one after the other:
1. the limit: the served version's model.tflite on decoded pixels (the SavedModel's
   own transform_features output), one image per call, first as one interpreter with
   a thread per core, then as one single-thread interpreter per core in parallel
   threads (as the server runs them); the better of the two is the limit. The model is
   taken as the server loads it (serving/tflite_model.py: its string-table lookup, the
   label, out of the graph, which lets XNNPACK take it) and called as the server calls
   it (`ServedInterpreter.run_images`); the file as it is (no XNNPACK: TFLite's builtin
   kernels) is timed beside it, one single-thread interpreter per core;
2. TensorFlow's forward rate for reference (the SavedModel's classify_pixels, batch 32),
   and the CPU per image of the server's decode (transform_features on encoded photos);
3. `python -m serving.server` without the flag, then with it (once per --tflite_pools
   value): --clients keep-alive
   REST clients (one photo per request, the next request once the answer is in) for
   --warmup seconds, then --seconds counted: answered images/s, failed requests (any
   error or non-200, warmup included), p50/p99, and the CPU seconds per image of the
   server and of the clients (which share the cores with the server); with
   --other_root, then the --prefer_tflite_model server of another checkout (e.g. main's
   code beside a branch's) on the same model, clients and limit. For each server with
   the flag, its ceiling: the images/s the cores give when each image costs only the
   interpreter's, the decode's and the clients' CPU (nothing for HTTP, JSON, base64
   and the threads), as a multiple of the limit, and the CPU per image the rest may
   take at the goal (0.8x the limit) beside what the server spent on it.

The model: the newest version under --model_base_path, copied (with the Pusher's
model.tflite; one is written with the Pusher's own code if the version has none), or
without it a transfer model exported at 224 with the shared MobileNetV2 weights and an
untrained head (its speed does not depend on the head's training).
"""

import argparse
import base64
import itertools
import json
import os
import pathlib
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from typing import Callable, Dict, List, Tuple

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_IMAGES = (PROJECT_ROOT.parent / 'shared' / 'datasets' /
                  'cats_and_dogs_filtered' / 'validation')
MODEL = 'bench'
TF_BATCH = 32
# Images per decode call in decode_cost: about what the server's shared decode takes at
# once under 32 clients (docs/benchmarks.md, issue 40: 2-6).
DECODE_GROUP = 4
# Issue 40's goal for the --prefer_tflite_model server: this fraction of the limit.
GOAL = 0.8


def _photos(folder: pathlib.Path, limit: int) -> List[bytes]:
    paths = sorted(p for p in folder.glob('*/*')
                   if p.suffix.lower() in ('.jpg', '.jpeg', '.png'))[:limit]
    if not paths:
        raise ValueError(f'no photos under {folder}')
    return [p.read_bytes() for p in paths]


def _export_model(version_dir: pathlib.Path, work: pathlib.Path, size: int) -> None:
    """A transfer model at size x size (shared weights, untrained head), as the Trainer
    exports it."""
    from models import builders  # pylint: disable=import-outside-toplevel
    from models import export  # pylint: disable=import-outside-toplevel
    from models import features  # pylint: disable=import-outside-toplevel
    from pipeline import configs  # pylint: disable=import-outside-toplevel
    from tests import transform_graph  # pylint: disable=import-outside-toplevel
    transform = transform_graph.write_transform_graph(str(work / 'transform'), (size, size))
    model = builders.build_transfer_model((size, size), len(features.CLASS_NAMES),
                                          weights=configs.SHARED_WEIGHTS, seed=0)
    export.export_model(model, transform, features.CLASS_NAMES, str(version_dir))


def _prepare_version(args, work: pathlib.Path, images: List[bytes]) -> pathlib.Path:
    from components.image_pusher import tflite_model  # pylint: disable=import-outside-toplevel
    from models import tflite_export  # pylint: disable=import-outside-toplevel
    from serving_formats import warmup_file  # pylint: disable=import-outside-toplevel
    base = work / MODEL
    version = base / '1'
    if args.model_base_path:
        source = max((p for p in pathlib.Path(args.model_base_path).iterdir()
                      if p.name.isdigit()), key=lambda p: int(p.name))
        shutil.copytree(source, version)
        print(f'model: {source}')
    else:
        started = time.perf_counter()
        _export_model(version, work, args.image_size)
        print(f'model: transfer model at {args.image_size}, exported in '
              f'{time.perf_counter() - started:.0f} s')
    if not pathlib.Path(warmup_file.warmup_path(str(version))).exists():
        # As the Pusher writes it: without, the first requests trace the functions.
        warmup_file.write_warmup_file(str(version), images[:5], model_name=MODEL)
    if not (version / tflite_export.SERVING_FILE).exists():
        written = tflite_model.write(str(version), images[:5])
        if written.reason:
            raise SystemExit(f'cannot convert the model: {written.reason}')
        print(f'{tflite_export.SERVING_FILE} written by the Pusher\'s code in '
              f'{written.seconds:.1f} s')
    return base


class _Pixels:
    """The served version's decoded pixels, its TFLite model and its TF forward pass."""

    def __init__(self, version_dir: pathlib.Path, images: List[bytes]):
        import tensorflow as tf  # pylint: disable=import-outside-toplevel
        from models import export  # pylint: disable=import-outside-toplevel
        from models import features  # pylint: disable=import-outside-toplevel
        from models import tflite_export  # pylint: disable=import-outside-toplevel
        self._tf = tf
        self.loaded = tf.saved_model.load(str(version_dir))
        from serving import tflite_model  # pylint: disable=import-outside-toplevel
        self.file_content = (version_dir / tflite_export.SERVING_FILE).read_bytes()
        # As the server loads it: string-table lookups out (so that XNNPACK takes the graph).
        self.content, _ = tflite_model.split_string_lookups(self.file_content)
        runner = tflite_export.Runner(self.content, threads=1)
        inputs, _ = runner.signature_details(features.SERVING_SIGNATURE)
        (self.input_name,) = inputs
        self.images = images
        self.transform = self.loaded.signatures[features.TRANSFORM_SIGNATURE]
        self.pixels = tflite_export.transformed_images(self.transform, images)[self.input_name]
        self.classify_pixels = getattr(self.loaded, export.PIXELS_FUNCTION)

    def tflite_rate(self, threads: int, interpreters: int, seconds: float,
                    content: bytes = b'') -> Tuple[float, float]:
        """(images/s, CPU ms per image) of `interpreters` interpreters of `threads` threads
        each, one image per call, each in a Python thread of its own, for about `seconds`;
        `content`: another model than the served one."""
        from models import features  # pylint: disable=import-outside-toplevel
        from serving import tflite_model  # pylint: disable=import-outside-toplevel
        # The server's own interpreter and call (its direct path where the model allows).
        runners = [tflite_model.ServedInterpreter(content or self.content, threads=threads)
                   for _ in range(interpreters)]
        for runner in runners:   # warm: XNNPACK packs its weights on the first call
            runner.run_images(features.SERVING_SIGNATURE, self.input_name, self.pixels[:1])
        counts = [0] * interpreters
        stop = time.perf_counter() + seconds

        def work(index: int) -> None:
            runner, i = runners[index], index
            while time.perf_counter() < stop:
                runner.run_images(features.SERVING_SIGNATURE, self.input_name,
                                  self.pixels[i % len(self.pixels):][:1])
                counts[index] += 1
                i += interpreters

        started, cpu = time.perf_counter(), time.process_time()
        threads_ = [threading.Thread(target=work, args=(k,)) for k in range(interpreters)]
        for thread in threads_:
            thread.start()
        for thread in threads_:
            thread.join()
        count = sum(counts)
        return (count / (time.perf_counter() - started),
                1e3 * (time.process_time() - cpu) / count)

    def decode_cost(self, seconds: float) -> float:
        """CPU ms per image of the server's decode (the SavedModel's transform_features on
        the encoded photos, as serving/tflite_model.SharedDecoder calls it), DECODE_GROUP
        photos per call, for about `seconds`."""
        from models import tflite_export  # pylint: disable=import-outside-toplevel
        groups = itertools.cycle([self.images[i:i + DECODE_GROUP]
                                  for i in range(0, len(self.images), DECODE_GROUP)])

        def decode() -> int:
            group = next(groups)
            tflite_export.transformed_images(self.transform, group)
            return len(group)

        return _timed(decode, seconds)[1]

    def tf_rate(self, seconds: float) -> Tuple[float, float]:
        """(images/s, CPU ms per image) of the SavedModel's pixels function at batch
        TF_BATCH."""
        batch = self._tf.constant(self.pixels[:TF_BATCH])

        def forward() -> int:
            self.classify_pixels(batch)
            return len(batch)

        return _timed(forward, seconds)


def _timed(step: Callable[[], int], seconds: float) -> Tuple[float, float]:
    """(images/s, CPU ms per image) of step() (which returns the images it did) called
    again and again for about `seconds`, after a first, untimed call (tracing, warming)."""
    step()
    count, started, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - started < seconds:
        count += step()
    return (count / (time.perf_counter() - started),
            1e3 * (time.process_time() - cpu) / count)


def requests_bytes(bodies: List[bytes]) -> List[bytes]:
    """Each body as a whole HTTP/1.1 predict request (headers and body), built once."""
    return [(f'POST /v1/models/{MODEL}:predict HTTP/1.1\r\nHost: 127.0.0.1\r\n'
             f'Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n'
             ).encode() + body for body in bodies]


class _Client(threading.Thread):
    """One keep-alive REST client: a photo per request until stopped.

    A load generator, not a client library: it sends pre-built request bytes on a raw
    socket and reads the answer by its Content-Length (the server always sends one), so
    that the clients, which share the cores with the server, take little CPU
    (http.client took about twice as much per request)."""

    def __init__(self, port: int, requests: List[bytes], seed: int):
        super().__init__(daemon=True)
        self.port = port
        self.requests = requests
        self.seed = seed
        self.done: List[tuple] = []       # (finished at, seconds)
        self.failures: List[str] = []
        self.stop = threading.Event()

    def _connect(self) -> socket.socket:
        return socket.create_connection(('127.0.0.1', self.port), timeout=120)

    @staticmethod
    def _answer(connection: socket.socket, pending: bytes) -> Tuple[int, bytes, bytes]:
        """(status, body, bytes read past it) of the next answer."""
        while b'\r\n\r\n' not in pending:
            chunk = connection.recv(65536)
            if not chunk:
                raise ConnectionError('the server closed the connection')
            pending += chunk
        head, _, pending = pending.partition(b'\r\n\r\n')
        lines = head.split(b'\r\n')
        length = next((int(line.split(b':', 1)[1]) for line in lines[1:]
                       if line[:15].lower() == b'content-length:'), None)
        if length is None:
            raise ConnectionError(f'an answer without Content-Length: {lines[0]!r}')
        while len(pending) < length:
            chunk = connection.recv(65536)
            if not chunk:
                raise ConnectionError('the server closed the connection')
            pending += chunk
        return int(lines[0].split()[1]), pending[:length], pending[length:]

    def run(self) -> None:
        connection, i, pending = self._connect(), self.seed, b''
        while not self.stop.is_set():
            started = time.perf_counter()
            try:
                connection.sendall(self.requests[i % len(self.requests)])
                status, data, pending = self._answer(connection, pending)
                if status != 200:
                    self.failures.append(f'{status} {data[:200]!r}')
                else:
                    finished = time.perf_counter()
                    self.done.append((finished, finished - started))
            except (OSError, ValueError, IndexError) as error:
                self.failures.append(repr(error))
                connection.close()
                connection, pending = self._connect(), b''
            i += 1
        connection.close()


def _server(args: List[str], log: pathlib.Path, root: str):
    """tests.serving.server_process.ServerProcess, its code taken from the checkout at
    `root` ('' : this one)."""
    import subprocess  # pylint: disable=import-outside-toplevel
    from tests.serving import server_process  # pylint: disable=import-outside-toplevel

    class _Server(server_process.ServerProcess):
        def start(self):
            if not root:
                return super().start()
            env = dict(server_process.subprocess_env(), PYTHONPATH=root)
            self._log_file = open(self.log_path, 'wb')  # pylint: disable=consider-using-with
            self.process = subprocess.Popen(  # pylint: disable=consider-using-with
                [sys.executable, '-m', 'serving.server'] + self.args, cwd=root, env=env,
                stdout=self._log_file, stderr=subprocess.STDOUT)
            return self

    return _Server(args, log, grpc=False).start()


def _load(args, base: pathlib.Path, bodies: List[bytes], work: pathlib.Path,
          flags: List[str], name: str, root: str = '') -> Dict:
    import psutil  # pylint: disable=import-outside-toplevel
    server = _server(
        [f'--model_name={MODEL}', f'--model_base_path={base}',
         '--file_system_poll_wait_seconds=0'] + flags, work / f'{name}.log', root)
    try:
        server.wait_ready(timeout=600)
        requests = requests_bytes(bodies)
        clients = [_Client(server.rest_port, requests, seed=k) for k in range(args.clients)]
        for client in clients:
            client.start()
        time.sleep(args.warmup)
        me, served = psutil.Process(), psutil.Process(server.process.pid)
        cpu_me, cpu_server = sum(me.cpu_times()[:2]), sum(served.cpu_times()[:2])
        start = time.perf_counter()
        time.sleep(args.seconds)
        end = time.perf_counter()
        cpu_me = sum(me.cpu_times()[:2]) - cpu_me
        cpu_server = sum(served.cpu_times()[:2]) - cpu_server
        for client in clients:
            client.stop.set()
        for client in clients:
            client.join(timeout=180)
        log = server.log()
    finally:
        server.stop()
    latencies = sorted(seconds for c in clients for finished, seconds in c.done
                       if start <= finished <= end)
    failures = [f for c in clients for f in c.failures]
    count = len(latencies)
    return {'images_per_second': count / (end - start), 'answered': count,
            'failed': len(failures), 'first_failures': failures[:3],
            'p50_ms': 1e3 * statistics.median(latencies) if latencies else float('nan'),
            'p99_ms': 1e3 * latencies[int(0.99 * (count - 1))] if latencies else float('nan'),
            'server_cpu_ms_per_image': 1e3 * cpu_server / max(count, 1),
            'clients_cpu_ms_per_image': 1e3 * cpu_me / max(count, 1),
            'tflite_in_log': 'serves predict on' in log}


def ceiling(found: Dict, result: Dict, cores: int, goal: float = GOAL) -> Dict[str, float]:
    """What the cores allow a TFLite server at most: every core busy, each image costing
    the interpreter's CPU (the limit's), the decode's and the clients' (which share the
    cores) and nothing for HTTP, JSON, base64 and the hand-offs between threads; and the
    CPU per image those may take at `goal` x the limit, beside what the server spent on
    them (its CPU per image less the interpreter's and the decode's)."""
    interpreter = found['limit_cpu_ms_per_image']
    decode = found['decode_cpu_ms_per_image']
    clients = result['clients_cpu_ms_per_image']
    images_per_second = cores * 1e3 / (interpreter + decode + clients)
    return {
        'images_per_second': images_per_second,
        'of_limit': images_per_second / found['limit'],
        'rest_ms_at_goal': cores * 1e3 / (goal * found['limit']) - interpreter - decode - clients,
        'rest_ms_spent': result['server_cpu_ms_per_image'] - interpreter - decode,
        'interpreter_ms': interpreter, 'decode_ms': decode, 'clients_ms': clients,
        'cores': cores, 'goal': goal}


def describe_ceiling(found: Dict[str, float]) -> str:
    """ceiling()'s figures as one line."""
    return (f'    ceiling: {found["cores"]} cores / (interpreter {found["interpreter_ms"]:.1f} + '
            f'decode {found["decode_ms"]:.1f} + clients {found["clients_ms"]:.1f} CPU ms per '
            f'image) = {found["images_per_second"]:.0f} images/s = {found["of_limit"]:.2f}x '
            'the limit with nothing for HTTP, JSON, base64 and the threads; at '
            f'{found["goal"]:g}x they may take {found["rest_ms_at_goal"]:.1f} ms per image, '
            f'this server spent {found["rest_ms_spent"]:.1f}')


def main(argv=None) -> int:
    """Runs the rounds; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--model_base_path', default='')
    parser.add_argument('--image_size', type=int, default=224,
                        help='input size of the exported model (without --model_base_path)')
    parser.add_argument('--images', default=str(DEFAULT_IMAGES))
    parser.add_argument('--max_images', type=int, default=64)
    parser.add_argument('--clients', type=int, default=32)
    parser.add_argument('--warmup', type=float, default=10)
    parser.add_argument('--seconds', type=float, default=30)
    parser.add_argument('--limit_seconds', type=float, default=10)
    parser.add_argument('--rounds', type=int, default=2)
    parser.add_argument('--tflite_pools', type=int, nargs='+', default=[0],
                        help='--num_tflite_pools of the servers with the flag, one server '
                        'each (0: one interpreter per core)')
    parser.add_argument('--enable_batching', action='store_true',
                        help='both servers batch (--enable_batching)')
    parser.add_argument('--other_root', default='',
                        help='also run the --prefer_tflite_model server of the checkout '
                        'at this path (e.g. /work/main) in each round, after this one\'s: '
                        'two versions of the server side by side')
    parser.add_argument('--json', help='write the figures here')
    args = parser.parse_args(argv)
    sys.path.insert(0, str(PROJECT_ROOT))
    from runlog import noise  # pylint: disable=import-outside-toplevel
    noise.quiet_tensorflow()
    cores = os.cpu_count() or 1
    images = _photos(pathlib.Path(args.images), args.max_images)
    bodies = [b'{"instances": [{"b64": "' + base64.b64encode(image) + b'"}]}'
              for image in images]
    extra = ['--enable_batching'] if args.enable_batching else []
    rounds = []
    with tempfile.TemporaryDirectory(prefix='serving_tflite_') as work:
        work = pathlib.Path(work)
        base = _prepare_version(args, work, images)
        pixels = _Pixels(base / '1', images)
        print(f'{len(images)} photos, {args.clients} REST clients, {args.warmup:g} s warmup + '
              f'{args.seconds:g} s counted per server, {cores} cores'
              + (', batching' if args.enable_batching else ''))
        variants = [('saved_model', 'server, SavedModel', extra, '')] + [
            (f'tflite_{pools}', f'server, --prefer_tflite_model --num_tflite_pools={pools}',
             extra + ['--prefer_tflite_model', f'--num_tflite_pools={pools}'], '')
            for pools in args.tflite_pools] + ([
                ('tflite_other', f'server of {args.other_root}, --prefer_tflite_model',
                 extra + ['--prefer_tflite_model'], args.other_root)]
                if args.other_root else [])
        for number in range(1, args.rounds + 1):
            found = {}
            (found['limit_one_interpreter'], cpu_one) = pixels.tflite_rate(
                cores, 1, args.limit_seconds)
            (found['limit_interpreter_per_core'], cpu_each) = pixels.tflite_rate(
                1, cores, args.limit_seconds)
            found['file_as_is'], _ = pixels.tflite_rate(1, cores, args.limit_seconds,
                                                        pixels.file_content)
            found['tensorflow'], found['tensorflow_cpu_ms_per_image'] = pixels.tf_rate(
                args.limit_seconds)
            found['limit'], found['limit_cpu_ms_per_image'] = max(
                (found['limit_one_interpreter'], cpu_one),
                (found['limit_interpreter_per_core'], cpu_each))
            limit = found['limit']
            found['decode_cpu_ms_per_image'] = pixels.decode_cost(args.limit_seconds)
            print(f'round {number}: limit (XNNPACK float32, model.tflite on pixels) '
                  f'{limit:.1f} images/s, {found["limit_cpu_ms_per_image"]:.1f} CPU ms per '
                  f'image (1 interpreter x {cores} threads {found["limit_one_interpreter"]:.1f}, '
                  f'{cores} x 1 thread {found["limit_interpreter_per_core"]:.1f}; the file as '
                  f'it is, string output kept: {found["file_as_is"]:.1f}); TensorFlow '
                  f'batch {TF_BATCH} {found["tensorflow"]:.1f} images/s '
                  f'({found["tensorflow"] / limit:.2f}x the limit), '
                  f'{found["tensorflow_cpu_ms_per_image"]:.1f} CPU ms per image; the '
                  f'decode (transform_features, {DECODE_GROUP} images per call) '
                  f'{found["decode_cpu_ms_per_image"]:.1f} CPU ms per image')
            for key, label, flags, root in variants:
                result = found[key] = _load(args, base, bodies, work, flags, f'r{number}-{key}',
                                            root)
                print(f'  {label}: {result["images_per_second"]:.1f} images/s = '
                      f'{result["images_per_second"] / limit:.2f}x the limit, failed '
                      f'{result["failed"]}, p50 {result["p50_ms"]:.0f} ms, p99 '
                      f'{result["p99_ms"]:.0f} ms, CPU ms per image: server '
                      f'{result["server_cpu_ms_per_image"]:.1f} (the limit\'s / the server\'s: '
                      f'{found["limit_cpu_ms_per_image"] / result["server_cpu_ms_per_image"]:.2f}), '
                      f'clients {result["clients_cpu_ms_per_image"]:.1f}')
                for failure in result['first_failures']:
                    print(f'    failure: {failure}')
                if key != 'saved_model':
                    if not result['tflite_in_log']:
                        print('    WARNING: this server did not serve from model.tflite (see '
                              'its log)')
                    if found['saved_model']['images_per_second']:
                        print(f'    / SavedModel server: {result["images_per_second"] / found["saved_model"]["images_per_second"]:.2f}x')
                    result['ceiling'] = ceiling(found, result, cores)
                    print(describe_ceiling(result['ceiling']))
            rounds.append(found)
    for key, label, _, _ in variants:
        ratio = statistics.median(r[key]['images_per_second'] / r['limit'] for r in rounds)
        print(f'median over {len(rounds)} rounds, {label}: {ratio:.2f}x the limit')
    failed = sum(r[key]['failed'] for r in rounds for key, _, _, _ in variants)
    print(f'failed requests, all servers and rounds: {failed}')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(rounds, f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
