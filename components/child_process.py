"""Work that would leave memory behind, run in a child process: the TFLite conversions.

TensorFlow keeps much of what a stage allocates (a loaded SavedModel, the converter's
graphs, interpreters) for the process's life, and the pipeline runs every stage in one
process: the Pusher's model.tflite and TFLiteExport's float16/int8 conversions and
checks added 0.35-0.5 GiB to it (docs/benchmarks.md, issue 40). `call(function, ...)`
runs a module-level function in a fresh child instead and gives back what it returns,
so what it allocates ends with it.

The child is forked by a worker process (`python -m components.child_process`) that
has imported TensorFlow and the modules named to it once, then waits: a call costs a
fork, not TensorFlow's import (2.4-3.2 s here), and the next call forks afresh from the same
worker. The worker is started by `start` (local_runner.py calls it as a run begins, so
that its imports run on the core the run's first stages leave idle) or else by the first
call, and serves this process until it ends (it reads its requests from a pipe, and exits
at its end) or `stop`.
Nothing but the modules' import runs in the worker itself: each call runs in its own
fork.

What the child logs reaches this process's logging as if logged here (the console
shows the progress lines, the run's log has the rest); its stdout and stderr
(TensorFlow's C++ logs) are copied to this process's stderr. An exception in the child
is raised here again, the same type with the same message (its traceback in the log);
a child that dies without an answer (a signal, out of memory) raises ChildProcessError
naming how it ended. Calls from several threads wait for each other (one child at a
time).
"""

import atexit
import ctypes
import importlib
import logging
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import threading
import time
import traceback
from typing import Any, Callable, Optional, Sequence

# What the worker imports before it forks children: TensorFlow and the modules of the
# calls the pipeline makes, with what they import when first called (models.export brings
# tensorflow_transform and Beam: 3 s in each child without it).
PRELOAD = ('tensorflow', 'components.tflite_export.executor',
           'components.image_pusher.tflite_model', 'models.export')
_PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_HEADER = struct.Struct('!Q')
_PR_SET_PDEATHSIG = 1   # <linux/prctl.h>
# Messages from the child: ('log', record dict), ('result', value), ('error', exception,
# its type's name, message, traceback text); from the worker: ('ready', its imports'
# seconds), ('died', how).
_LOG, _RESULT, _ERROR, _READY, _DIED = 'log', 'result', 'error', 'ready', 'died'


def _send(fd: int, message: Any) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    view = memoryview(_HEADER.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view):]


def _read_exactly(fd: int, size: int) -> Optional[bytes]:
    chunks, left = [], size
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b''.join(chunks)


def _receive(fd: int) -> Any:
    """The next message, or None at the pipe's end."""
    header = _read_exactly(fd, _HEADER.size)
    if header is None:
        return None
    data = _read_exactly(fd, _HEADER.unpack(header)[0])
    return None if data is None else pickle.loads(data)


class _Worker:
    """The worker process, its request and answer pipes, the thread copying its output."""

    def __init__(self, preload: Sequence[str]):
        request_read, self._requests = os.pipe()
        self._answers, answer_write = os.pipe()
        output_read, output_write = os.pipe()
        # Never written: the worker sees its end when this process has gone (or stopped it).
        alive_read, self._alive = os.pipe()
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [_PROJECT, *filter(None, [os.environ.get('PYTHONPATH')])]))
        try:
            self.process = subprocess.Popen(  # pylint: disable=consider-using-with
                [sys.executable, '-m', __name__, str(request_read), str(answer_write),
                 str(alive_read), *preload], stdin=subprocess.DEVNULL, stdout=output_write,
                stderr=output_write, pass_fds=(request_read, answer_write, alive_read),
                env=env, start_new_session=True)
        finally:
            for fd in (request_read, answer_write, output_write, alive_read):
                os.close(fd)
        self._copier = threading.Thread(target=_copy_output, args=(output_read,),
                                        name='child-process-output', daemon=True)
        self._copier.start()
        self._started = time.perf_counter()
        self.answering = False   # a call's answer is still to come (or to be read whole)

    def call(self, function: Callable, args: tuple, kwargs: dict) -> Any:
        self.answering = True
        called = time.perf_counter()
        _send(self._requests, (function.__module__, function.__qualname__, args, kwargs,
                               _levels()))
        while True:
            message = _receive(self._answers)
            if message is None:
                raise ChildProcessError(
                    f'the worker process of components/child_process.py ended '
                    f'(exit status {self.process.poll()}) while running '
                    f'{function.__module__}.{function.__qualname__}')
            kind = message[0]
            self.answering = kind not in (_RESULT, _ERROR, _DIED)
            if kind == _READY:
                logging.getLogger(__name__).info(
                    'the worker of components/child_process.py: its imports took %.1f s; it '
                    'was started %.1f s before its first call', message[1],
                    called - self._started)
            elif kind == _LOG:
                record = logging.makeLogRecord(message[1])
                logger = logging.getLogger(record.name)
                if logger.isEnabledFor(record.levelno):
                    logger.handle(record)
            elif kind == _RESULT:
                return message[1]
            elif kind == _ERROR:
                _, error, type_name, text, trace = message
                logging.getLogger(__name__).info(
                    'in the child process of %s.%s:\n%s', function.__module__,
                    function.__qualname__, trace)
                if error is not None:
                    raise error
                raise ChildProcessError(f'{type_name}: {text}')
            elif kind == _DIED:
                raise ChildProcessError(
                    f'the child process running {function.__module__}.'
                    f'{function.__qualname__} ended without an answer ({message[1]})')

    def stop(self) -> None:
        """Closes its pipes and kills it (a child still running dies with it: its
        parent-death signal)."""
        for fd in (self._requests, self._answers, self._alive):
            try:
                os.close(fd)
            except OSError:
                pass
        self.process.kill()
        self.process.wait()
        self._copier.join(timeout=5)


