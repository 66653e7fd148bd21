"""Our model server (`python -m serving.server`) in a child process, spoken to over REST.

Components do not import serving/: the InfraValidator starts the server as its own
process on a free 127.0.0.1 port and talks to it as any client would, with only the
basic flags TF Serving has too (--model_name, --model_base_path, --rest_api_port,
--port).

The child never outlives the check: its caller stops it in a `finally` (SIGTERM to
its process group, SIGKILL after STOP_GRACE_SECONDS), and on Linux the kernel
kills it when the thread that started it ends (PR_SET_PDEATHSIG),
so a pipeline killed with SIGKILL leaves no server behind. It runs in its own
process group, so stopping it never signals the pipeline.
"""

import base64
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

import requests
from absl import logging

from models import features

# After SIGTERM the server gets this long to exit before SIGKILL.
STOP_GRACE_SECONDS = 10.0
# How often the model's status is asked for while it loads.
POLL_SECONDS = 0.2
# Attempts at a free port: another process may take the one picked before the server binds it.
PORT_ATTEMPTS = 3
_ADDRESS_IN_USE = 'Address already in use'
_PR_SET_PDEATHSIG = 1   # <linux/prctl.h>


class ServerError(Exception):
    """The server did not start, did not load the model or did not answer; the message
    says which, in one line."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _die_with_parent():
    """preexec_fn: the child gets SIGKILL when the thread that started it ends.
    Only a ctypes call between fork and exec (no locks, no imports)."""
    libc = ctypes.CDLL(None, use_errno=True)
    prctl = libc.prctl

    def preexec():
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    return preexec if sys.platform.startswith('linux') else None


def _project_root() -> str:
    """The folder holding this package's top-level packages (serving/ among them), so the
    server is the same code as the pipeline that starts it."""
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _last_error_line(log_path: str) -> str:
    try:
        with open(log_path, encoding='utf-8', errors='replace') as f:
            lines = [line.strip() for line in f if line.strip()]
    except OSError:
        return ''
    errors = [line for line in lines if 'ERROR' in line or 'Error' in line]
    return (errors or lines or [''])[-1][:500]


def _first_line(text: str) -> str:
    """A server's error in one line: TF's errors put the node that failed on the next."""
    return (text.strip().splitlines() or [''])[0].strip()


def _state(status: dict) -> Tuple[str, str]:
    """(state, error message) of one model_version_status entry."""
    error = status.get('status', {})
    code = error.get('error_code', 'OK')
    message = error.get('error_message', '') if code not in ('OK', 0) else ''
    return str(status.get('state')), message


class ModelServer:
    """One `python -m serving.server --model_base_path=...` child process, REST only.

    Args:
      model_name: the name the model is served under.
      base_path: the folder of its integer version folders.
      log_path: where the server's stdout and stderr go.
    """

    def __init__(self, model_name: str, base_path: str, log_path: str):
        self.model_name = model_name
        self.base_path = base_path
        self.log_path = log_path
        self.port: Optional[int] = None
        self.process: Optional[subprocess.Popen] = None

    @property
    def url(self) -> str:
        """The REST root, e.g. http://127.0.0.1:8501."""
        return f'http://127.0.0.1:{self.port}'

    def start(self) -> None:
        """Starts the server (returns at once; `wait_available` waits for the model)."""
        env = dict(os.environ)
        env['PYTHONPATH'] = os.pathsep.join(
            [_project_root()] + ([env['PYTHONPATH']] if env.get('PYTHONPATH') else []))
        self.port = free_port()
        args = [sys.executable, '-m', 'serving.server', f'--model_name={self.model_name}',
                f'--model_base_path={self.base_path}', f'--rest_api_port={self.port}',
                '--port=0']   # gRPC off: the check speaks REST
        with open(self.log_path, 'ab') as log:
            self.process = subprocess.Popen(  # pylint: disable=consider-using-with
                args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=env, start_new_session=True, preexec_fn=_die_with_parent())
        logging.info('Model server pid %d on %s, log %s', self.process.pid, self.url,
                     self.log_path)

    def stop(self) -> Optional[int]:
        """Stops the server and its process group; returns its exit code (None: not started)."""
        process = self.process
        if process is None:
            return None
        # Signals go to the group only while its leader has not been reaped: after that
        # its number may be another process's.
        if process.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                logging.warning('Model server pid %d still running %.0f s after SIGTERM; '
                                'killing it', process.pid, STOP_GRACE_SECONDS)
                self._signal(signal.SIGKILL)
                process.wait()
        return process.returncode

    def _signal(self, signum: int) -> None:
        try:
            os.killpg(self.process.pid, signum)
        except ProcessLookupError:
            pass

    def _exited(self) -> Optional[str]:
        """Why the server is no longer running, or None while it runs."""
        if self.process.poll() is None:
            return None
        return (f'the server exited with code {self.process.returncode}: '
                f'{_last_error_line(self.log_path)}')

    def wait_available(self, version: int, timeout_seconds: float) -> float:
        """Waits until `version` is AVAILABLE; returns the seconds it took.

        Raises:
          ServerError: the server exited, reported the version's load as failed, or the
            version was not AVAILABLE within timeout_seconds.
        """
        started = time.monotonic()
        deadline = started + timeout_seconds
        last = 'the server did not answer'
        attempts = 1
        while True:
            exited = self._exited()
            if exited and _ADDRESS_IN_USE in exited and attempts < PORT_ATTEMPTS:
                attempts += 1   # another process took the port first: another port
                self.start()
                continue
            if exited:
                raise ServerError(exited)
            url = f'{self.url}/v1/models/{self.model_name}'
            try:
                response = requests.get(url, timeout=POLL_SECONDS + 5)
                statuses = response.json().get('model_version_status', [])
                mine = [s for s in statuses if str(s.get('version')) == str(version)]
                if mine:
                    state, error = _state(mine[0])
                    if state == 'AVAILABLE':
                        return time.monotonic() - started
                    if error:
                        raise ServerError('the server could not load the model: '
                                          f'{_first_line(error)}')
                    last = f'version {version} {state}'
                else:
                    last = response.json().get('error', f'HTTP {response.status_code}')
            except (requests.RequestException, ValueError) as error:
                last = f'{type(error).__name__}'
            if time.monotonic() > deadline:
                raise ServerError(f'the model was not AVAILABLE within {timeout_seconds:g} s '
                                  f'(last: {last})')
            time.sleep(POLL_SECONDS)

    def predict(self, image: bytes, timeout_seconds: float) -> Tuple[Dict, float]:
        """One image through REST :predict (serving_default); (its outputs, seconds).

        Raises:
          ServerError: an error answer, no answer within timeout_seconds, or the server exited.
        """
        body = json.dumps({'signature_name': features.SERVING_SIGNATURE,
                           'instances': [{'b64': base64.b64encode(image).decode('ascii')}]})
        started = time.perf_counter()
        try:
            response = requests.post(f'{self.url}/v1/models/{self.model_name}:predict',
                                     data=body, timeout=timeout_seconds)
        except requests.Timeout:
            raise ServerError(f'no answer to a :predict request within {timeout_seconds:g} s'
                              ) from None
        except requests.RequestException as error:
            raise ServerError(self._exited() or f':predict failed: {type(error).__name__}: '
                              f'{error}') from None
        seconds = time.perf_counter() - started
        try:
            answer = response.json()
        except ValueError:
            answer = {'error': response.text[:300]}
        if response.status_code != 200 or 'predictions' not in answer:
            raise ServerError(f':predict answered HTTP {response.status_code}: '
                              f"{_first_line(str(answer.get('error', answer)))}")
        return answer['predictions'][0], seconds

    def predict_all(self, images: Sequence[bytes], timeout_seconds: float
                    ) -> Tuple[List[Dict], List[float]]:
        """Each image in its own request, one after another; (outputs, seconds) per image."""
        outputs, seconds = [], []
        for image in images:
            output, took = self.predict(image, timeout_seconds)
            outputs.append(output)
            seconds.append(took)
        return outputs, seconds
