"""Runs the real `python -m serving.server` in a subprocess for tests, and the REST
clients that keep it busy while a test changes what it serves."""

import base64
import os
import pathlib
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Callable, List, Optional, Set, Tuple, TypeVar

import requests

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[2]
T = TypeVar('T')


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def wait_for(check: Callable[[], T], *, timeout: float = 60.0,
             interval: float = 0.2, what: str = 'condition') -> T:
    """Calls `check` until it returns a truthy value; returns that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f'Timed out after {timeout}s waiting for {what}')
        time.sleep(interval)


def copy_version(source: str, base_path: pathlib.Path, version: int) -> str:
    """Publishes a SavedModel as `<base_path>/<version>` with the Pusher's own code."""
    from components.image_pusher import executor as pusher  # pylint: disable=import-outside-toplevel
    return pusher.publish(str(source), str(base_path), version)


def subprocess_env() -> dict:
    """This environment, with the project root on PYTHONPATH."""
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        [str(PROJECT_ROOT)] + ([env['PYTHONPATH']]
                               if env.get('PYTHONPATH') else []))
    env['TF_CPP_MIN_LOG_LEVEL'] = '2'
    return env


class ServerProcess:
    """One model server on free 127.0.0.1 ports, logging to a file."""

    def __init__(self, args: List[str], log_path: pathlib.Path, *,
                 grpc: bool = True):
        self.rest_port = free_port()
        self.grpc_port = free_port() if grpc else 0
        self.log_path = log_path
        self.args = [f'--port={self.grpc_port}',
                     f'--rest_api_port={self.rest_port}'] + list(args)
        self.process: Optional[subprocess.Popen] = None
        self._log_file = None

    @property
    def url(self) -> str:
        return f'http://127.0.0.1:{self.rest_port}'

    @property
    def grpc_target(self) -> str:
        return f'127.0.0.1:{self.grpc_port}'

    def start(self) -> 'ServerProcess':
        env = subprocess_env()
        self._log_file = open(self.log_path, 'wb')  # pylint: disable=consider-using-with
        self.process = subprocess.Popen(  # pylint: disable=consider-using-with
            [sys.executable, '-m', 'serving.server'] + self.args,
            cwd=str(PROJECT_ROOT), env=env, stdout=self._log_file,
            stderr=subprocess.STDOUT)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors='replace')

    def _wait_route(self, route: str, what: str, timeout: float) -> None:
        """Waits for `route` to answer 200; fails with the log if the process died."""
        def check():
            if self.process.poll() is not None:
                raise RuntimeError(f'server exited with {self.process.returncode}'
                                   f':\n{self.log()[-4000:]}')
            try:
                return requests.get(self.url + route, timeout=2).status_code == 200
            except requests.RequestException:
                return False
        wait_for(check, timeout=timeout, what=what)

    def wait_listening(self, timeout: float = 90.0) -> None:
        self._wait_route('/healthz', 'the server to listen', timeout)

    def wait_ready(self, timeout: float = 90.0) -> None:
        self._wait_route('/readyz', 'the server to be ready', timeout)

    def start_ready(self, timeout: float = 90.0) -> 'ServerProcess':
        """`start`, then `wait_ready`; a server that does not get ready is stopped."""
        self.start()
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_exit(self, timeout: float = 90.0) -> int:
        return self.process.wait(timeout=timeout)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then wait; returns the exit code."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self._log_file is not None:
            self._log_file.close()
        return self.process.returncode


def available_versions(url: str, model: str) -> Set[int]:
    """The model's versions the server at url reports AVAILABLE."""
    states = requests.get(f'{url}/v1/models/{model}', timeout=10).json()
    return {int(s['version']) for s in states['model_version_status']
            if s['state'] == 'AVAILABLE'}


class PredictLoop:
    """Clients posting one image to a model's REST :predict, each again as soon as it is
    answered, until `stop`: the label of every answer and every failure (a status other
    than 200, or no answer) is recorded."""

    def __init__(self, url: str, model: str, image: bytes, clients: int = 2):
        self.failures: List[Tuple[object, str]] = []
        self._answered: List[Tuple[float, str]] = []   # (when the request was sent, label)
        self._url = f'{url}/v1/models/{model}:predict'
        self._body = {'instances': [{'b64': base64.b64encode(image).decode()}]}
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, daemon=True)
                         for _ in range(clients)]

    @property
    def answers(self) -> List[str]:
        """The labels of all answers so far."""
        return [label for _, label in self._answered]

    def _client(self) -> None:
        while not self._stop.is_set():
            sent = time.monotonic()
            try:
                response = requests.post(self._url, json=self._body, timeout=60)
                if response.status_code == 200:
                    self._answered.append((sent, response.json()['predictions'][0]['label']))
                else:
                    self.failures.append((response.status_code, response.text[:300]))
            except requests.RequestException as e:
                self.failures.append(('exception', str(e)))

    def start(self) -> 'PredictLoop':
        for thread in self._threads:
            thread.start()
        return self

    def next_answers(self, count: int, timeout: float = 60.0) -> List[str]:
        """The labels of `count` answers (or more) to requests sent from now on, once they
        came: a request already on its way (to a version being unloaded) is not among them."""
        start = time.monotonic()

        def after() -> List[str]:
            return [label for sent, label in list(self._answered) if sent >= start]

        wait_for(lambda: len(after()) >= count, timeout=timeout, what=f'{count} more answers')
        return after()

    def stop(self, timeout: float = 120.0) -> None:
        self._stop.set()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=timeout)
