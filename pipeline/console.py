"""What a person sees while the pipeline runs, and the log file that keeps the rest.

While a `Console` is open, everything the process and its children (Beam
workers) write to stdout and stderr, TensorFlow's C++ logs included, goes to a
log file; Python logging goes there too, at INFO, and Python warnings through
logging. The console shows only `Console.say` lines: one per component as it
starts and ends (from LocalDagRunner's own "Component X is running/finished"
log records, with the state ML Metadata recorded), one per training epoch
(records of the `PROGRESS_LOGGER` logger) and whatever the caller says. With
verbose=True the console also shows everything, as without a Console.
"""

import logging
import os
import re
import sys
import threading
import time
import warnings
from typing import Callable, Dict, List, Optional, Sequence, TextIO

# Lines logged at INFO to this logger are shown on the console (e.g. one per epoch).
PROGRESS_LOGGER = 'image_pipeline.progress'

_STARTED = re.compile(r'^Component (\S+) is running\.$')
_FINISHED = re.compile(r'^Component (\S+) is finished\.$')

# Third-party warnings that say nothing about the user's run, by category and the
# module that raises them (our own warnings still reach the log).
NOISY_WARNINGS = (
    (FutureWarning, r'google\..*'),               # Python 3.11 support notices
    (DeprecationWarning, r'(tensorflow|tf_keras|tfx|tfx_bsl|tensorflow_.*|apache_beam)\..*'),
    (UserWarning, r'(tensorflow_model_analysis|tfx|apache_beam)\..*'),
)


def filter_noisy_warnings() -> None:
    """Ignores NOISY_WARNINGS where they are raised; every other warning stays."""
    for category, module in NOISY_WARNINGS:
        warnings.filterwarnings('ignore', category=category, module=module)


def quiet_native_logs() -> None:
    """TensorFlow's C++ INFO/WARNING lines off; set before TensorFlow is imported."""
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')


class _ComponentEvents(logging.Handler):
    """Turns LocalDagRunner's start/finish records into calls."""

    def __init__(self, started: Callable[[str], None], finished: Callable[[str], None]):
        super().__init__(level=logging.INFO)
        self._started, self._finished = started, finished

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # pylint: disable=broad-except
            return
        match = _STARTED.match(message)
        if match:
            self._started(match.group(1))
            return
        match = _FINISHED.match(message)
        if match:
            self._finished(match.group(1))


class _Progress(logging.Handler):
    """Shows PROGRESS_LOGGER records on the console, indented under their component."""

    def __init__(self, say: Callable[[str], None]):
        super().__init__(level=logging.INFO)
        self._say = say

    def emit(self, record: logging.LogRecord) -> None:
        self._say('      ' + record.getMessage())


