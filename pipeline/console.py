"""What a person sees while the pipeline runs, and the log file that keeps the rest.

While a `Console` is open, everything the process and its children (Beam
workers) write to stdout and stderr, TensorFlow's C++ logs included, goes to a
log file; Python logging goes there too, at INFO, and Python warnings through
logging. The console shows only `Console.say` lines: one per component as it
starts and ends (from LocalDagRunner's own "Component X is running/finished"
log records, with the state ML Metadata recorded), one per training epoch
(records of `models.progress`' logger) and whatever the caller says. With
verbose=True the console also shows everything, as without a Console, and the
known third-party warnings (`runlog.noise`) are not filtered out.
"""

import logging
import os
import re
import sys
import threading
import time
import warnings
from typing import Callable, Dict, List, Optional, Sequence, TextIO, Tuple

from absl import logging as absl_logging

from runlog import noise
from runlog import progress

# Loggers whose level the console raises to INFO so that the log file has their
# records. TFX logs through absl, whose level follows its --verbosity flag
# (WARNING by default, applied again whenever a component parses flags), so the
# console sets that flag too.
_INFO_LOGGERS = ('', progress.LOGGER_NAME)

_STARTED = re.compile(r'^Component (\S+) is running\.$')
_FINISHED = re.compile(r'^Component (\S+) is finished\.$')

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
    """Shows progress records on the console, indented under their component."""

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
        self.node_state = node_state
        self._out = out
        self._started: Dict[str, float] = {}
        self._open_line: Optional[str] = None
        self.running: Optional[str] = None
        self.failed_node: Optional[str] = None
        self._lock = threading.Lock()
        self._saved_fds: List[int] = []
        self._pump: Optional[threading.Thread] = None
        self._log = None
        self._handlers: List[Tuple[logging.Logger, logging.Handler]] = []
        self._old_levels: Dict[str, int] = {}
        self._created: List[str] = []   # folders __enter__ made for the log, deepest first
        self._old_absl_verbosity = 0

    # -- output ----------------------------------------------------------
    def _write(self, text: str) -> None:
        if self._out is not None:
            self._out.write(text)
            self._out.flush()

    def say(self, line: str) -> None:
        """One line on the console (and in the log file)."""
        with self._lock:
            if self._open_line:
                self._write('\n')
                self._open_line = None
            self._write(line + '\n')
            if self._log is not None:
                self._log.write(('[console] ' + line + '\n').encode())
                self._log.flush()

    def _component_started(self, node_id: str) -> None:
        self.running = node_id
        self._started[node_id] = time.perf_counter()
        line = f'{self._number(node_id)} {node_id} ...'
        with self._lock:
            if self._open_line:
                self._write('\n')
            # Left open: the finish completes this line unless other lines come first.
            self._write(line)
            self._open_line = node_id

    def _component_finished(self, node_id: str) -> None:
        seconds = time.perf_counter() - self._started.get(node_id, time.perf_counter())
        state = self.node_state(node_id) if self.node_state else None
        self.running = None
        self._end_line(node_id, {'CACHED': 'cached', 'FAILED': f'FAILED after {seconds:.1f} s'}
                       .get(state, f'done {seconds:.1f} s'))

    def _end_line(self, node_id: str, outcome: str) -> None:
        """Completes the component's open line, or writes a whole one if others came between."""
        line = f'{self._number(node_id)} {node_id} {outcome}'
        with self._lock:
            if self._open_line == node_id:
                self._open_line = None
                self._write(f' {outcome}\n')
                if self._log is not None:
                    self._log.write(f'[console] {line}\n'.encode())
                    self._log.flush()
                return
        self.say(line)

    def failed(self, reason: str) -> None:
        """Marks the running component as failed, with a one-line reason."""
        if self.running is not None:
            node_id, self.running = self.running, None
            self.failed_node = node_id
            first = reason_line(reason)
            seconds = time.perf_counter() - self._started.get(node_id, time.perf_counter())
            self._end_line(node_id, f'FAILED after {seconds:.1f} s: {first}')

    def error(self, line: str) -> None:
        """One line on the console's stderr (and in the log file)."""
        with self._lock:
            if self._open_line:
                self._write('\n')
                self._open_line = None
            if self._saved_fds:
                os.write(self._saved_fds[1], (line + '\n').encode())
            else:
                sys.stderr.write(line + '\n')
            if self._log is not None:
                self._log.write(('[console] ' + line + '\n').encode())
                self._log.flush()

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
        folder = os.path.dirname(os.path.abspath(self.log_path))
        while not os.path.exists(folder):
            self._created.append(folder)
            folder = os.path.dirname(folder)
        os.makedirs(os.path.dirname(os.path.abspath(self.log_path)), exist_ok=True)
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
        self._old_absl_verbosity = absl_logging.get_verbosity()
        absl_logging.set_verbosity(absl_logging.INFO)
        self._old_levels = {name: logging.getLogger(name or None).level
                            for name in _INFO_LOGGERS}
        for name in _INFO_LOGGERS:
            logging.getLogger(name or None).setLevel(logging.INFO)
        file_handler = logging.StreamHandler(sys.stderr)
        file_handler.setFormatter(logging.Formatter(
            '%(asctime)s %(levelname)s %(name)s] %(message)s'))
        events = _ComponentEvents(self._component_started, self._component_finished)
        shown = _Progress(self.say)
        progress_logger = progress.logger()
        root.addHandler(file_handler)
        root.addHandler(events)
        progress_logger.addHandler(shown)
        self._handlers = [(root, file_handler), (root, events), (progress_logger, shown)]
        logging.captureWarnings(True)
        self._old_filters = warnings.filters[:]
        if not self.verbose:  # verbose: every warning, the known noise too
            noise.filter_noisy_warnings()
        return self

    def __exit__(self, *exc_info) -> None:
        with self._lock:
            if self._open_line:
                self._write('\n')
                self._open_line = None
        logging.captureWarnings(False)
        warnings.filters[:] = self._old_filters
        for logger, handler in self._handlers:
            logger.removeHandler(handler)
        for name, level in self._old_levels.items():
            logging.getLogger(name or None).setLevel(level)
        absl_logging.set_verbosity(self._old_absl_verbosity)
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

    def discard(self) -> None:
        """Removes the log file and the folders made for it (after __exit__).

        For a run that never started (a user error): it leaves nothing behind.
        """
        if os.path.exists(self.log_path):
            os.remove(self.log_path)
        for folder in self._created:
            if os.path.isdir(folder) and not os.listdir(folder):
                os.rmdir(folder)


def reason_line(message: str) -> str:
    """A failure's message as one line.

    TF's graph-function errors start with "in user code:" and end with the error
    itself (e.g. "NameError: name 'x' is not defined"): that last line is the
    reason. A heading followed by a list of problems (DataGate) gives the heading,
    the first problem and how many more.
    """
    lines = [line.strip(' -') for line in message.strip().splitlines() if line.strip(' -')]
    if not lines:
        return 'unknown error'
    if lines[0].rstrip(':') == 'in user code' and len(lines) > 1:
        return lines[-1]
    if len(lines) > 3:
        return f'{lines[0]} {lines[1]} (and {len(lines) - 3} more)'
    return ' '.join(lines[:2]) if len(lines) > 2 else lines[0]