def _levels() -> dict:
    """The levels set on this process's loggers (root: ''), for the child to log as here."""
    levels = {'': logging.getLogger().level}
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger) and logger.level != logging.NOTSET:
            levels[name] = logger.level
    return levels


def _copy_output(fd: int) -> None:
    """The worker's stdout and stderr to this process's stderr (fd 2 as it is then: the
    console's log while a Console is open)."""
    with os.fdopen(fd, 'rb', buffering=0) as pipe:
        while True:
            chunk = pipe.read(65536)
            if not chunk:
                return
            try:
                os.write(2, chunk)
            except OSError:
                pass


_lock = threading.Lock()
_worker: Optional[_Worker] = None


def call(function: Callable, *args, **kwargs) -> Any:
    """function(*args, **kwargs) in a child process, its return value here.

    The function must be a module-level one (found again by its module and name), its
    arguments and return value picklable.

    Raises:
      Whatever the function raised in the child (the same type and message; when the
        exception cannot be pickled, ChildProcessError with its type's name and message).
      ChildProcessError: the child ended without an answer.
    """
    global _worker  # pylint: disable=global-statement
    with _lock:
        _start()
        try:
            return _worker.call(function, args, kwargs)
        finally:
            # Interrupted before the whole answer (KeyboardInterrupt), or the worker has
            # gone: the next call gets a new worker.
            if _worker.answering or _worker.process.poll() is not None:
                _worker.stop()
                _worker = None


def start() -> None:
    """Starts the worker now, unless one is running: its imports go on beside what this
    process does next."""
    with _lock:
        _start()


def _start() -> None:
    global _worker  # pylint: disable=global-statement
    if _worker is None or _worker.process.poll() is not None:
        _worker = _Worker(PRELOAD)


def stop() -> None:
    """Ends the worker (the next call starts another). No call is running (they hold the
    lock), so it holds nothing: it is killed, not waited for (a worker still importing, as
    when a run fails in its first stage, would keep this process up to its imports' end)."""
    global _worker  # pylint: disable=global-statement
    with _lock:
        if _worker is not None:
            _worker.stop()
            _worker = None


atexit.register(stop)


# -- the worker's side ----------------------------------------------------------------

class _Forward(logging.Handler):
    """Sends the child's log records to the caller, formatted (args and exception as text)."""

    def __init__(self, fd: int):
        super().__init__()
        self._fd = fd

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fields = dict(record.__dict__)
            fields['msg'], fields['args'] = record.getMessage(), None
            if record.exc_info:
                fields['exc_text'] = logging.Formatter().formatException(record.exc_info)
            fields['exc_info'] = None
            _send(self._fd, (_LOG, fields))
        except Exception:  # pylint: disable=broad-except
            self.handleError(record)


def _run_request(answers: int, request: tuple) -> None:
    """In the forked child: runs one call, sends its log records and its answer."""
    module_name, qualname, args, kwargs, levels = request
    root = logging.getLogger()
    for handler in root.handlers[:]:
        root.removeHandler(handler)
    root.addHandler(_Forward(answers))
    for name, level in levels.items():
        logging.getLogger(name or None).setLevel(level)
    try:
        function = importlib.import_module(module_name)
        for part in qualname.split('.'):
            function = getattr(function, part)
        result = function(*args, **kwargs)
    except BaseException as error:  # pylint: disable=broad-except
        trace, type_name, text = traceback.format_exc(), type(error).__name__, str(error)
        try:
            pickle.loads(pickle.dumps(error))   # raised again as it is when it survives this
        except Exception:  # pylint: disable=broad-except
            error = None
        _send(answers, (_ERROR, error, type_name, text, trace))
        return
    _send(answers, (_RESULT, result))


def _serve(requests: int, answers: int, alive: int, preload: Sequence[str]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # the caller stops us (its pipe's end)
    started = time.perf_counter()
    for name in preload:
        importlib.import_module(name)
    try:
        _send(answers, (_READY, time.perf_counter() - started))
    except BrokenPipeError:   # the caller has gone (or stopped us) meanwhile
        return
    while True:
        request = _receive(requests)
        if request is None:
            return
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
                _run_request(answers, request)
            except BaseException:  # pylint: disable=broad-except
                code = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)  # pylint: disable=protected-access
        _, status = _wait_or_caller_gone(pid, alive)
        if status is None:
            return
        if os.WIFSIGNALED(status):
            _send(answers, (_DIED, f'killed by signal {os.WTERMSIG(status)}'))
        elif os.WEXITSTATUS(status):
            _send(answers, (_DIED, f'exit status {os.WEXITSTATUS(status)}'))


def _wait_or_caller_gone(pid: int, alive: int):
    """Waits for the child; kills it when the caller's `alive` pipe ends (the caller has
    exited or stopped us), then returns (pid, None)."""
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return done, status
        readable, _, _ = select.select([alive], [], [], 0.05)
        if readable:   # nothing is ever written to it: its end
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return pid, None


if __name__ == '__main__':
    _serve(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:])
    # No interpreter teardown of TensorFlow (about a second) for the caller to wait on.
    os._exit(0)  # pylint: disable=protected-access