class Console:
    """Redirects output to a log file and prints progress lines (a context manager).

    Args:
      log_path: the log file (created, with its folder).
      verbose: also copy everything to the console.
      node_ids: the pipeline's components in run order, to number them.
      node_state: node id -> its state in MLMD once finished ('COMPLETE',
        'CACHED', 'FAILED'), or None when unknown.
      out: where progress lines go (the console's stdout).
    """

    def __init__(self, log_path: str, *, verbose: bool, node_ids: Sequence[str] = (),
                 node_state: Optional[Callable[[str], Optional[str]]] = None,
                 out: Optional[TextIO] = None):
        self.log_path = log_path
        self.verbose = verbose
        self.node_ids: List[str] = list(node_ids)
        self._node_state = node_state
        self._out = out
        self._started: Dict[str, float] = {}
        self.running: Optional[str] = None
        self._lock = threading.Lock()
        self._saved_fds: List[int] = []
        self._pump: Optional[threading.Thread] = None
        self._log = None
        self._handlers: List[logging.Handler] = []
        self._old_levels: Dict[str, int] = {}

    # -- output ----------------------------------------------------------
    def say(self, line: str) -> None:
        """One line on the console (and in the log file)."""
        with self._lock:
            if self._out is not None:
                self._out.write(line + '\n')
                self._out.flush()
            if self._log is not None:
                self._log.write(('[console] ' + line + '\n').encode())
                self._log.flush()

    def _component_started(self, node_id: str) -> None:
        self.running = node_id
        self._started[node_id] = time.perf_counter()
        self.say(f'{self._number(node_id)} {node_id} ...')

    def _component_finished(self, node_id: str) -> None:
        seconds = time.perf_counter() - self._started.get(node_id, time.perf_counter())
        state = self._node_state(node_id) if self._node_state else None
        self.running = None
        if state == 'CACHED':
            self.say(f'{self._number(node_id)} {node_id} cached')
        elif state == 'FAILED':
            self.say(f'{self._number(node_id)} {node_id} FAILED after {seconds:.1f} s')
        else:
            self.say(f'{self._number(node_id)} {node_id} done {seconds:.1f} s')

    def failed(self, reason: str) -> None:
        """Marks the running component as failed, with a one-line reason."""
        if self.running is not None:
            node_id, self.running = self.running, None
            first = reason.strip().splitlines()[0] if reason.strip() else 'unknown error'
            self.say(f'{self._number(node_id)} {node_id} FAILED: {first}')

    def _number(self, node_id: str) -> str:
        if node_id in self.node_ids:
            return f'[{self.node_ids.index(node_id) + 1}/{len(self.node_ids)}]'
        return '[-]'

    # -- redirection -----------------------------------------------------
    def _pump_lines(self, read_fd: int, console_fd: int) -> None:
        with os.fdopen(read_fd, 'rb', buffering=0) as pipe:
            while True:
                chunk = pipe.read(65536)
                if not chunk:
                    return
                with self._lock:
                    self._log.write(chunk)
                    self._log.flush()
                if self.verbose:
                    os.write(console_fd, chunk)

    def __enter__(self) -> 'Console':
        os.makedirs(os.path.dirname(self.log_path) or '.', exist_ok=True)
        self._log = open(self.log_path, 'ab')  # pylint: disable=consider-using-with
        sys.stdout.flush()
        sys.stderr.flush()
        stdout_copy, stderr_copy = os.dup(1), os.dup(2)
        self._saved_fds = [stdout_copy, stderr_copy]
        if self._out is None:
            self._out = os.fdopen(os.dup(stdout_copy), 'w', buffering=1, encoding='utf-8')
        read_fd, write_fd = os.pipe()
        os.dup2(write_fd, 1)
        os.dup2(write_fd, 2)
        os.close(write_fd)
        self._pump = threading.Thread(target=self._pump_lines, args=(read_fd, stderr_copy),
                                      name='console-log', daemon=True)
        self._pump.start()

        root = logging.getLogger()
        self._old_levels = {'': root.level}
        root.setLevel(logging.INFO)
        file_handler = logging.StreamHandler(sys.stderr)
        file_handler.setFormatter(logging.Formatter(
            '%(asctime)s %(levelname)s %(name)s] %(message)s'))
        events = _ComponentEvents(self._component_started, self._component_finished)
        progress = _Progress(self.say)
        progress_logger = logging.getLogger(PROGRESS_LOGGER)
        self._old_levels[PROGRESS_LOGGER] = progress_logger.level
        progress_logger.setLevel(logging.INFO)
        root.addHandler(file_handler)
        root.addHandler(events)
        progress_logger.addHandler(progress)
        self._handlers = [(root, file_handler), (root, events), (progress_logger, progress)]
        logging.captureWarnings(True)
        filter_noisy_warnings()
        return self

    def __exit__(self, *exc_info) -> None:
        logging.captureWarnings(False)
        for logger, handler in self._handlers:
            logger.removeHandler(handler)
        for name, level in self._old_levels.items():
            logging.getLogger(name or None).setLevel(level)
        sys.stdout.flush()
        sys.stderr.flush()
        stdout_copy, stderr_copy = self._saved_fds
        os.dup2(stdout_copy, 1)
        os.dup2(stderr_copy, 2)  # closes the pipe's last write end: the pump ends
        if self._pump is not None:
            self._pump.join(timeout=10)
        os.close(stdout_copy)
        os.close(stderr_copy)
        self._log.close()
        self._log = None
