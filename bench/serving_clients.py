"""What the serving benchmarks send and read: photos, one per request over REST or gRPC
from client threads, and the server process's memory.

Imported by bench/serving_*.py (run as `python bench/<script>.py`, so this folder is on
sys.path); never a test.
"""

import base64
import http.client
import pathlib
import random
import threading
import time
from typing import Dict, List, Sequence, Tuple

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_IMAGES = (PROJECT_ROOT.parent / 'shared' / 'datasets' /
                  'cats_and_dogs_filtered' / 'validation')
# The model name the benchmarks serve their copy of a pushed model under.
MODEL = 'bench'


def load_images(folder: pathlib.Path, limit: int) -> List[bytes]:
    """Up to `limit` encoded images from folder/*/*.{jpg,jpeg,png}, sorted."""
    paths = sorted(p for p in folder.glob('*/*')
                   if p.suffix.lower() in ('.jpg', '.jpeg', '.png'))[:limit]
    if not paths:
        raise ValueError(f'No images under {folder}')
    return [p.read_bytes() for p in paths]


def rest_body(image: bytes) -> bytes:
    """The REST :predict body of one encoded image."""
    return b'{"instances": [{"b64": "' + base64.b64encode(image) + b'"}]}'


def grpc_request(image: bytes, model: str = MODEL):
    """The gRPC PredictRequest of one encoded image (imports TensorFlow)."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from tensorflow_serving.apis import predict_pb2  # pylint: disable=import-outside-toplevel
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.inputs['image_bytes'].CopyFrom(tf.make_tensor_proto([image], dtype=tf.string))
    return request


def status_mib(pid: int, key: str) -> float:
    """A memory figure of /proc/<pid>/status (VmRSS, VmHWM: the peak) in MiB."""
    for line in pathlib.Path(f'/proc/{pid}/status').read_text().splitlines():
        if line.startswith(key + ':'):
            return int(line.split()[1]) / 1024
    return float('nan')


class Client(threading.Thread):
    """One client sending one photo per request (chosen at random among `images`) until
    `stop`, over REST or gRPC; records when each answer came and each failure.

    Attributes:
      answers: (sent, answered) time.monotonic() of each answered request.
      failures: what went wrong with each other request.
      versions: gRPC only: version -> when it first answered.
    """

    def __init__(self, kind: str, server, images: Sequence[bytes], *, seed: int = 0,
                 timeout: float = 120.0, retry_after: float = 0.0, grpc_options=(),
                 wait_for_ready: bool = False):
        """Args:
          kind: 'rest' or 'grpc'.
          server: a tests.serving.server_process.ServerProcess (its ports).
          images: encoded photos.
          seed: of the choice of photos.
          timeout: seconds per request.
          retry_after: seconds to wait after a failed request.
          grpc_options: gRPC channel arguments.
          wait_for_ready: gRPC calls wait for the channel instead of failing at once.
        """
        super().__init__(daemon=True)
        self.kind = kind
        self.server = server
        self.images = list(images)
        self.random = random.Random(seed)
        self.timeout = timeout
        self.retry_after = retry_after
        self.grpc_options = list(grpc_options)
        self.wait_for_ready = wait_for_ready
        self.answers: List[Tuple[float, float]] = []
        self.failures: List[str] = []
        self.versions: Dict[int, float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        if self.kind == 'rest':
            self._rest()
        else:
            self._grpc()

    def _failed(self, what: str) -> None:
        self.failures.append(what)
        if self.retry_after:
            time.sleep(self.retry_after)

    def _rest(self) -> None:
        bodies = [rest_body(image) for image in self.images]
        connection = None
        while not self.stop.is_set():
            sent = time.monotonic()
            try:
                if connection is None:
                    connection = http.client.HTTPConnection(
                        '127.0.0.1', self.server.rest_port, timeout=self.timeout)
                connection.request('POST', f'/v1/models/{MODEL}:predict',
                                   self.random.choice(bodies))
                response = connection.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException) as error:
                if connection is not None:
                    connection.close()
                connection = None
                self._failed(repr(error))
                continue
            if response.status != 200:
                self._failed(f'{response.status} {data[:200]!r}')
                continue
            self.answers.append((sent, time.monotonic()))
        if connection is not None:
            connection.close()

    def _grpc(self) -> None:
        import grpc  # pylint: disable=import-outside-toplevel
        from tensorflow_serving.apis import prediction_service_pb2_grpc  # pylint: disable=import-outside-toplevel
        channel = grpc.insecure_channel(self.server.grpc_target, options=self.grpc_options)
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        requests = [grpc_request(image) for image in self.images]
        while not self.stop.is_set():
            sent = time.monotonic()
            try:
                reply = stub.Predict(self.random.choice(requests), self.timeout,
                                     wait_for_ready=self.wait_for_ready)
            except grpc.RpcError as error:
                self._failed(f'{error.code()} {(error.details() or "")[:200]}')
                continue
            answered = time.monotonic()
            self.answers.append((sent, answered))
            self.versions.setdefault(reply.model_spec.version.value, answered)
        channel.close()
